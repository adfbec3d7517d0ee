"""``gccat demo``: a lake built from the bundled published tables, and a tour of it."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pyarrow as pa

from catalog.lake import Lake
from catalog.queries.connection import connect
from catalog.queries.search import run_sql

#: The bundled tables: (file, field, catalog name, ingest options, source).
DEMO_CATALOGS = [
    (
        "smacs0723_faisst2022_star_clusters.csv",
        "smacs0723",
        "faisst2022_star_clusters",
        {"mw_corrected": True},
        "Faisst et al. 2022, ApJL 941, L11, Table 1",
    ),
    (
        "abell2744_glass_sedz_galaxies.csv",
        "abell2744_glass",
        "glass_sedz_galaxies",
        {},
        "Dressler et al. 2023 (GLASS-JWST XVII), Table 1",
    ),
]
FIELDS_FILE = "cluster_fields.csv"

SAMPLE_QUERY = """\
SELECT source_id, round(mag_F150W, 2) AS mag_F150W,
       round(F150W_minus_F200W, 2) AS F150W_minus_F200W,
       round(F277W_minus_F444W, 2) AS F277W_minus_F444W
FROM (SELECT w.source_id, w.mag_F150W,
             w.mag_F150W - w.mag_F200W AS F150W_minus_F200W,
             w.mag_F277W - w.mag_F444W AS F277W_minus_F444W
      FROM photometry_wide w WHERE w.field_id = 'smacs0723')
WHERE mag_F150W IS NOT NULL
ORDER BY mag_F150W LIMIT 8"""

CROSS_FIELD_QUERY = """\
SELECT field_id, count(*) AS n_sources, round(median(mag_F444W), 2) AS median_mag_F444W,
       round(min(mag_F444W), 2) AS brightest_F444W
FROM photometry_wide GROUP BY field_id ORDER BY field_id"""


def bundled(name: str) -> Path:
    """Path of a bundled data file."""
    return Path(str(resources.files("catalog.data") / name))


LENS_FILES = [
    "as1063_lenstool_patch_bin4_x-arcsec-deflect.fits",
    "as1063_lenstool_patch_bin4_y-arcsec-deflect.fits",
]
FIT_QUERY = """\
SELECT count(*) AS n_clusters, round(median(age_gyr), 2) AS median_age_gyr,
       round(median(log_z), 2) AS median_log_z, round(median(av), 2) AS median_av,
       round(median(log_mass_living), 2) AS median_log_mass,
       round(median(reduced_chi2), 2) AS median_reduced_chi2
FROM fit_results WHERE field_id = 'smacs0723' AND object_id NOT LIKE 'stack:%'"""
LENS_QUERY = """\
SELECT model_id, quantity, derived, round(median(value), 3) AS median,
       round(quantile_cont(value, 0.05), 3) AS p05, round(quantile_cont(value, 0.95), 3) AS p95
FROM lens_map_pixels JOIN lens_models USING (model_id, quantity)
GROUP BY ALL ORDER BY model_id, quantity"""


@dataclass
class DemoResult:
    """What ``gccat demo`` built: the lake and the tables and runs it prints."""

    lake: Lake
    summary: pa.Table
    cross_field: pa.Table
    sample: pa.Table
    reports: list
    lens: pa.Table | None = None
    correlation: object | None = None
    truth: dict | None = None
    fits: pa.Table | None = None
    stack: dict | None = None
    images: dict | None = None


def _part(progress, lo: float, hi: float, what: str):
    """A progress callback for one step of the demo, mapped onto [lo, hi] of the whole."""
    if progress is None:
        return None

    def report(stage: str, fraction: float) -> None:
        progress(f"{what}: {stage}", lo + (hi - lo) * min(max(fraction, 0.0), 1.0))

    report("starting", 0.0)
    return report


def demo_inputs_dir(lake: Lake) -> Path:
    """Where the demo writes its simulated inputs and plots: beside the lake, never inside it
    (``demo_lake`` -> ``demo_lake_inputs``).
    """
    return lake.root.parent / f"{lake.root.name}_inputs"


def build_demo(root: str | os.PathLike, progress=None) -> DemoResult:
    """Create (or update) a demo lake at ``root`` from the bundled tables and query it.

    Running it again on the same lake changes nothing: every step is an idempotent ingest of
    the same bytes, and the runs (correlation, fits, detection) are made once.
    """
    from catalog.runs.correlation import run_correlation
    from catalog.runs.fits import run_fit_ssp, run_fit_stack
    from catalog.simulations import simulate_field_files, simulate_mosaic_files
    from ingest.catalog import ingest_catalog, ingest_fields
    from ingest.lens import ingest_lens_maps
    from ingest.pointsources import run_detection, run_photometry

    lake = Lake.create(root)
    inputs = demo_inputs_dir(lake)
    _part(progress, 0.0, 0.02, "fields")
    reports = [ingest_fields(lake, bundled(FIELDS_FILE), command="gccat demo")]
    for k, (fname, field_id, name, opts, _) in enumerate(DEMO_CATALOGS):
        reports.append(
            ingest_catalog(
                lake,
                bundled(fname),
                field_id=field_id,
                name=name,
                command="gccat demo",
                **opts,
                progress=_part(progress, 0.02 + 0.04 * k, 0.06 + 0.04 * k, name),
            )
        )
    reports.append(
        ingest_lens_maps(
            lake,
            [bundled(f) for f in LENS_FILES],
            field_id="as1063",
            model="lenstool_frapy",
            team="Lenstool",
            command="gccat demo",
            progress=_part(progress, 0.10, 0.18, "AS1063 lens model"),
        )
    )
    # A simulated cluster whose GCs trace kappa by a known law, for the correlation tour.
    _part(progress, 0.18, 0.2, "simulating a lensing cluster")
    sim = simulate_field_files(inputs, "simcluster", seed=1, overwrite=True)
    reports.append(
        ingest_lens_maps(
            lake,
            [sim.kappa_path],
            field_id="simcluster",
            model="truth",
            command="gccat demo",
            progress=_part(progress, 0.2, 0.25, "simulated kappa"),
        )
    )
    reports.append(
        ingest_catalog(
            lake,
            sim.catalog_path,
            field_id="simcluster",
            name="sim_gcs",
            command="gccat demo",
            progress=_part(progress, 0.25, 0.3, "simulated GCs"),
        )
    )
    live = lake.ingests()
    runs = [
        o
        for k, o in zip(live["kind"].to_pylist(), live["field_id"].to_pylist(), strict=True)
        if k == "correlation" and o == "simcluster"
    ]
    corr = None
    if not runs:  # the demo is idempotent: correlate once
        corr = run_correlation(
            lake,
            "simcluster",
            "truth",
            mask_path=sim.mask_path,
            plot_dir=inputs / "plots",
            progress=_part(progress, 0.3, 0.55, "GC-kappa correlation"),
            command="gccat demo",
        )
    # Stellar populations of the SMACS0723 clusters, one by one and stacked (once).
    kinds = {json.loads(o or "{}").get("run") for o in lake.ingests()["options"].to_pylist()}
    stack = None
    if "fit ssp" not in kinds:
        run_fit_ssp(
            lake,
            "field_id = 'smacs0723'",
            n_samples=50,
            progress=_part(progress, 0.55, 0.7, "SSP fits"),
            command="gccat demo",
        )
        stack = run_fit_stack(
            lake,
            "field_id = 'smacs0723'",
            progress=_part(progress, 0.7, 0.8, "stack fit"),
            command="gccat demo",
        )
    # From images to the lake: a synthetic two-band mosaic, detection and forced photometry.
    images = None
    if "detect" not in kinds:
        _part(progress, 0.8, 0.82, "simulating a mosaic")
        mos = simulate_mosaic_files(
            inputs, "mosaic", bands=("F150W", "F200W"), shape=(512, 512), n_points=250
        )
        det = run_detection(
            lake,
            list(mos["images"].values()),
            field_id="simmosaic",
            name="gc_detections",
            command="gccat demo",
            progress=_part(progress, 0.82, 0.9, "detection"),
        )
        phot = run_photometry(
            lake,
            mos["images"]["F150W"],
            band=None,
            field_id="simmosaic",
            catalog="gc_detections",
            psf_path=mos["psf"],
            command="gccat demo",
            progress=_part(progress, 0.9, 0.97, "photometry"),
        )
        images = {
            "n_true": mos["n_points"],
            "n_detected": det["n_detections"],
            "n_photometry": phot["n_rows"],
        }
    _part(progress, 0.97, 1.0, "queries")
    con = connect(lake)
    try:
        fits = run_sql(con, FIT_QUERY)
        lens = run_sql(con, LENS_QUERY)
        summary = run_sql(
            con, "SELECT field_id, name, z_cluster, n_detections, n_bands, median_mag_ab FROM field_summary"
        )
        cross = run_sql(con, CROSS_FIELD_QUERY)
        sample = run_sql(con, SAMPLE_QUERY)
    finally:
        con.close()
    return DemoResult(lake, summary, cross, sample, reports, lens, corr, sim.truth, fits, stack, images)
