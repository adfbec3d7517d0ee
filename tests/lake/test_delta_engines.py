"""The lake as any Delta engine sees it: statistics on every add action, file skipping."""

import json

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from deltalake import DeltaTable

from catalog.lake import Lake
from catalog.lake.schemas import TABLES
from ingest.catalog import ingest_catalog


def write_csv(path, decs, prefix):
    rows = [f"{prefix}{i},110.8,{d},10.0,1.0" for i, d in enumerate(decs)]
    path.write_text("id,ra,dec,flux_F150W,fluxerr_F150W\n" + "\n".join(rows) + "\n")
    return path


def four_catalogs(lake: Lake, tmp_path) -> None:
    """Four catalogs in one field: three near dec -73, one near -85 (one file each)."""
    for k, decs in enumerate([[-73.4, -73.5], [-73.1, -73.2], [-72.9, -73.0], [-85.2, -85.3]]):
        ingest_catalog(lake, write_csv(tmp_path / f"c{k}.csv", decs, f"s{k}_"), field_id="f1", name=f"c{k}")


def add_actions(lake: Lake, table: str) -> list[dict]:
    out = []
    for f in sorted((lake.table_path(table) / "_delta_log").glob("*.json")):
        for line in f.read_text().splitlines():
            if line.strip() and "add" in (a := json.loads(line)):
                out.append(a["add"])
    return out


def test_every_add_action_has_min_max_and_null_counts(lake, tmp_path):
    four_catalogs(lake, tmp_path)
    seen = 0
    for table in TABLES:
        if not lake.exists(table):
            continue
        for add in add_actions(lake, table):
            stats = json.loads(add["stats"])
            assert stats["numRecords"] > 0, (table, add["path"])
            assert stats["minValues"] and stats["maxValues"] and stats["nullCount"], (table, add["path"])
            seen += 1
    assert seen >= 8  # detections and photometry: 4 each, by the fast path
    dets = add_actions(lake, "detections")
    assert len(dets) == 4
    low = json.loads(dets[3]["stats"])
    assert (low["minValues"]["dec"], low["maxValues"]["dec"]) == (-85.3, -85.2)
    assert low["nullCount"]["dec"] == 0 and "field_id" not in low["nullCount"]  # a partition column
    ts = json.loads(add_actions(lake, "ingests")[0]["stats"])["minValues"]["committed_at"]
    assert ts.endswith("Z") and len(ts) == len("2024-01-01T12:00:00.123Z")


def test_deltalake_reads_the_statistics_right(lake, tmp_path):
    four_catalogs(lake, tmp_path)
    actions = pa.table(
        DeltaTable(str(lake.table_path("detections"))).get_add_actions(flatten=True)
    ).to_pydict()
    t = lake.read("detections")
    for path, lo, hi, n in zip(
        actions["path"], actions["min.dec"], actions["max.dec"], actions["null_count.dec"], strict=True
    ):
        mine = ds.dataset(str(lake.table_path("detections") / path)).to_table(columns=["dec"])["dec"]
        mm = pc.min_max(mine)
        assert (lo, hi, n) == (mm["min"].as_py(), mm["max"].as_py(), 0)
    assert sorted(actions["num_records"]) == [2, 2, 2, 2] and t.num_rows == 8


def test_engines_skip_files_by_the_statistics(lake, tmp_path):
    four_catalogs(lake, tmp_path)
    path = str(lake.table_path("detections"))
    dset = DeltaTable(path).to_pyarrow_dataset()
    frags = list(dset.get_fragments(filter=pc.field("dec") < -80))
    assert len(list(dset.get_fragments())) == 4
    assert len(frags) == 1  # pruned by the add actions' statistics, before any file is opened
    got = pl.scan_delta(path).filter(pl.col("dec") < -80).select("source_id").collect()
    assert sorted(got["source_id"].to_list()) == ["s3_0", "s3_1"]


def test_statistics_are_bounds_or_absent():
    import datetime as dt

    from catalog.lake.deltastats import delta_stats

    t = pa.table(
        {
            "x": [1.0, float("nan")],  # NaN: no bound every engine agrees on
            "ts": pa.array(
                [dt.datetime(2024, 1, 1, 0, 0, 0, 1500, tzinfo=dt.UTC)] * 2, pa.timestamp("us", "UTC")
            ),
            "long": ["a" * 40, "b" * 40],
            "l": [[1.0], None],
            "none": pa.array([None, None], pa.float64()),
        }
    )
    s = json.loads(delta_stats(t))
    assert s["numRecords"] == 2 and "x" not in s["minValues"] and "none" not in s["minValues"]
    assert (s["minValues"]["ts"], s["maxValues"]["ts"]) == (
        "2024-01-01T00:00:00.001Z",
        "2024-01-01T00:00:00.002Z",
    )
    assert s["minValues"]["long"] == "a" * 32 and "long" not in s["maxValues"]
    assert "l" not in s["nullCount"] and s["nullCount"]["none"] == 2


def test_rows_of_other_writers_are_not_orphans(lake, tmp_path, cli):
    import datetime as dt

    from deltalake import write_deltalake

    from catalog.queries.connection import connect

    ingest_catalog(lake, write_csv(tmp_path / "a.csv", [-73.4, -73.5], "a"), field_id="f1", name="a")
    mine = lake.read("detections")
    later_gccat_like_id = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)).strftime(
        "%Y%m%dT%H%M%S-0123abcd"
    )
    # Another Delta writer appends rows with ingest ids that gccat never began: one id of its
    # own making, one shaped like gccat's (made after this lake's gccat began tagging).
    other = pa.concat_tables(
        [
            mine.slice(0, 1).set_column(
                mine.schema.get_field_index("ingest_id"), "ingest_id", pa.array([i], pa.string())
            )
            for i in ("external-run-1", later_gccat_like_id)
        ]
    )
    write_deltalake(str(lake.table_path("detections")), other, mode="append", partition_by=["field_id"])
    # gccat's own orphan: a transaction that appended and never committed.
    with lake.transaction("catalog") as tx:
        rows = mine.set_column(
            mine.schema.get_field_index("ingest_id"), "ingest_id", pa.array([tx.ingest_id] * 2, pa.string())
        )
        tx.append("detections", rows)
    found = lake.doctor()
    assert found == {"detections": 2} and found.foreign_rows == {"detections": 2}
    res = cli("doctor", "--clean", "--lake", lake.root)
    assert res.exit_code == 0, res.output
    assert "detections: 2 orphan rows removed" in res.output
    assert "detections: 2 rows of other writers" in res.output
    ids = lake.read("detections")["ingest_id"].to_pylist()
    assert sorted(set(ids) - set(mine["ingest_id"].to_pylist())) == sorted(other["ingest_id"].to_pylist())
    again = lake.doctor()
    assert again == {} and again.foreign_rows == {"detections": 2}
    con = connect(lake)
    assert con.execute("SELECT count(*) FROM detections").fetchall() == [(2,)]
