-- One row per detection (also those without photometry) with flux, error (nJy), AB magnitude and error per band (the preferred row of photometry_ranked, as in photometry_best).
CREATE OR REPLACE VIEW photometry_wide AS
SELECT d.detection_id, d.field_id, d.catalog, d.source_id, d.ra, d.dec, d.healpix29, d.z,
       d.class, w.* EXCLUDE (detection_id)
FROM detections d
LEFT JOIN (
    SELECT detection_id,
       {band_columns}
    FROM photometry_ranked
    GROUP BY detection_id
) w USING (detection_id);
