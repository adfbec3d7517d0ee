"""Lake versions survive Delta maintenance: compaction, checkpoints and vacuum, by gccat
(``gccat maintain``) or by another Delta engine; and lakes made before ``ingests.lake_version``
read as they always did."""

import shutil
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from catalog.errors import GccatError
from catalog.lake import Lake
from catalog.lake.maintain import maintain_lake
from catalog.lake.schemas import INGESTS, TABLES
from catalog.queries.connection import connect
from ingest.catalog import ingest_catalog

from ..conftest import Cli
from .test_delta_engines import write_csv

VIEWS = ("detections", "photometry", "live_ingests", "raw_detections", "field_summary")


def three_ingests(lake: Lake, tmp_path: Path) -> None:
    """Three commits, the third superseding the first: versions 1-3 show different rows."""
    ingest_catalog(lake, write_csv(tmp_path / "a.csv", [-73.4, -73.5], "a"), field_id="f1", name="a")
    ingest_catalog(lake, write_csv(tmp_path / "b.csv", [-73.1], "b"), field_id="f1", name="b")
    ingest_catalog(
        lake,
        write_csv(tmp_path / "a2.csv", [-85.0, -85.1, -85.2], "a"),
        field_id="f1",
        name="a",
        replace=True,
    )


def answers(lake: Lake) -> dict:
    """Every view's rows at every lake version."""
    out = {}
    for v in range(lake.version() + 1):
        con = connect(lake, as_of=v)
        for view in VIEWS:
            out[(v, view)] = con.execute(f"SELECT * FROM {view} ORDER BY ALL").fetchall()
        out[(v, "ingests_py")] = sorted(lake.ingests(v)["ingest_id"].to_pylist())
    return out


def earlier(after: dict, before: dict) -> tuple[dict, dict]:
    """The answers of the versions in ``before``, without raw_ tables (every row ever stored,
    so a later commit adds to them at every version)."""
    keep = {k for k in before if not k[1].startswith("raw_")}
    return {k: after[k] for k in keep}, {k: before[k] for k in keep}


def data_files_on_disk(lake: Lake) -> int:
    return sum(1 for p in lake.root.rglob("*.parquet") if "_delta_log" not in p.parts)


def test_maintain_changes_no_version_and_no_answer(lake, tmp_path):
    three_ingests(lake, tmp_path)
    before, version = answers(lake), lake.version()
    assert version == 3
    assert [len(before[(v, "detections")]) for v in range(4)] == [0, 2, 3, 4]
    active = sum(len(lake.files(t)) for t in TABLES)
    on_disk = data_files_on_disk(lake)
    report = maintain_lake(lake, retention_hours=0)
    assert lake.version() == version == report.lake_version
    assert answers(lake) == before
    assert (report.files_before, sum(len(lake.files(t)) for t in TABLES)) == (active, report.files_after)
    assert report.files_after < active and data_files_on_disk(lake) < on_disk
    assert {t.table: t.files_after for t in report.tables if t.table in ("ingests", "detections")} == {
        "ingests": 1,
        "detections": 1,
    }
    # The next commit is version 4; the earlier versions still answer as before.
    ingest_catalog(lake, write_csv(tmp_path / "c.csv", [-70.0], "c"), field_id="f1", name="c")
    assert lake.version() == 4
    a, b = earlier(answers(lake), before)
    assert a == b


def test_default_retention_keeps_files_an_open_reader_may_read(lake, tmp_path):
    three_ingests(lake, tmp_path)
    on_disk = data_files_on_disk(lake)
    report = maintain_lake(lake)
    assert report.files_after < report.files_before
    assert not any(t.vacuumed for t in report.tables) and data_files_on_disk(lake) == on_disk + 3


def external_optimize_and_vacuum(lake: Lake) -> None:
    """What another Delta engine's maintenance does: compaction, then vacuum of everything."""
    for table in TABLES:
        if lake.exists(table):
            dt_ = DeltaTable(str(lake.table_path(table)))
            dt_.optimize.compact()
            dt_.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)


def test_as_of_after_an_external_vacuum_answers_as_before(lake, tmp_path):
    three_ingests(lake, tmp_path)
    cli = Cli()
    query = "SELECT source_id, dec FROM detections ORDER BY source_id"
    before = [
        cli("sql", query, "--as-of", v, "--lake", lake.root, "--print-format", "csv").stdout
        for v in (1, 2, 3)
    ]
    external_optimize_and_vacuum(lake)
    for v in (1, 2, 3):
        res = cli("sql", query, "--as-of", v, "--lake", lake.root, "--print-format", "csv")
        assert res.exit_code == 0, res.output
        assert res.stdout == before[v - 1]
    assert "a0" in before[1] and "b0" in before[1] and "-85" not in before[1]


def test_a_file_gone_from_disk_is_one_line_exit_2(lake, tmp_path):
    three_ingests(lake, tmp_path)
    Path(lake.files("detections")[0]).unlink()
    res = Cli()("sql", "SELECT count(*) FROM detections", "--as-of", 2, "--lake", lake.root)
    assert res.exit_code == 2
    line = res.output.strip()
    assert "\n" not in line and "Traceback" not in line
    assert "lake version 2" in line and "vacuumed" in line and "'detections'" in line
    with pytest.raises(GccatError, match="table 'detections' cannot be read: a file .* was vacuumed"):
        lake.live("detections")


def make_it_an_old_lake(lake: Lake) -> None:
    """Rewrite ``ingests`` as gccat before ``lake_version`` wrote it: no such column, one Delta
    commit per ingest, in commit order."""
    rows = lake.read("ingests").sort_by("committed_at")
    old = pa.schema([f for f in INGESTS if f.name != "lake_version"])
    path = lake.table_path("ingests")
    shutil.rmtree(path)
    DeltaTable.create(str(path), old, name="ingests")
    for i in range(rows.num_rows):
        write_deltalake(str(path), rows.slice(i, 1).select(old.names).cast(old), mode="append")


def test_old_lakes_keep_their_versions(lake, tmp_path):
    three_ingests(lake, tmp_path)
    before = answers(lake)
    make_it_an_old_lake(lake)
    assert "lake_version" not in lake.read("ingests").column_names
    assert lake.version() == 3 and answers(lake) == before
    ingest_catalog(lake, write_csv(tmp_path / "c.csv", [-70.0], "c"), field_id="f1", name="c")
    versions = lake.committed().sort_by("committed_at")
    assert versions["lake_version"].to_pylist() == [1, 2, 3, 4]
    assert lake.read("ingests")["lake_version"].null_count == 3  # the old rows stay as written
    maintain_lake(lake, retention_hours=0)
    a, b = earlier(answers(lake), before)
    assert lake.version() == 4 and a == b


def test_gccat_maintain_command(lake, tmp_path, cli):
    three_ingests(lake, tmp_path)
    res = cli("maintain", "--retention-hours", 0, "--lake", lake.root)
    assert res.exit_code == 0, res.output
    assert "detections: 3 files compacted into 1" in res.output
    assert "lake version 3 (unchanged)" in res.output
    bad = cli("maintain", "--retention-hours", -1, "--lake", lake.root)
    assert bad.exit_code == 2 and len(bad.output.strip().splitlines()) == 1


def test_live_tables_show_any_engine_gccat_s_rows(lake, tmp_path, cli):
    import polars as pl

    from catalog.queries.live import materialize_live

    three_ingests(lake, tmp_path)
    res = cli("maintain", "--materialize-live", "--lake", lake.root)
    assert res.exit_code == 0, res.output
    assert "live rows of lake version 3" in res.output
    con = connect(lake)
    for table, view in (
        ("detections", "detections"),
        ("photometry", "photometry"),
        ("ingests", "live_ingests"),
    ):
        got = pl.scan_delta(str(lake.root / "live" / table)).collect()
        want = con.execute(f"SELECT count(*) FROM {view}").fetchall()[0][0]
        assert got.height == want, table
    assert sorted(pl.scan_delta(str(lake.root / "live" / "detections")).collect()["dec"].to_list()) == [
        -85.2,
        -85.1,
        -85.0,
        -73.1,
    ]
    assert pl.scan_delta(str(lake.table_path("detections"))).collect().height == 6  # all stored rows
    # The next materialisation replaces the rows (one commit), and doctor leaves live/ alone.
    ingest_catalog(lake, write_csv(tmp_path / "c.csv", [-70.0], "c"), field_id="f1", name="c")
    version, rows = materialize_live(lake)
    assert version == 4 and rows["detections"] == 5
    assert pl.scan_delta(str(lake.root / "live" / "detections")).collect().height == 5
    assert lake.doctor() == {}
