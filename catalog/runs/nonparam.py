"""``gccat fit nonparam``: Dense-Basis-like non-parametric histories of lake photometry.

The selection and photometry are those of the other fits (:func:`catalog.runs.fits.select`,
``--photometry``); objects with too few usable bands are recorded in ``fit_skipped``
(:func:`catalog.runs.fits.band_cut`). Per redshift (to 0.001) a BC03 grid is found or built
(cached in ``ssp_grids``, A_V steps of at most 0.05 mag), an atlas of histories is drawn from
the t_x prior (:func:`catalog.sed.nonparametric.build_atlas`, seeded and recorded) and every
object is fitted against it (:func:`catalog.sed.nonparametric.fit_atlas`). Results go to
``fit_runs`` (kind ``nonparam``), ``nonparam_results`` (percentiles) and
``nonparam_histories`` (the median history and its 16-84% band).
"""

from __future__ import annotations

import math
import time

import numpy as np
import pyarrow as pa

from catalog.checks import check_number, check_numbers
from catalog.errors import GccatError
from catalog.lake import Lake, new_ingest_id
from catalog.lake.schemas import NONPARAM_HISTORIES, NONPARAM_QUANTITIES, NONPARAM_RESULTS
from catalog.runs.cluster import dask_client, map_chunks
from catalog.runs.fits import (
    BLOCK,
    _append_grid_if_new,
    _rollback_on_error,
    _run_row,
    band_cut,
    check_fit_options,
    check_min_bands,
    load_or_build_grid,
    photometry_choice,
    select,
)
from catalog.runs.restframe import restframe_rows
from catalog.sed import GridSpec
from catalog.sed import nonparametric as npm
from catalog.sed.draws import SEEDING, object_keys
from catalog.sed.grids import MAX_AV, MAX_N_AV
from catalog.sed.library import BC03_Z_ZSUN
from catalog.sed.recipes import resolve_nonparam

#: Bounds of the options: 5 x 10^5 histories hold ~0.3 GB (their 100-bin histories in float32
#: and fluxes); 10 t_x are more than 9 bands constrain.
MIN_ATLAS, MAX_ATLAS = 100, 500_000
MAX_N_TX = 10
MAX_ALPHA = 100.0
MIN_DRAWS, MAX_DRAWS = 10, 10_000
#: Largest A_V step of the grid behind an atlas (linear interpolation in A_V between nodes).
AV_STEP = 0.05


#: Bounds of --log-ssfr-range (log10 1/yr): 1e-16 /yr is no star formation in a Hubble time
#: (Bagpipes' iyer2019 prior reaches it), 1e-6 /yr doubles the mass in a Myr.
LOG_SSFR_BOUNDS = (-16.0, -6.0)


def _check_range(values, option: str, lo: float, hi: float) -> tuple[float, float]:
    pair = check_numbers(values, option, n_min=2, n_max=2, lo=lo, hi=hi)
    if not pair[0] < pair[1]:
        raise GccatError(f"{option} must be LO,HI with LO < HI, not {pair[0]:g},{pair[1]:g}")
    return float(pair[0]), float(pair[1])


def check_nonparam_options(*, n_atlas, n_draws, **prior) -> dict:
    """The options of ``fit nonparam``, each checked (one-line GccatError naming the option).

    ``prior`` holds :data:`catalog.sed.recipes.NONPARAM_OPTIONS` (resolved): ``log_ssfr_range``
    ``"none"`` turns the sSFR knots off.
    """
    lz_bounds = (math.log10(BC03_Z_ZSUN[0]), math.log10(BC03_Z_ZSUN[-1]))
    ssfr = prior["log_ssfr_range"]
    if prior["av_prior"] not in npm.AV_PRIORS:
        raise GccatError(f"--av-prior must be one of {', '.join(npm.AV_PRIORS)}, not {prior['av_prior']!r}")
    return {
        "n_atlas": check_number(n_atlas, "--n-atlas", lo=MIN_ATLAS, hi=MAX_ATLAS, integer=True),
        "n_tx": check_number(prior["n_tx"], "--n-tx", lo=1, hi=MAX_N_TX, integer=True),
        "alpha": check_number(prior["alpha"], "--alpha", lo=0, lo_open=True, hi=MAX_ALPHA),
        "av_max": check_number(prior["av_max"], "--av-max", lo=0, hi=MAX_AV),
        "av_prior": prior["av_prior"],
        "log_ssfr_range": None
        if isinstance(ssfr, str) and ssfr.lower() == "none"
        else _check_range(ssfr, "--log-ssfr-range", *LOG_SSFR_BOUNDS),
        "log_z_range": None
        if prior["log_z_range"] is None
        else _check_range(prior["log_z_range"], "--log-z-range", *lz_bounds),
        "n_draws": check_number(n_draws, "--draws", lo=MIN_DRAWS, hi=MAX_DRAWS, integer=True),
    }


def grid_spec_for(av_max: float) -> GridSpec:
    """The grid behind an atlas: the seven BC03 metallicities, A_V from 0 to ``av_max`` in steps
    of at most :data:`AV_STEP` mag.
    """
    n_av = 1 if av_max == 0 else min(MAX_N_AV, 1 + math.ceil(av_max / AV_STEP - 1e-9))
    return GridSpec(av_max=av_max, n_av=n_av).checked()


def _result_rows(run_id, ids, fields, zs, res: npm.NonparamResult) -> pa.Table:
    n = len(ids)
    cols = {"run_id": [run_id] * n, "object_id": list(ids), "field_id": list(fields), "z": zs}
    for key in NONPARAM_QUANTITIES:
        for i, p in enumerate(("p16", "p50", "p84")):
            cols[f"{key}_{p}"] = pa.array(res.percentiles[key][:, i], from_pandas=True)
    cols["best_log_mass_formed"] = pa.array(res.best_fit["log_mass_formed"], from_pandas=True)
    cols["best_t50_gyr"] = res.best_fit["t50_gyr"]
    cols["chi2_min"] = res.chi2_min
    cols["n_bands"] = res.n_bands.astype(np.int64)
    cols["reduced_chi2"] = pa.array(res.reduced_chi2, from_pandas=True)
    cols["n_effective"] = res.n_effective
    cols["ingest_id"] = [run_id] * n
    return pa.table(cols).cast(NONPARAM_RESULTS)


def _history_rows(run_id, ids, edges, res: npm.NonparamResult) -> pa.Table:
    n, _, n_t = res.history.shape
    h = res.history
    return pa.table(
        {
            "run_id": [run_id] * (n * n_t),
            "object_id": np.repeat(np.asarray(ids, dtype=object), n_t).tolist(),
            "bin": np.tile(np.arange(n_t, dtype=np.int32), n),
            "lookback_lo_gyr": np.tile(edges[:-1], n),
            "lookback_hi_gyr": np.tile(edges[1:], n),
            "sfr_p16": pa.array(h[:, 0].ravel(), from_pandas=True),
            "sfr_p50": pa.array(h[:, 1].ravel(), from_pandas=True),
            "sfr_p84": pa.array(h[:, 2].ravel(), from_pandas=True),
            "ingest_id": [run_id] * (n * n_t),
        }
    ).cast(NONPARAM_HISTORIES)


def _fit_chunk(flux, err, upper, keys, atlas, error_floor, n_draws) -> npm.NonparamResult:
    """One chunk of objects against an atlas, object i's draws from the stream of ``keys[i]``."""
    return npm.fit_atlas(
        atlas, flux, err, upper_limit=upper, error_floor=error_floor, n_draws=n_draws, draw_keys=keys
    )


def concat_results(parts: list):
    """Results of consecutive chunks (dataclasses of per-object arrays and dicts of them) as one."""
    import dataclasses

    def cat(values):
        if isinstance(values[0], dict):
            return {k: cat([v[k] for v in values]) for k in values[0]}
        return None if values[0] is None else np.concatenate(values)

    first = parts[0]
    return type(first)(
        **{f.name: cat([getattr(p, f.name) for p in parts]) for f in dataclasses.fields(first)}
    )


def run_fit_nonparam(
    lake: Lake,
    where: str | None = None,
    *,
    z: float | None = None,
    recipe: str | None = None,
    n_atlas: int = npm.DEFAULT_N_ATLAS,
    seed: int = 0,
    error_floor: float = 0.05,
    n_draws: int = 500,
    chunk: int = 4096,
    scheduler: str | None = None,
    min_bands: int | None = None,
    photometry: str = "best",
    progress=None,
    command: str = "",
    **prior_options,
) -> dict:
    """Non-parametric SFH fits of the selected objects against a t_x atlas, written to the lake.

    The atlas prior is set by ``prior_options`` (:data:`catalog.sed.recipes.NONPARAM_OPTIONS`:
    ``n_tx``, ``alpha``, ``log_ssfr_range`` (LO, HI) in log10(1/yr) or ``"none"``,
    ``log_z_range`` (LO, HI) in log10(Z/Zsun) or None for the BC03 range, ``av_max`` in mag,
    ``av_prior`` ``"flat"`` or ``"exponential"``); a ``recipe`` (``"sparkler-nonparam"``) sets
    them, the ones given override it (recorded in ``fit_runs.config``). Objects with fewer
    usable bands than ``min_bands`` (default: the fit's free parameters, mass + n_tx +
    metallicity + A_V + sSFR) are not fitted; they are recorded in ``fit_skipped`` and counted
    in the returned ``warnings``. Each redshift's atlas is drawn once (from ``seed``, in this
    process); its objects are fitted ``chunk`` at a time, in process or (``scheduler``:
    ``"local"`` or a Dask scheduler address) on Dask with the atlas scattered to the workers.
    Each object's posterior draws come from its own stream
    (:func:`catalog.sed.draws.object_keys` of ``seed`` and its id), so the results are the same
    whatever ``chunk`` and ``scheduler``. Returns the run id, counts and, per redshift, the
    :class:`catalog.sed.nonparametric.NonparamResult` of its last block.
    """
    step = progress or (lambda stage, frac: None)
    opts = check_fit_options(z=z, error_floor=error_floor, seed=seed, chunk=chunk, scheduler=scheduler)
    z, error_floor, seed, chunk = opts["z"], opts["error_floor"], opts["seed"], opts["chunk"]
    prior, record = resolve_nonparam(recipe, **prior_options)
    o = check_nonparam_options(n_atlas=n_atlas, n_draws=n_draws, **prior)
    min_bands = check_min_bands(min_bands)
    choice = photometry_choice(photometry)
    spec = grid_spec_for(o["av_max"])
    step("selecting", 0.02)
    sel = select(lake, where, z, photometry=choice)
    n_free = 1 + o["n_tx"] + 2 + (o["log_ssfr_range"] is not None)
    cut = band_cut(sel, min_bands, n_free, f"the fit's {n_free} free parameters", error_floor)
    run_id = new_ingest_id()
    t0 = time.perf_counter()
    zkey = np.round(sel.z, 3)
    results, atlases, grid_ids = {}, [], []
    with (
        dask_client(scheduler) as client,
        lake.transaction("fit", ingest_id=run_id) as tx,
        _rollback_on_error(lake, tx),
    ):
        for zg in np.unique(zkey[cut.keep]):
            idx_all = np.flatnonzero((zkey == zg) & cut.keep)
            step(f"atlas z={zg}", 0.05)
            grid, gid, new_grid = load_or_build_grid(lake, float(zg), sel.sedpy, spec)
            atlas = npm.build_atlas(
                grid,
                o["n_atlas"],
                n_tx=o["n_tx"],
                alpha=o["alpha"],
                seed=seed,
                av_max=o["av_max"],
                av_prior=o["av_prior"],
                log_ssfr_range=o["log_ssfr_range"],
                log_z_range=o["log_z_range"],
            )
            grid_ids.append(gid)
            atlases.append(
                {
                    "z": float(zg),
                    "grid_id": gid,
                    **{key: v for key, v in atlas.spec.items() if key not in ("grid", "z")},
                }
            )
            for b0 in range(0, len(idx_all), BLOCK):
                idx = idx_all[b0 : b0 + BLOCK]
                step(f"fitting z={zg}", 0.1 + 0.8 * b0 / max(len(idx_all), 1))
                chunks = [idx[c : c + chunk] for c in range(0, len(idx), chunk)]
                parts = [
                    (sel.flux[i], sel.err[i], sel.upper[i], object_keys(seed, sel.object_id[i]))
                    for i in chunks
                ]
                res = concat_results(
                    map_chunks(_fit_chunk, parts, client, big=(atlas,), small=(error_floor, o["n_draws"]))
                )
                results[float(zg)] = res
                if new_grid:
                    _append_grid_if_new(lake, tx, grid, gid)
                    new_grid = False
                tx.append(
                    "nonparam_results",
                    _result_rows(run_id, sel.object_id[idx], sel.field_id[idx], sel.z[idx], res),
                )
                tx.append(
                    "nonparam_histories",
                    _history_rows(run_id, sel.object_id[idx], atlas.history_edges_gyr, res),
                )
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
                        atlas=atlas,
                    ),
                )
        if cut.n_skipped:
            tx.append("fit_skipped", cut.rows(sel, run_id))
        seconds = time.perf_counter() - t0
        n_fit = int(cut.keep.sum())
        config = {
            "where": where,
            "z": z,
            "error_floor": error_floor,
            "seed": seed,
            "draws": SEEDING,
            "chunk": chunk,
            "scheduler": scheduler or "in-process",
            "n_atlas": o["n_atlas"],
            "n_tx": o["n_tx"],
            "alpha": o["alpha"],
            "av_max": o["av_max"],
            "av_prior": o["av_prior"],
            "log_ssfr_range": o["log_ssfr_range"],
            "log_z_range": o["log_z_range"],
            **record,
            "n_draws": o["n_draws"],
            "bands": sel.bands,
            **{f"grid_{key}": v for key, v in spec.to_dict().items()},
            "atlases": atlases,
            "min_bands": cut.min_bands,
            "n_selected": len(sel.object_id),
            "n_skipped": cut.n_skipped,
            "photometry": choice.spec,
            "photometry_rule": choice.description,
            "upper_limits": "Sawicki 2012 erf term",
            "method": "Dense-Basis-like: t_x ~ Dirichlet(alpha) fractions of t_obs; cumulative "
            "mass by monotone PCHIP through (0,0), (t_x,x), (t_obs,1) and, with a "
            "log_ssfr_range, Dense Basis' start knot and SFR knots (log sSFR flat); log Z "
            "flat over log_z_range, A_V by av_prior in [0, av_max]; photometry linear in the "
            "SSP grid; posterior over the atlas with the mass profiled; percentiles "
            "from n_draws systematic posterior draws",
            "times": "t25/t50/t75/t_peak: lookback time before observation, Gyr",
        }
        warnings = [w for w in (cut.warning(),) if w]
        tx.append(
            "fit_runs",
            _run_row(
                run_id,
                "nonparam",
                where,
                grid_ids,
                error_floor,
                n_fit,
                o["n_draws"],
                config["scheduler"],
                seconds,
                config,
            ),
        )
        tx.commit(
            name="fit nonparam",
            n_rows=n_fit,
            command=command,
            options={"run": "fit nonparam", **config},
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
