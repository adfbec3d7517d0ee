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
