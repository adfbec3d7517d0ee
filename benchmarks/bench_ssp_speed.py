"""Benchmark the in-memory SSP grid fit against the arithmetic limit of its chi2 + mass step.

Measured: ``sps.fit_ssp`` of ``--n`` synthetic SSPs (S/N ~ 10, 5% error floor, full 16/50/84th
percentiles of the five parameters, mode and best fit; ``--samples`` draws each, default 0) on
the BC03 grid at z = 0.39 through 9 NIRCam bands (177 ages x 7 Z x 17 A_V = 21,063 models), in
objects/s, median of ``--repeat`` runs.
Baseline, in the same process and interleaved with the fits (so both see the same machine
load): the two matrix products the chi2 + analytic mass step needs, B = (f / sigma^2) @ m.T and
C = (1 / sigma^2) @ (m^2).T, float32, (n_obj x 9) @ (9 x 21,063), in the fit's own blocks of
objects on the fit's threads, and nothing else. The fraction baseline / fit is the share of the
arithmetic limit the fit reaches (1 = the fit costs no more than its two products); it is robust
to the load of a shared machine, the objects/s are not. Both are also given in CPU time (all
threads of this process), which other processes on a shared machine disturb far less than the
wall clock.

Usage: ``python benchmarks/bench_ssp_speed.py [--n 20000] [--repeat 5] [--samples 0]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from _common import add_scan_options, exponent, scan_sizes

from catalog import sed as sps
from catalog.sed.fitting import _single_threaded_blas

BANDS = ["F090W", "F115W", "F150W", "F200W", "F277W", "F356W", "F410M", "F444W", "F480M"]


def synthetic(grid, n: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    idx = [rng.integers(0, s, n) for s in grid.shape]
    true = grid.flux_njy[idx[0], idx[1], idx[2]] * 10 ** rng.uniform(5.5, 7, n)[:, None]
    err = true / 10
    return true + rng.normal(0, err), err


def timed(fn) -> tuple[float, float]:
    """(wall, CPU) seconds of one call."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def matmul_limit(grid, obs, err, step: int, n_threads: int) -> None:
    """The two float32 products of the chi2 + mass step, in the fit's blocks and threads."""
    models, _ = grid.flat()
    mn = (models / np.max(np.abs(models), axis=1)[:, None]).astype(np.float32)
    mt, m2t = np.ascontiguousarray(mn.T), np.ascontiguousarray((mn**2).T)
    sig = np.sqrt(err**2 + (0.05 * obs) ** 2)
    w = (1 / sig**2).astype(np.float32)
    fw = (obs * w).astype(np.float32)
    n = obs.shape[0]

    def block(lo):
        fw[lo : lo + step] @ mt
        w[lo : lo + step] @ m2t

    with _single_threaded_blas():
        if n_threads > 1:
            with ThreadPoolExecutor(n_threads) as ex:
                list(ex.map(block, range(0, n, step)))
        else:
            for lo in range(0, n, step):
                block(lo)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--samples", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    add_scan_options(ap, "time fit_ssp")
    args = ap.parse_args()
    grid = sps.build_grid(0.39, [f"jwst_{b.lower()}" for b in BANDS], av_max=1.6, n_av=17)
    n_mod = int(np.prod(grid.shape))
    obs, err = synthetic(grid, args.n)
    n_threads = args.threads or min(2, os.cpu_count() or 1)
    # the fit's block size (see fit_ssp): <= 2**21 cells per block
    step = max(1, min(2048, max(16, (1 << 21) // n_mod)))
    print(
        f"grid {grid.shape} = {n_mod} models x {len(BANDS)} bands; {args.n} objects, "
        f"{args.samples} draws each, {n_threads} threads, blocks of {step} objects"
    )
    sps.fit_ssp(grid, obs[:500], err[:500], n_samples=args.samples, rng=0, n_threads=n_threads)  # warm
    t_fit, t_mm = [], []
    for _ in range(args.repeat):
        t_fit.append(
            timed(lambda: sps.fit_ssp(grid, obs, err, n_samples=args.samples, rng=0, n_threads=n_threads))
        )
        t_mm.append(timed(lambda: matmul_limit(grid, obs, err, step, n_threads)))
    for k, clock in enumerate(("wall", "CPU")):
        f = [t[k] for t in t_fit]
        m = [t[k] for t in t_mm]
        ratios = [b / a for a, b in zip(f, m, strict=True)]
        print(
            f"{clock}: fit s "
            + " ".join(f"{x:.2f}" for x in f)
            + "; matmul s "
            + " ".join(f"{x:.3f}" for x in m)
        )
        per = "s" if clock == "wall" else " CPU-second"
        print(
            f"  fit_ssp {args.n / statistics.median(f):,.0f} objects/{per.strip()} (median of "
            f"{args.repeat}); matmul limit {args.n / statistics.median(m):,.0f}; fraction "
            f"{statistics.median(ratios):.3f} (range {min(ratios):.3f}-{max(ratios):.3f})"
        )
    print("target (issue 14): fraction >= 0.10 of the matmul limit (~10,000 objects/s on 2 threads)")
    if args.scan:
        scan(grid, args, step, n_threads)


def scan(grid, args, step: int, n_threads: int) -> None:
    """fit_ssp and its matmul limit at 10^4 .. ``--scan-max`` objects; the exponent of each."""
    sizes = scan_sizes(args.scan_max)
    walls, limits = [], []
    for n in sizes:
        o, e = synthetic(grid, n, seed=2)
        fit_s = timed(
            lambda o=o, e=e: sps.fit_ssp(grid, o, e, n_samples=args.samples, rng=0, n_threads=n_threads)
        )
        walls.append(fit_s[0])
        limits.append(timed(lambda o=o, e=e: matmul_limit(grid, o, e, step, n_threads))[0])
        rate = n / walls[-1]
        print(
            f"  scan N = {n:>10,d}: fit {walls[-1]:8.2f} s ({rate:,.0f} objects/s), matmul {limits[-1]:.3f} s"
        )
    k_fit, k_mm = exponent(sizes, walls), exponent(sizes, limits)
    print(
        f"  exponent: fit_ssp time ~ N^{k_fit:.2f}, matmul ~ N^{k_mm:.2f} (N = {sizes[0]:,} .. {sizes[-1]:,})"
    )


if __name__ == "__main__":
    main()
