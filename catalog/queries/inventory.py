"""What a lake holds: its tables (rows, versions, files, size) and its views and SQL functions."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa

from catalog.lake import Lake
from catalog.lake.schemas import TABLES
from catalog.queries.connection import open_reader, view_description, view_files


def table_summary(lake: Lake | str | os.PathLike | None, as_of: int | None = None) -> tuple[pa.Table, int]:
    """One row per lake table: live and stored rows, Delta version, files and size (MB).

    Returns the summary and the lake version it describes (``gccat tables``).
    """
    lk, con, version = open_reader(lake, as_of)
    rows = []
    for name in TABLES:
        files = lk.files(name)
        view = "live_ingests" if name == "ingests" else name
        rows.append(
            {
                "table": name,
                "live_rows": con.execute(f"SELECT count(*) FROM {view}").fetchall()[0][0],
                "stored_rows": con.execute(f"SELECT count(*) FROM raw_{name}").fetchall()[0][0],
                "delta_version": lk.delta(name).version() if lk.exists(name) else None,
                "files": len(files),
                "size_mb": round(sum(Path(f).stat().st_size for f in files) / 1e6, 3),
            }
        )
    return pa.Table.from_pylist(rows), version


def view_summary() -> tuple[pa.Table, pa.Table]:
    """The SQL views (with the ``raw_`` table of every Delta table) and the UDFs, each with its
    description (``gccat views``).
    """
    from catalog.queries.udfs import UDF_DOCS

    rows = [{"view": n, "description": view_description(s)} for n, s in view_files().items()]
    rows += [
        {
            "view": f"raw_{n}",
            "description": f"every stored row of the {n} Delta table "
            "(including superseded and uncommitted ingests)",
        }
        for n in TABLES
    ]
    udfs = [{"udf": k, "description": v} for k, v in UDF_DOCS.items()]
    return pa.Table.from_pylist(rows), pa.Table.from_pylist(udfs)
