"""``gccat photometry --method psf`` on a simulated mosaic: rows, provenance, bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from catalog.lake import Lake
from catalog.queries.connection import connect
from catalog.simulations import simulate_mosaic_files
from ingest.catalog import ingest_catalog
from tests.conftest import snapshot


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    out = tmp_path_factory.mktemp("psfphot")
    s = simulate_mosaic_files(
        out,
        "p",
        bands=("F150W",),
        shape=(400, 400),
        n_points=80,
        seed=4,
        bcg=False,
        flux_range_njy=(200.0, 5000.0),
        min_sep_pix=25.0,
    )
    truth = Table.read(s["truth"], format="ascii.csv", comment="#")
    truth[["id", "ra", "dec"]].write(out / "positions.csv", format="ascii.csv")
    return out, s, truth


def _lake(tmp_path, sim):
    out, s, _ = sim
    lake = Lake.create(tmp_path / "lake")
    ingest_catalog(lake, out / "positions.csv", field_id="sim", name="gc")
    return lake


def test_psf_rows_beside_aperture_rows(cli, tmp_path, sim):
    out, s, truth = sim
    lake = _lake(tmp_path, sim)
    img = s["images"]["F150W"]
    base = ("photometry", img, "--field", "sim", "--catalog", "gc", "--lake", lake.root)
    assert cli(*base, "--psf", s["psf"]).exit_code == 0
    r = cli(*base, "--method", "psf", "--psf", s["psf"], "--background", "constant")
    assert r.exit_code == 0, r.output
    con = connect(lake.root)
    ph = con.sql("SELECT method, flux_njy, flux_err_njy, quality, detection_id FROM photometry").df()
    psf = ph[ph.method == "psf"]
    assert len(psf) == len(truth)
    flux_of = dict(zip(truth["id"].astype(str), truth["flux_njy"], strict=True))
    true = np.array([flux_of[d.split("/")[2]] for d in psf.detection_id])
    assert abs(np.median(psf.flux_njy / true - 1)) < 0.01
    # the aperture rows stay the best flux: psf rows never replace aperture-corrected ones
    best = con.sql("SELECT DISTINCT method FROM photometry_best").fetchall()
    assert best == [("aperture",)]
    opts = json.loads(con.sql("SELECT options FROM ingests WHERE name = 'gc/F150W/psf'").fetchall()[0][0])
    assert opts["method"] == "psf" and opts["background"] == "constant"
    assert opts["fit_size_arcsec"] == 0.8 and opts["max_shift_pix"] == 2.0 and opts["psf_sha256"]


def test_bad_inputs_exit_2_lake_unchanged(cli, tmp_path, sim):
    out, s, _ = sim
    lake = _lake(tmp_path, sim)
    img = s["images"]["F150W"]
    even = tmp_path / "even.fits"
    fits.writeto(even, np.ones((24, 24)))
    nan = tmp_path / "nan.fits"
    a = np.ones((25, 25))
    a[3, 3] = np.nan
    fits.writeto(nan, a)
    before = snapshot(lake)
    base = ("photometry", img, "--field", "sim", "--catalog", "gc", "--lake", lake.root, "--method", "psf")
    for extra in (
        (),
        ("--psf", even),
        ("--psf", nan),
        ("--psf", s["psf"], "--max-shift", "0"),
        ("--psf", s["psf"], "--fit-size", "-1"),
        ("--psf", s["psf"], "--background", "spline"),
        ("--psf", s["psf"], "--apertures", "0.16"),  # was silently ignored
        ("--psf", s["psf"], "--refit-size", "0.8"),  # not below --fit-size
        ("--psf", s["psf"], "--fit-size", "0.5", "--refit-size", "0.49"),  # 17 px both
        ("--psf", s["psf"], "--refit-size", "-0.1"),
    ):
        r = cli(*base, *extra)
        assert r.exit_code == 2, (extra, r.output)
        assert len(r.output.strip().splitlines()) == 1, r.output
    r = cli(
        "photometry", img, "--field", "sim", "--catalog", "gc", "--lake", lake.root, "--method", "tractor"
    )
    assert r.exit_code == 2
    # PSF-fit options with aperture photometry: an error, no longer silently ignored
    for extra in (("--fit-size", "0.8"), ("--background", "plane"), ("--refit-size", "0.3")):
        r = cli(*base[:-2], "--psf", s["psf"], *extra)
        assert r.exit_code == 2 and "need --method psf" in r.output, (extra, r.output)
    assert snapshot(lake) == before


def test_psf_ranks_above_aperture_sums_only(cli, tmp_path, sim):
    """The existing rule (sql/photometry_ranked.sql): psf rows are "other methods", below every
    aperture-corrected row, above aperture sums without aperture correction (not total fluxes).
    """
    out, s, truth = sim
    lake = _lake(tmp_path, sim)
    img = s["images"]["F150W"]
    base = ("photometry", img, "--field", "sim", "--catalog", "gc", "--lake", lake.root)
    assert cli(*base, "--apertures", "0.16").exit_code == 0  # no --psf: aperture sums
    assert cli(*base, "--method", "psf", "--psf", s["psf"]).exit_code == 0
    con = connect(lake.root)
    assert con.sql("SELECT DISTINCT method FROM photometry_best").fetchall() == [("psf",)]
    ranked = con.sql("SELECT method, count(*) FROM photometry_ranked GROUP BY ALL ORDER BY 1").fetchall()
    assert ranked == [("aperture", len(truth)), ("psf", len(truth))]


def test_inject_psf_corrections_for_psf_rows(cli, tmp_path, sim):
    """``gccat inject --method psf``: PSF point sources recovered by the PSF fit, stored like the
    aperture injections (no aperture radius), and applied to the psf rows of the same fit."""
    out, s, truth = sim
    lake = _lake(tmp_path, sim)
    img = s["images"]["F150W"]
    base = ("--field", "sim", "--catalog", "gc", "--lake", lake.root, "--psf", s["psf"])
    assert cli("photometry", img, *base, "--method", "psf").exit_code == 0
    r = cli("inject", img, *base, "--method", "psf", "--n", "4", "--locations", "5", "--max-targets", "12")
    assert r.exit_code == 0, r.output
    con = connect(lake.root)
    src = con.sql("SELECT * FROM injection_sources").df()
    assert len(src) == 12 * 4 * 5 and src.aperture_radius_arcsec.isna().all()
    ok = src[src.flux_in_njy > 20 * src.flux_err_njy]
    assert abs(np.median(ok.flux_out_njy / ok.flux_in_njy - 1)) < 0.01
    assert src.recovered.mean() > 0.9
    comp = con.sql("SELECT * FROM injection_completeness").df()
    assert comp.n_injected.sum() == len(src) and comp.aperture_radius_arcsec.isna().all()
    params = json.loads(con.sql("SELECT params FROM injection_runs").fetchall()[0][0])
    assert params["method"] == "psf" and params["background"] == "quadratic" and params["fit_size_pix"] == 27
    n_corr = con.sql("SELECT count(*) FROM injection_corrections").fetchall()[0][0]
    assert n_corr == 12
    got = con.sql(
        "SELECT count(*), count(correction_run) FROM photometry_injection_corrected WHERE method = 'psf'"
    ).fetchall()[0]
    assert got[0] == len(truth) and 0 < got[1] <= 12
    # a psf fit with another background is not calibrated by that run
    assert cli("photometry", img, *base, "--method", "psf", "--background", "plane").exit_code == 0
    con = connect(lake.root)
    assert con.sql(
        "SELECT count(correction_run) FROM photometry_injection_corrected WHERE method = 'psf'"
    ).fetchall()[0] == (0,)
    # bad options: exit 2, one line, lake unchanged
    before = snapshot(lake)
    for extra in (
        ("--method", "psf", "--mode", "random"),
        ("--method", "tractor"),
        ("--background", "plane"),
        ("--method", "psf", "--background", "spline"),
        ("--method", "psf", "--fit-size", "0"),
        ("--method", "psf", "--max-shift", "-1"),
        ("--refit-size", "0.3"),
        ("--method", "psf", "--refit-size", "1.0"),
    ):
        r = cli("inject", img, *base, *extra)
        assert r.exit_code == 2, (extra, r.output)
        assert len(r.output.strip().splitlines()) == 1, r.output
    assert snapshot(lake) == before


def test_psf_photometry_on_dask_tiles_is_bit_identical(cli, tmp_path, sim, dask_scheduler):
    """--scheduler with 128 px tiles (pickled to a worker process) writes the same rows, to the
    bit, as the in-process fit; a --tile below 64 px is an error."""
    out, s, truth = sim
    img = s["images"]["F150W"]
    rows = []
    for name, extra in (("a", ()), ("b", ("--scheduler", dask_scheduler, "--tile", "128"))):
        lake = Lake.create(tmp_path / name)
        ingest_catalog(lake, out / "positions.csv", field_id="sim", name="gc")
        base = ("photometry", img, "--field", "sim", "--catalog", "gc", "--lake", lake.root)
        r = cli(*base, "--method", "psf", "--psf", s["psf"], *extra)
        assert r.exit_code == 0, r.output
        con = connect(lake.root)
        rows.append(
            con.sql(
                "SELECT detection_id, flux_njy, flux_err_njy, quality FROM photometry ORDER BY detection_id"
            ).fetchall()
        )
        opts = json.loads(con.sql("SELECT options FROM ingests WHERE name = 'gc/F150W/psf'").fetchall()[0][0])
        assert opts["scheduler"] == (dask_scheduler if extra else "in-process")
    assert len(rows[0]) == len(truth) and rows[0] == rows[1]
    r = cli(*base, "--method", "psf", "--psf", s["psf"], "--scheduler", dask_scheduler, "--tile", "8")
    assert r.exit_code == 2 and "--tile" in r.output


def test_inject_psf_on_dask_is_bit_identical(cli, tmp_path, sim, dask_scheduler):
    """gccat inject --method psf --scheduler: the same injection rows and corrections, to the bit,
    as in process (one task per batch of injection tiles, pickled to a worker process)."""
    out, s, truth = sim
    img = s["images"]["F150W"]
    got = []
    for name, extra in (("a", ()), ("b", ("--scheduler", dask_scheduler))):
        lake = Lake.create(tmp_path / name)
        ingest_catalog(lake, out / "positions.csv", field_id="sim", name="gc")
        base = ("--field", "sim", "--catalog", "gc", "--lake", lake.root, "--psf", s["psf"])
        opts = ("--method", "psf", "--n", "3", "--locations", "30", "--max-targets", "3")
        r = cli("inject", img, *base, *opts, *extra)
        assert r.exit_code == 0, r.output
        con = connect(lake.root)
        got.append(
            (
                con.sql(
                    "SELECT detection_id, flux_in_njy, flux_out_njy, flux_err_njy FROM injection_sources "
                    "ORDER BY ALL"
                ).fetchall(),  # fmt: skip
                con.sql("SELECT detection_id, c2, c1, c0 FROM injection_corrections ORDER BY ALL").fetchall(),
            )
        )
    assert len(got[0][0]) == 3 * 3 * 30 and got[0] == got[1]
