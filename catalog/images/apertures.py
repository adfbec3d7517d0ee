"""Forced circular-aperture photometry with a local median background and aperture correction.

The Sparkler photometry (``docs/methods.md``): circular apertures of radius 0.12, 0.16 and
0.20 arcsec, median local background in an annulus from the aperture edge r to r + 0.08
arcsec, aperture correction from the PSF growth curve (and the PSF light in the annulus),
3-sigma upper limits. The numbers live in :mod:`catalog.constants`; here radii and annulus
widths are in pixels (the caller divides arcsec by the pixel scale).

Units: positions and radii in pixels, fluxes and backgrounds in image units.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from photutils.aperture import ApertureStats, CircularAnnulus, CircularAperture
from photutils.aperture import aperture_photometry as _photutils_aperture_photometry

from catalog.checks import as_grid as _image
from catalog.checks import as_mask as _bool_mask
from catalog.constants import DEFAULT_ANNULUS_WIDTH_PIX, UPPER_LIMIT_NSIGMA
from catalog.errors import GccatError, GccatWarning
from catalog.images._common import _positions, _radii, source_tiles
from catalog.images.background import robust_noise
from catalog.images.psf import _annulus_model, _normalised_psf, growth_curve

#: Standard error of a sample median of Gaussian data, in units of sigma / sqrt(n).
MEDIAN_ERROR_FACTOR = math.sqrt(math.pi / 2.0)


def _annulus_width(annulus_width_pix) -> float:
    w = DEFAULT_ANNULUS_WIDTH_PIX if annulus_width_pix is None else float(annulus_width_pix)
    if not (np.isfinite(w) and w >= 0):
        raise GccatError(f"annulus_width_pix must be >= 0 pixels, got {annulus_width_pix!r}")
    return w


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
        warnings.warn(
            "aperture too small for the annulus PSF correction; using 1/growth_curve",
            GccatWarning,
            stacklevel=3,
        )
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


def _usable_pixels(img: np.ndarray, error, weight, mask):
    """The image with bad pixels zeroed, the per-pixel error (from ``error``, else 1/sqrt of the
    inverse-variance ``weight``, else None) zeroed there too, and the bad-pixel mask: non-finite
    data or error, masked, or weight <= 0.
    """
    shape = img.shape
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
    return np.where(bad, 0.0, img), err, bad


def _annulus_background(data, err, bad, pos, r: float, width: float):
    """Median local background per pixel in the annulus r..r+width, its error
    (sqrt(pi/2) sigma / sqrt(n)), and the per-pixel noise there; zeros without an annulus.
    """
    if width <= 0:
        return np.zeros(len(pos)), np.zeros(len(pos)), np.full(len(pos), np.nan)
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
    return bkg, bkg_err, sigma_ann


def _aperture_sums(task) -> list[tuple]:
    """The photutils pass of one window (``task`` = data, error, bad mask, positions in the
    window's pixels, radii, annulus width): per radius the aperture sum, its error (None
    without an error map), the unmasked aperture area (pixels) and the annulus median, its
    error and the annulus noise (:func:`_annulus_background`), each of one entry per position.
    """
    data, err, bad, pos, radii, width = task
    out = []
    for r in radii:
        ap = CircularAperture(pos, r)
        tbl = _photutils_aperture_photometry(data, ap, error=err, mask=bad, method="exact")
        apsum = np.asarray(tbl["aperture_sum"], dtype=float)
        apsum_err = None if err is None else np.asarray(tbl["aperture_sum_err"], dtype=float)
        area = np.asarray(ap.area_overlap(data, mask=bad), dtype=float)
        out.append((apsum, apsum_err, area, *_annulus_background(data, err, bad, pos, r, width)))
    return out


def _photutils_boxes(c: np.ndarray, extents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last + 1 pixel on one axis of the bounding boxes photutils gives apertures of
    half-sides ``extents`` at coordinates ``c`` (``BoundingBox.from_float``), ``(n, n_ext)``.
    """
    return np.floor((c[:, None] - extents) + 0.5), np.ceil((c[:, None] + extents) + 0.5)


def _exact_window(pos: np.ndarray, extents: np.ndarray, win: tuple, shape) -> tuple:
    """``win`` (rows, columns), or on an axis where it would not do, the window from the
    image's first pixel to the boxes' end.

    The window must hold every aperture's bounding box (or end where the image ends), and the
    boxes photutils computes from window coordinates must be the image's, shifted. Shifting a
    position by a whole number of pixels towards 0 is exact, but ``x - r + 0.5`` can round
    across a whole number in one frame only when the aperture's edge ``x - r`` lies on a pixel
    edge to the last bits (the box then gains or loses a column the aperture only grazes, and
    the sums change in the last bits); the image's own frame is sure to give the same boxes.
    """
    out = list(win)
    for axis, (k, n) in enumerate(((1, shape[1]), (0, shape[0]))):
        sl = win[k]
        c = pos[:, axis]
        lo, hi = _photutils_boxes(c, extents)
        lo_w, hi_w = _photutils_boxes(c - sl.start, extents)
        held = (sl.start == 0 or lo.min() >= sl.start) and (sl.stop == n or hi.max() <= sl.stop)
        if not (held and np.array_equal(lo_w + sl.start, lo) and np.array_equal(hi_w + sl.start, hi)):
            out[k] = slice(0, int(min(max(sl.stop, hi.max()), n)))
    return tuple(out)


def _aperture_tasks(data, err, bad, pos, radii, width, tile_pix) -> list[tuple]:
    """Independent :func:`_aperture_sums` tasks with the indices of their positions: the
    positions of each ``tile_pix`` square of the image with the window holding all the pixels
    their apertures and annuli touch (positions shifted to it by whole pixels); one task of
    the whole image without ``tile_pix``.
    """
    if tile_pix is None:
        return [(np.arange(len(pos)), (data, err, bad, pos, radii, width))]
    extents = np.concatenate([radii, radii + width]) if width > 0 else radii
    margin = int(math.ceil(float(extents.max()))) + 1
    tasks = []
    for sel, win in source_tiles(pos[:, 0], pos[:, 1], data.shape, tile_pix, margin):
        win = _exact_window(pos[sel], extents, win, data.shape)
        shifted = pos[sel] - np.array([win[1].start, win[0].start], dtype=float)
        tasks.append((sel, (data[win], None if err is None else err[win], bad[win], shifted, radii, width)))
    return tasks


def _gather_sums(tasks, n: int, k: int, map_tasks) -> list[list]:
    """:func:`_aperture_sums` of every task, put back in the positions' order: per radius the
    columns, each one contiguous array of length ``n``.
    """
    cols: list[list] = [[None] * 6 for _ in range(k)]
    sels = [sel for sel, _ in tasks]
    results = (map if map_tasks is None else map_tasks)(_aperture_sums, [work for _, work in tasks])
    for sel, res in zip(sels, results, strict=True):
        for j, values in enumerate(res):
            for c, v in enumerate(values):
                if v is not None:
                    if cols[j][c] is None:
                        cols[j][c] = np.empty(n)
                    cols[j][c][sel] = v
    return cols


def aperture_photometry(
    image,
    x,
    y,
    radii_pix,
    *,
    error=None,
    weight=None,
    mask=None,
    annulus_width_pix=None,
    psf=None,
    upper_limit_nsigma=UPPER_LIMIT_NSIGMA,
    psf_annulus_correction=True,
    tile_pix=None,
    map_tasks=None,
) -> dict[str, np.ndarray]:
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
    tile_pix : int, optional
        Split the photutils pass into independent tasks, the positions of each ``tile_pix``
        square of the image with the window holding every pixel their apertures and annuli
        touch (default: one task). The results do not depend on it: each aperture sees the
        same pixels, with the same pixel edges, and the aperture correction, the noise of an
        image without error map or annulus and the limits are computed over all sources at once.
    map_tasks : callable, optional
        ``map_tasks(function, tasks)`` returning the results in order, e.g. a Dask client's map
        and gather (default: the built-in ``map``, in this process).

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
    data, err, bad = _usable_pixels(img, error, weight, mask)

    ny, nx = shape
    n, k = xs.size, radii.size
    out = {
        key: np.full((n, k), np.nan)
        for key in ("flux", "flux_err", "background", "aperture_correction", "flux_limit", "mask_fraction")
    }
    out["is_upper_limit"] = np.zeros((n, k), dtype=bool)
    rmax = float(radii.max())
    inside = (
        np.isfinite(xs)
        & np.isfinite(ys)
        & (xs > -0.5 - rmax)
        & (xs < nx - 0.5 + rmax)
        & (ys > -0.5 - rmax)
        & (ys < ny - 0.5 + rmax)
    )
    if n == 0 or not inside.any():
        return out
    pos = np.column_stack([xs[inside], ys[inside]])
    p = None if psf is None else _normalised_psf(psf)
    ee = None if p is None else growth_curve(p, radii)
    const_sigma = robust_noise(img, bad) if (err is None and width == 0) else None

    tasks = _aperture_tasks(data, err, bad, pos, radii, width, tile_pix)
    sums = _gather_sums(tasks, len(pos), k, map_tasks)
    for j, r in enumerate(radii):
        apsum, apsum_err, area, bkg, bkg_err, sigma_ann = sums[j]
        if err is None:
            apsum_err = (sigma_ann if width > 0 else const_sigma) * np.sqrt(area)
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
