"""Delta maintenance of a lake (``gccat maintain``): compaction, checkpoints, vacuum.

None of it changes a lake version or an ``--as-of`` answer: a lake version is the count of
gccat commits (rows of ``ingests``, see :meth:`catalog.lake.Lake.version`), and every version
is read from the latest Delta version of every table, filtered by ``ingests.lake_version``.
Only files that no table's latest version references are ever vacuumed, and no lake version
reads such a file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from deltalake import WriterProperties

from catalog.checks import check_number
from catalog.lake import _ROW_GROUP_ROWS, Lake, open_lake
from catalog.lake.schemas import TABLES

#: Files removed from a table's latest version are kept this long (hours) by default: a
#: ``gccat sql`` that listed its files before a compaction can still read them, and Delta
#: time travel of single tables (outside gccat) keeps a week, as Delta's own default does.
DEFAULT_RETENTION_HOURS = 168


@dataclass
class TableMaintenance:
    """What maintenance did to one table.

    Attributes
    ----------
    table : str
    files_before, files_after : int
        Data files of the table's latest Delta version before and after compaction.
    compacted_removed, compacted_added : int
        Files compaction replaced, and the files it wrote instead.
    checkpoint_version : int or None
        Delta version of the checkpoint written (None: none written).
    vacuumed : list of str
        Files deleted from disk (paths relative to the table).
    vacuumed_bytes : int
        Their size in bytes.
    """

    table: str
    files_before: int
    files_after: int
    compacted_removed: int = 0
    compacted_added: int = 0
    checkpoint_version: int | None = None
    vacuumed: list[str] = field(default_factory=list)
    vacuumed_bytes: int = 0


@dataclass
class MaintenanceReport:
    """What :func:`maintain_lake` did: one :class:`TableMaintenance` per table.

    Attributes
    ----------
    lake_version : int
        The lake version, the same before and after.
    tables : list of TableMaintenance
    """

    lake_version: int
    tables: list[TableMaintenance]

    @property
    def files_before(self) -> int:
        """Data files in the latest versions of all tables before maintenance."""
        return sum(t.files_before for t in self.tables)

    @property
    def files_after(self) -> int:
        """Data files in the latest versions of all tables after maintenance."""
        return sum(t.files_after for t in self.tables)


def _last_checkpoint(table_dir: Path) -> int:
    """Delta version of a table's newest checkpoint (0 when it has none: nothing to replay)."""
    f = table_dir / "_delta_log" / "_last_checkpoint"
    try:
        return int(json.loads(f.read_text())["version"])
    except (OSError, ValueError, KeyError):
        return 0


def _maintain_table(
    lake: Lake, table: str, optimize: bool, checkpoint: bool, vacuum: bool, retention_hours: int
) -> TableMaintenance:
    dt_ = lake.delta(table)
    out = TableMaintenance(table, len(dt_.file_uris()), len(dt_.file_uris()))
    if optimize and out.files_before > 1:
        # The layout gccat's writers chose (small row groups on detections, for cone searches).
        props = WriterProperties(max_row_group_size=_ROW_GROUP_ROWS.get(table, 1 << 20), compression="ZSTD")
        m = dt_.optimize.compact(writer_properties=props, max_concurrent_tasks=1)
        out.compacted_removed, out.compacted_added = m["numFilesRemoved"], m["numFilesAdded"]
        dt_ = lake.delta(table)
        out.files_after = len(dt_.file_uris())
    if checkpoint and dt_.version() > _last_checkpoint(lake.table_path(table)):
        dt_.create_checkpoint()
        out.checkpoint_version = dt_.version()
    if vacuum:
        tdir = lake.table_path(table)
        # Sizes first: vacuum returns the paths only once they are gone.
        doomed = dt_.vacuum(retention_hours=retention_hours, dry_run=True, enforce_retention_duration=False)
        sizes = {p: (tdir / p).stat().st_size for p in doomed if (tdir / p).is_file()}
        out.vacuumed = sorted(
            dt_.vacuum(retention_hours=retention_hours, dry_run=False, enforce_retention_duration=False)
        )
        out.vacuumed_bytes = sum(sizes.get(p, 0) for p in out.vacuumed)
    return out


def maintain_lake(
    lake: Lake | str | os.PathLike | Path | None,
    *,
    optimize: bool = True,
    checkpoint: bool = True,
    vacuum: bool = True,
    retention_hours: int = DEFAULT_RETENTION_HOURS,
) -> MaintenanceReport:
    """Compact small files, write checkpoints and vacuum old files (``gccat maintain``).

    Runs under the writer lock, table by table. The lake version and every ``--as-of``
    answer stay the same: each lake version is read from the latest Delta version of each
    table (see :meth:`catalog.lake.Lake.version`), which compaction rewrites with the same
    rows and vacuum never touches.

    Parameters
    ----------
    lake : Lake or path, optional
        The lake (default: ``$GCCAT_LAKE`` or ``./data_lake``).
    optimize : bool
        Compact each partition's small files into larger ones (deltalake ``optimize.compact``).
    checkpoint : bool
        Write a Delta checkpoint of each table, so readers need not replay every commit.
    vacuum : bool
        Delete files that the tables' latest versions no longer reference (replaced by a
        compaction, or rewritten by ``doctor --clean``) once they were removed more than
        ``retention_hours`` ago. No lake version reads them.
    retention_hours : int
        Hours a removed file is kept before vacuum deletes it (default 168, Delta's own
        default); 0 deletes them at once, which is safe for gccat but breaks a query that
        another process started before the compaction.

    Returns
    -------
    MaintenanceReport
        Per table: files before and after, compaction counts, checkpoint version, vacuumed
        files and bytes.
    """
    retention_hours = int(check_number(retention_hours, "--retention-hours", lo=0, integer=True))
    lk = lake if isinstance(lake, Lake) else open_lake(lake)
    with lk.lock():
        before = lk.version()
        done = [
            _maintain_table(lk, t, optimize, checkpoint, vacuum, retention_hours)
            for t in TABLES
            if lk.exists(t)
        ]
        after = lk.version()
    if after != before:  # maintenance never makes a lake version: a bug, not a user error
        raise RuntimeError(f"maintenance changed the lake version from {before} to {after}")
    return MaintenanceReport(after, done)
