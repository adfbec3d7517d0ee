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


def tile_windows(xs, ys, tile_pix: int, margin: int, shape, anchor=None) -> list[tuple[np.ndarray, tuple]]:
    """Sources binned by ``tile_pix`` square cells of the image, each cell with the window of
    the image within ``margin`` pixels of its sources.

    Parameters
    ----------
    xs, ys : numpy.ndarray
        Finite positions, pixels.
    tile_pix : int
        Side of the cells, pixels.
    margin : int
        Pixels kept around the sources' extreme positions (clipped to the image).
    shape : (int, int)
        The image's ``(ny, nx)``.
    anchor : (numpy.ndarray, numpy.ndarray), optional
        Per-source position whose cell the source goes in (default its own; e.g. the first
        source of its group, so that a group stays in one cell).

    Returns
    -------
    list of (numpy.ndarray, (slice, slice))
        Per non-empty cell (in cell order) the indices of its sources, increasing, and the
        window ``(rows, columns)``; its first pixel, the slices' starts, is the image pixel the
        window's pixel (0, 0) is.
    """
    ax, ay = (xs, ys) if anchor is None else anchor
    cell = (np.floor(ay / tile_pix) * 1e6 + np.floor(ax / tile_pix)).astype(np.int64)
    order = np.argsort(cell, kind="stable")
    cuts = np.flatnonzero(np.diff(cell[order])) + 1
    ny, nx = shape
    out = []
    for sel in np.split(order, cuts) if order.size else []:
        x0 = max(int(np.floor(xs[sel].min())) - margin, 0)
        x1 = min(int(np.ceil(xs[sel].max())) + margin + 1, nx)
        y0 = max(int(np.floor(ys[sel].min())) - margin, 0)
        y1 = min(int(np.ceil(ys[sel].max())) + margin + 1, ny)
        out.append((sel, (slice(y0, y1), slice(x0, x1))))
    return out
