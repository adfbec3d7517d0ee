"""gccat correlate --scheduler/--chunk: the bootstrap blocks of the box fits on Dask write the
same rows, to the bit, as the in-process run, whatever the block size."""

import json

import pyarrow.compute as pc
import pytest

from catalog.lake import Lake
from catalog.queries.connection import connect
from catalog.simulations import simulate_field_files
from ingest.catalog import ingest_catalog
from ingest.lens import ingest_lens_maps

from ..conftest import snapshot
from .conftest import run_rows

#: correlation_runs columns that name the run (ids, time, plot paths under the run id) or hold
#: the options with the scheduler and chunk; the options are compared without those two.
RUN_ONLY = ("created_at", "plots", "options")
TABLES = ("correlation_runs", "box_stats", "radial_profiles", "density_maps")


@pytest.fixture(scope="module")
def sim_lake(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dcorr")
    sim = simulate_field_files(tmp / "sim", "sim", shape=(160, 160), pixel_scale_arcsec=0.15, seed=3)
    lake = Lake.create(tmp / "lake")
    ingest_lens_maps(lake, [sim.kappa_path], field_id="sim", model="truth")
    ingest_catalog(lake, sim.catalog_path, field_id="sim", name="gcs")
    return lake, sim, tmp


def _base(lake, sim, tmp):
    return (
        "correlate", "--field", "sim", "--model", "truth", "--mask", sim.mask_path, "--box", "1.5",
        "--seed", "5", "--n-boot", "400", "--plots", tmp / "plots", "--lake", lake.root,
    )  # fmt: skip


def _run_ids(lake) -> set[str]:
    return {i for (i,) in connect(lake).sql("SELECT run_id FROM correlation_runs").fetchall()}


def _rows(lake, table: str, run_id: str):
    t = run_rows(lake, table, run_id)
    if table != "correlation_runs":
        return t, None
    options = json.loads(t["options"][0].as_py())
    recorded = {k: options.pop(k) for k in ("scheduler", "chunk")}
    return t.drop_columns(list(RUN_ONLY)), (options, recorded)


def test_correlate_on_dask_is_bit_identical_whatever_the_chunk(sim_lake, cli, dask_scheduler):
    lake, sim, tmp = sim_lake
    runs = (
        ((), ("in-process", 250)),
        (("--chunk", "7"), ("in-process", 7)),
        (("--scheduler", dask_scheduler, "--chunk", "7"), (dask_scheduler, 7)),
        (("--scheduler", dask_scheduler, "--chunk", "300"), (dask_scheduler, 300)),
    )
    got = []
    for extra, (scheduler, chunk) in runs:
        r = cli(*_base(lake, sim, tmp), *extra)
        assert r.exit_code == 0, r.output
        (run_id,) = _run_ids(lake) - {g[0] for g in got}
        rows = {t: _rows(lake, t, run_id) for t in TABLES}
        assert rows["correlation_runs"][1][1] == {"scheduler": scheduler, "chunk": chunk}
        got.append((run_id, rows))
    first = got[0][1]
    fit = first["correlation_runs"][0]
    assert fit.num_rows == 1 and pc.is_valid(fit["B_err"])[0].as_py() and fit["n_boxes"][0].as_py() > 50
    for _, rows in got[1:]:
        for t in TABLES:
            assert rows[t][0].num_rows and rows[t][0].equals(first[t][0]), t
        assert rows["correlation_runs"][1][0] == first["correlation_runs"][1][0]  # options, fits included


def test_correlate_with_an_unreachable_scheduler_writes_nothing(sim_lake, cli):
    lake, sim, tmp = sim_lake
    before = snapshot(lake)
    for extra in (("--scheduler", "tcp://127.0.0.1:1"), ("--scheduler", " "), ("--chunk", "0")):
        r = cli(*_base(lake, sim, tmp), *extra)
        assert r.exit_code == 2, (extra, r.output)
        assert len(r.output.strip().splitlines()) == 1 and extra[0] in r.output, r.output
    assert snapshot(lake) == before
