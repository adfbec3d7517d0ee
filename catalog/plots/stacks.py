"""PNG plots of image stacks and size limits: stack vs PSF radial profiles, significance vs size."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from catalog.figures import pyplot, save


def plot_stack_profile(profile: dict, path, title: str = "") -> str:
    """The stack's and the PSF's radial profiles (both fractions of the flux per pixel, log y)
    and their ratio, against radius in arcsec.

    Parameters
    ----------
    profile : dict
        Columns of ``stack_profiles``: ``radius_arcsec``, ``profile_stack``,
        ``profile_stack_err``, ``profile_psf``, ``ratio``, ``ratio_err``.
    path : path
        PNG to write.
    title : str
        Title of the upper panel.

    Returns
    -------
    str
        The path written.
    """
    plt = pyplot()
    r = np.asarray(profile["radius_arcsec"], float)
    ps = np.asarray(profile["profile_stack"], float)
    pe = np.asarray(profile["profile_stack_err"], float)
    pp = np.asarray(profile["profile_psf"], float)
    ratio = np.asarray([np.nan if v is None else v for v in profile["ratio"]], float)
    rerr = np.asarray([np.nan if v is None else v for v in profile["ratio_err"]], float)
    fig, ax = plt.subplots(2, 1, figsize=(5.2, 5.6), sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    pos = ps > 0
    ax[0].errorbar(r[pos], ps[pos], yerr=pe[pos], fmt="o", ms=3, c="C0", label="stack")
    ax[0].plot(r, pp, "-", c="C3", label="PSF")
    ax[0].set_yscale("log")
    ax[0].set_ylabel("profile / total flux (pix$^{-1}$)")
    ax[0].legend()
    if title:
        ax[0].set_title(title)
    ax[1].errorbar(r, ratio, yerr=rerr, fmt="o", ms=3, c="C0")
    ax[1].axhline(1.0, c="grey", ls=":")
    ax[1].set_ylim(0.5, 1.5)
    ax[1].set_xlabel("radius (arcsec)")
    ax[1].set_ylabel("stack / PSF")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    return save(fig, out, plt)


def plot_size_limit(run: dict, sizes: list[dict], path) -> str:
    """Significance of the FWHM excess against the simulated half-light radius, with the
    criterion's k and the threshold size.

    Parameters
    ----------
    run : dict
        The ``size_limit_runs`` row.
    sizes : list of dict
        Its ``size_limit_sizes`` rows.
    path : path
        PNG to write.

    Returns
    -------
    str
        The path written.
    """
    plt = pyplot()
    r = np.array([s["r_h_pc"] for s in sizes], float)
    z = np.array([s["significance"] for s in sizes], float)
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    ax.plot(r, z, "o-", c="C0", label="simulated")
    ax.axhline(run["nsigma"], c="grey", ls=":", label=f"k = {run['nsigma']:g}")
    if run.get("threshold_r_h_pc") is not None:
        ax.axvline(run["threshold_r_h_pc"], c="C3", ls="--", label=f"r_h = {run['threshold_r_h_pc']:.3g} pc")
    ax.set_xscale("log")
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xticks(r)
    ax.set_xlabel("half-light radius (pc)")
    ax.set_ylabel("FWHM excess / point-source scatter")
    ax.set_title(f"{run['field_id']} {run['band']}: S/N {run['snr']:.3g}, mu_t {run['mu_t']:g}")
    ax.legend()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    return save(fig, out, plt)
