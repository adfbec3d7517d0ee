-- Cached SSP photometric grids: redshift, bands, spec, axes and fluxes per Msun formed.
CREATE OR REPLACE VIEW ssp_grids AS FROM live_rows('raw_ssp_grids');
