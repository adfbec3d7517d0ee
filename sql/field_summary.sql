-- Per field: detections, catalogs, bands, median AB magnitude per band, ingests.
CREATE OR REPLACE VIEW field_summary AS
WITH det AS (
    SELECT field_id, count(*) AS n_detections, count(DISTINCT catalog) AS n_catalogs
    FROM detections GROUP BY field_id
), mags AS (
    SELECT field_id, band, flux_to_abmag(median(flux_njy)) AS median_mag
    FROM photometry_best WHERE NOT is_upper_limit GROUP BY field_id, band
), magagg AS (
    SELECT m.field_id, count(*) AS n_bands,
           string_agg(m.band || '=' || coalesce(printf('%.2f', m.median_mag), 'nan'), ' '
                      ORDER BY b.pivot_um) AS median_mag_ab
    FROM mags m LEFT JOIN bands b USING (band) GROUP BY m.field_id
), ing AS (
    SELECT field_id, count(*) AS n_ingests, max(committed_at) AS last_ingest_at
    FROM live_ingests WHERE field_id IS NOT NULL GROUP BY field_id
)
SELECT field_id, f.name, f.z_cluster, f.ebv_mw,
       coalesce(det.n_detections, 0) AS n_detections,
       coalesce(det.n_catalogs, 0) AS n_catalogs,
       coalesce(magagg.n_bands, 0) AS n_bands,
       magagg.median_mag_ab,
       coalesce(ing.n_ingests, 0) AS n_ingests,
       ing.last_ingest_at
FROM fields f
FULL JOIN det USING (field_id)
LEFT JOIN magagg USING (field_id)
LEFT JOIN ing USING (field_id)
ORDER BY field_id;
