-- Injected sources: position, aperture radius (arcsec), flux in and out (nJy), error, recovered.
CREATE OR REPLACE VIEW injection_sources AS FROM live_rows('raw_injection_sources');
