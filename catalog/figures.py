"""Matplotlib set up once for files (Agg backend, no screen) and figures saved the same way."""

from __future__ import annotations

from pathlib import Path


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (PNG files; no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: Path, plt) -> str:
    """Write ``fig`` to ``path`` (PNG, 110 dpi), close it and return the path as a string."""
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def draw_critical_curves(ax, curves, to_xy, caustics: bool = True) -> None:
    """Overlay critical curves (solid) and caustics (dashed), one colour per source redshift.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    curves : dict
        Columns of ``critical_curves`` as numpy arrays: ``z_source``, ``kind``, ``curve_id``,
        ``vertex``, ``ra``, ``dec`` (deg).
    to_xy : callable
        ``(ra, dec) -> (x, y)`` in the axes' coordinates.
    caustics : bool
        Draw the caustics too.
    """
    import numpy as np

    z = np.asarray(curves["z_source"], float)
    colours = ["#ffffff", "#ffd92f", "#66c2a5", "#fc8d62", "#8da0cb", "#e78ac3"]
    for i, zs in enumerate(np.unique(z)):
        colour = colours[i % len(colours)]
        for kind, style in (("critical", "-"), ("caustic", "--")):
            if kind == "caustic" and not caustics:
                continue
            sel = (z == zs) & (np.asarray(curves["kind"]) == kind)
            ids = np.asarray(curves["curve_id"])[sel]
            for j, cid in enumerate(np.unique(ids)):
                one = np.flatnonzero(sel)[ids == cid]
                one = one[np.argsort(np.asarray(curves["vertex"])[one])]
                x, y = to_xy(np.asarray(curves["ra"])[one], np.asarray(curves["dec"])[one])
                label = f"{kind}, z = {zs:g}" if j == 0 else None
                ax.plot(x, y, style, color=colour, lw=0.9, label=label)
