"""Spatial indexing: HEALPix order-29 indices, cone-search ranges, crossmatch.

``healpix29`` is the NESTED HEALPix index at order 29, the same value as HATS' ``_healpix_29``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import healpy as hp
import numba
import numpy as np
import numpy.typing as npt

HEALPIX_ORDER = 29
_DEG = np.pi / 180.0
#: Mean right sources in the bucket of a right source above which buckets stop getting coarser.
_PER_PIXEL = 10.0
#: Sources on both sides from which the crossmatch runs in threads: below, start-up and (on a
#: busy machine) descheduled workers cost more than they save (10^5 x 10^5 on a loaded 2-CPU
#: machine: 30 ms in one thread, 48 ms in two).
_THREADED = 500_000


def healpix29(ra_deg: npt.ArrayLike, dec_deg: npt.ArrayLike) -> np.ndarray:
    """NESTED HEALPix index at order 29 of ICRS (ra, dec) in degrees (int64)."""
    return hp.ang2pix(
        2**HEALPIX_ORDER, np.asarray(ra_deg, float), np.asarray(dec_deg, float), nest=True, lonlat=True
    ).astype(np.int64, copy=False)


def separation_arcsec(ra1, dec1, ra2, dec2) -> np.ndarray:
    """Great-circle separation in arcsec (Vincenty formula, stable at all distances).

    Parameters
    ----------
    ra1, dec1, ra2, dec2 : array_like
        ICRS coordinates in degrees.
    """
    lon1, lat1 = np.asarray(ra1, float) * _DEG, np.asarray(dec1, float) * _DEG
    lon2, lat2 = np.asarray(ra2, float) * _DEG, np.asarray(dec2, float) * _DEG
    dlon = lon2 - lon1
    s1, c1, s2, c2 = np.sin(lat1), np.cos(lat1), np.sin(lat2), np.cos(lat2)
    sd, cd = np.sin(dlon), np.cos(dlon)
    num = np.hypot(c2 * sd, c1 * s2 - s1 * c2 * cd)
    den = s1 * s2 + c1 * c2 * cd
    return np.arctan2(num, den) / _DEG * 3600.0


def order_for_radius(radius_arcsec: float, max_order: int = HEALPIX_ORDER) -> int:
    """Deepest HEALPix order whose pixels are still wider than ``radius_arcsec``."""
    for order in range(max_order, -1, -1):
        if hp.nside2resol(2**order, arcmin=True) * 60.0 >= radius_arcsec:
            return order
    return 0


def cone_ranges(ra_deg: float, dec_deg: float, radius_arcsec: float, max_pixels: int = 64) -> np.ndarray:
    """Index ranges at order 29 that cover a cone, as an (n, 2) array of inclusive [lo, hi].

    The cone is covered by nested pixels at the deepest order that needs at most
    ``max_pixels`` pixels (``healpy.query_disc`` with ``inclusive=True``); consecutive pixels
    merge into one range. Rows inside the ranges still need the exact distance test.
    """
    vec = hp.ang2vec(ra_deg, dec_deg, lonlat=True)
    radius = np.deg2rad(radius_arcsec / 3600.0)
    order = min(order_for_radius(radius_arcsec / 2), 29)
    while True:
        pix = np.sort(hp.query_disc(2**order, vec, radius, inclusive=True, nest=True))
        if len(pix) <= max_pixels or order == 0:
            break
        order -= 1
    shift = 2 * (HEALPIX_ORDER - order)
    breaks = np.flatnonzero(np.diff(pix) != 1)
    starts = np.r_[pix[0], pix[breaks + 1]]
    ends = np.r_[pix[breaks], pix[-1]]
    return np.column_stack([starts << shift, ((ends + 1) << shift) - 1]).astype(np.int64)


def crossmatch(
    ra1, dec1, hpx1, ra2, dec2, hpx2, radius_arcsec: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs of two catalogs closer than ``radius_arcsec`` (inclusive).

    Both sides are sorted by their ``healpix29`` index and bucketed by HEALPix pixel at a
    coarser order (a bit shift of the index keeps the sort). Each left source is compared with
    the right sources in its pixel and its eight neighbours: first by chord length of unit
    vectors (with a margin), then by the exact great-circle distance (the Vincenty formula of
    :func:`separation_arcsec`). The pixels are at least twice the radius across (polar-cap
    pixels are elongated, and a pixel just wider than the radius plus its neighbours would not
    always cover the whole circle), and coarser as long as a right source shares its pixel
    with at most about ten others on average: fewer pixel look-ups, while a bounding test per
    right pixel skips the neighbours a source cannot reach.

    Parameters
    ----------
    ra1, dec1, ra2, dec2 : array_like
        ICRS positions of the left and right sides, degrees.
    hpx1, hpx2 : array_like of int64
        Their NESTED HEALPix indices at order 29 (:func:`healpix29`).
    radius_arcsec : float
        Match radius, arcsec; pairs at exactly the radius are kept.

    Returns
    -------
    idx1, idx2 : ndarray of int64
        Row indices into the left and right sides, sorted by (idx1, separation).
    sep_arcsec : ndarray of float64
        Great-circle separation of each pair, arcsec.
    """
    hpx1 = np.asarray(hpx1, np.int64)
    hpx2 = np.asarray(hpx2, np.int64)
    if len(hpx1) + len(hpx2) >= _THREADED:
        return _crossmatch(ra1, dec1, hpx1, ra2, dec2, hpx2, radius_arcsec, True)
    # Small inputs in one thread: starting the parallel loops (and, on a busy machine, waiting
    # for a descheduled worker) costs more than the loops.
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        return _crossmatch(ra1, dec1, hpx1, ra2, dec2, hpx2, radius_arcsec, False)
    finally:
        numba.set_num_threads(threads)


def _crossmatch(ra1, dec1, hpx1, ra2, dec2, hpx2, radius_arcsec, threaded):
    """:func:`crossmatch`, preparing the two sides in two threads if ``threaded``."""
    e = np.array([], dtype=np.int64)
    if len(hpx1) == 0 or len(hpx2) == 0:
        return e, e, np.array([], dtype=float)
    # Sort keys: the pixel at order ``base`` above the row index, so that one plain sort (several
    # times faster than an argsort) gives both the order and the sorted pixels. Buckets coarser
    # than the finest useful order are always correct; ``base`` only leaves room for the index.
    bits = max(1, (max(len(hpx1), len(hpx2)) - 1).bit_length())
    finest = order_for_radius(2.0 * radius_arcsec, max_order=HEALPIX_ORDER - 1)
    base = min(finest, (63 - 4 - bits) // 2)  # a pixel index at order k is below 12 * 4**k
    sides = ((ra1, ra2), (dec1, dec2), (hpx1, hpx2), (2 * (HEALPIX_ORDER - base),) * 2, (bits, bits))
    if threaded:  # both at once: numpy's sorts and ufuncs release the GIL
        with ThreadPoolExecutor(2) as pool:
            (order1, p1, side1), (order2, p2, side2) = pool.map(_side, *sides)
    else:
        (order1, p1, side1), (order2, p2, side2) = map(_side, *sides)
    order = _bucket_order(p2, base)
    shift = 2 * (base - order)
    run_pix, run_start = _runs(p2 >> shift)
    grp_pix, grp_start = _runs(p1 >> shift)
    neigh = hp.get_all_neighbours(2**order, grp_pix, nest=True)  # (8, groups), -1 where none
    cand = np.ascontiguousarray(np.concatenate([grp_pix[None, :], neigh], axis=0))  # (9, groups)
    limit = (2 * np.sin(np.deg2rad(radius_arcsec / 3600) / 2)) ** 2 * (1 + 1e-9) + 1e-24
    runs = _find_runs(cand, run_pix, np.searchsorted(run_pix, grp_pix))
    bounds = _run_bounds(run_start, side2, np.sqrt(limit))
    args = (grp_start, runs, run_start, bounds, side1, side2, limit)
    counts, first = _count_pairs(*args)
    # Output slots in the caller's left order, so the pairs come out sorted by left index.
    counts_left, dest, total = _slots(counts, order1)
    if total == 0:
        return e, e, np.array([], dtype=float)
    idx2, sep = np.empty(total, np.int64), np.empty(total)
    n_out = _fill_pairs(*args, counts, first, radius_arcsec, order2, dest, idx2, sep)
    # Each source's slots are contiguous and in the caller's order: the left index is a repeat.
    idx1 = np.repeat(np.arange(len(hpx1), dtype=np.int64), counts_left)
    if n_out:  # chord inside its margin but farther than the radius: rare
        ok = sep <= radius_arcsec
        return idx1[ok], idx2[ok], sep[ok]
    return idx1, idx2, sep


def _runs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values of sorted ``keys`` and where each run starts (plus a final ``len(keys)``)."""
    starts = np.flatnonzero(keys[1:] != keys[:-1]) + 1
    starts = np.concatenate([[0], starts, [len(keys)]])
    return keys[starts[:-1]], starts


def _bucket_order(pix_sorted: np.ndarray, base: int, per_pixel: float | None = None) -> int:
    """HEALPix order of the crossmatch buckets: the coarsest at or above ``base`` (the order of
    the sorted right-side pixels ``pix_sorted``) where a source shares its pixel with at most
    ``per_pixel`` sources on average (the sum of squared pixel counts over the number of sources).

    Fewer, fuller buckets mean fewer pixel look-ups (with mostly empty buckets the nine
    look-ups per left source dominate); fuller ones mean more distance tests. Weighting by
    source, not by pixel, keeps a dense clump among sparse sources in small pixels.
    """
    per_pixel = _PER_PIXEL if per_pixel is None else per_pixel
    order = base
    while order > 0 and _occupancy(pix_sorted, 2 * (base - order + 1)) <= per_pixel:
        order -= 1
    return order


@numba.njit(cache=True)
def _occupancy(keys, shift):  # pragma: no cover - compiled
    """Mean over sorted ``keys`` of how many keys share its value of ``keys >> shift``."""
    total, run = 0, 1
    for i in range(1, keys.shape[0]):
        if (keys[i] >> shift) == (keys[i - 1] >> shift):
            run += 1
        else:
            total += run * run
            run = 1
    return (total + run * run) / keys.shape[0]


def _side(ra_deg, dec_deg, hpx, shift: int, bits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One side of the crossmatch, sorted by pixel (``hpx >> shift``), then by row.

    Parameters
    ----------
    ra_deg, dec_deg : array_like
        ICRS positions, degrees.
    hpx : ndarray of int64
        Their ``healpix29`` indices.
    shift, bits : int
        ``hpx >> shift`` is the pixel at the base order of the buckets; ``bits`` holds a row.

    Returns
    -------
    order : ndarray of int64
        Rows in sorted order.
    pix : ndarray of int64
        Their pixels at the base order (sorted).
    rows : ndarray of float64, shape (5, n)
        x, y, z, cos(dec) and ra in radians in sorted order: the unit vectors, and the terms of
        the Vincenty formula (z is sin(dec)), computed as in :func:`separation_arcsec`.
    """
    keys = hpx >> shift
    keys <<= bits
    keys |= np.arange(len(hpx))
    keys.sort()
    order = keys & ((1 << bits) - 1)
    keys >>= bits
    # Computed in place in the output rows: no temporaries, less memory traffic at 10^7 rows.
    out = np.empty((5, len(order)))
    lon, lat = out[4], out[3]
    np.take(np.asarray(ra_deg, float), order, out=lon)
    lon *= _DEG
    np.take(np.asarray(dec_deg, float), order, out=lat)
    lat *= _DEG
    np.sin(lat, out=out[2])
    np.cos(lat, out=out[3])  # now cos(dec)
    np.cos(lon, out=out[0])
    out[0] *= out[3]
    np.sin(lon, out=out[1])
    out[1] *= out[3]
    return order, keys, out


@numba.njit(cache=True)
def _slots(counts, order1):  # pragma: no cover - compiled
    """Per-source counts in the caller's left order, where each (sorted) source's pairs start
    in the output, and the total: each source's pairs are contiguous, in left-row order.
    """
    n = counts.shape[0]
    counts_left = np.empty(n, np.int64)
    for i in range(n):
        counts_left[order1[i]] = counts[i]
    start = np.empty(n, np.int64)
    total = 0
    for left in range(n):
        start[left] = total
        total += counts_left[left]
    dest = np.empty(n, np.int64)
    for i in range(n):
        dest[i] = start[order1[i]]
    return counts_left, dest, total


@numba.njit(parallel=True, cache=True)
def _find_runs(cand, run_pix, near):  # pragma: no cover - compiled
    """Run index in ``run_pix`` of each candidate pixel (9, groups), -1 if absent or a repeat.

    The search starts from ``near[g]``, where the group's own pixel would sit: neighbours in
    the nested scheme mostly share a parent with it, so they are a few runs away (a galloping
    search reads a few nearby entries instead of the ~20 scattered ones of a binary search).
    """
    runs = np.full(cand.shape, -1, np.int64)
    for g in numba.prange(cand.shape[1]):
        for k in range(cand.shape[0]):
            pix = cand[k, g]
            if pix < 0:
                continue
            seen = False  # near the poles a neighbour can repeat
            for q in range(k):
                if cand[q, g] == pix:
                    seen = True
            if seen:
                continue
            r = _lower_bound_near(run_pix, pix, near[g])
            if r < run_pix.shape[0] and run_pix[r] == pix:
                runs[k, g] = r
    return runs


@numba.njit(cache=True)
def _lower_bound_near(a, x, i):  # pragma: no cover - compiled
    """First index of sorted ``a`` with ``a[index] >= x``, by galloping from index ``i``."""
    n = a.shape[0]
    i = min(i, n)
    if i < n and a[i] < x:  # answer right of i: a[lo] < x, hi == n or a[hi] >= x
        lo, hi, step = i, i + 1, 1
        while hi < n and a[hi] < x:
            lo = hi
            step *= 2
            hi = lo + step
        hi = min(hi, n)
    else:  # answer at or left of i: lo == -1 or a[lo] < x
        lo, hi, step = i - 1, i, 1
        while lo >= 0 and a[lo] >= x:
            hi = lo
            step *= 2
            lo = hi - step
        lo = max(lo, -1)
    while hi - lo > 1:
        m = (lo + hi) >> 1
        if a[m] < x:
            lo = m
        else:
            hi = m
    return hi


@numba.njit(parallel=True, cache=True)
def _run_bounds(run_start, s2, chord):  # pragma: no cover - compiled
    """Centre (mean unit vector) of each right run and the squared chord within which a left
    source must be of the centre to reach any member: (4, runs) rows x, y, z, reach**2.

    By the triangle inequality a source farther than (run radius + ``chord``) from the centre
    matches no member, so one test skips a whole neighbour pixel (most sources are far from
    their pixel's edges). The margins cover rounding.
    """
    out = np.empty((4, run_start.shape[0] - 1))
    for r in numba.prange(run_start.shape[0] - 1):
        a, b = run_start[r], run_start[r + 1]
        cx, cy, cz = 0.0, 0.0, 0.0
        for j in range(a, b):
            cx += s2[0, j]
            cy += s2[1, j]
            cz += s2[2, j]
        cx, cy, cz = cx / (b - a), cy / (b - a), cz / (b - a)
        rad2 = 0.0
        for j in range(a, b):
            rad2 = max(rad2, (s2[0, j] - cx) ** 2 + (s2[1, j] - cy) ** 2 + (s2[2, j] - cz) ** 2)
        out[0, r], out[1, r], out[2, r] = cx, cy, cz
        out[3, r] = ((np.sqrt(rad2) + chord) * (1 + 1e-6) + 1e-15) ** 2
    return out


@numba.njit(parallel=True, cache=True)
def _count_pairs(grp_start, runs, run_start, bounds, s1, s2, limit):  # pragma: no cover - compiled
    """Number of right sources within the squared chord ``limit`` of each (sorted) left source,
    and the (sorted) right index of its first one (-1 if none).
    """
    counts = np.zeros(s1.shape[1], np.int64)
    first = np.full(s1.shape[1], -1, np.int64)
    for g in numba.prange(runs.shape[1]):
        for i in range(grp_start[g], grp_start[g + 1]):
            x, y, z = s1[0, i], s1[1, i], s1[2, i]
            c = 0
            for k in range(runs.shape[0]):
                r = runs[k, g]
                if r < 0 or _dist2(x, y, z, bounds, r) > bounds[3, r]:
                    continue
                for j in range(run_start[r], run_start[r + 1]):
                    if _dist2(x, y, z, s2, j) <= limit:
                        if c == 0:
                            first[i] = j
                        c += 1
            counts[i] = c
    return counts, first


@numba.njit(parallel=True, cache=True)
def _fill_pairs(
    grp_start, runs, run_start, bounds, s1, s2, limit, counts, first, radius_arcsec, order2, dest, idx2, sep
):  # pragma: no cover - compiled
    """Write the pairs counted by :func:`_count_pairs` from ``dest[i]`` on, nearest first, as
    caller right indices and Vincenty separations in arcsec; returns how many are beyond the
    radius. A source with one match (most of them) reuses the one found by the count.
    """
    n_out = 0
    for g in numba.prange(runs.shape[1]):
        for i in range(grp_start[g], grp_start[g + 1]):
            if counts[i] == 0:
                continue
            x, y, z, c1, lon1 = s1[0, i], s1[1, i], s1[2, i], s1[3, i], s1[4, i]
            base = dest[i]
            if counts[i] == 1:
                j = first[i]
                d = _vincenty_arcsec(z, c1, lon1, s2[2, j], s2[3, j], s2[4, j])
                idx2[base], sep[base] = order2[j], d
                if d > radius_arcsec:
                    n_out += 1
                continue
            c = 0
            for k in range(runs.shape[0]):
                r = runs[k, g]
                if r < 0 or _dist2(x, y, z, bounds, r) > bounds[3, r]:
                    continue
                for j in range(run_start[r], run_start[r + 1]):
                    if _dist2(x, y, z, s2, j) > limit:
                        continue
                    d = _vincenty_arcsec(z, c1, lon1, s2[2, j], s2[3, j], s2[4, j])
                    if d > radius_arcsec:
                        n_out += 1
                    # Insertion by distance: a source has only a few matches.
                    p = base + c
                    while p > base and sep[p - 1] > d:
                        idx2[p] = idx2[p - 1]
                        sep[p] = sep[p - 1]
                        p -= 1
                    idx2[p] = order2[j]
                    sep[p] = d
                    c += 1
    return n_out


@numba.njit(cache=True, inline="always")
def _dist2(x, y, z, v, j):  # pragma: no cover - compiled
    """Squared chord from unit vector (x, y, z) to column ``j`` of the rows x, y, z of ``v``."""
    return (x - v[0, j]) ** 2 + (y - v[1, j]) ** 2 + (z - v[2, j]) ** 2


@numba.njit(cache=True, inline="always")
def _vincenty_arcsec(s1, c1, lon1, s2, c2, lon2):  # pragma: no cover - compiled
    """Separation in arcsec from sin, cos of the latitudes and the longitudes (radians), by the
    same operations as :func:`separation_arcsec` (so that the radius test agrees with it).
    """
    dlon = lon2 - lon1
    sd, cd = np.sin(dlon), np.cos(dlon)
    num = np.hypot(c2 * sd, c1 * s2 - s1 * c2 * cd)
    den = s1 * s2 + c1 * c2 * cd
    return np.arctan2(num, den) / _DEG * 3600.0


def best_matches(idx1: np.ndarray, idx2: np.ndarray, sep: np.ndarray) -> np.ndarray:
    """Boolean mask of the nearest right match for each left row (input sorted by idx1, sep)."""
    first = np.ones(len(idx1), dtype=bool)
    first[1:] = idx1[1:] != idx1[:-1]
    return first
