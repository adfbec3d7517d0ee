"""``gccat correlate``: how closely GCs trace the lens convergence, written to the lake.

Orchestrates :mod:`catalog.gckappa` (pure numpy on the kappa grid) with the lake: GCs from
``photometry_wide``, the kappa map from ``lens_map_pixels``, masks from FITS files or tables,
and the results into ``correlation_runs``, ``density_maps``, ``box_stats``, ``radial_profiles``.

:func:`run_correlation` runs these steps, one function each: check the options
(``_checked_options``), load the kappa map and rescale it (``_load_lens``), select the GCs on
the map (``_select_gcs``), build the mask (``_build_mask``), the GC density and its
inpainting (``_gc_density``), the pixel correlation, boxes and fits (``_statistics``), the
centre, background, profiles and mass budget (``_profile_centre``, ``_background``,
``_radial_profile``, ``_mass_budget``), then the rows (``_run_row``, ``_density_map_table``,
``_box_table``, ``_profile_table``) written in one lake transaction.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from catalog import gckappa as cr
from catalog.checks import Z_MAX, check_name, check_number
from catalog.constants import (
    BOOT_CHUNK,
    BOX_ARCSEC,
    CORRELATE_N_BOOT,
    GC_KERNEL_ALPHA,
    GC_KERNEL_SOFTENING_ARCSEC,
)
from catalog.errors import GccatError
from catalog.lake import Lake
from catalog.lake.schemas import BOX_STATS, CORRELATION_RUNS, DENSITY_MAPS, RADIAL_PROFILES
from catalog.lensing import LensMap, kpc_per_arcsec, sigma_crit_msun_per_arcsec2, source_dls_ds
from catalog.queries.lensmaps import LensMapStore
from catalog.runs.cluster import check_scheduler

#: Kernel exponents beyond 5 make W(d) = 1/(S_L + d)^alpha a point: no smoothing left to
#: compare with kappa (the papers use 1.6).
MAX_ALPHA = 5.0
#: Each inpainting iteration is a few FFTs of the map; 5 to 20 converge (Diego et al.).
MAX_INPAINT_ITERATIONS = 100
MAX_BOOT = 100_000
MAX_ANNULI = 1000
#: A bright-source mask disk larger than a degree is not a source mask.
MAX_MASK_RADIUS_ARCSEC = 3600.0


@dataclass
class CorrelationResult:
    """A correlation run: its lake row, the maps and tables it wrote, and its plots."""

    run: dict
    kappa: np.ndarray
    rho_gc: np.ndarray
    mask: np.ndarray
    residual: np.ndarray
    boxes: dict
    profile: dict
    px: np.ndarray
    py: np.ndarray
    lens_map: LensMap
    plots: list[str] = field(default_factory=list)
    #: One-line warnings for the user (e.g. a mass aperture that leaves the map).
    warnings: list[str] = field(default_factory=list)


@dataclass
class LightImage:
    """An image whose light profile is drawn beside the GC and kappa profiles (e.g. F444W).

    ``surface_brightness`` is in nJy arcsec^-2 on the image's own WCS grid, NaN where there is
    no data; its finite pixels are also the footprint on which GCs are counted beyond the map.
    """

    surface_brightness: np.ndarray
    wcs: object
    pixel_scale_arcsec: float
    path: str
    band: str | None = None


def read_mask(path: str | os.PathLike, lens_map: LensMap) -> np.ndarray:
    """A FITS mask (non-zero = masked) on the kappa grid, resampled by nearest pixel via WCS."""
    import warnings

    from astropy.wcs import WCS, FITSFixedWarning

    from catalog.images.fitsio import read_fits_image

    path = Path(path)
    data, header = read_fits_image(path, "--mask file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            wcs = WCS(header).celestial
    except (ValueError, KeyError, TypeError, MemoryError) as exc:
        reason = next((s.strip() for s in str(exc).splitlines()[1:] if s.strip()), str(exc).strip())
        raise GccatError(f"the --mask image has an unusable WCS: {reason}", file=path) from None
    if data.shape == lens_map.shape and not wcs.has_celestial:
        return data != 0
    if not wcs.has_celestial:
        raise GccatError(
            f"the --mask image ({data.shape[0]}x{data.shape[1]}) has another shape than "
            f"the map ({lens_map.shape[0]}x{lens_map.shape[1]}) and no celestial WCS",
            file=path,
        )
    ny, nx = lens_map.shape
    iy, ix = np.mgrid[0:ny, 0:nx]
    ra, dec = lens_map.wcs.pixel_to_world_values(ix.ravel(), iy.ravel())
    mx, my = wcs.world_to_pixel_values(ra, dec)
    mx, my = np.rint(mx).astype(int), np.rint(my).astype(int)
    inside = (mx >= 0) & (my >= 0) & (mx < data.shape[1]) & (my < data.shape[0])
    out = np.zeros(ny * nx, bool)
    out[inside] = data[my[inside], mx[inside]] != 0
    return out.reshape(ny, nx)


def check_mask_radius(radius_arcsec, option: str = "--mask-radius") -> float:
    """A bright-source mask radius in (0, :data:`MAX_MASK_RADIUS_ARCSEC`] arcsec."""
    return check_number(radius_arcsec, option, lo=0, lo_open=True, hi=MAX_MASK_RADIUS_ARCSEC)


def check_mask_regions(regions: pa.Table, path=None) -> None:
    """Mask disks need ``ra`` in [0, 360] and ``dec`` in [-90, 90] deg, and ``radius_arcsec`` in
    (0, MAX_MASK_RADIUS_ARCSEC]; a bad value is a one-line error naming its row.
    """
    for col in ("ra", "dec", "radius_arcsec"):
        if col not in regions.column_names:
            raise GccatError(f"the --mask-table has no column '{col}'", file=path)
    r = regions["radius_arcsec"].to_numpy(zero_copy_only=False).astype(float)
    bad = np.flatnonzero(~(np.isfinite(r) & (r > 0) & (r <= MAX_MASK_RADIUS_ARCSEC)))
    if bad.size:
        raise GccatError(
            f"radius_arcsec must be in (0, {MAX_MASK_RADIUS_ARCSEC:g}] arcsec, not {r[bad[0]]!r}",
            file=path,
            column="radius_arcsec",
            row=int(bad[0]) + 1,
        )
    for col, lo, hi in (("ra", 0.0, 360.0), ("dec", -90.0, 90.0)):
        v = regions[col].to_numpy(zero_copy_only=False).astype(float)
        bad = np.flatnonzero(~(np.isfinite(v) & (v >= lo) & (v <= hi)))
        if bad.size:
            raise GccatError(
                f"{col} must be in [{lo:g}, {hi:g}] degrees, not {v[bad[0]]!r}",
                file=path,
                column=col,
                row=int(bad[0]) + 1,
            )


def check_correlation_options(
    *,
    alpha,
    softening_arcsec,
    box_arcsec,
    inpaint_iterations,
    seed,
    mass_radius_arcsec,
    z_source,
    n_boot,
    n_annuli,
    centre,
    background_annulus_arcsec,
    fit_method,
    background_density_per_kpc2=None,
    background_density_err_per_kpc2=None,
    background_where=None,
    background_area_arcsec2=None,
    profile_edges_arcsec=None,
    profile_log_bins=None,
    gc_mass_fraction=cr.GC_MASS_FRACTION,
    chunk=BOOT_CHUNK,
    scheduler=None,
) -> dict:
    """The options of :func:`run_correlation` that do not depend on the map, checked; returns
    them as numbers (the map-dependent upper bounds are checked once the map is read).
    """
    if fit_method not in ("poisson", "lsq"):
        raise GccatError(f"--fit must be poisson or lsq, not {fit_method!r}")
    check_scheduler(scheduler)
    out = {
        "alpha": check_number(alpha, "--alpha", lo=0, lo_open=True, hi=MAX_ALPHA),
        # S_L = 0 puts an infinite weight on the pixel of each GC
        "softening_arcsec": check_number(softening_arcsec, "--softening", lo=0, lo_open=True),
        "box_arcsec": check_number(box_arcsec, "--box", lo=0, lo_open=True),
        "inpaint_iterations": check_number(
            inpaint_iterations, "--inpaint-iter", lo=0, hi=MAX_INPAINT_ITERATIONS, integer=True
        ),
        "seed": check_number(seed, "--seed", lo=0, hi=2**63 - 1, integer=True),
        "mass_radius_arcsec": check_number(mass_radius_arcsec, "--mass-radius", lo=0, lo_open=True),
        "gc_mass_fraction": check_number(gc_mass_fraction, "--gc-mass-fraction", lo=0, lo_open=True, hi=1),
        "z_source": check_number(z_source, "--z-source", lo=0, lo_open=True, hi=Z_MAX, allow_none=True),
        "n_boot": check_number(n_boot, "--n-boot", lo=10, hi=MAX_BOOT, integer=True),
        "n_annuli": check_number(n_annuli, "n_annuli", lo=1, hi=MAX_ANNULI, integer=True),
        "chunk": check_number(chunk, "--chunk", lo=1, hi=MAX_BOOT + 1, integer=True),
        "scheduler": scheduler,
        "centre": None,
        "background_annulus_arcsec": None,
    }
    if centre is not None:
        if len(centre) != 2:
            raise GccatError(f"--centre must be RA,DEC in degrees, not {centre!r}")
        out["centre"] = (
            check_number(centre[0], "--centre RA", lo=0, hi=360),
            check_number(centre[1], "--centre Dec", lo=-90, hi=90),
        )
    if background_annulus_arcsec is not None:
        if len(background_annulus_arcsec) != 2:
            raise GccatError("--background-annulus must be R_IN,R_OUT in arcsec")
        r_in = check_number(background_annulus_arcsec[0], "--background-annulus R_IN", lo=0)
        r_out = check_number(background_annulus_arcsec[1], "--background-annulus R_OUT", lo=0, lo_open=True)
        if not r_in < r_out:
            raise GccatError(f"--background-annulus needs R_IN < R_OUT, not {r_in:g},{r_out:g}")
        out["background_annulus_arcsec"] = (r_in, r_out)
    out["profile_edges_arcsec"] = _check_profile_edges(profile_edges_arcsec, profile_log_bins)
    out.update(
        _check_background_options(
            out["background_annulus_arcsec"],
            background_density_per_kpc2,
            background_density_err_per_kpc2,
            background_where,
            background_area_arcsec2,
        )
    )
    return out


def _check_profile_edges(edges, log_bins) -> list[float] | None:
    """Annulus edges (arcsec) of the radial profile: the ones given (increasing, >= 0), or
    ``log_bins = (r_min, r_max, n)``: n log-spaced annuli from r_min > 0 to r_max; None: the
    default (``n_annuli`` equal annuli to the farthest map corner).
    """
    if edges is not None and log_bins is not None:
        raise GccatError("give --profile-edges or --profile-log, not both")
    if log_bins is not None:
        if len(log_bins) != 3:
            raise GccatError("--profile-log must be R_MIN,R_MAX,N (arcsec, arcsec, annuli)")
        r_min = check_number(log_bins[0], "--profile-log R_MIN", lo=0, lo_open=True)
        r_max = check_number(log_bins[1], "--profile-log R_MAX", lo=r_min, lo_open=True)
        n = check_number(log_bins[2], "--profile-log N", lo=1, hi=MAX_ANNULI, integer=True)
        return [float(v) for v in np.geomspace(r_min, r_max, n + 1)]
    if edges is None:
        return None
    e = [check_number(v, "--profile-edges", lo=0) for v in edges]
    if len(e) < 2 or len(e) > MAX_ANNULI + 1 or any(b <= a for a, b in zip(e, e[1:], strict=False)):
        raise GccatError(f"--profile-edges must be 2 to {MAX_ANNULI + 1} increasing radii (arcsec)")
    return e


def _check_background_options(annulus, density, density_err, where, area) -> dict:
    """At most one background source (annulus, density in GC/kpc^2, or a SQL selection with
    its area in arcsec^2), each number checked.
    """
    given = [
        name
        for name, v in (
            ("--background-annulus", annulus),
            ("--background-density", density),
            ("--background-where", where),
        )
        if v is not None
    ]
    if len(given) > 1:
        raise GccatError(f"give one background source, not {' and '.join(given)}")
    if density_err is not None and density is None:
        raise GccatError("--background-density-err needs --background-density")
    if (where is None) != (area is None):
        raise GccatError("--background-where and --background-area-arcsec2 go together")
    return {
        "background_density_per_kpc2": check_number(density, "--background-density", lo=0, allow_none=True),
        "background_density_err_per_kpc2": check_number(
            density_err, "--background-density-err", lo=0, allow_none=True
        ),
        "background_where": where,
        "background_area_arcsec2": check_number(
            area, "--background-area-arcsec2", lo=0, lo_open=True, allow_none=True
        ),
    }


def _check_against_map(opts: dict, kmap: LensMap) -> None:
    """Box and softening no larger than the map: beyond, there is one box (or none) and the
    kernel is flat over the whole map.
    """
    side = min(kmap.shape) * kmap.pixel_scale_arcsec
    for key, option in (("box_arcsec", "--box"), ("softening_arcsec", "--softening")):
        if opts[key] > side:
            raise GccatError(
                f"{option} must be in (0, {side:.4g}] arcsec (the smaller side of the "
                f"kappa map), not {opts[key]:g}"
            )


def mask_from_regions(ra, dec, radius_arcsec, lens_map: LensMap) -> np.ndarray:
    """Disks of ``radius_arcsec`` around (ra, dec) in degrees, as a mask on the kappa grid."""
    ny, nx = lens_map.shape
    mask = np.zeros((ny, nx), bool)
    px, py = lens_map.wcs.world_to_pixel_values(np.asarray(ra, float), np.asarray(dec, float))
    rpix = np.broadcast_to(np.asarray(radius_arcsec, float), np.shape(px)) / lens_map.pixel_scale_arcsec
    yy, xx = np.ogrid[0:ny, 0:nx]
    for x0, y0, r in zip(np.atleast_1d(px), np.atleast_1d(py), np.atleast_1d(rpix), strict=True):
        x1, x2 = max(int(x0 - r) - 1, 0), min(int(x0 + r) + 2, nx)
        y1, y2 = max(int(y0 - r) - 1, 0), min(int(y0 + r) + 2, ny)
        if x1 >= x2 or y1 >= y2:
            continue
        mask[y1:y2, x1:x2] |= (xx[:, x1:x2] - x0) ** 2 + (yy[y1:y2] - y0) ** 2 <= r * r
    return mask


@dataclass
class _Lens:
    """The kappa map of a run and what the field table says about its cluster."""

    kmap: LensMap
    #: kappa rescaled to the source redshift (NaN where the map has none).
    kappa: np.ndarray
    #: Sigma_cr(map normalisation) * kappa_map, Msun/arcsec^2; None without a cluster redshift.
    surface_mass_per_arcsec2: np.ndarray | None
    #: The field's row of the ``fields`` table ({} if the field is not there).
    field: dict


@dataclass
class _Density:
    """The GC density of a run, before and after inpainting the masked pixels."""

    rho: np.ndarray
    #: Density of a uniform unit surface density over the map (the edge imprint).
    window: np.ndarray
    #: Visible GCs followed by the inpainted ones.
    px_all: np.ndarray
    py_all: np.ndarray
    n_added: int


@dataclass
class _Statistics:
    """The pixel correlation, the boxes and the two fits of <kappa> = A n_GC^B."""

    corr: dict
    box_pix: int
    boxes: dict
    lsq: dict
    fit: dict


def _checked_options(field_id: str, model: str, mask_regions: pa.Table | None, **options) -> dict:
    """The names, the options of :func:`check_correlation_options` and the mask regions, checked."""
    check_name(field_id, "field id")
    check_name(model, "model name")
    opts = check_correlation_options(**options)
    if mask_regions is not None:
        check_mask_regions(mask_regions)
    return opts


def _load_lens(lake: Lake, field_id: str, model_id: str, opts: dict) -> _Lens:
    """The kappa map of ``model_id`` from the lake, checked against the options, with kappa
    rescaled to ``opts["z_source"]`` and the surface mass of the lens.
    """
    store = LensMapStore(lake)
    kmap = store.load(model_id, "kappa")
    if kmap is None:
        known = sorted(set(store.models()["model_id"].to_pylist()))
        raise GccatError(
            f"no kappa map for lens model '{model_id}' (models: "
            f"{', '.join(known) or 'none'}); ingest one with 'gccat ingest lens-map'"
        )
    _check_against_map(opts, kmap)
    fields = lake.live("fields").to_pylist()
    frow = next((f for f in fields if f["field_id"] == field_id), {})
    z_cluster = frow.get("z_cluster")
    kappa = np.array(kmap.data, float)
    norm = store.models().filter(pa.compute.equal(store.models()["model_id"], model_id))
    dls_ds_norm = norm["dls_ds"][0].as_py()  # D_ls/D_s the map is normalised to (HFF: 1)
    # The projected mass is a property of the lens: Sigma_cr(norm) * kappa_map, whatever
    # redshift the correlation rescales kappa to.
    surface_mass_per_arcsec2 = None
    if z_cluster:
        surface_mass_per_arcsec2 = kappa * (sigma_crit_msun_per_arcsec2(z_cluster) / dls_ds_norm)
    if opts["z_source"] is not None:
        kappa *= source_dls_ds(z_cluster, opts["z_source"], field_id) / dls_ds_norm
    return _Lens(kmap, kappa, surface_mass_per_arcsec2, frow)


def _select_gcs(
    lake: Lake, kmap: LensMap, field_id: str, model_id: str, where: str | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pixel positions of the detections of ``field_id`` matching ``where`` that lie on the map,
    and the (RA, Dec) in degrees of all of them (on the map or not).
    """
    from catalog.queries.connection import connect
    from catalog.queries.sandbox import condition_sql
    from catalog.queries.search import run_sql

    con = connect(lake)
    cond = f" AND {condition_sql(where)}" if where else ""
    gcs = run_sql(con, f"SELECT ra, dec FROM photometry_wide WHERE field_id = ?{cond}", [field_id])
    if gcs.num_rows == 0:
        raise GccatError(f"no detections in field '{field_id}' match the selection")
    ra, dec = gcs["ra"].to_numpy(), gcs["dec"].to_numpy()
    px, py = kmap.wcs.world_to_pixel_values(ra, dec)
    ny, nx = kmap.shape
    on_map = (px > -0.5) & (py > -0.5) & (px < nx - 0.5) & (py < ny - 0.5)
    if not on_map.any():
        raise GccatError(
            f"none of the {gcs.num_rows} selected detections of field '{field_id}' "
            f"lies on the kappa map of '{model_id}'"
        )
    return px[on_map], py[on_map], ra, dec


def _build_mask(kmap: LensMap, kappa: np.ndarray, mask_path, mask_regions: pa.Table | None) -> np.ndarray:
    """Masked pixels: where kappa is not finite, the FITS mask and the bright-source disks."""
    mask = ~np.isfinite(kappa)
    if mask_path:
        mask |= read_mask(mask_path, kmap)
    if mask_regions is not None and mask_regions.num_rows:
        mask |= mask_from_regions(
            mask_regions["ra"].to_numpy(),
            mask_regions["dec"].to_numpy(),
            mask_regions["radius_arcsec"].to_numpy(),
            kmap,
        )
    return mask


def _unmasked(px: np.ndarray, py: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The GCs whose nearest pixel is not masked."""
    ix, iy = np.rint(px).astype(int), np.rint(py).astype(int)
    visible = ~mask[iy, ix]
    return px[visible], py[visible]


def _uniform_window(kmap: LensMap, alpha: float, softening_arcsec: float) -> np.ndarray:
    """The density of one point at every pixel centre: how rho_gc falls towards the map edges."""
    ny, nx = kmap.shape
    wy, wx = np.divmod(np.arange(nx * ny), nx)
    return cr.density_fft(
        wx.astype(float), wy.astype(float), kmap.shape, kmap.pixel_scale_arcsec, alpha, softening_arcsec
    )


def _gc_density(
    px: np.ndarray,
    py: np.ndarray,
    kmap: LensMap,
    mask: np.ndarray,
    opts: dict,
    rng: np.random.Generator,
    step,
) -> _Density:
    """rho_gc of the visible GCs by FFT, then Monte Carlo inpainting of the masked pixels."""
    scale = kmap.pixel_scale_arcsec
    alpha, softening_arcsec = opts["alpha"], opts["softening_arcsec"]
    step("density (FFT)", 0.25)
    rho = cr.density_fft(px, py, kmap.shape, scale, alpha, softening_arcsec)
    # The density of a uniform field falls towards the map edges; dividing by it keeps the
    # inpainting and the correlation coefficients free of that edge imprint.
    window = _uniform_window(kmap, alpha, softening_arcsec)
    n_added = 0
    px_all, py_all = px, py
    if opts["inpaint_iterations"] and mask.any():
        step("inpainting", 0.4)
        px_all, py_all, rho, n_added = cr.inpaint(
            px,
            py,
            mask,
            rho,
            rng,
            n_iter=opts["inpaint_iterations"],
            alpha=alpha,
            softening_arcsec=softening_arcsec,
            pixel_scale_arcsec=scale,
            window=window,
        )
    return _Density(rho, window, px_all, py_all, n_added)


def _statistics(
    px: np.ndarray,
    py: np.ndarray,
    kappa: np.ndarray,
    mask: np.ndarray,
    density: _Density,
    scale: float,
    opts: dict,
    fit_method: str,
    rng: np.random.Generator,
    client=None,
) -> _Statistics:
    """Pixel correlation of kappa and rho_gc, the box statistics and the power-law fits (the
    least-squares fit is always made; ``fit_method`` picks the one reported as A, B). The
    bootstrap resamples are drawn here from ``rng`` and fitted ``opts["chunk"]`` at a time, as
    tasks of the Dask ``client`` if there is one (:func:`_dask_blocks`).
    """
    corr = cr.pixel_correlation(kappa, density.rho, ~mask, window=density.window)
    box_pix = max(int(round(opts["box_arcsec"] / scale)), 1)
    boxes = cr.box_stats(px, py, kappa, mask, box_pix, scale)
    boot = {"n_boot": opts["n_boot"], "chunk": opts["chunk"], "map_blocks": _dask_blocks(client)}
    lsq = cr.fit_power_law(boxes["n_per_arcsec2"], boxes["kappa_mean"], rng, **boot)
    fit = (
        lsq
        if fit_method == "lsq"
        else cr.fit_power_law(
            boxes["n_per_arcsec2"],
            boxes["kappa_mean"],
            rng,
            method="poisson",
            area_arcsec2=boxes["area_arcsec2"],
            **boot,
        )
    )
    return _Statistics(corr, box_pix, boxes, lsq, fit)


def _dask_blocks(client):
    """``map_blocks`` of :func:`catalog.gckappa.fit_power_law` on a Dask client: one task per
    block of resamples (the block of multiplicities travels with its task; the box data are
    a few kB); None without a client (in process).
    """
    if client is None:
        return None
    from catalog.runs.cluster import map_chunks

    return lambda fn, blocks, *args: map_chunks(fn, [(b,) for b in blocks], client, small=args)


def _profile_centre(kmap: LensMap, field: dict, centre) -> tuple[tuple, tuple[float, float]]:
    """The centre of the profiles and the mass budget, (RA, Dec) in deg and pixel (x, y): the
    one given, else the field centre, else the map centre.
    """
    ny, nx = kmap.shape
    if centre is None:
        if field.get("ra_center") is not None:
            centre = (field["ra_center"], field["dec_center"])
        else:
            centre = tuple(float(v) for v in kmap.wcs.pixel_to_world_values((nx - 1) / 2, (ny - 1) / 2))
    cx, cy = (float(v) for v in kmap.wcs.world_to_pixel_values(centre[0], centre[1]))
    return centre, (cx, cy)


def _cluster_scale(field: dict) -> float | None:
    """kpc per arcsec at the cluster: the field's, else from its z_cluster, else None."""
    if field.get("kpc_per_arcsec"):
        return float(field["kpc_per_arcsec"])
    if field.get("z_cluster"):
        return kpc_per_arcsec(field["z_cluster"])
    return None


def _kpc_per_arcsec(field: dict, field_id: str) -> float:
    """The proper scale at the cluster, kpc/arcsec (:func:`_cluster_scale`), or an error."""
    scale = _cluster_scale(field)
    if scale is not None:
        return scale
    raise GccatError(
        f"--background-density is per kpc^2: field '{field_id}' needs z_cluster or kpc_per_arcsec"
    )


def _count_background(lake: Lake, field_id: str, where: str) -> int:
    """Detections of ``field_id`` matching the ``--background-where`` condition."""
    from catalog.queries.connection import connect
    from catalog.queries.sandbox import condition_sql
    from catalog.queries.search import run_sql

    sql = f"SELECT count(*) AS n FROM photometry_wide WHERE field_id = ? AND {condition_sql(where)}"
    n = int(run_sql(connect(lake), sql, [field_id])["n"][0].as_py())
    if n == 0:
        raise GccatError(
            f"the background region is empty: no detection of '{field_id}' matches --background-where"
        )
    return n


def _background(lake, field_id, lens: _Lens, px, py, mask, centre_px, opts: dict, scale: float) -> dict:
    """Background GC density and its error (arcsec^-2) and where it came from: the annulus, a
    density per kpc^2 at z_cluster, a counted region of given area, or none (0).
    """
    out = {"source": "none", "density": 0.0, "err": 0.0, "n": None, "kpc_per_arcsec": None}
    if opts["background_annulus_arcsec"]:
        d, e = cr.background_from_annulus(px, py, mask, centre_px, *opts["background_annulus_arcsec"], scale)
        out.update(source="annulus", density=d, err=e)
    elif opts["background_density_per_kpc2"] is not None:
        k = _kpc_per_arcsec(lens.field, field_id)
        d = cr.background_per_arcsec2(opts["background_density_per_kpc2"], k)
        e = cr.background_per_arcsec2(opts["background_density_err_per_kpc2"] or 0.0, k)
        out.update(source="density", density=d, err=e, kpc_per_arcsec=k)
    elif opts["background_where"] is not None:
        n = _count_background(lake, field_id, opts["background_where"])
        d, e = cr.background_from_counts(n, opts["background_area_arcsec2"])
        out.update(source="region", density=d, err=e, n=n)
    return out


def _profile_edges(shape: tuple[int, int], centre_px, opts: dict, scale: float) -> np.ndarray:
    """Annulus edges, arcsec: the ones given (or log-spaced), else ``n_annuli`` equal annuli out
    to the farthest map corner.
    """
    if opts["profile_edges_arcsec"] is not None:
        return np.asarray(opts["profile_edges_arcsec"], float)
    cx, cy = centre_px
    ny, nx = shape
    r_max = max(np.hypot(np.array([0, nx - 1]) - cx, np.array([0, ny - 1])[:, None] - cy).max(), 1)
    return np.linspace(0, r_max * scale, opts["n_annuli"] + 1)


def _radial_profile(px, py, kappa, rho, mask, centre_px, edges, scale: float, background: dict) -> dict:
    """Profiles on the map in the annuli ``edges`` (annuli beyond the map have no area: NaN
    densities, NULL in the lake).
    """
    return cr.radial_profile(
        px, py, kappa, rho, mask, centre_px, edges, scale, background["density"], background["err"]
    )


def _image_profile(light: LightImage | None, ra, dec, centre, edges, background: dict) -> dict | None:
    """GC density and surface brightness in the same annuli on the light image's footprint
    (all selected GCs, on the lens map or not), or None without an image.
    """
    if light is None:
        return None
    ix, iy = light.wcs.world_to_pixel_values(ra, dec)
    ny, nx = light.surface_brightness.shape
    on = (ix > -0.5) & (iy > -0.5) & (ix < nx - 0.5) & (iy < ny - 0.5)
    cx, cy = (float(v) for v in light.wcs.world_to_pixel_values(centre[0], centre[1]))
    return cr.image_profile(
        ix[on],
        iy[on],
        light.surface_brightness,
        (cx, cy),
        edges,
        light.pixel_scale_arcsec,
        background["density"],
        background["err"],
    )


def _mass_budget(lens: _Lens, density: _Density, mask, centre_px, opts: dict, scale: float) -> dict:
    """Halo mass, GC mass and mean GC mass within ``mass_radius_arcsec`` (None without a
    cluster redshift), with ``gc_mass_fraction``; the GCs counted include the inpainted ones.
    ``leaves_map``: the aperture reaches past the lens map (its halo mass is a lower limit).
    """
    none = {"M_halo": None, "M_GC": None, "mean_gc_mass": None, "leaves_map": None, "on_map_fraction": None}
    if lens.surface_mass_per_arcsec2 is None:
        return {**none, "gc_mass_fraction": opts["gc_mass_fraction"]}
    cx, cy = centre_px
    radius = opts["mass_radius_arcsec"]
    n_in = int((np.hypot(density.px_all - cx, density.py_all - cy) * scale <= radius).sum())
    # gc_mass_budget multiplies its kappa by Sigma_cr: hand it the surface mass with 1.
    b = cr.gc_mass_budget(
        lens.surface_mass_per_arcsec2,
        mask,
        (cx, cy),
        radius,
        scale,
        1.0,
        max(n_in, 1),
        gc_mass_fraction=opts["gc_mass_fraction"],
    )
    return {
        "M_halo": b["m_halo_msun"],
        "M_GC": b["m_gc_msun"],
        "mean_gc_mass": b["mean_gc_mass_msun"],
        "gc_mass_fraction": b["gc_mass_fraction"],
        "leaves_map": b["leaves_grid"],
        "on_map_fraction": b["on_grid_fraction"],
    }


def _budget_warnings(budget: dict, opts: dict) -> list[str]:
    """The warning of a mass aperture that leaves the lens map."""
    if not budget.get("leaves_map"):
        return []
    return [
        f"--mass-radius {opts['mass_radius_arcsec']:g} arcsec reaches past the lens map: "
        f"{budget['on_map_fraction']:.0%} of the aperture is on the map, so M_halo and M_GC are "
        "lower limits"
    ]


def _run_options(
    where, mask_path, mask_regions, centre, opts: dict, stats: _Statistics, budget: dict, background: dict
) -> dict:
    """The ``options`` of the run row and of the ingest log."""
    return {
        "where": where,
        "alpha": opts["alpha"],
        "softening_arcsec": opts["softening_arcsec"],
        "box_arcsec": opts["box_arcsec"],
        "mask_path": str(mask_path) if mask_path else None,
        "n_mask_regions": 0 if mask_regions is None else mask_regions.num_rows,
        "centre": centre,
        "inpaint_iterations": opts["inpaint_iterations"],
        "seed": opts["seed"],
        "background_annulus_arcsec": opts["background_annulus_arcsec"],
        "background_density_per_kpc2": opts["background_density_per_kpc2"],
        "background_density_err_per_kpc2": opts["background_density_err_per_kpc2"],
        "background_where": opts["background_where"],
        "background_area_arcsec2": opts["background_area_arcsec2"],
        "background": background,
        "n_annuli": opts["n_annuli"],
        "profile_edges_arcsec": opts["profile_edges_arcsec"],
        "mass_radius_arcsec": opts["mass_radius_arcsec"],
        "z_source": opts["z_source"],
        "n_boot": opts["n_boot"],
        "chunk": opts["chunk"],
        "scheduler": opts["scheduler"] or "in-process",
        "fit": stats.fit,
        "fit_lsq": stats.lsq,
        "budget": budget,
    }


def _run_row(
    tx,
    field_id: str,
    model_id: str,
    where,
    mask_path,
    fit_method: str,
    opts: dict,
    centre,
    n_gc: int,
    density: _Density,
    mask: np.ndarray,
    stats: _Statistics,
    background: dict,
    budget: dict,
    plots: list[str],
    options: dict,
) -> dict:
    """The ``correlation_runs`` row."""
    corr, fit, lsq = stats.corr, stats.fit, stats.lsq
    return {
        "run_id": tx.ingest_id,
        "field_id": field_id,
        "model_id": model_id,
        "created_at": tx.started_at,
        "where_sql": where,
        "alpha": opts["alpha"],
        "softening_arcsec": opts["softening_arcsec"],
        "box_arcsec": opts["box_arcsec"],
        "z_source": opts["z_source"],
        "mask_path": str(mask_path) if mask_path else None,
        "centre_ra": float(centre[0]),
        "centre_dec": float(centre[1]),
        "n_gc": int(n_gc),
        "n_gc_inpainted": int(density.n_added),
        "inpaint_iterations": opts["inpaint_iterations"],
        "seed": opts["seed"],
        "masked_fraction": float(mask.mean()),
        "beta": corr["beta"],
        "pearson_log": corr["pearson_log"],
        "spearman_log": corr["spearman_log"],
        "A": fit["A"],
        "B": fit["B"],
        "A_err": fit["A_err"],
        "B_err": fit["B_err"],
        "n_boxes": int(fit["n_boxes"]),
        "fit_method": fit_method,
        "A_lsq": lsq["A"],
        "B_lsq": lsq["B"],
        "B_lsq_err": lsq["B_err"],
        "background_per_arcsec2": background["density"],
        "background_err": background["err"],
        "background_source": background["source"],
        "background_n_gc": background["n"],
        "mass_radius_arcsec": opts["mass_radius_arcsec"],
        "m_halo_msun": budget["M_halo"],
        "m_gc_msun": budget["M_GC"],
        "mean_gc_mass_msun": budget["mean_gc_mass"],
        "gc_mass_fraction": budget["gc_mass_fraction"],
        "mass_aperture_on_map_fraction": budget["on_map_fraction"],
        "light_image": options.get("light_image"),
        "plots": plots,
        "options": json.dumps(options, default=float),
        "ingest_id": tx.ingest_id,
    }


def _critical_curves(lake: Lake, model_id: str) -> dict | None:
    """The model's stored critical curves and caustics (``gccat lens critical-curves``) as
    numpy columns, or None if it has none.
    """
    import pyarrow.compute as pc

    t = lake.live("critical_curves")
    t = t.filter(pc.equal(t["model_id"], model_id)) if t.num_rows else t
    if t.num_rows == 0:
        return None
    return {
        c: t[c].to_numpy(zero_copy_only=False)
        for c in ("z_source", "kind", "curve_id", "vertex", "ra", "dec")
    }


def _write_map_fits(result: CorrelationResult, path: Path, run_id: str, beta: float, opts: dict) -> str:
    """The GC density, kappa, residual and mask of a run as a FITS file on the lens map's WCS:
    extensions RHO_GC, KAPPA, RESIDUAL (kappa - beta rho_gc, NaN where masked) and MASK (1 =
    masked); returns its path.
    """
    from astropy.io import fits

    header = result.lens_map.wcs.to_header()
    header["RUN_ID"] = (run_id, "gccat correlation run")
    header["MODEL"] = (result.run.get("model_id", ""), "lens model (field/model)")
    header["ALPHA"] = (opts["alpha"], "kernel exponent of rho_gc")
    header["SOFTEN"] = (opts["softening_arcsec"], "[arcsec] kernel softening S_L")
    header["BETA"] = (float(beta), "kappa ~ beta * rho_gc")
    hdus = [fits.PrimaryHDU()]
    for name, data, what in (
        ("RHO_GC", result.rho_gc, "GC density sum W(d), W = (S_L + d[arcsec])^-alpha"),
        ("KAPPA", result.kappa, "convergence at the run's source redshift"),
        ("RESIDUAL", result.residual, "kappa - beta * rho_gc (NaN where masked)"),
        ("MASK", result.mask.astype(np.uint8), "1 = masked"),
    ):
        h = header.copy()
        h["CONTENT"] = (what[:68], "")
        hdus.append(fits.ImageHDU(np.asarray(data), header=h, name=name))
    path.parent.mkdir(parents=True, exist_ok=True)
    fits.HDUList(hdus).writeto(path, overwrite=True)
    return str(path)


def _density_map_table(run_id: str, field_id: str, kmap: LensMap, rho, kappa, residual, mask) -> pa.Table:
    """The ``density_maps`` rows: one per map pixel."""
    ny, nx = kmap.shape
    iyy, ixx = np.divmod(np.arange(nx * ny), nx)
    ra, dec = kmap.wcs.pixel_to_world_values(ixx, iyy)
    return pa.table(
        {
            "run_id": [run_id] * (nx * ny),
            "field_id": [field_id] * (nx * ny),
            "ix": ixx.astype(np.int32),
            "iy": iyy.astype(np.int32),
            "ra": np.mod(ra, 360),
            "dec": dec,
            "rho_gc": rho.ravel(),
            "kappa": kappa.ravel(),
            "residual": pa.array(residual.ravel(), from_pandas=True),
            "masked": mask.ravel(),
            "ingest_id": [run_id] * (nx * ny),
        },
        schema=DENSITY_MAPS,
    )


def _box_table(run_id: str, field_id: str, kmap: LensMap, boxes: dict, box_pix: int) -> pa.Table:
    """The ``box_stats`` rows: one per kept box, at the sky position of its centre."""
    bx = boxes["ix0"] + box_pix / 2 - 0.5
    by = boxes["iy0"] + box_pix / 2 - 0.5
    bra, bdec = kmap.wcs.pixel_to_world_values(bx, by) if len(bx) else ([], [])
    nb = len(bx)
    return pa.table(
        {
            "run_id": [run_id] * nb,
            "field_id": [field_id] * nb,
            "ix0": np.asarray(boxes["ix0"], np.int32),
            "iy0": np.asarray(boxes["iy0"], np.int32),
            "ra": np.mod(np.asarray(bra, float), 360),
            "dec": np.asarray(bdec, float),
            **{
                k: boxes[k]
                for k in (
                    "n_gc",
                    "area_arcsec2",
                    "n_per_arcsec2",
                    "kappa_mean",
                    "masked_fraction",
                    "n_bg",
                    "n_gc_bgsub",
                    "n_gc_bgsub_err",
                )
            },
            "ingest_id": [run_id] * nb,
        },
        schema=BOX_STATS,
    )


def _profile_table(run_id: str, field_id: str, profile: dict, kpc: float | None) -> pa.Table:
    """The ``radial_profiles`` rows: one per annulus; radii in kpc with ``kpc`` per arcsec (NULL
    without a cluster scale); densities and means NULL where the annulus has no unmasked area
    on the map (beyond it, or wholly masked); the light-image columns NULL without one.
    """
    npr = len(profile["r_in"])

    def in_kpc(r):
        return pa.nulls(npr, pa.float64()) if kpc is None else pa.array(np.asarray(r, float) * kpc)

    def values(p, key):
        if p is None:
            return pa.nulls(npr, pa.float64())
        return pa.array(np.asarray(p[key], float), from_pandas=True)

    image = profile.get("image")
    return pa.table(
        {
            "run_id": [run_id] * npr,
            "field_id": [field_id] * npr,
            "r_in_arcsec": profile["r_in"],
            "r_out_arcsec": profile["r_out"],
            "r_mid_arcsec": profile["r_mid"],
            "r_in_kpc": in_kpc(profile["r_in"]),
            "r_out_kpc": in_kpc(profile["r_out"]),
            "n_gc": profile["n_gc"],
            "area_arcsec2": profile["area_arcsec2"],
            **{
                k: values(profile, k)
                for k in (
                    "sigma_gc",
                    "sigma_gc_err",
                    "sigma_gc_bgsub",
                    "sigma_gc_bgsub_err",
                    "kappa_mean",
                    "rho_mean",
                )
            },
            "n_gc_image": pa.nulls(npr, pa.int64()) if image is None else pa.array(image["n_gc"], pa.int64()),
            "area_image_arcsec2": values(image, "area_arcsec2"),
            "sigma_gc_image": values(image, "sigma_gc"),
            "sigma_gc_image_err": values(image, "sigma_gc_err"),
            "sigma_gc_image_bgsub": values(image, "sigma_gc_bgsub"),
            "sigma_gc_image_bgsub_err": values(image, "sigma_gc_bgsub_err"),
            "light_sb_njy_arcsec2": values(image, "image_mean"),
            "ingest_id": [run_id] * npr,
        },
        schema=RADIAL_PROFILES,
    )


def run_correlation(
    lake: Lake,
    field_id: str,
    model: str,
    *,
    where: str | None = None,
    alpha: float = GC_KERNEL_ALPHA,
    softening_arcsec: float = GC_KERNEL_SOFTENING_ARCSEC,
    box_arcsec: float = BOX_ARCSEC,
    mask_path: str | os.PathLike | None = None,
    mask_regions: pa.Table | None = None,
    centre: tuple[float, float] | None = None,
    inpaint_iterations: int = 5,
    seed: int = 0,
    background_annulus_arcsec: tuple[float, float] | None = None,
    background_density_per_kpc2: float | None = None,
    background_density_err_per_kpc2: float | None = None,
    background_where: str | None = None,
    background_area_arcsec2: float | None = None,
    n_annuli: int = 12,
    profile_edges_arcsec: list[float] | None = None,
    profile_log_bins: tuple[float, float, int] | None = None,
    mass_radius_arcsec: float = 60.0,
    gc_mass_fraction: float = cr.GC_MASS_FRACTION,
    light_image: LightImage | None = None,
    z_source: float | None = None,
    n_boot: int = CORRELATE_N_BOOT,
    fit_method: str = "poisson",
    chunk: int = BOOT_CHUNK,
    scheduler: str | None = None,
    plot_dir: str | os.PathLike | None = None,
    progress=None,
    command: str = "",
) -> CorrelationResult:
    """Compare the smoothed GC density with kappa and write every output to the lake.

    Parameters
    ----------
    field_id, model : str
        The field and the name of one of its lens models (with a kappa map).
    where : str, optional
        SQL condition on ``photometry_wide`` selecting the GCs (default: all detections).
    alpha, softening_arcsec : float
        Kernel W(d) = 1/(S_L + d)^alpha with d and S_L in arcsec.
    box_arcsec : float
        Box side (arcsec) of the box statistics and the <kappa> = A n_GC^B fit.
    mask_path : path, optional
        FITS mask (non-zero = masked), on the kappa grid or with its own WCS.
    mask_regions : pyarrow.Table, optional
        Bright sources to mask: columns ra, dec (deg) and radius_arcsec.
    centre : (ra, dec), optional
        Centre of the radial profiles and mass budget (default: the field centre).
    inpaint_iterations : int
        Monte Carlo inpainting iterations of the masked regions (0: none).
    background_annulus_arcsec : (r_in, r_out), optional
        Annulus for the background GC density, subtracted from the profiles.
    background_density_per_kpc2, background_density_err_per_kpc2 : float, optional
        Background GC density and its 1-sigma error, GC per proper kpc^2 at z_cluster (AS1063:
        0.015 from the second NIRCam module), converted with the field's kpc_per_arcsec (else
        :func:`catalog.lensing.kpc_per_arcsec` of z_cluster).
    background_where : str, optional
        SQL condition on ``photometry_wide`` selecting the background detections (a second
        field's, or those outside the map), counted over ``background_area_arcsec2`` (arcsec^2):
        density ``N / area`` with Poisson error ``sqrt(N) / area``.
        At most one background source; the background is subtracted from the radial profile
        (``sigma_gc_bgsub``, ``sigma_gc_bgsub_err``) and from each box (``n_gc_bgsub``, the count
        minus the expected ``n_bg``), and recorded in ``correlation_runs``.
    profile_edges_arcsec : list of float, optional
        Annulus edges of the radial profile, arcsec (annuli beyond the map: NULL densities).
    profile_log_bins : (r_min, r_max, n), optional
        Instead, n log-spaced annuli from r_min to r_max, arcsec (e.g. 1, 250, 12).
    mass_radius_arcsec : float
        Radius of the GC mass budget, arcsec; an aperture that reaches past the lens map is
        a warning (the masses are then lower limits).
    gc_mass_fraction : float
        Total GC mass over halo mass of the budget (default Harris et al. 2017's 2.9e-5).
    light_image : LightImage, optional
        An image (surface brightness, nJy arcsec^-2) whose light profile, and the GC profile
        on its footprint (out past the lens map), join ``radial_profiles`` and the plots.
    z_source : float, optional
        Scale kappa from its normalisation to this source redshift.
    fit_method : {'poisson', 'lsq'}
        Fit of <kappa> = A n_GC^B reported as A, B: the likelihood of the box counts (default;
        unbiased at few GCs per box) or least squares in log-log as in the papers (always
        stored too, as A_lsq, B_lsq).
    n_boot : int
        Bootstrap resamples of the box fits (10 to :data:`MAX_BOOT`), drawn from ``seed``.
    chunk : int
        Bootstrap resamples per block of the box fits (one Dask task each).
    scheduler : str, optional
        None (in process), ``"local"`` (a local Dask cluster) or a Dask scheduler address: the
        blocks of resamples are fitted there. The resamples are drawn on the client from
        ``seed`` before they are cut into blocks, and a resample's fit does not depend on its
        block, so every result is the same to the bit whatever ``chunk`` and ``scheduler``
        (recorded in the run's ``options``). An unreachable scheduler is an error before
        anything is read or written.
    """
    step = progress or (lambda stage, frac: None)
    opts = _checked_options(
        field_id,
        model,
        mask_regions,
        alpha=alpha,
        softening_arcsec=softening_arcsec,
        box_arcsec=box_arcsec,
        inpaint_iterations=inpaint_iterations,
        seed=seed,
        mass_radius_arcsec=mass_radius_arcsec,
        z_source=z_source,
        n_boot=n_boot,
        n_annuli=n_annuli,
        centre=centre,
        background_annulus_arcsec=background_annulus_arcsec,
        fit_method=fit_method,
        background_density_per_kpc2=background_density_per_kpc2,
        background_density_err_per_kpc2=background_density_err_per_kpc2,
        background_where=background_where,
        background_area_arcsec2=background_area_arcsec2,
        profile_edges_arcsec=profile_edges_arcsec,
        profile_log_bins=profile_log_bins,
        gc_mass_fraction=gc_mass_fraction,
        chunk=chunk,
        scheduler=scheduler,
    )
    from catalog.runs.cluster import dask_client

    model_id = f"{field_id}/{model}"
    with dask_client(opts["scheduler"]) as client:
        step("reading kappa", 0.05)
        lens = _load_lens(lake, field_id, model_id, opts)
        kmap, scale = lens.kmap, lens.kmap.pixel_scale_arcsec
        step("selecting GCs", 0.1)
        px, py, ra_all, dec_all = _select_gcs(lake, kmap, field_id, model_id, where)
        mask = _build_mask(kmap, lens.kappa, mask_path, mask_regions)
        kappa = np.where(np.isfinite(lens.kappa), lens.kappa, 0.0)
        px, py = _unmasked(px, py, mask)
        rng = np.random.default_rng(opts["seed"])
        density = _gc_density(px, py, kmap, mask, opts, rng, step)
        step("correlations" if client is None else f"correlations (box fits on Dask, {scheduler})", 0.5)
        stats = _statistics(px, py, kappa, mask, density, scale, opts, fit_method, rng, client)
    centre, centre_px = _profile_centre(kmap, lens.field, opts["centre"])
    background = _background(lake, field_id, lens, px, py, mask, centre_px, opts, scale)
    stats.boxes.update(cr.boxes_minus_background(stats.boxes, background["density"], background["err"]))
    step("profiles", 0.6)
    edges = _profile_edges(mask.shape, centre_px, opts, scale)
    profile = _radial_profile(px, py, kappa, density.rho, mask, centre_px, edges, scale, background)
    image_profile = _image_profile(light_image, ra_all, dec_all, centre, edges, background)
    if image_profile is not None:
        profile["image"] = image_profile
    budget = _mass_budget(lens, density, mask, centre_px, opts, scale)
    residual = np.where(~mask, kappa - stats.corr["beta"] * density.rho, np.nan)
    options = _run_options(where, mask_path, mask_regions, centre, opts, stats, budget, background)
    options["light_image"] = None if light_image is None else light_image.path
    step("writing", 0.7)
    result = CorrelationResult(
        {"model_id": model_id}, kappa, density.rho, mask, residual, stats.boxes, profile, px, py, kmap
    )
    with lake.transaction("correlation") as tx:
        run_id = tx.ingest_id
        plots = []
        if plot_dir is not None:
            from catalog.gckappa.plots import plot_correlation

            outdir = Path(plot_dir) / run_id.replace(":", "")
            plots = plot_correlation(result, outdir, stats.corr, stats.fit, _critical_curves(lake, model_id))
            plots.append(
                _write_map_fits(result, outdir / "density_maps.fits", run_id, stats.corr["beta"], opts)
            )
        run = _run_row(
            tx,
            field_id,
            model_id,
            where,
            mask_path,
            fit_method,
            opts,
            centre,
            len(px),
            density,
            mask,
            stats,
            background,
            budget,
            plots,
            options,
        )
        result.run, result.plots, result.warnings = run, plots, _budget_warnings(budget, opts)
        tx.append(
            "density_maps", _density_map_table(run_id, field_id, kmap, density.rho, kappa, residual, mask)
        )
        tx.append("box_stats", _box_table(run_id, field_id, kmap, stats.boxes, stats.box_pix))
        tx.append("radial_profiles", _profile_table(run_id, field_id, profile, _cluster_scale(lens.field)))
        tx.append("correlation_runs", pa.Table.from_pylist([run], schema=CORRELATION_RUNS))
        tx.commit(
            name=model,
            field_id=field_id,
            n_rows=len(px),
            command=command,
            options={"run": "correlate", **options},
        )
    step("done", 1.0)
    return result
