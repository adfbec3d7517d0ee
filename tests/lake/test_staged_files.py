"""Transaction.files: large tables as several files in one Delta commit, written on threads
while the next part is built; an error anywhere leaves the lake exactly as it was."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import catalog.lake as lakemod
from catalog.lake import Lake, _files_of
from catalog.lake.schemas import IngestKind
from ingest.catalog import ingest_catalog

from ..conftest import snapshot
from .test_delta_engines import add_actions


def wide_csv(path, n, bands=("F090W", "F150W", "F200W", "F277W", "F444W")):
    rng = np.random.default_rng(3)
    ra, dec = 110.8 + rng.uniform(0, 0.01, n), -73.4 + rng.uniform(0, 0.01, n)
    head = "id,ra,dec," + ",".join(f"flux_{b},fluxerr_{b}" for b in bands)
    rows = [
        f"s{i},{ra[i]:.7f},{dec[i]:.7f}," + ",".join(f"{10 + i + k},{1 + k}" for k in range(len(bands)))
        for i in range(n)
    ]
    path.write_text(head + "\n" + "\n".join(rows) + "\n")
    return path


def live_rows(lake: Lake, table: str) -> list[tuple]:
    t = lake.live(table).drop_columns(["ingest_id"])
    return sorted(tuple(r.values()) for r in t.to_pylist())


def test_files_of_gathers_parts_up_to_the_file_size():
    parts = [pa.table({"x": np.arange(k)}) for k in (3, 3, 3, 7, 1, 0, 2)]
    sizes = [f.num_rows for f in _files_of(parts, 6)]
    assert sizes == [6, 3, 7, 3]  # a part bigger than a file is a file of its own
    assert pc.sum(pa.concat_tables(list(_files_of(parts, 6)))["x"]).as_py() == sum(
        k * (k - 1) // 2 for k in (3, 3, 3, 7, 1, 0, 2)
    )


def test_a_large_photometry_table_is_several_files_in_one_commit(tmp_path, monkeypatch):
    src = wide_csv(tmp_path / "cat.csv", 40)
    one = Lake.create(tmp_path / "one")
    ingest_catalog(one, src, field_id="f", name="c")
    monkeypatch.setattr(lakemod, "FILE_ROWS", 80)  # two bands of 40 rows per file
    many = Lake.create(tmp_path / "many")
    v0 = many.delta("photometry").version()
    rep = ingest_catalog(many, src, field_id="f", name="c")
    assert rep.n_photometry == 200
    assert len(one.files("photometry")) == 1
    assert len(many.files("photometry")) == 3  # bands 2 + 2 + 1
    assert many.delta("photometry").version() == v0 + 1  # one Delta commit
    adds = add_actions(many, "photometry")
    assert sorted(json.loads(a["stats"])["numRecords"] for a in adds[-3:]) == [40, 80, 80]
    for table in ("detections", "photometry"):
        assert live_rows(many, table) == live_rows(one, table)


def _parts_then_error(parts: list[pa.Table]):
    yield from parts
    raise RuntimeError("building the next part failed")


def test_an_error_while_parts_are_built_leaves_the_lake_as_it_was(tmp_path, monkeypatch):
    lake = Lake.create(tmp_path / "lake")
    src = wide_csv(tmp_path / "cat.csv", 40)
    ingest_catalog(lake, src, field_id="f", name="c")
    before = snapshot(lake)
    monkeypatch.setattr(lakemod, "FILE_ROWS", 40)
    det = lake.live("detections")
    phot = lake.live("photometry")
    new_field = [
        t.set_column(t.schema.get_field_index("field_id"), "field_id", pa.array(["g"] * t.num_rows))
        for t in (det, phot)
    ]
    with pytest.raises(RuntimeError, match="next part"):
        with lake.transaction(IngestKind.CATALOG) as tx, tx.files(order=("detections",)) as files:
            files.add("detections", new_field[0])  # a new partition: its directory is made
            files.add("photometry", _parts_then_error([new_field[1].slice(0, 40), new_field[1].slice(40)]))
    assert snapshot(lake) == before
    assert not (lake.table_path("detections") / "field_id=g").exists()
    assert not (lake.table_path("photometry") / "field_id=g").exists()


def test_a_band_refused_late_leaves_the_lake_as_it_was(tmp_path, cli):
    lake = Lake.create(tmp_path / "lake")
    src = wide_csv(tmp_path / "cat.csv", 40)
    text = src.read_text().splitlines()
    last = text[30].split(",")
    last[-1] = "-1"  # a negative error in the last band of row 30
    text[30] = ",".join(last)
    src.write_text("\n".join(text) + "\n")
    before = snapshot(lake)
    res = cli("ingest", "catalog", src, "--field", "f", "--name", "c", "--lake", lake.root)
    assert res.exit_code == 2, res.output
    assert "fluxerr_F444W" in res.output and "row 30" in res.output
    assert snapshot(lake) == before
