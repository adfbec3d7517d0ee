"""Radial profiles around a centre, the background GC density from an outer annulus, and the GC
mass budget implied by the lensing mass in an aperture.

Radii in arcsec, surface densities in arcsec^-2, Sigma_cr in Msun/arcsec^2, masses in Msun.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from catalog.checks import as_grid as _grid
from catalog.checks import as_mask as _mask
from catalog.constants import GC_MASS_FRACTION
from catalog.errors import GccatError
from catalog.gckappa.grid import as_centre, as_positions, as_positive, as_shape, pixel_index


def _annuli(
    shape: tuple[int, int], centre: tuple[float, float], edges: np.ndarray, scale: float
) -> np.ndarray:
    """Annulus index of every pixel centre (-1 outside all annuli); ``r_in <= r < r_out``."""
    ny, nx = shape
    r = np.hypot(np.arange(nx)[None, :] - centre[0], np.arange(ny)[:, None] - centre[1]) * scale
    idx = np.searchsorted(edges, r, side="right") - 1
    idx[(r < edges[0]) | (r >= edges[-1])] = -1
    return idx


def _annulus_counts(
    px, py, mask: np.ndarray, idx: np.ndarray, nbins: int, scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """GC counts and unmasked area (arcsec^2) per annulus; GCs count by the pixel they fall in."""
    x, y = as_positions(px, py)
    flat, _ = pixel_index(x, y, mask.shape)
    use = (idx >= 0) & ~mask
    gc_bin = np.where(use.ravel()[flat], idx.ravel()[flat], -1)
    n_gc = np.bincount(gc_bin[gc_bin >= 0], minlength=nbins)[:nbins]
    n_pix = np.bincount(idx[use], minlength=nbins)[:nbins]
    return n_gc.astype(np.int64), n_pix * scale**2


def radial_profile(
    px: npt.ArrayLike,
    py: npt.ArrayLike,
    kappa,
    rho_gc,
    mask,
    centre_px,
    edges_arcsec,
    pixel_scale_arcsec: float,
    background_per_arcsec2: float = 0.0,
    background_err_per_arcsec2: float = 0.0,
) -> dict[str, np.ndarray]:
    """GC surface density, convergence and GC density in annuli around a centre.

    A pixel belongs to the annulus holding its centre (``r_in <= r < r_out``), and a GC to the
    annulus of its pixel, so counts and areas use the same footprint. Masked pixels and the GCs
    in them are left out.

    Parameters
    ----------
    px, py : array_like
        GC positions, pixels.
    kappa, rho_gc : numpy.ndarray or None
        ``(ny, nx)`` convergence and GC density (arcsec^-alpha); None gives NaN means.
    mask : numpy.ndarray of bool or None
        True where masked.
    centre_px : tuple of float
        ``(x, y)`` of the centre (e.g. the BCG), pixels.
    edges_arcsec : array_like
        Increasing annulus edges, arcsec (at least two).
    pixel_scale_arcsec : float
        Pixel size, arcsec.
    background_per_arcsec2 : float
        Contaminating surface density to subtract (``background_from_annulus``), arcsec^-2.
    background_err_per_arcsec2 : float
        Its 1-sigma error, arcsec^-2, added in quadrature to ``sigma_gc_bgsub_err``.

    Returns
    -------
    dict of numpy.ndarray
        Per annulus: ``r_in``, ``r_out``, ``r_mid`` (arcsec); ``n_gc``; ``area_arcsec2`` (unmasked);
        ``sigma_gc`` and its Poisson error ``sigma_gc_err = sqrt(n_gc) / area`` (arcsec^-2);
        ``sigma_gc_bgsub``, ``sigma_gc_bgsub_err`` (arcsec^-2); ``kappa_mean``, ``rho_mean``
        (means over unmasked pixels). Annuli with no unmasked pixel have NaN densities.
    """
    scale = as_positive("pixel_scale_arcsec", pixel_scale_arcsec)
    edges = np.asarray(edges_arcsec, dtype=float).ravel()
    if edges.size < 2 or not np.isfinite(edges).all() or edges[0] < 0 or np.any(np.diff(edges) <= 0):
        raise GccatError("edges_arcsec must be at least two finite, non-negative, increasing radii (arcsec)")
    bg = float(background_per_arcsec2)
    bg_err = float(background_err_per_arcsec2)
    if not (np.isfinite(bg) and np.isfinite(bg_err) and bg_err >= 0):
        raise GccatError("background_per_arcsec2 must be finite and its error finite and >= 0")
    grids = [_grid(name, g) for name, g in (("kappa", kappa), ("rho_gc", rho_gc)) if g is not None]
    if mask is not None:
        shape = np.asarray(mask).shape
    elif grids:
        shape = grids[0].shape
    else:
        raise GccatError("radial_profile needs the grid: give mask, kappa or rho_gc")
    shape = as_shape(shape)
    m = _mask(mask, shape)
    nb = edges.size - 1
    idx = _annuli(shape, as_centre(centre_px), edges, scale)
    n_gc, area = _annulus_counts(px, py, m, idx, nb, scale)
    use = (idx >= 0) & ~m
    n_pix = np.bincount(idx[use], minlength=nb)[:nb]

    def annulus_mean(name: str, g) -> np.ndarray:
        if g is None:
            return np.full(nb, np.nan)
        g = _grid(name, g, shape)
        if not np.isfinite(g[use]).all():
            raise GccatError(f"{name} must be finite on unmasked pixels inside the annuli")
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.bincount(idx[use], weights=g[use], minlength=nb)[:nb] / n_pix

    with np.errstate(divide="ignore", invalid="ignore"):
        sigma = np.where(area > 0, n_gc / area, np.nan)
        sigma_err = np.where(area > 0, np.sqrt(n_gc) / area, np.nan)
    return {
        "r_in": edges[:-1],
        "r_out": edges[1:],
        "r_mid": 0.5 * (edges[:-1] + edges[1:]),
        "n_gc": n_gc,
        "area_arcsec2": area,
        "sigma_gc": sigma,
        "sigma_gc_err": sigma_err,
        "sigma_gc_bgsub": sigma - bg,
        "sigma_gc_bgsub_err": np.hypot(sigma_err, bg_err),
        "kappa_mean": annulus_mean("kappa", kappa),
        "rho_mean": annulus_mean("rho_gc", rho_gc),
    }


def image_profile(
    px: npt.ArrayLike,
    py: npt.ArrayLike,
    image,
    centre_px,
    edges_arcsec,
    pixel_scale_arcsec: float,
    background_per_arcsec2: float = 0.0,
    background_err_per_arcsec2: float = 0.0,
) -> dict[str, np.ndarray]:
    """GC surface density and mean image value in annuli on an image's own footprint.

    The lens map covers only the cluster core; an image (e.g. the F444W mosaic the GCs were
    found on) reaches further out. Its finite pixels are the footprint: GCs and area are
    counted on them exactly as :func:`radial_profile` counts them on the map (that function
    does the counting, with the non-finite pixels as the mask), and the image is averaged over
    the same pixels.

    Parameters
    ----------
    px, py : array_like
        GC positions in the image's pixels.
    image : numpy.ndarray
        ``(ny, nx)`` image (e.g. surface brightness, nJy arcsec^-2); NaN where there is no data.
    centre_px : tuple of float
        ``(x, y)`` of the centre in the image's pixels.
    edges_arcsec : array_like
        Increasing annulus edges, arcsec.
    pixel_scale_arcsec : float
        The image's pixel size, arcsec.
    background_per_arcsec2, background_err_per_arcsec2 : float
        Contaminating GC density and its error, arcsec^-2, as for :func:`radial_profile`.

    Returns
    -------
    dict of numpy.ndarray
        :func:`radial_profile`'s ``r_in`` .. ``sigma_gc_bgsub_err`` on the footprint, and
        ``image_mean``: the mean image value per annulus (NaN where the annulus has no data).
    """
    img = _grid("image", image)
    footprint = np.isfinite(img)
    if not footprint.any():
        raise GccatError("the image has no finite pixel")
    prof = radial_profile(
        px,
        py,
        None,
        None,
        ~footprint,
        centre_px,
        edges_arcsec,
        pixel_scale_arcsec,
        background_per_arcsec2,
        background_err_per_arcsec2,
    )
    edges = np.asarray(edges_arcsec, dtype=float).ravel()
    nb = edges.size - 1
    idx = _annuli(img.shape, as_centre(centre_px), edges, float(pixel_scale_arcsec))
    use = (idx >= 0) & footprint
    n_pix = np.bincount(idx[use], minlength=nb)[:nb]
    with np.errstate(divide="ignore", invalid="ignore"):
        prof["image_mean"] = np.bincount(idx[use], weights=img[use], minlength=nb)[:nb] / n_pix
    del prof["kappa_mean"], prof["rho_mean"]
    return prof


def background_from_annulus(
    px: npt.ArrayLike,
    py: npt.ArrayLike,
    mask,
    centre_px,
    r_in_arcsec: float,
    r_out_arcsec: float,
    pixel_scale_arcsec: float,
) -> tuple[float, float]:
    """Background (contaminant) GC surface density from an outer annulus.

    Parameters
    ----------
    px, py : array_like
        GC positions, pixels.
    mask : numpy.ndarray of bool
        ``(ny, nx)``, True where masked (defines the grid).
    centre_px : tuple of float
        ``(x, y)`` of the centre, pixels.
    r_in_arcsec, r_out_arcsec : float
        Annulus radii, arcsec.
    pixel_scale_arcsec : float
        Pixel size, arcsec.

    Returns
    -------
    density, error : float
        GCs per arcsec^2 in the unmasked part of the annulus, and its Poisson error
        ``sqrt(N) / area``.
    """
    scale = as_positive("pixel_scale_arcsec", pixel_scale_arcsec)
    if mask is None:
        raise GccatError("background_from_annulus needs the mask (it defines the grid)")
    m = _mask(mask, as_shape(np.asarray(mask).shape))
    edges = np.array([r_in_arcsec, r_out_arcsec], dtype=float)
    if not np.isfinite(edges).all() or edges[0] < 0 or edges[1] <= edges[0]:
        raise GccatError(
            f"the background annulus needs 0 <= r_in < r_out (arcsec), got {r_in_arcsec}, {r_out_arcsec}"
        )
    idx = _annuli(m.shape, as_centre(centre_px), edges, scale)
    n_gc, area = _annulus_counts(px, py, m, idx, 1, scale)
    if area[0] <= 0:
        raise GccatError("the background annulus has no unmasked pixel on the grid")
    return float(n_gc[0] / area[0]), float(np.sqrt(n_gc[0]) / area[0])


def background_from_counts(n_gc: int, area_arcsec2: float) -> tuple[float, float]:
    """Background GC surface density from a count in a region of known area (a second field,
    or the detections outside the lens map).

    Parameters
    ----------
    n_gc : int
        GCs counted in the region (>= 0).
    area_arcsec2 : float
        Area of the region, arcsec^2 (> 0).

    Returns
    -------
    density, error : float
        ``n_gc / area`` and its Poisson error ``sqrt(n_gc) / area``, arcsec^-2.
    """
    area = as_positive("area_arcsec2", area_arcsec2)
    if isinstance(n_gc, bool) or not isinstance(n_gc, int | np.integer) or n_gc < 0:
        raise GccatError(f"n_gc must be a non-negative integer, got {n_gc!r}")
    return float(n_gc) / area, float(np.sqrt(n_gc)) / area


def background_per_arcsec2(density_per_kpc2: float, kpc_per_arcsec: float) -> float:
    """A background surface density in kpc^-2 (proper, at the cluster) as arcsec^-2.

    Parameters
    ----------
    density_per_kpc2 : float
        GCs per kpc^2 (>= 0; AS1063: 0.015 from the second NIRCam module).
    kpc_per_arcsec : float
        Proper scale at the cluster redshift, kpc/arcsec (> 0).

    Returns
    -------
    float
        GCs per arcsec^2: ``density_per_kpc2 * kpc_per_arcsec**2``.
    """
    d = float(density_per_kpc2)
    if not np.isfinite(d) or d < 0:
        raise GccatError(f"the background density must be finite and >= 0 GC/kpc^2, not {density_per_kpc2!r}")
    return d * as_positive("kpc_per_arcsec", kpc_per_arcsec) ** 2


def boxes_minus_background(boxes: dict, background: float, background_err: float = 0.0) -> dict:
    """Box counts minus the expected background count of each box.

    Parameters
    ----------
    boxes : dict
        :func:`catalog.gckappa.box_stats` output (``n_gc``, ``area_arcsec2`` arcsec^2).
    background, background_err : float
        Background density and its 1-sigma error, arcsec^-2.

    Returns
    -------
    dict of numpy.ndarray
        ``n_bg`` (expected background GCs per box), ``n_gc_bgsub = n_gc - n_bg`` (may be
        negative), ``n_gc_bgsub_err = sqrt(n_gc + (area * background_err)^2)`` and
        ``n_per_arcsec2_bgsub`` (arcsec^-2).
    """
    n = np.asarray(boxes["n_gc"], float)
    area = np.asarray(boxes["area_arcsec2"], float)
    n_bg = float(background) * area
    with np.errstate(divide="ignore", invalid="ignore"):
        per = np.where(area > 0, (n - n_bg) / area, np.nan)
    return {
        "n_bg": n_bg,
        "n_gc_bgsub": n - n_bg,
        "n_gc_bgsub_err": np.sqrt(n + (area * float(background_err)) ** 2),
        "n_per_arcsec2_bgsub": per,
    }


# -------------------------------------------------------------------------------- mass budget


def gc_mass_budget(
    kappa,
    mask,
    centre_px,
    radius_arcsec: float,
    pixel_scale_arcsec: float,
    sigma_crit_msun_per_arcsec2: float,
    n_gc: int,
    gc_mass_fraction: float = GC_MASS_FRACTION,
) -> dict:
    """Halo mass from the convergence in an aperture, and the GC mass it implies.

    ``M_halo = Sigma_cr * sum(kappa) * pixel area`` over pixels whose centres lie within
    ``radius_arcsec``; masked pixels are included, since the lens model knows kappa there.
    ``M_GC = gc_mass_fraction * M_halo``; the mean GC mass is ``M_GC / n_gc``.

    Parameters
    ----------
    kappa : numpy.ndarray
        ``(ny, nx)`` convergence; finite inside the aperture.
    mask : numpy.ndarray of bool or None
        True where masked; only reported as ``masked_fraction``.
    centre_px : tuple of float
        ``(x, y)`` of the aperture centre, pixels.
    radius_arcsec : float
        Aperture radius, arcsec.
    pixel_scale_arcsec : float
        Pixel size, arcsec.
    sigma_crit_msun_per_arcsec2 : float
        Critical surface density, Msun arcsec^-2.
    n_gc : int
        Number of GCs the GC mass is shared among (e.g. detected within the aperture).
    gc_mass_fraction : float
        Total GC mass over halo mass.

    Returns
    -------
    dict
        ``m_halo_msun``, ``m_gc_msun``, ``mean_gc_mass_msun`` (Msun); ``n_gc``;
        ``gc_mass_fraction``; ``area_arcsec2`` of the aperture on the grid; ``masked_fraction``
        of that area; ``leaves_grid`` (True when the circle reaches past the grid's edges, so
        the halo mass misses the part off the map) and ``on_grid_fraction`` (the aperture's
        area on the grid over pi r^2).
    """
    scale = as_positive("pixel_scale_arcsec", pixel_scale_arcsec)
    radius = as_positive("radius_arcsec", radius_arcsec)
    sigma_cr = as_positive("sigma_crit_msun_per_arcsec2", sigma_crit_msun_per_arcsec2)
    fraction = as_positive("gc_mass_fraction", gc_mass_fraction)
    if isinstance(n_gc, bool) or not isinstance(n_gc, int | np.integer) or n_gc < 1:
        raise GccatError(f"n_gc must be a positive integer, got {n_gc!r}")
    k = _grid("kappa", kappa)
    m = _mask(mask, k.shape)
    cx, cy = as_centre(centre_px)
    ny, nx = k.shape
    inside = np.hypot(np.arange(nx)[None, :] - cx, np.arange(ny)[:, None] - cy) * scale <= radius
    if not inside.any():
        raise GccatError("the aperture holds no pixel centre of the grid")
    if not np.isfinite(k[inside]).all():
        raise GccatError("kappa must be finite inside the aperture")
    m_halo = sigma_cr * float(k[inside].sum()) * scale**2
    m_gc = fraction * m_halo
    return {
        "m_halo_msun": m_halo,
        "m_gc_msun": m_gc,
        "mean_gc_mass_msun": m_gc / int(n_gc),
        "n_gc": int(n_gc),
        "gc_mass_fraction": fraction,
        "area_arcsec2": float(inside.sum()) * scale**2,
        "masked_fraction": float(m[inside].mean()),
        "leaves_grid": bool(
            cx - radius / scale < -0.5
            or cy - radius / scale < -0.5
            or cx + radius / scale > nx - 0.5
            or cy + radius / scale > ny - 0.5
        ),
        "on_grid_fraction": float(inside.sum()) * scale**2 / (np.pi * radius**2),
    }
