"""FITS images and maps in, with one-line errors: open, first 2-D image, celestial WCS.

The format helpers shared by everything that reads a FITS image (science images in
:mod:`ingest.images`, PSFs, masks, weight and error maps): a damaged or truncated file, an
image that is not 2-D or a WCS without a known celestial projection is a
:class:`~catalog.errors.GccatError` naming the file, never a traceback or an astropy warning.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from catalog.errors import GccatError

# Errors astropy raises on damaged files (bad cards, short data, bad compression).
_FITS_ERRORS = (OSError, ValueError, TypeError, IndexError, KeyError, EOFError, MemoryError)


def open_fits(path: str | os.PathLike, what: str = "FITS image"):
    """Open a FITS file (data read on access, not memory-mapped).

    A missing, damaged or truncated file is a one-line :class:`GccatError` naming it: astropy
    only *warns* when a file is shorter than its headers say (and pads what is missing), so
    that warning is raised here as the error it is.
    """
    from astropy.io import fits
    from astropy.utils.exceptions import AstropyUserWarning

    path = Path(path)
    if not path.is_file():
        raise GccatError(f"no such {what}", file=path)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("error", message=".*truncated", category=AstropyUserWarning)
            hdul = fits.open(path, memmap=False, lazy_load_hdus=False)
    except AstropyUserWarning as w:
        raise GccatError(f"the {what} is truncated ({w})", file=path) from None
    except _FITS_ERRORS as exc:
        raise GccatError(f"cannot read this {what}: {exc}", file=path) from None
    return hdul


def _image_hdu(hdul, path: Path, name: str | None = None, what: str = "FITS image"):
    if name and name in hdul:
        h = hdul[name]
        if h.is_image and h.header.get("NAXIS", 0) == 2:
            return h
        raise GccatError(
            f"the {name} extension is not a 2-D image (NAXIS = {h.header.get('NAXIS')})", file=path
        )
    for h in hdul:
        if h.is_image and h.header.get("NAXIS", 0) == 2 and h.data is not None:
            return h
    raise GccatError(f"no 2-D image in the {what}", file=path)


def read_fits_image(path: str | os.PathLike, what: str = "FITS image"):
    """Data (float64) and header of the first 2-D image HDU of a file (a mask, a PSF, a weight
    map), with one-line errors naming ``what`` (e.g. ``"--psf file"``) and the file.
    """
    path = Path(path)
    with open_fits(path, what) as hdul:
        try:
            hdu = _image_hdu(hdul, path, what=what)
            return np.array(hdu.data, dtype=np.float64), hdu.header.copy()
        except _FITS_ERRORS as exc:  # data shorter than the header says, bad scaling
            raise GccatError(f"cannot read the data of this {what}: {exc}", file=path) from None


def celestial_wcs(header, path):
    """The 2-D celestial WCS of an image header (RA on pixel axis x, Dec on y), checked usable."""
    from astropy.wcs import WCS, FITSFixedWarning
    from astropy.wcs.utils import proj_plane_pixel_scales

    types = f"CTYPE1 = {header.get('CTYPE1')!r}, CTYPE2 = {header.get('CTYPE2')!r}"
    try:
        with warnings.catch_warnings():
            # WCSLIB reports the problem itself, as an exception below
            warnings.simplefilter("ignore", FITSFixedWarning)
            wcs = WCS(header).celestial
            ok = wcs.has_celestial and wcs.naxis == 2
            if ok:
                scale = float(np.mean(proj_plane_pixel_scales(wcs)) * 3600)
                ny, nx = header.get("NAXIS2", 1), header.get("NAXIS1", 1)
                probe = wcs.pixel_to_world_values((nx - 1) / 2, (ny - 1) / 2)
    except (ValueError, KeyError, TypeError, MemoryError, AttributeError) as exc:
        first = next((s.strip() for s in str(exc).splitlines()[1:] if s.strip()), str(exc).strip())
        raise GccatError(f"unusable WCS ({types}): {first}", file=path) from None
    if not ok:
        raise GccatError(
            f"the image has no celestial WCS ({types}; need RA---xxx and DEC--xxx with a known projection)",
            file=path,
        )
    if wcs.wcs.lng != 0 or wcs.wcs.lat != 1:
        raise GccatError(f"the WCS must have RA on axis 1 and Dec on axis 2 ({types})", file=path)
    if not (np.isfinite(scale) and scale > 0 and np.isfinite(probe).all()):
        raise GccatError(f"the WCS has no usable pixel scale ({types})", file=path)
    return wcs, scale
