-- Simulated size limits per lensed source: the smallest intrinsic half-light radius resolved
-- (gccat sizes) at each detection's own tangential stretch mu_t = 1/|lambda_t| (single lens
-- models; lambda_t = 1 - kappa - gamma), interpolated in log mu_t - log r_h between the
-- field and band's unlensed-model grid of runs (gccat sizes --mu-t 1,1.5,2,..., no
-- --lens-model; size_limits_sim), and in proper pc at the source's redshift. NULL outside the
-- grid (no extrapolation), where mu is undefined or the source is off the map. The grid's
-- flux and noise are the run's (a typical source of the stack), not each source's.
CREATE OR REPLACE VIEW size_limits_sim_sources AS
WITH g AS (
    SELECT field_id, band, mu_t, threshold_r_h_arcsec AS thr, run_id
    FROM size_limits_sim
    WHERE lens_model IS NULL AND threshold_r_h_arcsec > 0
), s AS (
    SELECT l.detection_id, l.field_id, l.catalog, l.source_id, l.model_id, l.z, l.lambda_t, l.mu,
           CASE WHEN NOT (l.off_map OR l.mu_undefined) AND l.lambda_t <> 0 THEN 1 / abs(l.lambda_t) END
               AS mu_t
    FROM lens_at_detections l
    WHERE l.ensemble_id IS NULL
), b AS (
    SELECT s.detection_id, s.field_id, s.catalog, s.source_id, s.model_id, s.z, s.lambda_t, s.mu,
           s.mu_t, g.band,
           max(g.mu_t) FILTER (WHERE g.mu_t <= s.mu_t) AS mu_t_lo,
           arg_max(g.thr, g.mu_t) FILTER (WHERE g.mu_t <= s.mu_t) AS thr_lo,
           min(g.mu_t) FILTER (WHERE g.mu_t >= s.mu_t) AS mu_t_hi,
           arg_min(g.thr, g.mu_t) FILTER (WHERE g.mu_t >= s.mu_t) AS thr_hi,
           count(*) AS n_grid
    FROM s JOIN g USING (field_id)
    GROUP BY ALL
)
SELECT detection_id, field_id, catalog, source_id, model_id, band, z, lambda_t, mu, mu_t,
       mu_t_lo, mu_t_hi, n_grid,
       CASE WHEN mu_t_lo IS NULL OR mu_t_hi IS NULL THEN NULL
            WHEN mu_t_hi = mu_t_lo THEN thr_lo
            ELSE exp(ln(thr_lo) + (ln(thr_hi) - ln(thr_lo)) * (ln(mu_t) - ln(mu_t_lo))
                                  / (ln(mu_t_hi) - ln(mu_t_lo))) END AS threshold_r_h_arcsec,
       threshold_r_h_arcsec * pc_per_arcsec(z) AS threshold_r_h_pc
FROM b;
