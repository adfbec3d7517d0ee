-- Point-source detection runs: images, bands, noise, threshold, masked and searched areas.
CREATE OR REPLACE VIEW detection_runs AS FROM live_rows('raw_detection_runs');
