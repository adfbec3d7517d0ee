"""Benchmark PSF-fit photometry: ``catalog.images.psf_photometry`` on a crowded mosaic, against
photutils' ``PSFPhotometry`` run alone on the same sources in the same process.

The image: ``--size``^2 pixels of unit Gaussian noise with ``--n`` point sources (Moffat FWHM
2 px, S/N 20-200) on a jittered grid, prior positions 0.3 px off; fitted in ``--bands`` bands
(noise redrawn per band) with 27 px (0.8" at 0.03"/pix) cutouts, +-2 px shifts and a plane
background. Baseline: photutils ``PSFPhotometry`` (``ImagePSF`` of the same stamp, the same
fit shape, ``xy_bounds`` 2 px, no grouper, no local background; fluxes and positions only) on
the first ``--baseline-n`` sources of one band, timed per source. Printed: seconds per band,
sources per second, the per-source ratio to photutils, the flux bias and pull width of each
against the truth, and the peak RSS.

Usage: ``python benchmarks/bench_psfphot.py [--size 4096] [--n 30000] [--bands 8] [--baseline-n 2000]``
"""

from __future__ import annotations

import argparse
import resource
import time
import warnings

import numpy as np

from catalog import images as imaging
from catalog.images.psfphot import psf_photometry


def rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def scene(size: int, n: int, rng):
    psf = imaging.make_psf(2.0)
    side = int(np.ceil(np.sqrt(n)))
    step = (size - 40) / side
    g = (np.arange(side) + 0.5) * step + 20
    gx, gy = np.meshgrid(g, g)
    x = gx.ravel()[:n] + rng.uniform(-0.2, 0.2, n) * step
    y = gy.ravel()[:n] + rng.uniform(-0.2, 0.2, n) * step
    noise_flux = 1.0 / np.sqrt((psf**2).sum() / psf.sum() ** 2)  # optimal-extraction S/N 1
    flux = noise_flux * np.exp(rng.uniform(np.log(20), np.log(200), n))
    clean = imaging.inject_point_sources(np.zeros((size, size)), psf, x, y, flux)
    return psf, clean, x, y, flux


def photutils_fit(image, psf, x, y, flux0, fit: int):
    from astropy.table import Table
    from photutils.psf import ImagePSF, PSFPhotometry

    model = ImagePSF(psf / psf.sum())
    phot = PSFPhotometry(model, (fit, fit), xy_bounds=(2, 2), aperture_radius=4)
    init = Table({"x": x, "y": y, "flux": flux0})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = phot(image, error=np.ones_like(image), init_params=init)
    return np.asarray(res["flux_fit"]), np.asarray(res["flux_err"])


def summary(name, f, e, truth):
    ok = np.isfinite(f) & np.isfinite(e) & (e > 0)
    rel = np.median(f[ok] / truth[ok] - 1)
    pull = (f[ok] - truth[ok]) / e[ok]
    width = 0.7413 * np.subtract(*np.percentile(pull, [75, 25]))
    return f"{name}: flux bias {100 * rel:+.2f}%, pull width {width:.2f} ({ok.sum()} fits)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--n", type=int, default=30000)
    ap.add_argument("--bands", type=int, default=8)
    ap.add_argument("--baseline-n", type=int, default=2000)
    args = ap.parse_args()
    rng = np.random.default_rng(1)
    psf, clean, x, y, flux = scene(args.size, args.n, rng)
    px, py = x + rng.normal(0, 0.3, x.size), y + rng.normal(0, 0.3, y.size)
    print(
        f"{args.size}^2 image, {args.n} sources, {args.bands} bands; "
        f"peak RSS after the scene {rss_gb():.2f} GB"
    )
    times = []
    for b in range(args.bands):
        img = clean + np.random.default_rng(100 + b).normal(size=clean.shape)
        t0 = time.perf_counter()
        r = psf_photometry(img, px, py, psf, error=np.ones_like(img), fit_size_pix=27, max_shift_pix=2.0)
        times.append(time.perf_counter() - t0)
        if b == 0:
            first = (img, r)
        print(f"  band {b + 1}: {times[-1]:.1f} s ({args.n / times[-1]:.0f} sources/s)")
    img, r = first
    per_source = np.median(times) / args.n
    print(f"gccat psf_photometry: {sum(times):.1f} s for {args.bands} bands, {1 / per_source:.0f} sources/s")
    print("  " + summary("gccat", r["flux"], r["flux_err"], flux))
    print(f"  peak RSS after gccat (scene and {args.bands} noisy images included): {rss_gb():.2f} GB")
    k = min(args.baseline_n, args.n)
    t0 = time.perf_counter()
    pf, pe = photutils_fit(img, psf, px[:k], py[:k], r["flux"][:k], 27)
    t_pu = (time.perf_counter() - t0) / k
    print(f"photutils PSFPhotometry ({k} sources): {1 / t_pu:.0f} sources/s")
    print("  " + summary("photutils", pf, pe, flux[:k]))
    total_pu = t_pu * args.n * args.bands / 60
    print(f"ratio (photutils time / gccat time per source): {t_pu / per_source:.2f}; "
          f"{args.bands} bands x {args.n} by photutils: {total_pu:.1f} min")  # fmt: skip
    print(f"peak RSS after photutils too {rss_gb():.2f} GB")


if __name__ == "__main__":
    main()
