"""Flux and magnitude conversions. Fluxes are in nJy; AB magnitude m = 31.4 - 2.5 log10(f / nJy).

These pure numpy functions serve both ingestion and the SQL UDFs.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

AB_ZEROPOINT_NJY = 31.4
#: 2.5 / ln(10): d(mag) = MAG_PER_DEX_E * df / f
MAG_PER_DEX_E = 2.5 / np.log(10.0)

#: Flux-density units accepted at ingest and their factor to nJy (exact).
FLUX_UNITS_TO_NJY: dict[str, float] = {
    "njy": 1.0, "nanojy": 1.0, "ujy": 1e3, "µjy": 1e3, "μjy": 1e3, "microjy": 1e3,
    "mujy": 1e3, "mjy": 1e6, "millijy": 1e6, "jy": 1e9, "jansky": 1e9,
}
#: Unit strings meaning AB magnitudes.
AB_MAG_UNITS = {"mag", "abmag", "mag(ab)", "ab", "ab mag", "ab_mag", "magab", "mag_ab"}


def parse_unit(unit: str) -> tuple[str, float]:
    """Classify a unit string as a flux density or an AB magnitude.

    Parameters
    ----------
    unit : str
        E.g. ``"nJy"``, ``"uJy"``, ``"microJansky"``, ``"mJy"``, ``"Jy"``, ``"mag(AB)"``, ``"ABmag"``.

    Returns
    -------
    kind, factor : tuple of (str, float)
        ``("flux", factor_to_nJy)`` or ``("mag", 1.0)``.

    Raises
    ------
    ValueError
        If the unit is neither; the caller names the column.
    """
    u = unit.strip().lower().replace(" ", "").replace("ansky", "y").replace("anskys", "y")
    u = u.replace("jys", "jy")
    if u in FLUX_UNITS_TO_NJY:
        return "flux", FLUX_UNITS_TO_NJY[u]
    if u in {x.replace(" ", "") for x in AB_MAG_UNITS}:
        return "mag", 1.0
    raise ValueError(f"unit '{unit}' is not a flux density (nJy, uJy, mJy, Jy) or AB magnitude")


def flux_to_abmag(flux_njy: npt.ArrayLike) -> np.ndarray:
    """AB magnitude of a flux density in nJy; NaN where the flux is not positive."""
    f = np.asarray(flux_njy, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(f > 0, AB_ZEROPOINT_NJY - 2.5 * np.log10(f), np.nan)


def abmag_to_flux(mag_ab: npt.ArrayLike) -> np.ndarray:
    """Flux density in nJy of an AB magnitude."""
    return np.power(10.0, -0.4 * (np.asarray(mag_ab, dtype=float) - AB_ZEROPOINT_NJY))


def flux_err_to_mag_err(flux_njy: npt.ArrayLike, flux_err_njy: npt.ArrayLike) -> np.ndarray:
    """1-sigma AB magnitude error, 2.5/ln10 * sigma_f / f (mag); NaN where f <= 0."""
    f = np.asarray(flux_njy, dtype=float)
    e = np.asarray(flux_err_njy, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(f > 0, MAG_PER_DEX_E * e / f, np.nan)


def mag_err_to_flux_err(mag_ab: npt.ArrayLike, mag_err: npt.ArrayLike) -> np.ndarray:
    """1-sigma flux error in nJy, sigma_f = 0.4 ln10 f sigma_m."""
    return abmag_to_flux(mag_ab) * np.asarray(mag_err, dtype=float) / MAG_PER_DEX_E


def ab_color(flux1_njy, flux1_err_njy, flux2_njy, flux2_err_njy) -> tuple[np.ndarray, np.ndarray]:
    """AB colour m1 - m2 and its 1-sigma error (mag); NaN where either flux is not positive."""
    f1 = np.asarray(flux1_njy, dtype=float)
    f2 = np.asarray(flux2_njy, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ok = (f1 > 0) & (f2 > 0)
        color = np.where(ok, -2.5 * np.log10(f1 / f2), np.nan)
        err = np.where(ok, MAG_PER_DEX_E * np.hypot(np.asarray(flux1_err_njy, float) / f1,
                                                    np.asarray(flux2_err_njy, float) / f2), np.nan)
    return color, err
