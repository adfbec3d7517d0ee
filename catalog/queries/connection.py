"""``connect``: a DuckDB connection with the lake's views and gccat's UDFs.

Each lake table appears as ``raw_<table>`` (every row of its committed Parquet files, all read
at the table's latest Delta version; ``raw_ingests`` keeps the rows of lake versions up to the
one read); the views in ``sql/`` build on those, showing only rows of live ingests. A view file starts with
``-- description`` lines; ``{placeholders}`` in it are filled from the lake (e.g. the bands).
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable
from importlib import resources

import duckdb
import pyarrow as pa

from catalog.checks import check_number
from catalog.constants import FINAL_APERTURE_RADIUS_ARCSEC, MU_PIXEL_CHANGE_MAX, RADIUS_MATCH_ARCSEC
from catalog.errors import GccatError
from catalog.images.psfphot import FLAG_PROBLEMS
from catalog.lake import Lake, open_lake
from catalog.lake.schemas import RENAMED_COLUMNS, TABLE_DESCRIPTIONS, TABLES
from catalog.queries.lensmaps import LensMapStore
from catalog.queries.sandbox import lock_down
from catalog.queries.search import relation_sql
from catalog.queries.udfs import register_udfs

_DUCK_TYPES = {
    pa.string(): "VARCHAR",
    pa.float64(): "DOUBLE",
    pa.int64(): "BIGINT",
    pa.int32(): "INTEGER",
    pa.bool_(): "BOOLEAN",
    pa.timestamp("us", tz="UTC"): "TIMESTAMPTZ",
    pa.list_(pa.string()): "VARCHAR[]",
    pa.list_(pa.float64()): "DOUBLE[]",
    pa.list_(pa.int64()): "BIGINT[]",
    pa.list_(pa.float32()): "FLOAT[]",
}


def _quote(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


@functools.cache
def _sql_files() -> tuple[tuple[str, str], ...]:
    """(name, SQL text) of each file in ``sql/``, read once (the package's files do not change)."""
    return tuple(
        (e.name[:-4], e.read_text())
        for e in resources.files("catalog.sql").iterdir()
        if e.name.endswith(".sql")
    )


def view_files() -> dict[str, str]:
    """Every view and macro definition: name -> SQL text.

    The files of ``sql/`` (one view or macro each, ``-- description`` lines first), plus one
    generated view per lake table that has no file of its own: ``<table>`` = the rows of
    ``raw_<table>`` written by live ingests, described by
    :data:`catalog.lake.schemas.TABLE_DESCRIPTIONS`.
    """
    out = dict(_sql_files())
    for table in TABLES:
        if table not in out:
            out[table] = (
                f"-- {TABLE_DESCRIPTIONS[table]}\n"
                f"CREATE OR REPLACE VIEW {table} AS FROM live_rows('raw_{table}');\n"
            )
    return dict(sorted(out.items()))


def _names_in(sql: str, known: Iterable[str]) -> set[str]:
    """The known relation names (views, macros, raw tables) a SQL text mentions as words."""
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", sql))
    return words & set(known)


def view_dependencies() -> dict[str, set[str]]:
    """For each view or macro, the views, macros and ``raw_<table>`` relations it reads.

    Read from the SQL text itself (a name mentioned as a word is a dependency), so a view file
    declares what it depends on by using it; ``photometry_wide``'s band columns come from the
    ``bands`` view as well.
    """
    defs = view_files()
    known = set(defs) | {f"raw_{t}" for t in TABLES}
    deps = {
        name: _names_in(sql.split("\n", 1)[1] if sql.startswith("--") else sql, known) - {name}
        for name, sql in defs.items()
    }
    for name, sql in defs.items():
        if "{band_columns}" in sql:
            deps[name].add("bands")
    return deps


def _creation_order(wanted: Iterable[str], deps: dict[str, set[str]]) -> list[str]:
    """``wanted`` and everything it depends on, dependencies first (a cycle is a bug)."""
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(name: str, path: tuple[str, ...]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            raise RuntimeError(f"views depend on each other in a cycle: {' -> '.join(path + (name,))}")
        state[name] = 1
        for d in sorted(deps.get(name, ())):
            visit(d, path + (name,))
        state[name] = 2
        order.append(name)

    for name in sorted(wanted):
        visit(name, ())
    return order


def relations_in(sql: str) -> set[str]:
    """The views, macros and raw tables that a user's SQL text names (for a connection that
    creates only those, see :func:`connect`).
    """
    return _names_in(sql, set(view_files()) | {f"raw_{t}" for t in TABLES})


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
    rows = con.execute(
        f"DESCRIBE SELECT * FROM read_parquet({flist}, union_by_name=true, hive_partitioning=false)"
    ).fetchall()
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
        scaled = (
            f"list_transform(CAST({o} AS DOUBLE[]), lambda v: v * {factor})"
            if pa.types.is_list(f.type)
            else f"CAST({o} AS DOUBLE) * {factor}"
        )
        return f"coalesce({q}, {scaled}) AS {q}" if has_new else f"{scaled} AS {q}"
    return q if has_new else f"CAST(NULL AS {_DUCK_TYPES[f.type]}) AS {q}"


def _raw_view_sql(
    name: str, files: list[str], present: set[str] | None = None, as_of: int | None = None
) -> str:
    """``raw_<name>`` over the files; ``present`` (the files' columns) lets it read renamed and
    missing columns (see :func:`_column_sql`). For ``ingests``, ``as_of`` keeps the rows of lake
    versions up to it (see :func:`catalog.lake.ingest_versions` for rows without a version).
    """
    sql = _raw_select_sql(name, files, present)
    if name == "ingests" and files:
        version = "coalesce(lake_version, row_number() OVER (ORDER BY committed_at, ingest_id))"
        sql = f"SELECT * REPLACE ({version} AS lake_version) FROM ({sql})"
        if as_of is not None:
            sql += f" QUALIFY {version} <= {int(as_of)}"
        # A table, not a view: every live-row filter reads it, and re-reading (and re-numbering)
        # its files per query cost a cone search on 10^6 detections a third of its time.
        return f"CREATE OR REPLACE TABLE raw_{name} AS {sql}"
    return f"CREATE OR REPLACE VIEW raw_{name} AS {sql}"


def _raw_select_sql(name: str, files: list[str], present: set[str] | None = None) -> str:
    """The SELECT of ``raw_<name>``'s schema columns over some of its files (see :func:`_raw_view_sql`)."""
    schema, parts = TABLES[name]
    if not files:
        cols = ", ".join(f'CAST(NULL AS {_DUCK_TYPES[f.type]}) AS "{f.name}"' for f in schema)
        return f"SELECT {cols} WHERE false"
    cols = ", ".join(_column_sql(name, f, present, parts) for f in schema)
    # union_by_name: files written before a column was added read it as NULL.
    hive = (
        ", union_by_name=true, hive_partitioning=true, hive_types={"
        + ", ".join(f"'{p}': VARCHAR" for p in parts)
        + "}"
        if parts
        else ", union_by_name=true, hive_partitioning=false"
    )
    flist = "[" + ", ".join(_quote(f) for f in files) + "]"
    return f"SELECT {cols} FROM read_parquet({flist}{hive})"


def _file_ranges(lake: Lake, table: str, files: list[str]) -> pa.Table:
    """``lake_files`` rows of one table: its files, with their healpix29 range where it has one.

    The range comes from the Delta statistics (:meth:`catalog.lake.Lake.file_bounds`); a file
    without statistics, or a log whose paths do not spell the files' paths, gets NULLs, which
    every cone keeps reading.
    """
    lo = hi = pa.nulls(len(files), pa.int64())
    if files and "healpix29" in TABLES[table][0].names and table not in RENAMED_COLUMNS:
        bounds = lake.file_bounds(table, "healpix29")
        if sorted(bounds["path"].to_pylist()) == sorted(files):
            order = {p: i for i, p in enumerate(bounds["path"].to_pylist())}
            take = pa.array([order[f] for f in files])
            lo, hi = bounds["min"].take(take), bounds["max"].take(take)
    return pa.table(
        {
            "table_name": pa.array([table] * len(files), pa.string()),
            "path": pa.array(files, pa.string()),
            "healpix29_min": lo,
            "healpix29_max": hi,
        }
    )


def cone_relation_sql(con: duckdb.DuckDBPyConnection, source: str, ranges) -> str:
    """SQL for ``source`` that reads only the files a cone's healpix29 ranges can touch.

    For a lake table with a ``healpix29`` column, named as its live view (``detections``) or
    raw (``raw_detections``), the files come from ``lake_files``: those whose Delta
    healpix29 range meets one of ``ranges`` ((lo, hi) inclusive pairs), so DuckDB opens no
    other file's footer (at 10^7 detections in 100 files that was most of a cone's time).
    Every other source reads as :func:`catalog.queries.search.relation_sql` gives it.
    """
    s = source.strip()
    table = s.removeprefix("raw_")
    live = table == s
    if table not in TABLES or (live and table in dict(_sql_files())):  # a view of its own, not live rows
        return relation_sql(source)
    rows = con.execute(
        "SELECT path, healpix29_min, healpix29_max FROM lake_files WHERE table_name = ?", [table]
    ).fetchall()
    if all(lo is None for _, lo, _ in rows):  # no statistics (or no files): nothing to choose by
        return relation_sql(source)
    files = [
        p for p, lo, hi in rows if lo is None or hi is None or any(hi >= a and lo <= b for a, b in ranges)
    ]
    sql = _raw_select_sql(table, files)
    # The live-row rule of sql/live_rows.sql, on the chosen files.
    return f"SELECT * FROM ({sql}) WHERE ingest_id IN (SELECT ingest_id FROM live_ingests)" if live else sql


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
        cols += [
            f"{flux} AS flux_{b}",
            f"{err} AS fluxerr_{b}",
            f"flux_to_abmag({flux}) AS mag_{b}",
            f"flux_err_to_mag_err({flux}, {err}) AS magerr_{b}",
        ]
    return ",\n       ".join(cols) if cols else "NULL::DOUBLE AS no_photometry"


def _check_files_exist(files: list[str], table: str, version: int) -> None:
    """A file the Delta log lists but the disk lacks (removed outside gccat: a vacuum that
    ignored the log, a deleted directory) is a clear error, not DuckDB's I/O traceback.
    """
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        raise GccatError(
            f"lake version {version} cannot be read: {len(missing)} file(s) of table '{table}' "
            f"were vacuumed or deleted outside gccat (e.g. {os.path.basename(missing[0])})"
        )


def connect(
    lake: Lake | str | os.PathLike | None = None,
    as_of: int | None = None,
    *,
    mu_pixel_change_max: float | None = None,
    relations: Iterable[str] | None = None,
) -> duckdb.DuckDBPyConnection:
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
    mu_pixel_change_max : float, optional
        Criterion of ``lens_at_detections.mu_undefined``: a source's magnification is taken as
        not defined by the map where it changes by more than this fraction within one map
        pixel (see :func:`catalog.lensing.mu_pixel_change`). Default
        :data:`catalog.constants.MU_PIXEL_CHANGE_MAX` (1.0).
    relations : iterable of str, optional
        Create only these views (and raw tables) and what they depend on, e.g.
        ``relations_in(query)``: a one-line ``gccat sql`` then reads the Delta logs of the
        tables it needs only. Default: every view.
    """
    if mu_pixel_change_max is None:
        mu_pixel_change_max = MU_PIXEL_CHANGE_MAX
    mu_max = check_number(mu_pixel_change_max, "mu_pixel_change_max", lo=0, lo_open=True)
    lake = lake if isinstance(lake, Lake) else open_lake(lake)
    latest = lake.version()
    version = lake.check_version(as_of, latest=latest)
    defs = view_files()
    deps = view_dependencies()
    wanted = set(defs) if relations is None else set(relations) & (set(defs) | {f"raw_{t}" for t in TABLES})
    order = _creation_order(wanted | {"live_ingests"}, deps)
    con = duckdb.connect(":memory:")
    register_udfs(con, LensMapStore(lake, version))
    readable: list[str] = []
    located: list[pa.Table] = []
    for name in order:
        if not name.startswith("raw_"):
            continue
        table = name[4:]
        # Every table at its latest Delta version: a lake version is a row filter on ingests.
        files = lake.files(table)
        _check_files_exist(files, table, version)
        readable += files
        located.append(_file_ranges(lake, table, files))
        # Tables with renamed columns may hold files of older lakes: look at their columns.
        present = _file_columns(con, files) if files and table in RENAMED_COLUMNS else None
        if files and table == "ingests":  # lakes older than ingests.lake_version lack it
            present = set(lake.delta(table).schema().to_arrow().names)
        con.execute(_raw_view_sql(table, files, present, version if table == "ingests" else None))
    files_table = pa.concat_tables(located) if located else _file_ranges(lake, "ingests", [])
    con.register("files_table", files_table)
    con.execute("CREATE TABLE lake_files AS FROM files_table")
    con.unregister("files_table")
    con.execute(
        "CREATE TABLE lake_info AS SELECT ?::BIGINT AS lake_version, "
        "?::VARCHAR AS lake_root, ?::BIGINT AS latest_version",
        [version, str(lake.root), latest],
    )
    fills: dict[str, str] = {
        "mu_pixel_change_max": repr(mu_max),
        "final_aperture_radius_arcsec": repr(float(FINAL_APERTURE_RADIUS_ARCSEC)),
        "radius_match_arcsec": repr(float(RADIUS_MATCH_ARCSEC)),
        "psf_flag_problems": str(int(FLAG_PROBLEMS)),
    }
    for name in order:
        if name.startswith("raw_"):
            continue
        sql = defs[name]
        if "{band_columns}" in sql and "band_columns" not in fills:
            fills["band_columns"] = _band_columns(con, lake.photometry_bands(version))
        con.execute(sql.format(**fills) if "{" in sql else sql)
    lock_down(con, readable)
    return con


def open_reader(
    lake: Lake | str | os.PathLike | None, as_of: int | None = None, *sql: str | None
) -> tuple[Lake, duckdb.DuckDBPyConnection, int]:
    """The lake, a read-only connection to it, and the version that connection shows.

    Parameters
    ----------
    lake : Lake or path, optional
        The lake (default: ``$GCCAT_LAKE`` or ``./data_lake``).
    as_of : int, optional
        Lake version to read (default: the latest); a version that does not exist is an error.
    *sql : str
        The query texts or relation names that will run: the connection creates only the views
        these name and what they depend on (none given: every view).
    """
    lk = lake if isinstance(lake, Lake) else open_lake(lake)
    version = lk.check_version(as_of, latest=lk.version())
    wanted = set().union(*(relations_in(q) for q in sql if q)) if sql else None
    return lk, connect(lk, as_of=version, relations=wanted), version
