-- One flux per source and band: catalog photometry first, then the smallest aperture, newest ingest.
CREATE OR REPLACE VIEW photometry_best AS
SELECT p.*
FROM photometry p
JOIN live_ingests i USING (ingest_id)
QUALIFY row_number() OVER (
    PARTITION BY p.detection_id, p.band
    ORDER BY (p.method = 'catalog') DESC, p.aperture_arcsec NULLS FIRST, i.committed_at DESC
) = 1;
