-- chi2 over age x metallicity (minimised over mass and A_V) of stacks, for chi2 maps.
CREATE OR REPLACE VIEW fit_chi2_maps AS FROM live_rows('raw_fit_chi2_maps');
