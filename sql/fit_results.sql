-- SSP fit results joined to detections, one row per object and run: median and 16/84
-- percentiles of age (Gyr), log Z, A_V, log living and formed mass, chi2; the best fit
-- (minimum-chi2 model, *_best) and the posterior mode (*_mode); lensing-corrected
-- (intrinsic) living mass per lens model where the detection has one (NULL where that model
-- leaves mu undefined: mu_undefined is carried along). Single lens models only: ensembles of
-- realisations are combined in the ensemble view of fit results.
CREATE OR REPLACE VIEW fit_results AS
WITH w AS (
    SELECT run_id, object_id, any_value(field_id) AS field_id, any_value(z) AS z,
           any_value(chi2_min) AS chi2_min, any_value(n_bands) AS n_bands,
           any_value(reduced_chi2) AS reduced_chi2,
           max(p50) FILTER (WHERE parameter = 'age_gyr') AS age_gyr,
           max(p16) FILTER (WHERE parameter = 'age_gyr') AS age_gyr_p16,
           max(p84) FILTER (WHERE parameter = 'age_gyr') AS age_gyr_p84,
           max(p50) FILTER (WHERE parameter = 'log_z') AS log_z,
           max(p16) FILTER (WHERE parameter = 'log_z') AS log_z_p16,
           max(p84) FILTER (WHERE parameter = 'log_z') AS log_z_p84,
           max(p50) FILTER (WHERE parameter = 'av') AS av,
           max(p16) FILTER (WHERE parameter = 'av') AS av_p16,
           max(p84) FILTER (WHERE parameter = 'av') AS av_p84,
           max(p50) FILTER (WHERE parameter = 'log_mass_living') AS log_mass_living,
           max(p16) FILTER (WHERE parameter = 'log_mass_living') AS log_mass_living_p16,
           max(p84) FILTER (WHERE parameter = 'log_mass_living') AS log_mass_living_p84,
           max(p50) FILTER (WHERE parameter = 'log_mass_formed') AS log_mass_formed,
           max(best_fit_value) FILTER (WHERE parameter = 'age_gyr') AS age_gyr_best,
           max(best_fit_value) FILTER (WHERE parameter = 'log_z') AS log_z_best,
           max(best_fit_value) FILTER (WHERE parameter = 'av') AS av_best,
           max(best_fit_value) FILTER (WHERE parameter = 'log_mass_living') AS log_mass_living_best,
           max(map_value) FILTER (WHERE parameter = 'age_gyr') AS age_gyr_mode,
           max(map_value) FILTER (WHERE parameter = 'log_z') AS log_z_mode,
           max(map_value) FILTER (WHERE parameter = 'av') AS av_mode,
           max(map_value) FILTER (WHERE parameter = 'log_mass_living') AS log_mass_living_mode
    FROM fit_posteriors GROUP BY run_id, object_id
)
SELECT w.*, d.ra, d.dec, d.catalog, d.source_id, l.model_id AS lens_model, l.mu,
       coalesce(l.mu_undefined, false) AS mu_undefined,  -- no lens model: false, as off a map
       CASE WHEN NOT l.mu_undefined THEN w.log_mass_living - log10(abs(l.mu)) END
           AS log_mass_living_intrinsic
FROM w
LEFT JOIN detections d ON d.detection_id = w.object_id
LEFT JOIN lens_at_detections l ON l.detection_id = w.object_id AND l.ensemble_id IS NULL;
