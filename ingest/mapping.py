"""Which catalog column is what: inferred from common names, or given in a TOML file.

A mapping file looks like::

    [columns]
    id = "ID"
    ra = "RAJ2000"          # degrees, or sexagesimal strings
    dec = "DEJ2000"
    z = "zphot"             # optional

    [bands.F150W]
    flux = "f150"           # or: mag = "m150"
    error = "e150"          # 1-sigma, same unit as the value
    unit = "uJy"            # any astropy flux density (nJy, uJy, mJy, "10 nJy", erg/(s cm2 Hz))
                            # or magnitude unit (ABmag, mag(AB), Vegamag, mag); case-sensitive
    upper_limit = "lim150"  # optional boolean column

    [bands.F200W]
    mag = "m200"
    error = "e200"          # mag
    mag_system = "Vega"     # for a plain "mag" column: AB, Vega or ST
    ab_offset = 1.34        # m_AB - m of this band (mag), required for Vega and ST magnitudes

    [options]
    mw_corrected = true     # fluxes already corrected for Milky Way extinction
    method = "catalog"
    aperture_radius_arcsec = 0.15  # arcsec (the older aperture_arcsec = 0.3 is a diameter)
    flux_unit = "uJy"       # for flux columns that declare no unit (as --flux-unit)
    mag_system = "AB"       # for magnitude columns that do not say their system (as --mag-system)

Only these tables and keys are accepted, with these types (a misspelt key is an error, not
ignored), and a column may have one role only.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from catalog import bands as bandreg
from catalog.checks import check_number
from catalog.errors import GccatError
from catalog.units import FluxUnit, UnitError, check_mag_system, parse_flux_unit

RA_NAMES = [
    "ra",
    "ra_deg",
    "radeg",
    "raj2000",
    "ra_j2000",
    "ra_icrs",
    "alpha_j2000",
    "alpha",
    "ra_hms",
    "ra_sex",
    "rightascension",
    "x_world",
    "ra_2000",
]
DEC_NAMES = [
    "dec",
    "dec_deg",
    "decdeg",
    "dej2000",
    "decj2000",
    "dec_j2000",
    "de_icrs",
    "dec_icrs",
    "delta_j2000",
    "delta",
    "dec_dms",
    "dec_sex",
    "declination",
    "y_world",
    "dec_2000",
]
ID_NAMES = [
    "id",
    "source_id",
    "sourceid",
    "objid",
    "obj_id",
    "object_id",
    "objectid",
    "number",
    "name",
    "ident",
    "seqid",
    "id_cluster",
    "gc_id",
    "sc_id",
]
Z_NAMES = ["z", "redshift", "z_phot", "zphot", "photo_z", "z_spec", "zspec", "z_best", "zbest"]
CLASS_NAMES = ["class", "type", "classification", "obj_class"]
FLAG_NAMES = ["flags", "flag"]

_BAND = r"(?P<band>f\d{3,4}(?:w2|lp|w|m|n)(?:n|_uvis)?)"
_NAME_UNITS = "njy|ujy|mujy|microjy|nanojy|millijy|mjy|jy"
# A band column's name, lower-cased: [prefix_]BAND[[_]suffix][_unit], e.g. flux_F150W_uJy,
# e_F150W_mag, F150W_mag_err, F150Wmag (VizieR), e_F150Wmag, magerr_F150W, F150W.
_BAND_NAME = re.compile(
    rf"^(?:(?P<pre>[a-z_]*?)_)?{_BAND}(?:_?(?P<post>[a-z_]*?))??"
    rf"(?:_(?P<unit>{_NAME_UNITS}))?$"
)
_FLUX_WORDS = ("flux_aper", "flux_psf", "fluxaper", "fluxpsf", "flux", "fnu", "f")
#: magnitude words of column names and the system each says (None: not said)
_MAG_WORDS = {
    "abmag": "AB",
    "mag_ab": "AB",
    "magab": "AB",
    "ab_mag": "AB",
    "vegamag": "Vega",
    "mag_vega": "Vega",
    "stmag": "ST",
    "mag_st": "ST",
    "mag": None,
    "m": None,
}
# one side of the band: an error word before and/or after a flux or magnitude word
_SIDE = re.compile(
    rf"^(?:(?P<e1>error|err|e|sigma|unc|d)_?)?"
    rf"(?P<q>{'|'.join(_FLUX_WORDS + tuple(_MAG_WORDS))})?"
    r"(?:_?(?P<e2>error|err|e|sigma|unc))?$"
)
_UPLIM_PRE = {"uplim", "is_upper_limit", "ul", "lim", "upper_limit"}
_UPLIM_POST = {"uplim", "is_upper_limit", "ul", "upper_limit"}
_LOOKS_LIKE_BAND = re.compile(r"(?:^|_)(f\d{3,4}[a-z0-9_]*)", re.I)


def classify_band_column(name: str) -> tuple[str, str, str | None, str | None] | None:
    """The role a column's name gives it in a band, or None if it names no band role.

    Returns
    -------
    role, band_token, unit, mag_system : tuple or None
        ``role`` is ``flux``, ``error`` (of the flux, or of whatever the band's value is),
        ``mag``, ``magerr`` or ``upper_limit``; ``unit`` is a unit suffix as written (its case
        tells MJy from mJy); ``mag_system`` the system a magnitude name says (``abmag``).
    """
    low = name.lower()
    m = _BAND_NAME.match(low)
    if m is None:
        return None
    pre, post, band = m["pre"] or "", m["post"] or "", m["band"]
    unit = m["unit"]
    if unit and len(low) == len(name):  # the suffix as written: MJy is not mJy
        unit = name[m.start("unit") : m.end("unit")]
    if (pre in _UPLIM_PRE and not post) or (post in _UPLIM_POST and not pre):
        return None if unit else ("upper_limit", band, None, None)
    sides = [_SIDE.match(x) for x in (pre, post)]
    if None in sides or any(x["e1"] == "d" and not x["q"] for x in sides):
        return None
    words = [x["q"] for x in sides if x["q"]]
    if len(words) > 1:
        return None
    is_error = any(x["e1"] or x["e2"] for x in sides)
    word = words[0] if words else None
    if word in _MAG_WORDS:
        if unit:
            return None
        return ("magerr" if is_error else "mag"), band, None, _MAG_WORDS[word]
    return ("error" if is_error else "flux"), band, unit, None


@dataclass
class BandColumns:
    """The columns of one band: a flux or a magnitude, its error, an upper-limit flag.

    A flux is ``value x factor_to_njy`` nJy; a magnitude is converted as the AB magnitude
    ``value + ab_offset`` (``ab_offset`` = m_AB - m: 0 for AB, the band's zero point for Vega).
    """

    band: str
    value: str
    kind: str = "flux"  # flux | mag
    factor_to_njy: float = 1.0
    unit: str = "nJy"
    error: str | None = None
    upper_limit: str | None = None
    mag_system: str | None = None
    ab_offset: float | None = None


@dataclass
class ColumnMapping:
    """Which column of a catalog holds each quantity, and each band's columns and unit."""

    ra: str
    dec: str
    id: str | None = None
    z: str | None = None
    class_: str | None = None
    flags: str | None = None
    bands: dict[str, BandColumns] = field(default_factory=dict)
    mw_corrected: bool = False
    method: str = "catalog"
    aperture_radius_arcsec: float | None = None

    def used_columns(self) -> set[str]:
        """Every column the mapping reads (the rest go to ``detections.extra``)."""
        cols = {self.ra, self.dec, self.id, self.z, self.class_, self.flags}
        for b in self.bands.values():
            cols |= {b.value, b.error, b.upper_limit}
        return {c for c in cols if c}

    def as_dict(self) -> dict:
        """The mapping as plain data (recorded with the ingest)."""
        return asdict(self)


#: Column names that are read as text from a CSV: ids keep leading zeros and all their digits,
#: 64-bit flags all their bits, and sexagesimal coordinates such as 07:23:20 are not times.
TEXT_NAMES = RA_NAMES + DEC_NAMES + ID_NAMES + FLAG_NAMES


def _find(path, names: list[str], candidates: list[str], role: str) -> str | None:
    """The column named like the first candidate present (case-insensitive); two columns
    that differ only in case (``RA`` and ``ra``) are ambiguous and refused.
    """
    for c in candidates:
        hits = [n for n in names if n.lower() == c]
        if len(hits) > 1:
            raise GccatError(
                f"columns {' and '.join(repr(h) for h in hits)} both look like the "
                f"{role} column; name one in a --mapping file",
                file=path,
                column=hits[1],
            )
        if hits:
            return hits[0]
    return None


def check_flux_unit(unit, option: str = "--flux-unit", file=None) -> str:
    """``unit`` if astropy reads it as a flux density (nJy, uJy, mJy, Jy, ``10 nJy``,
    ``erg/(s cm2 Hz)``): the unit of flux columns that declare none.
    """
    reason = ""
    try:
        ok = isinstance(unit, str) and parse_flux_unit(unit).kind == "flux"
    except UnitError as exc:
        ok, reason = False, f": {exc}"
    if not ok:
        raise GccatError(
            f"{option} must be a flux density unit (e.g. nJy, uJy, mJy, Jy, 10 nJy, "
            f"erg/(s cm2 Hz)), not {unit!r}{reason}",
            file=file,
        )
    return unit


def check_mag_option(value, option: str = "--mag-system", file=None) -> str | None:
    """``--mag-system`` (or a mapping's ``mag_system``) as AB, Vega or ST; None if not given."""
    try:
        return check_mag_system(value, option)
    except UnitError as exc:
        raise GccatError(str(exc), file=file) from None


def _parse_unit(path, column: str | None, text: str) -> FluxUnit:
    try:
        return parse_flux_unit(text)
    except UnitError as exc:
        raise GccatError(str(exc), file=path, column=column) from None


def _unit_of(
    path,
    column: str,
    given: str | None,
    declared: dict[str, str],
    default: str,
    *,
    given_by: str = "the name",
) -> FluxUnit:
    """The unit of a column: given (by its name's suffix or the mapping), else declared by the
    file, else ``default``. A given unit that contradicts the file's is an error; a file unit
    astropy cannot read yields to a given one (the name says what it is).
    """
    file_unit = declared.get(column)
    fu = _parse_unit(path, column, given or file_unit or default)
    if given and file_unit:
        try:
            other = parse_flux_unit(file_unit)
        except UnitError:
            other = None
        if other is not None and not fu.same_as(other):
            raise GccatError(
                f"{given_by} says {given} but the file declares the unit '{file_unit}'",
                file=path,
                column=column,
            )
        if other is not None and fu.kind == "mag" and fu.mag_system is None:
            fu = other  # a plain "mag" given, the file says which system
    return fu


_KIND_WORDS = {
    "surface_brightness": "a surface brightness (per solid angle)",
    "per_pixel": "a flux per pixel",
    "count_rate": "a count rate",
    "counts": "counts",
}


def _magnitude_system(
    path,
    band: str,
    column: str,
    fu: FluxUnit,
    name_system: str | None,
    band_system: str | None,
    band_offset: float | None,
    mag_system: str | None,
    mag_option: str,
) -> tuple[str, float]:
    """(system, m_AB - m) of a magnitude column, from every place that may say it.

    The column's own declarations, its unit (``mag(AB)``), its name (``abmag_F150W``) and the
    mapping's band key, must agree where they speak; ``--mag-system`` (or ``[options]
    mag_system``) is for the columns that say nothing. If nothing says it, the column is
    refused: a plain ``mag`` may be AB or Vega, which differ by up to 3.6 mag in NIRCam bands.
    """
    claims = [
        (s, by)
        for s, by in (
            (fu.mag_system, f"its unit '{fu.text}'"),
            (name_system, "its name"),
            (band_system, f"[bands.{band}] mag_system"),
        )
        if s
    ]
    if not claims and mag_system:
        claims = [(mag_system, mag_option)]
    systems = sorted({s for s, _ in claims})
    if len(systems) > 1:
        said = ", ".join(f"{s} by {by}" for s, by in claims)
        raise GccatError(f"the magnitude system is said differently ({said})", file=path, column=column)
    if not systems:
        raise GccatError(
            f"magnitudes whose system is not declared (unit '{fu.text}'): AB or Vega? "
            'If they are AB magnitudes, pass --mag-system AB (or give unit = "ABmag" '
            "for the band in a --mapping); Vega or ST magnitudes need a --mapping with "
            "mag_system and ab_offset (m_AB - m) for the band",
            file=path,
            column=column,
        )
    system = systems[0]
    if fu.ab_offset is not None or system == "AB":
        if band_offset is not None:
            raise GccatError(
                f"[bands.{band}] ab_offset is for Vega and ST magnitudes; these are {system}",
                file=path,
                column=column,
            )
        return system, 0.0 if system == "AB" else fu.ab_offset
    if band_offset is None:
        raise GccatError(
            f"{system} magnitudes need the band's zero point: give ab_offset = m_AB - "
            f"m_{system} (mag) in [bands.{band}] of a --mapping",
            file=path,
            column=column,
        )
    return system, float(band_offset)


def _band_columns(
    path,
    band: str,
    col: str,
    fu: FluxUnit,
    err: str | None,
    err_given: str | None,
    uplim: str | None,
    units: dict[str, str],
    *,
    name_system: str | None = None,
    band_system: str | None = None,
    band_offset: float | None = None,
    mag_system: str | None = None,
    mag_option: str = "--mag-system",
    unit_path=None,
) -> BandColumns:
    """The checked columns of one band: a flux (its error in the same unit) or a magnitude of
    a known system (its error in mag).
    """
    if fu.kind not in ("flux", "mag"):
        raise GccatError(
            f"unit '{fu.text}' is {_KIND_WORDS[fu.kind]}, not a source's flux density or magnitude",
            file=unit_path or path,
            column=col,
        )
    if fu.kind == "flux":
        if band_system or band_offset is not None:
            raise GccatError(
                f"[bands.{band}] mag_system and ab_offset are for magnitude columns; "
                f"'{col}' is a flux in {fu.text}",
                file=unit_path or path,
                column=col,
            )
        if err and (err_given or units.get(err)):  # the error is scaled by the flux's factor
            efu = _unit_of(path, err, err_given, units, fu.text)
            if not efu.same_as(fu):
                raise GccatError(
                    f"the error is in {efu.text} but its flux column '{col}' in "
                    f"{fu.text}; give both in one unit",
                    file=path,
                    column=err,
                )
        return BandColumns(band, col, "flux", fu.to_njy, fu.text, err, uplim)
    system, offset = _magnitude_system(
        unit_path or path, band, col, fu, name_system, band_system, band_offset, mag_system, mag_option
    )
    if err and units.get(err):
        efu = _unit_of(path, err, None, units, "mag")
        if efu.kind != "mag":
            raise GccatError(
                f"the error of the magnitudes in '{col}' is in {efu.text}; give it in mag",
                file=path,
                column=err,
            )
    return BandColumns(band, col, "mag", 1.0, fu.text, err, uplim, system, offset)


def _known_band(path, column: str, token: str) -> str:
    band = bandreg.lookup(token)
    if band is None:
        close = difflib.get_close_matches(token.upper(), list(bandreg.known_bands()), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise GccatError(
            f"unknown band '{token}'{hint}; gccat knows the astro-sedpy JWST and "
            "HST filters (NIRISS bands end in N, e.g. F150WN)",
            file=path,
            column=column,
        )
    return band.band


def infer_mapping(
    path,
    names: list[str],
    units: dict[str, str],
    *,
    flux_unit: str = "nJy",
    mag_system: str | None = None,
    mag_option: str = "--mag-system",
    mw_corrected: bool = False,
    ra: str | None = None,
    dec: str | None = None,
    infer_bands: bool = True,
) -> ColumnMapping:
    """Infer the column mapping of a catalog from its column names and declared units.

    Parameters
    ----------
    path : path
        The file (for error messages).
    names : list of str
        Column names.
    units : dict
        Units declared by the file (FITS TUNIT, ECSV/VOTable units, Parquet metadata).
    flux_unit : str
        Unit assumed for flux columns that declare none (default nJy).
    mag_system : str, optional
        System (``AB``, ``Vega``, ``ST``) of magnitude columns that do not say theirs; without
        it such columns are refused (``mag`` may be AB or Vega).
    mag_option : str
        How the user gave ``mag_system`` (for messages).
    mw_corrected : bool
        Whether the fluxes are already corrected for Milky Way extinction.
    ra, dec : str, optional
        Coordinate columns, when known (from a mapping file).
    infer_bands : bool
        Find flux/magnitude columns by name (off when a mapping file lists the bands).
    """
    ra = ra or _find(path, names, RA_NAMES, "RA")
    dec = dec or _find(path, names, DEC_NAMES, "Dec")
    for role, found, cands in (("ra", ra, RA_NAMES), ("dec", dec, DEC_NAMES)):
        if found is None:
            close = difflib.get_close_matches(role, [n.lower() for n in names], n=1, cutoff=0.5)
            hint = f"; is '{close[0]}' a misspelling? " if close else "; "
            raise GccatError(
                f"no {role.upper()} coordinate column (looked for "
                f"{', '.join(cands[:6])}, ...){hint}name it in a --mapping file",
                file=path,
                column=role,
            )
    if ra == dec:
        raise GccatError("the same column is named for RA and Dec", file=path, column=ra)
    mapping = ColumnMapping(
        ra=ra,
        dec=dec,
        id=_find(path, names, ID_NAMES, "id"),
        z=_find(path, names, Z_NAMES, "redshift"),
        class_=_find(path, names, CLASS_NAMES, "class"),
        flags=_find(path, names, FLAG_NAMES, "flags"),
        mw_corrected=mw_corrected,
    )
    taken = {ra, dec, mapping.id, mapping.z, mapping.class_, mapping.flags}
    roles = _band_roles(path, [n for n in names if n not in taken]) if infer_bands else {}
    for band, r in roles.items():
        mapping.bands[band] = _inferred_band(path, band, r, units, flux_unit, mag_system, mag_option)
    return mapping


def _band_roles(path, names: list[str]) -> dict[str, dict[str, tuple[str, str | None, str | None]]]:
    """Band columns by band and role (flux, mag, error, magerr, upper_limit), from their names:
    ``{band: {role: (column, unit from the name, magnitude system from the name)}}``.
    """
    roles: dict[str, dict[str, tuple[str, str | None, str | None]]] = {}
    for name in names:
        hit = classify_band_column(name)
        if hit is not None:
            role, token, unit, system = hit
            band = _known_band(path, name, token)
            have = roles.setdefault(band, {})
            if role in have:
                raise GccatError(
                    f"columns '{have[role][0]}' and '{name}' both look like the "
                    f"{band} {role} column; name one in a --mapping file",
                    file=path,
                    column=name,
                )
            have[role] = (name, unit, system)
            continue
        low = name.lower()
        lb = _LOOKS_LIKE_BAND.search(low)
        if lb and re.search(r"flux|mag|err|^f\d", low) and bandreg.lookup(lb[1]) is None:
            _known_band(path, name, lb[1].split("_")[0])
    return roles


def _inferred_band(
    path, band: str, r: dict, units: dict, flux_unit: str, mag_system: str | None, mag_option: str
):
    """The columns and unit of one band found by name (see :func:`_band_roles`)."""
    none = (None, None, None)
    uplim = r.get("upper_limit", none)[0]
    name_system = None
    if "flux" in r:
        col, suffix, _ = r["flux"]
        fu = _unit_of(path, col, suffix, units, flux_unit)
        err, err_suffix, _ = r.get("error", none)
        if fu.kind == "mag":  # a band-named column the file declares in magnitudes
            err = err or r.get("magerr", none)[0]
    elif "mag" in r:
        col, _, name_system = r["mag"]
        fu = _unit_of(path, col, None, units, "mag")
        err, err_suffix = r.get("magerr", r.get("error", none))[0], None
    else:
        col = next(iter(r.values()))[0]
        raise GccatError(
            f"band {band} has an error or limit column but no flux or magnitude column", file=path, column=col
        )
    return _band_columns(
        path,
        band,
        col,
        fu,
        err,
        err_suffix,
        uplim,
        units,
        name_system=name_system,
        mag_system=mag_system,
        mag_option=mag_option,
    )


_COLUMN_ROLES = ("id", "ra", "dec", "z", "class", "flags")
_BAND_KEYS = ("flux", "mag", "error", "unit", "upper_limit", "mag_system", "ab_offset")
_OPTION_KEYS = (
    "mw_corrected",
    "method",
    "aperture_radius_arcsec",
    "aperture_arcsec",
    "flux_unit",
    "mag_system",
)
#: m_AB - m a mapping may give: Vega-AB offsets of the JWST and HST bands are within -0.5 to
#: 3.7 mag, ST-AB within about +-5; beyond 10 mag it is a typo, not a zero point.
AB_OFFSET_RANGE = (-10.0, 10.0)


def _unknown_keys(mapping_file, where: str, table: dict, allowed) -> None:
    extra = [k for k in table if k not in allowed]
    if extra:
        close = difflib.get_close_matches(extra[0], list(allowed), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise GccatError(
            f"{where}: unknown key '{extra[0]}'{hint}; expected one of {', '.join(allowed)}",
            file=mapping_file,
        )


def _column_name(mapping_file, where: str, value) -> str:
    if not isinstance(value, str) or not value or any(ord(c) < 32 for c in value):
        raise GccatError(f"{where} must be a column name in quotes, not {value!r}", file=mapping_file)
    return value


def _read_toml(mapping_file: Path) -> dict:
    """The mapping file's TOML tables; one-line errors for unreadable, non-UTF-8 or bad TOML."""
    try:
        data = mapping_file.read_bytes()
    except OSError as exc:
        raise GccatError(f"cannot read the mapping: {exc.strerror or exc}", file=mapping_file) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise GccatError(
            f"the mapping is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line})", file=mapping_file
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise GccatError(f"cannot read the mapping: {exc}", file=mapping_file) from None


def _number_option(mapping_file: Path, where: str, v, what: str, **bounds) -> None:
    """A TOML number within ``bounds`` (those of :func:`catalog.checks.check_number`)."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise GccatError(f"{where} must be a number ({what}), not {v!r}", file=mapping_file)
    try:
        check_number(v, where, **bounds)
    except GccatError as exc:
        raise GccatError(exc.message, file=mapping_file) from None


def _band_value(mapping_file: Path, where: str, key: str, v):
    """One key of a ``[bands.X]`` table, checked; returns the value to keep."""
    if key == "unit":
        if not isinstance(v, str):
            raise GccatError(f"{where} unit must be a unit name in quotes, not {v!r}", file=mapping_file)
        kind = _parse_unit(mapping_file, None, v).kind
        if kind not in ("flux", "mag"):
            raise GccatError(
                f"{where} unit '{v}' is {_KIND_WORDS[kind]}, not a source's flux density or magnitude",
                file=mapping_file,
            )
        return v
    if key == "mag_system":
        return check_mag_option(v, f"{where} mag_system", file=mapping_file)
    if key == "ab_offset":
        _number_option(
            mapping_file,
            f"{where} ab_offset",
            v,
            "m_AB - m, mag",
            lo=AB_OFFSET_RANGE[0],
            hi=AB_OFFSET_RANGE[1],
        )
        return v
    return _column_name(mapping_file, f"{where} {key}", v)


def _band_table(mapping_file: Path, where: str, b) -> dict:
    """A ``[bands.X]`` table checked: its keys, exactly one of flux or mag, and their values."""
    _unknown_keys(mapping_file, where, b, _BAND_KEYS)
    if ("flux" in b) == ("mag" in b):
        raise GccatError(f"{where} needs exactly one of 'flux' or 'mag'", file=mapping_file)
    checked = {key: _band_value(mapping_file, where, key, v) for key, v in b.items()}
    if "flux" in b and ("mag_system" in b or "ab_offset" in b):
        raise GccatError(
            f"{where}: mag_system and ab_offset are for a magnitude column (mag = ...), not a flux",
            file=mapping_file,
        )
    return checked


def _options_table(mapping_file: Path, opts: dict) -> dict:
    """The ``[options]`` table checked; ``mag_system`` normalised to its canonical name."""
    _unknown_keys(mapping_file, "[options]", opts, _OPTION_KEYS)
    if "mw_corrected" in opts and not isinstance(opts["mw_corrected"], bool):
        raise GccatError(
            f"[options] mw_corrected must be true or false, not {opts['mw_corrected']!r}", file=mapping_file
        )
    if "method" in opts:
        v = opts["method"]
        if not isinstance(v, str) or not v.strip() or len(v) > 100 or any(ord(c) < 32 for c in v):
            raise GccatError(f"[options] method must be a short name in quotes, not {v!r}", file=mapping_file)
    for key in ("aperture_radius_arcsec", "aperture_arcsec"):
        if key in opts:
            _number_option(mapping_file, f"[options] {key}", opts[key], "arcsec", lo=0, lo_open=True)
    if "flux_unit" in opts:
        check_flux_unit(opts["flux_unit"], "[options] flux_unit", file=mapping_file)
    if "mag_system" in opts:
        opts = {
            **opts,
            "mag_system": check_mag_option(opts["mag_system"], "[options] mag_system", file=mapping_file),
        }
    return opts


def parse_mapping_file(mapping_file) -> dict:
    """Read and check a TOML mapping file: the tables, keys and value types it may hold.

    Returns
    -------
    dict
        ``{"columns": {role: column}, "bands": {band: {key: value}}, "options": {...}}``,
        with band tokens resolved to gccat band names.

    Raises
    ------
    GccatError
        One line naming the mapping file and the key, for unreadable or non-UTF-8 files, TOML
        syntax errors, unknown tables or keys, and values of the wrong type.
    """
    mapping_file = Path(mapping_file)
    spec = _read_toml(mapping_file)
    _unknown_keys(mapping_file, "the mapping", spec, ("columns", "bands", "options"))
    for key in spec:
        if not isinstance(spec[key], dict):
            raise GccatError(f"'{key}' must be a table ([{key}]), not {spec[key]!r}", file=mapping_file)
    cols, bands, opts = spec.get("columns", {}), spec.get("bands", {}), spec.get("options", {})
    _unknown_keys(mapping_file, "[columns]", cols, _COLUMN_ROLES)
    cols = {role: _column_name(mapping_file, f"[columns] {role}", v) for role, v in cols.items()}
    out_bands: dict[str, dict] = {}
    for token, b in bands.items():
        where = f"[bands.{token}]"
        if not isinstance(b, dict):
            raise GccatError(f"{where} must be a table of columns, not {b!r}", file=mapping_file)
        band = _known_band(mapping_file, token, token)
        if band in out_bands:
            raise GccatError(f"{where}: band {band} is given twice", file=mapping_file)
        out_bands[band] = _band_table(mapping_file, where, b)
    return {"columns": cols, "bands": out_bands, "options": _options_table(mapping_file, opts)}


def load_mapping(
    path,
    mapping_file,
    names: list[str],
    units: dict[str, str],
    *,
    flux_unit: str = "nJy",
    mag_system: str | None = None,
    mw_corrected: bool = False,
    spec: dict | None = None,
) -> ColumnMapping:
    """Read a TOML mapping file; what it does not name is inferred as without one.

    ``spec`` is the file as returned by :func:`parse_mapping_file`, when already read.
    ``mag_system`` is ``--mag-system``; a mapping's ``[options] mag_system`` must agree with it.
    """
    mapping_file = Path(mapping_file)
    spec = spec if spec is not None else parse_mapping_file(mapping_file)
    cols, opts, band_spec = spec["columns"], spec["options"], spec["bands"]
    present = set(names)
    for role, col in cols.items():
        if col not in present:
            raise GccatError(
                f"mapping names column '{col}' for {role}, which the file lacks", file=path, column=col
            )
    flux_unit = opts.get("flux_unit", flux_unit)
    mag_option = "--mag-system"
    if "mag_system" in opts:
        if mag_system is not None and mag_system != opts["mag_system"]:
            raise GccatError(
                f'--mag-system {mag_system} contradicts [options] mag_system = "{opts["mag_system"]}"',
                file=mapping_file,
            )
        mag_system, mag_option = opts["mag_system"], "[options] mag_system"
    m = infer_mapping(
        path,
        names,
        units,
        flux_unit=flux_unit,
        mag_system=mag_system,
        mag_option=mag_option,
        mw_corrected=opts.get("mw_corrected", mw_corrected),
        ra=cols.get("ra"),
        dec=cols.get("dec"),
        infer_bands=not band_spec,
    )
    for role in ("id", "z", "flags"):
        if role in cols:
            setattr(m, role, cols[role])
    if "class" in cols:
        m.class_ = cols["class"]
    for band, b in band_spec.items():
        m.bands[band] = _mapped_band(
            path, mapping_file, band, b, present, units, flux_unit, mag_system, mag_option
        )
    m.method = opts.get("method", m.method)
    if (radius := _aperture_radius(mapping_file, opts)) is not None:
        m.aperture_radius_arcsec = radius
    _check_distinct(path, m)
    return m


def _mapped_band(
    path,
    mapping_file: Path,
    band: str,
    b: dict,
    present: set,
    units: dict,
    flux_unit: str,
    mag_system: str | None,
    mag_option: str,
):
    """The columns of one ``[bands.X]`` table, checked against the file's columns and units."""
    value = b.get("flux") or b.get("mag")
    if value not in present:
        raise GccatError(
            f"band {band}: {'flux' if 'flux' in b else 'mag'} column '{value}' not in the file",
            file=path,
            column=value,
        )
    for key in ("error", "upper_limit"):
        if b.get(key) and b[key] not in present:
            raise GccatError(
                f"band {band}: {key} column '{b[key]}' not in the file", file=path, column=b[key]
            )
    default = "mag" if "mag" in b else flux_unit
    fu = _unit_of(mapping_file, value, b.get("unit"), units, default, given_by="the mapping")
    if ("mag" in b) != (fu.kind == "mag") and fu.kind in ("flux", "mag"):
        said = "mag" if "mag" in b else "flux"
        raise GccatError(
            f"[bands.{band}] names '{value}' as {said} but its unit '{fu.text}' is "
            f"{'a magnitude' if fu.kind == 'mag' else 'a flux density'}",
            file=mapping_file,
            column=value,
        )
    return _band_columns(
        path,
        band,
        value,
        fu,
        b.get("error"),
        None,
        b.get("upper_limit"),
        units,
        band_system=b.get("mag_system"),
        band_offset=b.get("ab_offset"),
        mag_system=mag_system,
        mag_option=mag_option,
        unit_path=mapping_file,
    )


def _aperture_radius(mapping_file: Path, opts: dict) -> float | None:
    """The aperture radius an ``[options]`` table gives, arcsec (``aperture_arcsec`` is the older
    spelling, a diameter), or None.
    """
    if "aperture_arcsec" in opts and "aperture_radius_arcsec" in opts:
        raise GccatError(
            "[options] gives both aperture_radius_arcsec and the older aperture_arcsec "
            "(a diameter); keep aperture_radius_arcsec",
            file=mapping_file,
        )
    if "aperture_arcsec" in opts:
        return check_number(opts["aperture_arcsec"], "[options] aperture_arcsec", lo=0, lo_open=True) / 2
    if "aperture_radius_arcsec" in opts:
        return check_number(
            opts["aperture_radius_arcsec"], "[options] aperture_radius_arcsec", lo=0, lo_open=True
        )
    return None


def _check_distinct(path, m: ColumnMapping) -> None:
    """One column, one role: a column mapped twice (RA and a flux) is a mistake in the mapping."""
    roles = [("ra", m.ra), ("dec", m.dec), ("id", m.id), ("z", m.z), ("class", m.class_), ("flags", m.flags)]
    for b in m.bands.values():
        roles += [
            (f"{b.band} {b.kind}", b.value),
            (f"{b.band} error", b.error),
            (f"{b.band} upper limit", b.upper_limit),
        ]
    seen: dict[str, str] = {}
    for role, col in roles:
        if col is None:
            continue
        if col in seen:
            raise GccatError(f"the column is mapped both as {seen[col]} and as {role}", file=path, column=col)
        seen[col] = role
