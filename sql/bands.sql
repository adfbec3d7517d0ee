-- Filters with their instrument and pivot wavelength (um) from the astro-sedpy curves.
CREATE OR REPLACE VIEW bands AS
SELECT b.*
FROM raw_bands b
JOIN live_ingests i USING (ingest_id)
QUALIFY row_number() OVER (PARTITION BY b.band ORDER BY i.committed_at DESC) = 1;
