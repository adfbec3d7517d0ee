"""``gccat lens ...``: multiple images through a lens model (thin wrappers over catalog.runs.sourceplane)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from catalog.cli.util import DEFAULT_LAKE, LakeOpt, command, console, new_app, open_lake, print_table
from catalog.lensing.arcs import ARC_THRESHOLD_FRACTION

app = new_app("""Multiple images through a lens model: source-plane crossmatch, counter-images.

\b
Examples:
  gccat lens crossmatch --field smacs0723 --model lenstool --tolerance 1.0
  gccat lens counter-images --field smacs0723 --model lenstool --image 2.1
  gccat lens critical-curves --field as1063 --model lenstool_frapy --z-source 2.0
  gccat lens arc-magnification f150w.fits --field as1063 --model lenstool_frapy --ra 342.18 --dec -44.53 \\
      --radius 1.5 --z-source 1.2 --name arc1
""")


@command(app, "crossmatch")
def crossmatch_cmd(
    field: Annotated[str, typer.Option("--field", help="Field id.")],
    model: Annotated[str, typer.Option("--model", help="Lens model with x/y-arcsec-deflect maps.")],
    tolerance: Annotated[
        float, typer.Option("--tolerance", help="Largest source-plane separation of a pair, arcsec.")
    ] = 1.0,
    catalog: Annotated[
        str | None,
        typer.Option("--catalog", help="Only this catalog (of multiple images, or of detections)."),
    ] = None,
    z_source: Annotated[
        float | None, typer.Option("--z-source", help="Redshift of images without one (Lenstool z = 0).")
    ] = None,
    detections: Annotated[
        bool,
        typer.Option("--detections", help="Pair detected sources (detections) instead of multiple images."),
    ] = False,
    where: Annotated[
        str | None, typer.Option("--where", help="--detections: SQL condition on detections.")
    ] = None,
    min_image_separation: Annotated[
        float,
        typer.Option("--min-image-separation", help="--detections: smallest image-plane separation, arcsec."),
    ] = 1.0,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="PNG of kappa with the matched pairs joined.")
    ] = None,
    lake: LakeOpt = DEFAULT_LAKE,
):
    """Pair multiple images (or detected compact sources) whose source-plane positions agree
    (stored in source_plane_matches).

    \b
    Examples:
      gccat lens crossmatch --field smacs0723 --model lenstool --tolerance 1.0
      gccat lens crossmatch --field simsis --model truth --z-source 2.0
      gccat lens crossmatch --field smacs0723 --model lenstool --detections --catalog sparkler_gcs \\
          --z-source 1.378 --tolerance 0.1
    """
    from catalog.runs.sourceplane import run_source_plane_crossmatch

    out = run_source_plane_crossmatch(
        open_lake(lake),
        field,
        model,
        catalog=catalog,
        tolerance_arcsec=tolerance,
        z_source=z_source,
        detections=detections,
        where=where,
        min_image_separation_arcsec=min_image_separation,
        plot=plot,
    )
    console.print(
        f"{out.num_rows} source-plane pairs within {tolerance:g} arcsec" + (f"; plot: {plot}" if plot else "")
    )
    print_table(out.select(["image_id_1", "image_id_2", "separation_arcsec", "image_separation_arcsec"]))


def _pair(value: str | None) -> tuple[float, float] | None:
    if value is None:
        return None
    from catalog.errors import GccatError

    try:
        a, b = (float(v) for v in value.split(","))
    except ValueError:
        raise GccatError(f"--source must be RA,DEC in degrees, not {value!r}") from None
    return a, b


@command(app, "counter-images")
def counter_images_cmd(
    field: Annotated[str, typer.Option("--field", help="Field id.")],
    model: Annotated[str, typer.Option("--model", help="Lens model with x/y-arcsec-deflect maps.")],
    image: Annotated[
        str | None, typer.Option("--image", help="Image label (e.g. 2.1) or image_id to map back.")
    ] = None,
    source: Annotated[
        str | None, typer.Option("--source", help="Or the source position RA,DEC in deg (needs --z-source).")
    ] = None,
    z_source: Annotated[
        float | None, typer.Option("--z-source", help="Source redshift (default: the image's).")
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot", help="PNG of kappa with the critical curves, the input and the predicted images."
        ),
    ] = None,
    lake: LakeOpt = DEFAULT_LAKE,
):
    """Predict all images of a source by solving the lens equation (stored in counter_images).

    \b
    Examples:
      gccat lens counter-images --field smacs0723 --model lenstool --image 2.1
      gccat lens counter-images --field simsis --model truth --source 110.83,-73.45 --z-source 2.0
    """
    from catalog.runs.sourceplane import run_counter_images

    out = run_counter_images(
        open_lake(lake), field, model, image=image, position=_pair(source), z_source=z_source, plot=plot
    )
    console.print(f"{out.num_rows} predicted images" + (f"; plot: {plot}" if plot else ""))
    print_table(out.select(["image_number", "ra", "dec", "mu", "offset_from_input_arcsec"]))


@command(app, "critical-curves")
def critical_curves_cmd(
    field: Annotated[str, typer.Option("--field", help="Field id.")],
    model: Annotated[str, typer.Option("--model", help="Lens model with x/y-arcsec-deflect maps.")],
    z_source: Annotated[
        list[float], typer.Option("--z-source", help="Source redshift of the curves (repeat for several).")
    ],
    plot: Annotated[
        Path | None, typer.Option("--plot", help="PNG of kappa with the curves and caustics.")
    ] = None,
    lake: LakeOpt = DEFAULT_LAKE,
):
    """Critical curves (det A = 0) and caustics at source redshifts (stored in critical_curves).

    \b
    Examples:
      gccat lens critical-curves --field as1063 --model lenstool_frapy --z-source 2.0
      gccat lens critical-curves --field as1063 --model lenstool_frapy --z-source 0.73 --z-source 1.23 \\
          --z-source 3 --plot as1063_cc.png
    """
    from catalog.runs.sourceplane import run_critical_curves

    out = run_critical_curves(open_lake(lake), field, model, z_source=z_source, plot=plot)
    zs, ids = out["z_source"].to_pylist(), out["curve_id"].to_pylist()
    for z in sorted(set(zs)):
        n = len({i for zz, i in zip(zs, ids, strict=True) if zz == z})
        console.print(f"z_s = {z:g}: {n} critical curves ({zs.count(z)} vertices with their caustics)")
    if plot is not None:
        console.print(f"plot: {plot}")


@command(app, "arc-magnification")
def arc_magnification_cmd(
    image: Annotated[Path, typer.Argument(help="Background-subtracted FITS image of the arc (with WCS).")],
    field: Annotated[str, typer.Option("--field", help="Field id.")],
    model: Annotated[str, typer.Option("--model", help="Lens model with kappa and gamma maps.")],
    ra: Annotated[float, typer.Option("--ra", help="RA of the aperture centre, deg (ICRS).")],
    dec: Annotated[float, typer.Option("--dec", help="Dec of the aperture centre, deg (ICRS).")],
    radius: Annotated[float, typer.Option("--radius", help="Aperture radius holding the arc, arcsec.")],
    z_source: Annotated[float, typer.Option("--z-source", help="Redshift of the arc.")],
    name: Annotated[str, typer.Option("--name", help="Name of the arc.")],
    threshold: Annotated[
        float, typer.Option("--threshold", help="Fraction of the arc's peak a pixel must exceed, in (0, 1).")
    ] = ARC_THRESHOLD_FRACTION,
    plot: Annotated[
        Path | None,
        typer.Option("--plot", help="PNG of the arc with its pixels above the threshold outlined."),
    ] = None,
    lake: LakeOpt = DEFAULT_LAKE,
):
    """Magnification of an arc over its pixels above a fraction of its peak (arc_magnifications).

    The arc is the connected region above --threshold x the peak in the aperture that holds the
    peak; |mu| (mean, median, flux-weighted, 16/84th percentiles) over its pixels where the model
    defines mu (the Firefly Sparkle study: 10% of the peak).

    \b
    Examples:
      gccat lens arc-magnification f150w.fits --field macs0416 --model cats --ra 64.0381 --dec -24.0675 \\
          --radius 1.5 --z-source 8.3 --name firefly
    """
    from catalog.runs.sourceplane import run_arc_magnification

    r = run_arc_magnification(
        open_lake(lake),
        field,
        model,
        image,
        ra_deg=ra,
        dec_deg=dec,
        radius_arcsec=radius,
        z_source=z_source,
        arc=name,
        threshold_fraction=threshold,
        plot=plot,
    )
    console.print(
        f"{name}: {r['n_pixels']} pixels ({r['area_arcsec2']:.3g} arcsec2) above {threshold:g} x the peak; "
        f"|mu| mean {r['mu_mean']:.3g}, median {r['mu_median']:.3g}, "
        f"flux-weighted {r['mu_flux_weighted']:.3g}, "
        f"16-84% {r['mu_p16']:.3g}-{r['mu_p84']:.3g} ({r['n_pixels_mu']} pixels with mu)"
    )
    if plot is not None:
        console.print(f"plot: {plot}")
