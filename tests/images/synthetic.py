"""Helpers of the image tests: the pixel scale, the Sparkler apertures, S/N and matching.

S/N of a point source of flux F in a band of per-pixel noise sigma:

* peak S/N = F max(psf) / sigma, the S/N of its brightest pixel (for a PSF centred on a pixel);
* optimal S/N = F / (sigma sqrt(A_eff)), A_eff = 1 / sum(psf^2), that of a PSF fit.

For the Moffat PSF of FWHM 2 px of the test mosaics, peak S/N = 0.59 optimal S/N. With n bands
of equal depth summed, both scale by sqrt(n).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from catalog.constants import ANNULUS_WIDTH_ARCSEC, APERTURE_RADII_ARCSEC
from catalog.images.background import _dilate

PIXEL_SCALE = 0.03  # arcsec per pixel
RADII = np.array(APERTURE_RADII_ARCSEC) / PIXEL_SCALE  # the Sparkler apertures: radii 0.12-0.20"
ANNULUS = ANNULUS_WIDTH_ARCSEC / PIXEL_SCALE
MATCH_PIX = 1.5


def arcmin2(n_pix: int) -> float:
    return n_pix * PIXEL_SCALE**2 / 3600.0


def snr_peak(flux, psf, sigma=1.0, n_bands=1):
    return np.asarray(flux) * psf.max() / sigma * np.sqrt(n_bands)


def snr_optimal(flux, psf, sigma=1.0, n_bands=1):
    return np.asarray(flux) / (sigma * np.sqrt(1.0 / np.sum(psf**2))) * np.sqrt(n_bands)


def match(truth_x, truth_y, det_x, det_y) -> np.ndarray:
    """Distance from each true source to the nearest detection, pixels."""
    if len(det_x) == 0:
        return np.full(len(truth_x), np.inf)
    return cKDTree(np.c_[det_x, det_y]).query(np.c_[truth_x, truth_y])[0]


def away_from_mask(mask, x, y, radius=3.0) -> np.ndarray:
    grown = _dilate(mask, radius)
    return ~grown[np.rint(y).astype(int), np.rint(x).astype(int)]
