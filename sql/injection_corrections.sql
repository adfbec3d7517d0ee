-- Per source, band and aperture radius: intrinsic = c2 f^2 + c1 f + c0 of the measured flux f (nJy),
-- fitted to injections; or the biweight flux error of random injections.
CREATE OR REPLACE VIEW injection_corrections AS FROM live_rows('raw_injection_corrections');
