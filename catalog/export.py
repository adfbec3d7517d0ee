"""Export query results with their units: Parquet (+VOParquet), FITS, ECSV, VOTable, HATS.

Every export writes a manifest beside it (query, lake version, rows, sha256).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .errors import GccatError
from .lake import gccat_version, sha256_file
from .schemas import column_meta, with_metadata

FORMATS = ("parquet", "fits", "ecsv", "votable", "hats")
_VOT_NS = "{http://www.ivoa.net/xml/VOTable/v1.3}"


def arrow_to_astropy(table: pa.Table, flat: bool = False):
    """An astropy Table with each column's unit, description and UCD (``meta['ucd']``).

    With ``flat``, list columns become ``|``-joined strings and timestamps ISO strings (for
    formats without such types: FITS, VOTable).
    """
    from astropy.table import MaskedColumn, Table

    out = Table()
    for name in table.column_names:
        arr = table[name].combine_chunks()
        meta = column_meta(name)
        if pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type):
            if not flat:
                data = np.array(arr.to_pylist(), dtype=object)
                out[name] = data
                continue
            arr = pa.array(["|".join(map(str, v)) if v is not None else None
                            for v in arr.to_pylist()], pa.string())
        if pa.types.is_timestamp(arr.type):
            arr = pc.strftime(arr, format="%Y-%m-%dT%H:%M:%S")
        if pa.types.is_map(arr.type) or pa.types.is_struct(arr.type):
            arr = pa.array([json.dumps(v, default=str) for v in arr.to_pylist()])
        mask = arr.is_null().to_numpy(zero_copy_only=False)
        if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
            data = np.array(arr.fill_null("").to_pylist(), dtype=str)
        elif pa.types.is_boolean(arr.type):
            data = arr.fill_null(False).to_numpy(zero_copy_only=False)
        elif pa.types.is_floating(arr.type):
            data = arr.to_numpy(zero_copy_only=False)
        elif pa.types.is_integer(arr.type):
            data = arr.fill_null(0).to_numpy(zero_copy_only=False)
        else:
            data = np.array(arr.cast(pa.string()).fill_null("").to_pylist(), dtype=str)
        col = MaskedColumn(data, name=name, mask=mask if mask.any() else None,
                           unit=meta.unit or None, description=meta.description or None)
        if meta.ucd:
            col.meta["ucd"] = meta.ucd
        out[name] = col
    return out


def _votable_xml(table: pa.Table) -> bytes:
    """The VOParquet FIELD description of ``table`` (VOTable XML with a PARQUET element)."""
    from astropy.io.votable.tree import VOTableFile

    head = arrow_to_astropy(table.slice(0, 1), flat=True)
    vot = VOTableFile.from_table(head)
    for f in vot.resources[0].tables[0].fields:
        meta = column_meta(f.name)
        if meta.ucd:
            f.ucd = meta.ucd
    buf = io.BytesIO()
    vot.to_xml(buf)
    root = ET.fromstring(buf.getvalue())
    tab = root.find(f"{_VOT_NS}RESOURCE").find(f"{_VOT_NS}TABLE")
    tab.remove(tab.find(f"{_VOT_NS}DATA"))
    ET.SubElement(tab, f"{_VOT_NS}PARQUET", type="Parquet-local-XML")
    return ET.tostring(root, encoding="unicode", xml_declaration=True).encode()


def write_parquet(table: pa.Table, out: Path, extra_meta: dict[str, str] | None = None) -> None:
    """Parquet with per-column unit/ucd/description metadata and IVOA VOParquet metadata."""
    table = table.cast(with_metadata(table.schema))
    meta = dict(table.schema.metadata or {})
    meta[b"IVOA.VOTable-Parquet.version"] = b"1.0"
    meta[b"IVOA.VOTable-Parquet.content"] = _votable_xml(table)
    for name in table.column_names:  # astropy's Parquet reader sizes its string columns so
        if pa.types.is_string(table[name].type):
            longest = pc.max(pc.utf8_length(table[name])).as_py() or 1
            meta[f"table::len::{name}".encode()] = str(longest).encode()
    for k, v in (extra_meta or {}).items():
        meta[k.encode()] = v.encode()
    pq.write_table(table.replace_schema_metadata(meta), out)


def _write_fits(table: pa.Table, out: Path) -> None:
    from astropy.io import fits

    t = arrow_to_astropy(table, flat=True)
    hdu = fits.table_to_hdu(t)
    for i, name in enumerate(t.colnames, start=1):
        meta = column_meta(name)
        if meta.ucd:
            hdu.header[f"TUCD{i}"] = meta.ucd
        if meta.description:
            hdu.header[f"TCOMM{i}"] = meta.description[:68]
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(out, overwrite=True)


def _write_hats(table: pa.Table, out: Path, name: str) -> None:
    import lsdb

    if not {"ra", "dec"} <= set(table.column_names):
        raise GccatError("a HATS export needs 'ra' and 'dec' columns")
    flat = pa.table({n: (pa.array(["|".join(map(str, v)) if v is not None else None
                                   for v in table[n].to_pylist()])
                         if pa.types.is_list(table[n].type) else table[n])
                     for n in table.column_names})
    df = flat.to_pandas(types_mapper=None)
    cat = lsdb.from_dataframe(df, ra_column="ra", dec_column="dec", catalog_name=name)
    cat.write_catalog(out, catalog_name=name, overwrite=True)


def export_table(table: pa.Table, out: str | os.PathLike, fmt: str, *, query: str,
                 lake_root: str, lake_version: int, overwrite: bool = False) -> dict:
    """Write ``table`` in ``fmt`` to ``out`` and a manifest beside it; return the manifest.

    Parameters
    ----------
    table : pyarrow.Table
        The rows to export (units come from the schemas by column name).
    out : path
        Output file (a directory for ``hats``).
    fmt : {'parquet', 'fits', 'ecsv', 'votable', 'hats'}
    query, lake_root, lake_version
        Provenance written to the manifest.
    """
    if fmt not in FORMATS:
        raise GccatError(f"unknown export format '{fmt}' (choose from {', '.join(FORMATS)})")
    out = Path(out)
    if out.exists() and not overwrite:
        raise GccatError(f"{out} exists; pass --overwrite to replace it")
    if not out.parent.is_dir():
        raise GccatError(f"{out.parent} is not a directory")
    if out.exists() and out.is_dir() and fmt != "hats":
        raise GccatError(f"{out} is a directory")
    if out.exists() and fmt == "hats":
        shutil.rmtree(out) if out.is_dir() else out.unlink()
    provenance = {"gccat.query": query, "gccat.lake_version": str(lake_version),
                  "gccat.lake_root": lake_root}
    if fmt == "parquet":
        write_parquet(table, out, provenance)
    elif fmt == "fits":
        _write_fits(table, out)
    elif fmt == "ecsv":
        t = arrow_to_astropy(table)
        t.meta.update(provenance)
        t.write(out, format="ascii.ecsv", overwrite=True)
    elif fmt == "votable":
        t = arrow_to_astropy(table, flat=True)
        t.write(out, format="votable", overwrite=True)
    else:
        _write_hats(table, out, out.name)
    manifest = {
        "format": fmt, "path": str(out.resolve()), "query": query, "lake_root": lake_root,
        "lake_version": lake_version, "rows": table.num_rows, "sha256": sha256_file(out),
        "created_at": dt.datetime.now(dt.UTC).isoformat(), "gccat_version": gccat_version(),
        "columns": [{"name": n, **vars(column_meta(n))} for n in table.column_names],
    }
    manifest_path = (out / "gccat_manifest.json") if out.is_dir() else Path(
        str(out) + ".manifest.json")
    manifest_path.write_text(json.dumps(manifest, indent=1))
    return manifest
