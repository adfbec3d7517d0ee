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


def _window(y0: int, y1: int, x0: int, x1: int, margin: int, shape) -> tuple[slice, slice]:
    """The box ``[y0, y1) x [x0, x1)`` grown by ``margin`` pixels and clipped to the image."""
    ny, nx = shape
    return slice(max(y0 - margin, 0), min(y1 + margin, ny)), slice(max(x0 - margin, 0), min(x1 + margin, nx))


def image_tiles(shape, tile_pix: int, margin: int) -> list[tuple[tuple[slice, slice], ...]]:
    """A regular grid of ``tile_pix`` square tiles covering the image, each with its window.

    Parameters
    ----------
    shape : (int, int)
        ``(ny, nx)`` of the image, pixels.
    tile_pix : int
        Side of the tiles, pixels (the last row and column of tiles are cut by the image edge).
    margin : int
        Pixels added around each tile to make its window, clipped to the image: a window side
        on the image edge is the image edge (so a filter sees the image's own boundary there),
        an interior one lies ``margin`` real pixels beyond the tile.

    Returns
    -------
    list of ((slice, slice), (slice, slice), (slice, slice))
        ``(tile, window, inner)``, in raster order of the tiles: the tile and the window in
        image pixels, and the tile within the window.
    """
    ny, nx = shape
    t = int(tile_pix)
    out = []
    for y0 in range(0, ny, t):
        for x0 in range(0, nx, t):
            tile = (slice(y0, min(y0 + t, ny)), slice(x0, min(x0 + t, nx)))
            win = _window(y0, y0 + t, x0, x0 + t, margin, shape)
            inner = tuple(slice(a.start - w.start, a.stop - w.start) for a, w in zip(tile, win, strict=True))
            out.append((tile, win, inner))
    return out


def source_tiles(x, y, shape, tile_pix: int, margin: int, *, cell_x=None, cell_y=None):
    """Sources binned by ``tile_pix`` square tiles, each tile's with the window that holds them.

    Parameters
    ----------
    x, y : numpy.ndarray
        Source positions, pixels (finite).
    shape : (int, int)
        ``(ny, nx)`` of the image, pixels.
    tile_pix : int
        Side of the tiles, pixels.
    margin : int
        Pixels around the sources' bounding box (of the pixels nearest them) in the window,
        clipped to the image: at least the half-side of anything cut around a source.
    cell_x, cell_y : numpy.ndarray, optional
        Positions that choose each source's tile (default ``x, y``), e.g. its group's first
        source, so that a group stays in one tile.

    Returns
    -------
    list of (numpy.ndarray, (slice, slice))
        Per tile with sources, in raster order of the tiles: the indices of its sources
        (increasing) and the window, in image pixels.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    cx = x if cell_x is None else np.asarray(cell_x, float)
    cy = y if cell_y is None else np.asarray(cell_y, float)
    cell = (np.floor(cy / tile_pix) * 1e6 + np.floor(cx / tile_pix)).astype(np.int64)
    # one stable sort, then runs of equal cells: the tiles in raster order, indices increasing
    order = np.argsort(cell, kind="stable")
    cuts = np.flatnonzero(np.diff(cell[order])) + 1
    out = []
    for sel in np.split(order, cuts) if order.size else []:
        x0, x1 = int(np.floor(x[sel].min())), int(np.ceil(x[sel].max())) + 1
        y0, y1 = int(np.floor(y[sel].min())), int(np.ceil(y[sel].max())) + 1
        out.append((sel, _window(y0, y1, x0, x1, margin, shape)))
    return out
