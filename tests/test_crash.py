"""A killed ingest leaves the previous version readable; concurrent ingests both commit."""

import random
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from catalog.lake import Lake
from catalog.views import connect
from ingest.catalog import ingest_catalog

from .conftest import SMACS

BANDS = ["F090W", "F115W", "F150W", "F200W", "F277W", "F356W", "F410M", "F444W"]
CHILD = ("import sys; from catalog.lake import Lake; from ingest.catalog import ingest_catalog; "
         "ingest_catalog(Lake(sys.argv[1]), sys.argv[2], field_id=sys.argv[3], name=sys.argv[4]); "
         "print('committed')")


def big_catalog(path, n, seed):
    rng = np.random.default_rng(seed)
    cols = {"id": np.arange(n), "ra": rng.uniform(342.1, 342.3, n),
            "dec": rng.uniform(-44.6, -44.5, n)}
    for b in BANDS:
        cols[f"flux_{b}"] = rng.lognormal(3, 1, n)
        cols[f"fluxerr_{b}"] = rng.uniform(0.5, 2, n)
    pq.write_table(pa.table(cols), path)
    return path


def counts(lake):
    con = connect(lake)
    return con.execute("SELECT (SELECT count(*) FROM detections), "
                       "(SELECT count(*) FROM photometry)").fetchall()[0]


def spawn(lake, path, field, name):
    return subprocess.Popen([sys.executable, "-c", CHILD, str(lake.root), str(path), field, name],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_killing_an_ingest_at_random_moments_never_shows_partial_rows(tmp_path):
    lake = Lake.create(tmp_path / "lake")
    ingest_catalog(lake, SMACS, field_id="smacs0723", name="faisst2022")
    n = 150_000
    path = big_catalog(tmp_path / "big.parquet", n, 1)
    rng = random.Random(20261121)
    base_det, base_phot = counts(lake)
    outcomes = []
    for k in range(6):
        version = lake.version()
        proc = spawn(lake, path, "as1063", f"big{k}")
        time.sleep(rng.uniform(0.5, 6.0))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        committed = "committed" in out
        det, phot = counts(lake)
        extra = (det - base_det) // n
        # Either the whole catalog is visible, or none of it: never a partial write.
        assert (det - base_det, phot - base_phot) == (extra * n, extra * n * len(BANDS))
        assert lake.version() in (version, version + 1)
        visible = lake.version() == version + 1
        if committed:
            assert visible
        base_det, base_phot = det, phot
        outcomes.append(visible)
    # The lake still takes writes and reads consistently afterwards.
    found = lake.doctor(clean=True)
    assert counts(lake) == (base_det, base_phot)
    assert lake.doctor() == {}
    print("killed ingests committed:", outcomes, "orphans cleaned:", found)


@pytest.mark.slow
def test_two_ingests_at_once_both_commit(tmp_path):
    lake = Lake.create(tmp_path / "lake")
    a = big_catalog(tmp_path / "a.parquet", 30_000, 2)
    b = big_catalog(tmp_path / "b.parquet", 20_000, 3)
    procs = [spawn(lake, a, "as1063", "a"), spawn(lake, b, "as1063", "b")]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    assert lake.version() == 2
    assert counts(lake) == (50_000, 50_000 * len(BANDS))
    con = connect(lake)
    assert con.execute("SELECT count(DISTINCT detection_id) FROM detections").fetchall()[0][0] \
        == 50_000
