"""Shared fixtures: fresh lakes, a demo lake built from the bundled tables, a CLI runner."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from catalog.cli.app import app
from catalog.lake import Lake
from ingest.demo import build_demo, bundled

SMACS = bundled("smacs0723_faisst2022_star_clusters.csv")
GLASS = bundled("abell2744_glass_sedz_galaxies.csv")
FIELDS = bundled("cluster_fields.csv")


@pytest.fixture
def lake(tmp_path) -> Lake:
    return Lake.create(tmp_path / "lake")


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    """The demo lake (built once per session; tests must not write to it)."""
    return build_demo(tmp_path_factory.mktemp("demo") / "lake")


def snapshot(lake: Lake) -> dict:
    """Every table's Delta version and file list, and every file under the lake root."""
    tables = {
        name: (lake.delta(name).version(), sorted(lake.files(name)))
        for name in ("ingests", "fields", "bands", "detections", "photometry")
    }
    files = sorted(
        str(p.relative_to(lake.root))
        for p in Path(lake.root).rglob("*")
        if p.is_file() and p.name != ".gccat-writer.lock"
    )
    return {"tables": tables, "files": files}


class Cli:
    def __init__(self):
        self.runner = CliRunner()

    def __call__(self, *args: str):
        return self.runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def cli() -> Cli:
    return Cli()


@pytest.fixture(scope="session")
def dask_scheduler():
    """The address of a one-worker, one-thread Dask cluster of separate processes (tasks and
    their arguments are pickled, as on a real cluster).
    """
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        yield cluster.scheduler_address
