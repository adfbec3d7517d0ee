"""Stellar-population fits of lake photometry: runs, posteriors, draws, stacks, SFHs, Dask."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from catalog import sed as sps
from catalog.lake import Lake
from catalog.queries.connection import connect
from catalog.runs.fits import (
    fit_in_chunks,
    load_or_build_grid,
    run_fit_sfh,
    run_fit_ssp,
    run_fit_stack,
    select,
)
from ingest.catalog import ingest_catalog, ingest_fields

from ..conftest import FIELDS, SMACS, snapshot
from .conftest import assert_same_rows

BANDS = ["F090W", "F150W", "F200W", "F277W", "F356W", "F444W"]


@pytest.fixture(scope="module")
def fit_lake(tmp_path_factory):
    lake = Lake.create(tmp_path_factory.mktemp("fit") / "lake")
    ingest_fields(lake, FIELDS)
    ingest_catalog(lake, SMACS, field_id="smacs0723", name="faisst2022", mw_corrected=True)
    return lake


def test_ssp_fits_of_the_smacs_clusters_land_in_queryable_tables(fit_lake, tmp_path, cli):
    r = run_fit_ssp(fit_lake, "field_id = 'smacs0723'", n_samples=20)
    assert r["n_objects"] == 178 and r["bands"] == BANDS
    con = connect(fit_lake)
    n = con.execute(
        "SELECT count(*), count(DISTINCT object_id) FROM fit_posteriors WHERE run_id = ?", [r["run_id"]]
    ).fetchall()[0]
    assert n == (178 * 5, 178)
    res = con.execute(
        "SELECT count(*), min(age_gyr_p16 <= age_gyr AND age_gyr <= age_gyr_p84), "
        "min(n_bands), max(log_mass_living <= log_mass_formed + 1e-9) FROM fit_results"
    ).fetchall()[0]
    assert res == (178, True, 6, True)
    assert con.execute("SELECT count(*) FROM fit_samples").fetchall()[0][0] == 178 * 20
    out = tmp_path / "samples.parquet"
    ok = cli("export", "--table", "fit_samples", "--out", out, "--lake", fit_lake.root)
    assert ok.exit_code == 0, ok.output
    from astropy.table import Table

    t = Table.read(out, format="parquet.votable")
    assert str(t["age_gyr"].unit) == "Gyr" and str(t["av"].unit) == "mag"
    grids = con.execute("SELECT count(*) FROM ssp_grids").fetchall()[0][0]
    assert grids == 1
    r2 = run_fit_ssp(fit_lake, "field_id = 'smacs0723' AND source_id < 'SC_010'", n_samples=0)
    assert r2["grid_ids"] == r["grid_ids"]  # the cached grid is reused
    assert connect(fit_lake).execute("SELECT count(*) FROM ssp_grids").fetchall()[0][0] == 1


def test_recovery_of_synthetic_clusters_through_the_lake(tmp_path):
    """Simulate SSPs from the grid, ingest them as a catalog, fit, check the truth is covered."""
    lake = Lake.create(tmp_path / "lake")
    ingest_fields(lake, FIELDS)
    grid, _, _ = load_or_build_grid(lake, 0.39, [f"jwst_{b.lower()}" for b in BANDS])
    rng = np.random.default_rng(4)
    n = 300
    ia, iz, iv = (rng.integers(0, s, n) for s in grid.shape)
    logm = rng.uniform(6, 7, n)
    true = grid.flux_njy[ia, iz, iv] * 10 ** logm[:, None]
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
    ingest_catalog(lake, tmp_path / "sim.parquet", field_id="smacs0723", name="sim", mw_corrected=True)
    r = run_fit_ssp(lake, "catalog = 'sim'", error_floor=0.0, n_samples=0)
    con = connect(lake)
    rows = con.execute(
        "SELECT CAST(source_id AS INT), log_mass_formed, p16, p84 FROM fit_results "
        "JOIN fit_posteriors USING (run_id, object_id) WHERE run_id = ? AND "
        "parameter = 'log_mass_formed' ORDER BY 1",
        [r["run_id"]],
    ).fetchall()
    a = np.array(rows, float)
    inside = (a[:, 2] <= logm[a[:, 0].astype(int)]) & (logm[a[:, 0].astype(int)] <= a[:, 3])
    bias = np.median(a[:, 1] - logm[a[:, 0].astype(int)])
    print(f"mass coverage {inside.mean():.2f}, bias {bias:+.3f} dex")
    assert 0.58 < inside.mean() < 0.78 and abs(bias) < 0.05


def test_milky_way_extinction_is_removed_only_when_not_already_corrected(tmp_path):
    lake = Lake.create(tmp_path / "lake")
    ingest_fields(lake, FIELDS)  # smacs0723 has E(B-V) = 0.2
    ingest_catalog(lake, SMACS, field_id="smacs0723", name="raw")
    sel = select(lake, "catalog = 'raw'")
    ingest_catalog(lake, SMACS, field_id="smacs0723", name="corr", mw_corrected=True)
    ref = select(lake, "catalog = 'corr'")
    a = sps.mw_extinction_mag([f"jwst_{b.lower()}" for b in BANDS], 0.2)
    with np.errstate(invalid="ignore"):  # 0/0 where a published flux is 0
        ratio = np.nanmedian(sel.flux / ref.flux, axis=0)
    np.testing.assert_allclose(ratio, 10 ** (0.4 * a), rtol=1e-9)
    assert a[0] > a[-1] > 0


def test_dask_local_cluster_gives_the_in_process_results(fit_lake):
    sel = select(fit_lake, "field_id = 'smacs0723'")
    grid, _, _ = load_or_build_grid(fit_lake, 0.39, sel.sedpy)
    kw = dict(error_floor=0.05, n_samples=5, seed=3, chunk=64)
    a = fit_in_chunks(grid, sel.flux, sel.err, sel.upper, **kw)
    b = fit_in_chunks(grid, sel.flux, sel.err, sel.upper, scheduler="local", **kw)
    for k in sps.FIT_KEYS:
        np.testing.assert_allclose(a.percentiles[k], b.percentiles[k], rtol=1e-6)
        np.testing.assert_allclose(a.samples[k], b.samples[k], rtol=1e-6)


def test_ssp_results_do_not_depend_on_chunk_or_scheduler(fit_lake, dask_scheduler):
    """Draws are keyed by (seed, object id): any --chunk, in process or on Dask, same rows."""
    where = "field_id = 'smacs0723' AND source_id < 'SC_040'"
    kw = dict(n_samples=8, seed=5, n_av=3)
    runs = [
        run_fit_ssp(fit_lake, where, **kw)["run_id"],
        run_fit_ssp(fit_lake, where, chunk=7, **kw)["run_id"],
        run_fit_ssp(fit_lake, where, chunk=13, scheduler=dask_scheduler, **kw)["run_id"],
    ]
    assert_same_rows(fit_lake, ("fit_posteriors", "fit_samples", "restframe_results"), runs)
    con = connect(fit_lake)
    # run ids of one second sort by their random suffix: look each run up by its id
    found = dict(
        ((r, (s, c)) for r, s, c in con.execute(
            "SELECT run_id, scheduler, config FROM fit_runs WHERE run_id IN (?, ?, ?)", runs
        ).fetchall())
    )  # fmt: skip
    used = [found[r] for r in runs]
    assert [u[0] for u in used] == ["in-process", "in-process", dask_scheduler]
    assert "Philox" in json.loads(used[0][1])["draws"]
    # a subset of the objects draws the same numbers for each of them
    sub = run_fit_ssp(fit_lake, "field_id = 'smacs0723' AND source_id < 'SC_010'", **kw)["run_id"]
    con = connect(fit_lake)
    a = con.execute(
        "SELECT * EXCLUDE (run_id, ingest_id) FROM fit_samples WHERE run_id = ? AND object_id IN "
        "(SELECT object_id FROM fit_samples WHERE run_id = ?) ORDER BY ALL",
        [runs[0], sub],
    ).fetchall()
    b = con.execute(
        "SELECT * EXCLUDE (run_id, ingest_id) FROM fit_samples WHERE run_id = ? ORDER BY ALL", [sub]
    ).fetchall()
    assert a == b and len(b) == 10 * 8


def test_sfh_results_do_not_depend_on_chunk_or_scheduler(fit_lake, dask_scheduler, cli):
    where = "field_id = 'smacs0723' AND source_id < 'SC_005'"
    kw = dict(epochs_z=(6, 4, 2, 1), n_perturb=4, seed=2)
    runs = [
        run_fit_sfh(fit_lake, where, **kw)["run_id"],
        run_fit_sfh(fit_lake, where, chunk=1, **kw)["run_id"],
        run_fit_sfh(fit_lake, where, chunk=2, scheduler=dask_scheduler, **kw)["run_id"],
    ]
    tables = ("sfh_epochs", "fit_posteriors", "sfh_results", "sfh_chi2_z", "restframe_results")
    assert_same_rows(fit_lake, tables, runs)
    scheduler = connect(fit_lake).execute("SELECT scheduler FROM fit_runs WHERE run_id = ?", [runs[2]])
    assert scheduler.fetchall()[0][0] == dask_scheduler
    for bad, option in ((("--chunk", "0"), "--chunk"), (("--scheduler", " "), "--scheduler")):
        r = cli("fit", "sfh", "--where", where, *bad, "--lake", fit_lake.root)
        assert r.exit_code == 2 and option in r.output and len(r.output.strip().splitlines()) == 1


def test_stack_keeps_a_chi2_map_and_sfh_fills_epochs(fit_lake):
    s = run_fit_stack(fit_lake, "field_id = 'smacs0723'", n_boot=200, n_samples=10)
    con = connect(fit_lake)
    n_map = con.execute(
        "SELECT count(*) FROM fit_chi2_maps WHERE object_id = ?", [s["object_id"]]
    ).fetchall()[0][0]
    grid = s["grid"]
    assert n_map == len(grid.age_gyr) * len(grid.log_z_zsun)
    members = con.execute("SELECT config FROM fit_runs WHERE run_id = ?", [s["run_id"]]).fetchall()
    assert '"n_members": 178' in members[0][0]
    f = run_fit_sfh(fit_lake, "source_id IN ('SC_000', 'SC_002')", epochs_z=(6, 4, 2, 1), n_perturb=5)
    rows = (
        connect(fit_lake)
        .execute(
            "SELECT object_id, count(*), min(mass_msun) FROM sfh_epochs WHERE run_id = ? GROUP BY 1",
            [f["run_id"]],
        )
        .fetchall()
    )
    assert len(rows) == 2 and all(r[1] == 4 and r[2] >= 0 for r in rows)


def test_log_age_prior_moves_weight_to_the_sparse_ages(fit_lake):
    grid, _, _ = load_or_build_grid(fit_lake, 0.39, [f"jwst_{b.lower()}" for b in BANDS])
    w_index = np.exp(sps.default_log_prior(grid)).sum(axis=(1, 2))
    w_log = np.exp(sps.log_age_prior(grid)).sum(axis=(1, 2))
    w_index, w_log = w_index / w_index.sum(), w_log / w_log.sum()
    mid = (grid.age_gyr > 0.1) & (grid.age_gyr < 1)
    assert w_log[mid].sum() > 1.5 * w_index[mid].sum()  # 0.1-1 Gyr is sparse in BC03 ages
    dex = np.log10(1 / 0.1)
    assert w_log[mid].sum() == pytest.approx(dex / np.ptp(np.log10(grid.age_gyr)), rel=0.15)


def test_ssp_fit_udf_matches_the_batch_fit(fit_lake):
    con = connect(fit_lake)
    got = con.execute(
        "SELECT ssp_fit(list(band ORDER BY pivot_um), list(flux_njy ORDER BY pivot_um), "
        "list(flux_err_njy ORDER BY pivot_um), 0.39).log_mass_living_p50 FROM photometry "
        "JOIN bands USING (band) WHERE detection_id = 'smacs0723/faisst2022/SC_000'"
    ).fetchall()
    batch = run_fit_ssp(fit_lake, "source_id = 'SC_000'", n_samples=0)["result"][0.39]
    assert got[0][0] == pytest.approx(batch.percentiles["log_mass_living"][0, 1], abs=1e-6)


def test_bad_selections_are_clear_errors(fit_lake, cli):
    before = snapshot(fit_lake)
    res = cli("fit", "ssp", "--where", "source_id = 'nope'", "--lake", fit_lake.root)
    assert res.exit_code == 2 and "no photometry matches" in res.stderr
    res = cli("fit", "ssp", "--prior", "bogus", "--lake", fit_lake.root)
    assert res.exit_code == 2 and "--prior" in res.stderr
    res = cli("fit", "ssp", "--where", "nonsense ((", "--lake", fit_lake.root)
    assert res.exit_code == 2 and "SQL" in res.stderr
    assert snapshot(fit_lake) == before


def test_stack_reports_best_fit_and_mode_and_its_bootstrap_is_seeded(fit_lake, cli):
    args = [
        "fit",
        "stack",
        "--where",
        "field_id = 'smacs0723' AND source_id < 'SC_040'",
        "--n-boot",
        "50",
        "--lake",
        fit_lake.root,
    ]
    outs = [cli(*args, "--seed", str(s)) for s in (7, 7, 8)]
    for r in outs:
        assert r.exit_code == 0, r.output
        assert "best fit (min chi2" in r.stdout and "posterior mode" in r.stdout
    con = connect(fit_lake)
    rows = con.execute(
        "SELECT config FROM fit_runs WHERE kind = 'stack' AND where_sql LIKE '%SC_040%' ORDER BY created_at"
    ).fetchall()
    cfg = [json.loads(r[0]) for r in rows[-3:]]
    assert [c["seed"] for c in cfg] == [7, 7, 8]
    assert cfg[0]["stacked_err_njy"] == cfg[1]["stacked_err_njy"]
    assert cfg[0]["stacked_err_njy"] != cfg[2]["stacked_err_njy"]
    # The best fit shown is the chi2 map's minimum.
    run_id = con.execute(
        "SELECT run_id FROM fit_runs WHERE kind = 'stack' ORDER BY created_at DESC LIMIT 1"
    ).fetchall()[0][0]
    age_min = con.execute(
        "SELECT arg_min(age_gyr, chi2) FROM fit_chi2_maps WHERE run_id = ?", [run_id]
    ).fetchall()[0][0]
    best = con.execute("SELECT age_gyr_best FROM fit_results WHERE run_id = ?", [run_id]).fetchall()[0][0]
    assert best == pytest.approx(age_min)


def test_plots_take_the_ids_the_fit_commands_print(fit_lake, tmp_path, cli):
    """plot sed / chi2map accept a detection_id, a unique source id, stack:RUN or RUN."""
    run_fit_ssp(fit_lake, "source_id IN ('SC_000', 'SC_001')", n_samples=5)
    s = run_fit_stack(fit_lake, "field_id = 'smacs0723' AND source_id < 'SC_020'", n_boot=20, n_samples=5)
    run_id = s["run_id"]
    cases = [
        ("sed", "smacs0723/faisst2022/SC_000"),
        ("sed", "SC_001"),
        ("sed", f"stack:{run_id}"),
        ("sed", run_id),
        ("chi2map", run_id),
        ("chi2map", f"stack:{run_id}"),
    ]
    for k, (kind, oid) in enumerate(cases):
        out = tmp_path / f"p{k}.png"
        res = cli("plot", kind, oid, "--out", out, "--lake", fit_lake.root)
        assert res.exit_code == 0, (kind, oid, res.output)
        assert out.stat().st_size > 10_000
    res = cli("plot", "sed", "SC_999", "--out", tmp_path / "x.png", "--lake", fit_lake.root)
    assert res.exit_code == 2 and "no fit of 'SC_999'" in res.stderr


def test_objects_with_too_few_bands_are_not_fitted_but_recorded(tmp_path, cli):
    """Regression: one-band galaxies got chi2 = 0 and a mass; objects without a usable band
    were 'fitted' with n_bands = 0."""
    from ..conftest import GLASS

    lake = Lake.create(tmp_path / "lake")
    ingest_fields(lake, FIELDS)
    ingest_catalog(lake, SMACS, field_id="smacs0723", name="faisst2022", mw_corrected=True)
    ingest_catalog(lake, GLASS, field_id="abell2744_glass", name="glass")  # F444W only
    nomag = tmp_path / "noerr.csv"  # magnitudes without errors: no usable band
    nomag.write_text(
        "id,ra,dec,z,mag_F150W,mag_F200W,mag_F277W,mag_F444W\nn1,110.80,-73.45,0.39,27.1,27.0,27.2,27.5\n"
    )
    ingest_catalog(lake, nomag, field_id="smacs0723", name="noerr", mag_system="AB")
    where = "source_id IN ('SC_000', 'SC_001', 'SC_002', 'n1') OR field_id = 'abell2744_glass'"
    res = cli("fit", "ssp", "--where", where, "--samples", "0", "--lake", lake.root)
    assert res.exit_code == 0, res.output
    assert "3 of 38 objects fitted" in res.stdout
    assert "gccat: warning: 35 of 38 selected objects not fitted: fewer than 4 usable bands" in res.stderr
    con = connect(lake)
    fitted = con.execute("SELECT count(DISTINCT object_id), min(n_bands) FROM fit_posteriors").fetchall()[0]
    assert fitted == (3, 6)
    skipped = dict(con.execute("SELECT object_id, n_bands FROM fit_skipped").fetchall())
    assert len(skipped) == 35 and skipped["smacs0723/noerr/n1"] == 0
    assert {v for k, v in skipped.items() if "glass" in k} == {1}
    # --min-bands lowers the bar for those who want it; recorded in the run
    res = cli(
        "fit",
        "ssp",
        "--where",
        "field_id = 'abell2744_glass'",
        "--min-bands",
        "1",
        "--samples",
        "0",
        "--lake",
        lake.root,
    )
    assert res.exit_code == 0 and "34 of 34" in res.stdout
    # nothing fittable: one line, nothing written
    before = lake.version()
    for args in (["ssp"], ["sfh"], ["stack", "--n-boot", "20"]):
        res = cli("fit", *args, "--where", "source_id = 'n1'", "--lake", lake.root)
        assert res.exit_code == 2 and "usable bands" in res.stderr, (args, res.output)
    assert lake.version() == before
    res = cli("fit", "sfh", "--where", where, "--epochs", "6,4,2,1", "--n-perturb", "3", "--lake", lake.root)
    assert res.exit_code == 0 and "3 of 38 objects fitted" in res.stdout, res.output


def test_plots_take_the_last_committed_fit_not_the_largest_run_id(fit_lake, monkeypatch):
    """Two fits in one second: run ids then sort by their random suffix, so the newest fit is
    the one of the larger lake version (max(run_id) took the older one here)."""
    import catalog.runs.fits as fits_module
    from catalog.plots import latest_run

    where = "field_id = 'smacs0723' AND source_id = 'SC_001'"
    ids = iter(["20990101T000000-ffffffff", "20990101T000000-00000000"])
    monkeypatch.setattr(fits_module, "new_ingest_id", lambda: next(ids))
    first = run_fit_ssp(fit_lake, where, n_samples=0, n_av=3)["run_id"]
    second = run_fit_ssp(fit_lake, where, n_samples=0, n_av=3, error_floor=0.1)["run_id"]
    assert first > second  # the later fit has the smaller id
    con = connect(fit_lake)
    obj = con.execute("SELECT DISTINCT object_id FROM fit_posteriors WHERE run_id = ?", [second]).fetchall()[
        0
    ][0]
    assert latest_run(con, "fit_posteriors", obj) == second
