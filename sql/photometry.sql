-- Photometry of live ingests, one row per source, band and method (fluxes in nJy).
CREATE OR REPLACE VIEW photometry AS
SELECT p.*
FROM raw_photometry p
WHERE p.ingest_id IN (SELECT ingest_id FROM live_ingests);
