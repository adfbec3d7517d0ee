"""PSF matching (catalog.images.matching): window optimised on the growth curves."""

import numpy as np
import pytest

from catalog.constants import APERTURE_RADII_ARCSEC
from catalog.errors import GccatError
from catalog.images import growth_curve, make_psf
from catalog.images.matching import convolve_image, match_psf

RADII = np.array(APERTURE_RADII_ARCSEC) / 0.03


def test_narrow_psf_matched_to_broad_target_within_one_percent():
    src, tgt = make_psf(2.0, size=51), make_psf(4.8, size=51)  # F150W-like to F444W-like
    k = match_psf(src, tgt, RADII)
    assert k.max_deviation < 0.01
    assert np.max(np.abs(k.ee_matched / k.ee_target - 1)) < 0.01
    assert 0 <= k.alpha <= 1 and 0 <= k.beta <= 1 and k.alpha + k.beta <= 1 + 1e-9
    assert np.isclose(k.kernel.sum(), 1.0)
    # the unmatched source is far off: the kernel does the work
    assert np.max(np.abs(k.ee_source / k.ee_target - 1)) > 0.2


def test_target_narrower_than_source_is_refused():
    with pytest.raises(GccatError, match="not broader than the source"):
        match_psf(make_psf(4.0, size=41), make_psf(2.0, size=41), RADII)
    with pytest.raises(GccatError, match="odd sides"):
        match_psf(make_psf(2.0, size=40), make_psf(4.0, size=41), RADII)


def test_convolved_image_has_the_target_psf_and_propagated_errors():
    src, tgt = make_psf(2.0, size=41), make_psf(4.0, size=41)
    k = match_psf(src, tgt, RADII)
    img = np.zeros((101, 101))
    img[30:71, 30:71] = src * 1000.0
    out, err, bad = convolve_image(img, k.kernel, error=np.ones_like(img))
    stamp = out[30:71, 30:71]
    assert np.max(np.abs(growth_curve(stamp, RADII) / growth_curve(tgt, RADII) - 1)) < 0.01
    assert np.allclose(err[50, 50], np.sqrt((k.kernel**2).sum()))
    assert not bad.any()
