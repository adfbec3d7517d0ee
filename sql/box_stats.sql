-- Box statistics of a correlation run: GCs per arcsec^2 and mean kappa per box.
CREATE OR REPLACE VIEW box_stats AS FROM live_rows('raw_box_stats');
