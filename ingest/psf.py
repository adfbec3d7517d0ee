"""From images to PSFs in the lake: ``gccat psf build`` and ``gccat psf match``.

Each function reads FITS files (:mod:`ingest.images`), calls the array code of
:mod:`catalog.images.epsf` and :mod:`catalog.images.matching`, writes the PSF or kernel FITS
file (parameters in its header) and records it in one lake transaction (``psf_models``,
``psf_kernels``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from catalog.checks import check_name, check_number, check_numbers
from catalog.constants import APERTURE_RADII_ARCSEC
from catalog.errors import GccatError
from catalog.files import sha256_file
from catalog.lake import IngestKind, Lake, new_ingest_id
from catalog.lake.schemas import PSF_KERNELS, PSF_MODELS
from ingest.pointsources import _catalog_positions, _read_psf, check_apertures

#: Cutouts from 0.1" to 10" a side; magnitudes within [10, 40] AB; r_h cut up to 50 px.
CUTOUT_RANGE_ARCSEC = (0.1, 10.0)
MAX_RH_PIX = 50.0
MAX_OVERSAMPLING = 8


def _error_map(image):
    """The image's 1-sigma error map: its ERR, else 1/sqrt of its weight, else None."""
    if image.error is not None or image.weight is None:
        return image.error
    w = image.weight
    with np.errstate(divide="ignore"):
        return np.where(w > 0, 1 / np.sqrt(np.where(w > 0, w, 1)), np.inf)


def _check_build_options(mag_range, r_h_max_pix, cutout_arcsec, oversampling, min_stars):
    lo, hi = check_numbers(mag_range, "--mag-range", n_min=2, n_max=2, lo=10, hi=40)
    if not lo < hi:
        raise GccatError(f"--mag-range must be two increasing AB magnitudes LO,HI, not {lo:g},{hi:g}")
    r_h_max_pix = check_number(r_h_max_pix, "--rh-max", lo=0, lo_open=True, hi=MAX_RH_PIX)
    cutout_arcsec = check_number(
        cutout_arcsec, "--cutout", lo=CUTOUT_RANGE_ARCSEC[0], hi=CUTOUT_RANGE_ARCSEC[1]
    )
    oversampling = check_number(oversampling, "--oversampling", lo=1, hi=MAX_OVERSAMPLING, integer=True)
    min_stars = check_number(min_stars, "--min-stars", lo=3, hi=10_000, integer=True)
    return (lo, hi), r_h_max_pix, cutout_arcsec, oversampling, min_stars


def run_psf_build(
    lake: Lake,
    image_path,
    out_path,
    *,
    field_id: str,
    band: str | None = None,
    catalog: str | None = None,
    mag_range: Sequence[float] = (25.0, 27.0),
    r_h_max_pix: float = 3.0,
    cutout_arcsec: float = 2.0,
    oversampling: int = 2,
    min_stars: int = 5,
    zeropoint_ab: float | None = None,
    wings: str = "moffat",
    plot: bool = False,
    command: str = "",
    progress=None,
) -> dict:
    """Build an empirical PSF from an image's stars, write it as FITS and record it.

    Stars are the sources (of ``catalog`` in the lake, else the image's own segments) with
    ``mag_range`` AB magnitudes and half-light radius below ``r_h_max_pix``, isolated in their
    ``cutout_arcsec`` cutout (converted to pixels with the WCS pixel scale, made odd); see
    :func:`catalog.images.epsf.empirical_psf`. ``wings="moffat"`` replaces the stack where it
    is noise by the Moffat fitted to it (:func:`catalog.images.epsf.moffat_wings`); the radius
    is in the FITS header (WINGRAD) and the row's ``params``.

    Returns
    -------
    dict
        The ``psf_models`` row (and ``plot``, the PNG written, if any).
    """
    from astropy.io import fits

    from catalog.images.epsf import check_wings, empirical_psf, psf_fwhm_pix
    from catalog.images.psf import growth_curve
    from ingest.images import read_image

    step = progress or (lambda stage, frac: None)
    check_name(field_id, "field id")
    if catalog is not None:
        check_name(catalog, "catalog name")
    mag_range, r_h_max_pix, cutout_arcsec, oversampling, min_stars = _check_build_options(
        mag_range, r_h_max_pix, cutout_arcsec, oversampling, min_stars
    )
    check_wings(wings)
    step("reading", 0.05)
    image = read_image(image_path, band=band, zeropoint_ab=zeropoint_ab)
    scale = image.pixel_scale_arcsec
    cutout_pix = int(round(cutout_arcsec / scale)) | 1
    if cutout_pix > min(image.data.shape):
        raise GccatError(
            f'--cutout {cutout_arcsec:g}" is {cutout_pix} px, larger than the image', file=image.path
        )
    x = y = None
    if catalog is not None:
        _, x, y = _catalog_positions(lake, field_id, catalog, image)
    bad = ~np.isfinite(image.data)
    if image.weight is not None:
        bad |= ~(image.weight > 0)
    error = _error_map(image)
    step("selecting and stacking stars", 0.2)
    epsf, cand = empirical_psf(
        np.where(bad, np.nan, image.data) * image.njy_per_unit,
        cutout_pix=cutout_pix,
        mag_range=mag_range,
        r_h_max_pix=r_h_max_pix,
        oversampling=oversampling,
        min_stars=min_stars,
        mask=bad,
        error=None if error is None else error * image.njy_per_unit,
        x=x,
        y=y,
        wings=wings,
    )
    fwhm = psf_fwhm_pix(epsf.psf)
    wing_radius = epsf.wing_radius_pix if np.isfinite(epsf.wing_radius_pix) else None
    radii_arcsec = np.array(APERTURE_RADII_ARCSEC)
    ee = growth_curve(epsf.psf, radii_arcsec / scale)
    out_path = Path(out_path)
    hdr = fits.Header()
    for key, value, comment in (
        ("BAND", image.band, "band of the image"),
        ("PIXSCALE", scale, "arcsec per pixel (image WCS)"),
        ("NSTARS", epsf.n_stars, "stars stacked"),
        ("MAGMIN", mag_range[0], "brightest star, AB mag"),
        ("MAGMAX", mag_range[1], "faintest star, AB mag"),
        ("RHMAX", r_h_max_pix, "half-light radius cut, pix"),
        ("CUTOUT", cutout_arcsec, "cutout side, arcsec"),
        ("CUTPIX", cutout_pix, "cutout side, pix"),
        ("OVERSAMP", oversampling, "EPSFBuilder oversampling"),
        ("FWHMPIX", round(fwhm, 5), "FWHM, pix (Moffat fit)"),
        ("FLUXRAD", round(epsf.flux_radius_pix, 4), "star normalisation aperture radius, pix"),
        ("WINGS", wings, "wing model beyond WINGRAD"),
        ("WINGRAD", -1.0 if wing_radius is None else round(wing_radius, 3), "Moffat beyond, pix; -1 none"),
        ("IMAGE", image.path.name, "image the stars come from"),
        ("ORIGIN", "gccat psf build", "photutils EPSFBuilder"),
    ):
        hdr[key] = (value, comment)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fits.PrimaryHDU(epsf.psf, hdr).writeto(out_path, overwrite=True)
    ingest_id = new_ingest_id()
    row = {
        "run_id": ingest_id,
        "field_id": field_id,
        "band": image.band,
        "image": str(image.path.resolve()),
        "image_sha256": image.sha256,
        "catalog": catalog,
        "psf_path": str(out_path.resolve()),
        "psf_sha256": sha256_file(out_path),
        "pixel_scale_arcsec": scale,
        "cutout_arcsec": cutout_arcsec,
        "cutout_pix": cutout_pix,
        "oversampling": oversampling,
        "mag_min": mag_range[0],
        "mag_max": mag_range[1],
        "r_h_max_pix": r_h_max_pix,
        "n_candidates": int(cand.x.size),
        "n_stars": epsf.n_stars,
        "fwhm_pix": fwhm,
        "fwhm_arcsec": fwhm * scale,
        "ee_radii_arcsec": radii_arcsec.tolist(),
        "ee": ee.tolist(),
        "converged": epsf.converged,
        "params": json.dumps(
            {
                "min_stars": min_stars,
                "n_excluded": epsf.n_excluded,
                "zeropoint_ab": zeropoint_ab,
                "flux_radius_pix": epsf.flux_radius_pix,
                "wings": wings,
                "wing_radius_pix": wing_radius,
            }
        ),
        "ingest_id": ingest_id,
    }
    step("writing", 0.9)
    with lake.transaction(IngestKind.PSF_MODEL, ingest_id=ingest_id) as tx:
        tx.append("psf_models", pa.Table.from_pylist([row], schema=PSF_MODELS))
        tx.commit(
            name=f"{image.band}/psf",
            field_id=field_id,
            source_path=image.path.resolve(),
            sha256=image.sha256,
            n_rows=1,
            command=command,
            options={"run": "psf build", "psf": row["psf_path"]},
        )
    if plot:
        from catalog.plots.psf import plot_psf

        row["plot"] = plot_psf(epsf.psf, scale, out_path.with_suffix(".png"), cand=cand)
    step("done", 1.0)
    return row


def _pixscale(header, path, option):
    v = header.get("PIXSCALE")
    if v is None:
        return None
    return check_number(v, f"PIXSCALE of the {option} file", lo=0, lo_open=True, hi=10)


def _match_scale(psf_path, target_path, pixel_scale_arcsec, image) -> float:
    """The pixel scale of the PSFs (PIXSCALE keywords, --pixel-scale, the image), checked to agree."""
    from catalog.images.fitsio import read_fits_image

    s1 = _pixscale(read_fits_image(psf_path, "--psf file")[1], psf_path, "--psf")
    s2 = _pixscale(read_fits_image(target_path, "--target file")[1], target_path, "--target")
    if s1 is not None and s2 is not None and abs(s1 / s2 - 1) > 1e-3:
        raise GccatError(
            f"the PSFs have different pixel scales ({s1:g} and {s2:g} arcsec); resample one first"
        )
    scale = s1 or s2
    if pixel_scale_arcsec is not None:
        pixel_scale_arcsec = check_number(pixel_scale_arcsec, "--pixel-scale", lo=0, lo_open=True, hi=10)
        if scale is not None and abs(scale / pixel_scale_arcsec - 1) > 1e-3:
            raise GccatError(
                f"--pixel-scale {pixel_scale_arcsec:g} differs from the PSFs' PIXSCALE {scale:g}"
            )
        scale = pixel_scale_arcsec
    if image is not None:
        if scale is not None and abs(image.pixel_scale_arcsec / scale - 1) > 1e-3:
            raise GccatError(
                f"the image's pixel scale {image.pixel_scale_arcsec:g}\" differs from the PSFs' {scale:g}\"",
                file=image.path,
            )
        scale = scale or image.pixel_scale_arcsec
    if scale is None:
        raise GccatError("the PSFs have no PIXSCALE keyword: give --pixel-scale (arcsec per pixel)")
    return scale


def _write_matched(image, kernel, hdr, out_path, out_image_path) -> None:
    """The image and its error map convolved with the kernel, as SCI and ERR extensions."""
    from astropy.io import fits

    from catalog.images.matching import convolve_image

    data, data_err, _ = convolve_image(image.data, kernel, error=_error_map(image))
    h = image.header.copy()
    for key in ("WALPHA", "WBETA", "MAXDEV"):
        h[key] = hdr[key]
    h["PSFMATCH"] = (Path(out_path).name, "kernel convolved with")
    hdus = [fits.PrimaryHDU(), fits.ImageHDU(data, h, name="SCI")]
    if data_err is not None:
        hdus.append(fits.ImageHDU(data_err, h, name="ERR"))
    fits.HDUList(hdus).writeto(out_image_path, overwrite=True)


def run_psf_match(
    lake: Lake,
    psf_path,
    target_path,
    out_path,
    *,
    field_id: str | None = None,
    aperture_radii_arcsec: Sequence[float] = APERTURE_RADII_ARCSEC,
    pixel_scale_arcsec: float | None = None,
    regularization: float = 1e-4,
    image_path=None,
    out_image_path=None,
    band: str | None = None,
    plot: bool = False,
    command: str = "",
    progress=None,
) -> dict:
    """A matching kernel from ``psf_path`` to the broader ``target_path``, written and recorded.

    The window of the kernel is optimised on the growth curves at ``aperture_radii_arcsec``
    (:func:`catalog.images.matching.match_psf`). The pixel scale is the PSFs' ``PIXSCALE``
    header keyword (written by ``gccat psf build``; both must agree), else
    ``pixel_scale_arcsec``. With ``image_path`` the image (and its ERR or weight) is convolved
    (:func:`catalog.images.matching.convolve_image`) and written to ``out_image_path``.

    Returns
    -------
    dict
        The ``psf_kernels`` row (and ``plot``, the PNG written, if any).
    """
    from astropy.io import fits

    from catalog.images.matching import match_psf

    step = progress or (lambda stage, frac: None)
    if field_id is not None:
        check_name(field_id, "field id")
    radii_arcsec = check_apertures(aperture_radii_arcsec)
    regularization = check_number(regularization, "--regularization", lo=0, hi=1, hi_open=True)
    if (image_path is None) != (out_image_path is None):
        raise GccatError("--image and --out-image go together")
    src = _read_psf(psf_path, "--psf")
    tgt = _read_psf(target_path, "--target")
    image = None
    if image_path is not None:
        from ingest.images import read_image

        image = read_image(image_path, band=band)
    scale = _match_scale(psf_path, target_path, pixel_scale_arcsec, image)
    step("optimising the window", 0.1)
    k = match_psf(src, tgt, radii_arcsec / scale, regularization=regularization)
    out_path = Path(out_path)
    hdr = fits.Header()
    for key, value, comment in (
        ("PIXSCALE", scale, "arcsec per pixel"),
        ("WINDOW", "SplitCosineBell", "photutils window"),
        ("WALPHA", round(k.alpha, 6), "window taper width"),
        ("WBETA", round(k.beta, 6), "window inner flat diameter"),
        ("REGULAR", k.regularization, "OTF threshold"),
        ("MAXDEV", float(k.max_deviation), "max |EE_matched/EE_target - 1|"),
        ("RADII", ",".join(f"{r:g}" for r in radii_arcsec), "aperture radii, arcsec"),
        ("SRCPSF", Path(psf_path).name, "PSF matched from"),
        ("TGTPSF", Path(target_path).name, "PSF matched to"),
        ("ORIGIN", "gccat psf match", "photutils make_kernel"),
    ):
        hdr[key] = (value, comment)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fits.PrimaryHDU(k.kernel, hdr).writeto(out_path, overwrite=True)
    if image is not None:
        step("convolving the image", 0.6)
        _write_matched(image, k.kernel, hdr, out_path, out_image_path)
    ingest_id = new_ingest_id()
    row = {
        "run_id": ingest_id,
        "field_id": field_id,
        "source_psf": str(Path(psf_path).resolve()),
        "source_psf_sha256": sha256_file(psf_path),
        "target_psf": str(Path(target_path).resolve()),
        "target_psf_sha256": sha256_file(target_path),
        "kernel_path": str(out_path.resolve()),
        "kernel_sha256": sha256_file(out_path),
        "pixel_scale_arcsec": scale,
        "window": "SplitCosineBellWindow",
        "window_alpha": k.alpha,
        "window_beta": k.beta,
        "regularization": k.regularization,
        "aperture_radii_arcsec": radii_arcsec.tolist(),
        "ee_source": k.ee_source.tolist(),
        "ee_target": k.ee_target.tolist(),
        "ee_matched": k.ee_matched.tolist(),
        "max_ee_deviation": k.max_deviation,
        "image": None if image is None else str(image.path.resolve()),
        "matched_image": None if out_image_path is None else str(Path(out_image_path).resolve()),
        "params": json.dumps({"band": None if image is None else image.band}),
        "ingest_id": ingest_id,
    }
    step("writing", 0.9)
    with lake.transaction(IngestKind.PSF_KERNEL, ingest_id=ingest_id) as tx:
        tx.append("psf_kernels", pa.Table.from_pylist([row], schema=PSF_KERNELS))
        tx.commit(
            name=f"{Path(psf_path).stem}_to_{Path(target_path).stem}",
            field_id=field_id,
            source_path=Path(psf_path).resolve(),
            sha256=row["source_psf_sha256"],
            n_rows=1,
            command=command,
            options={"run": "psf match", "kernel": row["kernel_path"]},
        )
    if plot:
        from catalog.plots.psf import plot_growth_curves

        row["plot"] = plot_growth_curves(k, scale, out_path.with_suffix(".png"))
    step("done", 1.0)
    return row
