"""Fuzz ``gccat ingest catalog`` with generated hostile catalogs (Hypothesis).

Each example is a CSV, Parquet or FITS catalog with hostile column names (quotes, SQL,
markup, unicode, empty, very long, duplicates, role names), cells of random types (ints,
floats with NaN, infinities and huge values, text, booleans, nulls, dates, lists, bytes) and
random ``--flux-unit`` / ``--z`` options. The CLI must either

- exit 0 with a correct ingest: as many ``detections`` as the file has rows, coordinates in
  degrees as written, every finite flux converted to nJy, ``extra`` valid JSON objects; or
- exit 2 with exactly one line on stderr starting ``gccat: error:`` and the lake unchanged;

never a traceback or another exit code. The generator also knows which catalogs are valid
by construction: those must be accepted. Derandomized, so CI runs the same examples.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import os
import re
import warnings
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from astropy.coordinates import Angle
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from catalog.lake import Lake
from ingest.mapping import CLASS_NAMES, DEC_NAMES, FLAG_NAMES, ID_NAMES, RA_NAMES, Z_NAMES

from ..conftest import Cli, snapshot

# GCCAT_FUZZ_EXAMPLES=2000 GCCAT_FUZZ_SEED=7 run a longer, different search locally
MAX_EXAMPLES = int(os.environ.get("GCCAT_FUZZ_EXAMPLES", 150))
SEED = os.environ.get("GCCAT_FUZZ_SEED")
#: Cells a CSV reader takes as missing (gccat's documented null spellings)
NULL_VALUES = ["", "NA", "N/A", "nan", "NaN", "null", "NULL", "--"]
ROLE_NAMES = {n.lower() for n in RA_NAMES + DEC_NAMES + ID_NAMES + Z_NAMES + CLASS_NAMES + FLAG_NAMES}
FACTORS = {"nJy": 1.0, "uJy": 1e3, "mJy": 1e6, "Jy": 1e9}
HOSTILE_NAMES = [
    '"',
    "'",
    'a"b',
    "; DROP TABLE detections; --",
    "x' OR '1'='1",
    "<script>alert(1)</script>",
    "{{7*7}}",
    "$(rm -rf ~)",
    "`id`",
    "%s%n",
    "\\",
    "[bands]",
    "a,b",
    "名前",
    "é",
    "Ωmega",
    "🌌 field",
    "",
    " ",
    "x" * 300,
    "NULL",
    "nan",
    "extra",
    "s",
    "j",
    "to_json",
    "detection_id",
    "ingest_id",
    "ra",
    "RA",
    "Dec",
    "id",
    "z",
    "flags",
    "class",
    "flux_F150W",
    "F999W_flux",
    "tab\there",
    "new\nline",
    "para\u2029graph",
    ":smile:",
    "[bold]red[/bold]",
]
# hostile but legal: each must end up as a key of detections.extra
SAFE_HOSTILE_NAMES = [
    n
    for n in HOSTILE_NAMES
    if n.strip() and n.lower() not in ROLE_NAMES and not re.search(r"(?i)f\d{3}|[\x00-\x1f]", n)
]
ID_ALPHABET = st.characters(
    codec="utf-8", categories=("L", "N", "P", "Zs"), exclude_characters="\x85\xa0\u2028\u2029"
)


@dataclass
class Column:
    name: str
    kind: str  # float | int | str | bool | date | list | binary | null
    cells: list


@dataclass
class Catalog:
    fmt: str
    columns: list[Column]
    n: int
    flux_unit: str
    z: str | None
    must_accept: bool
    why_not: list[str] = field(default_factory=list)
    ra: list | None = None  # intended coordinates (degrees, or sexagesimal text)
    dec: list | None = None
    ids: list | None = None  # intended source ids
    bands: dict = field(default_factory=dict)  # band -> (kind, factor, values, errors)
    extra_names: list[str] = field(default_factory=list)
    mag_system_ab: bool = False  # pass --mag-system AB


def _unsigned(cell, number):
    """The cell without its minus sign (``number`` is the value it spells)."""
    if isinstance(cell, bool) or not isinstance(number, float) or not number < 0:
        return cell
    return abs(cell) if isinstance(cell, int | float) else cell.replace("-", "", 1)


def _safe_name(name: str, taken: set[str], fmt: str) -> bool:
    """A hostile name that is still a legal extra column name (it must be accepted)."""
    return (
        name.strip() != ""
        and name not in taken
        and name.lower() not in ROLE_NAMES
        and not re.search("(?i)f\\d{3}|[\x00-\x1f\x7f-\x9f\u2028\u2029]", name)
        and not any(name.lower() == t.lower() for t in taken if t.lower() in ROLE_NAMES)
        and (fmt != "fits" or (name.isascii() and len(name) <= 30))
    )


def _is_number_text(s: str) -> bool:
    """Would a reader take this text as a number or as missing? (Then it is not garbage.)"""
    t = s.strip()
    if t in NULL_VALUES or s in NULL_VALUES:
        return True
    try:
        float(t)
        return True
    except ValueError:
        pass
    try:
        pa.array([t]).cast(pa.float64())
        return True
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False


GARBAGE = st.one_of(
    st.sampled_from(["bright", "abc", "1,5", "--x", "true", "2022-07-12", "0x1F"]),
    st.text(min_size=1, max_size=8),
).filter(lambda s: not _is_number_text(s))
HUGE = st.sampled_from([1e300, -1e300, 1.7976931348623157e308, 5e-324, -0.0])
ORDINARY = st.floats(-1e6, 1e6, allow_nan=False)
FINITE = st.one_of(ORDINARY, ORDINARY, ORDINARY, ORDINARY, HUGE, st.integers(-(10**6), 10**6).map(float))


@st.composite
def value_cells(draw, n: int, fmt: str, kind_hint: str, clean: bool):
    """Cells of a flux or error column: (kind, cells, numbers or None for garbage, why).

    ``clean`` draws only values a catalog may hold (numbers, numeric text, missing)."""
    kinds = ["float"] * 12 + ["int", "int", "str", "str"] + ([] if clean else ["bool", "date"])
    kind = draw(st.sampled_from(kinds))
    cells, numbers, why = [], [], None
    for _ in range(n):
        if kind == "float":
            v = draw(
                st.one_of(ORDINARY, st.just(math.nan), st.none())
                if clean
                else st.one_of(
                    *[FINITE] * 8, st.just(math.nan), st.none(), st.sampled_from([math.inf, -math.inf])
                )
            )
            cells.append(v)
            numbers.append(None if v is None or math.isnan(v) else v)
        elif kind == "int":
            v = draw(st.one_of(st.integers(-(10**9), 10**9), st.none()))
            cells.append(v)
            numbers.append(None if v is None else float(v))
        elif kind == "str":
            if not clean and draw(st.integers(0, 9)) == 0:
                v = draw(GARBAGE)
                cells.append(v)
                numbers.append("garbage")
            else:
                x = draw(ORDINARY if clean else FINITE)
                v = draw(st.sampled_from([repr(x), f" {x!r} ", f"{x:.6e}"]))
                cells.append(v)
                numbers.append(float(v))
        elif kind == "bool":
            cells.append(draw(st.booleans()))
            numbers.append("garbage")
        else:
            cells.append(draw(st.dates()))
            numbers.append("garbage")
    if any(isinstance(x, str) for x in numbers):
        why = f"{kind_hint} holds non-numbers"
    elif any(x is not None and math.isinf(x) for x in numbers):
        why = f"{kind_hint} holds infinities"
    return kind, cells, numbers, why


@st.composite
def _sexagesimal_cells(draw, deg: list[float], hours: bool):
    cells = []
    for d in deg:
        sep = draw(st.sampled_from([":", " ", "hms" if hours else "dms"]))
        cells.append(
            Angle(d, unit="deg").to_string(
                unit="hourangle" if hours else "deg", sep=sep, precision=3, pad=True, alwayssign=not hours
            )
        )
    want = [Angle(c.replace(" ", ":"), unit="hourangle" if hours else "deg").deg for c in cells]
    # 23:59:59.9996 rounds up to 24h (astropy reads "24h00m00.000s" as 359.99999999999994 deg)
    if hours and any(w >= 360 - 1e-9 for w in want):
        return "str", cells, want, "RA rounds to 360"
    return "str", cells, want, None


@st.composite
def coordinate_cells(draw, n: int, lo: float, hi: float, hours: bool, clean: bool):
    """(kind, cells, intended degrees or None, why) for an RA or Dec column."""
    form = draw(st.sampled_from(["deg"] * 8 + ["sex"] * 3 + ([] if clean else ["bad"])))
    deg = [draw(st.floats(lo, hi, allow_nan=False, exclude_max=hours)) for _ in range(n)]
    if form == "deg":
        return "float", deg, deg, None
    if form == "sex":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # astropy warns when 23:59:59.9996 rounds to 24h
            return draw(_sexagesimal_cells(deg, hours))
    bad = draw(st.sampled_from([None, math.nan, math.inf, hi + 1, lo - 1, "garbage"]))
    i = draw(st.integers(0, n - 1))
    cells = list(deg)
    if bad == "garbage":
        cells = [repr(c) for c in cells]
        cells[i] = draw(GARBAGE)
        return "str", cells, None, "garbage coordinate"
    cells[i] = bad
    return "float", cells, None, "bad coordinate"


@st.composite
def extra_column(draw, n: int, fmt: str, name: str, clean: bool):
    kinds = ["int", "float", "str", "bool", "date", "null"] + (["list", "binary"] if fmt == "parquet" else [])
    kind = draw(st.sampled_from(kinds))
    gen = {
        "int": st.one_of(st.integers(-(2**63), 2**63 - 1), st.none()),
        "float": st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.none()),
        "str": st.one_of(st.text(max_size=12), st.sampled_from(HOSTILE_NAMES), st.none()).filter(
            lambda v: (
                not clean
                or v is None
                or (fmt != "csv" or not re.search(r"[\r\n]", v))
                and (fmt != "fits" or v.isascii())
            )
        ),
        "bool": st.one_of(st.booleans(), st.none()),
        "date": st.one_of(st.dates(), st.none()),
        "null": st.none(),
        "list": st.one_of(st.lists(st.floats(allow_nan=True), max_size=3), st.none()),
        "binary": st.one_of(st.binary(max_size=6), st.none()),
    }[kind]
    return Column(name, kind, [draw(gen) for _ in range(n)])


@st.composite
def catalogs(draw):
    fmt = draw(st.sampled_from(["csv", "csv", "parquet", "parquet", "fits"]))
    n = draw(st.integers(1, 5))
    clean = draw(st.booleans())  # valid by construction (hostile names, odd extras), or chaos
    why: list[str] = []
    cols: list[Column] = []

    flux_unit = draw(
        st.sampled_from(["nJy"] * 4 + ["uJy", "mJy", "Jy"] + ([] if clean else ["parsec", "ABmag"]))
    )
    if flux_unit not in FACTORS:
        why.append("bad --flux-unit")
    z = draw(st.sampled_from([None] * 6 + ["0.39", "0"] + ([] if clean else ["-1", "nan", "inf", "25"])))
    if z is not None and not 0 <= float(z) <= 20:
        why.append("bad --z")

    cat = Catalog(fmt, cols, n, flux_unit, z, True)
    id_kind = draw(st.sampled_from(["str"] * 4 + ["int"] * 2 + ["none"] + ([] if clean else ["bad"])))
    if id_kind == "str":
        text = st.text(
            ID_ALPHABET
            if fmt != "fits" or not clean
            else st.characters(codec="ascii", categories=("L", "N", "P")),
            min_size=1,
            max_size=10,
        )
        if clean:
            text = text.filter(lambda i: i.strip() and i not in NULL_VALUES and i.strip() not in NULL_VALUES)
        ids = draw(st.lists(text, min_size=n, max_size=n, unique_by=str.strip if clean else None))
        cols.append(Column("id", "str", ids))
        cat.ids = [i.strip() for i in ids]
        if (
            len(set(cat.ids)) < n
            or any(i == "" for i in cat.ids)
            or (fmt == "csv" and any(i in NULL_VALUES or i.strip() in NULL_VALUES for i in ids))
        ):
            why.append("missing or duplicate ids")
        if fmt == "fits" and any(not i.isascii() for i in ids):
            why.append("FITS text is ASCII")
    elif id_kind == "int":
        ids = draw(st.lists(st.integers(-(2**62), 2**62), min_size=n, max_size=n, unique=True))
        cols.append(Column(draw(st.sampled_from(["id", "ID", "source_id", "NUMBER"])), "int", ids))
        cat.ids = [str(i) for i in ids]
    elif id_kind == "bad":
        ids = [f"s{i}" for i in range(n)]
        ids[draw(st.integers(0, n - 1))] = draw(st.sampled_from([None, "s0"])) if n > 1 else None
        cols.append(Column("id", "str", ids))
        why.append("missing or duplicate ids")
    else:
        cat.ids = [str(i) for i in range(1, n + 1)]

    ra_name, dec_name = draw(
        st.sampled_from([("ra", "dec"), ("RA", "DEC"), ("ra_deg", "dec_deg"), ("RAJ2000", "DEJ2000")])
    )
    for name, lo, hi, hours, attr in (
        (ra_name, 0.0, 360.0, True, "ra"),
        (dec_name, -90.0, 90.0, False, "dec"),
    ):
        kind, cells, want, bad = draw(coordinate_cells(n, lo, hi, hours, clean))
        cols.append(Column(name, kind, cells))
        setattr(cat, attr, want)
        if bad:
            why.append(bad)
        if fmt == "fits" and any(c is None for c in cells):
            why.append("FITS has no null floats")

    for band in draw(st.lists(st.sampled_from(["F150W", "F200W", "F444W"]), max_size=3, unique=True)):
        if draw(st.integers(0, 5)) == 0:  # an AB magnitude column
            mags = draw(
                st.lists(st.one_of(st.floats(15, 35), st.just(99.0), st.none()), min_size=n, max_size=n)
            )
            errs = draw(st.lists(st.one_of(st.floats(0, 1), st.none()), min_size=n, max_size=n))
            # the name says AB (abmag_), or a plain mag_ column is declared AB by --mag-system
            prefix = draw(st.sampled_from(["abmag", "mag"]))
            cat.mag_system_ab |= prefix == "mag"
            cols += [Column(f"{prefix}_{band}", "float", mags), Column(f"magerr_{band}", "float", errs)]
            cat.bands[band] = ("mag", 1.0, mags, errs)
            continue
        suffix = draw(st.sampled_from(["", "", "_nJy", "_uJy", "_mJy", "_Jy"]))
        factor = FACTORS.get(suffix[1:], FACTORS.get(flux_unit))
        kind, cells, values, bad = draw(value_cells(n, fmt, f"flux_{band}", clean))
        cols.append(Column(f"flux_{band}{suffix}", kind, cells))
        if bad:
            why.append(bad)
        errors = None
        if draw(st.booleans()):
            esuffix = (
                suffix if clean or draw(st.integers(0, 5)) else draw(st.sampled_from(["", "_nJy", "_Jy"]))
            )
            ekind, ecells, errors, bad = draw(value_cells(n, fmt, f"fluxerr_{band}", clean))
            if clean or draw(st.integers(0, 4)):  # mostly errors as catalogs have them: not negative
                ecells = [_unsigned(v, e) for v, e in zip(ecells, errors, strict=True)]
                errors = [abs(v) if isinstance(v, float) else v for v in errors]
            cols.append(Column(f"fluxerr_{band}{esuffix}", ekind, ecells))
            if bad:
                why.append(bad)
            if esuffix and esuffix != suffix and FACTORS[esuffix[1:]] != factor:
                why.append("error and flux in different units")
            if any(isinstance(e, float) and e < 0 for e in errors):
                why.append("negative error")
        if factor is not None:
            for seq in (values, errors or []):
                if any(isinstance(x, float) and math.isinf(x * factor) for x in seq):
                    why.append("overflows in nJy")
        cat.bands[band] = ("flux", factor, values, errors)

    names = {c.name for c in cols}
    for _ in range(draw(st.integers(0, 4))):
        if clean:
            name = draw(
                st.one_of(st.sampled_from(SAFE_HOSTILE_NAMES), st.text(min_size=1, max_size=20)).filter(
                    lambda x: _safe_name(x, names, fmt)
                )
            )
        else:
            name = draw(
                st.one_of(
                    st.sampled_from(HOSTILE_NAMES),
                    st.text(min_size=1, max_size=20),
                    st.sampled_from(SAFE_HOSTILE_NAMES),
                )
            )
        if fmt == "fits":  # what a FITS header can hold: printable ASCII, one card
            name = re.sub(r"[^\x20-\x7e]", "?", name)[:30]
        col = draw(extra_column(n, fmt, name, clean))
        if name in names:
            why.append("duplicate column name")
        elif (
            name.lower() in ROLE_NAMES
            or re.search(r"(?i)f\d{3}", name)
            or any(name.lower() == c.lower() for c in names if c.lower() in ROLE_NAMES)
        ):
            why.append("extra column named like a role")
        elif re.search("[\x00-\x1f\x7f-\x9f\u2028\u2029]", name):
            why.append("control character in a column name")
        elif name.strip() == "" and any(v is not None for v in col.cells):
            why.append("unnamed column with values")
        if (
            fmt == "csv"
            and col.kind == "str"
            and any(v is not None and re.search(r"[\r\n]", v) for v in col.cells)
        ):
            why.append("newline inside a CSV value")
        if fmt == "csv" and re.search(r"[\r\n]", name):
            why.append("newline in a CSV header")
        if fmt == "fits" and name.strip() == "" and name:
            why.append("FITS column without a name")  # astropy cannot read a blank TTYPE
        if fmt == "fits" and (
            not name.isascii()
            or col.kind in ("str", "date", "null")
            and any(v is not None and not str(v).isascii() for v in col.cells)
        ):
            why.append("FITS text is ASCII")
        cols.append(col)
        names.add(name)
        cat.extra_names.append(name)
    cat.must_accept = not why
    cat.why_not = why
    return cat


# -- writers -------------------------------------------------------------------------------


def _text(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, bytes | list):
        return str(v)
    return v.isoformat() if hasattr(v, "isoformat") else str(v)


def _arrow(col: Column) -> pa.Array:
    types = {
        "float": pa.float64(),
        "int": pa.int64(),
        "str": pa.string(),
        "bool": pa.bool_(),
        "date": pa.date32(),
        "null": pa.null(),
        "list": pa.list_(pa.float64()),
        "binary": pa.binary(),
    }
    return pa.array(col.cells, types[col.kind])


def write(cat: Catalog, path):
    """Write the catalog; returns the path written (FITS falls back to Parquet)."""
    if cat.fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow([c.name for c in cat.columns])
        for i in range(cat.n):
            w.writerow([_text(c.cells[i]) for c in cat.columns])
        path.write_text(buf.getvalue(), encoding="utf-8")
        return path
    elif cat.fmt == "parquet":
        pq.write_table(pa.table([_arrow(c) for c in cat.columns], names=[c.name for c in cat.columns]), path)
        return path
    else:
        from astropy.io import fits

        fcols, names = [], []
        try:
            for k, c in enumerate(cat.columns):
                name = c.name.encode("ascii", "replace").decode() or f"col{k}"
                names.append(name)
                if c.kind in ("float", "int", "null"):
                    arr = np.array([np.nan if v is None else v for v in c.cells], float)
                    if c.kind == "int" and not any(v is None for v in c.cells):
                        arr = np.array(c.cells, np.int64)
                    fmt = "K" if arr.dtype.kind == "i" else "D"
                elif c.kind == "bool":
                    arr, fmt = np.array([bool(v) for v in c.cells]), "L"
                else:
                    text = [_text(v).encode("ascii", "replace") for v in c.cells]
                    arr = np.array(text, dtype=f"S{max(1, max(len(t) for t in text))}")
                    fmt = f"{arr.dtype.itemsize}A"
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # astropy's advice on odd column names
                    fcols.append(fits.Column(name=name, format=fmt, array=arr))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fits.BinTableHDU.from_columns(fcols).writeto(path)
        except (ValueError, OSError, KeyError, AssertionError):  # astropy asserts on long names
            # names FITS cannot hold (control characters, duplicates once made ASCII)
            cat.fmt = "parquet"
            return write(cat, path.with_suffix(".parquet"))
        id_col = next((c for c in cat.columns if c.name == "id" and c.kind == "str"), None)
        if id_col is not None and cat.ids is not None:  # FITS text as written: ASCII, stripped
            cat.ids = [v.encode("ascii", "replace").decode().strip() for v in id_col.cells]
        cat.extra_names = [nm for nm, c in zip(names, cat.columns, strict=True) if c.name in cat.extra_names]
        for nm, c in zip(names, cat.columns, strict=True):
            c.name = nm
    return path


# -- the property --------------------------------------------------------------------------


def check_accepted(lake: Lake, cat: Catalog, name: str) -> None:
    # read the committed rows through the lake (the views' DuckDB connection costs ~0.4 s)
    det_t = lake.live("detections", filters=pc.field("catalog") == name)
    det = [(r["source_id"], r["ra"], r["dec"], r["z"], r["extra"]) for r in det_t.to_pylist()]
    assert len(det) == cat.n, (len(det), cat.n)
    by_id = {d[0]: d for d in det}
    for i, sid in enumerate(cat.ids or []):
        _, ra, dec, z, extra = by_id[sid]
        if cat.ra is not None:
            assert ra == pytest.approx(cat.ra[i] % 360, abs=1e-9)
        if cat.dec is not None:
            assert dec == pytest.approx(cat.dec[i], abs=1e-9)
    exact = "extra column named like a role" not in cat.why_not  # else the roles are a guess
    for *_, extra in det:
        if extra is not None:
            obj = json.loads(extra)  # valid JSON (no NaN/Infinity) ...
            assert isinstance(obj, dict)  # ... and an object keyed by column names
            if exact:
                assert set(obj) <= set(cat.extra_names), set(obj) - set(cat.extra_names)
    if not exact:
        return
    ingest_id = det_t["ingest_id"][0].as_py()
    source = {r["detection_id"]: r["source_id"] for r in det_t.to_pylist()}
    phot = lake.live("photometry", filters=pc.field("ingest_id") == ingest_id).to_pylist()
    got = {(source[r["detection_id"]], r["band"]): (r["flux_njy"], r["flux_err_njy"]) for r in phot}
    want = {}
    for band, (kind, factor, values, errors) in cat.bands.items():
        for i, v in enumerate(values):
            if v is None or (isinstance(v, float) and math.isnan(v)):
                continue
            e = None if errors is None else errors[i]
            e = None if e is None or (isinstance(e, float) and math.isnan(e)) else e
            if kind == "mag":
                if abs(v) >= 90:
                    continue
                f = 10 ** (-0.4 * (v - 31.4))
                want[(cat.ids[i], band)] = (f, None if e is None else f * e * 0.4 * math.log(10))
            else:
                want[(cat.ids[i], band)] = (v * factor, None if e is None else e * factor)
    assert got.keys() == want.keys()
    for k, (f, e) in want.items():
        assert got[k][0] == pytest.approx(f, rel=1e-12, abs=1e-300)
        if e is None:
            assert got[k][1] is None
        else:
            assert got[k][1] == pytest.approx(e, rel=1e-12, abs=1e-300)


def test_fuzz_ingest_catalog(tmp_path):
    lakes: list[Lake] = []
    cli = Cli()
    counter = itertools.count()
    stats: Counter = Counter()
    reasons: Counter = Counter()

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=SEED is None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @seed(int(SEED or 0))
    @given(catalogs())
    def one(cat: Catalog) -> None:
        k = next(counter)
        if k % 10 == 0:  # a fresh lake now and then: Delta logs grow with every commit
            lakes.append(Lake.create(tmp_path / f"lake{k}"))
        lake = lakes[-1]
        path = tmp_path / f"cat{k}.{ {'parquet': 'parquet', 'csv': 'csv', 'fits': 'fits'}[cat.fmt] }"
        path = write(cat, path)
        name = f"c{k}"
        args = [
            "ingest",
            "catalog",
            path,
            "--field",
            "fuzz",
            "--name",
            name,
            "--flux-unit",
            cat.flux_unit,
            "--lake",
            lake.root,
        ]
        if cat.z is not None:
            args += ["--z", cat.z]
        if cat.mag_system_ab:
            args += ["--mag-system", "AB"]
        before = snapshot(lake)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = cli(*args)
        # a Python warning would be a stray line on the user's terminal
        assert not [w for w in caught if not issubclass(w.category, DeprecationWarning)], [
            str(w.message) for w in caught
        ]
        stats["examples"] += 1
        stats[cat.fmt] += 1
        assert "Traceback" not in res.output
        if res.exit_code == 0:
            stats["accepted"] += 1
            check_accepted(lake, cat, name)
        else:
            stats["refused"] += 1
            reasons.update(set(cat.why_not))
            assert res.exit_code == 2, res.output
            lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
            assert len(lines) == 1 and lines[0].startswith("gccat: error: "), res.stderr
            assert snapshot(lake) == before
            assert not cat.must_accept, f"a valid catalog was refused: {lines[0]}"
        path.unlink()

    one()
    print(f"\nfuzz ingest: {dict(stats)}; refusals expected for: {dict(reasons.most_common())}")
    assert stats["accepted"] >= 15 and stats["refused"] >= 15, stats  # both sides exercised
