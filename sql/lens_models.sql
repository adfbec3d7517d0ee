-- Lens-model maps: one row per model and quantity, with normalisation (D_ls/D_s), WCS and shape.
CREATE OR REPLACE VIEW lens_models AS FROM live_rows('raw_lens_models');
