-- Sources of live ingests: stable detection_id, ICRS position (deg), healpix29, redshift.
CREATE OR REPLACE VIEW detections AS FROM live_rows('raw_detections');
