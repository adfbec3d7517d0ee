"""Empirical PSFs (catalog.images.epsf): stars of a simulated image stacked into a PSF."""

import numpy as np
import pytest

from catalog.errors import GccatError
from catalog.images import growth_curve, make_psf
from catalog.images.epsf import empirical_psf, psf_fwhm_pix
from catalog.simulations.mosaic import make_test_mosaic

FWHM = 3.0
CUTOUT = 25  # 0.75" at 0.03"/pix


@pytest.fixture(scope="module")
def stars():
    """45 isolated Moffat stars (FWHM 3 px) of 25 to 27 AB mag (57 to 363 nJy) on 0.2 nJy noise."""
    return make_test_mosaic(
        (640, 640),
        n_points=45,
        bcg=False,
        min_sep_pix=72.0,
        psf_fwhm_pix=FWHM,
        psf_size=67,
        noise_sigma=0.2,
        flux_range=(57.5, 363.0),
        rng=np.random.default_rng(4),
    )


@pytest.fixture(scope="module")
def built(stars):
    return empirical_psf(stars["image"], cutout_pix=CUTOUT, mask=stars["weight"] == 0)


def test_built_psf_matches_the_simulated_one(built):
    psf, cand = built
    assert 20 <= psf.n_stars <= 45 and cand.selected.sum() == psf.n_stars
    assert np.isclose(psf.psf.sum(), 1.0) and psf.psf.shape == (CUTOUT, CUTOUT)
    truth = make_psf(FWHM, size=CUTOUT)
    assert abs(psf_fwhm_pix(psf.psf) / psf_fwhm_pix(truth) - 1) < 0.02
    radii = [2.0, 4.0, 0.16 / 0.03, 0.20 / 0.03, 10.0]
    ee, ee_true = growth_curve(psf.psf, radii), growth_curve(truth, radii)
    assert np.max(np.abs(ee / ee_true - 1)) < 0.02


def test_the_cut_keeps_only_faint_compact_sources(built):
    _, cand = built
    sel = cand.selected
    assert (cand.mag_ab[sel] >= 25).all() and (cand.mag_ab[sel] <= 27).all()
    assert (cand.r_h_pix[sel] < 3).all()


def test_too_few_stars_is_one_line_naming_the_cut(stars):
    with pytest.raises(
        GccatError, match=r"only \d+ of \d+ sources pass the star cut \(25 <= mag <= 25.2"
    ) as e:
        empirical_psf(stars["image"], cutout_pix=CUTOUT, mag_range=(25.0, 25.2), mask=stars["weight"] == 0)
    assert "\n" not in str(e.value)
    with pytest.raises(GccatError, match="increasing"):
        empirical_psf(stars["image"], cutout_pix=CUTOUT, mag_range=(27.0, 25.0))
