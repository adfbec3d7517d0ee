"""Benchmark the non-parametric (Dense-Basis-like) atlas fit: objects/s, the matmul limit, Bagpipes.

Measured: a BC03 grid at z = 0.39 through 9 NIRCam bands (A_V 0-1 in 0.05 mag steps, 7 Z), an
atlas of ``--n-atlas`` histories (default 10^5, n_tx = 1) and its build time; ``--n`` objects
drawn from the prior with another seed (S/N 20 per band, 5% floor) fitted by
``nonparametric.fit_atlas`` with full percentiles (500 systematic posterior draws) with and
without the 100-bin history band; the arithmetic limit: the two float32 matrix products of the
chi2 step ((objects x 9) @ (9 x atlas) for B and C, single-threaded BLAS, same blocks and
threads) timed alone, reported as objects/s and as the fraction of the fit's time they take.
With ``--bagpipes N``: N SMACS0723 clusters (the brightest in F150W, 6 bands) fitted by gccat
(atlas at z = 0.39) and by Bagpipes (nautilus) with its ``continuity`` history (Leja et al.
2019 bins, Student-t prior) and, when the ``dense_basis`` package imports, its ``iyer2019``
(Dense Basis t_x) history: posteriors side by side and the speed ratio.

Usage: ``python benchmarks/bench_nonparam.py [--n 20000] [--n-atlas 100000] [--bagpipes 2]
[--bagpipes-sfh iyer2019 continuity]`` (``iyer2019`` needs ``pip install dense_basis statsmodels
seaborn ipython``: dense_basis imports them all).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import sys
import tempfile
import time

import numpy as np

from catalog import sed as sps
from catalog.sed import nonparametric as npm
from catalog.sed.fitting import _single_threaded_blas

BANDS = ["F090W", "F115W", "F150W", "F200W", "F277W", "F356W", "F410M", "F444W", "F480M"]
Z = 0.39


def matmul_limit(atlas, flux, err, n_threads: int) -> float:
    """Seconds of the chi2 step's two matrix products alone, in fit_atlas' blocks and threads."""
    from concurrent.futures import ThreadPoolExecutor

    norm = np.max(np.abs(atlas.flux_njy), axis=1)
    mn = (atlas.flux_njy / norm[:, None]).astype(np.float32)
    mt, m2t = np.ascontiguousarray(mn.T), np.ascontiguousarray((mn**2).T)
    w = (1 / err**2).astype(np.float32)
    fw = (flux * w).astype(np.float32)
    step = max(1, (1 << 21) // atlas.size)
    jobs = [(lo, min(lo + step, len(flux))) for lo in range(0, len(flux), step)]

    def block(lo, hi):
        fw[lo:hi] @ mt
        w[lo:hi] @ m2t

    t0 = time.perf_counter()
    with _single_threaded_blas(), ThreadPoolExecutor(n_threads) as ex:
        list(ex.map(lambda j: block(*j), jobs))
    return time.perf_counter() - t0


def run_bagpipes(ids, flux, err, sfh: str, n_live: int, t_univ_gyr: float, floor: float):
    """Bagpipes percentiles of formed/living mass, SFR, mass-weighted age, A_V; s/object."""
    work = tempfile.mkdtemp(prefix="bench_nonparam_bagpipes_")
    old = os.getcwd()
    os.chdir(work)
    try:
        if not hasattr(np, "trapz"):  # dense_basis 0.1.9 (iyer2019) calls np.trapz, gone in numpy 2
            np.trapz = np.trapezoid  # noqa: NPY201
        with contextlib.redirect_stdout(io.StringIO()):
            import bagpipes as pipes
        pipes.utils.working_dir = work  # bagpipes fixes it at import: the first run's folder
        from sedpy import observate

        sed = [f"jwst_{b.lower()}" for b in ("F090W", "F150W", "F200W", "F277W", "F356W", "F444W")]
        filt = []
        for name, curve in zip(sed, observate.load_filters(sed), strict=True):
            path = os.path.join(work, f"{name}.txt")
            np.savetxt(path, np.c_[curve.wavelength, curve.transmission])
            filt.append(path)
        sig = np.sqrt(err**2 + (floor * flux) ** 2)
        phot = {sid: np.c_[flux[i], sig[i]] / 1e3 for i, sid in enumerate(ids)}
        comp = {"massformed": (3.0, 10.0), "metallicity": (0.005, 5.0), "metallicity_prior": "log_10"}
        if sfh == "continuity":
            edges = [0.0, 10.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, t_univ_gyr * 1e3 * 0.999]
            comp["bin_edges"] = edges
            for i in range(1, len(edges) - 1):
                comp[f"dsfr{i}"] = (-10.0, 10.0)
                comp[f"dsfr{i}_prior"] = "student_t"
                comp[f"dsfr{i}_prior_scale"] = 0.3
                comp[f"dsfr{i}_prior_df"] = 2
        else:  # iyer2019: Dense Basis t_x with one t50, Dirichlet(5) time fractions
            # bagpipes draws the n - 1 t_x of `bins` time fractions from a Dirichlet(alpha)
            # when "bins_prior" is "dirichlet": bins = 2 is the single t50 of the Sparkler study
            comp.update(
                {
                    "sfr": (1e-6, 1e3),
                    "sfr_prior": "log_10",
                    "bins": 2,
                    "bins_prior": "dirichlet",
                    "alpha": 5.0,
                }
            )
        instr = {"redshift": Z, sfh: comp, "dust": {"type": "Calzetti", "Av": (0.0, 1.0)}}
        keys = {
            "log_mass_formed": "formed_mass",
            "log_mass_living": "stellar_mass",
            "sfr100": "sfr",
            "mw_age_gyr": "mass_weighted_age",
            "av": "dust:Av",
        }
        pct = {k: np.full((len(ids), 3), np.nan) for k in keys}
        times = []
        for i, sid in enumerate(ids):
            t0 = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                gal = pipes.galaxy(
                    sid, phot.__getitem__, photometry_exists=True, spectrum_exists=False, filt_list=filt
                )
                fit = pipes.fit(gal, instr, run=f"{sfh}_{sid}")
                fit.fit(verbose=False, sampler="nautilus", n_live=n_live, use_MPI=False)
                fit.posterior.get_advanced_quantities()
            times.append(time.perf_counter() - t0)
            smp = fit.posterior.samples
            for k, bk in keys.items():
                if bk in smp:
                    pct[k][i] = np.percentile(np.asarray(smp[bk]), [16, 50, 84])
        return pct, float(np.mean(times))
    finally:
        os.chdir(old)
        shutil.rmtree(work, ignore_errors=True)


#: log10 sSFR range (1/yr) of Bagpipes' iyer2019 prior: its SFR over Dense Basis' 1e10 Msun.
BAGPIPES_IYER_LOG_SSFR = (-16.0, -7.0)


def bagpipes_comparison(n: int, n_live: int, n_atlas: int, sfhs=("iyer2019", "continuity")) -> None:
    sys.path.insert(0, os.path.dirname(__file__))
    from bench_bagpipes import BANDS as SMACS_BANDS
    from bench_bagpipes import FLOOR, SEDPY, load_sources

    ids, flux, err = load_sources(n, None)
    grid = sps.build_grid(Z, SEDPY, av_max=1.0, n_av=21)
    atlas = npm.build_atlas(grid, n_atlas, seed=0)
    # Bagpipes' iyer2019 hands Dense Basis M = 1e10 Msun and its free SFR (log-uniform 1e-6 to
    # 1e3 Msun/yr), then rescales to the mass formed: an sSFR prior flat in log over -16..-7.
    wide = npm.build_atlas(grid, n_atlas, seed=0, log_ssfr_range=BAGPIPES_IYER_LOG_SSFR)
    res_wide = npm.fit_atlas(wide, flux, err, error_floor=FLOOR, rng=0)
    t0 = time.perf_counter()
    res = npm.fit_atlas(atlas, flux, err, error_floor=FLOOR, rng=0)
    t_gc = (time.perf_counter() - t0) / len(ids)
    reps = max(1, 2000 // len(ids))
    t0 = time.perf_counter()
    npm.fit_atlas(atlas, np.tile(flux, (reps, 1)), np.tile(err, (reps, 1)), error_floor=FLOOR, rng=0)
    t_batch = (time.perf_counter() - t0) / (reps * len(ids))
    print(
        f"\nBagpipes comparison: SMACS0723 {', '.join(ids)} ({' '.join(SMACS_BANDS)}, {FLOOR:.0%} floor); "
        f"gccat atlas of {n_atlas} (n_tx = 1), {t_gc * 1e3:.1f} ms/object (atlas build not included)"
    )
    runs = {}
    try:
        import dense_basis  # noqa: F401
    except ImportError:
        print(
            "bagpipes iyer2019: skipped, it calls dense_basis.tuple_to_sfh and dense_basis is not installed"
        )
        sfhs = [s for s in sfhs if s != "iyer2019"]
    for sfh in sfhs:
        runs[sfh] = run_bagpipes(ids, flux, err, sfh, n_live, atlas.t_obs_gyr, FLOOR)
    labels = {
        "log_mass_formed": "log M_formed",
        "log_mass_living": "log M_living",
        "sfr100": "SFR [Msun/yr]",
        "mw_age_gyr": "mw age [Gyr]",
        "av": "A_V",
    }

    def fmt(p):
        return f"{p[1]:.3g} [{p[0]:.3g}, {p[2]:.3g}]"

    heads = "".join(f"{'bagpipes ' + s:>32}" for s in runs)
    print(
        "gccat columns: log sSFR prior -12..-7.5 (Dense Basis' default) and -16..-7 (the range "
        "Bagpipes' iyer2019 implies)"
    )
    print(f"{'id':<8}{'quantity':<15}{'gccat sSFR -12..-7.5':>30}{'gccat sSFR -16..-7':>30}{heads}")
    for i, sid in enumerate(ids):
        for k, label in labels.items():
            print(
                f"{sid:<8}{label:<15}{fmt(res.percentiles[k][i]):>30}{fmt(res_wide.percentiles[k][i]):>30}"
                + "".join(f"{fmt(r[0][k][i]):>32}" for r in runs.values())
            )
    for sfh, (_, t_bp) in runs.items():
        print(
            f"bagpipes {sfh} (nautilus, n_live {n_live}): {t_bp:.1f} s/object; gccat is "
            f"{t_bp / t_gc:,.0f}x faster per object at {len(ids)} objects per call (fixed cost of "
            f"a call included) and {t_bp / t_batch:,.0f}x at the batched rate ({1 / t_batch:,.0f}/s)"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20_000, help="simulated objects")
    ap.add_argument("--n-atlas", type=int, default=100_000)
    ap.add_argument("--threads", type=int, default=None, help="default min(2, CPUs)")
    ap.add_argument("--bagpipes", type=int, default=0, help="SMACS objects fitted by Bagpipes too")
    ap.add_argument("--n-live", type=int, default=400)
    ap.add_argument(
        "--bagpipes-sfh", nargs="+", default=["iyer2019", "continuity"], choices=["iyer2019", "continuity"]
    )
    args = ap.parse_args()
    n_threads = args.threads or min(2, os.cpu_count() or 1)
    sed = [f"jwst_{b.lower()}" for b in BANDS]
    t0 = time.perf_counter()
    grid = sps.build_grid(Z, sed, av_max=1.0, n_av=21)
    t_grid = time.perf_counter() - t0
    t0 = time.perf_counter()
    atlas = npm.build_atlas(grid, args.n_atlas, seed=0)
    t_atlas = time.perf_counter() - t0
    print(
        f"grid {grid.shape} in {t_grid:.1f} s; atlas of {atlas.size:,} histories x {len(sed)} bands "
        f"built in {t_atlas:.1f} s ({atlas.size / t_atlas:,.0f} histories/s)"
    )
    truth = npm.build_atlas(grid, min(args.n, 20_000), seed=1)
    rng = np.random.default_rng(2)
    idx = rng.integers(0, truth.size, args.n)
    true = truth.flux_njy[idx] * 10 ** rng.uniform(5.5, 6.5, args.n)[:, None]
    err = true / 20
    obs = true + rng.normal(0, err)
    npm.fit_atlas(atlas, obs[:200], err[:200], n_threads=n_threads)  # warm-up
    t0 = time.perf_counter()
    npm.fit_atlas(atlas, obs, err, n_threads=n_threads, rng=0)
    t_full = time.perf_counter() - t0
    t0 = time.perf_counter()
    npm.fit_atlas(atlas, obs, err, n_threads=n_threads, rng=0, keep_history=False)
    t_nohist = time.perf_counter() - t0
    t_mm = matmul_limit(atlas, obs, err, n_threads)
    print(
        f"fit, {args.n:,} objects, {n_threads} threads: {args.n / t_full:,.0f} objects/s with the "
        f"history band, {args.n / t_nohist:,.0f} objects/s without (target >= 1,000)"
    )
    print(
        f"arithmetic limit (the two float32 matmuls of the chi2 step alone): {args.n / t_mm:,.0f} "
        f"objects/s; they are {t_mm / t_full:.0%} of the full fit's time ({t_mm / t_nohist:.0%} "
        "without the history band)"
    )
    if args.bagpipes:
        bagpipes_comparison(args.bagpipes, args.n_live, args.n_atlas, args.bagpipes_sfh)


if __name__ == "__main__":
    main()
