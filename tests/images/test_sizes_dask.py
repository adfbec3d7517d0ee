"""gccat sizes --scheduler: every cell (a size, or the point sources, at one mu_t) a Dask task
with its own generator state; the rows are the same, to the bit, as in process."""

from __future__ import annotations

import json

import pytest
from astropy.io import fits

from catalog.images import make_psf
from catalog.lake import Lake
from catalog.queries.connection import connect
from ingest.catalog import ingest_fields
from tests.conftest import FIELDS, snapshot
from tests.runs.conftest import run_rows

FIELD = "as1063"


@pytest.fixture(scope="module")
def psf_lake(tmp_path_factory):
    out = tmp_path_factory.mktemp("dsizes")
    header = fits.Header()
    header["PIXSCALE"] = 0.03
    psf = out / "psf.fits"
    fits.PrimaryHDU(make_psf(3.0, size=25, kind="gaussian"), header=header).writeto(psf)
    lake = Lake.create(out / "lake")
    ingest_fields(lake, FIELDS)
    return lake, psf


def _base(lake, psf):
    return (
        "sizes", "--field", FIELD, "--band", "F150W", "--psf", psf, "--noise", "0.5", "--flux", "60",
        "--sizes", "10,40,160", "--mu-t", "1,2", "--n-sim", "30", "--seed", "9", "--lake", lake.root,
    )  # fmt: skip


def _ingests(lake) -> list[str]:
    return [i for (i,) in connect(lake).sql("SELECT DISTINCT ingest_id FROM size_limit_runs").fetchall()]


def test_sizes_on_dask_is_bit_identical(psf_lake, cli, dask_scheduler):
    lake, psf = psf_lake
    got = []
    for extra in ((), ("--scheduler", dask_scheduler)):
        known = set(_ingests(lake))
        r = cli(*_base(lake, psf), *extra)
        assert r.exit_code == 0, r.output
        (ingest_id,) = set(_ingests(lake)) - known
        runs = [ingest_id, f"{ingest_id}-1"]  # mu_t 1 and 2
        got.append({t: [run_rows(lake, t, i) for i in runs] for t in ("size_limit_runs", "size_limit_sizes")})
        options = connect(lake).sql("SELECT options FROM ingests WHERE ingest_id = ?", params=[ingest_id])
        assert json.loads(options.fetchall()[0][0])["scheduler"] == (extra[1] if extra else "in-process")
    for table, runs in got[0].items():
        for run_a, run_b in zip(runs, got[1][table], strict=True):
            assert run_a.num_rows and run_a.equals(run_b), table
    sizes = got[0]["size_limit_sizes"][0]
    assert sizes.num_rows == 3 and min(sizes["n_ok"].to_pylist()) > 20
    # the two mu_t differ: the grid's cells are not one cell repeated
    assert not got[0]["size_limit_sizes"][1]["fwhm_mean_pix"].equals(sizes["fwhm_mean_pix"])


def test_sizes_with_an_unreachable_scheduler_writes_nothing(psf_lake, cli):
    lake, psf = psf_lake
    before = snapshot(lake)
    for address in ("tcp://127.0.0.1:1", " "):
        r = cli(*_base(lake, psf), "--scheduler", address)
        assert r.exit_code == 2, r.output
        assert len(r.output.strip().splitlines()) == 1 and "--scheduler" in r.output, r.output
    assert snapshot(lake) == before
