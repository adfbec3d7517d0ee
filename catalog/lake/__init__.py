"""The data lake: one Delta Lake table per entity, and the commit protocol across tables.

Every write goes through :meth:`Lake.transaction`: it takes the lake's writer lock, appends
the data tables (rows carry the new ``ingest_id``) and commits by appending one row to
``ingests`` last. Views show only rows of live ingests (committed and not superseded), so a
crash between the writes leaves nothing visible; ``Lake.doctor`` removes such orphans.

The lake's version is the number of gccat commits: each commit appends one ``ingests`` row
holding the version it made (``lake_version``). Reading ``--as-of N`` keeps the ``ingests``
rows of versions up to N and reads every table at its latest Delta version, so no lake
version needs an old Delta version of any table: compaction, checkpoints and vacuum (which
add Delta commits and remove old files) change no lake version and no ``--as-of`` answer.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import re
import secrets
import sys
import time
import urllib.parse
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import NamedTuple

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
from deltalake import CommitProperties, DeltaTable, WriterProperties, write_deltalake
from deltalake.transaction import AddAction

from catalog.errors import GccatError, LakeLockedError
from catalog.lake.deltastats import delta_stats, distinct_chunks
from catalog.lake.schemas import INGESTS, TABLES, IngestKind

MARKER = ".gccat-lake.json"
LOCK = ".gccat-writer.lock"
LAKE_FORMAT = 1
#: Key in the Delta commit info of every gccat append: the ingest whose rows it adds.
GCCAT_INGEST_TAG = "gccat.ingest_id"
# Small row groups on detections let DuckDB skip most of a file in a healpix29 cone search.
_ROW_GROUP_ROWS = {"detections": 32_768}
#: Columns of one value per source (or per source and band), written without a dictionary:
#: a dictionary of ~all-distinct values saves nothing and, rebuilt in every 32,768-row group
#: of ``detections``, doubled the write time (and the file: 44 MB against 34 MB at 10^6).
NO_DICTIONARY = {
    "detections": frozenset({"detection_id", "source_id", "ra", "dec", "healpix29"}),
    "photometry": frozenset({"detection_id", "flux_njy", "flux_err_njy"}),
}


#: Rows per Parquet file of one append, at most (a bigger part is a file of its own): a large
#: table is written as several files at once, each on its own thread (10^6 sources x 8 bands
#: of photometry: two files), and a file of whole bands gives engines band bounds to skip by.
FILE_ROWS = 1 << 22
#: Threads writing one transaction's files (each adds one for its Delta statistics).
WRITER_THREADS = 3


def _files_of(parts: Iterable[pa.Table], file_rows: int) -> Iterator[pa.Table]:
    """Consecutive parts gathered into tables of at most ``file_rows`` rows (a bigger part
    is a file of its own), each yielded as soon as the next part would overflow it.
    """
    held: list[pa.Table] = []
    n = 0
    for part in parts:
        if held and n + part.num_rows > file_rows:
            yield pa.concat_tables(held)
            held, n = [], 0
        held.append(part)
        n += part.num_rows
    if held:
        yield pa.concat_tables(held)


def parquet_options(table: str, columns: list[str]) -> dict:
    """``pyarrow.parquet.write_table`` options of the lake's own writer for ``table``:
    row-group size, dictionary columns (the default compression, Snappy, is kept).
    """
    no_dict = NO_DICTIONARY.get(table, frozenset())
    return {
        "row_group_size": _ROW_GROUP_ROWS.get(table, 1 << 20),
        "use_dictionary": [c for c in columns if c not in no_dict],
    }


#: Ingest kinds whose names share one name space: catalog ingests and image detection runs
#: both write detections with ids ``field/name/source_id``, so each checks (and with
#: ``--replace`` supersedes) the other; every other kind only ever matches its own.
DETECTION_KINDS = (IngestKind.CATALOG, IngestKind.DETECTION)


def gccat_version() -> str:
    """The installed gccat version (recorded with every write), or ``0+unknown``."""
    try:
        return version("gc-catalog")
    except PackageNotFoundError:  # running from a source tree
        return "0+unknown"


def default_lake_path() -> Path:
    """``$GCCAT_LAKE`` if set, else ``./data_lake``."""
    return Path(os.environ.get("GCCAT_LAKE", "data_lake"))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@contextlib.contextmanager
def _writer_lock(root: Path, timeout_s: float = 600.0) -> Iterator[None]:
    """``flock`` on ``root/.gccat-writer.lock``; the kernel releases it if the holder dies."""
    fh = open(root / LOCK, "a+")  # noqa: SIM115 - held for the block
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LakeLockedError(
                        f"{root}: another gccat process is writing; gave up after {timeout_s:.0f} s"
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        fh.close()


class Staged(NamedTuple):
    """A Parquet file written by the single-partition fast path, not yet in the Delta log."""

    delta: DeltaTable  # the snapshot it is committed against
    schema: pa.Schema
    partition: str  # the partition column
    add: AddAction
    new_dir: bool  # its partition directory was made for it


class StagedFiles:
    """The files of one :meth:`Transaction.files` block, by table (see there)."""

    def __init__(self, lake: Lake, pool: ThreadPoolExecutor, order: Sequence[str] = ()):
        self.lake = lake
        self.pool = pool
        self.tables: dict[str, list[tuple[pa.Table, Future]]] = {t: [] for t in order}

    def add(self, table: str, data: pa.Table | Iterable[pa.Table]) -> None:
        """Write rows to ``table``: a table or an iterable of parts, consumed here in order and
        gathered into files of about ``FILE_ROWS`` rows, each written as soon as it is
        complete (so the next part is built while the files before are written).
        """
        parts = [data] if isinstance(data, pa.Table) else data
        files = self.tables.setdefault(table, [])
        for f in _files_of(parts, FILE_ROWS):
            if f.num_rows:
                files.append((f, self.pool.submit(self.lake._stage, table, f)))

    def commit(self, table: str, ingest_id: str) -> int | None:
        """One Delta commit adding ``table``'s files; where the fast path did not apply (a new
        table, a schema change) the rows go through deltalake's writer instead. Returns the
        table's Delta version (None when nothing was added).
        """
        files = self.tables[table]
        adds = [fut.result() for _, fut in files]
        parts = [f for f, _ in files]
        # From here the files are this commit's: a failed commit leaves them to doctor (the
        # log may hold them), as a crash would.
        del self.tables[table]
        if not parts:
            return None
        if any(a is None for a in adds):
            for a in adds:
                self.lake._unstage(table, a)
            return self.lake._append(table, pa.concat_tables(parts), ingest_id)
        return self.lake._commit_staged(table, adds, ingest_id)

    def remove(self) -> None:
        """Remove every staged file not yet committed (waiting for the writes under way)."""
        for table, files in self.tables.items():
            for _, fut in files:
                with contextlib.suppress(Exception):
                    self.lake._unstage(table, fut.result())
        self.tables.clear()


@dataclass
class Transaction:
    """One atomic write to the lake: data tables first, then the ``ingests`` row."""

    lake: Lake
    ingest_id: str
    kind: IngestKind
    started_at: dt.datetime
    written: dict[str, int] = field(default_factory=dict)
    committed: bool = False

    def append(self, table: str, data: pa.Table) -> None:
        """Append rows (their ``ingest_id`` must be this transaction's) to a data table."""
        if data.num_rows == 0:
            return
        self.written[table] = self.lake._append(table, data, self.ingest_id)

    @contextlib.contextmanager
    def files(self, order: Sequence[str] = (), progress=None) -> Iterator[StagedFiles]:
        """Stage Parquet files written on threads (:meth:`StagedFiles.add`), and commit them
        when the block ends: one Delta commit per table, the tables in ``order`` first, then
        in the order they were first added. ``progress(table)`` is called before a table's
        files are awaited and committed (the tables before it are committed). On an error in
        the block or in a write, every staged file is removed and nothing is committed.

        pyarrow releases the GIL while it encodes, so the block goes on (building the next
        table, checking the next band) while the files before are written.
        """
        with ThreadPoolExecutor(WRITER_THREADS) as pool:
            staged = StagedFiles(self.lake, pool, order)
            try:
                yield staged
                for table in list(staged.tables):
                    if staged.tables[table] and progress is not None:
                        progress(table)
                    if (v := staged.commit(table, self.ingest_id)) is not None:
                        self.written[table] = v
            except BaseException:
                staged.remove()
                raise

    def commit(
        self,
        *,
        name=None,
        field_id=None,
        source_path=None,
        sha256=None,
        n_rows=0,
        n_photometry=0,
        command="",
        supersedes=(),
        options=None,
        warnings=(),
    ) -> int:
        """Append the ``ingests`` row: the single commit point. Returns the lake version."""
        opts = dict(options or {})
        opts["table_versions"] = self.written
        # Under the writer lock: no other commit can take this version number.
        lake_version = self.lake.version() + 1
        row = pa.table(
            {
                "ingest_id": [self.ingest_id],
                "kind": [str(self.kind)],
                "name": [name],
                "field_id": [field_id],
                "source_path": [None if source_path is None else str(source_path)],
                "sha256": [sha256],
                "n_rows": [n_rows],
                "n_photometry": [n_photometry],
                "started_at": [self.started_at],
                "committed_at": [_now()],
                "command": [command],
                "gccat_version": [gccat_version()],
                "supersedes": [list(supersedes)],
                "options": [json.dumps(opts, default=str)],
                "warnings": [list(warnings)],
                "lake_version": [lake_version],
            },
            schema=INGESTS,
        )
        self.lake._append("ingests", row, self.ingest_id, {"gccat.lake_version": lake_version})
        self.committed = True
        return lake_version


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
            raise GccatError(
                f"{root} is not a gccat lake (no {MARKER}); create one with 'gccat init --lake PATH'"
            )
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
                raise GccatError(
                    f"{root} is a non-empty directory that is not a gccat lake "
                    f"(holds {stray[0]!r}); choose an empty or new directory"
                )
        root.mkdir(parents=True, exist_ok=True)
        # Tables added to an existing lake are a write like any other: under the writer lock,
        # so that a concurrent 'doctor --clean' never takes their files for a killed writer's.
        held = _writer_lock(root) if (root / MARKER).exists() else contextlib.nullcontext()
        with held:
            for name, (schema, parts) in TABLES.items():
                path = root / name
                if not DeltaTable.is_deltatable(str(path)):
                    DeltaTable.create(
                        str(path),
                        schema,
                        partition_by=parts or None,
                        name=name,
                        description=f"gccat {name} table",
                    )
        marker = root / MARKER
        if not marker.exists():
            marker.write_text(
                json.dumps(
                    {"format": LAKE_FORMAT, "created_by": gccat_version(), "created_at": _now().isoformat()},
                    indent=1,
                )
            )
        return cls(root)

    def table_path(self, table: str) -> Path:
        """The directory of a table's Delta log and files; an unknown table is an error."""
        if table not in TABLES:
            raise GccatError(f"unknown table '{table}'; tables are {', '.join(TABLES)}")
        return self.root / table

    def delta(self, table: str, version: int | None = None) -> DeltaTable:
        """The table's ``deltalake.DeltaTable`` at ``version`` (default: latest)."""
        try:
            return DeltaTable(str(self.table_path(table)), version=version)
        except GccatError:
            raise
        except Exception as exc:  # deltalake raises its own types for missing versions
            raise GccatError(
                f"cannot open table '{table}'"
                + (f" at version {version}" if version is not None else "")
                + f": {str(exc).splitlines()[0]}"
            ) from exc

    def version(self) -> int:
        """The lake's version: the number of gccat commits (rows of ``ingests``).

        Not the Delta version of ``ingests``, which maintenance (compaction, a checkpoint's
        commit) moves on without a gccat commit; in lakes that only gccat wrote before it
        stored ``lake_version`` the two are equal, so their versions read as they always did.
        The count comes from the add actions' ``numRecords`` in the Delta log (no data file
        is opened).
        """
        actions = pa.table(self.delta("ingests").get_add_actions(flatten=True))
        if actions.num_rows == 0:
            return 0
        n = actions["num_records"]
        if n.null_count:  # a writer that kept no statistics: count the rows themselves
            return self.dataset("ingests").count_rows()
        return int(pc.sum(n).as_py())

    def exists(self, table: str) -> bool:
        """Whether the table has been created (lakes made by older gccat lack newer tables)."""
        return DeltaTable.is_deltatable(str(self.table_path(table)))

    def files(self, table: str, version: int | None = None) -> list[str]:
        """Absolute paths of the Parquet files of a table's current (or given) version."""
        if not self.exists(table):
            return []  # created by its first append
        return [u.removeprefix("file://") for u in self.delta(table, version).file_uris()]

    def file_bounds(self, table: str, column: str) -> pa.Table:
        """The table's current files with the min and max of ``column`` in each, from the Delta log.

        Returns a table of ``path`` (absolute, as :meth:`files` gives them), ``min`` and ``max``
        (the add action's statistics; null where the writer kept none, so such a file can hold
        any value). No data file is opened.
        """
        empty = pa.table({"path": pa.array([], pa.string()), "min": [], "max": []})
        if not self.exists(table):
            return empty
        actions = pa.table(self.delta(table).get_add_actions(flatten=True))
        if actions.num_rows == 0:
            return empty
        base = self.table_path(table)
        paths = [  # relative to the table, or absolute URIs of other writers
            str(base / urllib.parse.unquote(p.removeprefix("file://"))) for p in actions["path"].to_pylist()
        ]
        nulls = pa.nulls(actions.num_rows, TABLES[table][0].field(column).type)
        names = actions.column_names
        bound = {k: actions[f"{k}.{column}"] if f"{k}.{column}" in names else nulls for k in ("min", "max")}
        return pa.table({"path": paths, **bound})

    def check_version(self, as_of: int | None, latest: int | None = None) -> int:
        """The lake version to read: ``as_of`` if it exists, else the latest (``latest``, when
        the caller has just read it, saves reading the ``ingests`` log again).
        """
        latest = self.version() if latest is None else latest
        if as_of is None:
            return latest
        if not 0 <= as_of <= latest:
            raise GccatError(f"lake version {as_of} does not exist (versions are 0 to {latest})")
        return as_of

    # -- reading -------------------------------------------------------------------------
    def read(
        self, table: str, version: int | None = None, filters=None, columns: list[str] | None = None
    ) -> pa.Table:
        """All rows of a table's files (live or not) as Arrow, optionally filtered.

        ``filters`` is a ``pyarrow.compute.Expression`` pushed into the Parquet scan.
        """
        if not self.exists(table):
            return TABLES[table][0].empty_table()
        try:
            return self.dataset(table, version).to_table(filter=filters, columns=columns)
        except FileNotFoundError as exc:  # the Delta log lists a file that the disk lacks
            raise GccatError(
                f"table '{table}' cannot be read: a file its Delta log lists was vacuumed or "
                f"deleted outside gccat ({str(exc).splitlines()[0]})"
            ) from exc

    def dataset(self, table: str, version: int | None = None):
        """The table's files at a version as a ``pyarrow.dataset.Dataset`` (partition values
        from the Delta log, columns a file lacks read as null).
        """
        # Arrow's own local filesystem, not deltalake's Python one: buffers of a Python
        # filesystem are released on Arrow's I/O threads, which take the GIL, and a pre-buffered
        # read still pending when the interpreter exits aborted the process (exit 134, "terminate
        # called without an active exception", 12 of 48 refused ingests under load).
        local = pafs.SubTreeFileSystem(str(self.table_path(table).resolve()), pafs.LocalFileSystem())
        return self.delta(table, version).to_pyarrow_dataset(filesystem=local)

    def committed(self, as_of: int | None = None) -> pa.Table:
        """Rows of ``ingests`` committed at or before lake version ``as_of`` (default: all),
        superseded ones included, with ``lake_version`` filled in for rows of older lakes.
        """
        t = self.read("ingests")
        versions = ingest_versions(t)
        t = t.drop_columns([c for c in ["lake_version"] if c in t.column_names])
        t = t.append_column(pa.field("lake_version", pa.int64()), versions)
        if as_of is None:
            return t
        return t.filter(pc.less_equal(t["lake_version"], self.check_version(as_of)))

    def ingests(self, as_of: int | None = None) -> pa.Table:
        """Live ingests at a lake version: committed and not superseded."""
        t = self.committed(as_of)  # checks as_of
        gone = set(pc.list_flatten(t["supersedes"]).to_pylist())
        if gone:
            t = t.filter(pc.invert(pc.is_in(t["ingest_id"], pa.array(sorted(gone)))))
        return t

    def live_named(
        self,
        field_id: str,
        name: str,
        kind: IngestKind | str | None = None,
        *,
        kinds: tuple[str, ...] | list[str] | None = None,
    ) -> pa.Table:
        """Live ingests of ``name`` in ``field_id``: the ingests a new write of that name is a
        repeat of (same sha256) or would supersede (``--replace``).

        Parameters
        ----------
        field_id, name : str
            Field and name of the new write.
        kind : IngestKind or str, optional
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
    def lock(self, timeout_s: float = 600.0) -> contextlib.AbstractContextManager[None]:
        """The writer lock: one writing process at a time; others wait up to ``timeout_s``."""
        return _writer_lock(self.root, timeout_s)

    @contextlib.contextmanager
    def transaction(
        self, kind: IngestKind | str, lock_timeout_s: float = 600.0, ingest_id: str | None = None
    ) -> Iterator[Transaction]:
        """Open an atomic write. Data appended but not committed stays invisible.

        ``ingest_id`` (from :func:`new_ingest_id`) lets a caller build its rows before it
        waits for the lock.
        """
        kind = IngestKind(kind)  # an unknown kind is a programming error: ValueError
        started = _now()
        with self.lock(lock_timeout_s):
            yield Transaction(self, ingest_id or new_ingest_id(), kind, started)

    def _append(self, table: str, data: pa.Table, ingest_id: str, extra: dict | None = None) -> int:
        """Append rows in one Delta commit whose commit info names the ingest (``gccat.ingest_id``):
        how doctor tells a gccat writer's uncommitted rows from another Delta writer's rows.
        """
        add = self._stage(table, data)
        if add is not None:
            return self._commit_staged(table, [add], ingest_id, extra)
        schema, parts = TABLES[table]
        data = data.select(schema.names).cast(schema)
        rows_per_group = _ROW_GROUP_ROWS.get(table, 1 << 20)
        props = WriterProperties(max_row_group_size=rows_per_group, compression="ZSTD")
        # "merge" lets a newer gccat add columns to a lake made by an older one.
        write_deltalake(
            str(self.table_path(table)),
            data,
            mode="append",
            partition_by=parts or None,
            writer_properties=props,
            schema_mode="merge",
            commit_properties=self._tag(ingest_id, extra),
        )
        return self.delta(table).version()

    @staticmethod
    def _tag(ingest_id: str, extra: dict | None = None) -> CommitProperties:
        return CommitProperties(custom_metadata={GCCAT_INGEST_TAG: ingest_id, **(extra or {})})

    def _stage(self, table: str, data: pa.Table) -> Staged | None:
        """The rows' file written by the single-partition fast path, ready for
        :meth:`_commit_staged`; None (nothing written) where the fast path does not apply.
        """
        schema, parts = TABLES[table]
        if not (parts and self.exists(table)):
            return None
        return self._stage_one_partition(table, data.select(schema.names).cast(schema), parts[0])

    def _commit_staged(
        self, table: str, staged: list[Staged], ingest_id: str, extra: dict | None = None
    ) -> int:
        """One Delta commit adding staged files (of one partition column, from one snapshot);
        returns the table's new Delta version.
        """
        first = staged[0]
        first.delta.create_write_transaction(
            [s.add for s in staged],
            "append",
            first.schema,
            partition_by=[first.partition],
            commit_properties=self._tag(ingest_id, extra),
        )
        return self.delta(table).version()

    def _stage_one_partition(self, table: str, data: pa.Table, part: str) -> Staged | None:
        """Write rows that all share one partition value as one Parquet file, directly.

        deltalake's partitioned writer splits and re-encodes the rows; an ingest holds one
        field, so one pyarrow file plus a Delta add action in one commit is the same result at
        a fraction of the time. Returns what :meth:`_commit_staged` commits, or None (nothing
        done) when the fast path does not apply.
        """
        import uuid

        import pyarrow.parquet as pq

        values = pc.unique(distinct_chunks(data[part]))
        if len(values) != 1 or values[0].as_py() is None:
            return None
        dt_ = self.delta(table)
        current = pa.schema(dt_.schema().to_arrow())
        body = data.drop_columns([part])
        if [f.name for f in current if f.name != part] != body.column_names:
            return None  # a schema change: let write_deltalake merge it
        value = values[0].as_py()
        rel = f"{part}={value}/part-{uuid.uuid4().hex}.snappy.parquet"
        path = self.table_path(table) / rel
        new_dir = not path.parent.exists()
        path.parent.mkdir(parents=True, exist_ok=True)
        # The statistics (Arrow compute) in a second thread while pyarrow encodes the file:
        # both release the GIL, so on two cores the statistics cost no wall time.
        with ThreadPoolExecutor(1) as pool:
            stats = pool.submit(delta_stats, body)
            pq.write_table(body, path, **parquet_options(table, body.column_names))
        st = path.stat()
        add = AddAction(
            rel,
            st.st_size,
            {part: value},
            int(st.st_mtime * 1000),
            True,
            stats.result(),
        )
        return Staged(dt_, current, part, add, new_dir)

    def _unstage(self, table: str, staged: Staged | None) -> None:
        """Remove a staged file (and the partition directory it made, once empty)."""
        if staged is None:
            return
        path = self.table_path(table) / staged.add.path
        path.unlink(missing_ok=True)
        if staged.new_dir:
            with contextlib.suppress(OSError):  # another file of the partition is still there
                path.parent.rmdir()

    def doctor(self, clean: bool = False) -> DoctorReport:
        """Find (and with ``clean``, remove) what killed writers left behind.

        Two kinds of debris: rows in data tables of ingests that gccat began and never
        committed (the writer died between its data commits and its ``ingests`` row; its data
        commits name the ingest in their commit info), and files under a table that no
        Delta commit references (it died before its Delta commit): Parquet data files and
        ``_delta_log`` temporary commit files. Everything runs under the writer lock, and the
        committed ingests are read once the lock is held: a writer that commits while doctor
        waits for the lock keeps its rows. Rows of every committed ingest (superseded ones
        included: ``--as-of`` shows them) and every file that any table version adds or
        removes are kept.

        Parameters
        ----------
        clean : bool
            Delete the orphan rows (a Delta delete: the files stay for older table versions)
            and the unreferenced files.

        Rows whose ingest id is not in ``ingests`` and that no gccat writer began (appended
        by another Delta writer, or without an ingest id) are not debris: they are counted in
        ``foreign_rows`` and never deleted (no gccat view shows them).

        Returns
        -------
        DoctorReport
            Orphan rows per table (a ``dict``, empty when there are none), the unreferenced
            files and the foreign rows; it compares equal to ``{}`` only when no debris
            (orphan rows, unreferenced files) was found.
        """
        found: dict[str, int] = {}
        foreign: dict[str, int] = {}
        with self.lock():
            committed = set(self.read("ingests", columns=["ingest_id"])["ingest_id"].to_pylist())
            # Every gccat commit tags ingests: its first tag is when this lake's gccat began to.
            _, tagged_since = _tagged_ingest_ids(self.table_path("ingests"))
            for table in TABLES:
                if table == "ingests" or not self.exists(table):
                    continue
                orphan, n_orphan, n_foreign = self._uncommitted(table, committed, tagged_since)
                if n_foreign:
                    foreign[table] = n_foreign
                if not n_orphan:
                    continue
                found[table] = n_orphan
                predicate = _orphan_predicate(orphan)
                if clean and predicate:
                    self.delta(table).delete(predicate)
            # After the deletes, whose new files are referenced by their commits.
            files = [f for table in TABLES for f in self._unreferenced_files(table)]
            if clean:
                for f in files:
                    path = self.root / f.path
                    path.unlink(missing_ok=True)
                    if f.kind == "data" and path.parent != self.root / f.table:
                        with contextlib.suppress(OSError):  # a partition directory it emptied
                            path.parent.rmdir()  # (only if empty)
        return DoctorReport(found, files, cleaned=clean, foreign_rows=foreign)

    def _uncommitted(
        self, table: str, committed: set[str], tagged_since: int | None
    ) -> tuple[set[str], int, int]:
        """A table's rows whose ingest is not in ``ingests``: (gccat's orphan ingest ids, their
        rows, rows of other writers).

        An orphan is a row of an ingest gccat began and never committed: a Delta commit of the
        table names its id in its commit info (``gccat.ingest_id``). Rows of lakes written
        before gccat tagged its commits count as gccat's when their id has the form of
        :func:`new_ingest_id` and is older than the lake's first tagged commit of ``ingests``
        (``tagged_since``, Unix ms; None: gccat never tagged a commit here). Every other
        row (another Delta writer's, or without an ingest id) is foreign: reported, kept.
        """
        ids = self.read(table, columns=["ingest_id"])["ingest_id"]
        uncommitted = set(pc.unique(ids).to_pylist()) - committed
        if not uncommitted:
            return set(), 0, 0
        begun, _ = _tagged_ingest_ids(self.table_path(table))
        orphan = {i for i in uncommitted if i is not None and _is_gccat_id(i, begun, tagged_since)}
        counts = pc.value_counts(ids)
        n = dict(zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True))
        n_orphan = sum(n[i] for i in orphan)
        return orphan, n_orphan, sum(n[i] for i in uncommitted) - n_orphan

    def _unreferenced_files(self, table: str) -> list[UnreferencedFile]:
        """Files under a table's directory that no version of its Delta log references."""
        tdir = self.table_path(table)
        if not tdir.is_dir():
            return []
        refs, judge_after = _referenced_paths(tdir)
        out = []
        for dirpath, dirnames, filenames in os.walk(tdir):
            here = Path(dirpath)
            # _delta_log (and _change_data etc.) are Delta's own; only its temp commits are ours.
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(("_", ".")))
            for name in sorted(filenames):
                if not _DATA_FILE.fullmatch(name):
                    continue
                path = here / name
                rel = path.relative_to(tdir).as_posix()
                st = path.stat()
                if rel not in refs and (judge_after is None or st.st_mtime > judge_after):
                    out.append(
                        UnreferencedFile(table, path.relative_to(self.root).as_posix(), st.st_size, "data")
                    )
        log = tdir / "_delta_log"
        if log.is_dir():
            for path in sorted(log.iterdir()):
                if path.is_file() and _LOG_TEMP.fullmatch(path.name):
                    out.append(
                        UnreferencedFile(
                            table, path.relative_to(self.root).as_posix(), path.stat().st_size, "log"
                        )
                    )
        return out


# Data files as deltalake and gccat write them; "#n" is object_store's staging name, renamed to
# the final name only once the file is complete.
_DATA_FILE = re.compile(r"[^.].*\.parquet(#\d+)?")
# A commit is written as _commit_<uuid>.json.tmp and renamed to its version file; a killed
# writer leaves the temp file (or a staged "#n" upload of it, of a checkpoint, ...).
_LOG_TEMP = re.compile(r"_commit_[0-9A-Za-z-]+\.json\.tmp|.+#\d+")
# Commits, and checkpoints in JSON (v2 checkpoints may be either JSON or Parquet).
_LOG_VERSION = re.compile(r"(\d{20})(\.checkpoint\.[0-9A-Za-z-]+)?\.json")
_LOG_COMPACTED = re.compile(r"(\d{20})\.\d{20}\.compacted\.json")
_LOG_CHECKPOINT = re.compile(r"(\d{20})\.checkpoint(\.[0-9A-Za-z-]+)*\.parquet")
# Ingest ids as new_ingest_id makes them (and other plain ids): safe inside a SQL literal.
_PLAIN_ID = re.compile(r"[A-Za-z0-9_.:+-]{1,128}")


@dataclass(frozen=True)
class UnreferencedFile:
    """A file under a table that no Delta commit references: left by a killed writer."""

    table: str
    path: str  # relative to the lake root
    size: int  # bytes
    kind: str  # "data" (Parquet) or "log" (temporary commit file in _delta_log)


class DoctorReport(dict):
    """What :meth:`Lake.doctor` found: orphan rows per table (this mapping) and the files
    that no Delta commit references (``files``).

    Equal to ``{}`` (and false) only when it found nothing at all.
    """

    def __init__(
        self,
        orphan_rows: dict[str, int],
        files: list[UnreferencedFile],
        cleaned: bool = False,
        foreign_rows: dict[str, int] | None = None,
    ):
        super().__init__(orphan_rows)
        self.files = list(files)
        self.cleaned = cleaned
        #: Rows per table of other Delta writers (ingest id not in ``ingests`` and never begun
        #: by gccat): not debris, never deleted, and not part of what the report equals.
        self.foreign_rows = dict(foreign_rows or {})

    @property
    def n_files(self) -> int:
        """Number of unreferenced files found."""
        return len(self.files)

    @property
    def n_bytes(self) -> int:
        """Bytes of the unreferenced files found."""
        return sum(f.size for f in self.files)

    def __bool__(self) -> bool:
        return bool(len(self) or self.files)

    def __eq__(self, other) -> bool:
        if isinstance(other, DoctorReport):
            return dict.__eq__(self, other) and self.files == other.files
        if isinstance(other, dict):
            return not self.files and dict.__eq__(self, other)
        return NotImplemented

    __hash__ = None  # a dict, mutable

    def __repr__(self) -> str:
        return (
            f"DoctorReport(orphan_rows={dict(self)!r}, files={self.files!r}, "
            f"foreign_rows={self.foreign_rows!r})"
        )


def _referenced_paths(table_dir: Path) -> tuple[set[str], float | None]:
    """Paths (relative to the table) that any version of a Delta log adds or removes.

    Reads every commit (``add``, ``remove`` and ``cdc`` actions) and every checkpoint. When
    the log no longer starts at version 0 (expired commits cleaned up), files older than the
    earliest kept log file cannot be judged: the second value is that time (else None).
    """
    import pyarrow.parquet as pq

    log = table_dir / "_delta_log"
    refs: set[str] = set()
    if not log.is_dir():
        return refs, None
    versions: list[int] = []
    earliest = None
    for f in sorted(log.iterdir()) + sorted((log / "_sidecars").glob("*.parquet")):
        if m := (_LOG_VERSION.fullmatch(f.name) or _LOG_COMPACTED.fullmatch(f.name)):
            for line in f.read_text().splitlines():
                action = json.loads(line) if line.strip() else {}
                for key in ("add", "remove", "cdc"):
                    if action.get(key):
                        refs.add(action[key]["path"])
        elif (m := _LOG_CHECKPOINT.fullmatch(f.name)) or f.parent.name == "_sidecars":
            cols = [f"{k}.path" for k in ("add", "remove") if k in pq.ParquetFile(f).schema_arrow.names]
            t = pq.read_table(f, columns=cols)
            for i in range(t.num_columns):
                refs.update(p for p in t.column(i).to_pylist() if p)
        else:
            continue
        if m:
            versions.append(int(m.group(1)))
            mtime = f.stat().st_mtime
            earliest = mtime if earliest is None else min(earliest, mtime)
    # Paths in the log are URIs relative to the table (or absolute ones); keep both spellings.
    rel = set(refs)
    for p in refs:
        p = urllib.parse.unquote(p.removeprefix("file://"))
        if p.startswith("/"):
            with contextlib.suppress(ValueError):
                rel.add(Path(p).relative_to(table_dir).as_posix())
        else:
            rel.add(p)
    return rel, (None if 0 in versions else earliest)


def _tagged_ingest_ids(table_dir: Path) -> tuple[set[str], int | None]:
    """Ingest ids that gccat's commits to a table name in their commit info, and the time
    (Unix ms) of the first such commit (None: no commit is tagged, an older gccat's lake).

    Read from the JSON commits of the log (checkpoints keep no commit info).
    """
    ids: set[str] = set()
    first = None
    log = table_dir / "_delta_log"
    for f in sorted(log.glob("*.json")) if log.is_dir() else []:
        if not _LOG_VERSION.fullmatch(f.name):
            continue
        for line in f.read_text().splitlines():
            info = (json.loads(line) if line.strip() else {}).get("commitInfo") or {}
            if GCCAT_INGEST_TAG in info:
                ids.add(info[GCCAT_INGEST_TAG])
                ts = info.get("timestamp")
                if isinstance(ts, int):
                    first = ts if first is None else min(first, ts)
    return ids, first


# new_ingest_id's form: UTC time to the second, then 8 hex digits.
_GCCAT_ID = re.compile(r"(\d{8}T\d{6})-[0-9a-f]{8}")


def _is_gccat_id(ingest_id: str, tagged: set[str], first_tag_ms: int | None) -> bool:
    """Whether rows of an uncommitted ingest id are a gccat writer's (see Lake._uncommitted)."""
    if ingest_id in tagged:
        return True
    m = _GCCAT_ID.fullmatch(ingest_id)
    if m is None:
        return False
    if first_tag_ms is None:
        return True
    began = dt.datetime.strptime(m.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=dt.UTC)
    # Ids carry whole seconds: only one begun in an earlier second surely predates the tag.
    return began.timestamp() < first_tag_ms // 1000


def _orphan_predicate(orphan: set[str | None]) -> str:
    """A Delta delete predicate for rows of these ingest ids (never committed), or ``""``.

    Delta's delete takes SQL text only, so only plain ids (all that gccat makes) are written
    into it and no value can change the predicate; rows of other ids stay (doctor keeps
    reporting them); a row without an ingest id is matched by IS NULL.
    """
    terms = []
    plain = sorted(o for o in orphan if o is not None and _PLAIN_ID.fullmatch(o))
    if plain:
        terms.append("ingest_id IN (" + ", ".join(f"'{o}'" for o in plain) + ")")
    if None in orphan:
        terms.append("ingest_id IS NULL")
    return " OR ".join(terms)


def ingest_versions(ingests: pa.Table) -> pa.Array:
    """The lake version each row of ``ingests`` made.

    Its ``lake_version`` where stored; rows of lakes made before gccat stored it have their
    rank by ``committed_at`` (then ``ingest_id``), which is the Delta version of ``ingests``
    that added them: such lakes were written only by gccat, one commit at a time under the
    writer lock, which sets ``committed_at`` just before the commit. Every stored version
    follows them, so the ranks of all rows number the old ones right.
    """
    n = ingests.num_rows
    order = pc.sort_indices(ingests, [("committed_at", "ascending"), ("ingest_id", "ascending")])
    rank = pc.scatter(pa.array(range(1, n + 1), pa.int64()), order.cast(pa.int64()))
    if "lake_version" not in ingests.column_names:
        return rank
    return pc.coalesce(ingests["lake_version"].combine_chunks(), rank)


def command_line() -> str:
    """The command as typed (program name without its path), recorded with every write."""
    return " ".join([os.path.basename(sys.argv[0]), *sys.argv[1:]])


def new_ingest_id() -> str:
    """A new, time-ordered ingest id (UTC time to the second plus 8 random hex digits)."""
    return _now().strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(4)


def init_lake(root: str | os.PathLike) -> Lake:
    """Create an empty lake at ``root`` (``gccat init``); an existing lake is opened as it is."""
    return Lake.create(root)


def doctor(lake: Lake | str | os.PathLike, clean: bool = False):
    """Orphan rows and unreferenced files of killed writers (``gccat doctor [--clean]``);
    see :meth:`Lake.doctor`.
    """
    return (lake if isinstance(lake, Lake) else Lake(lake)).doctor(clean=clean)


def open_lake(root: str | os.PathLike | None = None) -> Lake:
    """Open the lake at ``root`` (default: ``$GCCAT_LAKE`` or ``./data_lake``)."""
    return Lake(default_lake_path() if root is None else root)
