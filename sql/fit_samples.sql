-- Posterior draws per object (age, log Z, A_V, log living and formed masses).
CREATE OR REPLACE VIEW fit_samples AS FROM live_rows('raw_fit_samples');
