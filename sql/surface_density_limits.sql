-- Lower limits on the stellar surface density of unresolved lensed sources: half the
-- intrinsic living mass of an SSP fit (fit_results, corrected by the same lens model) within
-- the size limit taken as the half-light radius, Sigma_e > (M/2) / (pi r_lim^2) in Msun/pc^2,
-- per fit run, detection, lens model and band of the size limit.
CREATE OR REPLACE VIEW surface_density_limits AS
SELECT f.run_id, s.detection_id, s.field_id, s.source_id, s.model_id, s.band, s.z,
       f.log_mass_living_intrinsic, s.size_limit_pc,
       log10(0.5 * pow(10, f.log_mass_living_intrinsic) / (pi() * s.size_limit_pc * s.size_limit_pc))
           AS log_sigma_e_min
FROM fit_results f
JOIN size_limits s ON s.detection_id = f.object_id AND s.model_id = f.lens_model
WHERE s.size_limit_pc > 0;
