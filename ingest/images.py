"""Read FITS mosaics (JWST i2d, HST drz, plain images) with their error/weight and flux units."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from catalog import bands as bandreg
from catalog.errors import GccatError

_ARCSEC_PER_RAD = 206264.80624709636


@dataclass
class Image:
    """A science image on its WCS grid with its noise and the factor from its units to nJy."""

    path: Path
    data: np.ndarray            # (ny, nx) float64, NaN where there is no data
    error: np.ndarray | None    # 1-sigma per pixel, image units
    weight: np.ndarray | None   # inverse variance (0 = no data)
    wcs: object
    header: object
    band: str
    pixel_scale_arcsec: float
    njy_per_unit: float         # flux in nJy = value in image units x njy_per_unit
    sha256: str


def njy_per_unit(header, pixel_scale_arcsec: float, zeropoint_ab: float | None = None) -> float:
    """Factor from image units to nJy: from ``--zeropoint`` (AB), BUNIT or PHOTFNU.

    Handles MJy/sr (JWST), nJy/uJy/mJy/Jy per pixel, and count rates with PHOTFNU (HST, Jy
    per count/s); anything else needs an AB zeropoint.
    """
    if zeropoint_ab is not None:
        return float(10 ** (-0.4 * (zeropoint_ab - 31.4)))
    bunit = str(header.get("BUNIT", "")).strip().lower().replace(" ", "")
    per_pix = {"njy": 1.0, "ujy": 1e3, "microjy": 1e3, "mjy": 1e6, "jy": 1e9}
    if bunit in ("mjy/sr", "mjy/steradian"):
        return 1e15 * (pixel_scale_arcsec / _ARCSEC_PER_RAD) ** 2
    if bunit.removesuffix("/pixel").removesuffix("/pix") in per_pix:
        return per_pix[bunit.removesuffix("/pixel").removesuffix("/pix")]
    if "PHOTFNU" in header and float(header["PHOTFNU"]) > 0:
        return float(header["PHOTFNU"]) * 1e9
    raise GccatError(f"image unit BUNIT={header.get('BUNIT')!r} is not MJy/sr, a Jansky unit or "
                     "a count rate with PHOTFNU; give --zeropoint (AB mag of 1 image unit)")


def _open(path: Path):
    from astropy.io import fits

    try:
        return fits.open(path, memmap=False)
    except (OSError, ValueError) as exc:
        raise GccatError(f"cannot read this FITS image: {exc}", file=path) from None


def _image_hdu(hdul, path: Path, name: str | None = None):
    if name and name in hdul:
        return hdul[name]
    for h in hdul:
        if h.data is not None and getattr(h.data, "ndim", 0) == 2 and h.is_image:
            return h
    raise GccatError("no 2-D image in the file", file=path)


def read_image(path: str | os.PathLike, *, band: str | None = None,
               weight_path: str | os.PathLike | None = None,
               error_path: str | os.PathLike | None = None,
               zeropoint_ab: float | None = None) -> Image:
    """Read a science image, its error or weight (extensions ERR/WHT or separate files), band."""
    from astropy.wcs import WCS
    from astropy.wcs.utils import proj_plane_pixel_scales

    from catalog.lake import sha256_file

    path = Path(path)
    if not path.is_file():
        raise GccatError("no such file", file=path)
    with _open(path) as hdul:
        try:
            sci = _image_hdu(hdul, path, "SCI")
            data = np.array(sci.data, dtype=np.float64)
            header = sci.header.copy()
            for key in ("BUNIT", "PHOTFNU", "FILTER", "PUPIL"):  # JWST keeps these in the primary
                if key not in header and key in hdul[0].header:
                    header[key] = hdul[0].header[key]
            error = np.array(hdul["ERR"].data, float) if "ERR" in hdul else None
            weight = np.array(hdul["WHT"].data, float) if "WHT" in hdul else None
        except (TypeError, ValueError) as exc:  # truncated data
            raise GccatError(f"cannot read this FITS image (truncated?): {exc}", file=path) from None
    if error_path:
        with _open(Path(error_path)) as h:
            error = np.array(_image_hdu(h, Path(error_path)).data, float)
    if weight_path:
        with _open(Path(weight_path)) as h:
            weight = np.array(_image_hdu(h, Path(weight_path)).data, float)
    for name, arr in (("error", error), ("weight", weight)):
        if arr is not None and arr.shape != data.shape:
            raise GccatError(f"the {name} map has shape {arr.shape}, the image {data.shape}",
                             file=path)
    wcs = WCS(header).celestial
    if not wcs.has_celestial:
        raise GccatError("the image has no celestial WCS", file=path)
    scale = float(np.mean(proj_plane_pixel_scales(wcs)) * 3600)
    name = band or header.get("FILTER")
    if not name or bandreg.lookup(str(name).strip()) is None:
        raise GccatError(f"unknown band {name!r}; give --band (e.g. F150W)", file=path)
    return Image(path, data, error, weight, wcs, header, bandreg.lookup(str(name).strip()).band,
                 scale, njy_per_unit(header, scale, zeropoint_ab), sha256_file(path))
