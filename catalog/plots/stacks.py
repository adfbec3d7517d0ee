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
    """The measured FWHM (mean and scatter of the realisations) against the simulated half-light
    radius, with the point sources' FWHM, the cut F_0 + k s_0 and the threshold size; and the
    significance of the excess against size.

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
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    plt = pyplot()
    r = np.array([s["r_h_pc"] for s in sizes], float)
    f = np.array([s["fwhm_mean_pix"] for s in sizes], float)
    fs = np.array([s["fwhm_std_pix"] for s in sizes], float)
    z = np.array([s["significance"] for s in sizes], float)
    f0, s0, k = run["fwhm_point_pix"], run["fwhm_point_std_pix"], run["nsigma"]
    thr = run.get("threshold_r_h_pc")
    fig, ax = plt.subplots(1, 2, figsize=(9.6, 3.8))
    ax[0].errorbar(r, f, yerr=fs, fmt="o-", c="C0", ms=4, label="simulated (mean, scatter)")
    ax[0].axhspan(f0 - s0, f0 + s0, color="grey", alpha=0.3, label="point sources")
    ax[0].axhline(f0 + k * s0, c="grey", ls=":", label=f"point + {k:g} sigma")
    ax[0].set_ylabel("FWHM of a Gaussian fit (pix)")
    ax[1].plot(r, z, "o-", c="C0")
    ax[1].axhline(k, c="grey", ls=":", label=f"k = {k:g}")
    ax[1].set_ylabel("FWHM excess / point-source scatter")
    for a in ax:
        if thr is not None:
            a.axvline(thr, c="C3", ls="--", label=f"r_h = {thr:.3g} pc")
        a.set_xscale("log")
        a.xaxis.set_major_formatter(ScalarFormatter())
        a.xaxis.set_minor_formatter(NullFormatter())
        a.set_xticks(r)
        a.set_xlabel("half-light radius (pc)")
        a.legend(fontsize=8)
    fig.suptitle(f"{run['field_id']} {run['band']}: S/N {run['snr']:.3g}, mu_t {run['mu_t']:g}")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    return save(fig, out, plt)
