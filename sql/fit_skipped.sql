-- Objects a fit run selected but did not fit, with their usable bands and the reason (e.g.
-- fewer usable bands than the fit's free parameters, --min-bands).
CREATE OR REPLACE VIEW fit_skipped AS FROM live_rows('raw_fit_skipped');
