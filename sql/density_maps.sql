-- Smoothed GC density rho_gc, kappa and residual kappa - beta rho_gc per pixel of a correlation run.
CREATE OR REPLACE VIEW density_maps AS FROM live_rows('raw_density_maps');
