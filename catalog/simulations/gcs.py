"""Synthetic GCs that trace a convergence map as ``<kappa> = A n_gc^B``, and bright-source masks.

Positions are pixel coordinates of the kappa grid (0-based, centres at integers), densities
in arcsec^-2; random numbers come only from the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

import numpy as np

from catalog.checks import as_grid as _grid
from catalog.checks import as_mask as _mask
from catalog.checks import as_rng as _rng
from catalog.errors import GccatError
from catalog.gckappa.grid import as_positive, as_shape


def simulate_gcs(
    kappa,
    pixel_scale_arcsec: float,
    rng: np.random.Generator,
    *,
    A: float = 0.4,
    B: float = 0.7,
    n_total: float | None = None,
    background_per_arcsec2: float = 0.0,
    mask=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw GC positions that follow the convergence as ``<kappa> = A n_gc^B``.

    GCs are a Poisson process with surface density ``n_gc = (kappa / A)^(1/B)`` arcsec^-2
    (zero where ``kappa <= 0``), optionally rescaled to ``n_total`` expected GCs, plus a uniform
    background. Rescaling by ``f`` changes the effective ``A`` to ``A f^-B``.

    Parameters
    ----------
    kappa : numpy.ndarray
        ``(ny, nx)`` convergence, finite.
    pixel_scale_arcsec : float
        Pixel size, arcsec.
    rng : numpy.random.Generator
        Source of the draws.
    A, B : float
        Relation parameters (> 0); ``A`` is the convergence at 1 GC per arcsec^2.
    n_total : float, optional
        Expected number of kappa-tracing GCs on the grid (background not included).
    background_per_arcsec2 : float
        Uniform contaminant density, arcsec^-2.
    mask : numpy.ndarray of bool, optional
        GCs falling in masked pixels are removed.

    Returns
    -------
    px, py : numpy.ndarray
        Positions, pixels, uniform within their pixel, in random order.
    """
    scale = as_positive("pixel_scale_arcsec", pixel_scale_arcsec)
    rng = _rng(rng)
    a, b = as_positive("A", A), as_positive("B", B)
    k = _grid("kappa", kappa)
    if not np.isfinite(k).all():
        raise GccatError("kappa must be finite to simulate GCs from it")
    bg = float(background_per_arcsec2)
    if not np.isfinite(bg) or bg < 0:
        raise GccatError(f"background_per_arcsec2 must be finite and >= 0, got {background_per_arcsec2!r}")
    m = _mask(mask, k.shape)
    lam = np.where(k > 0, np.maximum(k, 0.0) / a, 0.0) ** (1.0 / b) * scale**2
    if n_total is not None:
        nt = float(n_total)
        if not np.isfinite(nt) or nt < 0:
            raise GccatError(f"n_total must be finite and >= 0, got {n_total!r}")
        if lam.sum() <= 0:
            raise GccatError("kappa is nowhere positive: cannot rescale to n_total")
        lam *= nt / lam.sum()
    lam += bg * scale**2
    n_pix = rng.poisson(lam)
    n_pix[m] = 0
    iy, ix = np.nonzero(n_pix)
    reps = n_pix[iy, ix]
    n = int(reps.sum())
    x = np.repeat(ix, reps) + rng.uniform(-0.5, 0.5, n)
    y = np.repeat(iy, reps) + rng.uniform(-0.5, 0.5, n)
    order = rng.permutation(n)
    return x[order], y[order]


def simulate_mask(
    shape, rng: np.random.Generator, n_disks: int = 5, radius_pix: tuple[float, float] = (10, 40)
) -> np.ndarray:
    """Circular masks like those around bright sources.

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)`` of the grid.
    rng : numpy.random.Generator
        Source of the draws.
    n_disks : int
        Number of disks; centres uniform over the grid (disks may overlap or be cut by edges).
    radius_pix : tuple of float
        Radii are uniform in ``[min, max]``, pixels.

    Returns
    -------
    numpy.ndarray of bool
        ``(ny, nx)``, True inside any disk (pixel centre within the radius).
    """
    ny, nx = as_shape(shape)
    rng = _rng(rng)
    if isinstance(n_disks, bool) or not isinstance(n_disks, int | np.integer) or n_disks < 0:
        raise GccatError(f"n_disks must be a non-negative integer, got {n_disks!r}")
    try:
        rmin, rmax = (float(r) for r in radius_pix)
    except (TypeError, ValueError):
        raise GccatError(f"radius_pix must be two numbers (min, max), got {radius_pix!r}") from None
    if not (np.isfinite(rmin) and np.isfinite(rmax) and 0 <= rmin <= rmax):
        raise GccatError(f"radius_pix must satisfy 0 <= min <= max, got {radius_pix!r}")
    mask = np.zeros((ny, nx), dtype=bool)
    cx = rng.uniform(-0.5, nx - 0.5, n_disks)
    cy = rng.uniform(-0.5, ny - 0.5, n_disks)
    radii = rng.uniform(rmin, rmax, n_disks)
    for x0, y0, r in zip(cx, cy, radii, strict=True):
        # Work on the disk's bounding box only: large grids stay cheap.
        ix0, ix1 = max(int(np.floor(x0 - r)), 0), min(int(np.ceil(x0 + r)) + 1, nx)
        iy0, iy1 = max(int(np.floor(y0 - r)), 0), min(int(np.ceil(y0 + r)) + 1, ny)
        yy, xx = np.ogrid[iy0:iy1, ix0:ix1]
        mask[iy0:iy1, ix0:ix1] |= np.hypot(xx - x0, yy - y0) <= r
    return mask
