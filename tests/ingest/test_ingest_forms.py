"""Valid catalogs in forms that look hostile: read correctly, never refused or mangled.

Sexagesimal coordinates in every common spelling, coordinates declared in other angle units,
upper-limit and flag spellings, ids with leading zeros, nested and odd-typed unmapped columns.
"""

import datetime
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy import units as u
from astropy.coordinates import Angle
from astropy.io import fits
from astropy.table import Table

from catalog.queries.connection import connect
from ingest.catalog import ingest_catalog


def _csv(tmp_path, text, name="cat.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def _detections(lake, cols="source_id, ra, dec"):
    return connect(lake).execute(f"SELECT {cols} FROM detections ORDER BY source_id").fetchall()


SEXAGESIMAL = [  # (RA, Dec) as written, the same through astropy
    ("07:23:20", "-73:27:18"),  # whole seconds: pyarrow reads "07:23:20" as a time of day
    ("07h23m20.35s", "-73d27m18s"),
    ("07 23 20.35", "-73 27 18.6"),
    ("07:23:20.35", "-00:30:00"),  # negative Dec with zero degrees
    ("07:23:20.35", "\u221200:30:00"),  # the typographic minus sign
    ("00:00:00", "+00:00:30"),
]


@pytest.mark.parametrize("ra,dec", SEXAGESIMAL, ids=[f"{r}|{d}" for r, d in SEXAGESIMAL])
def test_every_sexagesimal_form_is_read_with_its_sign(ra, dec, tmp_path, lake):
    # one form per file: a column of one form is what a real catalog has
    ingest_catalog(lake, _csv(tmp_path, f"id,ra,dec\na,{ra},{dec}\nb,{ra},{dec}\n"), field_id="f", name="c")
    want_ra = Angle(ra, unit=u.hourangle).deg
    want_dec = Angle(dec.replace("\u2212", "-"), unit=u.deg).deg
    for _, got_ra, got_dec in _detections(lake):
        assert got_ra == pytest.approx(want_ra, abs=1e-12)
        assert got_dec == pytest.approx(want_dec, abs=1e-12)
    if dec.endswith("00:30:00"):
        assert want_dec == -0.5


def test_a_dec_column_that_looks_like_times_of_day_is_read_as_degrees(tmp_path, lake):
    p = _csv(tmp_path, "id,ra_hms,dec_dms\na,07:23:20,05:30:00\nb,07:23:21,23:59:59\n")
    ingest_catalog(lake, p, field_id="f", name="c")
    dec = [d for _, _, d in _detections(lake)]
    assert dec == [pytest.approx(5.5), pytest.approx(23 + 59 / 60 + 59 / 3600)]


def test_a_mapped_coordinate_column_with_another_name_is_read_as_text(tmp_path, lake):
    p = _csv(tmp_path, "n,alpha_str,delta_str\n1,07:23:20,-73:27:18\n")
    m = tmp_path / "map.toml"
    m.write_text('[columns]\nid = "n"\nra = "alpha_str"\ndec = "delta_str"\n')
    ingest_catalog(lake, p, field_id="f", name="c", mapping_file=m)
    assert _detections(lake) == [("1", pytest.approx(110.833333333), pytest.approx(-73.455))]


def test_a_parquet_time_of_day_column_is_turned_back_into_hours(tmp_path, lake):
    p = tmp_path / "cat.parquet"
    pq.write_table(
        pa.table({"id": ["a"], "ra": pa.array([datetime.time(7, 23, 20)], pa.time32("s")), "dec": [-73.455]}),
        p,
    )
    ingest_catalog(lake, p, field_id="f", name="c")
    assert _detections(lake) == [("a", pytest.approx(110.833333333), pytest.approx(-73.455))]


UNITS = ["deg", "arcsec", "arcmin", "rad", "h", "mas"]


@pytest.mark.parametrize(
    "fmt,unit", [("ecsv", x) for x in UNITS + ["hourangle"]] + [("fits", x) for x in UNITS]
)  # FITS has no hourangle
def test_declared_coordinate_units_are_converted_to_degrees(unit, fmt, tmp_path, lake):
    ra_deg, dec_deg = 110.8347, -73.4552
    q = u.hourangle if unit == "h" else u.Unit(unit)
    t = Table({"id": ["a"], "ra": [(ra_deg * u.deg).to_value(q)], "dec": [dec_deg]})
    t["ra"].unit = unit
    if unit not in ("h", "hourangle"):  # Dec in hours means nothing: keep it in the same unit
        t["dec"] = [(dec_deg * u.deg).to_value(q)]
        t["dec"].unit = unit
    p = tmp_path / f"cat.{fmt}"
    t.write(p, format="ascii.ecsv" if fmt == "ecsv" else "fits")
    ingest_catalog(lake, p, field_id="f", name="c")
    ((_, ra, dec),) = _detections(lake)
    assert ra == pytest.approx(ra_deg, rel=1e-12) and dec == pytest.approx(dec_deg, rel=1e-12)


def test_upper_limit_spellings(tmp_path, lake):
    words = ["true", "false", "t", "f", "yes", "no", "1", "0", "TRUE", " Yes ", ""]
    want = [True, False, True, False, True, False, True, False, True, True, False]
    body = "".join(f"s{i:02d},110.8,-73.4,5.0,{w}\n" for i, w in enumerate(words))
    ingest_catalog(lake, _csv(tmp_path, "id,ra,dec,flux_F150W,uplim_F150W\n" + body), field_id="f", name="c")
    got = (
        connect(lake)
        .execute(
            "SELECT is_upper_limit FROM photometry p JOIN detections d "
            "USING (detection_id) ORDER BY source_id"
        )
        .fetchall()
    )
    assert [g for (g,) in got] == want


def test_integer_upper_limits_and_flags_of_64_bits(tmp_path, lake):
    p = _csv(
        tmp_path,
        "id,ra,dec,flux_F150W,uplim_F150W,flags\n"
        "a,110.8,-73.4,5,1,9223372036854775807\nb,110.8,-73.4,5,0,3.0\n"
        "c,110.8,-73.4,5,0,-1\nd,110.8,-73.4,5,0,\n",
    )
    ingest_catalog(lake, p, field_id="f", name="c")
    got = (
        connect(lake)
        .execute(
            "SELECT source_id, flags, is_upper_limit FROM photometry "
            "JOIN detections USING (detection_id) ORDER BY 1"
        )
        .fetchall()
    )
    assert got == [("a", 2**63 - 1, True), ("b", 3, False), ("c", -1, False), ("d", None, False)]


def test_ids_keep_their_leading_zeros_and_digits(tmp_path, lake):
    p = _csv(tmp_path, "id,ra,dec\n007,110.8,-73.4\n12345678901234567890123,110.8,-73.4\n")
    ingest_catalog(lake, p, field_id="f", name="c")
    assert [s for s, _, _ in _detections(lake)] == ["007", "12345678901234567890123"]


def _extras(lake):
    return [
        json.loads(e) if e is not None else None
        for (e,) in connect(lake).execute("SELECT extra FROM detections ORDER BY source_id").fetchall()
    ]


def test_unmapped_nested_columns_become_json_arrays_and_objects(tmp_path, lake):
    p = tmp_path / "cat.parquet"
    pq.write_table(
        pa.table(
            {
                "id": ["a", "b"],
                "ra": [110.8, 110.9],
                "dec": [-73.4, -73.4],
                "shape": [[1.0, float("nan")], None],
                "meta": [{"k": 1, "s": 'q"uote'}, {"k": None, "s": None}],
            }
        ),
        p,
    )
    ingest_catalog(lake, p, field_id="f", name="c")
    assert _extras(lake) == [
        {"shape": [1.0, None], "meta": {"k": 1, "s": 'q"uote'}},
        {"shape": None, "meta": {"k": None, "s": None}},
    ]


def test_unmapped_fits_vector_columns_are_kept(tmp_path, lake):
    p = tmp_path / "cat.fits"
    fits.BinTableHDU.from_columns(
        [
            fits.Column(name="id", format="2A", array=np.array(["a", "b"])),
            fits.Column(name="ra", format="D", array=[110.8, 110.9]),
            fits.Column(name="dec", format="D", array=[-73.4, -73.4]),
            fits.Column(name="psf_params", format="3E", array=np.arange(6.0).reshape(2, 3)),
        ]
    ).writeto(p)
    ingest_catalog(lake, p, field_id="f", name="c")
    assert _extras(lake) == [{"psf_params": [0.0, 1.0, 2.0]}, {"psf_params": [3.0, 4.0, 5.0]}]


def test_unmapped_non_finite_and_odd_types_give_valid_json(tmp_path, lake):
    p = tmp_path / "cat.parquet"
    pq.write_table(
        pa.table(
            {
                "id": ["a", "b"],
                "ra": [110.8, 110.9],
                "dec": [-73.4, -73.4],
                "snr_est": [float("nan"), float("inf")],
                "half": pa.array(np.array([1.5, 2.0], np.float16)),
                "kind": pa.array(["gc", "gc"]).dictionary_encode(),
                "blob": pa.array([b"\xff\xfe", b"\x00"], pa.binary()),
                "when": pa.array([datetime.date(2022, 7, 12)] * 2),
            }
        ),
        p,
    )
    r = ingest_catalog(lake, p, field_id="f", name="c")
    assert _extras(lake) == [
        {"snr_est": None, "half": 1.5, "kind": "gc", "when": "2022-07-12"},
        {"snr_est": None, "half": 2.0, "kind": "gc", "when": "2022-07-12"},
    ]
    assert any("'blob'" in w and "not kept" in w for w in r.warnings)


def test_a_trailing_comma_makes_no_column(tmp_path, lake):
    p = _csv(tmp_path, "id,ra,dec,note,\na,110.8,-73.4,x,\n")
    ingest_catalog(lake, p, field_id="f", name="c")
    assert _extras(lake) == [{"note": "x"}]


def test_fits_columns_read_as_astropy_reads_them(tmp_path):
    """The memory-mapped FITS read (one block copy of the big-endian rows) gives what
    astropy's own read gives: NaN and TNULL are null, text is stripped, empty text is null,
    scaled unsigned integers keep their values."""
    from ingest.readers import read_catalog_file

    p = tmp_path / "cat.fits"
    n = 40_000  # more than one block of rows
    flux = np.linspace(1.0, 2.0, n)
    flux[[1, n - 1]] = np.nan
    n_obs = np.arange(n, dtype=np.int32)
    n_obs[2] = -99
    name = np.array(["ab  ", "", " c"] * (n // 3) + ["d"] * (n % 3))
    fits.BinTableHDU.from_columns(
        [
            fits.Column(name="flux", format="D", array=flux),
            fits.Column(name="flux32", format="E", array=flux.astype(np.float32)),
            fits.Column(name="n_obs", format="J", null=-99, array=n_obs),
            fits.Column(name="u16", format="I", bzero=32768, array=(np.arange(n) % 65536).astype(np.uint16)),
            fits.Column(name="ok", format="L", array=np.arange(n) % 2 == 0),
            fits.Column(name="name", format="4A", array=name),
        ]
    ).writeto(p)
    t = read_catalog_file(p).table
    want_flux = [None if np.isnan(v) else float(v) for v in flux]
    assert t["flux"].to_pylist() == want_flux
    assert t["flux32"].to_pylist() == [None if np.isnan(v) else float(v) for v in flux.astype(np.float32)]
    assert t["n_obs"].to_pylist() == [None if v == -99 else int(v) for v in n_obs]
    assert t["u16"].to_pylist() == [int(v) for v in np.arange(n) % 65536]
    assert t["ok"].to_pylist() == [bool(v) for v in np.arange(n) % 2 == 0]
    assert t["name"].to_pylist()[:4] == ["ab", None, "c", "ab"]


def test_native_columns_copy_strided_big_endian_views_exactly():
    from ingest.readers import native_columns

    rows = np.zeros(1001, dtype=[("a", ">f8"), ("b", ">i4"), ("c", ">i8")])
    rows["a"] = np.random.default_rng(1).normal(size=1001)
    rows["b"] = np.arange(1001)
    rows["c"] = -np.arange(1001) * 3
    cols = [rows[k] for k in "abc"]
    for block in (1, 7, 1000, 5000):
        out = native_columns(cols, block_rows=block)
        for o, c in zip(out, cols, strict=True):
            assert o.dtype.isnative and o.flags.c_contiguous
            np.testing.assert_array_equal(o, c)
