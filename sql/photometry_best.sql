-- One flux per source and band, the one the fits use: the candidate of photometry_ranked of
-- highest preference. The rule: catalog (published) photometry; then injection-corrected,
-- then aperture-corrected photometry at the final aperture radius (0.16 arcsec,
-- catalog.constants.FINAL_APERTURE_RADIUS_ARCSEC); then the same at the other radii, nearest
-- the final first; then other methods; then aperture sums without aperture correction; then
-- the newest ingest. aperture_corrected, injection_corrected and correction_run say which.
CREATE OR REPLACE VIEW photometry_best AS
SELECT * EXCLUDE (preference)
FROM photometry_ranked
QUALIFY row_number() OVER (PARTITION BY field_id, detection_id, band ORDER BY preference DESC) = 1;
