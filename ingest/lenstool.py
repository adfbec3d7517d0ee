"""``gccat ingest multiple-images`` / ``cluster-members``: Lenstool text files into the lake.

Multiple-image files are whitespace separated without a header (``#`` lines are comments; a
``#REFERENCE 0`` header means absolute coordinates, which is what gccat reads). Two layouts,
told apart by the number of columns:

- 8 columns, the Lenstool arclet format: ``id ra dec a b theta z mag``; the family is the
  part of the id before the first dot.
- 9 or more columns, the layout of the LensFactory.jl SMACS0723 inputs: ``family flag ra dec z
  a b theta ... label`` (columns between theta and the label are not stored).

The image label is read as text, never as a number, so ``1.10`` and ``1.1`` stay distinct; a
label printed with printf padding (4 or more decimals, ``1.100000``) has its trailing zeros
stripped (``1.1``). z = 0 is Lenstool's "redshift unknown" and is stored as NULL; a negative,
NaN or infinite z is an error. a and b are the positional error ellipse in arcsec, theta in deg.

Cluster-member files: 8 columns (Lenstool potfile format 1/3: ``id ra dec a b theta mag lum``)
or 6 columns (the LensFactory.jl layout: ``id ra dec mag ellipticity theta``).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pyarrow as pa

from catalog.checks import Z_MAX, check_name
from catalog.errors import GccatError
from catalog.files import sha256_file
from catalog.lake import IngestKind, Lake, command_line
from catalog.lake.schemas import CLUSTER_MEMBERS, MULTIPLE_IMAGES
from ingest.catalog import IngestReport, ingest_identity, register_field_and_bands, repeat_of

_MEMBER_COLUMNS = {
    8: ("id", "ra", "dec", "a", "b", "theta", "mag", "lum"),
    6: ("id", "ra", "dec", "mag", "ellipticity", "theta"),
}


def _rows(path: Path) -> list[tuple[int, list[str]]]:
    """(1-based line number, tokens) of the data lines; refuses relative coordinates."""
    if not path.is_file():
        raise GccatError("no such file", file=path)
    try:
        text = path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError) as exc:
        raise GccatError(f"not a readable UTF-8 text file ({exc})", file=path) from None
    rows = []
    for n, line in enumerate(text.splitlines(), start=1):
        s = line.strip()
        if s.upper().startswith("#REFERENCE"):
            parts = s.split()
            if len(parts) < 2 or parts[1] != "0":
                raise GccatError(
                    f"line {n}: '{s}' gives coordinates relative to a reference point; "
                    "gccat reads absolute RA/Dec in degrees (#REFERENCE 0)",
                    file=path,
                )
        if s and not s.startswith("#"):
            rows.append((n, s.split()))
    if not rows:
        raise GccatError("the file has no data rows", file=path)
    return rows


def _column_count(path: Path, rows, allowed) -> int:
    n0 = len(rows[0][1])
    if not allowed(n0):
        raise GccatError(f"line {rows[0][0]}: {n0} columns, not a known Lenstool layout", file=path)
    for n, toks in rows:
        if len(toks) != n0:
            raise GccatError(f"line {n}: {len(toks)} columns where the first row has {n0}", file=path)
    return n0


def _numbers(path: Path, rows, index: int, name: str) -> np.ndarray:
    out = np.empty(len(rows))
    for k, (n, toks) in enumerate(rows):
        try:
            out[k] = float(toks[index])
        except ValueError:
            raise GccatError(
                f"column {index + 1} ({name}), line {n}: {toks[index]!r} is not a number", file=path
            ) from None
    return out


def _check_range(path: Path, rows, values, name: str, lo: float, hi: float, hi_open=False):
    bad = ~np.isfinite(values) | (values < lo) | ((values >= hi) if hi_open else (values > hi))
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise GccatError(
            f"column {name}, line {rows[k][0]}: {rows[k][1]} -> {values[k]!r} is outside [{lo:g}, {hi:g}"
            f"{')' if hi_open else ']'}",
            file=path,
        )


def normalise_label(token: str) -> str:
    """The image label of a file's token: text, printf zero padding stripped (1.100000 -> 1.1)."""
    whole, dot, dec = token.partition(".")
    if dot and len(dec) >= 4 and dec.isdigit():
        dec = dec.rstrip("0")
        return f"{whole}.{dec}" if dec else whole
    return token


def read_multiple_images(path: str | os.PathLike) -> pa.Table:
    """Multiple images of a Lenstool text file (see the module docstring for the layouts).

    Returns
    -------
    pyarrow.Table
        family_id, image_label, label_raw, flag, ra, dec (deg), z (NaN: unknown),
        pos_err_a_arcsec, pos_err_b_arcsec, pos_err_theta_deg, row_number.

    Raises
    ------
    GccatError
        Naming the file, the column and the first bad line: wrong column count, a
        non-numeric value, RA outside [0, 360), Dec outside [-90, 90], z negative, NaN or above
        the largest redshift gccat accepts, negative errors, or two images with one label.
    """
    path = Path(path)
    rows = _rows(path)
    ncol = _column_count(path, rows, lambda n: n >= 8)
    if ncol == 8:
        idx = {"ra": 1, "dec": 2, "a": 3, "b": 4, "theta": 5, "z": 6}
        labels_raw = [t[0] for _, t in rows]
        families = [normalise_label(t).partition(".")[0] for t in labels_raw]
        flags = [None] * len(rows)
    else:
        idx = {"ra": 2, "dec": 3, "z": 4, "a": 5, "b": 6, "theta": 7}
        labels_raw = [t[-1] for _, t in rows]
        families = [normalise_label(t[0]) for _, t in rows]
        fl = _numbers(path, rows, 1, "flag")
        flags = [int(v) if math.isfinite(v) and v == int(v) else None for v in fl]
    v = {k: _numbers(path, rows, i, k) for k, i in idx.items()}
    _check_range(path, rows, v["ra"], "ra", 0.0, 360.0, hi_open=True)
    _check_range(path, rows, v["dec"], "dec", -90.0, 90.0)
    _check_range(path, rows, v["z"], "z", 0.0, Z_MAX)
    for k in ("a", "b"):
        _check_range(path, rows, v[k], k, 0.0, math.inf)
    labels = [normalise_label(t) for t in labels_raw]
    seen: dict[str, int] = {}
    for (n, _), lab in zip(rows, labels, strict=True):
        if lab in seen:
            raise GccatError(f"column label, line {n}: image {lab!r} is also on line {seen[lab]}", file=path)
        seen[lab] = n
    return pa.table(
        {
            "family_id": families,
            "image_label": labels,
            "label_raw": labels_raw,
            "flag": pa.array(flags, pa.int32()),
            "ra": v["ra"],
            "dec": v["dec"],
            # Lenstool's z = 0 (unknown) becomes NULL, not NaN: SQL's IS NULL finds it.
            "z": pa.array(v["z"], mask=v["z"] == 0),
            "pos_err_a_arcsec": v["a"],
            "pos_err_b_arcsec": v["b"],
            "pos_err_theta_deg": v["theta"],
            "row_number": pa.array([n for n, _ in rows], pa.int32()),
        }
    )


def read_cluster_members(path: str | os.PathLike) -> pa.Table:
    """Cluster members of a Lenstool potfile (8 columns) or the 6-column LensFactory layout.

    Returns
    -------
    pyarrow.Table
        source_id, ra, dec (deg), mag, a_arcsec, b_arcsec, ellipticity, theta_deg, row_number.
    """
    path = Path(path)
    rows = _rows(path)
    ncol = _column_count(path, rows, lambda n: n in _MEMBER_COLUMNS)
    names = _MEMBER_COLUMNS[ncol]
    v = {k: _numbers(path, rows, i, k) for i, k in enumerate(names) if k != "id"}
    _check_range(path, rows, v["ra"], "ra", 0.0, 360.0, hi_open=True)
    _check_range(path, rows, v["dec"], "dec", -90.0, 90.0)
    n = len(rows)
    if ncol == 8:
        a, b = v["a"], v["b"]
        with np.errstate(invalid="ignore", divide="ignore"):
            ell = (a**2 - b**2) / (a**2 + b**2)
    else:
        a = b = np.full(n, np.nan)
        ell = v["ellipticity"]
    return pa.table(
        {
            "source_id": [normalise_label(t[0]) for _, t in rows],
            "ra": v["ra"],
            "dec": v["dec"],
            "mag": v["mag"],
            "a_arcsec": a,
            "b_arcsec": b,
            "ellipticity": ell,
            "theta_deg": v["theta"],
            "row_number": pa.array([r for r, _ in rows], pa.int32()),
        }
    )


def _ingest_text(lake, path, field_id, name, replace, kind, table, key_col, id_col, schema, command):
    check_name(field_id, "field id")
    check_name(name, "catalog name")
    path = Path(path)
    t = (read_multiple_images if kind == IngestKind.MULTIPLE_IMAGES else read_cluster_members)(path)
    sha = sha256_file(path)
    options = {"identity": ingest_identity(sha, {"kind": str(kind)}), "identity_options": {"kind": str(kind)}}
    with lake.transaction(kind) as tx:
        same = lake.live_named(field_id, name, kind=kind)
        repeat = repeat_of(same, sha, options)
        if repeat == "same":
            return IngestReport(
                same["ingest_id"][0].as_py(), lake.version(), same["n_rows"][0].as_py(), skipped=True
            )
        if same.num_rows and not replace:
            raise GccatError(
                f"'{name}' is already in field '{field_id}' ({kind}); pass --replace to supersede it",
                file=path,
            )
        warnings: list[str] = []
        ra, dec = t["ra"].to_numpy(), t["dec"].to_numpy()
        register_field_and_bands(lake, tx, field_id, [], ra, dec, warnings)
        n = t.num_rows
        ids = [f"{field_id}/{name}/{k}" for k in t[key_col].to_pylist()]
        out = t.append_column("field_id", pa.array([field_id] * n)).append_column(
            "catalog", pa.array([name] * n)
        )
        out = out.append_column(id_col, pa.array(ids)).append_column(
            "ingest_id", pa.array([tx.ingest_id] * n)
        )
        tx.append(table, out.select(schema.names).cast(schema))
        ver = tx.commit(
            name=name,
            field_id=field_id,
            source_path=path.resolve(),
            sha256=sha,
            n_rows=n,
            command=command or command_line(),
            supersedes=same["ingest_id"].to_pylist(),
            options=options,
            warnings=warnings,
        )
    return IngestReport(tx.ingest_id, ver, n, warnings=warnings, superseded=same["ingest_id"].to_pylist())


def ingest_multiple_images(
    lake: Lake,
    path: str | os.PathLike,
    *,
    field_id: str,
    name: str | None = None,
    replace: bool = False,
    command: str | None = None,
) -> IngestReport:
    """Ingest a Lenstool multiple-image file into ``multiple_images`` (one atomic commit).

    Parameters
    ----------
    lake : Lake
    path : path
        Lenstool text file (see :func:`read_multiple_images`).
    field_id : str
        Field of the lens.
    name : str, optional
        Catalog name, unique in the field (default: the file stem).
    replace : bool
        Supersede an earlier ingest of this name.

    Returns
    -------
    IngestReport
        ``n_rows`` images; a bad file raises :class:`GccatError` and leaves the lake unchanged.
    """
    name = name or Path(path).stem
    return _ingest_text(
        lake, path, field_id, name, replace, IngestKind.MULTIPLE_IMAGES, "multiple_images",
        "image_label", "image_id", MULTIPLE_IMAGES, command,
    )  # fmt: skip


def ingest_cluster_members(
    lake: Lake,
    path: str | os.PathLike,
    *,
    field_id: str,
    name: str | None = None,
    replace: bool = False,
    command: str | None = None,
) -> IngestReport:
    """Ingest a Lenstool cluster-member (potfile) catalog into ``cluster_members``.

    Parameters are those of :func:`ingest_multiple_images`; see :func:`read_cluster_members`.
    """
    name = name or Path(path).stem
    return _ingest_text(
        lake, path, field_id, name, replace, IngestKind.CLUSTER_MEMBERS, "cluster_members",
        "source_id", "member_id", CLUSTER_MEMBERS, command,
    )  # fmt: skip
