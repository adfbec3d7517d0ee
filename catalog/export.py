"""Export query results with their units: Parquet (+VOParquet), FITS, ECSV, VOTable, HATS.

Every export writes a manifest beside it (query, lake version, rows, sha256). Exports are
written beside their target and renamed into place, and never go inside a gccat lake.
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

from .errors import GccatError
from .lake import MARKER, gccat_version, sha256_file
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

    flat = pa.table({n: (pa.array(["|".join(map(str, v)) if v is not None else None
                                   for v in table[n].to_pylist()])
                         if pa.types.is_list(table[n].type) else table[n])
                     for n in table.column_names})
    df = flat.to_pandas(types_mapper=None)
    cat = lsdb.from_dataframe(df, ra_column="ra", dec_column="dec", catalog_name=name)
    try:
        cat.write_catalog(out, catalog_name=name, overwrite=True, progress_bar=False)
    except Exception as exc:
        # lsdb wraps a failed partition write (disk full, ...) in a RuntimeError
        cause = exc
        while cause is not None and not isinstance(cause, OSError):
            cause = cause.__cause__ or cause.__context__
        if cause is None:
            raise
        raise cause from exc


def _write_csv(table: pa.Table, out: Path) -> None:
    arrow_to_astropy(table, flat=True).write(out, format="ascii.csv", overwrite=True)


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
        One of :data:`FORMATS` or ``'csv'``.
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
            raise GccatError(f"{shown} is a file, not a HATS catalog directory; remove it or "
                             "choose another --out")
        inner = _lake_within(target)
        if inner is not None:
            raise GccatError(f"{shown} holds the gccat lake {inner}; it cannot be overwritten")
        if any(target.iterdir()) and not any((target / m).is_file() for m in _HATS_MARKS):
            raise GccatError(f"{shown} is a directory that is not a HATS catalog; --overwrite "
                             "replaces only an earlier export")
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
        tag = p.name[len(prefix) - 1:]
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
    fd, name = tempfile.mkstemp(prefix=f".{target.name}{_TMP}{os.getpid()}-", suffix=suffix,
                                dir=target.parent)
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


def export_table(table: pa.Table, out: str | os.PathLike, fmt: str, *, query: str,
                 lake_root: str, lake_version: int, overwrite: bool = False) -> dict:
    """Write ``table`` in ``fmt`` to ``out`` and a manifest beside it; return the manifest.

    The export is written to a temporary file (directory, for HATS) beside ``out``, flushed to
    disk and renamed into place, then the manifest the same way: a killed export leaves the
    previous export (or nothing) and a temporary file that the next export to ``out`` removes.

    Parameters
    ----------
    table : pyarrow.Table
        The rows to export (units come from the schemas by column name).
    out : path
        Output file (a directory for ``hats``); never inside a gccat lake.
    fmt : {'parquet', 'fits', 'ecsv', 'votable', 'hats'}
    query, lake_root, lake_version
        Provenance written to the manifest.
    overwrite : bool
        Replace an existing export at ``out``.

    Returns
    -------
    dict
        The manifest; its ``sha256`` covers the file (for HATS, the catalog's files, without
        ``gccat_manifest.json``).

    Raises
    ------
    GccatError
        For an unknown format, a target refused by :func:`check_output_path`, or a target that
        cannot be written (``out`` is then unchanged).
    """
    if fmt not in FORMATS:
        raise GccatError(f"unknown export format '{fmt}' (choose from {', '.join(FORMATS)})")
    if fmt == "hats" and not {"ra", "dec"} <= set(table.column_names):
        raise GccatError("a HATS export needs 'ra' and 'dec' columns")
    target = check_output_path(out, fmt, overwrite)
    provenance = {"gccat.query": query, "gccat.lake_version": str(lake_version),
                  "gccat.lake_root": lake_root}

    def write(tmp: Path) -> None:
        if fmt == "parquet":
            write_parquet(table, tmp, provenance)
        elif fmt == "fits":
            _write_fits(table, tmp)
        elif fmt == "ecsv":
            t = arrow_to_astropy(table)
            t.meta.update(provenance)
            t.write(tmp, format="ascii.ecsv", overwrite=True)
        elif fmt == "votable":
            arrow_to_astropy(table, flat=True).write(tmp, format="votable", overwrite=True)
        else:
            _write_hats(table, tmp, target.name)

    def manifest_for(tmp: Path) -> dict:
        return {
            "format": fmt, "path": str(target), "query": query, "lake_root": lake_root,
            "lake_version": lake_version, "rows": table.num_rows, "sha256": sha256_file(tmp),
            "created_at": dt.datetime.now(dt.UTC).isoformat(), "gccat_version": gccat_version(),
            "columns": [{"name": n, **vars(column_meta(n))} for n in table.column_names],
        }

    return _write_atomic(target, fmt, write, manifest_for)


def save_csv(table: pa.Table, out: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write ``table`` as plain CSV (no units, no manifest), atomically, never inside a lake.

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
