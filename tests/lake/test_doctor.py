"""gccat doctor: it removes only what killed writers left, never committed data or old versions.

Writers run in real child processes (``tests/lake/crash_children.py``); they are killed with SIGKILL
or left to commit while doctor runs beside them.
"""

import os
import shutil
import time
import uuid
from pathlib import Path

import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

from catalog.lake import Lake
from catalog.lake.schemas import TABLES
from catalog.queries.connection import connect
from ingest.catalog import ingest_catalog
from ingest.demo import bundled

from ..conftest import GLASS, SMACS
from .crash_children import Child, forkserver
from .test_crash import big_catalog, fingerprint

AS1063 = [str(bundled(f"as1063_lenstool_patch_bin4_{a}-arcsec-deflect.fits")) for a in "xy"]


@pytest.fixture(scope="module")
def ctx():
    return forkserver()


def rows_per_ingest(lake: Lake) -> dict[tuple[str, str], int]:
    """(table, ingest_id) -> rows in the table's current files, committed or not."""
    out = {}
    for table in TABLES:
        if table == "ingests" or not lake.exists(table):
            continue
        ids = lake.read(table, columns=["ingest_id"])["ingest_id"]
        counts = pc.value_counts(ids)
        for v, n in zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True):
            out[(table, v)] = n
    return out


def assert_committed_rows_all_there(lake: Lake, before: dict | None = None) -> None:
    """Every committed ingest has all its rows (n_rows/n_photometry of ``ingests``), and every
    row of a committed ingest counted in ``before`` is still there."""
    rows = rows_per_ingest(lake)
    ingests = lake.read("ingests").to_pylist()
    for ing in ingests:
        i = ing["ingest_id"]
        if ing["kind"] == "catalog":
            assert rows.get(("detections", i), 0) == ing["n_rows"], ing["name"]
            assert rows.get(("photometry", i), 0) == ing["n_photometry"], ing["name"]
        elif ing["kind"] == "lens_map":
            assert rows.get(("lens_map_pixels", i), 0) == ing["n_rows"], ing["name"]
    committed = {ing["ingest_id"] for ing in ingests}
    for (table, i), n in (before or {}).items():
        if i in committed:
            assert rows.get((table, i), 0) == n, (table, i)


# What the parent does when: wait for a stage the writer reports inside its transaction (it
# holds the writer lock then, and doctor has to wait for it), or for a time after it starts.
TIMINGS = [
    ("catalog", "stage", "writing detections"),
    ("catalog", "stage", "writing photometry"),
    ("catalog", "stage", "committing"),
    ("catalog", "delay", 0.0),
    ("catalog", "delay", 0.4),
    ("lens_map", "stage", "writing x-arcsec-deflect"),
    ("lens_map", "stage", "writing gamma"),
    ("lens_map", "delay", 0.2),
]


@pytest.mark.slow
def test_doctor_clean_beside_a_committing_writer_keeps_all_its_rows(tmp_path, ctx):
    lake = Lake.create(tmp_path / "lake")
    ingest_catalog(lake, SMACS, field_id="smacs0723", name="faisst2022")
    big = big_catalog(tmp_path / "big.parquet", 100_000, 7)
    for k, (op, how, when) in enumerate(TIMINGS):
        before = rows_per_ingest(lake)
        if op == "catalog":
            child = Child(ctx, "catalog", lake.root, str(big), "as1063", f"big{k}")
        else:
            child = Child(ctx, "lens_map", lake.root, AS1063, "as1063", f"model{k}")
        if how == "stage":
            child.wait_for("stage", stage=when)
        else:
            child.wait_for("go")
            time.sleep(when)  # the writer may or may not hold the lock yet: either is fine
        report = lake.doctor(clean=True)
        assert child.finish(), child.messages  # the writer was not disturbed
        assert_committed_rows_all_there(lake, before)
        assert report == {}, (op, how, when, report)  # it had nothing to clean
        assert lake.version() == k + 2
    n = connect(lake).execute("SELECT count(*) FROM detections").fetchall()[0][0]
    assert n == 178 + 100_000 * sum(t[0] == "catalog" for t in TIMINGS)
    assert lake.doctor() == {}


def _on_disk(table_dir: Path) -> set[str]:
    """Data files under a table, relative to it (Delta's own _delta_log left out)."""
    return {
        p.relative_to(table_dir).as_posix()
        for p in table_dir.rglob("*.parquet*")
        if "_delta_log" not in p.parts
    }


def _in_any_version(lake: Lake, table: str) -> set[str]:
    """Files of every Delta version of a table, as deltalake itself lists them."""
    tdir = lake.table_path(table)
    if not lake.exists(table):
        return set()
    out = set()
    for v in range(lake.delta(table).version() + 1):
        for uri in DeltaTable(str(tdir), version=v).file_uris():
            out.add(Path(uri.removeprefix("file://")).relative_to(tdir).as_posix())
    return out


def test_doctor_reports_and_removes_the_files_of_killed_writers(tmp_path, ctx, cli):
    lake = Lake.create(tmp_path / "lake")
    ingest_catalog(lake, SMACS, field_id="smacs0723", name="faisst2022")
    ingest_catalog(lake, GLASS, field_id="abell2744", name="glass")
    big = big_catalog(tmp_path / "big.parquet", 150_000, 8)
    # 1. A writer killed between its data commits and its ingests row leaves orphan rows;
    # doctor --clean deletes them, so their files stay only for the older table versions.
    child = Child(ctx, "catalog", lake.root, str(big), "as1063", "killed1")
    child.wait_for("stage", stage="writing photometry")
    child.kill()
    assert lake.doctor(clean=True).get("detections") == 150_000
    old_only = _in_any_version(lake, "detections") - set(
        Path(f).relative_to(lake.table_path("detections")).as_posix() for f in lake.files("detections")
    )
    assert old_only  # files that only older versions of detections reference
    # 2. A writer killed while it writes a Parquet file, before any Delta commit of it.
    phot = lake.table_path("photometry")
    for _attempt in range(3):
        seen = _on_disk(phot)
        child = Child(ctx, "catalog", lake.root, str(big), "as1063", f"killed2_{_attempt}")
        child.wait_for("stage", stage="writing photometry")
        while not (_on_disk(phot) - seen) and child.proc.is_alive():
            pass
        child.kill()
        if _on_disk(phot) - _in_any_version(lake, "photometry"):
            break  # (else its commit came first: try again)
    # 3. What other killed writers leave: a complete file and a truncated one in a partition
    # directory, a staged upload, one in a partition a killed writer created, a copy in an
    # unpartitioned table, and a temporary commit in _delta_log.
    det = lake.table_path("detections")
    some = Path(lake.files("detections")[0])
    fakes = {
        det / "field_id=smacs0723" / f"part-{uuid.uuid4().hex}.snappy.parquet": some.read_bytes(),
        det / "field_id=smacs0723" / f"part-{uuid.uuid4().hex}.snappy.parquet": some.read_bytes()[:1000],
        phot / "field_id=abell2744" / f"part-00001-{uuid.uuid4()}-c000.zstd.parquet#1": b"PAR1",
        det / "field_id=newfield" / f"part-{uuid.uuid4().hex}.snappy.parquet": b"PAR1\0\0",
        lake.table_path("ingests") / f"part-00000-{uuid.uuid4()}-c000.zstd.parquet": Path(
            lake.files("ingests")[0]
        ).read_bytes(),
        det / "_delta_log" / f"_commit_{uuid.uuid4()}.json.tmp": sorted((det / "_delta_log").glob("*.json"))[
            -1
        ].read_bytes(),
    }
    for path, data in fakes.items():
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
    expected = {(p.relative_to(lake.root).as_posix(), len(d)) for p, d in fakes.items()}
    for table in TABLES:
        tdir = lake.table_path(table)
        if tdir.is_dir():
            expected |= {
                ((tdir / f).relative_to(lake.root).as_posix(), (tdir / f).stat().st_size)
                for f in _on_disk(tdir) - _in_any_version(lake, table)
            }
    versions = range(lake.version() + 1)
    before = {v: fingerprint(lake, v) for v in versions}
    referenced = {t: _in_any_version(lake, t) for t in TABLES}

    report = lake.doctor()
    assert {(f.path, f.size) for f in report.files} == expected
    assert report.n_files == len(expected) > len(fakes)  # the real kill left one too
    assert report.n_bytes == sum(size for _, size in expected)
    assert {f.kind for f in report.files if f.path.endswith(".json.tmp")} == {"log"}
    assert all(lake.root.joinpath(p).exists() for p, _ in expected)  # reported, not removed
    res = cli("doctor", "--lake", lake.root)
    assert res.exit_code == 0
    assert f"total: {len(expected)} unreferenced files, {report.n_bytes} bytes" in res.stdout
    for table in TABLES:
        n = sum(p.startswith(f"{table}/") and not p.endswith(".tmp") for p, _ in expected)
        if n:
            assert f"{table}: {n} unreferenced data files" in res.stdout, res.stdout
    assert "detections: 3 unreferenced data files" in res.stdout  # the fakes; none of Delta's
    assert "1 temporary commit files" in res.stdout and "(use --clean)" in res.stdout

    res = cli("doctor", "--clean", "--lake", lake.root)
    assert res.exit_code == 0 and "removed" in res.stdout
    assert not any(lake.root.joinpath(p).exists() for p, _ in expected)
    assert not (det / "field_id=newfield").exists()  # the directory the killed writer made
    for table, files in referenced.items():  # every version's files stay, older ones too
        assert all((lake.table_path(table) / f).exists() for f in files), table
        if lake.exists(table):
            for v in range(lake.delta(table).version() + 1):
                DeltaTable(str(lake.table_path(table)), version=v).to_pyarrow_table()
    assert all((det / f).exists() for f in old_only)
    assert {v: fingerprint(lake, v) for v in versions} == before
    assert lake.doctor() == {}
    res = cli("doctor", "--lake", lake.root)
    assert "lake is consistent" in res.stdout


def test_files_known_only_to_a_checkpoint_are_kept(tmp_path):
    """After expired commits are cleaned up, the checkpoint still names the live files; files
    older than the kept log cannot be judged and stay."""
    lake = Lake.create(tmp_path / "lake")
    ingest_catalog(lake, SMACS, field_id="smacs0723", name="faisst2022")
    ingest_catalog(lake, GLASS, field_id="abell2744", name="glass")
    det = lake.table_path("detections")
    old_stray = det / "field_id=smacs0723" / f"part-{uuid.uuid4().hex}.snappy.parquet"
    old_stray.write_bytes(b"PAR1")
    os.utime(old_stray, (1_000_000_000, 1_000_000_000))  # written long before the kept log
    with lake.lock():
        dt = lake.delta("detections")
        dt.alter.set_table_properties({"delta.logRetentionDuration": "interval 0 seconds"})
        dt = lake.delta("detections")
        dt.create_checkpoint()
        dt.cleanup_metadata()
    log = sorted(p.name for p in (det / "_delta_log").iterdir())
    assert "00000000000000000000.json" not in log and any("checkpoint" in n for n in log)
    for f in lake.files("detections"):  # newer than the log: judged by the checkpoint alone
        os.utime(f)
    new_stray = det / "field_id=abell2744" / f"part-{uuid.uuid4().hex}.snappy.parquet"
    shutil.copy(lake.files("detections")[0], new_stray)
    report = lake.doctor()
    assert [f.path for f in report.files] == [new_stray.relative_to(lake.root).as_posix()]
    lake.doctor(clean=True)
    assert old_stray.exists() and not new_stray.exists()
    n = sum(lake.read("ingests")["n_rows"].to_pylist())
    assert connect(lake).execute("SELECT count(*) FROM detections").fetchall()[0][0] == n
