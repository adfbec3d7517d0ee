"""PSF stamps and what the photometry needs of them: growth curves and annulus light.

Holds Moffat and Gaussian PSF stamps integrated over pixels, sub-pixel Fourier shifts of a
stamp, the growth curve (enclosed fraction within circular apertures) and the model of the
PSF light that falls in a background annulus (used by the aperture correction of
:mod:`catalog.images.apertures`).

Units: FWHMs, radii and stamp positions in pixels; stamps are normalised to sum 1.
"""

from __future__ import annotations

import math

import numpy as np
from photutils.aperture import CircularAnnulus, CircularAperture
from photutils.aperture import aperture_photometry as _photutils_aperture_photometry
from scipy import ndimage as ndi
from scipy.special import ndtr

from catalog.checks import as_grid as _image
from catalog.errors import GccatError
from catalog.images._common import _radii

#: FWHM / sigma of a Gaussian, 2 sqrt(2 ln 2).
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


def _normalised_psf(psf) -> np.ndarray:
    p = _image("psf", psf)
    total = p.sum()
    if not (np.isfinite(p).all() and total > 0):
        raise GccatError("psf must be finite with a positive sum")
    return p / total


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
    enclosed = np.array([float(tbl[f"aperture_sum_{k}"][0]) for k in range(radii.size)])
    # Once the circle covers every pixel of the stamp the fraction is 1 by the normalisation;
    # the exact-overlap sum reaches it only to rounding (1 +- 1e-16, not monotonic).
    ny, nx = p.shape
    enclosed[radii >= math.hypot(nx / 2.0, ny / 2.0)] = 1.0
    return enclosed


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
    (building them takes ~0.1 s and the same PSF is used for every batch of a band).
    """
    key = (psf.tobytes(), psf.shape, float(r_in), float(width))
    if key not in _ANNULUS_CACHE:
        if len(_ANNULUS_CACHE) > 64:
            _ANNULUS_CACHE.clear()
        p_ann = _annulus_psf_values(psf, r_in, width)
        _ANNULUS_CACHE[key] = (p_ann, _median_shift_ratio(p_ann))
    return _ANNULUS_CACHE[key]
