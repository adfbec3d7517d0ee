"""Lens-model maps on a sky grid: the :class:`LensMap` type and HFF FITS files.

Maps follow the Hubble Frontier Fields (HFF) products: one 2-D image per quantity, the quantity
in the file name (``..._kappa.fits``, ``..._x-arcsec-deflect.fits``), normalised to
D_ls/D_s = 1. Arrays are indexed ``data[iy, ix]`` as in FITS; pixel sizes are in arcsec.
"""

from __future__ import annotations

import os
import re
import tempfile
import warnings
from dataclasses import dataclass

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales

from catalog.errors import GccatError

#: HFF file-name suffix -> quantity. Magnification maps at a fixed source redshift
#: (``z02-magnif``: z_s = 2) keep their own name so they are never taken for D_ls/D_s = 1 maps.
HFF_QUANTITIES: dict[str, str] = {
    "kappa": "kappa",
    "gamma": "gamma",
    "gamma1": "gamma1",
    "gamma2": "gamma2",
    "magnif": "magnif",
    "z01-magnif": "z01-magnif",
    "z02-magnif": "z02-magnif",
    "z04-magnif": "z04-magnif",
    "z09-magnif": "z09-magnif",
    "x-arcsec-deflect": "x-arcsec-deflect",
    "y-arcsec-deflect": "y-arcsec-deflect",
    "x-pixels-deflect": "x-pixels-deflect",
    "y-pixels-deflect": "y-pixels-deflect",
    "psi": "psi",
}

#: FITS keyword written by :func:`write_hff_map` (and the simulator of
#: ``catalog/simulations/lensfield.py``); read back only when the file name names no quantity.
QUANTITY_KEYWORD = "HFFQUANT"
#: File name endings of FITS maps (gzipped and fpack-compressed included).
FITS_SUFFIXES = (".fits.gz", ".fits.fz", ".fit.gz", ".fts.gz", ".fits", ".fit", ".fts")
# WCS keywords dropped from a copied header before the map's own WCS is written, so a CD
# matrix and a PC matrix never end up side by side.
_WCS_KEY = re.compile(
    r"^(WCSAXES|CTYPE\d|CRVAL\d|CRPIX\d|CDELT\d|CUNIT\d|CROTA\d|CD\d_\d|PC\d_\d|PV\d_\d+|PS\d_\d+"
    r"|LONPOLE|LATPOLE|RADESYS|RADECSYS|EQUINOX|EPOCH|MJDREF|DATEREF|[AB]P?_(ORDER|\d+_\d+))[A-Z]?$"
)
_STRUCTURE_KEYS = (
    "SIMPLE",
    "XTENSION",
    "BITPIX",
    "NAXIS",
    "NAXIS1",
    "NAXIS2",
    "NAXIS3",
    "EXTEND",
    "PCOUNT",
    "GCOUNT",
    "BSCALE",
    "BZERO",
    "BLANK",
    "EXTNAME",
)


def quantity_from_filename(name: str | os.PathLike) -> str | None:
    """The HFF quantity a lens-map file name ends with, or None.

    Parameters
    ----------
    name : str or path
        File name or path, e.g. ``hlsp_frontier_model_abell2744_cats_v4_kappa.fits`` (-> ``kappa``)
        or ``..._x-arcsec-deflect.fits`` (-> ``x-arcsec-deflect``). Case-insensitive; ``.fits``,
        ``.fit``, ``.fts``, optionally gzipped, or ``.fits.fz``.
    """
    split = split_quantity_suffix(name)
    return None if split is None else split[1]


def split_quantity_suffix(name: str | os.PathLike) -> tuple[str, str] | None:
    """(the file name without its FITS extension and ``_<quantity>`` suffix, in its own case;
    the HFF quantity), or None when the name ends with no quantity (see
    :func:`quantity_from_filename`).
    """
    full = os.path.basename(os.fspath(name))
    base = full.lower()
    for ext in FITS_SUFFIXES:
        if base.endswith(ext):
            stem = base[: -len(ext)]
            break
    else:
        return None
    # Longest suffix first: "z02-magnif" must win over "magnif", "gamma1" over "gamma".
    for suffix in sorted(HFF_QUANTITIES, key=len, reverse=True):
        if stem == suffix or stem.endswith("_" + suffix):
            return full[: max(len(stem) - len(suffix) - 1, 0)], HFF_QUANTITIES[suffix]
    return None


@dataclass(eq=False, repr=False)
class LensMap:
    """One lens-model map on a celestial pixel grid.

    Attributes
    ----------
    quantity : str
        One of the values of :data:`HFF_QUANTITIES` (``kappa``, ``gamma``, ``x-arcsec-deflect``, ...).
    data : numpy.ndarray
        float64, shape (ny, nx), indexed ``data[iy, ix]`` as in FITS. Dimensionless for kappa,
        gamma and magnification; arcsec for ``*-arcsec-deflect``; psi as its provider gives it
        (arcsec^2 from :func:`catalog.simulations.lensfield.simulate_lens_field`).
    wcs : astropy.wcs.WCS
        2-D celestial WCS (RA on pixel axis x, Dec on y).
    header : astropy.io.fits.Header
        The FITS header the map came with.
    path : str, optional
        The file it was read from (for derived maps: the file of the x deflection).
    """

    quantity: str
    data: np.ndarray
    wcs: WCS
    header: fits.Header
    path: str | None = None

    def __post_init__(self):
        self.data = np.asarray(self.data, dtype=np.float64)
        if self.data.ndim != 2:
            raise GccatError(f"a lens map needs 2-D data, not shape {self.data.shape}", file=self.path)

    @property
    def pixel_scale_arcsec(self) -> float:
        """Pixel size in arcsec (geometric mean of the two axes, at the WCS reference point)."""
        sx, sy = pixel_steps_arcsec(self, check_skew=False)
        return float(np.sqrt(sx * sy))

    @property
    def shape(self) -> tuple[int, int]:
        """(ny, nx) in pixels."""
        return self.data.shape

    def __repr__(self) -> str:
        return (
            f"LensMap(quantity={self.quantity!r}, shape={self.shape}, "
            f"pixel_scale_arcsec={self.pixel_scale_arcsec:.6g}, path={self.path!r})"
        )


def _known_quantity(quantity: str, path=None) -> str:
    if quantity not in HFF_QUANTITIES.values():
        known = ", ".join(sorted(set(HFF_QUANTITIES.values())))
        raise GccatError(f"unknown lens-map quantity '{quantity}' (known: {known})", file=path)
    return quantity


def _first_2d_image(hdul: fits.HDUList, path):
    shapes = []
    for hdu in hdul:
        if not isinstance(hdu, (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU)):
            continue
        if hdu.header.get("NAXIS", 0) == 0 and not isinstance(hdu, fits.CompImageHDU):
            continue
        if hdu.data is None:
            continue
        if hdu.data.ndim == 2:
            return hdu
        shapes.append(hdu.data.shape)
    if shapes:
        raise GccatError(f"no 2-D image HDU; the images have shapes {shapes} (a lens map is 2-D)", file=path)
    raise GccatError("no image HDU with data (a lens map is a 2-D FITS image)", file=path)


def _celestial_wcs(header: fits.Header, path) -> WCS:
    try:
        with warnings.catch_warnings():
            # FITSFixedWarning for RADECSYS, DATE formats etc. in old Lenstool headers: harmless.
            warnings.simplefilter("ignore", AstropyWarning)
            wcs = WCS(header, naxis=2)
    except (ValueError, KeyError, TypeError, MemoryError) as exc:
        # WCSLIB's messages start with a line naming its source file; the reason comes after.
        reason = next((s.strip() for s in str(exc).splitlines()[1:] if s.strip()), str(exc).strip())
        types = f"CTYPE1 = {header.get('CTYPE1')!r}, CTYPE2 = {header.get('CTYPE2')!r}"
        raise GccatError(f"invalid WCS in the header ({types}: {reason})", file=path) from exc
    if not wcs.has_celestial:
        raise GccatError("the image has no celestial WCS (need CTYPE1/2 = RA---xxx/DEC--xxx)", file=path)
    if wcs.wcs.lng != 0 or wcs.wcs.lat != 1:
        raise GccatError("the WCS must have RA on axis 1 and Dec on axis 2", file=path)
    return wcs


def read_hff_map(path: str | os.PathLike, quantity: str | None = None) -> LensMap:
    """Read one HFF-format lens-model map.

    Parameters
    ----------
    path : str or path
        FITS file; the first image HDU with 2-D data is used.
    quantity : str, optional
        The quantity of the map; by default from the file name (:func:`quantity_from_filename`),
        then from the ``HFFQUANT`` keyword written by :func:`write_hff_map`.

    Returns
    -------
    LensMap
        Data as float64, indexed ``data[iy, ix]``.

    Raises
    ------
    GccatError
        If the file is missing or not readable FITS, has no 2-D image or no celestial WCS, or
        the quantity is unknown.
    """
    path_s = os.fspath(path)
    if quantity is not None:
        _known_quantity(quantity, path_s)
    if not os.path.isfile(path_s):
        raise GccatError("no such lens-map file", file=path_s)
    try:
        with warnings.catch_warnings():
            # Truncation and verification problems surface as exceptions on data access below.
            warnings.simplefilter("ignore", AstropyWarning)
            with fits.open(path_s, memmap=False) as hdul:
                hdu = _first_2d_image(hdul, path_s)
                # Copy out before the file closes; float64 for the finite differences.
                data = np.array(hdu.data, dtype=np.float64)
                header = hdu.header.copy()
    except (OSError, ValueError, TypeError, IndexError, KeyError, EOFError, fits.VerifyError) as exc:
        raise GccatError(f"not a readable FITS file ({exc})", file=path_s) from exc
    if quantity is None:
        quantity = quantity_from_filename(path_s) or header.get(QUANTITY_KEYWORD)
    if quantity is None:
        raise GccatError(
            "cannot tell the lens-map quantity from the file name (expected an HFF "
            "name such as '..._kappa.fits'); give it with --quantity",
            file=path_s,
        )
    _known_quantity(str(quantity), path_s)
    return LensMap(str(quantity), data, _celestial_wcs(header, path_s), header, path_s)


def write_hff_map(lens_map: LensMap, path: str | os.PathLike, *, overwrite: bool = False) -> None:
    """Write a map as an HFF-style FITS file (primary HDU, float64, the map's WCS in the header).

    Parameters
    ----------
    lens_map : LensMap
    path : str or path
        Output file. If its name ends with an HFF suffix, it must be the map's quantity, so that
        :func:`read_hff_map` reads the same quantity back; the quantity is also stored in the
        ``HFFQUANT`` keyword.
    overwrite : bool
        Replace an existing file (default: refuse).
    """
    path_s = os.fspath(path)
    named = quantity_from_filename(path_s)
    if named is not None and named != lens_map.quantity:
        raise GccatError(f"the file name says '{named}' but the map is '{lens_map.quantity}'", file=path_s)
    if os.path.exists(path_s) and not overwrite:
        raise GccatError("file exists; pass overwrite=True to replace it", file=path_s)
    header = lens_map.header.copy()
    for key in {k for k in header if k in _STRUCTURE_KEYS or _WCS_KEY.match(k)}:
        header.remove(key, remove_all=True)
    header.extend(lens_map.wcs.to_header(relax=True), update=True)
    header[QUANTITY_KEYWORD] = (lens_map.quantity, "lens-map quantity (HFF file-name suffix)")
    hdu = fits.PrimaryHDU(np.asarray(lens_map.data, dtype=np.float64), header=header)
    directory = os.path.dirname(os.path.abspath(path_s))
    # Write next to the target and rename, so a crash never leaves a half-written map.
    fd, tmp = tempfile.mkstemp(suffix=".fits", dir=directory)
    os.close(fd)
    try:
        hdu.writeto(tmp, overwrite=True)
        os.replace(tmp, path_s)
    except OSError as exc:
        raise GccatError(f"cannot write the lens map ({exc})", file=path_s) from exc
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def pixel_steps_arcsec(lens_map: LensMap, check_skew: bool = True) -> tuple[float, float]:
    """Sky length (arcsec) of one pixel step along x and y at the WCS reference point."""
    sx, sy = proj_plane_pixel_scales(lens_map.wcs) * 3600.0
    if check_skew:
        cols = lens_map.wcs.pixel_scale_matrix
        cos_angle = cols[:, 0] @ cols[:, 1] / np.hypot(*cols[:, 0]) / np.hypot(*cols[:, 1])
        # Along skewed axes the divergence and the shear would mix.
        if abs(cos_angle) > 1e-6:
            raise GccatError("the pixel axes of the lens map are not orthogonal", file=lens_map.path)
    return float(sx), float(sy)
