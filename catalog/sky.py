"""Spatial indexing: HEALPix order-29 indices, cone-search ranges, crossmatch.

``healpix29`` is the NESTED HEALPix index at order 29, the same value as HATS' ``_healpix_29``.
"""

from __future__ import annotations

import healpy as hp
import numba
import numpy as np
import numpy.typing as npt

HEALPIX_ORDER = 29
_DEG = np.pi / 180.0


def healpix29(ra_deg: npt.ArrayLike, dec_deg: npt.ArrayLike) -> np.ndarray:
    """NESTED HEALPix index at order 29 of ICRS (ra, dec) in degrees (int64)."""
    return hp.ang2pix(
        2**HEALPIX_ORDER, np.asarray(ra_deg, float), np.asarray(dec_deg, float), nest=True, lonlat=True
    ).astype(np.int64)


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
    """All pairs of two catalogs closer than ``radius_arcsec``.

    Both sides are bucketed by their HEALPix pixel at a coarse order (derived from
    ``healpix29`` by a bit shift); each left source is compared with the right sources in its
    pixel and the eight neighbours, then kept by exact distance. The pixels are chosen at least
    twice the radius across: polar-cap pixels are elongated, and a pixel just wider than the
    radius plus its neighbours would not always cover the whole circle.

    Returns
    -------
    idx1, idx2, sep_arcsec : ndarray
        Row indices into each side and the separation in arcsec, sorted by (idx1, sep).
    """
    hpx1 = np.asarray(hpx1, np.int64)
    hpx2 = np.asarray(hpx2, np.int64)
    order = order_for_radius(2.0 * radius_arcsec, max_order=HEALPIX_ORDER - 1)
    shift = 2 * (HEALPIX_ORDER - order)
    order2 = np.argsort(hpx2 >> shift, kind="stable")
    # Right side as runs of equal pixels: start offset and length of each run.
    p2_pix, p2_start, p2_count = np.unique(hpx2[order2] >> shift, return_index=True, return_counts=True)
    if len(p2_pix) == 0 or len(hpx1) == 0:
        e = np.array([], dtype=np.int64)
        return e, e, np.array([], dtype=float)
    # Left sources in pixel order, so that neighbours in the loop read the same memory.
    order1 = np.argsort(hpx1, kind="stable")
    p1 = hpx1[order1] >> shift
    neigh = hp.get_all_neighbours(2**order, p1, nest=True)  # (8, n1), -1 where none
    cand = np.ascontiguousarray(np.concatenate([p1[None, :], neigh], axis=0))  # (9, n1)
    # Chord test on unit vectors in compiled loops (a margin keeps it inclusive); exact after.
    v1a = np.ascontiguousarray(np.stack(_unit_vectors(ra1, dec1))[:, order1])
    v2s = np.ascontiguousarray(np.stack(_unit_vectors(ra2, dec2))[:, order2])
    limit = (2 * np.sin(np.deg2rad(radius_arcsec / 3600) / 2)) ** 2 * (1 + 1e-9) + 1e-24
    runs = (p2_pix, p2_start.astype(np.int64), p2_count.astype(np.int64))
    empty_i, empty_f = np.zeros(0, np.int64), np.zeros(0)
    counts = _pairs(v1a, v2s, cand, *runs, limit, empty_i, empty_f, empty_i)
    # Output slots in the caller's left order, so the pairs come out sorted by left index.
    counts_left = np.empty_like(counts)
    counts_left[order1] = counts
    start_left = np.r_[0, np.cumsum(counts_left)]
    total = int(start_left[-1])
    if total == 0:
        e = np.array([], dtype=np.int64)
        return e, e, np.array([], dtype=float)
    right_sorted, chord2 = np.empty(total, np.int64), np.empty(total)
    _pairs(v1a, v2s, cand, *runs, limit, right_sorted, chord2, start_left[:-1][order1])
    left = np.repeat(np.arange(len(hpx1), dtype=np.int64), counts_left)
    right = order2[right_sorted]
    sep = separation_arcsec(
        np.asarray(ra1)[left], np.asarray(dec1)[left], np.asarray(ra2)[right], np.asarray(dec2)[right]
    )
    ok = sep <= radius_arcsec
    return left[ok], right[ok], sep[ok]


@numba.njit(parallel=True, cache=True)
def _pairs(
    v1, v2s, cand, run_pix, run_start, run_len, limit, out, out_chord2, dest
):  # pragma: no cover - compiled
    """Right-side matches of every left source among the runs of its 9 candidate pixels.

    With an empty ``out`` it returns the number of matches per left source. Otherwise it
    writes each source's matches (indices into the sorted right side, and squared chords)
    from ``dest[i]`` on, nearest first, and returns ``out``.
    """
    n = v1.shape[1]
    counting = out.shape[0] == 0
    counts = np.zeros(n, np.int64)
    for i in numba.prange(n):
        c = 0
        for k in range(cand.shape[0]):
            pix = cand[k, i]
            if pix < 0:
                continue
            seen = False  # near the poles a neighbour can repeat
            for q in range(k):
                if cand[q, i] == pix:
                    seen = True
            if seen:
                continue
            r = np.searchsorted(run_pix, pix)
            if r >= run_pix.shape[0] or run_pix[r] != pix:
                continue
            for j in range(run_start[r], run_start[r] + run_len[r]):
                d = (v1[0, i] - v2s[0, j]) ** 2 + (v1[1, i] - v2s[1, j]) ** 2 + (v1[2, i] - v2s[2, j]) ** 2
                if d <= limit:
                    if not counting:
                        # Insertion by distance: a source has only a few matches.
                        p = dest[i] + c
                        while p > dest[i] and out_chord2[p - 1] > d:
                            out[p] = out[p - 1]
                            out_chord2[p] = out_chord2[p - 1]
                            p -= 1
                        out[p] = j
                        out_chord2[p] = d
                    c += 1
        counts[i] = c
    return counts if counting else out


def _unit_vectors(ra_deg, dec_deg) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ra = np.asarray(ra_deg, float) * _DEG
    dec = np.asarray(dec_deg, float) * _DEG
    cd = np.cos(dec)
    return cd * np.cos(ra), cd * np.sin(ra), np.sin(dec)


def best_matches(idx1: np.ndarray, idx2: np.ndarray, sep: np.ndarray) -> np.ndarray:
    """Boolean mask of the nearest right match for each left row (input sorted by idx1, sep)."""
    first = np.ones(len(idx1), dtype=bool)
    first[1:] = idx1[1:] != idx1[:-1]
    return first
