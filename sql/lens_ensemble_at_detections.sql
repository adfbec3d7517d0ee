-- Lens quantities at every detection over each ensemble of lens-model realisations (gccat
-- ingest lens-ensemble), rescaled to the source redshift: median and 16/84th percentiles
-- (linear interpolation between order statistics, as numpy.percentile) of kappa, gamma, mu,
-- |mu| and lambda_t over the realisations where mu is defined; n_realisations counts them,
-- n_undefined the realisations that leave the source off the map or mu undefined.
CREATE OR REPLACE VIEW lens_ensemble_at_detections AS
WITH l AS (
    SELECT *, NOT (off_map OR mu_undefined) AS ok
    FROM lens_at_detections WHERE ensemble_id IS NOT NULL
)
SELECT detection_id, ensemble_id,
       any_value(field_id) AS field_id, any_value(catalog) AS catalog,
       any_value(source_id) AS source_id, any_value(ra) AS ra, any_value(dec) AS dec,
       any_value(z) AS z,
       count(*) FILTER (WHERE ok) AS n_realisations,
       count(*) FILTER (WHERE NOT ok) AS n_undefined,
       quantile_cont(kappa, 0.16) FILTER (WHERE ok) AS kappa_p16,
       quantile_cont(kappa, 0.5) FILTER (WHERE ok) AS kappa_p50,
       quantile_cont(kappa, 0.84) FILTER (WHERE ok) AS kappa_p84,
       quantile_cont(gamma, 0.16) FILTER (WHERE ok) AS gamma_p16,
       quantile_cont(gamma, 0.5) FILTER (WHERE ok) AS gamma_p50,
       quantile_cont(gamma, 0.84) FILTER (WHERE ok) AS gamma_p84,
       quantile_cont(mu, 0.16) FILTER (WHERE ok) AS mu_p16,
       quantile_cont(mu, 0.5) FILTER (WHERE ok) AS mu_p50,
       quantile_cont(mu, 0.84) FILTER (WHERE ok) AS mu_p84,
       quantile_cont(abs(mu), 0.16) FILTER (WHERE ok) AS abs_mu_p16,
       quantile_cont(abs(mu), 0.5) FILTER (WHERE ok) AS abs_mu_p50,
       quantile_cont(abs(mu), 0.84) FILTER (WHERE ok) AS abs_mu_p84,
       quantile_cont(lambda_t, 0.16) FILTER (WHERE ok) AS lambda_t_p16,
       quantile_cont(lambda_t, 0.5) FILTER (WHERE ok) AS lambda_t_p50,
       quantile_cont(lambda_t, 0.84) FILTER (WHERE ok) AS lambda_t_p84
FROM l
GROUP BY detection_id, ensemble_id;
