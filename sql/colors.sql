-- AB colours between bands adjacent in pivot wavelength, per detection, with 1-sigma errors.
CREATE OR REPLACE VIEW colors AS
WITH p AS (
    SELECT pb.detection_id, pb.field_id, pb.band, pb.flux_njy, pb.flux_err_njy, b.pivot_um
    FROM photometry_best pb
    JOIN bands b USING (band)
    WHERE NOT pb.is_upper_limit AND pb.flux_njy IS NOT NULL
), pairs AS (
    SELECT *,
           lead(band) OVER w AS band_red,
           lead(flux_njy) OVER w AS flux_red,
           lead(flux_err_njy) OVER w AS flux_err_red
    FROM p
    WINDOW w AS (PARTITION BY detection_id ORDER BY pivot_um)
)
SELECT detection_id, field_id, band AS band_blue, band_red,
       band || '-' || band_red AS color_name,
       flux_to_abmag(flux_njy) - flux_to_abmag(flux_red) AS color_ab,
       sqrt(flux_err_to_mag_err(flux_njy, flux_err_njy) ^ 2
            + flux_err_to_mag_err(flux_red, flux_err_red) ^ 2) AS color_err
FROM pairs
WHERE band_red IS NOT NULL;
