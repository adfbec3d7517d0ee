"""Validation and geometry shared by the image modules: radii, positions, disk footprints.

Private to :mod:`catalog.images` (and the mosaic simulator, :mod:`catalog.simulations.mosaic`).
Units: pixels (0-based, pixel centres at integers).
"""

from __future__ import annotations

import math

import numpy as np

from catalog.errors import GccatError


def _radii(radii_pix) -> np.ndarray:
    r = np.atleast_1d(np.asarray(radii_pix, dtype=float))
    if r.ndim != 1 or r.size == 0 or not (np.isfinite(r).all() and (r > 0).all()):
        raise GccatError(f"aperture radii must be positive finite pixels, got {radii_pix!r}")
    return r


def _positions(x, y) -> tuple[np.ndarray, np.ndarray]:
    x = np.atleast_1d(np.asarray(x, dtype=float)).ravel()
    y = np.atleast_1d(np.asarray(y, dtype=float)).ravel()
    if x.shape != y.shape:
        raise GccatError(f"x and y differ in length ({x.size} and {y.size})")
    return x, y


def _disk_offsets(radius_pix: float) -> np.ndarray:
    """Boolean footprint of the pixels within ``radius_pix`` of the centre pixel (inclusive)."""
    r = int(math.floor(radius_pix))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    return xx * xx + yy * yy <= radius_pix * radius_pix
