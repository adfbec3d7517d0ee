"""Benchmark crossmatching lake-sized detections with a HATS catalog: LSDB vs in process.

Measured
--------
A simulated survey of N sources (default N = 10^6) uniform in ``--area`` deg^2 (default 4)
around a cluster field is written as a HATS collection (``lsdb.from_dataframe(...)
.write_catalog``, catalog + 5" margin, partitions of at most ``--partition-rows`` rows; the
build is timed apart). The left side is M detections (default 10^4): 90% are survey sources
jittered by 0.1 arcsec rms, 10% unrelated. Timed, all pairs within ``--radius`` (0.5"):

- ``gccat xmatch --engine lsdb``: :func:`catalog.queries.hatsio.xmatch_lsdb` (LSDB's
  KD-tree ``crossmatch`` partition by partition on Dask, threads);
- ``gccat xmatch`` (engine gccat): :func:`catalog.queries.hatsio.read_hats` of the partitions
  near the detections, then ``xmatch_tables``.

Peak memory: each method also runs twice in a child process (``spawn``: LSDB's OpenMP forbids a
fork); its resident set, sampled every 5 ms during the second call, is shown above its value before
that call (imports done, inputs loaded).

Baseline
--------
The in-process ``xmatch_tables`` over the whole survey already in memory (an Arrow table; the
time to read it is not counted). Pair sets (left row, survey id) must be identical across the
three.

Run: ``.venv/bin/python benchmarks/bench_hats.py [--n N] [--m M] [--repeat R]``
"""

from __future__ import annotations

import argparse
import multiprocessing as mp

import numpy as np
import pyarrow as pa
from _common import (
    FIELDS,
    add_survey_options,
    best_of,
    line,
    positions,
    sampled_rss,
    scratch,
    survey_pairs,
    timed,
)

from catalog.queries.hatsio import open_hats, read_hats, xmatch_lsdb
from catalog.queries.search import xmatch_tables


def _child(q, fn, args):
    """Run ``fn`` once (imports, caches), then again while a thread samples the resident set
    every 5 ms; put the peak increase of the second call."""
    fn(*args)
    with sampled_rss() as rss:
        fn(*args)
    q.put(rss["peak"] - rss["start"])


def peak_above_mb(fn, *args) -> float:
    """Peak RSS (MiB) of one call of ``fn`` in a spawned child, above its RSS before the call."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(q, fn, args))
    p.start()
    p.join(timeout=900)
    if p.exitcode != 0:
        p.kill()
        raise SystemExit(f"the memory run of {fn.__name__} failed (exit code {p.exitcode})")
    return q.get(timeout=10)


def gccat_engine(left: pa.Table, path: str, radius: float) -> pa.Table:
    right = read_hats(path, (left["ra"].to_numpy(), left["dec"].to_numpy(), radius))
    return xmatch_tables(left, right, radius)


def main() -> None:
    import lsdb
    import pandas as pd

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_survey_options(ap, n=1_000_000, m=10_000, area=4.0, partition_rows=100_000)
    ap.add_argument("--repeat", type=int, default=2, help="runs per method (best is kept)")
    args = ap.parse_args()
    rng = np.random.default_rng(7)
    centre = FIELDS[args.field]
    side = np.sqrt(args.area) * 60.0
    ra, dec = positions(rng, args.n, centre, side)
    survey = pd.DataFrame(
        {"sid": np.arange(args.n), "ra": ra, "dec": dec, "mag": rng.uniform(18, 26, args.n)}
    )
    m_in = args.m - args.m // 10
    pick = rng.choice(args.n, m_in, replace=False)
    sigma = 0.1 / np.sqrt(2) / 3600.0
    ra_u, dec_u = positions(rng, args.m - m_in, centre, side)
    lra = np.r_[(ra[pick] + rng.normal(0, sigma, m_in) / np.cos(np.radians(dec[pick]))) % 360.0, ra_u]
    ldec = np.r_[dec[pick] + rng.normal(0, sigma, m_in), dec_u]
    left = pa.table({"i": np.arange(args.m), "ra": lra, "dec": ldec})
    print(
        f"bench_hats: {args.m:,} detections x a HATS survey of {args.n:,} sources in {args.area} deg^2 "
        f"around {args.field}, radius {args.radius} arcsec"
    )
    with scratch("gccat-bench-hats-") as d:
        path = str(d / "survey")
        t_build, cat = timed(
            lambda: lsdb.from_dataframe(
                survey,
                ra_column="ra",
                dec_column="dec",
                catalog_name="survey",
                partition_rows=args.partition_rows,
            ).write_catalog(path, catalog_name="survey", progress_bar=False)
        )
        n_parts = len(open_hats(path).get_healpix_pixels())
        full = pa.Table.from_pandas(survey, preserve_index=False)
        t_base, res_base = best_of(args.repeat, xmatch_tables, left, full, args.radius)
        t_lsdb, res_lsdb = best_of(args.repeat, xmatch_lsdb, left, path, args.radius)
        t_gc, res_gc = best_of(args.repeat, gccat_engine, left, path, args.radius)
        mem_base = peak_above_mb(xmatch_tables, left, full, args.radius)
        mem_lsdb = peak_above_mb(xmatch_lsdb, left, path, args.radius)
        mem_gc = peak_above_mb(gccat_engine, left, path, args.radius)
    print(f"  HATS catalog: {n_parts} partitions (build and write {t_build:.2f} s, not in the ratios)")
    print(f"baseline: xmatch_tables over the survey in memory ({t_base:.3f} s)")
    line("xmatch --engine lsdb (LSDB crossmatch, Dask)", t_lsdb, baseline=t_base, base_name="baseline")
    line("xmatch --engine gccat (pruned read + match)", t_gc, baseline=t_base, base_name="baseline")
    line("peak RSS above start: baseline", mem_base, "MiB")
    line("peak RSS above start: lsdb engine", mem_lsdb, "MiB")
    line("peak RSS above start: gccat engine", mem_gc, "MiB")
    ref = survey_pairs(res_base)
    runs = (("lsdb", res_lsdb), ("gccat", res_gc))
    bad = [name for name, r in runs if not np.array_equal(survey_pairs(r), ref)]
    print(f"  {len(ref):,} pairs; identical to the baseline: {'no: ' + ', '.join(bad) if bad else 'yes'}")
    if bad:
        raise SystemExit(f"pair sets differ from the baseline for: {', '.join(bad)}")


if __name__ == "__main__":
    main()
