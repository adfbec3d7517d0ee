"""Exports never write into a lake, fail as one line on unwritable paths and are atomic."""

import hashlib
import json
import os
import random
import resource
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from catalog.errors import GccatError
from catalog.lake import Lake
from catalog.queries.export import export_table
from ingest.catalog import ingest_catalog

from ..conftest import SMACS

# Extensions of the file formats of `gccat export` and of `gccat sql -o` (csv).
EXT = {"parquet": "parquet", "fits": "fits", "ecsv": "ecsv", "votable": "vot", "csv": "csv"}
ALL_FORMATS = [*EXT, "hats"]


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Lake:
    """A lake with the 178 SMACS0723 clusters (tests must not change it)."""
    lake = Lake.create(tmp_path_factory.mktemp("small") / "lake")
    ingest_catalog(lake, SMACS, field_id="smacs0723", name="faisst2022")
    return lake


def lake_state(lake: Lake) -> dict:
    """Every path under the lake root with its file bytes' sha256 (None for directories)."""
    root = Path(lake.root)
    return {
        str(p.relative_to(root)): None if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.name != ".gccat-writer.lock"
    }


def save(cli, lake, fmt, out, *extra):
    """Write the lake's detections to ``out`` in ``fmt`` the way a user would."""
    if fmt == "csv":
        return cli("sql", "SELECT * FROM detections", "-o", out, "--lake", lake.root, *extra)
    return cli("export", "--table", "detections", "--format", fmt, "--out", out, "--lake", lake.root, *extra)


def one_line_error(res, *words):
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gccat: error: "), res.output
    assert "Traceback" not in res.output
    for w in words:
        assert w in lines[0], lines[0]


def out_name(fmt, stem="x"):
    return stem if fmt == "hats" else f"{stem}.{EXT[fmt]}"


# -- 1. never inside a lake -----------------------------------------------------------------


def _delta_log_file(lake):
    return sorted((Path(lake.root) / "detections" / "_delta_log").glob("*.json"))[0]


def _data_file(lake):
    return Path(lake.files("detections")[0])


LAKE_TARGETS = {
    "lake_root_as_hats": ("hats", lambda lk, tmp: Path(lk.root)),
    "marker_file": ("parquet", lambda lk, tmp: Path(lk.root) / ".gccat-lake.json"),
    "delta_log_file": ("votable", lambda lk, tmp: _delta_log_file(lk)),
    "data_file": ("parquet", lambda lk, tmp: _data_file(lk)),
    "new_file_in_root": ("fits", lambda lk, tmp: Path(lk.root) / "x.fits"),
    "new_file_in_table": ("ecsv", lambda lk, tmp: Path(lk.root) / "detections" / "x.ecsv"),
    "new_hats_in_table": ("hats", lambda lk, tmp: Path(lk.root) / "photometry" / "h"),
    "csv_in_root": ("csv", lambda lk, tmp: Path(lk.root) / "x.csv"),
    "csv_in_delta_log": ("csv", lambda lk, tmp: _delta_log_file(lk).with_name("x.csv")),
}


@pytest.mark.parametrize("case", LAKE_TARGETS)
def test_export_into_the_lake_is_refused_and_the_lake_untouched(small, tmp_path, cli, case):
    fmt, where = LAKE_TARGETS[case]
    before = lake_state(small)
    res = save(cli, small, fmt, where(small, tmp_path), "--overwrite")
    one_line_error(res, "gccat lake", str(small.root))
    assert lake_state(small) == before


def test_symlinks_into_the_lake_are_resolved(small, tmp_path, cli):
    before = lake_state(small)
    (tmp_path / "data.parquet").symlink_to(_data_file(small))
    (tmp_path / "lakedir").symlink_to(small.root, target_is_directory=True)
    (tmp_path / "hats").symlink_to(small.root, target_is_directory=True)
    for fmt, out in [
        ("parquet", tmp_path / "data.parquet"),
        ("fits", tmp_path / "lakedir" / "x.fits"),
        ("csv", tmp_path / "lakedir" / "detections" / "x.csv"),
        ("hats", tmp_path / "hats"),
    ]:
        one_line_error(save(cli, small, fmt, out, "--overwrite"), "gccat lake")
    assert lake_state(small) == before
    assert (tmp_path / "data.parquet").is_symlink()


def test_overwriting_a_directory_that_holds_a_lake_is_refused(small, tmp_path, cli):
    outer = tmp_path / "outer"
    inner = Lake.create(outer / "nested" / "lake")
    before = lake_state(inner)
    one_line_error(save(cli, small, "hats", outer, "--overwrite"), "holds the gccat lake")
    assert lake_state(inner) == before


def test_overwriting_a_directory_that_is_not_a_hats_export_is_refused(small, tmp_path, cli):
    d = tmp_path / "mine"
    d.mkdir()
    (d / "thesis.tex").write_text("precious")
    one_line_error(save(cli, small, "hats", d, "--overwrite"), "not a HATS catalog")
    assert (d / "thesis.tex").read_text() == "precious"


@pytest.mark.parametrize("cmd", ["sql", "cone", "xmatch"])
def test_sql_cone_and_xmatch_outputs_into_the_lake_are_refused(small, cli, cmd):
    before = lake_state(small)
    out = Path(small.root) / "fields" / "x.parquet"
    if cmd == "sql":  # over one of the lake's data files
        res = cli("sql", "SELECT 1 AS x", "-o", _data_file(small), "--overwrite", "--lake", small.root)
    elif cmd == "cone":
        res = cli("cone", "110.83", "-73.45", "60", "-o", out, "--lake", small.root)
    else:
        res = cli("xmatch", "detections", "detections", "-o", out, "--lake", small.root)
    one_line_error(res, "gccat lake")
    assert lake_state(small) == before


def test_python_api_refuses_the_lake_too(small):
    from catalog.queries.export import save_csv

    t = pa.table({"ra": [1.0], "dec": [2.0]})
    before = lake_state(small)
    for fmt in ("parquet", "hats"):
        with pytest.raises(GccatError, match="gccat lake"):
            export_table(
                t,
                small.root if fmt == "hats" else _data_file(small),
                fmt,
                query="q",
                lake_root=str(small.root),
                lake_version=1,
                overwrite=True,
            )
    with pytest.raises(GccatError, match="gccat lake"):
        save_csv(t, Path(small.root) / "x.csv", overwrite=True)
    assert lake_state(small) == before


# -- 3. unwritable places: one line, nothing written ------------------------------------------

UNWRITABLE = {
    "proc": lambda tmp, fmt: Path("/proc") / out_name(fmt),  # creating files fails (ENOENT)
    "sys": lambda tmp, fmt: Path("/sys") / out_name(fmt),  # read-only even for root (EACCES)
    "missing_parent": lambda tmp, fmt: tmp / "nope" / out_name(fmt),
    "parent_is_a_file": lambda tmp, fmt: tmp / "afile" / out_name(fmt),
}


@pytest.mark.parametrize("fmt", ALL_FORMATS)
@pytest.mark.parametrize("place", UNWRITABLE)
def test_unwritable_outputs_are_one_line_errors(small, tmp_path, cli, place, fmt):
    (tmp_path / "afile").write_text("x")
    out = UNWRITABLE[place](tmp_path, fmt)
    one_line_error(save(cli, small, fmt, out), str(out.name))
    assert not os.path.lexists(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_the_wrong_kind_of_thing_at_the_target_is_a_one_line_error(small, tmp_path, cli, fmt):
    out = tmp_path / out_name(fmt)
    if fmt == "hats":  # a file where the HATS directory should go
        out.write_text("precious")
        one_line_error(save(cli, small, fmt, out, "--overwrite"), "is a file")
        assert out.read_text() == "precious"
    else:  # a directory where the file should go
        out.mkdir()
        (out / "keep").write_text("precious")
        one_line_error(save(cli, small, fmt, out, "--overwrite"), "is a directory")
        assert (out / "keep").read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]


@pytest.fixture
def full_device(tmp_path) -> Path:
    """A private /dev/full (a regression replaces this node, not the system's)."""
    node = tmp_path / "full"
    try:
        rdev = os.stat("/dev/full").st_rdev
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(os.major(rdev), os.minor(rdev)))
    except (PermissionError, FileNotFoundError):
        pytest.skip("needs mknod (root) and /dev/full")
    return node


@pytest.mark.parametrize("fmt", ["parquet", "fits", "ecsv", "votable", "csv"])
def test_a_device_is_never_written_or_replaced(small, cli, full_device, fmt):
    if fmt != "csv":  # the real one, only without --overwrite: it exists
        one_line_error(save(cli, small, fmt, "/dev/full"), "exists")
        assert stat.S_ISCHR(os.stat("/dev/full").st_mode)
    # Through a name with the format's extension (a symlink), and directly.
    link = full_device.with_name(out_name(fmt))
    link.symlink_to(full_device)
    one_line_error(save(cli, small, fmt, link), "exists")
    targets = [link] if fmt == "csv" else [link, full_device]
    for target in targets:
        one_line_error(save(cli, small, fmt, target, "--overwrite"), "not a regular file")
        assert stat.S_ISCHR(os.stat(full_device).st_mode)
    assert link.is_symlink()
    assert sorted(p.name for p in full_device.parent.iterdir()) == sorted(["full", link.name])


def _limit_file_size():  # writes beyond 16 kB fail with EFBIG (a full disk, as far as we care)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 14, 1 << 14))


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_a_write_that_fails_midway_keeps_the_previous_export(small, tmp_path, cli, fmt):
    out = tmp_path / out_name(fmt)
    assert save(cli, small, "csv" if fmt == "csv" else fmt, out).exit_code == 0
    before = {str(p): p.read_bytes() for p in [out, *out.rglob("*")] if p.is_file()} | {
        str(p): p.read_bytes() for p in tmp_path.glob("*.manifest.json")
    }
    # Bigger than 16 kB in every format: photometry_wide of the lake, repeated.
    query = "SELECT p.* FROM photometry_wide p, range(8)"
    if fmt == "csv":
        args = ["sql", query, "-o", str(out), "--overwrite"]
    else:
        args = ["export", "--query", query, "--format", fmt, "--out", str(out), "--overwrite"]
    res = subprocess.run(
        [sys.executable, "-m", "catalog.cli.app", *args, "--lake", str(small.root)],
        capture_output=True,
        text=True,
        preexec_fn=_limit_file_size,
        timeout=600,
    )
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gccat: error: cannot write"), res.stderr
    after = {str(p): p.read_bytes() for p in [out, *out.rglob("*")] if p.is_file()} | {
        str(p): p.read_bytes() for p in tmp_path.glob("*.manifest.json")
    }
    assert after == before
    assert not [p for p in tmp_path.iterdir() if ".gccat-" in p.name]


# -- 2. atomic exports: kill them at random moments -------------------------------------------

# A process that imports gccat once and then forks one real `gccat` CLI process per request
# (a JSON list of arguments on stdin), so that each kill point does not pay 3 s of imports.
# It reports "<pid>" when the export starts and "<pid> <wait status>" when it is gone.
ZYGOTE = r"""
import json, os, sys
import astropy.io.votable, astropy.table, lsdb  # noqa: F401  (the imports the children share)
import catalog.queries.export, catalog.queries.search, catalog.queries.connection  # noqa: F401
from catalog.cli.app import app
for line in sys.stdin:
    args, log = json.loads(line)
    pid = os.fork()
    if pid == 0:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        os.dup2(fd, 1); os.dup2(fd, 2)
        try:
            app(args, prog_name="gccat")
        except SystemExit as exc:
            os._exit(exc.code if isinstance(exc.code, int) else 1)
        os._exit(0)
    print(pid, flush=True)
    _, status = os.waitpid(pid, 0)
    print(pid, status, flush=True)
"""

N_BIG = 200_000


@pytest.fixture(scope="module")
def zygote():
    proc = subprocess.Popen(
        [sys.executable, "-c", ZYGOTE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    yield proc
    proc.stdin.close()
    proc.wait(timeout=60)


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> Lake:
    d = tmp_path_factory.mktemp("big")
    rng = np.random.default_rng(7)
    pq.write_table(
        pa.table(
            {
                "id": np.arange(N_BIG),
                "ra": rng.uniform(342.1, 342.3, N_BIG),
                "dec": rng.uniform(-44.6, -44.5, N_BIG),
                "flux_F150W": rng.lognormal(3, 1, N_BIG),
                "fluxerr_F150W": rng.uniform(0.5, 2, N_BIG),
            }
        ),
        d / "big.parquet",
    )
    lake = Lake.create(d / "lake")
    ingest_catalog(lake, d / "big.parquet", field_id="as1063", name="big")
    return lake


def _manifest(out: Path, fmt: str) -> Path:
    return out / "gccat_manifest.json" if fmt == "hats" else Path(f"{out}.manifest.json")


def _sha(out: Path) -> str:
    """sha256 as in the manifest: the file, or a HATS directory's files without the manifest."""
    h = hashlib.sha256()
    files = (
        sorted(p for p in out.rglob("*") if p.is_file() and p.name != "gccat_manifest.json")
        if out.is_dir()
        else [out]
    )
    for p in files:
        h.update(p.read_bytes())
    return h.hexdigest()


def _rows_read(out: Path, fmt: str, full: bool) -> int:
    """Rows in the export as a reader sees them: in full, or from its structure (cheaper)."""
    if fmt == "parquet":
        return pq.read_table(out).num_rows if full else pq.read_metadata(out).num_rows
    if fmt == "votable":
        if full:
            from astropy.table import Table

            return len(Table.read(out, format="votable"))
        data = out.read_bytes()
        assert data.rstrip().endswith(b"</VOTABLE>")
        return data.count(b"<TR>")
    import lsdb

    cat = lsdb.open_catalog(out)
    return len(cat.compute()) if full else cat.hc_structure.catalog_info.total_rows


def _complete(out: Path, fmt: str, readable: dict, full: bool = False) -> int | None:
    """Rows of the complete export at ``out`` (None if absent); fail if it is not complete."""
    if not os.path.lexists(out):
        assert not _manifest(out, fmt).exists() or fmt == "hats"
        return None
    man = json.loads(_manifest(out, fmt).read_text())
    sha = _sha(out)
    assert sha == man["sha256"], "export and manifest disagree"
    if full or sha not in readable:  # read each distinct export once
        readable[sha] = _rows_read(out, fmt, full)
    assert readable[sha] == man["rows"]
    return man["rows"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "fmt,kills,n", [("votable", 10, N_BIG // 2), ("hats", 6, N_BIG // 4), ("parquet", 6, N_BIG)]
)
def test_killed_exports_leave_the_previous_or_the_new_export(big, zygote, tmp_path, fmt, kills, n):
    """SIGKILL real export processes at random moments of an --overwrite export.

    After each kill the target is the previous complete export (its sha256 equal to its
    manifest's, readable with the manifest's row count), the new complete one, or absent when
    there was none; the next successful export leaves no temporary file behind.
    """
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / ("big" if fmt == "hats" else f"big.{EXT[fmt]}")
    log = tmp_path / "children.log"
    rng = random.Random(f"gccat-kill-{fmt}")

    def run(rows, kill_after=None):
        """Export the first ``rows`` detections; SIGKILL after ``kill_after`` s. Exit status."""
        query = f"SELECT detection_id, ra, dec, healpix29 FROM detections ORDER BY detection_id LIMIT {rows}"
        args = [
            "export",
            "--query",
            query,
            "--format",
            fmt,
            "--out",
            str(out),
            "--overwrite",
            "--lake",
            str(big.root),
        ]
        zygote.stdin.write(json.dumps([args, str(log)]) + "\n")
        zygote.stdin.flush()
        pid = int(zygote.stdout.readline())
        if kill_after is not None:
            time.sleep(kill_after)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:  # it finished first
                pass
        done_pid, status = map(int, zygote.stdout.readline().split())
        assert done_pid == pid
        return status

    readable: dict[str, int] = {}
    t0 = time.monotonic()
    assert run(n) == 0, log.read_text()
    duration = time.monotonic() - t0  # only scales the kill moments; nothing asserts on it
    assert _complete(out, fmt, readable, full=True) == n
    current = n
    outcomes = {"previous": 0, "new": 0, "absent": 0, "mid_write": 0}
    for k in range(kills):
        if k == kills // 3:  # some kill points with no earlier export at all
            for p in [out, _manifest(out, fmt)]:
                if p.is_dir():
                    shutil.rmtree(p)
                elif p.exists():
                    p.unlink()
            current = None
        rows = n - 1 - k  # each attempt is recognisable by its row count
        status = run(rows, kill_after=rng.uniform(0.0, 1.1 * duration))
        found = _complete(out, fmt, readable)
        assert found in (current, rows), (found, current, rows)
        if os.WIFEXITED(status):
            assert os.WEXITSTATUS(status) == 0, log.read_text()
            assert found == rows
        outcomes["absent" if found is None else "new" if found == rows != current else "previous"] += 1
        # killed while writing: its temporary files are left for the next export to remove
        outcomes["mid_write"] += any(".gccat-" in p.name for p in out_dir.iterdir())
        current = found
    # A later export succeeds and leaves no temporary files behind.
    assert run(1000) == 0, log.read_text()
    assert _complete(out, fmt, readable, full=True) == 1000
    leftovers = [p.name for p in out_dir.iterdir() if ".gccat-" in p.name]
    assert leftovers == []
    print(f"{fmt}: {kills} kills over a {duration:.1f} s export: {outcomes}")
