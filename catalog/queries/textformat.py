"""Rows of an Arrow table as text at full precision: terminal cells, CSV and JSON.

Floats are written as the shortest text that reads back as the same number (``repr``; float32
values as float32), so a printed RA or flux is the stored one; NaN and infinities are ``nan``,
``inf`` and ``-inf`` in CSV and cells, ``null`` in JSON. Timestamps are ISO 8601 with their UTC
offset. List cells of CSV and tables join their elements with ``|`` (as FITS and VOTable
exports do); JSON keeps them as arrays.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import json
import math
from collections.abc import Callable, Iterator
from typing import IO

import numpy as np
import pyarrow as pa

_BATCH = 8192


def _is_float32(t: pa.DataType) -> bool:
    return pa.types.is_float32(t) or pa.types.is_float16(t)


def _scalar_text(v, float32: bool = False) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return str(np.float32(v)) if float32 else repr(v)
    if isinstance(v, dt.datetime | dt.date | dt.time):
        return v.isoformat()
    if isinstance(v, dict):
        return json.dumps(_json_value(v), allow_nan=False, default=str)
    if isinstance(v, bytes):
        return v.hex()
    return str(v)


def cell_formatter(t: pa.DataType) -> Callable[[object], str]:
    """A function turning one Python value of Arrow type ``t`` into its text cell."""
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        f32 = _is_float32(t.value_type)
        return lambda v: "" if v is None else "|".join(_scalar_text(x, f32) for x in v)
    f32 = _is_float32(t)
    return lambda v: _scalar_text(v, f32)


def _json_value(v, float32: bool = False):
    if isinstance(v, decimal.Decimal):  # SQL literals such as 0.5 are DECIMAL: a JSON number
        v = float(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            return None
        return float(str(np.float32(v))) if float32 else v
    if isinstance(v, dt.datetime | dt.date | dt.time):
        return v.isoformat()
    if isinstance(v, list | tuple):
        return [_json_value(x, float32) for x in v]
    if isinstance(v, dict):
        return {str(k): _json_value(x, float32) for k, x in v.items()}
    if isinstance(v, bytes):
        return v.hex()
    return v


def _rows(table: pa.Table) -> Iterator[dict]:
    for batch in table.to_batches(max_chunksize=_BATCH):
        yield from batch.to_pylist()


def text_cells(table: pa.Table) -> Iterator[list[str]]:
    """Each row of ``table`` as a list of text cells (header not included)."""
    fmts = [cell_formatter(f.type) for f in table.schema]
    for batch in table.to_batches(max_chunksize=_BATCH):  # by position: names may repeat
        columns = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
        for row in zip(*columns, strict=True):
            yield [f(v) for f, v in zip(fmts, row, strict=True)]


def write_csv(table: pa.Table, out: IO[str]) -> None:
    """``table`` as CSV: a header of column names, then one line per row (empty = null)."""
    w = csv.writer(out, lineterminator="\n")
    w.writerow(table.column_names)
    for cells in text_cells(table):
        w.writerow(cells)


def write_json(table: pa.Table, out: IO[str]) -> None:
    """``table`` as one JSON array of objects (NaN and infinities as null, ISO timestamps)."""
    f32 = {
        f.name: _is_float32(f.type.value_type if pa.types.is_list(f.type) else f.type) for f in table.schema
    }
    out.write("[")
    first = True
    for row in _rows(table):
        obj = {k: _json_value(v, f32[k]) for k, v in row.items()}
        out.write(("\n" if first else ",\n") + json.dumps(obj, allow_nan=False, default=str))
        first = False
    out.write("\n]\n" if not first else "]\n")
