"""Fixtures of the run tests: the rows a run wrote (the Dask cluster is in tests/conftest.py)."""

from __future__ import annotations

import pyarrow as pa

from catalog.queries.connection import connect
from catalog.queries.search import run_sql

#: Columns that differ between two runs of the same fit (ids, never results).
RUN_COLUMNS = ("run_id", "ingest_id")


def run_rows(lake, table: str, run_id: str) -> pa.Table:
    """A run's rows of ``table`` without its ids, sorted by every column."""
    con = connect(lake)
    cols = [c for c in run_sql(con, f"SELECT * FROM {table} LIMIT 0").column_names if c not in RUN_COLUMNS]
    return run_sql(con, f"SELECT {', '.join(cols)} FROM {table} WHERE run_id = ? ORDER BY ALL", [run_id])


def assert_same_rows(lake, tables, run_ids) -> None:
    """Every run of ``run_ids`` wrote the same rows (bit for bit) to each of ``tables``."""
    for table in tables:
        first = run_rows(lake, table, run_ids[0])
        assert first.num_rows, table
        for other in run_ids[1:]:
            assert run_rows(lake, table, other).equals(first), table
