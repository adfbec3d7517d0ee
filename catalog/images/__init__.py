"""Image science on arrays: background, detection, PSFs, aperture photometry, injection-recovery.

The methods follow the source papers (``docs/methods.md``): the Abell S1063 GC detection, the
Sparkler aperture photometry and injection-recovery, the Firefly Sparkle full-random injection.
Each module holds one step, in the manner of photutils; the names below are re-exported here,
so ``from catalog.images import aperture_photometry`` works as well as the full path.

Routine Listings
----------------
:mod:`catalog.images.background`
    Robust (MAD) noise, the coarse box-median background, masks of bright and extended
    sources, of pixels without data and of the image border (:func:`robust_noise`,
    :func:`auto_mask`).
:mod:`catalog.images.detection`
    The high-pass filter, the brightest-pixel scan and sub-pixel peaks
    (:func:`gaussian_highpass`, :func:`detect_point_sources`, :class:`Detections`).
:mod:`catalog.images.psf`
    PSF stamps, growth curves, the PSF light in a background annulus (:func:`make_psf`,
    :func:`growth_curve`).
:mod:`catalog.images.epsf`
    Empirical PSFs: stars chosen on the r_h-magnitude diagram stacked with photutils'
    EPSFBuilder (:func:`~catalog.images.epsf.empirical_psf`).
:mod:`catalog.images.matching`
    PSF-matching kernels with a window optimised on the growth curves, and image convolution
    with error propagation (:func:`~catalog.images.matching.match_psf`).
:mod:`catalog.images.apertures`
    Forced circular-aperture photometry with local background, aperture correction and upper
    limits (:func:`aperture_photometry`).
:mod:`catalog.images.injection`
    Point-source injection, injection-recovery and the flux-correction polynomial
    (:func:`inject_point_sources`, :func:`injection_recovery`, :func:`psf_injection_recovery`,
    :func:`injection_random`, :func:`injection_random_stamps`, :func:`fit_flux_correction`,
    :func:`apply_flux_correction`, :func:`location_scatter`).
:mod:`catalog.images.fitsio`
    Reading FITS images and their WCS: the only module here that touches files.

Synthetic mosaics with a known truth are a simulator, in :mod:`catalog.simulations.mosaic`.

Notes
-----
Units and conventions: positions, radii, FWHMs and widths are in **pixels** of the array,
0-based, with pixel centres at integers (pixel ``i`` covers ``[i - 0.5, i + 0.5)``); arrays are
shaped ``(ny, nx)`` and indexed ``[iy, ix]``. Pixel values, noise and fluxes are in **image
units** (a flux is a sum of pixel values; the caller converts to nJy). **Arcsec** appear only in
the defaults of :mod:`catalog.constants` (aperture radii 0.12, 0.16, 0.20 arcsec, annulus
0.08 arcsec), which the caller divides by the pixel scale. Masks are boolean with ``True`` =
masked. Apart from :mod:`catalog.images.fitsio` there is no WCS, file or lake access here, and
random numbers come only from a ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

from catalog.images.apertures import MEDIAN_ERROR_FACTOR, aperture_photometry
from catalog.images.background import MAD_TO_SIGMA, auto_mask, robust_noise
from catalog.images.detection import DETECTION_FWHM_PAIRS, Detections, detect_point_sources, gaussian_highpass
from catalog.images.injection import (
    apply_flux_correction,
    fit_flux_correction,
    inject_point_sources,
    injection_random,
    injection_random_stamps,
    injection_recovery,
    location_scatter,
    psf_injection_recovery,
)
from catalog.images.psf import FWHM_PER_SIGMA, growth_curve, make_psf

__all__ = [
    "DETECTION_FWHM_PAIRS",
    "FWHM_PER_SIGMA",
    "MAD_TO_SIGMA",
    "MEDIAN_ERROR_FACTOR",
    "Detections",
    "aperture_photometry",
    "apply_flux_correction",
    "auto_mask",
    "detect_point_sources",
    "fit_flux_correction",
    "location_scatter",
    "gaussian_highpass",
    "growth_curve",
    "inject_point_sources",
    "injection_random",
    "injection_random_stamps",
    "injection_recovery",
    "psf_injection_recovery",
    "make_psf",
    "robust_noise",
]
