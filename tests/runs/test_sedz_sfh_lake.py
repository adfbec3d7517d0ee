"""fit sfh with the sedz recipe through the lake and the CLI: SMACS0723 and GLASS tables,
the chi2(z) scan and its photo-z, the stored quartiles, the three-panel figure, bad options."""

import json

import numpy as np
import pytest

from catalog.lake import Lake
from catalog.queries.connection import connect
from ingest.catalog import ingest_catalog, ingest_fields

from ..conftest import FIELDS, GLASS, SMACS


@pytest.fixture(scope="module")
def sedz_lake(tmp_path_factory):
    root = tmp_path_factory.mktemp("sedz")
    lake = Lake.create(root / "lake")
    ingest_fields(lake, FIELDS)
    ingest_catalog(lake, SMACS, field_id="smacs0723", name="faisst2022", mw_corrected=True)
    ingest_catalog(lake, GLASS, field_id="abell2744_glass", name="glass")
    # a field without a cluster redshift and a catalog without redshifts: fit sfh must scan
    fields = root / "nozfield.csv"
    fields.write_text(
        "field_id,name,aliases,ra_center_deg,dec_center_deg,z_cluster,ebv_mw,kpc_per_arcsec,"
        "pixel_scale_arcsec,bands,depth_note,source\nnoz,No redshift,,110.8,-73.45,,,,,F090W,,test\n"
    )
    ingest_fields(lake, fields)
    rows = SMACS.read_text().splitlines()[2:5]  # header and two SMACS clusters
    noz = root / "noz.csv"
    noz.write_text("\n".join(rows) + "\n")
    ingest_catalog(lake, noz, field_id="noz", name="copy", mw_corrected=True)
    return lake


def _run(lake, run_id):
    con = connect(lake)
    cfg = json.loads(con.execute("SELECT config FROM fit_runs WHERE run_id = ?", [run_id]).fetchall()[0][0])
    res = con.execute(
        "SELECT object_id, z, z_source, z_phot, z_phot_lo, z_phot_hi, z_phot_at_edge, mass_total_q25, "
        "mass_total_q75, n_templates FROM sfh_results WHERE run_id = ? ORDER BY object_id",
        [run_id],
    ).fetchall()
    return con, cfg, res


def _run_id(out: str) -> str:
    return out.split("run ")[1].split(":")[0]


def test_sedz_recipe_on_the_smacs_table_records_every_option(sedz_lake, cli, tmp_path):
    where = "field_id = 'smacs0723' AND source_id < 'SC_003'"
    res = cli(
        "fit", "sfh", "--where", where, "--recipe", "sedz", "--n-perturb", "5", "--lake", sedz_lake.root
    )
    assert res.exit_code == 0, res.output
    con, cfg, rows = _run(sedz_lake, _run_id(res.stdout))
    assert cfg["recipe"] == "sedz" and cfg["recipe_overrides"] == {"n_perturb": 5}
    assert "Dressler et al. 2023" in cfg["recipe_source"]
    assert cfg["nebular"] is True and cfg["log_u"] == -2.0 and cfg["constant_z_max"] == 10.0
    # rest-frame quantities of every fitted object, both mass routes, bands from the refits
    rf = con.execute(
        "SELECT r.*, s.mass_living FROM restframe_results r JOIN sfh_results s USING (run_id, object_id) "
        "WHERE run_id = ?",
        [_run_id(res.stdout)],
    ).df()
    assert len(rf) == len(rows) > 0
    assert set(rf["lv_band"]) == {"F090W"}  # z = 0.39
    np.testing.assert_allclose(rf["log_mass_living_sed"], np.log10(rf["mass_living"]))
    assert abs(np.median(rf["log_mass_living_ml"] - rf["log_mass_living_sed"])) < 0.1
    assert (rf["ml_v"] > 0).all() and (rf["ml_v_p16"] <= rf["ml_v_p84"]).all()
    assert cfg["z_sources"] == {"--z": 0, "catalog": 3, "scan": 0} and cfg["z_scan"] is None
    assert "quartiles" in cfg["band"] and cfg["metallicity_zsun"] == 1.0 and cfg["av"] == 0.0
    assert [r[2] for r in rows] == ["catalog"] * 3 and all(r[1] == 0.39 for r in rows)
    assert all(r[7] <= r[8] for r in rows)
    ep = con.execute(
        "SELECT min(mass_q25 <= mass_q50 AND mass_q50 <= mass_q75), max(z_start > 10 AND has_constant), "
        "min(abs(mass_burst_msun + mass_constant_msun - mass_msun) <= 1e-6 * (1 + mass_msun)) "
        "FROM sfh_epochs WHERE run_id = ?",
        [_run_id(res.stdout)],
    ).fetchall()[0]
    assert ep == (True, False, True)
    out = tmp_path / "sc000.png"
    r = cli("plot", "sfh", "smacs0723/faisst2022/SC_000", "--out", out, "--lake", sedz_lake.root)
    assert r.exit_code == 0 and out.stat().st_size > 20_000, r.output


def test_z_scan_gives_a_photo_z_with_its_interval(sedz_lake, cli, tmp_path):
    """SMACS0723 clusters (z = 0.39) scanned over 0.1-1.5: the photo-z is stored per object."""
    where = "field_id = 'smacs0723' AND source_id IN ('SC_000', 'SC_002')"
    res = cli(
        "fit", "sfh", "--where", where, "--recipe", "sedz", "--n-perturb", "3",
        "--z-scan", "0.1,1.5,0.05", "--lake", sedz_lake.root,
    )  # fmt: skip
    assert res.exit_code == 0 and "2 at their photo-z" in res.stdout, res.output
    run_id = _run_id(res.stdout)
    con, cfg, rows = _run(sedz_lake, run_id)
    assert cfg["z_scan"] == [0.1, 1.5, 0.05] and cfg["z_scan_given"] and "chi2_min + 1" in cfg["photo_z"]
    for oid, z, src, zp, lo, hi, edge, *_ in rows:
        print(f"{oid}: photo-z {zp:.3f} ({lo:.3f}-{hi:.3f}); catalog z = 0.39")
        assert src == "scan" and z == zp and lo <= zp <= hi and not edge
        assert abs(zp - 0.39) < 0.1
    n = con.execute("SELECT count(*) FROM sfh_chi2_z WHERE run_id = ?", [run_id]).fetchall()[0][0]
    assert n == 2 * 29
    one = con.execute("SELECT count(*) FROM sfh_chi2_z WHERE object_id = 'smacs0723/faisst2022/SC_001'")
    assert one.fetchall()[0][0] == 1  # fitted at the catalog z in the first test: one row
    out = tmp_path / "scan.png"
    r = cli(
        "plot", "sfh", "smacs0723/faisst2022/SC_002", "--run", run_id, "--out", out, "--lake", sedz_lake.root
    )
    assert r.exit_code == 0 and out.stat().st_size > 20_000, r.output


def test_objects_without_any_redshift_are_scanned(sedz_lake, cli):
    res = cli(
        "fit", "sfh", "--where", "field_id IN ('noz', 'smacs0723') AND source_id IN ('SC_000', 'SC_001')",
        "--recipe", "sedz", "--n-perturb", "3", "--lake", sedz_lake.root,
    )  # fmt: skip
    assert res.exit_code == 0 and "2 at their photo-z" in res.stdout, res.output
    _, cfg, rows = _run(sedz_lake, _run_id(res.stdout))
    assert cfg["z_sources"] == {"--z": 0, "catalog": 2, "scan": 2} and cfg["z_scan"] == [0.5, 11.9, 0.1]
    src = {r[0]: r[2] for r in rows}
    assert src["noz/copy/SC_000"] == "scan" and src["smacs0723/faisst2022/SC_000"] == "catalog"


def test_sedz_recipe_on_the_glass_table_at_its_published_redshifts(sedz_lake, cli):
    """The bundled GLASS table has F444W only: fitted at its published SEDz* redshifts; a scan of
    one band is flat (chi2 = 0 at every z), so its photo-z interval spans the scan."""
    where = "field_id = 'abell2744_glass'"
    res = cli(
        "fit", "sfh", "--where", where, "--recipe", "sedz", "--min-bands", "1", "--lake", sedz_lake.root
    )
    assert res.exit_code == 0 and "34 of 34" in res.stdout, res.output
    con, cfg, rows = _run(sedz_lake, _run_id(res.stdout))
    pub = dict(
        con.execute("SELECT detection_id, z FROM detections WHERE field_id = 'abell2744_glass'").fetchall()
    )
    assert all(r[2] == "catalog" and r[1] == pub[r[0]] for r in rows)
    # templates precede the epoch of observation: no epoch starts at or below the galaxy's z
    bad = con.execute(
        "SELECT count(*) FROM sfh_epochs e JOIN sfh_results r USING (run_id, object_id) "
        "WHERE e.run_id = ? AND (e.z_start <= r.z OR e.z_end < r.z - 1e-9)",
        [_run_id(res.stdout)],
    ).fetchall()[0][0]
    assert bad == 0
    res = cli(
        "fit", "sfh", "--where", "field_id = 'abell2744_glass' AND source_id IN ('733', '1423')",
        "--recipe", "sedz", "--min-bands", "1", "--n-perturb", "3", "--z-scan", "4,8,0.5",
        "--lake", sedz_lake.root,
    )  # fmt: skip
    # one band fits equally at every z: no redshift, so nothing is fitted (a z_phot at the first
    # scan node was stored before, a number that meant nothing)
    assert res.exit_code == 0, res.output
    assert "0 of 2 objects fitted" in res.stdout, res.output
    assert "does not constrain the redshift" in res.stderr, res.stderr
    run_id = _run_id(res.stdout)
    con, _, rows = _run(sedz_lake, run_id)
    assert rows == []
    reasons = con.execute("SELECT reason FROM fit_skipped WHERE run_id = ?", [run_id]).fetchall()
    assert len(reasons) == 2 and all("redshift not constrained" in r[0] for r in reasons)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--z-scan", "1,2"], "--z-scan"),
        (["--z-scan", "1,13,0.1"], "--z-scan needs ZMIN < ZMAX < 12"),
        (["--z-scan", "1,2,0.00001"], "--z-scan STEP"),
        (["--z-scan", "1,2,0.1", "--z", "1"], "--z and --z-scan exclude each other"),
        (["--constant-z-max", "0"], "--constant-z-max"),
        (["--log-u", "1"], "--log-u"),
        (["--log-u", "-2", "--no-nebular"], "--log-u contradicts --no-nebular"),
    ],
)
def test_bad_sfh_options_are_one_line(sedz_lake, cli, args, needle):
    before = sedz_lake.version()
    res = cli("fit", "sfh", "--where", "source_id = 'SC_000'", *args, "--lake", sedz_lake.root)
    lines = res.stderr.strip().splitlines()
    assert res.exit_code == 2 and len(lines) == 1 and needle in lines[0], res.output
    assert sedz_lake.version() == before
