"""Image stacks of point sources: re-centred cutouts, an annulus background, a median stack.

Each source's cutout is cut from the image (:class:`astropy.nddata.Cutout2D`, a few pixels
wider than the stack), its local background, the 3-sigma-clipped median in a circular annulus
around the source (photutils :class:`~photutils.aperture.CircularAnnulus` and
:class:`~photutils.aperture.ApertureStats`), is subtracted, and the cutout is shifted by the
sub-pixel offset of the source from the cutout's central pixel with a Fourier shift
(:func:`scipy.ndimage.fourier_shift`), so that every source lands on the central pixel centre
before the pixel-wise median (or mean). The stack is measured by the PSF fit of
:func:`catalog.images.psfphot.psf_photometry` and its radial profile
(:class:`photutils.profiles.RadialProfile`) compared with the PSF's.

Units: positions, radii and sides in pixels; pixel values and fluxes in image units.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from catalog.checks import as_grid as _image
from catalog.constants import STACK_ANNULUS_PIX
from catalog.errors import GccatError
from catalog.images._common import _positions, source_tiles
from catalog.images.psfphot import _noise_map, check_psf_stamp, psf_photometry

#: Ways of combining the cutouts pixel by pixel.
COMBINE_METHODS = ("median", "mean")
#: Pixels added on each side of a cutout before the Fourier shift and cut off after it, so
#: that the periodic wrap of the shift only touches pixels that are thrown away.
SHIFT_PAD_PIX = 3
#: Efficiency factor of the median of N Gaussian values: its error is sqrt(pi/2) sigma/sqrt(N).
MEDIAN_ERROR_FACTOR = float(np.sqrt(np.pi / 2))
#: Fewest sources a stack is made of.
MIN_STACK_SOURCES = 3


@dataclass
class Stack:
    """A stack of point-source cutouts (see :func:`stack_sources`).

    Attributes
    ----------
    image : numpy.ndarray
        ``(side, side)`` stack, background subtracted, the sources on the central pixel
        centre; image units per pixel.
    error : numpy.ndarray
        1-sigma error of each stack pixel from the error map (image units).
    used : numpy.ndarray of bool
        Per input source: its cutout went into the stack (whole on the image, no masked pixel).
    background : numpy.ndarray
        Per input source: the annulus background subtracted (image units per pixel; NaN if unused).
    offsets : numpy.ndarray
        ``(n, 2)`` sub-pixel shifts applied (dx, dy), pixels.
    combine : str
        ``median`` or ``mean``.
    """

    image: np.ndarray
    error: np.ndarray
    used: np.ndarray
    background: np.ndarray
    offsets: np.ndarray
    combine: str

    @property
    def n_sources(self) -> int:
        """Sources in the stack."""
        return int(self.used.sum())


def _check_annulus(annulus_pix) -> tuple[float, float]:
    a = np.asarray(annulus_pix, dtype=float).ravel()
    if a.size != 2 or not np.isfinite(a).all() or not 0 < a[0] < a[1]:
        raise GccatError(f"the annulus must be two radii 0 < r_in < r_out pixels, got {annulus_pix!r}")
    return float(a[0]), float(a[1])


def annulus_background(image, x, y, annulus_pix=STACK_ANNULUS_PIX, mask=None) -> np.ndarray:
    """The 3-sigma-clipped median of each source's annulus (photutils ApertureStats).

    Parameters
    ----------
    image : array_like
        ``(ny, nx)`` image.
    x, y : array_like
        Source positions, pixels.
    annulus_pix : (float, float)
        Inner and outer radius, pixels.
    mask : numpy.ndarray of bool, optional
        Pixels to leave out (True), besides the non-finite ones.

    Returns
    -------
    numpy.ndarray
        Background per pixel at each source, image units (NaN where the annulus has no pixel).
    """
    from astropy.stats import SigmaClip
    from photutils.aperture import ApertureStats, CircularAnnulus

    img = _image("image", image)
    xs, ys = _positions(x, y)
    r_in, r_out = _check_annulus(annulus_pix)
    if xs.size == 0:
        return np.empty(0)
    bad = ~np.isfinite(img) if mask is None else (~np.isfinite(img) | np.asarray(mask, bool))
    ann = CircularAnnulus(np.c_[xs, ys], r_in, r_out)
    stats = ApertureStats(
        np.where(bad, 0.0, img), ann, mask=bad, sigma_clip=SigmaClip(sigma=3.0, maxiters=10)
    )
    return np.atleast_1d(np.asarray(stats.median, float))


def _stack_task(task) -> tuple[np.ndarray, list]:
    """Background-subtract and re-centre the cutouts of one task's sources (see
    :func:`stack_sources`): per source its background and its shifted cutout (None if its
    cutout is not whole on unmasked pixels), in the order of the task's sources.

    The task holds a window of the image (its origin, in image pixels, travels with it) and
    the sources' positions in image pixels; the offsets are taken in image pixels, so a source
    gets the same pixels, background and shift in any window that holds its cutout and annulus.
    """
    from astropy.nddata import Cutout2D
    from astropy.nddata.utils import NoOverlapError, PartialOverlapError

    (y0, x0), img, bad, xs, ys, side, annulus = task
    big = side + 2 * SHIFT_PAD_PIX
    p = SHIFT_PAD_PIX
    # exact: a whole number of pixels off a position is exact in floating point
    bkg = annulus_background(img, xs - x0, ys - y0, annulus, mask=bad)
    cuts: list = [None] * xs.size
    for k in range(xs.size):
        if not np.isfinite(bkg[k]):
            continue
        ix, iy = int(np.rint(xs[k])), int(np.rint(ys[k]))
        try:
            cut = Cutout2D(img, (ix - x0, iy - y0), big, mode="strict", copy=True)
        except (NoOverlapError, PartialOverlapError, ValueError):
            continue
        sl = cut.slices_original
        if bad[sl].any():
            continue
        dx, dy = ix - xs[k], iy - ys[k]
        shifted = np.fft.ifft2(ndimage.fourier_shift(np.fft.fft2(cut.data - bkg[k]), (dy, dx))).real
        cuts[k] = shifted[p:-p, p:-p]
    return bkg, cuts


def stack_tasks(img, bad, xs, ys, side, annulus, tile_pix=None) -> list[tuple[np.ndarray, tuple]]:
    """The sources with finite positions as :func:`_stack_task` tasks: ``(indices, task)``.

    One task of the whole image without ``tile_pix``; else one per ``tile_pix`` square tile
    with sources, on the window that holds their cutouts (``side + 2 SHIFT_PAD_PIX``) and
    background annuli (``annulus[1]``, the outer radius, pixels).
    """
    idx = np.flatnonzero(np.isfinite(xs) & np.isfinite(ys))
    if idx.size == 0:
        return []
    if tile_pix is None:
        return [(idx, ((0, 0), img, bad, xs[idx], ys[idx], side, annulus))]
    margin = max((side + 2 * SHIFT_PAD_PIX) // 2, int(np.ceil(annulus[1]))) + 2
    out = []
    for sel, win in source_tiles(xs[idx], ys[idx], img.shape, int(tile_pix), margin):
        k = idx[sel]
        origin = (win[0].start, win[1].start)
        out.append((k, (origin, img[win], bad[win], xs[k], ys[k], side, annulus)))
    return out


def stack_sources(
    image,
    x,
    y,
    *,
    side_pix: int = 25,
    annulus_pix=STACK_ANNULUS_PIX,
    error=None,
    weight=None,
    mask=None,
    combine: str = "median",
    tile_pix=None,
    map_tasks=None,
) -> Stack:
    """Median (or mean) stack of point sources re-centred to a sub-pixel on their positions.

    For each source a cutout of ``side_pix + 2 SHIFT_PAD_PIX`` pixels centred on the pixel
    nearest ``(x, y)`` is taken (:class:`~astropy.nddata.Cutout2D`, ``mode='strict'``);
    sources whose cutout leaves the image or touches a masked pixel are left out. The annulus
    background (:func:`annulus_background`) is subtracted, the cutout is shifted by
    ``(round(x) - x, round(y) - y)`` with a Fourier shift (exact for a band-limited image; the
    noise stays white with the same variance), the padding is cut off, and the cutouts are
    combined pixel by pixel. The error of a stack pixel comes from the error map:
    ``sqrt(sum sigma_i^2) / N`` for the mean and ``sqrt(pi/2)`` times that for the median.

    Parameters
    ----------
    image : array_like
        ``(ny, nx)`` image, image units.
    x, y : array_like
        Source positions, pixels (0-based).
    side_pix : int
        Side of the stack, pixels (odd, >= 5).
    annulus_pix : (float, float)
        Inner and outer radius of the background annulus, pixels.
    error, weight : array_like, optional
        1-sigma error map or inverse-variance map; without either, the 3-sigma-clipped
        standard deviation of the image.
    mask : numpy.ndarray of bool, optional
        Pixels without data (True).
    combine : {"median", "mean"}
        How the cutouts are combined.
    tile_pix : int, optional
        Cut, background-subtract and shift the cutouts of the sources of each ``tile_pix``
        square tile as one task, on the window of the image that holds their cutouts and
        annuli (default: one task); the error map is made, and the variances summed, here.
        The stack does not depend on it, to the bit: each cutout is made from the same pixels,
        and the cutouts and variances are combined here in the order of the sources.
    map_tasks : callable, optional
        ``map_tasks(function, tasks)`` returning the results in order, e.g. on a Dask client
        (default: the built-in ``map``, in this process).

    Returns
    -------
    Stack
    """
    img = _image("image", image)
    xs, ys = _positions(x, y)
    side = int(side_pix) if float(side_pix) == int(side_pix) else -1
    if side < 5 or side % 2 == 0:
        raise GccatError(f"the stack side must be an odd whole number >= 5 pixels, got {side_pix!r}")
    if combine not in COMBINE_METHODS:
        raise GccatError(f"combine must be one of {', '.join(COMBINE_METHODS)}, got {combine!r}")
    annulus = _check_annulus(annulus_pix)
    _, err, bad = _noise_map(img, error, weight, mask)
    bad = bad | ~np.isfinite(img)
    n = xs.size
    offsets = np.full((n, 2), np.nan)
    bkg = np.full(n, np.nan)
    cut_of: list = [None] * n
    tasks = stack_tasks(img, bad, xs, ys, side, annulus, tile_pix)
    results = (map if map_tasks is None else map_tasks)(_stack_task, [t for _, t in tasks])
    for (sel, _), (b, cuts) in zip(tasks, results, strict=True):
        bkg[sel] = b
        for k, c in zip(sel.tolist(), cuts, strict=True):
            cut_of[k] = c
    used = np.array([c is not None for c in cut_of], bool)
    # stacked and summed in the order of the sources, whatever the tasks (bit for bit); the
    # variances from the error map here, over each used cutout's pixels
    var_sum = np.zeros((side, side))
    h = side // 2
    for k in np.flatnonzero(used):
        ix, iy = int(np.rint(xs[k])), int(np.rint(ys[k]))
        var_sum += err[iy - h : iy + h + 1, ix - h : ix + h + 1] ** 2
        offsets[k] = (ix - xs[k], iy - ys[k])
    cuts = [cut_of[k] for k in np.flatnonzero(used)]
    big = side + 2 * SHIFT_PAD_PIX
    if len(cuts) < MIN_STACK_SOURCES:
        raise GccatError(
            f"only {len(cuts)} of {n} sources have a whole {big}x{big} px cutout on unmasked "
            f"pixels; a stack needs at least {MIN_STACK_SOURCES}"
        )
    cube = np.stack(cuts)
    m = len(cuts)
    if combine == "median":
        data = np.median(cube, axis=0)
        sigma = MEDIAN_ERROR_FACTOR * np.sqrt(var_sum) / m
    else:
        data = cube.mean(axis=0)
        sigma = np.sqrt(var_sum) / m
    bkg[~used] = np.nan
    return Stack(data, sigma, used, bkg, offsets, combine)


def radial_profile(image, edges_pix, *, error=None) -> dict[str, np.ndarray]:
    """Azimuthally averaged profile about the central pixel (photutils RadialProfile).

    Parameters
    ----------
    image : array_like
        Stamp with the source on its central pixel (odd sides).
    edges_pix : array_like
        Edges of the radial bins, pixels (increasing, from 0).
    error : array_like, optional
        1-sigma error of each pixel.

    Returns
    -------
    dict of numpy.ndarray
        ``radius`` (bin centres, pixels), ``profile`` (mean per pixel, image units),
        ``profile_error`` (NaN without ``error``).
    """
    from photutils.profiles import RadialProfile

    img = _image("image", image)
    ny, nx = img.shape
    rp = RadialProfile(img, ((nx - 1) / 2, (ny - 1) / 2), np.asarray(edges_pix, float), error=error)
    perr = rp.profile_error if error is not None else np.full(len(rp.radius), np.nan)
    return {
        "radius": np.asarray(rp.radius, float),
        "profile": np.asarray(rp.profile, float),
        "profile_error": np.asarray(perr, float),
    }


def _on_side(psf: np.ndarray, side: int) -> np.ndarray:
    """The (odd-sided) stamp cropped or zero-padded about its centre to ``side x side``."""
    out = np.zeros((side, side))
    h, hp = side // 2, np.array(psf.shape) // 2
    ry, rx = min(h, hp[0]), min(h, hp[1])
    out[h - ry : h + ry + 1, h - rx : h + rx + 1] = psf[
        hp[0] - ry : hp[0] + ry + 1, hp[1] - rx : hp[1] + rx + 1
    ]
    return out


def measure_stack(stack: Stack, psf, *, background: str = "constant", max_shift_pix: float = 1.0) -> dict:
    """Fit the stack with the PSF and compare its radial profile with the PSF's.

    The fit is :func:`catalog.images.psfphot.psf_photometry` at the central pixel on the whole
    stack (its error map as weights, ``background`` fitted jointly). Profiles are in 1-px bins
    from the centre to the stack's half side; the stack's, less the fitted background, is
    divided by the fitted flux and the PSF's (stamp normalised to sum 1) by 1, so both are
    fractions of the total flux per pixel and their ratio is 1 at every radius for a stack
    that is the PSF.

    Returns
    -------
    dict
        ``flux``, ``flux_err``, ``x``, ``y``, ``chi2_reduced``, ``background`` (per pixel,
        image units), ``quality`` (of the fit),
        ``fwhm_stack_pix``, ``fwhm_psf_pix`` (circular Moffat fits,
        :func:`catalog.images.epsf.psf_fwhm_pix`), and ``radius_pix``, ``profile_stack``,
        ``profile_stack_err``, ``profile_psf``, ``ratio``, ``ratio_err`` per radial bin.
    """
    from catalog.images.epsf import psf_fwhm_pix

    p = check_psf_stamp(psf)
    side = stack.image.shape[0]
    c = (side - 1) / 2
    fit = psf_photometry(
        stack.image,
        [c],
        [c],
        p,
        error=stack.error,
        fit_size_pix=side,
        max_shift_pix=max_shift_pix,
        background=background,
    )
    flux, flux_err = float(fit["flux"][0]), float(fit["flux_err"][0])
    if not (np.isfinite(flux) and flux > 0):
        raise GccatError(f"the PSF fit of the stack failed or gave a flux <= 0 ({flux:g})")
    # the fitted constant is what the annulus median took too much or too little (an annulus
    # inside the PSF wings subtracts PSF light): the stack's profile is taken without it
    bkg = float(fit["background"][0])
    edges = np.arange(0.0, c + 1.0, 1.0)
    prof = radial_profile((stack.image - bkg) / flux, edges, error=stack.error / flux)
    ppsf = radial_profile(_on_side(p, side), edges)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = prof["profile"] / ppsf["profile"]
        ratio_err = prof["profile_error"] / ppsf["profile"]
    return {
        "flux": flux,
        "flux_err": flux_err,
        "x": float(fit["x"][0]),
        "y": float(fit["y"][0]),
        "chi2_reduced": float(fit["chi2_reduced"][0]),
        "background": bkg,
        "quality": int(fit["quality"][0]),
        "fwhm_stack_pix": psf_fwhm_pix((stack.image - bkg) / flux),
        "fwhm_psf_pix": psf_fwhm_pix(p),
        "radius_pix": prof["radius"],
        "profile_stack": prof["profile"],
        "profile_stack_err": prof["profile_error"],
        "profile_psf": ppsf["profile"],
        "ratio": ratio,
        "ratio_err": ratio_err,
    }
