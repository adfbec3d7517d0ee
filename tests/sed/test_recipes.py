"""Grid options and fit recipes: stable grid ids, the age grid, the age-of-the-Universe bound,
and recovery of simulated SSPs through each recipe's grid and prior."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from catalog import sed as sps
from catalog.errors import GccatError
from catalog.runs.fits import grid_id
from catalog.sed import GridSpec, build_grid
from catalog.sed.grids import DEFAULT_MIN_AGE_NO_NEBULAR_GYR
from catalog.sed.library import cosmology, load_bc03
from catalog.sed.recipes import RECIPES, get_recipe, resolve_sfh, resolve_ssp

BANDS = [f"jwst_{b}" for b in ("f090w", "f150w", "f200w", "f277w", "f356w", "f444w")]
TWO = ["jwst_f090w", "jwst_f150w"]

# Ids of grids written before the age grid, the universe bound and the IMF were options
# (computed with the code of that time): a spec that built a grid then must find it now.
OLD_IDS = [
    (GridSpec(nebular=True, log_u=-2.0), "8992efd43e4e8075"),
    (GridSpec(nebular=True), "4328ebc5b2f40d60"),
    (GridSpec(age_min_gyr=0.5, age_max_gyr=11, metallicities=(0.02, 1.0)), "ea6c5c8cbdb1d822"),
]
#: The old default grid (ages from 0.1 Myr without nebular emission) had this id; the new
#: default (from 10 Myr) is another grid and must not reuse it.
OLD_DEFAULT_ID = "3a987c713c5333b1"


@pytest.mark.parametrize(("spec", "gid"), OLD_IDS, ids=["nebular-logu", "nebular", "age-range"])
def test_grid_ids_of_old_specs_are_unchanged(spec, gid):
    assert grid_id(0.39, TWO, spec.checked()) == gid


def test_the_new_default_grid_has_a_new_id():
    spec = GridSpec().checked()
    assert spec.age_min_gyr == DEFAULT_MIN_AGE_NO_NEBULAR_GYR == 0.01
    assert grid_id(0.39, TWO, spec) != OLD_DEFAULT_ID
    # with nebular emission the default keeps every BC03 age above zero, as before
    assert GridSpec(nebular=True).checked().age_min_gyr is None


NEW_FIELDS = {"age_step_gyr": 0.5, "universe_bound": False, "imf": "chabrier"}


@pytest.mark.parametrize("name", ["age_step_gyr", "universe_bound", "imf"])
def test_new_fields_enter_the_id_only_away_from_their_default(name):
    base = GridSpec(age_min_gyr=0.5, age_max_gyr=11.0).checked()
    assert name not in base.to_dict()
    default = next(f.default for f in dataclasses.fields(GridSpec) if f.name == name)
    value = NEW_FIELDS[name]
    other = dataclasses.replace(base, **{name: value}).checked()
    if value == default:  # imf: its only value is the default
        assert other.to_dict() == base.to_dict()
    else:
        assert other.to_dict()[name] == value
        assert grid_id(0.39, TWO, other) != grid_id(0.39, TWO, base)
    assert base.resolved()[name] == default  # fit_runs.config records every field


def test_av_max_zero_is_one_dust_free_model():
    assert GridSpec(av_max=0).checked().n_av == 1
    assert GridSpec(av_max=0, n_av=11).checked() == GridSpec(av_max=0, n_av=1).checked()


def test_linear_age_grid_interpolates_bc03_in_log_age():
    spec = GridSpec(
        age_min_gyr=0.5, age_max_gyr=11, age_step_gyr=0.5, universe_bound=False, av_max=0
    ).checked()
    g = build_grid(0.39, BANDS, spec)
    np.testing.assert_allclose(g.age_gyr, np.arange(1, 23) * 0.5)
    assert g.spec["ages"].startswith("linear") and g.spec["universe_bound"] is False
    raw = build_grid(
        0.39, BANDS, GridSpec(av_max=0, age_min_gyr=0.4, age_max_gyr=12, universe_bound=False).checked()
    )
    # at a raw BC03 age the interpolation is that age's model; between, it lies between
    for k, a in enumerate(g.age_gyr):
        j = np.searchsorted(raw.age_gyr, a)
        if np.isclose(raw.age_gyr[j], a, rtol=1e-6):
            np.testing.assert_allclose(g.flux_njy[k], raw.flux_njy[j], rtol=1e-6)
        else:
            lo, hi = raw.flux_njy[j - 1], raw.flux_njy[j]
            assert np.all(g.flux_njy[k] >= np.minimum(lo, hi) * (1 - 1e-9))
            assert np.all(g.flux_njy[k] <= np.maximum(lo, hi) * (1 + 1e-9))
    assert np.all((g.living_fraction > 0) & (g.living_fraction <= 1))


@pytest.mark.parametrize(
    "spec",
    [GridSpec(), GridSpec(age_min_gyr=0.1, age_max_gyr=11, age_step_gyr=0.1)],
    ids=["raw-ages", "linear-ages"],
)
def test_the_age_of_the_universe_bounds_the_ages_at_z6(spec):
    t_univ = float(cosmology().age(6.0).to_value("Gyr"))
    g = build_grid(6.0, ["jwst_f150w", "jwst_f444w"], spec.checked())
    assert g.age_gyr.max() <= t_univ < 1.0 and g.spec["age_universe_gyr"] == pytest.approx(t_univ)
    off = build_grid(
        6.0, ["jwst_f150w", "jwst_f444w"], dataclasses.replace(spec, universe_bound=False).checked()
    )
    assert off.age_gyr.max() > 10


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"age_step_gyr": 0.5}, "--age-step needs --age-range"),
        (
            {"age_min_gyr": 0.5, "age_max_gyr": 11, "age_step_gyr": 0},
            "--age-step (Gyr) must be in [0.001, 20]",
        ),
        ({"age_min_gyr": 2, "age_max_gyr": 1}, "--age-range: MIN"),
        ({"age_max_gyr": 30}, "--age-range MAX (Gyr) must be in (0, 20]"),
        ({"imf": "salpeter"}, "--imf must be one of chabrier"),
        ({"log_u": 1}, "--log-u must be in [-4, 0]"),
        ({"universe_bound": "yes"}, "universe_bound must be True or False"),
    ],
)
def test_bad_grid_options_are_one_line_errors(options, needle):
    with pytest.raises(GccatError, match=None) as exc:
        GridSpec.from_options(None, **options)
    assert needle in str(exc.value) and "\n" not in str(exc.value)


def test_recipes_resolve_and_record_overrides():
    spec, prior, rec = resolve_ssp("smacs0723-ssp")
    assert spec.age_step_gyr == 0.5 and spec.metallicities == (0.005, 0.02, 0.2, 0.4, 1.0, 2.5)
    assert spec.n_av == 1 and not spec.universe_bound and prior == "index"
    assert rec["recipe"] == "smacs0723-ssp" and rec["recipe_overrides"] == {}
    assert "SSP fitting" in rec["recipe_source"] and rec["grid"]["age_max_gyr"] == 11.0
    spec, prior, rec = resolve_ssp("smacs0723-ssp", prior="log-age", metallicities=(0.2, 1.0))
    assert spec.metallicities == (0.2, 1.0) and prior == "log-age"
    assert rec["recipe_overrides"] == {"metallicities": [0.2, 1.0], "prior": "log-age"}
    spec, prior, _ = resolve_ssp("firefly-ssp")
    assert spec.age_min_gyr == 1e-4 and spec.universe_bound and prior == "log-age" and spec.nebular
    opts, rec = resolve_sfh("sedz", n_perturb=5)
    assert opts["epochs_z"] == (12, 11, 10, 9, 8, 7, 6, 5, 4) and opts["n_perturb"] == 5
    assert rec["recipe_overrides"] == {"n_perturb": 5}
    with pytest.raises(GccatError, match="--recipe must be one of smacs0723-ssp"):
        get_recipe("sedz", "ssp")
    assert all(r.source and r.reading for r in RECIPES.values())


# -- recovery of simulated clusters through each recipe --------------------------------------

#: (recipe, redshift of the simulated objects)
SSP_RECIPES = [("smacs0723-ssp", 0.39), ("sparkler-ssp", 1.378), ("firefly-ssp", 8.3)]


@pytest.mark.parametrize(("name", "z"), SSP_RECIPES, ids=[r for r, _ in SSP_RECIPES])
def test_recipe_recovers_simulated_ages(name, z):
    """SSPs drawn from the recipe's own prior on its grid (age, Z, A_V nodes; log mass 6-7),
    observed at S/N 20 in six NIRCam bands, fitted with the recipe: the median age is unbiased
    and the 16-84% interval covers the truth about 68% of the time."""
    spec, prior, _ = resolve_ssp(name)
    grid = build_grid(z, BANDS, spec)
    rng = np.random.default_rng(11)
    n = 400
    w = np.exp(sps.PRIORS[prior](grid)).ravel()
    idx = rng.choice(w.size, size=n, p=w / w.sum())
    ia, iz, iv = np.unravel_index(idx, grid.shape)
    logm = rng.uniform(6, 7, n)
    true = grid.flux_njy[ia, iz, iv] * 10 ** logm[:, None]
    err = true / 20
    obs = true + rng.normal(0, err)
    res = sps.fit_ssp(grid, obs, err, error_floor=0.0, log_prior=sps.PRIORS[prior](grid))
    age = grid.age_gyr[ia]
    p = res.percentiles["age_gyr"]
    cover = np.mean((p[:, 0] <= age) & (age <= p[:, 2]))
    bias = np.median(np.log10(p[:, 1] / age))
    m = res.percentiles["log_mass_formed"]
    m_cover = np.mean((m[:, 0] <= logm) & (logm <= m[:, 2]))
    print(
        f"{name} at z = {z}: age coverage {cover:.2f}, median bias {bias:+.3f} dex; "
        f"mass coverage {m_cover:.2f}"
    )
    assert abs(bias) < 0.05
    assert 0.55 < cover < 0.85
    assert 0.55 < m_cover < 0.85


def test_a_recipe_grid_holds_only_bc03_ages_within_its_range():
    spec, _, _ = resolve_ssp("firefly-ssp")
    g = build_grid(8.3, BANDS, spec)
    ages = load_bc03()["age_yr"] / 1e9
    assert g.age_gyr.min() == pytest.approx(1e-4)
    assert g.age_gyr.max() <= float(cosmology().age(8.3).to_value("Gyr"))
    assert np.all(np.isin(g.age_gyr, ages))


def test_sedz_recipe_recovers_simulated_histories():
    """Galaxies at z = 5 made of one SEDz* template (a 10 Myr burst or constant SF in one epoch;
    log mass 8-9), S/N 20 in eight NIRCam bands, fitted with the sedz recipe: t50 and the mass
    are unbiased. The paper's error bars (percentiles of 21 refits of the photometry perturbed
    by its errors) are narrower than a posterior: they cover the truth ~50% of the time, not 68%."""
    opts, _ = resolve_sfh("sedz")
    bands = [f"jwst_{b}" for b in ("f090w", "f115w", "f150w", "f200w", "f277w", "f356w", "f410m", "f444w")]
    z = 5.0
    tpl = sps.sfh_templates(
        z,
        bands,
        [e for e in opts["epochs_z"] if e > z],
        log_z=float(np.log10(opts["metallicity"])),
        av=opts["av"],
    )
    rng = np.random.default_rng(3)
    n = 120
    k = rng.integers(0, len(tpl["kind"]), n)
    logm = rng.uniform(8, 9, n)
    true = tpl["flux_njy"][k] * 10 ** logm[:, None]
    err = true / 20
    r = sps.fit_sfh(
        tpl, true + rng.normal(0, err), err, n_perturb=opts["n_perturb"], rng=rng, error_floor=0.0
    )
    t0 = tpl["t_start_gyr"][k]
    t1 = np.where(
        tpl["kind"][k] == "burst",
        np.minimum(t0 + tpl["burst_myr"] / 1e3, tpl["t_end_gyr"][k]),
        tpl["t_end_gyr"][k],
    )
    t50 = (t0 + t1) / 2
    bias = np.median(r["t50_gyr"] - t50)
    cover = np.mean((r["t50_gyr_p16"] <= t50) & (t50 <= r["t50_gyr_p84"]))
    m_bias = np.median(np.log10(r["mass_total"]) - logm)
    print(
        f"sedz at z = {z}: t50 bias {bias * 1e3:+.1f} Myr, coverage {cover:.2f}; mass bias {m_bias:+.3f} dex"
    )
    assert abs(bias) < 0.05 and abs(m_bias) < 0.05
    assert 0.35 < cover < 0.85
