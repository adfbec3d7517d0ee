"""Median stacks of simulated point sources (catalog.images.stack): profile and flux recovered."""

from __future__ import annotations

import numpy as np
import pytest

from catalog.errors import GccatError
from catalog.images.stack import annulus_background, measure_stack, stack_sources
from catalog.simulations.mosaic import make_test_mosaic

N_SIDE = 12  # 144 sources on a 40 px grid
FLUX = 150.0  # image units; noise 1 per pixel: PSF-weighted S/N ~ 40 per source


@pytest.fixture(scope="module")
def sources():
    """Equal-flux Moffat point sources (FWHM 2 px) at random sub-pixel positions, no galaxy."""
    rng = np.random.default_rng(11)
    g = np.arange(N_SIDE * N_SIDE)
    x = 30 + 40 * (g % N_SIDE) + rng.uniform(-0.5, 0.5, g.size)
    y = 30 + 40 * (g // N_SIDE) + rng.uniform(-0.5, 0.5, g.size)
    side = 40 * N_SIDE + 20
    m = make_test_mosaic((side, side), x=x, y=y, flux=FLUX, bcg=False, rng=rng)
    return m, x, y


@pytest.mark.parametrize("combine", ["median", "mean"])
def test_stack_recovers_psf_profile_and_mean_flux(sources, combine):
    m, x, y = sources
    s = stack_sources(m["image"], x, y, side_pix=25, error=m["error"], combine=combine)
    assert s.n_sources == x.size
    r = measure_stack(s, m["psf"])
    # the fitted flux is the input flux within its error (2.5 sigma)
    assert abs(r["flux"] - FLUX) < 2.5 * r["flux_err"], (r["flux"], r["flux_err"])
    assert r["flux_err"] < 0.01 * FLUX
    # profile: within 3% where the PSF is above 5% of its peak (r <= 2 px), consistent
    # with the errors (3 sigma) out to where the PSF is 0.1% of its peak
    core = r["profile_psf"] > 0.05 * r["profile_psf"].max()
    assert core.sum() >= 3
    assert np.all(np.abs(r["ratio"][core] - 1) < 0.03), r["ratio"][core]
    wings = r["profile_psf"] > 1e-3 * r["profile_psf"].max()
    pull = (r["ratio"][wings] - 1) / r["ratio_err"][wings]
    assert np.all(np.abs(pull) < 3.5), pull
    # FWHM of the stack (Moffat fit) within 3% of the PSF's
    assert abs(r["fwhm_stack_pix"] / r["fwhm_psf_pix"] - 1) < 0.03


def test_without_recentring_the_stack_is_broader(sources):
    """Sub-pixel re-centring matters: cutouts stacked at the integer pixel are blurred."""
    m, x, y = sources
    sharp = measure_stack(stack_sources(m["image"], x, y, error=m["error"]), m["psf"])
    blurred = measure_stack(stack_sources(m["image"], np.rint(x), np.rint(y), error=m["error"]), m["psf"])
    # the integer-pixel stack of sources at their true sub-pixel positions: broader core
    assert blurred["fwhm_stack_pix"] > sharp["fwhm_stack_pix"] * 1.03


def test_annulus_background_is_the_sky(sources):
    m, x, y = sources
    b = annulus_background(m["image"] + 7.0, x, y, (5, 10))
    # the Moffat wings at 5-10 px add a little: the median is within 0.1 of the 7.0 added
    assert abs(np.median(b) - 7.0) < 0.1


def test_bad_inputs(sources):
    m, x, y = sources
    with pytest.raises(GccatError, match="odd"):
        stack_sources(m["image"], x, y, side_pix=24)
    with pytest.raises(GccatError, match="annulus"):
        stack_sources(m["image"], x, y, annulus_pix=(10, 5))
    with pytest.raises(GccatError, match="combine"):
        stack_sources(m["image"], x, y, combine="sum")
    with pytest.raises(GccatError, match="at least"):
        stack_sources(m["image"], [1.0, 2.0], [1.0, 2.0])
