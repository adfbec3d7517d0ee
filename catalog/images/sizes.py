"""Size limits by simulation: the smallest source that a FWHM measurement tells from a point.

Circular Gaussian sources of half-light radius ``r_h`` (for a 2-d Gaussian ``r_h`` is also its
HWHM, ``sqrt(2 ln 2) sigma``), optionally stretched along the x axis by a tangential
magnification ``mu_t``, are convolved with the PSF stamp in Fourier space (the Gaussian's
transform is analytic, so a source far smaller than a pixel is exact: the result is the
pixel-integrated PSF convolved with the continuous Gaussian, sampled at the pixel centres),
placed at a random sub-pixel position, scaled to a total flux and given Gaussian noise. Each
realisation is measured by the FWHM of a least-squares circular Gaussian fit (flux, centre,
width and a constant background free). Point sources (``r_h = 0``) of the same flux and noise
give the null distribution: a size is **resolved at k sigma** when the mean FWHM excess over
the point sources is ``k`` times the point sources' FWHM scatter; the threshold size is
interpolated linearly in ``r_h^2`` between the simulated sizes (the excess of a Gaussian
convolved with a Gaussian grows as ``r_h^2`` at small sizes).

Units: sizes, positions and FWHMs in pixels; flux and noise in one unit (image units or nJy).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from catalog.checks import as_rng as _rng
from catalog.constants import SIZE_LIMIT_N_SIM, SIZE_LIMIT_NSIGMA
from catalog.errors import GccatError
from catalog.images.psf import FWHM_PER_SIGMA
from catalog.images.psfphot import check_psf_stamp

#: Half-light radius of a circular 2-d Gaussian over its sigma: sqrt(2 ln 2) (= its HWHM / sigma).
GAUSS_RH_PER_SIGMA = float(np.sqrt(2.0 * np.log(2.0)))
#: Largest side of a simulated stamp, pixels (a source that needs more is resolved anyway).
MAX_SIM_SIDE_PIX = 101


def _padded_psf_ft(psf: np.ndarray, side: int) -> np.ndarray:
    """FFT of the PSF centred on pixel (0, 0) of a ``side x side`` periodic grid."""
    out = np.zeros((side, side))
    h, (hy, hx) = side // 2, (psf.shape[0] // 2, psf.shape[1] // 2)
    ry, rx = min(h, hy), min(h, hx)
    out[h - ry : h + ry + 1, h - rx : h + rx + 1] = psf[hy - ry : hy + ry + 1, hx - rx : hx + rx + 1]
    return np.fft.fft2(np.fft.ifftshift(out))


def render_sources(psf, r_h_pix, *, mu_t=1.0, offsets=None, side_pix=None) -> np.ndarray:
    """Noise-free stamps of unit-flux Gaussian sources of half-light radius ``r_h_pix``
    convolved with ``psf``, centred at ``side // 2 + offset``.

    Parameters
    ----------
    psf : array_like
        PSF stamp (odd sides, normalised here to sum 1).
    r_h_pix : float
        Intrinsic half-light radius, pixels (0: a point source).
    mu_t : float
        Stretch along the x axis (sigma_x = mu_t sigma).
    offsets : array_like, optional
        ``(n, 2)`` sub-pixel offsets (dx, dy), pixels; default one stamp at offset 0.
    side_pix : int, optional
        Stamp side (odd); default the PSF's side.

    Returns
    -------
    numpy.ndarray
        ``(n, side, side)`` stamps, each summing to ~1.
    """
    p = check_psf_stamp(psf)
    side = int(side_pix or p.shape[0]) | 1
    off = np.zeros((1, 2)) if offsets is None else np.atleast_2d(np.asarray(offsets, float))
    s = float(r_h_pix) / GAUSS_RH_PER_SIGMA
    k = np.fft.fftfreq(side)
    ky, kx = np.meshgrid(k, k, indexing="ij")
    g = np.exp(-2.0 * np.pi**2 * ((mu_t * s) ** 2 * kx**2 + s**2 * ky**2))
    base = _padded_psf_ft(p, side) * g
    phase = np.exp(-2j * np.pi * (kx[None] * off[:, 0, None, None] + ky[None] * off[:, 1, None, None]))
    return np.fft.fftshift(np.fft.ifft2(base[None] * phase).real, axes=(1, 2))


def gaussian_fwhm(stamp, sigma_guess: float) -> float:
    """FWHM (pixels) of a least-squares circular Gaussian fit to a stamp centred on its middle.

    Free: flux, centre, sigma and a constant background; the model is evaluated at pixel
    centres. NaN if the fit fails.
    """
    d = np.asarray(stamp, float)
    ny, nx = d.shape
    yy, xx = np.mgrid[0:ny, 0:nx].astype(float)
    xx, yy, d = xx.ravel(), yy.ravel(), d.ravel()

    def resid(q):
        f, x0, y0, s, b = q
        r2 = (xx - x0) ** 2 + (yy - y0) ** 2
        return f / (2 * np.pi * s * s) * np.exp(-0.5 * r2 / (s * s)) + b - d

    q0 = [max(d.sum(), 1e-12), (nx - 1) / 2, (ny - 1) / 2, sigma_guess, 0.0]
    lo = [-np.inf, 0, 0, 0.05, -np.inf]
    hi = [np.inf, nx - 1, ny - 1, nx, np.inf]
    try:
        sol = least_squares(resid, q0, bounds=(lo, hi), method="trf", x_scale="jac", max_nfev=200)
    except (ValueError, np.linalg.LinAlgError):
        return float("nan")
    return float(FWHM_PER_SIGMA * sol.x[3]) if sol.status > 0 else float("nan")


def _threshold(r_h: np.ndarray, significance: np.ndarray, nsigma: float) -> float:
    """Smallest r_h where the significance reaches ``nsigma``, linear in r_h^2 (NaN if never)."""
    r = np.concatenate([[0.0], r_h])
    z = np.concatenate([[0.0], significance])
    for i in range(1, r.size):
        if z[i] >= nsigma:
            lo, hi = r[i - 1] ** 2, r[i] ** 2
            t = (nsigma - z[i - 1]) / (z[i] - z[i - 1]) if z[i] > z[i - 1] else 1.0
            return float(np.sqrt(lo + np.clip(t, 0.0, 1.0) * (hi - lo)))
    return float("nan")


@dataclass(frozen=True)
class SizeCell:
    """One cell of a size-limit simulation (a size at one mu_t, or its point sources): one task
    of ``gccat sizes --scheduler``. ``rng_state`` is the state of the run's generator where this
    cell's draws begin, so the cell draws the same offsets and noise wherever it runs.
    """

    psf: np.ndarray  # normalised PSF stamp
    r_h_pix: float  # 0 for the point sources
    mu_t: float
    n_sim: int
    side: int
    flux: float
    noise_sigma: float
    sigma_guess: float
    rng_state: dict


@dataclass
class _Plan:
    """The cells of one mu_t and what the summary needs besides their FWHMs."""

    cells: list[SizeCell]
    r_h_pix: np.ndarray
    nsigma: float
    snr: float
    side: int


def _cell_draws(rng: np.random.Generator, n_sim: int, side: int, noise_sigma: float):
    """A cell's random numbers: sub-pixel offsets (uniform in +-0.5 px), then the noise."""
    off = rng.uniform(-0.5, 0.5, (n_sim, 2))
    return off, rng.normal(0.0, noise_sigma, (n_sim, side, side))


def measure_cell(cell: SizeCell) -> np.ndarray:
    """FWHMs (pixels, NaN where a fit failed) of the ``n_sim`` noisy stamps of one cell."""
    bit_generator = getattr(np.random, cell.rng_state["bit_generator"])()
    bit_generator.state = cell.rng_state
    off, noise = _cell_draws(np.random.Generator(bit_generator), cell.n_sim, cell.side, cell.noise_sigma)
    stamps = cell.flux * render_sources(
        cell.psf, cell.r_h_pix, mu_t=cell.mu_t, offsets=off, side_pix=cell.side
    )
    stamps += noise
    return np.array([gaussian_fwhm(s, cell.sigma_guess) for s in stamps])


def _plan(psf, r_h_pix, flux, noise_sigma, mu_t, n_sim, nsigma, rng, side_pix) -> _Plan:
    """The cells of :func:`simulate_size_limit`, point sources first, each with the state of
    ``rng`` where its draws begin (the client draws every cell's numbers once to get there,
    in the order one process would use them).
    """
    rng = _rng(rng)
    p = check_psf_stamp(psf)
    r = np.atleast_1d(np.asarray(r_h_pix, float))
    if r.size == 0 or not (np.isfinite(r).all() and (r > 0).all()) or (np.diff(r) <= 0).any():
        raise GccatError(f"sizes must be positive and increasing, got {r_h_pix!r}")
    if not (np.isfinite(flux) and flux > 0):
        raise GccatError(f"the source flux must be > 0, got {flux!r}")
    if not (np.isfinite(noise_sigma) and noise_sigma > 0):
        raise GccatError(f"the noise must be > 0, got {noise_sigma!r}")
    n_sim = int(n_sim)
    if side_pix is None:
        need = int(np.ceil(10 * mu_t * r.max() / GAUSS_RH_PER_SIGMA)) | 1
        side_pix = min(max(p.shape[0], need), MAX_SIM_SIDE_PIX)
    side = int(side_pix) | 1
    # start the width at the PSF's core: the sigma of a Gaussian with the PSF's peak
    sigma_guess = float(np.clip(1.0 / np.sqrt(2 * np.pi * p.max()), 0.5, side / 4))
    cells = []
    for r_h in (0.0, *r):
        state = rng.bit_generator.state
        _cell_draws(rng, n_sim, side, noise_sigma)  # on to the next cell's numbers
        cells.append(SizeCell(p, float(r_h), mu_t, n_sim, side, flux, noise_sigma, sigma_guess, state))
    snr = float(flux / (noise_sigma * np.sqrt(1.0 / np.sum(p**2))))
    return _Plan(cells, r, nsigma, snr, side)


def _summary(plan: _Plan, fwhms: list[np.ndarray]) -> dict:
    """The dict of :func:`simulate_size_limit` from the FWHMs of the plan's cells."""
    r, nsigma = plan.r_h_pix, plan.nsigma
    f0 = fwhms[0]
    m0, s0 = float(np.nanmean(f0)), float(np.nanstd(f0, ddof=1))
    out = {k: np.full(r.size, np.nan) for k in ("fwhm_mean", "fwhm_std", "significance", "frac_resolved")}
    out["n_ok"] = np.zeros(r.size, np.int64)
    cut = m0 + nsigma * s0
    for i, f in enumerate(fwhms[1:]):
        ok = np.isfinite(f)
        out["n_ok"][i] = int(ok.sum())
        out["fwhm_mean"][i] = float(np.mean(f[ok]))
        out["fwhm_std"][i] = float(np.std(f[ok], ddof=1))
        out["significance"][i] = (out["fwhm_mean"][i] - m0) / s0
        out["frac_resolved"][i] = float(np.mean(f[ok] > cut))
    out.update(
        r_h_pix=r,
        fwhm_point_mean=m0,
        fwhm_point_std=s0,
        n_ok_point=int(np.isfinite(f0).sum()),
        snr=plan.snr,
        side_pix=plan.side,
        threshold_r_h_pix=_threshold(r, out["significance"], nsigma),
    )
    return out


def _run_plans(plans: list[_Plan], map_tasks) -> list[dict]:
    """Measure the cells of every plan in one map (in process, or ``map_tasks`` anywhere)."""
    cells = [c for plan in plans for c in plan.cells]
    fwhms = [measure_cell(c) for c in cells] if map_tasks is None else list(map_tasks(measure_cell, cells))
    out, k = [], 0
    for plan in plans:
        out.append(_summary(plan, fwhms[k : k + len(plan.cells)]))
        k += len(plan.cells)
    return out


def simulate_size_limit(
    psf,
    r_h_pix,
    *,
    flux: float,
    noise_sigma: float,
    mu_t: float = 1.0,
    n_sim: int = SIZE_LIMIT_N_SIM,
    nsigma: float = SIZE_LIMIT_NSIGMA,
    rng,
    side_pix: int | None = None,
    map_tasks=None,
) -> dict:
    """The FWHM of simulated sources of each size against point sources of the same S/N.

    Parameters
    ----------
    psf : array_like
        PSF stamp at the image's pixel scale (odd sides).
    r_h_pix : array_like
        Intrinsic half-light radii, pixels (> 0, increasing).
    flux : float
        Total flux of each source (same unit as ``noise_sigma`` x pixels).
    noise_sigma : float
        Per-pixel Gaussian noise.
    mu_t : float
        Tangential stretch (>= 1 magnifies; along x).
    n_sim : int
        Noise realisations per size (and for the point sources).
    nsigma : float
        k of the criterion: resolved when the mean FWHM excess is k x the point-source scatter.
    rng : numpy.random.Generator
        Offsets (uniform in +-0.5 px) and noise: the point sources' first, then each size's.
    side_pix : int, optional
        Stamp side; default the PSF's, widened to 10 sigma of the largest stretched source
        (at most :data:`MAX_SIM_SIDE_PIX`).
    map_tasks : callable, optional
        ``map_tasks(fn, cells)`` returns ``[fn(cell) for cell in cells]`` in order, computed
        anywhere (e.g. on Dask); default in process. Each :class:`SizeCell` (the point sources,
        each size) carries the state of ``rng`` where its draws begin, so the results are the
        same to the bit wherever the cells run.

    Returns
    -------
    dict
        ``r_h_pix``; per size ``fwhm_mean``, ``fwhm_std``, ``significance`` ((mean - mean_0)
        / std_0), ``frac_resolved`` (fraction of realisations above mean_0 + k std_0),
        ``n_ok`` (fits that converged); the point sources' ``fwhm_point_mean`` and
        ``fwhm_point_std``; ``snr`` (the PSF-weighted S/N of a point source,
        flux / (noise sqrt(1 / sum(psf^2)))), ``side_pix`` and ``threshold_r_h_pix`` (NaN if
        no simulated size is resolved).
    """
    plan = _plan(psf, r_h_pix, flux, noise_sigma, mu_t, n_sim, nsigma, rng, side_pix)
    return _run_plans([plan], map_tasks)[0]


def simulate_size_limits(
    psf,
    r_h_pix,
    mu_values,
    *,
    flux: float,
    noise_sigma: float,
    seed: int,
    n_sim: int = SIZE_LIMIT_N_SIM,
    nsigma: float = SIZE_LIMIT_NSIGMA,
    map_tasks=None,
) -> list[dict]:
    """:func:`simulate_size_limit` at each of ``mu_values``, each from a new
    ``numpy.random.default_rng(seed)`` (neighbouring mu_t share their noise), every cell of
    every mu_t in one ``map_tasks`` (so a grid keeps all the workers busy).
    """
    plans = [
        _plan(psf, r_h_pix, flux, noise_sigma, mu, n_sim, nsigma, np.random.default_rng(seed), None)
        for mu in mu_values
    ]
    return _run_plans(plans, map_tasks)
