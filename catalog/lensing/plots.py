"""Lens-model figures: kappa with critical curves and caustics (``gccat lens critical-curves --plot``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from catalog.figures import draw_critical_curves, pyplot, save


def plot_critical_curves(kappa, curves: dict, path, title: str = "") -> str:
    """kappa (log scale, at the maps' normalisation) with the critical curves (solid) and
    caustics (dashed) of each source redshift, in arcsec from the map's lower-left pixel.

    Parameters
    ----------
    kappa : catalog.lensing.LensMap
        Convergence on the deflection maps' grid.
    curves : dict
        Columns of ``critical_curves`` (see :func:`catalog.figures.draw_critical_curves`).
    path : path
        PNG file to write.
    title : str
        Figure title (e.g. the model id).
    """
    plt = pyplot()
    scale = kappa.pixel_scale_arcsec
    ny, nx = kappa.data.shape
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    k = np.where(kappa.data > 0, kappa.data, np.nan)
    im = ax.imshow(
        np.log10(k),
        origin="lower",
        extent=[-0.5 * scale, (nx - 0.5) * scale, -0.5 * scale, (ny - 0.5) * scale],
        cmap="viridis",
    )
    fig.colorbar(im, ax=ax, label=r"log$_{10}\,\kappa$ (D$_{ls}$/D$_s$ = map normalisation)")

    def to_xy(ra, dec):
        x, y = kappa.wcs.world_to_pixel_values(ra, dec)
        return np.asarray(x) * scale, np.asarray(y) * scale

    draw_critical_curves(ax, curves, to_xy)
    ax.set(xlim=(-0.5 * scale, (nx - 0.5) * scale), ylim=(-0.5 * scale, (ny - 0.5) * scale))
    ax.set(xlabel="x [arcsec]", ylabel="y [arcsec]", title=title or "critical curves and caustics")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="upper right", facecolor="0.3", labelcolor="white")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return save(fig, path, plt)
