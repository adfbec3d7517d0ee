"""``gccat correlate``: how closely GCs trace the lens convergence, written to the lake.

Orchestrates :mod:`catalog.gckappa` (pure numpy on the kappa grid) with the lake: GCs from
``photometry_wide``, the kappa map from ``lens_map_pixels``, masks from FITS files or tables,
and the results into ``correlation_runs``, ``density_maps``, ``box_stats``, ``radial_profiles``.
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
from catalog.constants import BOX_ARCSEC, GC_KERNEL_ALPHA, GC_KERNEL_SOFTENING_ARCSEC
from catalog.errors import GccatError
from catalog.lake import Lake
from catalog.lake.schemas import BOX_STATS, CORRELATION_RUNS, DENSITY_MAPS, RADIAL_PROFILES
from catalog.lensing import LensMap, sigma_crit_msun_per_arcsec2, source_dls_ds
from catalog.queries.lensmaps import LensMapStore

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
        raise GccatError(f"the --mask image ({data.shape[0]}x{data.shape[1]}) has another shape than "
                         f"the map ({lens_map.shape[0]}x{lens_map.shape[1]}) and no celestial WCS",
                         file=path)
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
    for col in ("ra", "dec", "radius_arcsec"):
        if col not in regions.column_names:
            raise GccatError(f"the --mask-table has no column '{col}'", file=path)
    r = regions["radius_arcsec"].to_numpy(zero_copy_only=False).astype(float)
    bad = np.flatnonzero(~(np.isfinite(r) & (r > 0) & (r <= MAX_MASK_RADIUS_ARCSEC)))
    if bad.size:
        raise GccatError(f"radius_arcsec must be in (0, {MAX_MASK_RADIUS_ARCSEC:g}] arcsec, not "
                         f"{r[bad[0]]!r}", file=path, column="radius_arcsec", row=int(bad[0]) + 1)
    for col, lo, hi in (("ra", 0.0, 360.0), ("dec", -90.0, 90.0)):
        v = regions[col].to_numpy(zero_copy_only=False).astype(float)
        bad = np.flatnonzero(~(np.isfinite(v) & (v >= lo) & (v <= hi)))
        if bad.size:
            raise GccatError(f"{col} must be in [{lo:g}, {hi:g}] degrees, not {v[bad[0]]!r}",
                             file=path, column=col, row=int(bad[0]) + 1)


def check_correlation_options(*, alpha, softening_arcsec, box_arcsec, inpaint_iterations, seed,
                              mass_radius_arcsec, z_source, n_boot, n_annuli, centre,
                              background_annulus_arcsec, fit_method) -> dict:
    """The options of :func:`run_correlation` that do not depend on the map, checked; returns
    them as numbers (the map-dependent upper bounds are checked once the map is read)."""
    if fit_method not in ("poisson", "lsq"):
        raise GccatError(f"--fit must be poisson or lsq, not {fit_method!r}")
    out = {
        "alpha": check_number(alpha, "--alpha", lo=0, lo_open=True, hi=MAX_ALPHA),
        # S_L = 0 puts an infinite weight on the pixel of each GC
        "softening_arcsec": check_number(softening_arcsec, "--softening", lo=0, lo_open=True),
        "box_arcsec": check_number(box_arcsec, "--box", lo=0, lo_open=True),
        "inpaint_iterations": check_number(inpaint_iterations, "--inpaint-iter", lo=0,
                                           hi=MAX_INPAINT_ITERATIONS, integer=True),
        "seed": check_number(seed, "--seed", lo=0, hi=2**63 - 1, integer=True),
        "mass_radius_arcsec": check_number(mass_radius_arcsec, "--mass-radius", lo=0, lo_open=True),
        "z_source": check_number(z_source, "--z-source", lo=0, lo_open=True, hi=Z_MAX,
                                 allow_none=True),
        "n_boot": check_number(n_boot, "n_boot", lo=10, hi=MAX_BOOT, integer=True),
        "n_annuli": check_number(n_annuli, "n_annuli", lo=1, hi=MAX_ANNULI, integer=True),
        "centre": None, "background_annulus_arcsec": None,
    }
    if centre is not None:
        if len(centre) != 2:
            raise GccatError(f"--centre must be RA,DEC in degrees, not {centre!r}")
        out["centre"] = (check_number(centre[0], "--centre RA", lo=0, hi=360),
                         check_number(centre[1], "--centre Dec", lo=-90, hi=90))
    if background_annulus_arcsec is not None:
        if len(background_annulus_arcsec) != 2:
            raise GccatError("--background-annulus must be R_IN,R_OUT in arcsec")
        r_in = check_number(background_annulus_arcsec[0], "--background-annulus R_IN", lo=0)
        r_out = check_number(background_annulus_arcsec[1], "--background-annulus R_OUT", lo=0,
                             lo_open=True)
        if not r_in < r_out:
            raise GccatError(f"--background-annulus needs R_IN < R_OUT, not {r_in:g},{r_out:g}")
        out["background_annulus_arcsec"] = (r_in, r_out)
    return out


def _check_against_map(opts: dict, kmap: LensMap) -> None:
    """Box and softening no larger than the map: beyond, there is one box (or none) and the
    kernel is flat over the whole map."""
    side = min(kmap.shape) * kmap.pixel_scale_arcsec
    for key, option in (("box_arcsec", "--box"), ("softening_arcsec", "--softening")):
        if opts[key] > side:
            raise GccatError(f"{option} must be in (0, {side:.4g}] arcsec (the smaller side of the "
                             f"kappa map), not {opts[key]:g}")


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


def run_correlation(lake: Lake, field_id: str, model: str, *, where: str | None = None,
                    alpha: float = GC_KERNEL_ALPHA, softening_arcsec: float = GC_KERNEL_SOFTENING_ARCSEC,
                    box_arcsec: float = BOX_ARCSEC,
                    mask_path: str | os.PathLike | None = None,
                    mask_regions: pa.Table | None = None, centre: tuple[float, float] | None = None,
                    inpaint_iterations: int = 5, seed: int = 0,
                    background_annulus_arcsec: tuple[float, float] | None = None,
                    n_annuli: int = 12, mass_radius_arcsec: float = 60.0,
                    z_source: float | None = None, n_boot: int = 1000, fit_method: str = "poisson",
                    plot_dir: str | os.PathLike | None = None, progress=None,
                    command: str = "") -> CorrelationResult:
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
    mass_radius_arcsec : float
        Radius of the GC mass budget.
    z_source : float, optional
        Scale kappa from its normalisation to this source redshift.
    fit_method : {'poisson', 'lsq'}
        Fit of <kappa> = A n_GC^B reported as A, B: the likelihood of the box counts (default;
        unbiased at few GCs per box) or least squares in log-log as in the papers (always
        stored too, as A_lsq, B_lsq).
    """
    from catalog.queries.connection import connect
    from catalog.queries.sandbox import condition_sql
    from catalog.queries.search import run_sql

    step = progress or (lambda stage, frac: None)
    check_name(field_id, "field id")
    check_name(model, "model name")
    opts = check_correlation_options(
        alpha=alpha, softening_arcsec=softening_arcsec, box_arcsec=box_arcsec,
        inpaint_iterations=inpaint_iterations, seed=seed, mass_radius_arcsec=mass_radius_arcsec,
        z_source=z_source, n_boot=n_boot, n_annuli=n_annuli, centre=centre,
        background_annulus_arcsec=background_annulus_arcsec, fit_method=fit_method)
    alpha, softening_arcsec, box_arcsec = opts["alpha"], opts["softening_arcsec"], opts["box_arcsec"]
    inpaint_iterations, seed, n_boot = opts["inpaint_iterations"], opts["seed"], opts["n_boot"]
    mass_radius_arcsec, z_source, n_annuli = (opts["mass_radius_arcsec"], opts["z_source"],
                                              opts["n_annuli"])
    centre, background_annulus_arcsec = opts["centre"], opts["background_annulus_arcsec"]
    if mask_regions is not None:
        check_mask_regions(mask_regions)
    model_id = f"{field_id}/{model}"
    store = LensMapStore(lake)
    step("reading kappa", 0.05)
    kmap = store.load(model_id, "kappa")
    if kmap is None:
        known = sorted(set(store.models()["model_id"].to_pylist()))
        raise GccatError(f"no kappa map for lens model '{model_id}' (models: "
                         f"{', '.join(known) or 'none'}); ingest one with 'gccat ingest lens-map'")
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
    if z_source is not None:
        kappa *= source_dls_ds(z_cluster, z_source, field_id) / dls_ds_norm
    scale = kmap.pixel_scale_arcsec
    step("selecting GCs", 0.1)
    con = connect(lake)
    cond = f" AND {condition_sql(where)}" if where else ""
    gcs = run_sql(con, f"SELECT ra, dec FROM photometry_wide WHERE field_id = ?{cond}", [field_id])
    if gcs.num_rows == 0:
        raise GccatError(f"no detections in field '{field_id}' match the selection")
    px, py = kmap.wcs.world_to_pixel_values(gcs["ra"].to_numpy(), gcs["dec"].to_numpy())
    ny, nx = kmap.shape
    on_map = (px > -0.5) & (py > -0.5) & (px < nx - 0.5) & (py < ny - 0.5)
    if not on_map.any():
        raise GccatError(f"none of the {gcs.num_rows} selected detections of field '{field_id}' "
                         f"lies on the kappa map of '{model_id}'")
    px, py = px[on_map], py[on_map]
    mask = ~np.isfinite(kappa)
    if mask_path:
        mask |= read_mask(mask_path, kmap)
    if mask_regions is not None and mask_regions.num_rows:
        mask |= mask_from_regions(mask_regions["ra"].to_numpy(), mask_regions["dec"].to_numpy(),
                                  mask_regions["radius_arcsec"].to_numpy(), kmap)
    kappa = np.where(np.isfinite(kappa), kappa, 0.0)
    ix, iy = np.rint(px).astype(int), np.rint(py).astype(int)
    visible = ~mask[iy, ix]
    px, py = px[visible], py[visible]
    rng = np.random.default_rng(seed)
    step("density (FFT)", 0.25)
    rho = cr.density_fft(px, py, kmap.shape, scale, alpha, softening_arcsec)
    # The density of a uniform field falls towards the map edges; dividing by it keeps the
    # inpainting and the correlation coefficients free of that edge imprint.
    wy, wx = np.divmod(np.arange(nx * ny), nx)
    window = cr.density_fft(wx.astype(float), wy.astype(float), kmap.shape, scale, alpha,
                            softening_arcsec)
    del wx, wy
    n_added = 0
    px_all, py_all = px, py
    if inpaint_iterations and mask.any():
        step("inpainting", 0.4)
        px_all, py_all, rho, n_added = cr.inpaint(px, py, mask, rho, rng, n_iter=inpaint_iterations,
                                                  alpha=alpha, softening_arcsec=softening_arcsec,
                                                  pixel_scale_arcsec=scale, window=window)
    step("correlations", 0.5)
    valid = ~mask
    corr = cr.pixel_correlation(kappa, rho, valid, window=window)
    box_pix = max(int(round(box_arcsec / scale)), 1)
    boxes = cr.box_stats(px, py, kappa, mask, box_pix, scale)
    lsq = cr.fit_power_law(boxes["n_per_arcsec2"], boxes["kappa_mean"], rng, n_boot=n_boot)
    fit = lsq if fit_method == "lsq" else cr.fit_power_law(
        boxes["n_per_arcsec2"], boxes["kappa_mean"], rng, n_boot=n_boot, method="poisson",
        area_arcsec2=boxes["area_arcsec2"])
    if centre is None:
        if frow.get("ra_center") is not None:
            centre = (frow["ra_center"], frow["dec_center"])
        else:
            centre = tuple(float(v) for v in kmap.wcs.pixel_to_world_values((nx - 1) / 2, (ny - 1) / 2))
    cx, cy = (float(v) for v in kmap.wcs.world_to_pixel_values(centre[0], centre[1]))
    bg, bg_err = 0.0, 0.0
    if background_annulus_arcsec:
        bg, bg_err = cr.background_from_annulus(px, py, mask, (cx, cy), *background_annulus_arcsec,
                                                scale)
    r_max = max(np.hypot(np.array([0, nx - 1]) - cx, np.array([0, ny - 1])[:, None] - cy).max(), 1)
    edges = np.linspace(0, r_max * scale, n_annuli + 1)
    step("profiles", 0.6)
    profile = cr.radial_profile(px, py, kappa, rho, mask, (cx, cy), edges, scale, bg)
    budget = {"M_halo": None, "M_GC": None, "mean_gc_mass": None}
    if z_cluster:
        n_in = int((np.hypot(px_all - cx, py_all - cy) * scale <= mass_radius_arcsec).sum())
        # gc_mass_budget multiplies its kappa by Sigma_cr: hand it the surface mass with 1.
        b = cr.gc_mass_budget(surface_mass_per_arcsec2, mask, (cx, cy), mass_radius_arcsec, scale,
                              1.0, max(n_in, 1))
        budget = {"M_halo": b["m_halo_msun"], "M_GC": b["m_gc_msun"],
                  "mean_gc_mass": b["mean_gc_mass_msun"]}
    residual = np.where(valid, kappa - corr["beta"] * rho, np.nan)
    options = {"where": where, "alpha": alpha, "softening_arcsec": softening_arcsec,
               "box_arcsec": box_arcsec, "mask_path": str(mask_path) if mask_path else None,
               "n_mask_regions": 0 if mask_regions is None else mask_regions.num_rows,
               "centre": centre, "inpaint_iterations": inpaint_iterations, "seed": seed,
               "background_annulus_arcsec": background_annulus_arcsec, "n_annuli": n_annuli,
               "mass_radius_arcsec": mass_radius_arcsec, "z_source": z_source, "n_boot": n_boot,
               "fit": fit, "fit_lsq": lsq, "budget": budget}
    step("writing", 0.7)
    with lake.transaction("correlation") as tx:
        run_id = tx.ingest_id
        plots = []
        result = CorrelationResult({"model_id": model_id}, kappa, rho, mask, residual, boxes,
                                   profile, px, py, kmap)
        if plot_dir is not None:
            from catalog.gckappa.plots import plot_correlation

            plots = plot_correlation(result, Path(plot_dir) / run_id.replace(":", ""), corr, fit)
        run = {
            "run_id": run_id, "field_id": field_id, "model_id": model_id,
            "created_at": tx.started_at, "where_sql": where, "alpha": alpha,
            "softening_arcsec": softening_arcsec, "box_arcsec": box_arcsec, "z_source": z_source,
            "mask_path": str(mask_path) if mask_path else None, "centre_ra": float(centre[0]),
            "centre_dec": float(centre[1]), "n_gc": int(len(px)), "n_gc_inpainted": int(n_added),
            "inpaint_iterations": inpaint_iterations, "seed": seed,
            "masked_fraction": float(mask.mean()), "beta": corr["beta"],
            "pearson_log": corr["pearson_log"], "spearman_log": corr["spearman_log"],
            "A": fit["A"], "B": fit["B"], "A_err": fit["A_err"], "B_err": fit["B_err"],
            "n_boxes": int(fit["n_boxes"]), "fit_method": fit_method, "A_lsq": lsq["A"],
            "B_lsq": lsq["B"], "B_lsq_err": lsq["B_err"],
            "background_per_arcsec2": bg, "background_err": bg_err,
            "mass_radius_arcsec": mass_radius_arcsec, "m_halo_msun": budget["M_halo"],
            "m_gc_msun": budget["M_GC"], "mean_gc_mass_msun": budget["mean_gc_mass"],
            "plots": plots, "options": json.dumps(options, default=float), "ingest_id": run_id,
        }
        result.run, result.plots = run, plots
        iyy, ixx = np.divmod(np.arange(nx * ny), nx)
        ra, dec = kmap.wcs.pixel_to_world_values(ixx, iyy)
        tx.append("density_maps", pa.table({
            "run_id": [run_id] * (nx * ny), "field_id": [field_id] * (nx * ny),
            "ix": ixx.astype(np.int32), "iy": iyy.astype(np.int32), "ra": np.mod(ra, 360), "dec": dec,
            "rho_gc": rho.ravel(), "kappa": kappa.ravel(),
            "residual": pa.array(residual.ravel(), from_pandas=True), "masked": mask.ravel(),
            "ingest_id": [run_id] * (nx * ny)}, schema=DENSITY_MAPS))
        bx = boxes["ix0"] + box_pix / 2 - 0.5
        by = boxes["iy0"] + box_pix / 2 - 0.5
        bra, bdec = kmap.wcs.pixel_to_world_values(bx, by) if len(bx) else ([], [])
        nb = len(bx)
        tx.append("box_stats", pa.table({
            "run_id": [run_id] * nb, "field_id": [field_id] * nb,
            "ix0": np.asarray(boxes["ix0"], np.int32), "iy0": np.asarray(boxes["iy0"], np.int32),
            "ra": np.mod(np.asarray(bra, float), 360), "dec": np.asarray(bdec, float),
            **{k: boxes[k] for k in ("n_gc", "area_arcsec2", "n_per_arcsec2", "kappa_mean",
                                     "masked_fraction")},
            "ingest_id": [run_id] * nb}, schema=BOX_STATS))
        npr = len(profile["r_in"])
        tx.append("radial_profiles", pa.table({
            "run_id": [run_id] * npr, "field_id": [field_id] * npr,
            "r_in_arcsec": profile["r_in"], "r_out_arcsec": profile["r_out"],
            "r_mid_arcsec": profile["r_mid"], "n_gc": profile["n_gc"],
            "area_arcsec2": profile["area_arcsec2"], "sigma_gc": profile["sigma_gc"],
            "sigma_gc_err": profile["sigma_gc_err"], "sigma_gc_bgsub": profile["sigma_gc_bgsub"],
            "kappa_mean": profile["kappa_mean"], "rho_mean": profile["rho_mean"],
            "ingest_id": [run_id] * npr}, schema=RADIAL_PROFILES))
        tx.append("correlation_runs", pa.Table.from_pylist([run], schema=CORRELATION_RUNS))
        tx.commit(name=model, field_id=field_id, n_rows=len(px), command=command,
                  options={"run": "correlate", **options})
    step("done", 1.0)
    return result
