"""From images to stacks and size limits in the lake: ``gccat stack`` and ``gccat sizes``.

``run_stack`` cuts out the selected sources of a field on one image, stacks them
(:mod:`catalog.images.stack`), fits the stack with the band's latest ``gccat psf build`` PSF
(the PSF fit of ``gccat photometry --method psf``), compares the radial profiles, writes the
stack as FITS under the lake (``<lake>/files/stacks/<field>/<band>_<run>.fits``) and records
it in ``stacks`` and ``stack_profiles``. ``run_sizes`` simulates sources of given half-light
radii (pc) at the field's distance with the band's PSF, the image's noise and the stack's flux
(:mod:`catalog.images.sizes`) and records ``size_limit_runs`` and ``size_limit_sizes``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from catalog.checks import check_name, check_number, check_numbers
from catalog.constants import (
    IMAGE_TILE_PIX,
    SIZE_LIMIT_N_SIM,
    SIZE_LIMIT_NSIGMA,
    SIZE_LIMIT_SIZES_PC,
    STACK_ANNULUS_PIX,
    STACK_SIDE_ARCSEC,
)
from catalog.errors import GccatError
from catalog.files import sha256_file
from catalog.lake import IngestKind, Lake, new_ingest_id
from catalog.lake.schemas import SIZE_LIMIT_RUNS, SIZE_LIMIT_SIZES, STACK_PROFILES, STACKS
from catalog.runs.cluster import check_scheduler, task_map, tiled
from ingest.pointsources import _check_psf_fits, _read_psf, check_seed, check_tile

#: Directory under the lake root that holds the files runs write (stack images).
LAKE_FILES_DIR = "files"
#: Stack sides from 0.1" to 10"; annulus radii up to 100 px.
STACK_SIDE_RANGE_ARCSEC = (0.1, 10.0)
MAX_ANNULUS_PIX = 100.0
STACK_CENTRES = ("detection", "psf")
#: The size simulation: sizes in (0, 10^5] pc, mu_t in (0, 100], 10 to 10^4 realisations.
MAX_SIZE_PC = 1e5
MAX_MU_T = 100.0
#: Most --mu-t values of one gccat sizes run (a grid for the per-source limits).
MAX_MU_T_VALUES = 20
N_SIM_RANGE = (10, 10_000)
MAX_NSIGMA = 100.0
#: The PSF profile radii where the stack-vs-PSF deviation is summarised: PSF > 1% of its peak.
PROFILE_DEV_LEVEL = 0.01


def _latest_psf(lake: Lake, field_id: str, band: str) -> dict:
    """The band's latest ``psf_models`` row of the field, its file checked against its sha256."""
    from catalog.queries.connection import connect
    from catalog.queries.search import run_sql

    t = run_sql(
        connect(lake),
        "SELECT m.run_id, m.psf_path, m.psf_sha256, m.pixel_scale_arcsec FROM psf_models m "
        "JOIN ingests i USING (ingest_id) WHERE m.field_id = ? AND m.band = ? "
        "ORDER BY i.committed_at DESC LIMIT 1",
        [field_id, band],
    ).to_pylist()
    if not t:
        raise GccatError(
            f"field '{field_id}' has no PSF of band {band} (run 'gccat psf build' first, or give --psf)"
        )
    row = t[0]
    path = Path(row["psf_path"])
    if not path.is_file() or sha256_file(path) != row["psf_sha256"]:
        raise GccatError(f"the PSF of psf build run {row['run_id']} is missing or changed", file=path)
    return row


def _psf_for(lake: Lake, field_id: str, band: str, psf_path) -> tuple[np.ndarray, dict]:
    """The PSF stamp (checked for fitting) and its provenance: ``--psf`` or the latest build."""
    from catalog.images.psfphot import check_psf_stamp

    if psf_path is None:
        row = _latest_psf(lake, field_id, band)
        psf_path = row["psf_path"]
    else:
        row = {"run_id": None, "pixel_scale_arcsec": None}
    psf = _read_psf(psf_path)
    try:
        psf = check_psf_stamp(psf)
    except GccatError as e:
        raise GccatError(f"--psf: {e}", file=psf_path) from None
    info = {
        "psf_run_id": row["run_id"],
        "psf_path": str(Path(psf_path).resolve()),
        "psf_sha256": sha256_file(psf_path),
        "pixel_scale_arcsec": row["pixel_scale_arcsec"],
    }
    return psf, info


def _selected_positions(lake: Lake, field_id: str, catalog: str | None, where: str | None, image):
    """Detection ids and pixel positions of the field's sources (of ``catalog``, matching
    ``where`` on ``photometry_wide``) that lie on the image.
    """
    from catalog.queries.connection import connect
    from catalog.queries.sandbox import condition_sql
    from catalog.queries.search import run_sql

    cond = condition_sql(where)
    sql = "SELECT detection_id, ra, dec FROM photometry_wide WHERE field_id = ?"
    params: list = [field_id]
    if catalog is not None:
        sql += " AND catalog = ?"
        params.append(catalog)
    if cond:
        sql += f" AND {cond}"
    t = run_sql(connect(lake), sql + " ORDER BY detection_id", params)
    if t.num_rows == 0:
        raise GccatError(f"no detections of field '{field_id}' match the selection")
    x, y = image.wcs.world_to_pixel_values(t["ra"].to_numpy(), t["dec"].to_numpy())
    x, y = np.asarray(x, float), np.asarray(y, float)
    ny, nx = image.data.shape
    on = (x >= 0) & (y >= 0) & (x <= nx - 1) & (y <= ny - 1)
    if not on.any():
        raise GccatError(f"none of the {t.num_rows} selected sources lies on the image", file=image.path)
    return t.filter(pa.array(on)), x[on], y[on]


def check_stack_options(annulus_pix, side_arcsec, combine, centre) -> tuple[tuple[float, float], float]:
    """``--annulus`` (two radii in (0, 100] px, increasing), ``--size``, ``--combine``, ``--centre``."""
    from catalog.images.stack import COMBINE_METHODS

    r_in, r_out = check_numbers(annulus_pix, "--annulus (pixels)", n_min=2, n_max=2, lo=0, lo_open=True,
                                hi=MAX_ANNULUS_PIX)  # fmt: skip
    if not r_in < r_out:
        raise GccatError(f"--annulus must be two increasing radii IN,OUT pixels, not {r_in:g},{r_out:g}")
    side = check_number(
        side_arcsec, "--size (arcsec)", lo=STACK_SIDE_RANGE_ARCSEC[0], hi=STACK_SIDE_RANGE_ARCSEC[1]
    )
    if combine not in COMBINE_METHODS:
        raise GccatError(f"--combine must be one of {', '.join(COMBINE_METHODS)}, got {combine!r}")
    if centre not in STACK_CENTRES:
        raise GccatError(f"--centre must be one of {', '.join(STACK_CENTRES)}, got {centre!r}")
    return (r_in, r_out), side


def _write_stack_fits(path: Path, stack, meas: dict, hdr_items) -> None:
    from astropy.io import fits

    hdr = fits.Header()
    for key, value, comment in hdr_items:
        hdr[key] = (value, comment)
    path.parent.mkdir(parents=True, exist_ok=True)
    fits.HDUList([fits.PrimaryHDU(stack.image, hdr), fits.ImageHDU(stack.error, name="ERR")]).writeto(
        path, overwrite=False
    )


def run_stack(
    lake: Lake,
    image_path,
    *,
    field_id: str,
    catalog: str | None = None,
    where: str | None = None,
    band: str | None = None,
    psf_path=None,
    annulus_pix: Sequence[float] = STACK_ANNULUS_PIX,
    side_arcsec: float = STACK_SIDE_ARCSEC,
    combine: str = "median",
    centre: str = "detection",
    error_path=None,
    weight_path=None,
    zeropoint_ab: float | None = None,
    plot=None,
    scheduler: str | None = None,
    tile_pix: int = IMAGE_TILE_PIX,
    command: str = "",
    progress=None,
) -> dict:
    """Stack the selected sources of a field on one image, fit and profile the stack, record it.

    Parameters
    ----------
    field_id : str
        Field of the sources.
    catalog, where : str, optional
        Only sources of this catalog, and those matching this condition on ``photometry_wide``;
        default every detection of the field on the image.
    psf_path : path, optional
        PSF FITS; default the band's latest ``gccat psf build`` PSF of the field.
    annulus_pix : (float, float)
        Background annulus, pixels.
    side_arcsec : float
        Side of the stack, arcsec (rounded to an odd number of pixels).
    combine : {"median", "mean"}
        Pixel-wise combination of the cutouts.
    centre : {"detection", "psf"}
        Re-centre on the catalog positions, or on positions fitted by the PSF fit first.
    plot : path, optional
        PNG to write: the stack's and the PSF's radial profiles (log y) and their ratio.
    scheduler : str, optional
        ``"local"`` or a Dask scheduler address: the cutouts of the sources of each
        ``tile_pix`` square tile are cut, background-subtracted and shifted as one Dask task on
        the window holding them (and, with ``centre="psf"``, the tile's PSF fits too); the
        client makes the error map and combines the cutouts in the order of the sources, so
        the stack is the same, to the bit, as in process
        (:func:`catalog.images.stack.stack_sources`).
    tile_pix : int
        Side of the tiles sent to the workers, pixels (with ``scheduler``).

    Returns
    -------
    dict
        The ``stacks`` row (and ``plot``, the PNG written, if any).
    """
    from catalog.images.psfphot import psf_photometry
    from catalog.images.stack import measure_stack, stack_sources
    from catalog.runs.cluster import dask_client
    from ingest.images import read_image

    step = progress or (lambda stage, frac: None)
    check_name(field_id, "field id")
    if catalog is not None:
        check_name(catalog, "catalog name")
    annulus, side_arcsec = check_stack_options(annulus_pix, side_arcsec, combine, centre)
    tile_pix = check_tile(tile_pix)
    step("reading", 0.05)
    image = read_image(
        image_path, band=band, error_path=error_path, weight_path=weight_path, zeropoint_ab=zeropoint_ab
    )
    check_name(image.band, "band")
    psf, info = _psf_for(lake, field_id, image.band, psf_path)
    _check_psf_fits(psf, image, info["psf_path"])
    scale = image.pixel_scale_arcsec
    side = max(int(round(side_arcsec / scale)) // 2 * 2 + 1, 5)
    if side + 6 > min(image.data.shape):
        raise GccatError(f'--size {side_arcsec:g}" is wider than the image', file=image.path)
    if annulus[1] > 10 * side:
        raise GccatError(f"--annulus outer radius {annulus[1]:g} px is more than 10 stack sides")
    det, x, y = _selected_positions(lake, field_id, catalog, where, image)
    f = image.njy_per_unit
    data = image.data * f
    err = None if image.error is None else image.error * f
    wht = None if image.weight is None else image.weight / f**2
    with dask_client(scheduler) as client:
        tiles = tiled(client, tile_pix)
        if centre == "psf":
            step("fitting positions", 0.15)
            fit = psf_photometry(
                data, x, y, psf, error=err, weight=wht, fit_size_pix=side, background="plane", **tiles
            )
            ok = fit["quality"] == 0
            x, y = np.where(ok, fit["x"], x), np.where(ok, fit["y"], y)
        step("stacking" if client is None else f"stacking on Dask ({scheduler})", 0.3)
        stack = stack_sources(
            data, x, y, side_pix=side, annulus_pix=annulus, error=err, weight=wht, combine=combine, **tiles
        )
    step("fitting the stack", 0.6)
    meas = measure_stack(stack, psf)
    ingest_id = new_ingest_id()
    out = lake.root / LAKE_FILES_DIR / "stacks" / field_id / f"{image.band}_{ingest_id}.fits"
    keep = meas["profile_psf"] > PROFILE_DEV_LEVEL * np.nanmax(meas["profile_psf"])
    dev = float(np.nanmax(np.abs(meas["ratio"][keep] - 1))) if keep.any() else float("nan")
    row = {
        "run_id": ingest_id,
        "field_id": field_id,
        "band": image.band,
        "image": str(image.path.resolve()),
        "image_sha256": image.sha256,
        "catalog": catalog,
        "selection": where,
        "n_selected": int(x.size),
        "n_sources": stack.n_sources,
        "combine": combine,
        "centre": centre,
        "annulus_in_pix": annulus[0],
        "annulus_out_pix": annulus[1],
        "side_pix": side,
        "side_arcsec": side * scale,
        "pixel_scale_arcsec": scale,
        **{k: info[k] for k in ("psf_run_id", "psf_path", "psf_sha256")},
        "stack_path": str(out.resolve()),
        "median_background_njy": float(np.nanmedian(stack.background)),
        "stack_flux_njy": float(stack.image.sum()),
        "fit_flux_njy": meas["flux"],
        "fit_flux_err_njy": meas["flux_err"],
        "fit_chi2_reduced": meas["chi2_reduced"],
        "fit_quality": meas["quality"],
        "fwhm_stack_pix": meas["fwhm_stack_pix"],
        "fwhm_psf_pix": meas["fwhm_psf_pix"],
        "fwhm_stack_arcsec": meas["fwhm_stack_pix"] * scale,
        "fwhm_psf_arcsec": meas["fwhm_psf_pix"] * scale,
        "fwhm_ratio": meas["fwhm_stack_pix"] / meas["fwhm_psf_pix"],
        "profile_max_dev": dev,
        "params": json.dumps(
            {
                "zeropoint_ab": zeropoint_ab,
                "error": None if error_path is None else str(error_path),
                "weight": None if weight_path is None else str(weight_path),
                "profile_dev_level": PROFILE_DEV_LEVEL,
                "fit_background": "constant",
                "detection_ids": det["detection_id"].filter(pa.array(stack.used)).to_pylist(),
            }
        ),
        "ingest_id": ingest_id,
    }
    step("writing", 0.85)
    _write_stack_fits(
        out,
        stack,
        meas,
        (
            ("BAND", image.band, "band of the image"),
            ("BUNIT", "nJy", "per pixel"),
            ("PIXSCALE", scale, "arcsec per pixel (image WCS)"),
            ("NSOURCES", stack.n_sources, "sources stacked"),
            ("COMBINE", combine, "pixel-wise combination"),
            ("CENTRE", centre, "positions re-centred on"),
            ("ANNIN", annulus[0], "background annulus inner radius, pix"),
            ("ANNOUT", annulus[1], "background annulus outer radius, pix"),
            ("FITFLUX", meas["flux"], "PSF-fit flux, nJy"),
            ("FITERR", meas["flux_err"], "PSF-fit flux error, nJy"),
            ("FWHMPIX", round(meas["fwhm_stack_pix"], 5), "FWHM, pix (Moffat fit)"),
            ("PSFFWHM", round(meas["fwhm_psf_pix"], 5), "PSF FWHM, pix (Moffat fit)"),
            ("PSF", Path(info["psf_path"]).name, "PSF fitted"),
            ("IMAGE", image.path.name, "image the cutouts come from"),
            ("RUNID", ingest_id, "gccat run"),
            ("ORIGIN", "gccat stack", "median stack"),
        ),
    )
    row["stack_sha256"] = sha256_file(out)
    n = meas["radius_pix"].size
    prof = pa.table(
        {
            "run_id": [ingest_id] * n,
            "field_id": [field_id] * n,
            "band": [image.band] * n,
            "radius_pix": meas["radius_pix"],
            "radius_arcsec": meas["radius_pix"] * scale,
            "profile_stack": meas["profile_stack"],
            "profile_stack_err": meas["profile_stack_err"],
            "profile_psf": meas["profile_psf"],
            "ratio": pa.array(meas["ratio"], from_pandas=True),
            "ratio_err": pa.array(meas["ratio_err"], from_pandas=True),
            "ingest_id": [ingest_id] * n,
        }
    )
    try:
        with lake.transaction(IngestKind.STACK, ingest_id=ingest_id) as tx:
            tx.append("stacks", pa.Table.from_pylist([row], schema=STACKS))
            tx.append("stack_profiles", prof.cast(STACK_PROFILES))
            tx.commit(
                name=f"{catalog or 'all'}/{image.band}/stack",
                field_id=field_id,
                source_path=image.path.resolve(),
                sha256=image.sha256,
                n_rows=1,
                command=command,
                options={
                    "run": "stack",
                    "stack": row["stack_path"],
                    "selection": where,
                    "scheduler": scheduler or "in-process",
                },
            )
    except BaseException:
        out.unlink(missing_ok=True)  # a run that did not commit leaves no file
        raise
    if plot is not None:
        from catalog.plots.stacks import plot_stack_profile

        row["plot"] = plot_stack_profile(
            prof.to_pydict(), plot, title=f"{field_id} {image.band}: stack of {stack.n_sources} sources"
        )
    step("done", 1.0)
    return row


def _latest_stack(lake: Lake, field_id: str, band: str) -> dict:
    from catalog.queries.connection import connect
    from catalog.queries.search import run_sql

    t = run_sql(
        connect(lake),
        "SELECT s.run_id, s.fit_flux_njy, s.params FROM stacks s JOIN ingests i USING (ingest_id) "
        "WHERE s.field_id = ? AND s.band = ? ORDER BY i.committed_at DESC LIMIT 1",
        [field_id, band],
    ).to_pylist()
    if not t:
        raise GccatError(
            f"field '{field_id}' has no stack of band {band} (run 'gccat stack' first, or give --flux)"
        )
    return t[0]


def _stack_mu_t(lake: Lake, field_id: str, model: str, detection_ids: list) -> tuple[float, float, int]:
    """Median 1/|lambda_t| and median redshift of a stack's sources on a single lens model,
    over those where mu is defined (on the map, a redshift behind the cluster, not mu_undefined).
    """
    from catalog.queries.connection import connect
    from catalog.queries.search import run_sql

    t = run_sql(
        connect(lake),
        "SELECT median(1 / abs(lambda_t)) AS mu_t, median(z) AS z, count(*) AS n FROM lens_at_detections "
        "WHERE model_id = ? AND ensemble_id IS NULL AND NOT off_map AND NOT mu_undefined "
        "AND lambda_t IS NOT NULL AND lambda_t != 0 AND list_contains(?, detection_id)",
        [f"{field_id}/{model}", detection_ids],
    ).to_pylist()[0]
    if not t["n"]:
        raise GccatError(
            f"none of the {len(detection_ids)} sources of the latest stack has a defined mu_t in lens model "
            f"'{field_id}/{model}' (on the map, with a redshift behind the cluster)"
        )
    mu_t = float(t["mu_t"])
    if not 0 < mu_t <= MAX_MU_T:
        raise GccatError(f"the median mu_t of the stack's sources in '{field_id}/{model}' is {mu_t:g}")
    return mu_t, float(t["z"]), int(t["n"])


def _image_noise(image) -> tuple[float, str]:
    """Per-pixel noise of an image, nJy: the median of its error map (ERR, else 1/sqrt(WHT)),
    else the 3-sigma-clipped standard deviation of its pixels.
    """
    from astropy.stats import sigma_clipped_stats

    f = image.njy_per_unit
    if image.error is not None:
        e = image.error[np.isfinite(image.error) & (image.error > 0)]
        if e.size:
            return float(np.median(e)) * f, "median of the error map"
    if image.weight is not None:
        w = image.weight[np.isfinite(image.weight) & (image.weight > 0)]
        if w.size:
            return float(np.median(1 / np.sqrt(w))) * f, "median of 1/sqrt(weight)"
    good = image.data[np.isfinite(image.data)]
    sigma = float(sigma_clipped_stats(good, sigma=3.0, maxiters=10)[2]) if good.size > 10 else 0.0
    if not sigma > 0:
        raise GccatError("the image has no noise to simulate with; give --noise", file=image.path)
    return sigma * f, "3-sigma-clipped standard deviation of the image"


def check_size_options(sizes_pc, mu_t, n_sim, nsigma, flux_njy, noise_njy, seed):
    """Check ``--sizes`` (pc, increasing), ``--mu-t``, ``--n-sim``, ``--nsigma``, ``--flux``,
    ``--noise`` (nJy) and ``--seed``.
    """
    sizes = check_numbers(sizes_pc, "--sizes (pc)", n_min=1, n_max=50, lo=0, lo_open=True, hi=MAX_SIZE_PC)
    if any(b <= a for a, b in zip(sizes, sizes[1:], strict=False)):
        raise GccatError(f"--sizes must increase, not {','.join(f'{s:g}' for s in sizes)}")
    mu_t = check_number(mu_t, "--mu-t", lo=0, lo_open=True, hi=MAX_MU_T)
    n_sim = check_number(n_sim, "--n-sim", lo=N_SIM_RANGE[0], hi=N_SIM_RANGE[1], integer=True)
    nsigma = check_number(nsigma, "--nsigma", lo=0, lo_open=True, hi=MAX_NSIGMA)
    flux_njy = check_number(flux_njy, "--flux (nJy)", lo=0, lo_open=True, allow_none=True)
    noise_njy = check_number(noise_njy, "--noise (nJy)", lo=0, lo_open=True, allow_none=True)
    return sizes, mu_t, n_sim, nsigma, flux_njy, noise_njy, check_seed(seed)


def _pixel_scale(info: dict, pixel_scale_arcsec, image) -> float:
    """The PSF's pixel scale, arcsec: every one known (the psf build run, the PSF's PIXSCALE,
    ``--pixel-scale``, the image's WCS) must agree within 0.1%.
    """
    from catalog.images.fitsio import read_fits_image

    header_scale = read_fits_image(info["psf_path"], "--psf file")[1].get("PIXSCALE")
    known = {
        "the psf build run": info["pixel_scale_arcsec"],
        "the PSF's PIXSCALE": None if header_scale is None else float(header_scale),
        "--pixel-scale": pixel_scale_arcsec,
        "the image's WCS": None if image is None else image.pixel_scale_arcsec,
    }
    given = {k: v for k, v in known.items() if v is not None}
    if not given:
        raise GccatError("the PSF has no pixel scale (PIXSCALE); give --pixel-scale or --image")
    (first, scale), *rest = given.items()
    for other, v in rest:
        if abs(v / scale - 1) > 1e-3:
            raise GccatError(f'the pixel scale of {other} ({v:g}") differs from that of {first} ({scale:g}")')
    return float(scale)


def _check_mu_values(mu_t, lens_model, plot) -> list[float]:
    """The ``--mu-t`` values (default [1]): each in (0, 100], increasing, at most 20; several
    exclude ``--plot``, any excludes ``--lens-model`` (checked by name here too).
    """
    if mu_t is not None and lens_model is not None:
        raise GccatError("--mu-t and --lens-model exclude each other (the model gives mu_t)")
    if lens_model is not None:
        check_name(lens_model, "lens model")
    values = [1.0] if mu_t is None else list(np.atleast_1d(np.asarray(mu_t, dtype=object)))
    if len(values) > 1 and plot is not None:
        raise GccatError("--plot takes one --mu-t value (one figure per run)")
    if len(values) > MAX_MU_T_VALUES:
        raise GccatError(f"--mu-t takes at most {MAX_MU_T_VALUES} values, got {len(values)}")
    values = [check_number(m, "--mu-t", lo=0, lo_open=True, hi=MAX_MU_T) for m in values]
    if any(b <= a for a, b in zip(values, values[1:], strict=False)):
        raise GccatError(f"--mu-t values must increase, not {','.join(f'{m:g}' for m in values)}")
    return values


def _simulate_sizes(base: dict, psf, sizes, mu_values, scheduler: str | None) -> list[dict]:
    """:func:`catalog.images.sizes.simulate_size_limits` of :func:`run_sizes` at each mu_t, every
    cell (a size, or the point sources, at one mu_t) a task of the Dask ``scheduler`` if given.
    """
    from catalog.images.sizes import simulate_size_limits
    from catalog.runs.cluster import dask_client

    r_h_pix = np.asarray(sizes) / base["pc_per_arcsec"] / base["pixel_scale_arcsec"]
    with dask_client(scheduler) as client:
        return simulate_size_limits(
            psf, r_h_pix, mu_values, flux=base["flux_njy"], noise_sigma=base["noise_njy"], seed=base["seed"],
            n_sim=base["n_sim"], nsigma=base["nsigma"],
            # a cell is n_sim least-squares fits (~0.1-1 s): one a task
            map_tasks=None if client is None else task_map(client, batch=1),
        )  # fmt: skip


def _size_limit_run(base: dict, sizes, sim: dict) -> tuple[dict, pa.Table]:
    """The run row and size rows of the simulation ``sim`` of :func:`run_sizes` at ``base["mu_t"]``."""
    scale, scale_pc, nsigma = base["pixel_scale_arcsec"], base["pc_per_arcsec"], base["nsigma"]
    r_h_pix = np.asarray(sizes) / scale_pc / scale
    thr_pix = sim["threshold_r_h_pix"]
    ok = bool(np.isfinite(thr_pix))
    row = base | {
        "snr": sim["snr"],
        "side_pix": sim["side_pix"],
        "fwhm_point_pix": sim["fwhm_point_mean"],
        "fwhm_point_std_pix": sim["fwhm_point_std"],
        "threshold_r_h_pix": thr_pix if ok else None,
        "threshold_r_h_arcsec": thr_pix * scale if ok else None,
        "threshold_r_h_pc": thr_pix * scale * scale_pc if ok else None,
    }
    n = len(sizes)
    per = pa.table(
        {
            "run_id": [base["run_id"]] * n,
            "field_id": [base["field_id"]] * n,
            "band": [base["band"]] * n,
            "r_h_pc": sizes,
            "r_h_arcsec": r_h_pix * scale,
            "r_h_pix": r_h_pix,
            "fwhm_mean_pix": sim["fwhm_mean"],
            "fwhm_std_pix": sim["fwhm_std"],
            "fwhm_excess_pix": sim["fwhm_mean"] - sim["fwhm_point_mean"],
            "significance": sim["significance"],
            "frac_resolved": sim["frac_resolved"],
            "resolved": sim["significance"] >= nsigma,
            "n_ok": sim["n_ok"],
            "ingest_id": [base["ingest_id"]] * n,
        }
    ).cast(SIZE_LIMIT_SIZES)
    return row, per


def run_sizes(
    lake: Lake,
    *,
    field_id: str,
    band: str | None = None,
    image_path=None,
    psf_path=None,
    sizes_pc: Sequence[float] = SIZE_LIMIT_SIZES_PC,
    mu_t: float | None = None,
    lens_model: str | None = None,
    flux_njy: float | None = None,
    noise_njy: float | None = None,
    n_sim: int = SIZE_LIMIT_N_SIM,
    nsigma: float = SIZE_LIMIT_NSIGMA,
    seed: int = 0,
    pixel_scale_arcsec: float | None = None,
    error_path=None,
    weight_path=None,
    zeropoint_ab: float | None = None,
    plot=None,
    scheduler: str | None = None,
    command: str = "",
    progress=None,
) -> dict:
    """Simulate sources of ``sizes_pc`` half-light radius at the field's distance and find the
    smallest one that is resolved (:func:`catalog.images.sizes.simulate_size_limit`).

    The angular scale is :func:`catalog.lensing.pc_per_arcsec` at the field's ``z_cluster``; the
    PSF is ``psf_path`` or the band's latest ``gccat psf build`` PSF; the noise is ``noise_njy``
    or the image's (:func:`_image_noise`); the flux is ``flux_njy`` or the band's latest stack's
    PSF-fit flux. The pixel scale is the PSF build's, the PSF's PIXSCALE keyword,
    ``pixel_scale_arcsec`` and the image's WCS, whichever are known; they must agree (0.1%).

    Parameters
    ----------
    sizes_pc : sequence of float
        Intrinsic half-light radii, proper pc (increasing).
    mu_t : float or sequence of float, optional
        Tangential stretch of one axis (default 1: no lensing). Several increasing values make a
        grid, one ``size_limit_runs`` row each in one commit (the same seed for each, so that
        neighbouring values share their noise); the view ``size_limits_sim_sources``
        interpolates it at each lensed source's 1/|lambda_t|.
    lens_model : str, optional
        Instead of ``mu_t``: a single lens model of the field (``lens_at_detections``); mu_t is
        the median of 1/|lambda_t| over the latest stack's sources where mu is defined, and the
        sizes are placed at those sources' median redshift (they lie behind the cluster).
    flux_njy, noise_njy : float, optional
        Total source flux and per-pixel noise, nJy.
    n_sim, nsigma, seed
        Realisations per size, k of the criterion, random seed.
    plot : path, optional
        PNG to write: the FWHM and its significance against r_h (pc) with the threshold.
    scheduler : str, optional
        None (in process), ``"local"`` or a Dask scheduler address: each cell (one size, or the
        point sources, at one mu_t) is a task there, with the state of the run's generator
        where its draws begin, so the rows are the same to the bit (the ingest's options
        record the scheduler). An unreachable scheduler is an error before anything is written.

    Returns
    -------
    dict
        The ``size_limit_runs`` row, with ``sizes`` (the ``size_limit_sizes`` rows) and ``plot``.
    """
    from catalog.images.sizes import GAUSS_RH_PER_SIGMA
    from catalog.lensing import pc_per_arcsec

    step = progress or (lambda stage, frac: None)
    check_name(field_id, "field id")
    check_scheduler(scheduler)
    mu_values = _check_mu_values(mu_t, lens_model, plot)
    sizes, _, n_sim, nsigma, flux_njy, noise_njy, seed = check_size_options(
        sizes_pc, mu_values[0], n_sim, nsigma, flux_njy, noise_njy, seed
    )
    pixel_scale_arcsec = check_number(
        pixel_scale_arcsec, "--pixel-scale", lo=0, lo_open=True, hi=10, allow_none=True
    )
    if image_path is None and noise_njy is None:
        raise GccatError("give --image (its noise is used) or --noise (nJy per pixel)")
    image = None
    if image_path is not None:
        from ingest.images import read_image

        image = read_image(
            image_path, band=band, error_path=error_path, weight_path=weight_path, zeropoint_ab=zeropoint_ab
        )
        band = image.band
    if band is None:
        raise GccatError("give --band (or --image, whose band is used)")
    check_name(band, "band")
    import pyarrow.compute as pc

    fields = lake.live("fields", filters=pc.field("field_id") == field_id).to_pylist()
    z = fields[0].get("z_cluster") if fields else None
    if z is None or not np.isfinite(z) or z <= 0:
        raise GccatError(f"field '{field_id}' has no z_cluster; load it with 'gccat ingest fields'")
    scale_pc = float(pc_per_arcsec(z))
    psf, info = _psf_for(lake, field_id, band, psf_path)
    scale = _pixel_scale(info, pixel_scale_arcsec, image)
    if noise_njy is not None:
        noise, noise_source = noise_njy, "given (--noise)"
    else:
        noise, noise_source = _image_noise(image)
    stack_run = None
    if flux_njy is None or lens_model is not None:
        st = _latest_stack(lake, field_id, band)
        stack_run = st["run_id"]
        flux_njy = float(st["fit_flux_njy"]) if flux_njy is None else flux_njy
    n_lensed = None
    if lens_model is not None:
        mu_t, z, n_lensed = _stack_mu_t(lake, field_id, lens_model, json.loads(st["params"])["detection_ids"])
        mu_values = [mu_t]
        scale_pc = float(pc_per_arcsec(z))
    criterion = (
        f"resolved when the mean FWHM excess over point sources of the same flux and noise is >= "
        f"{nsigma:g} x the point sources' FWHM scatter; threshold interpolated linearly in r_h^2"
    )
    ingest_id = new_ingest_id()
    base = {
        "field_id": field_id,
        "band": band,
        "z": float(z),
        "pc_per_arcsec": scale_pc,
        "pixel_scale_arcsec": scale,
        **{key: info[key] for key in ("psf_run_id", "psf_path", "psf_sha256")},
        "stack_run_id": stack_run,
        "flux_njy": flux_njy,
        "noise_njy": noise,
        "noise_source": noise_source,
        "lens_model": lens_model,
        "n_lensed": n_lensed,
        "model": "circular Gaussian (r_h = sqrt(2 ln 2) sigma), x stretched by mu_t; Fourier convolution",
        "metric": "FWHM of a circular Gaussian least-squares fit (flux, centre, sigma, constant background)",
        "criterion": criterion,
        "nsigma": nsigma,
        "n_sim": n_sim,
        "seed": seed,
        "params": json.dumps(
            {
                "sizes_pc": sizes,
                "gauss_rh_per_sigma": GAUSS_RH_PER_SIGMA,
                "image": None if image is None else str(image.path),
            }
        ),
        "ingest_id": ingest_id,
    }
    where = "" if scheduler is None else f" on Dask ({scheduler})"
    step(f"simulating {len(mu_values) * (len(sizes) + 1)} cells{where}", 0.1)
    sims = _simulate_sizes(base, psf, sizes, mu_values, scheduler)
    rows, pers = [], []
    for k, (mu, sim) in enumerate(zip(mu_values, sims, strict=True)):
        run_id = ingest_id if k == 0 else f"{ingest_id}-{k}"
        row, per_size = _size_limit_run(base | {"run_id": run_id, "mu_t": mu}, sizes, sim)
        rows.append(row)
        pers.append(per_size)
    per = pa.concat_tables(pers)
    step("writing", 0.9)
    with lake.transaction(IngestKind.SIZE_SIM, ingest_id=ingest_id) as tx:
        tx.append("size_limit_runs", pa.Table.from_pylist(rows, schema=SIZE_LIMIT_RUNS))
        tx.append("size_limit_sizes", per)
        tx.commit(
            name=f"{band}/sizes",
            field_id=field_id,
            source_path=Path(info["psf_path"]),
            sha256=info["psf_sha256"],
            n_rows=per.num_rows,
            command=command,
            options={
                "run": "sizes",
                "criterion": criterion,
                "mu_t": mu_values,
                "scheduler": scheduler or "in-process",
            },
        )
    for row, t in zip(rows, pers, strict=True):
        row["sizes"] = t.to_pylist()
    row = rows[0]
    if plot is not None:
        from catalog.plots.stacks import plot_size_limit

        row["plot"] = plot_size_limit(row, row["sizes"], plot)
    row["runs"] = rows
    step("done", 1.0)
    return row
