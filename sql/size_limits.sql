-- Intrinsic size limits of unresolved lensed sources: the PSF half width at half maximum
-- (the band's latest empirical PSF from gccat psf build, psf_models) over the tangential
-- magnification, HWHM x |lambda_t| (lambda_t = 1 - kappa - gamma: the arc stretches sizes by
-- 1/|lambda_t|), in arcsec and in proper pc at the source redshift; per detection, single
-- lens model and band; NULL where mu is undefined or the source is off the map.
CREATE OR REPLACE VIEW size_limits AS
WITH p AS (
    SELECT m.field_id, m.band, arg_max(m.fwhm_arcsec, i.committed_at) AS fwhm_arcsec,
           arg_max(m.run_id, i.committed_at) AS psf_run_id
    FROM psf_models m JOIN ingests i USING (ingest_id)
    WHERE m.fwhm_arcsec > 0 GROUP BY m.field_id, m.band
)
SELECT l.detection_id, l.field_id, l.catalog, l.source_id, l.model_id, p.band, l.z,
       p.psf_run_id, p.fwhm_arcsec, p.fwhm_arcsec / 2 AS hwhm_arcsec, l.lambda_t, l.mu,
       CASE WHEN NOT (l.off_map OR l.mu_undefined) THEN p.fwhm_arcsec / 2 * abs(l.lambda_t) END
           AS size_limit_arcsec,
       pc_per_arcsec(l.z) AS pc_per_arcsec,
       size_limit_arcsec * pc_per_arcsec(l.z) AS size_limit_pc
FROM lens_at_detections l
JOIN p USING (field_id)
WHERE l.ensemble_id IS NULL;
