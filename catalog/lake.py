"""The data lake: one Delta Lake table per entity, and the commit protocol across tables.

Every write goes through :meth:`Lake.transaction`: it takes the lake's writer lock, appends
the data tables (rows carry the new ``ingest_id``) and commits by appending one row to
``ingests`` last. Views show only rows of live ingests (committed and not superseded), so a
crash between the writes leaves nothing visible; ``Lake.doctor`` removes such orphans.
The lake's version is the Delta version of ``ingests``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import re
import secrets
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable, WriterProperties, write_deltalake

from .errors import GccatError, LakeLockedError
from .schemas import INGESTS, TABLES

MARKER = ".gccat-lake.json"
LOCK = ".gccat-writer.lock"
LAKE_FORMAT = 1
# Small row groups on detections let DuckDB skip most of a file in a healpix29 cone search.
_ROW_GROUP_ROWS = {"detections": 32_768}
# Names become directory and file names: ASCII letters, digits and _ . - only (no control
# characters, no unicode lookalikes), starting with a letter or digit (so never ".x", "_delta_log"
# or "-x"). Always used with fullmatch: "$" would also match before a trailing newline.
_NAME_CHARS = re.compile(r"[A-Za-z0-9_.-]+")
_NAME_MAX = 64
# Windows device names, which no file or directory may be called, with any extension.
_RESERVED_NAME = re.compile(r"(con|prn|aux|nul|com[1-9]|lpt[1-9])(\..*)?", re.IGNORECASE)

#: Ingest kinds whose names share one name space: catalog ingests and image detection runs
#: both write detections with ids ``field/name/source_id``, so each checks (and with
#: ``--replace`` supersedes) the other; every other kind only ever matches its own.
DETECTION_KINDS = ("catalog", "detection")


def gccat_version() -> str:
    try:
        return version("gc-catalog")
    except PackageNotFoundError:  # running from a source tree
        return "0+unknown"


def _name_problem(value) -> str | None:
    """Why ``value`` is not a safe simple name, or None if it is one."""
    if not isinstance(value, str):
        return "is not a string"
    if not value:
        return "is empty"
    if not _NAME_CHARS.fullmatch(value):
        return "holds a character other than an ASCII letter, a digit, _ . or -"
    if len(value) > _NAME_MAX:
        return f"is longer than {_NAME_MAX} characters"
    if not value[0].isalnum():
        return "must start with a letter or a digit"
    if ".." in value:
        return "may not contain '..'"
    if value.endswith("."):
        return "may not end with a dot"  # Windows drops it: 'a.' and 'a' would be one path
    if _RESERVED_NAME.fullmatch(value):
        return "is a reserved device name on Windows"
    return None


def check_name(value: str, what: str) -> str:
    """Refuse a name that could become an unsafe or unportable path.

    Field ids, catalog and model names become directory and file names, so they must be
    1-64 ASCII letters, digits and ``_ . -``, start with a letter or digit, contain no
    ``..``, not end with a dot and not be a Windows device name (``con``, ``nul``, ``aux``,
    ``prn``, ``com1``-``com9``, ``lpt1``-``lpt9``, in any case, with or without extension).

    Parameters
    ----------
    value : str
        The name to check.
    what : str
        What the name is, for the error message (e.g. ``"field id"``).

    Returns
    -------
    str
        ``value``, unchanged.

    Raises
    ------
    GccatError
        If the name is not safe; the message is one line whatever the name holds.
    """
    problem = _name_problem(value)
    if problem is not None:
        # ascii() escapes newlines, control and non-ASCII characters: the message stays one
        # line and shows a lookalike for what it is.
        shown = ascii(value) if len(str(value)) <= 80 else ascii(str(value)[:80]) + "..."
        raise GccatError(f"{what} {shown} is not a simple name: it {problem} (use 1-{_NAME_MAX} "
                         "ASCII letters, digits and _ . -, starting with a letter or digit)")
    return value


def default_lake_path() -> Path:
    """``$GCCAT_LAKE`` if set, else ``./data_lake``."""
    return Path(os.environ.get("GCCAT_LAKE", "data_lake"))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class Transaction:
    """One atomic write to the lake: data tables first, then the ``ingests`` row."""

    lake: Lake
    ingest_id: str
    kind: str
    started_at: dt.datetime
    written: dict[str, int] = field(default_factory=dict)
    committed: bool = False

    def append(self, table: str, data: pa.Table) -> None:
        """Append rows (their ``ingest_id`` must be this transaction's) to a data table."""
        if data.num_rows == 0:
            return
        self.written[table] = self.lake._append(table, data)

    def commit(self, *, name=None, field_id=None, source_path=None, sha256=None, n_rows=0,
               n_photometry=0, command="", supersedes=(), options=None, warnings=()) -> int:
        """Append the ``ingests`` row: the single commit point. Returns the lake version."""
        opts = dict(options or {})
        opts["table_versions"] = self.written
        row = pa.table({
            "ingest_id": [self.ingest_id], "kind": [self.kind], "name": [name],
            "field_id": [field_id], "source_path": [None if source_path is None else str(source_path)],
            "sha256": [sha256], "n_rows": [n_rows], "n_photometry": [n_photometry],
            "started_at": [self.started_at], "committed_at": [_now()], "command": [command],
            "gccat_version": [gccat_version()], "supersedes": [list(supersedes)],
            "options": [json.dumps(opts, default=str)], "warnings": [list(warnings)],
        }, schema=INGESTS)
        version_ = self.lake._append("ingests", row)
        self.committed = True
        return version_


class Lake:
    """A gccat data lake at ``root`` (a directory holding one Delta table per entity).

    Parameters
    ----------
    root : path
        The lake directory. It must have been created by :meth:`Lake.create` (``gccat init``).
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).resolve()
        marker = self.root / MARKER
        if not marker.is_file():
            raise GccatError(f"{root} is not a gccat lake (no {MARKER}); create one with "
                             "'gccat init --lake PATH'")
        self.meta = json.loads(marker.read_text())

    # -- creation and layout -------------------------------------------------------------
    @classmethod
    def create(cls, root: str | os.PathLike) -> Lake:
        """Create an empty lake (idempotent: an existing lake is opened and gains new tables)."""
        root = Path(root)
        if root.exists() and not root.is_dir():
            raise GccatError(f"{root} exists and is not a directory")
        if root.is_dir() and not (root / MARKER).exists():
            stray = [p.name for p in root.iterdir() if p.name not in {"README.md", ".gitignore"}]
            if stray:
                raise GccatError(f"{root} is a non-empty directory that is not a gccat lake "
                                 f"(holds {stray[0]!r}); choose an empty or new directory")
        root.mkdir(parents=True, exist_ok=True)
        for name, (schema, parts) in TABLES.items():
            path = root / name
            if not DeltaTable.is_deltatable(str(path)):
                DeltaTable.create(str(path), schema, partition_by=parts or None, name=name,
                                  description=f"gccat {name} table")
        marker = root / MARKER
        if not marker.exists():
            marker.write_text(json.dumps({"format": LAKE_FORMAT, "created_by": gccat_version(),
                                          "created_at": _now().isoformat()}, indent=1))
        return cls(root)

    def table_path(self, table: str) -> Path:
        if table not in TABLES:
            raise GccatError(f"unknown table '{table}'; tables are {', '.join(TABLES)}")
        return self.root / table

    def delta(self, table: str, version: int | None = None) -> DeltaTable:
        try:
            return DeltaTable(str(self.table_path(table)), version=version)
        except GccatError:
            raise
        except Exception as exc:  # deltalake raises its own types for missing versions
            raise GccatError(f"cannot open table '{table}'"
                             + (f" at version {version}" if version is not None else "")
                             + f": {str(exc).splitlines()[0]}") from exc

    def version(self) -> int:
        """The lake's version: the Delta version of ``ingests`` (one per commit)."""
        return self.delta("ingests").version()

    def exists(self, table: str) -> bool:
        """Whether the table has been created (lakes made by older gccat lack newer tables)."""
        return DeltaTable.is_deltatable(str(self.table_path(table)))

    def files(self, table: str, version: int | None = None) -> list[str]:
        """Absolute paths of the Parquet files of a table's current (or given) version."""
        if not self.exists(table):
            return []  # created by its first append
        return [u.removeprefix("file://") for u in self.delta(table, version).file_uris()]

    def check_version(self, as_of: int | None) -> int:
        """The lake version to read: ``as_of`` if it exists, else the latest."""
        latest = self.version()
        if as_of is None:
            return latest
        if not 0 <= as_of <= latest:
            raise GccatError(f"lake version {as_of} does not exist (versions are 0 to {latest})")
        return as_of

    # -- reading -------------------------------------------------------------------------
    def read(self, table: str, version: int | None = None, filters=None,
             columns: list[str] | None = None) -> pa.Table:
        """All rows of a table's files (live or not) as Arrow, optionally filtered.

        ``filters`` is a ``pyarrow.compute.Expression`` pushed into the Parquet scan.
        """
        if not self.exists(table):
            return TABLES[table][0].empty_table()
        ds = self.delta(table, version).to_pyarrow_dataset()
        return ds.to_table(filter=filters, columns=columns)

    def ingests(self, as_of: int | None = None) -> pa.Table:
        """Live ingests at a lake version: committed and not superseded."""
        t = self.read("ingests", self.check_version(as_of))
        gone = set(pc.list_flatten(t["supersedes"]).to_pylist())
        if gone:
            t = t.filter(pc.invert(pc.is_in(t["ingest_id"], pa.array(sorted(gone)))))
        return t

    def live_named(self, field_id: str, name: str, kind: str | None = None, *,
                   kinds: tuple[str, ...] | list[str] | None = None) -> pa.Table:
        """Live ingests of ``name`` in ``field_id``: the ingests a new write of that name is a
        repeat of (same sha256) or would supersede (``--replace``).

        Parameters
        ----------
        field_id, name : str
            Field and name of the new write.
        kind : str, optional
            Match only ingests of this kind (a lens model only ever replaces a lens model).
        kinds : sequence of str, optional
            Match ingests of any of these kinds: kinds that share a name space, such as
            :data:`DETECTION_KINDS`. Give ``kind`` or ``kinds``, not both.

        Returns
        -------
        pyarrow.Table
            Rows of ``ingests``. Without ``kind`` and ``kinds``, ingests of every kind match,
            which is right for reading but never for a write's supersession check.
        """
        if kind is not None and kinds is not None:
            raise ValueError("give kind or kinds, not both")
        live = self.ingests()
        cond = pc.and_(pc.equal(live["field_id"], field_id), pc.equal(live["name"], name))
        if kind is not None:
            kinds = (kind,)
        if kinds is not None:
            cond = pc.and_(cond, pc.is_in(live["kind"], pa.array(list(kinds), pa.string())))
        return live.filter(cond)

    def live(self, table: str, as_of: int | None = None, filters=None) -> pa.Table:
        """Rows of a table written by ingests live at ``as_of``, read without DuckDB.

        ``filters`` (a ``pyarrow.compute.Expression``) is pushed into the Parquet scan.
        """
        ids = self.ingests(as_of)["ingest_id"]
        t = self.read(table, filters=filters)
        return t.filter(pc.is_in(t["ingest_id"], ids))

    def photometry_bands(self, as_of: int | None = None) -> list[str]:
        """Bands with photometry in live ingests (each such ingest lists them in its options)."""
        bands: set[str] = set()
        for opts in self.ingests(as_of)["options"].to_pylist():
            bands.update(json.loads(opts or "{}").get("bands_measured", []))
        return sorted(bands)

    # -- writing -------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, timeout_s: float = 600.0) -> Iterator[None]:
        """The writer lock: one writing process at a time; others wait up to ``timeout_s``."""
        fh = open(self.root / LOCK, "a+")  # noqa: SIM115 - held for the block
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise LakeLockedError(f"{self.root}: another gccat process is writing; "
                                              f"gave up after {timeout_s:.0f} s") from None
                    time.sleep(0.05)
            yield
        finally:
            fh.close()

    @contextlib.contextmanager
    def transaction(self, kind: str, lock_timeout_s: float = 600.0,
                    ingest_id: str | None = None) -> Iterator[Transaction]:
        """Open an atomic write. Data appended but not committed stays invisible.

        ``ingest_id`` (from :func:`new_ingest_id`) lets a caller build its rows before it
        waits for the lock.
        """
        started = _now()
        with self.lock(lock_timeout_s):
            yield Transaction(self, ingest_id or new_ingest_id(), kind, started)

    def _append(self, table: str, data: pa.Table) -> int:
        schema, parts = TABLES[table]
        data = data.select(schema.names).cast(schema)
        rows_per_group = _ROW_GROUP_ROWS.get(table, 1 << 20)
        if parts and self.exists(table) and self._append_one_partition(table, data, parts[0],
                                                                       rows_per_group):
            return self.delta(table).version()
        props = WriterProperties(max_row_group_size=rows_per_group, compression="ZSTD")
        # "merge" lets a newer gccat add columns to a lake made by an older one.
        write_deltalake(str(self.table_path(table)), data, mode="append",
                        partition_by=parts or None, writer_properties=props, schema_mode="merge")
        return self.delta(table).version()

    def _append_one_partition(self, table: str, data: pa.Table, part: str,
                              rows_per_group: int) -> bool:
        """Append rows that all share one partition value, writing the Parquet file directly.

        deltalake's partitioned writer splits and re-encodes the rows; an ingest holds one
        field, so one pyarrow file plus a Delta add action in one commit is the same result at
        a fraction of the time. Returns False (nothing done) when the fast path does not apply.
        """
        import uuid

        import pyarrow.parquet as pq
        from deltalake.transaction import AddAction

        values = pc.unique(data[part])
        if len(values) != 1 or values[0].as_py() is None:
            return False
        dt_ = self.delta(table)
        current = pa.schema(dt_.schema().to_arrow())
        body = data.drop_columns([part])
        if [f.name for f in current if f.name != part] != body.column_names:
            return False  # a schema change: let write_deltalake merge it
        value = values[0].as_py()
        rel = f"{part}={value}/part-{uuid.uuid4().hex}.snappy.parquet"
        path = self.table_path(table) / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(body, path, row_group_size=rows_per_group)
        st = path.stat()
        add = AddAction(rel, st.st_size, {part: value}, int(st.st_mtime * 1000), True,
                        json.dumps({"numRecords": body.num_rows}))
        dt_.create_write_transaction([add], "append", current, partition_by=[part])
        return True

    def doctor(self, clean: bool = False) -> dict[str, int]:
        """Count (and with ``clean``, delete) rows whose ingest never committed.

        Returns the number of orphan rows per table.
        """
        committed = set(self.read("ingests")["ingest_id"].to_pylist())
        found: dict[str, int] = {}
        with self.lock():
            for table in TABLES:
                if table == "ingests" or not self.exists(table):
                    continue
                ids = self.read(table)["ingest_id"]
                orphan = sorted(set(pc.unique(ids).to_pylist()) - committed)
                if not orphan:
                    continue
                found[table] = int(pc.sum(pc.is_in(ids, pa.array(orphan))).as_py())
                if clean:
                    lst = ", ".join("'" + o.replace("'", "") + "'" for o in orphan)
                    self.delta(table).delete(f"ingest_id IN ({lst})")
        return found


def sha256_file(path: str | os.PathLike) -> str:
    """SHA-256 of a file (or, for a directory, of its files in name order), read in 4 MiB blocks."""
    path = Path(path)
    h = hashlib.sha256()
    for p in sorted(q for q in path.rglob("*") if q.is_file()) if path.is_dir() else [path]:
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                h.update(block)
    return h.hexdigest()


def command_line() -> str:
    """The command as typed (program name without its path), recorded with every write."""
    return " ".join([os.path.basename(sys.argv[0]), *sys.argv[1:]])


def new_ingest_id() -> str:
    """A new, time-ordered ingest id (UTC time to the second plus 8 random hex digits)."""
    return _now().strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(4)


def open_lake(root: str | os.PathLike | None = None) -> Lake:
    """Open the lake at ``root`` (default: ``$GCCAT_LAKE`` or ``./data_lake``)."""
    return Lake(default_lake_path() if root is None else root)
