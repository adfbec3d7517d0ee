"""Injection, injection-recovery and the flux correction (``catalog.images.injection``).

Measured biases are printed (``pytest -s``) so that drifts are visible.
"""

from __future__ import annotations

import numpy as np
import pytest

from catalog import images as im
from catalog.errors import GccatError
from catalog.simulations.mosaic import make_test_mosaic
from tests.images.synthetic import RADII


def test_injection_conserves_flux_at_subpixel_positions():
    rng = np.random.default_rng(3)
    psf = im.make_psf(2.0)
    base = rng.normal(size=(200, 200))
    x, y = rng.uniform(20, 180, 30), rng.uniform(20, 180, 30)
    flux = rng.uniform(10, 1000, 30)
    out = im.inject_point_sources(base, psf, x, y, flux)
    assert out.sum() - base.sum() == pytest.approx(flux.sum(), rel=1e-10)
    assert not np.shares_memory(out, base)
    one = im.inject_point_sources(np.zeros((60, 60)), psf, [30.37], [28.81], [1.0])
    yy, xx = np.indices(one.shape)
    # centroid within 0.05 px of the requested sub-pixel position
    assert (one * xx).sum() == pytest.approx(30.37, abs=0.05)
    assert (one * yy).sum() == pytest.approx(28.81, abs=0.05)
    # off the edge: only the part on the image is added
    edge = im.inject_point_sources(np.zeros((60, 60)), psf, [0.0], [30.0], [1.0])
    assert edge.sum() == pytest.approx(psf[:, 12:].sum(), rel=1e-12)


def test_injection_recovery_corrects_bcg_halo_bias():
    rng = np.random.default_rng(5)
    n = 8
    ang = np.linspace(0, 2 * np.pi, n, endpoint=False) + 0.3
    dist = rng.uniform(35, 55, n)  # r_eff = 40 px: the halo is steep and curved here
    tx, ty = 511.5 / 2 + dist * np.cos(ang), 511.5 / 2 + dist * np.sin(ang)
    tf = rng.uniform(100, 300, n)
    m = make_test_mosaic((512, 512), x=tx, y=ty, flux=tf, rng=rng)
    img, psf, w = m["image"], m["psf"], m["weight"]  # BCG halo not subtracted
    targets = im.aperture_photometry(img, tx, ty, RADII, weight=w, psf=psf)
    inj = im.injection_recovery(
        img, psf, tx, ty, targets["flux"][:, 0], RADII, weight=w, rng=rng, n_flux=10, n_locations=10
    )
    assert inj["flux_in"].size == n * 10 * 10 and inj["flux_out"].shape == (n * 100, 3)
    sep = np.hypot(inj["x"] - tx[inj["target"]], inj["y"] - ty[inj["target"]])
    assert (sep >= 4.0).all() and (sep <= 15.0).all()
    ref = targets["flux"][inj["target"], 0]
    np.testing.assert_allclose(np.unique(np.round(inj["flux_in"] / ref, 10)), np.geomspace(0.1, 10.0, 10))
    assert inj["recovered"][inj["flux_in"] > 2 * ref].all()
    # a separate set: other positions and fluxes near the same targets
    test = im.injection_recovery(
        img,
        psf,
        tx,
        ty,
        targets["flux"][:, 0],
        RADII,
        weight=w,
        rng=np.random.default_rng(99),
        n_flux=5,
        n_locations=6,
        flux_range=(0.3, 3.0),
    )
    k = RADII.size - 1  # the widest aperture reaches furthest into the halo
    before, after, tgt_before, tgt_after = [], [], [], []
    for i in range(n):
        fit = inj["target"] == i
        coeffs = im.fit_flux_correction(inj["flux_out"][fit, k], inj["flux_in"][fit])
        s = test["target"] == i
        before.append(test["flux_out"][s, k] / test["flux_in"][s] - 1)
        after.append(im.apply_flux_correction(coeffs, test["flux_out"][s, k]) / test["flux_in"][s] - 1)
        tgt_before.append(targets["flux"][i, k] / tf[i] - 1)
        tgt_after.append(im.apply_flux_correction(coeffs, targets["flux"][i, k]) / tf[i] - 1)
    b, a = np.median(np.concatenate(before)), np.median(np.concatenate(after))
    tb, ta = np.median(tgt_before), np.median(tgt_after)
    print(
        f"\nBCG halo (unsubtracted), r = {RADII[k]:.2f} px: separate-set bias {100 * b:.1f}%"
        f" -> {100 * a:.1f}%; targets {100 * tb:.1f}% -> {100 * ta:.1f}%"
    )
    assert b > 0.10  # the halo biases the local-background photometry
    assert abs(a) < 0.3 * abs(b)
    assert abs(ta) < 0.5 * abs(tb)


def test_injection_recovery_avoids_masks_and_handles_undetected_targets():
    rng = np.random.default_rng(12)
    img = rng.normal(size=(120, 120))
    mask = np.zeros(img.shape, dtype=bool)
    mask[:, :60] = True
    psf = im.make_psf(2.0)
    out = im.injection_recovery(
        img, psf, [62.0], [60.0], [-5.0], [2.0, 3.0], mask=mask, rng=rng, n_flux=3, n_locations=8
    )
    assert out["flux_in"].size == 24 and (out["x"] - 4.0 > 60).all()
    ref = im.aperture_photometry(img, [62.0], [60.0], [2.0], mask=mask, psf=psf)["flux_limit"][0, 0]
    assert out["flux_in"].min() == pytest.approx(0.1 * ref)  # reference = 3-sigma limit
    with pytest.raises(GccatError, match="rng"):
        im.injection_recovery(img, psf, [62.0], [60.0], [5.0], [2.0], rng=1)


def test_full_random_biweight_error_matches_aperture_error():
    rng = np.random.default_rng(7)
    m = make_test_mosaic((300, 300), x=[], y=[], flux=[], bcg=False, rng=rng)
    res = im.injection_random(
        m["image"], m["psf"], (150.0, 150.0), 200, 50.0, 300, RADII, rng=rng, weight=m["weight"]
    )
    assert res["flux_out"].shape == (300, 3) and res["flux_error_biweight"].shape == (3,)
    assert (np.abs(res["x"] - 150) <= 100).all() and (np.abs(res["y"] - 150) <= 100).all()
    ratio = res["flux_error_biweight"] / np.median(res["flux_err"], axis=0)
    print(
        f"\nfull-random: biweight scale / aperture error = {np.round(ratio, 3)}, "
        f"offset {np.round(res['flux_offset_biweight'], 2)} (flux 50)"
    )
    assert ((ratio > 0.8) & (ratio < 1.2)).all()
    assert (np.abs(res["flux_offset_biweight"]) < 3 * res["flux_error_biweight"] / np.sqrt(300)).all()


def test_flux_correction_polynomial_round_trip():
    measured = np.linspace(10, 500, 40)
    intrinsic = 3.0 + 1.1 * measured + 2e-4 * measured**2
    coeffs = im.fit_flux_correction(measured, intrinsic)
    np.testing.assert_allclose(coeffs, [2e-4, 1.1, 3.0], rtol=1e-8)
    np.testing.assert_allclose(im.apply_flux_correction(coeffs, measured), intrinsic, rtol=1e-10)
    with pytest.raises(GccatError, match="more than 2"):
        im.fit_flux_correction([1.0, np.nan, 3.0], [1.0, 2.0, 3.0])
