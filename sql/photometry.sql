-- Photometry of live ingests, one row per source, band and method (fluxes in nJy).
CREATE OR REPLACE VIEW photometry AS FROM live_rows('raw_photometry');
