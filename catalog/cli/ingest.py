"""``gccat ingest ...``: thin typer wrappers over :mod:`ingest.catalog`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from catalog.cli.util import (
    DEFAULT_LAKE,
    LakeOpt,
    StageProgress,
    command,
    console,
    err_console,
    new_app,
    open_lake,
    plural,
)

if TYPE_CHECKING:  # the ingest code (astropy, healpy) is imported by the commands that run it
    from ingest.catalog import IngestReport

app = new_app("""Load catalogs, fields, bands and lens maps into the lake.

\b
Examples:
  gccat ingest fields cluster_fields.csv
  gccat ingest catalog smacs0723_faisst2022_star_clusters.csv --field smacs0723 --name faisst2022 \\
      --mw-corrected
  gccat ingest lens-map simf/simcluster_kappa.fits --field simcluster --model truth
""")


def _report(r: IngestReport, what: str) -> None:
    for w in r.warnings:
        err_console.print(f"gccat: warning: {w}", markup=False, highlight=False)
    if r.skipped:
        console.print(
            f"{what}: already ingested as {r.ingest_id} (same file and options); "
            "nothing to do. "
            f"Lake version {r.lake_version}."
        )
        return
    extra = (
        f", {plural(r.n_photometry, 'photometry row')} in {plural(len(r.bands), 'band')}"
        if r.n_photometry
        else ""
    )
    sup = f", superseding {', '.join(r.superseded)}" if r.superseded else ""
    console.print(
        f"{what}: {plural(r.n_rows, 'row')}{extra} committed as ingest {r.ingest_id}{sup}; "
        f"lake version {r.lake_version}."
    )


@command(app, "catalog")
def catalog_cmd(
    file: Annotated[Path, typer.Argument(help="CSV, ECSV, FITS, VOTable or Parquet catalog.")],
    field: Annotated[str, typer.Option("--field", help="Field id (e.g. smacs0723).")],
    name: Annotated[str, typer.Option("--name", help="Catalog name, unique in the field.")],
    mapping: Annotated[
        Path | None,
        typer.Option("--mapping", help="TOML column mapping (default: inferred from column names)."),
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Supersede an earlier ingest of this name, in one commit.")
    ] = False,
    z: Annotated[
        float | None, typer.Option("--z", help="Redshift for sources without one in the catalog.")
    ] = None,
    flux_unit: Annotated[
        str,
        typer.Option(
            "--flux-unit",
            help="Unit of flux columns that declare none (astropy, case-sensitive): "
            "nJy, uJy, mJy, Jy, '10 nJy', 'erg/(s cm2 Hz)'.",
        ),
    ] = "nJy",
    mag_system: Annotated[
        str | None,
        typer.Option(
            "--mag-system",
            help="System of magnitude columns that do not say theirs (unit 'mag' or "
            "none): AB. Vega and ST also need ab_offset per band in a "
            "--mapping.",
        ),
    ] = None,
    mw_corrected: Annotated[
        bool, typer.Option("--mw-corrected", help="Fluxes are already corrected for Milky Way extinction.")
    ] = False,
    lake: LakeOpt = DEFAULT_LAKE,
):
    """Ingest a catalog of sources and their multi-band photometry (fluxes stored in nJy).

    \b
    Examples:
      gccat ingest catalog smacs0723_faisst2022_star_clusters.csv --field smacs0723 --name faisst2022 \\
          --mw-corrected
      gccat ingest catalog abell2744_glass_sedz_galaxies.csv --field abell2744_glass --name glass
      gccat ingest catalog mine.fits --field as1063 --name mine --mapping mine.toml --replace
    """
    lk = open_lake(lake)
    with StageProgress(f"ingest {file.name}") as progress:
        from ingest.catalog import ingest_catalog

        r = ingest_catalog(
            lk,
            file,
            field_id=field,
            name=name,
            mapping_file=mapping,
            replace=replace,
            z=z,
            flux_unit=flux_unit,
            mag_system=mag_system,
            mw_corrected=mw_corrected,
            progress=progress,
        )
    _report(r, f"{field}/{name}")


@command(app, "fields")
def fields_cmd(
    file: Annotated[Path, typer.Argument(help="Table of fields (cluster_fields.csv layout).")],
    lake: LakeOpt = DEFAULT_LAKE,
):
    """Ingest cluster fields: centres, redshifts, Milky Way E(B-V), scales and bands.

    \b
    Examples:
      gccat ingest fields cluster_fields.csv --lake lake
    """
    from ingest.catalog import ingest_fields

    _report(ingest_fields(open_lake(lake), file), f"fields from {file.name}")


@command(app, "bands")
def bands_cmd(
    names: Annotated[
        list[str] | None,
        typer.Argument(help="Filters to register (default: all JWST/HST filters gccat knows)."),
    ] = None,
    lake: LakeOpt = DEFAULT_LAKE,
):
    """Register filters with pivot wavelengths from their astro-sedpy curves.

    \b
    Examples:
      gccat ingest bands
      gccat ingest bands F150W F200W F444W
    """
    from ingest.catalog import ingest_bands

    _report(ingest_bands(open_lake(lake), names), "bands")


#: The options of the lens-map ingests.
TeamOpt = Annotated[str | None, typer.Option("--team", help="Modelling team.")]
VersionOpt = Annotated[str | None, typer.Option("--version", help="Model version.")]
DlsDsOpt = Annotated[float, typer.Option("--dls-ds", help="D_ls/D_s the maps are normalised to (HFF: 1).")]
ZSourceNormOpt = Annotated[
    float | None, typer.Option("--z-source", help="Or: source redshift the maps are normalised to.")
]


def _report_lens(r, field: str, model: str, what: str) -> None:
    if r.skipped:
        _report(r, f"{field}/{model}")
    else:
        console.print(
            f"{field}/{model}: {what} {', '.join(r.bands)} ({r.n_rows} pixels) committed "
            f"as ingest {r.ingest_id}; lake version {r.lake_version}."
        )


@command(app, "lens-map")
def lens_map_cmd(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="HFF FITS maps of one model (kappa, gamma, gamma1/2, magnif, x/y-arcsec-deflect, psi)."
        ),
    ],
    field: Annotated[str, typer.Option("--field", help="Field id.")],
    model: Annotated[str, typer.Option("--model", help="Model name (e.g. cats_v4).")],
    team: TeamOpt = None,
    version: VersionOpt = None,
    dls_ds: DlsDsOpt = 1.0,
    z_source: ZSourceNormOpt = None,
    quantity: Annotated[
        str | None, typer.Option("--quantity", help="Quantity of a single file whose name does not say it.")
    ] = None,
    replace: Annotated[bool, typer.Option("--replace", help="Supersede this model.")] = False,
    lake: LakeOpt = DEFAULT_LAKE,
):
    """Ingest lens-model maps; kappa and gamma are derived from deflection maps if needed.

    \b
    Examples:
      gccat ingest lens-map as1063_lenstool_patch_bin4_x-arcsec-deflect.fits \\
          as1063_lenstool_patch_bin4_y-arcsec-deflect.fits --field as1063 --model lenstool_frapy
      gccat ingest lens-map simf/simcluster_kappa.fits --field simcluster --model truth
    """
    from ingest.lens import ingest_lens_maps

    lk = open_lake(lake)
    with StageProgress(f"lens model {model}") as progress:
        r = ingest_lens_maps(
            lk,
            files,
            field_id=field,
            model=model,
            team=team,
            version=version,
            dls_ds_norm=dls_ds,
            z_source=z_source,
            quantity=quantity,
            replace=replace,
            progress=progress,
        )
    _report_lens(r, field, model, "maps")


@command(app, "lens-ensemble")
def lens_ensemble_cmd(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Folders (one per realisation, or one holding all) or HFF FITS files of the realisations."
        ),
    ],
    field: Annotated[str, typer.Option("--field", help="Field id.")],
    model: Annotated[str, typer.Option("--model", help="Ensemble name (e.g. cats_v4_range).")],
    team: TeamOpt = None,
    version: VersionOpt = None,
    dls_ds: DlsDsOpt = 1.0,
    z_source: ZSourceNormOpt = None,
    replace: Annotated[bool, typer.Option("--replace", help="Supersede this ensemble.")] = False,
    lake: LakeOpt = DEFAULT_LAKE,
):
    """Ingest an ensemble of realisations of one lens model (as HFF range maps come) in one commit.

    Each realisation becomes the model FIELD/MODEL.rNNN; the views lens_ensemble_at_detections,
    photometry_demagnified_ensemble and fit_results_ensemble give kappa, gamma, mu, lambda_t,
    intrinsic fluxes and masses as median and 16/84th percentiles over the realisations.

    \b
    Examples:
      gccat ingest lens-ensemble range_maps/ --field abell2744 --model cats_v4_range
      gccat ingest lens-ensemble sim/real_*_kappa.fits sim/real_*_gamma.fits --field simcluster --model sim
    """
    from ingest.lens import ingest_lens_ensemble

    lk = open_lake(lake)
    with StageProgress(f"lens ensemble {model}") as progress:
        r = ingest_lens_ensemble(
            lk,
            paths,
            field_id=field,
            model=model,
            team=team,
            version=version,
            dls_ds_norm=dls_ds,
            z_source=z_source,
            replace=replace,
            progress=progress,
        )
    _report_lens(r, field, model, "realisations of")


#: The options of the Lenstool text ingests.
TextNameOpt = Annotated[
    str | None, typer.Option("--name", help="Catalog name, unique in the field (default: file stem).")
]
TextReplaceOpt = Annotated[bool, typer.Option("--replace", help="Supersede an earlier ingest of this name.")]


def _lenstool(kind: str, file: Path, field: str, name: str | None, replace: bool, lake: Path) -> None:
    from ingest import lenstool

    fn = lenstool.ingest_multiple_images if kind == "images" else lenstool.ingest_cluster_members
    r = fn(open_lake(lake), file, field_id=field, name=name, replace=replace)
    _report(r, f"{field}/{name or file.stem}")


@command(app, "multiple-images")
def multiple_images_cmd(
    file: Annotated[Path, typer.Argument(help="Lenstool multiple-image text file (absolute RA/Dec, deg).")],
    field: Annotated[str, typer.Option("--field", help="Field id of the lens (e.g. smacs0723).")],
    name: TextNameOpt = None,
    replace: TextReplaceOpt = False,
    lake: LakeOpt = DEFAULT_LAKE,
):
    """Ingest published multiple images (Lenstool text) into the multiple_images table.

    \b
    Examples:
      gccat ingest multiple-images smacs0723_multiple_images.txt --field smacs0723
      gccat ingest multiple-images arcs.dat --field as1063 --name arcs_v2 --replace
    """
    _lenstool("images", file, field, name, replace, lake)


@command(app, "cluster-members")
def cluster_members_cmd(
    file: Annotated[Path, typer.Argument(help="Lenstool potfile (8 columns) or 6-column member list.")],
    field: Annotated[str, typer.Option("--field", help="Field id of the cluster.")],
    name: TextNameOpt = None,
    replace: TextReplaceOpt = False,
    lake: LakeOpt = DEFAULT_LAKE,
):
    """Ingest cluster member galaxies of a lens model into the cluster_members table.

    \b
    Examples:
      gccat ingest cluster-members smacs0723_cluster_members.txt --field smacs0723
    """
    _lenstool("members", file, field, name, replace, lake)
