-- Intrinsic (lensing-corrected) living masses of SSP fits over an ensemble of lens-model
-- realisations: log10 M_living - log10 |mu| at the median |mu| and its 16/84th percentiles
-- over the realisations (the fit's own mass percentiles are beside, uncombined: the two
-- ranges are independent sources of error).
CREATE OR REPLACE VIEW fit_results_ensemble AS
WITH w AS (
    SELECT DISTINCT run_id, object_id, log_mass_living, log_mass_living_p16, log_mass_living_p84
    FROM fit_results
)
SELECT w.run_id, w.object_id, e.ensemble_id, e.field_id, e.source_id, e.n_realisations,
       w.log_mass_living, w.log_mass_living_p16, w.log_mass_living_p84,
       e.abs_mu_p16, e.abs_mu_p50, e.abs_mu_p84,
       w.log_mass_living - log10(e.abs_mu_p50) AS log_mass_living_intrinsic,
       w.log_mass_living - log10(e.abs_mu_p84) AS log_mass_living_intrinsic_lens_p16,
       w.log_mass_living - log10(e.abs_mu_p16) AS log_mass_living_intrinsic_lens_p84
FROM w
JOIN lens_ensemble_at_detections e ON e.detection_id = w.object_id
WHERE e.n_realisations > 0;
