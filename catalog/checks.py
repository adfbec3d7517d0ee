"""Argument checks shared by the array modules (correlate, imaging): user errors, not asserts."""

from __future__ import annotations

import numpy as np

from .errors import GccatError


def as_grid(name: str, values, shape: tuple[int, int] | None = None, dtype=np.float64) -> np.ndarray:
    """``values`` as a 2-D ``(ny, nx)`` array of ``dtype``, of ``shape`` if given."""
    a = np.asarray(values, dtype=dtype)
    if a.ndim != 2:
        raise GccatError(f"{name} must be a 2-D array (ny, nx), got {a.ndim} dimension(s)")
    if shape is not None and a.shape != shape:
        raise GccatError(f"{name} has shape {a.shape}, expected {shape}")
    return a


def as_mask(mask, shape: tuple[int, int], name: str = "mask") -> np.ndarray:
    """A boolean mask (True = masked) of ``shape``; None means nothing masked."""
    if mask is None:
        return np.zeros(shape, dtype=bool)
    m = np.asarray(mask)
    if m.shape != shape:
        raise GccatError(f"{name} has shape {m.shape}, expected {shape}")
    if m.dtype != bool:
        raise GccatError(f"{name} must be boolean (True = masked), got dtype {m.dtype}")
    return m


def as_rng(rng) -> np.random.Generator:
    """Refuse anything but a ``numpy.random.Generator`` (no hidden global random state)."""
    if not isinstance(rng, np.random.Generator):
        raise GccatError("rng must be a numpy.random.Generator (e.g. numpy.random.default_rng(seed))")
    return rng
