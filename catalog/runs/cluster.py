"""Dask for gccat's heavy commands: one client, and two ways to spread work over it.

:func:`dask_client` opens a client for ``--scheduler`` (None: in process, ``"local"``: a
local cluster, else a scheduler address) and turns every failure to reach it into a one-line
error before anything is written. :func:`map_chunks` runs a function over chunks of objects
(fits), with large shared inputs (grids, atlases) scattered once; :func:`task_map` runs
independent tasks (image tiles, injection batches, simulation cells) in batches, with at most
:data:`~catalog.constants.DASK_BATCHES_IN_FLIGHT` batches on the cluster at a time, so the
memory a command holds is bounded whatever the number of tasks. Results come back in the
order of the tasks, so what a command writes does not depend on where its tasks ran.
"""

from __future__ import annotations

import contextlib
from collections import deque

from catalog.constants import DASK_BATCHES_IN_FLIGHT, SCHEDULER_TIMEOUT_S
from catalog.errors import GccatError


def check_scheduler(scheduler) -> str | None:
    """``--scheduler``: None (in process), ``"local"`` or a non-blank address (whether it
    answers is checked when the client connects, :func:`dask_client`).
    """
    if scheduler is not None and (not isinstance(scheduler, str) or not scheduler.strip()):
        raise GccatError(f"--scheduler must be 'local' or a Dask scheduler address, not {scheduler!r}")
    return scheduler


@contextlib.contextmanager
def dask_client(scheduler: str | None, timeout_s: float | None = None):
    """A Dask client for ``scheduler`` (None: none, ``"local"``: a local cluster), connected
    before anything is written; an unreachable scheduler is a one-line error after
    ``timeout_s`` (default :data:`SCHEDULER_TIMEOUT_S`).
    """
    if scheduler is None:
        yield None
        return
    from dask.distributed import Client, LocalCluster

    timeout = SCHEDULER_TIMEOUT_S if timeout_s is None else float(timeout_s)
    cluster = None
    try:
        if scheduler == "local":
            cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
            client = Client(cluster)
        else:
            _probe_scheduler(scheduler, timeout)
            client = Client(scheduler, timeout=timeout)
    except GccatError:
        raise
    except Exception as exc:  # dask raises OSError, TimeoutError, ValueError, even MemoryError
        if cluster is not None:
            cluster.close()
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise GccatError(f"--scheduler {scheduler!r}: cannot use this Dask scheduler ({reason})") from None
    try:
        with client:
            yield client
    finally:
        if cluster is not None:
            cluster.close()


def _probe_scheduler(address: str, timeout: float) -> None:
    """Fail fast on a TCP scheduler address that refuses or does not answer (dask would retry
    until its timeout and then leave a traceback from its client's finaliser).
    """
    import socket

    from distributed.comm import parse_address
    from distributed.comm.addressing import parse_host_port

    try:
        scheme, loc = parse_address(address)
        if scheme not in ("tcp", "tls", "ws", "wss"):
            return
        host, port = parse_host_port(loc)
    except (ValueError, TypeError) as exc:
        raise GccatError(
            f"--scheduler {address!r} is not a Dask scheduler address ({exc}); "
            "e.g. tcp://host:8786 or 'local'"
        ) from None
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise GccatError(
            f"--scheduler {address!r}: cannot connect within {timeout:g} s ({exc.strerror or exc})"
        ) from None


def map_chunks(fn, parts: list, client=None, *, big=(), small=(), progress=None) -> list:
    """``fn(*part, *big, *small)`` for each ``part`` (a tuple of arguments) of ``parts``, in
    process (``client`` None) or as Dask tasks of ``client`` (:func:`dask_client`), ``big``
    objects (grids, atlases) scattered to the workers once; the results in the parts' order.
    """
    step = progress or (lambda stage, frac: None)
    if client is None:
        out = []
        for k, part in enumerate(parts):
            out.append(fn(*part, *big, *small))
            step(f"fitting chunk {k + 1}/{len(parts)}", 0.1 + 0.8 * (k + 1) / max(len(parts), 1))
        return out
    shared = [client.scatter(x, broadcast=True) for x in big]
    step(f"fitting {len(parts)} chunks on Dask", 0.5)
    return client.gather([client.submit(fn, *part, *shared, *small, pure=False) for part in parts])


def task_map(client, batch: int = 64, in_flight: int = DASK_BATCHES_IN_FLIGHT):
    """``map_tasks(fn, tasks)`` on a Dask client: the tasks in batches of ``batch`` (one Dask
    task each, so that many small tasks, one injection's tile each, do not each pay the
    scheduler's overhead), the arrays of each batch scattered to the cluster as data rather
    than put in the task graph, and the results in the order of the tasks.

    At most ``in_flight`` batches are on the cluster at once: ``tasks`` may be a generator
    (tiles cut as they are sent), and the client collects the oldest batch before sending
    another, so neither side holds more than ``in_flight`` batches of inputs and results.
    """

    def run_batch(fn, part):
        return [fn(t) for t in part]

    def map_tasks(fn, tasks):
        pending, out, part = deque(), [], []

        def send(part):
            pending.append(client.submit(run_batch, fn, client.scatter(part), pure=False))
            while len(pending) >= max(int(in_flight), 1):
                out.extend(pending.popleft().result())

        for t in tasks:
            part.append(t)
            if len(part) == batch:
                send(part)
                part = []
        if part:
            send(part)
        while pending:
            out.extend(pending.popleft().result())
        return out

    return map_tasks


def tiled(client, tile_pix: int) -> dict:
    """The ``tile_pix``/``map_tasks`` keywords of the image functions (detection, aperture and
    PSF photometry, stacks): one pass in process without a client (no tiles), else the image's
    ``tile_pix`` tiles as Dask tasks, one tile per task.
    """
    if client is None:
        return {"tile_pix": None, "map_tasks": None}
    return {"tile_pix": tile_pix, "map_tasks": task_map(client, batch=1)}
