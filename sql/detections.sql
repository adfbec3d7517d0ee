-- Sources of live ingests: stable detection_id, ICRS position (deg), healpix29, redshift.
CREATE OR REPLACE VIEW detections AS
SELECT d.*
FROM raw_detections d
WHERE d.ingest_id IN (SELECT ingest_id FROM live_ingests);
