"""Benchmark the lake's DuckDB views on a multi-band lake.

Measured
--------
On a lake of N detections x 8 NIRCam bands (default N = 10^6, 8 N photometry rows) split
across 4 fields (one ingest each): ``catalog.queries.connection.connect()``, ``SELECT count(*) FROM
photometry_wide``, fetching all of ``photometry_wide`` to Arrow, and a cross-field
aggregate (per field: count and median ``mag_F150W``). Each is the best of ``--repeat``.

Baseline
--------
The same pivot with plain DuckDB (no lake, no UDFs, no live-ingest filter, no
``photometry_best`` de-duplication) over one long-layout Parquet file written with pyarrow:
``max(...) FILTER (WHERE band = ...)`` per band and AB magnitudes in SQL. The results of the
two must agree (row count, per-field counts and medians).

``--scan`` runs the same at N = 10^4 .. ``--scan-max`` (default 10^6) and fits the exponent of
each query's time in N, for the lake and the baseline.

Run: ``.venv/bin/python benchmarks/bench_views.py [--n N] [--repeat R] [--scan [--scan-max M]]``
"""

from __future__ import annotations

import argparse

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from _common import (
    BANDS,
    FIELDS,
    add_scan_options,
    best_of,
    catalog,
    exponent,
    line,
    peak_rss_mb,
    scan_sizes,
    scratch,
    timed,
)

from catalog.lake import Lake
from catalog.queries.connection import connect
from ingest.catalog import ingest_catalog

FIELD_IDS = ["abell2744", "macs0416", "smacs0723", "as1063"]
COUNT = "SELECT count(*) FROM {v}"
ALL = "SELECT * FROM {v}"
AGG = "SELECT field_id, count(*) AS n, median(mag_F150W) AS med FROM {v} GROUP BY field_id ORDER BY field_id"


def long_layout(tbl: pa.Table, field_id: str) -> pa.Table:
    """The catalog as long rows (detection columns + band, flux, error), like the lake."""
    n = tbl.num_rows
    det_id = pa.array(np.char.add(f"{field_id}/cat/", tbl["id"].to_numpy().astype(str)))
    rep = lambda a: np.tile(np.asarray(a), len(BANDS))  # noqa: E731
    return pa.table(
        {
            "detection_id": pa.chunked_array([det_id] * len(BANDS)),
            "field_id": pa.array([field_id] * (n * len(BANDS))),
            "ra": rep(tbl["ra"]),
            "dec": rep(tbl["dec"]),
            "band": np.repeat(BANDS, n),
            "flux_njy": np.concatenate([tbl[f"flux_{b}"].to_numpy() for b in BANDS]),
            "flux_err_njy": np.concatenate([tbl[f"fluxerr_{b}"].to_numpy() for b in BANDS]),
        }
    )


def baseline_view(path) -> str:
    cols = []
    for b in BANDS:
        f, e = (f"max({c}) FILTER (WHERE band = '{b}')" for c in ("flux_njy", "flux_err_njy"))
        cols += [
            f"{f} AS flux_{b}",
            f"{e} AS fluxerr_{b}",
            f"CASE WHEN {f} > 0 THEN 31.4 - 2.5 * log10({f}) END AS mag_{b}",
            f"CASE WHEN {f} > 0 THEN 2.5 / ln(10) * {e} / {f} END AS magerr_{b}",
        ]
    return (
        f"CREATE VIEW wide AS SELECT detection_id, field_id, ra, dec, {', '.join(cols)} "
        f"FROM read_parquet('{path}') GROUP BY detection_id, field_id, ra, dec"
    )


def run_queries(con, view: str, repeat: int) -> dict:
    out = {}
    out["count(*)"], out["n"] = best_of(repeat, lambda: con.sql(COUNT.format(v=view)).fetchall()[0][0])
    out["fetch all to Arrow"], tbl = best_of(repeat, lambda: con.sql(ALL.format(v=view)).to_arrow_table())
    out["ncols"] = tbl.num_columns
    del tbl
    out["per-field count + median mag_F150W"], out["agg"] = best_of(
        repeat, lambda: con.sql(AGG.format(v=view)).fetchall()
    )
    return out


QUERIES = ("count(*)", "fetch all to Arrow", "per-field count + median mag_F150W")


def measure(n: int, repeat: int) -> dict:
    """Build an n-detection lake and its long-layout baseline; time connect() and the queries."""
    rng = np.random.default_rng(7)
    per_field = n // len(FIELD_IDS)
    with scratch("gccat-bench-views-") as d:
        lake = Lake.create(d / "lake")
        t_ingest, longs = 0.0, []
        for fid in FIELD_IDS:
            tbl = catalog(rng, per_field, FIELDS[fid])
            pq.write_table(tbl, d / f"{fid}.parquet")
            t_ingest += timed(ingest_catalog, lake, d / f"{fid}.parquet", field_id=fid, name="cat")[0]
            longs.append(long_layout(tbl, fid))
        pq.write_table(pa.concat_tables(longs), d / "long.parquet")
        del longs, tbl
        t_connect, con = best_of(repeat, connect, lake)
        lk = run_queries(con, "photometry_wide", repeat)
        base_con = duckdb.connect()
        t_base_connect, _ = timed(base_con.execute, baseline_view(d / "long.parquet"))
        bl = run_queries(base_con, "wide", repeat)
        con.close()
        base_con.close()
    n_det = per_field * len(FIELD_IDS)
    same_n = lk["n"] == bl["n"] == n_det
    same_agg = len(lk["agg"]) == len(bl["agg"]) and all(
        a[0] == b[0] and a[1] == b[1] and np.isclose(a[2], b[2], rtol=0, atol=1e-9)
        for a, b in zip(lk["agg"], bl["agg"], strict=True)
    )
    return {
        "n_det": n_det,
        "t_ingest": t_ingest,
        "t_connect": t_connect,
        "t_base_connect": t_base_connect,
        "lake": lk,
        "base": bl,
        "agree": same_n and same_agg,
        "same_n": same_n,
        "same_agg": same_agg,
    }


def scan(args) -> None:
    """Each query at N = 10^4 .. --scan-max detections, and the exponent of its time in N."""
    sizes = scan_sizes(args.scan_max)
    print(
        f"bench_views --scan: N detections x {len(BANDS)} bands in {len(FIELD_IDS)} fields, "
        f"best of {args.repeat}"
    )
    runs = []
    for n in sizes:
        r = measure(n, args.repeat)
        if not r["agree"]:
            raise SystemExit(f"N = {n}: photometry_wide and the baseline pivot disagree")
        runs.append(r)
        print(
            f"  N = {n:>10,}: "
            + ", ".join(f"{k} {r['lake'][k]:.3f} s ({r['lake'][k] / r['base'][k]:.2f}x)" for k in QUERIES)
        )
    for k in QUERIES:
        for side, label in (("lake", "photometry_wide"), ("base", "baseline")):
            e = exponent(sizes, [r[side][k] for r in runs])
            print(f"  exponent of {k}, {label}: time ~ N^{e:.2f} (N = {sizes[0]:,} .. {sizes[-1]:,})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="detections in all (default 10^6)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per query (best is kept)")
    add_scan_options(ap, "time")
    args = ap.parse_args()
    if args.scan:
        scan(args)
        return
    r = measure(args.n, args.repeat)
    lk, bl, n_det = r["lake"], r["base"], r["n_det"]
    print(
        f"bench_views: {n_det:,} detections x {len(BANDS)} bands in {len(FIELD_IDS)} fields "
        f"({n_det * len(BANDS):,} photometry rows); lake built in {r['t_ingest']:.1f} s"
    )
    print("baseline: plain DuckDB pivot over one pyarrow-written long Parquet file")
    line("connect() / baseline CREATE VIEW", r["t_connect"], baseline=r["t_base_connect"])
    for k in QUERIES:
        line(k, lk[k], baseline=bl[k])
    print("  baseline figures (s): " + ", ".join(f"{k} {bl[k]:.3f}" for k in QUERIES))
    print(
        f"  rows: lake {lk['n']:,}, baseline {bl['n']:,} (expected {n_det:,}); columns: lake "
        f"{lk['ncols']}, baseline {bl['ncols']}"
    )
    print(f"  per-field aggregate: {lk['agg']}")
    print(f"  results agree: rows {r['same_n']}, per-field count+median {r['same_agg']}")
    print(f"  peak RSS of the whole run: {peak_rss_mb():.0f} MiB")
    if not r["agree"]:
        raise SystemExit("MISMATCH between photometry_wide and the baseline pivot")


if __name__ == "__main__":
    main()
