-- Photometry corrected for magnification over an ensemble of lens-model realisations:
-- flux / |mu| (nJy) at the median |mu| and its 16/84th percentiles over the realisations
-- (flux_intrinsic_p16 = flux / |mu|_p84: a monotone map of the percentiles), the flux error
-- at the median |mu|, and the intrinsic AB magnitude; NULL where no realisation defines mu.
CREATE OR REPLACE VIEW photometry_demagnified_ensemble AS
SELECT p.detection_id, p.field_id, e.ensemble_id, p.band, p.method, e.n_realisations,
       e.abs_mu_p16, e.abs_mu_p50, e.abs_mu_p84, p.flux_njy, p.flux_err_njy,
       p.flux_njy / e.abs_mu_p50 AS flux_intrinsic_njy,
       p.flux_njy / e.abs_mu_p84 AS flux_intrinsic_p16_njy,
       p.flux_njy / e.abs_mu_p16 AS flux_intrinsic_p84_njy,
       p.flux_err_njy / e.abs_mu_p50 AS flux_err_intrinsic_njy,
       flux_to_abmag(flux_intrinsic_njy) AS mag_intrinsic
FROM photometry_best p
JOIN lens_ensemble_at_detections e USING (detection_id)
WHERE e.n_realisations > 0;
