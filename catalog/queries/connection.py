"""``connect``: a DuckDB connection with the lake's views and gccat's UDFs.

Each lake table appears as ``raw_<table>`` (every row of its committed Parquet files); the
views in ``sql/`` build on those, showing only rows of live ingests. A view file starts with
``-- description`` lines; ``{placeholders}`` in it are filled from the lake (e.g. the bands).
"""

from __future__ import annotations

import os
import re
from importlib import resources

import duckdb
import pyarrow as pa

from catalog.checks import check_number
from catalog.constants import FINAL_APERTURE_RADIUS_ARCSEC, RADIUS_MATCH_ARCSEC
from catalog.lake import Lake, open_lake
from catalog.lake.schemas import RENAMED_COLUMNS, TABLES
from catalog.lensing import MU_PIXEL_CHANGE_MAX
from catalog.queries.lensmaps import LensMapStore
from catalog.queries.sandbox import lock_down
from catalog.queries.udfs import register_udfs

_DUCK_TYPES = {
    pa.string(): "VARCHAR", pa.float64(): "DOUBLE", pa.int64(): "BIGINT", pa.int32(): "INTEGER",
    pa.bool_(): "BOOLEAN", pa.timestamp("us", tz="UTC"): "TIMESTAMPTZ",
    pa.list_(pa.string()): "VARCHAR[]", pa.list_(pa.float64()): "DOUBLE[]",
    pa.list_(pa.int64()): "BIGINT[]", pa.list_(pa.float32()): "FLOAT[]",
}


def _quote(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def view_files() -> dict[str, str]:
    """The view definitions shipped in ``sql/``: view name -> SQL text."""
    out = {}
    for entry in resources.files("catalog.sql").iterdir():
        if entry.name.endswith(".sql"):
            out[entry.name[:-4]] = entry.read_text()
    return dict(sorted(out.items()))


def view_description(sql: str) -> str:
    """The leading ``--`` comment of a view file, joined into one line."""
    lines = []
    for line in sql.splitlines():
        if not line.startswith("--"):
            break
        lines.append(line[2:].strip())
    return " ".join(lines)


def _file_columns(con: duckdb.DuckDBPyConnection, files: list[str]) -> set[str]:
    """Column names found in any of the Parquet files (their union)."""
    flist = "[" + ", ".join(_quote(f) for f in files) + "]"
    rows = con.execute(f"DESCRIBE SELECT * FROM read_parquet({flist}, union_by_name=true, "
                       "hive_partitioning=false)").fetchall()
    return {r[0] for r in rows}


def _column_sql(name: str, f: pa.Field, present: set[str] | None, parts: list[str]) -> str:
    """How the raw view reads one schema column from files that may predate it.

    A column renamed since older lakes (:data:`catalog.lake.schemas.RENAMED_COLUMNS`, e.g. aperture
    diameters that became radii) is read from an old file as factor x its old column; a column
    in no file at all reads as NULL (union_by_name covers it once any file has it).
    """
    q = f'"{f.name}"'
    if present is None:
        return q
    has_new = f.name in present or f.name in parts
    old = RENAMED_COLUMNS.get(name, {}).get(f.name)
    if old is not None and old[0] in present:
        o, factor = f'"{old[0]}"', repr(float(old[1]))
        scaled = (f"list_transform(CAST({o} AS DOUBLE[]), lambda v: v * {factor})"
                  if pa.types.is_list(f.type) else f"CAST({o} AS DOUBLE) * {factor}")
        return f"coalesce({q}, {scaled}) AS {q}" if has_new else f"{scaled} AS {q}"
    return q if has_new else f"CAST(NULL AS {_DUCK_TYPES[f.type]}) AS {q}"


def _raw_view_sql(name: str, files: list[str], present: set[str] | None = None) -> str:
    """``raw_<name>`` over the files; ``present`` (the files' columns) lets it read renamed and
    missing columns (see :func:`_column_sql`)."""
    schema, parts = TABLES[name]
    if not files:
        cols = ", ".join(f"CAST(NULL AS {_DUCK_TYPES[f.type]}) AS \"{f.name}\"" for f in schema)
        return f"CREATE OR REPLACE VIEW raw_{name} AS SELECT {cols} WHERE false"
    cols = ", ".join(_column_sql(name, f, present, parts) for f in schema)
    # union_by_name: files written before a column was added read it as NULL.
    hive = ", union_by_name=true, hive_partitioning=true, hive_types={" + ", ".join(
        f"'{p}': VARCHAR" for p in parts) + "}" if parts else ", union_by_name=true, hive_partitioning=false"
    flist = "[" + ", ".join(_quote(f) for f in files) + "]"
    return f"CREATE OR REPLACE VIEW raw_{name} AS SELECT {cols} FROM read_parquet({flist}{hive})"


def _band_columns(con: duckdb.DuckDBPyConnection, measured: list[str]) -> str:
    """photometry_wide's per-band columns, blue to red (bands from the ingests' options)."""
    pivots = dict(con.execute("SELECT band, pivot_um FROM bands").fetchall())
    bands = sorted(measured, key=lambda b: (pivots.get(b) or float("inf"), b))
    cols = []
    for b in bands:
        if not re.fullmatch(r"\w+", b):
            continue
        sel = f"band = {_quote(b)}"
        flux = f"arg_max(flux_njy, preference) FILTER (WHERE {sel})"
        err = f"arg_max(flux_err_njy, preference) FILTER (WHERE {sel})"
        cols += [f"{flux} AS flux_{b}", f"{err} AS fluxerr_{b}",
                 f"flux_to_abmag({flux}) AS mag_{b}",
                 f"flux_err_to_mag_err({flux}, {err}) AS magerr_{b}"]
    return ",\n       ".join(cols) if cols else "NULL::DOUBLE AS no_photometry"


def connect(lake: Lake | str | os.PathLike | None = None, as_of: int | None = None, *,
            mu_pixel_change_max: float = MU_PIXEL_CHANGE_MAX) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection over the lake's committed files, with views and UDFs.

    The connection is locked down (:func:`catalog.queries.sandbox.lock_down`): it can read only the
    committed Parquet files of the lake version it shows, and it can write nothing, anywhere.
    Run user SQL on it through :func:`catalog.queries.search.run_sql`, which also checks that the
    statement is one SELECT.

    Parameters
    ----------
    lake : Lake or path, optional
        The lake (default: ``$GCCAT_LAKE`` or ``./data_lake``).
    as_of : int, optional
        Lake version to read (default: the latest); see ``gccat tables``.
    mu_pixel_change_max : float
        Criterion of ``lens_at_detections.mu_undefined``: a source's magnification is taken as
        not defined by the map where it changes by more than this fraction within one map
        pixel (see :func:`catalog.lensing.mu_pixel_change`). Default 1.0.
    """
    mu_max = check_number(mu_pixel_change_max, "mu_pixel_change_max", lo=0, lo_open=True)
    lake = lake if isinstance(lake, Lake) else open_lake(lake)
    version = lake.check_version(as_of)
    con = duckdb.connect(":memory:")
    register_udfs(con, LensMapStore(lake, version))
    readable: list[str] = []
    for name in TABLES:
        files = lake.files(name, version if name == "ingests" else None)
        readable += files
        # Tables with renamed columns may hold files of older lakes: look at their columns.
        present = _file_columns(con, files) if files and name in RENAMED_COLUMNS else None
        con.execute(_raw_view_sql(name, files, present))
    con.execute("CREATE TABLE lake_info AS SELECT ?::BIGINT AS lake_version, "
                "?::VARCHAR AS lake_root, ?::BIGINT AS latest_version",
                [version, str(lake.root), lake.version()])
    pending = view_files()
    fills: dict[str, str] = {"mu_pixel_change_max": repr(mu_max),
                             "final_aperture_radius_arcsec": repr(float(FINAL_APERTURE_RADIUS_ARCSEC)),
                             "radius_match_arcsec": repr(float(RADIUS_MATCH_ARCSEC))}
    while pending:
        progress = False
        errors = {}
        for name, sql in list(pending.items()):
            if "{band_columns}" in sql and "band_columns" not in fills:
                try:
                    fills["band_columns"] = _band_columns(con, lake.photometry_bands(version))
                except duckdb.CatalogException as exc:
                    errors[name] = exc
                    continue
            try:
                con.execute(sql.format(**fills) if "{" in sql else sql)
            except duckdb.CatalogException as exc:  # depends on a view not yet made
                errors[name] = exc
                continue
            del pending[name]
            progress = True
        if not progress:
            name, exc = next(iter(errors.items()))
            raise RuntimeError(f"view {name} cannot be created: {exc}")
    lock_down(con, readable)
    return con
