"""Benchmark SSP fitting: objects per second and peak memory, in memory and through the lake.

Measured: a BC03 grid at z = 0.39 through 9 NIRCam bands (raw ages x 7 Z x 17 A_V, > 20,000
models); ``fit_in_chunks`` of ``--n`` synthetic SSPs (S/N ~ 10, 5% error floor, full
percentiles, 20 draws each); then the same catalog ingested into a lake and fitted by
``run_fit_ssp`` (selection, grid cache, writing posteriors and draws), with peak RSS.
Baseline, in the same process: one object at a time through the same ``fit_ssp`` (the
per-object loop a hand-written chi-square fit would do), on 200 objects.

Usage: ``python benchmarks/bench_fit.py [--n 100000]``
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from catalog import sed as sps
from catalog.lake import Lake
from catalog.runs.fits import fit_in_chunks, run_fit_ssp
from ingest.catalog import ingest_catalog

BANDS = ["F090W", "F115W", "F150W", "F200W", "F277W", "F356W", "F410M", "F444W", "F480M"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--lake-only", action="store_true", help="only the lake path (its own peak memory)")
    args = ap.parse_args()
    sed = [f"jwst_{b.lower()}" for b in BANDS]
    t0 = time.perf_counter()
    grid = sps.build_grid(0.39, sed, av_max=1.6, n_av=17)
    n_models = int(np.prod(grid.shape))
    print(
        f"grid: {grid.shape} = {n_models} models x {len(sed)} bands, built in "
        f"{time.perf_counter() - t0:.2f} s"
    )
    rng = np.random.default_rng(1)
    n = args.n
    idx = [rng.integers(0, s, n) for s in grid.shape]
    true = grid.flux_njy[idx[0], idx[1], idx[2]] * 10 ** rng.uniform(5.5, 7, n)[:, None]
    err = true / 10
    obs = true + rng.normal(0, err)
    up = np.zeros_like(obs, bool)

    if not args.lake_only:
        t0 = time.perf_counter()
        fit_in_chunks(grid, obs, err, up, n_samples=20, chunk=4096)
        dt = time.perf_counter() - t0
        print(
            f"in memory: {n} objects in {dt:.1f} s = {n / dt:,.0f} objects/s (aim >= 1000/s); "
            f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GB"
        )
        m = 200
        t0 = time.perf_counter()
        for i in range(m):
            sps.fit_ssp(grid, obs[i : i + 1], err[i : i + 1], n_samples=20)
        dt1 = (time.perf_counter() - t0) / m
        print(
            f"baseline, one object per call: {1 / dt1:,.0f} objects/s -> batching is "
            f"{(n / dt) * dt1:.0f}x faster"
        )

    tmp = Path(tempfile.mkdtemp())
    try:
        cols = {
            "id": np.arange(n),
            "ra": 110.8 + rng.uniform(0, 0.03, n),
            "dec": -73.45 + rng.uniform(0, 0.01, n),
        }
        for j, b in enumerate(BANDS):
            cols[f"flux_{b}"], cols[f"fluxerr_{b}"] = obs[:, j], err[:, j]
        pq.write_table(pa.table(cols), tmp / "sim.parquet")
        lake = Lake.create(tmp / "lake")
        ingest_catalog(lake, tmp / "sim.parquet", field_id="smacs0723", name="sim", z=0.39, mw_corrected=True)
        t0 = time.perf_counter()
        r = run_fit_ssp(lake, None, n_samples=20, av_max=1.6, n_av=17)
        dt = time.perf_counter() - t0
        print(
            f"through the lake (select, grid, fit, write {n * 5:,} posterior rows and "
            f"{n * 20:,} draws): {dt:.1f} s = {n / dt:,.0f} objects/s (fit alone "
            f"{r['seconds']:.1f} s); peak RSS "
            f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GB"
        )
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
