"""Read FITS mosaics (JWST i2d, HST drz, plain images) with their error/weight and flux units."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from catalog import bands as bandreg
from catalog.checks import check_number
from catalog.constants import AB_ZEROPOINT_NJY
from catalog.errors import GccatError
from catalog.images.fitsio import _FITS_ERRORS, _image_hdu, celestial_wcs, open_fits, read_fits_image
from catalog.units import UnitError, parse_flux_unit

#: AB magnitudes of one image unit that ``--zeropoint`` accepts: 8.9 is 1 Jy, 31.4 is 1 nJy;
#: outside [0, 40] the unit would be above 3.6 kJy or below 1e-3 nJy, which no image has.
ZEROPOINT_RANGE = (0.0, 40.0)


@dataclass
class Image:
    """A science image on its WCS grid with its noise and the factor from its units to nJy."""

    path: Path
    data: np.ndarray  # (ny, nx) float64, NaN where there is no data
    error: np.ndarray | None  # 1-sigma per pixel, image units
    weight: np.ndarray | None  # inverse variance (0 = no data)
    wcs: object
    header: object
    band: str | None  # None only with read_image(band_required=False)
    pixel_scale_arcsec: float
    njy_per_unit: float  # flux in nJy = value in image units x njy_per_unit
    sha256: str


def check_zeropoint(zeropoint_ab: float | None) -> float | None:
    """``--zeropoint`` (AB mag of one image unit) inside :data:`ZEROPOINT_RANGE`, or None."""
    lo, hi = ZEROPOINT_RANGE
    return check_number(zeropoint_ab, "--zeropoint", lo=lo, hi=hi, allow_none=True)


def njy_per_unit(header, pixel_scale_arcsec: float, zeropoint_ab: float | None = None, path=None) -> float:
    """Factor from image units to nJy per pixel: from ``--zeropoint`` (AB), BUNIT or PHOTFNU.

    BUNIT is read with astropy units (case-sensitive: ``MJy/sr`` is 1e15 times ``mJy/sr``):
    a flux density (``nJy``, ``Jy``, ``10 nJy``) or flux per pixel (``nJy/pix``) is per pixel;
    a surface brightness (``MJy/sr``, JWST; ``uJy/arcsec2``) is multiplied by the pixel's
    solid angle, ``pixel_scale_arcsec**2``; a count rate (``electrons/s``, HST) or a missing
    BUNIT is converted with PHOTFNU (Jy per count/s).

    Parameters
    ----------
    header : astropy.io.fits.Header
        The science header (with BUNIT/PHOTFNU of the primary header if it has none).
    pixel_scale_arcsec : float
        Pixel side (arcsec).
    zeropoint_ab : float, optional
        AB magnitude of one image unit; overrides the header.
    path : path, optional
        The image, for messages.

    Raises
    ------
    GccatError
        Naming BUNIT and the file, for a unit astropy cannot read, an ambiguous case
        (``MJY/SR``), counts that are not a rate, a count rate without PHOTFNU, or anything
        that is not a flux: give ``--zeropoint`` then.
    """
    zeropoint_ab = check_zeropoint(zeropoint_ab)
    if zeropoint_ab is not None:
        return float(10 ** (-0.4 * (zeropoint_ab - AB_ZEROPOINT_NJY)))
    bunit = header.get("BUNIT")
    text = "" if bunit is None else str(bunit).strip()
    try:
        photfnu = float(header.get("PHOTFNU", "nan"))
    except (TypeError, ValueError):
        photfnu = np.nan
    has_photfnu = bool(np.isfinite(photfnu) and photfnu > 0)
    hint = "give --zeropoint (AB mag of 1 image unit)"
    if not text:
        if has_photfnu:  # HST: PHOTFNU converts count rates, the images' unit
            return photfnu * 1e9
        raise GccatError(f"the image has no BUNIT and no PHOTFNU: its unit is unknown; {hint}", file=path)
    try:
        fu = parse_flux_unit(text)
    except UnitError as exc:
        raise GccatError(f"BUNIT = {bunit!r}: {exc}; {hint}", file=path) from None
    if fu.kind in ("flux", "per_pixel", "surface_brightness"):
        return fu.njy_per_pixel(pixel_scale_arcsec**2)
    if fu.kind == "count_rate":
        if has_photfnu:
            return photfnu * 1e9
        raise GccatError(
            f"BUNIT = {bunit!r} is a count rate and the header has no PHOTFNU; {hint}", file=path
        )
    if fu.kind == "counts":
        raise GccatError(
            f"BUNIT = {bunit!r} is counts, not a count rate (PHOTFNU is per count/s); {hint}", file=path
        )
    raise GccatError(
        f"BUNIT = {bunit!r} is {'a magnitude' if fu.kind == 'mag' else fu.kind}, not "
        f"a flux per pixel or per solid angle; {hint}",
        file=path,
    )


def read_image(
    path: str | os.PathLike,
    *,
    band: str | None = None,
    weight_path: str | os.PathLike | None = None,
    error_path: str | os.PathLike | None = None,
    zeropoint_ab: float | None = None,
    band_required: bool = True,
) -> Image:
    """Read a science image, its error or weight (extensions ERR/WHT or separate files), band.

    ``band_required=False`` (an image read for its light, not measured): an unknown or missing
    band leaves ``band`` None instead of being an error.

    Raises
    ------
    GccatError
        For a missing, damaged or truncated file, an image with no finite pixel (or no pixel
        of positive weight), error/weight maps of another shape, an unknown or missing WCS
        projection, an unknown band or a ``--zeropoint`` outside :data:`ZEROPOINT_RANGE`.
    """
    from catalog.files import sha256_file

    check_zeropoint(zeropoint_ab)
    path = Path(path)
    with open_fits(path) as hdul:
        try:
            sci = _image_hdu(hdul, path, "SCI")
            data = np.array(sci.data, dtype=np.float64)
            header = sci.header.copy()
            for key in ("BUNIT", "PHOTFNU", "FILTER", "PUPIL"):  # JWST keeps these in the primary
                if key not in header and key in hdul[0].header:
                    header[key] = hdul[0].header[key]
            error = np.array(hdul["ERR"].data, float) if "ERR" in hdul else None
            weight = np.array(hdul["WHT"].data, float) if "WHT" in hdul else None
        except _FITS_ERRORS as exc:  # truncated data
            raise GccatError(f"cannot read this FITS image (truncated?): {exc}", file=path) from None
    if error_path:
        error = read_fits_image(error_path, "--error file")[0]
    if weight_path:
        weight = read_fits_image(weight_path, "--weight file")[0]
    for name, arr, given in (("error", error, error_path), ("weight", weight, weight_path)):
        if arr is not None and arr.shape != data.shape:
            where = f"the --{name} file" if given else f"the {name.upper()[:3]} extension"
            raise GccatError(f"{where} has shape {arr.shape}, the image {data.shape}", file=given or path)
    has_data = np.isfinite(data)
    if weight is not None:
        has_data &= weight > 0
    if not has_data.any():
        raise GccatError(
            "the image has no pixel with data (all NaN"
            + (" or of zero weight)" if weight is not None else ")"),
            file=path,
        )
    wcs, scale = celestial_wcs(header, path)
    name = band or header.get("FILTER")
    known = bool(name) and bandreg.lookup(str(name).strip()) is not None
    if not known and band_required:
        raise GccatError(
            f"unknown band {name!r} (FILTER keyword); name the image's band with "
            "--band (photometry, inject) or --bands (detect), e.g. F150W",
            file=path,
        )
    return Image(
        path,
        data,
        error,
        weight,
        wcs,
        header,
        bandreg.lookup(str(name).strip()).band if known else None,
        scale,
        njy_per_unit(header, scale, zeropoint_ab, path),
        sha256_file(path),
    )


def read_light_image(path: str | os.PathLike, zeropoint_ab: float | None = None):
    """An image read for its light profile (``gccat correlate --light-image``): surface
    brightness in nJy arcsec^-2 (from BUNIT, PHOTFNU or ``zeropoint_ab``), NaN where there is
    no data (or zero weight), on its own WCS.

    Returns
    -------
    catalog.runs.correlation.LightImage
    """
    from catalog.runs.correlation import LightImage

    img = read_image(path, zeropoint_ab=zeropoint_ab, band_required=False)
    sb = img.data * (img.njy_per_unit / img.pixel_scale_arcsec**2)
    if img.weight is not None:
        sb = np.where(img.weight > 0, sb, np.nan)
    return LightImage(sb, img.wcs, img.pixel_scale_arcsec, str(img.path), img.band)
