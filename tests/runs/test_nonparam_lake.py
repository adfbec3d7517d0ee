"""``fit nonparam`` through the lake: run, results, histories, skipped objects, CLI and plot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from catalog.lake import Lake
from catalog.queries.connection import connect
from catalog.runs.nonparam import grid_spec_for, run_fit_nonparam
from ingest.catalog import ingest_catalog, ingest_fields

from ..conftest import FIELDS, SMACS
from .conftest import assert_same_rows

WHERE = "field_id = 'smacs0723' AND source_id < 'SC_010'"


@pytest.fixture(scope="module")
def np_lake(tmp_path_factory):
    lake = Lake.create(tmp_path_factory.mktemp("nonparam") / "lake")
    ingest_fields(lake, FIELDS)
    ingest_catalog(lake, SMACS, field_id="smacs0723", name="faisst2022", mw_corrected=True)
    return lake


@pytest.fixture(scope="module")
def run(np_lake):
    return run_fit_nonparam(np_lake, WHERE, n_atlas=3000, seed=7, n_draws=200)


def test_results_histories_and_run_are_queryable(np_lake, run):
    assert run["n_objects"] == 10 and run["n_skipped"] == 0
    con = connect(np_lake)
    kind, n_samples, cfg = con.execute(
        "SELECT kind, n_samples, config FROM fit_runs WHERE run_id = ?", [run["run_id"]]
    ).fetchall()[0]
    cfg = json.loads(cfg)
    assert kind == "nonparam" and n_samples == 200
    assert cfg["seed"] == 7 and cfg["n_atlas"] == 3000 and cfg["n_tx"] == 1
    assert cfg["atlases"][0]["seed"] == 7 and cfg["atlases"][0]["x"] == [0.5]
    res = con.execute(
        "SELECT count(*), min(log_mass_formed_p16 <= log_mass_formed_p50 AND "
        "log_mass_formed_p50 <= log_mass_formed_p84), max(log_mass_living_p50 <= log_mass_formed_p50), "
        "min(t25_gyr_p50 >= t75_gyr_p50), min(sfr100_p50 >= 0), min(n_bands), "
        "min(av_p50 BETWEEN 0 AND 1) FROM nonparam_results WHERE run_id = ?",
        [run["run_id"]],
    ).fetchall()[0]
    assert res == (10, True, True, True, True, 6, True)
    h = con.execute(
        "SELECT count(*), count(DISTINCT object_id), min(sfr_p16 <= sfr_p50), "
        "min(sfr_p50 <= sfr_p84), min(lookback_lo_gyr), max(lookback_hi_gyr) "
        "FROM nonparam_histories WHERE run_id = ?",
        [run["run_id"]],
    ).fetchall()[0]
    assert h[:4] == (1000, 10, True, True) and h[4] == 0 and 9 < h[5] < 10
    # the grid behind the atlas is cached like the SSP fits' grids
    assert con.execute("SELECT count(*) FROM ssp_grids").fetchall()[0][0] == 1
    assert grid_spec_for(1.0).n_av == 21


def test_same_seed_same_results(np_lake, run):
    again = run_fit_nonparam(np_lake, WHERE, n_atlas=3000, seed=7, n_draws=200)
    con = connect(np_lake)
    q = (
        "SELECT object_id, t50_gyr_p50, log_mass_formed_p50 FROM nonparam_results "
        "WHERE run_id = ? ORDER BY object_id"
    )
    a = con.execute(q, [run["run_id"]]).fetchall()
    b = con.execute(q, [again["run_id"]]).fetchall()
    assert a == b


def test_results_do_not_depend_on_chunk_or_scheduler(np_lake, dask_scheduler, cli):
    """One atlas per run; each object's draws keyed by (seed, object id): same rows anywhere."""
    kw = dict(n_atlas=500, seed=3, n_draws=20)
    runs = [
        run_fit_nonparam(np_lake, WHERE, **kw)["run_id"],
        run_fit_nonparam(np_lake, WHERE, chunk=3, **kw)["run_id"],
        run_fit_nonparam(np_lake, WHERE, chunk=4, scheduler=dask_scheduler, **kw)["run_id"],
    ]
    assert_same_rows(np_lake, ("nonparam_results", "nonparam_histories", "restframe_results"), runs)
    con = connect(np_lake)
    rows = con.execute("SELECT run_id, scheduler, config FROM fit_runs WHERE run_id IN (?, ?, ?)", runs)
    got = {r[0]: (r[1], json.loads(r[2])) for r in rows.fetchall()}
    assert got[runs[2]][0] == dask_scheduler and got[runs[0]][0] == "in-process"
    assert got[runs[1]][1]["chunk"] == 3 and "Philox" in got[runs[1]][1]["draws"]
    r = cli("fit", "nonparam", "--where", WHERE, "--chunk", "0", "--lake", np_lake.root)
    assert r.exit_code == 2 and "--chunk" in r.output and len(r.output.strip().splitlines()) == 1


def test_skips_objects_below_min_bands(np_lake, tmp_path):
    lines = Path(SMACS).read_text().splitlines()
    header = next(ln for ln in lines if ln.startswith("id,"))
    rows = [ln for ln in lines if ln.startswith("SC_00")][:3]
    rows = ["X" + r for r in rows]
    first = rows[0].split(",")
    first[3] = first[4] = ""  # X SC_000 loses F090W: 5 usable bands
    rows[0] = ",".join(first)
    path = tmp_path / "three.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    ingest_catalog(np_lake, path, field_id="smacs0723", name="three", mw_corrected=True)
    r = run_fit_nonparam(np_lake, "source_id LIKE 'XSC%'", n_atlas=500, min_bands=6, n_draws=50)
    assert r["n_objects"] == 2 and r["n_skipped"] == 1 and r["warnings"]
    row = (
        connect(np_lake)
        .execute("SELECT n_bands, min_bands, reason FROM fit_skipped WHERE run_id = ?", [r["run_id"]])
        .fetchall()
    )
    assert row[0][:2] == (5, 6) and "--min-bands" in row[0][2]


@pytest.mark.parametrize(
    "args, option",
    [
        (["--n-atlas", "10"], "--n-atlas"),
        (["--n-tx", "0"], "--n-tx"),
        (["--alpha", "0"], "--alpha"),
        (["--av-max", "11"], "--av-max"),
        (["--draws", "1"], "--draws"),
        (["--error-floor", "2"], "--error-floor"),
        (["--min-bands", "0"], "--min-bands"),
        (["--log-ssfr-range=-5,-3"], "--log-ssfr-range"),
        (["--log-ssfr-range=-9,-11"], "--log-ssfr-range"),
        (["--log-ssfr-range=-9"], "--log-ssfr-range"),
        (["--log-z-range=-3,0"], "--log-z-range"),
        (["--av-prior", "gauss"], "--av-prior"),
        (["--recipe", "sedz"], "--recipe"),
    ],
)
def test_cli_bounds_exit_2_with_one_line(np_lake, cli, args, option):
    r = cli("fit", "nonparam", "--where", WHERE, *args, "--lake", np_lake.root)
    assert r.exit_code == 2
    lines = [ln for ln in r.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and option in lines[0], r.output


def test_cli_fit_and_plot(np_lake, cli, tmp_path):
    r = cli(
        "fit",
        "nonparam",
        "--where",
        "field_id = 'smacs0723' AND source_id = 'SC_001'",
        "--n-atlas",
        "2000",
        "--seed",
        "3",
        "--lake",
        np_lake.root,
    )
    assert r.exit_code == 0, r.output
    assert "1 of 1 objects fitted" in r.output
    out = tmp_path / "h.png"
    oid = connect(np_lake).execute("SELECT object_id FROM nonparam_results LIMIT 1").fetchall()[0][0]
    p = cli("plot", "nonparam", oid, "--out", out, "--lake", np_lake.root)
    assert p.exit_code == 0, p.output
    assert out.stat().st_size > 10_000
