"""gccat's live rows as plain Delta tables (``gccat maintain --materialize-live``).

Which rows are live (committed, not superseded; for ``fields`` and ``bands`` the latest row
per key) is known to gccat's views only. ``LAKE/live/<table>`` holds, for every lake table,
exactly the rows its view shows at one lake version, so that any Delta engine (polars,
Spark, DuckDB's delta extension) reads gccat's answer without gccat's SQL.
"""

from __future__ import annotations

import os

from deltalake import CommitProperties, write_deltalake

from catalog.lake import Lake, open_lake
from catalog.lake.schemas import TABLES
from catalog.queries.connection import connect

#: Directory under the lake root holding the materialised tables.
LIVE_DIR = "live"


def materialize_live(lake: Lake | str | os.PathLike | None = None) -> tuple[int, dict[str, int]]:
    """Write every table's live rows at the latest lake version to ``LAKE/live/<table>``.

    Each is a Delta table overwritten in one commit (its commit info names the lake version,
    ``gccat.lake_version``), partitioned like the lake table; the rows are those of the view
    of the same name (``ingests`` gives ``live_ingests``). Runs under the writer lock, so
    the tables all show one lake version.

    Parameters
    ----------
    lake : Lake or path, optional
        The lake (default: ``$GCCAT_LAKE`` or ``./data_lake``).

    Returns
    -------
    tuple of (int, dict)
        The lake version written, and the rows written per table.
    """
    lk = lake if isinstance(lake, Lake) else open_lake(lake)
    out: dict[str, int] = {}
    with lk.lock():
        version = lk.version()
        con = connect(lk, as_of=version)
        tag = CommitProperties(custom_metadata={"gccat.lake_version": version})
        for table, (_, parts) in TABLES.items():
            view = "live_ingests" if table == "ingests" else table
            t = con.sql(f"SELECT * FROM {view}").to_arrow_table()
            write_deltalake(
                str(lk.root / LIVE_DIR / table),
                t,
                mode="overwrite",
                schema_mode="overwrite",
                partition_by=parts or None,
                commit_properties=tag,
            )
            out[table] = t.num_rows
        con.close()
    return version, out
