"""Read a catalog file (CSV, ECSV, FITS, VOTable, Parquet) into Arrow, keeping column units.

Every reader failure becomes a :class:`~catalog.errors.GccatError` naming the file.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from catalog.errors import GccatError

FORMATS = {
    ".csv": "csv", ".txt": "csv", ".dat": "csv", ".ecsv": "ecsv", ".fits": "fits", ".fit": "fits",
    ".fits.gz": "fits", ".fts": "fits", ".vot": "votable", ".votable": "votable", ".xml": "votable",
    ".parquet": "parquet", ".pq": "parquet",
}


@dataclass
class RawTable:
    """A table as read from a file: Arrow columns plus the units the file declared."""

    path: Path
    format: str
    table: pa.Table
    units: dict[str, str]


def detect_format(path: Path) -> str:
    name = path.name.lower()
    for ext in sorted(FORMATS, key=len, reverse=True):
        if name.endswith(ext):
            fmt = FORMATS[ext]
            if fmt == "csv":  # an ECSV file may carry a .csv name
                with open(path, "rb") as fh:
                    if fh.read(16).startswith(b"# %ECSV"):
                        return "ecsv"
            return fmt
    raise GccatError(f"unknown file type (expected one of {', '.join(sorted(FORMATS))})",
                     file=path)


def read_catalog_file(path: str | os.PathLike) -> RawTable:
    """Read a catalog file into a :class:`RawTable`.

    Raises
    ------
    GccatError
        If the file is missing, empty, of unknown type, truncated or corrupt.
    """
    path = Path(path)
    if not path.is_file():
        raise GccatError("no such file", file=path)
    if path.stat().st_size == 0:
        raise GccatError("the file is empty", file=path)
    fmt = detect_format(path)
    try:
        if fmt == "csv":
            table, units = _read_csv(path), {}
        elif fmt == "parquet":
            table, units = _read_parquet(path)
        else:
            table, units = _read_astropy(path, fmt)
    except GccatError:
        raise
    except Exception as exc:  # the readers raise many types for damaged files
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GccatError(f"cannot read this {fmt.upper()} file (truncated or corrupt?): {msg}",
                         file=path) from None
    if table.num_rows == 0:
        raise GccatError("the file has no data rows", file=path)
    return RawTable(path, fmt, table, units)


def _read_csv(path: Path) -> pa.Table:
    skip = 0
    with open(path, "rb") as fh:
        for line in fh:
            if line.startswith(b"#") or not line.strip():
                skip += 1
            else:
                break
    table = pacsv.read_csv(
        path,
        read_options=pacsv.ReadOptions(skip_rows=skip),
        parse_options=pacsv.ParseOptions(newlines_in_values=False),
        convert_options=pacsv.ConvertOptions(
            null_values=["", "NA", "N/A", "nan", "NaN", "null", "NULL", "--"],
            strings_can_be_null=True, quoted_strings_can_be_null=True),
    )
    return table


def _field_units(schema: pa.Schema) -> dict[str, str]:
    units = {}
    for f in schema:
        md = f.metadata or {}
        if b"unit" in md and md[b"unit"]:
            units[f.name] = md[b"unit"].decode()
    return units


def _read_parquet(path: Path) -> tuple[pa.Table, dict[str, str]]:
    table = pq.read_table(path)
    units = _field_units(table.schema)
    md = table.schema.metadata or {}
    if b"IVOA.VOTable-Parquet.content" in md:  # VOParquet: the embedded VOTable has the units
        from astropy.table import Table

        t = Table.read(path, format="parquet.votable")
        units.update({c: str(t[c].unit) for c in t.colnames if t[c].unit is not None})
    return table, units


def _read_astropy(path: Path, fmt: str) -> tuple[pa.Table, dict[str, str]]:
    from astropy.table import Table

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unit parse warnings are reported by the mapper
        if fmt == "fits":
            t = Table.read(path, format="fits", unit_parse_strict="silent")
        elif fmt == "votable":
            t = Table.read(path, format="votable")
        else:
            t = Table.read(path, format="ascii.ecsv")
    units = {}
    for c in t.colnames:
        u = t[c].unit
        if u is not None:
            units[c] = u.to_string() if hasattr(u, "to_string") else str(u)
    return astropy_to_arrow(t), units


def astropy_to_arrow(t) -> pa.Table:
    """Convert an astropy Table to Arrow: masked values become nulls, bytes become str."""
    arrays = {}
    for name in t.colnames:
        col = t[name]
        data = np.asarray(col)
        mask = np.asarray(getattr(col, "mask", np.zeros(len(col), bool)), dtype=bool)
        if data.ndim > 1:
            continue  # vector columns are not catalog columns gccat maps
        if data.dtype.byteorder not in "=|":  # FITS is big-endian; Arrow wants native
            data = data.astype(data.dtype.newbyteorder("="))
        if data.dtype.kind == "S":
            data = np.char.decode(data, "utf-8", errors="replace")
        if data.dtype.kind in "US":
            data = np.char.strip(data.astype(str))
            arrays[name] = pa.array(data.tolist(), mask=mask | (data == ""), type=pa.string())
        elif data.dtype.kind == "O":
            arrays[name] = pa.array([None if m else str(v) for v, m in zip(data, mask, strict=True)])
        else:
            arrays[name] = pa.array(data, mask=mask if mask.any() else None)
    return pa.table(arrays)
