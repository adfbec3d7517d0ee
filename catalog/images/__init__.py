"""GC detection, forced aperture photometry and injection-recovery on image arrays.

The methods follow the source papers (``docs/methods.md``):

* **Detection** (Abell S1063 GC study): per band a high-pass filter made of two differences of
  Gaussians (FWHM 0.5 px minus 5 px, then 1 px minus 3 px); bright and extended sources, a user
  mask and the image edges masked; the filtered bands summed; iterative brightest-pixel detection
  with a 3-pixel exclusion disk down to a noise threshold, keeping detections at twice it.
* **Aperture photometry with injection-recovery** (Sparkler): circular apertures of radius
  0.12, 0.16 and 0.20 arcsec, median local background in an annulus from the aperture edge r to
  r + 0.08 arcsec, aperture correction from the PSF growth curve, 3-sigma upper limits (the
  numbers live in :mod:`catalog.constants`);
  point sources injected near each target at 0.1-10 times its measured flux, at 20 locations,
  measured the same way, and intrinsic versus measured flux fitted by a second-order polynomial.
* **Full-random injection** (Firefly Sparkle): a model injected at random places in a stamp;
  flux uncertainty = biweight scale of the recovered minus injected fluxes.

Conventions: everything works in pixel coordinates of the array, 0-based, with pixel centres at
integers (pixel ``i`` covers ``[i - 0.5, i + 0.5)``); arrays are shaped ``(ny, nx)`` and indexed
``[iy, ix]``. Fluxes are in image units (the sum of pixel values; the caller converts to nJy);
masks are boolean with ``True`` = masked. There is no WCS, file or lake access here, and random
numbers come only from a ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from astropy.modeling.models import Sersic2D
from astropy.stats import biweight_location, biweight_scale
from photutils.aperture import ApertureStats, CircularAnnulus, CircularAperture
from photutils.aperture import aperture_photometry as _photutils_aperture_photometry
from scipy import ndimage as ndi
from scipy.special import ndtr

from catalog.checks import as_grid as _image
from catalog.checks import as_mask as _bool_mask
from catalog.checks import as_rng as _rng
from catalog.constants import (
    DEFAULT_ANNULUS_WIDTH_PIX,
    FLUX_CORRECTION_DEGREE,
    INJECT_FLUX_RANGE,
    INJECT_N_FLUX,
    INJECT_N_LOCATIONS,
    UPPER_LIMIT_NSIGMA,
)
from catalog.errors import GccatError, GccatWarning

#: FWHM / sigma of a Gaussian, 2 sqrt(2 ln 2).
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
#: 1.4826 MAD estimates the standard deviation of Gaussian noise.
MAD_TO_SIGMA = 1.4826
#: Standard error of a sample median of Gaussian data, in units of sigma / sqrt(n).
MEDIAN_ERROR_FACTOR = math.sqrt(math.pi / 2.0)
#: High-pass filter of the Abell S1063 GC detection: (FWHM to keep, FWHM to subtract), pixels.
DETECTION_FWHM_PAIRS = ((0.5, 5.0), (1.0, 3.0))


# --------------------------------------------------------------------------- validation helpers


def _radii(radii_pix) -> np.ndarray:
    r = np.atleast_1d(np.asarray(radii_pix, dtype=float))
    if r.ndim != 1 or r.size == 0 or not (np.isfinite(r).all() and (r > 0).all()):
        raise GccatError(f"aperture radii must be positive finite pixels, got {radii_pix!r}")
    return r


def _positions(x, y) -> tuple[np.ndarray, np.ndarray]:
    x = np.atleast_1d(np.asarray(x, dtype=float)).ravel()
    y = np.atleast_1d(np.asarray(y, dtype=float)).ravel()
    if x.shape != y.shape:
        raise GccatError(f"x and y differ in length ({x.size} and {y.size})")
    return x, y


def _annulus_width(annulus_width_pix) -> float:
    w = DEFAULT_ANNULUS_WIDTH_PIX if annulus_width_pix is None else float(annulus_width_pix)
    if not (np.isfinite(w) and w >= 0):
        raise GccatError(f"annulus_width_pix must be >= 0 pixels, got {annulus_width_pix!r}")
    return w


def _normalised_psf(psf) -> np.ndarray:
    p = _image("psf", psf)
    total = p.sum()
    if not (np.isfinite(p).all() and total > 0):
        raise GccatError("psf must be finite with a positive sum")
    return p / total


def _valid(image: np.ndarray, weight: np.ndarray | None) -> np.ndarray:
    """Pixels with data: finite and, with a weight map, of positive weight."""
    valid = np.isfinite(image)
    if weight is not None:
        valid &= weight > 0
    return valid


# ------------------------------------------------------------------------------- filtering, masks


def gaussian_highpass(image, fwhm_pairs=DETECTION_FWHM_PAIRS, *, mask=None) -> np.ndarray:
    """High-pass filter an image by successive differences of Gaussian smoothings.

    For each ``(fwhm_keep, fwhm_cut)`` in turn the current image becomes
    ``G(fwhm_keep) * image - G(fwhm_cut) * image`` (``*`` = convolution), so the default is the
    Abell S1063 detection filter: FWHM 0.5 px minus 5 px, then 1 px minus 3 px on the result.

    Parameters
    ----------
    image : array_like
        ``(ny, nx)`` image in image units.
    fwhm_pairs : sequence of (float, float)
        Gaussian FWHMs in pixels, applied in order.
    mask : numpy.ndarray of bool, optional
        Pixels to ignore. Masked and non-finite pixels are set to 0 before filtering (so
        they pull the filtered image towards 0 within a few FWHM of them); the output there is
        not meaningful and the caller should keep those pixels, grown by the largest FWHM,
        masked. A background-subtracted image (sky near 0) keeps that edge effect small.

    Returns
    -------
    numpy.ndarray
        The filtered image, same shape, float32 if the input is float32 (halves the memory of
        large mosaics) and float64 otherwise. Image edges use reflection.
    """
    dtype = np.float32 if np.asarray(image).dtype == np.float32 else np.float64
    out = np.array(_image("image", image, dtype=dtype), copy=True)
    bad = ~np.isfinite(out)
    if mask is not None:
        bad |= _bool_mask(mask, out.shape)
    out[bad] = 0.0
    for pair in fwhm_pairs:
        f_keep, f_cut = (float(f) for f in pair)
        if not (f_keep > 0 and f_cut > 0):
            raise GccatError(f"filter FWHMs must be positive pixels, got {pair!r}")
        keep = ndi.gaussian_filter(out, f_keep / FWHM_PER_SIGMA, mode="reflect")
        cut = ndi.gaussian_filter(out, f_cut / FWHM_PER_SIGMA, mode="reflect")
        np.subtract(keep, cut, out=keep)
        out = keep
    return out


def robust_noise(image, mask=None) -> float:
    """Gaussian-equivalent noise of an image from the median absolute deviation.

    Parameters
    ----------
    image : array_like
        Image in image units.
    mask : numpy.ndarray of bool, optional
        Pixels to leave out (non-finite pixels are always left out).

    Returns
    -------
    float
        ``1.4826 * median(|v - median(v)|)`` over the unmasked finite pixels ``v``, image
        units; NaN if there are none.
    """
    a = np.asarray(image)
    good = np.isfinite(a)
    if mask is not None:
        good &= ~_bool_mask(mask, a.shape)
    v = a[good]
    if v.size == 0:
        return float("nan")
    med = np.median(v)
    return float(MAD_TO_SIGMA * np.median(np.abs(v - med)))


def _sampled_noise(image: np.ndarray, valid: np.ndarray, max_pixels: int = 2**21) -> float:
    """:func:`robust_noise` of the valid pixels on a regular sub-grid of at most ~``max_pixels``
    (the MAD of 2 million pixels is known to 0.1%, and the full mosaic costs seconds)."""
    step = max(1, int(math.ceil(math.sqrt(image.size / max_pixels))))
    return robust_noise(image[::step, ::step], ~valid[::step, ::step])


def _dilate(mask: np.ndarray, radius_pix: float) -> np.ndarray:
    """Grow a boolean mask by a disk of the given radius (pixels).

    The disk is decomposed into horizontal runs, one 1-D maximum filter per run width: exact,
    and several times faster than ``binary_dilation`` with a 2-D disk on large mosaics.
    """
    r = int(math.floor(radius_pix))
    if r <= 0 or not mask.any():
        return mask.copy()
    m8 = mask.view(np.uint8)
    out = np.zeros_like(mask)
    rows: dict[int, np.ndarray] = {}
    ny = mask.shape[0]
    for dy in range(-r, r + 1):
        half = int(math.floor(math.sqrt(radius_pix**2 - dy * dy)))
        if half not in rows:
            rows[half] = ndi.maximum_filter1d(m8, 2 * half + 1, axis=1, mode="constant").view(bool)
        run = rows[half]
        if dy >= 0:
            out[dy:] |= run[:ny - dy]
        else:
            out[:dy] |= run[-dy:]
    return out


def _disk_offsets(radius_pix: float) -> np.ndarray:
    """Boolean footprint of the pixels within ``radius_pix`` of the centre pixel (inclusive)."""
    r = int(math.floor(radius_pix))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    return xx * xx + yy * yy <= radius_pix * radius_pix


def _coarse_background(image: np.ndarray, valid: np.ndarray, box_pix: int) -> np.ndarray:
    """Large-scale background: median in ``box_pix`` boxes, interpolated bilinearly.

    It removes the ICL and the outer halo of the BCG before thresholding, so that only sources
    smaller than about a box are masked and GCs in the ICL survive.
    """
    ny, nx = image.shape
    nby, nbx = -(-ny // box_pix), -(-nx // box_pix)
    work = np.full((nby * box_pix, nbx * box_pix), np.nan, dtype=np.float32)
    work[:ny, :nx] = np.where(valid, image, np.nan)
    # every other pixel of each box is plenty for a median (a box of 64 keeps 1024) and 4x faster
    step = 2 if box_pix % 2 == 0 and box_pix >= 16 else 1
    b = box_pix // step
    blocks = work[::step, ::step].reshape(nby, b, nbx, b).transpose(0, 2, 1, 3).reshape(nby, nbx, -1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN boxes are filled below
        med = np.nanmedian(blocks, axis=-1)
    empty = ~np.isfinite(med)
    if empty.all():
        return np.zeros(image.shape, dtype=np.float32)
    med[empty] = np.median(med[~empty])

    def weights(n: int, nb: int) -> np.ndarray:
        # box centres sit at (j + 0.5) box - 0.5; clamp beyond the outermost centres
        u = np.clip((np.arange(n) + 0.5) / box_pix - 0.5, 0, nb - 1)
        i0 = np.minimum(np.floor(u).astype(int), max(nb - 2, 0))
        f = u - i0
        w = np.zeros((n, nb), dtype=np.float32)
        w[np.arange(n), i0] = 1 - f
        if nb > 1:
            w[np.arange(n), i0 + 1] += f
        return w

    return weights(ny, nby) @ med.astype(np.float32) @ weights(nx, nbx).T


def _bright_regions(image: np.ndarray, valid: np.ndarray, nsigma: float, min_area_pix: float,
                    noise: float | None, background_box_pix: int | None) -> tuple[np.ndarray, float]:
    """Connected regions (8-connected) above ``nsigma * noise`` with at least ``min_area_pix``."""
    if background_box_pix:
        resid = image - _coarse_background(image, valid, int(background_box_pix))
    else:
        resid = image - np.median(image[valid]) if valid.any() else image
    if noise is None:
        noise = _sampled_noise(resid, valid)
    above = valid & (resid > nsigma * noise)
    labels, n = ndi.label(above, structure=np.ones((3, 3), dtype=bool))
    if n == 0:
        return np.zeros(image.shape, dtype=bool), float(noise)
    area = np.bincount(labels.ravel())
    big = area >= min_area_pix
    big[0] = False
    return big[labels], float(noise)


def _edge_mask(valid: np.ndarray, border_pix: float) -> np.ndarray:
    """Pixels without data, grown by ``border_pix``, plus a frame of that width."""
    b = int(math.ceil(border_pix))
    out = _dilate(~valid, border_pix)
    if b > 0:
        out[:b] = True
        out[-b:] = True
        out[:, :b] = True
        out[:, -b:] = True
    return out


def auto_mask(image, weight=None, nsigma=5.0, min_area_pix=50, grow_pix=5, noise=None, *,
              border_pix=10.0, background_box_pix=64) -> np.ndarray:
    """Mask bright and extended sources, pixels without data and the image border.

    Bright/extended sources are connected regions (8-connected) of pixels above
    ``nsigma * noise`` over a coarse background (median in ``background_box_pix`` boxes,
    interpolated), covering at least ``min_area_pix`` pixels, grown by a disk of ``grow_pix``.
    The coarse background keeps the smooth ICL and BCG halo unmasked (GCs are detected in them)
    while masking galaxies, the BCG core and saturated stars. Compact GCs cover far fewer than
    ``min_area_pix`` pixels above the threshold unless they are very bright.

    Parameters
    ----------
    image : array_like
        ``(ny, nx)`` image in image units.
    weight : array_like, optional
        Weight map; pixels of weight <= 0 have no data.
    nsigma : float
        Threshold in units of ``noise``.
    min_area_pix : int
        Smallest region masked, pixels.
    grow_pix : float
        Radius of the disk by which regions are grown, pixels.
    noise : float, optional
        Per-pixel noise, image units; default :func:`robust_noise` of the background-subtracted
        image.
    border_pix : float
        Pixels without data (NaN or zero weight) are grown by this radius and a frame of this
        width is masked, because the detection filter (largest FWHM 5 px) rings near them.
    background_box_pix : int or None
        Box of the coarse background, pixels; None subtracts only the global median.

    Returns
    -------
    numpy.ndarray of bool
        ``True`` where masked.
    """
    img = _image("image", image, dtype=np.float32)
    w = None if weight is None else _image("weight", weight, img.shape)
    valid = _valid(img, w)
    bright, _ = _bright_regions(img, valid, float(nsigma), float(min_area_pix), noise, background_box_pix)
    return _dilate(bright, float(grow_pix)) | _edge_mask(valid, float(border_pix))


# -------------------------------------------------------------------------------------- detection


@dataclass
class Detections:
    """Point sources found by :func:`detect_point_sources`.

    Attributes
    ----------
    x, y : numpy.ndarray
        Positions, pixels (0-based, pixel centres at integers), brightest first.
    peak : numpy.ndarray
        Value of the summed filtered image at the detection pixel, filtered image units.
    snr : numpy.ndarray
        ``peak / noise``.
    noise : float
        Robust noise of the summed filtered image over unmasked pixels.
    threshold : float
        Detection threshold ``threshold_nsigma * noise``; kept sources have
        ``peak >= keep_factor * threshold``.
    mask : numpy.ndarray of bool
        Pixels excluded from detection (bright sources, user mask, edges).
    mask_area_pix : int
        Number of masked pixels.
    filtered : numpy.ndarray
        Summed filtered image (float32), NaN where masked.
    """

    x: np.ndarray
    y: np.ndarray
    peak: np.ndarray
    snr: np.ndarray
    noise: float
    threshold: float
    mask: np.ndarray
    mask_area_pix: int
    filtered: np.ndarray

    def __len__(self) -> int:
        return int(self.x.size)


def _brightest_pixel_scan(filtered: np.ndarray, level: float, radius_pix: float, max_sources: int
                          ) -> tuple[np.ndarray, np.ndarray, bool]:
    """Iterative brightest-pixel detection with an exclusion disk, as one sorted pass.

    The iterative algorithm takes the brightest pixel not yet excluded, records it, excludes
    the disk around it and repeats until the brightest pixel is below ``level``. Exclusion
    depends only on pixels already recorded, which are all brighter, so visiting the pixels
    above ``level`` in decreasing order (ties in raster order, as ``argmax`` breaks them) and
    accepting each one not yet excluded gives exactly the same list. Every pixel above
    ``level`` is visited, not only local maxima, so a bright pixel just outside an exclusion
    disk is accepted exactly as the iterative algorithm would accept it.
    """
    ny, nx = filtered.shape
    iy, ix = np.nonzero(filtered >= level)  # NaN (masked) compares False
    order = np.argsort(-filtered[iy, ix], kind="stable")
    iy, ix = iy[order].tolist(), ix[order].tolist()
    disk = _disk_offsets(radius_pix)
    r = disk.shape[0] // 2
    excluded = np.zeros((ny + 2 * r, nx + 2 * r), dtype=bool)  # padded: no clipping needed
    out_y: list[int] = []
    out_x: list[int] = []
    truncated = False
    for j, i in zip(iy, ix, strict=True):
        if excluded[j + r, i + r]:
            continue
        if len(out_y) >= max_sources:
            truncated = True
            break
        out_y.append(j)
        out_x.append(i)
        excluded[j:j + 2 * r + 1, i:i + 2 * r + 1] |= disk
    return np.asarray(out_x, dtype=np.int64), np.asarray(out_y, dtype=np.int64), truncated


def _parabolic_offsets(f: np.ndarray, ix: np.ndarray, iy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel peak offsets from a parabola through each peak and its two neighbours per axis."""

    def along(c, l_, r_):
        denom = l_ - 2 * c + r_
        with np.errstate(invalid="ignore", divide="ignore"):
            d = 0.5 * (l_ - r_) / denom
        # only a true maximum (negative curvature) with finite neighbours gives an offset
        ok = np.isfinite(d) & (denom < 0)
        return np.where(ok, np.clip(d, -0.5, 0.5), 0.0)

    pad = np.pad(f, 1, constant_values=np.nan)
    c = pad[iy + 1, ix + 1]
    dx = along(c, pad[iy + 1, ix], pad[iy + 1, ix + 2])
    dy = along(c, pad[iy, ix + 1], pad[iy + 2, ix + 1])
    return dx, dy


def detect_point_sources(images: list[np.ndarray], weights: list[np.ndarray] | None = None, user_mask=None,
                         *, band_weights=None, fwhm_pairs=DETECTION_FWHM_PAIRS, exclusion_radius_pix=3.0,
                         threshold_nsigma=2.5, keep_factor=2.0, mask_nsigma=5.0, max_sources=200000,
                         mask_min_area_pix=50, mask_grow_pix=5.0, border_pix=10.0, background_box_pix=64,
                         centroid=True) -> Detections:
    """Detect point sources (GCs) in the sum of high-pass filtered bands.

    Each band is high-pass filtered (:func:`gaussian_highpass`, pixels without data set to 0)
    and the filtered bands are summed with ``band_weights`` (computed as the filter of the
    weighted sum, which is the same by linearity and filters once); bright/extended sources of
    any band (:func:`auto_mask` criteria), pixels without data in any band (grown by
    ``border_pix``), a frame of ``border_pix`` and the user mask are excluded. Sources are then
    found by iterative brightest-pixel detection with an exclusion disk of
    ``exclusion_radius_pix`` down to ``threshold = threshold_nsigma * noise`` (noise = robust
    noise of the summed image), keeping those with ``peak >= keep_factor * threshold``.

    Performance with the defaults (FWHM 2 px Moffat PSF, tests/test_imaging.py): 90%
    completeness at a peak-pixel S/N of about 10, i.e. a PSF-fit S/N of about 17; the
    band-pass filter (core FWHM ~1.1 px) is narrower than such a PSF, so its peak S/N is 42%
    of the matched-filter S/N (81% for a 1 px FWHM PSF).

    The pass is done as one sorted scan of the pixels above ``keep_factor * threshold``, which
    gives exactly the list of the iterative algorithm (see ``_brightest_pixel_scan``). Sources
    between ``threshold`` and ``keep_factor * threshold`` cannot affect brighter ones (they are
    found later), so stopping the scan at the kept level changes nothing in the returned list.

    Parameters
    ----------
    images : list of numpy.ndarray
        ``(ny, nx)`` images of the bands, same pixel grid, image units (filtered in float32).
    weights : list of numpy.ndarray, optional
        Weight maps; weight <= 0 means no data.
    user_mask : numpy.ndarray of bool, optional
        Extra pixels to exclude (spikes, arcs, ...).
    band_weights : sequence of float, optional
        Weights of the filtered bands in the sum (default all 1).
    fwhm_pairs : sequence of (float, float)
        High-pass filter, pixels (see :func:`gaussian_highpass`).
    exclusion_radius_pix : float
        Radius of the exclusion disk, pixels (inclusive: a pixel at exactly this distance is
        excluded).
    threshold_nsigma : float
        Detection threshold in units of the noise of the summed filtered image.
    keep_factor : float
        Kept sources have ``peak >= keep_factor * threshold``.
    mask_nsigma : float or None
        Threshold of the bright-source mask in units of each band's noise; None disables it.
    max_sources : int
        Stop after this many sources (a :class:`GccatWarning` says so).
    mask_min_area_pix, mask_grow_pix, border_pix, background_box_pix
        Bright-source mask and border settings, pixels (see :func:`auto_mask`).
    centroid : bool
        Refine positions to sub-pixel precision with a parabola through the peak and its
        neighbours along each axis (offsets within +-0.5 px); otherwise pixel centres.

    Returns
    -------
    Detections
    """
    if not isinstance(images, (list, tuple)) or len(images) == 0:
        raise GccatError("images must be a non-empty list of 2-D arrays")
    shape = np.asarray(images[0]).shape
    if len(shape) != 2:
        raise GccatError("images must be 2-D arrays (ny, nx)")
    nb = len(images)
    if weights is not None and len(weights) != nb:
        raise GccatError(f"{len(weights)} weight maps for {nb} images")
    bw = np.ones(nb) if band_weights is None else np.asarray(band_weights, dtype=float).ravel()
    if bw.size != nb or not np.isfinite(bw).all():
        raise GccatError(f"band_weights must be {nb} finite numbers")
    for name, v in (("exclusion_radius_pix", exclusion_radius_pix), ("threshold_nsigma", threshold_nsigma),
                    ("keep_factor", keep_factor)):
        if not (np.isfinite(v) and v > 0):
            raise GccatError(f"{name} must be positive, got {v!r}")
    umask = _bool_mask(user_mask, shape, "user_mask")

    # The filter is linear, so the weighted sum of the filtered bands (each with its pixels
    # without data set to 0) is the filtered weighted sum of the zero-filled bands: one filter
    # pass instead of one per band, identical up to rounding.
    stacked = np.zeros(shape, dtype=np.float32)
    nodata = np.zeros(shape, dtype=bool)
    bright = np.zeros(shape, dtype=bool)
    for b in range(nb):
        img = _image(f"images[{b}]", images[b], shape, dtype=np.float32)
        w = None if weights is None or weights[b] is None else _image(f"weights[{b}]", weights[b], shape)
        valid = _valid(img, w)
        nodata |= ~valid
        if mask_nsigma is not None:
            bright |= _bright_regions(img, valid, float(mask_nsigma), float(mask_min_area_pix), None,
                                      background_box_pix)[0]
        stacked += np.where(valid, img * np.float32(bw[b]), np.float32(0.0))
    summed = gaussian_highpass(stacked, fwhm_pairs)
    del stacked
    mask = _dilate(bright, float(mask_grow_pix)) | _edge_mask(~nodata, float(border_pix)) | umask
    summed[mask] = np.nan
    noise = robust_noise(summed)
    if not (np.isfinite(noise) and noise > 0):
        raise GccatError("no unmasked pixels with noise left to set a detection threshold")
    threshold = float(threshold_nsigma) * noise
    ix, iy, truncated = _brightest_pixel_scan(summed, float(keep_factor) * threshold,
                                              float(exclusion_radius_pix), int(max_sources))
    if truncated:
        warnings.warn(f"detection stopped at max_sources={max_sources}", GccatWarning, stacklevel=2)
    peak = summed[iy, ix].astype(float)
    if centroid and ix.size:
        dx, dy = _parabolic_offsets(summed, ix, iy)
    else:
        dx = dy = np.zeros(ix.size)
    return Detections(x=ix + dx, y=iy + dy, peak=peak, snr=peak / noise, noise=noise, threshold=threshold,
                      mask=mask, mask_area_pix=int(mask.sum()), filtered=summed)


# ------------------------------------------------------------------------------------------- PSF


def make_psf(fwhm_pix, size=25, kind="moffat", beta=2.5, *, oversample=5) -> np.ndarray:
    """A circular PSF stamp, integrated over pixels and normalised to sum 1.

    Parameters
    ----------
    fwhm_pix : float
        Full width at half maximum, pixels.
    size : int
        Side of the square stamp, pixels; the PSF centre is at ``((size - 1) / 2,) * 2`` (a pixel
        centre for odd sizes).
    kind : {"moffat", "gaussian"}
        Profile; a Moffat ``(1 + (r / alpha)^2)^-beta`` has the extended wings of real PSFs.
    beta : float
        Moffat index.
    oversample : int
        Sub-pixels per pixel and axis used to integrate the profile over each pixel.

    Returns
    -------
    numpy.ndarray
        ``(size, size)`` float64, sum 1 (light beyond the stamp is not counted).
    """
    fwhm = float(fwhm_pix)
    size = int(size)
    if not (np.isfinite(fwhm) and fwhm > 0) or size < 1:
        raise GccatError(f"make_psf needs fwhm_pix > 0 and size >= 1, got {fwhm_pix!r}, {size!r}")
    os_ = max(int(oversample), 1)
    c = (size - 1) / 2.0
    g = (np.arange(size * os_) + 0.5) / os_ - 0.5 - c
    r2 = g[:, None] ** 2 + g[None, :] ** 2
    if kind == "moffat":
        if not beta > 1:
            raise GccatError(f"Moffat beta must be > 1, got {beta!r}")
        alpha = fwhm / (2.0 * math.sqrt(2.0 ** (1.0 / beta) - 1.0))
        prof = (1.0 + r2 / alpha**2) ** (-float(beta))
    elif kind == "gaussian":
        prof = np.exp(-0.5 * r2 / (fwhm / FWHM_PER_SIGMA) ** 2)
    else:
        raise GccatError(f"PSF kind must be 'moffat' or 'gaussian', got {kind!r}")
    psf = prof.reshape(size, os_, size, os_).sum(axis=(1, 3))
    return psf / psf.sum()


def _padded_psf(psf: np.ndarray, reach_pix: float) -> tuple[np.ndarray, tuple[float, float]]:
    """The PSF padded with zeros so that a circle of ``reach_pix`` about its centre fits."""
    ny, nx = psf.shape
    pad = max(0, int(math.ceil(reach_pix - min(ny, nx) / 2.0)) + 2)
    p = np.pad(psf, pad)
    return p, ((nx - 1) / 2.0 + pad, (ny - 1) / 2.0 + pad)


def growth_curve(psf, radii_pix) -> np.ndarray:
    """Enclosed fraction of a PSF within circular apertures (photutils exact overlap).

    Parameters
    ----------
    psf : array_like
        PSF stamp centred on its array centre ``((nx - 1) / 2, (ny - 1) / 2)``; normalised here to
        sum 1.
    radii_pix : float or array_like
        Aperture radii, pixels.

    Returns
    -------
    numpy.ndarray
        Enclosed fraction at each radius: increasing, reaching 1 once the aperture covers the
        stamp.
    """
    p = _normalised_psf(psf)
    radii = _radii(radii_pix)
    padded, centre = _padded_psf(p, float(radii.max()))
    apertures = [CircularAperture(centre, r) for r in radii]
    tbl = _photutils_aperture_photometry(padded, apertures, method="exact")
    return np.array([float(tbl[f"aperture_sum_{k}"][0]) for k in range(radii.size)])


def _annulus_psf_values(psf: np.ndarray, r_in: float, width: float, n_sub: int = 4) -> np.ndarray:
    """Normalised PSF values of the pixels whose centres fall in the annulus [r_in, r_in + width].

    Pooled over an ``n_sub x n_sub`` grid of sub-pixel source positions: which pixel centres
    fall inside the inner edge, where the wings are brightest, depends on the position, and a
    centred PSF alone misrepresents it (by about 15% of the annulus median at r_in = 1 FWHM).
    """
    padded, (cx, cy) = _padded_psf(psf, r_in + width + 1.0)
    shifter = _PsfShifter(padded, pad=0)
    offsets = (np.arange(n_sub) + 0.5) / n_sub - 0.5
    values = []
    for dy in offsets:
        for dx in offsets:
            stamp, ix0, iy0 = shifter.place(cx + dx, cy + dy)  # ix0 = iy0 = 0: same grid
            ann = CircularAnnulus((cx + dx, cy + dy), r_in, r_in + width).to_mask(method="center")
            values.append(ann.get_values(stamp))
    return np.concatenate(values)


def _median_shift_ratio(p_ann: np.ndarray):
    """Median of the annulus pixels of a point source over its flux, as a function of its S/N.

    The annulus pixels of a source of flux ``F`` hold ``F p_j + n_j`` (``n_j`` Gaussian noise of
    sigma ``s``). Their median ``m`` tends to the median of the mixture, which solves
    ``mean_j Phi((m - F p_j) / s) = 1/2``; ``m / F`` goes from ``mean(p)`` at low ``F / s`` to
    ``median(p)`` at high ``F / s``. Returns a function of ``t = |F| / s`` giving ``m / F``.
    """
    t_grid = np.logspace(-2, 6, 121)
    lo = np.full(t_grid.size, p_ann.min()) * t_grid - 10.0
    hi = np.full(t_grid.size, p_ann.max()) * t_grid + 10.0
    for _ in range(50):  # bisection, vectorised over the grid (interval shrinks 2^-50)
        mid = 0.5 * (lo + hi)
        above = ndtr(mid[:, None] - t_grid[:, None] * p_ann[None, :]).mean(axis=1) > 0.5
        hi = np.where(above, mid, hi)
        lo = np.where(above, lo, mid)
    ratio = 0.5 * (lo + hi) / t_grid
    log_t = np.log(t_grid)
    low_limit, high_limit = float(p_ann.mean()), float(np.median(p_ann))

    def ratio_of(t: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            lt = np.log(np.asarray(t, dtype=float))
        return np.interp(lt, log_t, ratio, left=low_limit, right=high_limit)

    return ratio_of


_ANNULUS_CACHE: dict[tuple, tuple[np.ndarray, object]] = {}


def _annulus_model(psf: np.ndarray, r_in: float, width: float):
    """Pooled annulus PSF values and their median-shift function, cached per PSF and annulus
    (building them takes ~0.1 s and the same PSF is used for every batch of a band)."""
    key = (psf.tobytes(), psf.shape, float(r_in), float(width))
    if key not in _ANNULUS_CACHE:
        if len(_ANNULUS_CACHE) > 64:
            _ANNULUS_CACHE.clear()
        p_ann = _annulus_psf_values(psf, r_in, width)
        _ANNULUS_CACHE[key] = (p_ann, _median_shift_ratio(p_ann))
    return _ANNULUS_CACHE[key]


def _aperture_correction(flux_raw, sigma_pix, area, ee, p_ann, ratio_of) -> np.ndarray:
    """Aperture correction of a PSF for the growth curve and the PSF light in the annulus.

    Solves ``F ee - area m(F) = flux_raw`` for the total flux ``F``, with ``m(F)`` the median
    the PSF wings add to the annulus at the source's S/N (``_median_shift_ratio``), by
    fixed-point iteration, a contraction when ``area * max(p) < ee`` (apertures wider than
    about 0.6 FWHM; smaller ones fall back to ``1 / ee`` with a warning). Returns
    ``F / flux_raw`` (the low-S/N limit where ``flux_raw`` is 0 or not finite).
    """
    low = 1.0 / (ee - area * np.mean(p_ann))
    if np.max(area, initial=0.0) * float(p_ann.max()) >= ee:
        # the measured flux would not grow monotonically with the true flux: no unique solution
        warnings.warn("aperture too small for the annulus PSF correction; using 1/growth_curve",
                      GccatWarning, stacklevel=3)
        return np.full(np.shape(flux_raw), 1.0 / ee)
    s = np.where(np.isfinite(sigma_pix) & (sigma_pix > 0), sigma_pix, 0.0)
    raw = np.where(np.isfinite(flux_raw), flux_raw, 0.0)
    f = raw * low
    for _ in range(60):
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(s > 0, np.abs(f) / s, np.inf)
        f = (raw + area * f * ratio_of(t)) / ee
    with np.errstate(divide="ignore", invalid="ignore"):
        ac = np.where(raw != 0, f / raw, low)
    return np.where(np.isfinite(ac) & (ac > 0), ac, low)


# ------------------------------------------------------------------------------------ photometry


def aperture_photometry(image, x, y, radii_pix, *, error=None, weight=None, mask=None,
                        annulus_width_pix=None, psf=None, upper_limit_nsigma=UPPER_LIMIT_NSIGMA,
                        psf_annulus_correction=True) -> dict[str, np.ndarray]:
    """Forced circular-aperture photometry with a local median background (photutils).

    For each position and radius ``r``: the aperture sum (exact pixel overlap) minus the median
    of the annulus ``[r, r + annulus_width_pix]`` (pixels whose centres fall in it) times the
    unmasked aperture area, multiplied by the aperture correction.

    Errors: the error map summed in quadrature over the aperture, plus the uncertainty of the
    median background ``sqrt(pi/2) sigma / sqrt(n_annulus)`` times the area (``sigma`` = median
    error in the annulus). Without ``error`` or ``weight`` the per-pixel error is the robust
    scatter (1.4826 MAD) of each annulus. Sources whose flux is below ``upper_limit_nsigma``
    times its error are flagged as upper limits, with ``flux_limit = upper_limit_nsigma *
    flux_err`` (given for every source).

    Aperture correction with a PSF: ``1 / growth_curve(psf, r)`` when there is no annulus
    (``annulus_width_pix=0``) or ``psf_annulus_correction=False``. With an annulus right at the
    aperture edge, the PSF wings also raise the background median, which ``1 / growth_curve``
    alone leaves as a flux-dependent deficit (5-9% at r = 1 FWHM for a Moffat beta = 2.5
    PSF, more at low S/N); by default the correction also restores that light, for the source's S/N (see
    ``_aperture_correction``). Either way the injection-recovery runs the same correction, so
    its polynomial calibrates what remains (crowding, BCG halo curvature).

    Parameters
    ----------
    image : array_like
        ``(ny, nx)`` image in image units.
    x, y : array_like
        Positions, pixels.
    radii_pix : float or array_like
        Aperture radii, pixels (the paper's radii 0.12, 0.16, 0.20" are ``0.12 / scale``,
        ... with ``scale`` in arcsec per pixel).
    error : array_like, optional
        1-sigma per-pixel error map, image units.
    weight : array_like, optional
        Inverse-variance map; used as ``error = 1 / sqrt(weight)`` when ``error`` is not given.
        Pixels of weight <= 0 are masked either way.
    mask : numpy.ndarray of bool, optional
        Pixels to leave out of the sums and of the background (non-finite pixels and errors
        are always left out).
    annulus_width_pix : float, optional
        Width of the background annulus, pixels; default ``DEFAULT_ANNULUS_WIDTH_PIX``
        (0.08" at 0.03"/pix); 0 means no local background (image already background-free).
    psf : array_like, optional
        PSF stamp (centred, any normalisation) for the aperture correction.
    upper_limit_nsigma : float
        Significance below which a flux is an upper limit.
    psf_annulus_correction : bool
        Include the PSF light in the background annulus in the aperture correction.

    Returns
    -------
    dict of numpy.ndarray
        Each of shape ``(n_sources, n_radii)``: ``flux`` and ``flux_err`` (image units,
        aperture corrected), ``background`` (median per pixel, image units),
        ``aperture_correction`` (1 without a PSF), ``is_upper_limit``, ``flux_limit`` and
        ``mask_fraction`` (fraction of the aperture area masked or off the image). Positions
        that are not finite or whose aperture misses the image give NaN (and False).
    """
    img = _image("image", image)
    shape = img.shape
    xs, ys = _positions(x, y)
    radii = _radii(radii_pix)
    width = _annulus_width(annulus_width_pix)
    nsig = float(upper_limit_nsigma)
    bad = ~np.isfinite(img) | _bool_mask(mask, shape)
    w = None if weight is None else _image("weight", weight, shape)
    if error is not None:
        err = _image("error", error, shape)
    elif w is not None:
        with np.errstate(divide="ignore"):
            err = np.where(w > 0, 1.0 / np.sqrt(np.where(w > 0, w, 1.0)), np.inf)
    else:
        err = None
    if w is not None:
        bad |= ~(w > 0)
    if err is not None:
        bad |= ~np.isfinite(err)
        err = np.where(bad, 0.0, err)
    data = np.where(bad, 0.0, img)

    ny, nx = shape
    n, k = xs.size, radii.size
    out = {key: np.full((n, k), np.nan) for key in
           ("flux", "flux_err", "background", "aperture_correction", "flux_limit", "mask_fraction")}
    out["is_upper_limit"] = np.zeros((n, k), dtype=bool)
    rmax = float(radii.max())
    inside = (np.isfinite(xs) & np.isfinite(ys) & (xs > -0.5 - rmax) & (xs < nx - 0.5 + rmax)
              & (ys > -0.5 - rmax) & (ys < ny - 0.5 + rmax))
    if n == 0 or not inside.any():
        return out
    pos = np.column_stack([xs[inside], ys[inside]])
    p = None if psf is None else _normalised_psf(psf)
    ee = None if p is None else growth_curve(p, radii)
    const_sigma = robust_noise(img, bad) if (err is None and width == 0) else None

    for j, r in enumerate(radii):
        ap = CircularAperture(pos, r)
        tbl = _photutils_aperture_photometry(data, ap, error=err, mask=bad, method="exact")
        apsum = np.asarray(tbl["aperture_sum"], dtype=float)
        area = np.asarray(ap.area_overlap(data, mask=bad), dtype=float)
        if width > 0:
            ann = CircularAnnulus(pos, r, r + width)
            stats = ApertureStats(data, ann, mask=bad)
            bkg = np.asarray(stats.median, dtype=float)
            n_ann = np.asarray(getattr(stats.center_aper_area, "value", stats.center_aper_area), dtype=float)
            if err is not None:
                sigma_ann = np.asarray(ApertureStats(err, ann, mask=bad).median, dtype=float)
            else:
                sigma_ann = np.asarray(stats.mad_std, dtype=float)
            with np.errstate(divide="ignore", invalid="ignore"):
                bkg_err = MEDIAN_ERROR_FACTOR * sigma_ann / np.sqrt(n_ann)
        else:
            bkg = np.zeros(len(pos))
            bkg_err = np.zeros(len(pos))
            sigma_ann = np.full(len(pos), np.nan)
        if err is not None:
            apsum_err = np.asarray(tbl["aperture_sum_err"], dtype=float)
        elif width > 0:
            apsum_err = sigma_ann * np.sqrt(area)
        else:
            apsum_err = const_sigma * np.sqrt(area)
        raw = apsum - bkg * area
        raw_err = np.sqrt(apsum_err**2 + (area * bkg_err) ** 2)
        if p is None:
            ac = np.ones(len(pos))
        elif width == 0 or not psf_annulus_correction:
            ac = np.full(len(pos), 1.0 / ee[j])
        else:
            ac = _aperture_correction(raw, sigma_ann, area, ee[j], *_annulus_model(p, r, width))
        flux, flux_err = raw * ac, raw_err * ac
        ok = area > 0
        out["flux"][inside, j] = np.where(ok, flux, np.nan)
        out["flux_err"][inside, j] = np.where(ok, flux_err, np.nan)
        out["background"][inside, j] = np.where(ok, bkg, np.nan)
        out["aperture_correction"][inside, j] = ac
        out["flux_limit"][inside, j] = np.where(ok, nsig * flux_err, np.nan)
        out["is_upper_limit"][inside, j] = ok & (flux < nsig * flux_err)
        out["mask_fraction"][inside, j] = 1.0 - area / (np.pi * r * r)
    return out


# ------------------------------------------------------------------------------------- injection


class _PsfShifter:
    """Sub-pixel shifted copies of a PSF by the Fourier shift theorem.

    The stamp is padded with zeros before the FFT so the wrap-around of the shift is empty;
    a Fourier shift leaves the zero-frequency term, hence the sum (the flux), unchanged.
    """

    def __init__(self, psf: np.ndarray, pad: int = 4):
        self.psf = np.pad(psf, pad)
        self.ny, self.nx = self.psf.shape
        self.cy, self.cx = (self.ny - 1) / 2.0, (self.nx - 1) / 2.0
        self.ft = np.fft.fft2(self.psf)

    def place(self, x: float, y: float) -> tuple[np.ndarray, int, int]:
        """Shifted stamp and the image pixel ``(ix0, iy0)`` of its first pixel for a source at (x, y)."""
        ox, oy = x - self.cx, y - self.cy
        bx, by = int(np.floor(ox + 0.5)), int(np.floor(oy + 0.5))
        fx, fy = ox - bx, oy - by
        if fx == 0 and fy == 0:
            return self.psf, bx, by
        stamp = np.fft.ifft2(ndi.fourier_shift(self.ft, (fy, fx))).real
        return stamp, bx, by


def _add_stamp(image: np.ndarray, stamp: np.ndarray, ix0: int, iy0: int, scale: float) -> None:
    """Add ``scale * stamp`` with its first pixel at ``(ix0, iy0)``, clipped to the image."""
    ny, nx = image.shape
    sy, sx = stamp.shape
    y0, x0 = max(iy0, 0), max(ix0, 0)
    y1, x1 = min(iy0 + sy, ny), min(ix0 + sx, nx)
    if y1 <= y0 or x1 <= x0:
        return
    image[y0:y1, x0:x1] += scale * stamp[y0 - iy0:y1 - iy0, x0 - ix0:x1 - ix0]


def inject_point_sources(image, psf, x, y, flux) -> np.ndarray:
    """Add point sources to a copy of an image.

    Parameters
    ----------
    image : array_like
        ``(ny, nx)`` image in image units.
    psf : array_like
        PSF stamp centred on its array centre (normalised here to sum 1), or any model stamp
        (e.g. a multi-component source model for full-model injection).
    x, y : array_like
        Positions, pixels (sub-pixel positions by a Fourier shift of the PSF).
    flux : float or array_like
        Total flux of each source, image units.

    Returns
    -------
    numpy.ndarray
        A float64 copy (float32 if the image is float32) with the sources added; each adds
        exactly its flux, except for light falling off the image.
    """
    dtype = np.float32 if np.asarray(image).dtype == np.float32 else np.float64
    out = np.array(_image("image", image, dtype=dtype), copy=True)
    xs, ys = _positions(x, y)
    fl = np.broadcast_to(np.asarray(flux, dtype=float), xs.shape)
    if not (np.isfinite(xs).all() and np.isfinite(ys).all() and np.isfinite(fl).all()):
        raise GccatError("injected positions and fluxes must be finite")
    shifter = _PsfShifter(_normalised_psf(psf))
    for xi, yi, fi in zip(xs, ys, fl, strict=True):
        stamp, ix0, iy0 = shifter.place(float(xi), float(yi))
        _add_stamp(out, stamp, ix0, iy0, float(fi))
    return out


def _footprint_clear(grown_bad: np.ndarray, x: np.ndarray, y: np.ndarray, reach: float) -> np.ndarray:
    """True where the circle of ``reach`` pixels lies on the image and holds no bad pixel;
    ``grown_bad`` is the bad-pixel mask grown by ``reach + 0.5`` (``_dilate``)."""
    ny, nx = grown_bad.shape
    ok = (x - reach >= -0.5) & (x + reach <= nx - 0.5) & (y - reach >= -0.5) & (y + reach <= ny - 0.5)
    ix = np.clip(np.floor(x + 0.5).astype(int), 0, nx - 1)
    iy = np.clip(np.floor(y + 0.5).astype(int), 0, ny - 1)
    return ok & ~grown_bad[iy, ix]


def _bad_pixels(img: np.ndarray, error, weight, mask) -> tuple[np.ndarray, np.ndarray | None]:
    """Pixels without usable data and the error map (from ``error`` or ``1/sqrt(weight)``)."""
    shape = img.shape
    bad = ~np.isfinite(img) | _bool_mask(mask, shape)
    err = None
    if weight is not None:
        w = _image("weight", weight, shape)
        bad |= ~(w > 0)
        if error is None:
            with np.errstate(divide="ignore"):
                err = np.where(w > 0, 1.0 / np.sqrt(np.where(w > 0, w, 1.0)), np.inf)
    if error is not None:
        err = _image("error", error, shape)
    if err is not None:
        bad |= ~np.isfinite(err)
    return bad, err


def _measure_injections(img: np.ndarray, bad: np.ndarray, err: np.ndarray | None, psf: np.ndarray,
                        xs: np.ndarray, ys: np.ndarray, fluxes: np.ndarray, radii: np.ndarray, width: float,
                        psf_for_correction: np.ndarray | None, upper_limit_nsigma: float,
                        psf_annulus_correction: bool, batch_size: int | None = None,
                        progress=None) -> dict[str, np.ndarray]:
    """Inject one source per copy of the image and measure it with :func:`aperture_photometry`.

    ``progress``, if given, is called with the fraction of injections measured after each batch.

    Only the pixels within ``r_max + annulus`` of an injected source enter its measurement, so
    each copy is reduced to a tile of that reach around the source; the tiles (each holding the
    real image, with its neighbours, noise and halo, plus exactly one injected source) are laid
    side by side in a mosaic and measured by a single photometry call. This is the same as
    injecting one source at a time into the full image, at a fraction of the cost.
    """
    h = int(math.ceil(float(radii.max()) + width)) + 2
    t = 2 * h + 1
    ny, nx = img.shape
    shifter = _PsfShifter(psf)
    n = xs.size
    flux_out = np.full((n, radii.size), np.nan)
    flux_err = np.full((n, radii.size), np.nan)
    if batch_size is None:  # about 20 batches, so that progress moves; 4096 at most (memory)
        batch_size = int(min(4096, max(256, math.ceil(n / 20))))
    for start in range(0, n, batch_size):
        sl = slice(start, min(start + batch_size, n))
        m = sl.stop - sl.start
        ncol = int(math.ceil(math.sqrt(m)))
        nrow = int(math.ceil(m / ncol))
        mos = np.zeros((nrow * t, ncol * t))
        mos_bad = np.ones((nrow * t, ncol * t), dtype=bool)
        mos_err = None if err is None else np.full((nrow * t, ncol * t), np.inf)
        lx = np.empty(m)
        ly = np.empty(m)
        for q in range(m):
            xi, yi, fi = float(xs[start + q]), float(ys[start + q]), float(fluxes[start + q])
            cx, cy = int(np.floor(xi + 0.5)), int(np.floor(yi + 0.5))
            ty, tx = (q // ncol) * t, (q % ncol) * t
            # copy the image tile around (cx, cy), clipped to the image
            y0, y1 = max(cy - h, 0), min(cy + h + 1, ny)
            x0, x1 = max(cx - h, 0), min(cx + h + 1, nx)
            oy, ox = ty + y0 - (cy - h), tx + x0 - (cx - h)
            mos[oy:oy + y1 - y0, ox:ox + x1 - x0] = img[y0:y1, x0:x1]
            mos_bad[oy:oy + y1 - y0, ox:ox + x1 - x0] = bad[y0:y1, x0:x1]
            if mos_err is not None:
                mos_err[oy:oy + y1 - y0, ox:ox + x1 - x0] = err[y0:y1, x0:x1]
            lx[q] = xi - (cx - h) + tx
            ly[q] = yi - (cy - h) + ty
            stamp, ix0, iy0 = shifter.place(lx[q], ly[q])
            tile = mos[ty:ty + t, tx:tx + t]  # a view: the source stays inside its own tile
            _add_stamp(tile, stamp, ix0 - tx, iy0 - ty, fi)
        res = aperture_photometry(mos, lx, ly, radii, error=mos_err, mask=mos_bad, annulus_width_pix=width,
                                  psf=psf_for_correction, upper_limit_nsigma=upper_limit_nsigma,
                                  psf_annulus_correction=psf_annulus_correction)
        flux_out[sl] = res["flux"]
        flux_err[sl] = res["flux_err"]
        if progress is not None:
            progress(sl.stop / n)
    return {"flux_out": flux_out, "flux_err": flux_err}


def _draw_near(rng: np.random.Generator, x0: float, y0: float, rmin: float, rmax: float, n: int,
               grown_bad: np.ndarray, reach: float, max_tries: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``n`` positions uniform in area between ``rmin`` and ``rmax`` of ``(x0, y0)``, each
    with a clear aperture footprint of radius ``reach`` (see ``_footprint_clear``)."""
    got_x: list[float] = []
    got_y: list[float] = []
    for _ in range(max_tries):
        k = 4 * n
        rad = np.sqrt(rng.uniform(rmin**2, rmax**2, k))
        phi = rng.uniform(0.0, 2.0 * np.pi, k)
        cx, cy = x0 + rad * np.cos(phi), y0 + rad * np.sin(phi)
        ok = _footprint_clear(grown_bad, cx, cy, reach)
        got_x.extend(cx[ok].tolist())
        got_y.extend(cy[ok].tolist())
        if len(got_x) >= n:
            break
    return np.asarray(got_x[:n]), np.asarray(got_y[:n])


def injection_recovery(image, psf, x, y, measured_flux, radii_pix, *, error=None, weight=None, mask=None,
                       n_flux=INJECT_N_FLUX, n_locations=INJECT_N_LOCATIONS, flux_range=INJECT_FLUX_RANGE,
                       min_sep_pix=4.0, max_sep_pix=15.0,
                       rng, annulus_width_pix=None, aperture_correct=True, psf_annulus_correction=True,
                       upper_limit_nsigma=UPPER_LIMIT_NSIGMA, progress=None) -> dict[str, np.ndarray]:
    """Point-source injection-recovery around each target (the Sparkler procedure).

    For target ``i``, ``n_flux`` fluxes log-spaced over ``flux_range * measured_flux[i]`` are
    each injected at the same ``n_locations`` positions, drawn uniformly in area at distances
    ``min_sep_pix`` to ``max_sep_pix`` from the target with no masked pixel (nor pixel without
    data) within the largest aperture radius + 1 px. Each injection is measured alone by
    :func:`aperture_photometry` with the same radii, annulus and aperture correction
    (``_measure_injections``), so ``flux_out`` is what the science photometry would report for a
    source of total flux ``flux_in`` in that environment. Fit intrinsic versus measured with
    :func:`fit_flux_correction`.

    Parameters
    ----------
    image, error, weight, mask
        As for :func:`aperture_photometry` (image units).
    psf : array_like
        PSF stamp injected (normalised to sum 1 here) and, with ``aperture_correct``, used for
        the aperture correction: call the science photometry with the same ``psf``.
    x, y : array_like
        Target positions, pixels.
    measured_flux : array_like
        Measured flux of each target, image units. Where it is not positive or not finite the
        target's ``upper_limit_nsigma``-sigma flux limit (first radius) is used as reference.
    radii_pix : float or array_like
        Aperture radii, pixels.
    n_flux, n_locations : int
        Fluxes per target and positions per target (every flux at every position).
    flux_range : (float, float)
        Injected fluxes span these multiples of the reference flux (log-spaced).
    min_sep_pix, max_sep_pix : float
        Range of distances from the target, pixels.
    rng : numpy.random.Generator
        Source of the positions.
    annulus_width_pix : float, optional
        As for :func:`aperture_photometry`.
    aperture_correct : bool
        Measure with the PSF aperture correction (as the science photometry should).
    psf_annulus_correction, upper_limit_nsigma
        As for :func:`aperture_photometry`.
    progress : callable, optional
        Called with the fraction of injections measured so far (0-1), after each batch.

    Returns
    -------
    dict of numpy.ndarray
        Flat over all injections: ``target`` (index into x, y), ``x``, ``y`` (pixels),
        ``flux_in`` (image units), ``flux_out`` and ``flux_err`` of shape ``(n, n_radii)``,
        ``recovered`` (``(n, n_radii)`` bool: ``flux_out > upper_limit_nsigma * flux_err``).
        A target with fewer clear positions than ``n_locations`` gets fewer rows (a
        :class:`GccatWarning` says so).
    """
    rng = _rng(rng)
    img = _image("image", image)
    xs, ys = _positions(x, y)
    meas = np.broadcast_to(np.asarray(measured_flux, dtype=float), xs.shape)
    radii = _radii(radii_pix)
    width = _annulus_width(annulus_width_pix)
    p = _normalised_psf(psf)
    lo, hi = (float(v) for v in flux_range)
    if not (0 < lo <= hi) or int(n_flux) < 1 or int(n_locations) < 1:
        raise GccatError("flux_range must be 0 < low <= high and n_flux, n_locations >= 1")
    if not (0 <= min_sep_pix < max_sep_pix):
        raise GccatError("need 0 <= min_sep_pix < max_sep_pix")
    bad, err = _bad_pixels(img, error, weight, mask)
    ref = meas.copy()
    weak = ~(np.isfinite(ref) & (ref > 0))
    if weak.any():
        lim = aperture_photometry(img, xs[weak], ys[weak], radii[:1], error=err, mask=bad,
                                  annulus_width_pix=width, psf=p if aperture_correct else None,
                                  upper_limit_nsigma=upper_limit_nsigma,
                                  psf_annulus_correction=psf_annulus_correction)["flux_limit"][:, 0]
        ref[weak] = lim
    factors = np.geomspace(lo, hi, int(n_flux))
    reach = float(radii.max()) + 1.0
    grown_bad = _dilate(bad, reach + 0.5)
    cols: dict[str, list] = {"target": [], "x": [], "y": [], "flux_in": []}
    for i in range(xs.size):
        if not (np.isfinite(xs[i]) and np.isfinite(ys[i]) and np.isfinite(ref[i]) and ref[i] > 0):
            warnings.warn(f"target {i}: no usable position or reference flux, skipped", GccatWarning,
                          stacklevel=2)
            continue
        lx, ly = _draw_near(rng, xs[i], ys[i], float(min_sep_pix), float(max_sep_pix), int(n_locations),
                            grown_bad, reach)
        if lx.size < int(n_locations):
            warnings.warn(f"target {i}: only {lx.size} clear injection positions of {n_locations}",
                          GccatWarning, stacklevel=2)
        fl = np.repeat(ref[i] * factors, lx.size)
        cols["target"].append(np.full(fl.size, i, dtype=np.int64))
        cols["x"].append(np.tile(lx, factors.size))
        cols["y"].append(np.tile(ly, factors.size))
        cols["flux_in"].append(fl)
    out = {k: (np.concatenate(v) if v else np.zeros(0, dtype=np.int64 if k == "target" else float))
           for k, v in cols.items()}
    meas_res = _measure_injections(img, bad, err, p, out["x"], out["y"], out["flux_in"], radii, width,
                                   p if aperture_correct else None, float(upper_limit_nsigma),
                                   psf_annulus_correction, progress=progress)
    out.update(meas_res)
    with np.errstate(invalid="ignore"):
        out["recovered"] = out["flux_out"] > float(upper_limit_nsigma) * out["flux_err"]
    return out


def injection_random(image, psf, stamp_center, stamp_size_pix, flux, n, radii_pix, *, rng, error=None,
                     weight=None, mask=None, annulus_width_pix=None, aperture_correct=True,
                     psf_annulus_correction=True) -> dict:
    """Full-random injection (the Firefly Sparkle procedure): ``n`` copies at random places.

    The model (``psf``: a PSF or any source model stamp) of total ``flux`` is injected at ``n``
    positions drawn uniformly in a square stamp (positions whose largest aperture + 1 px would
    touch a masked pixel or leave the image are redrawn), one per image copy, and measured
    with :func:`aperture_photometry`. The flux uncertainty is the biweight scale of
    ``flux_out - flux_in``, which includes noise, background and crowding in the stamp.

    Parameters
    ----------
    image, error, weight, mask
        As for :func:`aperture_photometry` (image units).
    psf : array_like
        Model stamp, normalised here to sum 1.
    stamp_center : (float, float)
        Stamp centre ``(x, y)``, pixels.
    stamp_size_pix : float or (float, float)
        Side of the stamp, pixels, or ``(size_x, size_y)`` (10" = 333 px at 0.03"/pix in the paper).
    flux : float
        Total injected flux, image units.
    n : int
        Number of positions (100 in the paper).
    radii_pix : float or array_like
        Aperture radii, pixels.
    rng : numpy.random.Generator
        Source of the positions.
    annulus_width_pix, aperture_correct, psf_annulus_correction
        As for :func:`injection_recovery`.

    Returns
    -------
    dict
        ``x``, ``y`` (n,), ``flux_in`` (n,), ``flux_out`` and ``flux_err`` (n, n_radii),
        ``flux_error_biweight`` and ``flux_offset_biweight`` (n_radii,: biweight scale and
        location of ``flux_out - flux_in``, image units).
    """
    rng = _rng(rng)
    img = _image("image", image)
    radii = _radii(radii_pix)
    width = _annulus_width(annulus_width_pix)
    p = _normalised_psf(psf)
    try:
        cx, cy = (float(v) for v in stamp_center)
    except (TypeError, ValueError):
        raise GccatError(f"stamp_center must be (x, y) in pixels, got {stamp_center!r}") from None
    sx, sy = (float(v) for v in np.broadcast_to(np.asarray(stamp_size_pix, dtype=float), (2,)))
    n = int(n)
    if n < 2 or not (sx > 0 and sy > 0) or not np.isfinite(float(flux)):
        raise GccatError("need n >= 2, a positive stamp size and a finite flux")
    bad, err = _bad_pixels(img, error, weight, mask)
    reach = float(radii.max()) + 1.0
    grown_bad = _dilate(bad, reach + 0.5)
    got_x: list[float] = []
    got_y: list[float] = []
    for _ in range(200):
        px = rng.uniform(cx - sx / 2, cx + sx / 2, 4 * n)
        py = rng.uniform(cy - sy / 2, cy + sy / 2, 4 * n)
        ok = _footprint_clear(grown_bad, px, py, reach)
        got_x.extend(px[ok].tolist())
        got_y.extend(py[ok].tolist())
        if len(got_x) >= n:
            break
    if len(got_x) < n:
        raise GccatError(f"only {len(got_x)} clear positions in the stamp for {n} injections")
    xs, ys = np.asarray(got_x[:n]), np.asarray(got_y[:n])
    fin = np.full(n, float(flux))
    res = _measure_injections(img, bad, err, p, xs, ys, fin, radii, width, p if aperture_correct else None,
                              UPPER_LIMIT_NSIGMA, psf_annulus_correction)
    diff = res["flux_out"] - fin[:, None]
    return {"x": xs, "y": ys, "flux_in": fin, "flux_out": res["flux_out"], "flux_err": res["flux_err"],
            "flux_error_biweight": np.array([biweight_scale(d[np.isfinite(d)]) for d in diff.T]),
            "flux_offset_biweight": np.array([biweight_location(d[np.isfinite(d)]) for d in diff.T])}


def fit_flux_correction(flux_measured, flux_intrinsic, deg=FLUX_CORRECTION_DEGREE) -> np.ndarray:
    """Polynomial of intrinsic flux as a function of measured flux, from injections.

    Parameters
    ----------
    flux_measured, flux_intrinsic : array_like
        Recovered and injected fluxes of one target (one radius), image units; pairs with a
        non-finite value are dropped.
    deg : int
        Polynomial degree (2 in the Sparkler study).

    Returns
    -------
    numpy.ndarray
        Coefficients, highest power first (``numpy.polyfit`` order). The fit is only valid over
        the range of measured fluxes injected.
    """
    m = np.asarray(flux_measured, dtype=float).ravel()
    t = np.asarray(flux_intrinsic, dtype=float).ravel()
    if m.shape != t.shape:
        raise GccatError(f"flux_measured and flux_intrinsic differ in length ({m.size} and {t.size})")
    ok = np.isfinite(m) & np.isfinite(t)
    deg = int(deg)
    if ok.sum() <= deg:
        raise GccatError(f"a degree-{deg} flux correction needs more than {deg} finite pairs, got {ok.sum()}")
    return np.polyfit(m[ok], t[ok], deg)


def apply_flux_correction(coeffs, flux_measured) -> np.ndarray:
    """Intrinsic flux from measured flux with :func:`fit_flux_correction` coefficients (image units)."""
    return np.polyval(np.asarray(coeffs, dtype=float), np.asarray(flux_measured, dtype=float))


# ------------------------------------------------------------------------------------ test image


def _spread_positions(rng: np.random.Generator, n: int, shape: tuple[int, int], margin: float,
                      min_sep: float) -> tuple[np.ndarray, np.ndarray]:
    """``n`` uniform positions at least ``min_sep`` apart (greedy, exclusion disks on a grid)."""
    ny, nx = shape
    if nx - 1 - 2 * margin <= 0 or ny - 1 - 2 * margin <= 0:
        raise GccatError(f"image {shape} too small for a margin of {margin} px")
    xs_out: list[float] = []
    ys_out: list[float] = []
    if min_sep <= 0:
        return (rng.uniform(margin, nx - 1 - margin, n), rng.uniform(margin, ny - 1 - margin, n))
    disk = _disk_offsets(min_sep)
    r = disk.shape[0] // 2
    taken = np.zeros((ny + 2 * r, nx + 2 * r), dtype=bool)
    for _ in range(20):
        cx = rng.uniform(margin, nx - 1 - margin, 3 * n)
        cy = rng.uniform(margin, ny - 1 - margin, 3 * n)
        for xi, yi in zip(cx.tolist(), cy.tolist(), strict=True):
            i, j = int(xi + 0.5), int(yi + 0.5)
            if taken[j + r, i + r]:
                continue
            xs_out.append(xi)
            ys_out.append(yi)
            # exclusion on the pixel grid: separations are >= min_sep - 1 px
            taken[j:j + 2 * r + 1, i:i + 2 * r + 1] |= disk
            if len(xs_out) == n:
                return np.asarray(xs_out), np.asarray(ys_out)
    raise GccatError(f"could not place {n} sources {min_sep} px apart in {shape}")


def make_test_mosaic(shape=(512, 512), *, psf_fwhm_pix=2.0, noise_sigma=1.0, n_points=300,
                     flux_range=(5, 500), bcg=True, bcg_amplitude=200.0, bcg_r_eff_pix=40.0, bcg_n=4.0,
                     icl_gradient=0.02, rng,
                     border_pix=8, min_sep_pix=6.0, x=None, y=None, flux=None, psf_kind="moffat", psf_size=25,
                     bcg_ellip=0.2, bcg_theta=0.6, dtype=np.float64) -> dict:
    """A synthetic cluster-core image with point sources (GCs) of known position and flux.

    The image is a Sersic BCG (``astropy.modeling.models.Sersic2D``, centred on the image,
    evaluated at pixel centres) plus a planar ICL gradient ``icl_gradient * ((x - xc) +
    0.5 (y - yc))`` plus a constant making the ICL positive, point sources made with
    :func:`inject_point_sources` (PSF from :func:`make_psf`), and Gaussian noise of
    ``noise_sigma``. A border of ``border_pix`` has zero weight and image value 0, as in a
    drizzled mosaic.

    Parameters
    ----------
    shape : (int, int)
        ``(ny, nx)``.
    psf_fwhm_pix : float
        PSF FWHM, pixels.
    noise_sigma : float
        Per-pixel Gaussian noise, image units.
    n_points : int
        Number of point sources (ignored when ``x, y`` are given).
    flux_range : (float, float)
        Point-source fluxes are log-uniform in this range, image units.
    bcg : bool
        Include the BCG and the ICL.
    bcg_amplitude, bcg_r_eff_pix, bcg_n : float
        Sersic surface brightness at ``r_eff`` (image units per pixel), ``r_eff`` (pixels), index.
    icl_gradient : float
        ICL slope, image units per pixel.
    rng : numpy.random.Generator
        Source of positions, fluxes and noise.
    border_pix : int
        Width of the zero-weight border, pixels.
    min_sep_pix : float
        Minimum separation of the point sources (on the pixel grid), pixels; they also keep
        ``border_pix + 3`` from the edges.
    x, y, flux : array_like, optional
        Use these sources instead of drawing them (e.g. a second band of the same field).
    psf_kind, psf_size, bcg_ellip, bcg_theta
        PSF profile and stamp size; BCG ellipticity and position angle (radians).
    dtype : numpy dtype
        Of the image.

    Returns
    -------
    dict
        ``image``, ``weight`` (``1 / noise_sigma^2``, 0 in the border), ``error`` (``noise_sigma``,
        ``inf`` in the border), ``psf``, ``truth`` (``x``, ``y``, ``flux``) and ``bcg_model``
        (BCG + ICL without noise; zeros without a BCG).
    """
    rng = _rng(rng)
    ny, nx = (int(s) for s in shape)
    psf = make_psf(psf_fwhm_pix, size=psf_size, kind=psf_kind)
    if x is not None or y is not None:
        xs, ys = _positions(x, y)
        fl = np.broadcast_to(np.asarray(flux, dtype=float), xs.shape).copy()
    else:
        xs, ys = _spread_positions(rng, int(n_points), (ny, nx), border_pix + 3.0, float(min_sep_pix))
        lo, hi = (float(v) for v in flux_range)
        fl = np.exp(rng.uniform(np.log(lo), np.log(hi), xs.size))
    model = np.zeros((ny, nx))
    if bcg:
        yy, xx = np.mgrid[0:ny, 0:nx].astype(float)
        xc, yc = (nx - 1) / 2.0, (ny - 1) / 2.0
        model += Sersic2D(amplitude=bcg_amplitude, r_eff=bcg_r_eff_pix, n=bcg_n, x_0=xc, y_0=yc,
                          ellip=bcg_ellip, theta=bcg_theta)(xx, yy)
        icl = icl_gradient * ((xx - xc) + 0.5 * (yy - yc))
        model += icl - icl.min()
    image = inject_point_sources(model, psf, xs, ys, fl)
    image += rng.normal(0.0, noise_sigma, (ny, nx))
    weight = np.full((ny, nx), 1.0 / noise_sigma**2)
    b = int(border_pix)
    if b > 0:
        weight[:b] = 0
        weight[-b:] = 0
        weight[:, :b] = 0
        weight[:, -b:] = 0
    image[weight == 0] = 0.0
    error = np.where(weight > 0, noise_sigma, np.inf)
    return {"image": image.astype(dtype, copy=False), "weight": weight, "error": error, "psf": psf,
            "truth": {"x": xs, "y": ys, "flux": fl}, "bcg_model": model}
