"""Views over the demo lake, UDFs, read-only SQL and the query commands."""

import healpy as hp
import numpy as np
import pytest
from astropy.table import Table

from catalog.queries.connection import connect
from catalog.queries.search import cone, run_sql, xmatch_tables
from catalog.sky import separation_arcsec

from ..conftest import SMACS, snapshot


@pytest.fixture(scope="module")
def con(demo):
    return connect(demo.lake)


def test_the_178_smacs_clusters_query_with_ab_colours(con):
    src = Table.read(SMACS, format="ascii.csv", comment="#")
    wide = con.execute(
        "SELECT source_id, flux_F150W, mag_F150W, mag_F200W, magerr_F150W "
        "FROM photometry_wide WHERE field_id = 'smacs0723' ORDER BY source_id"
    ).fetchall()
    assert len(wide) == 178
    for (sid, f150, m150, m200, e150), row in zip(wide, src, strict=True):
        assert sid == row["id"] and f150 == pytest.approx(row["flux_F150W"])
        assert m150 == pytest.approx(31.4 - 2.5 * np.log10(row["flux_F150W"]))
        assert m200 == pytest.approx(31.4 - 2.5 * np.log10(row["flux_F200W"]))
        assert e150 == pytest.approx(1.0857362 * row["fluxerr_F150W"] / row["flux_F150W"], rel=1e-6)
    colours = con.execute(
        "SELECT count(DISTINCT detection_id), count(*) FILTER "
        "(WHERE color_name = 'F150W-F200W') FROM colors "
        "WHERE field_id = 'smacs0723'"
    ).fetchall()[0]
    assert colours == (178, 178)
    r = src[0]
    c, e = con.execute(
        "SELECT color_ab, color_err FROM colors WHERE detection_id = "
        "'smacs0723/faisst2022_star_clusters/SC_000' AND band_blue = 'F150W'"
    ).fetchall()[0]
    assert c == pytest.approx(-2.5 * np.log10(r["flux_F150W"] / r["flux_F200W"]))
    assert e == pytest.approx(
        1.0857362 * np.hypot(r["fluxerr_F150W"] / r["flux_F150W"], r["fluxerr_F200W"] / r["flux_F200W"]),
        rel=1e-6,
    )


def test_colours_are_null_for_negative_fluxes_not_dropped(con):
    n_neg = con.execute("SELECT count(*) FROM colors WHERE color_ab IS NULL").fetchall()[0][0]
    n_neg_flux = con.execute("SELECT count(*) FROM photometry WHERE flux_njy <= 0").fetchall()[0][0]
    assert n_neg_flux > 0 and n_neg >= n_neg_flux


def test_field_summary_and_ingest_history(con):
    rows = {
        r[0]: r[1:]
        for r in con.execute(
            "SELECT field_id, n_detections, n_bands, n_ingests FROM field_summary"
        ).fetchall()
    }
    assert rows["smacs0723"] == (178, 6, 1)
    assert rows["abell2744_glass"] == (34, 1, 1)
    assert rows["as1063"] == (0, 0, 1)  # its lens model
    kinds = con.execute("SELECT list(kind ORDER BY committed_at) FROM ingest_history").fetchall()[0]
    assert kinds[0] == [
        "fields",
        "catalog",
        "catalog",
        "lens_map",
        "lens_map",
        "catalog",
        "correlation",
        "fit",
        "fit",
        "detection",
        "photometry",
    ]


def test_udfs_in_sql(con):
    got = con.execute(
        "SELECT flux_to_abmag(1.0), abmag_to_flux(31.4), to_njy(1.5, 'uJy'), "
        "to_njy(31.4, 'ABmag'), ang_sep_arcsec(10, 0, 10, 1/3600), "
        "healpix_at_order(healpix29(40.0, -20.0), 5)"
    ).fetchall()[0]
    assert got[:5] == pytest.approx((31.4, 1.0, 1500.0, 1.0, 1.0))
    assert got[5] == hp.ang2pix(2**5, 40.0, -20.0, nest=True, lonlat=True)


def test_read_only_sql_refuses_writes_and_outside_files(demo, tmp_path, cli):
    before = snapshot(demo.lake)
    outside = tmp_path / "secret.csv"
    outside.write_text("a\n1\n")
    for q in (
        f"COPY (SELECT 1) TO '{demo.lake.root}/x.csv'",
        f"SELECT * FROM read_csv('{outside}')",
        "ATTACH ':memory:' AS x",
        "SET enable_external_access = true",
        "CREATE TABLE t AS SELECT 1",
        "INSTALL httpfs",
    ):
        res = cli("sql", q, "--lake", demo.lake.root)
        assert res.exit_code == 2, q
        assert "Traceback" not in res.output
    assert snapshot(demo.lake) == before
    res = cli(
        "sql",
        "SELECT count(*) AS n FROM detections WHERE field_id IN ('smacs0723', 'abell2744_glass')",
        "--lake",
        demo.lake.root,
    )
    assert res.exit_code == 0 and "212" in res.stdout


def test_cone_search_matches_brute_force(con):
    src = Table.read(SMACS, format="ascii.csv", comment="#")
    ra0, dec0 = float(src["ra"][10]), float(src["dec"][10])
    for radius in (1.0, 3.0, 10.0):
        got = cone(con, ra0, dec0, radius)
        d = separation_arcsec(np.asarray(src["ra"]), np.asarray(src["dec"]), ra0, dec0)
        assert sorted(got["source_id"].to_pylist()) == sorted(src["id"][d <= radius])
        assert got["separation_arcsec"].to_pylist() == sorted(got["separation_arcsec"].to_pylist())


def test_cone_command_reads_sexagesimal_and_negative_dec(demo, cli):
    res = cli("cone", "07:23:20.35", "-73:27:18.6", "2", "--lake", demo.lake.root)
    assert res.exit_code == 0, res.output
    assert "SC_000" in res.stdout


def test_xmatch_lake_against_itself_and_a_file(con, demo, tmp_path, cli):
    det = run_sql(con, "SELECT detection_id, ra, dec, healpix29 FROM detections WHERE field_id = 'smacs0723'")
    pairs = xmatch_tables(det, det, 0.3, best=True)
    assert pairs.num_rows == 178
    assert pairs["detection_id_1"].to_pylist() == pairs["detection_id_2"].to_pylist()
    out = tmp_path / "pairs.parquet"
    res = cli(
        "xmatch",
        "SELECT * FROM detections WHERE field_id = 'smacs0723'",
        SMACS,
        "--radius",
        "0.1",
        "--best",
        "--output",
        out,
        "--lake",
        demo.lake.root,
    )
    assert res.exit_code == 0, res.output
    t = Table.read(out, format="parquet.votable")
    assert len(t) == 178 and (t["source_id_1"] == t["source_id_2"]).all()
    assert str(t["separation_arcsec"].unit) == "arcsec"


def test_as_of_reads_an_earlier_version(demo):
    v = demo.lake.version()
    q = "SELECT count(*) FROM detections WHERE field_id IN ('smacs0723', 'abell2744_glass')"
    n = [connect(demo.lake, as_of=k).execute(q).fetchall()[0][0] for k in range(v + 1)]
    assert n[0] == 0 and n[-1] == 212 and n == sorted(n)


def test_views_come_from_the_registry_and_declare_what_they_read(demo):
    """Every table has a view (its own sql/ file or one generated from TABLE_DESCRIPTIONS), the
    dependencies are read from the SQL and ordered without a cycle, and a connection for one
    query creates only what that query needs."""
    from catalog.lake.schemas import TABLE_DESCRIPTIONS, TABLES
    from catalog.queries.connection import _creation_order, relations_in, view_dependencies, view_files

    defs = view_files()
    assert set(TABLES) <= set(defs)
    for table in TABLES:
        assert table in TABLE_DESCRIPTIONS or "-- " in defs[table].splitlines()[0]
    deps = view_dependencies()
    assert {"live_rows", "raw_detections"} <= deps["detections"]
    assert "bands" in deps["photometry_wide"]
    order = _creation_order(defs, deps)
    for name in defs:
        assert all(order.index(d) < order.index(name) for d in deps[name])
    with pytest.raises(RuntimeError, match="cycle"):
        _creation_order({"a"}, {"a": {"b"}, "b": {"a"}})
    con = connect(demo.lake, relations=relations_in("SELECT count(*) FROM detections"))
    made = {r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
    assert "detections" in made and "photometry_wide" not in made and "lens_at_detections" not in made
    assert con.execute("SELECT count(*) FROM detections").fetchall()[0][0] > 0
