"""Lens-model maps: read HFF FITS products, derive kappa/gamma/mu, sample them at GC positions.

Conventions
-----------
- Maps follow the Hubble Frontier Fields (HFF) products: one 2-D image per quantity, the quantity
  in the file name (``..._kappa.fits``, ``..._x-arcsec-deflect.fits``), normalised to
  D_ls/D_s = 1. Rescale kappa and gamma by :func:`dls_ds` for a source at z_s.
- Arrays are indexed ``data[iy, ix]`` as in FITS; pixel coordinates are 0-based (origin 0).
- Deflections are in arcsec along the *pixel* axes (x along NAXIS1, y along NAXIS2), as in the
  HFF and Lenstool products. Derivatives are taken along the same axes, so kappa and |gamma|
  are frame-independent; gamma1/gamma2 are in the pixel frame (x is West when CDELT1 < 0).
- Angles in arcsec or deg as named; masses in Msun; velocities in km/s.
"""

from __future__ import annotations

import os
import re
import tempfile
import warnings
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from astropy import constants as const
from astropy import units as u
from astropy.cosmology import FlatLambdaCDM
from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales
from scipy import ndimage

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

#: Cosmology of the source papers' physical scales (1" = 4.921 kpc at z = 0.348).
DEFAULT_COSMOLOGY = FlatLambdaCDM(H0=70.0, Om0=0.3)

_ARCSEC_PER_RAD = 180.0 / np.pi * 3600.0
_C_KM_S = const.c.to_value(u.km / u.s)
# RA in deg carries ~6e-14 deg of float64 noise, so a pixel->world->pixel round trip misses the
# pixel centre by ~1e-8 px on a 0.02"/px map; positions this close are taken at the centre.
_SNAP_PIX = 1e-6
# Keyword written by write_hff_map; read back only when the file name names no quantity.
_QUANTITY_KEY = "HFFQUANT"
_FITS_SUFFIXES = (".fits.gz", ".fits.fz", ".fit.gz", ".fts.gz", ".fits", ".fit", ".fts")
# WCS keywords dropped from a copied header before the map's own WCS is written, so a CD
# matrix and a PC matrix never end up side by side.
_WCS_KEY = re.compile(
    r"^(WCSAXES|CTYPE\d|CRVAL\d|CRPIX\d|CDELT\d|CUNIT\d|CROTA\d|CD\d_\d|PC\d_\d|PV\d_\d+|PS\d_\d+"
    r"|LONPOLE|LATPOLE|RADESYS|RADECSYS|EQUINOX|EPOCH|MJDREF|DATEREF|[AB]P?_(ORDER|\d+_\d+))[A-Z]?$")
_STRUCTURE_KEYS = ("SIMPLE", "XTENSION", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "NAXIS3", "EXTEND",
                   "PCOUNT", "GCOUNT", "BSCALE", "BZERO", "BLANK", "EXTNAME")


def quantity_from_filename(name: str | os.PathLike) -> str | None:
    """The HFF quantity a lens-map file name ends with, or None.

    Parameters
    ----------
    name : str or path
        File name or path, e.g. ``hlsp_frontier_model_abell2744_cats_v4_kappa.fits`` (-> ``kappa``)
        or ``..._x-arcsec-deflect.fits`` (-> ``x-arcsec-deflect``). Case-insensitive; ``.fits``,
        ``.fit``, ``.fts``, optionally gzipped, or ``.fits.fz``.
    """
    base = os.path.basename(os.fspath(name)).lower()
    for ext in _FITS_SUFFIXES:
        if base.endswith(ext):
            stem = base[: -len(ext)]
            break
    else:
        return None
    # Longest suffix first: "z02-magnif" must win over "magnif", "gamma1" over "gamma".
    for suffix in sorted(HFF_QUANTITIES, key=len, reverse=True):
        if stem == suffix or stem.endswith("_" + suffix):
            return HFF_QUANTITIES[suffix]
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
        (arcsec^2 from :func:`simulate_lens_field`).
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
        sx, sy = _pixel_steps_arcsec(self, check_skew=False)
        return float(np.sqrt(sx * sy))

    @property
    def shape(self) -> tuple[int, int]:
        """(ny, nx) in pixels."""
        return self.data.shape

    def __repr__(self) -> str:
        return (f"LensMap(quantity={self.quantity!r}, shape={self.shape}, "
                f"pixel_scale_arcsec={self.pixel_scale_arcsec:.6g}, path={self.path!r})")


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
        raise GccatError(f"no 2-D image HDU; the images have shapes {shapes} (a lens map is 2-D)",
                         file=path)
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
        quantity = quantity_from_filename(path_s) or header.get(_QUANTITY_KEY)
    if quantity is None:
        raise GccatError("cannot tell the lens-map quantity from the file name (expected an HFF "
                         "name such as '..._kappa.fits'); give it with --quantity", file=path_s)
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
    header[_QUANTITY_KEY] = (lens_map.quantity, "lens-map quantity (HFF file-name suffix)")
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


def _pixel_steps_arcsec(lens_map: LensMap, check_skew: bool = True) -> tuple[float, float]:
    """Sky length (arcsec) of one pixel step along x and y at the WCS reference point."""
    sx, sy = proj_plane_pixel_scales(lens_map.wcs) * 3600.0
    if check_skew:
        cols = lens_map.wcs.pixel_scale_matrix
        cos_angle = cols[:, 0] @ cols[:, 1] / np.hypot(*cols[:, 0]) / np.hypot(*cols[:, 1])
        # Along skewed axes the divergence and the shear would mix.
        if abs(cos_angle) > 1e-6:
            raise GccatError("the pixel axes of the lens map are not orthogonal", file=lens_map.path)
    return float(sx), float(sy)


def _deflection_derivatives(alpha_x: LensMap, alpha_y: LensMap):
    """d alpha_i / d theta_j along the pixel axes (dimensionless): dax_dx, dax_dy, day_dx, day_dy."""
    if (alpha_x.quantity, alpha_y.quantity) != ("x-arcsec-deflect", "y-arcsec-deflect"):
        # Pixel deflections need the pixel scale of the grid they were made on, which HFF
        # files do not record reliably; a swapped pair would flip gamma1.
        raise GccatError(f"need the x and y deflections in arcsec (x-arcsec-deflect, y-arcsec-deflect), "
                         f"got {alpha_x.quantity} and {alpha_y.quantity}", file=alpha_y.path)
    if alpha_x.shape != alpha_y.shape:
        raise GccatError(f"the x and y deflection maps differ in shape ({alpha_x.shape} vs "
                         f"{alpha_y.shape})", file=alpha_y.path)
    if not alpha_x.wcs.wcs.compare(alpha_y.wcs.wcs, tolerance=1e-10):
        raise GccatError("the x and y deflection maps have different WCS", file=alpha_y.path)
    if min(alpha_x.shape) < 3:
        raise GccatError("a deflection map needs at least 3x3 pixels for finite differences",
                         file=alpha_x.path)
    sx, sy = _pixel_steps_arcsec(alpha_x)
    # Second-order central differences inside and one-sided second order at the edges.
    dax_dy, dax_dx = np.gradient(alpha_x.data, sy, sx, edge_order=2)
    day_dy, day_dx = np.gradient(alpha_y.data, sy, sx, edge_order=2)
    return dax_dx, dax_dy, day_dx, day_dy


def kappa_gamma_from_deflection(alpha_x: LensMap, alpha_y: LensMap
                                ) -> tuple[LensMap, LensMap, LensMap, LensMap]:
    """Convergence and shear from deflection maps by finite differences.

    kappa = (dax/dx + day/dy) / 2, gamma1 = (dax/dx - day/dy) / 2, gamma2 = (dax/dy + day/dx) / 2,
    gamma = hypot(gamma1, gamma2), with derivatives along the pixel axes (``numpy.gradient``,
    second order) divided by the pixel size in arcsec.

    Parameters
    ----------
    alpha_x, alpha_y : LensMap
        ``x-arcsec-deflect`` and ``y-arcsec-deflect`` maps (arcsec along the pixel axes) on the
        same grid.

    Returns
    -------
    kappa, gamma1, gamma2, gamma : LensMap
        Dimensionless, on the same WCS and with a copy of the x map's header, at the
        normalisation of the deflections (HFF: D_ls/D_s = 1).
    """
    dax_dx, dax_dy, day_dx, day_dy = _deflection_derivatives(alpha_x, alpha_y)
    kappa = 0.5 * (dax_dx + day_dy)
    gamma1 = 0.5 * (dax_dx - day_dy)
    # The symmetric part only: a non-zero dax/dy - day/dx is finite-difference (or map) error.
    gamma2 = 0.5 * (dax_dy + day_dx)
    gamma = np.hypot(gamma1, gamma2)
    return tuple(LensMap(q, d, alpha_x.wcs.deepcopy(), alpha_x.header.copy(), alpha_x.path)
                 for q, d in (("kappa", kappa), ("gamma1", gamma1), ("gamma2", gamma2), ("gamma", gamma)))


def jacobian_determinant_from_deflection(alpha_x: LensMap, alpha_y: LensMap) -> np.ndarray:
    """det(A) with A = I - d(alpha)/d(theta), from the four derivatives of the deflection.

    An independent check of :func:`magnification`: det(A) = (1 - kappa)^2 - gamma^2 - omega^2,
    where omega = (dax/dy - day/dx) / 2 vanishes for a deflection that is a gradient, so
    1/det(A) equals mu up to the finite-difference curl.

    Parameters
    ----------
    alpha_x, alpha_y : LensMap
        Deflections in arcsec along the pixel axes, as for :func:`kappa_gamma_from_deflection`.

    Returns
    -------
    numpy.ndarray
        Dimensionless, shape (ny, nx).
    """
    dax_dx, dax_dy, day_dx, day_dy = _deflection_derivatives(alpha_x, alpha_y)
    return (1.0 - dax_dx) * (1.0 - day_dy) - dax_dy * day_dx


def _det_a(kappa, gamma, dls_ds_scale) -> np.ndarray:
    s = np.asarray(dls_ds_scale, dtype=np.float64)
    kappa, gamma = np.asarray(kappa, dtype=np.float64), np.asarray(gamma, dtype=np.float64)
    return (1.0 - s * kappa) ** 2 - (s * gamma) ** 2


def magnification(kappa: npt.ArrayLike, gamma: npt.ArrayLike, *, dls_ds_scale: npt.ArrayLike = 1.0,
                  absolute: bool = False) -> np.ndarray:
    """Magnification mu = 1 / ((1 - kappa)^2 - gamma^2), signed (negative between the critical curves).

    Parameters
    ----------
    kappa, gamma : array_like
        Convergence and shear magnitude (dimensionless) at the map normalisation.
    dls_ds_scale : array_like, optional
        D_ls/D_s of the source divided by that of the map normalisation (HFF: D_ls/D_s of the
        source, see :func:`dls_ds`); kappa and gamma are multiplied by it.
    absolute : bool
        Return |mu| instead.

    Returns
    -------
    numpy.ndarray
        Dimensionless; +-inf on a critical curve, NaN where an input is NaN.
    """
    det = _det_a(kappa, gamma, dls_ds_scale)
    with np.errstate(divide="ignore"):
        mu = 1.0 / det
    return np.abs(mu) if absolute else mu


def tangential_eigenvalue(kappa: npt.ArrayLike, gamma: npt.ArrayLike, *,
                          dls_ds_scale: npt.ArrayLike = 1.0) -> np.ndarray:
    """Tangential eigenvalue of the lens Jacobian, lambda_t = 1 - kappa - gamma (dimensionless).

    1/|lambda_t| is the stretch along the arc, used for size upper limits of lensed clusters.
    ``dls_ds_scale`` rescales kappa and gamma as in :func:`magnification`.
    """
    s = np.asarray(dls_ds_scale, dtype=np.float64)
    return 1.0 - s * np.asarray(kappa, dtype=np.float64) - s * np.asarray(gamma, dtype=np.float64)


def on_critical_curve(kappa: npt.ArrayLike, gamma: npt.ArrayLike, tol: float = 0.05, *,
                      dls_ds_scale: npt.ArrayLike = 1.0) -> np.ndarray:
    """True where |det A| = |(1 - kappa)^2 - gamma^2| < ``tol`` (|mu| > 1/tol); False for NaN."""
    with np.errstate(invalid="ignore"):
        return np.abs(_det_a(kappa, gamma, dls_ds_scale)) < tol


def _angular_diameter_distance_z1z2(cosmo, z1, z2):
    """D_A between z1 and z2 (astropy >= 7.1 spells it angular_diameter_distance(z1, z2))."""
    try:
        return cosmo.angular_diameter_distance(z1, z2)
    except TypeError:
        return cosmo.angular_diameter_distance_z1z2(z1, z2)


def dls_ds(z_lens: npt.ArrayLike, z_source: npt.ArrayLike, cosmology=None) -> np.ndarray:
    """Distance ratio D_ls/D_s that scales HFF (D_ls/D_s = 1) kappa and gamma to a source.

    Parameters
    ----------
    z_lens, z_source : array_like
        Redshifts; broadcast against each other.
    cosmology : astropy.cosmology.Cosmology, optional
        Default :data:`DEFAULT_COSMOLOGY`, FlatLambdaCDM(H0=70, Om0=0.3) as in the source papers.

    Returns
    -------
    numpy.ndarray
        Dimensionless, in [0, 1); 0 where z_source <= z_lens (no lensing), NaN where either
        redshift is NaN or infinite or z_lens < 0.
    """
    cosmo = DEFAULT_COSMOLOGY if cosmology is None else cosmology
    zl, zs = np.broadcast_arrays(np.asarray(z_lens, dtype=np.float64), np.asarray(z_source, dtype=np.float64))
    out = np.zeros(zl.shape)
    valid = np.isfinite(zl) & np.isfinite(zs) & (zl >= 0)
    out[~valid] = np.nan
    behind = valid & (zs > zl)
    if behind.any():
        d_ls = _angular_diameter_distance_z1z2(cosmo, zl[behind], zs[behind])
        d_s = cosmo.angular_diameter_distance(zs[behind])
        out[behind] = (d_ls / d_s).to_value(u.dimensionless_unscaled)
    return out


def sigma_crit_msun_per_arcsec2(z_lens: float, cosmology=None, *, z_source: float | None = None) -> float:
    """Critical surface density Sigma_cr in Msun per arcsec^2 at the lens.

    For the HFF normalisation D_ls/D_s = 1 (default), Sigma_cr = c^2 / (4 pi G D_l); with
    ``z_source``, Sigma_cr = c^2 D_s / (4 pi G D_l D_ls). Converted to Msun per arcsec^2 with the
    physical area of one arcsec^2 at the lens, (D_l * 1 arcsec in rad)^2. A kappa map times this
    value is a surface mass density in Msun/arcsec^2.

    Parameters
    ----------
    z_lens : float
        Lens redshift (> 0).
    cosmology : astropy.cosmology.Cosmology, optional
        Default :data:`DEFAULT_COSMOLOGY`.
    z_source : float, optional
        Source redshift (> z_lens); default: D_ls/D_s = 1.
    """
    cosmo = DEFAULT_COSMOLOGY if cosmology is None else cosmology
    if not (np.isfinite(z_lens) and z_lens > 0):
        raise GccatError(f"the lens redshift must be positive, not {z_lens}")
    ratio = 1.0
    if z_source is not None:
        ratio = float(dls_ds(z_lens, z_source, cosmo))
        if not ratio > 0:
            raise GccatError(f"the source (z = {z_source}) must lie behind the lens (z = {z_lens})")
    d_l = cosmo.angular_diameter_distance(z_lens)
    sigma = const.c**2 / (4.0 * np.pi * const.G * d_l * ratio)
    area_per_arcsec2 = (d_l * (1.0 * u.arcsec).to_value(u.rad)) ** 2
    return float((sigma * area_per_arcsec2).to_value(u.Msun))


def source_dls_ds(z_cluster: float | None, z_source: float, field_id: str) -> float:
    """D_ls/D_s of a source at ``z_source`` behind the cluster of ``field_id``; the source must
    lie behind the cluster (in front of it or at it, D_ls/D_s would be 0: no lensing)."""
    from catalog.checks import Z_MAX

    if z_cluster is None or not np.isfinite(z_cluster):
        raise GccatError(f"--z-source needs the cluster redshift of field '{field_id}'; "
                         "load it with 'gccat ingest fields'")
    if not z_source > z_cluster:
        raise GccatError(f"--z-source must be above the cluster redshift of field '{field_id}' "
                         f"(z = {z_cluster:g}), in ({z_cluster:g}, {Z_MAX:g}], not {z_source:g}")
    return float(dls_ds(z_cluster, z_source))


def sample_map(lens_map: LensMap, ra_deg: npt.ArrayLike, dec_deg: npt.ArrayLike,
               order: int = 1) -> np.ndarray:
    """Map values at sky positions, interpolated in pixel space.

    Positions go through the map's WCS to 0-based pixel coordinates and are interpolated with
    ``scipy.ndimage.map_coordinates``. Values at pixel centres are returned exactly (positions
    within 1e-6 pixel of a centre, the float64 noise of a pixel->world->pixel round trip, are
    taken at the centre).

    Parameters
    ----------
    lens_map : LensMap
    ra_deg, dec_deg : array_like
        Sky positions in deg (the map's frame, ICRS/FK5 J2000), broadcast against each other.
    order : int
        1 (bilinear, default) or 3 (cubic spline). A NaN pixel makes every position whose
        interpolation stencil touches it NaN.

    Returns
    -------
    numpy.ndarray
        In the units of the map, shape of the broadcast positions; NaN off the map (outside
        pixel coordinates [0, n - 1] on either axis) and at NaN positions.
    """
    if order not in (1, 3):
        raise GccatError(f"interpolation order must be 1 (bilinear) or 3 (cubic), not {order}")
    ra, dec = np.broadcast_arrays(np.asarray(ra_deg, dtype=np.float64), np.asarray(dec_deg, dtype=np.float64))
    out = np.full(ra.shape, np.nan)
    if ra.size == 0:
        return out
    x, y = _pixel_coords(lens_map, ra.ravel(), dec.ravel())
    out.reshape(-1)[:] = _sample_pixels(lens_map, x, y, order)
    return out


def _pixel_coords(lens_map: LensMap, ra: np.ndarray, dec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """0-based pixel coordinates of sky positions, snapped to centres within float noise."""
    x, y = lens_map.wcs.world_to_pixel_values(ra, dec)
    x, y = np.atleast_1d(x).astype(np.float64), np.atleast_1d(y).astype(np.float64)
    for c in (x, y):
        near = np.rint(c)
        snap = np.abs(c - near) < _SNAP_PIX
        c[snap] = near[snap]
    return x, y


def _sample_pixels(lens_map: LensMap, x: np.ndarray, y: np.ndarray, order: int = 1) -> np.ndarray:
    """Map values at 0-based pixel coordinates (1-D arrays); NaN outside [0, n - 1]."""
    out = np.full(x.shape, np.nan)
    ny, nx = lens_map.shape
    with np.errstate(invalid="ignore"):
        inside = (x >= 0) & (x <= nx - 1) & (y >= 0) & (y <= ny - 1)
    if not inside.any():
        return out
    coords = np.vstack([y[inside], x[inside]])
    data = lens_map.data
    if order == 1:
        values = ndimage.map_coordinates(data, coords, order=1, mode="nearest")
    else:
        bad = ~np.isfinite(data)
        # The spline prefilter would spread one NaN over whole rows and columns: fill, then
        # blank the positions whose 4x4 stencil touches a bad pixel.
        filled = np.where(bad, 0.0, data) if bad.any() else data
        values = ndimage.map_coordinates(filled, coords, order=3, mode="mirror")
        if bad.any():
            near_bad = ndimage.maximum_filter(bad.astype(np.float64), size=3)
            touched = ndimage.map_coordinates(near_bad, coords, order=1, mode="nearest") > 0
            values[touched] = np.nan
    out[inside] = values
    return out


#: Largest fractional change of mu across one map pixel for which the map is taken to define
#: a source's magnification (see :func:`mu_pixel_change`); above it, or where the sign of mu
#: flips within one pixel (a critical curve passes closer than a pixel), mu is "undefined".
MU_PIXEL_CHANGE_MAX = 1.0


def mu_pixel_change(kappa_map: LensMap, gamma_map: LensMap, ra_deg: npt.ArrayLike,
                    dec_deg: npt.ArrayLike, dls_ds_scale: npt.ArrayLike = 1.0) -> np.ndarray:
    """How much the magnification changes within one map pixel of each position.

    High magnifications are real (the Sparkler's images have mu of 15 to 100): what a map
    cannot give is mu so close to a critical curve that it changes by more than itself from
    one pixel to the next. This returns max over the four positions one pixel away (+-x, +-y)
    of |mu_neighbour - mu| / |mu|, or +inf where det A = 1/mu changes sign within one pixel
    (the curve passes between the samples) or mu itself is infinite.

    Parameters
    ----------
    kappa_map, gamma_map : LensMap
        Convergence and shear magnitude on the same grid, at the map normalisation.
    ra_deg, dec_deg : array_like
        Positions, ICRS degrees.
    dls_ds_scale : array_like
        Source D_ls/D_s over the map's (as in :func:`magnification`).

    Returns
    -------
    numpy.ndarray
        Dimensionless, >= 0; NaN off the map. 0 where dls_ds_scale is 0 (no lensing).
    """
    ra, dec, scale = np.broadcast_arrays(np.asarray(ra_deg, np.float64), np.asarray(dec_deg, np.float64),
                                         np.asarray(dls_ds_scale, np.float64))
    shape = ra.shape
    ra, dec, scale = ra.ravel(), dec.ravel(), scale.ravel()
    x, y = _pixel_coords(kappa_map, ra, dec)

    def det(xs, ys):
        k = _sample_pixels(kappa_map, xs, ys) * scale
        g = _sample_pixels(gamma_map, xs, ys) * scale
        return (1.0 - k) ** 2 - g**2

    d0 = det(x, y)
    change = np.zeros(len(ra))
    with np.errstate(divide="ignore", invalid="ignore"):
        for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            dn = det(x + dx, y + dy)
            # mu_n/mu - 1 = d0/dn - 1; a neighbour off the map does not count.
            c = np.where(np.isfinite(dn), np.abs(d0 / dn - 1.0), 0.0)
            c = np.where(np.isfinite(dn) & (np.sign(dn) != np.sign(d0)), np.inf, c)
            change = np.maximum(change, c)
        change = np.where(d0 == 0, np.inf, change)
    return np.where(np.isfinite(d0), change, np.nan).reshape(shape)


def _nis_fields(dx, dy, b, rc):
    """Cored isothermal sphere at offsets (dx, dy) in arcsec: kappa, gamma1, gamma2, ax, ay, psi.

    kappa = b / (2 s), s = sqrt(r^2 + rc^2); alpha = b theta / (s + rc) in arcsec;
    psi = b (s - rc - rc ln((s + rc) / (2 rc))) in arcsec^2 (0 at the centre).
    """
    s = np.sqrt(dx**2 + dy**2 + rc**2)
    sp = s + rc
    kappa = b / (2.0 * s)
    gamma1 = -b * (dx**2 - dy**2) / (2.0 * s * sp**2)
    gamma2 = -b * dx * dy / (s * sp**2)
    psi = b * (s - rc - rc * np.log(sp / (2.0 * rc)))
    return kappa, gamma1, gamma2, b * dx / sp, b * dy / sp, psi


def _default_halos(shape, pixel_scale_arcsec, seed) -> list[dict]:
    """A cluster: a main halo, a group-scale halo and six truncated galaxies placed with ``seed``."""
    rng = np.random.default_rng(seed)
    half_x, half_y = (shape[1] - 1) / 2 * pixel_scale_arcsec, (shape[0] - 1) / 2 * pixel_scale_arcsec
    halos = [
        {"x_arcsec": 0.0, "y_arcsec": 0.0, "sigma_v": 700.0, "r_core_arcsec": 8.0},
        {"x_arcsec": 0.35 * half_x, "y_arcsec": -0.25 * half_y, "sigma_v": 450.0, "r_core_arcsec": 4.0,
         "r_cut_arcsec": 40.0},
    ]
    for _ in range(6):
        halos.append({"x_arcsec": rng.uniform(-0.6, 0.6) * half_x,
                      "y_arcsec": rng.uniform(-0.6, 0.6) * half_y,
                      "sigma_v": rng.uniform(120.0, 250.0), "r_core_arcsec": 0.3, "r_cut_arcsec": 6.0})
    return halos


def _einstein_b_arcsec(halo: dict, k: int, rc: float, r_cut: float) -> float:
    """SIS-limit Einstein radius b (arcsec) of a halo, at D_ls/D_s = 1."""
    has_k0, has_sv = "kappa0" in halo, "sigma_v" in halo
    if has_k0 == has_sv:
        raise GccatError(f"halo {k} needs exactly one of kappa0 and sigma_v")
    if has_sv:
        # b = 4 pi (sigma_v / c)^2 D_ls/D_s, the Einstein radius of the singular sphere.
        return 4.0 * np.pi * (float(halo["sigma_v"]) / _C_KM_S) ** 2 * _ARCSEC_PER_RAD
    # kappa(0) = b/2 (1/r_c - 1/r_cut), with 1/r_cut = 0 for an untruncated halo.
    return 2.0 * float(halo["kappa0"]) / (1.0 / rc - 1.0 / r_cut)


_SIM_UNITS = {"kappa": "", "gamma": "", "gamma1": "", "gamma2": "", "x-arcsec-deflect": "arcsec",
              "y-arcsec-deflect": "arcsec", "psi": "arcsec2"}


def simulate_lens_field(shape: tuple[int, int] = (512, 512), pixel_scale_arcsec: float = 0.2,
                        centre_deg: tuple[float, float] = (342.18321, -44.53088), *,
                        halos: list[dict] | None = None, seed: int = 0,
                        quantity: str = "kappa") -> LensMap:
    """A synthetic cluster lens map in HFF form (D_ls/D_s = 1), for tests and demos.

    Each halo is a cored isothermal sphere, optionally truncated (the dPIE profile of Lenstool):

        kappa(r) = b/2 * (1/sqrt(r^2 + r_c^2) - 1/sqrt(r^2 + r_cut^2)),

    without the second term for an untruncated halo. b (arcsec) is 4 pi (sigma_v / c)^2, the
    Einstein radius of the singular isothermal sphere of velocity dispersion sigma_v, or follows
    from a given central convergence kappa0 = b/2 (1/r_c - 1/r_cut). Deflection, shear and
    potential are the analytic ones summed over the halos, so deflection maps from here test
    :func:`kappa_gamma_from_deflection`.

    Parameters
    ----------
    shape : (int, int)
        (ny, nx) in pixels.
    pixel_scale_arcsec : float
        Pixel size in arcsec.
    centre_deg : (float, float)
        (RA, Dec) in deg of the map centre, pixel ((nx - 1)/2, (ny - 1)/2); default the BCG of
        Abell S1063.
    halos : list of dict, optional
        Each with ``x_arcsec``, ``y_arcsec`` (offset from the map centre in arcsec along the
        pixel x and y axes: x is West, y North), ``r_core_arcsec`` (> 0), optionally
        ``r_cut_arcsec`` (> r_core), and one of ``kappa0`` (central convergence) or
        ``sigma_v`` (km/s). Default: a main halo (sigma_v = 700 km/s, r_c = 8") at the centre,
        a 450 km/s group and six galaxies (120-250 km/s, r_c = 0.3", r_cut = 6") placed at
        random with ``seed``; the central half of the default map has median kappa ~0.43 and a
        small critical curve (mu < 0 on ~1% of the map).
    seed : int
        Seed for the galaxy positions and velocity dispersions of the default halos.
    quantity : str
        ``kappa`` (default), ``gamma``, ``gamma1``, ``gamma2``, ``x-arcsec-deflect``,
        ``y-arcsec-deflect`` or ``psi``.

    Returns
    -------
    LensMap
        On a RA---TAN/DEC--TAN WCS with CDELT1 < 0 (East left); the header has
        ``GCSYNTH = T`` and the halos (``NHALO``, ``HnnnX``/``Y``/``B``/``RC``/``RT`` in
        arcsec, RT = 0 for no truncation).
    """
    if quantity not in _SIM_UNITS:
        raise GccatError(f"cannot simulate '{quantity}'; choose one of {', '.join(_SIM_UNITS)}")
    ny, nx = (int(n) for n in shape)
    if ny < 1 or nx < 1 or not pixel_scale_arcsec > 0:
        raise GccatError(f"need a positive shape and pixel scale, not {shape} and {pixel_scale_arcsec}")
    if halos is None:
        halos = _default_halos((ny, nx), pixel_scale_arcsec, seed)
    params = []
    for k, halo in enumerate(halos):
        try:
            x0, y0 = float(halo["x_arcsec"]), float(halo["y_arcsec"])
            rc, r_cut = float(halo["r_core_arcsec"]), float(halo.get("r_cut_arcsec", np.inf))
        except (KeyError, TypeError, ValueError) as exc:
            raise GccatError(f"halo {k} needs numeric x_arcsec, y_arcsec and r_core_arcsec ({exc})") from exc
        if not 0 < rc < r_cut:
            raise GccatError(f"halo {k}: need 0 < r_core_arcsec < r_cut_arcsec (the profile is cored)")
        params.append((x0, y0, _einstein_b_arcsec(halo, k, rc, r_cut), rc, r_cut))

    x = (np.arange(nx) - (nx - 1) / 2) * pixel_scale_arcsec
    y = (np.arange(ny) - (ny - 1) / 2) * pixel_scale_arcsec
    xx, yy = np.meshgrid(x, y)
    index = {"kappa": 0, "gamma1": 1, "gamma2": 2, "x-arcsec-deflect": 3, "y-arcsec-deflect": 4, "psi": 5}
    total = np.zeros((6, ny, nx))
    for x0, y0, b, rc, r_cut in params:
        total += np.asarray(_nis_fields(xx - x0, yy - y0, b, rc))
        if np.isfinite(r_cut):
            # Every field is linear in the profile: dPIE = NIS(r_c) - NIS(r_cut).
            total -= np.asarray(_nis_fields(xx - x0, yy - y0, b, r_cut))
    # Shear components add linearly; the magnitude does not.
    data = np.hypot(total[1], total[2]) if quantity == "gamma" else total[index[quantity]]

    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [float(centre_deg[0]), float(centre_deg[1])]
    wcs.wcs.crpix = [(nx + 1) / 2, (ny + 1) / 2]  # 1-based: the map centre
    wcs.wcs.cdelt = [-pixel_scale_arcsec / 3600.0, pixel_scale_arcsec / 3600.0]
    wcs.wcs.cunit = ["deg", "deg"]
    wcs.wcs.radesys = "ICRS"
    wcs.pixel_shape = (nx, ny)
    header = wcs.to_header()
    header["ORIGIN"] = ("gccat", "catalog.lensing.simulate_lens_field")
    header["OBJECT"] = ("synthetic cluster", "not a real lens model")
    header["GCSYNTH"] = (True, "synthetic lens model (gccat)")
    header["BUNIT"] = (_SIM_UNITS[quantity], "arcsec for deflections, dimensionless otherwise")
    header["DLS_DS"] = (1.0, "normalisation D_ls/D_s")
    header[_QUANTITY_KEY] = (quantity, "lens-map quantity (HFF file-name suffix)")
    header["NHALO"] = (len(params), "number of cored isothermal (dPIE) halos")
    header["COMMENT"] = "Halo k: kappa = HkB/2 (1/sqrt(r^2+HkRC^2) - 1/sqrt(r^2+HkRT^2)), in arcsec."
    header["SIMSEED"] = (int(seed), "seed of the default halos")
    for k, (x0, y0, b, rc, r_cut) in enumerate(params[:999], start=1):
        header[f"H{k:03d}X"] = (x0, "halo x offset, arcsec (pixel x axis)")
        header[f"H{k:03d}Y"] = (y0, "halo y offset, arcsec (pixel y axis)")
        header[f"H{k:03d}B"] = (b, "halo Einstein radius b, arcsec")
        header[f"H{k:03d}RC"] = (rc, "halo core radius, arcsec")
        header[f"H{k:03d}RT"] = (r_cut if np.isfinite(r_cut) else 0.0, "halo cut radius, arcsec (0: none)")
    return LensMap(quantity, data, wcs, header, None)
