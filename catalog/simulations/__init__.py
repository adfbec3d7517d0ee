"""``gccat simulate lens-field``: a synthetic cluster with GCs that trace kappa by a known law."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from catalog.checks import check_name, check_number, check_numbers
from catalog.errors import GccatError
from catalog.lensing import write_hff_map
from catalog.simulations.gcs import simulate_gcs, simulate_mask
from catalog.simulations.lensfield import simulate_lens_field

#: Map and image sides (pixels) the simulators accept: below, a cluster, its mask disks or the
#: 11 px frame of the point sources do not fit; above, one float64 band exceeds 128 MB.
FIELD_SIZE_RANGE = (32, 4096)
MOSAIC_SIZE_RANGE = (64, 4096)
MAX_POINTS = 100_000


def _check_shape(shape, option: str, lo: int, hi: int) -> tuple[int, int]:
    if len(shape) != 2:
        raise GccatError(f"{option}: a shape is two sides (ny, nx), not {shape!r}")
    return tuple(check_number(v, option, lo=lo, hi=hi, integer=True) for v in shape)


@dataclass
class SimulatedField:
    """The files of a simulated lens field and its truth (see :func:`simulate_field_files`)."""

    kappa_path: Path
    catalog_path: Path
    mask_path: Path
    truth_path: Path
    n_gc: int
    truth: dict


def simulate_field_files(
    outdir: str | os.PathLike,
    name: str = "simcluster",
    *,
    shape: tuple[int, int] = (600, 600),
    pixel_scale_arcsec: float = 0.1,
    centre_deg: tuple[float, float] = (342.18321, -44.53088),
    A: float = 0.4,
    B: float = 0.7,
    n_gc: int | None = None,
    background_per_arcsec2: float = 0.0,
    n_mask_disks: int = 6,
    seed: int = 0,
    overwrite: bool = False,
) -> SimulatedField:
    """Write an HFF-format kappa map, a GC catalog and a mask for a synthetic cluster.

    GCs are a Poisson process with intensity n_GC(kappa) = (kappa/A)^(1/B) per arcsec^2
    (the inverse of <kappa> = A n_GC^B), plus a uniform background; GCs under the mask
    (bright-source disks) are removed, as a detection would. With ``n_gc``, the intensity is
    scaled by f to that many expected GCs, which makes the true amplitude A f^-B: the truth
    file gives it as ``A_effective``.

    The files depend only on the arguments (``seed`` included), so writing them again with
    ``overwrite`` gives the same bytes.

    Returns
    -------
    SimulatedField
        The paths written and the truth (A, B, counts), also saved as ``<name>_truth.json``.
    """
    check_name(name, "simulation name")
    shape = _check_shape(shape, "--size", *FIELD_SIZE_RANGE)
    pixel_scale_arcsec = check_number(pixel_scale_arcsec, "--pixel-scale", lo=0, lo_open=True, hi=10)
    A = check_number(A, "--A", lo=0, lo_open=True, hi=10)
    B = check_number(B, "--B", lo=0, lo_open=True, hi=10)
    n_gc = check_number(n_gc, "--n-gc", lo=1, hi=10_000_000, integer=True, allow_none=True)
    background_per_arcsec2 = check_number(background_per_arcsec2, "--background", lo=0, hi=1000)
    seed = check_number(seed, "--seed", lo=0, hi=2**63 - 1, integer=True)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    kmap = simulate_lens_field(shape, pixel_scale_arcsec, centre_deg, seed=seed)
    mask = simulate_mask(kmap.shape, rng, n_disks=n_mask_disks)
    px_all, py_all = simulate_gcs(
        kmap.data,
        pixel_scale_arcsec,
        rng,
        A=A,
        B=B,
        n_total=n_gc,
        background_per_arcsec2=background_per_arcsec2,
    )
    hidden = mask[
        np.clip(np.rint(py_all).astype(int), 0, shape[0] - 1),
        np.clip(np.rint(px_all).astype(int), 0, shape[1] - 1),
    ]
    px, py = px_all[~hidden], py_all[~hidden]
    ra, dec = kmap.wcs.pixel_to_world_values(px, py)
    kappa_path = outdir / f"{name}_kappa.fits"
    write_hff_map(kmap, kappa_path, overwrite=overwrite)
    mask_path = outdir / f"{name}_mask.fits"
    from astropy.io import fits

    fits.PrimaryHDU(mask.astype(np.uint8), header=kmap.wcs.to_header()).writeto(mask_path, overwrite=True)
    catalog_path = outdir / f"{name}_gcs.csv"
    with open(catalog_path, "w") as fh:
        fh.write(f"# gccat simulate lens-field: synthetic GCs, <kappa> = {A} n_GC^{B}, seed {seed}\n")
        fh.write("id,ra,dec\n")
        for i, (r, d) in enumerate(zip(np.mod(ra, 360), dec, strict=True)):
            fh.write(f"GC{i:06d},{r:.8f},{d:.8f}\n")
    lam = np.where(kmap.data > 0, kmap.data / A, 0.0) ** (1.0 / B) * pixel_scale_arcsec**2
    f = 1.0 if n_gc is None else n_gc / lam.sum()
    truth = {
        "A": A,
        "B": B,
        "A_effective": A * f ** (-B),
        "n_gc_total": int(len(px_all)),
        "n_gc_visible": int(len(px)),
        "n_gc_hidden_by_mask": int(hidden.sum()),
        "background_per_arcsec2": background_per_arcsec2,
        "seed": seed,
        "pixel_scale_arcsec": pixel_scale_arcsec,
        "shape": list(shape),
    }
    truth_path = outdir / f"{name}_truth.json"
    truth_path.write_text(json.dumps(truth, indent=1))
    return SimulatedField(kappa_path, catalog_path, mask_path, truth_path, len(px), truth)


def simulate_mosaic_files(
    outdir: str | os.PathLike,
    name: str = "mosaic",
    *,
    bands: tuple[str, ...] = ("F090W", "F115W", "F150W", "F200W"),
    shape: tuple[int, int] = (1024, 1024),
    pixel_scale_arcsec: float = 0.03,
    centre_deg: tuple[float, float] = (342.18321, -44.53088),
    n_points: int = 800,
    psf_fwhm_pix: float = 2.0,
    noise_njy: float = 1.0,
    seed: int = 0,
    psf_kind: str = "moffat",
    bcg: bool = True,
    flux_range_njy: tuple[float, float] = (5.0, 500.0),
    min_sep_pix: float = 6.0,
) -> dict:
    """Write a synthetic multi-band cluster-core mosaic: images (nJy/pixel), weights, PSF, truth.

    The same point sources (GCs, log-uniform fluxes in ``flux_range_njy``, at least
    ``min_sep_pix`` apart) sit in every band on a Sersic BCG with an ICL gradient (``bcg``);
    each band has its own noise. The PSF (``psf_kind`` ``moffat`` or ``gaussian``, FWHM
    ``psf_fwhm_pix`` pixels) is written as ``<name>_psf.fits``. Images carry a TAN WCS centred
    on ``centre_deg`` and ``BUNIT = 'nJy'``; the truth table is ``<name>_truth.csv``.
    """
    from astropy.io import fits
    from astropy.wcs import WCS

    from catalog.simulations.mosaic import make_test_mosaic

    check_name(name, "mosaic name")
    shape = _check_shape(shape, "--size", *MOSAIC_SIZE_RANGE)
    n_points = check_number(n_points, "--n-points", lo=0, hi=MAX_POINTS, integer=True)
    seed = check_number(seed, "--seed", lo=0, hi=2**63 - 1, integer=True)
    pixel_scale_arcsec = check_number(pixel_scale_arcsec, "pixel_scale_arcsec", lo=0, lo_open=True, hi=10)
    psf_fwhm_pix = check_number(psf_fwhm_pix, "psf_fwhm_pix", lo=0, lo_open=True, hi=50)
    noise_njy = check_number(noise_njy, "noise_njy", lo=0, lo_open=True)
    flux_lo, flux_hi = check_numbers(flux_range_njy, "flux_range_njy", n_min=2, n_max=2, lo=0, lo_open=True)
    if flux_lo > flux_hi:
        raise GccatError(f"flux_range_njy must be LO <= HI, not {flux_lo:g}, {flux_hi:g}")
    flux_range_njy = (flux_lo, flux_hi)
    min_sep_pix = check_number(min_sep_pix, "min_sep_pix", lo=0, hi=min(shape))
    if not bands:
        raise GccatError("--bands: give at least one band")
    from catalog import bands as bandreg

    unknown = [b for b in bands if bandreg.lookup(b) is None]
    if unknown:
        raise GccatError(f"--bands: unknown band '{unknown[0]}'")
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = list(centre_deg)
    wcs.wcs.crpix = [(shape[1] + 1) / 2, (shape[0] + 1) / 2]
    wcs.wcs.cdelt = [-pixel_scale_arcsec / 3600, pixel_scale_arcsec / 3600]
    paths, truth = {}, None
    for band in bands:
        kw = {} if truth is None else {"x": truth["x"], "y": truth["y"], "flux": truth["flux"]}
        m = make_test_mosaic(
            shape,
            psf_fwhm_pix=psf_fwhm_pix,
            noise_sigma=noise_njy,
            n_points=n_points,
            rng=rng,
            psf_kind=psf_kind,
            bcg=bool(bcg),
            flux_range=flux_range_njy,
            min_sep_pix=min_sep_pix,
            **kw,
        )
        truth = truth or m["truth"]
        hdr = wcs.to_header()
        hdr["BUNIT"] = "nJy"
        hdr["FILTER"] = band
        hdr["ORIGIN"] = "gccat simulate mosaic (synthetic)"
        p = outdir / f"{name}_{band.lower()}.fits"
        fits.HDUList(
            [
                fits.PrimaryHDU(),
                fits.ImageHDU(m["image"], hdr, name="SCI"),
                fits.ImageHDU(m["weight"], hdr, name="WHT"),
            ]
        ).writeto(p, overwrite=True)
        paths[band] = p
    psf_path = outdir / f"{name}_psf.fits"
    fits.PrimaryHDU(m["psf"]).writeto(psf_path, overwrite=True)
    ra, dec = wcs.pixel_to_world_values(truth["x"], truth["y"])
    truth_path = outdir / f"{name}_truth.csv"
    with open(truth_path, "w") as fh:
        fh.write("# gccat simulate mosaic: injected point sources (flux in nJy, same in every band)\n")
        fh.write("id,ra,dec,x,y,flux_njy\n")
        for i, (r, d, x, y, f) in enumerate(zip(ra, dec, truth["x"], truth["y"], truth["flux"], strict=True)):
            fh.write(f"T{i:05d},{r % 360:.9f},{d:.9f},{x:.3f},{y:.3f},{f:.4f}\n")
    return {"images": paths, "psf": psf_path, "truth": truth_path, "n_points": len(truth["x"])}
