-- Every candidate flux per source and band with its preference (higher wins): the rows of
-- photometry plus, where photometry_injection_corrected has a correction, the corrected flux
-- (injection_corrected). The rule, in order: (1) catalog photometry (published fluxes);
-- (2) injection-corrected aperture photometry at the final radius
-- (catalog.constants.FINAL_APERTURE_RADIUS_ARCSEC); (3) aperture-corrected photometry at
-- that radius; (4) injection-corrected, then (5) aperture-corrected photometry at other
-- radii, the nearest the final one first (the larger of two as near); (6) other methods;
-- (7) aperture sums without aperture correction (not total fluxes); then the newest ingest.
CREATE OR REPLACE VIEW photometry_ranked AS
WITH measured AS (
    SELECT p.*, aperture_corrected(i.kind, p.method, i.options) AS aperture_corrected,
           false AS injection_corrected, NULL::VARCHAR AS correction_run
    FROM photometry p
    JOIN live_ingests i USING (ingest_id)
), corrected AS (
    SELECT c.* EXCLUDE (flux_njy, flux_err_njy, flux_corrected_njy, flux_err_corrected_njy, location_error_njy),
           c.flux_corrected_njy AS flux_njy, c.flux_err_corrected_njy AS flux_err_njy,
           true AS injection_corrected
    FROM photometry_injection_corrected c
    WHERE c.correction_run IS NOT NULL AND c.method = 'aperture'  -- psf corrections: not ranked yet
), candidates AS (
    SELECT *, abs(aperture_radius_arcsec - {final_aperture_radius_arcsec}) AS from_final
    FROM (SELECT * FROM measured UNION ALL BY NAME SELECT * FROM corrected)
)
-- aperture_corrected leaves as true/false (NULL, "not gccat aperture photometry", only ranks):
-- readers such as astropy's VOParquet one cannot take a boolean column with NULLs.
SELECT c.* EXCLUDE (from_final, aperture_corrected),
       coalesce(c.aperture_corrected, false) AS aperture_corrected,
       -- One DOUBLE so that choosing a row is a hash aggregate (arg_max), not a sort: the
       -- tier x 1e15, the nearness to the final radius in 0.5 mas steps x 1e10 (< 2e14), then
       -- the commit time in epoch seconds (< 1e10); below 2^53 every second counts.
       CASE WHEN c.method = 'catalog' THEN 6
            WHEN c.aperture_corrected AND c.from_final < {radius_match_arcsec}
                THEN 4 + c.injection_corrected::INT
            WHEN c.aperture_corrected THEN 2 + c.injection_corrected::INT
            WHEN c.aperture_corrected IS NULL THEN 1
            ELSE 0 END * 1e15
       + coalesce(2 * (9999 - least(round(c.from_final * 1000), 9999))
                  + (c.aperture_radius_arcsec > {final_aperture_radius_arcsec})::INT, 0) * 1e10
       + epoch(i.committed_at) AS preference
FROM candidates c
JOIN live_ingests i USING (ingest_id);
