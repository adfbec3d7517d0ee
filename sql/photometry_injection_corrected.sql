-- Aperture photometry corrected by the injection-recovery polynomial of its source, band and
-- aperture (newest run): flux_corrected_njy = c2 f^2 + c1 f + c0 (nJy); upper limits untouched.
CREATE OR REPLACE VIEW photometry_injection_corrected AS
WITH c AS (
    SELECT * FROM injection_corrections WHERE c1 IS NOT NULL
    QUALIFY row_number() OVER (PARTITION BY detection_id, band, aperture_arcsec
                               ORDER BY run_id DESC) = 1
)
SELECT p.detection_id, p.field_id, p.band, p.aperture_arcsec, p.flux_njy, p.flux_err_njy,
       p.is_upper_limit, c.run_id AS correction_run,
       CASE WHEN p.is_upper_limit OR c.c1 IS NULL THEN p.flux_njy
            ELSE c.c2 * p.flux_njy ^ 2 + c.c1 * p.flux_njy + c.c0 END AS flux_corrected_njy,
       CASE WHEN p.is_upper_limit OR c.c1 IS NULL THEN p.flux_err_njy
            ELSE abs(2 * c.c2 * p.flux_njy + c.c1) * p.flux_err_njy END AS flux_err_corrected_njy
FROM photometry p
LEFT JOIN c USING (detection_id, band, aperture_arcsec)
WHERE p.method = 'aperture';
