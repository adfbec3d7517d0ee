"""Synthetic cluster-core mosaics with point sources (GCs) of known position and flux.

A simulator: a Sersic BCG plus a planar ICL, point sources injected with
:func:`catalog.images.inject_point_sources`, Gaussian noise and a zero-weight border, so that
detection, photometry and injection-recovery can be checked against a known truth. The files of
``gccat simulate mosaic`` (:func:`catalog.simulations.simulate_mosaic_files`) are made of it.

Units: positions and lengths in pixels, fluxes and surface brightness in image units (per
pixel); the caller decides what an image unit is (nJy for the simulated mosaics).
"""

from __future__ import annotations

import numpy as np
from astropy.modeling.models import Sersic2D

from catalog.checks import as_rng as _rng
from catalog.errors import GccatError
from catalog.images import inject_point_sources, make_psf
from catalog.images._common import _disk_offsets, _positions


def _spread_positions(
    rng: np.random.Generator, n: int, shape: tuple[int, int], margin: float, min_sep: float
) -> tuple[np.ndarray, np.ndarray]:
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
            taken[j : j + 2 * r + 1, i : i + 2 * r + 1] |= disk
            if len(xs_out) == n:
                return np.asarray(xs_out), np.asarray(ys_out)
    raise GccatError(f"could not place {n} sources {min_sep} px apart in {shape}")


def make_test_mosaic(
    shape=(512, 512),
    *,
    psf_fwhm_pix=2.0,
    noise_sigma=1.0,
    n_points=300,
    flux_range=(5, 500),
    bcg=True,
    bcg_amplitude=200.0,
    bcg_r_eff_pix=40.0,
    bcg_n=4.0,
    icl_gradient=0.02,
    rng,
    border_pix=8,
    min_sep_pix=6.0,
    x=None,
    y=None,
    flux=None,
    psf_kind="moffat",
    psf_size=25,
    bcg_ellip=0.2,
    bcg_theta=0.6,
    dtype=np.float64,
) -> dict:
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
        model += Sersic2D(
            amplitude=bcg_amplitude,
            r_eff=bcg_r_eff_pix,
            n=bcg_n,
            x_0=xc,
            y_0=yc,
            ellip=bcg_ellip,
            theta=bcg_theta,
        )(xx, yy)
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
    return {
        "image": image.astype(dtype, copy=False),
        "weight": weight,
        "error": error,
        "psf": psf,
        "truth": {"x": xs, "y": ys, "flux": fl},
        "bcg_model": model,
    }


def make_psf_photometry_scene(
    *,
    rng,
    n_isolated=150,
    n_galaxy=16,
    n_pairs=30,
    snr_range=(15.0, 200.0),
    pair_separation_pix=(3.0, 5.0),
    psf_fwhm_pix=2.0,
    noise_sigma=1.0,
    spacing_pix=35.0,
    galaxy_amplitude=20.0,
    galaxy_pair_separation_pix=None,
) -> dict:
    """A test image for PSF-fit photometry: isolated sources, sources on a galaxy, close pairs.

    Point sources of known flux on a Moffat PSF (:func:`make_test_mosaic`, Gaussian noise of
    ``noise_sigma``): ``n_isolated`` on an empty grid of ``spacing_pix``, ``n_galaxy`` on rings at
    30 and 50 px from the centre of a Sersic galaxy (the mosaic's BCG, n = 4, r_eff = 40 px,
    ``galaxy_amplitude`` per pixel at r_eff, with its planar ICL), and ``n_pairs`` pairs
    ``pair_separation_pix`` apart. With ``galaxy_pair_separation_pix`` (low, high), each source on
    the galaxy has a companion that far away (both labelled "galaxy_pair"). Fluxes are
    log-uniform so that the PSF-weighted S/N, ``flux / (noise_sigma sqrt(4 pi sigma_psf^2))``
    for a Gaussian of the same FWHM, spans ``snr_range``; positions have random sub-pixel
    offsets.

    Returns
    -------
    dict
        The mosaic's ``image``, ``error``, ``weight``, ``psf`` and ``bcg_model``, and ``truth``
        with ``x``, ``y``, ``flux`` (image units), ``snr`` and ``set`` ("isolated", "galaxy",
        "pair", "galaxy_pair") per source.
    """
    rng = _rng(rng)
    sigma_psf = float(psf_fwhm_pix) / 2.3548200450309493
    noise_flux = float(noise_sigma) * np.sqrt(4 * np.pi * sigma_psf**2)
    s = float(spacing_pix)
    n_side = int(np.ceil(np.sqrt(n_isolated + n_pairs))) + 1
    # a grid of cells; the galaxy sits in its own square of 4 x 4 cells at the centre
    side = int(s * (n_side + 5)) + 40
    c = side / 2.0
    cells = [
        (20 + s * (i + 0.5), 20 + s * (j + 0.5))
        for j in range(n_side + 5)
        for i in range(n_side + 5)
        if max(abs(20 + s * (i + 0.5) - c), abs(20 + s * (j + 0.5) - c)) > 2.5 * s
    ]
    if len(cells) < n_isolated + n_pairs:
        raise GccatError("make_psf_photometry_scene: too many sources for the grid")
    cells = np.asarray(cells)[rng.permutation(len(cells))[: n_isolated + n_pairs]]
    jit = rng.uniform(-0.5, 0.5, (len(cells), 2))
    xi, yi = cells[:n_isolated, 0] + jit[:n_isolated, 0], cells[:n_isolated, 1] + jit[:n_isolated, 1]
    # two rings, at 30 and 50 px (0.75 and 1.25 r_eff), sources at least 30 px apart
    n_in = n_galaxy * 3 // 8
    r = np.where(np.arange(n_galaxy) < n_in, 30.0, 50.0) + rng.uniform(-0.5, 0.5, n_galaxy)
    k = np.where(np.arange(n_galaxy) < n_in, np.arange(n_galaxy), np.arange(n_galaxy) - n_in)
    phi = 2 * np.pi * k / np.where(np.arange(n_galaxy) < n_in, max(n_in, 1), max(n_galaxy - n_in, 1))
    xg, yg = c + r * np.cos(phi), c + r * np.sin(phi)
    pc_ = cells[n_isolated:] + jit[n_isolated:]
    sep = rng.uniform(*pair_separation_pix, n_pairs)
    ang = rng.uniform(0, np.pi, n_pairs)
    xp = np.concatenate([pc_[:, 0] - 0.5 * sep * np.cos(ang), pc_[:, 0] + 0.5 * sep * np.cos(ang)])
    yp = np.concatenate([pc_[:, 1] - 0.5 * sep * np.sin(ang), pc_[:, 1] + 0.5 * sep * np.sin(ang)])
    galaxy_set = ["galaxy"] * n_galaxy
    if galaxy_pair_separation_pix is not None:  # companions: no extra draws otherwise
        sep_g = rng.uniform(*galaxy_pair_separation_pix, n_galaxy)
        ang_g = rng.uniform(0, 2 * np.pi, n_galaxy)
        xg = np.concatenate([xg, xg + sep_g * np.cos(ang_g)])
        yg = np.concatenate([yg, yg + sep_g * np.sin(ang_g)])
        galaxy_set = ["galaxy_pair"] * (2 * n_galaxy)
    x = np.concatenate([xi, xg, xp])
    y = np.concatenate([yi, yg, yp])
    n = x.size
    snr = np.exp(rng.uniform(np.log(snr_range[0]), np.log(snr_range[1]), n))
    flux = snr * noise_flux
    labels = np.array(["isolated"] * n_isolated + galaxy_set + ["pair"] * (2 * n_pairs))
    m = make_test_mosaic(
        (side, side),
        x=x,
        y=y,
        flux=flux,
        psf_fwhm_pix=psf_fwhm_pix,
        noise_sigma=noise_sigma,
        bcg_amplitude=galaxy_amplitude,
        rng=rng,
    )
    m["truth"] = {"x": x, "y": y, "flux": flux, "snr": snr, "set": labels}
    return m
