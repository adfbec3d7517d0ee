"""``gccat simulate lens-field``: a synthetic cluster with GCs that trace kappa by a known law."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .correlate import simulate_gcs, simulate_mask
from .errors import GccatError
from .lake import check_name
from .lensing import simulate_lens_field, write_hff_map


@dataclass
class SimulatedField:
    kappa_path: Path
    catalog_path: Path
    mask_path: Path
    truth_path: Path
    n_gc: int
    truth: dict


def simulate_field_files(outdir: str | os.PathLike, name: str = "simcluster", *,
                         shape: tuple[int, int] = (600, 600), pixel_scale_arcsec: float = 0.1,
                         centre_deg: tuple[float, float] = (342.18321, -44.53088),
                         A: float = 0.4, B: float = 0.7, n_gc: int | None = None,
                         background_per_arcsec2: float = 0.0, n_mask_disks: int = 6,
                         seed: int = 0) -> SimulatedField:
    """Write an HFF-format kappa map, a GC catalog and a mask for a synthetic cluster.

    GCs are a Poisson process with intensity n_GC(kappa) = (kappa/A)^(1/B) per arcsec^2
    (the inverse of <kappa> = A n_GC^B), plus a uniform background; GCs under the mask
    (bright-source disks) are removed, as a detection would. With ``n_gc``, the intensity is
    scaled by f to that many expected GCs, which makes the true amplitude A f^-B: the truth
    file gives it as ``A_effective``.

    Returns
    -------
    SimulatedField
        The paths written and the truth (A, B, counts), also saved as ``<name>_truth.json``.
    """
    check_name(name, "simulation name")
    if not (A > 0 and B > 0):
        raise GccatError("A and B must be positive")
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    kmap = simulate_lens_field(shape, pixel_scale_arcsec, centre_deg, seed=seed)
    mask = simulate_mask(kmap.shape, rng, n_disks=n_mask_disks)
    px_all, py_all = simulate_gcs(kmap.data, pixel_scale_arcsec, rng, A=A, B=B, n_total=n_gc,
                                  background_per_arcsec2=background_per_arcsec2)
    hidden = mask[np.clip(np.rint(py_all).astype(int), 0, shape[0] - 1),
                  np.clip(np.rint(px_all).astype(int), 0, shape[1] - 1)]
    px, py = px_all[~hidden], py_all[~hidden]
    ra, dec = kmap.wcs.pixel_to_world_values(px, py)
    kappa_path = outdir / f"{name}_kappa.fits"
    write_hff_map(kmap, kappa_path)
    mask_path = outdir / f"{name}_mask.fits"
    from astropy.io import fits

    fits.PrimaryHDU(mask.astype(np.uint8), header=kmap.wcs.to_header()).writeto(mask_path,
                                                                                overwrite=True)
    catalog_path = outdir / f"{name}_gcs.csv"
    with open(catalog_path, "w") as fh:
        fh.write(f"# gccat simulate lens-field: synthetic GCs, <kappa> = {A} n_GC^{B}, seed {seed}\n")
        fh.write("id,ra,dec\n")
        for i, (r, d) in enumerate(zip(np.mod(ra, 360), dec, strict=True)):
            fh.write(f"GC{i:06d},{r:.8f},{d:.8f}\n")
    lam = np.where(kmap.data > 0, kmap.data / A, 0.0) ** (1.0 / B) * pixel_scale_arcsec**2
    f = 1.0 if n_gc is None else n_gc / lam.sum()
    truth = {"A": A, "B": B, "A_effective": A * f ** (-B), "n_gc_total": int(len(px_all)),
             "n_gc_visible": int(len(px)),
             "n_gc_hidden_by_mask": int(hidden.sum()),
             "background_per_arcsec2": background_per_arcsec2, "seed": seed,
             "pixel_scale_arcsec": pixel_scale_arcsec, "shape": list(shape)}
    truth_path = outdir / f"{name}_truth.json"
    truth_path.write_text(json.dumps(truth, indent=1))
    return SimulatedField(kappa_path, catalog_path, mask_path, truth_path, len(px), truth)
