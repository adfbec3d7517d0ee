"""Stellar-population fits of lake photometry, written back to the lake.

Selection from ``photometry_wide`` (SQL), photometry from ``photometry_best`` in nJy (or
another choice of ``photometry_ranked``, ``--photometry``; see :func:`photometry_choice`),
Milky Way extinction removed per field (G23) unless the photometry says it already is,
SSP grids built once per (redshift, bands, spec) and cached in ``ssp_grids``, fits by
:mod:`catalog.sed` in chunks (in process or on Dask), results in ``fit_runs``,
``fit_posteriors``, ``fit_samples``, ``fit_chi2_maps`` and ``sfh_epochs``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import json
import time
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from catalog import sed as sps
from catalog.checks import Z_MAX, check_number, check_numbers
from catalog.constants import FINAL_APERTURE_RADIUS_ARCSEC, MAX_APERTURE_RADIUS_ARCSEC, RADIUS_MATCH_ARCSEC
from catalog.errors import GccatError
from catalog.lake import Lake, gccat_version, new_ingest_id
from catalog.lake.schemas import (
    FIT_CHI2_MAPS,
    FIT_POSTERIORS,
    FIT_RUNS,
    FIT_SAMPLES,
    FIT_SKIPPED,
    SFH_EPOCHS,
    SSP_GRIDS,
)
from catalog.runs.cluster import check_scheduler, dask_client, map_chunks
from catalog.runs.restframe import restframe_rows
from catalog.sed import GridSpec
from catalog.sed.draws import SEEDING

BLOCK = 65_536  # objects fitted and written at a time
#: Bounds of the fit options (those of the grid options are :class:`catalog.sed.GridSpec`'s):
#: 10^4 draws per object are far more than percentiles need (fit_samples holds objects x draws
#: rows); a chunk above BLOCK is cut to BLOCK anyway.
MAX_SAMPLES = 10_000
MAX_BOOT = 100_000
MAX_PERTURB = 10_000
MAX_EPOCHS = 50
#: The id that keys the posterior draws of a stack (its object id, ``stack:<run_id>``, is new
#: each run; keyed by this, the same seed gives the same draws).
STACK_DRAW_ID = "stack"


def check_redshift(z, option: str = "--z", allow_none: bool = True) -> float | None:
    """A redshift in (0, :data:`catalog.checks.Z_MAX`] (at z = 0 there is no distance modulus)."""
    return check_number(z, option, lo=0, lo_open=True, hi=Z_MAX, allow_none=allow_none)


def check_fit_options(
    *, z=None, error_floor=0.05, n_samples=0, seed=0, chunk=None, prior=None, scheduler=None
) -> dict:
    """The options shared by the fits, checked before anything is read or written."""
    out = {
        "z": check_redshift(z),
        # a floor of more than 100% of the flux would make every band worthless
        "error_floor": check_number(error_floor, "--error-floor", lo=0, hi=1),
        "n_samples": check_number(n_samples, "--samples", lo=0, hi=MAX_SAMPLES, integer=True),
        "seed": check_number(seed, "--seed", lo=0, hi=2**63 - 1, integer=True),
    }
    if chunk is not None:
        out["chunk"] = check_number(chunk, "--chunk", lo=1, hi=BLOCK, integer=True)
    if prior is not None and prior not in sps.PRIORS:
        raise GccatError(f"--prior must be one of {', '.join(sps.PRIORS)}, not {prior!r}")
    check_scheduler(scheduler)
    return out


#: Default --min-bands of ``fit sfh``: NNLS keeps at most one non-zero epoch per band, and
#: fewer than three bands constrain no shape of a history. (SSP fits default to their number
#: of free parameters, :func:`catalog.sed.n_free_parameters`.)
MIN_BANDS_SFH = 3
MAX_MIN_BANDS = 1000


def check_min_bands(min_bands) -> int | None:
    """``--min-bands``: None (the fit's default) or a whole number >= 1."""
    return check_number(min_bands, "--min-bands", lo=1, hi=MAX_MIN_BANDS, integer=True, allow_none=True)


@dataclass
class BandCut:
    """Which selected objects have enough usable bands to be fitted, and a record of the rest."""

    keep: np.ndarray  # (n_obj,) bool
    n_bands: np.ndarray  # (n_obj,) usable bands
    min_bands: int
    why: str  # what min_bands stands for, for messages

    @property
    def n_skipped(self) -> int:
        """Objects left out for too few usable bands."""
        return int((~self.keep).sum())

    def rows(self, sel: Selection, run_id: str) -> pa.Table:
        """``fit_skipped`` rows of the objects left out."""
        out = np.flatnonzero(~self.keep)
        reasons = [f"{int(k)} usable bands < {self.min_bands} ({self.why})" for k in self.n_bands[out]]
        return self.skipped(sel, run_id, out, reasons)

    def skipped(self, sel: Selection, run_id: str, idx, reasons: list[str]) -> pa.Table:
        """``fit_skipped`` rows of the objects ``idx`` (indices into ``sel``), each with its reason."""
        idx = np.asarray(idx, dtype=np.intp)
        n = len(idx)
        return pa.table(
            {
                "run_id": [run_id] * n,
                "object_id": sel.object_id[idx].tolist(),
                "field_id": sel.field_id[idx].tolist(),
                "n_bands": self.n_bands[idx].astype(np.int64),
                "min_bands": np.full(n, self.min_bands, np.int64),
                "reason": list(reasons),
                "ingest_id": [run_id] * n,
            },
            schema=FIT_SKIPPED,
        )

    def warning(self) -> str | None:
        """The one-line warning that counts the skipped objects, or None."""
        if not self.n_skipped:
            return None
        return (
            f"{self.n_skipped} of {len(self.keep)} selected objects not fitted: fewer than "
            f"{self.min_bands} usable bands ({self.why}); see the view fit_skipped"
        )


def band_cut(
    sel: Selection, min_bands: int | None, default: int, why_default: str, error_floor: float
) -> BandCut:
    """Objects with at least ``min_bands`` usable bands (detections with a usable error, and
    upper limits); ``default`` when ``min_bands`` is None.

    Raises
    ------
    GccatError
        If no selected object has enough bands (nothing is written then).
    """
    n_bands = sps.usable_bands(sel.flux, sel.err, sel.upper, error_floor)
    need, why = (default, why_default) if min_bands is None else (int(min_bands), "--min-bands")
    cut = BandCut(n_bands >= need, n_bands, need, why)
    if not cut.keep.any():
        raise GccatError(
            f"none of the {len(n_bands)} selected objects has {need} usable bands "
            f"({why}); the most any has is {int(n_bands.max(initial=0))}"
        )
    return cut


def _check_selection_redshifts(sel: Selection) -> None:
    bad = ~((sel.z > 0) & (sel.z <= Z_MAX))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise GccatError(f"{sel.object_id[i]} has redshift {sel.z[i]:g}, outside (0, {Z_MAX:g}]; give --z")


@contextlib.contextmanager
def _rollback_on_error(lake: Lake, tx):
    """Delete what an uncommitted fit appended if it fails (an error, Ctrl-C), so a failed fit
    leaves no orphan rows; the lake's version and its visible rows never change either way.
    """
    try:
        yield
    except BaseException:
        if not tx.committed:
            for table in list(tx.written):
                # ingest ids are new_ingest_id() values: digits, 'T', '-' and hex only
                with contextlib.suppress(Exception):  # gccat doctor --clean remains the fallback
                    lake.delta(table).delete(f"ingest_id = '{tx.ingest_id}'")
        raise


def _append_grid_if_new(lake: Lake, tx, grid: sps.SSPGrid, gid: str) -> None:
    if not lake.live("ssp_grids", filters=pc.field("grid_id") == gid).num_rows:
        tx.append("ssp_grids", grid_table(grid, gid, tx.ingest_id))


@dataclass(frozen=True)
class PhotometryChoice:
    """Which photometry a fit reads (``--photometry``), as a condition on ``photometry_ranked``.

    Attributes
    ----------
    spec : str
        The choice as written, normalised (recorded in ``fit_runs.config``).
    condition : str
        SQL condition on ``photometry_ranked`` with ``?`` placeholders ("" for ``best``).
    params : tuple
        Values bound to the placeholders.
    description : str
        The rule in words (recorded in ``fit_runs.config``).
    """

    spec: str
    condition: str
    params: tuple
    description: str


#: What ``--photometry`` accepts.
PHOTOMETRY_CHOICES = "best, catalog, method:NAME, aperture:R or aperture:R:measured (R in arcsec)"


def photometry_choice(spec: str | None = "best") -> PhotometryChoice:
    """Parse a ``--photometry`` choice: which row per source and band the fits use.

    Each choice keeps some candidates of ``photometry_ranked`` and takes, per source and band,
    the one of highest preference among them (the rule of ``photometry_best``):

    * ``best`` (default): ``photometry_best`` -- catalog (published) photometry, else
      injection-corrected, else aperture-corrected aperture photometry at the final radius
      (:data:`catalog.constants.FINAL_APERTURE_RADIUS_ARCSEC`), else the other radii, other
      methods and uncorrected aperture sums, in that order;
    * ``catalog``: published catalog photometry only (``method:catalog``);
    * ``method:NAME``: rows of photometry method NAME (``aperture``, ``psf``, ...) only;
    * ``aperture:R``: gccat aperture photometry of radius R arcsec, injection-corrected where
      a correction applies (``photometry_injection_corrected``), else as measured;
    * ``aperture:R:measured``: the same radius as measured, without injection correction.

    Bands without such a row are left out of an object's fit.
    """
    text = "best" if spec is None else str(spec).strip()
    parts = text.split(":")
    parts[0] = parts[0].lower()  # keywords in any case; method names as written
    text = ":".join(parts)
    if text == "best":
        return PhotometryChoice(
            "best",
            "",
            (),
            "photometry_best: catalog photometry, else "
            f"injection-corrected, else aperture-corrected at radius "
            f"{FINAL_APERTURE_RADIUS_ARCSEC:g} arcsec, else other radii "
            "(nearest first), other methods, uncorrected aperture sums",
        )
    if text == "catalog" or (parts[0] == "method" and len(parts) == 2):
        name = "catalog" if text == "catalog" else parts[1]
        if not name.replace("_", "").replace("-", "").isalnum():
            raise GccatError(f"--photometry method:NAME needs a method name, not {spec!r}")
        return PhotometryChoice(
            f"method:{name}",
            "method = ?",
            (name,),
            f"photometry of method {name}, the preferred row per band",
        )
    if parts[0] == "aperture" and (len(parts) == 2 or (len(parts) == 3 and parts[2].lower() == "measured")):
        try:
            r = float(parts[1])
        except ValueError:
            raise GccatError(f"--photometry aperture:R needs a radius R in arcsec, not {spec!r}") from None
        r = check_number(
            r, "--photometry aperture:R (radius, arcsec)", lo=0, lo_open=True, hi=MAX_APERTURE_RADIUS_ARCSEC
        )
        cond = "method = 'aperture' AND abs(aperture_radius_arcsec - ?) < ?"
        if len(parts) == 3:
            return PhotometryChoice(
                f"aperture:{r:g}:measured",
                cond + " AND NOT injection_corrected",
                (r, RADIUS_MATCH_ARCSEC),
                f"aperture photometry of radius {r:g} arcsec as measured",
            )
        return PhotometryChoice(
            f"aperture:{r:g}",
            cond,
            (r, RADIUS_MATCH_ARCSEC),
            f"aperture photometry of radius {r:g} arcsec, injection-corrected where a correction applies",
        )
    raise GccatError(f"--photometry must be one of {PHOTOMETRY_CHOICES}, not {spec!r}")


@dataclass
class Selection:
    """Photometry of the selected objects as (n_obj, n_band) arrays in nJy, blue to red."""

    object_id: np.ndarray
    field_id: np.ndarray
    z: np.ndarray
    bands: list[str]  # gccat band names
    sedpy: list[str]  # their astro-sedpy curves
    flux: np.ndarray
    err: np.ndarray
    upper: np.ndarray


def grid_id(z: float, sedpy_names: list[str], spec: GridSpec) -> str:
    """Stable id of a grid: hash of its redshift, bands and (checked) spec."""
    key = json.dumps({"z": round(float(z), 4), "bands": list(sedpy_names), **spec.to_dict()}, sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _grid_from_row(row: dict) -> sps.SSPGrid:
    shape = tuple(row["shape"])
    return sps.SSPGrid(
        z=row["z"],
        bands=list(row["bands"]),
        age_gyr=np.array(row["age_gyr"]),
        log_z_zsun=np.array(row["log_z_zsun"]),
        av=np.array(row["av"]),
        flux_njy=np.array(row["flux_njy"], dtype=np.float64).reshape(shape),
        living_fraction=np.array(row["living_fraction"]).reshape(shape[:2]),
        spec=json.loads(row["spec"]),
    )


def load_or_build_grid(
    lake: Lake, z: float, sedpy_names: list[str], spec: GridSpec | None = None, *, tx=None
) -> tuple[sps.SSPGrid, str, bool]:
    """The cached grid for (z, bands, spec), or a new one (appended with ``tx`` if given).

    ``spec`` defaults to ``GridSpec()``. Returns the grid, its id and whether it was built now;
    a new grid's fluxes are rounded to float32, as the cache stores them.
    """
    z = check_redshift(z, allow_none=False)
    spec = (spec or GridSpec()).checked()
    gid = grid_id(z, sedpy_names, spec)
    cached = lake.live("ssp_grids", filters=pc.field("grid_id") == gid)
    if cached.num_rows:
        return _grid_from_row(cached.slice(0, 1).to_pylist()[0]), gid, False
    hi = sps.grids.age_upper_bound_gyr(float(z), spec.age_max_gyr, spec.universe_bound)
    if spec.age_min_gyr is not None and spec.age_min_gyr > hi * (1 + 1e-9):
        why = (
            f"the Universe is {hi:.4g} Gyr old at z = {float(z):g} (--no-universe-bound lifts that bound)"
            if spec.universe_bound and (spec.age_max_gyr or 99) > hi
            else f"MAX is {hi:g} Gyr"
        )
        raise GccatError(f"--age-range: no age from {spec.age_min_gyr:g} Gyr on: {why}")
    grid = sps.build_grid(float(z), list(sedpy_names), spec)
    # the cache holds float32 fluxes: a new grid is rounded alike, so that the run that builds
    # it and every later run on the cached grid fit the same numbers
    grid.flux_njy = grid.flux_njy.astype(np.float32).astype(np.float64)
    if tx is not None:
        tx.append("ssp_grids", grid_table(grid, gid, tx.ingest_id))
    return grid, gid, True


def grid_table(grid: sps.SSPGrid, gid: str, ingest_id: str) -> pa.Table:
    """The ``ssp_grids`` row of a grid: its id, recipe and model fluxes."""
    return pa.Table.from_pylist(
        [
            {
                "grid_id": gid,
                "z": grid.z,
                "bands": grid.bands,
                "spec": json.dumps(grid.spec, default=str),
                "shape": list(grid.flux_njy.shape),
                "age_gyr": grid.age_gyr.tolist(),
                "log_z_zsun": grid.log_z_zsun.tolist(),
                "av": grid.av.tolist(),
                "flux_njy": grid.flux_njy.astype(np.float32).ravel().tolist(),
                "living_fraction": grid.living_fraction.ravel().tolist(),
                "created_at": dt.datetime.now(dt.UTC),
                "ingest_id": ingest_id,
            }
        ],
        schema=SSP_GRIDS,
    )


def build_grid_command(
    lake: Lake,
    z: float,
    bands: list[str],
    command: str = "",
    grid_spec: GridSpec | None = None,
    recipe: str | None = None,
    **grid_options,
) -> dict:
    """``gccat grid build``: build (or find) the grid of gccat ``bands`` at ``z``.

    The grid options are ``grid_spec`` (default ``GridSpec()``), or the grid of an SSP
    ``recipe`` (:mod:`catalog.sed.recipes`), with any keyword ``grid_options``
    (:class:`catalog.sed.GridSpec` fields, e.g. ``n_av=3``) over it.
    """
    from catalog import bands as bandreg
    from catalog.sed.recipes import resolve_ssp

    z = check_redshift(z, allow_none=False)
    spec, _, record = resolve_ssp(recipe, grid_spec=grid_spec, **grid_options)
    bands = [b for b in bands if b]
    if not bands or len(set(bands)) != len(bands):
        raise GccatError(f"--bands must name distinct bands, not {','.join(bands)!r}")
    sed = []
    for b in bands:
        info = bandreg.lookup(b)
        if info is None:
            raise GccatError(f"--bands: unknown band '{b}'")
        sed.append(info.sedpy_name)
    with lake.transaction("grid") as tx:
        grid, gid, built = load_or_build_grid(lake, z, sed, spec, tx=tx)
        if built:
            tx.commit(
                name=gid,
                n_rows=int(np.prod(grid.flux_njy.shape[:3])),
                command=command,
                options={"run": "grid", "z": z, "bands": bands, **spec.to_dict(), **record},
            )
    return {
        "grid_id": gid,
        "built": built,
        "n_age": int(grid.age_gyr.size),
        "age_range_gyr": (float(grid.age_gyr.min()), float(grid.age_gyr.max())),
        "n_models": int(np.prod(grid.flux_njy.shape[:3])),
        "shape": grid.flux_njy.shape,
    }


def select(
    lake: Lake,
    where: str | None,
    z: float | None = None,
    con=None,
    photometry: str | PhotometryChoice | None = "best",
) -> Selection:
    """Objects of ``photometry_wide`` matching ``where`` with their photometry (nJy).

    Parameters
    ----------
    where : str, optional
        SQL condition on ``photometry_wide`` (its flux and magnitude columns follow the
        ``best`` rule whatever ``photometry`` is).
    z : float, optional
        Redshift for all; else the detection's, else the field's cluster redshift.
    photometry : str or PhotometryChoice
        Which photometry row per source and band (:func:`photometry_choice`; default
        ``best``, i.e. ``photometry_best``).

    Notes
    -----
    Fluxes not yet corrected for Milky Way extinction are corrected with the field's E(B-V)
    (G23, R_V = 3.1) through each filter curve.
    """
    from catalog.queries.connection import connect
    from catalog.queries.sandbox import condition_sql
    from catalog.queries.search import run_sql

    choice = photometry if isinstance(photometry, PhotometryChoice) else photometry_choice(photometry)
    con = con or connect(lake)
    cond = f"WHERE {condition_sql(where)}" if where else ""
    # the chosen rows: the best candidate per source and band among those the choice keeps
    # The selection's fields, as constants: a filter on field_id goes through the ranking
    # windows (field_id is in their PARTITION BY) down to the field partitions of photometry,
    # so a fit of one field of a 10^7-detection lake reads that field, not the whole lake.
    fields = run_sql(con, f"SELECT DISTINCT field_id FROM photometry_wide {cond}")["field_id"].to_pylist()
    in_fields = f"field_id IN ({', '.join('?' for _ in fields)})" if fields else "false"
    rows = (
        f"(SELECT * FROM photometry_best WHERE {in_fields})"
        if not choice.condition
        else f"""(
        SELECT * FROM photometry_ranked WHERE {in_fields} AND ({choice.condition})
        QUALIFY row_number() OVER (PARTITION BY field_id, detection_id, band ORDER BY preference DESC) = 1)"""
    )
    t = run_sql(
        con,
        f"""
        WITH sel AS (SELECT detection_id, field_id, z FROM photometry_wide {cond})
        SELECT sel.detection_id, sel.field_id, coalesce(sel.z, f.z_cluster) AS z, f.ebv_mw,
               pb.band, b.sedpy_name, b.pivot_um, pb.flux_njy, pb.flux_err_njy,
               pb.is_upper_limit, pb.mw_corrected
        FROM sel JOIN {rows} pb USING (detection_id)
        JOIN bands b USING (band) LEFT JOIN fields f ON f.field_id = sel.field_id
        ORDER BY sel.detection_id, pb.band""",
        [*fields, *choice.params] or None,
    )
    # ordered: the objects' order (and so a seeded bootstrap or draw) must not depend on how
    # DuckDB's threads happen to return the rows
    if t.num_rows == 0:
        raise GccatError(
            "no photometry matches the selection"
            + (f": {where}" if where else "")
            + ("" if choice.spec == "best" else f" with --photometry {choice.spec}")
        )
    # Arrow compute throughout: 10^6 objects x 9 bands must not become Python strings.
    per_band = t.group_by("band").aggregate([("pivot_um", "min"), ("sedpy_name", "min")])
    per_band = per_band.sort_by("pivot_um_min")
    bands = per_band["band"].to_pylist()
    sed = per_band["sedpy_name_min"].to_pylist()
    ids_arrow = pc.unique(t["detection_id"])
    row = pc.index_in(t["detection_id"], value_set=ids_arrow).to_numpy()
    col = pc.index_in(t["band"], value_set=pa.array(bands)).to_numpy()
    n, k = len(ids_arrow), len(bands)
    flux, err = np.full((n, k), np.nan), np.full((n, k), np.nan)
    upper = np.zeros((n, k), bool)
    factor = np.ones(len(row))
    ebv = t["ebv_mw"].to_numpy(zero_copy_only=False).astype(float)
    todo = ~t["mw_corrected"].to_numpy(zero_copy_only=False) & np.isfinite(ebv) & (ebv > 0)
    for e in np.unique(ebv[todo]):
        a = sps.mw_extinction_mag(sed, float(e))
        sel = todo & (ebv == e)
        factor[sel] = 10 ** (0.4 * a[col[sel]])
    flux[row, col] = t["flux_njy"].to_numpy(zero_copy_only=False).astype(float) * factor
    err[row, col] = t["flux_err_njy"].to_numpy(zero_copy_only=False).astype(float) * factor
    upper[row, col] = t["is_upper_limit"].to_numpy(zero_copy_only=False)
    _, first = np.unique(row, return_index=True)  # first photometry row of objects 0..n-1
    first_rows = pa.array(first)
    zz = t["z"].take(first_rows).to_numpy(zero_copy_only=False).astype(float)
    fid = np.asarray(t["field_id"].take(first_rows).to_pylist(), dtype=object)
    ids = np.asarray(ids_arrow.to_pylist(), dtype=object)
    z = check_redshift(z)
    if z is not None:
        zz[:] = z
    if np.isnan(zz).any():
        bad = ids[np.isnan(zz)][0]
        raise GccatError(f"no redshift for {bad} (nor for its field); give --z")
    sel = Selection(ids, fid, zz, bands, sed, flux, err, upper)
    _check_selection_redshifts(sel)
    return sel


def _fit_chunk(grid, flux, err, upper, error_floor, n_samples, keys, keep_chi2, prior="index"):
    if prior not in sps.PRIORS:
        raise GccatError(f"--prior must be one of {', '.join(sps.PRIORS)}, not {prior!r}")
    return sps.fit_ssp(
        grid,
        flux,
        err,
        upper_limit=upper,
        error_floor=error_floor,
        n_samples=n_samples,
        draw_keys=keys,
        keep_chi2_grid=keep_chi2,
        log_prior=sps.PRIORS[prior](grid),
    )


def _concat(results: list[sps.FitResult]) -> sps.FitResult:
    def cat(get):
        parts = [get(r) for r in results]
        return None if parts[0] is None else np.concatenate(parts)

    keys = sps.FIT_KEYS
    return sps.FitResult(
        percentiles={k: cat(lambda r, k=k: r.percentiles[k]) for k in keys},
        map_params={k: cat(lambda r, k=k: r.map_params[k]) for k in keys},
        best_fit_params={k: cat(lambda r, k=k: r.best_fit_params[k]) for k in keys},
        chi2_min=cat(lambda r: r.chi2_min),
        n_bands=cat(lambda r: r.n_bands),
        reduced_chi2=cat(lambda r: r.reduced_chi2),
        samples=None if results[0].samples is None else {k: cat(lambda r, k=k: r.samples[k]) for k in keys},
        chi2_grid=cat(lambda r: r.chi2_grid),
    )


def fit_in_chunks(
    grid,
    flux,
    err,
    upper,
    *,
    error_floor=0.05,
    n_samples=0,
    seed=0,
    object_ids=None,
    chunk=4096,
    scheduler: str | None = None,
    keep_chi2=False,
    prior: str = "index",
    progress=None,
    client=None,
) -> sps.FitResult:
    """Fit objects in chunks of ``chunk`` (bounded memory), in process or on Dask.

    Each object draws its samples from its own stream, keyed by ``seed`` and its id in
    ``object_ids`` (default: its row number; :func:`catalog.sed.draws.object_keys`), so the
    numbers are the same whatever ``chunk`` and wherever the chunks run. ``scheduler``: None
    (in process), ``"local"`` (a local Dask cluster) or a Dask scheduler address; ``client``:
    an open Dask client (from :func:`dask_client`) instead.
    """
    from catalog.sed.draws import object_keys

    chunk = check_number(chunk, "--chunk", lo=1, hi=BLOCK, integer=True)
    n_samples = check_number(n_samples, "--samples", lo=0, hi=MAX_SAMPLES, integer=True)
    error_floor = check_number(error_floor, "--error-floor", lo=0, hi=1)
    n = len(flux)
    keys = object_keys(seed, range(n) if object_ids is None else object_ids)
    starts = list(range(0, n, chunk)) or [0]
    args = [
        (flux[s : s + chunk], err[s : s + chunk], upper[s : s + chunk], keys[s : s + chunk]) for s in starts
    ]
    if client is None and scheduler is None:
        out = []
        for i, (f, e, u, k) in enumerate(args):
            out.append(_fit_chunk(grid, f, e, u, error_floor, n_samples, k, keep_chi2, prior))
            if progress:
                progress(f"fitting {min((i + 1) * chunk, n)}/{n}", 0.1 + 0.8 * (i + 1) / len(args))
        return _concat(out)
    if client is None:
        with dask_client(scheduler) as own:
            return fit_in_chunks(
                grid,
                flux,
                err,
                upper,
                error_floor=error_floor,
                n_samples=n_samples,
                seed=seed,
                object_ids=object_ids,
                chunk=chunk,
                keep_chi2=keep_chi2,
                prior=prior,
                progress=progress,
                client=own,
            )
    g = client.scatter(grid, broadcast=True)
    futures = [
        client.submit(_fit_chunk, g, f, e, u, error_floor, n_samples, k, keep_chi2, prior, pure=False)
        for f, e, u, k in args
    ]
    if progress:
        progress(f"fitting {n} on Dask", 0.5)
    return _concat(client.gather(futures))


def _posterior_rows(run_id, ids, fields, zs, res: sps.FitResult, ingest_id) -> pa.Table:
    n = len(ids)
    parts = []
    for key in sps.FIT_KEYS:
        p = res.percentiles[key]
        parts.append(
            pa.table(
                {
                    "run_id": [run_id] * n,
                    "object_id": list(ids),
                    "field_id": list(fields),
                    "parameter": [key] * n,
                    "p16": p[:, 0],
                    "p50": p[:, 1],
                    "p84": p[:, 2],
                    "map_value": res.map_params[key],
                    "best_fit_value": res.best_fit_params[key],
                    "z": zs,
                    "chi2_min": res.chi2_min,
                    "n_bands": res.n_bands.astype(np.int64),
                    "reduced_chi2": pa.array(res.reduced_chi2, from_pandas=True),
                    "ingest_id": [ingest_id] * n,
                }
            )
        )
    return pa.concat_tables(parts).cast(FIT_POSTERIORS)


def _sample_rows(run_id, ids, res: sps.FitResult, ingest_id) -> pa.Table | None:
    if not res.samples:
        return None
    n, m = res.samples["age_gyr"].shape
    cols = {k: res.samples[k].ravel() for k in sps.FIT_KEYS}
    return pa.table(
        {
            "run_id": [run_id] * (n * m),
            "object_id": np.repeat(ids, m).tolist(),
            "draw": np.tile(np.arange(m, dtype=np.int32), n),
            **cols,
            "ingest_id": [ingest_id] * (n * m),
        }
    ).cast(FIT_SAMPLES)


def _run_row(
    run_id, kind, where, grid_ids, error_floor, n_obj, n_samples, scheduler, seconds, config
) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "run_id": run_id,
                "kind": kind,
                "where_sql": where,
                "grid_ids": grid_ids,
                "error_floor": error_floor,
                "n_objects": n_obj,
                "n_samples": n_samples,
                "scheduler": scheduler or "in-process",
                "seconds": seconds,
                "gccat_version": gccat_version(),
                "config": json.dumps(config, default=str),
                "created_at": dt.datetime.now(dt.UTC),
                "ingest_id": run_id,
            }
        ],
        schema=FIT_RUNS,
    )


def run_fit_ssp(
    lake: Lake,
    where: str | None = None,
    *,
    z: float | None = None,
    error_floor: float = 0.05,
    n_samples: int = 100,
    seed: int = 0,
    chunk: int = 4096,
    scheduler: str | None = None,
    prior: str | None = None,
    min_bands: int | None = None,
    photometry: str = "best",
    progress=None,
    command: str = "",
    grid_spec: GridSpec | None = None,
    recipe: str | None = None,
    **grid_options,
) -> dict:
    """SSP fits of the selected objects (see :func:`select`) written to the lake.

    Objects are grouped by redshift (to 0.001); each group is fitted against its grid, in
    blocks of :data:`BLOCK` objects written as they come. ``photometry`` chooses the rows fitted
    (:func:`photometry_choice`; recorded in ``fit_runs.config``). Objects with fewer usable
    bands than ``min_bands`` (default: the grid's free parameters, mass plus each grid axis
    with more than one value) are not fitted; they are recorded in ``fit_skipped`` and counted
    in the returned ``warnings``. The grid options are ``grid_spec`` (default ``GridSpec()``)
    with any keyword ``grid_options`` (:class:`catalog.sed.GridSpec` fields, e.g. ``n_av=3``)
    over it; or ``recipe`` (:mod:`catalog.sed.recipes`) sets the grid and the prior, with
    ``grid_options`` and an explicit ``prior`` overriding it (recorded in ``fit_runs.config``
    as ``recipe_overrides``). ``prior`` defaults to ``"index"`` (or the recipe's). Returns the
    run id, counts (``n_objects`` fitted, ``n_skipped``) and ``result``: the FitResult of the
    last block per redshift.
    """
    step = progress or (lambda stage, frac: None)
    # Every option is checked before the selection is read, a grid built or a row written.
    opts = check_fit_options(
        z=z,
        error_floor=error_floor,
        n_samples=n_samples,
        seed=seed,
        chunk=chunk,
        prior=prior,
        scheduler=scheduler,
    )
    z, error_floor, n_samples, seed, chunk = (
        opts[k] for k in ("z", "error_floor", "n_samples", "seed", "chunk")
    )
    from catalog.sed.recipes import resolve_ssp

    spec, prior, record = resolve_ssp(recipe, grid_spec=grid_spec, prior=prior, **grid_options)
    min_bands = check_min_bands(min_bands)
    choice = photometry_choice(photometry)
    step("selecting", 0.02)
    sel = select(lake, where, z, photometry=choice)
    run_id = new_ingest_id()
    t0 = time.perf_counter()
    zkey = np.round(sel.z, 3)
    results = {}
    # Grids first (built in memory, written with the first block): their free parameters set
    # how many bands an object needs, and a selection with nothing to fit writes nothing.
    grids = {}
    for zg in np.unique(zkey):
        step(f"grid z={zg}", 0.05)
        grids[zg] = load_or_build_grid(lake, float(zg), sel.sedpy, spec)
    n_free = sps.n_free_parameters(next(iter(grids.values()))[0])
    cut = band_cut(sel, min_bands, n_free, f"the fit's {n_free} free parameters", error_floor)
    with (
        dask_client(scheduler) as client,
        lake.transaction("fit", ingest_id=run_id) as tx,
        _rollback_on_error(lake, tx),
    ):
        grid_ids = []
        for zg, (grid, gid, new_grid) in grids.items():
            idx_all = np.flatnonzero((zkey == zg) & cut.keep)
            if not len(idx_all):
                continue
            grid_ids.append(gid)
            # Blocks written as they are fitted keep memory bounded; nothing is visible
            # before the commit. The first write of a group (its new grid) waits until its
            # first block is fitted, so a fit that fails there has written nothing.
            for b0 in range(0, len(idx_all), BLOCK):
                idx = idx_all[b0 : b0 + BLOCK]
                res = fit_in_chunks(
                    grid,
                    sel.flux[idx],
                    sel.err[idx],
                    sel.upper[idx],
                    error_floor=error_floor,
                    n_samples=n_samples,
                    seed=seed,
                    object_ids=sel.object_id[idx],
                    chunk=chunk,
                    client=client,
                    prior=prior,
                    progress=step,
                )
                results[float(zg)] = res
                if new_grid:
                    _append_grid_if_new(lake, tx, grid, gid)
                    new_grid = False
                tx.append(
                    "fit_posteriors",
                    _posterior_rows(run_id, sel.object_id[idx], sel.field_id[idx], sel.z[idx], res, run_id),
                )
                s = _sample_rows(run_id, sel.object_id[idx], res, run_id)
                if s is not None:
                    tx.append("fit_samples", s)
                tx.append(
                    "restframe_results",
                    restframe_rows(
                        run_id,
                        sel.object_id[idx],
                        sel.field_id[idx],
                        sel.z[idx],
                        grid,
                        sel.bands,
                        sel.flux[idx],
                        sel.err[idx],
                        sel.upper[idx],
                        error_floor,
                        res,
                    ),
                )
        if cut.n_skipped:
            tx.append("fit_skipped", cut.rows(sel, run_id))
        seconds = time.perf_counter() - t0
        step("writing", 0.92)
        n_fit = int(cut.keep.sum())
        config = {
            "where": where,
            "z": z,
            "error_floor": error_floor,
            "n_samples": n_samples,
            "seed": seed,
            "draws": SEEDING,
            "chunk": chunk,
            "scheduler": scheduler or "in-process",
            "bands": sel.bands,
            **spec.to_dict(),
            "min_bands": cut.min_bands,
            "n_selected": len(sel.object_id),
            "n_skipped": cut.n_skipped,
            "photometry": choice.spec,
            "photometry_rule": choice.description,
            "upper_limits": "Sawicki 2012 erf term",
            "prior": {"index": "flat in age index, log Z, A_V", "log-age": "flat in log age, log Z, A_V"}.get(
                prior, prior
            ),
            "prior_name": prior,
            **record,
        }
        warnings = [w for w in (cut.warning(),) if w]
        tx.append(
            "fit_runs",
            _run_row(
                run_id, "ssp", where, grid_ids, error_floor, n_fit, n_samples, scheduler, seconds, config
            ),
        )
        tx.commit(
            name="fit ssp",
            n_rows=n_fit,
            command=command,
            options={"run": "fit ssp", **config},
            warnings=warnings,
        )
    step("done", 1.0)
    return {
        "run_id": run_id,
        "n_objects": n_fit,
        "n_selected": len(sel.object_id),
        "n_skipped": cut.n_skipped,
        "warnings": warnings,
        "seconds": seconds,
        "grid_ids": grid_ids,
        "bands": sel.bands,
        "result": results,
    }


def run_fit_stack(
    lake: Lake,
    where: str | None = None,
    *,
    z: float | None = None,
    error_floor: float = 0.05,
    n_boot: int = 1000,
    n_samples: int = 200,
    stack: str = "median",
    seed: int = 0,
    min_bands: int | None = None,
    photometry: str = "best",
    progress=None,
    command: str = "",
    grid_spec: GridSpec | None = None,
    recipe: str | None = None,
    prior: str | None = None,
    **grid_options,
) -> dict:
    """Stack the selection's photometry (median with bootstrap errors, or inverse-variance
    weighted) and fit it as one source ``stack:<run_id>``; its chi2 over age x Z is kept.

    ``photometry`` chooses the rows stacked (:func:`photometry_choice`). The stack needs
    ``min_bands`` usable bands (default: the grid's free parameters), else nothing is fitted
    or written. The grid options are ``grid_spec`` with ``grid_options`` over it, or a
    ``recipe`` with them over it, and ``prior`` the age prior, as in :func:`run_fit_ssp`.
    """
    step = progress or (lambda stage, frac: None)
    if stack not in ("median", "ivw"):
        raise GccatError(f"--stack must be median or ivw, not {stack!r}")
    opts = check_fit_options(z=z, error_floor=error_floor, n_samples=n_samples, seed=seed, prior=prior)
    z, error_floor, n_samples, seed = (opts[k] for k in ("z", "error_floor", "n_samples", "seed"))
    # a bootstrap error needs tens of resamples at least
    n_boot = check_number(n_boot, "--n-boot", lo=10, hi=MAX_BOOT, integer=True)
    from catalog.sed.recipes import resolve_ssp

    spec, prior, record = resolve_ssp(recipe, grid_spec=grid_spec, prior=prior, **grid_options)
    min_bands = check_min_bands(min_bands)
    choice = photometry_choice(photometry)
    sel = select(lake, where, z, photometry=choice)
    zs = np.unique(np.round(sel.z, 3))
    if len(zs) > 1 and z is None:
        raise GccatError(f"the selection spans redshifts {zs.min()}-{zs.max()}: give --z to stack")
    # a member's band without a usable measurement (e.g. no error) does not enter the stack
    usable = sps.usable_mask(sel.flux, sel.err, sel.upper, error_floor) & ~sel.upper
    st = sps.stack_photometry(
        np.where(usable, sel.flux, np.nan),
        np.where(usable, sel.err, np.nan),
        n_boot=n_boot,
        rng=np.random.default_rng(seed),
    )
    flux = st["median"] if stack == "median" else st["ivw_mean"]
    err = st["median_err"] if stack == "median" else st["ivw_err"]
    run_id = new_ingest_id()
    oid = f"stack:{run_id}"
    t0 = time.perf_counter()
    # One object: build and fit before the transaction, so a failure writes nothing.
    grid, gid, new_grid = load_or_build_grid(lake, float(zs[0]), sel.sedpy, spec)
    n_free = sps.n_free_parameters(grid)
    need = n_free if min_bands is None else min_bands
    n_usable = int(sps.usable_bands(flux, err, None, error_floor))
    if n_usable < need:
        why = f"the fit's {n_free} free parameters" if min_bands is None else "--min-bands"
        raise GccatError(
            f"the stack of {len(sel.object_id)} objects has {n_usable} usable bands, "
            f"fewer than {need} ({why}); nothing fitted"
        )
    res = fit_in_chunks(
        grid,
        flux[None, :],
        err[None, :],
        np.zeros((1, len(flux)), bool),
        error_floor=error_floor,
        n_samples=n_samples,
        seed=seed,
        object_ids=[STACK_DRAW_ID],
        keep_chi2=True,
        prior=prior,
    )
    with lake.transaction("fit", ingest_id=run_id) as tx, _rollback_on_error(lake, tx):
        if new_grid:
            _append_grid_if_new(lake, tx, grid, gid)
        field = sel.field_id[0] if len(set(sel.field_id)) == 1 else None
        tx.append("fit_posteriors", _posterior_rows(run_id, [oid], [field], [zs[0]], res, run_id))
        s = _sample_rows(run_id, np.array([oid]), res, run_id)
        if s is not None:
            tx.append("fit_samples", s)
        no_limits = np.zeros((1, len(flux)), bool)
        tx.append(
            "restframe_results",
            restframe_rows(
                run_id,
                [oid],
                [field],
                [zs[0]],
                grid,
                sel.bands,
                flux[None, :],
                err[None, :],
                no_limits,
                error_floor,
                res,
            ),
        )
        a, zz = np.meshgrid(grid.age_gyr, grid.log_z_zsun, indexing="ij")
        chi2 = res.chi2_grid[0]
        tx.append(
            "fit_chi2_maps",
            pa.table(
                {
                    "run_id": [run_id] * chi2.size,
                    "object_id": [oid] * chi2.size,
                    "age_gyr": a.ravel(),
                    "log_z": zz.ravel(),
                    "chi2": chi2.ravel(),
                    "ingest_id": [run_id] * chi2.size,
                },
                schema=FIT_CHI2_MAPS,
            ),
        )
        config = {
            "where": where,
            "z": float(zs[0]),
            "stack": stack,
            "n_boot": n_boot,
            "seed": seed,
            "draws": f"bootstrap: default_rng(seed); posterior draws keyed by the id {STACK_DRAW_ID!r}",
            "min_bands": need,
            "n_members": len(sel.object_id),
            "bands": sel.bands,
            "stacked_flux_njy": flux.tolist(),
            "stacked_err_njy": err.tolist(),
            "n_per_band": st["n"].tolist(),
            **spec.to_dict(),
            "photometry": choice.spec,
            "photometry_rule": choice.description,
            "prior_name": prior,
            **record,
        }
        tx.append(
            "fit_runs",
            _run_row(
                run_id,
                "stack",
                where,
                [gid],
                error_floor,
                1,
                n_samples,
                None,
                time.perf_counter() - t0,
                config,
            ),
        )
        tx.commit(name="fit stack", n_rows=1, command=command, options={"run": "fit stack", **config})
    step("done", 1.0)
    return {
        "run_id": run_id,
        "object_id": oid,
        "n_members": len(sel.object_id),
        "flux": flux,
        "err": err,
        "bands": sel.bands,
        "result": res,
        "grid": grid,
    }


def describe_stack(res: sps.FitResult) -> str:
    """One line for a stack fit: best fit, posterior mode and median, each named as such."""
    b, m, p = res.best_fit_params, res.map_params, res.percentiles
    return (
        f"best fit (min chi2 {res.chi2_min[0]:.3g}) {b['age_gyr'][0]:.3g} Gyr, log Z "
        f"{b['log_z'][0]:.2f}, A_V {b['av'][0]:.2f}, log M_living {b['log_mass_living'][0]:.2f}; "
        f"posterior mode {m['age_gyr'][0]:.3g} Gyr, log Z {m['log_z'][0]:.2f}; median "
        f"{p['age_gyr'][0, 1]:.3g} (16-84%: {p['age_gyr'][0, 0]:.2g}-{p['age_gyr'][0, 2]:.2g}) Gyr, "
        f"log Z {p['log_z'][0, 1]:.2f}, A_V {p['av'][0, 1]:.2f}, log M_living "
        f"{p['log_mass_living'][0, 1]:.2f}"
    )


#: chi2(z) scan of ``fit sfh`` (ZMIN, ZMAX, STEP) for objects without a redshift: to one step
#: below the first epoch start (12 by default), where the last template still has an epoch.
DEFAULT_Z_SCAN = (0.5, 11.9, 0.1)
MAX_Z_SCAN_STEPS = 2000
#: What ``sfh_results.z_source`` holds.
Z_SOURCES = ("--z", "catalog", "scan")
PHOTO_Z_DEFINITION = (
    "z_phot: minimum of chi2(z) over the scan grid (NNLS template masses minimised at each z), "
    "refined by a parabola through the three nodes around it; interval: outermost z where "
    "chi2 <= chi2_min + 1 (profile likelihood, 68% for one parameter), linear between nodes"
)
SFH_BAND = (
    "quartiles (25/50/75%, the paper's band) and 16/84 percentiles of the refits of the photometry "
    "perturbed by its 1-sigma errors, at the fitted redshift"
)


def check_z_scan(z_scan, first_epoch: float) -> tuple[float, float, float] | None:
    """``--z-scan ZMIN,ZMAX,STEP``: None, or three numbers with 0 < ZMIN < ZMAX < the first epoch
    start and at most :data:`MAX_Z_SCAN_STEPS` steps.
    """
    if z_scan is None:
        return None
    vals = check_numbers(z_scan, "--z-scan", n_min=3, n_max=3, lo=0, lo_open=True, hi=Z_MAX)
    zmin, zmax, step = vals
    if not zmin < zmax < first_epoch:
        raise GccatError(
            f"--z-scan needs ZMIN < ZMAX < {first_epoch:g} (the first epoch start), not {zmin:g},{zmax:g}"
        )
    if (zmax - zmin) / step + 1 > MAX_Z_SCAN_STEPS:
        raise GccatError(f"--z-scan STEP {step:g} gives more than {MAX_Z_SCAN_STEPS} redshifts")
    return (zmin, zmax, step)


def z_scan_grid(z_scan: tuple[float, float, float]) -> np.ndarray:
    """The redshifts ZMIN, ZMIN + STEP, ... <= ZMAX of a checked ``--z-scan``."""
    zmin, zmax, step = z_scan
    n = int(np.floor((zmax - zmin) / step + 1e-9)) + 1
    return np.round(zmin + step * np.arange(n), 6)


def check_sfh_options(sfh: dict) -> dict:
    """The ``fit sfh`` template options (:data:`catalog.sed.recipes.SFH_OPTIONS`), checked."""
    from catalog.sed.grids import MAX_AV
    from catalog.sed.library import BC03_Z_ZSUN, NEBULAR_LOG_U

    epochs_z = tuple(
        check_numbers(sfh["epochs_z"], "--epochs", n_max=MAX_EPOCHS, lo=0, lo_open=True, hi=Z_MAX)
    )
    if any(b >= a for a, b in zip(epochs_z, epochs_z[1:], strict=False)):
        raise GccatError(
            f"--epochs must be decreasing start redshifts, not {','.join(f'{e:g}' for e in epochs_z)}"
        )
    if not isinstance(sfh["nebular"], (bool, np.bool_)):
        raise GccatError(f"--nebular must be True or False, not {sfh['nebular']!r}")
    return {
        "epochs_z": epochs_z,
        "n_perturb": check_number(sfh["n_perturb"], "--n-perturb", lo=1, hi=MAX_PERTURB, integer=True),
        "metallicity": check_number(
            sfh["metallicity"], "--metallicity (Z/Zsun)", lo=min(BC03_Z_ZSUN), hi=max(BC03_Z_ZSUN)
        ),
        "av": check_number(sfh["av"], "--av (mag)", lo=0, hi=MAX_AV),
        "nebular": bool(sfh["nebular"]),
        "log_u": check_number(
            sfh["log_u"], "--log-u", lo=float(NEBULAR_LOG_U[0]), hi=float(NEBULAR_LOG_U[-1])
        ),
        "constant_z_max": check_number(
            sfh["constant_z_max"], "--constant-z-max", lo=0, lo_open=True, hi=Z_MAX
        ),
        "z_scan": check_z_scan(sfh["z_scan"], epochs_z[0]),
    }


class SfhTemplates:
    """The SEDz* templates of a run's options, built once per redshift (rounded to 0.001)."""

    def __init__(self, sedpy_names: list[str], opts: dict):
        self.names, self.opts, self.cache = list(sedpy_names), opts, {}

    def __call__(self, z: float) -> dict:
        """The templates at redshift ``z``."""
        zo = round(float(z), 3)
        if zo not in self.cache:
            o = self.opts
            key = (o["epochs_z"], o["metallicity"], o["av"], o["nebular"], o["log_u"], o["constant_z_max"])
            self.cache[zo] = _sfh_templates(zo, tuple(self.names), key)
        return self.cache[zo]


@functools.lru_cache(maxsize=4096)
def _sfh_templates(z: float, names: tuple, key: tuple) -> dict:
    """SEDz* templates, cached per process (chunks fitted in one process, or on one Dask
    worker, build each redshift once).
    """
    from catalog.sed.fitting import _single_threaded_blas

    epochs_z, metallicity, av, nebular, log_u, constant_z_max = key
    with _single_threaded_blas():  # as on a Dask worker: the same sums wherever it is built
        return sps.sfh_templates(
            z,
            list(names),
            epochs_z,
            log_z=float(np.log10(metallicity)),
            av=av,
            nebular=nebular,
            log_u=log_u,
            constant_z_max=constant_z_max,
        )


def _catalog_redshifts(lake: Lake, where: str | None, ids: np.ndarray) -> np.ndarray:
    """The detection's redshift, else its field's cluster redshift (NaN if neither), per id."""
    from catalog.queries.connection import connect
    from catalog.queries.sandbox import condition_sql
    from catalog.queries.search import run_sql

    cond = f"WHERE {condition_sql(where)}" if where else ""
    t = run_sql(
        connect(lake),
        f"WITH sel AS (SELECT detection_id, field_id, z FROM photometry_wide {cond}) "
        "SELECT sel.detection_id, coalesce(sel.z, f.z_cluster) AS z FROM sel "
        "LEFT JOIN fields f ON f.field_id = sel.field_id",
    )
    zc = dict(zip(t["detection_id"].to_pylist(), t["z"].to_pylist(), strict=True))
    return np.array([np.nan if zc.get(i) is None else float(zc[i]) for i in ids])


def _select_sfh(lake: Lake, where, z, z_scan, choice) -> tuple[Selection, np.ndarray]:
    """The selection and each object's redshift source (:data:`Z_SOURCES`): ``--z`` for all;
    a scan for all with ``--z-scan``; else the catalog's (detection, else field) and a scan
    where there is none.
    """
    if z is not None and z_scan is not None:
        raise GccatError("--z and --z-scan exclude each other: give a redshift or a scan range")
    if z is not None:
        sel = select(lake, where, z, photometry=choice)
        return sel, np.full(len(sel.object_id), "--z", dtype=object)
    if z_scan is not None:
        sel = select(lake, where, 1.0, photometry=choice)  # the redshift comes from the scan
        return sel, np.full(len(sel.object_id), "scan", dtype=object)
    try:
        sel = select(lake, where, None, photometry=choice)
        return sel, np.full(len(sel.object_id), "catalog", dtype=object)
    except GccatError as exc:
        if "no redshift" not in str(exc):
            raise
    sel = select(lake, where, 1.0, photometry=choice)  # the catalog's redshift is set below
    zc = _catalog_redshifts(lake, where, sel.object_id)
    scan = ~np.isfinite(zc)
    sel.z = np.where(scan, np.nan, zc)
    return sel, np.where(scan, "scan", "catalog").astype(object)


def _fit_sfh_object(
    sel: Selection, i: int, source: str, tpl_at: SfhTemplates, z_grid, opts, rng, error_floor
):
    """One object's fit: the chi2(z) scan and photo-z if ``source`` is ``scan``, then the NNLS
    fit with perturbed refits at the fitted redshift. Returns (fit, templates, z, scan dict);
    the fit is None where the scan does not constrain the redshift (nothing is fitted).
    """
    from catalog.sed.histories import photo_z, sfh_chi2_scan

    scan = None
    z = float(sel.z[i])
    if source == "scan":
        chi2 = sfh_chi2_scan(
            tpl_at, z_grid, sel.flux[i : i + 1], sel.err[i : i + 1], error_floor=error_floor
        )[0]
        scan = {"z_grid": z_grid, "chi2": chi2, **photo_z(z_grid, chi2)}
        z = float(scan["z_phot"])
        if scan["unconstrained"]:
            return None, None, z, scan
    tpl = tpl_at(z)
    r = sps.fit_sfh(
        tpl,
        sel.flux[i : i + 1],
        sel.err[i : i + 1],
        n_perturb=opts["n_perturb"],
        rng=rng,
        error_floor=error_floor,
    )
    return {k: (v[0] if k != "epochs" else v) for k, v in r.items()}, tpl, z, scan


def _sfh_epoch_rows(run_id, oid, r, tpl) -> list[dict]:
    rows = []
    for e in range(len(tpl["epochs"])):
        first = np.flatnonzero(tpl["epoch"] == e)[0]
        rows.append(
            {
                "run_id": run_id,
                "object_id": oid,
                "epoch": e,
                "z_start": float(tpl["z_start"][first]),
                "z_end": float(tpl["z_end"][first]),
                "t_start_gyr": float(tpl["t_start_gyr"][first]),
                "t_end_gyr": float(tpl["t_end_gyr"][first]),
                "mass_msun": float(r["mass_epoch"][e]),
                "mass_p16": float(r["mass_epoch_p16"][e]),
                "mass_p84": float(r["mass_epoch_p84"][e]),
                "mass_q25": float(r["mass_epoch_q25"][e]),
                "mass_q50": float(r["mass_epoch_q50"][e]),
                "mass_q75": float(r["mass_epoch_q75"][e]),
                "mass_burst_msun": float(
                    r["mass_template"][(tpl["epoch"] == e) & (tpl["kind"] == "burst")].sum()
                ),
                "mass_constant_msun": float(
                    r["mass_template"][(tpl["epoch"] == e) & (tpl["kind"] == "constant")].sum()
                ),
                "has_constant": bool(np.any((tpl["epoch"] == e) & (tpl["kind"] == "constant"))),
                "ingest_id": run_id,
            }
        )
    return rows


def _sfh_posterior_rows(run_id, sel, i, r, z) -> list[dict]:
    rows = []
    for key, lo, hi in (
        ("t50_gyr", "t50_gyr_p16", "t50_gyr_p84"),
        ("z50", None, None),
        ("t_peak_gyr", None, None),
        ("mass_total", "mass_total_p16", "mass_total_p84"),
    ):
        val = float(r[key])
        rows.append(
            {
                "run_id": run_id,
                "object_id": sel.object_id[i],
                "field_id": sel.field_id[i],
                "parameter": key,
                "p16": float(r[lo]) if lo else None,
                "p50": val,
                "p84": float(r[hi]) if hi else None,
                "map_value": None,
                "best_fit_value": val,
                "z": z,
                "chi2_min": float(r["chi2"]),
                "n_bands": int(r["n_bands"]),
                "reduced_chi2": None,
                "ingest_id": run_id,
            }
        )
    return rows


def _sfh_result_row(run_id, sel, i, r, tpl, z, source, scan) -> dict:
    q = {f"{k}_{s}": float(r[f"{k}_{s}"]) for k in ("mass_total", "t50_gyr") for s in ("q25", "q50", "q75")}
    return {
        "run_id": run_id,
        "object_id": sel.object_id[i],
        "field_id": sel.field_id[i],
        "z": z,
        "z_source": source,
        "z_catalog": None if source != "catalog" else float(sel.z[i]),
        "z_phot": None if scan is None else float(scan["z_phot"]),
        "z_phot_lo": None if scan is None else float(scan["z_lo"]),
        "z_phot_hi": None if scan is None else float(scan["z_hi"]),
        "z_phot_at_edge": scan is not None and bool(scan["at_edge"]),
        "chi2_min": float(r["chi2"]),
        "n_bands": int(r["n_bands"]),
        "n_templates": len(tpl["kind"]),
        "mass_total": float(r["mass_total"]),
        "mass_living": float(r["mass_living"]),
        "t50_gyr": float(r["t50_gyr"]),
        "z50": float(r["z50"]),
        "t_peak_gyr": float(r["t_peak_gyr"]),
        **q,
        "ingest_id": run_id,
    }


def _sfh_chi2_rows(run_id, oid, scan, z, r) -> list[dict]:
    """chi2 at each redshift tried: the scan's nodes, else the one redshift fitted."""
    if scan is None:
        return [{"run_id": run_id, "object_id": oid, "z": z, "chi2": float(r["chi2"]), "ingest_id": run_id}]
    return [
        {"run_id": run_id, "object_id": oid, "z": float(zz), "chi2": float(c), "ingest_id": run_id}
        for zz, c in zip(scan["z_grid"], scan["chi2"], strict=True)
    ]


def _check_epochs_precede(sel: Selection, keep: np.ndarray, epochs_z) -> None:
    late = np.flatnonzero(keep & np.isfinite(sel.z) & (sel.z >= epochs_z[0]))
    if late.size:
        i = int(late[0])
        raise GccatError(
            f"--epochs: no epoch starts above z = {sel.z[i]:g} of {sel.object_id[i]} "
            f"(the first starts at {epochs_z[0]:g})"
        )


def run_fit_sfh(
    lake: Lake,
    where: str | None = None,
    *,
    z: float | None = None,
    error_floor: float = 0.05,
    seed: int = 0,
    chunk: int = 64,
    scheduler: str | None = None,
    min_bands: int | None = None,
    photometry: str = "best",
    progress=None,
    command: str = "",
    recipe: str | None = None,
    **sfh_options,
) -> dict:
    """SEDz*-style non-parametric SFHs: masses per epoch by NNLS, errors from perturbed refits.

    ``sfh_options`` (:data:`catalog.sed.recipes.SFH_OPTIONS`) are ``epochs_z`` (decreasing epoch
    start redshifts, default 12, 11, ..., 4), ``n_perturb`` (default 21), ``metallicity`` (Z/Zsun
    of the templates, default 1), ``av`` (Calzetti A_V, mag, default 0), ``nebular`` (default
    False) with ``log_u`` (default -2), ``constant_z_max`` (constant-SF templates only for epochs
    starting at z <= this, default 10, the paper's rule) and ``z_scan`` ((ZMIN, ZMAX, STEP): scan
    chi2(z) for every object); a ``recipe`` (``"sedz"``) sets them, the ones given override it
    (recorded in ``fit_runs.config``). Redshifts: ``z`` for all; else with ``z_scan`` a chi2(z)
    scan for all; else the detection's (or its field's) redshift, and a scan over
    :data:`DEFAULT_Z_SCAN` where there is none. A scanned object is fitted at its photo-z
    (:data:`PHOTO_Z_DEFINITION`), stored in ``sfh_results`` with its interval and its chi2(z) in
    ``sfh_chi2_z``. ``photometry`` chooses the rows fitted (:func:`photometry_choice`). Objects
    with fewer than ``min_bands`` usable bands (default :data:`MIN_BANDS_SFH`) are not fitted;
    they are recorded in ``fit_skipped`` and counted in the returned ``warnings``.
    Objects are fitted ``chunk`` at a time, in process or (``scheduler``: ``"local"`` or a
    Dask scheduler address) on Dask; each object's perturbations come from its own stream
    (:func:`catalog.sed.draws.object_keys` of ``seed`` and its id), so the results are the
    same whatever ``chunk`` and ``scheduler``.
    """
    from catalog.sed.draws import object_keys
    from catalog.sed.recipes import resolve_sfh

    step = progress or (lambda stage, frac: None)
    opts = check_fit_options(z=z, error_floor=error_floor, seed=seed, chunk=chunk, scheduler=scheduler)
    z, error_floor, seed, chunk = opts["z"], opts["error_floor"], opts["seed"], opts["chunk"]
    sfh, record = resolve_sfh(recipe, **sfh_options)
    o = check_sfh_options(sfh)
    min_bands = check_min_bands(min_bands)
    choice = photometry_choice(photometry)
    sel, sources = _select_sfh(lake, where, z, o["z_scan"], choice)
    cut = band_cut(sel, min_bands, MIN_BANDS_SFH, "the default of fit sfh", error_floor)
    _check_epochs_precede(sel, cut.keep & (sources != "scan"), o["epochs_z"])
    z_scan = o["z_scan"] or (
        DEFAULT_Z_SCAN[0],
        min(DEFAULT_Z_SCAN[1], o["epochs_z"][0] - 0.1),
        DEFAULT_Z_SCAN[2],
    )
    z_grid = z_scan_grid(z_scan)
    run_id = new_ingest_id()
    t0 = time.perf_counter()
    out = {
        "sfh_epochs": [],
        "fit_posteriors": [],
        "sfh_results": [],
        "sfh_chi2_z": [],
        "restframe_results": [],
    }
    fitted = np.flatnonzero(cut.keep)
    chunks = [fitted[c : c + chunk] for c in range(0, len(fitted), chunk)]
    with dask_client(scheduler) as client:
        parts = map_chunks(
            _fit_sfh_chunk,
            [(_take(sel, idx), sources[idx], object_keys(seed, sel.object_id[idx])) for idx in chunks],
            client,
            small=(o, z_grid, error_floor, run_id),
            progress=step,
        )
    unconstrained = []
    for idx, (rows, lost) in zip(chunks, parts, strict=True):
        for name, r in rows.items():
            out[name] += r
        unconstrained += [int(i) for i in idx[lost]]
    n_scan = int(np.sum(sources[fitted] == "scan"))
    if unconstrained:
        fitted = np.setdiff1d(fitted, unconstrained)
        why = (
            "redshift not constrained: chi2(z) within 1 of its minimum over the whole scan "
            f"{z_scan[0]:g}-{z_scan[1]:g}"
        )
        out["fit_skipped"] = cut.skipped(sel, run_id, unconstrained, [why] * len(unconstrained)).to_pylist()
    config = {
        "where": where,
        "z": z,
        "z_sources": {s: int(np.sum(sources[fitted] == s)) for s in Z_SOURCES},
        "z_scan": list(z_scan) if n_scan else None,
        "z_scan_given": o["z_scan"] is not None,
        "photo_z": PHOTO_Z_DEFINITION if n_scan else None,
        "epochs_z": list(o["epochs_z"]),
        "n_perturb": o["n_perturb"],
        "band": SFH_BAND,
        "error_floor": error_floor,
        "seed": seed,
        "draws": SEEDING,
        "chunk": chunk,
        "scheduler": scheduler or "in-process",
        "bands": sel.bands,
        "min_bands": cut.min_bands,
        "n_selected": len(sel.object_id),
        "n_skipped": cut.n_skipped + len(unconstrained),
        "templates": "10 Myr burst per epoch, constant SF for epochs starting at z <= constant_z_max "
        "(SEDz*); only epochs starting above the object's redshift",
        "burst_myr": 10.0,
        "metallicity_zsun": o["metallicity"],
        "av": o["av"],
        "dust": "calzetti2000",
        "igm": "inoue2014",
        "nebular": o["nebular"],
        "log_u": o["log_u"] if o["nebular"] else None,
        "constant_z_max": o["constant_z_max"],
        "photometry": choice.spec,
        "photometry_rule": choice.description,
        **record,
    }
    warnings = [w for w in (cut.warning(),) if w]
    if unconstrained:
        warnings.append(
            f"{len(unconstrained)} of {len(sel.object_id)} selected objects not fitted: their "
            f"photometry does not constrain the redshift over the scan {z_scan[0]:g}-{z_scan[1]:g} "
            "(chi2(z) within 1 of its minimum everywhere); give --z or more bands; see fit_skipped"
        )
    _write_sfh_run(
        lake,
        run_id,
        where,
        error_floor,
        len(fitted),
        o["n_perturb"],
        t0,
        config,
        out,
        cut,
        sel,
        command,
        warnings,
    )
    step("done", 1.0)
    return {
        "run_id": run_id,
        "n_objects": len(fitted),
        "n_selected": len(sel.object_id),
        "n_skipped": cut.n_skipped + len(unconstrained),
        "n_scanned": n_scan,
        "warnings": warnings,
    }


def _take(sel: Selection, idx) -> Selection:
    """The objects ``idx`` of a selection (a chunk shipped to a worker)."""
    return Selection(
        sel.object_id[idx],
        sel.field_id[idx],
        sel.z[idx],
        sel.bands,
        sel.sedpy,
        sel.flux[idx],
        sel.err[idx],
        sel.upper[idx],
    )


def _fit_sfh_chunk(sel: Selection, sources, keys, o: dict, z_grid, error_floor: float, run_id: str):
    """Fit the objects of ``sel`` (a chunk), object i with the Philox stream of ``keys[i]``.

    Returns the rows per table and the indices (into ``sel``) of objects whose scan does not
    constrain the redshift. The BLAS runs single-threaded, as Dask workers run it (their
    default ``OPENBLAS_NUM_THREADS=1``): a threaded BLAS sums in another order, and results
    would differ in the last digits between the in-process and the Dask run.
    """
    from catalog.sed.fitting import _single_threaded_blas

    with _single_threaded_blas():
        return _fit_sfh_objects(sel, sources, keys, o, z_grid, error_floor, run_id)


def _fit_sfh_objects(sel: Selection, sources, keys, o: dict, z_grid, error_floor: float, run_id: str):
    """The loop of :func:`_fit_sfh_chunk` over its objects."""
    from catalog.sed.draws import object_generator

    tpl_at = SfhTemplates(sel.sedpy, o)
    out = {
        name: []
        for name in ("sfh_epochs", "fit_posteriors", "sfh_results", "sfh_chi2_z", "restframe_results")
    }
    lost = []
    for i in range(len(sel.object_id)):
        rng = object_generator(keys[i])
        r, tpl, zfit, scan = _fit_sfh_object(sel, i, sources[i], tpl_at, z_grid, o, rng, error_floor)
        oid = sel.object_id[i]
        if r is None:  # chi2(z) flat within delta-chi2 over the whole scan
            lost.append(i)
            continue
        out["sfh_epochs"] += _sfh_epoch_rows(run_id, oid, r, tpl)
        out["fit_posteriors"] += _sfh_posterior_rows(run_id, sel, i, r, zfit)
        out["sfh_results"].append(_sfh_result_row(run_id, sel, i, r, tpl, zfit, sources[i], scan))
        out["sfh_chi2_z"] += _sfh_chi2_rows(run_id, oid, scan, zfit, r)
        one = slice(i, i + 1)
        out["restframe_results"] += restframe_rows(
            run_id,
            [oid],
            sel.field_id[one],
            [zfit],
            None,
            sel.bands,
            sel.flux[one],
            sel.err[one],
            sel.upper[one],
            error_floor,
            r,
            templates=tpl,
        ).to_pylist()
    return out, np.asarray(lost, dtype=np.intp)


def _write_sfh_run(
    lake, run_id, where, error_floor, n_fit, n_perturb, t0, config, out, cut, sel, command, warnings
):
    from catalog.lake.schemas import RESTFRAME_RESULTS, SFH_CHI2_Z, SFH_RESULTS

    schemas = {
        "sfh_epochs": SFH_EPOCHS,
        "fit_posteriors": FIT_POSTERIORS,
        "sfh_results": SFH_RESULTS,
        "sfh_chi2_z": SFH_CHI2_Z,
        "restframe_results": RESTFRAME_RESULTS,
        "fit_skipped": FIT_SKIPPED,
    }
    with lake.transaction("fit", ingest_id=run_id) as tx, _rollback_on_error(lake, tx):
        for name, rows in out.items():
            tx.append(name, pa.Table.from_pylist(rows, schema=schemas[name]))
        if cut.n_skipped:
            tx.append("fit_skipped", cut.rows(sel, run_id))
        tx.append(
            "fit_runs",
            _run_row(
                run_id,
                "sfh",
                where,
                [],
                error_floor,
                n_fit,
                n_perturb,
                config["scheduler"],
                time.perf_counter() - t0,
                config,
            ),
        )
        tx.commit(
            name="fit sfh",
            n_rows=n_fit,
            command=command,
            options={"run": "fit sfh", **config},
            warnings=warnings,
        )
