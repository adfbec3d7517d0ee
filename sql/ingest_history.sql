-- Every committed ingest with its status (live, or superseded and by which ingest), newest first.
CREATE OR REPLACE VIEW ingest_history AS
WITH sup AS (
    SELECT unnest(supersedes) AS ingest_id, ingest_id AS superseded_by
    FROM raw_ingests WHERE supersedes IS NOT NULL
)
SELECT i.ingest_id, i.kind, i.field_id, i.name, i.n_rows, i.n_photometry,
       CASE WHEN sup.superseded_by IS NULL THEN 'live' ELSE 'superseded' END AS status,
       sup.superseded_by, i.started_at, i.committed_at,
       date_diff('millisecond', i.started_at, i.committed_at) / 1000.0 AS duration_s,
       i.source_path, i.sha256, i.command, i.gccat_version
FROM raw_ingests i
LEFT JOIN sup USING (ingest_id)
ORDER BY i.committed_at DESC;
