"""SSP grids: :class:`GridSpec` (the options of a grid) and :class:`SSPGrid` (its photometry).

:func:`build_grid` projects the BC03 populations (:mod:`catalog.sed.library`) at one redshift
through the filter curves (:mod:`catalog.sed.synthetic_photometry`), on an axis of Calzetti A_V
and of metallicity, for 1 Msun formed; :mod:`catalog.sed.fitting` fits photometry against it.
:mod:`catalog.runs.fits` caches grids in the lake table ``ssp_grids`` under an id hashed from
redshift, bands and :meth:`GridSpec.to_dict`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from catalog.checks import check_number, check_numbers
from catalog.constants import COSMOLOGY
from catalog.errors import GccatError
from catalog.sed.library import BC03_Z_ZSUN, L_SUN_ERG_S, NEBULAR_LOG_U, cosmology, load_bc03
from catalog.sed.synthetic_photometry import NEBULAR_T_BC_GYR, interpolate_in_log_z, ssp_band_fluxes

#: Bounds of a checked :class:`GridSpec`. A_V beyond 10 mag hides any star cluster from JWST;
#: 101 A_V steps are 0.1 mag at the largest A_V; the oldest BC03 population is 20 Gyr.
MAX_AV = 10.0
MAX_N_AV = 101
MAX_METALLICITIES = 50
MAX_AGE_GYR = 20.0
#: Youngest age of a grid without nebular emission when none is given, Gyr: bagpipes' birth-cloud
#: time t_bc (:data:`NEBULAR_T_BC_GYR`, 10 Myr). Younger populations are still inside their HII
#: regions, whose nebular continuum and lines such a grid leaves out; and a 0.1-10 Myr dusty
#: population is the degenerate solution that faint red clusters otherwise fall into.
DEFAULT_MIN_AGE_NO_NEBULAR_GYR = NEBULAR_T_BC_GYR
#: Finest step of a linear age grid, Gyr (1 Myr), and most ages in one.
MIN_AGE_STEP_GYR = 0.001
MAX_N_AGE = 2000
#: The IMFs the grid files allow: bagpipes ships its BC03 grids for the Chabrier (2003) IMF only.
IMFS = ("chabrier",)


@dataclass(frozen=True)
class GridSpec:
    """The options of an SSP grid: everything :func:`build_grid` needs besides redshift and bands.

    One object from the CLI (``--av-max``, ``--n-av``, ``--metallicities``, ``--nebular``) and
    the Python API (``av_max=...`` keywords of :func:`catalog.runs.fits.run_fit_ssp`) down to
    :func:`build_grid`; :meth:`to_dict` is what grid ids hash and ``fit_runs.config`` records.
    A new grid option is a field here (default, check in :meth:`checked`) read by
    :func:`build_grid`.

    Attributes
    ----------
    av_max : float
        Largest Calzetti A_V (mag); the A_V axis is ``linspace(0, av_max, n_av)``.
    n_av : int
        A_V steps (1: A_V = 0 only).
    metallicities : tuple of float or None
        Z/Zsun values (sorted, duplicates dropped); None: the seven BC03 ones
        (:data:`BC03_Z_ZSUN`). Values between them are interpolated linearly in log Z (fluxes and
        living fractions).
    igm : bool
        Apply the Inoue et al. (2014) IGM transmission.
    nebular : bool
        Add bagpipes' Cloudy nebular continuum and lines (escape fraction 0) to populations
        younger than 10 Myr, at ionisation parameter ``log_u``.
    log_u : float
        log10 U of the nebular emission (-4..0), used only with ``nebular=True``.
    age_min_gyr, age_max_gyr : float or None
        Age range in Gyr. ``age_min_gyr=None`` is resolved by :meth:`checked`: without nebular
        emission to :data:`DEFAULT_MIN_AGE_NO_NEBULAR_GYR` (10 Myr), with it to every raw BC03
        age above zero (the zero-age model is a degenerate point for log-age statistics;
        ``age_min_gyr=0`` keeps it). ``age_max_gyr=None``: no bound but the Universe's age (with
        ``universe_bound``) and the oldest BC03 age (20 Gyr).
    age_step_gyr : float or None
        None: the raw BC03 ages within the range. A step: the linear grid ``age_min_gyr,
        age_min_gyr + step, ...`` up to the upper bound (both ends needed), the BC03 band fluxes
        and living fractions interpolated linearly in log age between the two nearest raw ages.
    universe_bound : bool
        Keep only ages no older than the Universe at the grid's redshift
        (:data:`catalog.constants.COSMOLOGY`); recorded with its value in ``SSPGrid.spec``.
    imf : str
        The IMF of the grid files; only ``"chabrier"`` (Chabrier 2003) exists in bagpipes' BC03.

    Grid ids: a field added after the first grids appears in :meth:`to_dict` only away from the
    value that reproduced the grids before it existed, so ids of grids already in a lake never
    change; the default ``age_min_gyr`` of a grid without nebular emission is now 10 Myr, which
    is such a value and so gives that grid a new id (its content changed).
    """

    av_max: float = 1.0
    n_av: int = 11
    metallicities: tuple[float, ...] | None = None
    igm: bool = True
    nebular: bool = False
    log_u: float = -3.0
    age_min_gyr: float | None = None
    age_max_gyr: float | None = None
    age_step_gyr: float | None = None
    universe_bound: bool = True
    imf: str = "chabrier"

    #: The options of the first grids: always in :meth:`to_dict`. Options added since appear
    #: there only away from their default, so the ids of existing grids stay valid.
    ID_FIELDS = ("av_max", "n_av", "metallicities", "igm", "nebular")

    def __post_init__(self):
        # a list or array of metallicities becomes a tuple: specs compare and hash by value
        m = self.metallicities
        if isinstance(m, np.ndarray):
            m = m.ravel().tolist()
        if isinstance(m, list):
            object.__setattr__(self, "metallicities", tuple(m))

    @classmethod
    def from_options(cls, base: GridSpec | None = None, **options) -> GridSpec:
        """A checked spec: ``base`` (default ``GridSpec()``) with the keyword ``options``.

        Raises
        ------
        GccatError
            For an unknown option, or a value :meth:`checked` refuses.
        """
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise GccatError(f"unknown grid option(s) {', '.join(unknown)} (known: {', '.join(known)})")
        return dataclasses.replace(base or cls(), **options).checked()

    def checked(self) -> GridSpec:
        """The spec with every option checked and normalised (floats, ints, sorted unique
        metallicities), so that equal grids get equal ids.

        Raises
        ------
        GccatError
            One line naming the CLI option (``--av-max``, ``--n-av``, ``--metallicities``) or the
            keyword, the value and the allowed range. Metallicities must lie within the BC03
            range 0.005-5 Zsun: gccat interpolates, never extrapolates.
        """
        av_max = check_number(self.av_max, "--av-max", lo=0, hi=MAX_AV)
        n_av = check_number(self.n_av, "--n-av", lo=1, hi=MAX_N_AV, integer=True)
        metallicities = None
        if self.metallicities is not None:
            metallicities = tuple(
                sorted(
                    set(
                        check_numbers(
                            self.metallicities,
                            "--metallicities (Z/Zsun)",
                            n_max=MAX_METALLICITIES,
                            lo=min(BC03_Z_ZSUN),
                            hi=max(BC03_Z_ZSUN),
                        )
                    )
                )
            )
        for key in ("igm", "nebular"):
            if not isinstance(getattr(self, key), (bool, np.bool_)):
                raise GccatError(f"{key} must be True or False, not {getattr(self, key)!r}")
        log_u = check_number(self.log_u, "--log-u", lo=float(NEBULAR_LOG_U[0]), hi=float(NEBULAR_LOG_U[-1]))
        if av_max == 0:
            n_av = 1  # --av-max 0 is "no dust": one A_V, not n_av copies of A_V = 0
        age_min = check_number(
            self.age_min_gyr, "--age-range MIN (Gyr)", lo=0, hi=MAX_AGE_GYR, allow_none=True
        )
        age_max = check_number(
            self.age_max_gyr, "--age-range MAX (Gyr)", lo=0, lo_open=True, hi=MAX_AGE_GYR, allow_none=True
        )
        if age_min is not None and age_max is not None and age_min > age_max:
            raise GccatError(f"--age-range: MIN ({age_min:g} Gyr) must not exceed MAX ({age_max:g} Gyr)")
        step = check_number(
            self.age_step_gyr, "--age-step (Gyr)", lo=MIN_AGE_STEP_GYR, hi=MAX_AGE_GYR, allow_none=True
        )
        if step is not None:
            if age_min is None or age_max is None or age_min <= 0:
                raise GccatError(
                    "--age-step needs --age-range MIN,MAX with MIN > 0 (the linear "
                    "grid runs MIN, MIN + step, ... up to MAX)"
                )
            if (age_max - age_min) / step + 1 > MAX_N_AGE:
                raise GccatError(
                    f"--age-step {step:g} gives more than {MAX_N_AGE} ages between "
                    f"{age_min:g} and {age_max:g} Gyr"
                )
        if not isinstance(self.universe_bound, (bool, np.bool_)):
            raise GccatError(f"universe_bound must be True or False, not {self.universe_bound!r}")
        if self.imf not in IMFS:
            raise GccatError(
                f"--imf must be one of {', '.join(IMFS)} (the only IMF of the BC03 grids "
                f"shipped with bagpipes), not {self.imf!r}"
            )
        if age_min is None and not self.nebular:
            age_min = DEFAULT_MIN_AGE_NO_NEBULAR_GYR
        return GridSpec(
            av_max=av_max,
            n_av=n_av,
            metallicities=metallicities,
            igm=bool(self.igm),
            nebular=bool(self.nebular),
            log_u=log_u,
            age_min_gyr=age_min,
            age_max_gyr=age_max,
            age_step_gyr=step,
            universe_bound=bool(self.universe_bound),
            imf=self.imf,
        )

    def resolved(self) -> dict:
        """Every option of this (checked) spec as JSON values, defaults included: what
        ``fit_runs.config`` records as ``grid`` beside the id-stable :meth:`to_dict`.
        """
        return {
            f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
            for f in dataclasses.fields(self)
        }

    def to_dict(self) -> dict:
        """The options as JSON values: :data:`ID_FIELDS` always, the others where they differ
        from their default. Of a :meth:`checked` spec, this is what grid ids hash
        (:func:`catalog.runs.fits.grid_id`) and ``fit_runs.config`` records.
        """
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in self.ID_FIELDS or value != f.default:
                out[f.name] = list(value) if isinstance(value, tuple) else value
        return out


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
        (n_age,) ages in Gyr: raw BC03 ages, or a linear grid (``GridSpec.age_step_gyr``).
    log_z_zsun : numpy.ndarray
        (n_Z,) log10(Z/Zsun).
    av : numpy.ndarray
        (n_Av,) Calzetti A_V in mag.
    flux_njy : numpy.ndarray
        (n_age, n_Z, n_Av, n_band) observed band flux in nJy for 1 Msun formed.
    living_fraction : numpy.ndarray
        (n_age, n_Z) living stellar mass / mass formed.
    spec : dict
        JSON-able recipe: everything :meth:`from_spec` needs to rebuild the grid (the
        :class:`GridSpec` options as built, the redshift and bands, the BC03 file and its
        digest, the dust law, IGM, nebular settings, IMF and cosmology); stored in
        ``ssp_grids.spec``.
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
        (n_models, 3) = (age_gyr, log_z, av); C order over (age, Z, A_V).
        """
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
        return build_grid(
            spec["z"],
            spec["bands"],
            GridSpec(
                av_max=spec["av_max"],
                n_av=spec["n_av"],
                metallicities=spec["metallicities_zsun"],
                igm=spec["igm"] is not None,
                nebular=spec["nebular"] is not None,
                log_u=(spec["nebular"] or {}).get("log_u", -3.0),
                age_min_gyr=spec["age_min_gyr"],
                age_max_gyr=spec["age_max_gyr"],
                age_step_gyr=spec.get("age_step_gyr"),
                universe_bound=spec.get("universe_bound", True),
            ),
        )


def age_upper_bound_gyr(z: float, age_max_gyr=None, universe_bound: bool = True) -> float:
    """The oldest age a grid at ``z`` holds, Gyr: ``age_max_gyr`` (default the oldest BC03 age),
    no older than the Universe at ``z`` with ``universe_bound``.
    """
    hi = MAX_AGE_GYR if age_max_gyr is None else float(age_max_gyr)
    if universe_bound:
        hi = min(hi, float(cosmology().age(z).to_value("Gyr")))
    return hi


def _age_indices(z: float, age_min_gyr, age_max_gyr, universe_bound: bool = True) -> np.ndarray:
    ages = load_bc03()["age_yr"] / 1e9
    hi = age_upper_bound_gyr(z, age_max_gyr, universe_bound)
    keep = ages <= hi * (1 + 1e-9)
    keep &= (ages > 0) if age_min_gyr is None else (ages >= age_min_gyr * (1 - 1e-9))
    idx = np.flatnonzero(keep)
    if idx.size == 0:
        raise ValueError(f"no BC03 age within {age_min_gyr}..{hi:g} Gyr")
    return idx


def _linear_ages(
    z: float, age_min_gyr: float, age_max_gyr: float, step: float, universe_bound: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ages ``age_min, age_min + step, ...`` up to the bound, with the raw BC03 ages around each
    and the weight of the upper one (linear in log age): (ages_gyr, i_lo, w_hi).
    """
    hi = age_upper_bound_gyr(z, age_max_gyr, universe_bound)
    n = int(np.floor((hi - age_min_gyr) / step * (1 + 1e-9) + 1e-9)) + 1
    if n < 1:
        raise ValueError(f"no age of the linear grid within {age_min_gyr:g}..{hi:g} Gyr")
    ages = age_min_gyr + step * np.arange(n)
    return (ages, *log_age_weights(ages))


def log_age_weights(ages_gyr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The raw BC03 ages around each of ``ages_gyr`` and the weight of the upper one, linear in
    log age (the zero-age model is not a node): (i_lo, w_hi), ``i_lo + 1`` the upper index.
    """
    raw = load_bc03()["age_yr"] / 1e9
    la = np.log10(raw[1:])
    x = np.interp(np.log10(ages_gyr), la, np.arange(la.size))
    i_lo = np.clip(np.floor(x).astype(int), 0, la.size - 2)
    return i_lo + 1, np.clip(x - i_lo, 0.0, 1.0)


def build_grid(z: float, sedpy_names: Sequence[str], spec: GridSpec | None = None, **options) -> SSPGrid:
    """Photometric grid of BC03 SSPs at redshift ``z`` through the given filters.

    Parameters
    ----------
    z : float
        Redshift (> 0).
    sedpy_names : sequence of str
        astro-sedpy filter names, e.g. ``['acs_wfc_f814w', 'jwst_f150w']``.
    spec : GridSpec, optional
        The grid options (default ``GridSpec()``).
    **options
        :class:`GridSpec` fields overriding those of ``spec``, e.g. ``n_av=1, igm=False``.

    Returns
    -------
    SSPGrid

    Notes
    -----
    The spec is used as given (:meth:`GridSpec.checked` holds the bounds of the CLI and the
    runs, and resolves the default minimum age: here ``age_min_gyr=None`` keeps every BC03 age
    above zero, as grids recorded before that default was 10 Myr need); impossible values
    raise ValueError: metallicities outside the BC03 range, ``n_av``
    < 1, a negative ``av_max``, an age range without a BC03 age, ``log_u`` outside -4..0.
    """
    spec = dataclasses.replace(spec or GridSpec(), **options) if options else (spec or GridSpec())
    names = list(sedpy_names)
    metallicities = BC03_Z_ZSUN if spec.metallicities is None else spec.metallicities
    # sorted and unique: the fit's quantiles walk the axes in increasing order
    z_want = np.unique(np.asarray(metallicities, dtype=np.float64))
    av_max, n_av, igm, nebular, log_u = spec.av_max, spec.n_av, spec.igm, spec.nebular, spec.log_u
    if n_av < 1 or not av_max >= 0:
        raise ValueError("need n_av >= 1 and av_max >= 0")
    av = np.linspace(0.0, av_max, n_av) if n_av > 1 else np.array([0.0])
    bc = load_bc03()
    step = getattr(spec, "age_step_gyr", None)
    bound = getattr(spec, "universe_bound", True)
    if step is None:
        age_idx = _age_indices(z, spec.age_min_gyr, spec.age_max_gyr, bound)
        flux = ssp_band_fluxes(z, names, age_idx, av, igm=igm, nebular=nebular, log_u=log_u)  # (7, a, v, b)
        live_raw = bc["living_fraction"][age_idx]
        ages_gyr = bc["age_yr"][age_idx] / 1e9
    else:
        ages_gyr, i_lo, w = _linear_ages(z, spec.age_min_gyr, spec.age_max_gyr, step, bound)
        need = np.unique(np.concatenate([i_lo, i_lo + 1]))
        raw = ssp_band_fluxes(z, names, need, av, igm=igm, nebular=nebular, log_u=log_u)
        lo, hi = np.searchsorted(need, i_lo), np.searchsorted(need, i_lo + 1)
        wf = w[None, :, None, None]
        flux = raw[:, lo] * (1 - wf) + raw[:, hi] * wf
        lv = bc["living_fraction"][need]
        live_raw = lv[lo] * (1 - w[:, None]) + lv[hi] * w[:, None]
    flux = np.moveaxis(interpolate_in_log_z(flux, z_want, axis=0), 0, 1)  # (a, Z, v, b)
    live = interpolate_in_log_z(live_raw, z_want, axis=1)
    recipe = {
        "z": float(z),
        "bands": names,
        "age_min_gyr": spec.age_min_gyr,
        "age_max_gyr": spec.age_max_gyr,
        "age_step_gyr": step,
        "ages": "raw BC03 ages" if step is None else "linear grid, BC03 fluxes interpolated in log age",
        "universe_bound": bool(bound),
        "age_universe_gyr": float(cosmology().age(z).to_value("Gyr")),
        "n_age": int(ages_gyr.size),
        "metallicities_zsun": [float(v) for v in z_want],
        "av_max": float(av_max),
        "n_av": int(n_av),
        "dust": "calzetti2000",
        "igm": "inoue2014" if igm else None,
        "nebular": {"log_u": float(log_u), "t_bc_gyr": NEBULAR_T_BC_GYR, "fesc": 0.0} if nebular else None,
        "cosmology": dict(COSMOLOGY),
        "imf": "chabrier2003",
        "sps": "bc03_miles (bagpipes)",
        "bc03_file": os.path.basename(bc["path"]),
        "bc03_sha256": bc["sha256"],
        "l_sun_erg_s": L_SUN_ERG_S,
    }
    return SSPGrid(
        z=float(z),
        bands=names,
        age_gyr=np.asarray(ages_gyr, dtype=np.float64),
        log_z_zsun=np.log10(z_want),
        av=av,
        flux_njy=flux,
        living_fraction=live,
        spec=recipe,
    )
