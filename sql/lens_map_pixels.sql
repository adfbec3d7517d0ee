-- Lens-map pixels: model, quantity, ix, iy, ICRS position and value (derived maps included).
CREATE OR REPLACE VIEW lens_map_pixels AS FROM live_rows('raw_lens_map_pixels');
