-- Lens quantities at every detection for every lens model of its field, rescaled to the
-- source redshift: kappa, gamma, mu, tangential eigenvalue; off_map; mu_pixel_change (largest
-- fractional change of mu one map pixel away, inf where a critical curve is closer than a
-- pixel) and mu_undefined (mu_pixel_change above the connection's criterion, default 1).
-- Realisations of an ensemble are rows too (ensemble_id set), combined in its ensemble view.
CREATE OR REPLACE VIEW lens_at_detections AS
WITH m AS (
    SELECT model_id, field_id, any_value(dls_ds) AS dls_ds_norm,
           any_value(field_id || '/' || ensemble) AS ensemble_id
    FROM lens_models WHERE quantity = 'kappa' GROUP BY model_id, field_id
)
SELECT d.detection_id, d.field_id, d.catalog, d.source_id, m.model_id, m.ensemble_id, d.ra, d.dec, d.z,
       f.z_cluster,
       lens_value(m.model_id, 'kappa', d.ra, d.dec) AS kappa_map,
       lens_value(m.model_id, 'gamma', d.ra, d.dec) AS gamma_map,
       dls_ds(f.z_cluster, d.z) / m.dls_ds_norm AS dls_ds_scale,
       kappa_map * dls_ds_scale AS kappa,
       gamma_map * dls_ds_scale AS gamma,
       magnification(kappa, gamma) AS mu,
       1 - kappa - gamma AS lambda_t,
       kappa_map IS NULL AS off_map,
       lens_mu_pixel_change(m.model_id, d.ra, d.dec, dls_ds_scale) AS mu_pixel_change,
       coalesce(mu_pixel_change > {mu_pixel_change_max}, false) AS mu_undefined
FROM detections d
JOIN m USING (field_id)
LEFT JOIN fields f USING (field_id);
