"""``gccat ingest lens-map`` and ``lens-ensemble``: HFF-format lens-model maps (one model, or an
ensemble of realisations of one) into ``lens_models``/``lens_map_pixels``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from catalog.checks import Z_MAX, check_name, check_number
from catalog.errors import GccatError
from catalog.files import sha256_file
from catalog.lake import IngestKind, Lake, command_line
from catalog.lake.schemas import LENS_MAP_PIXELS, LENS_MODELS
from catalog.lensing import LensMap, kappa_gamma_from_deflection, read_hff_map, source_dls_ds
from catalog.lensing.maps import quantity_from_filename, split_quantity_suffix
from catalog.sky import healpix29
from ingest.catalog import (
    IngestReport,
    Progress,
    constant,
    ingest_identity,
    register_field_and_bands,
    repeat_of,
)
from ingest.images import open_fits

#: Quantities that are redshift-independent geometry of the lens (a constant map of them is a
#: uniform shift or a mass sheet, not a cluster lens model).
_NOT_CONSTANT = (
    "kappa",
    "gamma",
    "gamma1",
    "gamma2",
    "x-arcsec-deflect",
    "y-arcsec-deflect",
    "x-pixels-deflect",
    "y-pixels-deflect",
    "psi",
)


def check_map_values(m: LensMap) -> None:
    """Refuse a map that cannot be a lens model: no finite pixel, infinite pixels, or (for
    kappa, shear, deflections and potential) one value everywhere.

    NaN pixels (no model there) are kept; they become NULL values in ``lens_map_pixels``.
    """
    finite = np.isfinite(m.data)
    if not finite.any():
        raise GccatError(f"the {m.quantity} map has no finite pixel (all NaN)", file=m.path)
    n_inf = int(np.isinf(m.data).sum())
    if n_inf:
        raise GccatError(
            f"the {m.quantity} map has {n_inf} infinite pixels (use NaN where there is no model)", file=m.path
        )
    if m.quantity in _NOT_CONSTANT:
        vals = m.data[finite]
        if vals.size > 1 and vals.min() == vals.max():
            raise GccatError(
                f"the {m.quantity} map is constant ({vals[0]:g} on every finite pixel): not a lens model",
                file=m.path,
            )


def check_lens_options(dls_ds_norm: float, z_source: float | None) -> tuple[float, float | None]:
    """``--dls-ds`` in (0, 1] (D_ls < D_s for any source behind a lens) and ``--z-source`` in
    (0, Z_MAX] (checked against the cluster redshift once it is known).
    """
    dls_ds_norm = check_number(dls_ds_norm, "--dls-ds", lo=0, lo_open=True, hi=1)
    z_source = check_number(z_source, "--z-source", lo=0, lo_open=True, hi=Z_MAX, allow_none=True)
    return dls_ds_norm, z_source


def derive_maps(maps: dict[str, LensMap]) -> dict[str, tuple[LensMap, list[str]]]:
    """Maps gccat computes from the given ones: kappa/gamma from deflections, gamma from gamma1/2.

    Returns quantity -> (map, quantities it came from); given quantities are never replaced.
    """
    out: dict[str, tuple[LensMap, list[str]]] = {}
    if {"x-arcsec-deflect", "y-arcsec-deflect"} <= maps.keys():
        src = ["x-arcsec-deflect", "y-arcsec-deflect"]
        kappa, g1, g2, g = kappa_gamma_from_deflection(maps[src[0]], maps[src[1]])
        for m in (kappa, g1, g2, g):
            if m.quantity not in maps:
                out[m.quantity] = (m, src)
    if {"gamma1", "gamma2"} <= maps.keys() and "gamma" not in maps:
        g1, g2 = maps["gamma1"], maps["gamma2"]
        if g1.shape != g2.shape:
            raise GccatError("gamma1 and gamma2 maps differ in shape", file=g2.path)
        out["gamma"] = (
            LensMap("gamma", np.hypot(g1.data, g2.data), g1.wcs, g1.header, g1.path),
            ["gamma1", "gamma2"],
        )
    return out


def _pixels(model_id: str, field_id: str, m: LensMap) -> pa.Table:
    ny, nx = m.shape
    iy, ix = np.divmod(np.arange(nx * ny, dtype=np.int64), nx)
    ra, dec = m.wcs.pixel_to_world_values(ix, iy)
    ra = np.mod(ra, 360.0)
    n = nx * ny
    return pa.table(
        {
            "model_id": constant(model_id, n),
            "field_id": constant(field_id, n),
            "quantity": constant(m.quantity, n),
            "ix": ix.astype(np.int32),
            "iy": iy.astype(np.int32),
            "ra": ra,
            "dec": dec,
            "healpix29": healpix29(ra, dec),
            "value": pa.array(np.asarray(m.data, float).ravel(), from_pandas=True),
            "ingest_id": pa.nulls(n, pa.string()),
        }
    )


def _read_model(paths, quantity: str | None, step) -> tuple[dict[str, LensMap], dict, list[str]]:
    """The maps of one model (checked), the maps derived from them, and the files' sha256."""
    maps: dict[str, LensMap] = {}
    shas = []
    for p in paths:
        step(f"reading {Path(p).name}", 0.1)
        if Path(p).is_file():  # a file shorter than its header says is damaged, padding or not
            open_fits(p, "lens-map file").close()
        m = read_hff_map(p, quantity)
        check_map_values(m)
        if m.quantity in maps:
            raise GccatError(f"two maps of {m.quantity} given", file=p)
        maps[m.quantity] = m
        shas.append(sha256_file(Path(p)))
    derived = derive_maps(maps)
    for m, _ in derived.values():
        check_map_values(m)
    return maps, derived, shas


def _write_model(tx, model_id: str, field_id: str, model: str, maps, derived, meta: dict, step) -> int:
    """Append the pixels of one model's maps and return its lens_models rows (one per map)."""
    rows, n_pix = [], 0
    all_maps = [(m, False, []) for m in maps.values()] + [(m, True, src) for m, src in derived.values()]
    for k, (m, is_derived, src) in enumerate(all_maps):
        # a single model's stages are "writing <quantity>" (crash tests wait for them)
        label = m.quantity if meta.get("ensemble") is None else f"{model} {m.quantity}"
        step(f"writing {label}", 0.4 + 0.5 * k / len(all_maps))
        px = _pixels(model_id, field_id, m)
        px = px.set_column(
            px.schema.get_field_index("ingest_id"), "ingest_id", constant(tx.ingest_id, px.num_rows)
        )
        tx.append("lens_map_pixels", px.cast(LENS_MAP_PIXELS))
        n_pix += px.num_rows
        cra, cdec = m.wcs.pixel_to_world_values((m.shape[1] - 1) / 2, (m.shape[0] - 1) / 2)
        rows.append(
            {
                "model_id": model_id,
                "field_id": field_id,
                "model": model,
                **meta,
                "quantity": m.quantity,
                "derived": is_derived,
                "derived_from": src,
                "wcs_header": m.wcs.to_header().tostring(),
                "pixel_scale_arcsec": m.pixel_scale_arcsec,
                "nx": m.shape[1],
                "ny": m.shape[0],
                "ra_center": float(cra) % 360,
                "dec_center": float(cdec),
                "source_path": str(Path(m.path).resolve()) if m.path else None,
                "sha256": None if is_derived else sha256_file(Path(m.path)),
                "ingest_id": tx.ingest_id,
            }
        )
    tx.append("lens_models", pa.Table.from_pylist(rows, schema=LENS_MODELS))
    return n_pix


def _ingest_models(
    lake: Lake,
    groups: dict[str, tuple[dict, dict, list[str]]],
    *,
    field_id: str,
    name: str,
    ensemble: bool,
    team,
    version,
    dls_ds_norm: float,
    z_source,
    replace: bool,
    paths: list,
    step,
    command,
) -> IngestReport:
    """One commit of one model (``groups`` of one entry, model ``name``) or of an ensemble of
    realisations (models ``name.rNNN`` with ``ensemble = name``, ``realisation = NNN``).
    """
    shas = sorted(sha for _, _, group_shas in groups.values() for sha in group_shas)
    sha = "+".join(shas)
    with lake.transaction(IngestKind.LENS_MAP) as tx:
        fields = lake.live("fields")
        if z_source is not None:
            zc = fields.filter(pc.equal(fields["field_id"], field_id))["z_cluster"].to_pylist()
            dls_ds_norm = source_dls_ds(zc[0] if zc else None, z_source, field_id)
        quantities = sorted({q for maps, _, _ in groups.values() for q in maps})
        derived_q = sorted({q for _, derived, _ in groups.values() for q in derived})
        # what is stored depends on the files and on these (the normalisation resolved from
        # --z-source, each file's quantity, in the files' sha256 order, the metadata)
        stored_as = {
            "quantities": [
                q
                for _, q in sorted(
                    (s_, q) for maps, _, g_shas in groups.values() for s_, q in zip(g_shas, maps, strict=True)
                )
            ],
            "dls_ds": dls_ds_norm,
            "z_source": z_source,
            "team": team,
            "version": version,
        }
        if ensemble:
            stored_as["realisations"] = list(groups)
        options = {
            "quantities": quantities,
            "derived": derived_q,
            "dls_ds": dls_ds_norm,
            "z_source": z_source,
            "team": team,
            "version": version,
            "files": [str(p) for p in paths],
            "identity": ingest_identity(sha, stored_as),
            "identity_options": stored_as,
            **({"ensemble": name, "n_realisations": len(groups)} if ensemble else {}),
        }
        same = lake.live_named(field_id, name, kind=IngestKind.LENS_MAP)
        repeat = repeat_of(same, sha, options)
        if repeat == "same":
            return IngestReport(
                same["ingest_id"][0].as_py(), lake.version(), skipped=True, n_rows=same["n_rows"][0].as_py()
            )
        if same.num_rows and not replace:
            what = f" from these files with other options ({repeat})" if repeat != "other file" else ""
            noun = "lens-model ensemble" if ensemble else "lens model"
            raise GccatError(
                f"{noun} '{name}' is already in field '{field_id}'{what}; pass --replace to supersede it"
            )
        first = next(iter(next(iter(groups.values()))[0].values()))
        c_ra, c_dec = first.wcs.pixel_to_world_values((first.shape[1] - 1) / 2, (first.shape[0] - 1) / 2)
        register_field_and_bands(
            lake, tx, field_id, [], np.array([float(c_ra) % 360]), np.array([float(c_dec)]), []
        )
        n_pix = 0
        meta = {"team": team, "version": version, "dls_ds": dls_ds_norm, "z_source_norm": z_source}
        for k, (key, (maps, derived, _)) in enumerate(groups.items()):
            model = f"{name}.r{k:03d}" if ensemble else name
            extra = {"ensemble": name, "realisation": k, "realisation_key": key} if ensemble else {}
            n_pix += _write_model(
                tx, f"{field_id}/{model}", field_id, model, maps, derived, {**meta, **extra}, step
            )
        ver = tx.commit(
            name=name,
            field_id=field_id,
            source_path=Path(paths[0]).resolve(),
            sha256=sha,
            n_rows=n_pix,
            command=command or command_line(),
            supersedes=same["ingest_id"].to_pylist(),
            options=options,
        )
    step("done", 1.0)
    return IngestReport(
        tx.ingest_id,
        ver,
        n_pix,
        bands=quantities + derived_q,
        superseded=same["ingest_id"].to_pylist(),
    )


def ingest_lens_maps(
    lake: Lake,
    paths: list[str | os.PathLike],
    *,
    field_id: str,
    model: str,
    team: str | None = None,
    version: str | None = None,
    dls_ds_norm: float = 1.0,
    z_source: float | None = None,
    quantity: str | None = None,
    replace: bool = False,
    progress: Progress | None = None,
    command: str | None = None,
) -> IngestReport:
    """Ingest the maps of one lens model (HFF FITS), deriving kappa and gamma where needed.

    Parameters
    ----------
    paths : list of path
        HFF FITS maps; the quantity comes from the file name (``..._kappa.fits``,
        ``..._x-arcsec-deflect.fits``, ...) unless ``quantity`` is given (one file only).
    field_id, model : str
        Field and model name (model ids are ``field_id/model``).
    dls_ds_norm : float
        D_ls/D_s the maps are normalised to (HFF convention: 1).
    z_source : float, optional
        Alternatively, the source redshift the maps are normalised to (needs the field's
        z_cluster in the lake).
    replace : bool
        Supersede an earlier ingest of this model.
    """
    step = progress or (lambda stage, frac: None)
    check_name(field_id, "field id")
    check_name(model, "model name")
    dls_ds_norm, z_source = check_lens_options(dls_ds_norm, z_source)
    if not paths:
        raise GccatError("no lens map files given")
    if quantity and len(paths) > 1:
        raise GccatError("--quantity names the quantity of a single file")
    maps, derived, shas = _read_model(paths, quantity, step)
    step("deriving", 0.3)
    return _ingest_models(
        lake,
        {model: (maps, derived, shas)},
        field_id=field_id,
        name=model,
        ensemble=False,
        team=team,
        version=version,
        dls_ds_norm=dls_ds_norm,
        z_source=z_source,
        replace=replace,
        paths=list(paths),
        step=step,
        command=command,
    )


#: Largest number of realisations in one ensemble (HFF range maps come in 100s).
MAX_REALISATIONS = 1000


def realisation_groups(paths: list[str | os.PathLike]) -> dict[str, list[Path]]:
    """The files of each realisation of an ensemble, keyed and ordered by realisation.

    ``paths`` are files and folders (folders are searched recursively for FITS maps). Files in
    more than one folder are grouped by folder (the HFF range maps: one folder per
    realisation); files in one folder by their name without the quantity suffix
    (``real_007_kappa.fits`` and ``real_007_gamma.fits`` -> ``real_007``).
    """
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.is_file() and quantity_from_filename(f.name))
        else:
            files.append(p)
    if not files:
        raise GccatError(
            f"no lens-map FITS files (named ..._kappa.fits etc.) in {', '.join(map(str, paths))}"
        )
    for f in files:
        if quantity_from_filename(f.name) is None:
            raise GccatError("the file name does not end with an HFF quantity (e.g. _kappa.fits)", file=f)
    folders = {f.parent.resolve() for f in files}
    groups: dict[str, list[Path]] = {}
    if len(folders) > 1:
        root = Path(os.path.commonpath([str(d) for d in folders]))
        for f in files:
            groups.setdefault(str(f.parent.resolve().relative_to(root)), []).append(f)
    else:
        for f in files:
            groups.setdefault(split_quantity_suffix(f.name)[0] or f.name, []).append(f)
    return dict(sorted(groups.items()))


def ingest_lens_ensemble(
    lake: Lake,
    paths: list[str | os.PathLike],
    *,
    field_id: str,
    model: str,
    team: str | None = None,
    version: str | None = None,
    dls_ds_norm: float = 1.0,
    z_source: float | None = None,
    replace: bool = False,
    progress: Progress | None = None,
    command: str | None = None,
) -> IngestReport:
    """Ingest an ensemble of realisations of one lens model in one commit.

    Each realisation (:func:`realisation_groups`) becomes the lens model
    ``field_id/model.rNNN`` (NNN in realisation order) with ``ensemble = model``; the view
    ``lens_ensemble_at_detections`` gives kappa, gamma, mu and lambda_t at sources as the
    median and 16/84th percentiles over the realisations, ``photometry_demagnified_ensemble``
    and ``fit_results_ensemble`` propagate them into intrinsic fluxes and masses.

    Parameters
    ----------
    paths : list of path
        Folders (one per realisation, or one holding every realisation's files) or files.
    field_id, model : str
        Field and ensemble name.
    dls_ds_norm, z_source, team, version, replace
        As :func:`ingest_lens_maps`, for every realisation.
    """
    step = progress or (lambda stage, frac: None)
    check_name(field_id, "field id")
    check_name(model, "ensemble name")
    check_name(f"{model}.r000", "ensemble name")
    dls_ds_norm, z_source = check_lens_options(dls_ds_norm, z_source)
    if not paths:
        raise GccatError("no lens map files or folders given")
    files = realisation_groups(paths)
    if len(files) < 2:
        raise GccatError(f"an ensemble needs at least 2 realisations; found {len(files)} in the files given")
    if len(files) > MAX_REALISATIONS:
        raise GccatError(f"an ensemble holds at most {MAX_REALISATIONS} realisations; found {len(files)}")
    groups = {}
    quantities = None
    for k, (key, group) in enumerate(files.items()):
        step(f"reading realisation {key}", 0.3 * k / len(files))
        maps, derived, shas = _read_model(group, None, lambda stage, frac: None)
        q = sorted(maps) + sorted(derived)
        if quantities is not None and q != quantities:
            raise GccatError(
                f"realisation {key!r} has maps {', '.join(q)}, the first one {', '.join(quantities)}",
                file=group[0],
            )
        quantities = q
        if "kappa" not in q or "gamma" not in q:
            raise GccatError(
                f"realisation {key!r} gives neither kappa and gamma nor deflections", file=group[0]
            )
        groups[key] = (maps, derived, shas)
    return _ingest_models(
        lake,
        groups,
        field_id=field_id,
        name=model,
        ensemble=True,
        team=team,
        version=version,
        dls_ds_norm=dls_ds_norm,
        z_source=z_source,
        replace=replace,
        paths=[f for g in files.values() for f in g],
        step=step,
        command=command,
    )
