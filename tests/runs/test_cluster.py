"""catalog.runs.cluster: task batches on Dask come back in order, with bounded work in flight."""

from __future__ import annotations

import numpy as np
import pytest

from catalog.errors import GccatError
from catalog.runs.cluster import dask_client, map_chunks, task_map


def _square_sum(t):
    return float(np.sum(t**2))


class _CountingClient:
    """A real Dask client whose futures count how many of its submitted batches are not yet
    collected (the most at any time in ``peak``)."""

    def __init__(self, client):
        self.client, self.out, self.peak = client, 0, 0

    def scatter(self, data):
        return self.client.scatter(data)

    def submit(self, *args, **kw):
        fut = self.client.submit(*args, **kw)
        self.out += 1
        self.peak = max(self.peak, self.out)
        spy = self

        class _Future:
            def result(self):
                spy.out -= 1
                return fut.result()

        return _Future()


@pytest.mark.parametrize(("batch", "in_flight"), [(1, 2), (3, 4), (64, 16)])
def test_task_map_returns_results_in_order_with_bounded_batches(dask_scheduler, batch, in_flight):
    rng = np.random.default_rng(4)
    arrays = [rng.normal(size=rng.integers(1, 50)) for _ in range(41)]
    made = []

    def tasks():  # a generator, as the injection tiles are: cut as they are sent
        for a in arrays:
            made.append(len(made))
            yield a

    with dask_client(dask_scheduler) as client:
        spy = _CountingClient(client)
        got = task_map(spy, batch=batch, in_flight=in_flight)(_square_sum, tasks())
    assert got == [_square_sum(a) for a in arrays]
    assert len(made) == len(arrays)
    n_batches = -(-len(arrays) // batch)
    assert spy.peak <= min(in_flight, n_batches)
    assert spy.out == 0


def test_map_chunks_in_process_and_on_dask_agree(dask_scheduler):
    parts = [(np.arange(k, dtype=float),) for k in range(1, 9)]

    def fn(x, scale, shift):
        return x * scale + shift

    here = map_chunks(fn, parts, None, big=(2.0,), small=(1.0,))
    with dask_client(dask_scheduler) as client:
        there = map_chunks(fn, parts, client, big=(2.0,), small=(1.0,))
    for a, b in zip(here, there, strict=True):
        np.testing.assert_array_equal(a, b)


def test_unreachable_scheduler_is_a_one_line_error(monkeypatch):
    from catalog.runs import cluster

    monkeypatch.setattr(cluster, "SCHEDULER_TIMEOUT_S", 2.0)
    for address in ("tcp://127.0.0.1:1", "nonsense"):
        with pytest.raises(GccatError) as exc, dask_client(address):
            pass
        assert "--scheduler" in str(exc.value) and "\n" not in str(exc.value)
