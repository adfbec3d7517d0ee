"""Queries over the lake: SQL, cone search and crossmatch, returning Arrow tables."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import duckdb
import numpy as np
import pyarrow as pa

from catalog.errors import GccatError
from catalog.queries.sandbox import check_read_only_sql

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def to_arrow(relation: duckdb.DuckDBPyRelation) -> pa.Table:
    """A DuckDB relation's rows as an Arrow table (``to_arrow_table`` on newer DuckDB)."""
    fetch = getattr(relation, "to_arrow_table", None) or relation.fetch_arrow_table
    return fetch()


def run_sql(con: duckdb.DuckDBPyConnection, query: str, params: list | None = None) -> pa.Table:
    """Run one read-only SELECT and return its rows as Arrow.

    Every query built from user input (``gccat sql``, ``--where``, ``--from``, ``--query``)
    runs here: anything but exactly one SELECT is refused (see
    :func:`catalog.queries.sandbox.check_read_only_sql`), values go in as bound ``params``, and SQL
    errors become one-line :class:`GccatError` messages.
    """
    sql = check_read_only_sql(con, query)
    try:
        return to_arrow(con.sql(sql, params=params) if params else con.sql(sql))
    except duckdb.Error as exc:
        text = str(exc).strip()
        raise GccatError(f"SQL error: {text.splitlines()[0] if text else type(exc).__name__}") from None


def relation_sql(source: str) -> str:
    """SQL for a table/view name or a SELECT query (for --table/--query style arguments)."""
    s = source.strip().rstrip(";")
    return f"SELECT * FROM {s}" if _IDENT.match(s) else s


def cone(
    con: duckdb.DuckDBPyConnection, ra: float, dec: float, radius_arcsec: float, source: str = "detections"
) -> pa.Table:
    """Rows of ``source`` within a cone, nearest first, with ``separation_arcsec``.

    Parameters
    ----------
    ra, dec : float
        Cone centre, ICRS degrees.
    radius_arcsec : float
        Cone radius in arcsec.
    source : str
        A table, view or SELECT with ra, dec, healpix29, or a HATS catalog directory (a path
        that is not a plain name, see :func:`catalog.queries.hatsio.is_hats_path`).

    The cone becomes a few ``healpix29 BETWEEN lo AND hi`` ranges: a lake table (``detections``,
    ``raw_detections``) is read from only the files whose Delta healpix29 range meets them
    (:func:`catalog.queries.connection.cone_relation_sql`), and DuckDB pushes the ranges into
    the Parquet scan of those files' row groups; the exact great-circle distance then keeps the
    rows inside the radius. A HATS
    catalog is searched by :func:`catalog.queries.hatsio.cone_hats`, which reads only the
    partitions that overlap the cone.
    """
    if not (0 <= ra < 360 and -90 <= dec <= 90):
        raise GccatError(f"cone centre ({ra}, {dec}) is not a valid ICRS position in degrees")
    if not radius_arcsec > 0:
        raise GccatError(f"cone radius must be positive, not {radius_arcsec}")
    ra, dec, radius_arcsec = float(ra), float(dec), float(radius_arcsec)
    from catalog.queries.hatsio import cone_hats, is_hats_path

    if is_hats_path(source):
        return cone_hats(source, ra, dec, radius_arcsec)
    from catalog.queries.connection import cone_relation_sql
    from catalog.sky import cone_ranges, separation_arcsec  # healpy: imported by the searches that use it

    ranges = [(int(lo), int(hi)) for lo, hi in cone_ranges(ra, dec, radius_arcsec)]
    cond = " OR ".join("healpix29 BETWEEN ? AND ?" for _ in ranges)
    sql = f"SELECT * FROM ({cone_relation_sql(con, source, ranges)}) WHERE {cond}"
    near = run_sql(con, sql, [v for r in ranges for v in r])
    # One vectorised call of the function behind the ang_sep_arcsec UDF (the same numbers):
    # the UDF ran once per DuckDB vector, twice (filter and column), ~30 calls a cone.
    sep = separation_arcsec(*_radec(near, f"cone's source {source!r}"), ra, dec)
    inside = np.flatnonzero(sep <= radius_arcsec)  # NaN (a NULL position) is never inside
    nearest = inside[np.argsort(sep[inside], kind="stable")]
    return near.take(pa.array(nearest)).append_column("separation_arcsec", pa.array(sep[nearest]))


def _radec(t: pa.Table, what: str) -> tuple[np.ndarray, np.ndarray]:
    """The ``ra`` and ``dec`` columns as float64 numpy (NULL as NaN; no copy of a float64
    column), or a one-line error naming ``what`` lacks one.
    """
    for c in ("ra", "dec"):
        if c not in t.column_names:
            raise GccatError(f"the {what} has no '{c}' column")
    return np.asarray(t["ra"].to_numpy(), float), np.asarray(t["dec"].to_numpy(), float)


def _positions(t: pa.Table, side: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ra, dec = _radec(t, f"{side} side of the crossmatch")
    from catalog.sky import healpix29

    hpx = t["healpix29"].to_numpy() if "healpix29" in t.column_names else healpix29(ra, dec)
    return ra, dec, hpx


def xmatch_tables(left: pa.Table, right: pa.Table, radius_arcsec: float, best: bool = False) -> pa.Table:
    """All pairs of rows of two tables (with ra, dec in degrees) within ``radius_arcsec``.

    Returns the left columns suffixed ``_1``, the right ones ``_2`` and ``separation_arcsec``;
    with ``best``, only the nearest right row for each left row.
    """
    if not radius_arcsec > 0:
        raise GccatError(f"crossmatch radius must be positive, not {radius_arcsec}")
    from catalog.sky import _THREADED, best_matches, crossmatch  # healpy: imported when used

    sides = ((left, right), ("left", "right"))
    if left.num_rows + right.num_rows >= _THREADED:  # healpy releases the GIL: both sides at once
        with ThreadPoolExecutor(2) as pool:
            (ra1, dec1, h1), (ra2, dec2, h2) = pool.map(_positions, *sides)
    else:
        (ra1, dec1, h1), (ra2, dec2, h2) = map(_positions, *sides)
    i1, i2, sep = crossmatch(ra1, dec1, h1, ra2, dec2, h2, radius_arcsec)
    if best:
        keep = best_matches(i1, i2, sep)
        i1, i2, sep = i1[keep], i2[keep], sep[keep]
    cols, names = [], []
    for t, idx, suffix in ((left, i1, "_1"), (right, i2, "_2")):
        taken = t.take(pa.array(idx))
        cols += taken.columns
        names += [n + suffix for n in t.column_names]
    return pa.table(cols + [pa.array(sep)], names=names + ["separation_arcsec"])


def check_relation(con: duckdb.DuckDBPyConnection, name: str) -> str:
    """``name`` if it is a table or view of the connection, else a one-line error."""
    if not _IDENT.match(name.strip()):
        raise GccatError(f"--table takes a table or view name, not {name!r} (use --query for a SELECT)")
    name = name.strip()
    found = con.execute(
        "SELECT count(*) FROM (SELECT view_name AS n FROM duckdb_views() UNION ALL "
        "SELECT table_name FROM duckdb_tables()) WHERE n = ?",
        [name],
    ).fetchall()
    if not found[0][0] or name == "live_rows":
        raise GccatError(f"no table or view named {name!r} (see gccat tables and gccat views)")
    return name
