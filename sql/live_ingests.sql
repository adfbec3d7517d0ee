-- Ingests that are committed at the lake version read and not superseded by a --replace.
CREATE OR REPLACE VIEW live_ingests AS
SELECT i.*
FROM raw_ingests i
WHERE i.ingest_id NOT IN (
    SELECT unnest(supersedes) FROM raw_ingests WHERE supersedes IS NOT NULL
);
