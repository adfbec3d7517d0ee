-- Injection-recovery runs: image (and checksum), PSF, mode, fluxes, locations, aperture radii, seed.
CREATE OR REPLACE VIEW injection_runs AS FROM live_rows('raw_injection_runs');
