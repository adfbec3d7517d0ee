"""Point-source (GC) detection: the high-pass filter, the brightest-pixel scan, sub-pixel peaks.

The Abell S1063 GC detection (``docs/methods.md``): per band a high-pass filter made of two
differences of Gaussians (FWHM 0.5 px minus 5 px, then 1 px minus 3 px); bright and extended
sources, a user mask and the image edges masked (:mod:`catalog.images.background`); the
filtered bands summed; iterative brightest-pixel detection with a 3-pixel exclusion disk down
to a noise threshold, keeping detections at twice it.

Units: positions, FWHMs and radii in pixels; the filtered image in image units.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from catalog.checks import as_grid as _image
from catalog.checks import as_mask as _bool_mask
from catalog.errors import GccatError, GccatWarning
from catalog.images._common import _disk_offsets, image_tiles
from catalog.images.background import _bright_regions, _dilate, _edge_mask, _valid, robust_noise
from catalog.images.psf import FWHM_PER_SIGMA

#: High-pass filter of the Abell S1063 GC detection: (FWHM to keep, FWHM to subtract), pixels.
DETECTION_FWHM_PAIRS = ((0.5, 5.0), (1.0, 3.0))


#: ``truncate`` of :func:`scipy.ndimage.gaussian_filter` (its default): a Gaussian of standard
#: deviation ``s`` pixels reaches ``int(4 s + 0.5)`` pixels.
GAUSS_TRUNCATE = 4.0


def _checked_pairs(fwhm_pairs) -> tuple[tuple[float, float], ...]:
    pairs = tuple(tuple(float(f) for f in pair) for pair in fwhm_pairs)
    for pair in pairs:
        if len(pair) != 2 or not (pair[0] > 0 and pair[1] > 0):
            raise GccatError(f"filter FWHMs must be positive pixels, got {pair!r}")
    return pairs


def highpass_reach_pix(fwhm_pairs=DETECTION_FWHM_PAIRS) -> int:
    """Pixels of the image a pixel of :func:`gaussian_highpass` depends on, on each side.

    Each Gaussian of a pair reaches ``int(GAUSS_TRUNCATE * sigma + 0.5)`` pixels along each axis
    (separable, so a square); the pairs are applied one after the other, so their reaches add.
    """
    return sum(
        max(int(GAUSS_TRUNCATE * f / FWHM_PER_SIGMA + 0.5) for f in pair)
        for pair in _checked_pairs(fwhm_pairs)
    )


def _highpass_task(task) -> np.ndarray:
    """Filter one window (see :func:`gaussian_highpass`) and return its tile's pixels."""
    window, pairs, tile = task
    out = window
    for f_keep, f_cut in pairs:
        keep = ndi.gaussian_filter(out, f_keep / FWHM_PER_SIGMA, mode="reflect", truncate=GAUSS_TRUNCATE)
        cut = ndi.gaussian_filter(out, f_cut / FWHM_PER_SIGMA, mode="reflect", truncate=GAUSS_TRUNCATE)
        np.subtract(keep, cut, out=keep)
        out = keep
    return out[tile]


def gaussian_highpass(
    image, fwhm_pairs=DETECTION_FWHM_PAIRS, *, mask=None, tile_pix=None, map_tasks=None
) -> np.ndarray:
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
    tile_pix : int, optional
        Filter ``tile_pix`` square tiles as independent tasks, each on the window of the
        (zero-filled) image that reaches :func:`highpass_reach_pix` beyond it (default: one
        task). The result does not depend on it, to the bit: every output pixel is computed
        from the same input pixels in the same order, and a window side on the image edge is
        the image edge, reflected as in the whole image.
    map_tasks : callable, optional
        ``map_tasks(function, tasks)`` returning the results in order, e.g. on a Dask client
        (default: the built-in ``map``, in this process).

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
    pairs = _checked_pairs(fwhm_pairs)
    if not pairs:
        return out
    ny, nx = out.shape
    if tile_pix is None:
        tiles = [((slice(0, ny), slice(0, nx)),) * 3]
    else:
        tiles = image_tiles(out.shape, int(tile_pix), highpass_reach_pix(pairs))
    tasks = [(out[win], pairs, inner) for _, win, inner in tiles]
    results = list((map if map_tasks is None else map_tasks)(_highpass_task, tasks))
    if tile_pix is None:
        return results[0]
    for (tile, _, _), filtered in zip(tiles, results, strict=True):
        out[tile] = filtered  # every task has read its window (a view of out in process) by now
    return out


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


def _brightest_pixel_scan(
    filtered: np.ndarray, level: float, radius_pix: float, max_sources: int
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
        excluded[j : j + 2 * r + 1, i : i + 2 * r + 1] |= disk
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


def _add_bands(images, weights, shape, bw, stacked, nodata, bright_opts):
    """Add each band, zero-filled and weighted, to ``stacked`` and its pixels without data to
    ``nodata`` (in band order, in place), yielding its bright-region task unless
    ``bright_opts`` is None. A generator, so that in process one band is held at a time.
    """
    for b in range(len(images)):
        img = _image(f"images[{b}]", images[b], shape, dtype=np.float32)
        w = None if weights is None or weights[b] is None else _image(f"weights[{b}]", weights[b], shape)
        valid = _valid(img, w)
        nodata |= ~valid
        stacked += np.where(valid, img * np.float32(bw[b]), np.float32(0.0))
        if bright_opts is not None:
            yield (img, valid, *bright_opts)


def _bright_task(task) -> np.ndarray:
    """The bright/extended regions of one band (a whole-image operation: regions are connected
    over the whole band, their threshold is the band's noise).
    """
    img, valid, nsigma, min_area_pix, box_pix = task
    return _bright_regions(img, valid, nsigma, min_area_pix, None, box_pix)[0]


def detect_point_sources(
    images: list[np.ndarray],
    weights: list[np.ndarray] | None = None,
    user_mask=None,
    *,
    band_weights=None,
    fwhm_pairs=DETECTION_FWHM_PAIRS,
    exclusion_radius_pix=3.0,
    threshold_nsigma=2.5,
    keep_factor=2.0,
    mask_nsigma=5.0,
    max_sources=200000,
    mask_min_area_pix=50,
    mask_grow_pix=5.0,
    border_pix=10.0,
    background_box_pix=64,
    centroid=True,
    tile_pix=None,
    map_tasks=None,
) -> Detections:
    """Detect point sources (GCs) in the sum of high-pass filtered bands.

    Each band is high-pass filtered (:func:`gaussian_highpass`, pixels without data set to 0)
    and the filtered bands are summed with ``band_weights`` (computed as the filter of the
    weighted sum, which is the same by linearity and filters once); bright/extended sources of
    any band (:func:`~catalog.images.background.auto_mask` criteria), pixels without data in
    any band (grown by ``border_pix``), a frame of ``border_pix`` and the user mask are
    excluded. Sources are then found by iterative brightest-pixel detection with an exclusion
    disk of ``exclusion_radius_pix`` down to ``threshold = threshold_nsigma * noise`` (noise = robust
    noise of the summed image), keeping those with ``peak >= keep_factor * threshold``.

    Performance with the defaults (FWHM 2 px Moffat PSF, tests/images/test_detection.py): 90%
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
        Bright-source mask and border settings, pixels (see
        :func:`~catalog.images.background.auto_mask`).
    centroid : bool
        Refine positions to sub-pixel precision with a parabola through the peak and its
        neighbours along each axis (offsets within +-0.5 px); otherwise pixel centres.
    tile_pix : int, optional
        Run the high-pass filter of the summed bands as independent tasks of ``tile_pix``
        square tiles (see :func:`gaussian_highpass`); the detections do not depend on it, to
        the bit. The band sum, the grown masks, the noise and the brightest-pixel scan stay
        here.
    map_tasks : callable, optional
        ``map_tasks(function, tasks)`` that runs the tasks, e.g. on a Dask client (default:
        in this process): each band's bright-region mask (one task per band) and the filter's
        tiles.

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
    for name, v in (
        ("exclusion_radius_pix", exclusion_radius_pix),
        ("threshold_nsigma", threshold_nsigma),
        ("keep_factor", keep_factor),
    ):
        if not (np.isfinite(v) and v > 0):
            raise GccatError(f"{name} must be positive, got {v!r}")
    umask = _bool_mask(user_mask, shape, "user_mask")

    # The filter is linear, so the weighted sum of the filtered bands (each with its pixels
    # without data set to 0) is the filtered weighted sum of the zero-filled bands: one filter
    # pass instead of one per band, identical up to rounding.
    stacked = np.zeros(shape, dtype=np.float32)
    nodata = np.zeros(shape, dtype=bool)
    bright = np.zeros(shape, dtype=bool)
    opts = None if mask_nsigma is None else (float(mask_nsigma), float(mask_min_area_pix), background_box_pix)
    bands = _add_bands(images, weights, shape, bw, stacked, nodata, opts)
    for regions in (map if map_tasks is None else map_tasks)(_bright_task, bands):
        bright |= regions
    summed = gaussian_highpass(stacked, fwhm_pairs, tile_pix=tile_pix, map_tasks=map_tasks)
    del stacked
    mask = _dilate(bright, float(mask_grow_pix)) | _edge_mask(~nodata, float(border_pix)) | umask
    summed[mask] = np.nan
    noise = robust_noise(summed)
    if not (np.isfinite(noise) and noise > 0):
        raise GccatError("no unmasked pixels with noise left to set a detection threshold")
    threshold = float(threshold_nsigma) * noise
    ix, iy, truncated = _brightest_pixel_scan(
        summed, float(keep_factor) * threshold, float(exclusion_radius_pix), int(max_sources)
    )
    if truncated:
        warnings.warn(f"detection stopped at max_sources={max_sources}", GccatWarning, stacklevel=2)
    peak = summed[iy, ix].astype(float)
    if centroid and ix.size:
        dx, dy = _parabolic_offsets(summed, ix, iy)
    else:
        dx = dy = np.zeros(ix.size)
    return Detections(
        x=ix + dx,
        y=iy + dy,
        peak=peak,
        snr=peak / noise,
        noise=noise,
        threshold=threshold,
        mask=mask,
        mask_area_pix=int(mask.sum()),
        filtered=summed,
    )
