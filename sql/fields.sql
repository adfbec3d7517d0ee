-- Cluster fields (one row per field_id, from its most recent live ingest).
CREATE OR REPLACE VIEW fields AS
SELECT f.*
FROM raw_fields f
JOIN live_ingests i USING (ingest_id)
QUALIFY row_number() OVER (PARTITION BY f.field_id ORDER BY i.committed_at DESC) = 1;
