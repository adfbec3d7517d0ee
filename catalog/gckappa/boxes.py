"""GC counts and mean kappa in boxes, and the fit of ``<kappa> = A n_gc^B`` over them
(least squares in log-log or Poisson likelihood, with bootstrap errors).

Box sides are in pixels, areas in arcsec^2, GC surface densities in arcsec^-2.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from catalog.checks import as_grid as _grid
from catalog.checks import as_mask as _mask
from catalog.checks import as_rng as _rng
from catalog.errors import GccatError
from catalog.gckappa.density import count_grid
from catalog.gckappa.grid import as_positive


def box_stats(
    px: npt.ArrayLike, py: npt.ArrayLike, kappa, mask, box_pix: int, pixel_scale_arcsec: float
) -> dict[str, np.ndarray]:
    """GC counts and mean convergence in square boxes tiling the grid.

    Boxes start at pixel ``(0, 0)`` and step by ``box_pix``; boxes cut by the grid's far edges
    count their missing part as masked. Only unmasked pixels count: GCs in masked pixels are not
    counted and the area is the unmasked area. Boxes with more than half their area masked are
    left out.

    Parameters
    ----------
    px, py : array_like
        GC positions, pixels.
    kappa : numpy.ndarray
        ``(ny, nx)`` convergence; must be finite on unmasked pixels.
    mask : numpy.ndarray of bool or None
        ``(ny, nx)``, True where masked.
    box_pix : int
        Box side, pixels (3" in the paper: ``round(3 / pixel_scale_arcsec)``).
    pixel_scale_arcsec : float
        Pixel size, arcsec.

    Returns
    -------
    dict of numpy.ndarray
        One entry per kept box, in row-major order: ``ix0``, ``iy0`` (lower-left pixel), ``n_gc``,
        ``area_arcsec2`` (unmasked, arcsec^2), ``n_per_arcsec2`` (arcsec^-2), ``kappa_mean`` (over
        unmasked pixels), ``masked_fraction``.
    """
    scale = as_positive("pixel_scale_arcsec", pixel_scale_arcsec)
    k = _grid("kappa", kappa)
    shape = k.shape
    m = _mask(mask, shape)
    if isinstance(box_pix, bool) or not isinstance(box_pix, int | np.integer) or box_pix < 1:
        raise GccatError(f"box_pix must be a positive integer, got {box_pix!r}")
    b = int(box_pix)
    if not np.isfinite(k[~m]).all():
        raise GccatError("kappa must be finite on unmasked pixels")
    good = ~m
    counts = count_grid(px, py, shape) * good
    ny, nx = shape
    nby, nbx = -(-ny // b), -(-nx // b)
    pad = ((0, nby * b - ny), (0, nbx * b - nx))

    def block_sum(a: np.ndarray) -> np.ndarray:
        return np.pad(a, pad).reshape(nby, b, nbx, b).sum(axis=(1, 3))

    n_good = block_sum(good.astype(float))
    n_gc = block_sum(counts)
    k_sum = block_sum(np.where(good, k, 0.0))
    masked_fraction = 1.0 - n_good / b**2
    keep = masked_fraction <= 0.5
    iy0, ix0 = np.meshgrid(np.arange(nby) * b, np.arange(nbx) * b, indexing="ij")
    area = n_good[keep] * scale**2
    n = np.rint(n_gc[keep]).astype(np.int64)
    return {
        "ix0": ix0[keep],
        "iy0": iy0[keep],
        "n_gc": n,
        "area_arcsec2": area,
        "n_per_arcsec2": n / area,
        "kappa_mean": k_sum[keep] / n_good[keep],
        "masked_fraction": masked_fraction[keep],
    }


def _wls_line(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted least-squares ``y = a + b x`` for every row of weights ``w`` (bootstrap multiplicities)."""
    sw = w.sum(axis=1)
    mx = (w @ x) / sw
    my = (w @ y) / sw
    sxx = (w @ (x * x)) / sw - mx**2
    sxy = (w @ (x * y)) / sw - mx * my
    with np.errstate(divide="ignore", invalid="ignore"):
        # A resample of identical x has no slope: NaN, dropped from the spread.
        b = np.where(sxx > 1e-12 * np.maximum(mx**2, 1.0), sxy / sxx, np.nan)
    return my - b * mx, b


def _poisson_line(
    x: np.ndarray, counts: np.ndarray, log_area: np.ndarray, w: np.ndarray, max_iter: int = 100
) -> tuple[np.ndarray, np.ndarray]:
    """Poisson maximum likelihood of ``E[counts] = area exp(a + b x)`` for every row of weights."""
    a, b = _wls_line(x, np.log((counts + 0.5) / np.exp(log_area)), w)
    a, b = np.nan_to_num(a), np.nan_to_num(b)
    for _ in range(max_iter):
        mu = np.exp(a[:, None] + b[:, None] * x[None, :] + log_area[None, :])
        wr = w * (counts[None, :] - mu)
        wm = w * mu
        g0, g1 = wr.sum(axis=1), wr @ x
        h00, h01, h11 = wm.sum(axis=1), wm @ x, wm @ (x * x)
        det = h00 * h11 - h01**2
        with np.errstate(divide="ignore", invalid="ignore"):
            da = (h11 * g0 - h01 * g1) / det
            db = (h00 * g1 - h01 * g0) / det
        # A trust region keeps exp() from overflowing on a poor start; the likelihood is concave.
        da, db = np.clip(da, -2.0, 2.0), np.clip(db, -0.5, 0.5)
        a, b = a + da, b + db
        if np.nanmax(np.abs(np.r_[da, db])) < 1e-10:
            break
    bad = ~(det > 0)
    a[bad] = b[bad] = np.nan
    return a, b


def fit_power_law(
    n_per_arcsec2,
    kappa_mean,
    rng: np.random.Generator,
    n_boot: int = 1000,
    method: str = "lsq",
    area_arcsec2=None,
) -> dict:
    """Fit ``<kappa> = A n_gc^B`` over boxes, with bootstrap errors.

    Parameters
    ----------
    n_per_arcsec2 : array_like
        GC surface density per box, arcsec^-2.
    kappa_mean : array_like
        Mean convergence per box.
    rng : numpy.random.Generator
        Source of the bootstrap resamples.
    n_boot : int
        Number of bootstrap resamples of the boxes (>= 2).
    method : {"lsq", "poisson"}
        ``"lsq"`` (the paper's): least squares of ``log10 kappa`` on ``log10 n`` over boxes with
        ``n > 0`` and ``kappa > 0``. Poisson noise in ``n`` flattens this slope (regression
        dilution) and dropping empty boxes biases it further, both badly at a few GCs per box.
        ``"poisson"``: maximum likelihood of the box counts ``N ~ Poisson(area (kappa/A)^(1/B))``
        over boxes with ``kappa > 0`` (empty ones included), which treats ``kappa`` as exact;
        needs ``area_arcsec2``. It cannot describe ``B <= 0`` (GCs not increasing with kappa).
    area_arcsec2 : array_like, optional
        Unmasked area per box, arcsec^2 (``box_stats``' ``area_arcsec2``); counts are
        ``n_per_arcsec2 * area_arcsec2``.

    Returns
    -------
    dict
        ``A`` (convergence at 1 GC per arcsec^2), ``B``; ``A_err``, ``B_err``, the standard
        deviations over bootstrap resamples; ``A_p16``, ``A_p84``, ``B_p16``, ``B_p84``, their
        16th and 84th percentiles; ``n_boxes``, the number of boxes fitted; ``method``.
    """
    rng = _rng(rng)
    n = np.asarray(n_per_arcsec2, dtype=float).ravel()
    k = np.asarray(kappa_mean, dtype=float).ravel()
    if n.shape != k.shape:
        raise GccatError(f"n_per_arcsec2 and kappa_mean differ in length ({n.size} and {k.size})")
    if isinstance(n_boot, bool) or not isinstance(n_boot, int | np.integer) or n_boot < 2:
        raise GccatError(f"n_boot must be an integer >= 2, got {n_boot!r}")
    if method == "lsq":
        use = np.isfinite(n) & np.isfinite(k) & (n > 0) & (k > 0)
    elif method == "poisson":
        if area_arcsec2 is None:
            raise GccatError("method 'poisson' needs area_arcsec2 (the unmasked area of each box)")
        area = np.asarray(area_arcsec2, dtype=float).ravel()
        if area.shape != n.shape:
            raise GccatError(f"area_arcsec2 has {area.size} values for {n.size} boxes")
        use = np.isfinite(n) & np.isfinite(k) & np.isfinite(area) & (n >= 0) & (k > 0) & (area > 0)
    else:
        raise GccatError(f"method must be 'lsq' or 'poisson', got {method!r}")
    m = int(use.sum())
    if m < 3:
        raise GccatError(f"a power-law fit needs at least 3 usable boxes, got {m}")
    # Row 0 is the data itself; the others are bootstrap multiplicities of the boxes.
    w = np.vstack([np.ones((1, m)), rng.multinomial(m, np.full(m, 1.0 / m), size=n_boot)])
    if method == "lsq":
        log_a, b = _wls_line(np.log10(n[use]), np.log10(k[use]), w)
        a_all, b_all = 10.0**log_a, b
    else:
        counts = np.rint(n[use] * area[use])
        # Fit ln N = ln area + a + b ln kappa, then invert: B = 1/b, A = exp(-a/b).
        a, b = _poisson_line(np.log(k[use]), counts, np.log(area[use]), w)
        with np.errstate(divide="ignore", invalid="ignore"):
            b_all = np.where(b > 0, 1.0 / b, np.nan)
            a_all = np.exp(-a * b_all)
    if not (np.isfinite(a_all[0]) and np.isfinite(b_all[0])):
        raise GccatError(
            "the power-law fit is undefined for these boxes (no spread in n_gc or kappa, "
            "or GCs not increasing with kappa for method 'poisson')"
        )
    ab, bb = a_all[1:], b_all[1:]
    ok = np.isfinite(ab) & np.isfinite(bb)
    ab, bb = ab[ok], bb[ok]
    out = {"A": float(a_all[0]), "B": float(b_all[0]), "n_boxes": m, "method": method}
    if ab.size < 2:
        # Too few boxes with spread for any resample to be fitted: no error estimate.
        return out | dict.fromkeys(("A_err", "B_err", "A_p16", "A_p84", "B_p16", "B_p84"), np.nan)
    return out | {
        "A_err": float(np.std(ab, ddof=1)),
        "B_err": float(np.std(bb, ddof=1)),
        "A_p16": float(np.percentile(ab, 16)),
        "A_p84": float(np.percentile(ab, 84)),
        "B_p16": float(np.percentile(bb, 16)),
        "B_p84": float(np.percentile(bb, 84)),
    }
