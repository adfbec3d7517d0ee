-- Simulated size limits (gccat sizes), the latest run per field, band, mu_t and lens model: the smallest
-- intrinsic half-light radius resolved (pc, arcsec), the criterion and what it was simulated
-- with (flux, noise, S/N, PSF, stack). Not the lensing limit HWHM x |lambda_t| of size_limits.
CREATE OR REPLACE VIEW size_limits_sim AS
SELECT r.field_id, r.band, r.mu_t, r.run_id, r.threshold_r_h_pc, r.threshold_r_h_arcsec,
       r.nsigma, r.criterion, r.snr, r.flux_njy, r.noise_njy, r.noise_source, r.n_sim,
       r.fwhm_point_pix, r.fwhm_point_std_pix, r.z, r.pc_per_arcsec, r.lens_model, r.psf_run_id,
       r.stack_run_id, i.committed_at
FROM size_limit_runs r JOIN ingests i USING (ingest_id)
QUALIFY row_number() OVER (PARTITION BY r.field_id, r.band, r.mu_t, r.lens_model ORDER BY i.committed_at DESC) = 1;
