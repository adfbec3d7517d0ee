"""Lens maps at sky positions: interpolation of a map, and how fast mu changes within a pixel.

Positions are RA, Dec in deg; pixel coordinates are 0-based (origin 0), ``data[iy, ix]``.
Where :func:`mu_pixel_change` exceeds ``MU_PIXEL_CHANGE_MAX`` of ``catalog/constants.py``, the
views call a source's magnification undefined.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from catalog.errors import GccatError
from catalog.lensing.maps import LensMap

# RA in deg carries ~6e-14 deg of float64 noise, so a pixel->world->pixel round trip misses the
# pixel centre by ~1e-8 px on a 0.02"/px map; positions this close are taken at the centre.
_SNAP_PIX = 1e-6


def sample_map(
    lens_map: LensMap, ra_deg: npt.ArrayLike, dec_deg: npt.ArrayLike, order: int = 1
) -> np.ndarray:
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


def mu_pixel_change(
    kappa_map: LensMap,
    gamma_map: LensMap,
    ra_deg: npt.ArrayLike,
    dec_deg: npt.ArrayLike,
    dls_ds_scale: npt.ArrayLike = 1.0,
) -> np.ndarray:
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
    ra, dec, scale = np.broadcast_arrays(
        np.asarray(ra_deg, np.float64), np.asarray(dec_deg, np.float64), np.asarray(dls_ds_scale, np.float64)
    )
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
