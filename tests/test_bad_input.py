"""Bad input: exit code 2, one line naming file, column and row, and an unchanged lake."""

import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy.table import Table

from catalog.lake import Lake
from ingest.catalog import ingest_catalog

from .conftest import SMACS, snapshot

HEADER = "id,ra,dec,flux_F150W,fluxerr_F150W\n"


def _csv(tmp_path, body, header=HEADER, name="cat.csv"):
    p = tmp_path / name
    p.write_text(header + body)
    return p


GOOD = "a,110.80,-73.45,10.0,1.0\nb,110.81,-73.46,12.0,1.5\n"


def case_missing_coordinate(tmp_path):
    return _csv(tmp_path, "a,110.8,10,1\n", header="id,ra,flux_F150W,fluxerr_F150W\n"), \
        ["dec"]


def case_misspelt_coordinate(tmp_path):
    return _csv(tmp_path, "a,110.8,-73.4,10,1\n", header="id,ra,decl,flux_F150W,fluxerr_F150W\n"), \
        ["dec", "decl"]


def case_ra_out_of_range(tmp_path):
    return _csv(tmp_path, GOOD + "c,360.5,-73.4,1,1\n"), ["'ra'", "row 3", "360.5"]


def case_dec_out_of_range(tmp_path):
    return _csv(tmp_path, GOOD + "c,110.8,-90.5,1,1\n"), ["'dec'", "row 3"]


def case_bad_sexagesimal(tmp_path):
    return _csv(tmp_path, "a,07:23:20.3,-73:27:18,1,1\nb,07:23:99x,-73:27:18,1,1\n"), \
        ["'ra'", "row 2", "sexagesimal"]


def case_non_numeric_flux(tmp_path):
    return _csv(tmp_path, GOOD + "c,110.8,-73.4,bright,1\n"), ["flux_F150W", "row 3", "bright"]


def case_negative_error(tmp_path):
    return _csv(tmp_path, GOOD + "c,110.8,-73.4,5,-1\n"), ["fluxerr_F150W", "row 3", "negative"]


def case_unknown_band(tmp_path):
    return _csv(tmp_path, "a,110.8,-73.4,10,1\n", header="id,ra,dec,flux_F151W,fluxerr_F151W\n"), \
        ["flux_F151W", "unknown band"]


def case_unparsable_unit(tmp_path):
    t = Table({"id": ["a"], "ra": [110.8], "dec": [-73.4], "flux_F150W": [1.0]})
    t["flux_F150W"].unit = "erg / s"
    p = tmp_path / "cat.ecsv"
    t.write(p)
    return p, ["flux_F150W", "unit"]


def case_duplicate_ids(tmp_path):
    return _csv(tmp_path, GOOD + "a,110.82,-73.4,5,1\n"), ["'id'", "row 3", "duplicate"]


def case_empty_file(tmp_path):
    p = tmp_path / "cat.csv"
    p.write_text("")
    return p, ["empty"]


def case_header_only(tmp_path):
    return _csv(tmp_path, ""), ["no data rows"]


def case_truncated_fits(tmp_path):
    t = Table.read(SMACS, format="ascii.csv", comment="#")
    p = tmp_path / "cat.fits"
    t.write(p)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2 + 100])
    return p, ["FITS", "corrupt"]


def case_corrupt_parquet(tmp_path):
    p = tmp_path / "cat.parquet"
    pq.write_table(pa.table({"id": ["a"], "ra": [1.0], "dec": [2.0]}), p)
    data = bytearray(p.read_bytes())
    data[-12:-4] = b"\x00" * 8  # clobber the footer length
    p.write_bytes(bytes(data))
    return p, ["Parquet", "corrupt"]


CASES = [v for k, v in sorted(globals().items()) if k.startswith("case_")]


@pytest.mark.parametrize("make", CASES, ids=[c.__name__[5:] for c in CASES])
def test_bad_catalog_is_refused_and_the_lake_is_unchanged(make, tmp_path, cli):
    lake = Lake.create(tmp_path / "lake")
    ingest_catalog(lake, SMACS, field_id="smacs0723", name="faisst2022")
    before = snapshot(lake)
    path, expected = make(tmp_path)
    res = cli("ingest", "catalog", path, "--field", "smacs0723", "--name", "new",
              "--lake", lake.root)
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("gccat: error: ")
    assert str(path) in lines[0]
    for word in expected:
        assert word.lower() in lines[0].lower(), lines[0]
    assert "Traceback" not in res.output
    assert snapshot(lake) == before


def test_zero_error_is_kept_with_a_warning_not_an_error(tmp_path, cli):
    lake = Lake.create(tmp_path / "lake")
    p = _csv(tmp_path, GOOD + "c,110.8,-73.4,5,0.0\n")
    res = cli("ingest", "catalog", p, "--field", "f1", "--name", "c", "--lake", lake.root)
    assert res.exit_code == 0, res.output
    assert "errors of exactly 0" in res.stderr


@pytest.mark.parametrize("field", ["../x", "a/b", ".hidden", "x" * 80, ""])
def test_unsafe_field_ids_are_refused(field, tmp_path, cli):
    lake = Lake.create(tmp_path / "lake")
    before = snapshot(lake)
    res = cli("ingest", "catalog", _csv(tmp_path, GOOD), "--field", field, "--name", "c",
              "--lake", lake.root)
    assert res.exit_code == 2 and "not a simple name" in res.stderr
    assert snapshot(lake) == before
    assert not (tmp_path / "x").exists()


def test_a_path_that_is_not_a_lake_is_refused(tmp_path, cli):
    (tmp_path / "notalake").mkdir()
    (tmp_path / "notalake" / "data.txt").write_text("keep me")
    for args in (["sql", "SELECT 1"], ["tables"],
                 ["ingest", "catalog", _csv(tmp_path, GOOD), "--field", "f", "--name", "c"]):
        res = cli(*args, "--lake", tmp_path / "notalake")
        assert res.exit_code == 2 and "is not a gccat lake" in res.stderr
    res = cli("init", "--lake", tmp_path / "notalake")
    assert res.exit_code == 2 and "non-empty" in res.stderr
    assert sorted(p.name for p in (tmp_path / "notalake").iterdir()) == ["data.txt"]


def test_bad_mapping_file_is_refused(tmp_path, cli):
    lake = Lake.create(tmp_path / "lake")
    before = snapshot(lake)
    m = tmp_path / "map.toml"
    m.write_text('[columns]\nra = "RA_missing"\ndec = "dec"\n')
    res = cli("ingest", "catalog", _csv(tmp_path, GOOD), "--field", "f", "--name", "c",
              "--mapping", m, "--lake", lake.root)
    assert res.exit_code == 2 and "RA_missing" in res.stderr
    assert snapshot(lake) == before
    shutil.rmtree(lake.root)
