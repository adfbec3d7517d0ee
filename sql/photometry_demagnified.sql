-- Photometry corrected for lensing magnification per lens model: flux / |mu| (nJy), intrinsic
-- AB magnitude, at any |mu|; NULL where the source is off the map or mu_undefined (so close
-- to a critical curve that the map does not define mu; see lens_at_detections). Single models
-- only: realisations of an ensemble are combined in the ensemble view of this one.
CREATE OR REPLACE VIEW photometry_demagnified AS
SELECT p.detection_id, p.field_id, l.model_id, p.band, p.method, l.mu, l.mu_undefined,
       p.flux_njy, p.flux_err_njy,
       CASE WHEN NOT l.mu_undefined THEN p.flux_njy / abs(l.mu) END AS flux_intrinsic_njy,
       CASE WHEN NOT l.mu_undefined THEN p.flux_err_njy / abs(l.mu) END AS flux_err_intrinsic_njy,
       flux_to_abmag(flux_intrinsic_njy) AS mag_intrinsic
FROM photometry_best p
JOIN lens_at_detections l USING (detection_id)
WHERE l.ensemble_id IS NULL;
