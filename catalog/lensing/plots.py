"""Lens-model figures: kappa with critical curves and caustics (``gccat lens critical-curves --plot``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from catalog.figures import draw_critical_curves, pyplot, save


def plot_critical_curves(
    kappa, curves: dict | None, path, title: str = "", points: dict | None = None, pairs=None
) -> str:
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
    points : dict, optional
        ``label -> (ra, dec)`` (deg) of positions to mark (e.g. an input image and its
        predicted counter-images).
    pairs : sequence of ((ra1, dec1), (ra2, dec2)), optional
        Positions joined by a line (e.g. images matched in the source plane).
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

    if curves is not None:
        draw_critical_curves(ax, curves, to_xy)
    for k, ((ra1, dec1), (ra2, dec2)) in enumerate(pairs or []):
        x, y = to_xy(np.array([ra1, ra2]), np.array([dec1, dec2]))
        ax.plot(x, y, "-o", color="red", ms=4, lw=0.8, label="source-plane pairs" if k == 0 else None)
    for (label, (ra, dec)), marker in zip((points or {}).items(), ("o", "x", "+", "s"), strict=False):
        x, y = to_xy(np.atleast_1d(ra), np.atleast_1d(dec))
        ax.plot(
            x, y, marker, ms=8, mfc="none", mew=1.5, color="red" if marker == "o" else "white", label=label
        )
    ax.set(xlim=(-0.5 * scale, (nx - 0.5) * scale), ylim=(-0.5 * scale, (ny - 0.5) * scale))
    ax.set(xlabel="x [arcsec]", ylabel="y [arcsec]", title=title or "critical curves and caustics")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="upper right", facecolor="0.3", labelcolor="white")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return save(fig, path, plt)


def plot_arc(data, pixels, centre_px, radius_pix: float, pixel_scale_arcsec: float, summary: dict, path,
             title: str = "") -> str:  # fmt: skip
    """The arc's image around its aperture (asinh stretch) with the pixels above the threshold
    outlined and the aperture drawn; the title gives the magnification summary.

    Parameters
    ----------
    data : numpy.ndarray
        The arc image.
    pixels : numpy.ndarray of bool
        The arc's pixels (:func:`catalog.lensing.arcs.arc_pixels`).
    centre_px : (float, float)
        Aperture centre, pixels.
    radius_pix : float
        Aperture radius, pixels.
    pixel_scale_arcsec : float
        Pixel size, arcsec.
    summary : dict
        :func:`catalog.lensing.arcs.arc_magnification_summary` of the pixels.
    path : path
        PNG file to write.
    """
    plt = pyplot()
    x0, y0 = centre_px
    half = int(np.ceil(radius_pix * 1.3))
    xa, xb = max(int(x0) - half, 0), min(int(x0) + half + 1, data.shape[1])
    ya, yb = max(int(y0) - half, 0), min(int(y0) + half + 1, data.shape[0])
    stamp = data[ya:yb, xa:xb]
    fig, ax = plt.subplots(figsize=(5.6, 5.2))
    ext = [(xa - 0.5 - x0) * pixel_scale_arcsec, (xb - 0.5 - x0) * pixel_scale_arcsec,
           (ya - 0.5 - y0) * pixel_scale_arcsec, (yb - 0.5 - y0) * pixel_scale_arcsec]  # fmt: skip
    peak = np.nanmax(stamp) if np.isfinite(stamp).any() else 1.0
    ax.imshow(np.arcsinh(stamp / (0.05 * peak)), origin="lower", extent=ext, cmap="gray_r")
    ax.contour(pixels[ya:yb, xa:xb].astype(float), levels=[0.5], origin="lower", extent=ext, colors="red",
               linewidths=1.0)  # fmt: skip
    t = np.linspace(0, 2 * np.pi, 200)
    r = radius_pix * pixel_scale_arcsec
    ax.plot(r * np.cos(t), r * np.sin(t), "b--", lw=0.8)
    mu = summary.get("mu_mean")
    ax.set(
        xlabel="x offset [arcsec]",
        ylabel="y offset [arcsec]",
        title=(title + ": " if title else "")
        + (f"|mu| mean {mu:.3g}" if mu is not None and mu == mu else ""),
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return save(fig, path, plt)
