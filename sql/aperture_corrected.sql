-- Macro aperture_corrected(kind, method, options) of a photometry row and its ingest: true when
-- it is gccat aperture photometry measured with the PSF aperture correction (a total flux),
-- false when measured without a PSF (a background-subtracted aperture sum), NULL when it is
-- not gccat aperture photometry. Older gccat recorded only the PSF path in the options.
CREATE OR REPLACE MACRO aperture_corrected(kind, method, options) AS
CASE WHEN kind = 'photometry' AND method = 'aperture' THEN
    coalesce(TRY_CAST(json_extract_string(options, '$.aperture_corrected') AS BOOLEAN),
             json_extract_string(options, '$.psf') IS NOT NULL)
END;
