"""The lens equation on a deflection map: image plane -> source plane, and its inverse.

beta = theta - s alpha(theta), with alpha the map's deflection (arcsec along the pixel axes,
HFF: normalised to D_ls/D_s = 1) and s = D_ls/D_s(z_s) / D_ls/D_s(map), the ``dls_ds_scale``
of :func:`catalog.lensing.magnification`. Positions are RA, Dec in deg (ICRS); the source
plane is expressed on the same tangent-plane pixel grid as the image plane, so source-plane
positions are sky coordinates too and separations between them are arcsec on the sky.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from catalog.errors import GccatError
from catalog.lensing.maps import LensMap, pixel_steps_arcsec
from catalog.lensing.sampling import _pixel_coords, _sample_pixels

#: Counter-images fainter than this |mu| are dropped by default: on a pixel grid, cells that
#: straddle a singular centre (an SIS core, a galaxy's cusp) map to huge source-plane
#: triangles and would give spurious, infinitely demagnified "images".
MIN_ABS_MU = 1e-2


def _check_pair(alpha_x: LensMap, alpha_y: LensMap) -> tuple[float, float]:
    if (alpha_x.quantity, alpha_y.quantity) != ("x-arcsec-deflect", "y-arcsec-deflect"):
        raise GccatError(
            f"need x-arcsec-deflect and y-arcsec-deflect maps, got {alpha_x.quantity} and {alpha_y.quantity}",
            file=alpha_y.path,
        )
    if alpha_x.shape != alpha_y.shape or not alpha_x.wcs.wcs.compare(alpha_y.wcs.wcs, tolerance=1e-10):
        raise GccatError("the x and y deflection maps are not on the same grid", file=alpha_y.path)
    return pixel_steps_arcsec(alpha_x)


def source_plane_pixels(
    alpha_x: LensMap, alpha_y: LensMap, x: np.ndarray, y: np.ndarray, dls_ds_scale: npt.ArrayLike = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Source-plane pixel coordinates of image-plane pixel coordinates (0-based).

    alpha is interpolated bilinearly (:func:`catalog.lensing.sample_map`'s interpolation);
    NaN off the map.
    """
    sx, sy = _check_pair(alpha_x, alpha_y)
    s = np.asarray(dls_ds_scale, dtype=np.float64)
    ax, ay = _sample_pixels(alpha_x, x, y), _sample_pixels(alpha_y, x, y)
    return x - s * ax / sx, y - s * ay / sy


def to_source_plane(
    alpha_x: LensMap,
    alpha_y: LensMap,
    ra_deg: npt.ArrayLike,
    dec_deg: npt.ArrayLike,
    dls_ds_scale: npt.ArrayLike = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Map image-plane positions to the source plane, beta = theta - s alpha(theta).

    Parameters
    ----------
    alpha_x, alpha_y : LensMap
        Deflections in arcsec along the pixel axes (HFF ``x/y-arcsec-deflect``).
    ra_deg, dec_deg : array_like
        Image positions, ICRS deg.
    dls_ds_scale : array_like
        D_ls/D_s of each source over that of the map normalisation (1 for an HFF map and a
        source at the normalisation); broadcast against the positions.

    Returns
    -------
    ra_src, dec_src : numpy.ndarray
        Source-plane positions in deg on the map's tangent plane; NaN off the map.
    """
    ra, dec, s = np.broadcast_arrays(
        np.asarray(ra_deg, np.float64), np.asarray(dec_deg, np.float64), np.asarray(dls_ds_scale, np.float64)
    )
    x, y = _pixel_coords(alpha_x, ra.ravel(), dec.ravel())
    bx, by = source_plane_pixels(alpha_x, alpha_y, x, y, s.ravel())
    out_ra, out_dec = np.full(bx.shape, np.nan), np.full(bx.shape, np.nan)
    ok = np.isfinite(bx) & np.isfinite(by)
    if ok.any():
        r, d = alpha_x.wcs.pixel_to_world_values(bx[ok], by[ok])
        out_ra[ok], out_dec[ok] = np.mod(r, 360.0), d
    return out_ra.reshape(ra.shape), out_dec.reshape(ra.shape)


@dataclass
class ImageSolutions:
    """Image-plane solutions of the lens equation for one source position.

    Attributes
    ----------
    ra, dec : numpy.ndarray
        Image positions, ICRS deg.
    x, y : numpy.ndarray
        0-based pixel coordinates on the map.
    mu : numpy.ndarray
        Signed magnification of the grid triangle holding each image (image area over
        source area; negative for images of odd parity).
    """

    ra: np.ndarray
    dec: np.ndarray
    x: np.ndarray
    y: np.ndarray
    mu: np.ndarray


def _beta_grid(alpha_x: LensMap, alpha_y: LensMap, scale: float) -> tuple[np.ndarray, np.ndarray]:
    sx, sy = _check_pair(alpha_x, alpha_y)
    ny, nx = alpha_x.shape
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float64)
    return xx - scale * alpha_x.data / sx, yy - scale * alpha_y.data / sy


def _triangle_hits(bx, by, qx, qy):
    """Images of (qx, qy) in the two triangles of every grid cell: (x, y, mu) arrays.

    Each cell [j, j+1] x [i, i+1] is split into (00, 10, 11) and (00, 11, 01); the mapped
    triangle holds beta_0 when its barycentric coordinates are all >= 0, and the image is the
    same barycentric combination of the image-plane corners (linear interpolation of the
    inverse mapping within the triangle).
    """
    corners = {
        "00": (bx[:-1, :-1], by[:-1, :-1]),
        "10": (bx[:-1, 1:], by[:-1, 1:]),
        "11": (bx[1:, 1:], by[1:, 1:]),
        "01": (bx[1:, :-1], by[1:, :-1]),
    }
    offsets = {"00": (0.0, 0.0), "10": (1.0, 0.0), "11": (1.0, 1.0), "01": (0.0, 1.0)}
    jj, ii = np.meshgrid(np.arange(bx.shape[1] - 1), np.arange(bx.shape[0] - 1))
    xs, ys, mus = [], [], []
    for a, b, c in (("00", "10", "11"), ("00", "11", "01")):
        (ax_, ay_), (bx_, by_), (cx_, cy_) = corners[a], corners[b], corners[c]
        v0x, v0y, v1x, v1y = bx_ - ax_, by_ - ay_, cx_ - ax_, cy_ - ay_
        v2x, v2y = qx - ax_, qy - ay_
        with np.errstate(divide="ignore", invalid="ignore"):
            den = v0x * v1y - v1x * v0y
            l1 = (v2x * v1y - v1x * v2y) / den
            l2 = (v0x * v2y - v2x * v0y) / den
            l0 = 1.0 - l1 - l2
            eps = -1e-12
            hit = (l0 >= eps) & (l1 >= eps) & (l2 >= eps) & (den != 0)
        if not hit.any():
            continue
        pa_, pb, pc_ = offsets[a], offsets[b], offsets[c]
        w0, w1, w2 = l0[hit], l1[hit], l2[hit]
        xs.append(jj[hit] + w0 * pa_[0] + w1 * pb[0] + w2 * pc_[0])
        ys.append(ii[hit] + w0 * pa_[1] + w1 * pb[1] + w2 * pc_[1])
        # Both image-plane triangles have area 1/2 and positive orientation.
        mus.append(1.0 / den[hit])
    if not xs:
        return np.empty(0), np.empty(0), np.empty(0)
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(mus)


def _merge(x, y, mu, radius_pix: float = 1.0):
    """One solution per image: hits on shared edges or corners within ``radius_pix`` merge."""
    order = np.argsort(-np.abs(mu))
    keep: list[int] = []
    for k in order:
        if all(np.hypot(x[k] - x[m], y[k] - y[m]) > radius_pix for m in keep):
            keep.append(k)
    keep = np.array(sorted(keep, key=lambda k: (y[k], x[k])), dtype=int)
    return x[keep], y[keep], mu[keep]


def solve_lens_equation(
    alpha_x: LensMap,
    alpha_y: LensMap,
    ra_src_deg: float,
    dec_src_deg: float,
    dls_ds_scale: float = 1.0,
    min_abs_mu: float = MIN_ABS_MU,
) -> ImageSolutions:
    """All image positions theta with beta(theta) = beta_0 on the map grid.

    Every grid cell is split into two triangles and mapped to the source plane with the
    deflections at its corners; the triangles containing beta_0 hold the images, located by
    linear interpolation within the triangle (exact for a lens mapping linear over one pixel,
    second-order accurate otherwise). Hits within 1 pixel of each other (beta_0 on a shared
    edge) are one image.

    Parameters
    ----------
    alpha_x, alpha_y : LensMap
        Deflections in arcsec along the pixel axes.
    ra_src_deg, dec_src_deg : float
        Source position beta_0 (deg, the map's tangent plane, as from :func:`to_source_plane`).
    dls_ds_scale : float
        D_ls/D_s of the source over that of the map normalisation.
    min_abs_mu : float
        Drop solutions with |mu| below this (default :data:`MIN_ABS_MU`): spurious solutions
        in cells that straddle a singular centre.

    Returns
    -------
    ImageSolutions
        Sorted by pixel row, then column.
    """
    if not (np.isfinite(ra_src_deg) and np.isfinite(dec_src_deg)):
        raise GccatError("the source position must be finite")
    bx, by = _beta_grid(alpha_x, alpha_y, float(dls_ds_scale))
    qx, qy = alpha_x.wcs.world_to_pixel_values(float(ra_src_deg), float(dec_src_deg))
    x, y, mu = _triangle_hits(bx, by, float(qx), float(qy))
    good = np.abs(mu) >= min_abs_mu
    x, y, mu = _merge(x[good], y[good], mu[good])
    if len(x):
        ra, dec = alpha_x.wcs.pixel_to_world_values(x, y)
        ra = np.mod(np.atleast_1d(ra), 360.0)
    else:
        ra, dec = np.empty(0), np.empty(0)
    return ImageSolutions(np.asarray(ra, float), np.atleast_1d(np.asarray(dec, float)), x, y, mu)


@dataclass
class CriticalCurve:
    """One closed or open det A = 0 contour and its caustic.

    Attributes
    ----------
    x, y : numpy.ndarray
        0-based pixel coordinates of the vertices, in contour order.
    ra, dec : numpy.ndarray
        The critical curve, ICRS deg.
    ra_caustic, dec_caustic : numpy.ndarray
        The same vertices mapped to the source plane (the caustic), deg.
    """

    x: np.ndarray
    y: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    ra_caustic: np.ndarray
    dec_caustic: np.ndarray


def critical_curves(alpha_x: LensMap, alpha_y: LensMap, dls_ds_scale: float = 1.0) -> list[CriticalCurve]:
    """Critical curves (det A = 0) of deflection maps at a source redshift, and their caustics.

    det A = (1 - s dax/dx)(1 - s day/dy) - s^2 dax/dy day/dx from the finite-difference
    derivatives of :func:`catalog.lensing.jacobian_determinant_from_deflection` (the
    deflection scales linearly with s = D_ls/D_s of the source over the map's); contours of
    0 are traced with ``contourpy`` (marching squares, linear interpolation between pixel
    centres) and mapped to the source plane with :func:`to_source_plane`.

    Parameters
    ----------
    alpha_x, alpha_y : LensMap
        Deflections in arcsec along the pixel axes.
    dls_ds_scale : float
        D_ls/D_s of the source over that of the map normalisation.

    Returns
    -------
    list of CriticalCurve
        Longest first.
    """
    import contourpy

    from catalog.lensing.derived import _deflection_derivatives

    _check_pair(alpha_x, alpha_y)
    s = float(dls_ds_scale)
    dax_dx, dax_dy, day_dx, day_dy = _deflection_derivatives(alpha_x, alpha_y)
    det = (1.0 - s * dax_dx) * (1.0 - s * day_dy) - s * s * dax_dy * day_dx
    ny, nx = det.shape
    gen = contourpy.contour_generator(
        np.arange(nx, dtype=float), np.arange(ny, dtype=float), det, line_type="Separate"
    )
    out = []
    for line in sorted(gen.lines(0.0), key=len, reverse=True):
        if len(line) < 2:
            continue
        x, y = line[:, 0], line[:, 1]
        ra, dec = alpha_x.wcs.pixel_to_world_values(x, y)
        ra = np.mod(ra, 360.0)
        rc, dc = to_source_plane(alpha_x, alpha_y, ra, dec, s)
        out.append(CriticalCurve(x, y, ra, dec, rc, dc))
    return out
