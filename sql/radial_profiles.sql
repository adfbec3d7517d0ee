-- Radial profiles of a correlation run: GC surface density (Poisson errors, background
-- subtracted), mean kappa and rho_gc per annulus.
CREATE OR REPLACE VIEW radial_profiles AS FROM live_rows('raw_radial_profiles');
