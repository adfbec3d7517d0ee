"""Rest-frame quantities of fitted populations: absolute magnitudes, colours, M/L_V and L_V.

Per grid, once: every model's absolute magnitudes through seven rest-frame filters
(:data:`REST_BANDS`: Bessell U, B, V, I, 2MASS J, SDSS u, r) per Msun formed, from the same
BC03 spectra, dust and age/metallicity interpolation as the grid itself, placed at 10 pc
(z = 0, no IGM): a (n_models, 7) table (:func:`restframe_table`). Per object, a lookup at the
fit's model times its mass scale (:func:`restframe_quantities`).

- **AB and Vega.** Vega magnitudes are m_AB - (m_AB - m_Vega), the offsets
  (:func:`ab_minus_vega`) computed by astro-sedpy from its CALSPEC Vega spectrum
  (``alpha_lyr_stis_005``; ``Filter.ab_to_vega``, m_Vega = m_AB + ab_to_vega). They agree with
  Blanton & Roweis (2007, AJ 133, 734, Table 1) to 0.03 mag.
- **Solar units.** L_V / L_V,sun = 10^(-0.4 (M_V - M_V,sun)) with M_V,sun the AB absolute
  magnitude of sedpy's Kurucz (1993) Sun in the same filter (``Filter.solar_ab_mag``: 4.81 in
  Bessell V, as Willmer 2018, ApJS 236, 47).
- **Dust.** Magnitudes and colours are those of the fitted model *with* its fitted A_V (the
  rest-frame light as emitted through the dust, the UVJ convention); M/L_V and L_V are
  intrinsic (the dust-free model at the same age and Z), as stellar M/L ratios are quoted.
- **Two mass routes** (living mass, BC03's M*_liv): the SED scale (the fit's mass scale over
  all its bands) and M/L_V x L_V, the route of the SMACS0723 intracluster study
  (docs/methods.md): L_V from the one detected band whose pivot wavelength / (1 + z) is nearest
  rest-frame V, k-corrected with the best-fit model: L_V = f_b / m_b x L_V,model, with m_b the
  model's observed flux in band b per Msun formed (the luminosity distance of
  :data:`catalog.constants.COSMOLOGY` and the (1 + z) are in m_b). Both routes agree at a
  noise-free grid node; they differ by the residual of band b otherwise. Neither is corrected
  for magnification (as ``fit_posteriors``; cluster members have mu = 1, background sources
  divide L_V and masses by |mu|, as the ``fit_results`` view does).
"""

from __future__ import annotations

import functools
import json
import warnings

import numpy as np

from catalog.sed.grids import SSPGrid, log_age_weights
from catalog.sed.library import filter_curve, load_bc03
from catalog.sed.synthetic_photometry import interpolate_in_log_z, ssp_band_fluxes

#: The rest-frame filters: column key -> astro-sedpy name.
REST_BANDS: dict[str, str] = {
    "U": "bessell_U",
    "B": "bessell_B",
    "V": "bessell_V",
    "I": "bessell_I",
    "J": "twomass_J",
    "sdss_u": "sdss_u0",
    "sdss_r": "sdss_r0",
}
#: 10 pc in cm (IAU 2012 au; pc = 648000 / pi au).
TEN_PC_CM = 10 * 648000 / np.pi * 1.495978707e13
#: AB magnitude of 1 nJy (3631 Jy zero point).
AB_NJY = 31.4
#: The colours stored (key -> (blue, red, system)).
COLORS: dict[str, tuple[str, str, str]] = {
    "uv_ab": ("U", "V", "ab"),
    "vj_ab": ("V", "J", "ab"),
    "ur_ab": ("sdss_u", "sdss_r", "ab"),
    "rj_ab": ("sdss_r", "J", "ab"),
    "bi_vega": ("B", "I", "vega"),
    "vi_vega": ("V", "I", "vega"),
}


@functools.cache
def ab_minus_vega() -> dict[str, float]:
    """m_AB - m_Vega per rest-frame band (:data:`REST_BANDS` keys), from astro-sedpy's Vega."""
    return {k: -float(filter_curve(n).ab_to_vega) for k, n in REST_BANDS.items()}


@functools.cache
def sun_abs_mag_ab() -> dict[str, float]:
    """AB absolute magnitude of the Sun per rest-frame band (sedpy's Kurucz 1993 spectrum)."""
    return {k: float(filter_curve(n).solar_ab_mag) for k, n in REST_BANDS.items()}


def _age_fluxes(grid: SSPGrid, names, av, nebular, log_u) -> np.ndarray:
    """(7 BC03 Z, n_age, n_av, n_band) fluxes at 10 pc, nJy per Msun formed, on the grid's ages."""
    bc = load_bc03()
    raw = bc["age_yr"] / 1e9
    kw = {"igm": False, "nebular": nebular, "log_u": log_u, "distance_cm": TEN_PC_CM}
    if grid.spec.get("age_step_gyr") is None:  # raw BC03 ages: the nodes themselves
        idx = np.array([int(np.argmin(np.abs(raw - a))) for a in grid.age_gyr])
        return ssp_band_fluxes(0.0, names, idx, av, **kw)
    i_lo, w = log_age_weights(grid.age_gyr)
    need = np.unique(np.concatenate([i_lo, i_lo + 1]))
    f = ssp_band_fluxes(0.0, names, need, av, **kw)
    lo, hi = np.searchsorted(need, i_lo), np.searchsorted(need, i_lo + 1)
    wf = w[None, :, None, None]
    return f[:, lo] * (1 - wf) + f[:, hi] * wf


_CACHE: dict[str, dict] = {}
_CACHE_SIZE = 16


def restframe_table(grid: SSPGrid) -> dict:
    """The rest-frame table of a grid (cached: the 16 newest age, Z, A_V and nebular settings).

    Returns
    -------
    dict
        ``abs_mag_ab`` (n_models, 7) AB absolute magnitudes per Msun formed of each model with its
        A_V, in :data:`REST_BANDS` order and the C order of :meth:`SSPGrid.flat`; ``lv_per_msun``
        (n_models,) intrinsic (A_V = 0) L_V / L_V,sun per Msun formed; ``living`` (n_models,)
        living fraction.
    """
    neb = grid.spec.get("nebular") or {}
    # what the table depends on (not z or the observed bands); the newest few are kept
    key = json.dumps(
        [
            np.round(grid.age_gyr, 9).tolist(),
            grid.spec.get("age_step_gyr") is None,
            grid.spec["metallicities_zsun"],
            grid.av.tolist(),
            neb,
        ],
        default=str,
    )
    if key in _CACHE:
        return _CACHE[key]
    names = list(REST_BANDS.values())
    flux = _age_fluxes(grid, names, grid.av, bool(neb), neb.get("log_u", -3.0))
    z_want = np.asarray(grid.spec["metallicities_zsun"], float)
    flux = np.moveaxis(interpolate_in_log_z(flux, z_want, axis=0), 0, 1)  # (a, Z, v, b)
    n_age, n_z, n_av = grid.shape
    with np.errstate(divide="ignore"):
        mags = AB_NJY - 2.5 * np.log10(flux.reshape(n_age * n_z * n_av, len(names)))
    v = list(REST_BANDS).index("V")
    mv0 = AB_NJY - 2.5 * np.log10(flux[:, :, :1, v])  # dust-free (A_V = 0 is the first node)
    lv = 10 ** (-0.4 * (mv0 - sun_abs_mag_ab()["V"]))
    lv = np.broadcast_to(lv, (n_age, n_z, n_av)).ravel()
    live = np.broadcast_to(grid.living_fraction[:, :, None], (n_age, n_z, n_av)).ravel()
    out = {"abs_mag_ab": mags, "lv_per_msun": lv.copy(), "living": live.copy()}
    while len(_CACHE) >= _CACHE_SIZE:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = out
    return out


def model_index(grid: SSPGrid, age_gyr, log_z, av) -> np.ndarray:
    """Flat model indices (C order over age, Z, A_V) of the nodes nearest the given parameters
    (age in age-index coordinates, the fit's cells); -1 where a parameter is NaN.
    """
    age_gyr, log_z, av = (np.asarray(x, float) for x in (age_gyr, log_z, av))
    bad = ~(np.isfinite(age_gyr) & np.isfinite(log_z) & np.isfinite(av))
    n_age, n_z, n_av = grid.shape

    def nearest(x, coord):
        if coord.size == 1:
            return np.zeros(x.shape, int)
        return np.clip(np.rint(np.interp(np.nan_to_num(x), coord, np.arange(coord.size))), 0, coord.size - 1)

    ia = nearest(age_gyr, grid.age_gyr).astype(int)
    iz = nearest(log_z, grid.log_z_zsun).astype(int)
    iv = nearest(av, grid.av).astype(int)
    return np.where(bad, -1, (ia * n_z + iz) * n_av + iv)


def nearest_v_band(bands, z: float, usable: np.ndarray) -> np.ndarray:
    """Per object, the band (index into ``bands``, astro-sedpy names) whose pivot / (1 + z) is
    nearest the Bessell V pivot among its ``usable`` (n_obj, n_band) bands; -1 without one.
    """
    v_pivot = float(filter_curve(REST_BANDS["V"]).wave_pivot)
    rest = np.array([filter_curve(b).wave_pivot for b in bands]) / (1 + z)
    dist = np.where(usable, np.abs(np.log(rest / v_pivot))[None, :], np.inf)
    best = np.argmin(dist, axis=1)
    return np.where(np.isfinite(dist.min(axis=1)), best, -1)


def _from_models(table: dict, idx: np.ndarray, log_mass_formed: np.ndarray) -> dict:
    """Absolute AB/Vega magnitudes, colours and M/L_V at flat model indices ``idx``, any shape."""
    ok = idx >= 0
    i = np.where(ok, idx, 0)
    return _columns(
        np.where(ok[..., None], table["abs_mag_ab"][i], np.nan),
        np.where(ok, table["lv_per_msun"][i], np.nan),
        table["living"][i],
        log_mass_formed,
    )


def _columns(mag_per_msun, lv_per_msun, living, log_mass_formed) -> dict:
    """The magnitude, colour and M/L_V columns from per-Msun-formed magnitudes (..., 7)."""
    lm = np.asarray(log_mass_formed, float)
    out = {}
    offs = ab_minus_vega()
    for k, key in enumerate(REST_BANDS):
        ab = mag_per_msun[..., k] - 2.5 * lm
        out[f"abs_{key}_ab"] = ab
        out[f"abs_{key}_vega"] = ab - offs[key]
    for name, (b, r, system) in COLORS.items():
        out[f"color_{name}"] = out[f"abs_{b}_{system}"] - out[f"abs_{r}_{system}"]
    out["ml_v"] = living / lv_per_msun
    return out


def _mass_routes(out: dict, bands, z, flux, usable, model_flux, lv_per_msun, log_mass_living) -> dict:
    """L_V from the band nearest rest-frame V and the two living-mass routes, into ``out``."""
    band = nearest_v_band(bands, z, np.atleast_2d(np.asarray(usable, bool)) & np.isfinite(flux))
    rows = np.arange(flux.shape[0])
    ok = (band >= 0) & np.isfinite(lv_per_msun)
    b = np.where(ok, band, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = flux[rows, b] / model_flux[rows, b]  # Msun formed from band b alone
        out["log_lv"] = np.where(ok & (scale > 0), np.log10(scale * lv_per_msun), np.nan)
        out["log_mass_living_ml"] = np.log10(out["ml_v"]) + out["log_lv"]
    out["lv_band_index"] = np.where(band >= 0, band, -1)
    out["log_mass_living_sed"] = np.asarray(log_mass_living, float)
    for key in PERCENTILE_KEYS:
        out.setdefault(f"{key}_p16", np.full(rows.size, np.nan))
        out.setdefault(f"{key}_p84", np.full(rows.size, np.nan))
    return out


#: Quantities given with 16th and 84th percentiles from the posterior draws.
PERCENTILE_KEYS = ("ml_v", "abs_V_ab", "color_uv_ab", "color_vj_ab", "color_bi_vega", "color_vi_vega")


def _per_model(table: dict) -> dict:
    """The mass-independent :data:`PERCENTILE_KEYS` per grid model, and M_V per Msun formed."""
    mags = table["abs_mag_ab"]
    keys = list(REST_BANDS)
    offs = ab_minus_vega()
    out = {"ml_v": table["living"] / table["lv_per_msun"], "abs_V_ab": mags[:, keys.index("V")]}
    for name, (bl, rd, system) in COLORS.items():
        c = mags[:, keys.index(bl)] - mags[:, keys.index(rd)]
        out[f"color_{name}"] = c - (offs[bl] - offs[rd]) if system == "vega" else c
    return out


def _draw_percentiles(grid: SSPGrid, table: dict, samples: dict, chunk: int = 4096) -> dict:
    """16th and 84th percentiles of :data:`PERCENTILE_KEYS` over the posterior draws (each at its
    nearest grid node; M_V with the draw's formed mass), objects in chunks.
    """
    per = _per_model(table)
    n_obj = samples["age_gyr"].shape[0]
    out = {f"{k}_{p}": np.full(n_obj, np.nan) for k in PERCENTILE_KEYS for p in ("p16", "p84")}
    for lo in range(0, n_obj, chunk):
        sl = slice(lo, lo + chunk)
        sidx = model_index(grid, samples["age_gyr"][sl], samples["log_z"][sl], samples["av"][sl])
        bad = sidx < 0
        i = np.where(bad, 0, sidx)
        for key in PERCENTILE_KEYS:
            d = per[key][i]
            if key == "abs_V_ab":
                d = d - 2.5 * np.asarray(samples["log_mass_formed"][sl], float)
            d[bad] = np.nan
            full = np.isfinite(d).all(axis=1)  # the usual case: np.percentile, ~10x nanpercentile
            part = ~full & np.isfinite(d).any(axis=1)
            for rows, fn in ((full, np.percentile), (part, np.nanpercentile)):
                if rows.any():
                    q = fn(d[rows], [16, 84], axis=1)
                    out[f"{key}_p16"][sl][rows], out[f"{key}_p84"][sl][rows] = q
    return out


def restframe_quantities(grid: SSPGrid, flux_njy, usable, best: dict, samples: dict | None = None) -> dict:
    """Rest-frame quantities of fitted objects: columns of ``restframe_results``.

    Parameters
    ----------
    grid : SSPGrid
        The grid of the fit.
    flux_njy : array_like
        (n_obj, n_band) the fluxes fitted, in the grid's band order.
    usable : array_like of bool
        (n_obj, n_band) detections (the bands that can give L_V).
    best : dict
        The fit's best-fit parameters (``FitResult.best_fit_params``: age_gyr, log_z, av,
        log_mass_formed, log_mass_living).
    samples : dict, optional
        Posterior draws (``FitResult.samples``), each (n_obj, n_draw): the 16th and 84th
        percentiles of :data:`PERCENTILE_KEYS` (NaN without draws).

    Returns
    -------
    dict
        Column -> (n_obj,) array: ``abs_<band>_ab`` and ``abs_<band>_vega``, ``color_*``,
        ``ml_v`` (living mass / intrinsic L_V, solar units), ``log_lv``, ``lv_band_index``,
        ``log_mass_living_sed``, ``log_mass_living_ml`` and ``<key>_p16`` / ``<key>_p84``.
    """
    table = restframe_table(grid)
    flux = np.atleast_2d(np.asarray(flux_njy, float))
    idx = model_index(grid, best["age_gyr"], best["log_z"], best["av"])
    out = _from_models(table, idx, np.asarray(best["log_mass_formed"], float))
    models, _ = grid.flat()
    i = np.where(idx >= 0, idx, 0)
    lv = np.where(idx >= 0, table["lv_per_msun"][i], np.nan)
    if samples:
        out.update(_draw_percentiles(grid, table, samples))
    return _mass_routes(out, grid.bands, grid.z, flux, usable, models[i], lv, best["log_mass_living"])


def history_restframe_quantities(grid: SSPGrid, atlas, flux_njy, usable, result) -> dict:
    """:func:`restframe_quantities` of non-parametric fits: at each object's minimum-chi2 atlas
    history (``result.best_index``), its rest-frame photometry the sum over the SSP age bins
    of the grid's rest-frame table (as :func:`catalog.sed.nonparametric.history_photometry`),
    with the history's A_V for the magnitudes and A_V = 0 for L_V. No percentiles (NaN).
    """
    from dataclasses import replace

    from catalog.sed import nonparametric as npm

    table = restframe_table(grid)
    flux = np.atleast_2d(np.asarray(flux_njy, float))
    idx = np.asarray(result.best_index)
    ok = idx >= 0
    i = np.where(ok, idx, 0)
    n_age, n_z, n_av = grid.shape
    rf_flux = 10 ** (-0.4 * (table["abs_mag_ab"] - AB_NJY)).reshape(n_age, n_z, n_av, len(REST_BANDS))
    rf_grid = replace(grid, flux_njy=rf_flux, bands=list(REST_BANDS.values()))
    t_edges = atlas.t_obs_gyr - npm.age_bin_edges(grid.age_gyr, atlas.t_obs_gyr)
    c = atlas.cumulative_mass(i, t_edges)
    mass_bins = c[:, :-1] - c[:, 1:]
    f_av, living = npm.history_photometry(rf_grid, mass_bins, atlas.log_z[i], atlas.av[i])
    f_0, _ = npm.history_photometry(rf_grid, mass_bins, atlas.log_z[i], np.zeros(i.size))
    v = list(REST_BANDS).index("V")
    with np.errstate(divide="ignore", invalid="ignore"):
        mags = np.where(ok[:, None], AB_NJY - 2.5 * np.log10(f_av), np.nan)
        lv = np.where(ok, 10 ** (-0.4 * (AB_NJY - 2.5 * np.log10(f_0[:, v]) - sun_abs_mag_ab()["V"])), np.nan)
    out = _columns(mags, lv, living, np.asarray(result.best_fit["log_mass_formed"], float))
    model = atlas.flux_njy[i]
    return _mass_routes(out, grid.bands, grid.z, flux, usable, model, lv, result.best_fit["log_mass_living"])


@functools.cache
def _bc03_restframe_fluxes(log_z: float, av: float, nebular: bool, log_u: float) -> np.ndarray:
    """(n_BC03_age, 2, 7) rest-frame fluxes at 10 pc, nJy per Msun formed, of every BC03 age at
    log10(Z/Zsun) ``log_z``: with Calzetti A_V ``av`` ([:, 0]) and dust-free ([:, 1]).
    """
    bc = load_bc03()
    idx = np.arange(bc["age_yr"].size)
    kw = {"igm": False, "nebular": nebular, "log_u": log_u, "distance_cm": TEN_PC_CM}
    f7 = ssp_band_fluxes(0.0, list(REST_BANDS.values()), idx, np.array([av, 0.0]), **kw)
    return interpolate_in_log_z(f7, np.array([10.0**log_z]), axis=0)[0]


def _template_light(mass_tpl, rest_dust, rest_free, living_fraction) -> tuple:
    """Per-Msun-formed magnitudes (..., 7), L_V / L_V,sun per Msun formed, living fraction and
    log formed mass of template masses (..., n_templates); NaN where no mass formed.
    """
    formed = mass_tpl.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        per = 1 / np.where(formed > 0, formed, np.nan)
        mags = AB_NJY - 2.5 * np.log10((mass_tpl @ rest_dust) * per[..., None])
        mv0 = AB_NJY - 2.5 * np.log10((mass_tpl @ rest_free[:, list(REST_BANDS).index("V")]) * per)
        living = (mass_tpl @ living_fraction) * per
        return mags, 10 ** (-0.4 * (mv0 - sun_abs_mag_ab()["V"])), living, np.log10(1 / per)


def sfh_restframe_quantities(templates: dict, flux_njy, usable, fit: dict) -> dict:
    """:func:`restframe_quantities` of SEDz* fits (:func:`catalog.sed.histories.fit_sfh`).

    The rest-frame light of each template is its ``age_weights`` times the BC03 rest-frame fluxes
    at the templates' metallicity (with their A_V for the magnitudes, A_V = 0 for L_V, and their
    nebular emission); an object's is the best-fit template masses times those. The 16th and 84th
    percentiles of :data:`PERCENTILE_KEYS` are over the perturbed refits
    (``mass_template_draws``), as the fit's own bands.

    Parameters
    ----------
    templates : dict
        From :func:`catalog.sed.histories.sfh_templates`, in the band order of ``flux_njy``.
    flux_njy : array_like
        (n_obj, n_band) the fluxes fitted, nJy.
    usable : array_like of bool
        (n_obj, n_band) detections (the bands that can give L_V).
    fit : dict
        :func:`catalog.sed.histories.fit_sfh` of these objects (2-D arrays: ``mass_template``
        (n_obj, n_templates), ``mass_template_draws`` (n_obj, n_perturb, n_templates),
        ``mass_living``).

    Returns
    -------
    dict
        The columns of :func:`restframe_quantities`.
    """
    rest = _bc03_restframe_fluxes(
        float(templates["log_z"]),
        float(templates["av"]),
        bool(templates["nebular"]),
        float(templates["log_u"]),
    )
    w = np.asarray(templates["age_weights"], float)
    rest_dust, rest_free = w @ rest[:, 0], w @ rest[:, 1]
    live_frac = np.asarray(templates["living_fraction"], float)
    mass = np.atleast_2d(np.asarray(fit["mass_template"], float))
    mags, lv, living, log_formed = _template_light(mass, rest_dust, rest_free, live_frac)
    out = _columns(mags, lv, living, log_formed)
    draws = fit.get("mass_template_draws")
    if draws is not None and np.size(draws):
        draws = np.asarray(draws, float).reshape(mass.shape[0], -1, mass.shape[1])
        n_obj, n_draw = draws.shape[:2]
        mags_d, lv_d, living_d, formed_d = _template_light(
            draws.reshape(n_obj * n_draw, -1), rest_dust, rest_free, live_frac
        )
        per = _per_model({"abs_mag_ab": mags_d, "lv_per_msun": lv_d, "living": living_d})
        per["abs_V_ab"] = per["abs_V_ab"] - 2.5 * formed_d
        for key in PERCENTILE_KEYS:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: no mass formed
                lo, hi = np.nanpercentile(per[key].reshape(n_obj, n_draw), [16, 84], axis=-1)
            out[f"{key}_p16"], out[f"{key}_p84"] = lo, hi
    flux = np.atleast_2d(np.asarray(flux_njy, float))
    with np.errstate(invalid="ignore", divide="ignore"):
        model = (mass @ np.asarray(templates["flux_njy"], float)) / mass.sum(axis=1, keepdims=True)
        log_living = np.log10(np.asarray(fit["mass_living"], float).reshape(-1))
    return _mass_routes(out, templates["bands"], templates["z_obs"], flux, usable, model, lv, log_living)
