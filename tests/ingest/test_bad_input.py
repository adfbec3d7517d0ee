"""Bad input: exit code 2, one line naming file, column and row, and an unchanged lake."""

import shutil
import warnings

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy.io import fits
from astropy.table import Table

from catalog.errors import GccatError
from catalog.lake import Lake
from ingest.catalog import ingest_catalog, ingest_fields

from ..conftest import SMACS, snapshot

HEADER = "id,ra,dec,flux_F150W,fluxerr_F150W\n"


def _csv(tmp_path, body, header=HEADER, name="cat.csv"):
    p = tmp_path / name
    p.write_text(header + body)
    return p


GOOD = "a,110.80,-73.45,10.0,1.0\nb,110.81,-73.46,12.0,1.5\n"


def case_missing_coordinate(tmp_path):
    return _csv(tmp_path, "a,110.8,10,1\n", header="id,ra,flux_F150W,fluxerr_F150W\n"), ["dec"]


def case_misspelt_coordinate(tmp_path):
    return _csv(tmp_path, "a,110.8,-73.4,10,1\n", header="id,ra,decl,flux_F150W,fluxerr_F150W\n"), [
        "dec",
        "decl",
    ]


def case_ra_out_of_range(tmp_path):
    return _csv(tmp_path, GOOD + "c,360.5,-73.4,1,1\n"), ["'ra'", "row 3", "360.5"]


def case_dec_out_of_range(tmp_path):
    return _csv(tmp_path, GOOD + "c,110.8,-90.5,1,1\n"), ["'dec'", "row 3"]


def case_bad_sexagesimal(tmp_path):
    return _csv(tmp_path, "a,07:23:20.3,-73:27:18,1,1\nb,07:23:99x,-73:27:18,1,1\n"), [
        "'ra'",
        "row 2",
        "sexagesimal",
    ]


def case_non_numeric_flux(tmp_path):
    return _csv(tmp_path, GOOD + "c,110.8,-73.4,bright,1\n"), ["flux_F150W", "row 3", "bright"]


def case_negative_error(tmp_path):
    return _csv(tmp_path, GOOD + "c,110.8,-73.4,5,-1\n"), ["fluxerr_F150W", "row 3", "negative"]


def case_unknown_band(tmp_path):
    return _csv(tmp_path, "a,110.8,-73.4,10,1\n", header="id,ra,dec,flux_F151W,fluxerr_F151W\n"), [
        "flux_F151W",
        "unknown band",
    ]


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


def _parquet(tmp_path, table, name="cat.parquet"):
    p = tmp_path / name
    pq.write_table(table, p)
    return p


def _fits(tmp_path, columns, name="cat.fits"):
    p = tmp_path / name
    fits.BinTableHDU.from_columns(columns).writeto(p)
    return p


def case_duplicate_column_csv(tmp_path):
    return _csv(tmp_path, "a,110.8,110.8,-73.4,1,1\n", header="id,ra,ra,dec,flux_F150W,fluxerr_F150W\n"), [
        "'ra'",
        "two columns",
    ]


def case_duplicate_column_parquet(tmp_path):
    t = pa.table(
        [pa.array(["a"]), pa.array([110.8]), pa.array([-73.4]), pa.array([1.0])],
        names=["id", "ra", "dec", "dec"],
    )
    return _parquet(tmp_path, t), ["'dec'", "two columns"]


def case_duplicate_column_fits(tmp_path):
    p = _fits(
        tmp_path,
        [
            fits.Column(name="id", format="5A", array=np.array(["a"])),
            fits.Column(name="ra", format="D", array=[110.8]),
            fits.Column(name="rb", format="D", array=[110.9]),
            fits.Column(name="dec", format="D", array=[-73.4]),
        ],
    )
    p.write_bytes(p.read_bytes().replace(b"'rb      '", b"'ra      '"))  # astropy will not write it
    return p, ["'ra'", "two columns"]


def case_columns_differing_only_in_case(tmp_path):
    return _csv(tmp_path, "a,110.8,110.9,-73.4\n", header="id,RA,ra,dec\n"), ["'ra'", "both"]


def case_two_columns_for_one_band(tmp_path):
    return _csv(tmp_path, "a,110.8,-73.4,1,2\n", header="id,ra,dec,flux_F150W,F150W_flux\n"), [
        "'F150W_flux'",
        "flux_F150W",
        "both",
    ]


def case_mapped_list_column_parquet(tmp_path):
    t = pa.table(
        {"id": ["a", "b"], "ra": [110.8, 110.9], "dec": [-73.4, -73.4], "flux_F150W": [None, [1.0, 2.0]]}
    )
    return _parquet(tmp_path, t), ["'flux_F150W'", "row 2", "list"]


def case_mapped_vector_column_fits(tmp_path):
    p = _fits(
        tmp_path,
        [
            fits.Column(name="id", format="5A", array=np.array(["a", "b"])),
            fits.Column(name="ra", format="D", array=[110.8, 110.9]),
            fits.Column(name="dec", format="D", array=[-73.4, -73.4]),
            fits.Column(name="flux_F150W", format="3D", array=np.ones((2, 3))),
        ],
    )
    return p, ["'flux_F150W'", "row 1", "list"]


def case_mapped_binary_column_parquet(tmp_path):
    t = pa.table(
        {"id": pa.array([b"a", b"caf\xe9"], pa.binary()), "ra": [110.8, 110.9], "dec": [-73.4, -73.4]}
    )
    return _parquet(tmp_path, t), ["'id'", "row 2", "utf-8"]


def case_nan_source_id(tmp_path):
    t = pa.table({"id": [1.0, float("nan")], "ra": [110.8, 110.9], "dec": [-73.4, -73.4]})
    return _parquet(tmp_path, t), ["'id'", "row 2", "missing"]


def case_fractional_flags(tmp_path):
    return _csv(tmp_path, "a,110.8,-73.4,0\nb,110.8,-73.4,1.5\n", header="id,ra,dec,flags\n"), [
        "'flags'",
        "row 2",
        "1.5",
    ]


def case_overflowing_flags(tmp_path):
    return _csv(tmp_path, "a,110.8,-73.4,0\nb,110.8,-73.4,1e30\n", header="id,ra,dec,flags\n"), [
        "'flags'",
        "row 2",
        "64 bits",
    ]


def case_unsigned_flags_beyond_int64(tmp_path):
    t = pa.table(
        {
            "id": ["a", "b"],
            "ra": [110.8, 110.9],
            "dec": [-73.4, -73.4],
            "flags": pa.array([1, 2**64 - 1], pa.uint64()),
        }
    )
    return _parquet(tmp_path, t), ["'flags'", "row 2", "64 bits"]


def _uplim(tmp_path, value):
    return _csv(
        tmp_path,
        f"a,110.8,-73.4,3,1,false\nb,110.8,-73.4,3,1,{value}\n",
        header="id,ra,dec,flux_F150W,fluxerr_F150W,uplim_F150W\n",
    ), ["'uplim_F150W'", "row 2", value, "true/false"]


def case_upper_limit_maybe(tmp_path):
    return _uplim(tmp_path, "maybe")


def case_upper_limit_two(tmp_path):
    return _uplim(tmp_path, "2")


def _latin1(tmp_path, header, body):
    p = tmp_path / "cat.csv"
    p.write_bytes((header + body).encode("latin-1"))
    return p


def case_latin1_text_value(tmp_path):
    return _latin1(tmp_path, "id,ra,dec,notes\n", "a,110.8,-73.4,ok\nb,110.8,-73.4,café\n"), [
        "'notes'",
        "row 2",
        "utf-8",
    ]


def case_latin1_source_id(tmp_path):
    return _latin1(tmp_path, "id,ra,dec\n", "café,110.8,-73.4\n"), ["'id'", "row 1", "utf-8"]


def case_latin1_header(tmp_path):
    return _latin1(tmp_path, "id,ra,dec,é\n", "a,110.8,-73.4,1\n"), ["header", "utf-8"]


def case_fits_text_not_utf8(tmp_path):
    p = _fits(
        tmp_path,
        [
            fits.Column(name="id", format="5A", array=np.array([b"a", b"caf\xe9"])),
            fits.Column(name="ra", format="D", array=[110.8, 110.9]),
            fits.Column(name="dec", format="D", array=[-73.4, -73.4]),
        ],
    )
    return p, ["'id'", "row 2", "utf-8"]


def case_infinite_redshift(tmp_path):
    return _csv(tmp_path, "a,110.8,-73.4,0.4\nb,110.8,-73.4,inf\n", header="id,ra,dec,z\n"), [
        "'z'",
        "row 2",
        "redshift",
    ]


def case_infinite_flux_error(tmp_path):
    return _csv(tmp_path, GOOD + "c,110.8,-73.4,5,inf\n"), ["'fluxerr_F150W'", "row 3", "infinite"]


def case_flux_overflowing_in_nanojansky(tmp_path):
    return _csv(tmp_path, "a,110.8,-73.4,1e300\n", header="id,ra,dec,flux_F150W_Jy\n"), [
        "'flux_F150W_Jy'",
        "row 1",
        "overflows",
    ]


def case_unit_in_name_and_file_disagree(tmp_path):
    t = Table({"id": ["a"], "ra": [110.8], "dec": [-73.4], "flux_F150W_uJy": [1.0]})
    t["flux_F150W_uJy"].unit = "nJy"
    p = tmp_path / "cat.ecsv"
    t.write(p)
    return p, ["'flux_F150W_uJy'", "nJy"]


def case_flux_and_error_in_different_units(tmp_path):
    return _csv(tmp_path, "a,110.8,-73.4,1.5,200\n", header="id,ra,dec,flux_F150W_uJy,fluxerr_F150W_nJy\n"), [
        "'fluxerr_F150W_nJy'",
        "nJy",
        "uJy",
    ]


def case_ra_declared_in_metres(tmp_path):
    t = Table({"id": ["a"], "ra": [110.8], "dec": [-73.4]})
    t["ra"].unit = "m"
    p = tmp_path / "cat.ecsv"
    t.write(p)
    return p, ["'ra'", "not an angle"]


def case_dec_declared_in_an_unknown_unit(tmp_path):
    p = _fits(
        tmp_path,
        [
            fits.Column(name="id", format="5A", array=np.array(["a"])),
            fits.Column(name="ra", format="D", array=[110.8]),
            fits.Column(name="dec", format="D", array=[-73.4], unit="furlongs"),
        ],
    )
    return p, ["'dec'", "furlongs"]


def case_decimal_and_sexagesimal_mixed(tmp_path):
    # 10.5 would otherwise be read as 10.5 hours (157.5 deg) like its sexagesimal neighbours
    return _csv(tmp_path, "a,07:23:20.1,-73.4\nb,10.5,-73.4\n", header="id,ra,dec\n"), [
        "'ra'",
        "row 2",
        "mixes",
    ]


def case_short_row(tmp_path):
    return _csv(tmp_path, GOOD + "c,110.8\n"), ["row 3", "2 fields"]


def case_unnamed_column_with_values(tmp_path):
    return _csv(tmp_path, "a,110.8,-73.4,x\n", header="id,ra,dec,\n"), ["column 4", "no name", "row 1"]


def case_fits_column_without_a_name(tmp_path):
    p = tmp_path / "cat.fits"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # astropy advises against the blank name we want
        cols = [
            fits.Column(name="id", format="5A", array=np.array(["a"])),
            fits.Column(name="ra", format="D", array=[110.8]),
            fits.Column(name="dec", format="D", array=[-73.4]),
            fits.Column(name=" ", format="D", array=[1.0]),
        ]
        fits.BinTableHDU.from_columns(cols).writeto(p)
    return p, ["column 4", "no name", "TTYPE4"]


def case_control_character_in_a_column_name(tmp_path):
    t = pa.table({"id": ["a"], "ra": [110.8], "dec": [-73.4], "bad\nname": [1.0]})
    return _parquet(tmp_path, t), ["column 4", "control characters", "bad\\nname"]


def case_line_separator_in_a_column_name(tmp_path):
    t = pa.table({"id": ["a"], "ra": [110.8], "dec": [-73.4], "two\u2028lines": [1.0]})
    return _parquet(tmp_path, t), ["column 4", "control characters", "two\\u2028lines"]


CASES = [v for k, v in sorted(globals().items()) if k.startswith("case_")]


@pytest.mark.parametrize("make", CASES, ids=[c.__name__[5:] for c in CASES])
def test_bad_catalog_is_refused_and_the_lake_is_unchanged(make, tmp_path, cli):
    lake = Lake.create(tmp_path / "lake")
    ingest_catalog(lake, SMACS, field_id="smacs0723", name="faisst2022")
    before = snapshot(lake)
    path, expected = make(tmp_path)
    res = cli("ingest", "catalog", path, "--field", "smacs0723", "--name", "new", "--lake", lake.root)
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
    res = cli("ingest", "catalog", _csv(tmp_path, GOOD), "--field", field, "--name", "c", "--lake", lake.root)
    assert res.exit_code == 2 and "not a simple name" in res.stderr
    assert snapshot(lake) == before
    assert not (tmp_path / "x").exists()


def test_a_path_that_is_not_a_lake_is_refused(tmp_path, cli):
    (tmp_path / "notalake").mkdir()
    (tmp_path / "notalake" / "data.txt").write_text("keep me")
    for args in (
        ["sql", "SELECT 1"],
        ["tables"],
        ["ingest", "catalog", _csv(tmp_path, GOOD), "--field", "f", "--name", "c"],
    ):
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
    res = cli(
        "ingest",
        "catalog",
        _csv(tmp_path, GOOD),
        "--field",
        "f",
        "--name",
        "c",
        "--mapping",
        m,
        "--lake",
        lake.root,
    )
    assert res.exit_code == 2 and "RA_missing" in res.stderr
    assert snapshot(lake) == before
    shutil.rmtree(lake.root)


MAPPINGS = {
    "column_not_a_string": ("[columns]\nra = 5\n", ["[columns] ra", "5"]),
    "band_column_a_list": ('[bands.F150W]\nflux = ["a"]\n', ["[bands.F150W] flux", "['a']"]),
    "aperture_not_a_number": ('[options]\naperture_arcsec = "big"\n', ["aperture_arcsec", "big"]),
    "aperture_negative": ("[options]\naperture_arcsec = -0.3\n", ["aperture_arcsec", "-0.3"]),
    "aperture_nan": ("[options]\naperture_arcsec = nan\n", ["aperture_arcsec", "nan"]),
    "mw_corrected_not_a_bool": ('[options]\nmw_corrected = "yes"\n', ["mw_corrected", "yes"]),
    "method_not_a_string": ("[options]\nmethod = 5\n", ["method", "5"]),
    "flux_unit_unknown": ('[options]\nflux_unit = "parsec"\n', ["flux_unit", "parsec"]),
    "bands_not_a_table": ('bands = "F150W"\n', ["bands", "table"]),
    "band_not_a_table": ('[bands]\nF150W = "flux_F150W"\n', ["[bands.F150W]", "table"]),
    "band_flux_and_mag": (
        '[bands.F150W]\nflux = "flux_F150W"\nmag = "flux_F150W"\n',
        ["[bands.F150W]", "exactly one"],
    ),
    "band_given_twice": (
        '[bands.F150W]\nflux = "flux_F150W"\n[bands.f150w]\nflux = "fluxerr_F150W"\n',
        ["F150W", "twice"],
    ),
    "unknown_role": ('[columns]\nredshift = "z"\n', ["unknown key 'redshift'", "expected one of"]),
    "unknown_table": ('[column]\nra = "ra"\n', ["'column'", "columns"]),
    "column_mapped_twice": ('[columns]\nz = "ra"\n', ["'ra'", "both as ra and as z"]),
}


@pytest.mark.parametrize("key", sorted(MAPPINGS))
def test_bad_mapping_values_are_refused_in_one_line(key, tmp_path, cli):
    lake = Lake.create(tmp_path / "lake")
    before = snapshot(lake)
    text, expected = MAPPINGS[key]
    m = tmp_path / "map.toml"
    m.write_text(text)
    res = cli(
        "ingest",
        "catalog",
        _csv(tmp_path, GOOD),
        "--field",
        "f",
        "--name",
        "c",
        "--mapping",
        m,
        "--lake",
        lake.root,
    )
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("gccat: error: "), res.stderr
    assert (str(m) if key != "column_mapped_twice" else "cat.csv") in lines[0]
    for word in expected:
        assert word.lower() in lines[0].lower(), lines[0]
    assert snapshot(lake) == before


def test_a_mapping_that_is_not_utf8_is_refused(tmp_path, cli):
    lake = Lake.create(tmp_path / "lake")
    before = snapshot(lake)
    m = tmp_path / "map.toml"
    m.write_bytes('[columns]\n# écrit en Latin-1\nra = "ra"\n'.encode("latin-1"))
    res = cli(
        "ingest",
        "catalog",
        _csv(tmp_path, GOOD),
        "--field",
        "f",
        "--name",
        "c",
        "--mapping",
        m,
        "--lake",
        lake.root,
    )
    assert res.exit_code == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and str(m) in lines[0] and "utf-8" in lines[0].lower()
    assert "line 2" in lines[0]
    assert snapshot(lake) == before


FIELDS_HEADER = "field_id,name,ra_center_deg,dec_center_deg,z_cluster,pixel_scale_arcsec\n"
BAD_FIELDS = {
    "nan_centre": (
        "f1,F1,110.8,-73.4,0.39,0.04\nf2,F2,nan,-30.0,0.3,0.04\n",
        ["'ra_center_deg'", "row 2", "required"],
    ),
    "missing_centre": ("f1,F1,110.8,,0.39,0.04\n", ["'dec_center_deg'", "row 1", "required"]),
    "infinite_centre": ("f1,F1,110.8,-inf,0.39,0.04\n", ["'dec_center_deg'", "row 1"]),
    "infinite_redshift": ("f1,F1,110.8,-73.4,inf,0.04\n", ["'z_cluster'", "row 1"]),
    "zero_pixel_scale": ("f1,F1,110.8,-73.4,0.39,0.02|0\n", ["'pixel_scale_arcsec'", "row 1"]),
    "nan_pixel_scale": ("f1,F1,110.8,-73.4,0.39,nan|0.04\n", ["'pixel_scale_arcsec'", "row 1"]),
}


@pytest.mark.parametrize("key", sorted(BAD_FIELDS))
def test_bad_fields_are_refused_in_one_line(key, tmp_path, cli):
    lake = Lake.create(tmp_path / "lake")
    before = snapshot(lake)
    body, expected = BAD_FIELDS[key]
    p = _csv(tmp_path, body, header=FIELDS_HEADER, name="fields.csv")
    res = cli("ingest", "fields", p, "--lake", lake.root)
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("gccat: error: ") and str(p) in lines[0]
    for word in expected:
        assert word.lower() in lines[0].lower(), lines[0]
    assert snapshot(lake) == before


def test_a_nan_field_centre_in_parquet_is_refused(tmp_path, lake):
    p = _parquet(
        tmp_path,
        pa.table({"field_id": ["f1"], "ra_center_deg": [float("nan")], "dec_center_deg": [-73.4]}),
        name="fields.parquet",
    )
    before = snapshot(lake)
    with pytest.raises(GccatError, match="required") as exc:
        ingest_fields(lake, p)
    assert (exc.value.column, exc.value.row) == ("ra_center_deg", 1)
    assert snapshot(lake) == before
