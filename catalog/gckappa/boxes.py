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
from catalog.checks import check_number
from catalog.constants import BOOT_CHUNK
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


def _row_dot(w: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``w @ v`` row by row with numpy's pairwise sum: a row's value does not depend on the
    rows beside it (BLAS gemv sums a row differently with the rows that share its block), so
    the bootstrap fits are the same to the bit whatever the blocks they are cut into.
    """
    return (w * v).sum(axis=1)


def _wls_line(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted least-squares ``y = a + b x`` for every row of weights ``w`` (bootstrap multiplicities)."""
    sw = w.sum(axis=1)
    mx = _row_dot(w, x) / sw
    my = _row_dot(w, y) / sw
    sxx = _row_dot(w, x * x) / sw - mx**2
    sxy = _row_dot(w, x * y) / sw - mx * my
    with np.errstate(divide="ignore", invalid="ignore"):
        # A resample of identical x has no slope: NaN, dropped from the spread.
        b = np.where(sxx > 1e-12 * np.maximum(mx**2, 1.0), sxy / sxx, np.nan)
    return my - b * mx, b


def _poisson_line(
    x: np.ndarray, counts: np.ndarray, log_area: np.ndarray, w: np.ndarray, max_iter: int = 100
) -> tuple[np.ndarray, np.ndarray]:
    """Poisson maximum likelihood of ``E[counts] = area exp(a + b x)`` for every row of weights.

    Each row iterates until its own Newton step is below 1e-10 (not until the slowest row of
    its block converges), so a row's fit does not depend on the rows fitted with it.
    """
    a, b = _wls_line(x, np.log((counts + 0.5) / np.exp(log_area)), w)
    a, b = np.nan_to_num(a), np.nan_to_num(b)
    det = np.full(a.shape, np.nan)
    todo = np.arange(a.size)
    for _ in range(max_iter):
        if not todo.size:
            break
        wt, at, bt = w[todo], a[todo], b[todo]
        mu = np.exp(at[:, None] + bt[:, None] * x[None, :] + log_area[None, :])
        wr = wt * (counts[None, :] - mu)
        wm = wt * mu
        g0, g1 = wr.sum(axis=1), _row_dot(wr, x)
        h00, h01, h11 = wm.sum(axis=1), _row_dot(wm, x), _row_dot(wm, x * x)
        dt = h00 * h11 - h01**2
        with np.errstate(divide="ignore", invalid="ignore"):
            da = (h11 * g0 - h01 * g1) / dt
            db = (h00 * g1 - h01 * g0) / dt
        # A trust region keeps exp() from overflowing on a poor start; the likelihood is concave.
        da, db = np.clip(da, -2.0, 2.0), np.clip(db, -0.5, 0.5)
        a[todo], b[todo], det[todo] = at + da, bt + db, dt
        # a NaN step (a singular row) ends that row's iterations, as a small one does
        todo = todo[np.maximum(np.abs(da), np.abs(db)) >= 1e-10]
    bad = ~(det > 0)
    a[bad] = b[bad] = np.nan
    return a, b


def power_law_block(counts: np.ndarray, method: str, *data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``A`` and ``B`` of :func:`fit_power_law` for a block of bootstrap resamples (one Dask task
    of ``gccat correlate --scheduler``).

    Parameters
    ----------
    counts : numpy.ndarray
        ``(n_rows, n_boxes)`` multiplicities of the used boxes, one resample a row (integers).
    method : {"lsq", "poisson"}
        As :func:`fit_power_law`.
    *data : numpy.ndarray
        ``lsq``: log10 n (arcsec^-2) and log10 kappa of the used boxes; ``poisson``: ln kappa,
        the box counts and ln area (arcsec^2).

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        ``A`` (kappa at 1 GC per arcsec^2) and ``B`` of each row (NaN where undefined).
    """
    w = np.asarray(counts, dtype=float)
    if method == "lsq":
        log_a, b = _wls_line(*data, w)
        return 10.0**log_a, b
    # Fit ln N = ln area + a + b ln kappa, then invert: B = 1/b, A = exp(-a/b).
    x, n_gc, log_area = data
    a, b = _poisson_line(x, n_gc, log_area, w)
    with np.errstate(divide="ignore", invalid="ignore"):
        b_all = np.where(b > 0, 1.0 / b, np.nan)
        return np.exp(-a * b_all), b_all


def _map_in_process(fn, blocks: list, *args) -> list:
    return [fn(block, *args) for block in blocks]


def fit_power_law(
    n_per_arcsec2,
    kappa_mean,
    rng: np.random.Generator,
    n_boot: int = 1000,
    method: str = "lsq",
    area_arcsec2=None,
    *,
    chunk: int = BOOT_CHUNK,
    map_blocks=None,
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
    chunk : int
        Resamples fitted per block (:func:`power_law_block`; the fit of the data itself is
        row 0 of the first). The resamples are drawn from ``rng`` in one call before they are
        cut into blocks, and a row's fit does not depend on its block, so the results are the
        same to the bit whatever ``chunk``.
    map_blocks : callable, optional
        ``map_blocks(fn, blocks, *args)`` returns ``[fn(block, *args) for block in blocks]``,
        in order, computed anywhere (e.g. on Dask); default in process.

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
    # Row 0 is the data itself; the others are bootstrap multiplicities of the boxes, sent to
    # the blocks as the smallest integers that hold them.
    counts = np.vstack(
        [np.ones((1, m), np.int64), rng.multinomial(m, np.full(m, 1.0 / m), size=n_boot)]
    ).astype(np.min_scalar_type(m))
    if method == "lsq":
        data = (np.log10(n[use]), np.log10(k[use]))
    else:
        data = (np.log(k[use]), np.rint(n[use] * area[use]), np.log(area[use]))
    chunk = check_number(chunk, "--chunk", lo=1, integer=True)
    blocks = [counts[i : i + chunk] for i in range(0, len(counts), chunk)]
    fits = (map_blocks or _map_in_process)(power_law_block, blocks, method, *data)
    a_all = np.concatenate([f[0] for f in fits])
    b_all = np.concatenate([f[1] for f in fits])
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
