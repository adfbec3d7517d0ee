"""Benchmark ``ingest_catalog`` on a large multi-band catalog.

Measured
--------
``ingest.catalog.ingest_catalog`` of N detections x 8 NIRCam bands (default N = 10^6) from
a Parquet file and from a FITS binary table (astropy), each in a fresh lake, with the time
spent per ingest stage (from the ``progress`` callback) and the peak RSS of the process.

Baseline
--------
``pyarrow.parquet.write_table`` of the same rows already in the lake's long layout: the
``detections`` table (N rows) and the long ``photometry`` table (8 N rows), both writes
timed (the tables are built untimed beforehand). Target: ingest / baseline <= 2.

Every measurement runs in its own subprocess (``--child MODE``) so that peak RSS
(``ru_maxrss``) and the Arrow pool peak belong to that one ingest or write.

Run: ``.venv/bin/python benchmarks/bench_ingest.py [--n N]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from _common import BANDS, FIELDS, catalog, line, peak_rss_mb, scratch, timed


def child_baseline(src: Path, out: Path) -> dict:
    """Build the long-layout tables from ``src`` (untimed), then time writing them."""
    from catalog.lake.schemas import DETECTIONS, PHOTOMETRY
    from catalog.sky import healpix29
    from ingest.catalog import constant

    t = pq.read_table(src)
    n, ing = t.num_rows, "20250101T000000-deadbeef"
    sid = t["id"].cast(pa.string())
    det_id = pc.binary_join_element_wise("abell2744/cat1/", sid, "")
    ra, dec = t["ra"].to_numpy(), t["dec"].to_numpy()
    det = pa.table(
        {
            "detection_id": det_id,
            "field_id": constant("abell2744", n),
            "catalog": constant("cat1", n),
            "source_id": sid,
            "ra": ra,
            "dec": dec,
            "healpix29": healpix29(ra, dec),
            "z": pa.nulls(n, pa.float64()),
            "class": pa.nulls(n, pa.string()),
            "flags": pa.nulls(n, pa.int64()),
            "extra": pa.nulls(n, pa.string()),
            "snr": pa.nulls(n, pa.float64()),
            "ingest_id": constant(ing, n),
        },
        schema=DETECTIONS,
    ).sort_by("healpix29")
    k = n * len(BANDS)
    phot = pa.table(
        {
            "detection_id": pa.chunked_array([det_id.combine_chunks()] * len(BANDS)),
            "field_id": constant("abell2744", k),
            "band": pa.chunked_array([constant(b, n) for b in BANDS]),
            "flux_njy": pa.chunked_array([t[f"flux_{b}"].combine_chunks() for b in BANDS]),
            "flux_err_njy": pa.chunked_array([t[f"fluxerr_{b}"].combine_chunks() for b in BANDS]),
            "is_upper_limit": np.zeros(k, bool),
            "method": constant("catalog", k),
            "aperture_radius_arcsec": pa.nulls(k, pa.float64()),
            "mw_corrected": np.zeros(k, bool),
            "quality": np.zeros(k, np.int32),
            "ingest_id": constant(ing, k),
        },
        schema=PHOTOMETRY,
    )
    del t
    out.mkdir()
    t_det, _ = timed(pq.write_table, det, out / "detections.parquet")
    t_phot, _ = timed(pq.write_table, phot, out / "photometry.parquet")
    return {"seconds": t_det + t_phot, "t_detections": t_det, "t_photometry": t_phot}


def child_ingest(src: Path, out: Path) -> dict:
    """Time ``ingest_catalog`` of ``src`` into a new lake at ``out``, with per-stage times."""
    from catalog.lake import Lake
    from ingest.catalog import ingest_catalog

    lake = Lake.create(out)
    marks: list[tuple[str, float]] = []
    seconds, rep = timed(
        ingest_catalog,
        lake,
        src,
        field_id="abell2744",
        name="cat1",
        progress=lambda stage, _f: marks.append((stage, time.perf_counter())),
    )
    stages = {a[0]: round(b[1] - a[1], 3) for a, b in zip(marks, marks[1:], strict=False)}
    return {"seconds": seconds, "n_rows": rep.n_rows, "n_photometry": rep.n_photometry, "stages": stages}


def run_child(mode: str, src: Path, out: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--src", str(src), "--out", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode:
        sys.exit(f"child {mode} failed:\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="detections (default 10^6)")
    ap.add_argument("--child", choices=["baseline", "parquet", "fits"], help=argparse.SUPPRESS)
    ap.add_argument("--src", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        fn = child_baseline if args.child == "baseline" else child_ingest
        res = fn(args.src, args.out)
        res.update(
            peak_rss_mb=peak_rss_mb(), arrow_pool_peak_mb=pa.default_memory_pool().max_memory() / 2**20
        )
        print(json.dumps(res))
        return

    from astropy.table import Table

    with scratch("gccat-bench-ingest-") as d:
        tbl = catalog(np.random.default_rng(42), args.n, FIELDS["abell2744"])
        pq.write_table(tbl, d / "cat.parquet")
        Table({c: tbl[c].to_numpy() for c in tbl.column_names}).write(d / "cat.fits")
        del tbl
        mb = {f: (d / f"cat.{f}").stat().st_size / 2**20 for f in ("parquet", "fits")}
        print(
            f"bench_ingest: {args.n:,} detections x {len(BANDS)} bands "
            f"(source files: Parquet {mb['parquet']:.0f} MiB, FITS {mb['fits']:.0f} MiB)"
        )
        base = run_child("baseline", d / "cat.parquet", d / "baseline")
        runs = {f: run_child(f, d / f"cat.{f}", d / f"lake_{f}") for f in ("parquet", "fits")}
    print(
        "baseline: pyarrow.parquet.write_table of the long layout "
        f"({args.n:,} detections + {args.n * len(BANDS):,} photometry rows)"
    )
    line("write detections.parquet", base["t_detections"])
    line("write photometry.parquet", base["t_photometry"])
    line("baseline total", base["seconds"])
    line("baseline peak RSS (build + write)", base["peak_rss_mb"], "MiB")
    for fmt, r in runs.items():
        ok = r["n_rows"] == args.n and r["n_photometry"] == args.n * len(BANDS)
        print(f"ingest_catalog from {fmt.upper()} (rows ok: {ok})")
        line(f"ingest_catalog({fmt})", r["seconds"], baseline=base["seconds"])
        line("peak RSS", r["peak_rss_mb"], "MiB", baseline=base["peak_rss_mb"])
        line("Arrow pool peak", r["arrow_pool_peak_mb"], "MiB")
        print("    stages (s): " + ", ".join(f"{k} {v}" for k, v in r["stages"].items()))
    worst = max(r["seconds"] for r in runs.values()) / base["seconds"]
    print(f"target ingest/baseline <= 2.0x: worst {worst:.2f}x -> {'MET' if worst <= 2 else 'MISSED'}")


if __name__ == "__main__":
    main()
