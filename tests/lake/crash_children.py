"""Writes that the crash and doctor tests run in child processes (and kill with SIGKILL).

Each operation calls the Python API as a user would. :func:`run` reports on a pipe when the
operation starts (``"go"``), the stages it passes and whether it committed, so the parent can
time its kill from the operation's start and tell a kill after the commit from one before.
Children come from a ``forkserver`` that has imported gccat once (:func:`forkserver`), so a
child costs milliseconds, not the seconds of a fresh interpreter.
"""

from __future__ import annotations

import multiprocessing
import time

# pytest too: started as the "pytest" script (not "python -m pytest"), multiprocessing re-runs
# that script's imports in every child.
PRELOAD = [
    "catalog.lake",
    "catalog.queries.connection",
    "catalog.runs.fits",
    "ingest.catalog",
    "ingest.lens",
    "tests.lake.crash_children",
    "pytest",
]


def forkserver():
    """A multiprocessing context whose children start with gccat already imported."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


def catalog(lake, path, field_id, name, replace=False, progress=None):
    from ingest.catalog import ingest_catalog

    return ingest_catalog(
        lake, path, field_id=field_id, name=name, replace=replace, progress=progress
    ).ingest_id


def lens_map(lake, paths, field_id, model, replace=False, progress=None):
    from ingest.lens import ingest_lens_maps

    return ingest_lens_maps(
        lake, list(paths), field_id=field_id, model=model, replace=replace, progress=progress
    ).ingest_id


def fit_ssp(lake, where, n_samples=10, progress=None, **grid_spec):
    from catalog.runs.fits import run_fit_ssp

    return run_fit_ssp(lake, where, n_samples=n_samples, progress=progress, **grid_spec)["run_id"]


OPS = {"catalog": catalog, "lens_map": lens_map, "fit_ssp": fit_ssp}


def run(conn, op: str, root: str, args: tuple, kwargs: dict) -> None:
    """Child body: run ``OPS[op](Lake(root), *args, **kwargs)``, reporting on ``conn``."""
    from catalog.lake import Lake

    lake = Lake(root)

    def progress(stage, frac):
        conn.send(("stage", stage, time.perf_counter()))

    conn.send(("go", None, time.perf_counter()))
    ingest_id = OPS[op](lake, *args, progress=progress, **kwargs)
    conn.send(("committed", ingest_id, time.perf_counter()))
    conn.close()


class Child:
    """One operation in a child process: start it, wait for its start, kill it or let it end."""

    def __init__(self, ctx, op: str, root, *args, **kwargs):
        self.parent, child = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(target=run, args=(child, op, str(root), args, kwargs), daemon=True)
        self.proc.start()
        child.close()
        self.messages: list[tuple] = []

    def _recv(self, timeout: float) -> bool:
        if self.parent.poll(timeout):
            try:
                self.messages.append(self.parent.recv())
                return True
            except (EOFError, OSError):  # the child died mid-message or closed the pipe
                pass
        return False

    def wait_for(self, kind: str, timeout: float = 120.0, stage: str | None = None) -> float:
        """Block until the child reports ``kind`` (and ``stage``); its time stamp."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for m in self.messages:
                if m[0] == kind and (stage is None or m[1] == stage):
                    return m[2]
            if not self._recv(0.05) and not self.proc.is_alive() and not self.parent.poll():
                break
        raise RuntimeError(
            f"child {self.proc.pid} never reported {kind} {stage or ''}; "
            f"exit code {self.proc.exitcode}; got {self.messages}"
        )

    def kill(self) -> None:
        self.proc.kill()  # SIGKILL
        self.proc.join()

    def finish(self, timeout: float = 300.0) -> bool:
        """Wait for the end; whether the child reported its commit."""
        self.proc.join(timeout)
        while self._recv(0):
            pass
        self.parent.close()
        return any(m[0] == "committed" for m in self.messages)

    def duration(self) -> float:
        """Seconds from ``go`` to ``committed`` of a child that ran to the end."""
        times = {m[0]: m[2] for m in self.messages}
        return times["committed"] - times["go"]
