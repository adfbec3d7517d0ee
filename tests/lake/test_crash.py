"""Killed writers leave the previous version readable and nothing partial; concurrent ingests commit."""

import random
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from astropy.io import fits

from catalog.lake import Lake
from catalog.lake.schemas import TABLES
from catalog.queries.connection import connect
from catalog.runs.fits import run_fit_ssp
from ingest.catalog import ingest_catalog, ingest_fields
from ingest.demo import bundled
from ingest.lens import ingest_lens_maps

from ..conftest import FIELDS
from .crash_children import Child, forkserver

AS1063 = [bundled(f"as1063_lenstool_patch_bin4_{a}-arcsec-deflect.fits") for a in "xy"]
BANDS = ["F090W", "F115W", "F150W", "F200W", "F277W", "F356W", "F410M", "F444W"]
CHILD = (
    "import sys; from catalog.lake import Lake; from ingest.catalog import ingest_catalog; "
    "ingest_catalog(Lake(sys.argv[1]), sys.argv[2], field_id=sys.argv[3], name=sys.argv[4]); "
    "print('committed')"
)


def big_catalog(path, n, seed):
    rng = np.random.default_rng(seed)
    cols = {"id": np.arange(n), "ra": rng.uniform(342.1, 342.3, n), "dec": rng.uniform(-44.6, -44.5, n)}
    for b in BANDS:
        cols[f"flux_{b}"] = rng.lognormal(3, 1, n)
        cols[f"fluxerr_{b}"] = rng.uniform(0.5, 2, n)
    pq.write_table(pa.table(cols), path)
    return path


def counts(lake):
    con = connect(lake)
    return con.execute(
        "SELECT (SELECT count(*) FROM detections), (SELECT count(*) FROM photometry)"
    ).fetchall()[0]


def spawn(lake, path, field, name):
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(lake.root), str(path), field, name],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def fingerprint(lake, as_of=None) -> dict[tuple[str, str], int]:
    """Rows per (view, ingest_id) that queries see at ``as_of`` (default: the latest)."""
    con = connect(lake, as_of=as_of)
    views = [t for t in TABLES if t != "ingests"] + ["live_ingests"]
    sql = " UNION ALL ".join(
        f"SELECT '{v}' AS v, ingest_id, count(*) AS n FROM {v} GROUP BY ALL" for v in views
    )
    return {(v, i): n for v, i, n in con.execute(sql).fetchall()}


def small_lens_maps(dest: Path, variant: str) -> list[str]:
    """The central 50 x 50 pixels of the AS1063 deflection maps (small, so a lens-map ingest
    takes a fraction of a second); each ``variant`` is another file (sha256) of the same maps."""
    dest.mkdir()
    out = []
    for src in AS1063:
        with fits.open(src) as h:
            hdr = h[0].header.copy()
            hdr["CRPIX1"] -= 100
            hdr["CRPIX2"] -= 100
            hdr["GCCATVAR"] = (variant, "test copy")
            fits.PrimaryHDU(h[0].data[100:150, 100:150], hdr).writeto(dest / Path(src).name)
        out.append(str(dest / Path(src).name))
    return out


N_KILLS = 104  # 26 per operation
OPS = ("catalog", "replace", "lens_map", "fit_ssp")


@pytest.mark.slow
def test_killing_writers_at_random_moments_shows_all_or_nothing(tmp_path):
    """SIGKILL catalog ingests (new and --replace), lens-map ingests and SSP fits at random
    moments of their run: the lake is at the old version or the next, shows the operation's
    rows all or none, reads every earlier version as before, and doctor cleans up fully."""
    t_start = time.perf_counter()
    lake = Lake.create(tmp_path / "lake")
    ingest_fields(lake, FIELDS)
    ingest_catalog(lake, big_catalog(tmp_path / "base.parquet", 40, 11), field_id="as1063", name="base")
    # A coarse grid (3 A_V values) keeps the fits short; this first fit builds and caches it.
    run_fit_ssp(lake, "catalog = 'base'", n_samples=5, n_av=3)
    new = str(big_catalog(tmp_path / "new.parquet", 3_000, 12))
    reps = [str(big_catalog(tmp_path / f"rep{i}.parquet", 1_500 + 500 * i, 13 + i)) for i in (0, 1)]
    lenses = [small_lens_maps(tmp_path / f"lens{v}", v) for v in "AB"]
    ingest_catalog(lake, reps[0], field_id="as1063", name="rep")
    ingest_lens_maps(lake, lenses[0], field_id="as1063", model="lens")
    live_variant = {"replace": 0, "lens_map": 0}
    fps = {lake.version(): fingerprint(lake)}
    shapes: dict[tuple[str, int], dict[str, int]] = {}

    def ingest_shape(fp, ingest_id):
        return {v: n for (v, i), n in fp.items() if i == ingest_id}

    live = lake.ingests()  # the shapes of variant 0 of the replaced catalog and lens model
    for name, op in (("rep", "replace"), ("lens", "lens_map")):
        shapes[(op, 0)] = ingest_shape(
            fps[lake.version()], live.filter(pc.field("name") == name)["ingest_id"][0].as_py()
        )

    def child_for(op, k):
        if op == "catalog":
            return ("catalog", (new, "as1063", f"new{k}")), {}, 0
        if op == "replace":
            v = 1 - live_variant[op]
            return ("catalog", (reps[v], "as1063", "rep")), {"replace": True}, v
        if op == "lens_map":
            v = 1 - live_variant[op]
            return ("lens_map", (lenses[v], "as1063", "lens")), {"replace": True}, v
        return ("fit_ssp", ("catalog = 'base'",)), {"n_samples": 5, "n_av": 3}, 0

    def check_after(op, variant, old_v):
        """The checks after a child ended (killed or not); whether it committed."""
        v = lake.version()
        assert v in (old_v, old_v + 1)
        committed = v == old_v + 1
        cleaned = lake.doctor(clean=True)
        assert (lake.doctor() if cleaned else cleaned) == {}
        # Earlier versions read as before (after doctor --clean too): the one before this
        # operation every time, all of them at the end.
        assert fingerprint(lake, as_of=old_v) == fps[old_v]
        if not committed:
            return False
        fp = fingerprint(lake)
        ids = set(lake.read("ingests", version=v)["ingest_id"].to_pylist()) - set(
            lake.read("ingests", version=old_v)["ingest_id"].to_pylist()
        )
        assert len(ids) == 1
        new_id = ids.pop()
        row = lake.read("ingests", version=v).filter(pc.field("ingest_id") == new_id).to_pylist()[0]
        gone = set(row["supersedes"])
        if op in ("replace", "lens_map"):
            assert len(gone) == 1
            live_variant[op] = variant
        else:
            assert not gone
        # All of the new ingest's rows, all earlier live rows but the superseded ingest's.
        assert {key: n for key, n in fp.items() if key[1] != new_id} == {
            key: n for key, n in fps[old_v].items() if key[1] not in gone
        }
        shape = shapes.setdefault((op, variant), ingest_shape(fp, new_id))
        assert ingest_shape(fp, new_id) == shape
        fps[v] = fp
        return True

    # Two runs of each operation to the end: their durations, over which kill times are drawn
    # (updated with every run that ends before its kill: the machine's load varies; the
    # margin past the median lets some kills land after the commit).
    ctx = forkserver()
    durations: dict[str, list[float]] = {op: [] for op in OPS}
    for k in range(2):
        for op in OPS:
            (name, args), kwargs, variant = child_for(op, f"m{k}")
            old_v = lake.version()
            child = Child(ctx, name, lake.root, *args, **kwargs)
            child.wait_for("go")
            assert child.finish(), child.messages
            durations[op].append(child.duration())
            assert check_after(op, variant, old_v)
    rng = random.Random(20261121)
    kills, committed = 0, {op: 0 for op in OPS}
    for k in range(N_KILLS):
        op = OPS[k % len(OPS)]
        (name, args), kwargs, variant = child_for(op, k)
        old_v = lake.version()
        child = Child(ctx, name, lake.root, *args, **kwargs)
        child.wait_for("go")
        time.sleep(rng.uniform(0, 1.5 * statistics.median(durations[op])))
        child.kill()
        kills += 1
        reported = child.finish()
        assert child.proc.exitcode in (0, -signal.SIGKILL), child.messages  # no child failed
        if child.proc.exitcode == 0:
            durations[op].append(child.duration())
        did = check_after(op, variant, old_v)
        assert did or not reported  # a child that reported its commit has committed
        committed[op] += did
    for v, fp in fps.items():
        assert fingerprint(lake, as_of=v) == fp, v
    assert lake.doctor() == {}
    print(
        f"{kills} kills ({', '.join(f'{op} {N_KILLS // len(OPS)}' for op in OPS)}): "
        f"{sum(committed.values())} had committed ({committed}); median run times "
        f"{ {op: round(statistics.median(t), 2) for op, t in durations.items()} } s; "
        f"{time.perf_counter() - t_start:.0f} s in all"
    )


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
    assert con.execute("SELECT count(DISTINCT detection_id) FROM detections").fetchall()[0][0] == 50_000
