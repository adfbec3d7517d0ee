-- Photometry of live ingests with a preference rank per row (higher wins): catalog photometry
-- first, then no aperture, then the smallest aperture, then the newest ingest.
CREATE OR REPLACE VIEW photometry_ranked AS
SELECT p.*,
       -- One DOUBLE so that choosing a row is a hash aggregate (arg_max), not a sort:
       -- 1e15 catalog, 1e14 no aperture, 1e10 x (1000 - aperture/arcsec), then epoch seconds.
       (p.method = 'catalog')::INT * 1e15 + (p.aperture_arcsec IS NULL)::INT * 1e14
       + (1000 - coalesce(p.aperture_arcsec, 0)) * 1e10 + epoch(i.committed_at) AS preference
FROM photometry p
JOIN live_ingests i USING (ingest_id);
