"""``gccat plot magnification``: |mu| at a field's sources, with the lens-model range of an
ensemble, and their intrinsic size limits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from catalog.errors import GccatError
from catalog.figures import pyplot, save

#: Most sources drawn (the most magnified first); a field of thousands of GCs is unreadable.
MAX_SOURCES = 60


def plot_magnification(lake, field_id: str, model: str, out: Path, where: str | None = None) -> str:
    """|mu| at each source of ``field_id`` through ``model`` (PNG), most magnified first.

    For an ensemble (``gccat ingest lens-ensemble``) the points are the median over the
    realisations with the 16-84% range as bars (``lens_ensemble_at_detections``); for a single
    model its value (``lens_at_detections``). A second panel gives the intrinsic size limit in
    proper pc (``size_limits``: PSF HWHM x |lambda_t|) where the single model and a built PSF
    give one. ``where``: SQL condition on the view's columns (e.g. ``catalog = 'sparkler'``).
    """
    from catalog.queries.connection import connect
    from catalog.queries.sandbox import condition_sql
    from catalog.queries.search import run_sql

    con = connect(lake)
    model_id = f"{field_id}/{model}"
    cond = f" AND {condition_sql(where)}" if where else ""
    ens = run_sql(
        con,
        "SELECT source_id, abs_mu_p16 AS lo, abs_mu_p50 AS mid, abs_mu_p84 AS hi "
        "FROM lens_ensemble_at_detections WHERE ensemble_id = ? AND abs_mu_p50 IS NOT NULL"
        f"{cond} ORDER BY abs_mu_p50 DESC, source_id",
        [model_id],
    )
    sizes = None
    if ens.num_rows:
        rows, what = ens, f"ensemble {model_id}: median, 16-84% over the realisations"
    else:
        rows = run_sql(
            con,
            "SELECT source_id, abs(mu) AS lo, abs(mu) AS mid, abs(mu) AS hi, detection_id "
            "FROM lens_at_detections WHERE model_id = ? AND NOT (off_map OR mu_undefined)"
            f"{cond} ORDER BY abs(mu) DESC, source_id",
            [model_id],
        )
        what = f"model {model_id}"
        if rows.num_rows:
            sizes = run_sql(
                con,
                "SELECT detection_id, band, size_limit_pc FROM size_limits WHERE model_id = ? "
                "AND size_limit_pc IS NOT NULL",
                [model_id],
            )
    if rows.num_rows == 0:
        raise GccatError(f"no source of field '{field_id}' has a magnification from '{model_id}'")
    rows = rows.slice(0, MAX_SOURCES)
    labels = rows["source_id"].to_pylist()
    mid, lo, hi = (rows[c].to_numpy(zero_copy_only=False).astype(float) for c in ("mid", "lo", "hi"))
    x = np.arange(len(labels))
    plt = pyplot()
    two = sizes is not None and sizes.num_rows > 0
    size = (max(6.0, 0.18 * len(labels) + 2), 6.4 if two else 4.2)
    fig, axes = plt.subplots(2 if two else 1, 1, figsize=size, sharex=True, squeeze=False)
    ax = axes[0, 0]
    ax.errorbar(x, mid, yerr=[mid - lo, hi - mid], fmt="o", ms=4, capsize=2)
    ax.set(yscale="log", ylabel=r"$|\mu|$", title=what)
    if two:
        by_det = dict(zip(rows["detection_id"].to_pylist(), x, strict=True))
        for band in sorted(set(sizes["band"].to_pylist())):
            sel = [i for i, b in enumerate(sizes["band"].to_pylist()) if b == band]
            dets = [sizes["detection_id"][i].as_py() for i in sel]
            keep = [(by_det[d], sizes["size_limit_pc"][i].as_py()) for d, i in zip(dets, sel, strict=True)
                    if d in by_det]  # fmt: skip
            if keep:
                xs, ys = zip(*keep, strict=True)
                axes[1, 0].plot(xs, ys, "v", ms=5, label=band)
        axes[1, 0].set(yscale="log", ylabel="size limit [pc]")
        axes[1, 0].legend(fontsize=7)
    axes[-1, 0].set_xticks(x, labels, rotation=90, fontsize=7)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return save(fig, out, plt)
