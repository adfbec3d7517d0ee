"""Benchmark the crossmatch (``xmatch_tables`` and ``catalog.sky.crossmatch``).

Measured
--------
All pairs within 0.2 arcsec between two catalogs of N sources each (default N = 10^6) in a
square region of ``--area`` deg^2 (default 0.5) around a cluster field: the right side is
90% of the left side jittered by 0.1 arcsec rms plus 10% unrelated sources, shuffled.
Timed: ``xmatch_tables`` on Arrow tables without and with a ``healpix29`` column, and
``crossmatch`` on arrays with precomputed ``healpix29`` (whose computation is timed apart).
Best of ``--repeat``; tracemalloc peak (numpy memory) of one extra run of each method.

Baseline
--------
``astropy.coordinates.search_around_sky`` on the same positions, SkyCoord construction of
both sides included (and shown apart). Pair sets must be identical (sorted (i, j) arrays).
Target: >= 5x faster than the baseline (issue 14).

``--field smacs0723`` (dec -73.5) or ``as1063`` (dec -44.5) put the region in HEALPix's polar
cap, where pixel shapes differ most from the equatorial ones.

Size scan
---------
``--scan`` times only ``xmatch_tables`` (computing ``healpix29``) and the baseline at
N = 10^4, 10^5, 10^6 (and 10^7 with ``--scan-max 10000000``) in the same ``--area`` (so the
density grows with N), checks the pair sets, and fits the exponent of each: the slope of
log time against log N (``numpy.polyfit``).

Run: ``.venv/bin/python benchmarks/bench_xmatch.py [--n N] [--field F] [--repeat R]
[--scan [--scan-max 10000000]]``
"""

from __future__ import annotations

import argparse
import tracemalloc

import astropy.units as u
import numpy as np
import pyarrow as pa
from _common import (
    FIELDS,
    add_scan_options,
    best_of,
    exponent,
    line,
    peak_rss_mb,
    positions,
    scan_sizes,
    sorted_pairs,
    timed,
)
from astropy.coordinates import SkyCoord, search_around_sky

from catalog.queries.search import xmatch_tables
from catalog.sky import crossmatch, healpix29


def make_sides(n: int, centre, area_deg2: float, rng):
    """Left positions, and right = 90% of left jittered (0.1" rms) + 10% unrelated, shuffled."""
    side_arcmin = np.sqrt(area_deg2) * 60.0
    ra1, dec1 = positions(rng, n, centre, side_arcmin)
    m = n - n // 10
    sigma = 0.1 / np.sqrt(2) / 3600.0  # per axis, so the 2-D rms offset is 0.1 arcsec
    dec_j = dec1[:m] + rng.normal(0, sigma, m)
    ra_j = (ra1[:m] + rng.normal(0, sigma, m) / np.cos(np.radians(dec1[:m]))) % 360.0
    ra_u, dec_u = positions(rng, n - m, centre, side_arcmin)
    perm = rng.permutation(n)
    return ra1, dec1, np.r_[ra_j, ra_u][perm], np.r_[dec_j, dec_u][perm]


def astropy_pairs(ra1, dec1, ra2, dec2, radius):
    t_sky, (c1, c2) = timed(lambda: (SkyCoord(ra1, dec1, unit="deg"), SkyCoord(ra2, dec2, unit="deg")))
    t_search, (i, j, _, _) = timed(search_around_sky, c1, c2, radius * u.arcsec)
    return (t_sky, t_search), (i, j)


def traced_peak_mb(fn, *args) -> float:
    tracemalloc.start()
    fn(*args)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def scan(args) -> None:
    """Time xmatch_tables and the baseline at growing N; fit time ~ N**k for each."""
    sizes = scan_sizes(args.scan_max)
    print(
        f"bench_xmatch --scan: N x N sources, {args.area} deg^2 around {args.field} "
        f"(dec {FIELDS[args.field][1]:+.2f}), radius {args.radius} arcsec, best of {args.repeat}"
    )
    print(f"  {'N':>12s} {'xmatch_tables':>14s} {'astropy':>10s} {'speed-up':>9s} {'pairs':>12s}")
    t_xt, t_ap, bad = [], [], []
    for n in sizes:
        ra1, dec1, ra2, dec2 = make_sides(n, FIELDS[args.field], args.area, np.random.default_rng(3))
        left = pa.table({"i": np.arange(n), "ra": ra1, "dec": dec1})
        right = pa.table({"j": np.arange(n), "ra": ra2, "dec": dec2})
        t, res = best_of(args.repeat, xmatch_tables, left, right, args.radius)
        runs = [astropy_pairs(ra1, dec1, ra2, dec2, args.radius) for _ in range(args.repeat)]
        ta = min(sum(r[0]) for r in runs)
        same = np.array_equal(
            sorted_pairs(res["i_1"].to_numpy(), res["j_2"].to_numpy()), sorted_pairs(*runs[-1][1])
        )
        if not same:
            bad.append(n)
        t_xt.append(t)
        t_ap.append(ta)
        print(
            f"  {n:>12,d} {t:>12.4f} s {ta:>8.3f} s {ta / t:>8.1f}x {len(res):>12,d} "
            f"{'identical to astropy' if same else 'MISMATCH'}"
        )
    for name, ts in (("xmatch_tables", t_xt), ("astropy", t_ap)):
        k = exponent(sizes, ts)
        print(f"  exponent of {name}: time ~ N^{k:.2f} (fit over N = {sizes[0]:,} .. {sizes[-1]:,})")
    if bad:
        raise SystemExit(f"pair sets differ from astropy at N = {bad}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="sources per side (default 10^6)")
    ap.add_argument("--radius", type=float, default=0.2, help="match radius, arcsec")
    ap.add_argument("--area", type=float, default=0.5, help="region area, deg^2")
    ap.add_argument("--field", choices=sorted(FIELDS), default="abell2744", help="region centre")
    ap.add_argument("--repeat", type=int, default=3, help="runs per method (best is kept)")
    add_scan_options(ap, "time")
    args = ap.parse_args()
    if args.scan:
        scan(args)
        return
    rng = np.random.default_rng(3)
    ra1, dec1, ra2, dec2 = make_sides(args.n, FIELDS[args.field], args.area, rng)
    R = args.radius
    print(
        f"bench_xmatch: {args.n:,} x {args.n:,} sources, {args.area} deg^2 around {args.field} "
        f"(dec {FIELDS[args.field][1]:+.2f}), radius {R} arcsec"
    )

    t_hpx, (h1, h2) = best_of(args.repeat, lambda: (healpix29(ra1, dec1), healpix29(ra2, dec2)))
    t_cm, (i, j, _) = best_of(args.repeat, crossmatch, ra1, dec1, h1, ra2, dec2, h2, R)
    left = pa.table({"i": np.arange(args.n), "ra": ra1, "dec": dec1})
    right = pa.table({"j": np.arange(args.n), "ra": ra2, "dec": dec2})
    t_xt, res = best_of(args.repeat, xmatch_tables, left, right, R)
    t_xth, res_h = best_of(
        args.repeat,
        xmatch_tables,
        left.append_column("healpix29", pa.array(h1)),
        right.append_column("healpix29", pa.array(h2)),
        R,
    )
    runs = [astropy_pairs(ra1, dec1, ra2, dec2, R) for _ in range(args.repeat)]
    t_sky, t_search = min(r[0] for r in runs)
    ai, aj = runs[-1][1]
    t_astropy = t_sky + t_search

    mem_cm = traced_peak_mb(crossmatch, ra1, dec1, h1, ra2, dec2, h2, R)
    mem_ap = traced_peak_mb(astropy_pairs, ra1, dec1, ra2, dec2, R)

    print(f"baseline: astropy search_around_sky incl. SkyCoord construction ({t_astropy:.3f} s)")
    line("astropy SkyCoord construction (both sides)", t_sky)
    line("astropy search_around_sky", t_search)
    line("healpix29 of both sides", t_hpx)
    line("crossmatch (healpix29 precomputed)", t_cm, baseline=t_astropy, base_name="astropy time")
    line("crossmatch + healpix29", t_cm + t_hpx, baseline=t_astropy, base_name="astropy time")
    line("xmatch_tables (computes healpix29)", t_xt, baseline=t_astropy, base_name="astropy time")
    line("xmatch_tables (healpix29 columns)", t_xth, baseline=t_astropy, base_name="astropy time")
    line("tracemalloc peak: crossmatch", mem_cm, "MiB")
    line("tracemalloc peak: SkyCoord + search_around_sky", mem_ap, "MiB")
    print(
        f"  speed-up of xmatch_tables over astropy: {t_astropy / t_xt:.1f}x "
        f"(target >= 5x -> {'MET' if t_astropy / t_xt >= 5 else 'MISSED'}); "
        f"peak RSS {peak_rss_mb():.0f} MiB"
    )

    ref = sorted_pairs(ai, aj)
    checks = {
        "crossmatch": sorted_pairs(i, j),
        "xmatch_tables": sorted_pairs(res["i_1"].to_numpy(), res["j_2"].to_numpy()),
        "xmatch_tables+hpx": sorted_pairs(res_h["i_1"].to_numpy(), res_h["j_2"].to_numpy()),
    }
    ref_set = set(map(tuple, ref.tolist()))
    bad = []
    for name, got in checks.items():
        if np.array_equal(got, ref):
            print(f"  {name}: {len(got):,} pairs, identical to astropy")
            continue
        got_set = set(map(tuple, got.tolist()))
        missing, extra = sorted(ref_set - got_set), sorted(got_set - ref_set)
        bad.append(name)
        print(
            f"  {name}: {len(got):,} pairs vs astropy {len(ref):,}: MISMATCH, {len(missing):,} "
            f"missing (e.g. {missing[:3]}), {len(extra):,} extra (e.g. {extra[:3]})"
        )
        if missing:
            mi = np.array(missing[:1000])
            sep = (
                SkyCoord(ra1[mi[:, 0]], dec1[mi[:, 0]], unit="deg")
                .separation(SkyCoord(ra2[mi[:, 1]], dec2[mi[:, 1]], unit="deg"))
                .arcsec
            )
            print(f"    separations of missing pairs: {sep.min():.4f} to {sep.max():.4f} arcsec")
    if bad:
        raise SystemExit(f"pair sets differ from astropy for: {', '.join(bad)}")


if __name__ == "__main__":
    main()
