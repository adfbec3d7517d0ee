"""``gccat lens crossmatch`` and ``gccat lens counter-images``: multiple images through a lens model.

The deflection maps of a lens model in the lake (``x/y-arcsec-deflect``, normalised to the
model's ``lens_models.dls_ds``, HFF: 1) are rescaled to each image's redshift by
D_ls/D_s(z_s) / dls_ds, with z_cluster from ``fields`` (:func:`catalog.lensing.dls_ds`).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from astropy import units as u
from astropy.coordinates import SkyCoord

from catalog.checks import Z_MAX, check_name, check_number
from catalog.constants import MU_PIXEL_CHANGE_MAX
from catalog.errors import GccatError
from catalog.lake import IngestKind, Lake, command_line
from catalog.lake.schemas import ARC_MAGNIFICATIONS, COUNTER_IMAGES, CRITICAL_CURVES, SOURCE_PLANE_MATCHES
from catalog.lensing import dls_ds, solve_lens_equation, to_source_plane
from catalog.lensing.arcs import ARC_THRESHOLD_FRACTION, arc_magnification_summary, arc_pixels
from catalog.lensing.sourceplane import critical_curves
from catalog.queries.lensmaps import LensMapStore


def _model(lake: Lake, field_id: str, model: str):
    store = LensMapStore(lake)
    model_id = f"{field_id}/{model}"
    ax, ay = store.load(model_id, "x-arcsec-deflect"), store.load(model_id, "y-arcsec-deflect")
    if ax is None or ay is None:
        raise GccatError(f"lens model '{model_id}' has no x/y-arcsec-deflect maps in the lake")
    m = store.models()
    norm = m.filter(pc.equal(m["model_id"], model_id))["dls_ds"][0].as_py()
    return ax, ay, norm


def _scale(lake: Lake, field_id: str, z: np.ndarray, norm: float) -> np.ndarray:
    """D_ls/D_s(z) over the model normalisation; refuses unknown or foreground redshifts."""
    f = lake.live("fields")
    zc = f.filter(pc.equal(f["field_id"], field_id))["z_cluster"].to_pylist()
    if not zc or zc[0] is None:
        raise GccatError(f"field '{field_id}' has no cluster redshift; load it with 'gccat ingest fields'")
    if np.isnan(z).any():
        raise GccatError("some images have no redshift (z = 0 in Lenstool files); give --z-source")
    if (z <= zc[0]).any():
        raise GccatError(f"every source must lie behind the cluster (z = {zc[0]:g})")
    return dls_ds(zc[0], z) / norm


def _images(lake: Lake, field_id: str, catalog: str | None) -> pa.Table:
    t = lake.live("multiple_images")
    t = t.filter(pc.equal(t["field_id"], field_id))
    if catalog is not None:
        t = t.filter(pc.equal(t["catalog"], catalog))
    if t.num_rows == 0:
        raise GccatError(
            f"no multiple images in field '{field_id}'; load them with 'gccat ingest multiple-images'"
        )
    return t


def _detections(lake: Lake, field_id: str, catalog: str | None, where: str | None) -> pa.Table:
    """The field's live detections (optionally of one catalog, matching ``where``) in the
    columns of ``multiple_images`` that the crossmatch reads (the family is the catalog).
    """
    from catalog.queries.connection import connect
    from catalog.queries.sandbox import condition_sql
    from catalog.queries.search import run_sql

    sql = (
        "SELECT detection_id AS image_id, catalog AS family_id, ra, dec, z FROM detections "
        "WHERE field_id = ?" + (" AND catalog = ?" if catalog else "")
    )
    if where:
        sql += f" AND {condition_sql(where)}"
    t = run_sql(connect(lake), sql + " ORDER BY detection_id", [field_id] + ([catalog] if catalog else []))
    if t.num_rows == 0:
        raise GccatError(f"no detections of field '{field_id}' match the selection")
    return t


def _z(t: pa.Table, z_source: float | None) -> np.ndarray:
    z = t["z"].to_numpy(zero_copy_only=False).astype(float)
    return np.where(np.isnan(z), np.nan if z_source is None else z_source, z)


def _write(
    lake: Lake, schema: pa.Schema, table: str, cols: dict, field_id: str, model: str, options, command
):
    """One commit of a source-plane run: ``cols`` with the field, model and ingest ids added."""
    model_id = f"{field_id}/{model}"
    n = len(next(iter(cols.values())))
    with lake.transaction(IngestKind.SOURCE_PLANE) as tx:
        full = {
            **cols,
            "field_id": [field_id] * n,
            "model_id": [model_id] * n,
            "ingest_id": [tx.ingest_id] * n,
        }
        out = pa.table({f.name: full[f.name] for f in schema}, schema=schema)
        tx.append(table, out)
        tx.commit(name=model, field_id=field_id, n_rows=n, command=command or command_line(), options=options)
    return out


def run_source_plane_crossmatch(
    lake: Lake,
    field_id: str,
    model: str,
    *,
    catalog: str | None = None,
    tolerance_arcsec: float = 1.0,
    z_source: float | None = None,
    detections: bool = False,
    where: str | None = None,
    min_image_separation_arcsec: float = 1.0,
    plot=None,
    command: str | None = None,
) -> pa.Table:
    """Pair the multiple images of a field whose source-plane positions agree, or (with
    ``detections``) the field's detected compact sources measured in different images of one
    galaxy.

    Parameters
    ----------
    lake : Lake
    field_id, model : str
        Field and lens model (with deflection maps).
    catalog : str, optional
        Only the images of this ``multiple_images`` catalog.
    tolerance_arcsec : float
        Largest source-plane separation of a pair, arcsec.
    z_source : float, optional
        Redshift for images (or detections) without one (Lenstool z = 0).
    detections : bool
        Pair the field's detections (``detections.detection_id``; ``catalog`` then names a
        detection catalog) instead of its ``multiple_images``.
    where : str, optional
        With ``detections``: SQL condition on ``detections`` selecting the sources.
    min_image_separation_arcsec : float
        With ``detections``: pairs closer than this in the image plane are neighbours in one
        image, not counter-images, and are left out.
    plot : path, optional
        PNG of kappa with the matched pairs joined in the image plane.

    Returns
    -------
    pyarrow.Table
        The ``source_plane_matches`` rows written (one per pair, image_id_1 < image_id_2).
    """
    tolerance_arcsec = check_number(tolerance_arcsec, "--tolerance", lo=0, lo_open=True, hi=3600)
    z_source = check_number(z_source, "--z-source", lo=0, lo_open=True, hi=Z_MAX, allow_none=True)
    min_sep = check_number(min_image_separation_arcsec, "--min-image-separation", lo=0, hi=3600)
    if where is not None and not detections:
        raise GccatError("--where selects detections: give --detections too")
    ax, ay, norm = _model(lake, field_id, model)
    t = _detections(lake, field_id, catalog, where) if detections else _images(lake, field_id, catalog)
    z = _z(t, z_source)
    ra, dec = t["ra"].to_numpy(), t["dec"].to_numpy()
    rs, ds = to_source_plane(ax, ay, ra, dec, _scale(lake, field_id, z, norm))
    on = np.flatnonzero(np.isfinite(rs))
    src = SkyCoord(rs[on], ds[on], unit="deg")
    i, j, sep, _ = src.search_around_sky(src, tolerance_arcsec * u.arcsec)
    i, j = on[i], on[j]
    ids = np.array(t["image_id"].to_pylist(), dtype=object)
    keep = ids[i] < ids[j]
    i, j, sep = i[keep], j[keep], sep[keep].to_value(u.arcsec)
    img = SkyCoord(ra, dec, unit="deg")
    img_sep = img[i].separation(img[j]).arcsec if len(i) else np.empty(0)
    if detections:
        apart = img_sep >= min_sep
        i, j, sep, img_sep = i[apart], j[apart], sep[apart], img_sep[apart]
    fam = np.array(t["family_id"].to_pylist(), dtype=object)
    cols = {
        "image_id_1": ids[i].tolist(),
        "image_id_2": ids[j].tolist(),
        "family_1": fam[i].tolist(),
        "family_2": fam[j].tolist(),
        "z_source": z[i],
        "ra_src_1": rs[i],
        "dec_src_1": ds[i],
        "ra_src_2": rs[j],
        "dec_src_2": ds[j],
        "separation_arcsec": sep,
        "image_separation_arcsec": img_sep,
        "source_table": ["detections" if detections else "multiple_images"] * len(i),
    }
    options = {"run": "crossmatch", "tolerance_arcsec": tolerance_arcsec, "catalog": catalog,
               "z_source": z_source, "n_off_map": int(len(ra) - len(on)), "detections": detections,
               "where": where, "min_image_separation_arcsec": min_sep if detections else None}  # fmt: skip
    if plot is not None:
        from catalog.lensing import kappa_gamma_from_deflection
        from catalog.lensing.plots import plot_critical_curves

        joined = [((ra[a], dec[a]), (ra[b], dec[b])) for a, b in zip(i, j, strict=True)]
        options["plot"] = plot_critical_curves(
            kappa_gamma_from_deflection(ax, ay)[0],
            None,
            plot,
            title=f"{field_id}/{model}: {len(i)} pairs",
            pairs=joined,
        )
    return _write(lake, SOURCE_PLANE_MATCHES, "source_plane_matches", cols, field_id, model, options, command)


def run_counter_images(
    lake: Lake,
    field_id: str,
    model: str,
    *,
    image: str | None = None,
    position: tuple[float, float] | None = None,
    z_source: float | None = None,
    plot=None,
    command: str | None = None,
) -> pa.Table:
    """Predict all images of a source: an ingested image mapped to the source plane, or a
    given source-plane position; the lens equation solved on the model's grid
    (:func:`catalog.lensing.solve_lens_equation`).

    Parameters
    ----------
    image : str, optional
        An image label (``2.1``) or image_id of the field's ``multiple_images``.
    position : (float, float), optional
        Or the source position beta_0 (RA, Dec in deg); needs ``z_source``.
    z_source : float, optional
        Source redshift (default: the image's).
    plot : path, optional
        PNG of kappa with the critical curves and caustics at the source redshift, the input
        image and the predicted ones.

    Returns
    -------
    pyarrow.Table
        The ``counter_images`` rows written.
    """
    if (image is None) == (position is None):
        raise GccatError("give exactly one of --image or --source")
    z_source = check_number(z_source, "--z-source", lo=0, lo_open=True, hi=Z_MAX, allow_none=True)
    ax, ay, norm = _model(lake, field_id, model)
    from_id, offset_from = None, None
    if image is not None:
        t = _images(lake, field_id, None)
        sel = t.filter(pc.or_(pc.equal(t["image_label"], image), pc.equal(t["image_id"], image)))
        if sel.num_rows != 1:
            raise GccatError(
                f"{sel.num_rows} images of field '{field_id}' are labelled '{image}'; give the image_id"
            )
        z = _z(sel, z_source)
        s = _scale(lake, field_id, z, norm)
        ra0, dec0 = sel["ra"].to_numpy(), sel["dec"].to_numpy()
        rs, ds = to_source_plane(ax, ay, ra0, dec0, s)
        if not np.isfinite(rs[0]):
            raise GccatError(f"image '{image}' is outside the lens model's maps")
        from_id, offset_from = sel["image_id"][0].as_py(), SkyCoord(ra0[0], dec0[0], unit="deg")
        beta, zs = (float(rs[0]), float(ds[0])), float(z[0])
    else:
        if z_source is None:
            raise GccatError("--source needs --z-source")
        beta, zs, s = position, z_source, _scale(lake, field_id, np.array([z_source]), norm)
    sol = solve_lens_equation(ax, ay, *beta, float(np.ravel(s)[0]))
    n = len(sol.ra)
    off = (
        SkyCoord(sol.ra, sol.dec, unit="deg").separation(offset_from).arcsec if from_id and n else [None] * n
    )
    cols = {
        "from_image_id": [from_id] * n,
        "z_source": [zs] * n,
        "ra_src": [beta[0]] * n,
        "dec_src": [beta[1]] * n,
        "image_number": np.arange(1, n + 1, dtype=np.int32),
        "ra": sol.ra,
        "dec": sol.dec,
        "mu": sol.mu,
        "offset_from_input_arcsec": pa.array(off, pa.float64()),
    }
    options = {"run": "counter-images", "image": image, "source": position, "z_source": zs}
    if plot is not None:
        from catalog.lensing import kappa_gamma_from_deflection
        from catalog.lensing.plots import plot_critical_curves

        points = {"predicted images": (sol.ra, sol.dec)}
        if from_id:
            points = {f"input image {image}": (offset_from.ra.deg, offset_from.dec.deg), **points}
        options["plot"] = plot_critical_curves(
            kappa_gamma_from_deflection(ax, ay)[0],
            _as_arrays(_curve_columns(ax, ay, [zs], np.ravel(s)[:1])),
            plot,
            title=f"{field_id}/{model}: images of {image or 'the source'} at z = {zs:g}",
            points=points,
        )
    return _write(lake, COUNTER_IMAGES, "counter_images", cols, field_id, model, options, command)


def _curve_columns(ax, ay, zs, scales) -> dict[str, list]:
    """The ``critical_curves`` columns (z_source, kind, curve_id, vertex, ra, dec) of the curves
    and caustics at each redshift ``zs`` (deflections scaled by ``scales``).
    """
    cols: dict[str, list] = {k: [] for k in ("z_source", "kind", "curve_id", "vertex", "ra", "dec")}
    for z, s in zip(zs, scales, strict=True):
        for k, c in enumerate(critical_curves(ax, ay, float(s)), start=1):
            for kind, ra, dec in (("critical", c.ra, c.dec), ("caustic", c.ra_caustic, c.dec_caustic)):
                n = len(ra)
                cols["z_source"] += [z] * n
                cols["kind"] += [kind] * n
                cols["curve_id"] += [k] * n
                cols["vertex"] += list(range(n))
                cols["ra"] += list(ra)
                cols["dec"] += list(dec)
    return cols


def _as_arrays(cols: dict[str, list]) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in cols.items()}


def run_critical_curves(
    lake: Lake,
    field_id: str,
    model: str,
    *,
    z_source,
    plot=None,
    command: str | None = None,
) -> pa.Table:
    """Critical curves and caustics of a lens model at one or more source redshifts, in one
    commit into ``critical_curves``.

    Parameters
    ----------
    lake : Lake
    field_id, model : str
        Field and lens model (with deflection maps).
    z_source : float or sequence of float
        Source redshift(s), behind the cluster (the AS1063 study: 0.73, 1.23, 3).
    plot : path, optional
        PNG of kappa with the curves (solid) and caustics (dashed), one colour per redshift.

    Returns
    -------
    pyarrow.Table
        The rows written: one per vertex, kind ``critical`` (image plane) and ``caustic``.
    """
    zs = [z_source] if np.isscalar(z_source) or z_source is None else list(z_source)
    if not zs:
        raise GccatError("give at least one --z-source")
    zs = sorted({check_number(z, "--z-source", lo=0, lo_open=True, hi=Z_MAX) for z in zs})
    ax, ay, norm = _model(lake, field_id, model)
    cols = _curve_columns(ax, ay, zs, _scale(lake, field_id, np.array(zs), norm))
    options = {"run": "critical-curves", "z_source": zs if len(zs) > 1 else zs[0]}
    if plot is not None:
        from catalog.lensing import kappa_gamma_from_deflection
        from catalog.lensing.plots import plot_critical_curves

        options["plot"] = plot_critical_curves(
            kappa_gamma_from_deflection(ax, ay)[0], _as_arrays(cols), plot, title=f"{field_id}/{model}"
        )
    return _write(lake, CRITICAL_CURVES, "critical_curves", cols, field_id, model, options, command)


def run_arc_magnification(
    lake: Lake,
    field_id: str,
    model: str,
    image_path,
    *,
    ra_deg: float,
    dec_deg: float,
    radius_arcsec: float,
    z_source: float,
    arc: str,
    threshold_fraction: float = ARC_THRESHOLD_FRACTION,
    plot=None,
    command: str | None = None,
) -> dict:
    """The magnification of an arc over its pixels above ``threshold_fraction`` of its peak.

    Parameters
    ----------
    lake : Lake
    field_id, model : str
        Field and lens model (with kappa and gamma maps).
    image_path : path
        Background-subtracted FITS image with a celestial WCS.
    ra_deg, dec_deg, radius_arcsec : float
        Centre (ICRS, deg) and radius (arcsec) of the aperture holding the arc.
    z_source : float
        Redshift of the arc (kappa and gamma rescaled by D_ls/D_s).
    arc : str
        Name of the arc.
    threshold_fraction : float
        Fraction of the peak (the Firefly Sparkle study: 0.1).
    plot : path, optional
        PNG of the image around the aperture with the arc's pixels outlined.

    Returns
    -------
    dict
        The ``arc_magnifications`` row (see :mod:`catalog.lensing.arcs`).
    """
    from catalog.files import sha256_file
    from catalog.images.fitsio import celestial_wcs, read_fits_image
    from catalog.lensing import magnification, mu_pixel_change

    check_name(arc, "arc name")
    z_source = check_number(z_source, "--z-source", lo=0, lo_open=True, hi=Z_MAX)
    radius_arcsec = check_number(radius_arcsec, "--radius", lo=0, lo_open=True, hi=600)
    threshold_fraction = check_number(
        threshold_fraction, "--threshold", lo=0, lo_open=True, hi=1, hi_open=True
    )
    ra_deg = check_number(ra_deg, "--ra", lo=0, hi=360)
    dec_deg = check_number(dec_deg, "--dec", lo=-90, hi=90)
    model_id = f"{field_id}/{model}"
    store = LensMapStore(lake)
    kappa, gamma = store.load(model_id, "kappa"), store.load(model_id, "gamma")
    if kappa is None or gamma is None:
        raise GccatError(f"lens model '{model_id}' has no kappa and gamma maps in the lake")
    m = store.models()
    norm = m.filter(pc.equal(m["model_id"], model_id))["dls_ds"][0].as_py()
    s = float(_scale(lake, field_id, np.array([z_source]), norm)[0])
    data, header = read_fits_image(image_path, "arc image")
    wcs, scale_arcsec = celestial_wcs(header, image_path)
    x0, y0 = (float(v) for v in wcs.world_to_pixel_values(ra_deg, dec_deg))
    pix = arc_pixels(data, x0, y0, radius_arcsec / scale_arcsec, threshold_fraction)
    iy, ix = np.nonzero(pix)
    ra, dec = wcs.pixel_to_world_values(ix, iy)
    ra = np.mod(ra, 360.0)
    mids = np.full(ra.size, model_id)
    k = store.sample(mids, np.full(ra.size, "kappa"), ra, dec) * s
    g = store.sample(mids, np.full(ra.size, "gamma"), ra, dec) * s
    change = mu_pixel_change(kappa, gamma, ra, dec, np.full(ra.size, s))
    abs_mu = np.abs(np.asarray(magnification(k, g), float))
    abs_mu[~(change <= MU_PIXEL_CHANGE_MAX)] = np.nan  # NaN off the map or mu undefined
    summary = arc_magnification_summary(abs_mu, data[iy, ix])
    row = {
        "arc": [arc],
        "ra": [ra_deg],
        "dec": [dec_deg],
        "radius_arcsec": [radius_arcsec],
        "z_source": [z_source],
        "threshold_fraction": [threshold_fraction],
        "n_pixels": [int(pix.sum())],
        "area_arcsec2": [float(pix.sum()) * scale_arcsec**2],
        **{key: [v] for key, v in summary.items()},
        "image": [str(image_path)],
        "image_sha256": [sha256_file(image_path)],
    }
    options = {"run": "arc-magnification", "arc": arc, "z_source": z_source, "threshold": threshold_fraction}
    if plot is not None:
        from catalog.lensing.plots import plot_arc

        options["plot"] = plot_arc(
            data, pix, (x0, y0), radius_arcsec / scale_arcsec, scale_arcsec, summary, plot, title=arc
        )
    out = _write(lake, ARC_MAGNIFICATIONS, "arc_magnifications", row, field_id, model, options, command)
    return out.to_pylist()[0]
