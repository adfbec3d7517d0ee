"""Injection, injection-recovery and the flux correction (``catalog.images.injection``).

Measured biases are printed (``pytest -s``) so that drifts are visible.
"""

from __future__ import annotations

import numpy as np
import pytest
from astropy.stats import biweight_scale

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


#: Sky ripple left in the image, per pixel (the noise is 1).
RIPPLE_AMPLITUDE = 2.0
#: Bright targets (S/N ~ 27 in the middle aperture: a well-determined polynomial), injected 10-20 px
#: away so that their own light barely reaches the locations.
TARGET_FLUX = 400.0


def test_location_scatter_adds_what_the_locations_scatter_beyond_their_noise():
    """Sparkler-mode injections near 30 targets, 5 fluxes x 20 locations, on white noise and on
    white noise plus an unsubtracted sky ripple (wavelength 7-9 px, under the annulus scale).
    The excess sqrt(scatter^2 - noise^2) of the corrected fluxes over the locations equals, to
    within its sampling error, the scatter of a direct measurement: what the sky (ripple and the
    targets' wings) adds to the same apertures at the same locations, the photometry of the
    image minus that of its noise alone (the annulus median is not linear, so the noise stays
    in both), through the polynomial's slope."""
    rng = np.random.default_rng(11)
    psf = im.make_psf(2.0)
    shape = (600, 600)
    gx, gy = np.meshgrid(np.arange(6) * 90 + 75.3, np.arange(5) * 110 + 80.6)  # 30 targets
    tx, ty = gx.ravel(), gy.ravel()
    noise = rng.normal(0, 1.0, shape)
    yy, xx = np.indices(shape)
    ripple = RIPPLE_AMPLITUDE * np.sin(2 * np.pi * xx / 7.0) * np.sin(2 * np.pi * yy / 9.0)
    err = np.ones(shape)
    k = 1  # the middle aperture
    out = {}
    for name, sky in (("white", np.zeros(shape)), ("ripple", ripple)):
        clean = im.inject_point_sources(sky, psf, tx, ty, np.full(tx.size, TARGET_FLUX))
        img = clean + noise
        ref = im.aperture_photometry(img, tx, ty, RADII, error=err, psf=psf)["flux"][:, k]
        inj = im.injection_recovery(img, psf, tx, ty, ref, RADII, error=err, rng=np.random.default_rng(3),
                                    n_flux=5, n_locations=20, flux_range=(0.5, 2.0), min_sep_pix=10.0,
                                    max_sep_pix=20.0)  # fmt: skip
        excess, direct = [], []
        for t in range(tx.size):
            s = inj["target"] == t
            coeffs = im.fit_flux_correction(inj["flux_out"][s, k], inj["flux_in"][s])
            scatter, noise_part = im.location_scatter(
                coeffs, inj["flux_in"][s], inj["flux_out"][s, k], inj["flux_err"][s, k], ref[t]
            )
            excess.append(np.sqrt(max(scatter**2 - noise_part**2, 0.0)))
            level = inj["flux_in"][s][np.argmin(np.abs(np.log(inj["flux_in"][s] / ref[t])))]
            at = s & (inj["flux_in"] == level)
            xy = (inj["x"][at], inj["y"][at])
            added = (
                im.aperture_photometry(img, *xy, RADII, psf=psf, error=err)["flux"][:, k]
                - im.aperture_photometry(noise, *xy, RADII, psf=psf, error=err)["flux"][:, k]
            )
            slope = abs(np.polyval(np.polyder(coeffs), ref[t]))
            direct.append(biweight_scale(added) * slope)
        out[name] = (np.array(excess), np.array(direct))
    rms = {k: (np.sqrt(np.mean(e**2)), np.sqrt(np.mean(d**2))) for k, (e, d) in out.items()}
    print(f"rms excess / direct: white {rms['white'][0]:.2f} / {rms['white'][1]:.2f}, "
          f"ripple {rms['ripple'][0]:.2f} / {rms['ripple'][1]:.2f}")  # fmt: skip
    assert rms["ripple"][1] > 4 * rms["white"][1]  # the ripple is what the locations add
    # over 30 targets the variance-level excess matches the direct scatter
    assert 0.75 < rms["ripple"][0] / rms["ripple"][1] < 1.33
    # on white noise what is left is the sampling error of a 20-location scale difference
    assert rms["white"][0] < 0.5 * rms["ripple"][0]
