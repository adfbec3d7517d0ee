"""The pixel grid of the GC-kappa analysis: argument checks shared by its modules.

Arrays are shaped ``(ny, nx)`` and indexed ``[iy, ix]``; positions ``px, py`` are float pixel
coordinates, 0-based, with pixel centres at integers (pixel ``i`` covers ``[i - 0.5, i + 0.5)``).
Lengths are in arcsec.
"""

from __future__ import annotations

import numpy as np

from catalog.errors import GccatError


def as_shape(shape) -> tuple[int, int]:
    """``(ny, nx)`` as two positive ints."""
    try:
        ny, nx = (int(s) for s in shape)
    except (TypeError, ValueError):
        raise GccatError(f"grid shape must be two integers (ny, nx), got {shape!r}") from None
    if ny < 1 or nx < 1 or (ny, nx) != tuple(shape):
        raise GccatError(f"grid shape must be two positive integers (ny, nx), got {shape!r}")
    return ny, nx


def as_positive(name: str, value) -> float:
    """``value`` as a positive finite float (``name`` for the message)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise GccatError(f"{name} must be a number, got {value!r}") from None
    if not np.isfinite(v) or v <= 0:
        raise GccatError(f"{name} must be a positive finite number, got {value!r}")
    return v


def kernel_params(pixel_scale_arcsec, alpha, softening_arcsec) -> tuple[float, float, float]:
    """Pixel scale (arcsec), kernel index and softening (arcsec), each positive."""
    return (
        as_positive("pixel_scale_arcsec", pixel_scale_arcsec),
        as_positive("alpha", alpha),
        as_positive("softening_arcsec", softening_arcsec),
    )


def as_positions(px, py) -> tuple[np.ndarray, np.ndarray]:
    """GC pixel positions as two flat float arrays of one length, finite."""
    x = np.asarray(px, dtype=float).ravel()
    y = np.asarray(py, dtype=float).ravel()
    if x.shape != y.shape:
        raise GccatError(f"px and py differ in length ({x.size} and {y.size})")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise GccatError("GC positions px, py must be finite")
    return x, y


def as_centre(centre_px) -> tuple[float, float]:
    """A centre ``(x, y)`` in pixels, finite."""
    try:
        cx, cy = (float(c) for c in centre_px)
    except (TypeError, ValueError):
        raise GccatError(f"centre_px must be two numbers (x, y) in pixels, got {centre_px!r}") from None
    if not (np.isfinite(cx) and np.isfinite(cy)):
        raise GccatError(f"centre_px must be finite, got {centre_px!r}")
    return cx, cy


def pixel_index(x: np.ndarray, y: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Flat index of the pixel holding each position, and which positions fall on the grid."""
    ny, nx = shape
    # Compare floats first so that huge coordinates never overflow the integer cast.
    on = (x >= -0.5) & (x < nx - 0.5) & (y >= -0.5) & (y < ny - 0.5)
    ix = np.floor(x[on] + 0.5).astype(np.int64)
    iy = np.floor(y[on] + 0.5).astype(np.int64)
    return iy * nx + ix, on
