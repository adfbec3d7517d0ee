-- The box relation binned as the AS1063 study plots it: boxes of a correlation run grouped by
-- their GC count n_GC (one bin per integer count), with the mean kappa of the boxes in the bin,
-- its dispersion (sample standard deviation over boxes) and the error of the mean.
CREATE OR REPLACE VIEW box_relation_binned AS
SELECT run_id, field_id, n_gc,
       count(*) AS n_boxes,
       avg(n_per_arcsec2) AS n_per_arcsec2_mean,
       avg(kappa_mean) AS kappa_bin_mean,
       stddev_samp(kappa_mean) AS kappa_bin_std,
       stddev_samp(kappa_mean) / sqrt(count(*)) AS kappa_bin_sem
FROM box_stats
GROUP BY run_id, field_id, n_gc;
