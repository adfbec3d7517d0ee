"""Benchmark ``catalog.queries.search.cone`` on a large detections-only lake.

Measured
--------
A lake of N detections (default N = 10^7), written as ``--ingests`` detections-only
catalogs (``id, ra, dec``) of N / ingests rows, each in its own 2-arcmin cluster field
(equatorial and polar-cap fields). ``--cones`` (default 200) 5-arcsec cones centred on
real sources: median and p90 of ``cone(con, ra, dec, 5)`` in ms (one ``connect()`` shared;
one warm-up cone first). Target (issue 14): median <= 20 ms on 10^7 detections.

Baseline
--------
Brute force over the same ``detections`` view in DuckDB, ``WHERE ang_sep_arcsec(ra, dec,
ra0, dec0) <= 5`` (no HEALPix ranges), for the first ``--brute`` cones (default 10); and a
numpy haversine over all N positions held in memory for the same cones. The ``cone()``
row sets must equal both brute-force row sets.

A third baseline: ``cone()`` over ``SELECT * FROM detections``, for which it cannot choose
files by their Delta healpix29 range (DuckDB opens every file's footer); the row sets must
be the same.

Size scan
---------
``--scan`` builds lakes of N = 10^4 .. ``--scan-max`` (10^6; 10^7 takes ~1 min to build) in
the same fields and ingests, times the median cone, the every-file cone and the numpy
haversine at each N, checks the row sets, and fits the exponent of each (time ~ N^k).

Run: ``.venv/bin/python benchmarks/bench_cone.py [--n N] [--cones C] [--brute B] [--scan [--scan-max M]]``
"""

from __future__ import annotations

import argparse

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from _common import FIELDS, add_scan_options, exponent, peak_rss_mb, positions, scan_sizes, scratch, timed

from catalog.lake import Lake
from catalog.queries.connection import connect
from catalog.queries.search import cone
from ingest.catalog import ingest_catalog

RADIUS = 5.0
#: The same cone over a SELECT: cone() cannot choose files for it, so DuckDB opens them all.
EVERY_FILE = "SELECT * FROM detections"


def haversine_arcsec(ra, dec, ra0, dec0):
    """Great-circle distance in arcsec (haversine; independent of catalog.sky)."""
    r, d, r0, d0 = map(np.radians, (ra, dec, ra0, dec0))
    h = np.sin((d - d0) / 2) ** 2 + np.cos(d) * np.cos(d0) * np.sin((r - r0) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(h))) * 3600.0


def build_lake(
    root, n: int, n_ingests: int, rng
) -> tuple[Lake, list[tuple[str, np.ndarray, np.ndarray]], float]:
    """Ingest ``n_ingests`` detections-only catalogs; returns the lake, positions, seconds."""
    lake = Lake.create(root / "lake")
    fields, seconds, per = list(FIELDS), 0.0, n // n_ingests
    kept = []
    for k in range(n_ingests):
        fid = fields[k % len(fields)]
        ra, dec = positions(rng, per, FIELDS[fid])
        src = root / f"det{k}.parquet"
        pq.write_table(pa.table({"id": np.arange(1, per + 1), "ra": ra, "dec": dec}), src)
        seconds += timed(ingest_catalog, lake, src, field_id=fid, name=f"det{k}")[0]
        src.unlink()
        kept.append((f"{fid}/det{k}/", ra, dec))
    return lake, kept, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=10_000_000, help="detections (default 10^7)")
    ap.add_argument("--ingests", type=int, default=10, help="catalogs the lake is built from")
    ap.add_argument("--cones", type=int, default=200, help="timed cones")
    ap.add_argument("--brute", type=int, default=10, help="cones checked by brute force")
    add_scan_options(ap, "median cone")
    args = ap.parse_args()
    if args.scan:
        scan(args)
        return
    rng = np.random.default_rng(11)
    with scratch("gccat-bench-cone-") as d:
        lake, kept, t_build = build_lake(d, args.n, args.ingests, rng)
        prefixes, per = [p for p, _, _ in kept], len(kept[0][1])
        ra_all = np.concatenate([r for _, r, _ in kept])
        dec_all = np.concatenate([dd for _, _, dd in kept])
        del kept
        print(
            f"bench_cone: {len(ra_all):,} detections in {args.ingests} ingests "
            f"(lake built in {t_build:.1f} s); {args.cones} cones of {RADIUS:g} arcsec"
        )
        t_connect, con = timed(connect, lake)
        pick = rng.choice(len(ra_all), args.cones, replace=False)
        centres = [(float(ra_all[i]), float(dec_all[i])) for i in pick]
        ms, rows, results = time_cones(con, centres, keep=args.brute)
        every_ms, _, every = time_cones(con, centres[: args.brute], keep=args.brute, source=EVERY_FILE)
        bad_every = sum(a != b for a, b in zip(results, every, strict=True))

        duck_ms, np_ms, bad = [], [], 0
        for (ra0, dec0), got in zip(centres[: args.brute], results, strict=False):
            sql = (
                f"SELECT detection_id FROM detections "
                f"WHERE ang_sep_arcsec(ra, dec, {ra0!r}, {dec0!r}) <= {RADIUS}"
            )
            t, ref = timed(lambda q=sql: con.sql(q).to_arrow_table())
            duck_ms.append(t * 1e3)
            t, sel = timed(lambda a=ra0, b=dec0: haversine_arcsec(ra_all, dec_all, a, b) <= RADIUS)
            np_ms.append(t * 1e3)
            duck_set, np_set = (
                set(ref["detection_id"].to_pylist()),
                {prefixes[i // per] + str(i % per + 1) for i in np.flatnonzero(sel)},
            )
            if not got == duck_set == np_set:
                bad += 1
                print(
                    f"  MISMATCH at ({ra0}, {dec0}): cone {len(got)}, DuckDB brute "
                    f"{len(duck_set)}, numpy {len(np_set)}; cone-only {sorted(got - np_set)[:5]}"
                    f", numpy-only {sorted(np_set - got)[:5]}"
                )
        con.close()

    med, p90 = np.median(ms), np.percentile(ms, 90)
    med_duck, med_np = np.median(duck_ms), np.median(np_ms)
    med_cone_b = np.median(ms[: args.brute])
    print(f"  connect()                         {t_connect * 1e3:9.1f} ms")
    print(
        f"  cone() median / p90 / max         {med:9.1f} / {p90:.1f} / {max(ms):.1f} ms "
        f"(rows per cone: median {np.median(rows):.0f}, max {max(rows)})"
    )
    print(
        f"  baseline cone() over every file   {np.median(every_ms):9.1f} ms median over {len(every_ms)} cones"
        f"   -> choosing files by Delta healpix29 range is {np.median(every_ms) / med_cone_b:.1f}x faster"
        f" (row sets differ for {bad_every})"
    )
    print(
        f"  baseline DuckDB brute force       {med_duck:9.1f} ms median over {len(duck_ms)} cones"
        f"   -> cone() is {med_duck / med_cone_b:.1f}x faster on those cones"
    )
    print(
        f"  baseline numpy haversine (in RAM) {med_np:9.1f} ms median over {len(np_ms)} cones"
        f"   -> cone() is {med_np / med_cone_b:.1f}x faster on those cones"
    )
    print(f"  row sets identical for {len(duck_ms) - bad}/{len(duck_ms)} brute-forced cones")
    verdict = "MET" if med <= 20 else "MISSED"
    print(f"  target (issue 14) median <= 20 ms -> {verdict}; peak RSS {peak_rss_mb():.0f} MiB")
    if bad or bad_every:
        raise SystemExit(f"{bad + bad_every} cones differ from brute force or from every file")


def time_cones(con, centres, keep: int, source: str = "detections"):
    """Milliseconds and rows of each cone (after one warm-up), and the id sets of the first ``keep``."""
    cone(con, *centres[0], RADIUS, source)
    ms, rows, ids = [], [], []
    for ra0, dec0 in centres:
        t, tbl = timed(cone, con, ra0, dec0, RADIUS, source)
        ms.append(t * 1e3)
        rows.append(tbl.num_rows)
        if len(ids) < keep:
            ids.append(set(tbl["detection_id"].to_pylist()))
    return ms, rows, ids


def scan(args) -> None:
    """Median cone time at N = 10^4 .. --scan-max (same fields, so the density grows with N)."""
    sizes = scan_sizes(args.scan_max)
    print(
        f"bench_cone --scan: {args.ingests} ingests, {args.cones} cones of {RADIUS:g} arcsec per N; "
        "baselines: cone() over every file, numpy haversine over all N in RAM"
    )
    curves = {"cone()": [], "every file": [], "numpy": []}
    for n in sizes:
        rng = np.random.default_rng(11)
        with scratch("gccat-bench-cone-") as d:
            lake, kept, _ = build_lake(d, n, args.ingests, rng)
            ra_all = np.concatenate([r for _, r, _ in kept])
            dec_all = np.concatenate([dd for _, _, dd in kept])
            con = connect(lake)
            pick = rng.choice(len(ra_all), args.cones, replace=False)
            centres = [(float(ra_all[i]), float(dec_all[i])) for i in pick]
            ms, rows, ids = time_cones(con, centres, keep=len(centres))
            every_ms, _, every = time_cones(con, centres, keep=len(centres), source=EVERY_FILE)
            np_ms = [timed(haversine_arcsec, ra_all, dec_all, a, b)[0] * 1e3 for a, b in centres[:10]]
            con.close()
        if ids != every:
            raise SystemExit(f"N = {n}: cone() and the every-file cone give different rows")
        for name, v in zip(curves, (ms, every_ms, np_ms), strict=True):
            curves[name].append(float(np.median(v)) / 1e3)
        print(
            f"  N = {n:>10,}: cone() {np.median(ms):7.2f} ms, every file {np.median(every_ms):7.2f} ms "
            f"({np.median(every_ms) / np.median(ms):.1f}x), numpy {np.median(np_ms):8.2f} ms; "
            f"rows per cone {np.median(rows):.0f}"
        )
    for name, ts in curves.items():
        k = exponent(sizes, ts)
        print(f"  exponent of {name}: time ~ N^{k:.2f} (fit over N = {sizes[0]:,} .. {sizes[-1]:,})")


if __name__ == "__main__":
    main()
