-- GC-kappa correlation runs: parameters, beta, correlations, <kappa> = A n_GC^B fit, mass budget.
CREATE OR REPLACE VIEW correlation_runs AS FROM live_rows('raw_correlation_runs');
