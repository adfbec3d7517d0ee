-- Table macro live_rows('raw_<table>'): the rows of a lake table written by live ingests.
CREATE OR REPLACE MACRO live_rows(tbl) AS TABLE
SELECT * FROM query_table(tbl)
WHERE ingest_id IN (SELECT ingest_id FROM live_ingests);
