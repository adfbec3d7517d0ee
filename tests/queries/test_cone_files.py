"""Cone searches read only the files whose Delta healpix29 range meets the cone, with the same rows."""

import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import write_deltalake

from catalog.lake import Lake
from catalog.queries.connection import cone_relation_sql, connect
from catalog.queries.search import cone
from catalog.sky import cone_ranges
from ingest.catalog import ingest_catalog

FIELDS = {"smacs0723": (110.83, -73.45), "abell2744": (3.58, -30.40), "as1063": (342.18, -44.53)}


def _write(path, rng, ra0, dec0, n=3000, side_deg=0.02):
    ra = ra0 + (rng.random(n) - 0.5) * side_deg / np.cos(np.radians(dec0))
    dec = dec0 + (rng.random(n) - 0.5) * side_deg
    pq.write_table(pa.table({"id": np.arange(1, n + 1), "ra": ra, "dec": dec}), path)
    return path


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    d = tmp_path_factory.mktemp("conefiles")
    lk = Lake.create(d / "lake")
    rng = np.random.default_rng(5)
    for k, (fid, (ra0, dec0)) in enumerate(FIELDS.items()):
        ingest_catalog(lk, _write(d / f"c{k}.parquet", rng, ra0, dec0), field_id=fid, name="gc")
        ingest_catalog(lk, _write(d / f"h{k}.parquet", rng, ra0, dec0, n=500), field_id=fid, name="halo")
    # A re-ingest: the first smacs0723 rows are superseded and must stay out of the live view.
    ra0, dec0 = FIELDS["smacs0723"]
    ingest_catalog(lk, _write(d / "r.parquet", rng, ra0, dec0), field_id="smacs0723", name="gc", replace=True)
    # Rows of another Delta writer (not a gccat ingest): in raw_detections, not in detections.
    import pyarrow.compute as pc

    mine = lk.read("detections", filters=pc.field("field_id") == "smacs0723").slice(0, 40)
    other = mine.set_column(
        mine.schema.get_field_index("ingest_id"), "ingest_id", pa.array(["external-run"] * 40, pa.string())
    )
    write_deltalake(str(lk.table_path("detections")), other, mode="append", partition_by=["field_id"])
    return lk


def _files_read(con, source, ra, dec, radius):
    ranges = [(int(a), int(b)) for a, b in cone_ranges(ra, dec, radius)]
    sql = cone_relation_sql(con, source, ranges)
    return re.findall(r"'([^']+\.parquet)'", sql)


def test_lake_files_hold_each_files_healpix29_range(lake):
    con = connect(lake)
    rows = con.execute(
        "SELECT path, healpix29_min, healpix29_max FROM lake_files WHERE table_name = 'detections'"
    ).fetchall()
    assert sorted(p for p, _, _ in rows) == sorted(lake.files("detections"))
    for path, lo, hi in rows:
        h = pq.read_table(path, columns=["healpix29"])["healpix29"].to_numpy()
        assert (lo, hi) == (h.min(), h.max())


@pytest.mark.parametrize("source", ["detections", "raw_detections"])
def test_a_cone_reads_only_the_files_it_can_touch_and_gives_every_row(lake, source):
    con = connect(lake)
    n_files = len(lake.files("detections"))
    rng = np.random.default_rng(9)
    for fid, (ra0, dec0) in FIELDS.items():
        # Cones inside a field, on its edge and just outside it.
        for dra, ddec, radius in [(0, 0, 5.0), (0.004, -0.003, 2.0), (0, 0.0098, 8.0), (0, 0.02, 3.0)]:
            ra = ra0 + dra / np.cos(np.radians(dec0)) + rng.normal(0, 1e-4)
            dec = dec0 + ddec
            read = _files_read(con, source, ra, dec, radius)
            assert all(f"field_id={fid}/" in p for p in read)
            assert len(read) < n_files
            got = cone(con, ra, dec, radius, source)
            every_file = cone(con, ra, dec, radius, f"SELECT * FROM {source}")
            assert got.equals(every_file)
    assert got.num_rows == 0  # the last cone is outside the field


def test_superseded_and_foreign_rows_stay_where_they_belong(lake):
    con = connect(lake)
    ra0, dec0 = FIELDS["smacs0723"]
    live = cone(con, ra0, dec0, 60.0)  # the whole field
    raw = cone(con, ra0, dec0, 60.0, "raw_detections")
    live_ids = set(con.execute("SELECT ingest_id FROM live_ingests").fetchall())
    assert {(i,) for i in live["ingest_id"].to_pylist()} <= live_ids
    assert "external-run" in raw["ingest_id"].to_pylist()
    assert raw.num_rows > live.num_rows  # superseded and foreign rows are raw only
    assert set(live["detection_id"].to_pylist()) <= set(raw["detection_id"].to_pylist())


def test_views_of_their_own_and_queries_read_every_file(lake):
    con = connect(lake)
    ra0, dec0 = FIELDS["as1063"]
    ranges = [(int(a), int(b)) for a, b in cone_ranges(ra0, dec0, 5.0)]
    for source in ("photometry_wide", "SELECT * FROM detections WHERE z IS NULL"):
        assert "read_parquet" not in cone_relation_sql(con, source, ranges)


def test_an_as_of_connection_chooses_among_its_own_files(lake):
    con = connect(lake, as_of=1)  # only the first smacs0723 catalog is committed at version 1
    ra0, dec0 = FIELDS["smacs0723"]
    got = cone(con, ra0, dec0, 30.0)
    assert got.num_rows > 0 and set(got["catalog"].to_pylist()) == {"gc"}
    assert got.equals(cone(con, ra0, dec0, 30.0, "SELECT * FROM detections"))


def test_a_null_position_is_never_inside_and_a_missing_column_is_one_line(lake):
    con = connect(lake)
    ra0, dec0 = FIELDS["as1063"]
    every = cone(con, ra0, dec0, 20.0)
    first = every["detection_id"][0].as_py()
    nulled = (
        f"SELECT * REPLACE (CASE WHEN detection_id = '{first}' THEN NULL ELSE ra END AS ra) FROM detections"
    )
    got = cone(con, ra0, dec0, 20.0, nulled)
    assert got.num_rows == every.num_rows - 1 and first not in got["detection_id"].to_pylist()
    from catalog.errors import GccatError

    with pytest.raises(GccatError, match="has no 'ra' column"):
        cone(con, ra0, dec0, 20.0, "SELECT * EXCLUDE (ra) FROM detections")
