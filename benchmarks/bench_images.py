"""Benchmark the image pipeline: detection on a 4096x4096 mosaic in four bands, and
injection-recovery of 20 fluxes at 20 locations per source in 8 bands.

Measured: ``detect_point_sources`` (two DoG high-pass filters, masking, band sum,
brightest-pixel scan) on four synthetic 4096^2 bands (BCG + ICL + 6000 point sources + noise),
completeness above S/N 10 against the truth; then ``injection_recovery`` of ``--targets``
sources x 20 fluxes x 20 locations in each of 8 bands (3 apertures), seconds and peak RSS.
Baseline, in the same process: ``aperture_photometry`` of the same number of sources once per
band (the science photometry the injections repeat), to show the cost per injection.

With ``--scheduler local|ADDRESS`` the injections are skipped; instead detection and a median
stack of the truth sources (``stack_sources``, 25 px) run in process and on the Dask cluster
with ``--tile`` pixel tiles (the cluster already started; its start-up printed apart), and the
results are checked to be the same to the bit.

Usage: ``python benchmarks/bench_images.py [--size 4096] [--targets 20] [--scheduler local --tile 1024]``
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from catalog import images as imaging
from catalog.images.stack import stack_sources
from catalog.simulations.mosaic import make_test_mosaic


def rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--targets", type=int, default=20)
    ap.add_argument("--scheduler", help="'local' or a Dask scheduler address: detection and stack on Dask")
    ap.add_argument("--tile", type=int, default=1024, help="tile side with --scheduler, pixels")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    shape = (args.size, args.size)
    n_pts = int(6000 * (args.size / 4096) ** 2)
    t0 = time.perf_counter()
    first = make_test_mosaic(shape, n_points=n_pts, rng=rng, bcg_r_eff_pix=300, dtype=np.float32)
    bands = [first] + [
        make_test_mosaic(
            shape,
            rng=rng,
            x=first["truth"]["x"],
            y=first["truth"]["y"],
            flux=first["truth"]["flux"],
            bcg_r_eff_pix=300,
            dtype=np.float32,
        )
        for _ in range(3)
    ]
    print(
        f"built 4 bands of {shape[0]}x{shape[1]} with {n_pts} point sources in "
        f"{time.perf_counter() - t0:.1f} s"
    )
    t0 = time.perf_counter()
    det = imaging.detect_point_sources([b["image"] for b in bands], [b["weight"] for b in bands])
    t_det = time.perf_counter() - t0
    tx, ty, tf = (first["truth"][k] for k in ("x", "y", "flux"))
    psf = first["psf"]
    snr = tf * psf.max() / 1.0  # peak-pixel S/N per band at unit noise
    d2 = np.full(len(tx), np.inf)
    if len(det.x):
        from scipy.spatial import cKDTree

        d2, _ = cKDTree(np.column_stack([det.x, det.y])).query(np.column_stack([tx, ty]))
    masked = det.mask[
        np.clip(np.rint(ty).astype(int), 0, shape[0] - 1), np.clip(np.rint(tx).astype(int), 0, shape[1] - 1)
    ]
    sel = (snr >= 10) & ~masked
    print(
        f"detection: {t_det:.1f} s (aim < 60 s), {len(det.x)} sources, completeness above "
        f"peak S/N 10 away from masks {np.mean(d2[sel] < 1.5):.3f}; peak RSS {rss_gb():.2f} GB"
    )

    if args.scheduler:
        on_dask(args, bands, det, t_det)
        return
    n = args.targets
    img = bands[0]["image"].astype(np.float64)
    pick = rng.choice(np.flatnonzero(sel), n, replace=False)
    radii = np.array([0.06, 0.08, 0.10]) / 0.03
    t0 = time.perf_counter()
    for _ in range(8):
        imaging.aperture_photometry(img, tx[pick], ty[pick], radii, annulus_width_pix=2.67, psf=psf)
    t_phot = (time.perf_counter() - t0) / 8
    t0 = time.perf_counter()
    for _ in range(8):
        imaging.injection_recovery(
            img,
            psf,
            tx[pick],
            ty[pick],
            tf[pick],
            radii,
            n_flux=20,
            n_locations=20,
            rng=rng,
            annulus_width_pix=2.67,
        )
    t_inj = time.perf_counter() - t0
    n_inj = 8 * n * 20 * 20
    print(
        f"injection: {n} sources x 20 fluxes x 20 locations x 8 bands = {n_inj} injections in "
        f"{t_inj:.1f} s ({t_inj / n_inj * 1e3:.2f} ms each); baseline photometry of the {n} "
        f"sources once: {t_phot * 1e3:.1f} ms per band; peak RSS {rss_gb():.2f} GB"
    )


def on_dask(args, bands, det, t_det) -> None:
    """Detection and a stack of the truth sources in process and with ``--scheduler``, bit-checked;
    wall and client CPU seconds (the client's share is what the workers cannot take over)."""
    from catalog.runs.cluster import dask_client, task_map

    first = bands[0]
    tx, ty = first["truth"]["x"], first["truth"]["y"]
    img, wht = first["image"].astype(np.float64), first["weight"]
    ims, wts = [b["image"] for b in bands], [b["weight"] for b in bands]

    def clocked(fn, *a, **kw):
        t0, c0 = time.perf_counter(), time.process_time()
        r = fn(*a, **kw)
        return time.perf_counter() - t0, time.process_time() - c0, r

    d_in = clocked(imaging.detect_point_sources, ims, wts)
    s_in = clocked(stack_sources, img, tx, ty, side_pix=25, weight=wht)
    t0 = time.perf_counter()
    with dask_client(args.scheduler) as client:
        t_start = time.perf_counter() - t0
        tiles = {"tile_pix": args.tile, "map_tasks": task_map(client, batch=1)}
        d_dk = clocked(imaging.detect_point_sources, ims, wts, **tiles)
        s_dk = clocked(stack_sources, img, tx, ty, side_pix=25, weight=wht, **tiles)
        workers = len(client.scheduler_info()["workers"])
    ref, d = d_in[2], d_dk[2]
    same_det = all(np.array_equal(getattr(ref, k), getattr(d, k)) for k in ("x", "y", "peak", "snr"))
    same_stack = np.array_equal(s_in[2].image, s_dk[2].image) and np.array_equal(s_in[2].error, s_dk[2].error)
    print(
        f"Dask {args.scheduler} ({workers} workers, started in {t_start:.1f} s), {args.tile} px tiles "
        f"(wall s / client CPU s):\n"
        f"  detection: in process {d_in[0]:.2f} / {d_in[1]:.2f}, on Dask {d_dk[0]:.2f} / {d_dk[1]:.2f}, "
        f"identical: {same_det}\n"
        f"  stack of {s_in[2].n_sources} of {len(tx)} sources: in process {s_in[0]:.2f} / {s_in[1]:.2f}, "
        f"on Dask {s_dk[0]:.2f} / {s_dk[1]:.2f}, identical: {same_stack}"
    )


if __name__ == "__main__":
    main()
