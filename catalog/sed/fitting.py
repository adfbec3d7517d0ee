"""Fits of photometry against an SSP grid, and stacks of many sources' photometry.

:func:`fit_ssp` profiles chi2 over the mass of every grid model (detections in chi2, upper
limits by the Sawicki 2012 erf term), weights the models by a prior (:data:`PRIORS`) and
returns a :class:`FitResult`: 16/50/84th percentiles of age, log Z, A_V and the formed and
living masses, the posterior mode, the best fit and optional posterior draws.
:func:`usable_mask` and :func:`n_free_parameters` say which bands enter a fit and how many it
needs; :func:`stack_photometry` combines many sources band by band before one fit.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numba
import numpy as np
from llvmlite import ir as llvm_ir
from numba import types
from numba.extending import intrinsic
from scipy import fft, special

from catalog.sed import draws
from catalog.sed.grids import SSPGrid

#: Posterior draws and percentile keys of a fit: age in Gyr, log10(Z/Zsun), A_V in mag, and
#: log10 of the living and formed stellar mass in Msun.
FIT_KEYS = ("age_gyr", "log_z", "av", "log_mass_living", "log_mass_formed")


@dataclass
class FitResult:
    """Posterior summaries of grid fits, arrays over objects.

    Attributes
    ----------
    percentiles : dict
        ``FIT_KEYS`` -> (n_obj, 3) 16/50/84th percentiles; age in Gyr, log Z in log10(Z/Zsun),
        A_V in mag, masses in log10(Msun).
    map_params : dict
        Same keys -> (n_obj,) at the posterior mode: the grid model where likelihood times prior
        *density* (per unit age index, log Z and A_V) is largest, mass at its best scale. With
        the default prior (flat in those coordinates) it is the best fit.
    best_fit_params : dict
        Same keys -> (n_obj,) at the best fit: the grid model of minimum chi2 (``chi2_min``),
        mass at its best scale; what the source papers call the best-fit SSP.
    chi2_min, n_bands, reduced_chi2 : numpy.ndarray
        (n_obj,) minimum chi2 over the grid, bands used (detections + upper limits), and
        chi2_min / (n_bands - n_free) with n_free = 1 (mass) + the grid axes with more than one
        value (NaN when not positive).
    samples : dict or None
        Same keys -> (n_obj, n_samples) posterior draws.
    chi2_grid : numpy.ndarray or None
        (n_obj, n_age, n_Z) chi2 minimised over A_V (when requested).
    log_evidence : numpy.ndarray or None
        (n_obj,) ln sum_models prior * exp(-chi2/2) with the prior normalised to 1 over the grid
        (Gaussian normalisation constants left out; comparable between grids for one object).
    """

    percentiles: dict[str, np.ndarray]
    map_params: dict[str, np.ndarray]
    best_fit_params: dict[str, np.ndarray]
    chi2_min: np.ndarray
    n_bands: np.ndarray
    reduced_chi2: np.ndarray
    samples: dict[str, np.ndarray] | None = None
    chi2_grid: np.ndarray | None = None
    log_evidence: np.ndarray | None = field(default=None)


def _cell_edges(coord: np.ndarray) -> np.ndarray:
    """Edges of the cells around grid nodes, clipped to the axis range (end cells are half)."""
    return np.concatenate([coord[:1], (coord[1:] + coord[:-1]) / 2, coord[-1:]])


def default_log_prior(grid: SSPGrid) -> np.ndarray:
    """Flat prior in age index, log Z and A_V, as ln(weight) over (n_age, n_Z, n_Av).

    Each node carries the width of its cell (clipped to the axis range) on each axis, so the
    grid posterior is the discrete version of a prior uniform in fractional age index in
    [0, n_age - 1], in log Z between the extreme metallicities, and in A_V in [0, av_max].
    """
    parts = []
    for coord in (np.arange(grid.age_gyr.size, dtype=float), grid.log_z_zsun, grid.av):
        w = np.diff(_cell_edges(coord)) if coord.size > 1 else np.ones(1)
        parts.append(np.log(w / w.sum()))
    return parts[0][:, None, None] + parts[1][None, :, None] + parts[2][None, None, :]


def log_age_prior(grid: SSPGrid) -> np.ndarray:
    """Flat prior in log age (like bagpipes' "log_10"), flat in log Z and A_V, as ln(weight).

    The BC03 ages are not evenly spaced in log age (25 per 0.5 dex below 0.1 Gyr, 10 per
    0.5 dex from 0.1 to 1 Gyr), so :func:`default_log_prior` (flat in age index) weights
    young and old ages up to ~2.5 times more per dex than this one.
    """

    def widths(x):
        return np.diff(_cell_edges(x)) if x.size > 1 else np.ones(1)

    w_index = widths(np.arange(grid.age_gyr.size, dtype=float))
    w_log = widths(np.log10(grid.age_gyr))
    return default_log_prior(grid) + np.log(w_log / w_index / w_log.sum())[:, None, None]


PRIORS = {"index": default_log_prior, "log-age": log_age_prior}


_LOG10_E32 = np.float32(1 / np.log(10))
#: 1 / ln(10)^2: a relative variance of the mass scale times this is its variance in dex^2.
_LOG10_E2_32 = np.float32(1 / np.log(10) ** 2)


def _log10_32(x: np.ndarray) -> np.ndarray:
    """log10 of a float32 array as ln(x) / ln(10): numpy's float32 log is SIMD, its log10 is not
    (measured here: 1.9 against 12.6 ns per value); the two differ by ~1 ulp.
    """
    out = np.log(x)
    out *= _LOG10_E32
    return out


def _cell_quantiles(p: np.ndarray, coord: np.ndarray, qs: Sequence[float]) -> np.ndarray:
    """Quantiles of a posterior over grid nodes, spreading each node's mass over its cell.

    p : (n_obj, n) weights summing to 1 per object; coord : (n,) increasing node coordinates.
    Returns (n_obj, len(qs)) in coordinate units.
    """
    n_obj, n = p.shape
    if n == 1:
        return np.full((n_obj, len(qs)), coord[0], dtype=np.float64)
    edges = _cell_edges(coord)
    cdf = np.concatenate([np.zeros((n_obj, 1)), np.cumsum(p, axis=1, dtype=np.float64)], axis=1)
    cdf /= cdf[:, -1:]
    out = np.empty((n_obj, len(qs)))
    rows = np.arange(n_obj)
    for iq, q in enumerate(qs):
        k = np.clip(np.sum(cdf[:, 1:] < q, axis=1), 0, n - 1)
        lo, hi = cdf[rows, k], cdf[rows, k + 1]
        frac = np.where(hi > lo, (q - lo) / np.where(hi > lo, hi - lo, 1.0), 0.5)
        out[:, iq] = edges[k] + np.clip(frac, 0, 1) * (edges[k + 1] - edges[k])
    return out


def _mixture_quantiles(
    obj: np.ndarray,
    mu: np.ndarray,
    wt: np.ndarray,
    sigma: np.ndarray,
    n_obj: int,
    qs: Sequence[float],
    n_bins: int = 512,
) -> np.ndarray:
    """Weighted quantiles of per-object mixtures of Gaussians sharing one width per object.

    ``obj`` (K,) sorted object index, ``mu`` (K,) component centres, ``wt`` (K,) weights,
    ``sigma`` (n_obj,) Gaussian width. The centres are binned into a fine histogram spanning
    [min mu - 4 sigma, max mu + 4 sigma], convolved with the Gaussian (by FFT) and integrated.
    Returns (n_obj, len(qs)); NaN for objects without components.
    """
    out = np.full((n_obj, len(qs)), np.nan)
    if obj.size == 0:
        return out
    starts = np.minimum(np.searchsorted(obj, np.arange(n_obj)), obj.size - 1)
    present = np.bincount(obj, minlength=n_obj) > 0
    sig = np.where(np.isfinite(sigma), sigma, 0.0)
    lo = np.minimum.reduceat(mu, starts).astype(np.float64) - 4 * sig
    hi = np.maximum.reduceat(mu, starts).astype(np.float64) + 4 * sig
    lo = np.where(present, lo, 0.0)
    span = np.where(present & (hi > lo), hi - lo, 1e-6)
    scale = (n_bins / span).astype(np.float32)
    b = ((mu - lo.astype(np.float32)[obj]) * scale[obj]).astype(np.int64)
    np.clip(b, 0, n_bins - 1, out=b)
    b += obj * n_bins
    h = np.bincount(b, weights=wt, minlength=n_obj * n_bins).reshape(n_obj, n_bins)
    return _smoothed_histogram_quantiles(h, lo, span, sig * scale, present, qs)


#: Gaussian widths (in bins) up to which a histogram is smoothed by direct convolution; wider
#: ones by FFT. 2 x 512 bins at the widths of these fits (3-6 bins, ~50 taps): 5 against 12 us
#: per object; near 8 bins (~100 taps) the two cost the same.
_DIRECT_SMOOTHING_MAX_BINS = 8.0

#: The direct kernel is cut at this many widths: the Gaussian's tail beyond it (2e-9) is below
#: float32 resolution of the histogram's total.
_DIRECT_SMOOTHING_CUT = 6.0


def _smoothed_histogram_quantiles(
    h: np.ndarray,
    lo: np.ndarray,
    span: np.ndarray,
    width: np.ndarray,
    present: np.ndarray,
    qs: Sequence[float],
) -> np.ndarray:
    """Quantiles of (n_obj, n_bins) histograms over [lo, lo + span] smoothed by a Gaussian of
    ``width`` bins (direct convolution up to :data:`_DIRECT_SMOOTHING_MAX_BINS`, FFT above;
    both linear, not circular: mass smoothed past either end is dropped); NaN where not
    ``present``.
    """
    n_obj, n_bins = h.shape
    out = np.full((n_obj, len(qs)), np.nan)
    h = np.ascontiguousarray(h, np.float32)
    width = np.asarray(width, np.float64)
    smooth = np.empty_like(h)
    direct = width <= _DIRECT_SMOOTHING_MAX_BINS
    _gaussian_smooth_direct(h, width, np.flatnonzero(direct), _DIRECT_SMOOTHING_CUT, smooth)
    wide = np.flatnonzero(~direct)
    if wide.size:
        smooth[wide] = _gaussian_smooth_fft(h[wide], width[wide])
    np.clip(smooth, 0, None, out=smooth)
    _histogram_quantiles(
        smooth,
        np.asarray(lo, np.float64),
        np.asarray(span, np.float64),
        np.asarray(present, bool),
        np.asarray(qs, np.float64),
        out,
    )
    return out


def _gaussian_smooth_fft(h: np.ndarray, width: np.ndarray) -> np.ndarray:
    """Rows of ``h`` (float32) convolved with Gaussians of ``width`` bins by FFT, zero-padded
    to twice the length against wrap-around.
    """
    n_bins = h.shape[1]
    # float32 throughout (scipy's pocketfft keeps the precision; the SIMD exp of numpy is
    # float32 only): errors ~1e-7 of the histogram's total, against 1.8x the time in float64
    freq = np.fft.rfftfreq(2 * n_bins).astype(np.float32)
    arg = np.float32(np.pi) * freq[None, :] * np.asarray(width, np.float32)[:, None]
    arg *= arg
    arg *= np.float32(-2.0)
    kern = np.exp(arg, out=arg)
    h = fft.rfft(h, n=2 * n_bins, axis=1)
    h *= kern
    return fft.irfft(h, n=2 * n_bins, axis=1)[:, :n_bins]


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _add_scaled(row, src, k):  # pragma: no cover - compiled
    """row += k * src (equal lengths): slices, so no negative-index checks stop the SIMD loop."""
    for j in range(row.size):
        row[j] += k * src[j]


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _gaussian_smooth_direct(h, width, rows, cut, out):  # pragma: no cover - compiled
    """``rows`` of ``h`` (float32) convolved with Gaussians of ``width`` bins into ``out``: the
    kernel sampled at the bin offsets out to ``cut`` widths and normalised to sum 1 (the FFT
    kernel's sum), one shifted row addition per tap (width 0: a copy).
    """
    n_bins = h.shape[1]
    for i in rows:
        w = width[i]
        r = int(np.ceil(cut * w))
        kern = np.empty(2 * r + 1)
        for t in range(2 * r + 1):
            x = (t - r) / w if r > 0 else 0.0
            kern[t] = np.exp(-0.5 * x * x)
        kern /= kern.sum()
        row = out[i]
        row[:] = 0.0
        src = h[i]
        for t in range(2 * r + 1):
            d = t - r  # out[j] += kern[t] * h[j - d]
            a, b = max(0, d), min(n_bins, n_bins + d)
            if b > a:
                _add_scaled(row[a:b], src[a - d : b - d], np.float32(kern[t]))


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _histogram_quantiles(h, lo, span, present, qs, out):  # pragma: no cover - compiled
    """Quantiles of histograms ``h`` (n_obj, n_bins) over [lo, lo + span], linear within bins,
    into ``out`` (NaN where not ``present`` or empty); float64 as the array expression.
    """
    n_obj, n_bins = h.shape
    cdf = np.empty(n_bins + 1)
    for i in range(n_obj):
        cdf[0] = 0.0
        acc = 0.0
        for j in range(n_bins):
            acc += h[i, j]
            cdf[j + 1] = acc
        tot = cdf[n_bins]
        d = tot if tot > 0 else 1.0
        for j in range(n_bins + 1):
            cdf[j] = cdf[j] / d
        good = present[i] and tot > 0
        for iq in range(qs.size):
            if not good:
                out[i, iq] = np.nan
                continue
            q = qs[iq]
            k = 0
            for j in range(1, n_bins + 1):
                k += cdf[j] < q
            k = min(max(k, 0), n_bins - 1)
            c0, c1 = cdf[k], cdf[k + 1]
            frac = (q - c0) / (c1 - c0) if c1 > c0 else 0.5
            frac = min(max(frac, 0.0), 1.0)
            out[i, iq] = lo[i] + (k + frac) / n_bins * span[i]


def _single_threaded_blas():
    """BLAS limited to one thread: the products here are thin (K = n_band), and a threaded BLAS
    under our own block threads runs several times slower than a single thread.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: without it the BLAS keeps its own setting
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def rows_matmul(x: np.ndarray, m: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``x @ m`` with every row summed as a many-row product sums it, whatever the row count.

    OpenBLAS computes a one-row product by gemv, whose float32 sums differ in the last bit from
    gemm's; an object fitted alone (a chunk of one) would then get other numbers than in a
    chunk of many. One row is multiplied as two (itself and a zero row).
    """
    if x.shape[0] != 1:
        return np.matmul(x, m, out=out)
    two = np.zeros((2, x.shape[1]), x.dtype)
    two[0] = x[0]
    res = np.matmul(two, m)[:1]
    if out is None:
        return res
    out[...] = res
    return out


def _thread_buffers(local: threading.local, specs: Sequence[tuple[tuple[int, ...], type]]) -> list:
    """Arrays of the given (shape, dtype) ``specs`` for the calling thread, made on its first
    call with this ``local`` (one per fit) and the same arrays on every later call.

    :func:`fit_ssp`'s sub-block arrays (2 MB each) are these: made anew per sub-block they came
    back from the allocator as fresh pages, and the first write to each page faulted (reused:
    1.6x the objects/s on one thread). ``fit_atlas`` measured no gain (its time is elsewhere).
    """
    arrays = getattr(local, "arrays", None)
    if arrays is None:
        arrays = [np.empty(shape, dtype) for shape, dtype in specs]
        local.arrays = arrays
    return arrays


def run_blocks(block, n_obj: int, step: int, n_threads: int | None = None) -> None:
    """Call ``block(lo, hi)`` on consecutive blocks of ``step`` objects, on up to ``n_threads``
    threads (default: up to 2), each with the BLAS single-threaded.

    Blocks draw nothing from a shared stream (posterior draws are keyed by object id,
    :mod:`catalog.sed.draws`), so results do not depend on the block size or thread count.
    """
    jobs = [(st, min(st + step, n_obj)) for st in range(0, n_obj, step)]
    n_threads = n_threads or min(2, os.cpu_count() or 1)
    with _single_threaded_blas():
        if n_threads > 1 and len(jobs) > 1:
            with ThreadPoolExecutor(n_threads) as ex:
                list(ex.map(lambda j: block(*j), jobs))
        else:
            for j in jobs:
                block(*j)


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _cell_quantiles_compiled(p, edges, qs, out):  # pragma: no cover - compiled
    """:func:`_cell_quantiles` (n > 1) row by row, the same float64 operations, into ``out``."""
    n_obj, n = p.shape
    cdf = np.empty(n + 1)
    for i in range(n_obj):
        cdf[0] = 0.0
        acc = 0.0
        for j in range(n):
            acc += p[i, j]
            cdf[j + 1] = acc
        last = cdf[n]
        for j in range(n + 1):
            cdf[j] = cdf[j] / last
        for iq in range(qs.size):
            q = qs[iq]
            k = 0
            for j in range(1, n + 1):
                k += cdf[j] < q
            k = min(max(k, 0), n - 1)
            lo, hi = cdf[k], cdf[k + 1]
            frac = (q - lo) / (hi - lo) if hi > lo else 0.5
            frac = min(max(frac, 0.0), 1.0)
            out[i, iq] = edges[k] + frac * (edges[k + 1] - edges[k])


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _row_profile(brow, crow, a, has_det, srow):  # pragma: no cover - compiled
    """One row: s = max(B, 0) / C (0 without detections) into ``srow``, chi2 = A - s B into
    ``brow``, float32: the same float32 operations as the array expression.
    """
    zero = np.float32(0.0)
    if not has_det:
        for m in range(brow.size):
            srow[m] = zero
            brow[m] = a - zero * brow[m]
        return
    for m in range(brow.size):
        b = brow[m]
        sm = (b if b > zero or b != b else zero) / crow[m]
        srow[m] = sm
        brow[m] = a - sm * b


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _profile_mass(bmat, cmat, a, has_det, s):  # pragma: no cover - compiled
    """:func:`_row_profile` of every row of the block: B (``bmat``) becomes chi2."""
    for i in range(bmat.shape[0]):
        _row_profile(bmat[i], cmat[i], a[i], has_det[i], s[i])


#: Below this exp underflows float32 (to a subnormal, then 0); there the weight is set to 0.
_EXP_LOWEST32 = np.float32(-87.33)


# fused multiply-adds in the polynomial (``contract``, no other fast-math): 18 -> 11 us per row
# of 21,063 models; 1% of the values move by 1 ulp, all still within 2.5e-7 of numpy's exp
@numba.njit(nogil=True, cache=True, error_model="numpy", fastmath={"contract"})
def _exp_shifted(row, lp, pm):  # pragma: no cover - compiled
    """``row`` (float32 chi2) overwritten by exp((-chi2 / 2 + ``lp``) - ``pm``), in one SIMD pass.

    exp is Cephes' float32 expf (2^k exp(r), |r| <= ln 2 / 2, degree-6 polynomial; within 2e-7
    of numpy's exp, 0 below -87.33): numpy's float32 exp took 3-5 ns per value on these rows
    and this loop, vectorised by LLVM, 0.3-1 ns, with no second pass over the row. The 2^k is
    added to the float's exponent bits through an int32 view of the row.
    """
    bits = row.view(np.int32)
    half = np.float32(-0.5)
    lowest = _EXP_LOWEST32
    for m in range(row.size):
        x = (row[m] * half + lp[m]) - pm
        v = max(x, lowest)
        k = np.floor(v * np.float32(1.44269504) + np.float32(0.5))
        # ln 2 in two parts (Cody-Waite) keeps r exact to float32
        r = (v - k * np.float32(0.693359375)) + k * np.float32(2.12194440e-4)
        e = np.float32(1.9875691500e-4)
        e = e * r + np.float32(1.3981999507e-3)
        e = e * r + np.float32(8.3334519073e-3)
        e = e * r + np.float32(4.1665795894e-2)
        e = e * r + np.float32(1.6666665459e-1)
        e = e * r + np.float32(5.0000001201e-1)
        e = e * (r * r) + r + np.float32(1.0)
        under = x < lowest
        row[m] = np.float32(0.0) if under else e
        bits[m] += np.int32(0) if under else np.int32(k) << 23


@intrinsic
def _float32_bits(typingctx, x):  # pragma: no cover - compiled
    """The bits of a float32 as an int32 (a bitcast, free in SIMD code)."""

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], llvm_ir.IntType(32))

    return types.int32(types.float32), codegen


@intrinsic
def _bits_float32(typingctx, i):  # pragma: no cover - compiled
    """The float32 whose bits are the int32 ``i``."""

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], llvm_ir.FloatType())

    return types.float32(types.int32), codegen


@numba.njit(nogil=True, cache=True, error_model="numpy", inline="always")
def _flip_negative(i):  # pragma: no cover - compiled
    """Float32 bits <-> order key: the magnitude bits of negative floats reversed (its own inverse)."""
    return i ^ ((i >> np.int32(31)) & np.int32(0x7FFFFFFF))


@numba.njit(nogil=True, cache=True, error_model="numpy", inline="always")
def _order_key(x):  # pragma: no cover - compiled
    """An int32 ordered as the float32 ``x`` (-0 just below +0; NaN above +inf)."""
    return _flip_negative(_float32_bits(x))


@numba.njit(nogil=True, cache=True, error_model="numpy", inline="always")
def _key_float32(k):  # pragma: no cover - compiled
    """The float32 whose order key (:func:`_order_key`) is ``k``."""
    return _bits_float32(_flip_negative(k))


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _row_extrema(row, lp, dens):  # pragma: no cover - compiled
    """Of one row of chi2 (float32): (NaN seen, argmin chi2, min chi2, argmax (p + ``dens``),
    max p), with p = -chi2 / 2 + ``lp`` in float32, each argument the first index.

    LLVM does not vectorise float min/max or arg-min/max reductions; here they are integer
    min/max reductions of order keys (:func:`_order_key`), the arg-reductions over (key << 32 |
    index), which it does: 35 -> 21 us for a row of 21,063 models.
    """
    half = np.float32(-0.5)
    bad = False
    key_best = np.int64(0x7FFFFFFFFFFFFFFF)
    key_mode = np.int64(0x7FFFFFFFFFFFFFFF)
    key_pmax = np.int32(-0x7FFFFFFF - 1)
    for m in range(row.size):
        v = row[m]
        bad |= v != v
        key_best = min(key_best, (np.int64(_order_key(v)) << 32) | m)
        pv = v * half + lp[m]
        key_pmax = max(key_pmax, _order_key(pv))
        # ~key reverses the order: the minimum is the largest p + dens at its first index
        key_mode = min(key_mode, (np.int64(~_order_key(pv + dens[m])) << 32) | m)
    ib = key_best & 0xFFFFFFFF
    iq = key_mode & 0xFFFFFFFF
    return bad, ib, row[ib], iq, _key_float32(key_pmax)


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _age_z_marginals(p_az, n_age, n_z, p_age, p_z):  # pragma: no cover - compiled
    """Sums of ``p_az`` (n_age x n_z, age-major) over Z into ``p_age`` and over age into
    ``p_z``, each in the order of numpy's sum over that axis.
    """
    for a in range(n_age):
        acc = 0.0
        for z in range(n_z):
            acc += p_az[a * n_z + z]
        p_age[a] = acc
    for z in range(n_z):
        p_z[z] = p_az[z]
    for a in range(1, n_age):
        for z in range(n_z):
            p_z[z] += p_az[a * n_z + z]


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _row_normalise_select(
    row, si, ci, has_det, n_z, n_av, thr, p_age, p_z, p_v, pv, p_az, log_norm, log_live, kept, n
):  # pragma: no cover - compiled
    """One row of exp(p - max p) (float32) normalised in place (float32, its sum in float64);
    its marginals over age (``p_age``), Z (``p_z``) and A_V (``p_v``) in float64; and the models
    of the mass mixture (p > ``thr``, s > 0, a detection) listed from position ``n`` on into the
    four arrays of ``kept``: weight, s, log10 of the model's normalisation and of its living
    fraction (so the mass histograms read them in order, not gathered by model index). The age
    and Z marginals add the (age, Z) sums over A_V in the order numpy's sums over the last and
    middle axes do. Returns (sum, next free position, sum of the listed weights, their sum
    times the within-model log-mass variance 1 / (C s^2 ln(10)^2), ``ci`` being C).
    """
    n_mod = row.size
    n_az = n_mod // n_av
    n_age = n_az // n_z
    pv[:] = 0.0
    t = 0.0
    for k in range(n_az):
        acc = 0.0
        for v in range(n_av):
            x = row[k * n_av + v]
            acc += x
            pv[v] += x
        p_az[k] = acc
        t += acc
    for k in range(n_az):
        p_az[k] /= t
    _age_z_marginals(p_az, n_age, n_z, p_age, p_z)
    for v in range(n_av):
        p_v[v] = pv[v] / t
    t32 = np.float32(t)
    for m in range(n_mod):
        row[m] = row[m] / t32
    wsum, wsig = 0.0, 0.0
    if has_det:
        kept_w, kept_s, kept_ln, kept_ll = kept[0], kept[1], kept[2], kept[3]
        for m in range(n_mod):
            x, sm = row[m], si[m]
            if x > thr and sm > 0:
                kept_w[n] = x
                kept_s[n] = sm
                kept_ln[n] = log_norm[m]
                kept_ll[n] = log_live[m]
                wsum += x
                wsig += x * (_LOG10_E2_32 / (ci[m] * (sm * sm)))
                n += 1
    return t, n, wsum, wsig


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _posterior_rows(
    chi2,
    s,
    lp,
    dens,
    has_det,
    n_z,
    n_av,
    thr,
    ibest,
    chi2_min,
    imode,
    lmax,
    bad,
    tot,
    p_age,
    p_z,
    p_v,
    log_norm,
    log_live,
    kept,
    row_end,
    w_sum,
    w_var,
    profile,
    cmat,
    a,
):  # pragma: no cover - compiled
    """Rows of ``chi2`` (c, n_mod) float32 to normalised posteriors, one row at a time (the row
    stays in cache through the passes over it): with ``profile``, the row holds B and is first
    turned into chi2 (:func:`_row_profile`, with ``cmat`` and ``a``); then the extrema (:func:`_row_extrema`:
    ``ibest``, ``chi2_min``, ``imode``, ``lmax``), exp(p - max p) (:func:`_exp_shifted`), the
    normalisation, marginals and listing of the mass mixture (:func:`_row_normalise_select`;
    row i's models end at ``row_end[i]``, their weights sum to ``w_sum[i]``, and ``w_var[i]``
    is the weighted sum of their log-mass variances). Rows with a NaN chi2 or no finite max p
    are flagged ``bad`` and left untouched (for the array code).
    """
    c, n_mod = chi2.shape
    pv = np.zeros(n_av)
    p_az = np.empty(n_mod // n_av)
    n = 0
    for i in range(c):
        row = chi2[i]
        if profile:
            _row_profile(row, cmat[i], a[i], has_det[i], s[i])
        is_bad, ib, vb, iq, pm = _row_extrema(row, lp, dens)
        if is_bad or not np.isfinite(pm):
            bad[i] = True
            row_end[i] = n
            continue
        ibest[i], chi2_min[i], imode[i], lmax[i] = ib, vb, iq, pm
        _exp_shifted(row, lp, pm)
        tot[i], n, w_sum[i], w_var[i] = _row_normalise_select(
            row,
            s[i],
            cmat[i],
            has_det[i],
            n_z,
            n_av,
            thr,
            p_age[i],
            p_z[i],
            p_v[i],
            pv,
            p_az,
            log_norm,
            log_live,
            kept,
            n,
        )
        row_end[i] = n


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _log_mass_range(log_s, log_norm, log_live):  # pragma: no cover - compiled
    """The listed models of one object (slices, so no negative-index checks stop the SIMD
    loop): ``log_s`` (log10 s) becomes the log formed mass log_s - log_norm and ``log_live`` the
    log living mass (that plus log_live). Returns the order keys (:func:`_order_key`) of the
    least and greatest of each: integer reductions, which LLVM vectorises.
    """
    lo_f = np.int32(0x7FFFFFFF)
    hi_f = np.int32(-0x7FFFFFFF - 1)
    lo_l, hi_l = lo_f, hi_f
    for n in range(log_s.size):
        lm = log_s[n] - log_norm[n]
        log_s[n] = lm
        ll = lm + log_live[n]
        log_live[n] = ll
        kf, kl = _order_key(lm), _order_key(ll)
        lo_f, hi_f = min(lo_f, kf), max(hi_f, kf)
        lo_l, hi_l = min(lo_l, kl), max(hi_l, kl)
    return lo_f, hi_f, lo_l, hi_l


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _bin_index(x, lo, scale, top, out):  # pragma: no cover - compiled
    """``out`` = the bin of each ``x`` (float32; bins of 1 / ``scale`` from ``lo``), clipped
    to [0, ``top``]; ``out`` may be an int32 view of ``x`` itself.
    """
    for n in range(x.size):
        out[n] = min(max(np.int32((x[n] - lo) * scale), np.int32(0)), top)


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _add_to_bins(w, b_formed, b_living, first, part):  # pragma: no cover - compiled
    """Weights ``w`` added to their bins of the two histograms, as 4 interleaved partial
    histograms (model ``first + n`` in partial (first + n) mod 4): neighbouring models share
    bins, and one histogram would chain every addition on the previous one. Bin-major (the 8
    partial sums of a bin in one cache line): laid out histogram-major, the partials of a bin
    lay 4 KiB apart, and each load waited on the stores to the others (4K aliasing; 67 -> 49 us
    per object).
    """
    for n in range(w.size):
        q = (first + n) & 3
        part[b_formed[n], 0, q] += w[n]
        part[b_living[n], 1, q] += w[n]


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _mass_histograms(
    kept, kept_log_s, row_end, w_sum, w_var, n_bins, sig_obj, hist, lo, span, scale, present
):  # pragma: no cover - compiled
    """Histograms of the log formed (k = 0) and living (k = 1) masses of the models listed per
    row by :func:`_row_normalise_select` (``kept``: weight, s, log normalisation, log living
    fraction; ``kept_log_s`` is log10 s), binned as :func:`_mixture_quantiles` bins them
    (float32 log masses; ``sig_obj`` = sqrt(``w_var`` / ``w_sum``), the weighted rms of the
    within-model width in dex; bins over [min - 4 sig, max + 4 sig]). The listing's last two
    arrays are overwritten (by the log living masses, then by the bins).
    """
    c = row_end.size
    part = np.zeros((n_bins, 2, 4))
    top = np.int32(n_bins - 1)
    bins = kept.view(np.int32)
    n0 = 0
    for i in range(c):
        n1 = row_end[i]
        if n1 == n0:
            continue
        present[i] = True
        log_formed, log_living = kept_log_s[n0:n1], kept[3, n0:n1]
        lo_f, hi_f, lo_l, hi_l = _log_mass_range(log_formed, kept[2, n0:n1], log_living)
        sg = np.sqrt(w_var[i] / w_sum[i])
        sig_obj[i] = sg
        if not np.isfinite(sg):
            sg = 0.0
        for j, kmin, kmax in ((0, lo_f, hi_f), (1, lo_l, hi_l)):
            l0 = np.float64(_key_float32(kmin)) - 4 * sg
            h0 = np.float64(_key_float32(kmax)) + 4 * sg
            sp = h0 - l0 if h0 > l0 else 1e-6
            lo[i, j], span[i, j], scale[i, j] = l0, sp, np.float32(n_bins / sp)
        b_formed, b_living = bins[2, n0:n1], bins[3, n0:n1]
        _bin_index(log_formed, np.float32(lo[i, 0]), scale[i, 0], top, b_formed)
        _bin_index(log_living, np.float32(lo[i, 1]), scale[i, 1], top, b_living)
        part[:] = 0.0
        _add_to_bins(kept[0, n0:n1], b_formed, b_living, n0, part)
        for j in range(2):
            for b in range(n_bins):
                hist[i, j, b] = (part[b, j, 0] + part[b, j, 1]) + (part[b, j, 2] + part[b, j, 3])
        n0 = n1


def _prepare_photometry(flux, err, upper_limit, error_floor):
    """Weights of detections and (limit, sigma) of upper limits.

    A detection needs a finite flux and a finite error: a missing (NaN) error is no measured
    uncertainty and the band is left out, even though the floor alone would give it a sigma.
    """
    f = np.asarray(flux, dtype=np.float64)
    e = np.asarray(err, dtype=np.float64)
    ul = np.zeros(f.shape, bool) if upper_limit is None else np.asarray(upper_limit, bool)
    ul = np.broadcast_to(ul, f.shape)
    with np.errstate(invalid="ignore"):
        sig = np.sqrt(e**2 + (error_floor * np.abs(f)) ** 2)
        det = ~ul & np.isfinite(f) & np.isfinite(e) & np.isfinite(sig) & (sig > 0)
        # upper limits: the limit in `flux`, its 1-sigma in `err` or limit/3 when absent
        ul_sig = np.where(np.isfinite(e) & (e > 0), e, f / 3.0)
        lim = ul & np.isfinite(f) & (f > 0) & np.isfinite(ul_sig) & (ul_sig > 0)
    return f, sig, det, lim, ul_sig


def n_free_parameters(grid: SSPGrid) -> int:
    """Free parameters of a fit on ``grid``: the mass plus each grid axis (age, log Z, A_V)
    with more than one value.
    """
    return 1 + sum(int(n > 1) for n in grid.shape)


def usable_mask(flux_njy, flux_err_njy, upper_limit=None, error_floor: float = 0.05) -> np.ndarray:
    """Which measurements enter a fit: detections with a finite flux and a finite, positive
    error (a published error of 0 counts when the floor makes it positive), and upper limits
    with a usable limit.
    """
    _, _, det, lim, _ = _prepare_photometry(flux_njy, flux_err_njy, upper_limit, error_floor)
    return det | lim


def usable_bands(flux_njy, flux_err_njy, upper_limit=None, error_floor: float = 0.05) -> np.ndarray:
    """Bands per object that enter a fit (see :func:`usable_mask`); (n_obj,) integers."""
    return usable_mask(flux_njy, flux_err_njy, upper_limit, error_floor).sum(axis=-1)


# One pass over cache-sized blocks whose steps share the per-grid arrays through closures
# (measured: 2x objects per CPU-second, see benchmarks/bench_ssp_speed.py); C901 counts them.
def fit_ssp(  # noqa: C901
    grid: SSPGrid,
    flux_njy,
    flux_err_njy,
    *,
    upper_limit=None,
    error_floor: float = 0.05,
    log_prior=None,
    n_samples: int = 0,
    rng=None,
    draw_keys=None,
    chunk_size: int = 2048,
    keep_chi2_grid: bool = False,
    n_threads: int | None = None,
) -> FitResult:
    """Fit every object against every grid model: chi2 profiled over mass, posterior over the grid.

    Parameters
    ----------
    grid : SSPGrid
        Models at the objects' redshift; bands in the column order of the fluxes.
    flux_njy, flux_err_njy : array_like
        (n_obj, n_band) fluxes and 1-sigma errors in nJy. NaN flux or NaN/inf/non-positive total
        error excludes a band for that object; negative fluxes are used as measured.
    upper_limit : array_like of bool, optional
        (n_obj, n_band) True where ``flux`` is an upper limit (the limit, in nJy) instead of a
        measurement; its 1-sigma is the error column, or limit/3 if that is absent.
    error_floor : float
        Fraction of |flux| added in quadrature to the errors of measured fluxes.
    log_prior : array_like or callable, optional
        ln prior over the models, (n_models,) or (n_age, n_Z, n_Av), or a callable of the
        (n_models, 3) parameter array; default :func:`default_log_prior`.
    n_samples : int
        Posterior draws per object (grid models by posterior weight, mass from its conditional).
    rng : numpy.random.Generator, optional
        For the draws when ``draw_keys`` is not given: the objects are keyed by their row
        number under a seed drawn from it (:func:`catalog.sed.draws.row_keys`).
    draw_keys : array_like, optional
        (n_obj, 2) uint64 per-object keys (:func:`catalog.sed.draws.object_keys` of the run
        seed and the object ids): object i's draws are the first ``5 n_samples`` outputs of
        its own Philox stream, so they do not depend on the other objects, the blocks or the
        threads.
    chunk_size : int
        Most objects per block. Blocks are further cut to ~2 million (object x model) cells
        and fitted in sub-blocks of ~0.5 million cells, so the working memory is ~ 7 arrays
        of 2 MB per thread, draws or not, whatever the number of objects (the draws' models
        are picked in each sub-block while its posterior is in cache).
    keep_chi2_grid : bool
        Also return chi2 minimised over A_V, (n_obj, n_age, n_Z) (meant for stacks).
    n_threads : int, optional
        Blocks fitted in parallel (numpy releases the GIL); default min(2, CPUs).

    Returns
    -------
    FitResult

    Notes
    -----
    For model m the best mass scale over the detected bands is s = sum(f m / sigma^2) /
    sum(m^2 / sigma^2), clipped at s >= 0, and chi2(s) = A - 2 s B + s^2 C is computed from the
    matrix products B = (f / sigma^2) @ m.T and C = (1 / sigma^2) @ (m^2).T in float32 (chi2 is
    then good to ~1e-7 A: ample while the per-band S/N stays below a few hundred, which the
    default 5% floor guarantees).
    Upper limits add -2 ln Phi((limit - s m) / sigma) = -2 ln[(1 + erf((limit - s m) /
    (sqrt(2) sigma))) / 2], the term of Sawicki (2012), evaluated at the s of the detections (s
    is not re-optimised with the limits: a model whose detected bands require it to exceed a
    limit is penalised, which is what a limit should do). An object with no detection gets the
    prior back for age, Z and A_V, and NaN masses.
    The posterior weight of a model is exp(-chi2/2) times the prior (chi2 profiled over mass).
    Percentiles of age, log Z and A_V spread each node's weight uniformly over its cell (in age
    index, log Z, A_V; see :func:`default_log_prior`), so they are continuous and calibrated for
    true values between nodes. Masses: within one model the mass scale has the Gaussian error
    sigma_s = 1 / sqrt(C) (detections only), i.e. sigma_s / (s ln 10) in dex. The log-mass
    posterior is the posterior-weighted mixture over models, each component broadened by the
    posterior-weighted rms of that width (one Gaussian kernel per object on a 512-bin histogram,
    by direct convolution up to 8 bins wide, by FFT above); it is exact when one model dominates
    and a negligible broadening when many do. Models with posterior weight < 1e-3 / n_models
    (at most 0.1% of the weight in all) and models with s = 0 are left out of the mass
    quantiles. The living mass is the formed mass times the model's living fraction. Posterior
    draws pick a model by weight, a uniform position within its cell for age, log Z and A_V,
    and log mass from that model's Gaussian.
    """
    fl, sig, det, lim, ul_sig = _prepare_photometry(flux_njy, flux_err_njy, upper_limit, error_floor)
    if fl.ndim == 1:
        fl, sig, det, lim, ul_sig = (np.atleast_2d(a) for a in (fl, sig, det, lim, ul_sig))
    n_obj, n_band = fl.shape
    if n_band != len(grid.bands):
        raise ValueError(f"{n_band} flux columns for a grid of {len(grid.bands)} bands")
    models, params = grid.flat()
    n_mod = models.shape[0]
    # unit-peak models keep float32 products well scaled; s is converted back after
    norm = np.max(np.abs(models), axis=1)
    norm = np.where(norm > 0, norm, 1.0)
    mn = (models / norm[:, None]).astype(np.float32)
    mt, m2t = np.ascontiguousarray(mn.T), np.ascontiguousarray((mn**2).T)
    if log_prior is None:
        lp = default_log_prior(grid).ravel()
    elif callable(log_prior):
        lp = np.asarray(log_prior(params), dtype=np.float64).ravel()
    else:
        lp = np.asarray(log_prior, dtype=np.float64).ravel()
    if lp.size != n_mod:
        raise ValueError(f"log_prior has {lp.size} values for {n_mod} models")
    lp = lp - special.logsumexp(lp[np.isfinite(lp)])
    lp32 = lp.astype(np.float32)
    # lp is a prior *mass* per grid node (node density x cell volume; end cells are half):
    # the posterior mode uses the density, lp minus the log cell volume.
    to_density32 = (-default_log_prior(grid).ravel()).astype(np.float32)
    live = np.repeat(grid.living_fraction.reshape(-1), grid.av.size)
    log_live = np.log10(np.clip(live, 1e-30, None))
    log_norm = np.log10(norm)
    log_norm32, log_live32 = log_norm.astype(np.float32), log_live.astype(np.float32)
    n_age, n_z, n_av = grid.shape
    age_coord = np.arange(n_age, dtype=float)
    log_age = np.log10(grid.age_gyr) if np.all(grid.age_gyr > 0) else None
    ones_av = np.ones(n_av, np.float32)
    n_free = n_free_parameters(grid)
    if n_samples:
        keys = draws.row_keys(rng, n_obj) if draw_keys is None else np.asarray(draw_keys, np.uint64)
        if keys.shape != (n_obj, 2):
            raise ValueError(f"draw_keys of shape {keys.shape} for {n_obj} objects (need ({n_obj}, 2))")
    qs = (0.16, 0.5, 0.84)

    res = {
        "pct": {k: np.full((n_obj, 3), np.nan) for k in FIT_KEYS},
        "map": {k: np.full(n_obj, np.nan) for k in FIT_KEYS},
        "best": {k: np.full(n_obj, np.nan) for k in FIT_KEYS},
        "chi2": np.full(n_obj, np.nan),
        "logev": np.full(n_obj, np.nan),
        "samples": {k: np.full((n_obj, n_samples), np.nan) for k in FIT_KEYS} if n_samples else None,
        "chi2_grid": np.full((n_obj, n_age, n_z), np.nan, np.float32) if keep_chi2_grid else None,
    }
    n_used = (det | lim).sum(axis=1)

    def age_from_index(x):
        if log_age is None:
            return np.interp(x, age_coord, grid.age_gyr)
        return 10 ** np.interp(x, age_coord, log_age)

    thr32 = np.float32(1e-3 / n_mod)
    n_bins = 512

    def summarise_numpy(gi, chi2, s, cmat, has_det):
        """Posterior summaries of objects ``gi`` by array operations (rows the compiled pass
        flags: a NaN chi2 or no finite posterior); returns the normalised posterior.
        """
        c = gi.size
        rows = np.arange(c)
        ibest = np.argmin(chi2, axis=1)
        res["chi2"][gi] = np.maximum(chi2[rows, ibest], 0)
        p = np.multiply(chi2, np.float32(-0.5), out=chi2)
        p += lp32
        imode = np.argmax(p + to_density32, axis=1)
        imax = np.argmax(p, axis=1)
        lmax = p[rows, imax].astype(np.float64)
        p -= p[rows, imax][:, None]
        np.exp(p, out=p)
        tot = p.sum(axis=1, dtype=np.float64)
        p /= tot[:, None].astype(np.float32)
        res["logev"][gi] = lmax + np.log(tot)
        best_and_mode(gi, ibest, imode, s[rows, ibest], s[rows, imode], has_det)
        # marginals over the grid axes
        p_az = (p.reshape(c * n_age * n_z, n_av) @ ones_av).reshape(c, n_age, n_z)
        p_v = p.reshape(c, n_age * n_z, n_av).sum(axis=1)
        marginal_percentiles(gi, p_az.sum(axis=2), p_az.sum(axis=1), p_v)
        # masses: Gaussian mixture over the significant models (flat indices come sorted by object)
        keep = p > thr32
        keep &= s > 0
        keep[~has_det] = False
        flat = np.flatnonzero(keep)
        oi, mi = np.divmod(flat, n_mod)
        wsel = p.ravel()[flat]
        s_sel = s.ravel()[flat]
        lm = _log10_32(s_sel) - log_norm32[mi]
        # within-model Gaussian error of the mass scale, in dex: sigma_s / (s ln 10)
        sig2 = _LOG10_E2_32 / (cmat.ravel()[flat] * s_sel**2)
        wsum = np.bincount(oi, weights=wsel, minlength=c)
        with np.errstate(invalid="ignore", divide="ignore"):
            sig_obj = np.sqrt(np.bincount(oi, weights=wsel * sig2, minlength=c) / wsum)
        res["pct"]["log_mass_formed"][gi] = _mixture_quantiles(oi, lm, wsel, sig_obj, c, qs)
        lm += log_live32[mi]
        res["pct"]["log_mass_living"][gi] = _mixture_quantiles(oi, lm, wsel, sig_obj, c, qs)
        return p

    def best_and_mode(gi, ibest, imode, s_best, s_mode, has_det):
        """Parameters of the mode and the best fit; ``s_*`` the mass scale at each."""
        for key, idx, s_at in (("map", imode, s_mode), ("best", ibest, s_best)):
            res[key]["age_gyr"][gi] = params[idx, 0]
            res[key]["log_z"][gi] = params[idx, 1]
            res[key]["av"][gi] = params[idx, 2]
            with np.errstate(divide="ignore"):
                lm_at = np.log10(s_at.astype(np.float64)) - log_norm[idx]
            lm_at = np.where(has_det & np.isfinite(lm_at), lm_at, np.nan)
            res[key]["log_mass_formed"][gi] = lm_at
            res[key]["log_mass_living"][gi] = lm_at + log_live[idx]

    qs_arr = np.array(qs)

    def cell_quantiles(p, coord):
        if coord.size == 1:
            return _cell_quantiles(p, coord, qs)
        out = np.empty((p.shape[0], len(qs)))
        _cell_quantiles_compiled(np.ascontiguousarray(p, dtype=np.float64), _cell_edges(coord), qs_arr, out)
        return out

    def marginal_percentiles(gi, p_age, p_z, p_v):
        res["pct"]["age_gyr"][gi] = age_from_index(cell_quantiles(p_age, age_coord))
        res["pct"]["log_z"][gi] = cell_quantiles(p_z, grid.log_z_zsun)
        res["pct"]["av"][gi] = cell_quantiles(p_v, grid.av)

    def block(lo: int, hi: int) -> None:
        sl = slice(lo, hi)
        c = hi - lo
        d = det[sl]
        f_d = np.where(d, fl[sl], 0.0)
        w = np.where(d, 1.0 / np.where(d, sig[sl], 1.0) ** 2, 0.0)
        fw = f_d * w
        a = np.sum(fw * f_d, axis=1).astype(np.float32)
        fw32, w32 = fw.astype(np.float32), w.astype(np.float32)
        has_det = d.any(axis=1)
        lim_b = lim[sl]
        # per-object outputs of the compiled passes
        ibest, imode = np.zeros(c, np.int64), np.zeros(c, np.int64)
        chi2_min, s_best, s_mode = np.zeros(c, np.float32), np.zeros(c, np.float32), np.zeros(c, np.float32)
        lmax, tot, sig_obj = np.zeros(c), np.zeros(c), np.full(c, np.nan)
        bad, present = np.zeros(c, bool), np.zeros(c, bool)
        p_age, p_z, p_v = np.zeros((c, n_age)), np.zeros((c, n_z)), np.zeros((c, n_av))
        hist = np.zeros((c, 2, n_bins))
        lo_m, span_m, scale_m = np.zeros((c, 2)), np.ones((c, 2)), np.ones((c, 2), np.float32)
        if n_samples:  # models drawn in each sub-block while its posterior is in cache
            raw = draws.raw_streams(keys[sl], _RAW_PER_DRAW * n_samples)
            r_draw = draws.uniforms(raw[:, :n_samples])
            idx_d = np.empty((c, n_samples), np.int64)
            s_d, c_d = np.empty((c, n_samples), np.float32), np.empty((c, n_samples), np.float32)
        fallback = []
        cells = sub * n_mod
        # the listed models of the mass mixture: weight, s, log10 norm, log10 living fraction
        chi2_b, s_b, cmat_b, kept = _thread_buffers(
            buffers, [((sub, n_mod), np.float32)] * 3 + [((4, cells), np.float32)]
        )
        # sub-blocks of <= 2**19 cells: each pass over them runs in cache
        for r0 in range(0, c, sub):
            r1 = min(r0 + sub, c)
            r = slice(r0, r1)
            chi2, s, cmat = chi2_b[: r1 - r0], s_b[: r1 - r0], cmat_b[: r1 - r0]
            rows_matmul(fw32[r], mt, out=chi2)  # B, then chi2 in place
            rows_matmul(w32[r], m2t, out=cmat)
            # s = max(B, 0) / C; chi2 = A - 2 s B + s^2 C = A - s B (may dip below 0 by round-off),
            # row by row in the posterior pass unless limits or the chi2 grid need it first
            lim_r = lim_b[r]
            separate = keep_chi2_grid or lim_r.any()
            if separate:
                _profile_mass(chi2, cmat, a[r], has_det[r], s)
            for j in np.flatnonzero(lim_r.any(axis=0)):
                rr = np.flatnonzero(lim_r[:, j])
                gr = rr + lo + r0
                u = (fl[gr, j][:, None] - s[rr] * mn[:, j][None, :]) / ul_sig[gr, j][:, None]
                chi2[rr] -= (2.0 * special.log_ndtr(u)).astype(np.float32)
            if keep_chi2_grid:
                res["chi2_grid"][lo + r0 : lo + r1] = chi2.reshape(r1 - r0, n_age, n_z, n_av).min(axis=3)
            row_end = np.zeros(r1 - r0, np.int64)
            w_sum, w_var = np.zeros(r1 - r0), np.zeros(r1 - r0)
            bad_r = bad[r]
            _posterior_rows(
                chi2,
                s,
                lp32,
                to_density32,
                has_det[r],
                n_z,
                n_av,
                thr32,
                ibest[r],
                chi2_min[r],
                imode[r],
                lmax[r],
                bad_r,
                tot[r],
                p_age[r],
                p_z[r],
                p_v[r],
                log_norm32,
                log_live32,
                kept,
                row_end,
                w_sum,
                w_var,
                not separate,
                cmat,
                a[r],
            )
            rows = np.arange(r1 - r0)
            s_best[r], s_mode[r] = s[rows, ibest[r]], s[rows, imode[r]]
            if bad_r.any():
                rb = np.flatnonzero(bad_r)
                fallback.append((rb + r0, chi2[rb], s[rb], cmat[rb]))
                chi2[rb] = 0
            if n_samples:
                idx_d[r], s_d[r], c_d[r] = _draw_models(chi2, s, cmat, r_draw[r])
            # log by numpy (SIMD: ~10x the compiled scalar calls); exp was taken in the rows
            kept_log_s = _log10_32(kept[1, : row_end[-1]])
            _mass_histograms(
                kept,
                kept_log_s,
                row_end,
                w_sum,
                w_var,
                n_bins,
                sig_obj[r],
                hist[r],
                lo_m[r],
                span_m[r],
                scale_m[r],
                present[r],
            )
        good = ~bad
        gi = np.flatnonzero(good) + lo
        res["chi2"][gi] = np.maximum(chi2_min[good], 0)
        with np.errstate(divide="ignore"):
            res["logev"][gi] = lmax[good] + np.log(tot[good])
        best_and_mode(gi, ibest[good], imode[good], s_best[good], s_mode[good], has_det[good])
        marginal_percentiles(gi, p_age[good], p_z[good], p_v[good])
        width = np.where(np.isfinite(sig_obj), sig_obj, 0.0)
        mq = _smoothed_histogram_quantiles(
            hist.reshape(2 * c, n_bins),
            lo_m.ravel(),
            span_m.ravel(),
            (width[:, None] * scale_m).ravel(),
            np.repeat(present, 2),
            qs,
        ).reshape(c, 2, len(qs))
        res["pct"]["log_mass_formed"][gi] = mq[good, 0]
        res["pct"]["log_mass_living"][gi] = mq[good, 1]
        for rb, chi2_b, s_b, c_b in fallback:
            p_b = summarise_numpy(rb + lo, chi2_b, s_b, c_b, has_det[rb])
            if n_samples:
                idx_d[rb], s_d[rb], c_d[rb] = _draw_models(p_b, s_b, c_b, r_draw[rb])
        if n_samples:
            _draw(
                res["samples"],
                sl,
                idx_d,
                s_d,
                c_d,
                params,
                log_norm,
                log_live,
                has_det,
                n_samples,
                raw,
                grid,
                age_from_index,
            )

    # blocks of ~8 MB per (object x model) array, fitted in sub-blocks of ~2 MB per array: they
    # stay in cache (measured: ~1.5x the objects per CPU-second of 8 MB sub-blocks), in arrays
    # each thread makes once (_thread_buffers: no page faults)
    step = max(1, min(int(chunk_size), max(16, (1 << 21) // max(n_mod, 1))))
    sub = max(1, min(step, (1 << 19) // max(n_mod, 1)))
    buffers = threading.local()
    run_blocks(block, n_obj, step, n_threads)
    dof = n_used - n_free
    with np.errstate(divide="ignore", invalid="ignore"):
        red = np.where(dof > 0, res["chi2"] / dof, np.nan)
    return FitResult(
        percentiles=res["pct"],
        map_params=res["map"],
        best_fit_params=res["best"],
        chi2_min=res["chi2"],
        n_bands=n_used,
        reduced_chi2=red,
        samples=res["samples"],
        chi2_grid=res["chi2_grid"],
        log_evidence=res["logev"],
    )


#: Models per block of the draw search: the blocks' sums are accumulated first, then one
#: block is scanned per draw.
_DRAW_BLOCK = 32


# reassociation (SIMD) only within a block: its order is fixed by the row, not by the blocks of
# objects or threads; 6.6 -> 3.3 us per row of 21,063 models against four interleaved sums
@numba.njit(nogil=True, cache=True, error_model="numpy", fastmath={"reassoc"})
def _block_sum(seg):  # pragma: no cover - compiled
    """float64 sum of a float32 slice, in the order LLVM's SIMD reduction takes."""
    acc = 0.0
    for m in range(seg.size):
        acc += seg[m]
    return acc


@numba.njit(nogil=True, cache=True, error_model="numpy")
def _draw_indices(p, r, idx):  # pragma: no cover - compiled
    """Model indices of the posterior draws: per row of ``p`` (c, n_mod), for each uniform
    ``r`` in [0, 1), the first model whose cumulative weight reaches ``r`` times the row's
    total (so r = 0 gives model 0, and models of zero weight are never drawn for r > 0).

    The cumulative weights are float64 sums in blocks of :data:`_DRAW_BLOCK` models
    (:func:`_block_sum`), the block totals chained and the models of the chosen block added
    one by one: ~5x faster than one chain of n_mod additions, and the same numbers whatever
    the blocks of objects or threads. Returns False, leaving ``idx``, if a row holds a NaN.
    """
    c, n_mod = p.shape
    nb = (n_mod + _DRAW_BLOCK - 1) // _DRAW_BLOCK
    ends = np.empty(nb)
    for i in range(c):
        row = p[i]
        acc = 0.0
        for b in range(nb):
            lo = b * _DRAW_BLOCK
            acc += _block_sum(row[lo : min(lo + _DRAW_BLOCK, n_mod)])
            ends[b] = acc
        if acc != acc:
            return False
        for k in range(r.shape[1]):
            target = r[i, k] * acc
            lo_b, hi_b = 0, nb - 1  # the first block whose end reaches the target
            while lo_b < hi_b:
                mid = (lo_b + hi_b) // 2
                if ends[mid] >= target:
                    hi_b = mid
                else:
                    lo_b = mid + 1
            m = lo_b * _DRAW_BLOCK
            last = min(m + _DRAW_BLOCK, n_mod) - 1
            x = (ends[lo_b - 1] if lo_b > 0 else 0.0) + row[m]
            while m < last and x < target:
                m += 1
                x += row[m]
            idx[i, k] = m
    return True


#: uint64 outputs of an object's stream per posterior draw: the model, three cell jitters
#: (age, log Z, A_V; used or not, so the layout is fixed) and the mass's Gaussian.
_RAW_PER_DRAW = 5


def _draw_models(p, s, cmat, r):
    """Grid models of the posterior draws of the rows of ``p`` (c, n_mod; normalised posterior),
    one per uniform of ``r`` (c, n_samples), and the mass scale ``s`` and C at each.
    """
    c, n_mod = p.shape
    idx = np.empty(r.shape, np.int64)
    if not _draw_indices(p, r, idx):  # a NaN posterior: the array search (its NaN ordering)
        cum = np.cumsum(p, axis=1, dtype=np.float64)
        cum /= cum[:, -1:]
        cum += np.arange(c)[:, None]  # rows made globally increasing: one searchsorted for all
        u = r + np.arange(c)[:, None]
        idx = np.searchsorted(cum.ravel(), u.ravel()).reshape(r.shape) - np.arange(c)[:, None] * n_mod
        idx = np.clip(idx, 0, n_mod - 1)
    rows = np.arange(c)[:, None]
    return idx, s[rows, idx], cmat[rows, idx]


def _draw(out, sl, idx, s_k, c_k, params, log_norm, log_live, has_det, n_samples, raw, grid, age_from_index):
    """Posterior draws of the models ``idx`` (:func:`_draw_models`; ``s_k`` and ``c_k`` the mass
    scale and C there): a cell-uniform jitter of age, log Z and A_V, mass from the model's
    conditional.

    ``raw`` (c, 5 n_samples) uint64 holds each object's stream: columns [0, n) picked the
    models, [n, 2n), [2n, 3n), [3n, 4n) give the age, log Z and A_V jitters, [4n, 5n) the mass.
    """
    n = n_samples
    n_age, n_z, n_av = grid.shape
    ia, iz, iv = np.unravel_index(idx, (n_age, n_z, n_av))

    def jitter(i, coord, k):
        # uniform within the node's clipped cell, as in the percentiles
        if coord.size == 1:
            return np.full(i.shape, coord[0], dtype=float)
        e = _cell_edges(coord)
        return e[i] + draws.uniforms(raw[:, k * n : (k + 1) * n]) * (e[i + 1] - e[i])

    out["age_gyr"][sl] = age_from_index(jitter(ia, np.arange(n_age, dtype=float), 1))
    out["log_z"][sl] = jitter(iz, grid.log_z_zsun, 2)
    out["av"][sl] = jitter(iv, grid.av, 3)
    s_k = s_k.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        sig_dex = 1.0 / (np.sqrt(c_k.astype(np.float64)) * s_k * np.log(10))
        lm = np.log10(s_k) - log_norm[idx] + sig_dex * draws.normals(raw[:, 4 * n : 5 * n])
    lm = np.where(has_det[:, None] & np.isfinite(lm), lm, np.nan)
    out["log_mass_formed"][sl] = lm
    out["log_mass_living"][sl] = lm + log_live[idx]


def stack_photometry(
    flux_njy, flux_err_njy, *, n_boot: int = 1000, rng=None, error_floor: float = 0.0
) -> dict:
    """Stacked photometry of many sources, band by band.

    Parameters
    ----------
    flux_njy, flux_err_njy : array_like
        (n_obj, n_band) fluxes and 1-sigma errors in nJy; NaN flux or NaN/inf/non-positive
        error leaves a source out of that band (the median uses every finite flux).
    n_boot : int
        Bootstrap resamples of the sources for the error of the median.
    rng : numpy.random.Generator or seed
    error_floor : float
        Fraction of |flux| added in quadrature to the errors before inverse-variance weighting
        (published tables with errors of 0.0 or 0.1 nJy otherwise let a few sources dominate).

    Returns
    -------
    dict
        ``median``, ``median_err`` (bootstrap standard deviation), ``ivw_mean`` (inverse-variance
        weighted mean), ``ivw_err`` (1 / sqrt(sum 1/sigma^2)), ``n`` (sources per band), each
        (n_band,) in nJy.
    """
    rng = np.random.default_rng(rng)
    f = np.atleast_2d(np.asarray(flux_njy, dtype=np.float64))
    e = np.atleast_2d(np.asarray(flux_err_njy, dtype=np.float64))
    with np.errstate(invalid="ignore"):
        e = np.sqrt(e**2 + (error_floor * np.abs(f)) ** 2)
    n_band = f.shape[1]
    out = {k: np.full(n_band, np.nan) for k in ("median", "median_err", "ivw_mean", "ivw_err")}
    out["n"] = np.zeros(n_band, dtype=np.int64)
    for b in range(n_band):
        fb = f[:, b][np.isfinite(f[:, b])]
        out["n"][b] = fb.size
        if fb.size:
            out["median"][b] = np.median(fb)
            boot = np.median(fb[rng.integers(0, fb.size, (n_boot, fb.size))], axis=1)
            out["median_err"][b] = boot.std(ddof=1) if n_boot > 1 else np.nan
        ok = np.isfinite(f[:, b]) & np.isfinite(e[:, b]) & (e[:, b] > 0)
        if ok.any():
            w = 1.0 / e[ok, b] ** 2
            out["ivw_mean"][b] = np.sum(w * f[ok, b]) / w.sum()
            out["ivw_err"][b] = 1.0 / np.sqrt(w.sum())
    return out
