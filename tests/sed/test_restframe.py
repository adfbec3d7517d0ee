"""Rest-frame quantities: absolute magnitudes against sedpy, AB-Vega offsets, M/L_V, the two
mass routes and the lake rows of the fits."""

from __future__ import annotations

import numpy as np
import pytest
from sedpy import observate

from catalog import sed as sps
from catalog.sed import GridSpec, build_grid
from catalog.sed import restframe as rf
from catalog.sed.attenuation import calzetti_attenuation
from catalog.sed.library import L_SUN_ERG_S, load_bc03
from catalog.sed.recipes import get_recipe

BANDS = [f"jwst_{b}" for b in ("f090w", "f150w", "f200w", "f277w", "f356w", "f444w")]


@pytest.fixture(scope="module")
def raw_grid():
    """Raw BC03 ages, solar and 1/50 solar, A_V 0 and 0.5."""
    return build_grid(0.39, BANDS, GridSpec(av_max=0.5, n_av=2, metallicities=(0.02, 1.0)))


@pytest.mark.parametrize("age_gyr", [0.1, 1.0, 10.0])
@pytest.mark.parametrize("av", [0.0, 0.5])
def test_absolute_magnitudes_match_sedpy_on_the_bc03_spectrum(raw_grid, age_gyr, av):
    """The table's AB magnitudes per Msun formed are sedpy's getSED of the BC03 spectrum at
    10 pc (with the Calzetti attenuation of the model) to 0.01 mag."""
    bc = load_bc03()
    ia = int(np.argmin(np.abs(raw_grid.age_gyr - age_gyr)))
    j = int(np.argmin(np.abs(bc["age_yr"] / 1e9 - raw_grid.age_gyr[ia])))
    iz, iv = 1, int(np.argmin(np.abs(raw_grid.av - av)))
    wave = bc["wave_angstrom"]
    d = rf.TEN_PC_CM
    flam = bc["spectra"][4, j] * L_SUN_ERG_S / (4 * np.pi * d**2)  # HDU 4: Z = Zsun
    flam = flam * 10 ** (-0.4 * raw_grid.av[iv] * calzetti_attenuation(wave))
    ref = observate.getSED(wave, flam, observate.load_filters(list(rf.REST_BANDS.values())))
    n_z, n_av = raw_grid.shape[1:]
    ours = rf.restframe_table(raw_grid)["abs_mag_ab"][(ia * n_z + iz) * n_av + iv]
    np.testing.assert_allclose(ours, ref, atol=0.01)


def test_ab_minus_vega_offsets_match_published_values():
    """m_AB - m_Vega against Blanton & Roweis (2007, AJ 133, 734, Table 1) to 0.05 mag."""
    published = {"U": 0.79, "B": -0.09, "V": 0.02, "I": 0.45, "J": 0.91, "sdss_u": 0.91, "sdss_r": 0.16}
    got = rf.ab_minus_vega()
    for k, v in published.items():
        assert got[k] == pytest.approx(v, abs=0.05), k
    # and the Sun: M_V = 4.81 (Vega; Willmer 2018, ApJS 236, 47)
    assert rf.sun_abs_mag_ab()["V"] - got["V"] == pytest.approx(4.81, abs=0.03)


def test_ml_v_of_an_old_solar_chabrier_ssp():
    """M_living / L_V of a 10 Gyr solar BC03 Chabrier SSP is ~3 (BC03 / Maraston 2005 give 2.5-3.5
    for 10-12 Gyr solar Chabrier/Kroupa populations, remnants included); it rises with age and Z.
    """
    g = build_grid(
        0.39,
        BANDS[:2],
        GridSpec(
            av_max=0, n_av=1, metallicities=(0.02, 1.0), age_min_gyr=1.0, age_max_gyr=11.0, age_step_gyr=1.0
        ),
    )
    t = rf.restframe_table(g)
    ml = (t["living"] / t["lv_per_msun"]).reshape(g.shape[:2])
    i10 = int(np.argmin(np.abs(g.age_gyr - 10.0)))
    assert 2.5 < ml[i10, 1] < 3.5
    assert ml[i10, 0] < ml[i10, 1]
    assert np.all(np.diff(ml[:, 1]) > 0)


@pytest.fixture(scope="module")
def smacs_grid():
    return build_grid(0.39, BANDS, get_recipe("smacs0723-ssp", "ssp").grid_spec())


def test_the_two_mass_routes_agree_on_noise_free_objects_at_grid_nodes(smacs_grid):
    g = smacs_grid
    models, params = g.flat()
    pick = np.array([5, 60, 100, len(models) - 1])
    log_m = np.array([5.0, 6.0, 6.5, 7.0])
    flux = models[pick] * 10 ** log_m[:, None]
    err = 0.01 * flux
    res = sps.fit_ssp(g, flux, err, error_floor=0.0, n_samples=20, rng=np.random.default_rng(1))
    assert np.array_equal(
        rf.model_index(g, *(res.best_fit_params[k] for k in ("age_gyr", "log_z", "av"))), pick
    )
    q = rf.restframe_quantities(g, flux, np.ones_like(flux, bool), res.best_fit_params, res.samples)
    live = g.living_fraction.reshape(-1)[pick]
    np.testing.assert_allclose(q["log_mass_living_sed"], log_m + np.log10(live), atol=1e-4)
    np.testing.assert_allclose(q["log_mass_living_ml"], q["log_mass_living_sed"], atol=1e-4)
    t = rf.restframe_table(g)
    np.testing.assert_allclose(q["abs_V_ab"], t["abs_mag_ab"][pick, 2] - 2.5 * log_m, atol=1e-4)
    np.testing.assert_allclose(q["color_bi_vega"], q["abs_B_vega"] - q["abs_I_vega"])
    # at z = 0.39 rest-frame V (0.548 um) is observed nearest by F090W (0.90 / 1.39 = 0.65 um)
    assert np.all(q["lv_band_index"] == 0)
    assert np.all(q["ml_v_p16"] <= q["ml_v_p84"])


def test_an_object_without_detections_gets_null_rest_frame_quantities(smacs_grid):
    g = smacs_grid
    flux = np.full((1, len(BANDS)), np.nan)
    res = sps.fit_ssp(g, flux, flux)
    q = rf.restframe_quantities(g, flux, np.zeros_like(flux, bool), res.best_fit_params)
    assert q["lv_band_index"][0] == -1
    assert np.isnan(q["log_lv"][0]) and np.isnan(q["abs_V_ab"][0]) and np.isnan(q["log_mass_living_ml"][0])


def test_nonparametric_best_histories_get_both_mass_routes_and_their_rest_frame_light():
    from catalog.sed import nonparametric as npm

    g = build_grid(0.39, BANDS, GridSpec(av_max=0.5, n_av=3))
    atlas = npm.build_atlas(g, 300, seed=3)
    pick = np.array([7, 123])
    flux = atlas.flux_njy[pick] * 1e6
    res = npm.fit_atlas(atlas, flux, 0.01 * flux, error_floor=0.0, n_draws=20, rng=1)
    assert np.array_equal(res.best_index, pick)
    q = rf.history_restframe_quantities(g, atlas, flux, np.ones_like(flux, bool), res)
    np.testing.assert_allclose(q["log_mass_living_ml"], q["log_mass_living_sed"], atol=1e-3)
    np.testing.assert_allclose(q["log_mass_living_sed"], 6 + np.log10(atlas.living_fraction[pick]), atol=1e-3)
    assert np.all(np.isfinite(q["abs_V_ab"])) and np.all(q["ml_v"] > 0)
    # a history's light is the sum of its SSPs': between the youngest and oldest SSP's M/L_V
    t = rf.restframe_table(g)
    ml = t["living"] / t["lv_per_msun"]
    assert np.all((q["ml_v"] > ml.min()) & (q["ml_v"] < ml.max()))


@pytest.mark.parametrize("av", [0.0, 0.5])
def test_a_sedz_burst_has_the_rest_frame_light_of_the_ssp_of_its_age(raw_grid, av):
    """A SEDz* fit that puts all its mass in the first epoch's 10 Myr burst: M/L_V and colours
    lie between those of the two BC03 SSPs that bracket the burst's age (same Z, same A_V), the
    two mass routes agree (noise-free), and the perturbed refits give a 16-84 band around them.
    """
    from catalog.sed import histories as h

    t = h.sfh_templates(1.4, BANDS, (12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2), log_z=0.0, av=av)
    mass = np.zeros(len(t["kind"]))
    mass[0] = 1e6
    flux = (mass @ t["flux_njy"])[None]
    fit = h.fit_sfh(t, flux, 0.05 * flux, n_perturb=21, rng=0, error_floor=0.0)
    q = rf.sfh_restframe_quantities(t, flux, np.ones_like(flux, bool), fit)
    age = t["t_obs_gyr"] - t["t_start_gyr"][0] - 0.005  # the burst's mean age, Gyr
    tab = rf.restframe_table(raw_grid)
    n_age, n_z, n_av = raw_grid.shape
    j = int(np.searchsorted(raw_grid.age_gyr, age))
    nodes = [(ia * n_z + 1) * n_av + (1 if av else 0) for ia in (j - 1, j)]  # solar Z
    ml = tab["living"][nodes] / tab["lv_per_msun"][nodes]
    assert min(ml) * 0.995 <= q["ml_v"][0] <= max(ml) * 1.005
    keys = list(rf.REST_BANDS)
    for b, r in (("U", "V"), ("V", "J"), ("B", "I")):
        c = tab["abs_mag_ab"][nodes, keys.index(b)] - tab["abs_mag_ab"][nodes, keys.index(r)]
        got = q[f"abs_{b}_ab"][0] - q[f"abs_{r}_ab"][0]
        assert min(c) - 0.01 <= got <= max(c) + 0.01
    np.testing.assert_allclose(q["log_mass_living_ml"], q["log_mass_living_sed"], atol=1e-3)
    np.testing.assert_allclose(q["log_mass_living_sed"], np.log10(fit["mass_living"]), atol=1e-9)
    assert q["ml_v_p16"][0] < q["ml_v_p84"][0] and q["abs_V_ab_p16"][0] < q["abs_V_ab_p84"][0]
