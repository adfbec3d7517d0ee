"""Ingestion into the lake: catalogs of sources with multi-band photometry, fields, bands.

Each function validates the whole input first (a bad file writes nothing), then writes in
one :meth:`catalog.lake.Lake.transaction`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from catalog import bands as bandreg
from catalog.checks import check_name, check_number
from catalog.errors import GccatError
from catalog.files import sha256_file
from catalog.lake import DETECTION_KINDS, IngestKind, Lake, command_line, new_ingest_id
from catalog.lake.schemas import BANDS, DETECTIONS, FIELDS, PHOTOMETRY, QUALITY_ZERO_ERROR
from catalog.queries.search import to_arrow
from catalog.sky import healpix29
from catalog.units import abmag_to_flux, mag_err_to_flux_err
from ingest.mapping import (
    TEXT_NAMES,
    ColumnMapping,
    check_flux_unit,
    check_mag_option,
    infer_mapping,
    load_mapping,
    parse_mapping_file,
)
from ingest.readers import RawTable, read_catalog_file

Progress = Callable[[str, float], None]


@dataclass
class IngestReport:
    """What an ingest did (or, with ``skipped``, why it did nothing)."""

    ingest_id: str | None
    lake_version: int
    n_rows: int = 0
    n_photometry: int = 0
    bands: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    skipped: bool = False
    superseded: list[str] = field(default_factory=list)
    mapping: dict | None = None


def constant(value: str, n: int) -> pa.Array:
    """A string column holding ``value`` n times, built from its buffers (no n Python objects)."""
    raw = value.encode()
    offsets = np.arange(n + 1, dtype=np.int32) * len(raw)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(raw * n))


def _first_bad(mask: np.ndarray) -> int:
    """1-based row number of the first True in ``mask``."""
    return int(np.flatnonzero(mask)[0]) + 1


#: Redshifts gccat accepts (sources and fields alike): beyond z = 20 there are no galaxies.
Z_RANGE = (0.0, 20.0)
_NUMBER = r"(?i)^[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?|inf|infinity|nan)$"
# [-]dd:mm:ss.s or dd mm ss.s; U+2212 is the minus sign of typeset tables
_DMS = (
    "^(?P<sign>[+\\-\u2212]?)(?P<d>\\d{1,3})(?::|\\s+)(?P<m>\\d{1,2})(?::|\\s+)(?P<s>\\d{1,2}(?:\\.\\d*)?)$"
)
_NESTED = (
    pa.types.is_list,
    pa.types.is_large_list,
    pa.types.is_fixed_size_list,
    pa.types.is_struct,
    pa.types.is_map,
    pa.types.is_union,
)


def _column(raw: RawTable, column: str) -> pa.Array:
    col = raw.table[column]
    # one chunk: the chunk itself (combine_chunks would copy it)
    return col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()


def _first_valid_row(arr: pa.Array) -> int | None:
    valid = np.flatnonzero(arr.is_valid().to_numpy(zero_copy_only=False))
    return int(valid[0]) + 1 if len(valid) else None


def _first_uncastable(arr: pa.Array, type_: pa.DataType) -> int:
    """0-based index of the first value of ``arr`` that does not cast (bisection: a few
    vectorised casts instead of one Python call per row).
    """
    lo, hi = 0, len(arr)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        try:
            arr.slice(lo, mid - lo).cast(type_)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            hi = mid
        else:
            lo = mid
    return lo


def _trimmed(arr: pa.Array) -> pa.Array:
    """Strings without surrounding blanks; blank cells become null."""
    s = pc.utf8_trim_whitespace(arr)
    return pc.if_else(pc.equal(s, ""), pa.scalar(None, pa.string()), s)


def _check_mapped_types(raw: RawTable, m: ColumnMapping) -> None:
    """A mapped column must hold one scalar per row: lists, structs and bytes are refused."""
    for col in sorted(m.used_columns()):
        arr = _column(raw, col)
        t = arr.type
        if any(f(t) for f in _NESTED):
            raise GccatError(
                f"the column holds {t} values (several per row); gccat maps columns of one value per row",
                file=raw.path,
                column=col,
                row=_first_valid_row(arr),
            )
        if pa.types.is_binary(t):
            i = _first_uncastable(arr, pa.string())
            raise GccatError(
                f"the column holds bytes that are not UTF-8 text ({arr[i].as_py()[:20]!r})",
                file=raw.path,
                column=col,
                row=i + 1,
            )


def _as_float(raw: RawTable, column: str, what: str, writable: bool = True) -> np.ndarray:
    """A column as float64 (nulls -> NaN); non-numeric values are an error naming the row.

    ``writable=False``: a read-only view of the file's own float64 values where it can be
    (no nulls), instead of a copy.
    """
    arr = _column(raw, column)
    t = arr.type
    if pa.types.is_floating(t) or pa.types.is_integer(t) or pa.types.is_decimal(t) or pa.types.is_null(t):
        # unsafe: int64 beyond 2**53 rounds to the nearest double instead of raising
        f = arr.cast(pa.float64(), safe=False)
        if not writable and f.null_count == 0:
            return f.to_numpy(zero_copy_only=True)
        return f.to_numpy(zero_copy_only=False, writable=True)
    if pa.types.is_boolean(t):
        raise GccatError(
            f"{what} is boolean, expected numbers", file=raw.path, column=column, row=_first_valid_row(arr)
        )
    if not pa.types.is_string(t):
        raise GccatError(
            f"{what} holds {t} values, expected numbers",
            file=raw.path,
            column=column,
            row=_first_valid_row(arr),
        )
    s = _trimmed(arr)
    try:
        return s.cast(pa.float64()).to_numpy(zero_copy_only=False, writable=True)
    except pa.ArrowInvalid:
        i = _first_uncastable(s, pa.float64())
        raise GccatError(
            f"{what} value {arr[i].as_py()!r} is not a number", file=raw.path, column=column, row=i + 1
        ) from None


def _angle_unit(raw: RawTable, col: str, role: str):
    """The angle unit a file declares for a coordinate column (astropy), None if none.

    A unit that is not an angle (``m``, ``Jy``) or that astropy does not know is refused:
    taking an RA declared in arcsec as degrees would put every source elsewhere. For RA a
    time unit (``h``) means hours of right ascension.
    """
    from astropy import units as u

    text = (raw.units.get(col) or "").strip()
    if not text:
        return None
    low = text.lower().strip("'\"")
    if low in ("h:m:s", "hms", "hh:mm:ss"):  # VizieR's units of sexagesimal columns
        return u.hourangle
    if low in ("d:m:s", "dms", "dd:mm:ss", '"d:m:s"'):
        return u.deg
    unit = None
    for cand in (text, low, low.removesuffix("s")):  # DEGREES, hours
        try:
            unit = u.Unit(cand, parse_strict="raise")
            break
        except ValueError:
            continue
    if unit is None:
        raise GccatError(
            f"the {role} column declares the unit '{text}', which is not an angle unit gccat knows",
            file=raw.path,
            column=col,
        )
    if unit == u.dimensionless_unscaled:
        return None
    if unit.physical_type == "angle":
        return unit
    if role == "RA" and unit.is_equivalent(u.hour):
        hours = unit.to(u.hour)
        return u.hourangle if hours == 1 else u.hourangle * hours
    raise GccatError(
        f"the {role} column declares the unit '{text}', which is not an angle", file=raw.path, column=col
    )


def _sexagesimal(raw: RawTable, col: str, s: pa.Array, unit) -> np.ndarray:
    """Degrees from sexagesimal strings (``07:23:20``, ``07h23m20.35s``, ``-73d27m18s``,
    ``-73 27 18.6``, ``-00:30:00``); a bad value is reported by row.

    The common ``[-]dd:mm:ss.s`` / ``dd mm ss.s`` forms are converted in Arrow (the sign
    applies to the whole angle, so ``-00:30:00`` is -0.5 deg); the rest go through astropy.
    """
    import warnings  # (local: ingest functions call their list of messages "warnings")

    from astropy import units as u
    from astropy.coordinates import Angle
    from astropy.utils.exceptions import AstropyWarning

    n = len(s)
    deg = np.full(n, np.nan)
    parts = pc.extract_regex(s, _DMS)
    fast = parts.is_valid().to_numpy(zero_copy_only=False)
    if fast.any():
        p = parts.filter(pa.array(fast))
        d, mi, se = (
            pc.struct_field(p, k).cast(pa.float64()).to_numpy(zero_copy_only=False) for k in ("d", "m", "s")
        )
        bad = (mi >= 60) | (se >= 60)
        if bad.any():
            i = int(np.flatnonzero(fast)[np.flatnonzero(bad)[0]])
            raise GccatError(
                f"cannot parse sexagesimal coordinate {s[i].as_py()!r} (minutes and "
                "seconds must be below 60)",
                file=raw.path,
                column=col,
                row=i + 1,
            )
        sign = np.where(
            pc.is_in(pc.struct_field(p, "sign"), pa.array(["", "+"])).to_numpy(zero_copy_only=False),
            1.0,
            -1.0,
        )
        deg[fast] = sign * (d + mi / 60.0 + se / 3600.0) * (1.0 * unit).to_value(u.deg)
    rest = np.flatnonzero(~fast & s.is_valid().to_numpy(zero_copy_only=False))
    if len(rest):
        vals = s.take(pa.array(rest)).to_pylist()
        try:
            with warnings.catch_warnings():
                # astropy only warns of an hour of 24 (and other edge values): an error here,
                # and no stray line on the user's terminal
                warnings.simplefilter("error", AstropyWarning)
                deg[rest] = Angle(vals, unit=unit).deg
        except (ValueError, u.UnitsError, AstropyWarning):
            for i, v in zip(rest, vals, strict=True):  # find the first bad one for the message
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("error", AstropyWarning)
                        Angle(v, unit=unit)
                except (ValueError, u.UnitsError, AstropyWarning):
                    raise GccatError(
                        f"cannot parse sexagesimal coordinate {v!r}",
                        file=raw.path,
                        column=col,
                        row=int(i) + 1,
                    ) from None
            raise GccatError("cannot parse the sexagesimal coordinates", file=raw.path, column=col) from None
    return deg


def _time_as_text(arr: pa.Array) -> pa.Array:
    """A time-of-day column back to ``HH:MM:SS[.fff]`` text (how a CSV or Parquet writer may
    have typed a whole-second RA such as 07:23:20).
    """
    return pa.array([None if v is None else v.isoformat() for v in arr.to_pylist()], pa.string())


def _coordinates(raw: RawTable, m: ColumnMapping) -> tuple[np.ndarray, np.ndarray]:
    """RA and Dec in degrees from degree, other angle-unit or sexagesimal columns, validated."""
    from astropy import units as u

    out = []
    for col, role, default in ((m.ra, "RA", u.hourangle), (m.dec, "Dec", u.deg)):
        arr = _column(raw, col)
        declared = _angle_unit(raw, col, role)
        if pa.types.is_time(arr.type):
            arr = _time_as_text(arr)
        if pa.types.is_string(arr.type):
            s = _trimmed(arr)
            numeric = pc.match_substring_regex(s, _NUMBER).fill_null(False).to_numpy(zero_copy_only=False)
            present = s.is_valid().to_numpy(zero_copy_only=False)
            if numeric[present].all():  # numbers stored as text
                deg = _as_float(raw, col, role, writable=False) * (1.0 * (declared or u.deg)).to_value(u.deg)
            elif numeric.any():
                first = _first_bad(present)
                kind = numeric[first - 1]
                i = _first_bad(present & (numeric != kind))
                raise GccatError(
                    f"the column mixes decimal numbers and sexagesimal values "
                    f"({s[first - 1].as_py()!r} in row {first}, {s[i - 1].as_py()!r})",
                    file=raw.path,
                    column=col,
                    row=i,
                )
            else:
                deg = _sexagesimal(raw, col, s, declared or default)
        else:
            deg = _as_float(raw, col, role, writable=False) * (1.0 * (declared or u.deg)).to_value(u.deg)
        missing = np.isnan(deg)
        if missing.any():
            raise GccatError("missing coordinate", file=raw.path, column=col, row=_first_bad(missing))
        if np.isinf(deg).any():
            raise GccatError("infinite coordinate", file=raw.path, column=col, row=_first_bad(np.isinf(deg)))
        out.append(deg)
    ra, dec = out
    bad = (ra < 0) | (ra >= 360)
    if bad.any():
        i = _first_bad(bad)
        raise GccatError(f"RA {ra[i - 1]} outside [0, 360) deg", file=raw.path, column=m.ra, row=i)
    bad = (dec < -90) | (dec > 90)
    if bad.any():
        i = _first_bad(bad)
        raise GccatError(f"Dec {dec[i - 1]} outside [-90, 90] deg", file=raw.path, column=m.dec, row=i)
    return ra, dec


def _flags(raw: RawTable, column: str) -> pa.Array:
    """A flags column as int64: whole numbers only (``1.5``, ``1e30``, ``abc`` are refused)."""
    arr = _column(raw, column)
    t = arr.type
    if pa.types.is_boolean(t) or pa.types.is_null(t):
        return arr.cast(pa.int64())
    if pa.types.is_integer(t):
        try:
            return arr.cast(pa.int64())
        except pa.ArrowInvalid:  # uint64 beyond int64
            i = _first_uncastable(arr, pa.int64())
            raise GccatError(
                f"flags value {arr[i].as_py()} does not fit in 64 bits",
                file=raw.path,
                column=column,
                row=i + 1,
            ) from None
    digits = None
    if pa.types.is_string(t):
        # values written as digits are converted exactly (a double has only 53 bits)
        s = _trimmed(arr)
        digits = pc.match_substring_regex(s, r"^[+-]?\d+$").fill_null(False)
        whole = pc.if_else(digits, s, pa.scalar(None, pa.string()))
        try:
            exact = whole.cast(pa.int64())
        except pa.ArrowInvalid:
            i = _first_uncastable(whole, pa.int64())
            raise GccatError(
                f"flags value {arr[i].as_py()!r} does not fit in 64 bits",
                file=raw.path,
                column=column,
                row=i + 1,
            ) from None
        if pc.all(pc.or_(digits, s.is_null())).as_py() is not False:
            return exact
    x = _as_float(raw, column, "flags")
    if digits is not None:
        x[digits.to_numpy(zero_copy_only=False)] = 0.0  # taken from ``exact``
    bad = np.isfinite(x) & ((x != np.round(x)) | (np.abs(x) >= 2.0**63))
    bad |= np.isinf(x)
    if bad.any():
        i = _first_bad(bad)
        raise GccatError(
            f"flags value {arr[i - 1].as_py()!r} is not a whole number that fits in 64 bits",
            file=raw.path,
            column=column,
            row=i,
        )
    out = pa.array(x, from_pandas=True).cast(pa.int64())
    return out if digits is None else pc.if_else(digits, exact, out)


_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}


def _upper_limits(raw: RawTable, column: str) -> np.ndarray:
    """A boolean column (true/false, t/f, yes/no, 1/0; empty = false); anything else is an
    error naming the row.
    """
    arr = _column(raw, column)
    t = arr.type
    if pa.types.is_boolean(t) or pa.types.is_null(t):
        return np.asarray(arr.cast(pa.bool_()).fill_null(False).to_numpy(zero_copy_only=False))
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        x = arr.cast(pa.float64()).to_numpy(zero_copy_only=False)
        bad = ~np.isnan(x) & (x != 0) & (x != 1)
        values = np.nan_to_num(x) == 1
    elif pa.types.is_string(t):
        s = pc.utf8_lower(_trimmed(arr))
        true = pc.is_in(s, pa.array(sorted(_TRUE))).to_numpy(zero_copy_only=False)
        false = pc.is_in(s, pa.array(sorted(_FALSE))).to_numpy(zero_copy_only=False)
        bad = s.is_valid().to_numpy(zero_copy_only=False) & ~true & ~false
        values = true
    else:
        raise GccatError(
            f"upper-limit flags hold {t} values, expected true/false",
            file=raw.path,
            column=column,
            row=_first_valid_row(arr),
        )
    if bad.any():
        i = _first_bad(bad)
        raise GccatError(
            f"upper-limit flag {arr[i - 1].as_py()!r} is not true/false (accepted: "
            "true/false, t/f, yes/no, 1/0)",
            file=raw.path,
            column=column,
            row=i,
        )
    return np.asarray(values, bool)


def _redshifts(raw: RawTable, column: str) -> np.ndarray:
    """A redshift column: NaN or empty is missing; negative, infinite or beyond z = 20 is an
    error naming the row (a -99 sentinel must be an empty cell).
    """
    z = _as_float(raw, column, "redshift")
    lo, hi = Z_RANGE
    bad = ~np.isnan(z) & ((z < lo) | (z > hi) | np.isinf(z))
    if bad.any():
        i = _first_bad(bad)
        hint = " (if it marks a missing value, leave the cell empty)" if z[i - 1] < 0 else ""
        raise GccatError(
            f"redshift {z[i - 1]} outside [{lo:g}, {hi:g}]{hint}", file=raw.path, column=column, row=i
        )
    return z


def _classes(raw: RawTable, column: str) -> pa.Array:
    arr = _column(raw, column)
    try:
        return _trimmed(arr.cast(pa.string()))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise GccatError(
            f"classes hold {arr.type} values, expected text",
            file=raw.path,
            column=column,
            row=_first_valid_row(arr),
        ) from None


def _source_ids(raw: RawTable, m: ColumnMapping, warnings: list[str]) -> pa.Array:
    n = raw.table.num_rows
    if m.id is None:
        warnings.append("no id column: source ids are the 1-based row numbers")
        return pa.array(np.arange(1, n + 1).astype(str))
    arr = _column(raw, m.id)
    if pa.types.is_floating(arr.type):  # a NaN id is a missing id, not the text "nan"
        arr = pc.if_else(pc.is_nan(arr), pa.scalar(None, arr.type), arr)
    try:
        ids = _trimmed(arr.cast(pa.string()))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise GccatError(
            f"source ids hold {arr.type} values, expected text or numbers",
            file=raw.path,
            column=m.id,
            row=_first_valid_row(arr),
        ) from None
    if ids.null_count:
        raise GccatError(
            "missing source id",
            file=raw.path,
            column=m.id,
            row=_first_bad(ids.is_null().to_numpy(zero_copy_only=False)),
        )
    if pa.types.is_integer(arr.type):
        # one text per integer: distinct integers are distinct ids (a sort, not a string hash)
        srt = np.sort(arr.to_numpy())
        unique = not (srt[1:] == srt[:-1]).any()
    else:
        unique = pc.count_distinct(ids).as_py() == n
    if not unique:
        ids_np = np.asarray(ids.to_numpy(zero_copy_only=False))
        order = np.argsort(ids_np, kind="stable")
        srt = ids_np[order]
        dup_pos = np.flatnonzero(srt[1:] == srt[:-1])
        first_second = int(order[dup_pos + 1].min())
        raise GccatError(
            f"duplicate source id {ids_np[first_second]!r}", file=raw.path, column=m.id, row=first_second + 1
        )
    return ids


def _band_values(raw: RawTable, b, warnings: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """A band's values and errors as in the file (magnitude sentinels of 99 made NaN), checked:
    infinite values and negative errors are refused; what is not stored gets a warning.
    """
    value = _as_float(raw, b.value, f"{b.band} {b.kind}", writable=False)
    err = (
        _as_float(raw, b.error, f"{b.band} error", writable=False) if b.error else np.full(len(value), np.nan)
    )
    if np.isinf(value).any():
        raise GccatError("infinite value", file=raw.path, column=b.value, row=_first_bad(np.isinf(value)))
    n_missing = int(np.isnan(value).sum())
    if n_missing:
        warnings.append(f"{b.value}: {n_missing} of {len(value)} {b.band} values empty or NaN (not stored)")
    if b.kind == "mag":
        # SExtractor-style 99 (and -99) marks a non-detection, in the magnitude and its error;
        # taken out before the errors are checked, or a 99/-99 row would be refused
        sentinel = np.abs(value) >= 90
        if sentinel.any():
            warnings.append(
                f"{b.value}: {int(sentinel.sum())} magnitudes >= 90 "
                "(non-detection sentinels) treated as missing"
            )
            value = np.where(sentinel, np.nan, value)
            err = np.where(sentinel, np.nan, err)
        err_sentinel = np.abs(err) >= 90
        if err_sentinel.any():
            warnings.append(
                f"{b.error}: {int(err_sentinel.sum())} magnitude errors >= 90 "
                "(sentinels) treated as missing: those values have no error"
            )
            err = np.where(err_sentinel, np.nan, err)
    if np.isinf(err).any():
        raise GccatError("infinite error", file=raw.path, column=b.error, row=_first_bad(np.isinf(err)))
    neg = err < 0
    if neg.any():
        i = _first_bad(neg)
        raise GccatError(f"negative error {err[i - 1]}", file=raw.path, column=b.error, row=i)
    if b.error is None:
        warnings.append(
            f"{b.band}: no error column for '{b.value}': its values are stored "
            "without errors (fits leave such a band out)"
        )
    else:
        no_err = int((np.isfinite(value) & np.isnan(err)).sum())
        if no_err:
            warnings.append(
                f"{b.error}: {no_err} {b.band} values have no error (empty or NaN): stored without one"
            )
    return value, err


def _band_njy(raw: RawTable, b, value: np.ndarray, err: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A band's values and errors in nJy; a value finite in the file but not in nJy is refused."""
    with np.errstate(over="ignore"):
        if b.kind == "mag":
            # m_AB = m + ab_offset (0 for AB); sigma_f = 0.4 ln10 f sigma_m in any system
            m_ab = value + b.ab_offset
            flux, flux_err = abmag_to_flux(m_ab), mag_err_to_flux_err(m_ab, err)
        else:
            f = b.factor_to_njy
            # x * 1.0 is x: a catalog in nJy keeps its arrays (no two new ones per band)
            flux, flux_err = (value, err) if f == 1.0 else (value * f, err * f)
    for arr, col in ((flux, b.value), (flux_err, b.error)):
        if np.isinf(arr).any():
            raise GccatError(
                f"{b.band} value overflows when converted to nJy",
                file=raw.path,
                column=col,
                row=_first_bad(np.isinf(arr)),
            )
    return flux, flux_err


@dataclass
class _BandFluxes:
    """One band's checked fluxes in nJy (all rows), which rows are kept, and their flags."""

    band: str
    flux: np.ndarray
    flux_err: np.ndarray
    is_upper_limit: np.ndarray
    kept: slice | np.ndarray
    n_kept: int
    zero_error: np.ndarray


def _band_fluxes(raw: RawTable, m: ColumnMapping, warnings: list[str]) -> list[_BandFluxes]:
    """Every mapped band's fluxes and errors in nJy, checked (a bad value is an error naming
    its row); values missing in the file are not kept.
    """
    out = []
    for b in m.bands.values():
        value, err = _band_values(raw, b, warnings)
        flux, flux_err = _band_njy(raw, b, value, err)
        uplim = _upper_limits(raw, b.upper_limit) if b.upper_limit else np.zeros(len(flux), bool)
        keep = np.isfinite(flux)
        zero = keep & (flux_err == 0)
        if zero.any():
            warnings.append(
                f"{b.error}: {int(zero.sum())} errors of exactly 0 kept as published "
                f"(quality flag {QUALITY_ZERO_ERROR}; fits add an error floor)"
            )
        kept = slice(None) if keep.all() else np.flatnonzero(keep)  # all kept: no copies
        n_kept = len(flux) if isinstance(kept, slice) else len(kept)
        out.append(_BandFluxes(b.band, flux, flux_err, uplim, kept, n_kept, zero))
    return out


def _photometry(
    bands: list[_BandFluxes], m: ColumnMapping, det_ids: pa.Array, field_id: str, ingest_id: str
) -> Iterator[pa.Table]:
    """The long photometry table (one row per source and band with a value), in nJy, one
    band at a time (so the lake writes the first bands while the next are built).
    """
    n_rows = len(det_ids)
    # Constant columns built once at full length; each band takes a zero-copy slice.
    field_col, method_col = constant(field_id, n_rows), constant(m.method, n_rows)
    ingest_col = constant(ingest_id, n_rows)
    for b in bands:
        idx, k = b.kept, b.n_kept
        yield pa.table(
            {
                "detection_id": det_ids if k == n_rows else det_ids.take(pa.array(idx)),
                "field_id": field_col.slice(0, k),
                "band": constant(b.band, k),
                "flux_njy": b.flux[idx],
                "flux_err_njy": pa.array(b.flux_err[idx], from_pandas=True),
                "is_upper_limit": b.is_upper_limit[idx],
                "method": method_col.slice(0, k),
                "aperture_radius_arcsec": (
                    pa.nulls(k, pa.float64())
                    if m.aperture_radius_arcsec is None
                    else pa.array(np.full(k, float(m.aperture_radius_arcsec)))
                ),
                "mw_corrected": np.full(k, m.mw_corrected),
                "quality": np.where(b.zero_error[idx], QUALITY_ZERO_ERROR, 0).astype(np.int32),
                "ingest_id": ingest_col.slice(0, k),
            },
            schema=PHOTOMETRY,
        )


def _extras(raw: RawTable, m: ColumnMapping, warnings: list[str]) -> pa.Array | None:
    """The unmapped columns of each row as one JSON object (``detections.extra``).

    The column names travel as Arrow struct field names, never as SQL text: a header can
    hold any characters (quotes, ``:=``, SQL) and still only ever becomes a JSON key. NaN and
    infinities (which JSON cannot hold) become null; bytes that are not text are left out
    with a warning. Nested columns (FITS vectors, Parquet lists and structs) become JSON
    arrays and objects.
    """
    used = m.used_columns()
    cols, arrays = [], []
    for c in raw.table.column_names:
        if c in used:
            continue
        arr = _column(raw, c)
        if pa.types.is_binary(arr.type):
            warnings.append(f"column {c!r} holds bytes that are not UTF-8 text: not kept in extra")
            continue
        cols.append(c)
        arrays.append(arr)
    if not cols:
        return None
    if any(f(a.type) for a in arrays for f in _NESTED):
        return _extras_python(cols, arrays)
    from catalog.queries.sandbox import sandboxed_connection

    arrays = [
        pc.if_else(pc.is_finite(a), a, pa.scalar(None, a.type)) if pa.types.is_floating(a.type) else a
        for a in arrays
    ]
    packed = pa.StructArray.from_arrays(arrays, names=cols)
    con = sandboxed_connection()  # reads only the registered Arrow table
    con.register("extra", pa.table({"s": packed}))
    out = to_arrow(con.sql("SELECT to_json(s) AS j FROM extra"))
    return out["j"].combine_chunks().cast(pa.string())


def _json_value(v):
    """A Python value from Arrow as something ``json.dumps`` writes as valid JSON."""
    if isinstance(v, float):
        return v if np.isfinite(v) else None
    if isinstance(v, dict):
        return {str(k): _json_value(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        if len(v) and all(isinstance(x, tuple) and len(x) == 2 for x in v):  # an Arrow map
            return {str(k): _json_value(x) for k, x in v}
        return [_json_value(x) for x in v]
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="backslashreplace")
    if v is None or isinstance(v, bool | int | str):
        return v
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return str(v)


def _extras_python(cols: list[str], arrays: list[pa.Array]) -> pa.Array:
    """``extra`` built in Python, for tables with nested columns (rare; DuckDB's to_json
    would write NaN inside lists, which is not JSON).
    """
    import json

    values = [a.to_pylist() for a in arrays]
    return pa.array(
        [
            json.dumps(
                {c: _json_value(v[i]) for c, v in zip(cols, values, strict=True)},
                ensure_ascii=False,
                allow_nan=False,
            )
            for i in range(len(arrays[0]))
        ],
        pa.string(),
    )


def read_and_map(
    path,
    *,
    mapping_file=None,
    flux_unit: str = "nJy",
    mag_system: str | None = None,
    mw_corrected: bool = False,
    bands: bool = True,
) -> tuple[RawTable, ColumnMapping]:
    """Read a catalog file and work out its column mapping (no lake needed).

    The options and the mapping file are checked first; the columns the mapping names for id
    and coordinates, and those named like ids and coordinates, are read from a CSV as text.
    ``bands=False`` maps ids and positions only (a file of positions may hold magnitudes
    whose system does not matter there).
    """
    check_flux_unit(flux_unit)
    mag_system = check_mag_option(mag_system)
    spec = parse_mapping_file(mapping_file) if mapping_file else None
    text = list(TEXT_NAMES) + [
        spec["columns"][k] for k in ("id", "ra", "dec", "flags") if spec and k in spec["columns"]
    ]
    raw = read_catalog_file(path, text_columns=text)
    names = raw.table.column_names
    if spec is not None:
        m = load_mapping(
            raw.path,
            mapping_file,
            names,
            raw.units,
            flux_unit=flux_unit,
            mag_system=mag_system,
            mw_corrected=mw_corrected,
            spec=spec,
        )
    else:
        m = infer_mapping(
            raw.path,
            names,
            raw.units,
            flux_unit=flux_unit,
            mag_system=mag_system,
            mw_corrected=mw_corrected,
            infer_bands=bands,
        )
    _check_mapped_types(raw, m)
    return raw, m


def _stable_argsort(x: np.ndarray) -> np.ndarray:
    """``np.argsort(x, kind="stable")``, from numpy's (3x faster) unstable sort when no two
    values are equal (healpix29 of distinct sources almost never are).
    """
    order = np.argsort(x)
    srt = x[order]
    if len(x) > 1 and (srt[1:] == srt[:-1]).any():
        return np.argsort(x, kind="stable")
    return order


def detections_table(
    field_id: str,
    catalog: str,
    source_ids,
    ra: np.ndarray,
    dec: np.ndarray,
    ingest_id: str,
    *,
    z=None,
    class_=None,
    flags=None,
    extra=None,
    snr=None,
) -> pa.Table:
    """Rows of ``detections`` (ids ``field_id/catalog/source_id``, healpix29), sorted by
    healpix29 so that cone searches skip most row groups. Missing optional columns are NULL.
    """
    source_ids = pa.array(source_ids, pa.string()) if not isinstance(source_ids, pa.Array) else source_ids
    n = len(source_ids)

    def opt(value, type_):
        if value is None:
            return pa.nulls(n, type_)
        return value if isinstance(value, pa.Array) else pa.array(value, type_, from_pandas=True)

    hp = healpix29(ra, dec) if n else np.zeros(0, np.int64)
    # Stable sort by healpix29 (as Table.sort_by); only the columns that vary are taken:
    # constant and all-null columns are built at their place, detection_id from sorted ids.
    order = _stable_argsort(hp)
    take = pa.array(order)
    varying = {
        "source_id": source_ids,
        "z": opt(z, pa.float64()),
        "class": opt(class_, pa.string()),
        "flags": opt(flags, pa.int64()),
        "extra": opt(extra, pa.string()),
        "snr": opt(snr, pa.float64()),
    }
    cols = {k: v if v.null_count == len(v) else v.take(take) for k, v in varying.items()}
    sorted_ids = cols["source_id"]
    return pa.table(
        {
            "detection_id": pc.binary_join_element_wise(pa.scalar(f"{field_id}/{catalog}/"), sorted_ids, ""),
            "field_id": constant(field_id, n),
            "catalog": constant(catalog, n),
            "source_id": sorted_ids,
            "ra": np.asarray(ra)[order],
            "dec": np.asarray(dec)[order],
            "healpix29": hp[order],
            "z": cols["z"],
            "class": cols["class"],
            "flags": cols["flags"],
            "extra": cols["extra"],
            "snr": cols["snr"],
            "ingest_id": constant(ingest_id, n),
        }
    ).cast(DETECTIONS)


def read_positions(path: str | os.PathLike, extra: Sequence[str] = ()) -> pa.Table:
    """``source_id``, ``ra``, ``dec`` (deg) of a catalog file, validated like an ingest, plus
    the columns named in ``extra`` that the file has (case-insensitive).
    """
    raw, m = read_and_map(path, bands=False)
    ra, dec = _coordinates(raw, m)
    cols = {"source_id": _source_ids(raw, m, []), "ra": ra, "dec": dec}
    names = {c.lower(): c for c in raw.table.column_names}
    for e in extra:
        if e.lower() in names:
            cols[e] = _as_float(raw, names[e.lower()], e)
    return pa.table(cols)


def ingest_catalog(
    lake: Lake,
    path: str | os.PathLike,
    *,
    field_id: str,
    name: str,
    mapping_file: str | os.PathLike | None = None,
    replace: bool = False,
    z: float | None = None,
    flux_unit: str = "nJy",
    mag_system: str | None = None,
    mw_corrected: bool = False,
    progress: Progress | None = None,
    command: str | None = None,
    lock_timeout_s: float = 600.0,
) -> IngestReport:
    """Ingest a catalog of sources with multi-band photometry into ``detections``/``photometry``.

    Parameters
    ----------
    lake : Lake
        The lake to write to.
    path : path
        CSV (``#`` comments allowed), ECSV, FITS, VOTable or Parquet file.
    field_id : str
        Field the sources belong to (a simple name; registered if new).
    name : str
        Catalog name, unique within the field; part of every ``detection_id``.
    mapping_file : path, optional
        TOML column mapping; without it the mapping is inferred from the column names.
    replace : bool
        Supersede the live ingest of the same ``name`` in the field, in the same commit. An
        ingest is identified by its file and the options that change what is stored (the
        resolved column mapping with its units, ``z``, ``mw_corrected``): the same file with
        the same options again is a no-op; with other options it needs ``replace``.
    z : float, optional
        Redshift for sources whose catalog gives none.
    flux_unit : str
        Unit of flux columns that declare none: any astropy flux density (``nJy``, ``uJy``,
        ``mJy``, ``Jy``, ``10 nJy``, ``erg/(s cm2 Hz)``).
    mag_system : str, optional
        ``AB`` (or ``Vega``, ``ST``) for magnitude columns that do not say their system (unit
        ``mag`` or none); without it such columns are refused. Vega and ST magnitudes also
        need each band's ``ab_offset`` in a mapping.
    mw_corrected : bool
        The fluxes are already corrected for Milky Way extinction.
    progress : callable, optional
        Called as ``progress(stage, fraction_done)``.

    Returns
    -------
    IngestReport
    """
    step = progress or (lambda stage, frac: None)
    check_name(field_id, "field id")
    check_name(name, "catalog name")
    z = check_number(z, "--z", lo=Z_RANGE[0], hi=Z_RANGE[1], allow_none=True)
    path = Path(path)
    step("reading", 0.0)
    # The file's hash (hashlib releases the GIL) in a thread while it is read and validated.
    with ThreadPoolExecutor(1) as pool:
        sha_future = pool.submit(sha256_file, path)
        raw, m = read_and_map(
            path,
            mapping_file=mapping_file,
            flux_unit=flux_unit,
            mag_system=mag_system,
            mw_corrected=mw_corrected,
        )
        mag_system = check_mag_option(mag_system)
        step("validating", 0.15)
        warnings: list[str] = []
        ra, dec = _coordinates(raw, m)
        source_ids = _source_ids(raw, m, warnings)
        n = raw.table.num_rows
        zcol = _redshifts(raw, m.z) if m.z else np.full(n, np.nan)
        if z is not None:
            zcol = np.where(np.isnan(zcol), z, zcol)
        sha = sha_future.result()
    step("photometry", 0.3)
    ingest_id = new_ingest_id()
    class_ = _classes(raw, m.class_) if m.class_ else None
    flags = _flags(raw, m.flags) if m.flags else None
    extra = _extras(raw, m, warnings)
    fluxes = _band_fluxes(raw, m, warnings)
    n_photometry = sum(b.n_kept for b in fluxes)
    used_bands = sorted(m.bands)
    stored_as = catalog_identity_options(m, z)
    options = {
        "mapping": m.as_dict(),
        "z": z,
        "flux_unit": flux_unit,
        "mag_system": mag_system,
        "format": raw.format,
        "bands_measured": used_bands,
        "identity": ingest_identity(sha, stored_as),
        "identity_options": stored_as,
    }
    with lake.transaction(IngestKind.CATALOG, lock_timeout_s, ingest_id=ingest_id) as tx:
        same = lake.live_named(field_id, name, kinds=DETECTION_KINDS)
        repeat = repeat_of(same, sha, options)
        if repeat == "same":
            return IngestReport(
                same["ingest_id"][0].as_py(),
                lake.version(),
                skipped=True,
                n_rows=same["n_rows"][0].as_py(),
                bands=used_bands,
                mapping=m.as_dict(),
            )
        if same.num_rows and not replace:
            what = (
                f"from this file with other options ({repeat})"
                if repeat != "other file"
                else "from another file"
            )
            raise GccatError(
                f"catalog '{name}' is already in field '{field_id}' "
                f"({same['kind'][0].as_py()} ingest {same['ingest_id'][0].as_py()}) "
                f"{what}; pass --replace to supersede it",
                file=path,
            )
        register_field_and_bands(lake, tx, field_id, used_bands, ra, dec, warnings)
        step("building", 0.4)
        stages = {"detections": ("writing detections", 0.6), "photometry": ("writing photometry", 0.75)}
        writing = tx.files(order=("detections", "photometry"), progress=lambda t: step(*stages[t]))
        with writing as files, ThreadPoolExecutor(1) as pool:
            # healpix29 and the sort of the detections on a second core, while the
            # photometry is built band by band and its first files are written
            det = pool.submit(
                detections_table,
                *(field_id, name, source_ids, ra, dec, ingest_id),
                z=zcol,
                class_=class_,
                flags=flags,
                extra=extra,
            )
            det_ids = pc.binary_join_element_wise(pa.scalar(f"{field_id}/{name}/"), source_ids, "")
            files.add("photometry", _photometry(fluxes, m, det_ids, field_id, ingest_id))
            files.add("detections", det.result())
        step("committing", 0.95)
        version = tx.commit(
            name=name,
            field_id=field_id,
            source_path=path.resolve(),
            sha256=sha,
            n_rows=n,
            n_photometry=n_photometry,
            command=command or command_line(),
            supersedes=same["ingest_id"].to_pylist(),
            options=options,
            warnings=warnings,
        )
    step("done", 1.0)
    return IngestReport(
        tx.ingest_id,
        version,
        n,
        n_photometry,
        used_bands,
        warnings,
        superseded=same["ingest_id"].to_pylist(),
        mapping=m.as_dict(),
    )


def catalog_identity_options(m: ColumnMapping, z: float | None) -> dict:
    """The options of a catalog ingest that change what is stored, canonically: the resolved
    mapping (columns, each band's factor to nJy or magnitude system and AB offset, errors,
    limits, mw_corrected, method, aperture) and ``z``. A unit's spelling is left out: uJy and
    microJy store the same numbers.
    """
    mapping = m.as_dict()
    for b in mapping["bands"].values():
        b.pop("unit", None)
    return {"mapping": mapping, "z": z}


def ingest_identity(sha256: str, options: dict) -> str:
    """What identifies an ingest: the sha256 of the input file digest(s) and of the canonical
    JSON of the options that change what is stored.
    """
    canon = json.dumps(
        {"sha256": sha256, "options": options}, sort_keys=True, separators=(",", ":"), default=str
    )
    return hashlib.sha256(canon.encode()).hexdigest()


def _flat(d, prefix: str = "") -> dict:
    if not isinstance(d, dict):
        return {prefix: d}
    out = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def options_difference(old: dict, new: dict, limit: int = 3) -> str:
    """The options that differ, as ``key: old -> new`` (at most ``limit`` of them)."""
    a, b = _flat(old), _flat(new)
    keys = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    parts = [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in keys[:limit]]
    if len(keys) > limit:
        parts.append(f"and {len(keys) - limit} more")
    return "; ".join(parts) or "the options recorded differ"


def repeat_of(same: pa.Table, sha256: str, options: dict) -> str | None:
    """How a new ingest relates to the live ingest of its name (``same``, rows of ``ingests``).

    Returns None if there is none, ``"same"`` for the same file(s) and options (a no-op),
    ``"other file"``, or, for the same file with other options, a description of what differs.
    An ingest recorded before identities were (no ``identity`` in its options) is compared by
    its file only.
    """
    if not same.num_rows:
        return None
    if same["sha256"][0].as_py() != sha256:
        return "other file"
    old = json.loads(same["options"][0].as_py() or "{}")
    if "identity" not in old or old["identity"] == options["identity"]:
        return "same"
    return options_difference(old.get("identity_options") or {}, options["identity_options"])


def register_field_and_bands(
    lake: Lake, tx, field_id: str, used_bands: list[str], ra: np.ndarray, dec: np.ndarray, warnings: list[str]
) -> None:
    """Add the field (if new, centred on its sources) and new bands to this transaction."""
    known_fields = set(lake.live("fields")["field_id"].to_pylist())
    known_bands = set(lake.live("bands")["band"].to_pylist())
    if field_id not in known_fields:
        warnings.append(
            f"field '{field_id}' was not in the lake: registered with its centre at "
            "the sources' mean position (load field facts with 'gccat ingest fields')"
        )
        ra_r, dec_r = np.radians(ra), np.radians(dec)
        cos_dec = np.cos(dec_r)
        mx, my, mz = (
            (cos_dec * np.cos(ra_r)).mean(),
            (cos_dec * np.sin(ra_r)).mean(),
            np.sin(dec_r).mean(),
        )
        row = {f.name: [None] for f in FIELDS}
        row.update(
            field_id=[field_id],
            ra_center=[float(np.degrees(np.arctan2(my, mx)) % 360)],
            dec_center=[float(np.degrees(np.arctan2(mz, np.hypot(mx, my))))],
            ingest_id=[tx.ingest_id],
        )
        tx.append("fields", pa.table(row, schema=FIELDS))
    new = [b for b in used_bands if b not in known_bands]
    if new:
        tx.append("bands", band_rows(new, tx.ingest_id))


def _split(v) -> list[str]:
    return [] if v is None or str(v).strip() == "" else [s.strip() for s in str(v).split("|")]


def _field_number(
    path: Path,
    names: dict,
    r: dict,
    i: int,
    key: str,
    lo=None,
    hi=None,
    required: bool = False,
    lo_open: bool = False,
) -> float | None:
    """A number of row ``i`` of a fields table: empty or NaN is missing (an error if
    ``required``), infinities and values outside [lo, hi] are errors.
    """
    col = names.get(key)
    v = None if col is None else r[col]
    if isinstance(v, bool) or not isinstance(v, int | float | str | None):
        raise GccatError(f"{v!r} is not a number", file=path, column=col, row=i)
    x = None
    if v is not None and str(v).strip() != "":
        try:
            x = float(v)
        except ValueError:
            raise GccatError(f"{v!r} is not a number", file=path, column=col, row=i) from None
        if np.isnan(x):
            x = None
    if x is None:
        if required:
            raise GccatError(f"the field centre is required ({key})", file=path, column=col or key, row=i)
        return None
    if (
        not np.isfinite(x)
        or (lo is not None and (x < lo or (lo_open and x == lo)))
        or (hi is not None and x > hi)
    ):
        rng = (
            f"{'(' if lo_open else '['}{lo}, {hi if hi is not None else 'inf'}"
            f"{']' if hi is not None else ')'}"
        )
        raise GccatError(f"{x} outside {rng}", file=path, column=col, row=i)
    return x


def _pixel_scales(path: Path, column: str | None, text, i: int) -> list[float]:
    """The ``|``-separated pixel scales of row ``i``, arcsec; each must be positive."""
    pix = []
    for s in _split(text):
        try:
            x = float(s)
        except ValueError:
            x = np.nan
        if not (np.isfinite(x) and x > 0):
            raise GccatError(f"pixel scale {s!r} is not a positive number", file=path, column=column, row=i)
        pix.append(x)
    return pix


def _field_row(path: Path, names: dict, r: dict, i: int) -> dict:
    """Row ``i`` of a fields table checked and converted to the ``fields`` columns."""

    def text(key):
        return r.get(names.get(key, ""), None)

    fid = str(r[names["field_id"]] or "").strip()
    try:
        check_name(fid, "field id")
    except GccatError as exc:
        raise GccatError(exc.message, file=path, column=names["field_id"], row=i) from None
    band_list = _split(text("bands"))
    for b in band_list:
        if bandreg.lookup(b) is None:
            _known_band_error(path, names.get("bands"), i, b)
    ra_key = "ra_center_deg" if "ra_center_deg" in names else "ra_center"
    dec_key = "dec_center_deg" if "dec_center_deg" in names else "dec_center"
    row = {
        "field_id": fid,
        "name": text("name"),
        "aliases": _split(text("aliases")),
        "ra_center": _field_number(path, names, r, i, ra_key, 0, 360, required=True),
        "dec_center": _field_number(path, names, r, i, dec_key, -90, 90, required=True),
    }
    row["pixel_scale_arcsec"] = _pixel_scales(
        path, names.get("pixel_scale_arcsec"), text("pixel_scale_arcsec"), i
    )
    row["z_cluster"] = _field_number(path, names, r, i, "z_cluster", *Z_RANGE)
    row["ebv_mw"] = _field_number(path, names, r, i, "ebv_mw", 0, 10)
    row["kpc_per_arcsec"] = _field_number(path, names, r, i, "kpc_per_arcsec", 0, lo_open=True)
    row["bands"] = [bandreg.lookup(b).band for b in band_list]
    row["depth_note"], row["source"] = text("depth_note"), text("source")
    return row


def ingest_fields(lake: Lake, path: str | os.PathLike, *, command: str | None = None) -> IngestReport:
    """Ingest a table of cluster fields (``cluster_fields.csv`` layout; ``|`` separates lists).

    Columns: ``field_id, name, aliases, ra_center_deg, dec_center_deg, z_cluster, ebv_mw,
    kpc_per_arcsec, pixel_scale_arcsec, bands, depth_note, source``; all but ``field_id`` and
    the centre are optional. The bands listed are registered too.
    """
    path = Path(path)
    raw = read_catalog_file(
        path,
        text_columns=("field_id", "name", "aliases", "bands", "pixel_scale_arcsec", "depth_note", "source"),
    )
    t = raw.table
    names = {c.lower(): c for c in t.column_names}
    if "field_id" not in names:
        raise GccatError("no field_id column", file=path, column="field_id")
    rows = t.to_pylist()
    out = {f.name: [] for f in FIELDS if f.name != "ingest_id"}
    for i, r in enumerate(rows, start=1):
        for k, v in _field_row(path, names, r, i).items():
            out[k].append(v)
    if len(set(out["field_id"])) != len(out["field_id"]):
        dup = next(i for i, f in enumerate(out["field_id"]) if out["field_id"].index(f) != i)
        raise GccatError(
            f"duplicate field id {out['field_id'][dup]!r}", file=path, column=names["field_id"], row=dup + 1
        )
    sha = sha256_file(path)
    with lake.transaction(IngestKind.FIELDS) as tx:
        live = lake.ingests()
        same = live.filter(
            pc.and_(pc.equal(live["kind"], str(IngestKind.FIELDS)), pc.equal(live["sha256"], sha))
        )
        if same.num_rows:
            return IngestReport(same["ingest_id"][0].as_py(), lake.version(), skipped=True, n_rows=len(rows))
        out["ingest_id"] = [tx.ingest_id] * len(rows)
        for k in ("name", "depth_note", "source"):
            out[k] = [None if v is None else str(v) for v in out[k]]
        tx.append("fields", pa.table(out, schema=FIELDS))
        bands_new = sorted({b for bands in out["bands"] for b in bands})
        if bands_new:
            tx.append("bands", band_rows(bands_new, tx.ingest_id))
        version = tx.commit(
            name=path.stem,
            source_path=path.resolve(),
            sha256=sha,
            n_rows=len(rows),
            command=command or command_line(),
            options={"bands": bands_new},
        )
    return IngestReport(tx.ingest_id, version, len(rows), bands=bands_new)


def _known_band_error(path, column, row, token):
    raise GccatError(f"unknown band '{token}'", file=path, column=column, row=row)


def ingest_bands(lake: Lake, names: list[str] | None = None, *, command: str | None = None) -> IngestReport:
    """Register filters (default: every filter gccat knows) with their sedpy wavelengths."""
    names = names or sorted(bandreg.known_bands())
    bad = [n for n in names if bandreg.lookup(n) is None]
    if bad:
        raise GccatError(f"unknown band '{bad[0]}'", column="band")
    names = [bandreg.lookup(n).band for n in names]
    with lake.transaction(IngestKind.BANDS) as tx:
        tx.append("bands", band_rows(names, tx.ingest_id))
        version = tx.commit(
            name="bands", n_rows=len(names), command=command or command_line(), options={"bands": names}
        )
    return IngestReport(tx.ingest_id, version, len(names), bands=names)


def mask_regions_from_file(path: str | os.PathLike, default_radius_arcsec: float = 2.0) -> pa.Table:
    """Bright sources to mask from a catalog file (``ra``, ``dec`` and optionally
    ``radius_arcsec``); rows without a radius get ``default_radius_arcsec`` (``--mask-radius``).
    """
    from catalog.runs.correlation import check_mask_radius, check_mask_regions

    default_radius_arcsec = check_mask_radius(default_radius_arcsec)
    regions = read_positions(path, extra=["radius_arcsec"])
    if "radius_arcsec" not in regions.column_names:
        regions = regions.append_column(
            "radius_arcsec", pa.array(np.full(regions.num_rows, default_radius_arcsec))
        )
    else:
        r = regions["radius_arcsec"].to_numpy(zero_copy_only=False).astype(float)
        r = np.where(np.isnan(r), default_radius_arcsec, r)
        regions = regions.set_column(
            regions.schema.get_field_index("radius_arcsec"), "radius_arcsec", pa.array(r)
        )
    check_mask_regions(regions, path)
    return regions


def band_rows(names: list[str], ingest_id: str) -> pa.Table:
    """Rows of the ``bands`` table for ``names``, with wavelengths from the sedpy curves (um)."""
    from sedpy import observate

    bands = [bandreg.known_bands()[n.upper()] for n in names]
    filters = observate.load_filters([b.sedpy_name for b in bands])
    return pa.table(
        {
            "band": [b.band for b in bands],
            "instrument": [b.instrument for b in bands],
            "sedpy_name": [b.sedpy_name for b in bands],
            "pivot_um": [float(f.wave_pivot) / 1e4 for f in filters],
            "wave_effective_um": [float(f.wave_effective) / 1e4 for f in filters],
            "ingest_id": [ingest_id] * len(bands),
        },
        schema=BANDS,
    )
