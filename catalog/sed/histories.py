"""Non-parametric star-formation histories in the manner of SEDz*: templates and NNLS fits.

:func:`sfh_templates` builds, per epoch between given redshifts, a short burst at the epoch's
start and a constant star formation across it (BC03, one metallicity and A_V, nJy per Msun
formed); :func:`fit_sfh` fits photometry with non-negative masses per template and gives the
mass formed per epoch, the total, the living mass and the times by which half of it had formed
(cosmic time in Gyr after the Big Bang; :data:`catalog.constants.COSMOLOGY`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import optimize

from catalog.sed.library import cosmology, load_bc03
from catalog.sed.synthetic_photometry import interpolate_in_log_z, ssp_band_fluxes


def _z_at_age(t_gyr) -> np.ndarray:
    zs = np.concatenate([np.linspace(0, 1, 201)[:-1], np.logspace(0, np.log10(60), 3000)])
    ages = cosmology().age(zs).to_value("Gyr")  # decreasing with z
    return np.interp(np.asarray(t_gyr, dtype=float), ages[::-1], zs[::-1])


def _age_weights(age_yr: np.ndarray, a0: float, a1: float) -> np.ndarray:
    """Weights over BC03 nodes of a constant SFR between ages a0 < a1 (yr), per Msun formed.

    The spectrum is taken as linear in age between nodes and averaged exactly over [a0, a1].
    """
    w = np.zeros(age_yr.size)
    a0, a1 = max(a0, 0.0), max(a1, 0.0)
    if a1 <= a0:
        return w
    # every node and the two ends: piecewise-linear weights integrate exactly by trapezoids
    pts = np.unique(np.concatenate([[a0, a1], age_yr[(age_yr > a0) & (age_yr < a1)]]))
    j = np.clip(np.searchsorted(age_yr, pts, side="right") - 1, 0, age_yr.size - 2)
    frac = np.clip((pts - age_yr[j]) / (age_yr[j + 1] - age_yr[j]), 0, 1)
    dt = np.diff(pts)
    trap = np.zeros_like(pts)
    trap[:-1] += dt / 2
    trap[1:] += dt / 2
    np.add.at(w, j, trap * (1 - frac))
    np.add.at(w, j + 1, trap * frac)
    return w / (a1 - a0)


def sfh_templates(
    z_obs: float,
    sedpy_names: Sequence[str],
    epochs_z=(12, 11, 10, 9, 8, 7, 6, 5, 4),
    *,
    burst_myr: float = 10.0,
    log_z: float = 0.0,
    av: float = 0.0,
    igm: bool = True,
) -> dict:
    """SEDz*-style templates: per epoch a short burst at its start and constant SF across it.

    Parameters
    ----------
    z_obs : float
        Redshift at which the galaxy is observed.
    sedpy_names : sequence of str
        astro-sedpy filter names.
    epochs_z : sequence of float
        Epoch start redshifts, decreasing; epoch i runs from ``epochs_z[i]`` to the next one and
        the last ends at ``z_obs``. Starts at or below ``z_obs`` are dropped.
    burst_myr : float
        Burst duration in Myr (constant SFR from the epoch start).
    log_z, av : float
        log10(Z/Zsun) (interpolated in log Z between BC03 grids) and Calzetti A_V (mag).
    igm : bool
        Inoue et al. (2014) IGM transmission.

    Returns
    -------
    dict
        ``flux_njy`` (n_templates, n_band) nJy per Msun formed; ``kind`` ('burst'/'constant'),
        ``epoch`` (index), ``z_start``, ``z_end``, ``t_start_gyr``, ``t_end_gyr`` (cosmic time,
        Gyr after the Big Bang), ``living_fraction`` per template (n_templates,); and ``z_obs``,
        ``t_obs_gyr``, ``bands``, ``epochs`` ((n_epoch, 2) z range), ``burst_myr``, ``log_z``,
        ``av``, ``igm``.
    """
    names = list(sedpy_names)
    starts = [float(z) for z in epochs_z if z > z_obs]
    if not starts:
        raise ValueError(f"no epoch starts above z_obs={z_obs}")
    if np.any(np.diff(starts) >= 0):
        raise ValueError("epochs_z must decrease")
    ends = starts[1:] + [float(z_obs)]
    cosmo = cosmology()
    t_obs = float(cosmo.age(z_obs).to_value("Gyr"))
    bc = load_bc03()
    ages_yr = bc["age_yr"]
    idx = np.arange(ages_yr.size)
    av_arr = np.array([float(av)])
    flux7 = ssp_band_fluxes(z_obs, names, idx, av_arr, igm=igm, nebular=False)[:, :, 0, :]  # (7, n_age, b)
    flux = interpolate_in_log_z(flux7, np.array([10.0**log_z]), axis=0)[0]  # (n_age, n_band)
    live = interpolate_in_log_z(bc["living_fraction"], np.array([10.0**log_z]), axis=1)[:, 0]
    rows = {
        k: []
        for k in (
            "flux_njy",
            "kind",
            "epoch",
            "z_start",
            "z_end",
            "t_start_gyr",
            "t_end_gyr",
            "living_fraction",
        )
    }
    for e, (z0, z1) in enumerate(zip(starts, ends, strict=True)):
        t0 = float(cosmo.age(z0).to_value("Gyr"))
        t1 = float(cosmo.age(z1).to_value("Gyr"))
        for kind, (ta, tb) in (("burst", (t0, min(t0 + burst_myr / 1e3, t1))), ("constant", (t0, t1))):
            # stars formed at cosmic time t have age t_obs - t at observation
            w = _age_weights(ages_yr, (t_obs - tb) * 1e9, (t_obs - ta) * 1e9)
            rows["flux_njy"].append(w @ flux)
            rows["living_fraction"].append(float(w @ live))
            rows["kind"].append(kind)
            rows["epoch"].append(e)
            rows["z_start"].append(z0)
            rows["z_end"].append(z1)
            rows["t_start_gyr"].append(t0)
            rows["t_end_gyr"].append(t1)
    out = {k: np.asarray(v) for k, v in rows.items()}
    out.update(
        z_obs=float(z_obs),
        t_obs_gyr=t_obs,
        bands=names,
        epochs=np.column_stack([starts, ends]),
        burst_myr=float(burst_myr),
        log_z=float(log_z),
        av=float(av),
        igm=bool(igm),
    )
    return out


def _sfh_summaries(mass_tpl: np.ndarray, templates: dict) -> dict:
    """Epoch masses, t50, t_peak and z50 of template masses (n_draw, n_templates)."""
    ep = templates["epoch"]
    n_ep = len(templates["epochs"])
    m_ep = np.zeros((mass_tpl.shape[0], n_ep))
    for e in range(n_ep):
        m_ep[:, e] = mass_tpl[:, ep == e].sum(axis=1)
    # cumulative mass formed vs cosmic time: each template spreads uniformly over its interval
    t0 = templates["t_start_gyr"]
    t1 = np.where(
        templates["kind"] == "burst",
        np.minimum(t0 + templates["burst_myr"] / 1e3, templates["t_end_gyr"]),
        templates["t_end_gyr"],
    )
    tt = np.unique(np.concatenate([t0, t1]))
    frac = np.clip((tt[None, :] - t0[:, None]) / (t1 - t0)[:, None], 0, 1)  # (n_tpl, n_t)
    cum = mass_tpl @ frac  # (n_draw, n_t)
    tot = cum[:, -1]
    t50 = np.full(mass_tpl.shape[0], np.nan)
    for i in np.flatnonzero(tot > 0):
        t50[i] = np.interp(0.5 * tot[i], cum[i], tt)  # cum is non-decreasing
    t_ep0 = np.array([templates["t_start_gyr"][ep == e][0] for e in range(n_ep)])
    t_ep1 = np.array([templates["t_end_gyr"][ep == e][0] for e in range(n_ep)])
    t_peak = np.where(tot > 0, ((t_ep0 + t_ep1) / 2)[np.argmax(m_ep, axis=1)], np.nan)
    return {
        "mass_epoch": m_ep,
        "mass_total": tot,
        "t50": t50,
        "t_peak": t_peak,
        "mass_living": mass_tpl @ templates["living_fraction"],
    }


def fit_sfh(
    templates: dict, flux_njy, flux_err_njy, *, n_perturb: int = 21, rng=None, error_floor: float = 0.05
) -> dict:
    """Non-negative least squares over SEDz* templates, with perturbation error bars.

    Parameters
    ----------
    templates : dict
        From :func:`sfh_templates` (bands in the order of the flux columns).
    flux_njy, flux_err_njy : array_like
        (n_band,) or (n_obj, n_band) fluxes and 1-sigma errors in nJy; NaN flux or NaN/inf/
        non-positive error excludes a band.
    n_perturb : int
        Refits of the photometry perturbed by Gaussian draws of its 1-sigma (measured) errors.
    rng : numpy.random.Generator or seed
    error_floor : float
        Fraction of |flux| added in quadrature to the errors used as NNLS weights.

    Returns
    -------
    dict
        Arrays with a leading object axis (dropped for 1-D input): ``mass_template``
        (n_templates,) Msun formed per template (best fit); ``mass_epoch``, ``mass_epoch_p16``,
        ``mass_epoch_p84`` (n_epoch,) Msun formed per epoch (burst + constant; percentiles of the
        perturbed refits); ``mass_total`` (+ ``_p16``/``_p84``) and ``mass_living`` (Msun);
        ``t50_gyr`` (+ ``_p16``/``_p84``): cosmic time (Gyr after the Big Bang) by which half of
        the mass had formed; ``z50``: redshift at t50; ``t_peak_gyr``: cosmic time at the middle
        of the epoch that formed most mass; ``chi2``; ``n_bands``; ``mass_epoch_draws``
        (n_perturb, n_epoch); and ``epochs`` ((n_epoch, 2) z ranges).
    """
    rng = np.random.default_rng(rng)
    f = np.asarray(flux_njy, dtype=np.float64)
    e = np.asarray(flux_err_njy, dtype=np.float64)
    single = f.ndim == 1
    f, e = np.atleast_2d(f), np.atleast_2d(e)
    tpl = np.asarray(templates["flux_njy"], dtype=np.float64)  # (n_tpl, n_band)
    if tpl.shape[1] != f.shape[1]:
        raise ValueError(f"{f.shape[1]} flux columns for templates of {tpl.shape[1]} bands")
    # scale templates to unit peak: NNLS is better conditioned and masses are rescaled after
    tnorm = np.max(np.abs(tpl), axis=1)
    tnorm = np.where(tnorm > 0, tnorm, 1.0)
    tn = tpl / tnorm[:, None]
    keys = (
        "mass_template",
        "mass_epoch",
        "mass_epoch_p16",
        "mass_epoch_p84",
        "mass_total",
        "mass_total_p16",
        "mass_total_p84",
        "mass_living",
        "t50_gyr",
        "t50_gyr_p16",
        "t50_gyr_p84",
        "z50",
        "t_peak_gyr",
        "chi2",
        "n_bands",
        "mass_epoch_draws",
    )
    rows = {k: [] for k in keys}
    for i in range(f.shape[0]):
        with np.errstate(invalid="ignore"):
            sig = np.sqrt(e[i] ** 2 + (error_floor * np.abs(f[i])) ** 2)
            ok = np.isfinite(f[i]) & np.isfinite(sig) & (sig > 0) & np.isfinite(e[i])
        a = (tn[:, ok] / sig[ok]).T  # (n_ok, n_tpl)

        def solve(fl, a=a, ok=ok, sig=sig):
            x, rnorm = optimize.nnls(a, fl[ok] / sig[ok])
            return x / tnorm, rnorm**2

        best, chi2 = solve(f[i]) if ok.any() else (np.zeros(tpl.shape[0]), np.nan)
        pert = (
            np.array([solve(f[i] + e[i] * rng.standard_normal(f.shape[1]))[0] for _ in range(n_perturb)])
            if ok.any()
            else np.zeros((n_perturb, tpl.shape[0]))
        )
        sb, sp = _sfh_summaries(best[None], templates), _sfh_summaries(pert, templates)
        rows["mass_template"].append(best)
        rows["mass_epoch"].append(sb["mass_epoch"][0])
        rows["mass_epoch_p16"].append(np.percentile(sp["mass_epoch"], 16, axis=0))
        rows["mass_epoch_p84"].append(np.percentile(sp["mass_epoch"], 84, axis=0))
        rows["mass_total"].append(sb["mass_total"][0])
        rows["mass_total_p16"].append(np.percentile(sp["mass_total"], 16))
        rows["mass_total_p84"].append(np.percentile(sp["mass_total"], 84))
        rows["mass_living"].append(sb["mass_living"][0])
        rows["t50_gyr"].append(sb["t50"][0])
        t50p = sp["t50"][np.isfinite(sp["t50"])]
        rows["t50_gyr_p16"].append(np.percentile(t50p, 16) if t50p.size else np.nan)
        rows["t50_gyr_p84"].append(np.percentile(t50p, 84) if t50p.size else np.nan)
        rows["z50"].append(float(_z_at_age(sb["t50"][0])) if np.isfinite(sb["t50"][0]) else np.nan)
        rows["t_peak_gyr"].append(sb["t_peak"][0])
        rows["chi2"].append(chi2)
        rows["n_bands"].append(int(ok.sum()))
        rows["mass_epoch_draws"].append(sp["mass_epoch"])
    out = {k: np.asarray(v) for k, v in rows.items()}
    if single:
        out = {k: v[0] for k, v in out.items()}
    out["epochs"] = np.asarray(templates["epochs"])
    return out
