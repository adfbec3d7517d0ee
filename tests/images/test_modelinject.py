"""Full-model injection (Firefly Sparkle): point sources plus a Sersic component, fitted, injected
at random places in a stamp and refitted; the biweight scale of the refitted fluxes is the error."""

from __future__ import annotations

import numpy as np
import pytest

from catalog import images as im
from catalog.errors import GccatError
from catalog.images.modelinject import Component, model_injection, templates

COMPONENTS = [
    Component("c1", "point", -3.0, 1.0),
    Component("c2", "point", 2.5, -0.5),
    Component("c3", "point", 6.0, 3.0),
    Component("arc", "sersic", 1.0, 0.5, r_eff_pix=4.0, sersic_n=1.0, ellipticity=0.6, theta_deg=30.0),
]
TRUE_FLUX = np.array([60.0, 40.0, 25.0, 400.0])


def _scene(sky, rng):
    psf = im.make_psf(2.0)
    shape = (360, 360)
    x0, y0 = 180.2, 179.7
    t = templates(COMPONENTS, psf, 30, x0, y0)
    img = sky(shape) + rng.normal(0, 1.0, shape)
    cx, cy = int(np.floor(x0 + 0.5)), int(np.floor(y0 + 0.5))
    img[cy - 30 : cy + 31, cx - 30 : cx + 31] += np.tensordot(TRUE_FLUX, t, axes=1)
    return img, psf, x0, y0


def test_model_injection_error_is_the_formal_error_on_white_noise_and_larger_on_structure():
    rng = np.random.default_rng(8)
    flat = lambda shape: np.zeros(shape)  # noqa: E731
    img, psf, x0, y0 = _scene(flat, rng)
    r = model_injection(
        img, psf, COMPONENTS, x0, y0, stamp_pix=330, n_inject=100, rng=rng, error=np.ones(img.shape)
    )
    # the fit at the model's place: within 3 sigma of the truth
    assert np.all(np.abs(r["flux"] - TRUE_FLUX) < 3 * r["flux_err_formal"])
    ratio = r["flux_error_biweight"] / r["flux_err_formal"]
    print(f"\nwhite noise: biweight / formal error {ratio.round(2)}, bias / error "
          f"{(r['flux_bias_biweight'] / r['flux_err_formal']).round(2)}")  # fmt: skip
    assert np.all((ratio > 0.75) & (ratio < 1.3))
    assert np.all(np.abs(r["flux_bias_biweight"]) < 0.4 * r["flux_err_formal"])
    assert r["flux_out"].shape == (100, 4)
    assert np.all(np.hypot(r["x"] - x0, r["y"] - y0) >= 2 * 30)

    def ripple(shape):
        yy, xx = np.indices(shape)
        return 0.8 * np.sin(2 * np.pi * xx / 23.0) * np.sin(2 * np.pi * yy / 31.0)

    img2, *_ = _scene(ripple, np.random.default_rng(8))
    r2 = model_injection(img2, psf, COMPONENTS, x0, y0, stamp_pix=330, n_inject=100,
                         rng=np.random.default_rng(2), error=np.ones(img.shape))  # fmt: skip
    ratio2 = r2["flux_error_biweight"] / r2["flux_err_formal"]
    print(f"ripple: biweight / formal error {ratio2.round(2)}")
    # the extended component feels the unmodelled structure most
    assert ratio2[3] > 1.5 and ratio2[3] > ratio[3]


def test_model_injection_refuses_a_model_off_the_image():
    psf = im.make_psf(2.0)
    with pytest.raises(GccatError, match="off the image"):
        model_injection(np.zeros((50, 50)), psf, COMPONENTS, 5.0, 5.0, stamp_pix=30, n_inject=10,
                        rng=np.random.default_rng(0))  # fmt: skip


def _fits_scene(tmp_path):
    from astropy.io import fits
    from astropy.wcs import WCS

    rng = np.random.default_rng(8)
    img, psf, x0, y0 = _scene(lambda shape: np.zeros(shape), rng)
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [342.18321, -44.53088]
    w.wcs.crpix = [181, 181]
    w.wcs.cdelt = [-0.03 / 3600, 0.03 / 3600]
    h = w.to_header()
    h["BUNIT"], h["FILTER"] = "nJy", "F150W"
    path = tmp_path / "arc_f150w.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(img, h, name="SCI"),
                  fits.ImageHDU(np.ones_like(img), h, name="ERR")]).writeto(path)  # fmt: skip
    fits.PrimaryHDU(psf).writeto(tmp_path / "psf.fits")
    lines = ["component,kind,ra,dec,r_eff_arcsec,sersic_n,ellipticity,theta_deg"]
    for c in COMPONENTS:
        ra, dec = w.pixel_to_world_values(x0 + c.dx, y0 + c.dy)
        lines.append(f"{c.name},{c.kind},{ra:.10f},{dec:.10f},{c.r_eff_pix * 0.03},{c.sersic_n},"
                     f"{c.ellipticity},{c.theta_deg}")  # fmt: skip
    (tmp_path / "model.csv").write_text("\n".join(lines) + "\n")
    return path


def test_inject_model_cli_writes_each_component_to_the_lake(tmp_path, cli):
    from catalog.lake import Lake
    from catalog.queries.connection import connect

    from ..conftest import snapshot

    image = _fits_scene(tmp_path)
    lake = Lake.create(tmp_path / "lake")
    base = ("inject-model", image, "--psf", tmp_path / "psf.fits", "--field", "as1063", "--arc", "a1",
            "--lake", lake.root)  # fmt: skip
    res = cli(*base, "--model", tmp_path / "model.csv", "--n", "60", "--stamp", "9")
    assert res.exit_code == 0, res.output
    rows = (
        connect(lake)
        .execute(
            "SELECT component, flux_njy, flux_err_formal_njy, flux_err_injection_njy "
            "FROM model_injection_components ORDER BY component"
        )
        .fetchall()
    )
    assert [r[0] for r in rows] == ["arc", "c1", "c2", "c3"]
    truth = dict(zip([c.name for c in COMPONENTS], TRUE_FLUX, strict=True))
    for name, f, e, e_inj in rows:
        assert abs(f - truth[name]) < 3 * e
        assert 0.7 < e_inj / e < 1.4
    n = connect(lake).execute("SELECT n_injections, stamp_arcsec FROM model_injection_runs").fetchall()[0]
    assert n == (60, 9.0)
    before = snapshot(lake)
    bad = tmp_path / "bad.csv"
    for text, message in [
        ("component,kind,ra\nx,point,342.18\n", "no column 'dec'"),
        ("component,kind,ra,dec\nx,disk,342.18321,-44.53088\n", "kind must be one of point, sersic"),
        ("component,kind,ra,dec\nx,sersic,342.18321,-44.53088\n", "needs column 'r_eff_arcsec'"),
    ]:
        bad.write_text(text)
        res = cli(*base, "--model", bad)
        assert res.exit_code == 2 and message in res.stderr, res.output
        assert len(res.stderr.strip().splitlines()) == 1
    res = cli(*base, "--model", tmp_path / "model.csv", "--n", "5")
    assert res.exit_code == 2 and "--n must be" in res.stderr
    assert snapshot(lake) == before
