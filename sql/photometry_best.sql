-- One flux per source and band: the row of highest preference in photometry_ranked (catalog
-- photometry first, then the smallest aperture, then the newest ingest).
CREATE OR REPLACE VIEW photometry_best AS
SELECT * EXCLUDE (preference)
FROM photometry_ranked
QUALIFY row_number() OVER (PARTITION BY detection_id, band ORDER BY preference DESC) = 1;
