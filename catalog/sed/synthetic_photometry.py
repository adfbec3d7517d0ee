"""Synthetic photometry of the BC03 populations: spectra through filter curves, in nJy per Msun.

- Observed flux of 1 Msun formed at redshift z:
  f_lambda(lambda_obs) = L_lambda(lambda_obs / (1+z)) L_sun / (4 pi d_L^2 (1+z)), and the band flux
  is the photon-weighted mean f_nu = int f_lambda lambda T dlambda / (c int T / lambda dlambda)
  (the AB definition for photon-counting detectors; astro-sedpy curves are photon responses),
  with d_L from :data:`catalog.constants.COSMOLOGY` (the cosmology bagpipes uses).
- Dust (Calzetti) and the IGM are folded into the filter matrix (:mod:`catalog.sed.attenuation`).
- Nebular emission (``nebular=True``): bagpipes' Cloudy continuum and lines of the BC03 models,
  added to populations younger than :data:`NEBULAR_T_BC_GYR` (escape fraction 0: their stellar
  Lyman continuum is removed, the gas re-emits it); lines are unresolved.
- Metallicities between the seven BC03 ones are interpolated linearly in log Z
  (:func:`interpolate_in_log_z`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from catalog.sed.attenuation import LYMAN_LIMIT_ANGSTROM, calzetti_attenuation, igm_transmission
from catalog.sed.library import (
    BC03_Z_ZSUN,
    L_SUN_ERG_S,
    NEBULAR_LOG_U,
    cosmology,
    filter_curve,
    load_bc03,
    load_nebular,
)

#: Speed of light (Angstrom/s), exact (the SI definition); a number rather than
#: astropy.constants.c, whose import this module would otherwise not need.
C_ANGSTROM_S = 2.99792458e18
#: 1 nJy in erg s^-1 cm^-2 Hz^-1.
NJY_CGS = 1e-32
#: Age (Gyr) below which nebular emission is added (bagpipes' default birth-cloud time t_bc).
NEBULAR_T_BC_GYR = 0.01


def _luminosity_distance_cm(z: float) -> float:
    if not z > 0:
        raise ValueError(f"redshift must be > 0 to place a population at a luminosity distance, got {z}")
    return float(cosmology().luminosity_distance(z).to_value("cm"))


def _band_matrix(
    wave_rest: np.ndarray, z: float, names: Sequence[str], distance_cm: float | None = None
) -> np.ndarray:
    """(n_band, n_wave) matrix P with band f_nu [nJy] = P @ L_lambda [L_sun/Angstrom per Msun].

    ``distance_cm`` replaces the luminosity distance at ``z`` (then ``z`` may be 0: rest-frame
    photometry at 10 pc, :mod:`catalog.sed.restframe`).

    Both the spectrum (linear between its nodes) and the filter curve (linear between its own
    nodes) are evaluated on the union of their wavelengths inside the filter, and the integral is
    a trapezoid sum there, so neither the narrow-band curves nor the coarse infrared sampling of
    the models (25-100 Angstrom per node) is undersampled by the other.
    """
    wave_obs = wave_rest * (1.0 + z)
    d_l = _luminosity_distance_cm(z) if distance_cm is None else distance_cm
    # f_lambda,obs per L_sun/Angstrom of rest-frame L_lambda
    to_flambda = L_SUN_ERG_S / (4.0 * np.pi * d_l**2 * (1.0 + z))
    n = wave_obs.size
    p = np.zeros((len(names), n))
    for b, name in enumerate(names):
        f = filter_curve(name)
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


def _line_matrix(
    line_wave_rest: np.ndarray, z: float, names: Sequence[str], distance_cm: float | None = None
) -> np.ndarray:
    """(n_band, n_line) matrix: band f_nu [nJy] of lines of 1 L_sun each (unresolved lines)."""
    lam = line_wave_rest * (1.0 + z)
    d_l = _luminosity_distance_cm(z) if distance_cm is None else distance_cm
    p = np.zeros((len(names), lam.size))
    for b, name in enumerate(names):
        f = filter_curve(name)
        wf, tf = np.asarray(f.wavelength, float), np.asarray(f.transmission, float)
        t = np.interp(lam, wf, tf, left=0.0, right=0.0)
        # int F delta(lambda - lam) lambda T dlambda = F lam T(lam); no (1+z): F is integrated
        p[b] = L_SUN_ERG_S / (4 * np.pi * d_l**2) * lam * t / (C_ANGSTROM_S * np.trapezoid(tf / wf, wf))
    return p / NJY_CGS


def ssp_band_fluxes(
    z: float,
    names: Sequence[str],
    age_idx: np.ndarray,
    av: np.ndarray,
    *,
    igm: bool,
    nebular: bool,
    log_u: float = -3.0,
    distance_cm: float | None = None,
) -> np.ndarray:
    """Band fluxes (7, n_age, n_av, n_band) in nJy per Msun formed at the seven BC03 metallicities.

    ``names`` are astro-sedpy filters, ``age_idx`` indices into the BC03 ages, ``av`` the
    Calzetti A_V values (mag); ``igm`` applies the Inoue et al. (2014) transmission and
    ``nebular`` adds the nebular continuum and lines of populations younger than
    :data:`NEBULAR_T_BC_GYR` at ionisation parameter ``log_u``; ``distance_cm`` replaces the
    luminosity distance at ``z`` (``z = 0``, 10 pc: absolute rest-frame photometry).

    One matrix product per grid: the spectra (7 * n_age, n_wave) times the filter matrix with the
    dust and IGM factors of each A_V folded in, (n_wave, n_av * n_band).
    """
    bc = load_bc03()
    wave = bc["wave_angstrom"]
    pb = _band_matrix(wave, z, names, distance_cm)
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
        flux += _nebular_lines(bc["age_yr"][age_idx], log_u, z, names, av, igm, distance_cm)
    return flux


def _nebular_weights(age_yr: np.ndarray, log_u: float):
    """Interpolation weights from raw ages / logU to bagpipes' nebular grid nodes.

    Nebular emission is added only below t_bc = 10 Myr (bagpipes' default); younger than the
    first nebular age (1 Myr) the 1 Myr emission is used; in between, linear in log age.
    """
    neb = load_nebular()
    la = np.log10(neb["age_yr"])
    young = age_yr < NEBULAR_T_BC_GYR * 1e9
    x = np.interp(np.log10(np.clip(age_yr, neb["age_yr"][0], None)), la, np.arange(la.size))
    i0 = np.clip(np.floor(x).astype(int), 0, la.size - 2)
    fa = x - i0
    if not NEBULAR_LOG_U[0] <= log_u <= NEBULAR_LOG_U[-1]:
        raise ValueError(f"log_u must be within {NEBULAR_LOG_U[0]}..{NEBULAR_LOG_U[-1]}")
    xu = np.interp(log_u, NEBULAR_LOG_U, np.arange(NEBULAR_LOG_U.size))
    u0 = min(int(np.floor(xu)), NEBULAR_LOG_U.size - 2)
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


def _nebular_lines(age_yr, log_u, z, names, av, igm, distance_cm=None):
    neb, young, i0, fa, u0, fu = _nebular_weights(age_yr, log_u)
    lw = neb["line_wave_angstrom"]
    lines = neb["lines"][:, u0] * (1 - fu) + neb["lines"][:, u0 + 1] * fu  # (7, n_neb_age, n_line)
    lines = lines[:, i0] * (1 - fa)[None, :, None] + lines[:, i0 + 1] * fa[None, :, None]
    lines = np.where(young[None, :, None], lines, 0.0)
    pl = _line_matrix(lw, z, names, distance_cm)
    if igm:
        pl = pl * igm_transmission(lw * (1 + z), z)
    att = 10.0 ** (-0.4 * np.outer(av, calzetti_attenuation(lw)))  # (n_av, n_line)
    return np.einsum("zal,vl,bl->zavb", lines, att, pl)


def interpolate_in_log_z(values: np.ndarray, z_want: np.ndarray, axis: int) -> np.ndarray:
    """Interpolate ``values`` along ``axis`` (the 7 BC03 metallicities) linearly in log Z to the
    metallicities ``z_want`` (Z/Zsun); raises ValueError outside the BC03 range (no extrapolation).
    """
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
