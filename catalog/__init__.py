"""gccat: a catalog lake of globular clusters in JWST/HST lensing fields.

The public Python API: everything a ``gccat`` command does is one call of a function here
(the README's "Python API" section runs these)::

    import catalog
    lake = catalog.init_lake("lake")                                  # gccat init
    catalog.ingest_catalog(lake, "clusters.csv", field_id="smacs0723", name="faisst2022")
    con = catalog.connect(lake)                                       # views and UDFs, read-only
    catalog.run_sql(con, "SELECT count(*) FROM detections")           # gccat sql
    catalog.cone(con, 110.8, -73.45, 5.0)                             # gccat cone

Names are resolved on first use, so ``import catalog`` costs nothing beyond itself. The
layers underneath (see ``docs/design.md``): ``catalog.cli`` -> ``ingest`` -> ``catalog.runs``
and ``catalog.plots`` -> ``catalog.queries`` -> ``catalog.lake`` -> the science packages
(``catalog.sed``, ``catalog.images``, ``catalog.lensing``, ``catalog.gckappa``,
``catalog.simulations``, ``catalog.sky``, ``catalog.units``, ``catalog.bands``) ->
``catalog.checks``/``catalog.constants`` -> ``catalog.errors``. This module sits beside the
CLI, at the top, so it may name ``ingest``.
"""

from __future__ import annotations

import importlib

#: public name -> (module, attribute): the one table of the API.
_API = {
    # the lake
    "Lake": ("catalog.lake", "Lake"),
    "open_lake": ("catalog.lake", "open_lake"),
    "init_lake": ("catalog.lake", "init_lake"),
    "doctor": ("catalog.lake", "doctor"),
    "maintain_lake": ("catalog.lake.maintain", "maintain_lake"),
    # ingest (gccat ingest ...)
    "ingest_catalog": ("ingest.catalog", "ingest_catalog"),
    "ingest_fields": ("ingest.catalog", "ingest_fields"),
    "ingest_bands": ("ingest.catalog", "ingest_bands"),
    "ingest_lens_maps": ("ingest.lens", "ingest_lens_maps"),
    "ingest_multiple_images": ("ingest.lenstool", "ingest_multiple_images"),
    "ingest_cluster_members": ("ingest.lenstool", "ingest_cluster_members"),
    "read_positions": ("ingest.catalog", "read_positions"),
    # queries
    "connect": ("catalog.queries.connection", "connect"),
    "run_sql": ("catalog.queries.search", "run_sql"),
    "cone": ("catalog.queries.search", "cone"),
    "xmatch": ("catalog.queries.search", "xmatch_tables"),
    "export": ("catalog.queries.export", "export_lake"),
    "export_table": ("catalog.queries.export", "export_table"),
    "table_summary": ("catalog.queries.inventory", "table_summary"),
    "materialize_live": ("catalog.queries.live", "materialize_live"),
    # runs
    "fit_ssp": ("catalog.runs.fits", "run_fit_ssp"),
    "fit_stack": ("catalog.runs.fits", "run_fit_stack"),
    "fit_sfh": ("catalog.runs.fits", "run_fit_sfh"),
    "fit_nonparam": ("catalog.runs.nonparam", "run_fit_nonparam"),
    "build_grid": ("catalog.runs.fits", "build_grid_command"),
    "correlate": ("catalog.runs.correlation", "run_correlation"),
    "source_plane_crossmatch": ("catalog.runs.sourceplane", "run_source_plane_crossmatch"),
    "counter_images": ("catalog.runs.sourceplane", "run_counter_images"),
    "critical_curves": ("catalog.runs.sourceplane", "run_critical_curves"),
    "detect": ("ingest.pointsources", "run_detection"),
    "photometry": ("ingest.pointsources", "run_photometry"),
    "psf_photometry": ("ingest.pointsources", "run_psf_photometry"),
    "inject": ("ingest.pointsources", "run_injection"),
    "psf_build": ("ingest.psf", "run_psf_build"),
    "psf_match": ("ingest.psf", "run_psf_match"),
    "stack_images": ("ingest.stacks", "run_stack"),
    "simulate_size_limits": ("ingest.stacks", "run_sizes"),
    "demo": ("ingest.demo", "build_demo"),
    # plots
    "plot_sed": ("catalog.plots", "plot_sed"),
    "plot_chi2map": ("catalog.plots", "plot_chi2map"),
    "plot_sfh": ("catalog.plots", "plot_sfh"),
    "plot_nonparam": ("catalog.plots", "plot_nonparam"),
    # lensing
    "to_source_plane": ("catalog.lensing.sourceplane", "to_source_plane"),
    "solve_lens_equation": ("catalog.lensing.sourceplane", "solve_lens_equation"),
    # errors
    "GccatError": ("catalog.errors", "GccatError"),
}

__all__ = sorted(_API)


def __getattr__(name: str):
    try:
        module, attr = _API[name]
    except KeyError:
        raise AttributeError(f"module 'catalog' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value  # resolved once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
