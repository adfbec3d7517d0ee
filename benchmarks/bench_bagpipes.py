"""Benchmark gccat's grid SSP fit against Bagpipes nested sampling of the same model.

Measured: for ``--n`` star clusters of SMACS J0723 (Faisst et al. 2022, the bundled CSV;
z = 0.39, F090W-F444W in nJy, Milky Way extinction already removed), the 16/50/84th posterior
percentiles of age (Gyr), log Z/Zsun, A_V, log living and log formed stellar mass from
``sps.fit_ssp`` (500 draws, 5% error floor) and its wall time per object (best of
``--repeat``; the grid build is timed once, and a tiled batch of ``--batch`` objects gives the
throughput at scale), with its default prior (flat in BC03 age index) and, untimed, with a prior
flat in log age like bagpipes' (same grid, ``log_prior=``). Baseline: Bagpipes (same BC03 MILES
file, Chabrier IMF, Calzetti dust, Inoue IGM, cosmology) with one "burst" SSP at fixed z = 0.39,
age log-uniform between the grid's extreme ages, metallicity log-uniform in 0.005-5 Zsun, A_V
uniform in 0-1, log mass formed uniform in 3-10, the same errors (5% floor in quadrature), fitted
with nautilus (multinest if nautilus fails), timed per object from ``fit`` construction to the
posterior samples. Bagpipes runs in a ``tempfile.mkdtemp()`` working directory (its ``pipes/``
outputs) deleted at the end.
Stock bagpipes re-emits the energy Calzetti dust absorbs as Draine & Li (2007) dust emission, which
gccat has not (at z = 0.39 it brightens F444W, rest 2.8-3.6 um); ``--no-dust-emission`` zeroes it
at run time (a patch of ``dust_emission.spectrum`` in this process) so both fit the same model.

Usage: ``python benchmarks/bench_bagpipes.py [--n 5 | --ids SC_000,SC_002] [--n-live 400]
[--sampler nautilus] [--no-dust-emission]``
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import os
import shutil
import sys
import tempfile
import time
from importlib import resources

import numpy as np

from catalog import sed as sps

Z_CLUSTER = 0.39
BANDS = ["F090W", "F150W", "F200W", "F277W", "F356W", "F444W"]
SEDPY = [f"jwst_{b.lower()}" for b in BANDS]
CSV = str(resources.files("catalog.data") / "smacs0723_faisst2022_star_clusters.csv")
FLOOR = 0.05
#: (gccat key, bagpipes posterior sample key, transform, label)
QUANTITIES = [
    ("age_gyr", "burst:age", lambda x: x, "age [Gyr]"),
    ("log_z", "burst:metallicity", np.log10, "log Z/Zsun"),
    ("av", "dust:Av", lambda x: x, "A_V [mag]"),
    ("log_mass_living", "stellar_mass", lambda x: x, "log M_living"),
    ("log_mass_formed", "formed_mass", lambda x: x, "log M_formed"),
]


def load_sources(n: int, ids: str | None):
    """ids, (n, 6) flux and error in nJy: the ``n`` brightest in F150W, or the listed ids."""
    with open(CSV, encoding="utf-8") as fh:
        rows = list(csv.DictReader(line for line in fh if not line.startswith("#")))
    tab = {k: np.array([r[k] for r in rows]) for k in rows[0]}
    if ids:
        want = ids.split(",")
        missing = sorted(set(want) - set(tab["id"]))
        if missing:
            sys.exit(f"unknown ids: {missing}")
        sel = [int(np.flatnonzero(tab["id"] == i)[0]) for i in want]
    else:
        sel = np.argsort(-tab["flux_F150W"].astype(float))[:n]
    flux = np.stack([tab[f"flux_{b}"][sel] for b in BANDS], axis=1).astype(float)
    err = np.stack([tab[f"fluxerr_{b}"][sel] for b in BANDS], axis=1).astype(float)
    return [str(i) for i in tab["id"][sel]], flux, err


def run_gccat(flux, err, repeat: int, batch: int):
    t0 = time.perf_counter()
    grid = sps.build_grid(Z_CLUSTER, SEDPY, av_max=1.0, n_av=11)
    t_grid = time.perf_counter() - t0
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        res = sps.fit_ssp(grid, flux, err, error_floor=FLOOR, n_samples=500, rng=0)
        times.append(time.perf_counter() - t0)
    res_log = sps.fit_ssp(grid, flux, err, error_floor=FLOOR, log_prior=sps.log_age_prior(grid))
    reps = -(-batch // len(flux))
    t0 = time.perf_counter()
    sps.fit_ssp(grid, np.tile(flux, (reps, 1)), np.tile(err, (reps, 1)), error_floor=FLOOR, n_samples=500)
    t_batch = (time.perf_counter() - t0) / (reps * len(flux))
    return grid, res, res_log, t_grid, min(times) / len(flux), t_batch, reps * len(flux)


def run_bagpipes(ids, flux, err, grid, n_live: int, sampler: str, dust_emission: bool):
    """Per-object percentiles (dict of (n, 3)), chi2_min, s/object, sampler used, SSP ages (yr)."""
    work = tempfile.mkdtemp(prefix="bench_bagpipes_")
    old_cwd = os.getcwd()
    os.chdir(work)  # bagpipes takes its pipes/ directory from the cwd at import time
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            import bagpipes as pipes
        fit_mod = sys.modules["bagpipes.fitting.fit"]
        if not dust_emission:
            sys.modules["bagpipes.models.dust_emission_model"].dust_emission.spectrum = lambda self, *_: (
                np.zeros_like(self.wavelengths)
            )
        from sedpy import observate

        filt_list = []
        for name, curve in zip(SEDPY, observate.load_filters(SEDPY), strict=True):
            path = os.path.join(work, f"{name}.txt")
            np.savetxt(path, np.c_[curve.wavelength, curve.transmission])  # Angstrom, photon response
            filt_list.append(path)
        sig = np.sqrt(err**2 + (FLOOR * flux) ** 2)
        phot = {sid: np.c_[flux[i], sig[i]] / 1e3 for i, sid in enumerate(ids)}  # nJy -> microJy
        instructions = {
            "redshift": Z_CLUSTER,
            "burst": {
                "age": (float(grid.age_gyr.min()), float(grid.age_gyr.max())),
                "age_prior": "log_10",
                "metallicity": (0.005, 5.0),
                "metallicity_prior": "log_10",
                "massformed": (3.0, 10.0),
            },
            "dust": {"type": "Calzetti", "Av": (0.0, 1.0)},
        }
        pct = {q[0]: np.full((len(ids), 3), np.nan) for q in QUANTITIES}
        chi2 = np.full(len(ids), np.nan)
        times = []
        for i, sid in enumerate(ids):
            t0 = time.perf_counter()
            while True:
                try:
                    with contextlib.redirect_stdout(io.StringIO()):
                        gal = pipes.galaxy(
                            sid,
                            phot.__getitem__,
                            photometry_exists=True,
                            spectrum_exists=False,
                            filt_list=filt_list,
                        )
                        fit = pipes.fit(gal, instructions, run=sampler)
                        fit.fit(verbose=False, sampler=sampler, n_live=n_live, use_MPI=False)
                    break
                except Exception as exc:  # nautilus broken here: fall back once to multinest
                    if sampler != "nautilus":
                        raise
                    print(f"nautilus failed ({type(exc).__name__}: {exc}); using multinest")
                    sampler, t0 = "multinest", time.perf_counter()
            samples = fit.posterior.samples
            times.append(time.perf_counter() - t0)
            for key, bkey, fn, _ in QUANTITIES:
                pct[key][i] = np.percentile(fn(samples[bkey]), [16, 50, 84])
            chi2[i] = -2 * (fit.results["lnlike"].max() - fit.fitted_model.K_phot)
        if sampler == "nautilus" and not fit_mod.nautilus_available:
            sampler = "multinest"  # bagpipes switches silently when nautilus does not import
        return pct, chi2, float(np.mean(times)), sampler, pipes.config.age_sampling
    finally:
        os.chdir(old_cwd)
        shutil.rmtree(work, ignore_errors=True)


def fmt(p) -> str:
    return f"{p[1]:.3g} [{p[0]:.3g}, {p[2]:.3g}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5, help="brightest sources in F150W")
    ap.add_argument("--ids", help="comma-separated source ids instead of --n")
    ap.add_argument("--n-live", type=int, default=400, help="live points of the nested sampler")
    ap.add_argument("--sampler", default="nautilus", choices=["nautilus", "multinest"])
    ap.add_argument(
        "--no-dust-emission",
        action="store_true",
        help="switch off bagpipes' DL07 dust emission (energy balance)",
    )
    ap.add_argument("--repeat", type=int, default=5, help="gccat timing repeats (best taken)")
    ap.add_argument("--batch", type=int, default=10_000, help="tiled objects for gccat throughput")
    args = ap.parse_args()
    ids, flux, err = load_sources(args.n, args.ids)
    print(
        f"SMACS0723 star clusters at z={Z_CLUSTER}: {', '.join(ids)}; bands {' '.join(BANDS)}; "
        f"{FLOOR:.0%} error floor"
    )
    grid, res, res_log, t_grid, t_gc, t_batch, n_batch = run_gccat(flux, err, args.repeat, args.batch)
    print(
        f"gccat grid: {grid.shape[0]} BC03 ages {grid.age_gyr.min():.2g}-{grid.age_gyr.max():.3g} Gyr x "
        f"{grid.shape[1]} Z x {grid.shape[2]} A_V; prior flat in age index (default) or in log age"
    )
    bp, chi2_bp, t_bp, sampler, bp_ages = run_bagpipes(
        ids, flux, err, grid, args.n_live, args.sampler, not args.no_dust_emission
    )
    print(
        f"bagpipes: sampler {sampler}, n_live {args.n_live}; SSP ages rebinned to 0.1 dex "
        f"({bp_ages.size} ages {bp_ages.min() / 1e9:.2g}-{bp_ages.max() / 1e9:.3g} Gyr; a burst takes the "
        "nearest one); DL07 dust emission "
        f"{'switched off' if args.no_dust_emission else 'added (energy balance)'}\n"
    )
    print(
        f"{'id':<8}{'quantity':<14}{'gccat p50 [p16, p84]':>25}{'gccat, log-age prior':>25}"
        f"{'bagpipes':>25}{'d(p50)':>8}"
    )
    for i, sid in enumerate(ids):
        for key, _, _, label in QUANTITIES:
            g, gl, b = res.percentiles[key][i], res_log.percentiles[key][i], bp[key][i]
            d = np.log10(g[1] / b[1]) if key == "age_gyr" else g[1] - b[1]
            print(f"{sid:<8}{label:<14}{fmt(g):>25}{fmt(gl):>25}{fmt(b):>25}{d:8.2f}")
        print(f"{'':<8}{'chi2_min':<14}{res.chi2_min[i]:>25.2f}{'':>25}{chi2_bp[i]:>25.2f}")
    print(
        "d(p50) = gccat (default prior) - bagpipes, age in dex; mean over objects: "
        + ", ".join(
            f"{label.split(' [')[0]} {np.mean(res.percentiles[k][:, 1] - bp[k][:, 1]):+.2f}"
            if k != "age_gyr"
            else f"age {np.mean(np.log10(res.percentiles[k][:, 1] / bp[k][:, 1])):+.2f} dex"
            for k, _, _, label in QUANTITIES
        )
    )
    print(
        f"\ngccat: {t_gc * 1e3:.2f} ms/object ({len(ids)} objects, best of {args.repeat}; "
        f"{t_batch * 1e6:.0f} us/object in a batch of {n_batch}; grid build {t_grid:.1f} s once); "
        f"bagpipes ({sampler}): {t_bp:.1f} s/object; ratio {t_bp / t_gc:.0f}x "
        f"({t_bp / t_batch:.0f}x batched)"
    )


if __name__ == "__main__":
    main()
