"""The ``gccat`` command line: thin typer commands over the library."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ingest.cli import app as ingest_app

from .cli_util import DEFAULT_LAKE, AsOfOpt, LakeOpt, command, console, err_console, print_table
from .errors import GccatError
from .lake import Lake, open_lake

app = typer.Typer(help="gccat: a catalog lake of globular clusters in JWST/HST lensing fields.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
app.add_typer(ingest_app, name="ingest")

_OUTPUT_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".fits": "fits", ".fit": "fits",
                   ".ecsv": "ecsv", ".csv": "csv", ".vot": "votable", ".xml": "votable"}


def _save(table, output: Path, query: str, lake: Lake, version: int, overwrite: bool) -> None:
    from .export import export_table

    fmt = _OUTPUT_FORMATS.get(output.suffix.lower())
    if fmt is None:
        raise GccatError(f"{output}: unknown output type (use {', '.join(_OUTPUT_FORMATS)})")
    if fmt == "csv":  # plain CSV keeps no units: no manifest either
        from .export import arrow_to_astropy

        if output.exists() and not overwrite:
            raise GccatError(f"{output} exists; pass --overwrite to replace it")
        arrow_to_astropy(table, flat=True).write(output, format="ascii.csv", overwrite=True)
    else:
        export_table(table, output, fmt, query=query, lake_root=str(lake.root),
                     lake_version=version, overwrite=overwrite)
    err_console.print(f"wrote {table.num_rows} rows to {output}")


def _reader(lake: Path, as_of: int | None):
    """The lake, a read-only connection to it, and the version it reads."""
    from .views import connect

    lk = open_lake(lake)
    version = lk.check_version(as_of)
    return lk, connect(lk, as_of=version, read_only=True), version


@command(app, "init")
def init_cmd(lake: LakeOpt = DEFAULT_LAKE):
    """Create an empty lake (Delta tables for every entity)."""
    lk = Lake.create(lake)
    console.print(f"lake ready at {lk.root} (version {lk.version()})")


@command(app, "sql")
def sql_cmd(
    query: Annotated[str, typer.Argument(help="A SELECT over the lake's views.")],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Save to .parquet, .csv, .fits, .ecsv or .vot.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace --output.")] = False,
    max_rows: Annotated[int, typer.Option("--max-rows", help="Rows to print.")] = 40,
    lake: LakeOpt = DEFAULT_LAKE,
    as_of: AsOfOpt = None,
):
    """Run a read-only SQL query (it can read only the lake and write nothing)."""
    from .query import run_sql

    lk, con, version = _reader(lake, as_of)
    t = run_sql(con, query)
    if output:
        _save(t, output, query, lk, version, overwrite)
    else:
        print_table(t, max_rows=max_rows)


@command(app, "tables")
def tables_cmd(lake: LakeOpt = DEFAULT_LAKE, as_of: AsOfOpt = None):
    """List the lake's tables: live rows, Delta version, files and size on disk."""
    from .schemas import TABLES
    from .views import connect

    lk = open_lake(lake)
    con = connect(lk, as_of=as_of)
    rows = []
    for name in TABLES:
        dt = lk.delta(name)
        files = lk.files(name)
        size = sum(Path(f).stat().st_size for f in files)
        view = "live_ingests" if name == "ingests" else name
        live = con.execute(f"SELECT count(*) FROM {view}").fetchall()[0][0]
        total = con.execute(f"SELECT count(*) FROM raw_{name}").fetchall()[0][0]
        rows.append({"table": name, "live_rows": live, "stored_rows": total,
                     "delta_version": dt.version(), "files": len(files),
                     "size_mb": round(size / 1e6, 3)})
    import pyarrow as pa

    print_table(pa.Table.from_pylist(rows), title=f"lake {lk.root} at version "
                f"{lk.check_version(as_of)}")


@command(app, "views")
def views_cmd(lake: LakeOpt = DEFAULT_LAKE):
    """List the SQL views and UDFs with their descriptions."""
    import pyarrow as pa

    from .udfs import UDF_DOCS
    from .views import view_description, view_files

    open_lake(lake)
    rows = [{"view": n, "description": view_description(s)} for n, s in view_files().items()]
    rows += [{"view": f"raw_{n}", "description": f"every stored row of the {n} Delta table "
              "(including superseded and uncommitted ingests)"}
             for n in ("ingests", "fields", "bands", "detections", "photometry")]
    print_table(pa.Table.from_pylist(rows), title="views", max_rows=1000)
    print_table(pa.Table.from_pylist([{"udf": k, "description": v} for k, v in UDF_DOCS.items()]),
                title="UDFs", max_rows=1000)


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
    source: Annotated[str, typer.Option(
        "--from", help="Table, view or SELECT with ra, dec, healpix29.")] = "detections",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Save the rows.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace --output.")] = False,
    lake: LakeOpt = DEFAULT_LAKE,
    as_of: AsOfOpt = None,
):
    """Sources within RADIUS_ARCSEC of (RA, DEC), nearest first, with separations."""
    from .query import cone
    from .views import check_read_only_sql

    ra_deg, dec_deg = _angle(ra, "h", "RA"), _angle(dec, "deg", "Dec")
    lk, con, version = _reader(lake, as_of)
    if source.strip().lower().startswith(("select", "with")):
        check_read_only_sql(con, source)
    t = cone(con, ra_deg, dec_deg, radius_arcsec, source)
    if output:
        _save(t, output, f"cone {ra} {dec} {radius_arcsec} from {source}", lk, version, overwrite)
    else:
        print_table(t)


def _xmatch_side(con, spec: str, side: str):
    """A crossmatch side: a catalog file, or a table/view name or SELECT over the lake."""
    import pyarrow as pa

    from .query import relation_sql, run_sql

    p = Path(spec)
    if p.suffix and p.exists():
        from ingest.catalog import _coordinates, _source_ids, read_and_map

        raw, m = read_and_map(p)
        ra, dec = _coordinates(raw, m)
        ids = _source_ids(raw, m, [])
        return pa.table({"source_id": ids, "ra": ra, "dec": dec})
    return run_sql(con, relation_sql(spec))


@command(app, "xmatch")
def xmatch_cmd(
    left: Annotated[str, typer.Argument(help="Table/view name, SELECT query, or catalog file.")],
    right: Annotated[str, typer.Argument(help="Table/view name, SELECT query, or catalog file.")],
    radius_arcsec: Annotated[float, typer.Option("--radius", help="Match radius, arcsec.")] = 0.5,
    best: Annotated[bool, typer.Option("--best", help="Keep only the nearest match.")] = False,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Save the pairs.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace --output.")] = False,
    lake: LakeOpt = DEFAULT_LAKE,
    as_of: AsOfOpt = None,
):
    """Crossmatch two catalogs: all pairs within --radius with separations (or --best)."""
    from .query import xmatch_tables

    lk, con, version = _reader(lake, as_of)
    t = xmatch_tables(_xmatch_side(con, left, "left"), _xmatch_side(con, right, "right"),
                      radius_arcsec, best=best)
    if output:
        _save(t, output, f"xmatch {left} {right} --radius {radius_arcsec}", lk, version,
              overwrite)
    else:
        print_table(t)


@command(app, "export")
def export_cmd(
    out: Annotated[Path, typer.Option("--out", help="Output file (directory for hats).")],
    table: Annotated[str | None, typer.Option("--table", help="Table or view to export.")] = None,
    query: Annotated[str | None, typer.Option("--query", help="SELECT to export.")] = None,
    fmt: Annotated[str, typer.Option(
        "--format", help="parquet, fits, ecsv, votable or hats.")] = "parquet",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace --out.")] = False,
    lake: LakeOpt = DEFAULT_LAKE,
    as_of: AsOfOpt = None,
):
    """Export a table or query with units, UCDs and descriptions, plus a manifest."""
    from .export import export_table
    from .query import relation_sql, run_sql

    if (table is None) == (query is None):
        raise GccatError("give exactly one of --table or --query")
    lk, con, version = _reader(lake, as_of)
    sql = relation_sql(table) if table else query
    t = run_sql(con, sql)
    m = export_table(t, out, fmt.lower(), query=sql, lake_root=str(lk.root),
                     lake_version=version, overwrite=overwrite)
    console.print(f"exported {m['rows']} rows as {fmt} to {out} (lake version {version}; "
                  f"sha256 {m['sha256'][:12]}...)")


@command(app, "doctor")
def doctor_cmd(
    clean: Annotated[bool, typer.Option("--clean", help="Delete the orphan rows found.")] = False,
    lake: LakeOpt = DEFAULT_LAKE,
):
    """Find rows left by ingests that never committed (a crash); --clean removes them."""
    found = open_lake(lake).doctor(clean=clean)
    if not found:
        console.print("lake is consistent: no orphan rows")
    for t, n in found.items():
        console.print(f"{t}: {n} orphan rows" + (" removed" if clean else " (use --clean)"))


@command(app, "demo")
def demo_cmd(
    lake: Annotated[Path, typer.Option("--lake", help="Where to build the demo lake.")] = Path(
        "demo_lake"),
):
    """Build a demo lake from the bundled published tables and show what it holds."""
    from .cli_util import StageProgress
    from .demo import CROSS_FIELD_QUERY, DEMO_CATALOGS, SAMPLE_QUERY, build_demo

    with StageProgress("demo") as progress:
        res = build_demo(lake, progress=progress)
    console.print(f"[bold]gccat demo lake[/bold] at {res.lake.root}, version "
                  f"{res.lake.version()}")
    for fname, _, _, _, src in DEMO_CATALOGS:
        console.print(f"  {fname}: {src}")
    print_table(res.summary, title="Fields (view field_summary)")
    console.print("\nCross-field aggregate:\n" + CROSS_FIELD_QUERY, highlight=False)
    print_table(res.cross_field)
    console.print("\nBrightest SMACS0723 star clusters with AB colours:\n" + SAMPLE_QUERY,
                  highlight=False)
    print_table(res.sample)
    console.print(f"\nTry: gccat sql --lake {lake} \"SELECT * FROM colors LIMIT 5\"")


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
