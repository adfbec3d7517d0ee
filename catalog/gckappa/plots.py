"""The four PNG plots of a GC-kappa correlation run: density and kappa maps, box relation, profiles."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from catalog.figures import draw_critical_curves, pyplot, save


def plot_correlation(result, outdir: Path, corr: dict, fit: dict, critical: dict | None = None) -> list[str]:
    """The figures of a GC-kappa correlation run; returns their paths.

    ``density_kappa.png``: rho_gc (log) with kappa contours, and the model's critical curves and
    caustics from ``critical`` (columns of ``critical_curves``) if given; ``kappa_vs_rho.png``:
    kappa against beta*rho_gc per pixel; ``box_relation.png``: <kappa> against n_GC per box with
    the binned means and the fitted power law; ``radial_profiles.png``: GC surface density, kappa
    and beta*rho_gc with radius; with a light image, ``radial_profiles_loglog.png``.
    """
    plt = pyplot()
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    paths = []
    scale = result.lens_map.pixel_scale_arcsec
    ny, nx = result.kappa.shape
    ext = [0, nx * scale, 0, ny * scale]
    beta = corr["beta"]

    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    rho = np.where(result.rho_gc > 0, result.rho_gc, np.nan)
    im = ax.imshow(np.log10(rho), origin="lower", extent=ext, cmap="magma")
    levels = np.quantile(result.kappa[~result.mask], [0.5, 0.75, 0.9, 0.97]) if (~result.mask).any() else None
    ax.contour(result.kappa, levels=levels, origin="lower", extent=ext, colors="cyan", linewidths=0.8)
    if result.mask.any():
        ax.contourf(
            result.mask.astype(float),
            levels=[0.5, 1.5],
            origin="lower",
            extent=ext,
            colors="white",
            alpha=0.35,
        )
    # pixel i spans [i, i + 1) * scale in the image's extent
    ax.plot((result.px + 0.5) * scale, (result.py + 0.5) * scale, ",", color="white", alpha=0.4)
    if critical is not None:

        def to_xy(ra, dec):
            x, y = result.lens_map.wcs.world_to_pixel_values(ra, dec)
            return (np.asarray(x) + 0.5) * scale, (np.asarray(y) + 0.5) * scale

        draw_critical_curves(ax, critical, to_xy)
        ax.set(xlim=ext[:2], ylim=ext[2:])
        ax.legend(fontsize=7, loc="upper right", facecolor="0.3", labelcolor="white")
    fig.colorbar(im, ax=ax, label=r"log$_{10}\,\rho_{GC}$")
    ax.set(
        xlabel="x [arcsec]",
        ylabel="y [arcsec]",
        title=f"{result.run.get('model_id', '')}: GC density, kappa contours",
    )
    paths.append(save(fig, outdir / "density_kappa.png", plt))

    fig, ax = plt.subplots(figsize=(5.6, 5.2))
    valid = ~result.mask
    ax.hexbin(
        beta * result.rho_gc[valid], result.kappa[valid], gridsize=60, bins="log", cmap="viridis", mincnt=1
    )
    lim = [0, np.nanmax(result.kappa[valid]) if valid.any() else 1]
    ax.plot(lim, lim, "r--", lw=1)
    ax.set(
        xlabel=r"$\beta\,\rho_{GC}$",
        ylabel=r"$\kappa$",
        title=f"beta = {beta:.3g}, Pearson(log) = {corr['pearson_log']:.2f}",
    )
    paths.append(save(fig, outdir / "kappa_vs_rho.png", plt))

    fig, ax = plt.subplots(figsize=(5.6, 5.2))
    b = result.boxes
    ok = (b["n_per_arcsec2"] > 0) & (b["kappa_mean"] > 0)
    ax.loglog(b["n_per_arcsec2"][ok], b["kappa_mean"][ok], ".", alpha=0.3, label="boxes")
    binned = bin_boxes_by_count(b["n_gc"], b["n_per_arcsec2"], b["kappa_mean"])
    show = (binned["n_per_arcsec2"] > 0) & (binned["kappa_mean"] > 0)
    ax.errorbar(
        binned["n_per_arcsec2"][show],
        binned["kappa_mean"][show],
        yerr=binned["kappa_std"][show],
        fmt="ks",
        ms=4,
        capsize=2,
        label=r"mean $\pm$ dispersion per $n_{GC}$",
    )
    if ok.any() and np.isfinite(fit["A"]):
        n = np.geomspace(b["n_per_arcsec2"][ok].min(), b["n_per_arcsec2"][ok].max(), 50)
        ax.loglog(
            n,
            fit["A"] * n ** fit["B"],
            "r-",
            label=rf"$\kappa = {fit['A']:.2f}\,n^{{{fit['B']:.2f}\pm{fit['B_err']:.2f}}}$",
        )
    ax.set(xlabel=r"$n_{GC}$ [arcsec$^{-2}$]", ylabel=r"$\langle\kappa\rangle$", title="box statistics")
    ax.legend()
    paths.append(save(fig, outdir / "box_relation.png", plt))

    fig, ax = plt.subplots(figsize=(6.0, 4.8))
    p = result.profile
    ax.errorbar(
        p["r_mid"],
        p["sigma_gc_bgsub"],
        yerr=p["sigma_gc_err"],
        fmt="o",
        ms=3,
        label=r"$\Sigma_{GC}$ (bg-subtracted) [arcsec$^{-2}$]",
    )
    ax2 = ax.twinx()
    ax2.plot(p["r_mid"], p["kappa_mean"], "c-", label=r"$\kappa$")
    ax2.plot(p["r_mid"], beta * np.asarray(p["rho_mean"]), "m--", label=r"$\beta\rho_{GC}$")
    ax.set(xlabel="radius [arcsec]", ylabel=r"$\Sigma_{GC}$", yscale="log")
    ax2.set_ylabel(r"$\kappa$")
    ax.legend(loc="upper right", fontsize=8)
    ax2.legend(loc="lower left", fontsize=8)
    paths.append(save(fig, outdir / "radial_profiles.png", plt))
    if "image" in p:
        paths.append(_plot_loglog_profiles(plt, p, result.run.get("model_id", ""), outdir))
    return paths


def bin_boxes_by_count(n_gc, n_per_arcsec2, kappa_mean) -> dict[str, np.ndarray]:
    """Boxes grouped by GC count (one bin per integer, as ``box_relation_binned``): per bin
    ``n_gc``, ``n_boxes``, mean ``n_per_arcsec2`` (arcsec^-2), ``kappa_mean`` and ``kappa_std``
    (sample dispersion over the boxes; 0 for a single box).
    """
    n = np.asarray(n_gc, dtype=np.int64)
    counts, inverse = np.unique(n, return_inverse=True)
    k = np.asarray(kappa_mean, float)
    nb = np.bincount(inverse)
    mean = np.bincount(inverse, weights=k) / nb
    var = np.bincount(inverse, weights=(k - mean[inverse]) ** 2) / np.maximum(nb - 1, 1)
    return {
        "n_gc": counts,
        "n_boxes": nb,
        "n_per_arcsec2": np.bincount(inverse, weights=np.asarray(n_per_arcsec2, float)) / nb,
        "kappa_mean": mean,
        "kappa_std": np.sqrt(var),
    }


def _plot_loglog_profiles(plt, p: dict, model_id: str, outdir: Path) -> str:
    """GC density (on the map and on the image footprint), kappa and the light, each scaled to
    the GC density at the annulus nearest the median radius, with an r^-2 reference, log-log as
    the AS1063 study plots them.
    """
    img = p["image"]
    r = np.asarray(p["r_mid"], float)
    gc = np.asarray(img["sigma_gc_bgsub"], float)
    fig, ax = plt.subplots(figsize=(6.0, 4.8))
    ok = (gc > 0) & (r > 0)
    ref_i = int(np.argmin(np.abs(r - np.median(r[ok])))) if ok.any() else 0
    ref = gc[ref_i] if ok.any() else 1.0

    def scaled(y):
        y = np.asarray(y, float)
        with np.errstate(divide="ignore", invalid="ignore"):
            return y * ref / y[ref_i] if np.isfinite(y[ref_i]) and y[ref_i] > 0 else np.full_like(y, np.nan)

    ax.errorbar(
        r[ok],
        gc[ok],
        yerr=np.asarray(img["sigma_gc_bgsub_err"], float)[ok],
        fmt="o",
        ms=3,
        label=r"$\Sigma_{GC}$ on the image [arcsec$^{-2}$]",
    )
    ax.plot(
        r,
        np.asarray(p["sigma_gc_bgsub"], float),
        "bs",
        ms=3,
        mfc="none",
        label=r"$\Sigma_{GC}$ on the lens map",
    )
    ax.plot(r, scaled(p["kappa_mean"]), "c-", label=r"$\kappa$ (scaled)")
    ax.plot(r, scaled(img["image_mean"]), "-", color="orange", label="light (scaled)")
    if ok.any():
        ax.plot(r[ok], ref * (r[ok] / r[ref_i]) ** -2.0, "k:", label=r"$r^{-2}$")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="radius [arcsec]",
        ylabel=r"$\Sigma_{GC}$ [arcsec$^{-2}$]",
        title=f"{model_id}: profiles",
    )
    ax.legend(fontsize=8)
    return save(fig, outdir / "radial_profiles_loglog.png", plt)
