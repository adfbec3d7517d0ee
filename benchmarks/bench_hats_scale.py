"""Benchmark ``gccat xmatch --engine lsdb`` against a HATS survey too large for memory.

Measured
--------
A simulated survey of N sources (default N = 10^8) uniform in ``--area`` deg^2 (default 1000:
10^5 per deg^2, the density of a deep wide survey) is written in chunks of ``--chunk-rows`` rows
as Parquet files, each chunk from its own seeded generator, so no step holds the survey in
memory; hats-import (Dask, 2 workers) turns them into a HATS collection: catalog, partitions of
at most ``--partition-rows`` rows, and a 5 arcsec margin. The left side is M detections (default
10^5) spread over the whole survey: 90% survey sources jittered by 0.1 arcsec rms (regenerated
from their chunks), 10% unrelated. Timed: :func:`catalog.queries.hatsio.xmatch_lsdb` (LSDB's
``crossmatch``, partition by partition on Dask), once, in a spawned child whose resident set is
sampled every 5 ms; its peak is shown above the child's resident set before the call (imports
done, detections loaded), next to the survey's size in memory.

Baseline
--------
The in-process :func:`catalog.queries.search.xmatch_tables` of all detections against each
survey chunk in turn, regenerated from its generator (so memory stays bounded here too): every
survey source is in one chunk, so the union of the chunks' pairs is the whole match, and its
pair set (detection row, survey id) must be identical to LSDB's. The survey's in-memory size is
printed beside LSDB's peak.

Run: ``.venv/bin/python benchmarks/bench_hats_scale.py [--n N] [--m M] [--area DEG2]``
(needs ``pip install -e ".[bench]"`` for hats-import; full size: ~9 GB of scratch disk).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from _common import FIELDS, add_survey_options, line, positions, sampled_rss, scratch, survey_pairs, timed

from catalog.queries.hatsio import open_hats, xmatch_lsdb
from catalog.queries.search import xmatch_tables

SEED = 11


def chunk(k: int, rows: int, first_sid: int, centre, side_arcmin: float) -> pa.Table:
    """Survey chunk ``k``: ``rows`` sources from their own generator (the same table every call)."""
    rng = np.random.default_rng([SEED, 0, k])
    ra, dec = positions(rng, rows, centre, side_arcmin)
    return pa.table(
        {
            "sid": np.arange(first_sid, first_sid + rows, dtype=np.int64),
            "ra": ra,
            "dec": dec,
            "mag": rng.uniform(18, 27, rows).astype(np.float32),
        }
    )


def chunk_rows(n: int, per: int) -> list[int]:
    return [min(per, n - lo) for lo in range(0, n, per)]


def write_chunks(d: Path, n: int, per: int, centre, side: float) -> list[str]:
    files, first = [], 0
    for k, rows in enumerate(chunk_rows(n, per)):
        path = d / f"chunk_{k:05d}.parquet"
        pq.write_table(chunk(k, rows, first, centre, side), path)
        files.append(str(path))
        first += rows
    return files


def build_hats(files: list[str], out: Path, partition_rows: int) -> None:
    from dask.distributed import Client
    from hats_import.collection.arguments import CollectionArguments
    from hats_import.pipeline import pipeline_with_client

    args = (
        CollectionArguments(
            output_artifact_name="survey",
            output_path=str(out),
            tmp_dir=str(out / "tmp"),
            progress_bar=False,
        )
        .catalog(
            input_file_list=files,
            file_reader="parquet",
            ra_column="ra",
            dec_column="dec",
            pixel_threshold=partition_rows,
        )
        .add_margin(margin_threshold=5.0, is_default=True)
    )
    with Client(n_workers=2, threads_per_worker=1, memory_limit="6GiB", dashboard_address=None) as client:
        pipeline_with_client(args, client)


def detections(n: int, per: int, m: int, centre, side: float) -> pa.Table:
    """M detections: survey sources jittered by 0.1" rms (90%), and unrelated positions."""
    rng = np.random.default_rng([SEED, 1])
    m_in = m - m // 10
    pick = np.sort(rng.choice(n, m_in, replace=False))
    ra, dec, first = [], [], 0
    for k, rows in enumerate(chunk_rows(n, per)):
        sel = pick[(pick >= first) & (pick < first + rows)] - first
        if sel.size:
            t = chunk(k, rows, first, centre, side)
            ra.append(t["ra"].to_numpy()[sel])
            dec.append(t["dec"].to_numpy()[sel])
        first += rows
    ra, dec = np.concatenate(ra), np.concatenate(dec)
    sigma = 0.1 / np.sqrt(2) / 3600.0
    ra_u, dec_u = positions(rng, m - m_in, centre, side)
    lra = np.r_[(ra + rng.normal(0, sigma, m_in) / np.cos(np.radians(dec))) % 360.0, ra_u]
    ldec = np.r_[dec + rng.normal(0, sigma, m_in), dec_u]
    return pa.table({"i": np.arange(m), "ra": lra, "dec": ldec})


def _lsdb_child(q, left_path: str, hats_path: str, radius: float, out_path: str) -> None:
    left = pq.read_table(left_path)
    xmatch_lsdb(left.slice(0, 100), hats_path, radius)  # imports and LSDB's first-call costs
    with sampled_rss() as rss:
        dt, res = timed(xmatch_lsdb, left, hats_path, radius)
    np.save(out_path, survey_pairs(res))
    q.put((dt, rss["peak"] - rss["start"], rss["start"]))


def du_gb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_survey_options(ap, n=100_000_000, m=100_000, area=1000.0, partition_rows=1_000_000)
    ap.add_argument("--chunk-rows", type=int, default=2_000_000, help="rows per input chunk")
    args = ap.parse_args()
    centre = FIELDS[args.field]
    side = np.sqrt(args.area) * 60.0
    print(
        f"bench_hats_scale: {args.m:,} detections x a HATS survey of {args.n:,} sources in "
        f"{args.area:g} deg^2 around {args.field}, radius {args.radius} arcsec"
    )
    with scratch("gccat-bench-hats-scale-") as d:
        (d / "in").mkdir()
        t_gen, files = timed(write_chunks, d / "in", args.n, args.chunk_rows, centre, side)
        line(f"survey written in {len(files)} Parquet chunks", t_gen)
        line("  their size on disk", du_gb(d / "in"), "GB")
        t_build, _ = timed(build_hats, files, d, args.partition_rows)
        hats_path = d / "survey"
        parts = open_hats(hats_path).get_healpix_pixels()
        line(f'hats-import: catalog of {len(parts)} partitions + 5" margin', t_build)
        for f in files:
            Path(f).unlink()
        line("  the HATS collection on disk", du_gb(hats_path), "GB")
        line("  the survey in memory (Arrow)", args.n * (8 + 8 + 8 + 4) / 2**20, "MiB")
        left = detections(args.n, args.chunk_rows, args.m, centre, side)
        left_path = str(d / "left.parquet")
        pq.write_table(left, left_path)
        ctx = mp.get_context("spawn")  # LSDB's OpenMP forbids a fork
        q = ctx.Queue()
        out_path = str(d / "lsdb_pairs.npy")
        p = ctx.Process(target=_lsdb_child, args=(q, left_path, str(hats_path), args.radius, out_path))
        p.start()
        p.join()
        if p.exitcode != 0:
            raise SystemExit(f"the LSDB crossmatch failed in its child (exit code {p.exitcode})")
        t_lsdb, peak, base = q.get(timeout=10)
        got = np.load(out_path)
        line("xmatch --engine lsdb (LSDB crossmatch, Dask)", t_lsdb)
        line("  rows/s of the survey", args.n / t_lsdb, "rows/s")
        line("  peak RSS above start", peak, "MiB")
        line("  RSS at start (imports, detections)", base, "MiB")
        print(f"  {len(got):,} pairs for {args.m:,} detections")
        # the check: every detection in process against each regenerated chunk in turn (each
        # survey source is in one chunk, so the union of the chunks' pairs is the full match)
        xmatch_tables(left.slice(0, 10), chunk(0, 1000, 0, centre, side), args.radius)  # compiled
        t_base, ref, first = 0.0, [], 0
        for k, rows in enumerate(chunk_rows(args.n, args.chunk_rows)):
            t = chunk(k, rows, first, centre, side)
            dt, res = timed(xmatch_tables, left, t, args.radius)
            t_base += dt
            ref.append(survey_pairs(res))
            first += rows
        ref = np.concatenate(ref)
        ref = ref[np.lexsort((ref[:, 1], ref[:, 0]))]
        print(
            f"baseline: xmatch_tables of all {args.m:,} detections against each of the "
            f"{len(files)} chunks in turn ({t_base:.1f} s matching, chunks regenerated apart)"
        )
        same = np.array_equal(got, ref)
        print(f"  {len(ref):,} pairs; identical to LSDB's: {'yes' if same else 'no'}")
        if not same:
            raise SystemExit("the LSDB pairs differ from the in-process match")


if __name__ == "__main__":
    main()
