"""PSF stamps and growth curves (``catalog.images.psf``)."""

from __future__ import annotations

import numpy as np
import pytest

from catalog import images as im


def test_psf_normalised_with_the_requested_fwhm():
    for kind in ("moffat", "gaussian"):
        psf = im.make_psf(4.0, size=41, kind=kind)
        assert psf.sum() == pytest.approx(1.0) and psf.shape == (41, 41)
        row = psf[20] / psf[20].max()
        above = np.flatnonzero(row >= 0.5)
        # half-maximum crossing by linear interpolation on each side
        left = above[0] - (row[above[0]] - 0.5) / (row[above[0]] - row[above[0] - 1])
        right = above[-1] + (row[above[-1]] - 0.5) / (row[above[-1]] - row[above[-1] + 1])
        assert right - left == pytest.approx(4.0, rel=0.05)


def test_growth_curve_monotonic_to_one_and_gaussian_exact():
    psf = im.make_psf(2.0)
    radii = np.linspace(0.5, 20.0, 60)
    g = im.growth_curve(psf, radii)
    assert (np.diff(g) >= 0).all()
    assert (np.diff(g[radii < 12]) > 0).all()
    assert g[-1] == pytest.approx(1.0, abs=1e-12)  # r = 20 covers the 25x25 stamp
    # A Gaussian: integrating over pixels (make_psf), then treating each pixel as uniform
    # (exact aperture overlap), adds about 1/12 px^2 of variance each.
    gauss = im.make_psf(3.0, size=41, kind="gaussian")
    var = (3.0 / im.FWHM_PER_SIGMA) ** 2 + 2.0 / 12.0
    r = np.array([3.0, 4.5, 6.0])
    np.testing.assert_allclose(im.growth_curve(gauss, r), 1 - np.exp(-0.5 * r**2 / var), rtol=2e-3)
