"""Benchmark aperture photometry and aperture injection-recovery in process against Dask.

The image: ``--size``^2 pixels of unit Gaussian noise with ``--n`` point sources (Moffat FWHM
2 px) at random positions, an error map of ones; measured at the Sparkler's three radii (0.12,
0.16, 0.20" at 0.03"/pix) with the 0.08" annulus and the PSF aperture correction, by
``catalog.images.aperture_photometry`` in process (one photutils pass) and with
``--scheduler`` (``local``: a LocalCluster of 2 one-thread workers, or an address) in
``--tile`` px tiles (``gccat photometry --scheduler``). Then ``injection_recovery`` of
``--targets`` sources x 20 fluxes x 20 locations, in process and on the same cluster (each
batch of up to 4096 injection tiles one task). Printed: seconds of each (the cluster's start
apart), sources or injections per second, the CPU seconds of the client and of each worker
(on a machine shared with other work they say more than the wall times), and whether the
results are identical to the bit (exit 1 if not).

Usage: ``python benchmarks/bench_apertures.py [--size 4096] [--n 20000] [--targets 100]
[--scheduler local] [--tile 1024 512]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from catalog import images as imaging
from catalog.runs.cluster import dask_client, task_map

RADII = np.array([0.12, 0.16, 0.20]) / 0.03
ANNULUS = 0.08 / 0.03


def same(a: dict, b: dict) -> bool:
    return all(np.array_equal(a[k], b[k], equal_nan=True) for k in a)


def timed(fn):
    """``fn()``, its wall and CPU seconds in this process."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def on_dask(client, fn):
    """``fn()`` on Dask: result, wall seconds, client CPU seconds, each worker's CPU seconds
    (on a machine shared with other work the CPU seconds say more than the wall time).
    """
    before = client.run(time.process_time)
    out, wall, cpu = timed(fn)
    after = client.run(time.process_time)
    return out, wall, cpu, [after[w] - before[w] for w in sorted(after)]


def cpu_text(cpu: float, workers: list) -> str:
    return f"client {cpu:.1f} CPU s, workers {' + '.join(f'{w:.1f}' for w in workers)} CPU s"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--targets", type=int, default=100, help="injection targets (0: none)")
    ap.add_argument("--scheduler", default="local")
    ap.add_argument("--tile", type=int, nargs="+", default=[1024, 512])
    args = ap.parse_args()
    rng = np.random.default_rng(1)
    psf = imaging.make_psf(2.0)
    x = rng.uniform(0, args.size - 1, args.n)
    y = rng.uniform(0, args.size - 1, args.n)
    flux = np.exp(rng.uniform(np.log(5), np.log(500), args.n))
    img = imaging.inject_point_sources(rng.normal(size=(args.size, args.size)), psf, x, y, flux)
    err = np.ones_like(img)
    kw = {"error": err, "annulus_width_pix": ANNULUS, "psf": psf}
    print(f"{args.size}^2 image, {args.n} sources, {RADII.size} radii")
    identical = []
    ref, t_in, c_in = timed(lambda: imaging.aperture_photometry(img, x, y, RADII, **kw))
    print(f"aperture photometry in process: {t_in:.1f} s, {c_in:.1f} CPU s ({args.n / t_in:.0f} sources/s)")
    t0 = time.perf_counter()
    with dask_client(args.scheduler) as client:
        n_workers = len(client.scheduler_info()["workers"])
        print(f"Dask client ({args.scheduler}, {n_workers} workers) up in {time.perf_counter() - t0:.1f} s")
        for tile in args.tile:
            got, t, cpu, busy = on_dask(
                client,
                lambda tile=tile: imaging.aperture_photometry(
                    img, x, y, RADII, **kw, tile_pix=tile, map_tasks=task_map(client, batch=1)
                ),
            )
            print(
                f"aperture photometry on Dask, {tile} px tiles: {t:.1f} s ({args.n / t:.0f} sources/s, "
                f"{t_in / t:.2f}x in process), {cpu_text(cpu, busy)}; identical to the bit: {same(ref, got)}"
            )
            identical.append(same(ref, got))
        if args.targets:
            pick = rng.choice(args.n, args.targets, replace=False)
            inj = {"n_flux": 20, "n_locations": 20, "annulus_width_pix": ANNULUS, "error": err}
            n_inj = args.targets * 400

            def run(**extra):
                return imaging.injection_recovery(
                    img,
                    psf,
                    x[pick],
                    y[pick],
                    flux[pick],
                    RADII,
                    rng=np.random.default_rng(5),
                    **inj,
                    **extra,
                )

            ref, t_in, c_in = timed(run)
            print(
                f"injection-recovery in process: {n_inj} injections in {t_in:.1f} s, {c_in:.1f} CPU s "
                f"({n_inj / t_in:.0f}/s)"
            )
            got, t, cpu, busy = on_dask(client, lambda: run(map_tasks=task_map(client, batch=1)))
            print(
                f"injection-recovery on Dask: {t:.1f} s ({n_inj / t:.0f}/s, {t_in / t:.2f}x in process), "
                f"{cpu_text(cpu, busy)}; identical to the bit: {same(ref, got)}"
            )
            identical.append(same(ref, got))
    if not all(identical):
        raise SystemExit("a Dask result differs from the in-process one")


if __name__ == "__main__":
    main()
