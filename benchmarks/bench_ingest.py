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
timed (the tables are built untimed beforehand). The baseline writes with the lake's own
Parquet settings (``catalog.lake.parquet_options``: Snappy, the pyarrow default; row groups
of 32,768 detections and 2^20 photometry rows; dictionaries only on the columns that repeat
values), all columns included (the lake leaves out its partition column ``field_id``). The
same write with pyarrow's defaults (row groups of 2^20, every column dictionary-encoded) is
printed for reference. Target (issue 14): ingest / baseline <= 1.5.

Both timers start with pandas imported (pyarrow's numpy conversions import it once per
process: the baseline does it while building its tables, the ingest child just before its
timer; that import's time is printed apart). Every measurement runs in its own subprocess
(``--child MODE``) so that peak RSS (``ru_maxrss``) and the Arrow pool peak belong to that
one ingest or write; ``--repeat R`` takes the best of R runs of each, the children taken in
turn in each round (a slow spell of a shared machine falls on all of them). ``--scan``
times the ingest (Parquet source) and the baseline at N = 10^4, 10^5, 10^6 (and 10^7 with
``--scan-max 10000000``) and fits the exponent of time vs N of each (``numpy.polyfit`` of log t on log N).

Run: ``.venv/bin/python benchmarks/bench_ingest.py [--n N] [--repeat R] [--scan [--scan-max N]]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from _common import BANDS, FIELDS, add_scan_options, catalog, line, peak_rss_mb, scan_sizes, scratch, timed

TARGET = 1.5


def child_baseline(src: Path, out: Path, defaults: bool = False) -> dict:
    """Build the long-layout tables from ``src`` (untimed), then time writing them, with the
    lake's Parquet settings (or, ``defaults``, pyarrow's).
    """
    from catalog.lake import parquet_options
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
    opts = {
        name: {} if defaults else parquet_options(name, tbl.column_names)
        for name, tbl in (("detections", det), ("photometry", phot))
    }
    t_det, _ = timed(pq.write_table, det, out / "detections.parquet", **opts["detections"])
    t_phot, _ = timed(pq.write_table, phot, out / "photometry.parquet", **opts["photometry"])
    return {"seconds": t_det + t_phot, "t_detections": t_det, "t_photometry": t_phot}


def child_ingest(src: Path, out: Path) -> dict:
    """Time ``ingest_catalog`` of ``src`` into a new lake at ``out``, with per-stage times."""
    from catalog.lake import Lake
    from ingest.catalog import ingest_catalog

    # pyarrow's numpy conversions import pandas once per process; the baseline's process has
    # done it (building its tables) before its timer starts, so this one does it too, timed
    # apart and printed
    t_pandas, _ = timed(__import__, "pandas")
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
    return {
        "seconds": seconds,
        "n_rows": rep.n_rows,
        "n_photometry": rep.n_photometry,
        "stages": stages,
        "pandas_import": t_pandas,
    }


def run_child(mode: str, src: Path, out: Path, repeat: int = 1) -> dict:
    """The best (shortest) of ``repeat`` runs of one child, each in a fresh process and dir."""
    return run_children({mode: (src, out)}, repeat)[mode]


def run_children(children: dict[str, tuple[Path, Path]], repeat: int = 1) -> dict[str, dict]:
    """The best of ``repeat`` runs of each child (mode -> (src, out)), the children taken in
    turn in each round, so that a slow spell of a shared machine falls on all of them.
    """
    best: dict[str, dict] = {}
    for i in range(repeat):
        for mode, (src, out) in children.items():
            o = out.with_name(f"{out.name}_{i}")
            cmd = [sys.executable, __file__, "--child", mode, "--src", str(src), "--out", str(o)]
            res = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if res.returncode:
                sys.exit(f"child {mode} failed:\n{res.stderr}")
            r = json.loads(res.stdout.strip().splitlines()[-1])
            shutil.rmtree(o, ignore_errors=True)
            if mode not in best or r["seconds"] < best[mode]["seconds"]:
                best[mode] = r
    return best


def write_sources(d: Path, n: int, fits: bool = True) -> dict[str, float]:
    """The synthetic catalog as ``cat.parquet`` (and ``cat.fits``) in ``d``; sizes in MiB."""
    from astropy.table import Table

    tbl = catalog(np.random.default_rng(42), n, FIELDS["abell2744"])
    pq.write_table(tbl, d / "cat.parquet")
    if fits:
        Table({c: tbl[c].to_numpy() for c in tbl.column_names}).write(d / "cat.fits")
    del tbl
    return {
        f: (d / f"cat.{f}").stat().st_size / 2**20 for f in ("parquet", "fits") if (d / f"cat.{f}").exists()
    }


def scan(args) -> None:
    """Ingest (Parquet) and baseline at growing N; fitted exponents of time vs N."""
    sizes = scan_sizes(args.scan_max)
    t_ing, t_base = [], []
    print(f"bench_ingest --scan: N = {', '.join(f'{n:,}' for n in sizes)} (best of {args.repeat})")
    for n in sizes:
        with scratch("gccat-bench-ingest-") as d:
            write_sources(d, n, fits=False)
            base = run_child("baseline", d / "cat.parquet", d / "baseline", args.repeat)
            ing = run_child("parquet", d / "cat.parquet", d / "lake", args.repeat)
        ok = ing["n_rows"] == n and ing["n_photometry"] == n * len(BANDS)
        t_ing.append(ing["seconds"])
        t_base.append(base["seconds"])
        print(
            f"  N = {n:>10,}: ingest {ing['seconds']:8.3f} s, baseline {base['seconds']:8.3f} s, "
            f"{ing['seconds'] / base['seconds']:.2f}x (rows ok: {ok})"
        )
    if len(sizes) >= 2:
        logn = np.log10(sizes)
        e_ing = np.polyfit(logn, np.log10(t_ing), 1)[0]
        e_base = np.polyfit(logn, np.log10(t_base), 1)[0]
        print(f"  fitted exponents: ingest_catalog N^{e_ing:.2f}, baseline N^{e_base:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="detections (default 10^6)")
    ap.add_argument("--repeat", type=int, default=1, help="best of R runs of each (default 1)")
    add_scan_options(ap, "time")
    ap.add_argument(
        "--child", choices=["baseline", "baseline-defaults", "parquet", "fits"], help=argparse.SUPPRESS
    )
    ap.add_argument("--src", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        if args.child.startswith("baseline"):
            res = child_baseline(args.src, args.out, defaults=args.child == "baseline-defaults")
        else:
            res = child_ingest(args.src, args.out)
        res.update(
            peak_rss_mb=peak_rss_mb(), arrow_pool_peak_mb=pa.default_memory_pool().max_memory() / 2**20
        )
        print(json.dumps(res))
        return

    if args.scan:
        scan(args)
        return
    with scratch("gccat-bench-ingest-") as d:
        mb = write_sources(d, args.n)
        print(
            f"bench_ingest: {args.n:,} detections x {len(BANDS)} bands "
            f"(source files: Parquet {mb['parquet']:.0f} MiB, FITS {mb['fits']:.0f} MiB), "
            f"best of {args.repeat}"
        )
        res = run_children(
            {
                "baseline": (d / "cat.parquet", d / "baseline"),
                "baseline-defaults": (d / "cat.parquet", d / "baseline_def"),
                **{f: (d / f"cat.{f}", d / f"lake_{f}") for f in ("parquet", "fits")},
            },
            args.repeat,
        )
        base, base_def = res["baseline"], res["baseline-defaults"]
        runs = {f: res[f] for f in ("parquet", "fits")}
    print(
        "baseline: pyarrow.parquet.write_table of the long layout "
        f"({args.n:,} detections + {args.n * len(BANDS):,} photometry rows)"
    )
    line("write detections.parquet", base["t_detections"])
    line("write photometry.parquet", base["t_photometry"])
    line("baseline total (lake's Parquet settings)", base["seconds"])
    line("same write, pyarrow defaults", base_def["seconds"], baseline=base["seconds"])
    line("baseline peak RSS (build + write)", base["peak_rss_mb"], "MiB")
    for fmt, r in runs.items():
        ok = r["n_rows"] == args.n and r["n_photometry"] == args.n * len(BANDS)
        print(f"ingest_catalog from {fmt.upper()} (rows ok: {ok})")
        line(f"ingest_catalog({fmt})", r["seconds"], baseline=base["seconds"])
        line("peak RSS", r["peak_rss_mb"], "MiB", baseline=base["peak_rss_mb"])
        line("Arrow pool peak", r["arrow_pool_peak_mb"], "MiB")
        print("    stages (s): " + ", ".join(f"{k} {v}" for k, v in r["stages"].items()))
        print(f"    (pyarrow's first import of pandas, before the timer: {r['pandas_import']:.3f} s)")
    for fmt, r in runs.items():
        print(f"ingest/baseline {fmt}: {r['seconds'] / base['seconds']:.2f}x")
    worst = max(r["seconds"] for r in runs.values()) / base["seconds"]
    print(
        f"target ingest/baseline <= {TARGET}x: worst {worst:.2f}x -> {'MET' if worst <= TARGET else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
