"""PNG plots of fits read from the lake: SED with best fit and posterior, chi2 maps, SFHs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from catalog.figures import pyplot, save


def latest_run(con, table: str, object_id: str, condition: str = "", params=()) -> str | None:
    """The run of ``table`` that fitted ``object_id`` last (by lake version, then run id), or None.

    Not ``max(run_id)``: run ids of one second sort by their random suffix.
    """
    extra = f" AND {condition}" if condition else ""
    row = con.execute(
        f"SELECT t.run_id FROM {table} t JOIN ingests i USING (ingest_id) WHERE t.object_id = ?{extra} "
        "ORDER BY i.lake_version DESC, t.run_id DESC LIMIT 1",
        [object_id, *params],
    ).fetchall()
    return row[0][0] if row else None


def resolve_fit_object(con, object_id: str) -> str:
    """The fitted object an id names: a detection_id or ``stack:<run_id>`` as stored, a stack's
    run id without its prefix, or a catalog's own source id when exactly one detection has it.
    """
    from catalog.errors import GccatError

    def fitted(oid):
        return (
            con.execute("SELECT count(*) FROM fit_posteriors WHERE object_id = ?", [oid]).fetchall()[0][0] > 0
        )

    for candidate in (object_id, f"stack:{object_id}"):
        if fitted(candidate):
            return candidate
    ids = [
        r[0]
        for r in con.execute(
            "SELECT DISTINCT d.detection_id FROM detections d JOIN fit_posteriors f "
            "ON f.object_id = d.detection_id WHERE d.source_id = ? ORDER BY 1",
            [object_id],
        ).fetchall()
    ]
    if len(ids) == 1:
        return ids[0]
    if len(ids) > 1:
        raise GccatError(
            f"source id {object_id!r} is fitted in {len(ids)} catalogs "
            f"({', '.join(ids[:3])}{', ...' if len(ids) > 3 else ''}); give the detection_id"
        )
    raise GccatError(
        f"no fit of {object_id!r}; run 'gccat fit ssp' or 'gccat fit stack' first "
        "(ids: a detection_id, a source id, or a stack's run id)"
    )


def plot_sed(lake, object_id: str, run_id: str | None, out: Path) -> str:
    """Photometry, best-fit model, posterior mode and 16-84% posterior band of an SSP fit (PNG).

    The best fit is the minimum-chi2 grid model (the papers' "best-fit SSP"); the posterior
    mode is the grid model of largest likelihood x prior density; each is labelled as such.
    """
    from catalog.queries.connection import connect
    from catalog.runs.fits import _grid_from_row, select

    plt = pyplot()
    con = connect(lake)
    object_id = resolve_fit_object(con, object_id)
    run_id = run_id or latest_run(con, "fit_posteriors", object_id, "parameter = 'age_gyr'")
    if run_id is None:
        from catalog.errors import GccatError

        raise GccatError(f"no SSP fit of {object_id}; run 'gccat fit ssp' first")
    cfg = json.loads(con.execute("SELECT config FROM fit_runs WHERE run_id = ?", [run_id]).fetchall()[0][0])
    vals = con.execute(
        "SELECT parameter, best_fit_value, map_value FROM fit_posteriors WHERE run_id = ? AND object_id = ?",
        [run_id, object_id],
    ).fetchall()
    best = {k: b for k, b, _ in vals}
    mode = {k: m for k, _, m in vals}
    zfit = con.execute(
        "SELECT any_value(z) FROM fit_posteriors WHERE run_id = ? AND object_id = ?", [run_id, object_id]
    ).fetchall()[0][0]
    draws = con.execute(
        "SELECT age_gyr, log_z, av, log_mass_formed FROM fit_samples WHERE run_id = ? AND object_id = ?",
        [run_id, object_id],
    ).fetchall()
    grid_ids = con.execute("SELECT grid_ids FROM fit_runs WHERE run_id = ?", [run_id]).fetchall()[0][0]
    grids = [_grid_from_row(r) for r in lake.live("ssp_grids").to_pylist() if r["grid_id"] in grid_ids]
    grid = min(grids, key=lambda g: abs(g.z - zfit))
    if object_id.startswith("stack:"):
        bands, flux, err = cfg["bands"], np.array(cfg["stacked_flux_njy"]), np.array(cfg["stacked_err_njy"])
    else:
        import duckdb

        sel = select(
            lake,
            f"detection_id = {duckdb.ConstantExpression(object_id)}",
            cfg.get("z"),
            photometry=cfg.get("photometry", "best"),
        )  # what the fit used
        bands, flux, err = sel.bands, sel.flux[0], sel.err[0]
    piv = dict(con.execute("SELECT band, pivot_um FROM bands").fetchall())
    band_of = dict(con.execute("SELECT sedpy_name, band FROM bands").fetchall())
    gb = [band_of.get(b, b) for b in grid.bands]
    wave = np.array([piv[b] for b in gb])

    def model(age, logz, av, logm):
        i = np.abs(grid.age_gyr - age).argmin()
        j = np.abs(grid.log_z_zsun - logz).argmin()
        k = np.abs(grid.av - av).argmin()
        return grid.flux_njy[i, j, k] * 10**logm

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
        ax.plot(
            wave[o],
            m[o],
            style,
            color="C1" if what.startswith("best") else "C2",
            label=f"{what}: {vals_['age_gyr']:.2g} Gyr, log Z = {vals_['log_z']:.2f}, "
            f"A_V = {vals_['av']:.2f}",
        )
    bw = np.array([piv[b] for b in bands])
    ax.errorbar(bw, flux, yerr=err, fmt="o", color="k", label="photometry")
    ax.set(
        xscale="log",
        xlabel="observed wavelength [um]",
        ylabel="flux [nJy]",
        title=f"{object_id} (z = {zfit:.3g})",
    )
    ax.legend(fontsize=8)
    return save(fig, Path(out), plt)


#: Most contour levels of a chi2 map, and the largest sigma (beyond ~8 sigma the Gaussian
#: tail probability underflows the chi2 arithmetic of the grid fit).
MAX_CHI2_LEVELS = 10
MAX_SIGMA = 8.0


def delta_chi2(sigma, n_params: int = 2):
    """Delta chi2 of an ``n_params``-parameter confidence region holding the Gaussian
    probability of ``sigma`` (1 sigma: 68.27%, ...): the chi2 quantile with ``n_params``
    degrees of freedom. For 2 parameters it is -2 ln(1 - p) = -2 ln(erfc(sigma / sqrt 2)):
    1, 2, 3, 4, 5 sigma -> 2.30, 6.18, 11.83, 19.33, 28.74.
    """
    from scipy import special, stats

    s = np.asarray(sigma, dtype=float)
    if n_params == 2:
        # 1 - p = 2 Phi(-sigma), in logs so that 8 sigma stays finite
        return -2.0 * (np.log(2.0) + special.log_ndtr(-s))
    return stats.chi2.isf(2 * special.ndtr(-s), n_params)


def check_chi2_levels(levels) -> tuple[float, ...]:
    """``--levels``: 1-10 increasing sigma levels in (0, 8]."""
    from catalog.checks import check_numbers
    from catalog.errors import GccatError

    out = tuple(
        check_numbers(levels, "--levels (sigma)", n_max=MAX_CHI2_LEVELS, lo=0, lo_open=True, hi=MAX_SIGMA)
    )
    if any(b <= a for a, b in zip(out, out[1:], strict=False)):
        raise GccatError(f"--levels must increase, not {','.join(f'{v:g}' for v in out)}")
    return out


def plot_chi2map(lake, run_id: str, out: Path, levels=None, age_axis: str | None = None) -> str:
    """chi2 over age x metallicity of a stack fit, with the minimum marked (PNG).

    ``levels``: sigma levels of the contours, drawn at the Delta chi2 of a two-parameter
    region (:func:`delta_chi2`: 1, 2, 3, 4, 5 sigma at 2.30, 6.18, 11.83, 19.33, 28.74);
    ``age_axis``: ``"linear"`` or ``"log"``. Both default to the figure of the run's recipe
    (``smacs0723-ssp``: 3, 4, 5 sigma on a linear axis), else 1, 2 sigma on a log axis.
    """
    from catalog.errors import GccatError
    from catalog.queries.connection import connect
    from catalog.sed.recipes import DEFAULT_CHI2_LEVELS, RECIPES

    if age_axis not in (None, "linear", "log"):
        raise GccatError(f"--age-axis must be linear or log, not {age_axis!r}")
    if levels is not None:
        levels = check_chi2_levels(levels)
    plt = pyplot()
    run_id = run_id.removeprefix("stack:")
    con = connect(lake)
    rows = con.execute("SELECT age_gyr, log_z, chi2 FROM fit_chi2_maps WHERE run_id = ?", [run_id]).fetchall()
    if not rows:
        raise GccatError(f"no chi2 map for run {run_id} (chi2 maps are kept for stacks)")
    cfg = con.execute("SELECT config FROM fit_runs WHERE run_id = ?", [run_id]).fetchall()
    recipe = RECIPES.get(json.loads(cfg[0][0]).get("recipe") or "") if cfg else None
    levels = levels or (recipe.chi2_levels if recipe else DEFAULT_CHI2_LEVELS)
    age_axis = age_axis or (recipe.age_axis if recipe else "log")
    a = np.array(rows)
    ages, zs = np.unique(a[:, 0]), np.unique(a[:, 1])
    grid = np.full((len(zs), len(ages)), np.nan)
    grid[np.searchsorted(zs, a[:, 1]), np.searchsorted(ages, a[:, 0])] = a[:, 2]
    d = grid - np.nanmin(grid)
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    im = ax.pcolormesh(ages, zs, np.log10(d + 1), shading="nearest", cmap="viridis_r")
    dchi2 = delta_chi2(levels)
    styles = ["-", "--", ":", "-."]
    if len(zs) > 1 and len(ages) > 1:
        cs = ax.contour(
            ages,
            zs,
            d,
            levels=dchi2,
            colors="w",
            linestyles=[styles[i % len(styles)] for i in range(len(levels))],
        )
        ax.clabel(cs, fmt={v: f"{s:g}$\\sigma$" for v, s in zip(cs.levels, levels, strict=False)}, fontsize=7)
    i = np.nanargmin(grid)
    ax.plot(ages[i % len(ages)], zs[i // len(ages)], "r*", ms=12, ls="none", label="best fit (min chi2)")
    ax.legend(fontsize=8, loc="lower left")
    ax.set(xscale=age_axis, xlabel="age [Gyr]", ylabel="log Z/Zsun", title=f"stack {run_id}: chi2")
    shown = ", ".join(f"{s:g}" for s in levels)
    fig.colorbar(
        im,
        ax=ax,
        label=rf"log$_{{10}}(\Delta\chi^2 + 1)$; contours {shown} sigma "
        "(2 parameters)",
    )
    return save(fig, Path(out), plt)


def _sfh_run(con, object_id: str, run_id: str | None) -> str:
    from catalog.errors import GccatError

    last = latest_run(
        con, "sfh_epochs", object_id, "run_id = ?" if run_id else "", [run_id] if run_id else []
    )
    if last is None:
        raise GccatError(
            f"no SFH fit of {object_id}"
            + (f" in run {run_id}" if run_id else "")
            + "; run 'gccat fit sfh' first"
        )
    return last


def _sfh_model(lake, con, object_id: str, cfg: dict, z: float, epochs: np.ndarray):
    """Photometry the fit used and the best-fit model's band fluxes (templates rebuilt at z)."""
    import duckdb

    from catalog.runs.fits import SfhTemplates, select

    sel = select(
        lake,
        f"detection_id = {duckdb.ConstantExpression(object_id)}",
        1.0,  # the redshift does not change the photometry
        photometry=cfg.get("photometry", "best"),
    )
    opts = {
        "epochs_z": tuple(cfg.get("epochs_z", (12, 11, 10, 9, 8, 7, 6, 5, 4))),
        "metallicity": cfg.get("metallicity_zsun", 1.0),
        "av": cfg.get("av", 0.0),
        "nebular": bool(cfg.get("nebular", False)),
        "log_u": cfg.get("log_u") or -2.0,
        "constant_z_max": cfg.get("constant_z_max"),
    }
    tpl = SfhTemplates(sel.sedpy, opts)(z)
    mass = np.zeros(len(tpl["kind"]))
    for e, (mb, mc) in enumerate(epochs):
        mass[(tpl["epoch"] == e) & (tpl["kind"] == "burst")] = mb
        mass[(tpl["epoch"] == e) & (tpl["kind"] == "constant")] = mc
    piv = dict(con.execute("SELECT band, pivot_um FROM bands").fetchall())
    wave = np.array([piv[b] for b in sel.bands])
    return wave, sel.flux[0], sel.err[0], mass @ tpl["flux_njy"]


def plot_sfh(lake, object_id: str, run_id: str | None, out: Path) -> str:
    """The SEDz* figure of a ``fit sfh`` run (PNG), three panels.

    (1) chi2(z) of the redshift scan with the photo-z and its delta-chi2 = 1 interval (or, for
    an object fitted at a given or catalogued redshift, that redshift marked); (2) the observed
    photometry with the best-fit model's band fluxes (templates rebuilt at the fitted redshift
    from the run's options); (3) the history: mass formed per epoch (best fit, burst and
    constant SF stacked) with the quartile band (25-75%) of the perturbed refits.
    """
    from catalog.queries.connection import connect

    plt = pyplot()
    con = connect(lake)
    run = _sfh_run(con, object_id, run_id)
    cfg = json.loads(con.execute("SELECT config FROM fit_runs WHERE run_id = ?", [run]).fetchall()[0][0])
    ep = np.array(
        con.execute(
            "SELECT z_start, z_end, t_start_gyr, t_end_gyr, mass_msun, coalesce(mass_q25, mass_p16), "
            "coalesce(mass_q75, mass_p84), coalesce(mass_burst_msun, mass_msun), "
            "coalesce(mass_constant_msun, 0) FROM sfh_epochs WHERE object_id = ? AND run_id = ? "
            "ORDER BY epoch",
            [object_id, run],
        ).fetchall(),
        float,
    )
    res = con.execute(
        "SELECT z, z_source, z_phot, z_phot_lo, z_phot_hi, chi2_min, mass_total FROM sfh_results "
        "WHERE object_id = ? AND run_id = ?",
        [object_id, run],
    ).fetchall()
    z, source, zp, zlo, zhi, chi2_min, m_tot = (
        res[0] if res else (cfg.get("z"), "catalog", None, None, None, None, None)
    )
    if z is None:  # a run written before sfh_results: the redshift of its posterior rows
        z = con.execute(
            "SELECT any_value(z) FROM fit_posteriors WHERE object_id = ? AND run_id = ?", [object_id, run]
        ).fetchall()[0][0]
    scan = np.array(
        con.execute(
            "SELECT z, chi2 FROM sfh_chi2_z WHERE object_id = ? AND run_id = ? ORDER BY z", [object_id, run]
        ).fetchall(),
        float,
    ).reshape(-1, 2)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    _panel_chi2z(axes[0], scan, z, source, zp, zlo, zhi)
    wave, flux, err, model = _sfh_model(lake, con, object_id, cfg, float(z), ep[:, 7:9])
    _panel_sed(axes[1], wave, flux, err, model, z, chi2_min)
    _panel_history(axes[2], ep, m_tot)
    fig.suptitle(f"{object_id}: SEDz* fit ({run}; recipe {cfg.get('recipe') or 'none'})", fontsize=10)
    fig.tight_layout()
    return save(fig, Path(out), plt)


def _panel_chi2z(ax, scan, z, source, zp, zlo, zhi) -> None:
    if source == "scan" and len(scan):
        ax.plot(scan[:, 0], scan[:, 1], "-", color="C0", lw=1.2, label=r"$\chi^2(z)$ (NNLS at each z)")
        ax.axvspan(zlo, zhi, color="C1", alpha=0.25, label=rf"$\Delta\chi^2 \leq 1$: {zlo:.2f}-{zhi:.2f}")
        ax.axvline(zp, color="C1", label=f"photo-z {zp:.2f} (min $\\chi^2$)")
        ax.set_ylim(max(0, np.nanmin(scan[:, 1]) - 1), np.nanpercentile(scan[:, 1], 90) + 1)
    else:
        ax.axvline(z, color="C1", label=f"z = {z:.3g} ({source}; no scan)")
        ax.text(0.5, 0.5, "redshift not scanned", transform=ax.transAxes, ha="center", color="0.5")
    ax.set(xlabel="redshift z", ylabel=r"$\chi^2$", title=r"$\chi^2(z)$")
    ax.legend(fontsize=8)


def _panel_sed(ax, wave, flux, err, model, z, chi2_min) -> None:
    o = np.argsort(wave)
    lab = "best-fit model (NNLS)" + ("" if chi2_min is None else rf", $\chi^2$ = {chi2_min:.3g}")
    ax.plot(wave[o], model[o], "s-", color="C1", label=lab)
    ax.errorbar(wave, flux, yerr=err, fmt="o", color="k", label="photometry")
    ax.set(
        xscale="log", xlabel=r"observed wavelength [$\mu$m]", ylabel="flux [nJy]", title=f"SED at z = {z:.3g}"
    )
    ax.legend(fontsize=8)


def _panel_history(ax, ep, m_tot) -> None:
    """Mass formed per epoch, one bar per epoch (earliest left), labelled by its z range."""
    x = np.arange(len(ep))
    ax.bar(x, ep[:, 7], width=0.8, color="C0", alpha=0.7, label="10 Myr burst")
    ax.bar(x, ep[:, 8], width=0.8, bottom=ep[:, 7], color="C2", alpha=0.7, label="constant SF")
    # the best fit may fall outside the quartiles of the perturbed refits: clip at 0
    yerr = np.clip([ep[:, 4] - ep[:, 5], ep[:, 6] - ep[:, 4]], 0, None)
    ax.errorbar(x, ep[:, 4], yerr=yerr, fmt="none", color="k", capsize=3, label="25-75% of refits")
    ax.set_xticks(x, [f"{a:g}-{b:.3g}" for a, b in ep[:, :2]], rotation=45, fontsize=8)
    total = "" if m_tot is None else f" (total {m_tot:.3g} M$_\\odot$)"
    ax.set(
        xlabel="epoch (redshift range)",
        ylabel=r"mass formed per epoch [M$_\odot$]",
        title="history" + total,
    )
    top = float(np.nanmax(ep[:, 6], initial=0) or np.nanmax(ep[:, 4], initial=1) or 1)
    ax.set_yscale("symlog", linthresh=max(1.0, 1e-3 * top))
    ax.legend(fontsize=8, loc="upper left")


def plot_nonparam(lake, object_id: str, run_id: str | None, out: Path) -> str:
    """Median SFR history with its 16-84% band of a non-parametric (t_x atlas) fit (PNG).

    SFR in Msun/yr against lookback time (Gyr before observation), with t50 and the
    mass-weighted age (16-84% shaded) of the fit marked.
    """
    from catalog.errors import GccatError
    from catalog.queries.connection import connect

    plt = pyplot()
    con = connect(lake)
    if run_id is None:
        last = latest_run(con, "nonparam_results", object_id)
        if last is None:
            raise GccatError(f"no non-parametric fit of {object_id}; run 'gccat fit nonparam' first")
        run_id = last
    rows = con.execute(
        "SELECT lookback_lo_gyr, lookback_hi_gyr, sfr_p16, sfr_p50, sfr_p84 "
        "FROM nonparam_histories WHERE object_id = ? AND run_id = ? ORDER BY bin",
        [object_id, run_id],
    ).fetchall()
    if not rows:
        raise GccatError(f"no non-parametric fit of {object_id} in run {run_id}")
    summ = con.execute(
        "SELECT t50_gyr_p16, t50_gyr_p50, t50_gyr_p84, mw_age_gyr_p16, mw_age_gyr_p50, "
        "mw_age_gyr_p84, log_mass_formed_p50, sfr100_p50 FROM nonparam_results "
        "WHERE object_id = ? AND run_id = ?",
        [object_id, run_id],
    ).fetchall()[0]
    r = np.array(rows, float)
    mid = (r[:, 0] + r[:, 1]) / 2
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.fill_between(mid, r[:, 2], r[:, 4], color="C0", alpha=0.3, lw=0, label="16-84%")
    ax.plot(mid, r[:, 3], color="C0", lw=2, label="median history")
    ax.axvline(summ[1], color="C3", ls="--", lw=1, label=f"t50 = {summ[1]:.2f} Gyr")
    ax.axvspan(summ[0], summ[2], color="C3", alpha=0.08)
    ax.axvline(summ[4], color="C2", ls=":", lw=1.5, label=f"mass-weighted age = {summ[4]:.2f} Gyr")
    top = np.nanmax(r[:, 4]) if np.isfinite(r[:, 4]).any() else 1.0
    ax.set_ylim(0, 1.1 * top)
    ax.set_xlim(0, r[-1, 1])
    ax.set(
        xlabel="lookback time [Gyr]",
        ylabel=r"SFR [M$_\odot$ yr$^{-1}$]",
    )
    ax.set_title(f"{object_id}: log M$_{{formed}}$ = {summ[6]:.2f}\nfit nonparam run {run_id}", fontsize=9)
    ax.legend(fontsize=8, frameon=False)
    return save(fig, Path(out), plt)
