"""Scale test: a lake of N detections x 8 bands in F cluster fields, and the main jobs on it.

Measured
--------
One lake built from ``--fields`` (default 100) synthetic catalogs of N / F detections each
(default N = 10^7), 8 NIRCam bands in nJy, each field 2 arcmin across at its own sky position
(fields spread over both hemispheres and the polar caps). Then, on that lake:

- ``ingest``: the F ``ingest_catalog`` calls (Parquet sources), total seconds and rows/s;
- ``views``: ``connect()``, ``count(*)`` of ``photometry_wide`` and a per-field median
  ``mag_F150W`` over all fields;
- ``cone``: median and p90 of ``--cones`` 5" cones centred on real sources;
- ``xmatch``: all lake detections (read from the ``detections`` view) against an external
  catalog of the same size (90% of them jittered by 0.1", 10% unrelated) at 0.2";
- ``fit``: ``fit_ssp`` of the ``--fit-fields`` first fields (BC03 SSP grid at z = 0.39, no
  posterior draws), objects/s, and the time the whole lake would take at that rate;
- ``export``: ``detections`` (all N rows) to Parquet and one field's ``photometry_wide`` to FITS.

For each: wall time, the process's peak RSS so far, and at the end the lake's size on disk.

Baseline
--------
None in the same sense as the other scripts (it measures the whole system); each step prints
its own rate so that the figures scale to other N, and the component benchmarks
(``bench_ingest``, ``bench_views``, ``bench_cone``, ``bench_xmatch``, ``bench_ssp_speed``) hold
the baselines. The 10^9-detection plan in ``docs/design.md`` ("Scale") starts from these rates.

Run: ``.venv/bin/python benchmarks/bench_scale.py [--n 10000000] [--fields 100] [--fit-fields 1]``
(full size: about 1-2 h and ~10 GB of scratch disk on a 2-CPU machine).
"""

from __future__ import annotations

import argparse
import subprocess
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from _common import catalog, peak_rss_mb, scratch


def field_centres(n_fields: int) -> list[tuple[float, float]]:
    """Field centres on a Fibonacci sphere (|dec| <= 80): both hemispheres and polar caps."""
    k = np.arange(n_fields) + 0.5
    dec = np.degrees(np.arcsin(np.clip(1 - 2 * k / n_fields, -0.985, 0.985)))
    ra = (k * 137.50776405) % 360.0
    return list(zip(ra.tolist(), dec.tolist(), strict=True))


def step(name: str, t0: float, extra: str = "") -> None:
    print(
        f"  {name:<10s} {time.perf_counter() - t0:9.2f} s   peak RSS {peak_rss_mb() / 1024:6.2f} GB   {extra}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=10_000_000, help="detections in all (default 10^7)")
    ap.add_argument("--fields", type=int, default=100, help="cluster fields (default 100)")
    ap.add_argument("--cones", type=int, default=100, help="5-arcsec cones (default 100)")
    ap.add_argument("--fit-fields", type=int, default=1, help="fields fitted with fit_ssp (default 1)")
    args = ap.parse_args()
    from catalog.lake import Lake
    from catalog.queries.connection import connect
    from catalog.queries.export import export_table
    from catalog.queries.search import cone, run_sql, xmatch_tables
    from catalog.runs.fits import run_fit_ssp
    from ingest.catalog import ingest_catalog

    rng = np.random.default_rng(7)
    per = args.n // args.fields
    centres = field_centres(args.fields)
    print(f"bench_scale: {per * args.fields:,} detections x 8 bands in {args.fields} fields ({per:,} each)")
    with scratch("gccat-scale-") as root:
        lake = Lake.create(root / "lake")
        t0 = time.perf_counter()
        t_ingest = 0.0
        for k, centre in enumerate(centres):
            src = root / "src.parquet"
            pq.write_table(catalog(rng, per, centre, first_id=1), src)
            t1 = time.perf_counter()
            ingest_catalog(lake, src, field_id=f"f{k:03d}", name="gc", z=0.39)
            t_ingest += time.perf_counter() - t1
        step("ingest", t0, f"ingest calls {t_ingest:.1f} s, {per * args.fields / t_ingest:,.0f} detections/s "
             f"({8 * per * args.fields / t_ingest:,.0f} photometry rows/s)")  # fmt: skip

        t0 = time.perf_counter()
        con = connect(lake.root)
        n_wide = con.sql("SELECT count(*) FROM photometry_wide").fetchall()[0][0]
        med = con.sql(
            "SELECT field_id, median(mag_F150W) FROM photometry_wide GROUP BY ALL ORDER BY 1"
        ).fetchall()
        step("views", t0, f"{n_wide:,} wide rows, {len(med)} field medians")

        det = run_sql(con, "SELECT detection_id, ra, dec FROM detections")
        ra, dec = det["ra"].to_numpy(), det["dec"].to_numpy()
        pick = rng.choice(len(ra), args.cones, replace=False)
        cone(con, float(ra[pick[0]]), float(dec[pick[0]]), 5.0)  # warm-up
        times = []
        for i in pick:
            t1 = time.perf_counter()
            cone(con, float(ra[i]), float(dec[i]), 5.0)
            times.append(time.perf_counter() - t1)
        med_ms, p90_ms = 1e3 * np.median(times), 1e3 * np.percentile(times, 90)
        print(f"  {'cone':<10s} median {med_ms:7.2f} ms, p90 {p90_ms:7.2f} ms over {args.cones} cones")

        t0 = time.perf_counter()
        m = len(ra) - len(ra) // 10
        sigma = 0.1 / np.sqrt(2) / 3600.0
        dec_j = np.clip(dec[:m] + rng.normal(0, sigma, m), -90, 90)
        ra_j = (ra[:m] + rng.normal(0, sigma, m) / np.cos(np.radians(dec[:m]))) % 360.0
        other = rng.permutation(len(ra))[: len(ra) - m]
        ext = pa.table(
            {
                "ext_id": np.arange(len(ra)),
                "ra": np.r_[ra_j, ra[other] + 0.01],
                "dec": np.r_[dec_j, dec[other]],
            }
        )
        pairs = xmatch_tables(det, ext, 0.2)
        step("xmatch", t0, f'{pairs.num_rows:,} pairs within 0.2" ({len(ra):,} x {len(ra):,})')

        t0 = time.perf_counter()
        fields = ", ".join(f"'f{k:03d}'" for k in range(args.fit_fields))
        r = run_fit_ssp(lake, f"field_id IN ({fields})", n_samples=0)
        dt = time.perf_counter() - t0
        n_fit = int(r["n_objects"])
        step("fit", t0, f"{n_fit:,} objects, {n_fit / dt:,.0f} objects/s incl. grid; the whole lake at "
             f"that rate: {per * args.fields / (n_fit / dt) / 60:.1f} min")  # fmt: skip

        t0 = time.perf_counter()
        version = con.sql("SELECT lake_version FROM lake_info").fetchall()[0][0]
        export_table(run_sql(con, "SELECT * FROM detections"), root / "det.parquet", query="detections",
                     lake_root=str(lake.root), lake_version=version, source="detections")  # fmt: skip
        wide = run_sql(con, "SELECT * FROM photometry_wide WHERE field_id = 'f000'")
        export_table(wide, root / "f000.fits", query="photometry_wide f000", lake_root=str(lake.root),
                     lake_version=version, source="photometry_wide")  # fmt: skip
        step("export", t0, f"{len(ra):,} detections to Parquet, {wide.num_rows:,} wide rows to FITS")

        du = subprocess.run(["du", "-sb", str(lake.root)], capture_output=True, text=True).stdout.split()[0]
        size = int(du)
        print(
            f"  lake on disk: {size / 2**30:.2f} GiB ({size / (per * args.fields):.0f} bytes per detection)"
        )


if __name__ == "__main__":
    main()
