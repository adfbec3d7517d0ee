"""Monte Carlo inpainting of masked regions with GCs drawn from the density of the others."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from catalog.checks import as_grid as _grid
from catalog.checks import as_mask as _mask
from catalog.checks import as_rng as _rng
from catalog.constants import GC_KERNEL_ALPHA, GC_KERNEL_SOFTENING_ARCSEC
from catalog.errors import GccatError
from catalog.gckappa.density import convolve, count_grid, kernel_ft
from catalog.gckappa.grid import as_positions, kernel_params


def inpaint(
    px: npt.ArrayLike,
    py: npt.ArrayLike,
    mask,
    rho_gc,
    rng: np.random.Generator,
    n_iter: int = 1,
    alpha: float = GC_KERNEL_ALPHA,
    softening_arcsec: float = GC_KERNEL_SOFTENING_ARCSEC,
    pixel_scale_arcsec: float | None = None,
    window=None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Fill masked pixels with Monte Carlo GCs drawn from the density of the unmasked ones.

    Each iteration calibrates a Poisson intensity per pixel ``lambda = c rho_gc`` on the unmasked
    pixels, ``c = N_unmasked / sum(rho_gc over unmasked pixels)``, draws a Poisson number of GCs
    in every masked pixel (uniform within the pixel) and recomputes ``rho_gc`` from the observed
    plus drawn GCs. The next iteration discards the drawn GCs and redraws from this newest
    density, which no longer has the dip that the empty mask left in the first estimate.

    Parameters
    ----------
    px, py : array_like
        Observed GC positions, pixels. GCs already inside masked pixels are kept as they are.
    mask : numpy.ndarray of bool
        ``(ny, nx)``, True where the image is masked.
    rho_gc : numpy.ndarray
        ``(ny, nx)`` first density estimate from the observed GCs (``density_fft``), arcsec^-alpha.
    rng : numpy.random.Generator
        Source of the random draws.
    n_iter : int
        Number of draw-and-recompute iterations (>= 1).
    alpha, softening_arcsec : float
        Kernel parameters (``softening_arcsec`` in arcsec), as for ``density_fft``.
    pixel_scale_arcsec : float
        Pixel size, arcsec (required).
    window : numpy.ndarray, optional
        ``(ny, nx)`` density of a uniform unit surface density over the whole grid (one point at
        every pixel centre through ``density_fft``). If given, the intensity is
        ``lambda = c rho_gc / window`` (``c`` calibrated the same way), which removes the fall of
        ``rho_gc`` towards the grid edges: without it masks near the centre of the grid are
        over-filled and masks near the edges under-filled.

    Returns
    -------
    px_all, py_all : numpy.ndarray
        Observed GCs followed by the GCs drawn in the last iteration, pixels.
    rho_final : numpy.ndarray
        ``rho_gc`` of ``px_all, py_all``, arcsec^-alpha.
    n_added : int
        Number of GCs drawn in the last iteration.
    """
    if pixel_scale_arcsec is None:
        raise GccatError("inpaint needs pixel_scale_arcsec (arcsec per pixel)")
    scale, alpha, soft = kernel_params(pixel_scale_arcsec, alpha, softening_arcsec)
    rng = _rng(rng)
    rho = _grid("rho_gc", rho_gc)
    shape = rho.shape
    mask = _mask(mask, shape)
    if isinstance(n_iter, bool) or not isinstance(n_iter, int | np.integer) or n_iter < 1:
        raise GccatError(f"n_iter must be a positive integer, got {n_iter!r}")
    if not np.isfinite(rho).all():
        raise GccatError("rho_gc must be finite")
    x, y = as_positions(px, py)
    if mask.all():
        raise GccatError("every pixel is masked: there is nothing to calibrate the inpainting on")
    if not mask.any():
        return x.copy(), y.copy(), rho.copy(), 0

    if window is None:
        inv_window = np.ones(shape)
    else:
        w = _grid("window", window, shape)
        if not (np.isfinite(w).all() and (w > 0).all()):
            raise GccatError("window must be finite and positive on every pixel")
        inv_window = 1.0 / w
    counts = count_grid(x, y, shape)
    n_unmasked = counts[~mask].sum()
    miy, mix = np.nonzero(mask)
    kft, fshape = kernel_ft(shape, scale, alpha, soft)
    add_x = add_y = np.empty(0)
    for _ in range(n_iter):
        shape_rho = rho * inv_window
        total = shape_rho[~mask].sum()
        if total <= 0:
            raise GccatError("rho_gc is zero on every unmasked pixel: nothing to calibrate the inpainting on")
        n_pix = rng.poisson(n_unmasked / total * shape_rho[mask])
        n_add = int(n_pix.sum())
        add_x = np.repeat(mix, n_pix) + rng.uniform(-0.5, 0.5, n_add)
        add_y = np.repeat(miy, n_pix) + rng.uniform(-0.5, 0.5, n_add)
        rho = convolve(counts + count_grid(add_x, add_y, shape), kft, fshape)
    return np.concatenate([x, add_x]), np.concatenate([y, add_y]), rho, int(add_x.size)
