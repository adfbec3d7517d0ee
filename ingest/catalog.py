"""Ingestion into the lake: catalogs of sources with multi-band photometry, fields, bands.

Each function validates the whole input first (a bad file writes nothing), then writes in
one :meth:`catalog.lake.Lake.transaction`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from catalog import bands as bandreg
from catalog.errors import GccatError
from catalog.lake import Lake, check_name, command_line, new_ingest_id, sha256_file
from catalog.photometry import abmag_to_flux, mag_err_to_flux_err
from catalog.query import to_arrow
from catalog.schemas import DETECTIONS, FIELDS, PHOTOMETRY, QUALITY_ZERO_ERROR
from catalog.spatial import healpix29

from .mapping import ColumnMapping, infer_mapping, load_mapping
from .readers import RawTable, read_catalog_file

Progress = Callable[[str, float], None]


@dataclass
class IngestReport:
    """What an ingest did (or, with ``skipped``, why it did nothing)."""

    ingest_id: str | None
    lake_version: int
    n_rows: int = 0
    n_photometry: int = 0
    bands: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    skipped: bool = False
    superseded: list[str] = field(default_factory=list)
    mapping: dict | None = None


def constant(value: str, n: int) -> pa.Array:
    """A string column holding ``value`` n times, built from its buffers (no n Python objects)."""
    raw = value.encode()
    offsets = np.arange(n + 1, dtype=np.int32) * len(raw)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(raw * n))


def _first_bad(mask: np.ndarray) -> int:
    """1-based row number of the first True in ``mask``."""
    return int(np.flatnonzero(mask)[0]) + 1


def _as_float(raw: RawTable, column: str, what: str) -> np.ndarray:
    """A column as float64 (nulls -> NaN); non-numeric text is an error naming the row."""
    arr = raw.table[column].combine_chunks() if raw.table.num_rows else pa.array([], pa.float64())
    if pa.types.is_floating(arr.type) or pa.types.is_integer(arr.type):
        return arr.cast(pa.float64()).to_numpy(zero_copy_only=False)
    if pa.types.is_boolean(arr.type):
        raise GccatError(f"{what} is boolean, expected numbers", file=raw.path, column=column)
    vals = arr.cast(pa.string()).to_pylist()
    out = np.full(len(vals), np.nan)
    for i, v in enumerate(vals):
        if v is None or v.strip() == "":
            continue
        try:
            out[i] = float(v)
        except ValueError:
            raise GccatError(f"{what} value {v!r} is not a number", file=raw.path, column=column,
                             row=i + 1) from None
    return out


def _sexagesimal(raw: RawTable, col: str, vals: list, unit) -> np.ndarray:
    """Degrees from sexagesimal strings (vectorised; a bad value is reported by row)."""
    from astropy import units as u
    from astropy.coordinates import Angle

    present = np.array([v is not None for v in vals])
    deg = np.full(len(vals), np.nan)
    try:
        deg[present] = Angle([v for v in vals if v is not None], unit=unit).deg
        return deg
    except (ValueError, u.UnitsError):
        pass
    for i, v in enumerate(vals):  # find the first bad one for the message
        if v is None:
            continue
        try:
            Angle(v, unit=unit)
        except (ValueError, u.UnitsError):
            raise GccatError(f"cannot parse sexagesimal coordinate {v!r}", file=raw.path,
                             column=col, row=i + 1) from None
    raise GccatError("cannot parse the sexagesimal coordinates", file=raw.path, column=col)


def _coordinates(raw: RawTable, m: ColumnMapping) -> tuple[np.ndarray, np.ndarray]:
    """RA and Dec in degrees from degree or sexagesimal columns, validated."""
    from astropy import units as u

    out = []
    for col, unit in ((m.ra, u.hourangle), (m.dec, u.deg)):
        arr = raw.table[col].combine_chunks()
        if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
            vals = arr.to_pylist()
            has_sep = any(v is not None and (":" in v or " " in v.strip() or "h" in v)
                          for v in vals[:100])
            if not has_sep:  # numbers stored as text
                deg = _as_float(raw, col, "coordinate")
            else:
                deg = _sexagesimal(raw, col, vals, unit)
        else:
            deg = _as_float(raw, col, "coordinate")
            declared = raw.units.get(col, "")
            if declared in ("h", "hourangle", "hour"):
                deg = deg * 15.0
            elif declared == "rad":
                deg = np.degrees(deg)
        missing = ~np.isfinite(deg)
        if missing.any():
            raise GccatError("missing coordinate", file=raw.path, column=col,
                             row=_first_bad(missing))
        out.append(deg)
    ra, dec = out
    bad = (ra < 0) | (ra >= 360)
    if bad.any():
        i = _first_bad(bad)
        raise GccatError(f"RA {ra[i - 1]} outside [0, 360) deg", file=raw.path, column=m.ra, row=i)
    bad = (dec < -90) | (dec > 90)
    if bad.any():
        i = _first_bad(bad)
        raise GccatError(f"Dec {dec[i - 1]} outside [-90, 90] deg", file=raw.path, column=m.dec,
                         row=i)
    return ra, dec


def _source_ids(raw: RawTable, m: ColumnMapping, warnings: list[str]) -> pa.Array:
    n = raw.table.num_rows
    if m.id is None:
        warnings.append("no id column: source ids are the 1-based row numbers")
        return pa.array(np.arange(1, n + 1).astype(str))
    arr = raw.table[m.id].combine_chunks()
    if arr.null_count:
        raise GccatError("missing source id", file=raw.path, column=m.id,
                         row=_first_bad(arr.is_null().to_numpy(zero_copy_only=False)))
    ids = pc.utf8_trim_whitespace(arr.cast(pa.string()))
    if pc.count_distinct(ids).as_py() != n:
        ids_np = np.asarray(ids.to_numpy(zero_copy_only=False))
        order = np.argsort(ids_np, kind="stable")
        srt = ids_np[order]
        dup_pos = np.flatnonzero(srt[1:] == srt[:-1])
        first_second = int(order[dup_pos + 1].min())
        raise GccatError(f"duplicate source id {ids_np[first_second]!r}", file=raw.path,
                         column=m.id, row=first_second + 1)
    return ids


def _photometry(raw: RawTable, m: ColumnMapping, det_ids: pa.Array, field_id: str,
                ingest_id: str, warnings: list[str]) -> pa.Table:
    """The long photometry table (one row per source and band with a value), in nJy."""
    parts = []
    n_rows = raw.table.num_rows
    # Constant columns built once at full length; each band takes a zero-copy slice.
    field_col, method_col = constant(field_id, n_rows), constant(m.method, n_rows)
    ingest_col = constant(ingest_id, n_rows)
    for b in m.bands.values():
        value = _as_float(raw, b.value, f"{b.band} {b.kind}")
        err = (_as_float(raw, b.error, f"{b.band} error") if b.error
               else np.full(len(value), np.nan))
        if np.isinf(value).any():
            raise GccatError("infinite value", file=raw.path, column=b.value,
                             row=_first_bad(np.isinf(value)))
        neg = err < 0
        if neg.any():
            i = _first_bad(neg)
            raise GccatError(f"negative error {err[i - 1]}", file=raw.path,
                             column=b.error, row=i)
        if b.kind == "mag":
            sentinel = np.abs(value) >= 90
            if sentinel.any():
                warnings.append(f"{b.value}: {int(sentinel.sum())} magnitudes >= 90 "
                                "(non-detection sentinels) treated as missing")
                value = np.where(sentinel, np.nan, value)
            flux = abmag_to_flux(value)
            flux_err = mag_err_to_flux_err(value, err)
        else:
            flux = value * b.factor_to_njy
            flux_err = err * b.factor_to_njy
        uplim = np.zeros(len(flux), bool)
        if b.upper_limit:
            ul = raw.table[b.upper_limit].combine_chunks()
            uplim = np.asarray(ul.cast(pa.bool_()).fill_null(False).to_numpy(zero_copy_only=False))
        keep = np.isfinite(flux)
        zero = keep & (flux_err == 0)
        if zero.any():
            warnings.append(f"{b.error}: {int(zero.sum())} errors of exactly 0 kept as published "
                            f"(quality flag {QUALITY_ZERO_ERROR}; fits add an error floor)")
        idx = np.flatnonzero(keep)
        k = len(idx)
        parts.append(pa.table({
            "detection_id": det_ids if k == len(flux) else det_ids.take(pa.array(idx)),
            "field_id": field_col.slice(0, k),
            "band": constant(b.band, k),
            "flux_njy": flux[idx],
            "flux_err_njy": pa.array(flux_err[idx], from_pandas=True),
            "is_upper_limit": uplim[idx],
            "method": method_col.slice(0, k),
            "aperture_radius_arcsec": (pa.nulls(k, pa.float64()) if m.aperture_radius_arcsec is None
                                       else pa.array(np.full(k, float(m.aperture_radius_arcsec)))),
            "mw_corrected": np.full(k, m.mw_corrected),
            "quality": np.where(zero[idx], QUALITY_ZERO_ERROR, 0).astype(np.int32),
            "ingest_id": ingest_col.slice(0, k),
        }, schema=PHOTOMETRY))
    if not parts:
        return PHOTOMETRY.empty_table()
    return pa.concat_tables(parts)


def _extras(raw: RawTable, m: ColumnMapping) -> pa.Array | None:
    """The unmapped columns of each row as one JSON object (``detections.extra``).

    The column names travel as Arrow struct field names, never as SQL text: a header can
    hold any characters (quotes, ``:=``, SQL) and still only ever becomes a JSON key.
    """
    cols = [c for c in raw.table.column_names if c not in m.used_columns()]
    if not cols:
        return None
    from catalog.sandbox import sandboxed_connection

    packed = pa.StructArray.from_arrays([raw.table[c].combine_chunks() for c in cols], names=cols)
    con = sandboxed_connection()  # reads only the registered Arrow table
    con.register("extra", pa.table({"s": packed}))
    out = to_arrow(con.sql("SELECT to_json(s) AS j FROM extra"))
    return out["j"].combine_chunks().cast(pa.string())


def read_and_map(path, *, mapping_file=None, flux_unit: str = "nJy",
                 mw_corrected: bool = False) -> tuple[RawTable, ColumnMapping]:
    """Read a catalog file and work out its column mapping (no lake needed)."""
    raw = read_catalog_file(path)
    names = raw.table.column_names
    if mapping_file:
        m = load_mapping(raw.path, mapping_file, names, raw.units, flux_unit=flux_unit,
                         mw_corrected=mw_corrected)
    else:
        m = infer_mapping(raw.path, names, raw.units, flux_unit=flux_unit,
                          mw_corrected=mw_corrected)
    return raw, m


def detections_table(field_id: str, catalog: str, source_ids, ra: np.ndarray, dec: np.ndarray,
                     ingest_id: str, *, z=None, class_=None, flags=None, extra=None,
                     snr=None) -> pa.Table:
    """Rows of ``detections`` (ids ``field_id/catalog/source_id``, healpix29), sorted by
    healpix29 so that cone searches skip most row groups. Missing optional columns are NULL."""
    source_ids = pa.array(source_ids, pa.string()) if not isinstance(source_ids, pa.Array) \
        else source_ids
    n = len(source_ids)

    def opt(value, type_):
        if value is None:
            return pa.nulls(n, type_)
        return value if isinstance(value, pa.Array) else pa.array(value, type_, from_pandas=True)

    return pa.table({
        "detection_id": pc.binary_join_element_wise(pa.scalar(f"{field_id}/{catalog}/"),
                                                    source_ids, ""),
        "field_id": constant(field_id, n), "catalog": constant(catalog, n),
        "source_id": source_ids, "ra": ra, "dec": dec,
        "healpix29": healpix29(ra, dec) if n else np.zeros(0, np.int64),
        "z": opt(z, pa.float64()), "class": opt(class_, pa.string()),
        "flags": opt(flags, pa.int64()), "extra": opt(extra, pa.string()),
        "snr": opt(snr, pa.float64()), "ingest_id": constant(ingest_id, n),
    }).cast(DETECTIONS).sort_by("healpix29")


def read_positions(path: str | os.PathLike, extra: Sequence[str] = ()) -> pa.Table:
    """``source_id``, ``ra``, ``dec`` (deg) of a catalog file, validated like an ingest, plus
    the columns named in ``extra`` that the file has (case-insensitive)."""
    raw, m = read_and_map(path)
    ra, dec = _coordinates(raw, m)
    cols = {"source_id": _source_ids(raw, m, []), "ra": ra, "dec": dec}
    names = {c.lower(): c for c in raw.table.column_names}
    for e in extra:
        if e.lower() in names:
            cols[e] = _as_float(raw, names[e.lower()], e)
    return pa.table(cols)


def ingest_catalog(lake: Lake, path: str | os.PathLike, *, field_id: str, name: str,
                   mapping_file: str | os.PathLike | None = None, replace: bool = False,
                   z: float | None = None, flux_unit: str = "nJy", mw_corrected: bool = False,
                   progress: Progress | None = None, command: str | None = None,
                   lock_timeout_s: float = 600.0) -> IngestReport:
    """Ingest a catalog of sources with multi-band photometry into ``detections``/``photometry``.

    Parameters
    ----------
    lake : Lake
        The lake to write to.
    path : path
        CSV (``#`` comments allowed), ECSV, FITS, VOTable or Parquet file.
    field_id : str
        Field the sources belong to (a simple name; registered if new).
    name : str
        Catalog name, unique within the field; part of every ``detection_id``.
    mapping_file : path, optional
        TOML column mapping; without it the mapping is inferred from the column names.
    replace : bool
        Supersede the live ingest of the same ``name`` in the field, in the same commit.
    z : float, optional
        Redshift for sources whose catalog gives none.
    flux_unit : str
        Unit of flux columns that declare none (``nJy``, ``uJy``, ``mJy``, ``Jy``).
    mw_corrected : bool
        The fluxes are already corrected for Milky Way extinction.
    progress : callable, optional
        Called as ``progress(stage, fraction_done)``.

    Returns
    -------
    IngestReport
    """
    step = progress or (lambda stage, frac: None)
    check_name(field_id, "field id")
    check_name(name, "catalog name")
    path = Path(path)
    step("reading", 0.0)
    raw, m = read_and_map(path, mapping_file=mapping_file, flux_unit=flux_unit,
                          mw_corrected=mw_corrected)
    step("validating", 0.15)
    warnings: list[str] = []
    ra, dec = _coordinates(raw, m)
    source_ids = _source_ids(raw, m, warnings)
    n = raw.table.num_rows
    zcol = _as_float(raw, m.z, "redshift") if m.z else np.full(n, np.nan)
    if z is not None:
        zcol = np.where(np.isfinite(zcol), zcol, z)
    if m.z and (zcol[np.isfinite(zcol)] < 0).any():
        bad = np.isfinite(zcol) & (zcol < 0)
        raise GccatError("negative redshift", file=path, column=m.z, row=_first_bad(bad))
    sha = sha256_file(path)
    step("building", 0.3)
    ingest_id = new_ingest_id()
    flags = _as_float(raw, m.flags, "flags") if m.flags else None
    detections = detections_table(
        field_id, name, source_ids, ra, dec, ingest_id, z=zcol,
        class_=raw.table[m.class_].cast(pa.string()) if m.class_ else None,
        flags=(pa.array(flags, from_pandas=True).cast(pa.int64()) if flags is not None else None),
        extra=_extras(raw, m))
    det_ids = pc.binary_join_element_wise(pa.scalar(f"{field_id}/{name}/"), source_ids, "")
    used_bands = sorted(m.bands)
    step("photometry", 0.4)
    phot = _photometry(raw, m, det_ids, field_id, ingest_id, warnings)
    options = {"mapping": m.as_dict(), "z": z, "flux_unit": flux_unit, "format": raw.format,
               "bands_measured": used_bands}
    with lake.transaction("catalog", lock_timeout_s, ingest_id=ingest_id) as tx:
        same = lake.live_named(field_id, name)
        if same.num_rows and same["sha256"][0].as_py() == sha:
            return IngestReport(same["ingest_id"][0].as_py(), lake.version(), skipped=True,
                                n_rows=same["n_rows"][0].as_py(), bands=used_bands,
                                mapping=m.as_dict())
        if same.num_rows and not replace:
            raise GccatError(f"catalog '{name}' is already in field '{field_id}' (ingest "
                             f"{same['ingest_id'][0].as_py()}) from another file; pass --replace "
                             "to supersede it", file=path)
        register_field_and_bands(lake, tx, field_id, used_bands, ra, dec, warnings)
        step("writing detections", 0.5)
        tx.append("detections", detections)
        step("writing photometry", 0.7)
        tx.append("photometry", phot)
        step("committing", 0.95)
        version = tx.commit(name=name, field_id=field_id, source_path=path.resolve(), sha256=sha,
                            n_rows=n, n_photometry=phot.num_rows,
                            command=command or command_line(),
                            supersedes=same["ingest_id"].to_pylist(), options=options,
                            warnings=warnings)
    step("done", 1.0)
    return IngestReport(tx.ingest_id, version, n, phot.num_rows, used_bands, warnings,
                        superseded=same["ingest_id"].to_pylist(), mapping=m.as_dict())


def register_field_and_bands(lake: Lake, tx, field_id: str, used_bands: list[str],
                              ra: np.ndarray, dec: np.ndarray, warnings: list[str]) -> None:
    """Add the field (if new, centred on its sources) and new bands to this transaction."""
    known_fields = set(lake.live("fields")["field_id"].to_pylist())
    known_bands = set(lake.live("bands")["band"].to_pylist())
    if field_id not in known_fields:
        warnings.append(f"field '{field_id}' was not in the lake: registered with its centre at "
                        "the sources' mean position (load field facts with 'gccat ingest fields')")
        vec = np.array([np.cos(np.radians(dec)) * np.cos(np.radians(ra)),
                        np.cos(np.radians(dec)) * np.sin(np.radians(ra)), np.sin(np.radians(dec))])
        mx, my, mz = vec.mean(axis=1)
        row = {f.name: [None] for f in FIELDS}
        row.update(field_id=[field_id], ra_center=[float(np.degrees(np.arctan2(my, mx)) % 360)],
                   dec_center=[float(np.degrees(np.arctan2(mz, np.hypot(mx, my))))],
                   ingest_id=[tx.ingest_id])
        tx.append("fields", pa.table(row, schema=FIELDS))
    new = [b for b in used_bands if b not in known_bands]
    if new:
        tx.append("bands", bandreg.band_rows(new, tx.ingest_id))


def _split(v) -> list[str]:
    return [] if v is None or str(v).strip() == "" else [s.strip() for s in str(v).split("|")]


def ingest_fields(lake: Lake, path: str | os.PathLike, *, command: str | None = None
                  ) -> IngestReport:
    """Ingest a table of cluster fields (``cluster_fields.csv`` layout; ``|`` separates lists).

    Columns: ``field_id, name, aliases, ra_center_deg, dec_center_deg, z_cluster, ebv_mw,
    kpc_per_arcsec, pixel_scale_arcsec, bands, depth_note, source``; all but ``field_id`` and
    the centre are optional. The bands listed are registered too.
    """
    path = Path(path)
    raw = read_catalog_file(path)
    t = raw.table
    names = {c.lower(): c for c in t.column_names}
    if "field_id" not in names:
        raise GccatError("no field_id column", file=path, column="field_id")
    rows = t.to_pylist()
    out = {f.name: [] for f in FIELDS}
    all_bands: list[str] = []

    def num(r, i, key, lo=None, hi=None):
        col = names.get(key)
        v = None if col is None else r[col]
        if v is None or str(v).strip() == "":
            return None
        try:
            x = float(v)
        except ValueError:
            raise GccatError(f"{v!r} is not a number", file=path, column=col, row=i) from None
        if (lo is not None and x < lo) or (hi is not None and x > hi):
            raise GccatError(f"{x} outside [{lo}, {hi}]", file=path, column=col, row=i)
        return x

    for i, r in enumerate(rows, start=1):
        fid = str(r[names["field_id"]] or "").strip()
        try:
            check_name(fid, "field id")
        except GccatError as exc:
            raise GccatError(exc.message, file=path, column=names["field_id"], row=i) from None
        band_list = _split(r.get(names.get("bands", ""), None))
        for b in band_list:
            if bandreg.lookup(b) is None:
                _known_band_error(path, names.get("bands"), i, b)
        all_bands += [bandreg.lookup(b).band for b in band_list]
        ra = num(r, i, "ra_center_deg", 0, 360) if "ra_center_deg" in names else num(
            r, i, "ra_center", 0, 360)
        dec = num(r, i, "dec_center_deg", -90, 90) if "dec_center_deg" in names else num(
            r, i, "dec_center", -90, 90)
        pix = []
        for s in _split(r.get(names.get("pixel_scale_arcsec", ""), None)):
            try:
                pix.append(float(s))
            except ValueError:
                raise GccatError(f"{s!r} is not a number", file=path,
                                 column=names["pixel_scale_arcsec"], row=i) from None
        out["field_id"].append(fid)
        out["name"].append(r.get(names.get("name", ""), None))
        out["aliases"].append(_split(r.get(names.get("aliases", ""), None)))
        out["ra_center"].append(ra)
        out["dec_center"].append(dec)
        out["z_cluster"].append(num(r, i, "z_cluster", 0, 20))
        out["ebv_mw"].append(num(r, i, "ebv_mw", 0, 10))
        out["kpc_per_arcsec"].append(num(r, i, "kpc_per_arcsec", 0))
        out["pixel_scale_arcsec"].append(pix)
        out["bands"].append([bandreg.lookup(b).band for b in band_list])
        out["depth_note"].append(r.get(names.get("depth_note", ""), None))
        out["source"].append(r.get(names.get("source", ""), None))
    if len(set(out["field_id"])) != len(out["field_id"]):
        dup = next(i for i, f in enumerate(out["field_id"]) if out["field_id"].index(f) != i)
        raise GccatError(f"duplicate field id {out['field_id'][dup]!r}", file=path,
                         column=names["field_id"], row=dup + 1)
    sha = sha256_file(path)
    with lake.transaction("fields") as tx:
        live = lake.ingests()
        same = live.filter(pc.and_(pc.equal(live["kind"], "fields"), pc.equal(live["sha256"], sha)))
        if same.num_rows:
            return IngestReport(same["ingest_id"][0].as_py(), lake.version(), skipped=True,
                                n_rows=len(rows))
        out["ingest_id"] = [tx.ingest_id] * len(rows)
        for k in ("name", "depth_note", "source"):
            out[k] = [None if v is None else str(v) for v in out[k]]
        tx.append("fields", pa.table(out, schema=FIELDS))
        bands_new = sorted(set(all_bands))
        if bands_new:
            tx.append("bands", bandreg.band_rows(bands_new, tx.ingest_id))
        version = tx.commit(name=path.stem, source_path=path.resolve(), sha256=sha,
                            n_rows=len(rows), command=command or command_line(),
                            options={"bands": bands_new})
    return IngestReport(tx.ingest_id, version, len(rows), bands=bands_new)


def _known_band_error(path, column, row, token):
    raise GccatError(f"unknown band '{token}'", file=path, column=column, row=row)


def ingest_bands(lake: Lake, names: list[str] | None = None, *,
                 command: str | None = None) -> IngestReport:
    """Register filters (default: every filter gccat knows) with their sedpy wavelengths."""
    names = names or sorted(bandreg.known_bands())
    bad = [n for n in names if bandreg.lookup(n) is None]
    if bad:
        raise GccatError(f"unknown band '{bad[0]}'", column="band")
    names = [bandreg.lookup(n).band for n in names]
    with lake.transaction("bands") as tx:
        tx.append("bands", bandreg.band_rows(names, tx.ingest_id))
        version = tx.commit(name="bands", n_rows=len(names), command=command or command_line(),
                            options={"bands": names})
    return IngestReport(tx.ingest_id, version, len(names), bands=names)

