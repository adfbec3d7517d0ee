"""``gccat stack`` and ``gccat sizes`` on a simulated mosaic, into a lake: rows, files, bad options."""

from __future__ import annotations

import json

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from catalog.files import sha256_file
from catalog.images.stack import radial_profile
from catalog.lake import Lake
from catalog.lensing import pc_per_arcsec
from catalog.queries.connection import connect
from catalog.simulations import simulate_mosaic_files
from ingest.catalog import ingest_catalog, ingest_fields
from ingest.demo import bundled
from ingest.lens import ingest_lens_maps
from ingest.psf import run_psf_build
from tests.conftest import FIELDS, snapshot

FIELD = "as1063"  # z_cluster = 0.348; the mosaic is centred on the bundled lens-map patch
CENTRE = (342.17348, -44.53228)
Z_SOURCE = 1.5  # the catalog's sources lie behind the cluster (for --lens-model)
AS1063 = [bundled(f"as1063_lenstool_patch_bin4_{a}-arcsec-deflect.fits") for a in "xy"]


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    """45 isolated Moffat stars (FWHM 3 px) of 25-27 AB mag, their positions as catalog 'gc',
    and the band's PSF from gccat psf build; the AS1063 lens model 'lenstool'."""
    out = tmp_path_factory.mktemp("stack")
    sim = simulate_mosaic_files(out, "s", bands=("F150W",), shape=(640, 640), n_points=45,
                                psf_fwhm_pix=3.0, noise_njy=0.2, bcg=False, flux_range_njy=(57.5, 363.0),
                                min_sep_pix=72.0, seed=4, centre_deg=CENTRE)  # fmt: skip
    truth = Table.read(sim["truth"], format="ascii.csv", comment="#")
    truth[["id", "ra", "dec"]].write(out / "positions.csv", format="ascii.csv")
    lk = Lake.create(out / "lake")
    ingest_fields(lk, FIELDS)
    ingest_catalog(lk, out / "positions.csv", field_id=FIELD, name="gc", z=Z_SOURCE)
    ingest_lens_maps(lk, AS1063, field_id=FIELD, model="lenstool")
    run_psf_build(lk, sim["images"]["F150W"], out / "psf.fits", field_id=FIELD, cutout_arcsec=0.75)
    return lk, sim, truth, out


def test_stack_rows_file_and_profile(cli, lake):
    lk, sim, truth, out = lake
    img = sim["images"]["F150W"]
    r = cli("stack", img, "--field", FIELD, "--catalog", "gc", "--combine", "mean", "--plot", out / "st.png",
            "--lake", lk.root)  # fmt: skip
    assert r.exit_code == 0, r.output
    con = connect(lk.root)
    st = con.sql("SELECT * FROM stacks").df()
    assert len(st) == 1
    s = st.iloc[0]
    # the stars whose cutout is on the image (not in the zero-weight border) are stacked; the
    # mean stack's PSF-fit flux is their mean input flux within 2.5 sigma
    used = json.loads(s.params)["detection_ids"]
    assert s.n_selected == len(truth) and s.n_sources == len(used) >= 0.85 * len(truth)
    flux_of = dict(zip(truth["id"].astype(str), truth["flux_njy"], strict=True))
    mean_in = float(np.mean([flux_of[d.split("/")[2]] for d in used]))
    assert abs(s.fit_flux_njy - mean_in) < 2.5 * s.fit_flux_err_njy, (s.fit_flux_njy, mean_in)
    assert abs(s.fwhm_ratio - 1) < 0.03
    assert (s.annulus_in_pix, s.annulus_out_pix, s.side_pix) == (5.0, 10.0, 25)
    # the PSF is the band's latest psf build; the stack FITS is under the lake, checksummed
    assert s.psf_run_id == con.sql("SELECT run_id FROM psf_models").fetchall()[0][0]
    path = lk.root / "files" / "stacks" / FIELD / f"F150W_{s.run_id}.fits"
    assert s.stack_path == str(path.resolve()) and sha256_file(path) == s.stack_sha256
    data, hdr = fits.getdata(path, header=True)
    assert data.shape == (25, 25) and hdr["NSOURCES"] == s.n_sources and hdr["BAND"] == "F150W"
    assert np.isclose(hdr["FITFLUX"], s.fit_flux_njy)
    prof = con.sql("SELECT * FROM stack_profiles ORDER BY radius_pix").df()
    assert len(prof) == 12 and np.allclose(prof.radius_arcsec, prof.radius_pix * 0.03)
    assert (abs(prof.ratio[:3] - 1) < 0.03).all()
    # against the simulated (true) PSF the stack's profile is within 2% out to 6 px; the ePSF
    # of psf build is itself 2-10% off at 4-8 px (its wings), which profile_max_dev shows
    true = radial_profile(fits.getdata(sim["psf"]), np.arange(0.0, 13.0))["profile"]
    assert (abs(prof.profile_stack[:6] / true[:6] - 1) < 0.02).all(), prof.profile_stack / true
    assert 0 < s.profile_max_dev < 0.2
    assert (out / "st.png").is_file()
    v = con.sql("SELECT * FROM stack_summary").df()
    assert len(v) == 1 and v.run_id[0] == s.run_id
    # a --where selection over photometry_wide (the sources have no photometry: source ids)
    ids = sorted(d.split("/")[2] for d in used)[:20]
    where = "source_id IN (" + ", ".join(f"'{i}'" for i in ids) + ")"
    r = cli("stack", img, "--field", FIELD, "--where", where, "--lake", lk.root)
    assert r.exit_code == 0, r.output
    n = connect(lk.root).sql("SELECT n_sources, selection FROM stack_summary").fetchall()
    assert n == [(20, where)]
    # re-centred on PSF-fitted positions instead: the same stars, the same flux within errors
    r = cli("stack", img, "--field", FIELD, "--catalog", "gc", "--centre", "psf", "--combine", "mean",
            "--lake", lk.root)  # fmt: skip
    assert r.exit_code == 0, r.output
    p = connect(lk.root).sql("SELECT * FROM stack_summary").df().iloc[0]
    assert p.n_sources == s.n_sources and abs(p.fit_flux_njy - s.fit_flux_njy) < 3 * s.fit_flux_err_njy
    assert abs(p.fwhm_ratio - 1) < 0.03


def test_sizes_from_the_stack_and_the_image(cli, lake):
    lk, sim, truth, out = lake
    img = sim["images"]["F150W"]
    assert cli("stack", img, "--field", FIELD, "--catalog", "gc", "--lake", lk.root).exit_code == 0
    r = cli("sizes", "--field", FIELD, "--image", img, "--n-sim", "60", "--sizes", "20,50,100,200,400",
            "--plot", out / "sz.png", "--lake", lk.root)  # fmt: skip
    assert r.exit_code == 0, r.output
    con = connect(lk.root)
    run = con.sql("SELECT * FROM size_limit_runs").df().iloc[0]
    stack = con.sql("SELECT * FROM stack_summary").df().iloc[0]
    assert run.stack_run_id == stack.run_id and np.isclose(run.flux_njy, stack.fit_flux_njy)
    assert np.isclose(run.noise_njy, 0.2) and run.noise_source == "median of 1/sqrt(weight)"
    assert np.isclose(run.pc_per_arcsec, float(pc_per_arcsec(0.348)))
    sizes = con.sql("SELECT * FROM size_limit_sizes ORDER BY r_h_pc").df()
    assert list(sizes.r_h_pc) == [20, 50, 100, 200, 400]
    assert np.allclose(sizes.r_h_pix, sizes.r_h_pc / run.pc_per_arcsec / 0.03)
    assert (np.diff(sizes.fwhm_mean_pix) > 0).all() and sizes.resolved.iloc[-1]
    assert run.threshold_r_h_pc is not None and 20 < run.threshold_r_h_pc < 400
    assert np.isclose(run.threshold_r_h_pc, run.threshold_r_h_pix * 0.03 * run.pc_per_arcsec)
    assert "3 x the point sources' FWHM scatter" in run.criterion
    lim = con.sql("SELECT * FROM size_limits_sim").df()
    assert len(lim) == 1 and np.isclose(lim.threshold_r_h_pc[0], run.threshold_r_h_pc)
    assert (out / "sz.png").is_file()


def test_sizes_with_mu_t_from_the_lens_model(cli, lake):
    """--lens-model: mu_t is the median 1/|1 - kappa - gamma| of the stack's sources (computed
    here from their kappa and gamma), the sizes sit at their redshift, and the limit shrinks."""
    lk, sim, truth, out = lake
    img = sim["images"]["F150W"]
    assert cli("stack", img, "--field", FIELD, "--catalog", "gc", "--lake", lk.root).exit_code == 0
    base = ("sizes", "--field", FIELD, "--image", img, "--n-sim", "40", "--sizes", "5,10,20,50,100,200",
            "--lake", lk.root)  # fmt: skip
    assert cli(*base).exit_code == 0
    r = cli(*base, "--lens-model", "lenstool")
    assert r.exit_code == 0, r.output
    con = connect(lk.root)
    runs = con.sql("SELECT lens_model, mu_t, z, threshold_r_h_arcsec FROM size_limits_sim").fetchall()
    by = {r[0]: r[1:] for r in runs}
    assert set(by) == {None, "lenstool"} and by[None][:2] == (1.0, 0.348)
    stack = con.sql("SELECT run_id, params FROM stacks ORDER BY run_id DESC LIMIT 1").fetchall()[0]
    ids = json.loads(stack[1])["detection_ids"]
    lens = con.execute(
        "SELECT kappa, gamma FROM lens_at_detections WHERE model_id = 'as1063/lenstool' AND NOT off_map "
        "AND NOT mu_undefined AND list_contains(?, detection_id)",
        [ids],
    ).fetchall()
    mu_t = np.median([1 / abs(1 - k - g) for k, g in lens])
    row = con.sql("SELECT * FROM size_limit_runs WHERE lens_model = 'lenstool'").df().iloc[0]
    assert row.n_lensed == len(lens) >= 10 and np.isclose(row.mu_t, mu_t, rtol=1e-9) and mu_t > 1.2
    assert row.z == Z_SOURCE and np.isclose(row.pc_per_arcsec, float(pc_per_arcsec(Z_SOURCE)))
    # the stretch resolves a smaller intrinsic size (arcsec) than no stretch
    assert by["lenstool"][2] < by[None][2]
    r = cli(*base, "--lens-model", "lenstool", "--mu-t", "2")
    assert r.exit_code == 2 and "exclude each other" in r.output


def test_per_source_limits_from_a_mu_t_grid(cli, lake):
    """--mu-t 1,2,4: one commit, three runs; size_limits_sim_sources interpolates the grid at each
    source's 1/|lambda_t| (log-log), agreeing with a direct simulation at that stretch; NULL
    outside the grid."""
    lk, sim, truth, out = lake
    img = sim["images"]["F150W"]
    assert cli("stack", img, "--field", FIELD, "--catalog", "gc", "--lake", lk.root).exit_code == 0
    base = ("sizes", "--field", FIELD, "--image", img, "--n-sim", "60", "--sizes", "5,10,20,40,80,160",
            "--lake", lk.root)  # fmt: skip
    before = len(connect(lk.root).sql("SELECT * FROM ingests").fetchall())
    r = cli(*base, "--mu-t", "1,2,4")
    assert r.exit_code == 0, r.output
    con = connect(lk.root)
    assert len(con.sql("SELECT * FROM ingests").fetchall()) == before + 1  # one commit
    grid = dict(
        con.sql(
            "SELECT mu_t, threshold_r_h_arcsec FROM size_limits_sim WHERE lens_model IS NULL "
            "AND mu_t IN (1, 2, 4)"
        ).fetchall()
    )
    assert set(grid) == {1.0, 2.0, 4.0} and grid[4.0] < grid[2.0] < grid[1.0]
    src = con.sql("SELECT * FROM size_limits_sim_sources WHERE band = 'F150W'").df()
    lens = con.sql(
        "SELECT detection_id, lambda_t, z FROM lens_at_detections WHERE model_id = 'as1063/lenstool' "
        "AND NOT off_map AND NOT mu_undefined"
    ).df()
    got = src.merge(lens, on="detection_id", suffixes=("", "_l"))
    assert len(got) >= 10
    mu = 1 / np.abs(got.lambda_t_l)
    inside = (mu >= 1) & (mu <= 4)
    assert inside.sum() >= 5 and got.threshold_r_h_arcsec[~inside].isna().all()
    # the log-log interpolation, computed here
    lm, lt = np.log([1.0, 2.0, 4.0]), np.log([grid[1.0], grid[2.0], grid[4.0]])
    expected = np.exp(np.interp(np.log(mu[inside]), lm, lt))
    assert np.allclose(got.threshold_r_h_arcsec[inside].astype(float), expected, rtol=1e-9)
    pc = got.threshold_r_h_arcsec[inside].to_numpy(float) * [float(pc_per_arcsec(z)) for z in got.z[inside]]
    assert np.allclose(got.threshold_r_h_pc[inside].to_numpy(float), pc)
    # against a direct simulation at one source's own stretch (60 realisations: ~10% scatter)
    one = float(np.median(mu[inside]))
    assert cli(*base, "--mu-t", f"{one:.6f}").exit_code == 0
    direct = (
        connect(lk.root)
        .execute("SELECT threshold_r_h_arcsec FROM size_limits_sim WHERE abs(mu_t - ?) < 1e-5", [one])
        .fetchall()[0][0]
    )
    interp = float(np.exp(np.interp(np.log(one), lm, lt)))
    assert abs(interp / direct - 1) < 0.1, (one, interp, direct)
    for bad in ("2,1", "0,1", "1," * 21 + "1"):
        r = cli(*base, "--mu-t", bad)
        assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1, (bad, r.output)
    r = cli(*base, "--mu-t", "1,2", "--plot", out / "x.png")
    assert r.exit_code == 2


def test_bad_options_exit_2_lake_unchanged(cli, lake, tmp_path):
    lk, sim, _, _ = lake
    img = sim["images"]["F150W"]
    before = snapshot(lk)
    base = ("stack", img, "--field", FIELD, "--lake", lk.root)
    for extra in (
        ("--annulus", "10,5"),
        ("--annulus", "0,5"),
        ("--annulus", "5"),
        ("--size", "0"),
        ("--size", "50"),
        ("--combine", "sum"),
        ("--centre", "peak"),
        ("--where", "no_such_column > 1"),
        ("--where", "1 = 1); DROP TABLE x; --"),
        ("--catalog", "nope"),
    ):
        r = cli(*base, *extra)
        assert r.exit_code == 2, (extra, r.output)
        assert len(r.output.strip().splitlines()) == 1, (extra, r.output)
        assert r.output.strip().startswith("gccat: error: "), r.output
    sizes = ("sizes", "--field", FIELD, "--band", "F150W", "--lake", lk.root)
    for extra in (
        ("--noise", "1", "--sizes", "50,20"),
        ("--noise", "1", "--sizes", "-5"),
        ("--noise", "1", "--mu-t", "0"),
        ("--noise", "1", "--n-sim", "3"),
        ("--noise", "1", "--nsigma", "0"),
        ("--noise", "-1"),
        ("--noise", "1", "--flux", "0"),
        ("--flux", "10"),  # neither --image nor --noise
        ("--noise", "1", "--flux", "10", "--psf", tmp_path / "missing.fits"),
        ("--noise", "1", "--flux", "10", "--pixel-scale", "0.06"),  # the PSF's is 0.03"
    ):
        r = cli(*sizes, *extra)
        assert r.exit_code == 2, (extra, r.output)
        assert len(r.output.strip().splitlines()) == 1, (extra, r.output)
        assert r.output.strip().startswith("gccat: error: "), r.output
    r = cli("sizes", "--field", FIELD, "--band", "F200W", "--noise", "1", "--flux", "5", "--lake", lk.root)
    assert r.exit_code == 2 and "no PSF of band F200W" in r.output
    assert snapshot(lk) == before
