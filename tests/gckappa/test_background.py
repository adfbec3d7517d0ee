"""Contamination from outside the lens map: a background density from a second field (or a
density per kpc^2) subtracted from the radial profile and the boxes of a clustered mock.

The numbers are printed (``pytest -s``) so drifts are visible.
"""

from __future__ import annotations

import numpy as np
import pytest

from catalog import gckappa as cr
from catalog.errors import GccatError
from catalog.lensing import kpc_per_arcsec
from catalog.simulations.gcs import simulate_gcs

SCALE = 0.2  # arcsec per pixel
SHAPE = (300, 300)
CENTRE = (149.5, 151.0)
BG = 0.8  # true uniform background, GCs per arcsec^2
#: The second field (background only), arcsec^2: four times the map (60" x 60").
SECOND_FIELD_ARCSEC2 = 4 * SHAPE[0] * SHAPE[1] * SCALE**2


def _cluster_kappa() -> np.ndarray:
    yy, xx = np.indices(SHAPE)
    theta = np.hypot(xx - CENTRE[0], yy - CENTRE[1]) * SCALE
    return 15.0 / (2.0 * np.sqrt(theta**2 + 3.0**2))


def _mock(seed: int):
    """Cluster GCs following kappa, the same field with a uniform background, and the count of
    a background-only second field.
    """
    rng = np.random.default_rng(seed)
    kappa = _cluster_kappa()
    cx, cy = simulate_gcs(kappa, SCALE, rng, A=0.5, B=0.7)
    bx, by = simulate_gcs(np.zeros(SHAPE), SCALE, rng, background_per_arcsec2=BG)
    n_second = int(rng.poisson(BG * SECOND_FIELD_ARCSEC2))
    return kappa, (cx, cy), (np.r_[cx, bx], np.r_[cy, by]), n_second


def test_second_field_background_is_recovered_and_subtraction_gives_the_cluster_profile():
    edges = np.geomspace(1.0, 30.0, 9)
    pulls, chi2, dof = [], 0.0, 0
    for seed in range(5):
        kappa, (cx, cy), (px, py), n_second = _mock(100 + seed)
        bg, bg_err = cr.background_from_counts(n_second, SECOND_FIELD_ARCSEC2)
        pulls.append((bg - BG) / bg_err)
        assert abs(bg - BG) < 2 * bg_err
        cluster = cr.radial_profile(cx, cy, kappa, None, None, CENTRE, edges, SCALE)
        mixed = cr.radial_profile(px, py, kappa, None, None, CENTRE, edges, SCALE, bg, bg_err)
        # mixed - cluster is the background realised in each annulus minus the recovered one:
        # its error is the Poisson error of the background count and that of bg.
        n_bg = mixed["n_gc"] - cluster["n_gc"]
        assert np.all(n_bg >= 0)
        err = np.hypot(np.sqrt(BG * mixed["area_arcsec2"]) / mixed["area_arcsec2"], bg_err)
        d = (mixed["sigma_gc_bgsub"] - cluster["sigma_gc"]) / err
        assert np.all(np.abs(d) < 3.5), d
        chi2 += float(np.sum(d**2))
        dof += d.size
        # the reported error covers the cluster Poisson error, the background and bg's error
        assert np.all(mixed["sigma_gc_bgsub_err"] >= err * 0.999)
        boxes = cr.box_stats(px, py, kappa, None, 25, SCALE)
        sub = cr.boxes_minus_background(boxes, bg, bg_err)
        cboxes = cr.box_stats(cx, cy, kappa, None, 25, SCALE)
        # summed over boxes: the realised background count minus bg x area, within its errors
        area = boxes["area_arcsec2"].sum()
        excess = sub["n_gc_bgsub"].sum() - cboxes["n_gc"].sum()
        assert abs(excess) < 3 * np.hypot(np.sqrt(BG * area), bg_err * area)
        np.testing.assert_allclose(sub["n_bg"], bg * boxes["area_arcsec2"])
    print(
        f"background: pulls {np.round(pulls, 2)} (truth {BG}/arcsec^2, "
        f"error {bg_err:.4f}); profile chi2/dof = {chi2:.1f}/{dof}"
    )
    assert chi2 / dof < 1.6


def test_background_per_kpc2_uses_the_angular_scale_at_the_cluster():
    k = kpc_per_arcsec(0.348)  # AS1063
    assert k == pytest.approx(4.92, abs=0.02)  # FlatLambdaCDM(70, 0.3)
    assert cr.background_per_arcsec2(0.015, k) == pytest.approx(0.015 * k**2)
    assert cr.background_per_arcsec2(0.0, k) == 0.0


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: cr.background_per_arcsec2(-0.01, 4.9), "must be finite and >= 0"),
        (lambda: cr.background_from_counts(3, 0.0), "area_arcsec2"),
        (lambda: cr.background_from_counts(-1, 10.0), "non-negative integer"),
        (lambda: kpc_per_arcsec(0.0), "lens redshift must be positive"),
    ],
)
def test_bad_background_values_raise(call, message):
    with pytest.raises(GccatError, match=message):
        call()
