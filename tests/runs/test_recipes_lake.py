"""Recipes from the CLI on the bundled SMACS0723 table and on simulated clusters: what runs,
what fit_runs records, the chi2 map of the SMACS0723 recipe."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from catalog.lake import Lake
from catalog.queries.connection import connect
from catalog.runs.fits import load_or_build_grid
from catalog.sed.recipes import RECIPES, resolve_ssp
from ingest.catalog import ingest_catalog, ingest_fields

from ..conftest import FIELDS, SMACS

BANDS = ["F090W", "F150W", "F200W", "F277W", "F356W", "F444W"]
FEW = "field_id = 'smacs0723' AND source_id < 'SC_030'"


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    lk = Lake.create(tmp_path_factory.mktemp("recipes") / "lake")
    ingest_fields(lk, FIELDS)
    ingest_catalog(lk, SMACS, field_id="smacs0723", name="faisst2022", mw_corrected=True)
    return lk


def _config(lake, run_id=None):
    con = connect(lake)
    q = (
        "SELECT config FROM fit_runs "
        + ("WHERE run_id = ? " if run_id else "")
        + "ORDER BY created_at DESC LIMIT 1"
    )
    return json.loads(con.execute(q, [run_id] if run_id else None).fetchall()[0][0])


@pytest.mark.parametrize("name", [r.name for r in RECIPES.values() if r.kind == "ssp"])
def test_each_ssp_recipe_fits_the_smacs_clusters_from_the_cli(lake, cli, name):
    res = cli("fit", "ssp", "--where", FEW, "--recipe", name, "--samples", "0", "--lake", lake.root)
    assert res.exit_code == 0, res.output
    assert "30 of 30 objects fitted" in res.stdout
    cfg = _config(lake)
    spec, prior, _ = resolve_ssp(name)
    assert cfg["recipe"] == name and cfg["recipe_source"] == RECIPES[name].source
    assert cfg["recipe_overrides"] == {} and cfg["prior_name"] == prior
    assert cfg["grid"] == spec.resolved()
    con = connect(lake)
    ages = con.execute(
        "SELECT min(age_gyr_p16), max(age_gyr_p84) FROM fit_results WHERE run_id = "
        "(SELECT run_id FROM fit_runs ORDER BY created_at DESC LIMIT 1)"
    ).fetchall()[0]
    grid, _, _ = load_or_build_grid(lake, 0.39, [f"jwst_{b.lower()}" for b in BANDS], spec)
    assert grid.age_gyr.min() - 1e-9 <= ages[0] and ages[1] <= grid.age_gyr.max() + 1e-9
    if name == "smacs0723-ssp":
        assert grid.shape == (22, 6, 1) and grid.age_gyr.max() == pytest.approx(11.0)
    else:  # bounded by the 9.27 Gyr age of the Universe at z = 0.39
        assert grid.age_gyr.max() < 9.27


def test_options_beside_a_recipe_override_it_and_are_recorded(lake, cli):
    res = cli(
        "fit",
        "ssp",
        "--where",
        FEW,
        "--recipe",
        "smacs0723-ssp",
        "--metallicities",
        "0.2,1",
        "--prior",
        "log-age",
        "--samples",
        "0",
        "--lake",
        lake.root,
    )
    assert res.exit_code == 0, res.output
    cfg = _config(lake)
    assert cfg["recipe_overrides"] == {"metallicities": [0.2, 1.0], "prior": "log-age"}
    assert cfg["grid"]["metallicities"] == [0.2, 1.0] and cfg["grid"]["age_step_gyr"] == 0.5
    assert cfg["prior_name"] == "log-age"


def test_grid_options_without_a_recipe(lake, cli):
    res = cli(
        "fit",
        "ssp",
        "--where",
        FEW,
        "--age-range",
        "1,9",
        "--age-step",
        "1",
        "--no-dust",
        "--metallicities",
        "0.02,0.2,1",
        "--log-u",
        "-2",
        "--samples",
        "0",
        "--lake",
        lake.root,
    )
    assert res.exit_code == 0, res.output
    cfg = _config(lake)
    assert cfg["recipe"] is None
    g = cfg["grid"]
    assert (g["age_min_gyr"], g["age_max_gyr"], g["age_step_gyr"]) == (1.0, 9.0, 1.0)
    assert (g["av_max"], g["n_av"], g["nebular"], g["log_u"]) == (0.0, 1, True, -2.0)
    assert g["universe_bound"] is True and g["imf"] == "chabrier"
    res = cli(
        "grid",
        "build",
        "--z",
        "0.39",
        "--bands",
        "F150W,F200W",
        "--recipe",
        "smacs0723-ssp",
        "--lake",
        lake.root,
    )
    assert res.exit_code == 0 and "22 ages 0.5-11 Gyr" in res.stdout, res.output


def test_smacs_recipe_stack_and_its_chi2_map(lake, cli, tmp_path):
    res = cli(
        "fit",
        "stack",
        "--where",
        "field_id = 'smacs0723'",
        "--recipe",
        "smacs0723-ssp",
        "--n-boot",
        "50",
        "--lake",
        lake.root,
    )
    assert res.exit_code == 0, res.output
    run_id = (
        connect(lake)
        .execute("SELECT run_id FROM fit_runs WHERE kind = 'stack' ORDER BY created_at DESC LIMIT 1")
        .fetchall()[0][0]
    )
    assert _config(lake, run_id)["recipe"] == "smacs0723-ssp"
    n = (
        connect(lake)
        .execute("SELECT count(*), max(age_gyr) FROM fit_chi2_maps WHERE run_id = ?", [run_id])
        .fetchall()[0]
    )
    assert n[0] == 22 * 6 and n[1] == pytest.approx(11.0)
    for k, extra in enumerate(([], ["--levels", "1,2,3", "--age-axis", "log"])):
        out = tmp_path / f"c{k}.png"
        r = cli("plot", "chi2map", run_id, "--out", out, *extra, "--lake", lake.root)
        assert r.exit_code == 0 and out.stat().st_size > 10_000, r.output
    for bad, needle in (
        (["--levels", "3,2"], "--levels must increase"),
        (["--levels", "9"], "--levels (sigma) must be in (0, 8]"),
        (["--levels", "x"], "--levels must be numbers"),
        (["--age-axis", "sqrt"], "--age-axis"),
    ):
        r = cli("plot", "chi2map", run_id, "--out", tmp_path / "bad.png", *bad, "--lake", lake.root)
        lines = r.stderr.strip().splitlines()
        assert r.exit_code == 2 and len(lines) == 1 and needle in lines[0], r.output


def test_sedz_recipe_from_the_cli(lake, cli):
    res = cli(
        "fit",
        "sfh",
        "--where",
        "source_id < 'SC_003'",
        "--recipe",
        "sedz",
        "--n-perturb",
        "3",
        "--lake",
        lake.root,
    )
    assert res.exit_code == 0, res.output
    cfg = _config(lake)
    assert cfg["recipe"] == "sedz" and cfg["recipe_overrides"] == {"n_perturb": 3}
    assert cfg["epochs_z"] == [12, 11, 10, 9, 8, 7, 6, 5, 4] and cfg["metallicity_zsun"] == 1.0


def test_sparkler_nonparam_recipe_from_the_cli(lake, cli):
    base = ["fit", "nonparam", "--where", "source_id < 'SC_003'", "--n-atlas", "500", "--draws", "50"]
    res = cli(*base, "--recipe", "sparkler-nonparam", "--lake", lake.root)
    assert res.exit_code == 0, res.output
    cfg = _config(lake)
    assert cfg["recipe"] == "sparkler-nonparam" and cfg["recipe_overrides"] == {}
    assert cfg["n_tx"] == 1 and cfg["log_ssfr_range"] == [-12.0, -7.5]
    assert cfg["log_z_range"] == [-1.5, 0.25] and cfg["av_prior"] == "exponential"
    (atlas,) = cfg["atlases"]
    assert atlas["av_prior"].startswith("exponential") and atlas["log_z_range"] == [-1.5, 0.25]
    res = cli(
        *base, "--recipe", "sparkler-nonparam", "--n-tx", "3", "--log-ssfr-range", "none", "--lake", lake.root
    )
    assert res.exit_code == 0, res.output
    cfg = _config(lake)
    assert cfg["recipe_overrides"] == {"n_tx": 3, "log_ssfr_range": "none"}
    assert cfg["log_ssfr_range"] is None and cfg["atlases"][0]["log_ssfr_range"] is None


def test_smacs_recipe_recovers_simulated_clusters_through_the_lake(tmp_path, cli):
    """Clusters simulated on the recipe's grid, ingested as a catalog, fitted from the CLI."""
    lk = Lake.create(tmp_path / "lake")
    ingest_fields(lk, FIELDS)
    spec, _, _ = resolve_ssp("smacs0723-ssp")
    grid, _, _ = load_or_build_grid(lk, 0.39, [f"jwst_{b.lower()}" for b in BANDS], spec)
    rng = np.random.default_rng(5)
    n = 200
    ia, iz, iv = (rng.integers(0, s, n) for s in grid.shape)
    true = grid.flux_njy[ia, iz, iv] * 10 ** rng.uniform(6, 7, n)[:, None]
    err = true / 20
    obs = true + rng.normal(0, err)
    cols = {
        "id": np.arange(n),
        "ra": 110.8 + rng.uniform(0, 0.01, n),
        "dec": -73.45 + rng.uniform(0, 0.01, n),
    }
    for j, b in enumerate(BANDS):
        cols[f"flux_{b}"], cols[f"fluxerr_{b}"] = obs[:, j], err[:, j]
    pq.write_table(pa.table(cols), tmp_path / "sim.parquet")
    ingest_catalog(lk, tmp_path / "sim.parquet", field_id="smacs0723", name="sim", mw_corrected=True)
    res = cli(
        "fit",
        "ssp",
        "--where",
        "catalog = 'sim'",
        "--recipe",
        "smacs0723-ssp",
        "--error-floor",
        "0",
        "--samples",
        "0",
        "--lake",
        lk.root,
    )
    assert res.exit_code == 0, res.output
    a = np.array(
        connect(lk)
        .execute(
            "SELECT CAST(source_id AS INT), age_gyr, age_gyr_p16, age_gyr_p84 FROM fit_results ORDER BY 1"
        )
        .fetchall(),
        float,
    )
    age = grid.age_gyr[ia[a[:, 0].astype(int)]]
    cover = np.mean((a[:, 2] <= age) & (age <= a[:, 3]))
    bias = np.median(np.log10(a[:, 1] / age))
    print(f"smacs0723-ssp through the lake: age coverage {cover:.2f}, bias {bias:+.3f} dex")
    assert 0.55 < cover < 0.85 and abs(bias) < 0.05


def test_fit_recipes_lists_every_recipe_with_its_source(cli):
    res = cli("fit", "recipes")
    assert res.exit_code == 0, res.output
    for r in RECIPES.values():
        assert r.name in res.stdout
    res = cli("fit", "recipes", "smacs0723-ssp")
    assert res.exit_code == 0 and "age_axis: linear" in res.stdout and "SSP fitting" in res.stdout
    res = cli("fit", "recipes", "nope")
    assert res.exit_code == 2 and "no recipe 'nope'" in res.stderr
