"""Outputs other tools accept: valid UCDs and units in every format, ICRS, per-table metadata,
the export format from the extension, and full-precision terminal output (table, CSV, JSON)."""

import csv
import datetime as dt
import io
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from astropy import units as u
from astropy.io import fits
from astropy.io.votable import parse_single_table, validate
from astropy.io.votable.ucd import parse_ucd
from astropy.table import Table

from catalog.cli.app import app
from catalog.lake import Lake
from catalog.lake.schemas import TABLES
from catalog.queries.connection import connect, view_files
from catalog.queries.export import export_table
from catalog.queries.search import run_sql
from ingest.demo import demo_inputs_dir

FORMATS = {"votable": "vot", "fits": "fits", "parquet": "parquet", "ecsv": "ecsv", "csv": "csv"}


@pytest.fixture(scope="module")
def full(demo, tmp_path_factory) -> Lake:
    """A copy of the demo lake in which every table has rows (injections and SFHs added)."""
    from catalog.runs.fits import run_fit_sfh, run_fit_ssp
    from ingest.pointsources import run_injection

    root = tmp_path_factory.mktemp("full")
    shutil.copytree(demo.lake.root, root / "lake")
    lake = Lake(root / "lake")
    inputs = demo_inputs_dir(demo.lake)
    if not lake.files("injection_runs"):
        run_injection(
            lake,
            inputs / "mosaic_f150w.fits",
            band=None,
            psf_path=inputs / "mosaic_psf.fits",
            field_id="simmosaic",
            catalog="gc_detections",
            n_flux=4,
            n_locations=3,
            max_targets=5,
        )
    if not lake.files("sfh_epochs"):
        run_fit_sfh(lake, "field_id = 'smacs0723' AND source_id < 'SC_004'", n_perturb=3)
    if not lake.files("nonparam_results"):
        from catalog.runs.nonparam import run_fit_nonparam

        run_fit_nonparam(lake, "field_id = 'smacs0723' AND source_id < 'SC_004'", n_atlas=500, n_draws=50)
    if not lake.files("fit_skipped"):  # the GLASS galaxies have one band: not fitted
        run_fit_ssp(lake, "source_id = 'SC_000' OR field_id = 'abell2744_glass'", n_samples=0)
    if not lake.files("multiple_images"):
        from ingest.demo import bundled
        from ingest.lenstool import ingest_cluster_members, ingest_multiple_images

        ingest_multiple_images(lake, bundled("smacs0723_multiple_images.txt"), field_id="smacs0723")
        ingest_cluster_members(lake, bundled("smacs0723_cluster_members.txt"), field_id="smacs0723")
    if not lake.files("source_plane_matches"):
        from catalog.runs.sourceplane import run_counter_images, run_source_plane_crossmatch
        from ingest.lenstool import ingest_multiple_images

        m = lake.live("lens_models").to_pylist()
        c = next(r for r in m if r["model_id"] == "as1063/lenstool_frapy")
        arcs = root / "as1063_arcs.txt"
        arcs.write_text(
            "".join(
                f"1 1 {c['ra_center'] + d / 3600:.7f} {c['dec_center'] + d / 3600:.7f} 2.0 0.1 0.1 0 1.{k}\n"
                for k, d in ((1, -2.0), (2, 2.0))
            )
        )
        ingest_multiple_images(lake, arcs, field_id="as1063")
        run_source_plane_crossmatch(lake, "as1063", "lenstool_frapy", tolerance_arcsec=60.0)
        run_counter_images(lake, "as1063", "lenstool_frapy", image="1.1")
    if not lake.files("critical_curves"):
        from catalog.runs.sourceplane import run_critical_curves

        run_critical_curves(lake, "as1063", "lenstool_frapy", z_source=2.0)
    if not lake.files("arc_magnifications"):
        from astropy.io import fits as _fits

        from catalog.queries.lensmaps import LensMapStore
        from catalog.runs.sourceplane import run_arc_magnification

        km = LensMapStore(lake).load("as1063/lenstool_frapy", "kappa")
        ny, nx = km.shape
        yy, xx = np.mgrid[0:ny, 0:nx]
        blob = np.exp(-0.5 * (np.hypot(xx - nx / 2, yy - ny / 2) / 1.5) ** 2)
        _fits.PrimaryHDU(blob, km.wcs.to_header()).writeto(root / "arc.fits")
        ra, dec = (float(v) for v in km.wcs.pixel_to_world_values(nx / 2, ny / 2))
        run_arc_magnification(lake, "as1063", "lenstool_frapy", root / "arc.fits", ra_deg=ra, dec_deg=dec,
                              radius_arcsec=30.0, z_source=2.0, arc="blob")  # fmt: skip
    if not lake.files("psf_models"):
        from astropy.io import fits as _fits

        from catalog.images import make_psf
        from catalog.simulations import simulate_mosaic_files
        from ingest.psf import run_psf_build, run_psf_match

        sim = simulate_mosaic_files(root / "stars", "s", bands=("F150W",), shape=(640, 640), n_points=45,
                                    psf_fwhm_pix=3.0, noise_njy=0.2, bcg=False, flux_range_njy=(57.5, 363.0),
                                    min_sep_pix=72.0, seed=4)  # fmt: skip
        run_psf_build(
            lake, sim["images"]["F150W"], root / "psf.fits", field_id="simstars", cutout_arcsec=0.75
        )
        _fits.PrimaryHDU(make_psf(4.8, size=25), _fits.Header([("PIXSCALE", 0.03)])).writeto(root / "t.fits")
        run_psf_match(lake, root / "psf.fits", root / "t.fits", root / "k.fits")
    if not lake.files("stacks"):
        from astropy.table import Table

        from ingest.catalog import ingest_catalog
        from ingest.stacks import run_sizes, run_stack

        truth = Table.read(sim["truth"], format="ascii.csv", comment="#")
        truth[["id", "ra", "dec"]].write(root / "stars.csv", format="ascii.csv")
        ingest_catalog(lake, root / "stars.csv", field_id="simstars", name="stars")
        run_stack(lake, sim["images"]["F150W"], field_id="simstars", catalog="stars")
        run_sizes(lake, field_id="as1063", band="F150W", psf_path=root / "psf.fits", flux_njy=100.0,
                  noise_njy=0.2, n_sim=20)  # fmt: skip
    if not lake.files("model_injection_runs"):
        from ingest.modelinject import run_model_injection

        t = Table.read(sim["truth"], format="ascii.csv", comment="#")[:2]
        (root / "model.csv").write_text(
            "component,kind,ra,dec,r_eff_arcsec,sersic_n,ellipticity,theta_deg\n"
            f"p1,point,{t['ra'][0]},{t['dec'][0]},,,,\n"
            f"g1,sersic,{t['ra'][0] + 0.1 / 3600},{t['dec'][0]},0.1,1.0,0.3,20\n"
        )
        run_model_injection(lake, sim["images"]["F150W"], root / "model.csv", psf_path=root / "psf.fits",
                            field_id="simstars", arc="star1", n_inject=20, stamp_arcsec=4.0)  # fmt: skip
    empty = [t for t in TABLES if not lake.files(t)]
    assert not empty, f"tables without rows: {empty}"
    return lake


def relations() -> list[str]:
    """Every table that `gccat tables` lists and every view of sql/."""
    return sorted(set(TABLES) | {v for v, sql in view_files().items() if "CREATE OR REPLACE VIEW" in sql})


def _is_log(unit: str) -> bool:
    return isinstance(u.Unit(unit), u.DexUnit)


# -- 1. metadata valid in every format ---------------------------------------------------------


def _ucds():
    from catalog.lake import schemas

    for name, (schema, _) in TABLES.items():
        for f in schema:
            yield name, f.name, (f.metadata or {}).get(b"ucd", b"").decode()
    for pattern, m in schemas._DERIVED:
        yield "pattern", pattern.pattern, m.ucd
    for name, view in getattr(schemas, "VIEW_COLUMNS", {}).items():
        for col, m in view.columns.items():
            yield name, col, m.ucd


def test_every_declared_ucd_is_valid_ucd1p():
    bad = []
    for where, col, ucd in _ucds():
        try:
            if ucd:
                parse_ucd(ucd, check_controlled_vocabulary=True, has_colon=False)
        except ValueError as exc:
            bad.append(f"{where}.{col}: {ucd} ({exc})")
    assert not bad, "\n".join(bad)


def test_every_column_of_every_table_and_view_is_declared(full):
    from catalog.lake.schemas import columns_meta

    con = connect(full)
    missing = []
    for name in relations():
        cols = run_sql(con, f"SELECT * FROM {name} LIMIT 0").column_names
        for col, m in columns_meta(cols, name).items():
            if not (m.unit or m.ucd) or not m.description:
                missing.append(f"{name}.{col}")
    assert not missing, missing


def _check_votable(path: Path) -> None:
    out = io.StringIO()
    ok = validate(str(path), output=out, xmllint=False)
    assert ok, out.getvalue()


def test_every_table_and_view_exports_valid_votable_fits_and_voparquet(full, tmp_path):
    """Each table and view (40 rows) in every file format, each file checked by its reader."""
    from catalog.lake.schemas import column_meta

    con = connect(full)
    for name in relations():
        sql = f"SELECT * FROM {name} LIMIT 40"
        t = run_sql(con, sql)
        units = {c: column_meta(c).unit for c in t.column_names}
        path = {fmt: tmp_path / f"{name}.{ext}" for fmt, ext in FORMATS.items()}

        def export(fmt, t=t, path=path, sql=sql):
            export_table(t, path[fmt], fmt, query=sql, lake_root=str(full.root), lake_version=1)
            return path[fmt]

        # VOTable: astropy's validator has nothing to say (UCDs, units, COOSYS).
        _check_votable(export("votable"))
        # FITS: verifies, and every unit of the schema is a TUNIT.
        with fits.open(export("fits")) as hdus:
            hdus.verify("exception")
            h = hdus[1].header
            for i, col in enumerate(t.column_names, start=1):
                if units[col]:
                    assert f"TUNIT{i}" in h, (name, col)
                    if _is_log(units[col]):
                        assert h[f"TUNIT{i}"].startswith("log(") and "log10" in h[f"TCOMM{i}"]
        # VOParquet: astropy reads it with every unit.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            back = Table.read(export("parquet"), format="parquet.votable")
        assert len(back) == t.num_rows, name
        for col, unit in units.items():
            if unit:
                assert back[col].unit == u.Unit(unit), (name, col, back[col].unit, unit)
        # ECSV keeps units too; CSV lists them in its manifest.
        export("ecsv")
        if name != "ssp_grids":  # its grid cells exceed the csv module's field size limit
            ecsv = Table.read(path["ecsv"], format="ascii.ecsv")
            for col, unit in units.items():
                if unit:
                    assert ecsv[col].unit == u.Unit(unit), (name, col)
        export("csv")
        man = json.loads(Path(f"{path['csv']}.manifest.json").read_text())
        assert {c["name"]: c["unit"] for c in man["columns"]} == units


def test_empty_tables_export_valid_files_and_an_empty_hats_export_is_refused(lake, tmp_path, cli):
    for fmt, ext in FORMATS.items():
        out = tmp_path / f"ir.{ext}"
        res = cli("export", "--table", "injection_runs", "--format", fmt, "--out", out, "--lake", lake.root)
        assert res.exit_code == 0, (fmt, res.output)
    _check_votable(tmp_path / "ir.vot")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        back = Table.read(tmp_path / "ir.parquet", format="parquet.votable")
    assert len(back) == 0 and back["aperture_radii_arcsec"].unit == u.arcsec
    res = cli("export", "--table", "detections", "--out", tmp_path / "hats", "--lake", lake.root)
    assert res.exit_code == 2 and "at least one row" in res.stderr and "Traceback" not in res.output
    assert not (tmp_path / "hats").exists()


def test_log_masses_are_written_in_each_format_s_convention(full, tmp_path):
    con = connect(full)
    sql = "SELECT object_id, log_mass_living FROM fit_samples LIMIT 5"
    t = run_sql(con, sql)
    for fmt, ext in FORMATS.items():
        export_table(t, tmp_path / f"m.{ext}", fmt, query=sql, lake_root="r", lake_version=1)
    assert b'unit="[solMass]"' in (tmp_path / "m.vot").read_bytes()  # VOTable 1.3: CDS units
    assert parse_single_table(tmp_path / "m.vot").get_field_by_id("log_mass_living").unit == u.dex(u.solMass)
    h = fits.getheader(tmp_path / "m.fits", 1)
    assert h["TUNIT2"] == "log(solMass)" and "log10" in h["TCOMM2"]
    assert Table.read(tmp_path / "m.ecsv")["log_mass_living"].unit == u.dex(u.solMass)
    assert (
        pq.read_schema(tmp_path / "m.parquet").field("log_mass_living").metadata[b"unit"] == b"dex(solMass)"
    )


def test_positions_declare_icrs_in_votable_voparquet_and_fits(full, tmp_path):
    con = connect(full)
    sql = "SELECT detection_id, ra, dec FROM detections LIMIT 5"
    t = run_sql(con, sql)
    for fmt in ("votable", "parquet", "fits"):
        export_table(t, tmp_path / f"p.{FORMATS[fmt]}", fmt, query=sql, lake_root="r", lake_version=1)
    meta = pq.ParquetFile(tmp_path / "p.parquet").metadata.metadata
    for xml in [(tmp_path / "p.vot").read_bytes(), meta[b"IVOA.VOTable-Parquet.content"]]:
        from astropy.io.votable import parse

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the PARQUET element is VOParquet's, not VOTable's
            vot = parse(io.BytesIO(xml))
        (coosys,) = vot.resources[0].coordinate_systems
        assert coosys.system == "ICRS"
        fields = {f.name: f for f in vot.resources[0].tables[0].fields}
        assert fields["ra"].ref == fields["dec"].ref == coosys.ID
        assert fields["detection_id"].ref is None
    assert fits.getheader(tmp_path / "p.fits", 1)["RADESYS"] == "ICRS"


def test_fit_percentiles_carry_units_in_the_views_that_pivot_them(full, tmp_path, cli):
    out = tmp_path / "fr.vot"
    res = cli("export", "--table", "fit_results", "--out", out, "--lake", full.root)
    assert res.exit_code == 0, res.output
    f = {x.name: x for x in parse_single_table(out).fields}
    assert f["age_gyr_p16"].unit == u.Gyr and "16th percentile" in f["age_gyr_p16"].description
    assert f["log_mass_living_p84"].unit == u.dex(u.solMass)
    assert f["log_mass_living_intrinsic"].unit == u.dex(u.solMass)
    assert f["av_best"].unit == u.mag and f["mu_undefined"].ucd == "meta.code.qual"
    out = tmp_path / "fp.vot"
    assert cli("export", "--table", "fit_posteriors", "--out", out, "--lake", full.root).exit_code == 0
    p16 = " ".join(parse_single_table(out).get_field_by_id("p16").description.split())
    assert "unit of the row's parameter" in p16 and "age_gyr: Gyr" in p16


# -- 2. export: every table, its own descriptions, the format from the extension ---------------


def test_every_table_gccat_tables_lists_exports_with_its_own_metadata(full, tmp_path, cli):
    listed = cli("tables", "--lake", full.root)
    assert listed.exit_code == 0
    for name in TABLES:
        assert name in listed.stdout
        out = tmp_path / f"{name}.parquet"
        res = cli("export", "--table", name, "--out", out, "--lake", full.root)
        assert res.exit_code == 0, (name, res.output)
        schema = pq.read_schema(out)
        for f in TABLES[name][0]:
            want = (f.metadata or {}).get(b"description")
            if want:
                assert schema.field(f.name).metadata[b"description"] == want, (name, f.name)
    ingests = pq.read_schema(tmp_path / "ingests.parquet").field("field_id").metadata
    detections = pq.read_schema(tmp_path / "detections.parquet").field("field_id").metadata
    # each table's own description, not the first declaration of the column name
    assert ingests[b"description"].startswith(b"Field the ingest wrote to")
    assert detections[b"description"] == b"Cluster field identifier"


def test_query_results_prefer_science_tables_and_views_use_their_bases(full, tmp_path, cli):
    out = tmp_path / "q.parquet"
    res = cli(
        "export",
        "--query",
        "SELECT field_id, band, z FROM photometry_wide JOIN photometry "
        "USING (detection_id, field_id) LIMIT 3",
        "--out",
        out,
        "--lake",
        full.root,
    )
    assert res.exit_code == 0, res.output
    s = pq.read_schema(out)
    assert s.field("field_id").metadata[b"description"] == b"Cluster field identifier"
    assert s.field("z").metadata[b"description"] == b"Assumed redshift of the source"
    out = tmp_path / "h.parquet"
    assert cli("export", "--table", "ingest_history", "--out", out, "--lake", full.root).exit_code == 0
    s = pq.read_schema(out)
    assert s.field("field_id").metadata[b"description"].startswith(b"Field the ingest wrote to")
    assert s.field("duration_s").metadata[b"unit"] == b"s"


def test_the_format_follows_the_extension(demo, tmp_path, cli):
    q = "SELECT detection_id, ra, dec, flux_F150W FROM photometry_wide WHERE field_id = 'smacs0723'"
    for ext, check in [
        ("fits", lambda p: fits.getheader(p, 1)["TTYPE1"] == "detection_id"),
        ("vot", lambda p: parse_single_table(p).nrows == 178),
        ("ecsv", lambda p: p.read_text().startswith("# %ECSV")),
        ("csv", lambda p: p.read_text().startswith("detection_id,ra,dec,flux_F150W\n")),
        ("parquet", lambda p: pq.read_metadata(p).num_rows == 178),
    ]:
        out = tmp_path / f"x.{ext}"
        res = cli("export", "--query", q, "--out", out, "--lake", demo.lake.root)
        assert res.exit_code == 0, res.output
        assert check(out), ext
        assert json.loads(Path(f"{out}.manifest.json").read_text())["rows"] == 178
    man = json.loads((tmp_path / "x.csv.manifest.json").read_text())
    assert {c["name"]: c["unit"] for c in man["columns"]}["flux_F150W"] == "nJy"


@pytest.mark.parametrize(
    "args,words",
    [
        (["--format", "parquet", "--out", "x.fits"], ["x.fits", "fits", "parquet"]),
        (["--format", "hats", "--out", "x.parquet"], ["x.parquet", "hats"]),
        (["--out", "x.txt"], ["x.txt", "--format"]),
        (["--format", "votable", "--out", "x.csv"], ["csv", "votable"]),
    ],
)
def test_a_format_the_extension_contradicts_is_refused(demo, tmp_path, cli, args, words):
    args = [str(tmp_path / a) if a.startswith("x.") else a for a in args]
    res = cli("export", "--table", "detections", *args, "--lake", demo.lake.root)
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gccat: error: "), res.stderr
    for w in words:
        assert w in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_export_help_lists_the_formats_and_table_refuses_unknown_names(demo, tmp_path, cli):
    res = cli("export", "--help")
    assert "parquet|fits|ecsv|votable|csv|hats" in res.stdout
    res = cli("export", "--table", "no_such_view", "--out", tmp_path / "x.fits", "--lake", demo.lake.root)
    assert res.exit_code == 2 and "no_such_view" in res.stderr
    assert list(tmp_path.iterdir()) == []


# -- 3. terminal output ------------------------------------------------------------------------

CONE = ["cone", "110.834", "-73.4551", "3"]


def _lake_positions(demo) -> dict:
    con = connect(demo.lake)
    return {
        d: (r, de)
        for d, r, de in con.execute(
            "SELECT detection_id, ra, dec FROM detections WHERE field_id = 'smacs0723'"
        ).fetchall()
    }


def test_cone_as_csv_gives_the_lake_positions_exactly(demo, cli):
    res = cli(*CONE, "--print-format", "csv", "--lake", demo.lake.root)
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert len(rows) >= 5
    lake = _lake_positions(demo)
    for r in rows:
        assert (float(r["ra"]), float(r["dec"])) == lake[r["detection_id"]]
    seps = [float(r["separation_arcsec"]) for r in rows]
    assert seps == sorted(seps) and seps[-1] <= 3
    # -o - writes the same CSV to standard output
    assert cli(*CONE, "-o", "-", "--lake", demo.lake.root).stdout == res.stdout


def test_cone_and_sql_as_json(demo, cli):
    res = cli(*CONE, "--print-format", "json", "--lake", demo.lake.root)
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    lake = _lake_positions(demo)
    assert rows and all((r["ra"], r["dec"]) == lake[r["detection_id"]] for r in rows)
    res = cli(
        "sql",
        "SELECT CAST('nan' AS DOUBLE) AS a, CAST('inf' AS DOUBLE) AS b, "
        "0.1::DOUBLE + 0.2 AS c, 0.5 AS d, committed_at, [1.5, CAST('nan' AS DOUBLE)] AS l "
        "FROM ingests ORDER BY committed_at LIMIT 2",
        "-o",
        "-",
        "--print-format",
        "json",
        "--lake",
        demo.lake.root,
    )
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert len(rows) == 2 and rows[0]["a"] is None and rows[0]["b"] is None
    assert rows[0]["c"] == 0.1 + 0.2 and rows[0]["d"] == 0.5 and rows[0]["l"] == [1.5, None]
    assert dt.datetime.fromisoformat(rows[0]["committed_at"]).tzinfo is not None


def test_xmatch_prints_csv_and_a_file_output_refuses_print_format(demo, tmp_path, cli):
    q = "SELECT * FROM detections WHERE field_id = 'smacs0723'"
    res = cli("xmatch", q, q, "--radius", "0.1", "--best", "--print-format", "csv", "--lake", demo.lake.root)
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert len(rows) == 178 and all(r["ra_1"] == r["ra_2"] for r in rows)
    res = cli(
        "xmatch", q, q, "-o", tmp_path / "x.parquet", "--print-format", "json", "--lake", demo.lake.root
    )
    assert res.exit_code == 2 and "--print-format" in res.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_table_keeps_full_precision_and_every_column_at_any_width(demo, cli):
    q = "SELECT * FROM photometry_wide WHERE field_id = 'smacs0723' ORDER BY source_id LIMIT 3"
    con = connect(demo.lake)
    t = run_sql(con, q)
    res = cli.runner.invoke(
        app, ["sql", q, "--lake", str(demo.lake.root)], env={"COLUMNS": "40"}, catch_exceptions=False
    )
    assert res.exit_code == 0, res.output
    for name in t.column_names:
        assert f" {name} " in res.stdout, name
    for row in t.to_pylist():
        assert row["detection_id"] in res.stdout
        assert repr(row["ra"]) in res.stdout and repr(row["mag_F150W"]) in res.stdout
    assert "…" not in res.stdout


def test_a_narrow_terminal_table_never_hides_a_column(demo):
    from rich.console import Console

    from catalog.cli.util import print_table

    con = connect(demo.lake)
    t = run_sql(
        con,
        "SELECT detection_id, ra, dec, mag_F150W, mag_F200W, z, class FROM "
        "photometry_wide WHERE field_id = 'smacs0723' ORDER BY source_id LIMIT 2",
    )
    buf = io.StringIO()
    print_table(t, out=Console(file=buf, width=40, force_terminal=True, color_system=None))
    text = buf.getvalue()
    for name in t.column_names:
        assert name in text, name
    for row in t.to_pylist():
        assert row["detection_id"] in text and repr(row["ra"]) in text
    assert "…" not in text
    assert np.isfinite(t["ra"].to_numpy()).all()
