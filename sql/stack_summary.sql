-- The latest stack per field and band (gccat stack): sources stacked, selection, PSF-fit flux
-- and its error (nJy, with the AB magnitude), FWHM of the stack vs its PSF's (arcsec) and the
-- largest profile deviation; the stack's FITS file and the psf build run it was fitted with.
CREATE OR REPLACE VIEW stack_summary AS
SELECT s.field_id, s.band, s.run_id, s.n_sources, s.n_selected, s.catalog, s.selection, s.combine,
       s.annulus_in_pix, s.annulus_out_pix, s.fit_flux_njy, s.fit_flux_err_njy,
       flux_to_abmag(s.fit_flux_njy) AS fit_mag_ab, s.fwhm_stack_arcsec, s.fwhm_psf_arcsec,
       s.fwhm_ratio, s.profile_max_dev, s.psf_run_id, s.stack_path, i.committed_at
FROM stacks s JOIN ingests i USING (ingest_id)
QUALIFY row_number() OVER (PARTITION BY s.field_id, s.band ORDER BY i.committed_at DESC) = 1;
