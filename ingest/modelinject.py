"""``gccat inject-model``: full-model injection of an arc (the Firefly Sparkle study) into an
image, the components' fluxes and their injection errors in the lake.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa

from catalog.checks import check_name, check_number
from catalog.constants import MODEL_INJECT_N, MODEL_INJECT_STAMP_ARCSEC
from catalog.errors import GccatError
from catalog.images.modelinject import COMPONENT_KINDS, Component, model_injection
from catalog.lake import IngestKind, Lake, new_ingest_id
from catalog.lake.schemas import MODEL_INJECTION_COMPONENTS, MODEL_INJECTION_RUNS

#: Columns of a model table; the Sersic ones are needed for sersic components only.
MODEL_COLUMNS = ("component", "kind", "ra", "dec")
SERSIC_COLUMNS = ("r_eff_arcsec", "sersic_n", "ellipticity", "theta_deg")


def _sersic(row, colnames, where: str, path, pixel_scale_arcsec: float) -> dict:
    """The Sersic parameters of a model row, checked; r_eff in pixels."""
    for c in SERSIC_COLUMNS:
        if c not in colnames:
            raise GccatError(f"{where}: a sersic component needs column {c!r}", file=path)
    r_eff = check_number(float(row["r_eff_arcsec"]), f"{where} r_eff_arcsec", lo=0, lo_open=True, hi=60)
    return {
        "r_eff_pix": r_eff / pixel_scale_arcsec,
        "sersic_n": check_number(float(row["sersic_n"]), f"{where} sersic_n", lo=0.3, hi=8),
        "ellipticity": check_number(float(row["ellipticity"]), f"{where} ellipticity", lo=0, hi=0.95),
        "theta_deg": check_number(float(row["theta_deg"]), f"{where} theta_deg", lo=-360, hi=360),
    }


def read_model(path, wcs, pixel_scale_arcsec: float, centre) -> tuple[list[Component], tuple[float, float]]:
    """The components of a model table (CSV, ECSV, FITS or VOTable read by astropy): columns
    ``component``, ``kind`` (point or sersic), ``ra``, ``dec`` (deg) and, for sersic rows,
    ``r_eff_arcsec``, ``sersic_n``, ``ellipticity`` (1 - b/a) and ``theta_deg`` (major axis from
    the image's +x axis, counter-clockwise). Returns the components with pixel offsets from the
    centre (``centre`` = (RA, Dec), default the mean component position) and that centre in
    pixels.
    """
    from astropy.table import Table

    path = Path(path)
    if not path.is_file():
        raise GccatError("no such model table", file=path)
    try:
        t = Table.read(path, format="ascii.csv" if path.suffix.lower() == ".csv" else None)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise GccatError(f"cannot read the model table: {exc}", file=path) from None
    missing = [c for c in MODEL_COLUMNS if c not in t.colnames]
    if missing:
        raise GccatError(f"the model table has no column {missing[0]!r} (needs {', '.join(MODEL_COLUMNS)})",
                         file=path)  # fmt: skip
    if len(t) == 0:
        raise GccatError("the model table has no rows", file=path)
    ra, dec = np.asarray(t["ra"], float), np.asarray(t["dec"], float)
    if centre is None:
        centre = (float(np.mean(ra)), float(np.mean(dec)))
    x0, y0 = (float(v) for v in wcs.world_to_pixel_values(centre[0], centre[1]))
    xs, ys = wcs.world_to_pixel_values(ra, dec)
    comps, names = [], set()
    for i, row in enumerate(t, start=1):
        name, kind = str(row["component"]).strip(), str(row["kind"]).strip().lower()
        where = f"row {i} ({name})"
        if kind not in COMPONENT_KINDS:
            raise GccatError(f"{where}: kind must be one of {', '.join(COMPONENT_KINDS)}, not {kind!r}",
                             file=path, column="kind")  # fmt: skip
        if name in names:
            raise GccatError(f"{where}: component names must be unique", file=path, column="component")
        names.add(name)
        if not (np.isfinite(xs[i - 1]) and np.isfinite(ys[i - 1])):
            raise GccatError(f"{where}: ra/dec are not finite", file=path, column="ra")
        extra = _sersic(row, t.colnames, where, path, pixel_scale_arcsec) if kind == "sersic" else {}
        comps.append(Component(name, kind, float(xs[i - 1]) - x0, float(ys[i - 1]) - y0, **extra))
    return comps, (x0, y0)


def run_model_injection(
    lake: Lake,
    image_path,
    model_path,
    *,
    psf_path,
    field_id: str,
    arc: str,
    band: str | None = None,
    centre: tuple[float, float] | None = None,
    n_inject: int = MODEL_INJECT_N,
    stamp_arcsec: float = MODEL_INJECT_STAMP_ARCSEC,
    seed: int = 0,
    zeropoint_ab: float | None = None,
    command: str = "",
) -> dict:
    """Fit an arc's model (point sources and Sersic components, fluxes free) at its place, inject
    it at ``n_inject`` random places in a ``stamp_arcsec`` square around it, refit each copy, and
    write each component's flux, formal error and injection error (biweight scale of refitted
    minus injected flux) to ``model_injection_components`` (nJy).

    Returns the run row with ``components`` (the component rows).
    """
    from ingest.images import read_image
    from ingest.pointsources import _check_psf_fits, _read_psf, check_seed

    check_name(field_id, "field id")
    check_name(arc, "arc name")
    n_inject = check_number(n_inject, "--n", lo=10, hi=10_000, integer=True)
    stamp_arcsec = check_number(stamp_arcsec, "--stamp", lo=0, lo_open=True, hi=120)
    seed = check_seed(seed)
    image = read_image(image_path, band=band, zeropoint_ab=zeropoint_ab)
    psf = _read_psf(psf_path)
    _check_psf_fits(psf, image, psf_path)
    comps, (x0, y0) = read_model(model_path, image.wcs, image.pixel_scale_arcsec, centre)
    err = image.error
    if err is None and image.weight is not None:
        with np.errstate(divide="ignore"):
            err = np.where(image.weight > 0, 1 / np.sqrt(image.weight), np.inf)
    r = model_injection(image.data, psf, comps, x0, y0, stamp_pix=stamp_arcsec / image.pixel_scale_arcsec,
                        n_inject=n_inject, rng=np.random.default_rng(seed), error=err)  # fmt: skip
    f = image.njy_per_unit
    ingest_id = new_ingest_id()
    ra0, dec0 = (float(v) for v in image.wcs.pixel_to_world_values(x0, y0))
    cra, cdec = image.wcs.pixel_to_world_values(np.array([x0 + c.dx for c in comps]),
                                                np.array([y0 + c.dy for c in comps]))  # fmt: skip
    rows = [
        {
            "run_id": ingest_id,
            "field_id": field_id,
            "arc": arc,
            "component": c.name,
            "kind": c.kind,
            "ra": float(np.mod(cra[k], 360)),
            "dec": float(cdec[k]),
            "band": image.band,
            "flux_njy": float(r["flux"][k] * f),
            "flux_err_formal_njy": float(r["flux_err_formal"][k] * f),
            "flux_err_injection_njy": float(r["flux_error_biweight"][k] * f),
            "flux_bias_injection_njy": float(r["flux_bias_biweight"][k] * f),
            "ingest_id": ingest_id,
        }
        for k, c in enumerate(comps)
    ]
    run = {
        "run_id": ingest_id,
        "field_id": field_id,
        "arc": arc,
        "band": image.band,
        "ra": float(np.mod(ra0, 360)),
        "dec": dec0,
        "image": str(image.path.resolve()),
        "image_sha256": image.sha256,
        "psf": str(Path(psf_path).resolve()),
        "model_file": str(Path(model_path).resolve()),
        "stamp_arcsec": stamp_arcsec,
        "n_injections": len(r["x"]),
        "seed": seed,
        "params": json.dumps({"njy_per_unit": f, "n_requested": n_inject, "fit": "linear fluxes + constant"}),
        "ingest_id": ingest_id,
    }
    with lake.transaction(IngestKind.INJECTION, ingest_id=ingest_id) as tx:
        tx.append("model_injection_components", pa.Table.from_pylist(rows, schema=MODEL_INJECTION_COMPONENTS))
        tx.append("model_injection_runs", pa.Table.from_pylist([run], schema=MODEL_INJECTION_RUNS))
        tx.commit(
            name=f"{arc}/{image.band}/inject-model",
            field_id=field_id,
            source_path=image.path.resolve(),
            sha256=image.sha256,
            n_rows=len(rows),
            command=command,
            options={
                "run": "inject-model",
                "arc": arc,
                "seed": seed,
                "n": n_inject,
                "stamp_arcsec": stamp_arcsec,
            },
        )
    return {**run, "components": rows}
