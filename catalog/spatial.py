"""Spatial indexing: HEALPix order-29 indices, cone-search ranges, crossmatch.

``healpix29`` is the NESTED HEALPix index at order 29, the same value as HATS' ``_healpix_29``.
"""

from __future__ import annotations

import healpy as hp
import numpy as np
import numpy.typing as npt

HEALPIX_ORDER = 29
_DEG = np.pi / 180.0


def healpix29(ra_deg: npt.ArrayLike, dec_deg: npt.ArrayLike) -> np.ndarray:
    """NESTED HEALPix index at order 29 of ICRS (ra, dec) in degrees (int64)."""
    return hp.ang2pix(2**HEALPIX_ORDER, np.asarray(ra_deg, float), np.asarray(dec_deg, float),
                      nest=True, lonlat=True).astype(np.int64)


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


def cone_ranges(ra_deg: float, dec_deg: float, radius_arcsec: float,
                max_pixels: int = 64) -> np.ndarray:
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


def crossmatch(ra1, dec1, hpx1, ra2, dec2, hpx2, radius_arcsec: float
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs of two catalogs closer than ``radius_arcsec``.

    Both sides are bucketed by their HEALPix pixel at a coarse order (pixels wider than the
    radius, derived from ``healpix29`` by a bit shift); each left source is compared with the
    right sources in its pixel and the eight neighbours, then kept by exact distance.

    Returns
    -------
    idx1, idx2, sep_arcsec : ndarray
        Row indices into each side and the separation in arcsec, sorted by (idx1, sep).
    """
    hpx1 = np.asarray(hpx1, np.int64)
    hpx2 = np.asarray(hpx2, np.int64)
    order = order_for_radius(radius_arcsec, max_order=HEALPIX_ORDER - 1)
    shift = 2 * (HEALPIX_ORDER - order)
    p1 = hpx1 >> shift
    p2 = hpx2 >> shift
    order2 = np.argsort(p2, kind="stable")
    p2s = p2[order2]
    # Only pixels that hold left sources need their neighbours.
    upix, inv = np.unique(p1, return_inverse=True)
    neigh = hp.get_all_neighbours(2**order, upix, nest=True).T  # (n_upix, 8), -1 where none
    cand_pix = np.concatenate([upix[:, None], neigh], axis=1)  # (n_upix, 9)
    lo = np.searchsorted(p2s, cand_pix, side="left")
    hi = np.searchsorted(p2s, cand_pix, side="right")
    hi = np.where(cand_pix < 0, lo, hi)
    # Neighbour lists can repeat a pixel near the poles/corners: drop repeats.
    dup = np.zeros_like(cand_pix, dtype=bool)
    for k in range(1, 9):
        dup[:, k] = (cand_pix[:, k:k + 1] == cand_pix[:, :k]).any(axis=1)
    hi = np.where(dup, lo, hi)
    counts_per_upix = (hi - lo).sum(axis=1)
    n_cand = counts_per_upix[inv]
    total = int(n_cand.sum())
    if total == 0:
        e = np.array([], dtype=np.int64)
        return e, e, np.array([], dtype=float)
    left = np.repeat(np.arange(len(p1), dtype=np.int64), n_cand)
    # For every left row, enumerate its candidates segment by segment.
    seg_lo = lo[inv]  # (n1, 9)
    seg_len = (hi - lo)[inv]
    flat_len = seg_len.ravel()
    flat_lo = seg_lo.ravel()
    keep = flat_len > 0
    flat_len, flat_lo = flat_len[keep], flat_lo[keep]
    starts = np.repeat(flat_lo - np.r_[0, np.cumsum(flat_len)[:-1]], flat_len)
    right_sorted_pos = starts + np.arange(total, dtype=np.int64)
    right = order2[right_sorted_pos]
    sep = separation_arcsec(np.asarray(ra1)[left], np.asarray(dec1)[left],
                            np.asarray(ra2)[right], np.asarray(dec2)[right])
    ok = sep <= radius_arcsec
    left, right, sep = left[ok], right[ok], sep[ok]
    o = np.lexsort((sep, left))
    return left[o], right[o], sep[o]


def best_matches(idx1: np.ndarray, idx2: np.ndarray, sep: np.ndarray) -> np.ndarray:
    """Boolean mask of the nearest right match for each left row (input sorted by idx1, sep)."""
    first = np.ones(len(idx1), dtype=bool)
    first[1:] = idx1[1:] != idx1[:-1]
    return first
