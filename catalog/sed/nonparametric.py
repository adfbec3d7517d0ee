"""Non-parametric star-formation histories in the manner of Dense Basis, on gccat's BC03 grids.

:func:`build_atlas` draws an atlas of histories from the t_x prior of Iyer et al. (2019):
the cosmic times t_x by which fractions x = 1/(K+1), ..., K/(K+1) of the mass had formed,
with the K+1 time fractions (t_x1, t_x2 - t_x1, ..., t_obs - t_xK) / t_obs drawn from a
symmetric Dirichlet of concentration ``alpha``. Each history's cumulative mass fraction C(t) is
a monotone PCHIP interpolation through (0, 0), (t_x, x) and (t_obs, 1) (Dense Basis proper
uses a Gaussian process constrained to be monotone; PCHIP is the stated approximation here).
As in Dense Basis (``tuple_to_sfh``), each history also has a specific SFR at observation,
sSFR = SFR(t_obs) / M_formed, drawn flat in log10 over :data:`DEFAULT_LOG_SSFR_RANGE` (its
``sSFRflat`` prior), which sets the end of the history: knots at the mass fractions
:data:`SFR_CONSTRAINT_FRACTIONS` are placed so that the last 3% of the mass forms at that SFR
(or, when that would take more than 10% of t_obs, the last 3% of the time runs at it), and a
knot (0.01 t_obs, 0) starts the history smoothly from zero. Equal secants through those knots
make the PCHIP slope there exactly the sSFR. Tuples whose knots cannot be monotone (the sSFR
cannot be met after the last t_x) are redrawn: the prior is the joint t_x x sSFR prior truncated
to consistent histories (the fraction redrawn is in the atlas spec).
Each history gets a metallicity drawn flat in log Z over the grid's range and a Calzetti A_V
drawn flat in [0, av_max]; its photometry is linear in the SSP grid: the mass formed in each
BC03 age bin times that SSP's band fluxes per Msun formed, interpolated linearly in log Z (as
:func:`catalog.sed.synthetic_photometry.interpolate_in_log_z`) and in A_V between grid nodes.
Living mass likewise from BC03's living fraction.

:func:`fit_atlas` takes, for each object, the posterior over the atlas with the mass scale of
each history profiled analytically (as :func:`catalog.sed.fitting.fit_ssp`: error floor,
upper limits by the Sawicki 2012 term), and reports 16/50/84th percentiles of
:data:`NONPARAM_KEYS` and the median history with its 16-84% band.

Times: t25, t50, t75, t_peak and the mass-weighted age are **lookback times before
observation** in Gyr (t25 >= t50 >= t75: the time since a quarter, half, three quarters of
the mass had formed).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import special

from catalog.sed import draws
from catalog.sed.fitting import _prepare_photometry, rows_matmul, run_blocks
from catalog.sed.grids import SSPGrid
from catalog.sed.library import cosmology

#: Percentile keys of a non-parametric fit, with their units: log10 formed and living mass
#: (Msun), SFR over the last 100 and 10 Myr (Msun/yr), log10 sSFR over 100 Myr per living
#: mass (1/yr), lookback times t25/t50/t75/t_peak and the formed-mass-weighted age (Gyr),
#: Calzetti A_V (mag), log10(Z/Zsun).
NONPARAM_KEYS = (
    "log_mass_formed",
    "log_mass_living",
    "sfr100",
    "sfr10",
    "log_ssfr100",
    "t25_gyr",
    "t50_gyr",
    "t75_gyr",
    "t_peak_gyr",
    "mw_age_gyr",
    "av",
    "log_z",
)
#: Keys that scale with the mass of the object (log10 of mass times a per-Msun quantity).
_SCALED = {
    "log_mass_formed": "ones",
    "log_mass_living": "living_fraction",
    "sfr100": "sfr100",
    "sfr10": "sfr10",
}
#: Floor of SFR per Msun formed (1/yr) before logs: a history with no star formation at all
#: in the last 10 Myr counts as 1e-20 /yr.
SFR_FLOOR = 1e-20
#: Default atlas: size, number of t_x, Dirichlet concentration (Dense Basis' default tx_alpha).
DEFAULT_N_ATLAS = 100_000
DEFAULT_N_TX = 1
DEFAULT_ALPHA = 5.0
#: Largest Calzetti A_V of the default atlas prior (mag).
DEFAULT_AV_MAX = 1.0
#: A_V priors: flat in [0, av_max], or Dense Basis' exponential of scale AV_EXP_SCALE_MAG
#: truncated at av_max.
AV_PRIORS = ("flat", "exponential")
AV_EXP_SCALE_MAG = 1.0 / 3.0
#: Dense Basis' flat prior on log10 sSFR at observation (1/yr, per mass formed).
DEFAULT_LOG_SSFR_RANGE = (-12.0, -7.5)
#: Mass fractions of Dense Basis' knots that pin the SFR at observation.
SFR_CONSTRAINT_FRACTIONS = (0.97, 0.98, 0.99)
#: Dense Basis' start knot: no mass before this fraction of t_obs.
START_KNOT_FRACTION = 0.01
N_HISTORY_BINS = 100  # stored history: SFR averaged in this many equal lookback bins
HISTORY_DRAWS = 100  # posterior draws (a systematic subset of n_draws) behind the history band


@dataclass
class Atlas:
    """Histories drawn from the prior and their photometry per Msun formed.

    Attributes
    ----------
    z, t_obs_gyr : float
        Redshift and the age of the Universe there (Gyr): histories run from t = 0 to t_obs.
    bands : list of str
        astro-sedpy filters, in flux order.
    tx : numpy.ndarray
        (N, n_tx) cosmic times t_x (Gyr) at fractions :attr:`x` of the mass.
    x : numpy.ndarray
        (n_tx,) mass fractions of the t_x: 1/(n_tx+1), ..., n_tx/(n_tx+1).
    log_z, av : numpy.ndarray
        (N,) log10(Z/Zsun) and Calzetti A_V (mag).
    flux_njy : numpy.ndarray
        (N, n_band) band fluxes in nJy per Msun formed.
    living_fraction, sfr100, sfr10 : numpy.ndarray
        (N,) living mass / mass formed; SFR averaged over the last 100 and 10 Myr per Msun
        formed (1/yr).
    t25_gyr, t50_gyr, t75_gyr, t_peak_gyr, mw_age_gyr : numpy.ndarray
        (N,) lookback times (Gyr before observation) by which 25, 50, 75% of the mass had formed,
        of the peak SFR, and the formed-mass-weighted age (over the SSP age bins).
    history_edges_gyr : numpy.ndarray
        (n_t + 1,) lookback-time edges of the stored history (0 .. t_obs).
    history : numpy.ndarray
        (N, n_t) float32 SFR per Msun formed (1/yr) averaged in those bins.
    spec : dict
        Everything needed to redraw the atlas (seed, sizes, prior, interpolation, grid).
    log_ssfr : numpy.ndarray or None
        (N,) log10 sSFR at observation (1/yr, per mass formed) that pins the end of each
        history (:func:`ssfr_knots`); None for histories without it.
    """

    z: float
    t_obs_gyr: float
    bands: list[str]
    tx: np.ndarray
    x: np.ndarray
    log_z: np.ndarray
    av: np.ndarray
    flux_njy: np.ndarray
    living_fraction: np.ndarray
    sfr100: np.ndarray
    sfr10: np.ndarray
    t25_gyr: np.ndarray
    t50_gyr: np.ndarray
    t75_gyr: np.ndarray
    t_peak_gyr: np.ndarray
    mw_age_gyr: np.ndarray
    history_edges_gyr: np.ndarray
    history: np.ndarray
    spec: dict = field(default_factory=dict)
    log_ssfr: np.ndarray | None = None

    def cumulative_mass(self, rows, t_gyr) -> np.ndarray:
        """Cumulative mass fraction of the histories ``rows`` at cosmic times ``t_gyr`` (Gyr)."""
        ssfr = None if self.log_ssfr is None else self.log_ssfr[rows]
        return cumulative_mass(self.tx[rows], self.x, self.t_obs_gyr, t_gyr, ssfr)

    @property
    def size(self) -> int:
        """Number of histories in the atlas."""
        return int(self.flux_njy.shape[0])

    def quantity(self, key: str) -> np.ndarray:
        """Per-history value of an atlas-level key of :data:`NONPARAM_KEYS` (not the scaled ones)."""
        if key == "log_ssfr100":
            return np.log10(np.maximum(self.sfr100, SFR_FLOOR) / self.living_fraction)
        return getattr(self, key)


def atlas_n_free(atlas: Atlas) -> int:
    """Free parameters of an atlas history: mass, the t_x, Z, A_V, and sSFR when it has one."""
    return 1 + int(atlas.x.size) + 2 + (atlas.log_ssfr is not None)


def draw_tx(n: int, n_tx: int, alpha: float, t_obs_gyr: float, rng) -> np.ndarray:
    """(n, n_tx) cosmic times t_x (Gyr): cumulative Dirichlet(alpha, ..., alpha) fractions of t_obs."""
    frac = rng.dirichlet(np.full(n_tx + 1, float(alpha)), size=n)
    return np.cumsum(frac, axis=1)[:, :n_tx] * t_obs_gyr


def _pchip_slopes(xk: np.ndarray, yk: np.ndarray) -> np.ndarray:
    """PCHIP (Fritsch-Carlson, as scipy.interpolate.PchipInterpolator) slopes, row by row.

    xk, yk : (n, m) increasing knots per row (m >= 3). Returns (n, m) slopes dy/dx.
    """
    h = np.diff(xk, axis=1)
    delta = np.diff(yk, axis=1) / h
    d = np.zeros_like(yk)
    w1 = 2 * h[:, 1:] + h[:, :-1]
    w2 = h[:, 1:] + 2 * h[:, :-1]
    same = (delta[:, :-1] * delta[:, 1:]) > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        harm = (w1 + w2) / (w1 / delta[:, :-1] + w2 / delta[:, 1:])
    d[:, 1:-1] = np.where(same, harm, 0.0)

    def edge(h0, h1, m0, m1):
        e = ((2 * h0 + h1) * m0 - h0 * m1) / (h0 + h1)
        e = np.where(np.sign(e) != np.sign(m0), 0.0, e)
        return np.where((np.sign(m0) != np.sign(m1)) & (np.abs(e) > np.abs(3 * m0)), 3 * m0, e)

    d[:, 0] = edge(h[:, 0], h[:, 1], delta[:, 0], delta[:, 1])
    d[:, -1] = edge(h[:, -1], h[:, -2], delta[:, -1], delta[:, -2])
    return d


def ssfr_knots(tx: np.ndarray, log_ssfr: np.ndarray, t_obs_gyr: float):
    """Dense Basis' knots that pin the SFR at observation (``tuple_to_sfh``), row by row.

    Parameters
    ----------
    tx : numpy.ndarray
        (n, n_tx) cosmic times t_x (Gyr).
    log_ssfr : numpy.ndarray
        (n,) log10 sSFR at observation (1/yr, per mass formed).
    t_obs_gyr : float
        Age of the Universe at observation (Gyr).

    Returns
    -------
    times, masses : numpy.ndarray
        (n, 3) cosmic times (Gyr) and cumulative mass fractions of the knots, one per fraction c
        of :data:`SFR_CONSTRAINT_FRACTIONS`: at time t_obs (1 - (1 - c) / (sSFR t_obs)) with
        mass c when that is after the previous knot and after 0.9 t_obs, else at time c t_obs
        with mass 1 - (1 - c) sSFR t_obs.
    valid : numpy.ndarray
        (n,) True where all knots (start knot, t_x, these, t_obs) increase strictly in time
        and in mass.
    """
    s_t = 10 ** np.asarray(log_ssfr, np.float64) * t_obs_gyr * 1e9  # mass fraction per t_obs
    prev = tx[:, -1] / t_obs_gyr
    times, masses = [], []
    for c in SFR_CONSTRAINT_FRACTIONS:
        dt = 1 - (1 - c) / s_t
        by_mass = (dt > prev) & (dt > 0.9)
        t = np.where(by_mass, dt, c)
        times.append(t)
        masses.append(np.where(by_mass, c, 1 - (1 - c) * s_t))
        prev = t
    tk, mk = np.stack(times, axis=1), np.stack(masses, axis=1)
    n, n_tx = tx.shape
    t_all = np.concatenate([tx[:, -1:] / t_obs_gyr, tk, np.ones((n, 1))], axis=1)
    m_all = np.concatenate([np.full((n, 1), n_tx / (n_tx + 1)), mk, np.ones((n, 1))], axis=1)
    valid = (
        np.all(np.diff(t_all, axis=1) > 0, axis=1)
        & np.all(np.diff(m_all, axis=1) > 0, axis=1)
        & (tx[:, 0] / t_obs_gyr > START_KNOT_FRACTION)
    )
    return tk * t_obs_gyr, mk, valid


def _knots(tx: np.ndarray, x: np.ndarray, t_obs_gyr: float, log_ssfr=None):
    """PCHIP knots of each history and their slopes, (n, m): (0, 0), (t_x, x), (t_obs, 1), and
    with ``log_ssfr`` Dense Basis' start knot and SFR knots (:func:`ssfr_knots`).
    """
    n = tx.shape[0]
    if log_ssfr is None:
        xk = np.concatenate([np.zeros((n, 1)), tx, np.full((n, 1), t_obs_gyr)], axis=1)
        yk = np.broadcast_to(np.concatenate([[0.0], x, [1.0]]), xk.shape).copy()
    else:
        tk, mk, _ = ssfr_knots(tx, np.broadcast_to(log_ssfr, (n,)), t_obs_gyr)
        start = np.full((n, 1), START_KNOT_FRACTION * t_obs_gyr)
        xk = np.concatenate([np.zeros((n, 1)), start, tx, tk, np.full((n, 1), t_obs_gyr)], axis=1)
        yk = np.concatenate(
            [np.zeros((n, 2)), np.broadcast_to(x, tx.shape), np.clip(mk, 0, 1), np.ones((n, 1))], axis=1
        )
        # an invalid tuple (never in an atlas) keeps monotone masses rather than a negative SFR
        yk = np.maximum.accumulate(yk, axis=1)
    # knots must increase strictly (a Dirichlet fraction of exactly 0 is a measure-zero
    # event); only ties move, so that C(t_obs) stays 1 however steep the end of the history
    for j in range(1, xk.shape[1]):
        xk[:, j] = np.maximum(xk[:, j], xk[:, j - 1] + 1e-9 * t_obs_gyr)
    return xk, yk, _pchip_slopes(xk, yk)


def _hermite(y0, y1, d0, d1, hh, s):
    s2 = s * s
    s3 = s2 * s
    return (
        y0 * (2 * s3 - 3 * s2 + 1)
        + hh * d0 * (s3 - 2 * s2 + s)
        + y1 * (3 * s2 - 2 * s3)
        + hh * d1 * (s3 - s2)
    )


def cumulative_mass(
    tx: np.ndarray, x: np.ndarray, t_obs_gyr: float, t_gyr: np.ndarray, log_ssfr=None
) -> np.ndarray:
    """Cumulative mass fraction C(t) of each history at cosmic times ``t_gyr``.

    Monotone PCHIP through (0, 0), (t_x, x), (t_obs, 1) (and, with ``log_ssfr`` (n,) in
    log10(1/yr), Dense Basis' knots of :func:`ssfr_knots`); (n, n_t), 0 before 0, 1 after t_obs.
    """
    xk, yk, d = _knots(tx, x, t_obs_gyr, log_ssfr)
    t = np.clip(np.asarray(t_gyr, dtype=np.float64), 0.0, t_obs_gyr)
    # interval of each (history, time): the number of interior knots at or before t
    k = np.zeros((tx.shape[0], t.size), np.intp)
    for j in range(1, xk.shape[1] - 1):
        k += t[None, :] >= xk[:, j : j + 1]

    def at(a, off=0):
        return np.take_along_axis(a, k + off, axis=1)

    x0 = at(xk)
    hh = at(xk, 1) - x0
    out = _hermite(at(yk), at(yk, 1), at(d), at(d, 1), hh, (t[None, :] - x0) / hh)
    return np.clip(out, 0.0, 1.0)


def time_at_fraction(
    tx: np.ndarray, x: np.ndarray, t_obs_gyr: float, level: float, log_ssfr=None
) -> np.ndarray:
    """Cosmic time (Gyr) at which each history had formed the fraction ``level`` of its mass
    (the PCHIP inverted by bisection to ~1e-12 t_obs).
    """
    xk, yk, d = _knots(tx, x, t_obs_gyr, log_ssfr)
    k = np.clip((yk <= level).sum(axis=1) - 1, 0, xk.shape[1] - 2)[:, None]

    def at(a, off=0):
        return np.take_along_axis(a, k + off, axis=1)[:, 0]

    y0, y1, d0, d1 = at(yk), at(yk, 1), at(d), at(d, 1)
    hh = at(xk, 1) - at(xk)
    lo, hi = np.zeros(tx.shape[0]), np.ones(tx.shape[0])
    for _ in range(40):
        mid = (lo + hi) / 2
        below = _hermite(y0, y1, d0, d1, hh, mid) < level
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    return at(xk) + (lo + hi) / 2 * hh


def time_of_peak(tx: np.ndarray, x: np.ndarray, t_obs_gyr: float, log_ssfr=None) -> np.ndarray:
    """Cosmic time (Gyr) of the largest SFR of each history: the derivative of the Hermite cubic
    is a quadratic on each interval, maximised at an end or at its vertex.
    """
    xk, yk, d = _knots(tx, x, t_obs_gyr, log_ssfr)
    best_g = np.full(tx.shape[0], -np.inf)
    best_t = np.zeros(tx.shape[0])
    for k in range(xk.shape[1] - 1):
        y0, y1, d0, d1 = yk[:, k], yk[:, k + 1], d[:, k], d[:, k + 1]
        hh = xk[:, k + 1] - xk[:, k]
        qa = 6 * y0 + 3 * hh * d0 - 6 * y1 + 3 * hh * d1
        qb = -6 * y0 - 4 * hh * d0 + 6 * y1 - 2 * hh * d1
        with np.errstate(divide="ignore", invalid="ignore"):
            vertex = np.where(qa < 0, -qb / (2 * qa), 0.0)
        for sv in (np.zeros_like(hh), np.ones_like(hh), np.clip(np.nan_to_num(vertex), 0, 1)):
            g = (qa * sv * sv + qb * sv + hh * d0) / hh
            better = g > best_g
            best_g = np.where(better, g, best_g)
            best_t = np.where(better, xk[:, k] + sv * hh, best_t)
    return best_t


def age_bin_edges(age_gyr: np.ndarray, t_obs_gyr: float) -> np.ndarray:
    """Lookback edges of the SSP age bins: 0, midpoints between BC03 ages, t_obs."""
    mids = (age_gyr[1:] + age_gyr[:-1]) / 2
    return np.concatenate([[0.0], mids, [max(t_obs_gyr, age_gyr[-1])]])


def _interp_weights(values: np.ndarray, axis: np.ndarray):
    """Index of the lower node and the weight of the upper one, linear in ``axis`` (no extrapolation)."""
    if axis.size == 1:
        return np.zeros(values.size, int), np.zeros(values.size)
    pos = np.interp(values, axis, np.arange(axis.size, dtype=float))
    i0 = np.clip(np.floor(pos).astype(int), 0, axis.size - 2)
    return i0, pos - i0


def history_photometry(grid: SSPGrid, mass_bins: np.ndarray, log_z: np.ndarray, av: np.ndarray):
    """Band fluxes (nJy) and living mass of histories: sum over SSP ages of mass x SSP per Msun.

    mass_bins : (n, n_age) Msun formed in each grid age bin; log_z, av : (n,) within the grid's
    axes, interpolated linearly between its nodes (log Z, as interpolate_in_log_z, and A_V).
    Returns flux (n, n_band) and living mass (n,).
    """
    iz, wz = _interp_weights(log_z, grid.log_z_zsun)
    iv, wv = _interp_weights(av, grid.av)
    n_z, n_v = grid.log_z_zsun.size, grid.av.size
    flux = np.zeros((mass_bins.shape[0], len(grid.bands)))
    living = np.zeros(mass_bins.shape[0])
    cell = iz * n_v + iv
    for c in np.unique(cell):
        rows = np.flatnonzero(cell == c)
        z0, v0 = divmod(int(c), n_v)
        m = mass_bins[rows]
        for dz in (0, 1):
            if z0 + dz >= n_z:
                continue
            fz = wz[rows] if dz else 1 - wz[rows]
            living[rows] += fz * (m @ grid.living_fraction[:, z0 + dz])
            for dv in (0, 1):
                if v0 + dv >= n_v:
                    continue
                fv = wv[rows] if dv else 1 - wv[rows]
                flux[rows] += (fz * fv)[:, None] * (m @ grid.flux_njy[:, z0 + dz, v0 + dv, :])
    return flux, living


def build_atlas(
    grid: SSPGrid,
    n_atlas: int = DEFAULT_N_ATLAS,
    *,
    n_tx: int = DEFAULT_N_TX,
    alpha: float = DEFAULT_ALPHA,
    seed: int = 0,
    log_z_range=None,
    av_max=None,
    log_ssfr_range=DEFAULT_LOG_SSFR_RANGE,
    av_prior: str = "flat",
    chunk: int = 5000,
) -> Atlas:
    """Draw ``n_atlas`` histories from the t_x prior and compute their photometry from ``grid``.

    Parameters
    ----------
    grid : SSPGrid
        BC03 grid at the objects' redshift (its ages up to the age of the Universe, its A_V and
        metallicity axes spanning the prior; finer A_V steps interpolate better, 0.05 mag is
        good to ~0.2% in the UV).
    n_atlas : int
        Histories drawn.
    n_tx : int
        Number of t_x parameters (1: t50 only, as the Sparkler study; 3: t25, t50, t75).
    alpha : float
        Dirichlet concentration of the time fractions (larger: closer to constant SF).
    seed : int
        Seed of every draw (t_x, Z, A_V), recorded in ``spec``.
    log_z_range : (float, float), optional
        log10(Z/Zsun) range of the flat prior; default the grid's.
    av_max : float, optional
        Largest A_V of the flat prior; default the grid's largest.
    log_ssfr_range : (float, float) or None
        Range of the flat prior on log10 sSFR at observation (1/yr, per mass formed), Dense
        Basis' ``sSFRflat`` (default -12 to -7.5); None for histories without the SFR knots
        (their recent SFR is then set by the t_x prior alone).
    av_prior : {"flat", "exponential"}
        Flat in [0, av_max], or exponential of scale :data:`AV_EXP_SCALE_MAG` truncated at
        av_max (Dense Basis' default).
    """
    if av_prior not in AV_PRIORS:
        raise ValueError(f"av_prior must be one of {AV_PRIORS}, not {av_prior!r}")
    rng = np.random.default_rng(seed)
    t_obs = float(cosmology().age(grid.z).to_value("Gyr"))
    lz_lo, lz_hi = (grid.log_z_zsun[0], grid.log_z_zsun[-1]) if log_z_range is None else log_z_range
    av_hi = float(grid.av[-1]) if av_max is None else float(av_max)
    x = np.arange(1, n_tx + 1) / (n_tx + 1)
    tx = draw_tx(n_atlas, n_tx, alpha, t_obs, rng)
    log_ssfr, n_redrawn = None, 0
    if log_ssfr_range is not None:
        s_lo, s_hi = (float(v) for v in log_ssfr_range)
        log_ssfr = rng.uniform(s_lo, s_hi, n_atlas)
        bad = ~ssfr_knots(tx, log_ssfr, t_obs)[2]
        for _ in range(1000):  # truncate the joint prior to tuples with monotone knots
            if not bad.any():
                break
            n_redrawn += int(bad.sum())
            tx[bad] = draw_tx(int(bad.sum()), n_tx, alpha, t_obs, rng)
            log_ssfr[bad] = rng.uniform(s_lo, s_hi, int(bad.sum()))
            bad[bad] = ~ssfr_knots(tx[bad], log_ssfr[bad], t_obs)[2]
        else:
            raise ValueError(f"no consistent t_x, sSFR tuple for {int(bad.sum())} histories")
    log_z = rng.uniform(lz_lo, lz_hi, n_atlas)
    u = rng.uniform(0.0, 1.0, n_atlas)
    if av_hi <= 0:
        av = np.zeros(n_atlas)
    elif av_prior == "flat":
        av = u * av_hi
    else:  # inverse CDF of the exponential truncated at av_hi
        av = -AV_EXP_SCALE_MAG * np.log1p(u * np.expm1(-av_hi / AV_EXP_SCALE_MAG))
    edges_lb = age_bin_edges(grid.age_gyr, t_obs)  # lookback, (n_age + 1,)
    t_edges = t_obs - edges_lb  # cosmic time, decreasing
    hist_edges_lb = np.linspace(0.0, t_obs, N_HISTORY_BINS + 1)
    out = {k: np.empty(n_atlas) for k in ("living", "sfr100", "sfr10", "t25", "t50", "t75", "tpeak", "mwa")}
    flux = np.empty((n_atlas, len(grid.bands)))
    history = np.empty((n_atlas, N_HISTORY_BINS), np.float32)
    for lo in range(0, n_atlas, chunk):
        sl = slice(lo, min(lo + chunk, n_atlas))
        ls = None if log_ssfr is None else log_ssfr[sl]
        c_edges = cumulative_mass(tx[sl], x, t_obs, t_edges, ls)
        mass_bins = c_edges[:, :-1] - c_edges[:, 1:]  # per SSP age bin, sums to 1
        flux[sl], out["living"][sl] = history_photometry(grid, mass_bins, log_z[sl], av[sl])
        out["mwa"][sl] = mass_bins @ grid.age_gyr / mass_bins.sum(axis=1)
        recent = cumulative_mass(tx[sl], x, t_obs, np.array([t_obs - 0.1, t_obs - 0.01, t_obs]), ls)
        out["sfr100"][sl] = (recent[:, 2] - recent[:, 0]) / 0.1e9
        out["sfr10"][sl] = (recent[:, 2] - recent[:, 1]) / 0.01e9
        for key, level in (("t25", 0.25), ("t50", 0.5), ("t75", 0.75)):
            out[key][sl] = t_obs - time_at_fraction(tx[sl], x, t_obs, level, ls)
        out["tpeak"][sl] = np.maximum(t_obs - time_of_peak(tx[sl], x, t_obs, ls), 0.0)
        c_hist = cumulative_mass(tx[sl], x, t_obs, t_obs - hist_edges_lb, ls)
        history[sl] = (c_hist[:, :-1] - c_hist[:, 1:]) / (np.diff(hist_edges_lb) * 1e9)
    spec = {
        "method": "dense-basis-like t_x atlas",
        "n_atlas": int(n_atlas),
        "n_tx": int(n_tx),
        "x": x.tolist(),
        "alpha": float(alpha),
        "seed": int(seed),
        "z": float(grid.z),
        "t_obs_gyr": t_obs,
        "log_z_range": [float(lz_lo), float(lz_hi)],
        "av_max": av_hi,
        "av_prior": av_prior if av_prior == "flat" else f"exponential, scale {AV_EXP_SCALE_MAG:.4g} mag",
        "log_ssfr_range": None if log_ssfr is None else [s_lo, s_hi],
        "n_redrawn": n_redrawn,
        "prior": "t_x fractions of t_obs ~ Dirichlet(alpha); log Z flat; A_V "
        + av_prior
        + (
            ""
            if log_ssfr is None
            else "; log sSFR(t_obs) flat (Dense Basis sSFRflat), joint prior truncated to monotone knots"
        ),
        "interpolation": "monotone PCHIP of the cumulative mass through (0,0), (t_x,x), (t_obs,1)"
        + (
            ""
            if log_ssfr is None
            else ", (0.01 t_obs, 0) and Dense Basis' SFR knots at mass fractions 0.97, 0.98, 0.99"
        ),
        "photometry": "mass per BC03 age bin (edges at midpoints) x SSP fluxes per Msun formed, "
        "linear in log Z and A_V between grid nodes",
        "grid": {
            k: grid.spec.get(k)
            for k in (
                "n_age",
                "metallicities_zsun",
                "av_max",
                "n_av",
                "dust",
                "igm",
                "nebular",
                "imf",
                "sps",
                "bc03_sha256",
            )
        },
    }
    return Atlas(
        z=float(grid.z),
        t_obs_gyr=t_obs,
        bands=list(grid.bands),
        tx=tx,
        x=x,
        log_z=log_z,
        av=av,
        flux_njy=flux,
        living_fraction=out["living"],
        sfr100=out["sfr100"],
        sfr10=out["sfr10"],
        t25_gyr=out["t25"],
        t50_gyr=out["t50"],
        t75_gyr=out["t75"],
        t_peak_gyr=out["tpeak"],
        mw_age_gyr=out["mwa"],
        history_edges_gyr=hist_edges_lb,
        history=history,
        spec=spec,
        log_ssfr=log_ssfr,
    )


@dataclass
class NonparamResult:
    """Posterior summaries of atlas fits, arrays over objects.

    Attributes
    ----------
    percentiles : dict
        :data:`NONPARAM_KEYS` -> (n_obj, 3) 16/50/84th percentiles (units in NONPARAM_KEYS).
    best_fit : dict
        Same keys -> (n_obj,) at the minimum-chi2 history (its best mass scale).
    chi2_min, n_bands, reduced_chi2 : numpy.ndarray
        (n_obj,); reduced chi2 = chi2_min / (n_bands - n_free), n_free = 1 (mass) + n_tx + 2
        (Z, A_V); NaN when not positive.
    history : numpy.ndarray
        (n_obj, 3, n_t) 16/50/84th percentiles of the SFR (Msun/yr) in the atlas' lookback bins
        (:attr:`Atlas.history_edges_gyr`), nearest-rank percentiles of :data:`HISTORY_DRAWS`
        (a systematic subset of the ``n_draws``) posterior draws per object.
    n_effective : numpy.ndarray
        (n_obj,) effective number of atlas histories, 1 / sum(p^2).
    best_index : numpy.ndarray or None
        (n_obj,) atlas index of the minimum-chi2 history (-1 without a detection).
    """

    percentiles: dict[str, np.ndarray]
    best_fit: dict[str, np.ndarray]
    chi2_min: np.ndarray
    n_bands: np.ndarray
    reduced_chi2: np.ndarray
    history: np.ndarray
    n_effective: np.ndarray
    best_index: np.ndarray | None = None


# The atlas fit mirrors fit_ssp (blocks, closures over the atlas arrays); C901 counts them.
def fit_atlas(  # noqa: C901
    atlas: Atlas,
    flux_njy,
    flux_err_njy,
    *,
    upper_limit=None,
    error_floor: float = 0.05,
    n_draws: int = 500,
    rng=None,
    draw_keys=None,
    n_threads: int | None = None,
    keep_history: bool = True,
) -> NonparamResult:
    """Posterior over the atlas for every object, the mass scale of each history profiled.

    Parameters
    ----------
    atlas : Atlas
        Histories at the objects' redshift; bands in the flux column order.
    flux_njy, flux_err_njy : array_like
        (n_obj, n_band) fluxes and 1-sigma errors in nJy (as :func:`catalog.sed.fitting.fit_ssp`).
    upper_limit : array_like of bool, optional
        True where ``flux`` is an upper limit (Sawicki 2012 term, as fit_ssp).
    error_floor : float
        Fraction of |flux| added in quadrature to the errors.
    n_draws : int
        Posterior draws per object for the history band.
    rng : numpy.random.Generator or seed
        For the draws when ``draw_keys`` is not given: the objects are keyed by their row
        number under a seed drawn from it (:func:`catalog.sed.draws.row_keys`).
    draw_keys : array_like, optional
        (n_obj, 2) uint64 per-object keys (:func:`catalog.sed.draws.object_keys` of the run
        seed and the object ids): object i's draws (the offset of its systematic levels, then
        one Gaussian per draw) are the first ``1 + n_draws`` outputs of its own Philox
        stream, independent of the other objects, the blocks and the threads.
    keep_history : bool
        Compute the history band (skipping it saves ~ a third of the time).

    Notes
    -----
    As in fit_ssp: per history the best scale s = max(B, 0) / C with B = (f / sigma^2) @ m.T,
    C = (1 / sigma^2) @ (m^2).T (float32 matrix products on unit-peak fluxes), chi2 = A - s B,
    limits by -2 ln Phi((limit - s m) / sigma) at that s; each atlas history has prior weight
    1 / N (they are draws from the prior), so the posterior weight is exp(-chi2 / 2).
    Percentiles of mass-scaled keys (masses, SFRs) are those of the posterior-weighted mixture
    of the histories' best log scales broadened by the within-history Gaussian width of the
    scale (fit_ssp's mixture); percentiles of the other keys are weighted percentiles over the
    atlas (histogram of 512 bins per object). Histories with posterior weight < 1e-3 / N are
    left out (at most 0.1% of the weight).
    """
    fl, sig, det, lim, ul_sig = _prepare_photometry(flux_njy, flux_err_njy, upper_limit, error_floor)
    if fl.ndim == 1:
        fl, sig, det, lim, ul_sig = (np.atleast_2d(a) for a in (fl, sig, det, lim, ul_sig))
    n_obj, n_band = fl.shape
    if n_band != len(atlas.bands):
        raise ValueError(f"{n_band} flux columns for an atlas of {len(atlas.bands)} bands")
    n_mod = atlas.size
    norm = np.max(np.abs(atlas.flux_njy), axis=1)
    norm = np.where(norm > 0, norm, 1.0)
    mn = (atlas.flux_njy / norm[:, None]).astype(np.float32)
    mt, m2t = np.ascontiguousarray(mn.T), np.ascontiguousarray((mn**2).T)
    log_norm32 = np.log10(norm).astype(np.float32)
    log_unit = {
        "log_mass_formed": np.zeros(n_mod, np.float32),
        "log_mass_living": np.log10(atlas.living_fraction).astype(np.float32),
        "sfr100": np.log10(np.maximum(atlas.sfr100, SFR_FLOOR)).astype(np.float32),
        "sfr10": np.log10(np.maximum(atlas.sfr10, SFR_FLOOR)).astype(np.float32),
    }
    plain = {k: atlas.quantity(k).astype(np.float32) for k in NONPARAM_KEYS if k not in _SCALED}
    n_free = atlas_n_free(atlas)
    n_t = atlas.history.shape[1]
    history_t = np.ascontiguousarray(atlas.history.T) if keep_history else None
    pct = {k: np.full((n_obj, 3), np.nan) for k in NONPARAM_KEYS}
    best = {k: np.full(n_obj, np.nan) for k in NONPARAM_KEYS}
    chi2_min = np.full(n_obj, np.nan)
    n_eff = np.full(n_obj, np.nan)
    hist = np.full((n_obj, 3, n_t), np.nan)
    best_index = np.full(n_obj, -1, np.int64)
    n_used = (det | lim).sum(axis=1)
    keys = draws.row_keys(rng, n_obj) if draw_keys is None else np.asarray(draw_keys, np.uint64)
    if keys.shape != (n_obj, 2):
        raise ValueError(f"draw_keys of shape {keys.shape} for {n_obj} objects (need ({n_obj}, 2))")

    def block(lo: int, hi: int) -> None:
        sl = slice(lo, hi)
        c = hi - lo
        rows = np.arange(c)
        d = det[sl]
        f_d = np.where(d, fl[sl], 0.0)
        w = np.where(d, 1.0 / np.where(d, sig[sl], 1.0) ** 2, 0.0)
        fw = f_d * w
        a = np.sum(fw * f_d, axis=1).astype(np.float32)
        # Half scales and half log-likelihoods save passes over the (objects x atlas) arrays:
        # with C2 = 2C, hs = max(B, 0) / C2 = s / 2 and q = hs B = (A - chi2) / 2.
        bmat = rows_matmul(fw.astype(np.float32), mt)
        cmat2 = rows_matmul((2 * w).astype(np.float32), m2t)
        has_det = d.any(axis=1)
        hs = np.maximum(bmat, 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            hs /= cmat2
        hs[~has_det] = 0
        q = np.multiply(hs, bmat, out=bmat)
        lim_b = lim[sl]
        for j in np.flatnonzero(lim_b.any(axis=0)):
            r = np.flatnonzero(lim_b[:, j])
            u = (fl[sl][r, j][:, None] - 2 * hs[r] * mn[:, j][None, :]) / ul_sig[sl][r, j][:, None]
            q[r] += special.log_ndtr(u).astype(np.float32)
        ibest = np.argmax(q, axis=1)
        qmax = q[rows, ibest]
        chi2_min[sl] = np.maximum(a - 2 * qmax, 0)
        with np.errstate(divide="ignore"):
            lm_best = np.log10(2 * hs[rows, ibest].astype(np.float64)) - log_norm32[ibest]
        lm_best = np.where(has_det & np.isfinite(lm_best), lm_best, np.nan)
        best_index[sl] = np.where(has_det, ibest, -1)
        for k in NONPARAM_KEYS:
            if k in _SCALED:
                v = lm_best + log_unit[k][ibest]
                best[k][sl] = 10**v if k.startswith("sfr") else v
            else:
                best[k][sl] = plain[k][ibest]
        p = np.subtract(q, qmax[:, None], out=q)
        np.exp(p, out=p)  # unnormalised posterior, 1 at the best fit
        tot = p.sum(axis=1, dtype=np.float64)
        keep = p > (tot * (1e-3 / n_mod)).astype(np.float32)[:, None]
        # systematic resampling of each object's kept weights: n_draws equally spaced levels
        raw = draws.raw_streams(keys[sl], 1 + n_draws)
        levels = (np.arange(n_draws)[None, :] + draws.uniforms(raw[:, :1])) / n_draws
        ai = np.empty((c, n_draws), np.intp)  # atlas indices of the draws
        for r in range(c):
            idx = np.flatnonzero(keep[r])
            wr = p[r, idx]
            cum = np.cumsum(wr, dtype=np.float64)
            n_eff[lo + r] = cum[-1] ** 2 / np.dot(wr, wr, out=None).astype(np.float64)
            ai[r] = idx[np.minimum(np.searchsorted(cum, levels[r] * cum[-1]), idx.size - 1)]
        s_d = 2 * hs[rows[:, None], ai].astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            c_d = cmat2[rows[:, None], ai].astype(np.float64) / 2
            sig_dex = 1.0 / (np.sqrt(c_d) * s_d * np.log(10))
            lm = np.log10(s_d) - log_norm32[ai] + sig_dex * draws.normals(raw[:, 1:])
        lm[~has_det] = np.nan
        stack = np.empty((len(NONPARAM_KEYS), c, n_draws))
        for i, k in enumerate(NONPARAM_KEYS):
            stack[i] = lm + log_unit[k][ai] if k in _SCALED else plain[k][ai]
        q = np.percentile(stack, [16, 50, 84], axis=2)  # (3, n_keys, c)
        for i, k in enumerate(NONPARAM_KEYS):
            v = np.where(np.isfinite(q[:, i]), q[:, i], np.nan).T
            pct[k][sl] = 10**v if k.startswith("sfr") else v
        if keep_history:
            sub = slice(None, None, max(1, n_draws // HISTORY_DRAWS))
            sfr = history_t[:, ai[:, sub]] * (10 ** lm[:, sub]).astype(np.float32)  # (n_t, c, n_h)
            # nearest-rank percentiles (np.partition; linear interpolation costs twice as much)
            n_h = sfr.shape[2]
            ranks = [min(n_h - 1, int(round(q * (n_h - 1)))) for q in (0.16, 0.5, 0.84)]
            part = np.partition(sfr, ranks, axis=2)[:, :, ranks]  # (n_t, c, 3)
            hist[sl] = part.transpose(1, 2, 0)

    step = max(1, (1 << 21) // max(n_mod, 1))
    run_blocks(block, n_obj, step, n_threads)
    dof = n_used - n_free
    with np.errstate(divide="ignore", invalid="ignore"):
        red = np.where(dof > 0, chi2_min / dof, np.nan)
    return NonparamResult(
        percentiles=pct,
        best_fit=best,
        chi2_min=chi2_min,
        n_bands=n_used,
        reduced_chi2=red,
        history=hist,
        n_effective=n_eff,
        best_index=best_index,
    )
