"""Flux and magnitude conversions. Fluxes are in nJy; AB magnitude m = 31.4 - 2.5 log10(f / nJy).

These pure numpy functions serve both ingestion and the SQL UDFs.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from catalog.constants import AB_ZEROPOINT_NJY, ARCSEC_PER_RAD

#: 2.5 / ln(10): d(mag) = MAG_PER_DEX_E * df / f
MAG_PER_DEX_E = 2.5 / np.log(10.0)

#: Magnitude systems gccat knows, by the lower-case spellings it accepts (``--mag-system``, the
#: ``mag_system`` mapping keys); values are the canonical names.
MAG_SYSTEMS = {"ab": "AB", "vega": "Vega", "st": "ST"}
# Unit strings that name a magnitude system (compared lower-case, without blanks, ``_``, ``-``
# or brackets): astropy reads "mag(AB)" but not "ABmag", and reads "AB" as the flux unit 3631 Jy.
_MAG_WORDS = {
    **dict.fromkeys(("abmag", "magab", "ab", "abmagnitude", "magnitudeab"), "AB"),
    **dict.fromkeys(("vegamag", "magvega", "vega", "vegamagnitude", "magnitudevega"), "Vega"),
    **dict.fromkeys(("stmag", "magst", "stmagnitude", "magnitudest"), "ST"),
    **dict.fromkeys(("mag", "mags", "magnitude", "magnitudes"), None),
}
# Count units of images (HST: electrons/s with PHOTFNU), which astropy does not all read.
_COUNT_RATE = re.compile(
    r"(?i)^(?:electrons?|e-?|counts?|cts?|dn|adu|photons?)\s*"
    r"(?:/\s*s(?:ec(?:ond)?)?|\s+s\*\*-1|\s+s-1|\s+per\s+second)$|^cps$"
)
_COUNTS = re.compile(r"(?i)^(?:electrons?|e-|counts?|cts?|dn|adu|photons?)$")
# Jansky spelt out or in another case; the prefix is kept as written (see _jansky_case).
_JY_WORDS = [
    (re.compile(r"(?i)\bmicro[-_ ]?jan?(?:sky)?s?\b|\bmicro[-_ ]?jy\b"), "uJy"),
    (re.compile(r"(?i)\bnano[-_ ]?jan?(?:sky)?s?\b|\bnano[-_ ]?jy\b"), "nJy"),
    (re.compile(r"(?i)\bmilli[-_ ]?jan?(?:sky)?s?\b|\bmilli[-_ ]?jy\b"), "mJy"),
    (re.compile(r"(?i)\bmega[-_ ]?jan?(?:sky)?s?\b|\bmega[-_ ]?jy\b"), "MJy"),
    (re.compile(r"\bmuJy\b"), "uJy"),
    (re.compile(r"(?i)\bjanskys?\b"), "Jy"),
    (re.compile(r"(?<=[Jj][Yy])s\b"), ""),
]  # "Jys"
_JY_CASE = re.compile(r"(?<![A-Za-z])([A-Za-zµμ]?)(jy|JY|jY)(?![A-Za-z])")


class UnitError(ValueError):
    """A unit string that is not a photometric unit gccat can convert exactly.

    The message says what is wrong; callers add the file and the column or header keyword.
    """


@dataclass(frozen=True)
class FluxUnit:
    """What a unit string means for photometry, parsed once by :func:`parse_flux_unit`.

    Attributes
    ----------
    text : str
        The unit as written.
    kind : str
        ``"flux"`` (a spectral flux density f_nu), ``"surface_brightness"`` (f_nu per solid
        angle), ``"per_pixel"`` (f_nu per pixel), ``"mag"`` (a magnitude), ``"count_rate"`` or
        ``"counts"`` (images only: converted with PHOTFNU or a zero point).
    to_njy : float
        nJy per unit (``flux``), nJy per steradian per unit (``surface_brightness``), nJy per
        pixel per unit (``per_pixel``); NaN otherwise. Decimal factors are exact (1e3 for uJy).
    mag_system : str or None
        For magnitudes: ``"AB"``, ``"Vega"``, ``"ST"``, ``"mag(<f_nu unit>)"`` (astropy's
        ``mag(Jy)``), or None for a plain ``mag`` that does not say its system.
    ab_offset : float or None
        For magnitudes, m_AB - m (mag): 0 for AB, derived for ``mag(<f_nu unit>)``, None where
        it depends on the band (Vega, ST) or on an undeclared system.
    """

    text: str
    kind: str
    to_njy: float = float("nan")
    mag_system: str | None = None
    ab_offset: float | None = None

    def same_as(self, other: FluxUnit) -> bool:
        """Whether two units say the same thing; a plain ``mag`` agrees with any magnitude
        system (it only does not say which).
        """
        if self.kind != other.kind:
            return False
        if self.kind == "mag":
            return None in (self.mag_system, other.mag_system) or (
                self.mag_system == other.mag_system and self.ab_offset == other.ab_offset
            )
        return self.kind in ("count_rate", "counts") or np.isclose(
            self.to_njy, other.to_njy, rtol=1e-12, atol=0
        )

    def njy_per_pixel(self, pixel_area_arcsec2: float) -> float:
        """nJy per pixel of one image unit; ``pixel_area_arcsec2`` is the pixel's solid angle.

        Raises
        ------
        UnitError
            For magnitudes and counts, which need a zero point or PHOTFNU instead.
        """
        if self.kind in ("flux", "per_pixel"):
            return self.to_njy
        if self.kind == "surface_brightness":
            return self.to_njy * pixel_area_arcsec2 / ARCSEC2_PER_SR
        raise UnitError(f"unit '{self.text}' is not a flux density per pixel or per solid angle")


#: Square arcseconds in one steradian, (180 / pi * 3600)**2.
ARCSEC2_PER_SR = ARCSEC_PER_RAD**2


def check_mag_system(value, option: str = "--mag-system") -> str | None:
    """The canonical name (``AB``, ``Vega``, ``ST``) of a magnitude system given by a user.

    Raises
    ------
    UnitError
        Naming ``option`` and the value, if it is not one of them.
    """
    if value is None:
        return None
    key = value.strip().lower().replace("mag", "") if isinstance(value, str) else None
    if key not in MAG_SYSTEMS:
        raise UnitError(f"{option} must be AB, Vega or ST, not {value!r}")
    return MAG_SYSTEMS[key]


def _exact(factor: float) -> float:
    """A conversion factor rounded to 15 significant digits: astropy gives 999.9999999999999
    nJy per uJy, and decimal unit factors are exact by definition.
    """
    return float(f"{factor:.15g}")


def _jansky_case(text: str) -> str:
    """``Jy`` spelt in another case (``JY``, ``ujy``, ``NJY/PIX``) in astropy's spelling, or a
    UnitError where the case was the only thing telling mega from milli (``MJY``, ``mjy``).
    """

    def fix(m: re.Match) -> str:
        prefix = m[1]
        if m[2] == "Jy" and prefix not in ("", "U", "N", "K", "G"):
            return m[0]
        if prefix in ("m", "M"):
            raise UnitError(
                f"unit '{text}' is ambiguous: only the case of its M tells mega- from "
                "milli-Jansky, and here Jy itself is in another case (write MJy for "
                "1e6 Jy or mJy for 1e-3 Jy)"
            )
        return {
            "": "",
            "u": "u",
            "U": "u",
            "µ": "u",
            "μ": "u",
            "n": "n",
            "N": "n",
            "k": "k",
            "K": "k",
            "G": "G",
        }.get(prefix, prefix) + "Jy"

    return _JY_CASE.sub(fix, text)


@functools.lru_cache(maxsize=512)
def parse_flux_unit(text: str) -> FluxUnit:
    """Parse a photometric unit with :mod:`astropy.units` (case-sensitive: MJy is not mJy).

    Parameters
    ----------
    text : str
        E.g. ``"nJy"``, ``"uJy"``, ``"µJy"``, ``"mJy"``, ``"MJy"``, ``"Jy"``, ``"10 nJy"``,
        ``"erg/(s cm2 Hz)"``, ``"1e-23 erg/s/cm2/Hz"``, ``"MJy/sr"``, ``"uJy/arcsec2"``,
        ``"nJy/pix"``, ``"mag(AB)"``, ``"ABmag"``, ``"AB"``, ``"Vegamag"``, ``"mag"``,
        ``"electrons/s"``. Spelt-out Janskys (``microJy``, ``microJansky``) are accepted.

    Returns
    -------
    FluxUnit

    Raises
    ------
    UnitError
        If astropy cannot read it, if it is ambiguous (``MJY``), or if it is not a flux
        density, surface brightness, flux per pixel, magnitude or count unit (``erg/s``, a
        flux per wavelength, ``dex``).
    """
    if not isinstance(text, str) or not text.strip():
        raise UnitError(f"no unit given ({text!r})")
    s = text.strip()
    word = re.sub(r"[\s_\-()\[\]]", "", s).lower()
    if word in _MAG_WORDS:
        system = _MAG_WORDS[word]
        return FluxUnit(text, "mag", mag_system=system, ab_offset=0.0 if system == "AB" else None)
    if _COUNT_RATE.match(s):
        return FluxUnit(text, "count_rate")
    if _COUNTS.match(s):
        return FluxUnit(text, "counts")
    return _classify(text, _astropy_unit(text, s))


def _astropy_unit(text: str, s: str):
    """``s`` (``text`` with Jansky spellings normalised) read by astropy, generic or CDS."""
    import warnings

    from astropy import units as u

    for pattern, repl in _JY_WORDS:
        s = pattern.sub(repl, s)
    s = _jansky_case(s)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "multiple slashes" style advice, not errors
        for fmt in ("generic", "cds"):
            try:
                return u.Unit(s, format=fmt, parse_strict="raise")
            except (ValueError, TypeError):
                continue
    raise UnitError(
        f"unit '{text}' is not a unit astropy can read (units are case-sensitive: "
        "e.g. nJy, uJy, mJy, MJy/sr, erg/(s cm2 Hz), ABmag)"
    )


def _magnitude(text: str, unit) -> FluxUnit:
    """A logarithmic astropy unit as a magnitude: AB, ST, mag(Jy)-like, or of no system."""
    from astropy import units as u

    phys = unit.physical_unit
    if unit.function_unit != u.mag:
        raise UnitError(f"unit '{text}' is a logarithmic unit but not a magnitude")
    if phys == u.dimensionless_unscaled:
        return FluxUnit(text, "mag")
    if phys == u.AB:
        return FluxUnit(text, "mag", mag_system="AB", ab_offset=0.0)
    if phys == u.ST:
        return FluxUnit(text, "mag", mag_system="ST")
    if phys.is_equivalent(u.nJy):  # mag(Jy): f = 10**(-0.4 m) Jy
        offset = _exact(AB_ZEROPOINT_NJY - 2.5 * np.log10(_exact(phys.to(u.nJy))))
        return FluxUnit(text, "mag", mag_system=f"mag({phys})", ab_offset=offset)
    raise UnitError(f"unit '{text}' is a magnitude of {phys}, not of a flux density per frequency")


def _classify(text: str, unit) -> FluxUnit:
    """What an astropy unit measures: flux density, surface brightness, per pixel, counts."""
    from astropy import units as u

    if isinstance(unit, u.FunctionUnitBase):
        return _magnitude(text, unit)
    if unit == u.AB:
        return FluxUnit(text, "mag", mag_system="AB", ab_offset=0.0)
    if unit.is_equivalent(u.nJy):
        return FluxUnit(text, "flux", _exact(unit.to(u.nJy)))
    if unit.is_equivalent(u.nJy / u.sr):
        return FluxUnit(text, "surface_brightness", _exact(unit.to(u.nJy / u.sr)))
    if unit.is_equivalent(u.nJy / u.pix):
        return FluxUnit(text, "per_pixel", _exact((unit * u.pix).to(u.nJy)))
    counts = (u.ct, u.electron, u.DN, u.adu, u.photon)
    if any(unit.is_equivalent(c / u.s) for c in counts):
        return FluxUnit(text, "count_rate")
    if any(unit.is_equivalent(c) for c in counts):
        return FluxUnit(text, "counts")
    if unit.is_equivalent(u.erg / u.s / u.cm**2 / u.AA):
        raise UnitError(
            f"unit '{text}' is a flux density per wavelength (f_lambda); gccat stores "
            "f_nu: give the values in Jy or erg/(s cm2 Hz)"
        )
    raise UnitError(
        f"unit '{text}' ({unit.physical_type}) is not a flux density, surface brightness or magnitude"
    )


def parse_unit(unit: str) -> tuple[str, float]:
    """Classify a unit as a flux density or an AB magnitude (see :func:`parse_flux_unit`).

    Returns
    -------
    kind, factor : tuple of (str, float)
        ``("flux", nJy per unit)`` or ``("mag", 1.0)`` for AB magnitudes.

    Raises
    ------
    UnitError
        (a ``ValueError``) for anything else, plain ``mag`` included: it does not say AB.
    """
    fu = parse_flux_unit(unit)
    if fu.kind == "flux":
        return "flux", fu.to_njy
    if fu.kind == "mag" and fu.mag_system == "AB":
        return "mag", 1.0
    if fu.kind == "mag":
        raise UnitError(f"unit '{unit}' does not say AB magnitudes (write ABmag or mag(AB))")
    raise UnitError(f"unit '{unit}' is not a flux density (nJy, uJy, mJy, Jy) or AB magnitude")


def magnitudes_to_flux(fu: FluxUnit, mag: npt.ArrayLike, mag_err: npt.ArrayLike | None = None):
    """Flux and flux error (nJy) of magnitudes in the unit ``fu`` whose AB offset is known.

    ``sigma_f = 0.4 ln10 f sigma_m``; a magnitude error is the same in every system.
    """
    if fu.kind != "mag" or fu.ab_offset is None:
        raise UnitError(f"unit '{fu.text}' is not a magnitude of known AB offset")
    m_ab = np.asarray(mag, dtype=float) + fu.ab_offset
    flux = abmag_to_flux(m_ab)
    return flux, (None if mag_err is None else mag_err_to_flux_err(m_ab, mag_err))


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
        err = np.where(
            ok,
            MAG_PER_DEX_E
            * np.hypot(np.asarray(flux1_err_njy, float) / f1, np.asarray(flux2_err_njy, float) / f2),
            np.nan,
        )
    return color, err
