"""Pixel-by-pixel comparison of the convergence with the GC density: ``beta`` and the correlation
coefficients of log kappa and log rho_gc (kappa dimensionless, rho_gc in arcsec^-alpha).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from catalog.checks import as_grid as _grid
from catalog.errors import GccatError


def _valid_pair(kappa, rho_gc, valid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    k = _grid("kappa", kappa)
    r = _grid("rho_gc", rho_gc, k.shape)
    v = np.isfinite(k) & np.isfinite(r)
    if valid is not None:
        vv = np.asarray(valid)
        if vv.shape != k.shape or vv.dtype != bool:
            raise GccatError(f"valid must be a boolean array of shape {k.shape}")
        v &= vv
    return k, r, v


def beta(kappa, rho_gc, valid=None) -> float:
    """Least-squares scale from GC density to convergence, ``beta = sum(kappa rho) / sum(rho^2)``.

    Parameters
    ----------
    kappa : numpy.ndarray
        ``(ny, nx)`` convergence (dimensionless).
    rho_gc : numpy.ndarray
        ``(ny, nx)`` GC density, arcsec^-alpha.
    valid : numpy.ndarray of bool, optional
        Pixels to use (default: all); non-finite pixels are always left out.

    Returns
    -------
    float
        ``beta`` in arcsec^alpha, so that ``beta * rho_gc`` approximates ``kappa``.
    """
    k, r, v = _valid_pair(kappa, rho_gc, valid)
    den = float(np.sum(r[v] ** 2))
    if den <= 0:
        raise GccatError("rho_gc is zero on every valid pixel: beta is undefined")
    return float(np.sum(k[v] * r[v]) / den)


def pixel_correlation(kappa, rho_gc, valid=None, window=None, max_rank_pixels: int = 2_000_000) -> dict:
    """Pixel-by-pixel comparison of convergence and GC density.

    Parameters
    ----------
    kappa : numpy.ndarray
        ``(ny, nx)`` convergence.
    rho_gc : numpy.ndarray
        ``(ny, nx)`` GC density, arcsec^-alpha.
    valid : numpy.ndarray of bool, optional
        Pixels to use (default: all finite ones).
    window : numpy.ndarray, optional
        ``(ny, nx)`` density that a uniform unit surface density would give over the footprint,
        e.g. ``density_fft(ix, iy, shape, scale)`` with one point at every unmasked pixel centre.
        The kernel's long tail makes ``rho_gc`` fall towards the edges and masks of any field;
        dividing by ``window`` removes that imprint from the two correlation coefficients
        (``beta`` and ``residual`` always use ``rho_gc`` as given).
    max_rank_pixels : int
        Spearman's rank correlation uses at most this many pixels, a fixed random subset
        (seed 0): both maps are smooth over many pixels, so a 4096^2 grid adds no information
        beyond ~10^6 pixels but costs seconds of sorting.

    Returns
    -------
    dict
        ``beta`` (arcsec^alpha); ``pearson_log`` and ``spearman_log``, correlation coefficients of
        ``log10 kappa`` and ``log10 rho_gc`` over valid pixels where both are > 0 (NaN if fewer
        than 3 such pixels); ``residual``, ``kappa - beta rho_gc`` (NaN where not valid);
        ``n_pixels``, the number of valid pixels; ``n_pixels_log``, the number used by the
        correlations.
    """
    k, r, v = _valid_pair(kappa, rho_gc, valid)
    b = beta(k, r, v)
    residual = np.where(v, k - b * r, np.nan)
    n_pixels = int(np.count_nonzero(v))
    rr = r
    if window is not None:
        w = _grid("window", window, k.shape)
        v = v & np.isfinite(w) & (w > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            rr = np.where(v, r / np.where(w > 0, w, 1.0), np.nan)
    pos = v & (k > 0) & (rr > 0)
    pearson = spearman = np.nan
    if pos.sum() >= 3:
        lk, lr = np.log10(k[pos]), np.log10(rr[pos])
        # A constant field has no defined correlation; avoid numpy's divide warnings.
        if np.ptp(lk) > 0 and np.ptp(lr) > 0:
            pearson = float(np.corrcoef(lk, lr)[0, 1])
            if lk.size > max_rank_pixels:
                pick = np.random.default_rng(0).choice(lk.size, max_rank_pixels, replace=False)
                lk, lr = lk[pick], lr[pick]
            spearman = float(stats.spearmanr(lk, lr).statistic)
    return {
        "beta": b,
        "pearson_log": pearson,
        "spearman_log": spearman,
        "residual": residual,
        "n_pixels": n_pixels,
        "n_pixels_log": int(pos.sum()),
    }
