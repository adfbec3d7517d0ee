"""PNG plots of PSFs: an empirical PSF with its growth curve, and matched vs target curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from catalog.constants import APERTURE_RADII_ARCSEC
from catalog.figures import pyplot, save
from catalog.images.psf import growth_curve


def plot_psf(psf, pixel_scale_arcsec: float, path, cand=None) -> str:
    """The PSF image (log stretch), its growth curve and, with ``cand``, the r_h-mag diagram.

    Parameters
    ----------
    psf : numpy.ndarray
        PSF stamp, sum 1.
    pixel_scale_arcsec : float
        Arcsec per pixel.
    path : path
        PNG to write.
    cand : catalog.images.epsf.StarCandidates, optional
        Candidates of the star selection.

    Returns
    -------
    str
        The path written.
    """
    plt = pyplot()
    n = 3 if cand is not None else 2
    fig, ax = plt.subplots(1, n, figsize=(4.2 * n, 3.8))
    ax[0].imshow(np.log10(np.clip(psf, psf.max() * 1e-4, None)), origin="lower", cmap="viridis")
    ax[0].set_title("PSF (log10)")
    r = np.linspace(0.5, psf.shape[0] / 2, 60)
    ax[1].plot(r * pixel_scale_arcsec, growth_curve(psf, r))
    for ra in APERTURE_RADII_ARCSEC:
        ax[1].axvline(ra, ls=":", c="grey")
    ax[1].set_xlabel("radius (arcsec)")
    ax[1].set_ylabel("encircled energy")
    if cand is not None:
        ax[2].scatter(cand.mag_ab, cand.r_h_pix, s=6, c="grey", label="sources")
        ax[2].scatter(cand.mag_ab[cand.selected], cand.r_h_pix[cand.selected], s=10, c="C3", label="stars")
        ax[2].set_xlabel("AB mag (Kron)")
        ax[2].set_ylabel("r_h (pix)")
        ax[2].legend()
    return save(fig, Path(path), plt)


def plot_growth_curves(kernel, pixel_scale_arcsec: float, path) -> str:
    """Growth curves of the source, target and matched PSFs at the matching radii.

    Parameters
    ----------
    kernel : catalog.images.matching.MatchingKernel
        The kernel and its growth curves.
    pixel_scale_arcsec : float
        Arcsec per pixel.
    path : path
        PNG to write.

    Returns
    -------
    str
        The path written.
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 4))
    r = kernel.radii_pix * pixel_scale_arcsec
    ax.plot(r, kernel.ee_source, "o-", label="source")
    ax.plot(r, kernel.ee_target, "s-", label="target")
    ax.plot(r, kernel.ee_matched, "x--", label=f"matched (max dev {kernel.max_deviation:.2%})")
    ax.set_xlabel("aperture radius (arcsec)")
    ax.set_ylabel("encircled energy")
    ax.set_title(f"window alpha={kernel.alpha:.3f} beta={kernel.beta:.3f}")
    ax.legend()
    return save(fig, Path(path), plt)
