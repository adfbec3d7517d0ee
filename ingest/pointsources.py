"""From images to the lake: detection runs, forced aperture photometry, injection-recovery.

Each function reads FITS images (:mod:`ingest.images`), calls the array code of
:mod:`catalog.images` and writes its rows in one lake transaction.
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from catalog import images as imaging
from catalog.checks import Z_MAX, check_name, check_number, check_numbers
from catalog.constants import (
    ANNULUS_WIDTH_ARCSEC,
    APERTURE_RADII_ARCSEC,
    IMAGE_TILE_PIX,
    INJECT_FLUX_RANGE,
    INJECT_N_FLUX,
    INJECT_N_LOCATIONS,
    INJECT_N_RANDOM,
    INJECT_STAMP_ARCSEC,
    MAX_APERTURE_RADIUS_ARCSEC,
    MAX_APERTURES,
    RADIUS_MATCH_ARCSEC,
    TILE_PIX_RANGE,
    UPPER_LIMIT_NSIGMA,
)
from catalog.errors import GccatError
from catalog.files import sha256_file
from catalog.lake import DETECTION_KINDS, IngestKind, Lake, new_ingest_id
from catalog.lake.schemas import (
    DETECTION_RUNS,
    INJECTION_CORRECTIONS,
    INJECTION_RUNS,
    INJECTION_SOURCES,
    PHOTOMETRY,
    RENAMED_COLUMNS,
)
from catalog.runs.cluster import task_map, tiled

#: Detection settings (pixels, noise units): the exclusion disk and the filter FWHMs are a few
#: PSF widths, far below these bounds, which keep the filter kernels and disks small.
MAX_EXCLUSION_PIX = 50.0
MAX_FWHM_PIX = 50.0
MAX_THRESHOLD = 1000.0
MAX_KEEP = 100.0
#: Injection-recovery sizes: per target at most 1000 fluxes, 1000 locations or 10^4 random
#: copies, and at most 10^6 injections in a run (each is measured and stored per aperture).
MAX_INJECT_PER_AXIS = 1000
MAX_RANDOM = 10_000
MAX_INJECTIONS = 1_000_000
MAX_FLUX_FACTOR = 1000.0
MAX_STAMP_ARCSEC = 60.0
_DETECT_OPTIONS = {
    "exclusion_radius_pix": "--exclusion",
    "threshold_nsigma": "--threshold",
    "keep_factor": "--keep",
    "fwhm_pairs": "--highpass",
}


def check_seed(seed) -> int:
    """``--seed``: numpy's generators take whole numbers >= 0 only."""
    return check_number(seed, "--seed", lo=0, hi=2**63 - 1, integer=True)


def check_tile(tile_pix) -> int:
    """``--tile``: the side of a Dask task's image tile, whole pixels in :data:`TILE_PIX_RANGE`."""
    return check_number(tile_pix, "--tile", lo=TILE_PIX_RANGE[0], hi=TILE_PIX_RANGE[1], integer=True)


def check_redshift(z, option: str = "--z") -> float | None:
    """A source redshift (or None): in (0, :data:`catalog.checks.Z_MAX`]."""
    return check_number(z, option, lo=0, lo_open=True, hi=Z_MAX, allow_none=True)


def _read_psf(path, option: str = "--psf") -> np.ndarray:
    from catalog.images.fitsio import read_fits_image

    psf = read_fits_image(path, f"{option} file")[0]
    if min(psf.shape) < 3:
        raise GccatError(
            f"the {option} image is {psf.shape[0]}x{psf.shape[1]} pixels; a PSF needs at least 3x3", file=path
        )
    if not np.isfinite(psf).all():
        raise GccatError(
            f"the {option} image has {int((~np.isfinite(psf)).sum())} NaN or infinite pixels", file=path
        )
    if not psf.sum() > 0 or psf.max() <= 0:
        raise GccatError(
            f"the {option} image must have a positive sum (it is normalised to 1), got {psf.sum():g}",
            file=path,
        )
    return psf


def _check_psf_fits(psf: np.ndarray, image, path, option: str = "--psf") -> None:
    if psf.shape[0] > image.data.shape[0] or psf.shape[1] > image.data.shape[1]:
        raise GccatError(
            f"the {option} image ({psf.shape[0]}x{psf.shape[1]} px) is larger than the "
            f"image ({image.data.shape[0]}x{image.data.shape[1]} px)",
            file=path,
        )


def _user_mask(path, shape) -> np.ndarray | None:
    if path is None:
        return None
    from catalog.images.fitsio import read_fits_image

    m = read_fits_image(path, "--mask file")[0] != 0
    if m.shape != shape:
        raise GccatError(f"the --mask image has shape {m.shape}, the images {shape}", file=path)
    return m


def _catalog_positions(
    lake: Lake, field_id: str, catalog: str, image
) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    det = lake.live(
        "detections", filters=(pc.field("field_id") == field_id) & (pc.field("catalog") == catalog)
    )
    if det.num_rows == 0:
        names = lake.live("detections", filters=pc.field("field_id") == field_id)["catalog"]
        known = sorted(set(pc.unique(names).to_pylist()))
        raise GccatError(
            f"--catalog '{catalog}' has no detections in field '{field_id}' (catalogs "
            f"there: {', '.join(known) or 'none'})"
        )
    x, y = image.wcs.world_to_pixel_values(det["ra"].to_numpy(), det["dec"].to_numpy())
    ny, nx = image.data.shape
    on = (x >= 0) & (y >= 0) & (x <= nx - 1) & (y <= ny - 1)
    if not on.any():
        raise GccatError(
            f"none of the {det.num_rows} sources of --catalog '{catalog}' lies on the image", file=image.path
        )
    return det.filter(pa.array(on)), np.asarray(x)[on], np.asarray(y)[on]


def check_detection_params(params: dict | None) -> dict:
    """The detection settings of ``gccat detect`` (see :func:`catalog.images.detect_point_sources`)
    checked against physical and computational bounds, with the CLI option names in errors.
    """
    params = dict(params or {})
    for key, option in _DETECT_OPTIONS.items():
        if key not in params:
            continue
        if key == "fwhm_pairs":
            pairs = params[key]
            try:
                flat = [f for pair in pairs for f in pair]
                ok = 1 <= len(pairs) <= 4 and all(len(pair) == 2 for pair in pairs)
            except TypeError:
                ok = False
            if not ok:
                raise GccatError(f"{option} takes 1 to 4 pairs of FWHMs (a,b[,c,d...]), got {pairs!r}")
            check_numbers(flat, option, lo=0, lo_open=True, hi=MAX_FWHM_PIX)
            params[key] = tuple((float(a), float(b)) for a, b in pairs)
        elif key == "exclusion_radius_pix":
            params[key] = check_number(params[key], option, lo=0, lo_open=True, hi=MAX_EXCLUSION_PIX)
        elif key == "threshold_nsigma":
            params[key] = check_number(params[key], option, lo=0, lo_open=True, hi=MAX_THRESHOLD)
        else:  # below 1 the scan would keep peaks under the detection threshold
            params[key] = check_number(params[key], option, lo=1, hi=MAX_KEEP)
    allowed = set(inspect.signature(imaging.detect_point_sources).parameters) - {
        "images",
        "weights",
        "user_mask",
    }
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise GccatError(
            f"unknown detection setting(s) {', '.join(unknown)} (known: {', '.join(sorted(allowed))})"
        )
    return params


def run_detection(
    lake: Lake,
    image_paths: Sequence[str | os.PathLike],
    *,
    field_id: str,
    name: str,
    bands: Sequence[str] | None = None,
    mask_path=None,
    z: float | None = None,
    params: dict | None = None,
    replace: bool = False,
    scheduler: str | None = None,
    tile_pix: int = IMAGE_TILE_PIX,
    command: str = "",
    progress=None,
) -> dict:
    """Detect point sources in the sum of high-pass filtered bands and store them as a catalog.

    Parameters
    ----------
    image_paths : list of path
        FITS images on one pixel grid (one per band).
    field_id, name : str
        Field and catalog name of the detections (``detection_id`` = field/name/NNNNNN).
    mask_path : path, optional
        User mask (non-zero = masked) on the same grid.
    params : dict, optional
        Keyword arguments of :func:`catalog.images.detect_point_sources`.
    replace : bool
        Supersede the live catalog ingest or detection run of ``name`` in the field (they
        share detection ids ``field/name/...``), in the same commit; without it such a name
        is refused.
    scheduler : str, optional
        ``"local"`` or a Dask scheduler address: each band's bright-source mask is one Dask
        task and the high-pass filter of the summed bands one per ``tile_pix`` square tile, on
        the window of the image that reaches the filter's extent beyond it. The detections are
        the same, to the bit, as in process (:func:`catalog.images.detect_point_sources`); the
        band sum, the noise and the scan stay on the client.
    tile_pix : int
        Side of the tiles sent to the workers, pixels (with ``scheduler``).

    Returns
    -------
    dict
        The ``detection_runs`` row.
    """
    from catalog.runs.cluster import dask_client
    from ingest.images import read_image

    step = progress or (lambda stage, frac: None)
    check_name(field_id, "field id")
    check_name(name, "catalog name")
    z = check_redshift(z)
    params = check_detection_params(params)
    if not image_paths:
        raise GccatError("no images given")
    if bands is not None and len(bands) != len(image_paths):
        raise GccatError(f"{len(bands)} bands for {len(image_paths)} images")
    tile_pix = check_tile(tile_pix)
    images = []
    for i, p in enumerate(image_paths):
        step(f"reading {Path(p).name}", 0.1 * i / len(image_paths))
        images.append(read_image(p, band=bands[i] if bands else None))
    shape = images[0].data.shape
    if any(im.data.shape != shape for im in images):
        raise GccatError("the images are not on one pixel grid (shapes differ)")
    user_mask = _user_mask(mask_path, shape)
    step("filtering and detecting" if scheduler is None else f"filtering on Dask ({scheduler})", 0.2)
    with dask_client(scheduler) as client:
        det = imaging.detect_point_sources(
            [np.where(np.isfinite(im.data), im.data, np.nan) * im.njy_per_unit for im in images],
            [im.weight if im.weight is not None else np.isfinite(im.data).astype(float) for im in images],
            user_mask,
            **params,
            **tiled(client, tile_pix),
        )
    ref = images[0]
    ra, dec = ref.wcs.pixel_to_world_values(det.x, det.y)
    ra = np.mod(np.asarray(ra, float), 360)
    dec = np.asarray(dec, float)
    n = len(ra)
    ingest_id = new_ingest_id()
    from ingest.catalog import detections_table, register_field_and_bands

    detections = detections_table(
        field_id,
        name,
        [f"{i:06d}" for i in range(n)],
        ra,
        dec,
        ingest_id,
        z=None if z is None else np.full(n, z),
        class_=["point"] * n,
        extra=[
            json.dumps({"x": float(x), "y": float(y), "peak_njy": float(pk)})
            for x, y, pk in zip(det.x, det.y, det.peak, strict=True)
        ],
        snr=np.asarray(det.snr, float),
    )
    area_pix = ref.pixel_scale_arcsec**2
    run = {
        "run_id": ingest_id,
        "field_id": field_id,
        "catalog": name,
        "images": [str(im.path.resolve()) for im in images],
        "bands": [im.band for im in images],
        "image_sha256": [im.sha256 for im in images],
        "pixel_scale_arcsec": ref.pixel_scale_arcsec,
        "noise": float(det.noise),
        "threshold": float(det.threshold),
        "n_detections": n,
        "mask_area_pix": int(det.mask_area_pix),
        "mask_area_arcsec2": det.mask_area_pix * area_pix,
        "unmasked_area_arcsec2": (det.mask.size - det.mask_area_pix) * area_pix,
        "params": json.dumps(
            {**params, "mask": str(mask_path) if mask_path else None, "units": "nJy per pixel"}, default=str
        ),
        "ingest_id": ingest_id,
    }
    step("writing", 0.8)
    with lake.transaction(IngestKind.DETECTION, ingest_id=ingest_id) as tx:
        # Catalog ingests write the same detection ids: one name space, checked together.
        same = lake.live_named(field_id, name, kinds=DETECTION_KINDS)
        if same.num_rows and not replace:
            raise GccatError(
                f"catalog '{name}' already exists in field '{field_id}' "
                f"({same['kind'][0].as_py()} ingest {same['ingest_id'][0].as_py()}); "
                "choose another --name"
            )
        register_field_and_bands(
            lake,
            tx,
            field_id,
            sorted({im.band for im in images}),
            ra if n else np.array([float(ref.wcs.wcs.crval[0])]),
            dec if n else np.array([float(ref.wcs.wcs.crval[1])]),
            [],
        )
        tx.append("detections", detections)
        tx.append("detection_runs", pa.Table.from_pylist([run], schema=DETECTION_RUNS))
        tx.commit(
            name=name,
            field_id=field_id,
            source_path=images[0].path.resolve(),
            sha256="+".join(im.sha256 for im in images),
            n_rows=n,
            command=command,
            supersedes=same["ingest_id"].to_pylist(),
            options={"run": "detect", "params": run["params"], "scheduler": scheduler or "in-process"},
        )
    step("done", 1.0)
    return run


def check_apertures(aperture_radii_arcsec) -> np.ndarray:
    """``--apertures``: 1 to :data:`~catalog.constants.MAX_APERTURES` aperture **radii** in
    (0, :data:`~catalog.constants.MAX_APERTURE_RADIUS_ARCSEC`], arcsec.
    """
    return np.asarray(
        check_numbers(
            aperture_radii_arcsec,
            "--apertures (radii, arcsec)",
            n_max=MAX_APERTURES,
            lo=0,
            lo_open=True,
            hi=MAX_APERTURE_RADIUS_ARCSEC,
        ),
        float,
    )


def check_annulus_width(annulus_width_arcsec) -> float:
    """Width of the local-background annulus, arcsec: in [0, MAX_APERTURE_RADIUS_ARCSEC]; 0 means
    no local background (for background-subtracted images).
    """
    return check_number(annulus_width_arcsec, "annulus_width_arcsec", lo=0, hi=MAX_APERTURE_RADIUS_ARCSEC)


def _aperture_setup(image, aperture_radii_arcsec, annulus_width_arcsec=ANNULUS_WIDTH_ARCSEC):
    """Radii (arcsec), radii (pixels) and the annulus width (pixels) on this image."""
    radii_arcsec = check_apertures(aperture_radii_arcsec)
    width = check_annulus_width(annulus_width_arcsec)
    radii = radii_arcsec / image.pixel_scale_arcsec
    annulus = width / image.pixel_scale_arcsec
    # The aperture and its background annulus (r to r + width) must fit on the image.
    side = min(image.data.shape) * image.pixel_scale_arcsec
    widest = 2 * (float(radii_arcsec.max()) + width)
    if widest > side:
        raise GccatError(
            f'--apertures: a {radii_arcsec.max():g}" radius aperture with its '
            f'{width:g}" background annulus is {widest:.3g}" wide, wider '
            f'than the image ({side:.3g}"); use radii of at most '
            f'{max(side / 2 - width, 0):.3g}"',
            file=image.path,
        )
    return radii_arcsec, radii, annulus


def aperture_radius(table: pa.Table, name: str = "aperture_radius_arcsec") -> pa.ChunkedArray:
    """The aperture radius (arcsec) of rows read from the lake without DuckDB.

    Rows written before radii were stored (older gccat) have only the diameter column of
    :data:`catalog.lake.schemas.RENAMED_COLUMNS`; they are read as radius = diameter / 2, as the
    views read them.
    """
    old, scale = next(v for t in RENAMED_COLUMNS.values() for k, v in t.items() if k == name)
    new = (
        table[name]
        if name in table.column_names
        else pa.chunked_array([pa.nulls(table.num_rows, pa.float64())])
    )
    if old not in table.column_names:
        return new
    return pc.coalesce(new, pc.multiply(table[old].cast(pa.float64()), scale))


def _write_photometry(lake: Lake, ingest_id, name, field_id, image, det, rows, settings, extra, command):
    """Commit the photometry rows of one image and method, or find them already there.

    A repeat is the same image measured with the same ``settings`` (older lakes lack some
    settings, so their rows are measured again); other settings (e.g. adding the forgotten
    --psf) measure again and supersede the earlier rows. Returns the earlier ingest id of a
    repeat (nothing written), else None.
    """
    from ingest.catalog import register_field_and_bands

    with lake.transaction(IngestKind.PHOTOMETRY, ingest_id=ingest_id) as tx:
        same = lake.live_named(field_id, name, kind=IngestKind.PHOTOMETRY)
        if same.num_rows and same["sha256"][0].as_py() == image.sha256:
            old = json.loads(same["options"][0].as_py() or "{}")
            if {k: old.get(k) for k in settings} == settings:
                return same["ingest_id"][0].as_py()
        register_field_and_bands(
            lake, tx, field_id, [image.band], det["ra"].to_numpy(), det["dec"].to_numpy(), []
        )
        tx.append("photometry", rows)
        tx.commit(
            name=name,
            field_id=field_id,
            source_path=image.path.resolve(),
            sha256=image.sha256,
            n_rows=len(det),
            n_photometry=rows.num_rows,
            command=command,
            supersedes=same["ingest_id"].to_pylist(),
            options={
                "run": "photometry",
                "bands_measured": [image.band],
                **extra,
                "njy_per_unit": image.njy_per_unit,
                **settings,
            },
        )
    return None


def run_photometry(
    lake: Lake,
    image_path,
    *,
    band: str | None,
    field_id: str,
    catalog: str,
    aperture_radii_arcsec: Sequence[float] = APERTURE_RADII_ARCSEC,
    psf_path=None,
    error_path=None,
    weight_path=None,
    zeropoint_ab: float | None = None,
    annulus_width_arcsec: float = ANNULUS_WIDTH_ARCSEC,
    scheduler: str | None = None,
    tile_pix: int = IMAGE_TILE_PIX,
    command: str = "",
    progress=None,
) -> dict:
    """Forced aperture photometry of a catalog's sources on one image, appended to photometry.

    Parameters
    ----------
    aperture_radii_arcsec : sequence of float
        Aperture **radii**, arcsec (default the Sparkler's 0.12, 0.16, 0.20"), stored as
        ``aperture_radius_arcsec``.
    psf_path : path, optional
        PSF image (centred, any normalisation) for the aperture correction; without it the
        fluxes are the background-subtracted aperture sums, a fraction of the total flux
        (the rows' ingest records ``aperture_corrected``).
    annulus_width_arcsec : float
        Width of the local-background annulus from each aperture's edge, arcsec (0.08" in the
        Sparkler study); 0 subtracts no local background (a background-subtracted image).
    scheduler : str, optional
        ``"local"`` or a Dask scheduler address: the sources of each ``tile_pix`` square of the
        image are measured as one Dask task on the window holding their apertures and annuli.
        The fluxes are the same, to the bit, as in process
        (:func:`catalog.images.apertures.aperture_photometry`); the options record it.
    tile_pix : int
        Side of the tiles sent to the workers, pixels (with ``scheduler``).

    Notes
    -----
    Fluxes in nJy (method ``aperture``); local median background in the annulus from the
    aperture edge r to r + 0.08"; aperture correction from the PSF growth curve (and the PSF
    light in the annulus) when ``psf_path`` is given; sources below 3 sigma are stored as
    3-sigma upper limits (``is_upper_limit``, flux = the limit, error = 1 sigma).
    """
    from catalog.runs.cluster import dask_client
    from ingest.images import read_image

    step = progress or (lambda stage, frac: None)
    check_name(field_id, "field id")
    check_name(catalog, "catalog name")
    check_apertures(aperture_radii_arcsec)
    annulus_width_arcsec = check_annulus_width(annulus_width_arcsec)
    tile_pix = check_tile(tile_pix)
    step("reading", 0.05)
    image = read_image(
        image_path, band=band, error_path=error_path, weight_path=weight_path, zeropoint_ab=zeropoint_ab
    )
    psf = _read_psf(psf_path) if psf_path else None
    if psf is not None:
        _check_psf_fits(psf, image, psf_path)
    radii_arcsec, radii, annulus = _aperture_setup(image, aperture_radii_arcsec, annulus_width_arcsec)
    det, x, y = _catalog_positions(lake, field_id, catalog, image)
    step("measuring" if scheduler is None else f"measuring on Dask ({scheduler})", 0.3)
    with dask_client(scheduler) as client:
        ph = imaging.aperture_photometry(
            image.data,
            x,
            y,
            radii,
            error=image.error,
            weight=image.weight,
            annulus_width_pix=annulus,
            psf=psf,
            **tiled(client, tile_pix),
        )
    f = image.njy_per_unit
    n, k = len(x), len(radii)
    upper = np.asarray(ph["is_upper_limit"], bool)
    flux = np.where(upper, ph["flux_limit"], ph["flux"]) * f
    ingest_id = new_ingest_id()
    rows = pa.table(
        {
            "detection_id": np.repeat(det["detection_id"].to_numpy(zero_copy_only=False), k),
            "field_id": [field_id] * (n * k),
            "band": [image.band] * (n * k),
            "flux_njy": pa.array(flux.ravel(), from_pandas=True),
            "flux_err_njy": pa.array((ph["flux_err"] * f).ravel(), from_pandas=True),
            "is_upper_limit": upper.ravel(),
            "method": ["aperture"] * (n * k),
            "aperture_radius_arcsec": np.tile(radii_arcsec, n),
            "mw_corrected": np.zeros(n * k, bool),
            "quality": np.zeros(n * k, np.int32),
            "ingest_id": [ingest_id] * (n * k),
        }
    ).cast(PHOTOMETRY)
    name = f"{catalog}/{image.band}/aperture"
    settings = {
        "aperture_radii_arcsec": radii_arcsec.tolist(),
        "annulus_width_arcsec": annulus_width_arcsec,
        "psf_sha256": sha256_file(psf_path) if psf_path else None,
        "zeropoint_ab": zeropoint_ab,
    }
    step("writing", 0.8)
    repeat = _write_photometry(
        lake,
        ingest_id,
        name,
        field_id,
        image,
        det,
        rows,
        settings,
        # photometry_ranked prefers aperture-corrected (total) fluxes
        {
            "psf": str(psf_path) if psf_path else None,
            "aperture_corrected": psf is not None,
            "scheduler": scheduler or "in-process",
        },
        command,
    )
    if repeat:
        return {"ingest_id": repeat, "skipped": True, "n_rows": 0}
    step("done", 1.0)
    return {
        "ingest_id": ingest_id,
        "skipped": False,
        "n_rows": rows.num_rows,
        "n_sources": n,
        "n_upper_limits": int(upper.sum()),
    }


def _check_injection_options(
    mode, flux_range, n_flux, n_locations, n_random, max_targets, stamp_arcsec, seed
):
    """The injection options checked (one-line errors naming the option) and normalised."""
    if mode not in ("targets", "random"):
        raise GccatError(f"--mode must be targets or random, not {mode!r}")
    lo, hi = check_numbers(
        flux_range, "--flux-range", n_min=2, n_max=2, lo=0, lo_open=True, hi=MAX_FLUX_FACTOR
    )
    if not lo < hi:
        raise GccatError(f"--flux-range must be two increasing factors LO,HI, not {lo:g},{hi:g}")
    n_flux = check_number(n_flux, "--n", lo=1, hi=MAX_INJECT_PER_AXIS, integer=True)
    n_locations = check_number(n_locations, "--locations", lo=1, hi=MAX_INJECT_PER_AXIS, integer=True)
    # two copies at least: the biweight scale of flux_out - flux_in needs a spread
    n_random = check_number(n_random, "--n-random", lo=2, hi=MAX_RANDOM, integer=True)
    max_targets = check_number(max_targets, "--max-targets", lo=1, integer=True, allow_none=True)
    stamp_arcsec = check_number(stamp_arcsec, "stamp_arcsec", lo=0, lo_open=True, hi=MAX_STAMP_ARCSEC)
    return (lo, hi), n_flux, n_locations, n_random, max_targets, stamp_arcsec, check_seed(seed)


def _reference_fluxes(
    lake: Lake, field_id: str, image, det, x, y, radii_arcsec, radii, annulus, psf
) -> np.ndarray:
    """Each target's measured flux in image units: its smallest-aperture photometry of this band
    in the lake, or, where the lake has none at all, measured now the same way.
    """
    f = image.njy_per_unit
    phot = lake.live(
        "photometry",
        filters=(pc.field("field_id") == field_id)
        & (pc.field("band") == image.band)
        & (pc.field("method") == "aperture"),
    )
    ref = {}
    near = pc.less(pc.abs(pc.subtract(aperture_radius(phot), float(radii_arcsec.min()))), RADIUS_MATCH_ARCSEC)
    for r in phot.filter(near.fill_null(False)).select(["detection_id", "flux_njy"]).to_pylist():
        if r["flux_njy"] is not None:  # a source off the data has no flux: measure it below
            ref[r["detection_id"]] = r["flux_njy"]
    measured = np.array([ref.get(d, np.nan) for d in det["detection_id"].to_pylist()]) / f
    if np.isnan(measured).all():  # no photometry yet: measure it now, the same way
        m = imaging.aperture_photometry(
            image.data,
            x,
            y,
            radii[:1],
            error=image.error,
            weight=image.weight,
            annulus_width_pix=annulus,
            psf=psf,
        )
        measured = np.where(m["is_upper_limit"][:, 0], m["flux_limit"][:, 0], m["flux"][:, 0])
    return measured


def _inject_near_targets(
    image,
    psf,
    x,
    y,
    measured,
    ids,
    radii,
    radii_arcsec,
    annulus,
    n_flux,
    n_locations,
    flux_range,
    rng,
    step,
    map_tasks=None,
) -> tuple[dict, list[dict]]:
    """Sparkler mode: injections near each target, and a polynomial correction per aperture;
    ``map_tasks`` runs the batches of injection tiles (e.g. on Dask).
    """
    f = image.njy_per_unit
    res = imaging.injection_recovery(
        image.data,
        psf,
        x,
        y,
        measured,
        radii,
        error=image.error,
        weight=image.weight,
        n_flux=n_flux,
        n_locations=n_locations,
        flux_range=flux_range,
        rng=rng,
        annulus_width_pix=annulus,
        progress=lambda p: step("injecting (targets)", 0.2 + 0.7 * p),
        map_tasks=map_tasks,
    )
    corrections = []
    target = np.asarray(res["target"])
    for t in np.unique(target):
        sel = target == t
        for j, radius in enumerate(radii_arcsec):
            out = res["flux_out"][sel, j]
            ok = np.isfinite(out)
            if ok.sum() < 3:
                continue
            c2, c1, c0 = imaging.fit_flux_correction(out[ok] * f, res["flux_in"][sel][ok] * f)
            scatter, noise = imaging.location_scatter(
                (c2, c1, c0), res["flux_in"][sel] * f, out * f, res["flux_err"][sel, j] * f, measured[t] * f
            )
            corrections.append(
                {
                    "detection_id": ids[t],
                    "band": image.band,
                    "aperture_radius_arcsec": float(radius),
                    "c2": c2,
                    "c1": c1,
                    "c0": c0,
                    "flux_error_biweight_njy": None,
                    "location_scatter_njy": scatter if np.isfinite(scatter) else None,
                    "location_noise_njy": noise if np.isfinite(noise) else None,
                }
            )
    return res, corrections


def _inject_at_random(
    image, psf, x, y, measured, ids, radii, radii_arcsec, annulus, n_random, stamp_arcsec, rng, step,
    map_tasks=None,
) -> tuple[dict, list[dict]]:  # fmt: skip
    """Firefly mode: copies at random places in a stamp around each target; the flux error is
    the biweight scale of flux_out - flux_in, per aperture. The positions of all targets are
    drawn first, in target order, then ``map_tasks`` measures every target's batches.
    """
    f = image.njy_per_unit
    cols = {k: [] for k in ("target", "x", "y", "flux_in", "flux_out", "flux_err", "recovered")}
    corrections = []
    stamp = stamp_arcsec / image.pixel_scale_arcsec
    fluxes = [measured[t] if measured[t] > 0 else np.nanmedian(measured[measured > 0]) for t in range(len(x))]
    results = imaging.injection_random_stamps(
        image.data,
        psf,
        list(zip(x, y, strict=True)),
        stamp,
        fluxes,
        n_random,
        radii,
        rng=rng,
        error=image.error,
        weight=image.weight,
        annulus_width_pix=annulus,
        progress=lambda p: step("injecting (random)", 0.2 + 0.7 * p),
        map_tasks=map_tasks,
    )
    for t, r in enumerate(results):
        m = len(r["flux_in"])
        cols["target"].append(np.full(m, t))
        for k in ("x", "y", "flux_in", "flux_out", "flux_err"):
            cols[k].append(np.asarray(r[k]))
        cols["recovered"].append(np.asarray(r["flux_out"]) > UPPER_LIMIT_NSIGMA * np.asarray(r["flux_err"]))
        for j, radius in enumerate(radii_arcsec):
            corrections.append(
                {
                    "detection_id": ids[t],
                    "band": image.band,
                    "aperture_radius_arcsec": float(radius),
                    "c2": None,
                    "c1": None,
                    "c0": None,
                    "flux_error_biweight_njy": float(np.atleast_1d(r["flux_error_biweight"])[j]) * f,
                    "location_scatter_njy": None,
                    "location_noise_njy": None,
                }
            )
    return {k: np.concatenate(v) for k, v in cols.items()}, corrections


def _injection_sources(res: dict, ids, image, radii_arcsec, field_id: str, ingest_id: str) -> pa.Table:
    """The ``injection_sources`` rows: one per injection and aperture, fluxes in nJy."""
    f = image.njy_per_unit
    n_inj, k = len(res["flux_in"]), len(radii_arcsec)
    ra, dec = image.wcs.pixel_to_world_values(res["x"], res["y"])
    flux_out = np.asarray(res["flux_out"]).reshape(n_inj, k)
    flux_err = np.asarray(res["flux_err"]).reshape(n_inj, k)
    recovered = np.asarray(res["recovered"]).reshape(n_inj, -1)
    recovered = np.broadcast_to(recovered, (n_inj, k)) if recovered.shape[1] == 1 else recovered
    return pa.table(
        {
            "run_id": [ingest_id] * (n_inj * k),
            "field_id": [field_id] * (n_inj * k),
            "band": [image.band] * (n_inj * k),
            "detection_id": np.repeat(ids[np.asarray(res["target"], int)], k),
            "injection": np.repeat(np.arange(n_inj), k),
            "x": np.repeat(res["x"], k),
            "y": np.repeat(res["y"], k),
            "ra": np.repeat(np.mod(ra, 360), k),
            "dec": np.repeat(dec, k),
            "aperture_radius_arcsec": pa.array(np.tile(radii_arcsec, n_inj), from_pandas=True),
            "flux_in_njy": np.repeat(res["flux_in"], k) * f,
            "flux_out_njy": pa.array(flux_out.ravel() * f, from_pandas=True),
            "flux_err_njy": pa.array(flux_err.ravel() * f, from_pandas=True),
            "recovered": recovered.ravel(),
            "ingest_id": [ingest_id] * (n_inj * k),
        }
    ).cast(INJECTION_SOURCES)


def run_injection(
    lake: Lake,
    image_path,
    *,
    band: str | None,
    psf_path,
    field_id: str,
    catalog: str,
    n_flux: int = INJECT_N_FLUX,
    n_locations: int = INJECT_N_LOCATIONS,
    flux_range: tuple[float, float] = INJECT_FLUX_RANGE,
    aperture_radii_arcsec: Sequence[float] = APERTURE_RADII_ARCSEC,
    mode: str = "targets",
    n_random: int = INJECT_N_RANDOM,
    stamp_arcsec: float = INJECT_STAMP_ARCSEC,
    seed: int = 0,
    zeropoint_ab: float | None = None,
    max_targets: int | None = None,
    annulus_width_arcsec: float = ANNULUS_WIDTH_ARCSEC,
    method: str = "aperture",
    fit_size_arcsec: float | None = None,
    max_shift_pix: float | None = None,
    background: str | None = None,
    refit_size_arcsec: float | None = None,
    scheduler: str | None = None,
    command: str = "",
    progress=None,
) -> dict:
    """Injection-recovery on an image, recorded in injection_runs/_sources/_corrections.

    ``method='psf'`` injects the same PSF point sources but recovers them with the PSF fit of
    ``gccat photometry --method psf`` (:func:`_inject_psf`, targets mode only; ``fit_size_arcsec``,
    ``max_shift_pix``, ``background`` and ``refit_size_arcsec`` as for :func:`run_psf_photometry`);
    its sources and corrections have no aperture radius and apply to that image's ``psf`` rows
    fitted with the same cutouts and background. With ``scheduler`` (``"local"`` or a Dask
    scheduler address) the injections are measured on Dask: batches of 64 injection tiles per
    task for the PSF fit; for apertures each batch of injection tiles (the mosaic one
    photometry call measures, up to 4096 tiles, as in process) is a task, and random-mode
    targets' batches are grouped to about 4096 tiles per task. The positions and fluxes are
    drawn on the client from ``seed`` before anything is sent, and the results are the same,
    to the bit, as in process; the run's ``params`` record ``scheduler``.

    ``mode='targets'`` (Sparkler): near each catalog source, PSF point sources at ``n_flux``
    fluxes spanning ``flux_range`` x its measured flux (the smallest aperture's photometry of
    this band in the lake, or its flux limit), at ``n_locations`` places, measured by the same
    photometry (aperture radii ``aperture_radii_arcsec`` in arcsec, annulus r to r + 0.08",
    aperture-corrected with ``psf_path``); a second-order polynomial intrinsic(measured) per
    source and aperture goes to ``injection_corrections``. It calibrates aperture-corrected
    photometry of the same image, and ``photometry_injection_corrected`` applies it only there.
    ``mode='random'`` (Firefly): ``n_random`` copies of the PSF at each source's flux at random
    places in a ``stamp_arcsec`` stamp around it; the flux error is the biweight scale of
    flux_out - flux_in. ``annulus_width_arcsec`` as for :func:`run_photometry` (use the value
    the photometry used).
    """
    from catalog.runs.cluster import dask_client
    from ingest.images import read_image

    step = progress or (lambda stage, frac: None)
    check_name(field_id, "field id")
    check_name(catalog, "catalog name")
    flux_range, n_flux, n_locations, n_random, max_targets, stamp_arcsec, seed = _check_injection_options(
        mode, flux_range, n_flux, n_locations, n_random, max_targets, stamp_arcsec, seed
    )
    if method not in ("aperture", "psf"):
        raise GccatError(f"--method must be aperture or psf, got {method!r}")
    settings = psf_fit_settings(method, fit_size_arcsec, max_shift_pix, background, refit_size_arcsec)
    if method == "psf":
        if mode != "targets":
            raise GccatError("--method psf injects near the targets only (--mode targets)")
        psf_opts = check_psf_fit_options(**settings)
    check_apertures(aperture_radii_arcsec)
    annulus_width_arcsec = check_annulus_width(annulus_width_arcsec)
    image = read_image(image_path, band=band, zeropoint_ab=zeropoint_ab)
    psf = _read_psf(psf_path)
    _check_psf_fits(psf, image, psf_path)
    radii_arcsec, radii, annulus = _aperture_setup(image, aperture_radii_arcsec, annulus_width_arcsec)
    det, x, y = _catalog_positions(lake, field_id, catalog, image)
    if max_targets is not None:
        det, x, y = det.slice(0, max_targets), x[:max_targets], y[:max_targets]
    per_target = n_flux * n_locations if mode == "targets" else n_random
    if len(x) * per_target > MAX_INJECTIONS:
        raise GccatError(
            f"{len(x)} targets x {per_target} injections each is more than "
            f"{MAX_INJECTIONS:,} injections in one run; lower --n/--locations/--n-random "
            "or use --max-targets"
        )
    f = image.njy_per_unit
    rng = np.random.default_rng(seed)
    ids = det["detection_id"].to_numpy(zero_copy_only=False)
    psf_params = {}
    if method == "psf":
        _check_psf_stamp_option(psf, psf_path)
        size_pix = _psf_fit_size_pix(psf_opts[0], image)
        psf_params = {
            "method": "psf",
            "fit_size_arcsec": psf_opts[0],
            "fit_size_pix": size_pix,
            "max_shift_pix": psf_opts[1],
            "background": psf_opts[2],
            "refit_size_arcsec": psf_opts[3],
            "refit_size_pix": _psf_refit_size_pix(psf_opts[3], size_pix, image),
        }
        _, ax, ay = _catalog_positions(lake, field_id, catalog, image)
        step(f"injecting ({mode}, psf)", 0.2)
        psf_params["scheduler"] = scheduler
        res, corrections = _inject_psf(
            lake,
            field_id,
            image,
            psf,
            x,
            y,
            (ax, ay),
            ids,
            psf_params,
            n_flux,
            n_locations,
            flux_range,
            rng,
            step,
        )
        radii_arcsec = np.array([np.nan])
    else:
        with dask_client(scheduler) as client:
            measured = _reference_fluxes(lake, field_id, image, det, x, y, radii_arcsec, radii, annulus, psf)
            step(
                f"injecting ({mode})" if client is None else f"injecting ({mode}) on Dask ({scheduler})", 0.2
            )
            if mode == "targets":
                # one Dask task per batch of up to 4096 injection tiles
                tasks = None if client is None else task_map(client, batch=1)
                res, corrections = _inject_near_targets(
                    image, psf, x, y, measured, ids, radii, radii_arcsec, annulus, n_flux, n_locations,
                    flux_range, rng, step, tasks,
                )  # fmt: skip
            else:
                # a target's batch holds its --n-random tiles: about 4096 tiles per Dask task
                tasks = None if client is None else task_map(client, batch=max(1, 4096 // n_random))
                res, corrections = _inject_at_random(
                    image, psf, x, y, measured, ids, radii, radii_arcsec, annulus, n_random, stamp_arcsec,
                    rng, step, tasks,
                )  # fmt: skip
    ingest_id = new_ingest_id()
    n_inj = len(res["flux_in"])
    sources = _injection_sources(res, ids, image, radii_arcsec, field_id, ingest_id)
    run = {
        "run_id": ingest_id,
        "field_id": field_id,
        "catalog": catalog,
        "band": image.band,
        "mode": mode,
        "image": str(image.path.resolve()),
        "image_sha256": image.sha256,
        "psf": str(Path(psf_path).resolve()),
        "n_flux": n_flux if mode == "targets" else 1,
        "n_locations": n_locations if mode == "targets" else n_random,
        "flux_range_lo": flux_range[0],
        "flux_range_hi": flux_range[1],
        "aperture_radii_arcsec": [] if method == "psf" else radii_arcsec.tolist(),
        "seed": seed,
        "params": json.dumps(
            {
                "method": method,
                "stamp_arcsec": stamp_arcsec,
                "njy_per_unit": f,
                "annulus_width_arcsec": annulus_width_arcsec,
                "n_targets": len(x),
                **psf_params,
                "scheduler": scheduler or "in-process",
            }
        ),
        "ingest_id": ingest_id,
    }
    corr = pa.Table.from_pylist(
        [{**c, "run_id": ingest_id, "field_id": field_id, "ingest_id": ingest_id} for c in corrections],
        schema=INJECTION_CORRECTIONS,
    )
    step("writing", 0.9)
    with lake.transaction(IngestKind.INJECTION, ingest_id=ingest_id) as tx:
        tx.append("injection_sources", sources)
        tx.append("injection_corrections", corr)
        tx.append("injection_runs", pa.Table.from_pylist([run], schema=INJECTION_RUNS))
        tx.commit(
            name=f"{catalog}/{image.band}/inject-{mode}" + ("-psf" if method == "psf" else ""),
            field_id=field_id,
            source_path=image.path.resolve(),
            sha256=image.sha256,
            n_rows=sources.num_rows,
            command=command,
            options={"run": "inject", "mode": mode, "method": method, "seed": seed, **psf_params},
        )
    step("done", 1.0)
    return {**run, "n_injections": n_inj, "n_corrections": corr.num_rows}


#: PSF-fit options: the cutout side (arcsec, the SMACS0723 0.8") and the largest position shift.
PSF_FIT_SIZE_ARCSEC = 0.8
PSF_MAX_SHIFT_PIX = 2.0
#: The background model by default: a quadratic (a plane is biased next to bright galaxies).
PSF_BACKGROUND = "quadratic"
#: Cutout side (arcsec) of the refit of a poor fit (reduced chi2 > 3), 0 for none: next to a
#: bright galaxy a quadratic over 0.8" leaves errors 1.9x too small, over 0.45" they are right.
PSF_REFIT_SIZE_ARCSEC = 0.45
MAX_PSF_FIT_SIZE_ARCSEC = 10.0
MAX_PSF_SHIFT_PIX = 20.0


def psf_fit_settings(method, fit_size_arcsec, max_shift_pix, background, refit_size_arcsec) -> dict:
    """The PSF-fit keywords of :func:`run_psf_photometry`, defaults filled; none for apertures.

    Options left ``None`` take their defaults; any of them given with ``method='aperture'`` is a
    one-line error rather than silently ignored.
    """
    given = (fit_size_arcsec, max_shift_pix, background, refit_size_arcsec)
    if method != "psf":
        if given != (None, None, None, None):
            raise GccatError("--fit-size, --max-shift, --background and --refit-size need --method psf")
        return {}
    defaults = (PSF_FIT_SIZE_ARCSEC, PSF_MAX_SHIFT_PIX, PSF_BACKGROUND, PSF_REFIT_SIZE_ARCSEC)
    names = ("fit_size_arcsec", "max_shift_pix", "background", "refit_size_arcsec")
    return {k: d if v is None else v for k, v, d in zip(names, given, defaults, strict=True)}


def check_psf_fit_options(
    fit_size_arcsec, max_shift_pix, background, refit_size_arcsec=PSF_REFIT_SIZE_ARCSEC
) -> tuple[float, float, str, float]:
    """``--fit-size`` (arcsec, (0, 10]), ``--max-shift`` (pixels, (0, 20]), ``--background`` and
    ``--refit-size`` (arcsec, 0 for none, else below ``--fit-size``).
    """
    from catalog.images.psfphot import BACKGROUND_MODELS

    size = check_number(
        fit_size_arcsec, "--fit-size (arcsec)", lo=0, lo_open=True, hi=MAX_PSF_FIT_SIZE_ARCSEC
    )
    shift = check_number(max_shift_pix, "--max-shift (pixels)", lo=0, lo_open=True, hi=MAX_PSF_SHIFT_PIX)
    if background not in BACKGROUND_MODELS:
        raise GccatError(f"--background must be one of {', '.join(BACKGROUND_MODELS)}, got {background!r}")
    refit = check_number(refit_size_arcsec, "--refit-size (arcsec, 0 for none)", lo=0, hi=size)
    if 0 < refit >= size:
        raise GccatError(f'--refit-size must be 0 (none) or below --fit-size {size:g}", got {refit:g}')
    return size, shift, background, refit


def _check_psf_stamp_option(psf: np.ndarray, psf_path) -> None:
    from catalog.images.psfphot import check_psf_stamp

    try:
        check_psf_stamp(psf)
    except GccatError as e:
        raise GccatError(f"--psf: {e}", file=psf_path) from None


def _psf_fit_size_pix(size_arcsec: float, image) -> int:
    """The cutout side in pixels: ``--fit-size`` rounded to an odd number >= 3, on the image."""
    size_pix = max(int(round(size_arcsec / image.pixel_scale_arcsec)) // 2 * 2 + 1, 3)
    if size_pix > min(image.data.shape):
        raise GccatError(f'--fit-size {size_arcsec:g}" is wider than the image', file=image.path)
    return size_pix


def _psf_refit_size_pix(refit_arcsec: float, size_pix: int, image) -> int | None:
    """The refit cutout side in pixels (odd, >= 3, below the fit's), None for no refit."""
    if not refit_arcsec:
        return None
    refit_pix = _psf_fit_size_pix(refit_arcsec, image)
    if refit_pix >= size_pix:
        raise GccatError(
            f"--refit-size {refit_arcsec:g}\" is {refit_pix} px, not below the fit's {size_pix} px",
            file=image.path,
        )
    return refit_pix


def _inject_psf(
    lake: Lake,
    field_id: str,
    image,
    psf,
    x,
    y,
    neighbours,
    ids,
    params,
    n_flux,
    n_locations,
    flux_range,
    rng,
    step,
) -> tuple[dict, list[dict]]:
    """PSF injection-recovery near each target, and a polynomial correction per target.

    The reference flux of a target is its PSF-fit flux of this band in the lake (``psf`` rows),
    else measured now by the same fit. Injections lie one to 1.5 cutout sides from the target,
    so that the target is outside the injection's cutout and the fit of the injection is that
    of an isolated source in the target's surroundings (a nearer injection is a close pair,
    fitted jointly, whose bias is not the target's; ``docs/methods.md``).
    """
    from catalog.images.psfphot import psf_photometry
    from catalog.runs.cluster import dask_client

    f = image.njy_per_unit
    size = int(params["fit_size_pix"])
    phot = lake.live(
        "photometry",
        filters=(pc.field("field_id") == field_id)
        & (pc.field("band") == image.band)
        & (pc.field("method") == "psf"),
    )
    ref = {
        r["detection_id"]: r["flux_njy"]
        for r in phot.select(["detection_id", "flux_njy"]).to_pylist()
        if r["flux_njy"] is not None
    }
    measured = np.array([ref.get(d, np.nan) for d in ids], dtype=float) / f
    if np.isnan(measured).all():  # no psf photometry yet: measure it now, the same way
        measured = psf_photometry(
            image.data,
            x,
            y,
            psf,
            error=image.error,
            weight=image.weight,
            fit_size_pix=size,
            max_shift_pix=params["max_shift_pix"],
            background=params["background"],
            refit_size_pix=params["refit_size_pix"],
        )["flux"]
    with dask_client(params.get("scheduler")) as client:
        res = imaging.psf_injection_recovery(
            image.data,
            psf,
            x,
            y,
            measured,
            error=image.error,
            weight=image.weight,
            neighbours=neighbours,
            n_flux=n_flux,
            n_locations=n_locations,
            flux_range=flux_range,
            min_sep_pix=float(size),
            max_sep_pix=1.5 * size,
            rng=rng,
            fit_size_pix=size,
            max_shift_pix=params["max_shift_pix"],
            background=params["background"],
            refit_size_pix=params["refit_size_pix"],
            progress=lambda p: step("injecting (targets, psf)", 0.2 + 0.7 * p),
            map_tasks=None if client is None else task_map(client),
        )
    corrections = []
    target = np.asarray(res["target"])
    for t in np.unique(target):
        sel = target == t
        out = res["flux_out"][sel]
        ok = np.isfinite(out)
        if ok.sum() < 3:
            continue
        c2, c1, c0 = imaging.fit_flux_correction(out[ok] * f, res["flux_in"][sel][ok] * f)
        scatter, noise = imaging.location_scatter(
            (c2, c1, c0), res["flux_in"][sel] * f, out * f, res["flux_err"][sel] * f, measured[t] * f
        )
        corrections.append(
            {
                "detection_id": ids[t],
                "band": image.band,
                "aperture_radius_arcsec": None,
                "c2": c2,
                "c1": c1,
                "c0": c0,
                "flux_error_biweight_njy": None,
                "location_scatter_njy": scatter if np.isfinite(scatter) else None,
                "location_noise_njy": noise if np.isfinite(noise) else None,
            }
        )
    return res, corrections


def run_psf_photometry(
    lake: Lake,
    image_path,
    *,
    psf_path,
    band: str | None,
    field_id: str,
    catalog: str,
    fit_size_arcsec: float = PSF_FIT_SIZE_ARCSEC,
    max_shift_pix: float = PSF_MAX_SHIFT_PIX,
    background: str = PSF_BACKGROUND,
    refit_size_arcsec: float = PSF_REFIT_SIZE_ARCSEC,
    error_path=None,
    weight_path=None,
    zeropoint_ab: float | None = None,
    scheduler: str | None = None,
    tile_pix: int = IMAGE_TILE_PIX,
    command: str = "",
    progress=None,
) -> dict:
    """PSF-fit photometry of a catalog's sources on one image, appended to photometry.

    Rows have ``method = 'psf'``, no aperture radius, total fluxes in nJy (the PSF stamp
    normalised to 1) and the fit's quality bits (:mod:`catalog.images.psfphot`); the ingest's
    options record the PSF file, its sha256, the cutout side (arcsec and pixels), the shift
    limit (pixels), the background model, and the median fitted offset and background.

    Parameters
    ----------
    psf_path : path
        PSF FITS (odd sides, finite pixels) at the image's pixel scale, e.g. from ``gccat psf build``.
    fit_size_arcsec : float
        Side of each source's cutout, arcsec (rounded to an odd number of pixels).
    max_shift_pix : float
        Largest shift of a fitted position from the catalog position on each axis, pixels.
    background : {"quadratic", "plane", "constant", "cubic"}
        Local background fitted jointly with the fluxes (a polynomial of degree 2, 1, 0 or 3).
    refit_size_arcsec : float
        Cutout side (arcsec) of the refit of fits with reduced chi2 above 3 (quality bit 32
        on the refitted rows); 0 for none.
    scheduler : str, optional
        ``"local"`` or a Dask scheduler address: the groups of each ``tile_pix`` square of the
        image are fitted as one Dask task on the window holding their cutouts. The fluxes are
        the same, to the bit, as in process (:func:`catalog.images.psfphot.psf_photometry`).
    tile_pix : int
        Side of the tiles sent to the workers, pixels (with ``scheduler``).
    """
    from catalog.images.psfphot import FLAG_PROBLEMS, FLAG_REFIT, psf_photometry
    from catalog.runs.cluster import dask_client
    from ingest.images import read_image

    step = progress or (lambda stage, frac: None)
    check_name(field_id, "field id")
    check_name(catalog, "catalog name")
    if psf_path is None:
        raise GccatError("--method psf needs --psf (a PSF FITS stamp with odd sides)")
    size_arcsec, shift, background, refit_arcsec = check_psf_fit_options(
        fit_size_arcsec, max_shift_pix, background, refit_size_arcsec
    )
    step("reading", 0.05)
    psf = _read_psf(psf_path)
    _check_psf_stamp_option(psf, psf_path)
    image = read_image(
        image_path, band=band, error_path=error_path, weight_path=weight_path, zeropoint_ab=zeropoint_ab
    )
    _check_psf_fits(psf, image, psf_path)
    size_pix = _psf_fit_size_pix(size_arcsec, image)
    refit_pix = _psf_refit_size_pix(refit_arcsec, size_pix, image)
    tile_pix = check_tile(tile_pix)
    det, x, y = _catalog_positions(lake, field_id, catalog, image)
    step("fitting" if scheduler is None else f"fitting on Dask ({scheduler})", 0.3)
    with dask_client(scheduler) as client:
        fit = psf_photometry(
            image.data,
            x,
            y,
            psf,
            error=image.error,
            weight=image.weight,
            fit_size_pix=size_pix,
            max_shift_pix=shift,
            background=background,
            refit_size_pix=refit_pix,
            **tiled(client, tile_pix),
        )
    f = image.njy_per_unit
    n = len(x)
    ingest_id = new_ingest_id()
    rows = pa.table(
        {
            "detection_id": det["detection_id"].to_numpy(zero_copy_only=False),
            "field_id": [field_id] * n,
            "band": [image.band] * n,
            "flux_njy": pa.array(fit["flux"] * f, from_pandas=True),
            "flux_err_njy": pa.array(fit["flux_err"] * f, from_pandas=True),
            "is_upper_limit": np.zeros(n, bool),
            "method": ["psf"] * n,
            "aperture_radius_arcsec": pa.nulls(n, pa.float64()),
            "mw_corrected": np.zeros(n, bool),
            "quality": fit["quality"].astype(np.int32),
            "ingest_id": [ingest_id] * n,
        }
    ).cast(PHOTOMETRY)
    name = f"{catalog}/{image.band}/psf"
    settings = {
        "psf_sha256": sha256_file(psf_path),
        "fit_size_arcsec": size_arcsec,
        "max_shift_pix": shift,
        "background": background,
        "refit_size_arcsec": refit_arcsec,
        "zeropoint_ab": zeropoint_ab,
    }
    step("writing", 0.8)
    extra = {
        "method": "psf",
        "psf": str(psf_path),
        "fit_size_pix": size_pix,
        "refit_size_pix": refit_pix,
        "n_refit": int(((fit["quality"] & FLAG_REFIT) != 0).sum()),
        "scheduler": scheduler or "in-process",
        "median_offset_pix": float(np.nanmedian(np.hypot(fit["dx"], fit["dy"]))) if n else None,
        "median_background_njy": float(np.nanmedian(fit["background"]) * f) if n else None,
        "n_flagged": int(((fit["quality"] & FLAG_PROBLEMS) != 0).sum()),
    }
    repeat = _write_photometry(lake, ingest_id, name, field_id, image, det, rows, settings, extra, command)
    if repeat:
        return {"ingest_id": repeat, "skipped": True, "n_rows": 0}
    step("done", 1.0)
    return {
        "ingest_id": ingest_id,
        "skipped": False,
        "n_rows": rows.num_rows,
        "n_sources": n,
        "n_flagged": extra["n_flagged"],
        "n_refit": extra["n_refit"],
    }
