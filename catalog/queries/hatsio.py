"""HATS catalogs as input of the searches: ``gccat cone --from DIR``, ``gccat xmatch DIR ...``.

A HATS catalog is a directory with a ``collection.properties`` (a collection: its main
catalog is read), ``hats.properties`` or ``properties`` file, as ``gccat export --format hats``
and hats-import write them. Its positions are the columns that the catalog info names
(``hats_col_ra``, ``hats_col_dec``); they are returned as ``ra`` and ``dec``, and hats' spatial
index ``_healpix_29`` (the same value as gccat's ``healpix29``) as ``healpix29`` unless the
catalog has that column already, so that the rows are those of the same data in the lake.
Only the partitions that a search can touch are read: hats' pixel tree prunes them (a cone's
MOC for a cone search, the MOC of the cones around the other side's positions for a
crossmatch), and pyarrow reads those leaf files.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from catalog.errors import GccatError

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MARKS = ("collection.properties", "hats.properties", "properties")
HATS_INDEX = "_healpix_29"


def is_hats_path(spec: str | os.PathLike) -> bool:
    """Whether a search's source ``spec`` names a directory (a HATS catalog, or an error).

    A plain name (``detections``) is a table or view of the lake even where a directory of that
    name exists; write ``./detections`` for the directory.
    """
    text = os.fspath(spec).strip()
    return not _IDENT.match(text) and Path(text).is_dir()


def open_hats(path: str | os.PathLike):
    """The HATS catalog at ``path`` (a collection's main catalog), checked for coordinates.

    Parameters
    ----------
    path : path
        A HATS catalog or collection directory.

    Returns
    -------
    hats.catalog.Catalog
        The object or source catalog, with its pixel tree, schema and catalog info.

    Raises
    ------
    GccatError
        If ``path`` is not a directory with a HATS properties file, cannot be read by hats, is
        not an object or source catalog, or lacks coordinates (no ``hats_col_ra`` /
        ``hats_col_dec`` in its properties, or columns of those names missing from its schema).
    """
    import hats

    p = Path(path)
    if not p.is_dir() or not any((p / m).is_file() for m in _MARKS):
        raise GccatError(
            f"{path} is not a HATS catalog (a directory with collection.properties, "
            "hats.properties or properties)"
        )
    try:
        cat = hats.read_hats(p)
    except Exception as exc:  # hats raises pydantic, value and file errors for bad catalogs
        text = " ".join(str(exc).split())
        if "ra_column" in text or "dec_column" in text:
            raise GccatError(
                f"the HATS catalog {path} lacks coordinates: its properties name no hats_col_ra/hats_col_dec"
            ) from None
        raise GccatError(f"cannot read the HATS catalog {path}: {text[:300]}") from None
    cat = getattr(cat, "main_catalog", cat)
    kind = str(getattr(cat.catalog_info, "catalog_type", ""))
    if kind not in ("object", "source"):
        raise GccatError(f"{path} is a HATS {kind or 'unknown'} catalog, not an object or source catalog")
    ra, dec = cat.catalog_info.ra_column, cat.catalog_info.dec_column
    names = cat.schema.names if cat.schema is not None else []
    missing = [c for c in (ra, dec) if not c or c not in names]
    if missing:
        raise GccatError(
            f"the HATS catalog {path} lacks coordinates: its columns have no "
            f"{' or '.join(repr(c) for c in missing)} (hats_col_ra={ra!r}, hats_col_dec={dec!r})"
        )
    return cat


def _leaf_files(cat) -> list[str]:
    files = []
    for p in cat.get_pixel_paths():
        p = Path(str(p))
        files += sorted(str(f) for f in p.rglob("*.parquet")) if p.is_dir() else [str(p)]
    return files


def _read(cat, path, flt=None) -> pa.Table:
    """The rows of the (already pruned) catalog ``cat``, positions as ``ra``/``dec``."""
    import pyarrow.dataset as ds

    schema = cat.schema
    files = _leaf_files(cat)
    try:
        t = ds.dataset(files, schema=schema, format="parquet").to_table(filter=flt)
    except (OSError, pa.ArrowInvalid) as exc:
        raise GccatError(f"cannot read the HATS catalog {path}: {str(exc).splitlines()[0]}") from None
    t = t.replace_schema_metadata(None)
    ra, dec = cat.catalog_info.ra_column, cat.catalog_info.dec_column
    names = list(t.column_names)
    for old, new in ((ra, "ra"), (dec, "dec")):
        if old != new:
            if new in names:
                raise GccatError(
                    f"the HATS catalog {path} has positions in {old!r} and another column named {new!r}"
                )
            names[names.index(old)] = new
    if HATS_INDEX in names:
        if "healpix29" in names:
            names.remove(HATS_INDEX)
            t = t.drop_columns([HATS_INDEX])
        else:
            names[names.index(HATS_INDEX)] = "healpix29"
    return t.rename_columns(names)


def read_hats(path: str | os.PathLike, near: tuple[np.ndarray, np.ndarray, float] | None = None) -> pa.Table:
    """The rows of a HATS catalog as Arrow, positions as ``ra``/``dec`` (degrees).

    Parameters
    ----------
    path : path
        A HATS catalog or collection directory (see :func:`open_hats`).
    near : (ra, dec, radius_arcsec), optional
        Read only the partitions that overlap a cone of ``radius_arcsec`` around any of these
        positions (degrees): a crossmatch reads what it can match, not the whole catalog.

    Returns
    -------
    pyarrow.Table
        All rows of those partitions (a partition holds rows outside the cones too).
    """
    cat = open_hats(path)
    if near is not None and len(near[0]):
        from astropy import units as u
        from mocpy import MOC

        ra, dec, radius = near
        order = max(cat.get_max_coverage_order(), 1)
        moc = MOC.from_cones(
            lon=np.asarray(ra, float) * u.deg,
            lat=np.asarray(dec, float) * u.deg,
            radius=float(radius) * u.arcsec,
            max_depth=order,
            union_strategy="small_cones",
        )
        cat = cat.filter_by_moc(moc)
    return _read(cat, path)


def cone_hats(path: str | os.PathLike, ra: float, dec: float, radius_arcsec: float) -> pa.Table:
    """Rows of a HATS catalog within a cone, nearest first, with ``separation_arcsec``.

    Only the partitions whose pixels overlap the cone are read (hats' ``filter_by_cone``),
    and within them only the row groups whose ``_healpix_29`` range meets the cone's index
    ranges; the exact great-circle distance (the function of ``ang_sep_arcsec``) keeps the rows
    inside the radius, so the rows are those of :func:`catalog.queries.search.cone` over the
    same data in the lake.

    Parameters
    ----------
    path : path
        A HATS catalog or collection directory (see :func:`open_hats`).
    ra, dec : float
        Cone centre, ICRS degrees (already checked by the caller).
    radius_arcsec : float
        Cone radius in arcsec.
    """
    import pyarrow.dataset as ds

    from catalog.sky import cone_ranges, separation_arcsec

    cat = open_hats(path)
    pruned = cat.filter_by_cone(ra, dec, radius_arcsec)
    flt = None
    info = cat.catalog_info
    index = info.healpix_column or HATS_INDEX
    if index in cat.schema.names and (info.healpix_order or 29) == 29:
        for lo, hi in cone_ranges(ra, dec, radius_arcsec):
            cond = (ds.field(index) >= int(lo)) & (ds.field(index) <= int(hi))
            flt = cond if flt is None else flt | cond
    t = _read(pruned, path, flt)
    sep = separation_arcsec(
        t["ra"].to_numpy(zero_copy_only=False).astype(float),
        t["dec"].to_numpy(zero_copy_only=False).astype(float),
        ra,
        dec,
    )
    keep = np.flatnonzero(sep <= radius_arcsec)
    keep = keep[np.argsort(sep[keep], kind="stable")]
    t = t.take(pa.array(keep, pa.int64()))
    return t.append_column("separation_arcsec", pc.cast(pa.array(sep[keep]), pa.float64()))


#: Neighbours LSDB's KD-tree looks for per left row when all pairs are asked for (``--best``: 1).
LSDB_NEIGHBORS = 64


def xmatch_lsdb(
    left: pa.Table, right: str | os.PathLike, radius_arcsec: float, best: bool = False
) -> pa.Table:
    """Crossmatch rows (ra, dec in degrees) with a HATS catalog through LSDB (Dask).

    ``left`` becomes an LSDB catalog (``lsdb.from_dataframe``), the HATS catalog is opened with
    its margin (``lsdb.open_catalog``), and ``Catalog.crossmatch`` (KD-tree per aligned pair of
    partitions, lazily on Dask) finds, for each left row, the right rows within the radius: the
    nearest one with ``best``, else up to :data:`LSDB_NEIGHBORS`. The result has the columns of
    :func:`catalog.queries.search.xmatch_tables` (``_1``, ``_2``, ``separation_arcsec``) and the
    same pairs; separations agree to floating-point rounding (LSDB works from chord lengths).

    Parameters
    ----------
    left : pyarrow.Table
        Rows with ``ra`` and ``dec`` (degrees).
    right : path
        A HATS catalog or collection (see :func:`open_hats`); pairs across partition edges
        need its margin (a gccat export has one of 5 arcsec) to be at least ``radius_arcsec``.
    radius_arcsec : float
        Match radius, arcsec.
    best : bool
        Only the nearest right row for each left row.

    Raises
    ------
    GccatError
        For a radius that is not positive, a left side without positions, a right side that
        is not a HATS catalog with coordinates, a left row with :data:`LSDB_NEIGHBORS` matches
        (more could be missing), or an error of LSDB.
    """
    import lsdb

    if not radius_arcsec > 0:
        raise GccatError(f"crossmatch radius must be positive, not {radius_arcsec}")
    for c in ("ra", "dec"):
        if c not in left.column_names:
            raise GccatError(f"the left side of the crossmatch has no '{c}' column")
    hc = open_hats(right)
    ra2, dec2 = hc.catalog_info.ra_column, hc.catalog_info.dec_column
    k = 1 if best else LSDB_NEIGHBORS
    row = "_gccat_row"
    df = left.append_column(row, pa.array(np.arange(left.num_rows), pa.int64())).to_pandas()
    try:
        lcat = lsdb.from_dataframe(df, ra_column="ra", dec_column="dec", catalog_name="left")
        rcat = lsdb.open_catalog(right)
        matched = lcat.crossmatch(
            rcat,
            n_neighbors=k,
            radius_arcsec=float(radius_arcsec),
            suffixes=("_1", "_2"),
            suffix_method="all_columns",
        ).compute()
    except (ValueError, RuntimeError, OSError) as exc:
        raise GccatError(f"LSDB crossmatch failed: {' '.join(str(exc).split())[:300]}") from None
    if not best and len(matched) and matched.groupby(f"{row}_1").size().max() >= k:
        raise GccatError(
            f"a left row has {k} matches within {radius_arcsec} arcsec (LSDB looks for at most {k}): "
            "use a smaller --radius or the in-process engine"
        )
    matched = matched.sort_values([f"{row}_1", "_dist_arcsec"], kind="stable")
    lrows = matched[f"{row}_1"].to_numpy(np.int64)
    cols, names = [], []
    taken = left.take(pa.array(lrows, pa.int64()))
    cols += taken.columns
    names += [n + "_1" for n in left.column_names]
    rnames = [c for c in hc.schema.names if c != HATS_INDEX or "healpix29" not in hc.schema.names]
    for c in rnames:
        new = {ra2: "ra", dec2: "dec", HATS_INDEX: "healpix29"}.get(c, c)
        if c == HATS_INDEX:  # LSDB keeps the left side's index: the same value, from the position
            from catalog.sky import healpix29

            values = healpix29(matched[f"{ra2}_2"].to_numpy(float), matched[f"{dec2}_2"].to_numpy(float))
        elif f"{c}_2" in matched.columns:
            values = matched[f"{c}_2"]  # a Series: pyarrow-backed columns keep their type and NULLs
        else:
            continue
        cols.append(pa.array(values))
        names.append(new + "_2")
    cols.append(pa.array(matched["_dist_arcsec"].to_numpy(), pa.float64()))
    names.append("separation_arcsec")
    return pa.table(cols, names=names)
