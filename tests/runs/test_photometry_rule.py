"""Which flux per source and band the fits use: the rule of photometry_best, --photometry, and
lakes whose aperture photometry older gccat stored by diameter.

The lakes here are written row by row through the lake's own transactions, so that every
candidate flux and every correction is known exactly.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from catalog.constants import FINAL_APERTURE_RADIUS_ARCSEC
from catalog.errors import GccatError
from catalog.lake import Lake, new_ingest_id
from catalog.lake.schemas import (
    INJECTION_CORRECTIONS,
    INJECTION_RUNS,
    PHOTOMETRY,
    RENAMED_COLUMNS,
    TABLES,
)
from catalog.queries.connection import connect
from catalog.runs.fits import photometry_choice, run_fit_ssp, select
from ingest.catalog import ingest_catalog, register_field_and_bands
from ingest.pointsources import aperture_radius

RADII = (0.12, 0.16, 0.20)
# a correction that is easy to recognise: intrinsic = 1e-4 f^2 + 1.1 f + 2 (nJy)
C2, C1, C0 = 1e-4, 1.1, 2.0


def corrected(f):
    return C2 * f * f + C1 * f + C0


def aperture_flux(source: int, radius: float, corrected_ap: bool = True) -> float:
    """A distinct flux per source, radius and kind of row (nJy)."""
    return 100.0 * source + 1000.0 * radius + (0.0 if corrected_ap else 0.5)


def positions(tmp_path, n=5, fluxes=None):
    lines = ["id,ra,dec,flux_F444W,fluxerr_F444W"]
    for i in range(1, n + 1):
        f = (fluxes or {}).get(i)
        lines.append(
            f"{i},{110.8 + 1e-4 * i:.6f},-73.45,{'' if f is None else f},{'' if f is None else 0.1 * f}"
        )
    p = tmp_path / "pub.csv"
    p.write_text("\n".join(lines) + "\n")
    return p


def write_photometry(
    lake: Lake,
    rows: list[dict],
    *,
    kind="photometry",
    sha256="image-a",
    psf: str | None = "psf.fits",
    name="pub/aperture",
):
    """Append photometry rows (dicts of detection, band, radius, flux, method) as one ingest."""
    ingest_id = new_ingest_id()
    table = pa.Table.from_pylist(
        [
            {
                "detection_id": r["detection_id"],
                "field_id": "f",
                "band": r["band"],
                "flux_njy": r["flux"],
                "flux_err_njy": 0.05 * r["flux"],
                "is_upper_limit": r.get("upper", False),
                "method": r.get("method", "aperture"),
                "aperture_radius_arcsec": r.get("radius"),
                "mw_corrected": True,
                "quality": 0,
                "ingest_id": ingest_id,
            }
            for r in rows
        ],
        schema=PHOTOMETRY,
    )
    bands = sorted({r["band"] for r in rows})
    with lake.transaction(kind, ingest_id=ingest_id) as tx:
        register_field_and_bands(lake, tx, "f", bands, np.array([110.8]), np.array([-73.45]), [])
        tx.append("photometry", table)
        tx.commit(
            name=name,
            field_id="f",
            sha256=sha256,
            n_rows=len(rows),
            n_photometry=len(rows),
            options={
                "run": "photometry",
                "bands_measured": bands,
                "psf": psf,
                "aperture_corrected": psf is not None,
            },
        )
    return ingest_id


def write_corrections(lake: Lake, pairs: list[tuple[str, float]], *, band="F444W", sha256="image-a"):
    """An injection run on image ``sha256`` with the polynomial for each (detection, radius)."""
    run_id = new_ingest_id()
    corr = pa.Table.from_pylist(
        [
            {
                "run_id": run_id,
                "field_id": "f",
                "detection_id": d,
                "band": band,
                "aperture_radius_arcsec": r,
                "c2": C2,
                "c1": C1,
                "c0": C0,
                "flux_error_biweight_njy": None,
                "ingest_id": run_id,
            }
            for d, r in pairs
        ],
        schema=INJECTION_CORRECTIONS,
    )
    run = pa.Table.from_pylist(
        [
            {
                "run_id": run_id,
                "field_id": "f",
                "catalog": "pub",
                "band": band,
                "mode": "targets",
                "image": "a.fits",
                "image_sha256": sha256,
                "psf": "psf.fits",
                "n_flux": 20,
                "n_locations": 20,
                "flux_range_lo": 0.1,
                "flux_range_hi": 10.0,
                "aperture_radii_arcsec": list(RADII),
                "seed": 0,
                "params": "{}",
                "ingest_id": run_id,
            }
        ],
        schema=INJECTION_RUNS,
    )
    with lake.transaction("injection", ingest_id=run_id) as tx:
        tx.append("injection_corrections", corr)
        tx.append("injection_runs", run)
        tx.commit(name="pub/F444W/inject-targets", field_id="f", sha256=sha256, options={"run": "inject"})
    return run_id


@pytest.fixture(scope="module")
def ranked_lake(tmp_path_factory):
    """Five sources. F444W: published fluxes for 1 and 2; gccat aperture photometry (PSF
    corrected) of all five at the three radii; injection corrections for 1 and 3 at every
    radius, for 4 at 0.12" only, and for 5 from another image. F277W: for source 3 a psf-method
    flux and aperture sums without aperture correction; for 4 only uncorrected sums at 0.12"
    and 0.20"."""
    tmp = tmp_path_factory.mktemp("rule")
    lake = Lake.create(tmp / "lake")
    ingest_catalog(
        lake, positions(tmp, fluxes={1: 5000.0, 2: 6000.0}), field_id="f", name="pub", mw_corrected=True
    )
    d = {i: f"f/pub/{i}" for i in range(1, 6)}
    write_photometry(
        lake,
        [
            {"detection_id": d[i], "band": "F444W", "radius": r, "flux": aperture_flux(i, r)}
            for i in d
            for r in RADII
        ],
    )
    write_corrections(lake, [(d[i], r) for i in (1, 3) for r in RADII] + [(d[4], 0.12)])
    write_corrections(lake, [(d[5], r) for r in RADII], sha256="image-b")
    write_photometry(
        lake,
        [{"detection_id": d[3], "band": "F277W", "radius": None, "flux": 777.0, "method": "psf"}],
        kind="catalog",
        name="psfcat",
        sha256="cat",
    )
    write_photometry(
        lake,
        [
            {
                "detection_id": d[i],
                "band": "F277W",
                "radius": r,
                "flux": aperture_flux(i, r, corrected_ap=False),
            }
            for i, radii in ((3, RADII), (4, (0.12, 0.20)))
            for r in radii
        ],
        psf=None,
        sha256="image-c",
        name="pub/F277W/aperture",
    )
    return lake, d


def best(con, view="photometry_best"):
    rows = con.execute(
        f"SELECT detection_id, band, method, aperture_radius_arcsec, flux_njy, "
        f"aperture_corrected, injection_corrected FROM {view}"
    ).fetchall()
    return {(r[0], r[1]): r[2:] for r in rows}


def test_photometry_best_follows_the_documented_rule(ranked_lake):
    lake, d = ranked_lake
    con = connect(lake)
    got = best(con)
    final = FINAL_APERTURE_RADIUS_ARCSEC
    # catalog photometry first, even where injection-corrected aperture photometry exists
    assert got[(d[1], "F444W")][:2] == ("catalog", None)
    assert got[(d[1], "F444W")][2] == pytest.approx(5000.0)
    assert got[(d[2], "F444W")][0] == "catalog"
    # then injection-corrected at the final radius
    assert got[(d[3], "F444W")] == pytest.approx(
        ("aperture", final, corrected(aperture_flux(3, final)), True, True)
    )
    # aperture-corrected at the final radius beats injection-corrected at another radius
    assert got[(d[4], "F444W")] == pytest.approx(("aperture", final, aperture_flux(4, final), True, False))
    # a correction measured on another image does not apply
    assert got[(d[5], "F444W")] == pytest.approx(("aperture", final, aperture_flux(5, final), True, False))
    # another method beats aperture sums without aperture correction
    # other methods rank by aperture_corrected IS NULL, and leave the views as false (not NULL)
    assert got[(d[3], "F277W")] == pytest.approx(("psf", None, 777.0, False, False))
    # among uncorrected sums: the nearest the final radius, the larger of two as near
    assert got[(d[4], "F277W")] == pytest.approx(
        ("aperture", 0.20, aperture_flux(4, 0.20, corrected_ap=False), False, False)
    )
    # photometry_wide shows the same fluxes
    wide = dict(con.execute("SELECT detection_id, flux_F444W FROM photometry_wide").fetchall())
    for i in d:
        assert wide[d[i]] == pytest.approx(got[(d[i], "F444W")][2])
    # the injection correction is never applied to photometry without aperture correction
    raw = con.execute(
        "SELECT count(*) FROM photometry_injection_corrected WHERE NOT aperture_corrected "
        "AND correction_run IS NOT NULL"
    ).fetchall()[0][0]
    assert raw == 0


@pytest.mark.parametrize(
    ("spec", "expect"),
    [
        ("best", {1: 5000.0, 2: 6000.0, 3: corrected(aperture_flux(3, 0.16)), 4: aperture_flux(4, 0.16)}),
        ("catalog", {1: 5000.0, 2: 6000.0}),
        (
            "aperture:0.12",
            {
                i: (corrected(aperture_flux(i, 0.12)) if i in (1, 3, 4) else aperture_flux(i, 0.12))
                for i in range(1, 6)
            },
        ),
        ("aperture:0.12:measured", {i: aperture_flux(i, 0.12) for i in range(1, 6)}),
        (
            "APERTURE:0.2",
            {
                i: (corrected(aperture_flux(i, 0.2)) if i in (1, 3) else aperture_flux(i, 0.2))
                for i in range(1, 6)
            },
        ),
        ("method:aperture", {1: corrected(aperture_flux(1, 0.16)), 5: aperture_flux(5, 0.16)}),
    ],
)
def test_the_fit_option_chooses_what_select_returns(ranked_lake, spec, expect):
    lake, d = ranked_lake
    sel = select(lake, "catalog = 'pub'", z=1.378, photometry=spec)
    j = sel.bands.index("F444W")
    got = {int(o.split("/")[-1]): f for o, f in zip(sel.object_id, sel.flux[:, j], strict=True)}
    for i, f in expect.items():
        assert got[i] == pytest.approx(f), (spec, i)
    if spec == "catalog":
        assert sorted(got) == [1, 2]  # objects without catalog photometry are not fitted


def test_bad_photometry_choices_are_one_line_errors(ranked_lake, cli):
    lake, _ = ranked_lake
    for spec, text in (
        ("aperture:x", "radius R"),
        ("aperture:-1", "(0, 5]"),
        ("median", "best, catalog"),
        ("aperture:0.16:raw", "best, catalog"),
        ("method:a;b", "method name"),
    ):
        with pytest.raises(GccatError, match=text.replace("(", r"\(").replace("]", r"\]")):
            photometry_choice(spec)
    res = cli("fit", "ssp", "--photometry", "aperture:nope", "--lake", lake.root)
    assert res.exit_code == 2 and "--photometry" in res.stderr and "Traceback" not in res.output
    with pytest.raises(GccatError, match="with --photometry aperture:0.3"):
        select(lake, "catalog = 'pub'", z=1.378, photometry="aperture:0.3")


def test_the_fits_record_the_photometry_they_used(ranked_lake, cli):
    lake, _ = ranked_lake
    res = cli(
        "fit",
        "ssp",
        "--where",
        "catalog = 'pub'",
        "--z",
        "1.378",
        "--n-av",
        "1",
        "--samples",
        "0",
        "--photometry",
        "aperture:0.12",
        "--min-bands",
        "1",
        "--lake",
        lake.root,
    )  # one or two bands per source here: fewer than the fit's 3 parameters
    assert res.exit_code == 0, res.output
    r = run_fit_ssp(lake, "catalog = 'pub'", z=1.378, n_av=1, n_samples=0, min_bands=1)
    con = connect(lake)
    cfg = [
        json.loads(c) for (c,) in con.execute("SELECT config FROM fit_runs ORDER BY created_at").fetchall()
    ]
    assert cfg[0]["photometry"] == "aperture:0.12" and "0.12 arcsec" in cfg[0]["photometry_rule"]
    assert cfg[1]["photometry"] == "best" and "photometry_best" in cfg[1]["photometry_rule"]
    # different photometry, different fits
    chi2 = con.execute(
        "SELECT run_id, sum(chi2_min) FROM fit_posteriors WHERE parameter = 'age_gyr' GROUP BY run_id"
    ).fetchall()
    assert len({round(c, 6) for _, c in chi2}) == 2 and r["n_objects"] == 5


# ------------------------------------------------------------------ lakes of older gccat


def test_radius_columns_say_radius_with_valid_ucds():
    from astropy.io.votable.ucd import parse_ucd

    for table, renamed in RENAMED_COLUMNS.items():
        schema = TABLES[table][0]
        for new, (old, factor) in renamed.items():
            assert old not in schema.names and factor == 0.5
            md = schema.field(new).metadata
            assert md[b"unit"] == b"arcsec" and b"radi" in md[b"description"].lower()
            parse_ucd(md[b"ucd"].decode(), check_controlled_vocabulary=True)


def _make_old_table(lake: Lake, table: str) -> pa.Schema:
    """Recreate ``table`` empty with the schema older gccat created: diameter columns."""
    schema, parts = TABLES[table]
    ((new, (old, _)),) = RENAMED_COLUMNS[table].items()
    fields = [f.with_name(old) if f.name == new else f for f in schema]
    old_schema = pa.schema(fields)
    shutil.rmtree(lake.table_path(table))
    DeltaTable.create(str(lake.table_path(table)), old_schema, partition_by=parts or None)
    return old_schema


def _write_old(lake: Lake, table: str, schema: pa.Schema, rows: list[dict]) -> None:
    write_deltalake(
        str(lake.table_path(table)),
        pa.Table.from_pylist(rows, schema=schema),
        mode="append",
        partition_by=TABLES[table][1] or None,
    )


@pytest.fixture
def old_lake(tmp_path):
    """A lake as older gccat left it: aperture photometry of three sources stored with
    aperture_arcsec = 0.24, 0.32, 0.40 (diameters of the radii 0.12, 0.16, 0.20") and an
    injection run whose corrections and sources say aperture_arcsec too."""
    lake = Lake.create(tmp_path / "lake")
    ingest_catalog(lake, positions(tmp_path, n=3), field_id="f", name="pub")
    old = {t: _make_old_table(lake, t) for t in RENAMED_COLUMNS}
    d = {i: f"f/pub/{i}" for i in range(1, 4)}
    phot_id = new_ingest_id()
    _write_old(
        lake,
        "photometry",
        old["photometry"],
        [
            {
                "detection_id": d[i],
                "field_id": "f",
                "band": "F444W",
                "flux_njy": aperture_flux(i, r),
                "flux_err_njy": 1.0,
                "is_upper_limit": False,
                "method": "aperture",
                "aperture_arcsec": 2 * r,
                "mw_corrected": False,
                "quality": 0,
                "ingest_id": phot_id,
            }
            for i in d
            for r in RADII
        ],
    )
    with lake.transaction("photometry", ingest_id=phot_id) as tx:
        register_field_and_bands(lake, tx, "f", ["F444W"], np.array([110.8]), np.array([-73.45]), [])
        # the options older gccat wrote: diameters, and a PSF path (no aperture_corrected key)
        tx.commit(
            name="pub/F444W/aperture",
            field_id="f",
            sha256="image-a",
            n_rows=3,
            n_photometry=9,
            options={
                "run": "photometry",
                "bands_measured": ["F444W"],
                "apertures_arcsec": [2 * r for r in RADII],
                "psf": "psf.fits",
            },
        )
    run_id = new_ingest_id()
    _write_old(
        lake,
        "injection_runs",
        old["injection_runs"],
        [
            {
                "run_id": run_id,
                "field_id": "f",
                "catalog": "pub",
                "band": "F444W",
                "mode": "targets",
                "image": "a.fits",
                "image_sha256": "image-a",
                "psf": "psf.fits",
                "n_flux": 20,
                "n_locations": 20,
                "flux_range_lo": 0.1,
                "flux_range_hi": 10.0,
                "apertures_arcsec": [2 * r for r in RADII],
                "seed": 0,
                "params": "{}",
                "ingest_id": run_id,
            }
        ],
    )
    _write_old(
        lake,
        "injection_corrections",
        old["injection_corrections"],
        [
            {
                "run_id": run_id,
                "field_id": "f",
                "detection_id": d[1],
                "band": "F444W",
                "aperture_arcsec": 2 * r,
                "c2": C2,
                "c1": C1,
                "c0": C0,
                "flux_error_biweight_njy": None,
                "ingest_id": run_id,
            }
            for r in RADII
        ],
    )
    _write_old(
        lake,
        "injection_sources",
        old["injection_sources"],
        [
            {
                "run_id": run_id,
                "field_id": "f",
                "band": "F444W",
                "detection_id": d[1],
                "injection": k,
                "x": 1.0,
                "y": 1.0,
                "ra": 110.8,
                "dec": -73.45,
                "aperture_arcsec": 2 * r,
                "flux_in_njy": 100.0,
                "flux_out_njy": 95.0,
                "flux_err_njy": 5.0,
                "recovered": True,
                "ingest_id": run_id,
            }
            for k, r in enumerate(RADII)
        ],
    )
    with lake.transaction("injection", ingest_id=run_id) as tx:
        tx.commit(name="pub/F444W/inject-targets", field_id="f", sha256="image-a", options={"run": "inject"})
    return lake, d


def test_older_lakes_read_their_diameters_as_radii(old_lake):
    lake, d = old_lake
    con = connect(lake)
    radii = con.execute("SELECT DISTINCT aperture_radius_arcsec FROM photometry ORDER BY 1").fetchall()
    assert [r for (r,) in radii] == pytest.approx(list(RADII))
    assert con.execute("SELECT aperture_radii_arcsec FROM injection_runs").fetchall()[0][0] == pytest.approx(
        list(RADII)
    )
    for view in ("injection_corrections", "injection_sources", "injection_completeness"):
        got = con.execute(f"SELECT DISTINCT aperture_radius_arcsec FROM {view} ORDER BY 1").fetchall()
        assert [r for (r,) in got] == pytest.approx(list(RADII)), view
    # the rule works on them: older options say psf = a path, so they are aperture corrected,
    # and the diameter-labelled corrections meet the diameter-labelled photometry
    got = best(con)
    assert got[(d[1], "F444W")] == pytest.approx(
        ("aperture", 0.16, corrected(aperture_flux(1, 0.16)), True, True)
    )
    assert got[(d[2], "F444W")] == pytest.approx(("aperture", 0.16, aperture_flux(2, 0.16), True, False))
    # without DuckDB, as run_injection reads its reference fluxes
    assert sorted(set(aperture_radius(lake.live("photometry")).to_pylist())) == pytest.approx(list(RADII))


def test_newer_rows_written_into_an_older_lake_read_alongside(old_lake):
    lake, d = old_lake
    write_photometry(
        lake,
        [{"detection_id": d[i], "band": "F277W", "radius": 0.16, "flux": 10.0 * i} for i in d],
        name="pub/F277W/aperture",
    )
    con = connect(lake)
    rows = con.execute(
        "SELECT band, aperture_radius_arcsec, count(*) FROM photometry GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    assert rows == [("F277W", 0.16, 3)] + [("F444W", pytest.approx(r), 3) for r in RADII]
    assert best(con)[(d[2], "F277W")] == pytest.approx(("aperture", 0.16, 20.0, True, False))
    t = lake.live("photometry")
    assert "aperture_arcsec" in t.column_names  # the Delta table kept the old column
    assert sorted(aperture_radius(t).to_pylist()) == pytest.approx(sorted([0.16] * 3 + list(RADII) * 3))
