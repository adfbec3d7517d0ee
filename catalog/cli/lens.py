"""``gccat lens ...``: multiple images through a lens model (thin wrappers over catalog.runs.sourceplane)."""

from __future__ import annotations

from typing import Annotated

import typer

from catalog.cli.util import DEFAULT_LAKE, LakeOpt, command, console, new_app, open_lake, print_table

app = new_app("""Multiple images through a lens model: source-plane crossmatch, counter-images.

\b
Examples:
  gccat lens crossmatch --field smacs0723 --model lenstool --tolerance 1.0
  gccat lens counter-images --field smacs0723 --model lenstool --image 2.1
  gccat lens critical-curves --field as1063 --model lenstool_frapy --z-source 2.0
""")


@command(app, "crossmatch")
def crossmatch_cmd(
    field: Annotated[str, typer.Option("--field", help="Field id.")],
    model: Annotated[str, typer.Option("--model", help="Lens model with x/y-arcsec-deflect maps.")],
    tolerance: Annotated[
        float, typer.Option("--tolerance", help="Largest source-plane separation of a pair, arcsec.")
    ] = 1.0,
    catalog: Annotated[
        str | None, typer.Option("--catalog", help="Only this multiple-images catalog.")
    ] = None,
    z_source: Annotated[
        float | None, typer.Option("--z-source", help="Redshift of images without one (Lenstool z = 0).")
    ] = None,
    lake: LakeOpt = DEFAULT_LAKE,
):
    """Pair multiple images whose source-plane positions agree (stored in source_plane_matches).

    \b
    Examples:
      gccat lens crossmatch --field smacs0723 --model lenstool --tolerance 1.0
      gccat lens crossmatch --field simsis --model truth --z-source 2.0
    """
    from catalog.runs.sourceplane import run_source_plane_crossmatch

    out = run_source_plane_crossmatch(
        open_lake(lake), field, model, catalog=catalog, tolerance_arcsec=tolerance, z_source=z_source
    )
    console.print(f"{out.num_rows} source-plane pairs within {tolerance:g} arcsec")
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
        open_lake(lake), field, model, image=image, position=_pair(source), z_source=z_source
    )
    console.print(f"{out.num_rows} predicted images")
    print_table(out.select(["image_number", "ra", "dec", "mu", "offset_from_input_arcsec"]))


@command(app, "critical-curves")
def critical_curves_cmd(
    field: Annotated[str, typer.Option("--field", help="Field id.")],
    model: Annotated[str, typer.Option("--model", help="Lens model with x/y-arcsec-deflect maps.")],
    z_source: Annotated[float, typer.Option("--z-source", help="Source redshift of the curves.")],
    lake: LakeOpt = DEFAULT_LAKE,
):
    """Critical curves (det A = 0) and caustics at a source redshift (stored in critical_curves).

    \b
    Examples:
      gccat lens critical-curves --field as1063 --model lenstool_frapy --z-source 2.0
    """
    from catalog.runs.sourceplane import run_critical_curves

    out = run_critical_curves(open_lake(lake), field, model, z_source=z_source)
    n = len(set(out["curve_id"].to_pylist()))
    console.print(f"{n} critical curves ({out.num_rows} vertices with their caustics) at z_s = {z_source:g}")
