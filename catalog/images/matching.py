"""PSF matching: a kernel that turns a narrower PSF into a broader target PSF.

The kernel is the photutils Fourier-ratio kernel (:func:`photutils.psf_matching.make_kernel`,
the new name of ``photutils.psf.matching.create_matching_kernel``) with a
:class:`~photutils.psf_matching.SplitCosineBellWindow`; the window's ``alpha`` (taper width)
and ``beta`` (inner flat diameter) are chosen so that the growth curve of the source PSF
convolved with the kernel agrees with the target's at the aperture radii (the Sparkler's
0.12, 0.16, 0.20"): a grid, then a Nelder-Mead refinement of the best grid point.

Units: radii in pixels; PSFs on one pixel grid, odd sides, centred on the central pixel.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.signal import fftconvolve

from catalog.checks import as_grid as _image
from catalog.errors import GccatError
from catalog.images._common import _radii
from catalog.images.psf import _normalised_psf, growth_curve

#: The window grid searched before the refinement (alpha, beta in [0, 1], alpha + beta <= 1).
WINDOW_GRID = tuple(np.round(np.arange(0.1, 1.01, 0.1), 2))


def _common_shape(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    for name, p in (("source", a), ("target", b)):
        if p.shape[0] % 2 == 0 or p.shape[1] % 2 == 0:
            raise GccatError(f"the {name} PSF is {p.shape[0]}x{p.shape[1]} px; PSFs need odd sides")
    n = max(*a.shape, *b.shape)

    def pad(p):
        dy, dx = (n - p.shape[0]) // 2, (n - p.shape[1]) // 2
        return np.pad(p, ((dy, dy), (dx, dx)))

    return pad(a), pad(b)


def half_light_radius_pix(psf) -> float:
    """Radius enclosing half of a centred PSF's light (within its stamp), pixels."""
    p = _normalised_psf(psf)
    r = np.linspace(0.1, min(p.shape) / 2.0, 200)
    return float(np.interp(0.5, growth_curve(p, r), r))


@dataclass
class MatchingKernel:
    """A PSF-matching kernel and how well it matches (see :func:`match_psf`).

    Attributes
    ----------
    kernel : numpy.ndarray
        Convolution kernel, sum 1.
    alpha, beta : float
        SplitCosineBellWindow parameters chosen.
    regularization : float
        photutils' OTF threshold.
    radii_pix : numpy.ndarray
        Radii of the growth-curve comparison, pixels.
    ee_source, ee_target, ee_matched : numpy.ndarray
        Growth curves at those radii.
    max_deviation : float
        max |ee_matched / ee_target - 1|.
    """

    kernel: np.ndarray
    alpha: float
    beta: float
    regularization: float
    radii_pix: np.ndarray
    ee_source: np.ndarray
    ee_target: np.ndarray
    ee_matched: np.ndarray
    max_deviation: float


def _kernel(src, tgt, alpha, beta, regularization):
    from photutils.psf_matching import SplitCosineBellWindow, make_kernel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return make_kernel(src, tgt, window=SplitCosineBellWindow(alpha, beta), regularization=regularization)


def match_psf(source_psf, target_psf, radii_pix, *, regularization=1e-4, grid=WINDOW_GRID) -> MatchingKernel:
    """The matching kernel from ``source_psf`` to ``target_psf`` with an optimised window.

    For each ``(alpha, beta)`` of ``grid`` x ``grid`` with ``alpha + beta <= 1`` the kernel is
    made, the source convolved with it (FFT, same shape) and the largest relative deviation of
    its growth curve from the target's at ``radii_pix`` computed; the best point is refined by
    Nelder-Mead inside [0, 1]^2 and kept if better.

    Parameters
    ----------
    source_psf, target_psf : array_like
        Centred PSFs on one pixel grid, odd sides (the smaller is padded with zeros).
    radii_pix : array_like
        Aperture radii, pixels.
    regularization : float
        OTF threshold of :func:`photutils.psf_matching.make_kernel`, in [0, 1).
    grid : sequence of float
        Values of alpha and beta searched.

    Returns
    -------
    MatchingKernel

    Raises
    ------
    GccatError
        When the target is not broader than the source (its half-light radius is smaller):
        matching would have to sharpen the image.
    """
    src, tgt = _common_shape(_normalised_psf(source_psf), _normalised_psf(target_psf))
    radii = _radii(radii_pix)
    if not 0 <= float(regularization) < 1:
        raise GccatError(f"regularization must be in [0, 1), got {regularization!r}")
    rh_s, rh_t = half_light_radius_pix(src), half_light_radius_pix(tgt)
    if rh_t < rh_s * 1.001:
        raise GccatError(
            f"the target PSF (half-light radius {rh_t:.3g} px) is not broader than the source PSF "
            f"({rh_s:.3g} px); a matching kernel can only broaden: swap --psf and --target"
        )
    ee_t = growth_curve(tgt, radii)

    def deviation(ab):
        a, b = (float(v) for v in ab)
        if not (0 <= a <= 1 and 0 <= b <= 1 and a + b <= 1):
            return np.inf
        matched = fftconvolve(src, _kernel(src, tgt, a, b, regularization), mode="same")
        if not matched.sum() > 0:
            return np.inf
        return float(np.max(np.abs(growth_curve(matched, radii) / ee_t - 1)))

    pts = [(a, b) for a in grid for b in grid if a + b <= 1 + 1e-9]
    if not pts:
        raise GccatError("the window grid is empty (alpha + beta <= 1)")
    devs = [deviation(p) for p in pts]
    best = pts[int(np.argmin(devs))]
    best_dev = float(np.min(devs))
    res = minimize(
        deviation, best, method="Nelder-Mead", options={"xatol": 1e-3, "fatol": 1e-6, "maxiter": 80}
    )
    if res.fun < best_dev:
        best, best_dev = tuple(float(v) for v in res.x), float(res.fun)
    alpha, beta = float(best[0]), float(best[1])
    kernel = _kernel(src, tgt, alpha, beta, regularization)
    matched = fftconvolve(src, kernel, mode="same")
    return MatchingKernel(
        kernel=kernel,
        alpha=alpha,
        beta=beta,
        regularization=float(regularization),
        radii_pix=radii,
        ee_source=growth_curve(src, radii),
        ee_target=ee_t,
        ee_matched=growth_curve(matched, radii),
        max_deviation=best_dev,
    )


def convolve_image(
    image, kernel, *, error=None, bad=None
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """An image (and its error map) convolved with a matching kernel.

    Pixels without data are set to 0 before the FFT convolution; an output pixel is without
    data (NaN) where more than 1% of the kernel's absolute weight falls on such pixels. The
    error map is propagated as the variance convolved with the squared kernel,
    ``sigma'^2 = sigma^2 * K^2``: exact per pixel for independent input noise; the output
    noise is correlated between pixels (over the kernel's width), which per-pixel errors do
    not describe.

    Parameters
    ----------
    image : array_like
        ``(ny, nx)`` image, any unit (kept).
    kernel : array_like
        Convolution kernel (sum 1), odd sides.
    error : array_like, optional
        1-sigma error per pixel, image units.
    bad : numpy.ndarray of bool, optional
        Pixels without data.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray or None, numpy.ndarray)
        Convolved image, its error map (None without ``error``) and the output's bad pixels.
    """
    img = _image("image", image)
    k = _image("kernel", kernel)
    nodata = ~np.isfinite(img) if bad is None else (np.asarray(bad, bool) | ~np.isfinite(img))
    if error is not None:
        err = _image("error", error, img.shape)
        nodata |= ~(np.isfinite(err) & (err > 0))
    out = fftconvolve(np.where(nodata, 0.0, img), k, mode="same")
    absk = np.abs(k) / np.abs(k).sum()
    out_bad = fftconvolve(nodata.astype(float), absk, mode="same") > 0.01
    out[out_bad] = np.nan
    out_err = None
    if error is not None:
        var = fftconvolve(np.where(nodata, 0.0, err**2), k**2, mode="same")
        out_err = np.sqrt(np.clip(var, 0, None))
        out_err[out_bad] = np.nan
    return out, out_err, out_bad
