"""Arc magnification over the pixels above 10% of the peak, on a simulated SIS lens whose |mu|
is known analytically: mu = r / (r - theta_E) outside the Einstein ring."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from catalog.lensing import dls_ds
from catalog.queries.connection import connect
from catalog.runs.sourceplane import run_arc_magnification

from ..conftest import snapshot
from .sis import PIX, THETA_E, ZL, sis_lake

ZS = 2.0
R_ARC, PHI_ARC = 7.0, 0.6  # arcsec, rad


def _arc_centre_pix(shape):
    ny, nx = shape
    return (nx - 1) / 2 + R_ARC * np.cos(PHI_ARC) / PIX, (ny - 1) / 2 + R_ARC * np.sin(PHI_ARC) / PIX


@pytest.fixture(scope="module")
def arc(tmp_path_factory):
    root = tmp_path_factory.mktemp("arc")
    lake, ax, _ = sis_lake(root)
    ny, nx = ax.shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    x, y = (xx - (nx - 1) / 2) * PIX, (yy - (ny - 1) / 2) * PIX
    r, phi = np.hypot(x, y), np.arctan2(y, x)
    image = np.exp(-0.5 * ((r - R_ARC) / 0.25) ** 2 - 0.5 * ((phi - PHI_ARC) / 0.25) ** 2)
    image[120, 20] = 5.0  # a brighter source outside the aperture must not set the peak
    fits.PrimaryHDU(image, ax.wcs.to_header()).writeto(root / "arc.fits")
    x0, y0 = _arc_centre_pix(image.shape)
    ra, dec = (float(v) for v in ax.wcs.pixel_to_world_values(x0, y0))
    return lake, root / "arc.fits", image, r, ra, dec


def test_arc_magnification_matches_the_analytic_sis(arc, cli, tmp_path):
    lake, path, image, r, ra, dec = arc
    png = tmp_path / "arc.png"
    res = cli("lens", "arc-magnification", path, "--field", "simsis", "--model", "truth", "--ra", ra, "--dec",
              dec, "--radius", 2.5, "--z-source", ZS, "--name", "a1", "--plot", png,
              "--lake", lake.root)  # fmt: skip
    assert res.exit_code == 0, res.output
    assert png.stat().st_size > 10_000
    cur = connect(lake).execute("SELECT * FROM arc_magnifications")
    row = dict(zip([d[0] for d in cur.description], cur.fetchall()[0], strict=True))
    theta_e = THETA_E * float(dls_ds(ZL, ZS))
    x0, y0 = _arc_centre_pix(image.shape)
    yy, xx = np.mgrid[0 : image.shape[0], 0 : image.shape[1]]
    aperture = np.hypot(xx - x0, yy - y0) * PIX <= 2.5
    peak = image[aperture].max()
    pix = aperture & (image > 0.1 * peak)
    mu = r[pix] / (r[pix] - theta_e)
    print(f"arc |mu|: gccat {row['mu_mean']:.4f} (median {row['mu_median']:.4f}), analytic {mu.mean():.4f}")
    assert row["n_pixels"] == pix.sum() == row["n_pixels_mu"]
    assert row["mu_mean"] == pytest.approx(mu.mean(), rel=0.01)
    assert row["mu_median"] == pytest.approx(np.median(mu), rel=0.01)
    w = image[pix]
    assert row["mu_flux_weighted"] == pytest.approx(np.sum(mu * w) / w.sum(), rel=0.01)
    assert row["mu_p16"] <= row["mu_median"] <= row["mu_p84"]
    assert row["area_arcsec2"] == pytest.approx(pix.sum() * PIX**2, rel=1e-6)


def test_bad_arc_inputs_exit_2_and_leave_the_lake(arc, cli, tmp_path):
    lake, path, image, _, ra, dec = arc
    before = snapshot(lake)
    zero = tmp_path / "zero.fits"
    with fits.open(path) as h:
        fits.PrimaryHDU(np.zeros_like(image), h[0].header).writeto(zero)
    base = ["--field", "simsis", "--model", "truth", "--ra", ra, "--dec", dec, "--name", "b"]
    base += ["--lake", lake.root]
    for img, extra, needle in (
        (zero, ["--radius", 2.5, "--z-source", ZS], "no positive pixel"),
        (path, ["--radius", 2.5, "--z-source", 0.2], "behind the cluster"),
        (path, ["--radius", -1, "--z-source", ZS], "--radius"),
        (path, ["--radius", 2.5, "--z-source", ZS, "--threshold", 1.5], "--threshold"),
    ):
        res = cli("lens", "arc-magnification", img, *base, *extra)
        lines = res.stderr.strip().splitlines()
        assert res.exit_code == 2 and len(lines) == 1 and needle in lines[0], res.output
    with pytest.raises(Exception, match="no kappa and gamma"):
        run_arc_magnification(lake, "simsis", "nosuch", path, ra_deg=ra, dec_deg=dec, radius_arcsec=1,
                              z_source=ZS, arc="c")  # fmt: skip
    assert snapshot(lake) == before
