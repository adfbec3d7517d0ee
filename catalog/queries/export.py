"""Export query results with their units: Parquet (+VOParquet), FITS, ECSV, VOTable, CSV, HATS.

Every export writes a manifest beside it (query, lake version, rows, sha256, units). Exports
are written beside their target and renamed into place, and never go inside a gccat lake.

Units and UCDs come from the declarations in :mod:`catalog.lake.schemas`, written in each format's
own convention (see "Exports" in docs/design.md): VOTable 1.3 with CDS unit strings (a log
quantity ``dex(solMass)`` is ``[solMass]``), FITS ``TUNITn`` in the FITS standard's spelling
(``log(solMass)``), astropy's strings in ECSV, Arrow metadata and the manifest. Positions are
ICRS: a ``COOSYS`` in VOTables (also the one embedded in VOParquet) and ``RADESYS`` in FITS.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import glob
import io
import json
import os
import shutil
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from catalog.errors import GccatError
from catalog.files import sha256_file
from catalog.lake import MARKER, gccat_version
from catalog.lake.schemas import ColumnMeta, columns_meta, with_metadata

FORMATS = ("parquet", "fits", "ecsv", "votable", "csv", "hats")
#: File extensions and the format they mean (a path without an extension is a HATS directory).
EXTENSIONS = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".fits": "fits",
    ".fit": "fits",
    ".fts": "fits",
    ".ecsv": "ecsv",
    ".vot": "votable",
    ".votable": "votable",
    ".xml": "votable",
    ".csv": "csv",
}
VOTABLE_VERSION = "1.3"  # CDS units: the only VOTable unit syntax with a log unit ([solMass])
_VOT_NS = "{http://www.ivoa.net/xml/VOTable/v1.3}"
_ICRS_ID = "icrs"
_ISO = "%Y-%m-%dT%H:%M:%S"  # with %S, Arrow writes the microseconds of a timestamp[us]


def export_format(out: str | os.PathLike, fmt: str | None = None) -> str:
    """The format of an export to ``out``: ``fmt`` if given, else from the extension.

    Parameters
    ----------
    out : path
        The target; ``-`` is not a file.
    fmt : str, optional
        One of :data:`FORMATS`.

    Returns
    -------
    str
        One of :data:`FORMATS`.

    Raises
    ------
    GccatError
        For an unknown format, an extension that names another format than ``fmt`` (a HATS
        catalog is a directory: no file extension), or, without ``fmt``, an extension that
        names no format.
    """
    if str(out) == "-":
        raise GccatError(
            "an export needs a file or directory, not '-' (standard output: "
            "gccat sql with -o - or --print-format)"
        )
    suffix = Path(out).suffix.lower()
    by_ext = EXTENSIONS.get(suffix)
    if fmt is not None:
        fmt = fmt.lower()
        if fmt not in FORMATS:
            raise GccatError(f"unknown export format '{fmt}' (choose from {', '.join(FORMATS)})")
        if by_ext is not None and by_ext != fmt:
            raise GccatError(
                f"{out} has the extension of {by_ext}, not {fmt}: change the extension or --format"
            )
        return fmt
    if by_ext is not None:
        return by_ext
    if not suffix:
        return "hats"
    raise GccatError(
        f"cannot tell the format of {out} from its extension '{suffix}': use "
        f"{', '.join(EXTENSIONS)}, no extension for a HATS directory, or --format"
    )


def _flat_list(arr: pa.Array) -> pa.Array:
    """A list column as ``|``-joined strings (for formats without list types)."""
    from catalog.queries.textformat import cell_formatter

    f = cell_formatter(arr.type)
    return pa.array([None if v is None else f(v) for v in arr.to_pylist()], pa.string())


def _iso(arr: pa.Array) -> pa.Array:
    """Timestamps as ISO 8601 strings in UTC (FITS DATE and DALI timestamp syntax)."""
    if arr.type.tz is not None:
        arr = arr.cast(pa.timestamp(arr.type.unit, tz="UTC"))
    return pc.strftime(arr, format=_ISO)


def _is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


def _is_log_unit(unit: str) -> bool:
    return unit.startswith("dex(") or unit.startswith("[")


def format_unit(unit: str, syntax: str) -> str:
    """``unit`` (an astropy string, as the schemas hold it) in a standard's syntax.

    Parameters
    ----------
    unit : str
        An astropy unit string (``''`` for a dimensionless quantity).
    syntax : {'fits', 'vounit'}
        The FITS standard's spelling (``TUNITn``) or IVOA VOUnit 1.0 (HATS exports). Both write
        a log10 unit as the function ``log(...)`` (FITS 4.0 Table 6, VOUnit 1.0 Table 8):
        ``dex(solMass)`` is ``log(solMass)``.

    Returns
    -------
    str
        The unit in ``syntax``; VOUnit strings are checked by parsing them back with astropy's
        VOUnit parser (the argument of ``log``, which that parser lacks, on its own).

    Raises
    ------
    GccatError
        If ``unit`` has no spelling in ``syntax``.
    """
    from astropy import units as u

    parsed = u.Unit(unit)
    physical = parsed.physical_unit if isinstance(parsed, u.DexUnit) else parsed
    try:
        text = physical.to_string(syntax)
        if syntax == "vounit":
            u.Unit(text, format="vounit")
    except ValueError as exc:
        raise GccatError(f"the unit {unit!r} has no {syntax} spelling: {exc}") from None
    return f"log({text})" if isinstance(parsed, u.DexUnit) else text


def check_ucd(ucd: str) -> str:
    """``ucd`` if it is a valid UCD1+ string (astropy's controlled-vocabulary check), or ``''``.

    Raises
    ------
    GccatError
        For a string that is not UCD1+ (a word outside the vocabulary, a secondary-only word
        first, ...).
    """
    from astropy.io.votable.ucd import parse_ucd

    if ucd:
        try:
            parse_ucd(ucd, check_controlled_vocabulary=True, has_colon=False)
        except ValueError as exc:
            raise GccatError(f"{ucd!r} is not a valid UCD1+: {exc}") from None
    return ucd


def arrow_to_astropy(table: pa.Table, flat: bool = False, meta: dict[str, ColumnMeta] | None = None):
    """An astropy Table with each column's unit, description and UCD (``meta['ucd']``).

    Timestamps become ISO 8601 strings (UTC). With ``flat``, list columns become ``|``-joined
    strings (for formats without such types: FITS, VOTable). ``meta`` (from
    :func:`catalog.lake.schemas.columns_meta`) is looked up by column name when not given.
    """
    from astropy.table import Column, MaskedColumn, Table

    meta = meta if meta is not None else columns_meta(table.column_names)
    out = Table()
    for name in table.column_names:
        arr = table[name].combine_chunks()
        m = meta.get(name, ColumnMeta())
        if _is_list(arr.type):
            if not flat:
                out[name] = Column(
                    np.array(arr.to_pylist(), dtype=object),
                    name=name,
                    unit=m.unit or None,
                    description=m.description or None,
                )
                if m.ucd:
                    out[name].meta["ucd"] = m.ucd
                continue
            arr = _flat_list(arr)
        if pa.types.is_timestamp(arr.type):
            arr = _iso(arr)
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
        col = MaskedColumn(
            data,
            name=name,
            mask=mask if mask.any() else None,
            unit=m.unit or None,
            description=m.description or None,
        )
        if m.ucd:
            col.meta["ucd"] = m.ucd
        out[name] = col
    return out


def _is_position(ucd: str) -> bool:
    return ucd.split(";")[0] in ("pos.eq.ra", "pos.eq.dec")


def _annotate_votable(votable, fields, meta: dict[str, ColumnMeta], timestamps: set[str]) -> None:
    """UCDs, descriptions, ICRS (COOSYS) for positions and xtype for timestamps of FIELDs."""
    from astropy.io.votable.tree import CooSys

    positions = False
    for f in fields:
        m = meta.get(f.name, ColumnMeta())
        if m.ucd:
            f.ucd = m.ucd
        if m.description:
            f.description = m.description
        if _is_position(m.ucd):
            f.ref = _ICRS_ID
            positions = True
        if f.name in timestamps:
            f.xtype = "timestamp"  # DALI: ISO 8601 (here UTC)
    if positions:
        votable.resources[0].coordinate_systems.append(CooSys(ID=_ICRS_ID, system="ICRS"))


def _timestamps(schema: pa.Schema) -> set[str]:
    return {f.name for f in schema if pa.types.is_timestamp(f.type)}


def _new_votable():
    from astropy.io.votable.tree import Resource, VOTableFile

    vot = VOTableFile(version=VOTABLE_VERSION)
    vot.resources.append(Resource())
    return vot


def _votable_file(table: pa.Table, meta: dict[str, ColumnMeta]):
    """A VOTable 1.3 document of ``table`` (lists flattened, timestamps ISO strings)."""
    from astropy.io.votable.tree import TableElement

    vot = _new_votable()
    t = TableElement.from_table(vot, arrow_to_astropy(table, flat=True, meta=meta))
    vot.resources[0].tables.append(t)
    _annotate_votable(vot, t.fields, meta, _timestamps(table.schema))
    return vot


_VOT_TYPES = {
    pa.bool_(): "boolean",
    pa.int8(): "short",
    pa.int16(): "short",
    pa.int32(): "int",
    pa.int64(): "long",
    pa.uint8(): "unsignedByte",
    pa.float16(): "float",
    pa.float32(): "float",
    pa.float64(): "double",
}


def _voparquet_field(votable, name: str, t: pa.DataType, strlen: int, m: ColumnMeta):
    """The FIELD describing one Parquet column (lists: variable-length arrays)."""
    from astropy import units as u
    from astropy.io.votable.tree import Field

    arraysize = None
    if _is_list(t):
        t, arraysize = t.value_type, "*"
    if t in _VOT_TYPES:
        datatype = _VOT_TYPES[t]
    else:  # strings (and timestamps, written as ISO strings): as long as the longest value
        datatype = "unicodeChar"
        arraysize = arraysize or f"{max(strlen, 1)}*"
    # A Unit object, not its string: the 1.3 FIELD parses strings as CDS, which has no dex(...)
    return Field(
        votable, name=name, datatype=datatype, arraysize=arraysize, unit=u.Unit(m.unit) if m.unit else None
    )


def _voparquet_xml(
    table: pa.Table, meta: dict[str, ColumnMeta], strlens: dict[str, int], timestamps: set[str]
) -> bytes:
    """The VOParquet header of ``table``: VOTable XML whose TABLE holds FIELDs and PARQUET."""
    from astropy.io.votable.tree import TableElement

    vot = _new_votable()
    tab = TableElement(vot)
    vot.resources[0].tables.append(tab)
    for f in table.schema:
        tab.fields.append(
            _voparquet_field(vot, f.name, f.type, strlens.get(f.name, 1), meta.get(f.name, ColumnMeta()))
        )
    _annotate_votable(vot, tab.fields, meta, timestamps)
    buf = io.BytesIO()
    vot.to_xml(buf)
    root = ET.fromstring(buf.getvalue())
    tab = root.find(f"{_VOT_NS}RESOURCE").find(f"{_VOT_NS}TABLE")
    data = tab.find(f"{_VOT_NS}DATA")
    if data is not None:  # the Parquet file is the data (VOParquet 1.0)
        tab.remove(data)
    ET.SubElement(tab, f"{_VOT_NS}PARQUET", type="Parquet-local-XML")
    ET.register_namespace("", _VOT_NS[1:-1])  # the VOTable namespace as default, no ns0: prefix
    return ET.tostring(root, encoding="unicode", xml_declaration=True).encode()


def write_parquet(
    table: pa.Table,
    out: Path,
    extra_meta: dict[str, str] | None = None,
    meta: dict[str, ColumnMeta] | None = None,
) -> None:
    """Parquet with per-column unit/ucd/description metadata and IVOA VOParquet metadata.

    Numeric lists stay Parquet lists (VOTable variable-length arrays). Timestamps are written
    as ISO 8601 strings (UTC) and lists of strings as ``|``-joined strings, as in the other
    formats: VOParquet readers (astropy's ``parquet.votable``) merge the Parquet columns with
    the VOTable FIELDs, and no VOTable datatype merges with a Parquet timestamp or a list of
    strings (VOTable has no arrays of strings).
    """
    meta = meta if meta is not None else columns_meta(table.column_names)
    timestamps = _timestamps(table.schema)
    cols = []
    for c in table.columns:
        if pa.types.is_timestamp(c.type):
            c = _iso(c.combine_chunks())
        elif _is_list(c.type) and not (
            pa.types.is_integer(c.type.value_type) or pa.types.is_floating(c.type.value_type)
        ):
            c = _flat_list(c.combine_chunks())  # VOTable has no arrays of strings
        cols.append(c)
    table = pa.table(cols, names=table.column_names)
    table = table.cast(with_metadata(table.schema, meta=meta))
    strlens = {}
    file_meta = dict(table.schema.metadata or {})
    for name in table.column_names:  # astropy's Parquet reader sizes its string columns so
        t = table[name].type
        values = pc.list_flatten(table[name]) if _is_list(t) else table[name]
        if pa.types.is_string(values.type):
            longest = pc.max(pc.utf8_length(values)).as_py() or 1
            strlens[name] = longest
            file_meta[f"table::len::{name}".encode()] = str(longest).encode()
    file_meta[b"IVOA.VOTable-Parquet.version"] = b"1.0"
    file_meta[b"IVOA.VOTable-Parquet.content"] = _voparquet_xml(table, meta, strlens, timestamps)
    for k, v in (extra_meta or {}).items():
        file_meta[k.encode()] = v.encode()
    pq.write_table(table.replace_schema_metadata(file_meta), out)


def _write_fits(table: pa.Table, out: Path, meta: dict[str, ColumnMeta]) -> None:
    """A binary table with TUNITn (FITS spelling), TUCDn, TCOMMn and RADESYS = 'ICRS'."""
    from astropy.io import fits

    t = arrow_to_astropy(table, flat=True, meta=meta)
    for name in t.colnames:  # astropy cannot write log units to FITS: set TUNIT below
        if _is_log_unit(meta.get(name, ColumnMeta()).unit):
            t[name].unit = None
    hdu = fits.table_to_hdu(t)
    positions = False
    for i, name in enumerate(t.colnames, start=1):
        m = meta.get(name, ColumnMeta())
        if m.unit and f"TUNIT{i}" not in hdu.header:
            hdu.header.insert(f"TFORM{i}", (f"TUNIT{i}", format_unit(m.unit, "fits")), after=True)
        if m.ucd:
            hdu.header[f"TUCD{i}"] = m.ucd
            positions |= _is_position(m.ucd)
        description = m.description
        if _is_log_unit(m.unit) and "log10" not in description:
            description = f"log10: {description}"
        if description:
            hdu.header[f"TCOMM{i}"] = description[:68]
    if positions:
        hdu.header["RADESYS"] = ("ICRS", "Reference frame of the positions")
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(out, overwrite=True)


def _write_votable(table: pa.Table, out: Path, meta: dict[str, ColumnMeta]) -> None:
    # astropy's C TABLEDATA writer corrupts the heap on masked cells (astropy#20419, open in
    # 8.0): the process crashes later, anywhere. Its pure-Python writer writes the same XML.
    has_nulls = any(c.null_count for c in table.columns)
    _votable_file(table, meta).to_xml(str(out), _debug_python_based_parser=has_nulls)


def _write_ecsv(table: pa.Table, out: Path, meta: dict[str, ColumnMeta], provenance: dict) -> None:
    t = arrow_to_astropy(table, meta=meta)
    t.meta.update(provenance)
    if any(_is_position(m.ucd) for m in meta.values()):
        t.meta["coordinate_frame"] = "ICRS"
    t.write(out, format="ascii.ecsv", overwrite=True)


#: Keys of the extra ``hats.properties`` entries of a HATS export: ``gccat_unit.<column>``,
#: ``gccat_ucd.<column>``, ``gccat_description.<column>`` (hats keeps keys it does not know).
HATS_PROPERTY_KEYS = ("unit", "ucd", "description")
HATS_INDEX = "_healpix_29"  # hats' spatial index column, which lsdb adds
HATS_INDEX_META = ColumnMeta(
    "", "pos.healpix", "HATS spatial index: NESTED HEALPix index at order 29 of (ra, dec)"
)


def hats_column_meta(meta: dict[str, ColumnMeta]) -> dict[str, ColumnMeta]:
    """The column metadata of a HATS export: units in VOUnit, UCDs checked as UCD1+.

    Parameters
    ----------
    meta : dict
        name -> :class:`ColumnMeta` with astropy unit strings (:func:`columns_meta`).

    Returns
    -------
    dict
        name -> :class:`ColumnMeta` with the unit in VOUnit (:func:`format_unit`), the same UCD
        (checked by :func:`check_ucd`) and description.
    """
    return {
        n: ColumnMeta(format_unit(m.unit, "vounit") if m.unit else "", check_ucd(m.ucd), m.description)
        for n, m in meta.items()
    }


def hats_properties(meta: dict[str, ColumnMeta]) -> dict[str, str]:
    """The extra ``hats.properties`` entries that carry each column's unit, UCD and description."""
    return {
        f"gccat_{key}.{name}": getattr(m, key)
        for name, m in meta.items()
        for key in HATS_PROPERTY_KEYS
        if getattr(m, key)
    }


def _annotate_hats_catalog(catalog_dir: Path, meta: dict[str, ColumnMeta]) -> None:
    """Put ``meta`` into the Parquet field metadata of one HATS catalog's files.

    lsdb writes leaf files from pandas (no field metadata): each leaf is rewritten row group by
    row group with the annotated schema and hats' own write settings, then hats regenerates
    ``dataset/_metadata``, ``dataset/_common_metadata`` and ``per_partition_statistics.parquet``
    from the leaf footers, as lsdb did.
    """
    import hats
    from hats.io.file_io.file_io import get_parquet_write_table_kwargs

    leaves = sorted((catalog_dir / "dataset").rglob("Npix=*.parquet"))
    for leaf in leaves:
        pf = pq.ParquetFile(leaf)
        schema = with_metadata(pf.schema_arrow, meta=meta)
        kwargs = get_parquet_write_table_kwargs(schema)
        kwargs.pop("row_group_size", None)
        tmp = leaf.with_name(leaf.name + ".gccat-tmp")
        with pq.ParquetWriter(tmp, schema, **kwargs) as writer:
            for i in range(pf.num_row_groups):
                writer.write_table(pf.read_row_group(i).cast(schema))
        os.replace(tmp, leaf)
    if leaves:
        hats.io.write_parquet_metadata(catalog_dir, create_metadata=True, create_per_partition_stats=True)
        return
    for name in ("_common_metadata", "_metadata"):  # an empty margin: schema-only files
        path = catalog_dir / "dataset" / name
        if path.exists():
            pq.write_metadata(with_metadata(pq.read_schema(path), meta=meta), path)


def _write_hats(table: pa.Table, out: Path, name: str, meta: dict[str, ColumnMeta]) -> None:
    """A HATS collection (catalog and margin) whose files carry each column's metadata.

    The VOUnit units, UCDs and descriptions (:func:`hats_column_meta`) are in the Parquet field
    metadata of every leaf file, ``_common_metadata`` and ``_metadata``, and in extra entries of
    each catalog's ``hats.properties`` (:func:`hats_properties`).
    """
    import hats
    import lsdb

    vo = hats_column_meta(meta) | {HATS_INDEX: HATS_INDEX_META}
    flat = pa.table(
        {
            n: (
                pa.array(["|".join(map(str, v)) if v is not None else None for v in table[n].to_pylist()])
                if pa.types.is_list(table[n].type)
                else table[n]
            )
            for n in table.column_names
        }
    )
    df = flat.to_pandas(types_mapper=None)
    cat = lsdb.from_dataframe(df, ra_column="ra", dec_column="dec", catalog_name=name)
    try:
        cat.write_catalog(
            out,
            catalog_name=name,
            overwrite=True,
            progress_bar=False,
            addl_hats_properties=hats_properties(vo),
        )
        collection = hats.read_hats(out)
        for d in [collection.main_catalog_dir, *(out / m for m in collection.all_margins or [])]:
            _annotate_hats_catalog(Path(str(d)), vo)
    except Exception as exc:
        # lsdb wraps a failed partition write (disk full, ...) in a RuntimeError
        cause = exc
        while cause is not None and not isinstance(cause, OSError):
            cause = cause.__cause__ or cause.__context__
        if cause is None:
            raise
        raise cause from exc


# -- output paths: never inside a lake, always replaced atomically ----------------------------

# Temporary names beside the target: ".<name>.gccat-tmp-<pid>-<random>" (files and directories
# being written) and ".<name>.gccat-old-<pid>-<random>" (a replaced HATS directory on its way
# out). The pid lets a later export remove what a killed one left, and nothing of a live one.
_TMP, _OLD = ".gccat-tmp-", ".gccat-old-"
_HATS_MARKS = ("gccat_manifest.json", "collection.properties", "hats.properties", "properties")
_RENAME_EXCHANGE = 2  # renameat2 flag (Linux >= 3.15)


def _exists(p: Path) -> bool:
    return os.path.lexists(p)  # False (not an exception) for unreadable places such as /proc


def _lake_holding(path: Path) -> Path | None:
    """The lake root that ``path`` (already resolved) is, or is inside, or None."""
    for p in (path, *path.parents):
        if _exists(p / MARKER):
            return p
    return None


def _lake_within(directory: Path) -> Path | None:
    """A lake root somewhere under ``directory`` (symlinks are not followed), or None."""
    for root, dirs, files in os.walk(directory):
        if MARKER in files or MARKER in dirs:
            return Path(root)
    return None


def check_output_path(out: str | os.PathLike, fmt: str, overwrite: bool = False) -> Path:
    """Validate an export target and return it with symlinks resolved.

    Parameters
    ----------
    out : path
        The output file (a directory for ``hats``).
    fmt : str
        One of :data:`FORMATS`.
    overwrite : bool
        Whether an existing export at ``out`` may be replaced.

    Returns
    -------
    pathlib.Path
        The resolved target.

    Raises
    ------
    GccatError
        If ``out`` is, is inside or (for a directory) contains a gccat lake; if it exists and
        ``overwrite`` is false; if its directory is missing; if it exists as the wrong kind of
        thing (a directory or device for a file format, a file or a directory that is not a HATS
        catalog for ``hats``).
    """
    shown = Path(out)
    target = Path(os.path.realpath(shown))
    lake = _lake_holding(target)
    if lake is not None:
        where = "is" if lake == target else "is inside"
        raise GccatError(f"{shown} {where} the gccat lake {lake}; export outside the lake")
    parent = target.parent
    if not parent.is_dir():
        what = "is not a directory" if _exists(parent) else "does not exist"
        raise GccatError(f"cannot write {shown}: its directory {shown.parent} {what}")
    manifest = _manifest_path(target, fmt)
    if fmt != "hats" and _exists(manifest) and not manifest.is_file():
        raise GccatError(f"cannot write {shown}: {manifest} is in the way (not a file)")
    if not _exists(target):
        return target
    if not overwrite:
        raise GccatError(f"{shown} exists; pass --overwrite to replace it")
    if fmt == "hats":
        if not target.is_dir():
            raise GccatError(
                f"{shown} is a file, not a HATS catalog directory; remove it or choose another --out"
            )
        inner = _lake_within(target)
        if inner is not None:
            raise GccatError(f"{shown} holds the gccat lake {inner}; it cannot be overwritten")
        if any(target.iterdir()) and not any((target / m).is_file() for m in _HATS_MARKS):
            raise GccatError(
                f"{shown} is a directory that is not a HATS catalog; --overwrite "
                "replaces only an earlier export"
            )
    elif target.is_dir():
        raise GccatError(f"{shown} is a directory")
    elif not target.is_file():
        raise GccatError(f"{shown} is not a regular file (a device or pipe?); choose a file path")
    return target


def _manifest_path(target: Path, fmt: str) -> Path:
    return target / "gccat_manifest.json" if fmt == "hats" else Path(f"{target}.manifest.json")


def _fsync(path: Path, tree: bool = True) -> None:
    """Flush a file, a directory or (with ``tree``) a directory and all below it to disk."""
    paths = [path]
    if tree and path.is_dir():
        for root, dirs, files in os.walk(path):
            paths += [Path(root, n) for n in (*files, *dirs)]
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def _clean_leftovers(target: Path) -> None:
    """Remove the temporary files of killed exports to ``target`` (not those of live ones).

    A HATS directory set aside by a killed swap (only on file systems without an atomic
    exchange) is renamed back if the target is missing: it is the previous complete export.
    """
    prefix = f".{target.name}."
    for p in sorted(target.parent.glob(glob.escape(prefix) + "gccat-*")):
        tag = p.name[len(prefix) - 1 :]
        if not tag.startswith((_TMP, _OLD)):
            continue
        try:
            pid = int(tag.split("-")[2])
        except (IndexError, ValueError):
            continue
        if pid == os.getpid() or _pid_alive(pid):
            continue
        if tag.startswith(_OLD) and not _exists(target):
            os.rename(p, target)
        else:
            _remove(p)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False if unsupported."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _swap_in(new: Path, target: Path) -> None:
    """Put the finished directory ``new`` at ``target``, replacing an earlier one; remove it."""
    if not _exists(target):
        os.rename(new, target)
        return
    if _exchange(new, target):
        _remove(new)  # now the old export
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}{_OLD}{os.getpid()}-", dir=target.parent))
    os.rename(target, old)  # replaces the empty placeholder directory
    try:
        os.rename(new, target)
    except BaseException:
        os.rename(old, target)
        raise
    _remove(old)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _mkstemp(target: Path, suffix: str = "") -> Path:
    """An empty temporary file beside ``target`` with the permissions of a plain new file."""
    fd, name = tempfile.mkstemp(
        prefix=f".{target.name}{_TMP}{os.getpid()}-", suffix=suffix, dir=target.parent
    )
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600 files
    finally:
        os.close(fd)
    return Path(name)


def _write_atomic(target: Path, fmt: str, write, manifest_for) -> dict | None:
    """Write with ``write(tmp_path)`` beside ``target``, then rename into place.

    ``manifest_for(tmp_path)`` gives the manifest (or None), which is written the same way and
    renamed in last; for HATS it lives inside the directory and so moves in with it.
    """
    parent, pid = target.parent, os.getpid()
    temps: list[Path] = []
    try:
        _clean_leftovers(target)
        if fmt == "hats":
            tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}{_TMP}{pid}-", dir=parent))
            temps.append(tmp)
            os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700 directories
        else:
            tmp = _mkstemp(target)
            temps.append(tmp)
        write(tmp)
        manifest = manifest_for(tmp)
        mtmp = None
        if manifest is not None:
            text = json.dumps(manifest, indent=1)
            if fmt == "hats":
                (tmp / "gccat_manifest.json").write_text(text)
            else:
                mtmp = _mkstemp(target, ".manifest")
                temps.append(mtmp)
                mtmp.write_text(text)
                _fsync(mtmp)
        _fsync(tmp)
        if fmt == "hats":
            _swap_in(tmp, target)
        else:
            os.replace(tmp, target)
            if mtmp is not None:
                os.replace(mtmp, _manifest_path(target, fmt))
        _fsync(parent, tree=False)  # the renames
        return manifest
    except OSError as exc:
        raise GccatError(f"cannot write {target}: {exc.strerror or exc}") from None
    finally:
        for t in temps:
            if _exists(t):
                _remove(t)


def _write_csv(table: pa.Table, out: Path) -> None:
    from catalog.queries.textformat import write_csv

    with open(out, "w", newline="", encoding="utf-8") as f:
        write_csv(table, f)


def export_table(
    table: pa.Table,
    out: str | os.PathLike,
    fmt: str | None = None,
    *,
    query: str,
    lake_root: str,
    lake_version: int,
    overwrite: bool = False,
    source: str | None = None,
) -> dict:
    """Write ``table`` in ``fmt`` to ``out`` and a manifest beside it; return the manifest.

    The export is written to a temporary file (directory, for HATS) beside ``out``, flushed to
    disk and renamed into place, then the manifest the same way: a killed export leaves the
    previous export (or nothing) and a temporary file that the next export to ``out`` removes.

    Parameters
    ----------
    table : pyarrow.Table
        The rows to export.
    out : path
        Output file (a directory for ``hats``); never inside a gccat lake.
    fmt : {'parquet', 'fits', 'ecsv', 'votable', 'csv', 'hats'}, optional
        Default: from the extension of ``out`` (see :func:`export_format`).
    query, lake_root, lake_version
        Provenance written to the manifest.
    overwrite : bool
        Replace an existing export at ``out``.
    source : str, optional
        The lake table or view ``table`` holds (all of its columns): units, UCDs and
        descriptions come from its declaration (see :func:`catalog.lake.schemas.columns_meta`);
        without it, from the schemas by column name.

    Returns
    -------
    dict
        The manifest; its ``sha256`` covers the file (for HATS, the catalog's files, without
        ``gccat_manifest.json``); ``columns`` lists each column's unit, UCD and description.

    Raises
    ------
    GccatError
        For an unknown format or one that the extension contradicts, a target refused by
        :func:`check_output_path`, or a target that cannot be written (``out`` is then
        unchanged).
    """
    fmt = export_format(out, fmt)
    if fmt == "hats" and not {"ra", "dec"} <= set(table.column_names):
        raise GccatError("a HATS export needs 'ra' and 'dec' columns")
    if fmt == "hats" and table.num_rows == 0:  # lsdb cannot partition nothing
        raise GccatError("a HATS export needs at least one row (this selection has none)")
    target = check_output_path(out, fmt, overwrite)
    meta = columns_meta(table.column_names, source)
    provenance = {"gccat.query": query, "gccat.lake_version": str(lake_version), "gccat.lake_root": lake_root}

    def write(tmp: Path) -> None:
        if fmt == "parquet":
            write_parquet(table, tmp, provenance, meta=meta)
        elif fmt == "fits":
            _write_fits(table, tmp, meta)
        elif fmt == "ecsv":
            _write_ecsv(table, tmp, meta, provenance)
        elif fmt == "votable":
            _write_votable(table, tmp, meta)
        elif fmt == "csv":
            _write_csv(table, tmp)
        else:
            _write_hats(table, tmp, target.name, meta)

    def manifest_for(tmp: Path) -> dict:
        return {
            "format": fmt,
            "path": str(target),
            "query": query,
            "lake_root": lake_root,
            "lake_version": lake_version,
            "rows": table.num_rows,
            "sha256": sha256_file(tmp),
            "created_at": dt.datetime.now(dt.UTC).isoformat(),
            "gccat_version": gccat_version(),
            "units": "astropy unit strings; dex(X) is log10 of a quantity in X",
            "columns": [{"name": n, **vars(meta[n])} for n in table.column_names],
        }

    return _write_atomic(target, fmt, write, manifest_for)


def export_lake(
    lake,
    out: str | os.PathLike,
    *,
    table: str | None = None,
    query: str | None = None,
    fmt: str | None = None,
    overwrite: bool = False,
    as_of: int | None = None,
) -> dict:
    """Export a lake table or view, or the rows of a SELECT, with a manifest (``gccat export``).

    Parameters
    ----------
    lake : Lake or path
        The lake to read.
    out : path
        Output file (a directory for ``hats``); never inside a gccat lake.
    table, query : str
        Exactly one: a table or view name (its declared units, UCDs and descriptions travel), or
        one read-only SELECT.
    fmt : {'parquet', 'fits', 'ecsv', 'votable', 'csv', 'hats'}, optional
        Default: from the extension of ``out``.
    overwrite : bool
        Replace an existing export at ``out``.
    as_of : int, optional
        Lake version to read (default: the latest).

    Returns
    -------
    dict
        The manifest (see :func:`export_table`), with the lake version read.
    """
    from catalog.queries.connection import open_reader
    from catalog.queries.search import check_relation, run_sql

    if (table is None) == (query is None):
        raise GccatError("give exactly one of --table or --query")
    fmt = export_format(out, fmt)  # before reading anything
    lk, con, version = open_reader(lake, as_of, table, query)
    source = check_relation(con, table) if table else None
    sql = f'SELECT * FROM "{source}"' if source else query
    return export_table(
        run_sql(con, sql),
        out,
        fmt,
        query=sql,
        lake_root=str(lk.root),
        lake_version=version,
        overwrite=overwrite,
        source=source,
    )


def save_csv(table: pa.Table, out: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write ``table`` as plain CSV without a manifest, atomically, never inside a lake.

    ``export_table(..., fmt='csv')`` writes the same CSV with a manifest (units, provenance).

    Parameters
    ----------
    table : pyarrow.Table
    out : path
    overwrite : bool
        Replace an existing file at ``out``.

    Returns
    -------
    pathlib.Path
        The file written (symlinks resolved).
    """
    target = check_output_path(out, "csv", overwrite)
    _write_atomic(target, "csv", lambda tmp: _write_csv(table, tmp), lambda tmp: None)
    return target
