"""PNG plots of gccat results (matplotlib, Agg backend)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_correlation(result, outdir: Path, corr: dict, fit: dict) -> list[str]:
    """The four figures of a GC-kappa correlation run; returns their paths.

    ``density_kappa.png``: rho_gc (log) with kappa contours; ``kappa_vs_rho.png``: kappa against
    beta*rho_gc per pixel; ``box_relation.png``: <kappa> against n_GC per box with the fitted
    power law; ``radial_profiles.png``: GC surface density, kappa and beta*rho_gc with radius.
    """
    plt = _plt()
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    paths = []
    scale = result.lens_map.pixel_scale_arcsec
    ny, nx = result.kappa.shape
    ext = [0, nx * scale, 0, ny * scale]
    beta = corr["beta"]

    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    rho = np.where(result.rho_gc > 0, result.rho_gc, np.nan)
    im = ax.imshow(np.log10(rho), origin="lower", extent=ext, cmap="magma")
    levels = np.quantile(result.kappa[~result.mask], [0.5, 0.75, 0.9, 0.97]) if (~result.mask).any() \
        else None
    ax.contour(result.kappa, levels=levels, origin="lower", extent=ext, colors="cyan",
               linewidths=0.8)
    if result.mask.any():
        ax.contourf(result.mask.astype(float), levels=[0.5, 1.5], origin="lower", extent=ext,
                    colors="white", alpha=0.35)
    ax.plot(result.px * scale, result.py * scale, ",", color="white", alpha=0.4)
    fig.colorbar(im, ax=ax, label=r"log$_{10}\,\rho_{GC}$")
    ax.set(xlabel="x [arcsec]", ylabel="y [arcsec]",
           title=f"{result.run.get('model_id', '')}: GC density, kappa contours")
    paths.append(_save(fig, outdir / "density_kappa.png", plt))

    fig, ax = plt.subplots(figsize=(5.6, 5.2))
    valid = ~result.mask
    ax.hexbin(beta * result.rho_gc[valid], result.kappa[valid], gridsize=60, bins="log",
              cmap="viridis", mincnt=1)
    lim = [0, np.nanmax(result.kappa[valid]) if valid.any() else 1]
    ax.plot(lim, lim, "r--", lw=1)
    ax.set(xlabel=r"$\beta\,\rho_{GC}$", ylabel=r"$\kappa$",
           title=f"beta = {beta:.3g}, Pearson(log) = {corr['pearson_log']:.2f}")
    paths.append(_save(fig, outdir / "kappa_vs_rho.png", plt))

    fig, ax = plt.subplots(figsize=(5.6, 5.2))
    b = result.boxes
    ok = (b["n_per_arcsec2"] > 0) & (b["kappa_mean"] > 0)
    ax.loglog(b["n_per_arcsec2"][ok], b["kappa_mean"][ok], ".", alpha=0.5, label="boxes")
    if ok.any() and np.isfinite(fit["A"]):
        n = np.geomspace(b["n_per_arcsec2"][ok].min(), b["n_per_arcsec2"][ok].max(), 50)
        ax.loglog(n, fit["A"] * n ** fit["B"], "r-",
                  label=rf"$\kappa = {fit['A']:.2f}\,n^{{{fit['B']:.2f}\pm{fit['B_err']:.2f}}}$")
    ax.set(xlabel=r"$n_{GC}$ [arcsec$^{-2}$]", ylabel=r"$\langle\kappa\rangle$",
           title="box statistics")
    ax.legend()
    paths.append(_save(fig, outdir / "box_relation.png", plt))

    fig, ax = plt.subplots(figsize=(6.0, 4.8))
    p = result.profile
    ax.errorbar(p["r_mid"], p["sigma_gc_bgsub"], yerr=p["sigma_gc_err"], fmt="o", ms=3,
                label=r"$\Sigma_{GC}$ (bg-subtracted) [arcsec$^{-2}$]")
    ax2 = ax.twinx()
    ax2.plot(p["r_mid"], p["kappa_mean"], "c-", label=r"$\kappa$")
    ax2.plot(p["r_mid"], beta * np.asarray(p["rho_mean"]), "m--", label=r"$\beta\rho_{GC}$")
    ax.set(xlabel="radius [arcsec]", ylabel=r"$\Sigma_{GC}$", yscale="log")
    ax2.set_ylabel(r"$\kappa$")
    ax.legend(loc="upper right", fontsize=8)
    ax2.legend(loc="lower left", fontsize=8)
    paths.append(_save(fig, outdir / "radial_profiles.png", plt))
    return paths


def _save(fig, path: Path, plt) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def resolve_fit_object(con, object_id: str) -> str:
    """The fitted object an id names: a detection_id or ``stack:<run_id>`` as stored, a stack's
    run id without its prefix, or a catalog's own source id when exactly one detection has it.
    """
    from .errors import GccatError

    def fitted(oid):
        return con.execute("SELECT count(*) FROM fit_posteriors WHERE object_id = ?",
                           [oid]).fetchall()[0][0] > 0

    for candidate in (object_id, f"stack:{object_id}"):
        if fitted(candidate):
            return candidate
    ids = [r[0] for r in con.execute(
        "SELECT DISTINCT d.detection_id FROM detections d JOIN fit_posteriors f "
        "ON f.object_id = d.detection_id WHERE d.source_id = ? ORDER BY 1", [object_id]).fetchall()]
    if len(ids) == 1:
        return ids[0]
    if len(ids) > 1:
        raise GccatError(f"source id {object_id!r} is fitted in {len(ids)} catalogs "
                         f"({', '.join(ids[:3])}{', ...' if len(ids) > 3 else ''}); give the detection_id")
    raise GccatError(f"no fit of {object_id!r}; run 'gccat fit ssp' or 'gccat fit stack' first "
                     "(ids: a detection_id, a source id, or a stack's run id)")


def plot_sed(lake, object_id: str, run_id: str | None, out: Path) -> str:
    """Photometry, best-fit model, posterior mode and 16-84% posterior band of an SSP fit (PNG).

    The best fit is the minimum-chi2 grid model (the papers' "best-fit SSP"); the posterior
    mode is the grid model of largest likelihood x prior density; each is labelled as such.
    """
    from .fitting import _grid_from_row, select
    from .views import connect

    plt = _plt()
    con = connect(lake)
    object_id = resolve_fit_object(con, object_id)
    run_sql = ("SELECT run_id FROM fit_posteriors WHERE object_id = ? AND parameter = 'age_gyr' "
               "ORDER BY run_id DESC LIMIT 1")
    run_id = run_id or (con.execute(run_sql, [object_id]).fetchall() or [[None]])[0][0]
    if run_id is None:
        from .errors import GccatError

        raise GccatError(f"no SSP fit of {object_id}; run 'gccat fit ssp' first")
    cfg = json.loads(con.execute("SELECT config FROM fit_runs WHERE run_id = ?", [run_id]
                                 ).fetchall()[0][0])
    vals = con.execute("SELECT parameter, best_fit_value, map_value FROM fit_posteriors WHERE "
                       "run_id = ? AND object_id = ?", [run_id, object_id]).fetchall()
    best = {k: b for k, b, _ in vals}
    mode = {k: m for k, _, m in vals}
    zfit = con.execute("SELECT any_value(z) FROM fit_posteriors WHERE run_id = ? AND object_id = ?",
                       [run_id, object_id]).fetchall()[0][0]
    draws = con.execute("SELECT age_gyr, log_z, av, log_mass_formed FROM fit_samples WHERE "
                        "run_id = ? AND object_id = ?", [run_id, object_id]).fetchall()
    grid_ids = con.execute("SELECT grid_ids FROM fit_runs WHERE run_id = ?", [run_id]).fetchall()[0][0]
    grids = [_grid_from_row(r) for r in lake.live("ssp_grids").to_pylist() if r["grid_id"] in grid_ids]
    grid = min(grids, key=lambda g: abs(g.z - zfit))
    if object_id.startswith("stack:"):
        bands, flux, err = cfg["bands"], np.array(cfg["stacked_flux_njy"]), np.array(cfg["stacked_err_njy"])
    else:
        import duckdb

        sel = select(lake, f"detection_id = {duckdb.ConstantExpression(object_id)}", cfg.get("z"),
                     photometry=cfg.get("photometry", "best"))  # what the fit used
        bands, flux, err = sel.bands, sel.flux[0], sel.err[0]
    piv = dict(con.execute("SELECT band, pivot_um FROM bands").fetchall())
    band_of = dict(con.execute("SELECT sedpy_name, band FROM bands").fetchall())
    gb = [band_of.get(b, b) for b in grid.bands]
    wave = np.array([piv[b] for b in gb])

    def model(age, logz, av, logm):
        i = np.abs(grid.age_gyr - age).argmin()
        j = np.abs(grid.log_z_zsun - logz).argmin()
        k = np.abs(grid.av - av).argmin()
        return grid.flux_njy[i, j, k] * 10 ** logm

    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    o = np.argsort(wave)
    if draws:
        fl = np.array([model(*d) for d in draws])
        lo, hi = np.percentile(fl, [16, 84], axis=0)
        ax.fill_between(wave[o], lo[o], hi[o], color="C1", alpha=0.3, label="posterior 16-84%")
    for vals_, style, what in ((best, "s-", "best fit (min chi2)"), (mode, "d--", "posterior mode")):
        if vals_.get("age_gyr") is None or vals_.get("log_mass_formed") is None:
            continue
        m = model(vals_["age_gyr"], vals_["log_z"], vals_["av"], vals_["log_mass_formed"])
        ax.plot(wave[o], m[o], style, color="C1" if what.startswith("best") else "C2",
                label=f"{what}: {vals_['age_gyr']:.2g} Gyr, log Z = {vals_['log_z']:.2f}, "
                f"A_V = {vals_['av']:.2f}")
    bw = np.array([piv[b] for b in bands])
    ax.errorbar(bw, flux, yerr=err, fmt="o", color="k", label="photometry")
    ax.set(xscale="log", xlabel="observed wavelength [um]", ylabel="flux [nJy]",
           title=f"{object_id} (z = {zfit:.3g})")
    ax.legend(fontsize=8)
    return _save(fig, Path(out), plt)


def plot_chi2map(lake, run_id: str, out: Path) -> str:
    """chi2 over age x metallicity of a stack fit, with the minimum marked (PNG)."""
    from .views import connect

    plt = _plt()
    run_id = run_id.removeprefix("stack:")
    rows = connect(lake).execute("SELECT age_gyr, log_z, chi2 FROM fit_chi2_maps WHERE run_id = ?",
                                 [run_id]).fetchall()
    if not rows:
        from .errors import GccatError

        raise GccatError(f"no chi2 map for run {run_id} (chi2 maps are kept for stacks)")
    a = np.array(rows)
    ages, zs = np.unique(a[:, 0]), np.unique(a[:, 1])
    grid = np.full((len(zs), len(ages)), np.nan)
    grid[np.searchsorted(zs, a[:, 1]), np.searchsorted(ages, a[:, 0])] = a[:, 2]
    d = grid - np.nanmin(grid)
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    im = ax.pcolormesh(ages, zs, np.log10(d + 1), shading="nearest", cmap="viridis_r")
    ax.contour(ages, zs, d, levels=[2.3, 6.17], colors=["w", "w"], linestyles=["-", "--"])
    i = np.nanargmin(grid)
    ax.plot(ages[i % len(ages)], zs[i // len(ages)], "r*", ms=12, ls="none",
            label="best fit (min chi2)")
    ax.legend(fontsize=8, loc="lower left")
    ax.set(xscale="log", xlabel="age [Gyr]", ylabel="log Z/Zsun", title=f"stack {run_id}: chi2")
    fig.colorbar(im, ax=ax, label=r"log$_{10}(\Delta\chi^2 + 1)$; contours 1, 2 sigma")
    return _save(fig, Path(out), plt)


def plot_sfh(lake, object_id: str, run_id: str | None, out: Path) -> str:
    """Mass formed per epoch with 16-84% error bars of a non-parametric SFH fit (PNG)."""
    from .views import connect

    plt = _plt()
    con = connect(lake)
    q = ("SELECT run_id, t_start_gyr, t_end_gyr, mass_msun, mass_p16, mass_p84 FROM sfh_epochs "
         "WHERE object_id = ?" + (" AND run_id = ?" if run_id else "") + " ORDER BY run_id, epoch")
    rows = con.execute(q, [object_id] + ([run_id] if run_id else [])).fetchall()
    if not rows:
        from .errors import GccatError

        raise GccatError(f"no SFH fit of {object_id}; run 'gccat fit sfh' first")
    last = rows[-1][0]
    r = np.array([x[1:] for x in rows if x[0] == last], float)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    mid, width = (r[:, 0] + r[:, 1]) / 2, r[:, 1] - r[:, 0]
    ax.bar(mid, r[:, 2], width=width * 0.9, color="C0", alpha=0.6)
    # The best fit may fall outside the percentiles of the perturbed refits: clip at 0.
    yerr = np.clip([r[:, 2] - r[:, 3], r[:, 4] - r[:, 2]], 0, None)
    ax.errorbar(mid, r[:, 2], yerr=yerr, fmt="none", color="k")
    ax.set(xlabel="cosmic time [Gyr]", ylabel=r"mass formed [M$_\odot$]", yscale="symlog",
           title=f"{object_id}: SFH ({last})")
    return _save(fig, Path(out), plt)
