-- Posterior summaries per object and parameter: 16/50/84 percentiles, MAP, chi2, bands.
CREATE OR REPLACE VIEW fit_posteriors AS FROM live_rows('raw_fit_posteriors');
