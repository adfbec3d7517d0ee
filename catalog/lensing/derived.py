"""Quantities derived from lens maps: kappa and gamma from deflections, det A, magnification,
the tangential eigenvalue, critical curves, and the distances that rescale a map to a source.

Deflections are in arcsec along the *pixel* axes; kappa, gamma, mu and D_ls/D_s are
dimensionless; Sigma_cr is in Msun per arcsec^2. HFF maps are normalised to D_ls/D_s = 1:
scale kappa and gamma by :func:`dls_ds` (the ``dls_ds_scale`` arguments) for a source at z_s.
"""

from __future__ import annotations

import astropy.cosmology
import numpy as np
import numpy.typing as npt
from astropy import constants as const
from astropy import units as u

from catalog.constants import COSMOLOGY
from catalog.errors import GccatError
from catalog.lensing.maps import LensMap, pixel_steps_arcsec

#: Cosmology of the source papers' physical scales (1" = 4.921 kpc at z = 0.348), the astropy
#: object of :data:`catalog.constants.COSMOLOGY`.
DEFAULT_COSMOLOGY = getattr(astropy.cosmology, COSMOLOGY["name"])(H0=COSMOLOGY["H0"], Om0=COSMOLOGY["Om0"])


def _deflection_derivatives(alpha_x: LensMap, alpha_y: LensMap):
    """d alpha_i / d theta_j along the pixel axes (dimensionless): dax_dx, dax_dy, day_dx, day_dy."""
    if (alpha_x.quantity, alpha_y.quantity) != ("x-arcsec-deflect", "y-arcsec-deflect"):
        # Pixel deflections need the pixel scale of the grid they were made on, which HFF
        # files do not record reliably; a swapped pair would flip gamma1.
        raise GccatError(
            f"need the x and y deflections in arcsec (x-arcsec-deflect, y-arcsec-deflect), "
            f"got {alpha_x.quantity} and {alpha_y.quantity}",
            file=alpha_y.path,
        )
    if alpha_x.shape != alpha_y.shape:
        raise GccatError(
            f"the x and y deflection maps differ in shape ({alpha_x.shape} vs {alpha_y.shape})",
            file=alpha_y.path,
        )
    if not alpha_x.wcs.wcs.compare(alpha_y.wcs.wcs, tolerance=1e-10):
        raise GccatError("the x and y deflection maps have different WCS", file=alpha_y.path)
    if min(alpha_x.shape) < 3:
        raise GccatError(
            "a deflection map needs at least 3x3 pixels for finite differences", file=alpha_x.path
        )
    sx, sy = pixel_steps_arcsec(alpha_x)
    # Second-order central differences inside and one-sided second order at the edges.
    dax_dy, dax_dx = np.gradient(alpha_x.data, sy, sx, edge_order=2)
    day_dy, day_dx = np.gradient(alpha_y.data, sy, sx, edge_order=2)
    return dax_dx, dax_dy, day_dx, day_dy


def kappa_gamma_from_deflection(
    alpha_x: LensMap, alpha_y: LensMap
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
    return tuple(
        LensMap(q, d, alpha_x.wcs.deepcopy(), alpha_x.header.copy(), alpha_x.path)
        for q, d in (("kappa", kappa), ("gamma1", gamma1), ("gamma2", gamma2), ("gamma", gamma))
    )


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


def magnification(
    kappa: npt.ArrayLike, gamma: npt.ArrayLike, *, dls_ds_scale: npt.ArrayLike = 1.0, absolute: bool = False
) -> np.ndarray:
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


def tangential_eigenvalue(
    kappa: npt.ArrayLike, gamma: npt.ArrayLike, *, dls_ds_scale: npt.ArrayLike = 1.0
) -> np.ndarray:
    """Tangential eigenvalue of the lens Jacobian, lambda_t = 1 - kappa - gamma (dimensionless).

    1/|lambda_t| is the stretch along the arc, used for size upper limits of lensed clusters.
    ``dls_ds_scale`` rescales kappa and gamma as in :func:`magnification`.
    """
    s = np.asarray(dls_ds_scale, dtype=np.float64)
    return 1.0 - s * np.asarray(kappa, dtype=np.float64) - s * np.asarray(gamma, dtype=np.float64)


def pc_per_arcsec(z: npt.ArrayLike, cosmology=None) -> np.ndarray:
    """Proper parsecs per arcsec at redshift ``z`` (angular diameter distance x 1 arcsec in rad).

    NaN where z is not finite or not positive (no angular scale of a source at z <= 0).
    """
    cosmo = DEFAULT_COSMOLOGY if cosmology is None else cosmology
    zz = np.asarray(z, dtype=np.float64)
    out = np.full(zz.shape, np.nan)
    ok = np.isfinite(zz) & (zz > 0)
    if ok.any():
        d_a = cosmo.angular_diameter_distance(zz[ok]).to_value(u.pc)
        out[ok] = d_a * (1.0 * u.arcsec).to_value(u.rad)
    return out


def on_critical_curve(
    kappa: npt.ArrayLike, gamma: npt.ArrayLike, tol: float = 0.05, *, dls_ds_scale: npt.ArrayLike = 1.0
) -> np.ndarray:
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


def kpc_per_arcsec(z_lens: float, cosmology=None) -> float:
    """Proper transverse scale at the lens, kpc per arcsec: D_l * (1 arcsec in rad).

    Parameters
    ----------
    z_lens : float
        Lens redshift (> 0).
    cosmology : astropy.cosmology.Cosmology, optional
        Default :data:`DEFAULT_COSMOLOGY`.
    """
    if not (np.isfinite(z_lens) and z_lens > 0):
        raise GccatError(f"the lens redshift must be positive, not {z_lens}")
    return float(pc_per_arcsec(z_lens, cosmology)) / 1000.0


def source_dls_ds(z_cluster: float | None, z_source: float, field_id: str) -> float:
    """D_ls/D_s of a source at ``z_source`` behind the cluster of ``field_id``; the source must
    lie behind the cluster (in front of it or at it, D_ls/D_s would be 0: no lensing).
    """
    from catalog.checks import Z_MAX

    if z_cluster is None or not np.isfinite(z_cluster):
        raise GccatError(
            f"--z-source needs the cluster redshift of field '{field_id}'; load it with 'gccat ingest fields'"
        )
    if not z_source > z_cluster:
        raise GccatError(
            f"--z-source must be above the cluster redshift of field '{field_id}' "
            f"(z = {z_cluster:g}), in ({z_cluster:g}, {Z_MAX:g}], not {z_source:g}"
        )
    return float(dls_ds(z_cluster, z_source))
