-- Fit runs: kind (ssp, stack, sfh), selection, grids, error floor, scheduler, time, config.
CREATE OR REPLACE VIEW fit_runs AS FROM live_rows('raw_fit_runs');
