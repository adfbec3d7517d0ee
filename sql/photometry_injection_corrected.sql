-- Aperture and PSF-fit photometry with its injection-recovery correction: flux_corrected_njy =
-- c2 f^2 + c1 f + c0 of the measured flux f (nJy), the error propagated through the polynomial.
-- A correction applies where it calibrates the measurement: the same source, band and image
-- (sha256), not an upper limit, the newest such run (by lake version: run ids of one second
-- sort by their random suffix), and the same measurement --
-- aperture rows: gccat photometry with the PSF aperture correction (injections are measured
-- that way) at the same aperture radius; psf rows: a gccat inject --method psf run with the
-- same cutout side and refit side (pixels) and background model, on a fit without problem
-- flags (a refit at the smaller cutout, bit 32, is not a problem). Other rows keep their flux.
-- The corrected error adds, in quadrature, what the injection locations scatter beyond their
-- own measurement noise, max(0, location_scatter^2 - location_noise^2) (the Sparkler study
-- propagates the scatter over its 20 locations; the noise part is the target's own error).
CREATE OR REPLACE VIEW photometry_injection_corrected AS
WITH c AS (
    SELECT c.run_id, c.detection_id, c.band, c.aperture_radius_arcsec, c.c2, c.c1, c.c0,
           greatest(coalesce(c.location_scatter_njy ^ 2 - c.location_noise_njy ^ 2, 0), 0)
               AS location_var_njy2,
           r.image_sha256,
           coalesce(json_extract_string(r.params, '$.method'), 'aperture') AS method,
           json_extract_string(r.params, '$.background') AS background,
           TRY_CAST(json_extract(r.params, '$.fit_size_pix') AS BIGINT) AS fit_size_pix,
           coalesce(TRY_CAST(json_extract(r.params, '$.refit_size_pix') AS BIGINT), 0) AS refit_size_pix,
           i.lake_version
    FROM injection_corrections c
    JOIN injection_runs r USING (run_id)
    JOIN live_ingests i ON i.ingest_id = r.ingest_id
    WHERE c.c1 IS NOT NULL
), p AS (
    SELECT p.*, aperture_corrected(i.kind, p.method, i.options) AS aperture_corrected,
           i.sha256 AS image_sha256,
           json_extract_string(i.options, '$.background') AS background,
           TRY_CAST(json_extract(i.options, '$.fit_size_pix') AS BIGINT) AS fit_size_pix,
           coalesce(TRY_CAST(json_extract(i.options, '$.refit_size_pix') AS BIGINT), 0) AS refit_size_pix
    FROM photometry p
    JOIN live_ingests i USING (ingest_id)
    WHERE p.method IN ('aperture', 'psf')
), m AS (
    SELECT p.* EXCLUDE (image_sha256, background, fit_size_pix, refit_size_pix), c.run_id AS correction_run,
           c.c2, c.c1, c.c0, c.location_var_njy2
    FROM p
    LEFT JOIN c ON c.detection_id = p.detection_id AND c.band = p.band
        AND c.image_sha256 = p.image_sha256 AND c.method = p.method AND NOT p.is_upper_limit
        AND CASE WHEN p.method = 'aperture'
                 THEN abs(c.aperture_radius_arcsec - p.aperture_radius_arcsec) < {radius_match_arcsec}
                      AND p.aperture_corrected
                 ELSE c.aperture_radius_arcsec IS NULL AND c.background = p.background
                      AND c.fit_size_pix = p.fit_size_pix AND c.refit_size_pix = p.refit_size_pix
                      AND (coalesce(p.quality, 0) & {psf_flag_problems}) = 0
                      AND p.flux_njy IS NOT NULL END
    QUALIFY row_number() OVER (PARTITION BY p.field_id, p.ingest_id, p.detection_id, p.band,
                                            p.aperture_radius_arcsec
                               ORDER BY c.lake_version DESC NULLS LAST, c.run_id DESC) = 1
)
SELECT detection_id, field_id, band, method, aperture_radius_arcsec, flux_njy, flux_err_njy,
       is_upper_limit, coalesce(aperture_corrected, false) AS aperture_corrected, mw_corrected,
       quality, ingest_id, correction_run,
       CASE WHEN correction_run IS NULL THEN flux_njy
            ELSE c2 * flux_njy ^ 2 + c1 * flux_njy + c0 END AS flux_corrected_njy,
       CASE WHEN correction_run IS NULL THEN flux_err_njy
            ELSE sqrt((abs(2 * c2 * flux_njy + c1) * flux_err_njy) ^ 2 + location_var_njy2)
       END AS flux_err_corrected_njy,
       CASE WHEN correction_run IS NOT NULL THEN sqrt(location_var_njy2) END AS location_error_njy
FROM m;
