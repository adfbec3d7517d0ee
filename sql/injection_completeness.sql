-- Completeness and flux bias against injected AB magnitude (0.25 mag bins) per run, band and
-- aperture radius: injections, recovered fraction, median and scatter of flux_out/flux_in - 1.
CREATE OR REPLACE VIEW injection_completeness AS
SELECT run_id, band, aperture_radius_arcsec,
       floor(flux_to_abmag(flux_in_njy) * 4) / 4 + 0.125 AS mag_in,
       count(*) AS n_injected,
       count(*) FILTER (WHERE recovered) AS n_recovered,
       count(*) FILTER (WHERE recovered) / count(*) AS completeness,
       median(flux_out_njy / flux_in_njy - 1) AS median_flux_bias,
       mad(flux_out_njy / flux_in_njy - 1) * 1.4826 AS flux_bias_scatter
FROM injection_sources
GROUP BY ALL
ORDER BY run_id, band, aperture_radius_arcsec, mag_in;
