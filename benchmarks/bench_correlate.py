"""Benchmark the GC-kappa correlation core: rho_gc by FFT, box statistics, radial profiles.

Measured: 3x10^4 GCs on a 4096x4096 kappa grid (0.03"/pix, the AS1063 scale) -- time of
``density_fft``, of the edge window, of ``box_stats`` + ``fit_power_law`` and of
``radial_profile``, and the peak memory (RSS) of the whole run.
Baseline, in the same process: exact direct summation (``density_direct``) of the same GCs on
a 256x256 grid, against ``density_fft`` on that grid (ratio), and the agreement of the two.

With ``--scheduler local|ADDRESS``: the two box fits (lsq and poisson, ``--n-boot`` resamples
in blocks of ``--chunk``) in process and as Dask tasks (the tasks of ``gccat correlate
--scheduler``), the time to start the client, and a check that the fits are the same to the
bit (exit 1 if not).

Usage: ``python benchmarks/bench_correlate.py [--n 30000] [--size 4096] [--small 256]
[--scheduler local [--n-boot 1000] [--chunk 250] [--repeat 3]]``
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

import numpy as np

from catalog import gckappa as cr
from catalog.constants import BOOT_CHUNK, CORRELATE_N_BOOT
from catalog.simulations.gcs import simulate_gcs, simulate_mask
from catalog.simulations.lensfield import simulate_lens_field


def timed(fn, *args, **kw):
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=30_000)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--small", type=int, default=256)
    ap.add_argument("--scheduler", help="also fit the boxes on Dask: 'local' or a scheduler address")
    ap.add_argument("--n-boot", type=int, default=CORRELATE_N_BOOT)
    ap.add_argument("--chunk", type=int, default=BOOT_CHUNK)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    scale = 0.03
    kmap = simulate_lens_field((args.size, args.size), scale, seed=0)
    kappa = kmap.data
    px, py = simulate_gcs(kappa, scale, rng, n_total=args.n)
    mask = simulate_mask(kappa.shape, rng, n_disks=20, radius_pix=(30, 120))
    print(f'grid {args.size}x{args.size} at {scale}"/pix, {len(px)} GCs')
    rho, t_fft = timed(cr.density_fft, px, py, kappa.shape, scale)
    iy, ix = np.divmod(np.arange(kappa.size), args.size)
    window, t_win = timed(cr.density_fft, ix.astype(float), iy.astype(float), kappa.shape, scale)
    del ix, iy
    box_pix = round(3.0 / scale)
    t0 = time.perf_counter()
    boxes = cr.box_stats(px, py, kappa, mask, box_pix, scale)
    fit = cr.fit_power_law(
        boxes["n_per_arcsec2"],
        boxes["kappa_mean"],
        rng,
        n_boot=1000,
        method="poisson",
        area_arcsec2=boxes["area_arcsec2"],
    )
    t_box = time.perf_counter() - t0
    c = (args.size / 2, args.size / 2)
    edges = np.linspace(0, args.size / 2 * scale, 16)
    _, t_prof = timed(cr.radial_profile, px, py, kappa, rho, mask, c, edges, scale)
    corr, t_corr = timed(cr.pixel_correlation, kappa, rho, ~mask, window=window)
    total = t_fft + t_win + t_box + t_prof + t_corr
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"  density_fft       {t_fft:7.2f} s")
    print(f"  edge window (FFT) {t_win:7.2f} s")
    print(f"  box stats + fit   {t_box:7.2f} s  ({fit['n_boxes']} boxes, B = {fit['B']:.3f})")
    print(f"  radial profile    {t_prof:7.2f} s")
    print(f"  pixel correlation {t_corr:7.2f} s")
    print(f"  total             {total:7.2f} s   peak RSS {peak_gb:.2f} GB   (aim: < 10 s, < 4 GB)")
    if args.scheduler:
        dask_box_fits(boxes, args)

    n = args.small
    x0 = args.size // 2 - n // 2  # the cluster core, where the GCs are
    sel = (px >= x0 - 0.5) & (px < x0 + n - 0.5) & (py >= x0 - 0.5) & (py < x0 + n - 0.5)
    spx, spy = px[sel] - x0, py[sel] - x0
    _, t_fft_s = timed(cr.density_fft, spx, spy, (n, n), scale)
    direct, t_dir = timed(cr.density_direct, spx, spy, (n, n), scale)
    fft_small = cr.density_fft(spx, spy, (n, n), scale)
    rel = np.max(np.abs(fft_small / direct - 1))
    print(
        f"baseline: direct summation of {sel.sum()} GCs on {n}x{n}: {t_dir:.2f} s; "
        f"FFT {t_fft_s:.3f} s -> {t_dir / t_fft_s:.0f}x faster; max |FFT/direct - 1| = {rel:.2e}"
    )
    per_pair = t_dir / (sel.sum() * n * n)
    est = per_pair * len(px) * args.size**2
    print(
        f"direct summation extrapolated to the full run: {est / 3600:.1f} h "
        f"(FFT is {est / t_fft:.0f}x faster)"
    )


def dask_box_fits(boxes: dict, args) -> None:
    """The two box fits in process and on ``args.scheduler``: median times of ``args.repeat``."""
    from catalog.runs.cluster import dask_client
    from catalog.runs.correlation import _dask_blocks

    n, k, area = boxes["n_per_arcsec2"], boxes["kappa_mean"], boxes["area_arcsec2"]
    boot = {"n_boot": args.n_boot, "chunk": args.chunk, "area_arcsec2": area}

    def fits(blocks):
        t0 = time.perf_counter()
        rng = np.random.default_rng(1)
        out = [cr.fit_power_law(n, k, rng, method=m, map_blocks=blocks, **boot) for m in ("lsq", "poisson")]
        return out, time.perf_counter() - t0

    local = [fits(None) for _ in range(args.repeat)]
    t0 = time.perf_counter()
    with dask_client(args.scheduler) as client:
        t_up = time.perf_counter() - t0
        remote = [fits(_dask_blocks(client)) for _ in range(args.repeat)]
    same = all(r[0] == local[0][0] for r in remote)
    t_in, t_dask = np.median([t for _, t in local]), np.median([t for _, t in remote])
    print(
        f"box fits, {args.n_boot} resamples in blocks of {args.chunk}: in process {t_in:.2f} s, "
        f"on Dask ({args.scheduler}) {t_dask:.2f} s (+ {t_up:.1f} s to start the client); "
        f"identical: {same}"
    )
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
