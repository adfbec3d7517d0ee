"""Delta ``stats`` of an add action, computed from the Arrow data written to its file.

Engines skip files by these statistics (``dec < -80`` reads only files whose ``minValues.dec``
is below -80), so gccat's own Parquet writer records the same statistics as deltalake's:
``numRecords``, and per non-nested column ``nullCount`` and, where they bound every value,
``minValues`` / ``maxValues``.
"""

from __future__ import annotations

import datetime as dt
import json
import math

import pyarrow as pa
import pyarrow.compute as pc

#: deltalake truncates string statistics to this many characters; a longer maximum cannot be
#: truncated to a valid upper bound by cutting it, so it is left out (no skipping on it).
STRING_PREFIX = 32


def _timestamp(value: dt.datetime, upper: bool) -> str:
    """A timestamp as the Delta protocol writes it: UTC, millisecond precision, ``Z``.

    Statistics are bounds, so a maximum with sub-millisecond digits is rounded up (a
    truncated maximum would let an engine skip a file holding the row at the bound).
    """
    value = value.astimezone(dt.UTC)
    if upper and value.microsecond % 1000:
        value = value + dt.timedelta(microseconds=1000 - value.microsecond % 1000)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def distinct_chunks(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """The chunks of ``col`` that can hold values no other chunk holds: of chunks that are
    views of the same buffers from the same offset (a column repeated per band, slices of
    one constant column), only the longest is kept. Same minimum, maximum and set of
    values as ``col``, with far fewer values to scan.
    """
    if col.num_chunks < 2:
        return col
    longest: dict[tuple, pa.Array] = {}
    for chunk in col.chunks:
        key = (chunk.offset, *(b.address if b is not None else None for b in chunk.buffers()))
        have = longest.get(key)
        if have is None or len(chunk) > len(have):
            longest[key] = chunk
    if len(longest) == col.num_chunks:
        return col
    return pa.chunked_array(list(longest.values()), col.type)


def _bounds(col: pa.ChunkedArray) -> tuple[object, object] | None:
    """(min, max) of a column in Delta's JSON form, or None when they would not bound it."""
    t = col.type
    col = distinct_chunks(col)
    if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)) and not (
        pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_timestamp(t)
    ):
        return None  # lists, structs, binary: Delta keeps no min/max for them
    if col.null_count == len(col):
        return None  # all null (no scan needed)
    if pa.types.is_floating(t) and pc.any(pc.is_nan(col)).as_py():
        return None  # engines order NaN differently (DuckDB, Spark: above +inf): no bound
    mm = pc.min_max(col)
    lo, hi = mm["min"].as_py(), mm["max"].as_py()
    if lo is None:
        return None  # all null
    if pa.types.is_floating(t):
        if not (math.isfinite(lo) and math.isfinite(hi)):
            return None  # JSON has no infinities
        return float(lo), float(hi)
    if pa.types.is_timestamp(t):
        if lo.tzinfo is None:  # naive timestamps are taken as UTC, as deltalake does
            lo, hi = lo.replace(tzinfo=dt.UTC), hi.replace(tzinfo=dt.UTC)
        return _timestamp(lo, upper=False), _timestamp(hi, upper=True)
    if isinstance(lo, str):
        # A prefix of the minimum is still a lower bound; a cut maximum is not an upper one.
        return lo[:STRING_PREFIX], (hi if len(hi) <= STRING_PREFIX else None)
    return lo, hi


def delta_stats(data: pa.Table) -> str:
    """The ``stats`` JSON of an add action for a file holding exactly ``data``.

    Parameters
    ----------
    data : pyarrow.Table
        The rows of the file (partition columns excluded: Delta keeps them in the action).

    Returns
    -------
    str
        ``{"numRecords", "minValues", "maxValues", "nullCount"}`` as JSON; values in the
        columns' own units, timestamps as ISO 8601 UTC strings with milliseconds.
    """
    mins: dict[str, object] = {}
    maxs: dict[str, object] = {}
    nulls: dict[str, int] = {}
    for name in data.column_names:
        col = data[name]
        if pa.types.is_nested(col.type):
            continue  # Delta keeps statistics of leaf columns only
        nulls[name] = col.null_count
        bounds = _bounds(col)
        if bounds is None:
            continue
        lo, hi = bounds
        mins[name] = lo
        if hi is not None:
            maxs[name] = hi
    return json.dumps(
        {"numRecords": data.num_rows, "minValues": mins, "maxValues": maxs, "nullCount": nulls},
        separators=(",", ":"),
    )
