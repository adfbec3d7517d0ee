"""``gccat psf build`` and ``gccat psf match`` on simulated FITS files, into a lake."""

import numpy as np
import pytest
from astropy.io import fits
from typer.testing import CliRunner

from catalog.cli.app import app
from catalog.images import growth_curve, make_psf
from catalog.lake import Lake
from catalog.queries.connection import connect
from catalog.simulations import simulate_mosaic_files


def refused(res, *needles):
    lines = res.stderr.strip().splitlines()
    assert res.exit_code == 2, (res.exit_code, res.output)
    assert len(lines) == 1 and lines[0].startswith("gccat: error: "), res.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    out = tmp_path_factory.mktemp("psf")
    sim = simulate_mosaic_files(
        out,
        "s",
        bands=("F150W",),
        shape=(640, 640),
        n_points=45,
        psf_fwhm_pix=3.0,
        noise_njy=0.2,
        bcg=False,
        flux_range_njy=(57.5, 363.0),
        min_sep_pix=72.0,
        seed=4,
    )
    Lake.create(out / "lake")
    return out, sim["images"]["F150W"]


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_build_then_match_writes_files_and_lake_rows(files):
    out, img = files
    lake = out / "lake"
    res = run("psf", "build", img, "--field", "simf", "--out", out / "p.fits", "--cutout", "0.75",
              "--plot", "--lake", lake)  # fmt: skip
    assert res.exit_code == 0, res.output
    psf, hdr = fits.getdata(out / "p.fits", header=True)
    assert hdr["BAND"] == "F150W" and np.isclose(hdr["PIXSCALE"], 0.03) and hdr["NSTARS"] >= 20
    assert (hdr["MAGMIN"], hdr["MAGMAX"], hdr["RHMAX"], hdr["OVERSAMP"]) == (25, 27, 3, 2)
    assert psf.shape == (25, 25) and (out / "p.png").is_file()
    target = make_psf(4.8, size=25)
    fits.PrimaryHDU(target, fits.Header([("PIXSCALE", 0.03)])).writeto(out / "t.fits")
    res = run("psf", "match", "--psf", out / "p.fits", "--target", out / "t.fits", "--out", out / "k.fits",
              "--image", img, "--out-image", out / "m.fits", "--plot", "--lake", lake)  # fmt: skip
    assert res.exit_code == 0, res.output
    k = fits.getheader(out / "k.fits")
    assert k["MAXDEV"] < 0.01 and 0 <= k["WALPHA"] <= 1 and 0 <= k["WBETA"] <= 1
    with fits.open(out / "m.fits") as h:
        assert h["SCI"].data.shape == (640, 640) and "ERR" in h and h["SCI"].header["PSFMATCH"] == "k.fits"
    con = connect(Lake(lake))
    n, fwhm, ee = con.execute("SELECT n_stars, fwhm_pix, ee FROM psf_models").fetchall()[0]
    assert n == hdr["NSTARS"] and abs(fwhm / 3.0 - 1) < 0.05
    assert np.allclose(ee, growth_curve(psf, np.array([0.12, 0.16, 0.2]) / 0.03))
    a, b, dev = con.execute("SELECT window_alpha, window_beta, max_ee_deviation FROM psf_kernels").fetchall()[
        0
    ]
    assert (a, b) == (pytest.approx(k["WALPHA"], abs=1e-6), pytest.approx(k["WBETA"], abs=1e-6))
    assert dev == pytest.approx(k["MAXDEV"])
    kinds = set(con.execute("SELECT kind FROM ingests").fetchall())
    assert kinds == {("psf_model",), ("psf_kernel",)}


def test_bad_inputs_are_one_line_exit_2(files):
    out, img = files
    lake = out / "lake"
    refused(run("psf", "build", img, "--field", "f", "--mag-range", "27,25", "--lake", lake), "--mag-range")
    refused(run("psf", "build", img, "--field", "f", "--rh-max", "-1", "--lake", lake), "--rh-max")
    refused(run("psf", "build", img, "--field", "f", "--cutout", "0", "--lake", lake), "--cutout")
    refused(
        run("psf", "build", img, "--field", "f", "--cutout", "0.75", "--mag-range", "30,31", "--lake", lake),
        "sources pass the star cut (30 <= mag <= 31 AB, r_h < 3 px",
    )
    fits.PrimaryHDU(make_psf(4.0, size=25), fits.Header([("PIXSCALE", 0.03)])).writeto(out / "wide.fits")
    fits.PrimaryHDU(make_psf(2.0, size=25), fits.Header([("PIXSCALE", 0.03)])).writeto(out / "narrow.fits")
    refused(
        run("psf", "match", "--psf", out / "wide.fits", "--target", out / "narrow.fits", "--lake", lake),
        "not broader than the source",
    )
    refused(
        run("psf", "match", "--psf", out / "narrow.fits", "--target", out / "wide.fits", "--regularization",
            "1", "--lake", lake),
        "--regularization",
    )  # fmt: skip
