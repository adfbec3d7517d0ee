"""The GC density ``rho_gc`` on the kappa grid: the smoothing kernel, GC counts per pixel, and
the density by FFT (:func:`density_fft`) or by direct summation (:func:`density_direct`).

The kernel is ``W(d) = 1 / (S_L + d)^alpha`` with ``d`` and ``S_L`` in arcsec; its defaults,
``alpha = 1.6`` and ``S_L = 0.9"``, are ``GC_KERNEL_ALPHA`` and ``GC_KERNEL_SOFTENING_ARCSEC``
of ``catalog/constants.py``. ``rho_gc`` is in arcsec^-alpha.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import fft as sfft

from catalog.constants import GC_KERNEL_ALPHA, GC_KERNEL_SOFTENING_ARCSEC
from catalog.errors import GccatError
from catalog.gckappa.grid import as_positions, as_shape, kernel_params, pixel_index

#: Largest array ``density_direct`` builds at once (elements of float64).
DIRECT_MAX_ELEMENTS = 2**22


def _weight(d_arcsec: np.ndarray, alpha: float, softening_arcsec: float) -> np.ndarray:
    return (softening_arcsec + d_arcsec) ** -alpha


def kernel(
    shape,
    pixel_scale_arcsec: float,
    alpha: float = GC_KERNEL_ALPHA,
    softening_arcsec: float = GC_KERNEL_SOFTENING_ARCSEC,
) -> np.ndarray:
    """The GC smoothing kernel ``W(d) = 1 / (S_L + d)^alpha`` sampled on a pixel grid.

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)`` of the returned array; the kernel centre (``d = 0``) is at pixel
        ``(ny // 2, nx // 2)``, so odd sizes give a kernel symmetric under flips of either axis.
        To convolve a ``(ny, nx)`` grid linearly, use ``(2 ny - 1, 2 nx - 1)``.
    pixel_scale_arcsec : float
        Pixel size, arcsec.
    alpha : float
        Power-law index (1.6 in the paper).
    softening_arcsec : float
        Softening length ``S_L``, arcsec (0.9" in the paper).

    Returns
    -------
    numpy.ndarray
        ``W`` in arcsec^-alpha, float64, shape ``shape``.
    """
    ny, nx = as_shape(shape)
    scale, alpha, soft = kernel_params(pixel_scale_arcsec, alpha, softening_arcsec)
    dy = (np.arange(ny) - ny // 2)[:, None]
    dx = (np.arange(nx) - nx // 2)[None, :]
    return _weight(np.hypot(dy, dx) * scale, alpha, soft)


def count_grid(
    px: npt.ArrayLike, py: npt.ArrayLike, shape, weights: npt.ArrayLike | None = None
) -> np.ndarray:
    """GCs binned to the nearest pixel centre.

    Parameters
    ----------
    px, py : array_like
        GC positions, pixels (0-based, pixel centres at integers).
    shape : tuple of int
        ``(ny, nx)`` of the grid.
    weights : array_like, optional
        A weight per GC (default 1).

    Returns
    -------
    numpy.ndarray
        ``(ny, nx)`` float64 counts (or summed weights) per pixel. Positions off the grid are
        ignored; a position exactly half-way between two pixel centres goes to the upper one.
    """
    shape = as_shape(shape)
    x, y = as_positions(px, py)
    flat, on = pixel_index(x, y, shape)
    w = None
    if weights is not None:
        w = np.asarray(weights, dtype=float).ravel()
        if w.shape != x.shape:
            raise GccatError(f"weights has {w.size} values for {x.size} GCs")
        if not np.isfinite(w).all():
            raise GccatError("weights must be finite")
        w = w[on]
    return np.bincount(flat, weights=w, minlength=shape[0] * shape[1]).astype(float).reshape(shape)


def kernel_ft(
    shape: tuple[int, int], scale: float, alpha: float, soft: float
) -> tuple[np.ndarray, tuple[int, int]]:
    """Real FFT of the kernel laid out for wrap-free convolution of a ``shape`` grid.

    A period ``P >= 2 n - 1`` keeps every offset ``-(n-1) .. n-1`` on its own residue, so the
    circular convolution equals the linear one on the grid (output outside it is discarded).
    This needs half the FFT size per axis that ``fftconvolve(mode="same")`` would.
    """
    ny, nx = shape
    fy = sfft.next_fast_len(2 * ny - 1, real=True)
    fx = sfft.next_fast_len(2 * nx - 1, real=True)
    iy = np.arange(fy)
    ix = np.arange(fx)
    dy = np.minimum(iy, fy - iy)[:, None]
    dx = np.minimum(ix, fx - ix)[None, :]
    w = _weight(np.hypot(dy, dx) * scale, alpha, soft)
    # The kernel is real and even, so its transform is real: keep half the memory.
    ft = sfft.rfft2(w, workers=-1).real
    return ft, (fy, fx)


def convolve(counts: np.ndarray, kft: np.ndarray, fshape: tuple[int, int]) -> np.ndarray:
    """Counts convolved with a kernel given by its real FFT ``kft`` on the padded ``fshape``,
    cropped back to the counts' shape.
    """
    ny, nx = counts.shape
    c = sfft.rfft2(counts, s=fshape, workers=-1)
    c *= kft
    out = sfft.irfft2(c, s=fshape, workers=-1)[:ny, :nx].copy()
    # Every term is positive; clip the round-off of empty grids.
    return np.maximum(out, 0.0, out=out)


def density_fft(
    px: npt.ArrayLike,
    py: npt.ArrayLike,
    shape,
    pixel_scale_arcsec: float,
    alpha: float = GC_KERNEL_ALPHA,
    softening_arcsec: float = GC_KERNEL_SOFTENING_ARCSEC,
) -> np.ndarray:
    """GC density ``rho_gc`` on the grid, by FFT.

    ``rho_gc(x) = sum_i W(d_i)`` with ``W(d) = 1 / (S_L + d)^alpha`` and ``d_i`` the distance in
    arcsec from the pixel centre ``x`` to GC ``i``. The sum is a linear (zero-padded, not
    circular) convolution of the GC counts per pixel with the kernel: GCs near one edge do not
    leak into the opposite edge. GCs whose nearest pixel is off the grid are ignored.

    Discretisation: each GC is moved to its pixel centre, by at most ``delta = pixel_scale / sqrt(2)``.
    For GCs at pixel centres the result equals ``density_direct`` to round-off. Otherwise, since
    ``W(d') / W(d)`` lies in ``[(1 + delta/S_L)^-alpha, (1 + delta/S_L)^alpha]`` whenever
    ``|d' - d| <= delta``, every pixel obeys

        ``(1 + delta/S_L)^-alpha <= rho_fft / rho_direct <= (1 + delta/S_L)^alpha``

    (3.8 % at 0.03"/pix, 26 % at 0.2"/pix). This worst case is reached only next to an isolated
    GC; where many GCs contribute, the errors average out and are typically 10-100 times smaller.

    Parameters
    ----------
    px, py : array_like
        GC positions, pixels.
    shape : tuple of int
        ``(ny, nx)`` of the grid.
    pixel_scale_arcsec : float
        Pixel size, arcsec.
    alpha : float
        Kernel power-law index.
    softening_arcsec : float
        Kernel softening ``S_L``, arcsec.

    Returns
    -------
    numpy.ndarray
        ``rho_gc``, ``(ny, nx)`` float64, in arcsec^-alpha (a sum of kernel values, not a surface
        density; ``beta`` converts it to convergence).

    Notes
    -----
    Memory: the FFT grid is ``next_fast_len(2n - 1)`` per axis; a 4096x4096 grid needs about 2 GB.
    """
    shape = as_shape(shape)
    scale, alpha, soft = kernel_params(pixel_scale_arcsec, alpha, softening_arcsec)
    counts = count_grid(px, py, shape)
    kft, fshape = kernel_ft(shape, scale, alpha, soft)
    return convolve(counts, kft, fshape)


def density_direct(
    px: npt.ArrayLike,
    py: npt.ArrayLike,
    shape,
    pixel_scale_arcsec: float,
    alpha: float = GC_KERNEL_ALPHA,
    softening_arcsec: float = GC_KERNEL_SOFTENING_ARCSEC,
    max_elements: int = DIRECT_MAX_ELEMENTS,
) -> np.ndarray:
    """GC density ``rho_gc`` by direct summation over GCs at their exact positions.

    The reference for ``density_fft``: the same GCs (those whose nearest pixel is on the grid),
    but unbinned. Cost is O(N_gc x N_pixels); work is done in chunks of at most ``max_elements``
    pixel-GC pairs, so memory stays bounded.

    Parameters
    ----------
    px, py : array_like
        GC positions, pixels.
    shape : tuple of int
        ``(ny, nx)`` of the grid.
    pixel_scale_arcsec : float
        Pixel size, arcsec.
    alpha : float
        Kernel power-law index.
    softening_arcsec : float
        Kernel softening ``S_L``, arcsec.
    max_elements : int
        Largest number of pixel-GC pairs held at once.

    Returns
    -------
    numpy.ndarray
        ``rho_gc``, ``(ny, nx)`` float64, arcsec^-alpha.
    """
    ny, nx = shape = as_shape(shape)
    scale, alpha, soft = kernel_params(pixel_scale_arcsec, alpha, softening_arcsec)
    x, y = as_positions(px, py)
    _, on = pixel_index(x, y, shape)
    x, y = x[on], y[on]
    npix = ny * nx
    out = np.zeros(npix)
    if x.size == 0:
        return out.reshape(shape)
    max_elements = max(int(max_elements), 1)
    gc_chunk = min(x.size, max_elements)
    pix_chunk = max(1, max_elements // gc_chunk)
    for p0 in range(0, npix, pix_chunk):
        pix = np.arange(p0, min(p0 + pix_chunk, npix))
        gx = (pix % nx).astype(float)[:, None]
        gy = (pix // nx).astype(float)[:, None]
        for g0 in range(0, x.size, gc_chunk):
            d = np.hypot(gx - x[None, g0 : g0 + gc_chunk], gy - y[None, g0 : g0 + gc_chunk])
            out[p0 : p0 + pix.size] += _weight(d * scale, alpha, soft).sum(axis=1)
    return out.reshape(shape)
