"""Rest-frame colour-colour diagrams of fitted objects over BC03 SSP tracks."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from catalog.figures import pyplot, save

#: The diagrams: name -> (x column, y column, x label, y label). Colours of restframe_results.
DIAGRAMS = {
    "uvj": ("color_vj_ab", "color_uv_ab", "(V - J)$_{AB}$", "(U - V)$_{AB}$"),
    "bi-vi": ("color_vi_vega", "color_bi_vega", "(V - I)$_{Vega}$", "(B - I)$_{Vega}$"),
}
#: Metallicities (Z/Zsun) of the SSP tracks and the ages (Gyr) marked on them.
TRACK_Z = (0.02, 0.2, 1.0, 2.5)
TRACK_AGES_GYR = (0.1, 0.5, 1.0, 3.0, 10.0)


def ssp_tracks(diagram: str) -> dict:
    """Dust-free BC03 SSP colours along age, per metallicity of :data:`TRACK_Z`.

    Returns
    -------
    dict
        ``age_gyr`` (n_age,), and per metallicity (Z/Zsun) an (n_age, 2) array of the
        diagram's (x, y) colours.
    """
    from catalog.sed import GridSpec, build_grid
    from catalog.sed import restframe as rf

    # the redshift and band only place the (unused) observed fluxes; ages 50 Myr - 13 Gyr
    spec = GridSpec(
        av_max=0, n_av=1, metallicities=TRACK_Z, age_min_gyr=0.05, age_max_gyr=13.0, universe_bound=False
    )
    grid = build_grid(0.01, ["bessell_V"], spec)
    q = rf.restframe_quantities(
        grid,
        np.ones((1, 1)),
        np.ones((1, 1), bool),
        {
            "age_gyr": np.repeat(grid.age_gyr, len(TRACK_Z)),
            "log_z": np.tile(grid.log_z_zsun, grid.age_gyr.size),
            "av": np.zeros(grid.age_gyr.size * len(TRACK_Z)),
            "log_mass_formed": np.zeros(grid.age_gyr.size * len(TRACK_Z)),
            "log_mass_living": np.zeros(grid.age_gyr.size * len(TRACK_Z)),
        },
    )
    xk, yk = DIAGRAMS[diagram][:2]
    xy = np.stack([q[xk], q[yk]], axis=1).reshape(grid.age_gyr.size, len(TRACK_Z), 2)
    return {"age_gyr": grid.age_gyr, **{z: xy[:, i] for i, z in enumerate(TRACK_Z)}}


def _run_rows(con, run_id: str | None, cols: list[str]):
    from catalog.errors import GccatError

    if run_id is None:
        found = con.sql(
            "SELECT run_id FROM fit_runs WHERE run_id IN (SELECT run_id FROM restframe_results) "
            "ORDER BY kind = 'ssp' DESC, created_at DESC LIMIT 1"
        ).fetchall()
        if not found:
            raise GccatError(
                "no rest-frame results in the lake: run 'gccat fit ssp' or 'gccat fit stack' first"
            )
        run_id = found[0][0]
    run_id = run_id.removeprefix("stack:")
    rows = con.execute(
        f"SELECT object_id, {', '.join(cols)} FROM restframe_results WHERE run_id = ?", [run_id]
    ).fetchall()
    if not rows:
        raise GccatError(f"no rest-frame results for run {run_id} (written by fit ssp and fit stack)")
    return run_id, rows


def plot_colors(lake, run_id: str | None, out: Path, diagram: str = "uvj") -> str:
    """Rest-frame colour-colour diagram of a fit run's objects over BC03 SSP tracks (PNG).

    ``diagram``: ``"uvj"`` (U - V against V - J, AB) or ``"bi-vi"`` ((B - I) against (V - I),
    Vega: the optical pair of Milky Way and extragalactic GC systems). Points are the best-fit
    models' colours (with their fitted A_V), bars the 16-84% range of the posterior draws where
    the run kept draws; the tracks are dust-free SSPs at 0.02, 0.2, 1 and 2.5 Zsun from 50 Myr
    to 13 Gyr, marked at 0.1, 0.5, 1, 3 and 10 Gyr. ``run_id`` defaults to the newest SSP run
    (else the newest stack).
    """
    from catalog.errors import GccatError
    from catalog.queries.connection import connect

    if diagram not in DIAGRAMS:
        raise GccatError(f"--diagram must be one of {', '.join(DIAGRAMS)}, not {diagram!r}")
    xk, yk, xl, yl = DIAGRAMS[diagram]
    cols = [xk, f"{xk}_p16", f"{xk}_p84", yk, f"{yk}_p16", f"{yk}_p84"]
    run_id, rows = _run_rows(connect(lake), run_id, cols)
    a = np.array([r[1:] for r in rows], dtype=float)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 5.0))
    tracks = ssp_tracks(diagram)
    ages = tracks["age_gyr"]
    marks = [int(np.argmin(np.abs(ages - t))) for t in TRACK_AGES_GYR]
    for z, color in zip(TRACK_Z, plt.cm.plasma(np.linspace(0.05, 0.8, len(TRACK_Z))), strict=True):
        xy = tracks[z]
        ax.plot(xy[:, 0], xy[:, 1], "-", color=color, lw=1.4, zorder=3, label=f"BC03 SSP {z:g} Z$_\\odot$")
        ax.plot(xy[marks, 0], xy[marks, 1], "o", color=color, ms=4, zorder=3)
    for t, i in zip(TRACK_AGES_GYR, marks, strict=True):  # age labels on the solar track
        ax.annotate(f"{t:g} Gyr", tracks[1.0][i], xytext=(4, -9), textcoords="offset points", fontsize=7)
    stack = np.array([r[0].startswith("stack:") for r in rows])
    xerr = np.abs(np.stack([a[:, 0] - a[:, 1], a[:, 2] - a[:, 0]]))
    yerr = np.abs(np.stack([a[:, 3] - a[:, 4], a[:, 5] - a[:, 3]]))
    ok = ~stack
    ax.errorbar(
        a[ok, 0],
        a[ok, 3],
        xerr=np.nan_to_num(xerr[:, ok]),
        yerr=np.nan_to_num(yerr[:, ok]),
        fmt="o",
        ms=3,
        alpha=0.7,
        color="0.3",
        ecolor="0.75",
        elinewidth=0.6,
        label=f"fitted objects ({ok.sum()})",
    )
    if stack.any():
        ax.plot(a[stack, 0], a[stack, 3], "r*", ms=14, ls="none", label="stack")
    ax.set(xlabel=xl, ylabel=yl)
    ax.set_title(f"run {run_id}: rest-frame colours of the best fits", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    return save(fig, Path(out), plt)
