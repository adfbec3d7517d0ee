"""DuckDB connections that read only what gccat hands them and can write nothing.

Every DuckDB connection that gccat opens on user input (SQL strings, ``--where`` conditions,
catalog files) goes through :func:`lock_down`: file access is limited to an explicit list of
files (the lake's committed Parquet files, never a directory), extensions cannot be
installed or loaded, temporary files go to a private directory, and the configuration is
locked so that no statement can undo any of this. On top of that, :func:`check_read_only_sql`
accepts exactly one SELECT statement: the sandbox alone would still let ``COPY ... TO`` write
into one of the listed files, and the statement check alone would trust DuckDB to have no
SELECT that writes. Either one stops every escape gccat's tests know of; together they make a
user query read-only by construction.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import weakref
from collections.abc import Sequence

import duckdb

from catalog.errors import GccatError

# EXPLAIN shows a plan without running it; EXPLAIN ANALYZE runs its statement, so it is refused.
_EXPLAIN = re.compile(r"\s*EXPLAIN\b(?P<rest>.*)\Z", re.IGNORECASE | re.DOTALL)
_ANALYZE = re.compile(r"\s*ANALY[SZ]E\b", re.IGNORECASE)


def lock_down(con: duckdb.DuckDBPyConnection, readable_files: Sequence[str] = ()) -> None:
    """Restrict ``con`` to reading ``readable_files`` and writing nothing, then lock it.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        A connection whose views are already created (after this, no setting can change).
    readable_files : sequence of str
        Absolute paths of the files its views read (exact files: no directory is allowed).
    """
    private_tmp = tempfile.mkdtemp(prefix="gccat-duckdb-")  # mode 0700
    weakref.finalize(con, shutil.rmtree, private_tmp, ignore_errors=True)
    con.execute("SET temp_directory = ?", [private_tmp])
    con.execute("SET allowed_paths = ?", [list(readable_files)])
    con.execute("SET allowed_directories = ?", [[]])
    for setting in (
        "autoinstall_known_extensions",
        "autoload_known_extensions",
        "allow_community_extensions",
        "allow_unsigned_extensions",
    ):
        try:
            con.execute(f"SET {setting} = false")
        except duckdb.Error:  # a setting this DuckDB does not have, or fixed at startup
            pass
    # Lake files never change once committed: their footers can be kept between queries.
    con.execute("SET parquet_metadata_cache = true")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def sandboxed_connection(readable_files: Sequence[str] = ()) -> duckdb.DuckDBPyConnection:
    """A new in-memory connection passed through :func:`lock_down`.

    Arrow tables registered with ``con.register`` remain readable (they are not files).
    """
    con = duckdb.connect(":memory:")
    lock_down(con, readable_files)
    return con


def check_read_only_sql(con: duckdb.DuckDBPyConnection, query: str) -> str:
    """The SQL to run for ``query`` if it is exactly one read-only SELECT, else an error.

    ``EXPLAIN <select>`` is accepted (it plans without running); ``EXPLAIN ANALYZE``, COPY,
    EXPORT, ATTACH, INSTALL/LOAD, SET/RESET, PRAGMA, CALL, CREATE, several statements and every
    other kind are refused with one line.
    """
    if not isinstance(query, str) or not query.strip():
        raise GccatError("no SQL statement given")
    explain = _EXPLAIN.match(query)
    body = explain["rest"] if explain else query
    if explain and _ANALYZE.match(body):
        raise GccatError("read-only SQL: EXPLAIN ANALYZE runs its statement and is not allowed; use EXPLAIN")
    try:
        statements = con.extract_statements(body)
    except duckdb.Error as exc:
        raise GccatError(f"SQL does not parse: {_first_line(exc)}") from None
    if len(statements) != 1:
        raise GccatError(f"read-only SQL takes exactly one statement, not {len(statements)}")
    kind = statements[0].type.name
    if kind != "SELECT":
        raise GccatError(f"read-only SQL: {kind} statements are not allowed (only one SELECT)")
    return query if explain else body


def condition_sql(where: str | None, option: str = "--where") -> str | None:
    """A ``WHERE`` condition as DuckDB re-writes it after parsing it as one expression.

    A condition cannot close a parenthesis, start another statement or comment out the rest
    of the query it is put into; what is returned is DuckDB's own rendering of the parsed
    expression (comments dropped), safe to embed in parentheses. None stays None.
    """
    if where is None or not str(where).strip():
        return None
    try:
        return f"({duckdb.SQLExpression(str(where))})"
    except duckdb.Error as exc:
        raise GccatError(f"{option} is not one SQL condition: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
