"""PSF-fit photometry (catalog.images.psfphot) on a simulated scene with a known truth."""

from __future__ import annotations

import numpy as np
import pytest

from catalog.errors import GccatError
from catalog.images.psfphot import psf_photometry
from catalog.simulations.mosaic import make_psf_photometry_scene


@pytest.fixture(scope="module")
def scene():
    """Isolated sources and close pairs (no galaxy), fitted from priors 0.3 px off the truth."""
    m = make_psf_photometry_scene(rng=np.random.default_rng(5), n_galaxy=0)
    t = m["truth"]
    rng = np.random.default_rng(9)
    xp = t["x"] + rng.normal(0, 0.3, t["x"].size)
    yp = t["y"] + rng.normal(0, 0.3, t["y"].size)
    fit = psf_photometry(m["image"], xp, yp, m["psf"], error=m["error"], background="plane")
    return m, fit


def _stats(m, fit, which):
    t = m["truth"]
    k = t["set"] == which
    ratio = fit["flux"][k] / t["flux"][k] - 1
    pull = (fit["flux"][k] - t["flux"][k]) / fit["flux_err"][k]
    dx = np.hypot(fit["x"][k] - t["x"][k], fit["y"][k] - t["y"][k]) / np.sqrt(2)
    return t["snr"][k], ratio, pull, dx, fit["quality"][k]


def test_isolated_unbiased_with_unit_pulls(scene):
    snr, ratio, pull, dx, q = _stats(*scene, "isolated")
    assert (q == 0).all()
    assert abs(np.median(ratio[snr > 20])) < 0.01
    assert 0.85 < np.std(pull) < 1.15


def test_positions_at_snr_20(scene):
    snr, _, _, dx, _ = _stats(*scene, "isolated")
    # per-axis error, median over S/N 15-30 (about S/N 20)
    assert np.median(dx[(snr > 15) & (snr < 30)]) < 0.1


def test_close_pairs_fitted_together(scene):
    m, fit = scene
    snr, ratio, pull, _, q = _stats(m, fit, "pair")
    assert (fit["group_size"][m["truth"]["set"] == "pair"] >= 2).all()
    assert abs(np.median(ratio[snr > 20])) < 0.02
    assert 0.85 < np.std(pull) < 1.2


def test_bad_inputs():
    img = np.random.default_rng(0).normal(size=(50, 50))
    good = np.ones((5, 5))
    with pytest.raises(GccatError, match="odd sides"):
        psf_photometry(img, [25], [25], np.ones((4, 5)))
    bad = good.copy()
    bad[1, 1] = np.nan
    with pytest.raises(GccatError, match="NaN"):
        psf_photometry(img, [25], [25], bad)
    with pytest.raises(GccatError, match="background"):
        psf_photometry(img, [25], [25], good, background="quadric")
    with pytest.raises(GccatError, match="max_shift_pix"):
        psf_photometry(img, [25], [25], good, max_shift_pix=0)
    with pytest.raises(GccatError, match="fit_size_pix"):
        psf_photometry(img, [25], [25], good, fit_size_pix=10)
