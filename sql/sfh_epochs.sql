-- Non-parametric SFHs: mass formed per epoch with 16/84 percentiles from perturbed refits.
CREATE OR REPLACE VIEW sfh_epochs AS FROM live_rows('raw_sfh_epochs');
