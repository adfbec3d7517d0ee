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
    unit = "uJy"            # nJy, uJy, mJy, Jy or ABmag
    upper_limit = "lim150"  # optional boolean column

    [options]
    mw_corrected = true     # fluxes already corrected for Milky Way extinction
    method = "catalog"
    aperture_radius_arcsec = 0.15  # arcsec (the older aperture_arcsec = 0.3 is a diameter)
    flux_unit = "uJy"       # for flux columns that declare no unit (as --flux-unit)

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
from catalog.photometry import parse_unit

RA_NAMES = ["ra", "ra_deg", "radeg", "raj2000", "ra_j2000", "ra_icrs", "alpha_j2000", "alpha",
            "ra_hms", "ra_sex", "rightascension", "x_world", "ra_2000"]
DEC_NAMES = ["dec", "dec_deg", "decdeg", "dej2000", "decj2000", "dec_j2000", "de_icrs",
             "dec_icrs", "delta_j2000", "delta", "dec_dms", "dec_sex", "declination", "y_world",
             "dec_2000"]
ID_NAMES = ["id", "source_id", "sourceid", "objid", "obj_id", "object_id", "objectid", "number",
            "name", "ident", "seqid", "id_cluster", "gc_id", "sc_id"]
Z_NAMES = ["z", "redshift", "z_phot", "zphot", "photo_z", "z_spec", "zspec", "z_best", "zbest"]
CLASS_NAMES = ["class", "type", "classification", "obj_class"]
FLAG_NAMES = ["flags", "flag"]

_BAND = r"(?P<band>f\d{3,4}(?:w2|lp|w|m|n)(?:n|_uvis)?)"
_UNIT = r"(?:_(?P<unit>njy|ujy|mujy|microjy|mjy|jy))?"
_PATTERNS: list[tuple[str, re.Pattern]] = [
    ("flux", re.compile(rf"^(?:flux|f|fnu|flux_aper|flux_psf)_{_BAND}{_UNIT}$")),
    ("flux", re.compile(rf"^{_BAND}_(?:flux|fnu){_UNIT}$")),
    ("error", re.compile(
        rf"^(?:fluxerr|flux_err|ferr|e_flux|eflux|err_flux|dflux|flux_error|fluxerror|e|err|"
        rf"e_f|df|unc|sigma)_{_BAND}{_UNIT}$")),
    ("error", re.compile(rf"^{_BAND}_(?:err|error|fluxerr|flux_err|e|unc|sigma){_UNIT}$")),
    ("mag", re.compile(rf"^(?:mag|m|abmag|mag_ab)_{_BAND}$")),
    ("mag", re.compile(rf"^{_BAND}_(?:mag|abmag|mag_ab)$")),
    ("magerr", re.compile(
        rf"^(?:magerr|mag_err|e_mag|emag|dmag|err_mag|magerror|mag_error)_{_BAND}$")),
    ("magerr", re.compile(rf"^{_BAND}_(?:magerr|mag_err|emag|mag_error)$")),
    ("upper_limit", re.compile(rf"^(?:uplim|is_upper_limit|ul|lim|upper_limit)_{_BAND}$")),
    ("upper_limit", re.compile(rf"^{_BAND}_(?:uplim|is_upper_limit|ul|upper_limit)$")),
    ("flux", re.compile(rf"^{_BAND}{_UNIT}$")),
]
_LOOKS_LIKE_BAND = re.compile(r"(?:^|_)(f\d{3,4}[a-z0-9_]*)", re.I)


@dataclass
class BandColumns:
    """The columns of one band: a flux or AB magnitude, its error, an upper-limit flag."""

    band: str
    value: str
    kind: str = "flux"  # flux | mag
    factor_to_njy: float = 1.0
    unit: str = "nJy"
    error: str | None = None
    upper_limit: str | None = None


@dataclass
class ColumnMapping:
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
        cols = {self.ra, self.dec, self.id, self.z, self.class_, self.flags}
        for b in self.bands.values():
            cols |= {b.value, b.error, b.upper_limit}
        return {c for c in cols if c}

    def as_dict(self) -> dict:
        return asdict(self)


#: Column names that are read as text from a CSV: ids keep leading zeros and all their digits,
#: 64-bit flags all their bits, and sexagesimal coordinates such as 07:23:20 are not times.
TEXT_NAMES = RA_NAMES + DEC_NAMES + ID_NAMES + FLAG_NAMES


def _find(path, names: list[str], candidates: list[str], role: str) -> str | None:
    """The column named like the first candidate present (case-insensitive); two columns
    that differ only in case (``RA`` and ``ra``) are ambiguous and refused."""
    for c in candidates:
        hits = [n for n in names if n.lower() == c]
        if len(hits) > 1:
            raise GccatError(f"columns {' and '.join(repr(h) for h in hits)} both look like the "
                             f"{role} column; name one in a --mapping file", file=path,
                             column=hits[1])
        if hits:
            return hits[0]
    return None


def check_flux_unit(unit, option: str = "--flux-unit", file=None) -> str:
    """``unit`` if it names a flux density gccat converts exactly (nJy, uJy, mJy, Jy)."""
    ok = isinstance(unit, str)
    if ok:
        try:
            ok = parse_unit(unit)[0] == "flux"
        except ValueError:
            ok = False
    if not ok:
        raise GccatError(f"{option} must be a flux density unit (nJy, uJy, mJy or Jy), not "
                         f"{unit!r}", file=file)
    return unit


def _unit_of(path, column: str, suffix: str | None, declared: dict[str, str], default: str):
    """(kind, factor, unit) from a name suffix, the file's declared unit, or the default."""
    unit = suffix or declared.get(column) or default
    try:
        kind, factor = parse_unit(unit)
    except ValueError as exc:
        raise GccatError(str(exc), file=path, column=column) from None
    if suffix and declared.get(column):
        try:
            other = parse_unit(declared[column])
        except ValueError:
            other = None  # an unparsable declared unit: the name says what it is
        if other is not None and other != (kind, factor):
            raise GccatError(f"the name says {suffix} but the file declares the unit "
                             f"'{declared[column]}'", file=path, column=column)
    return kind, factor, unit


def _known_band(path, column: str, token: str) -> str:
    band = bandreg.lookup(token)
    if band is None:
        close = difflib.get_close_matches(token.upper(), list(bandreg.known_bands()), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise GccatError(f"unknown band '{token}'{hint}; gccat knows the astro-sedpy JWST and "
                         "HST filters (NIRISS bands end in N, e.g. F150WN)", file=path,
                         column=column)
    return band.band


def infer_mapping(path, names: list[str], units: dict[str, str], *, flux_unit: str = "nJy",
                  mw_corrected: bool = False, ra: str | None = None, dec: str | None = None,
                  infer_bands: bool = True) -> ColumnMapping:
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
            raise GccatError(f"no {role.upper()} coordinate column (looked for "
                             f"{', '.join(cands[:6])}, ...){hint}name it in a --mapping file",
                             file=path, column=role)
    if ra == dec:
        raise GccatError("the same column is named for RA and Dec", file=path, column=ra)
    mapping = ColumnMapping(ra=ra, dec=dec, id=_find(path, names, ID_NAMES, "id"),
                            z=_find(path, names, Z_NAMES, "redshift"),
                            class_=_find(path, names, CLASS_NAMES, "class"),
                            flags=_find(path, names, FLAG_NAMES, "flags"),
                            mw_corrected=mw_corrected)
    roles: dict[str, dict[str, tuple[str, str | None]]] = {}
    taken = {ra, dec, mapping.id, mapping.z, mapping.class_, mapping.flags}
    for name in names if infer_bands else []:
        if name in taken:
            continue
        low = name.lower()
        for role, pat in _PATTERNS:
            m = pat.match(low)
            if m:
                band = _known_band(path, name, m["band"])
                have = roles.setdefault(band, {})
                if role in have:
                    raise GccatError(f"columns '{have[role][0]}' and '{name}' both look like the "
                                     f"{band} {role} column; name one in a --mapping file",
                                     file=path, column=name)
                have[role] = (name, m.groupdict().get("unit"))
                break
        else:
            lb = _LOOKS_LIKE_BAND.search(low)
            if lb and re.search(r"flux|mag|err|^f\d", low) and bandreg.lookup(lb[1]) is None:
                _known_band(path, name, lb[1].split("_")[0])
    for band, r in roles.items():
        if "flux" in r:
            col, suffix = r["flux"]
            kind, factor, unit = _unit_of(path, col, suffix, units, flux_unit)
            err, err_suffix = r.get("error", (None, None))
            if err and (err_suffix or units.get(err)):  # the error is scaled by the flux's factor
                ekind, efactor, eunit = _unit_of(path, err, err_suffix, units, unit)
                if (ekind, efactor) != (kind, factor):
                    raise GccatError(f"the error is in {eunit} but its flux column '{col}' in "
                                     f"{unit}; give both in one unit", file=path, column=err)
        elif "mag" in r:
            col = r["mag"][0]
            kind, factor, unit = _unit_of(path, col, None, units, "ABmag")
            err = r.get("magerr", r.get("error", (None, None)))[0]
        else:
            col = next(iter(r.values()))[0]
            raise GccatError(f"band {band} has an error or limit column but no flux or "
                             "magnitude column", file=path, column=col)
        mapping.bands[band] = BandColumns(band, col, kind, factor, unit, err,
                                          r.get("upper_limit", (None, None))[0])
    return mapping


_COLUMN_ROLES = ("id", "ra", "dec", "z", "class", "flags")
_BAND_KEYS = ("flux", "mag", "error", "unit", "upper_limit")
_OPTION_KEYS = ("mw_corrected", "method", "aperture_radius_arcsec", "aperture_arcsec", "flux_unit")


def _unknown_keys(mapping_file, where: str, table: dict, allowed) -> None:
    extra = [k for k in table if k not in allowed]
    if extra:
        close = difflib.get_close_matches(extra[0], list(allowed), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise GccatError(f"{where}: unknown key '{extra[0]}'{hint}; expected one of "
                         f"{', '.join(allowed)}", file=mapping_file)


def _column_name(mapping_file, where: str, value) -> str:
    if not isinstance(value, str) or not value or any(ord(c) < 32 for c in value):
        raise GccatError(f"{where} must be a column name in quotes, not {value!r}",
                         file=mapping_file)
    return value


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
    from catalog.checks import check_number

    mapping_file = Path(mapping_file)
    try:
        data = mapping_file.read_bytes()
    except OSError as exc:
        raise GccatError(f"cannot read the mapping: {exc.strerror or exc}", file=mapping_file) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise GccatError(f"the mapping is not UTF-8 text (byte 0x{data[exc.start]:02x} on line "
                         f"{line})", file=mapping_file) from None
    try:
        spec = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise GccatError(f"cannot read the mapping: {exc}", file=mapping_file) from None
    _unknown_keys(mapping_file, "the mapping", spec, ("columns", "bands", "options"))
    for key in spec:
        if not isinstance(spec[key], dict):
            raise GccatError(f"'{key}' must be a table ([{key}]), not {spec[key]!r}",
                             file=mapping_file)
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
        _unknown_keys(mapping_file, where, b, _BAND_KEYS)
        if ("flux" in b) == ("mag" in b):
            raise GccatError(f"{where} needs exactly one of 'flux' or 'mag'", file=mapping_file)
        for key, v in b.items():
            if key == "unit":
                if not isinstance(v, str):
                    raise GccatError(f"{where} unit must be a unit name in quotes, not {v!r}",
                                     file=mapping_file)
            else:
                _column_name(mapping_file, f"{where} {key}", v)
        out_bands[band] = dict(b)
    _unknown_keys(mapping_file, "[options]", opts, _OPTION_KEYS)
    if "mw_corrected" in opts and not isinstance(opts["mw_corrected"], bool):
        raise GccatError(f"[options] mw_corrected must be true or false, not "
                         f"{opts['mw_corrected']!r}", file=mapping_file)
    if "method" in opts:
        v = opts["method"]
        if not isinstance(v, str) or not v.strip() or len(v) > 100 or any(ord(c) < 32 for c in v):
            raise GccatError(f"[options] method must be a short name in quotes, not {v!r}",
                             file=mapping_file)
    for key in ("aperture_radius_arcsec", "aperture_arcsec"):
        if key not in opts:
            continue
        v = opts[key]
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise GccatError(f"[options] {key} must be a number (arcsec), not {v!r}",
                             file=mapping_file)
        try:
            check_number(v, f"[options] {key}", lo=0, lo_open=True)
        except GccatError as exc:
            raise GccatError(exc.message, file=mapping_file) from None
    if "flux_unit" in opts:
        check_flux_unit(opts["flux_unit"], "[options] flux_unit", file=mapping_file)
    return {"columns": cols, "bands": out_bands, "options": opts}


def load_mapping(path, mapping_file, names: list[str], units: dict[str, str], *,
                 flux_unit: str = "nJy", mw_corrected: bool = False,
                 spec: dict | None = None) -> ColumnMapping:
    """Read a TOML mapping file; what it does not name is inferred as without one.

    ``spec`` is the file as returned by :func:`parse_mapping_file`, when already read.
    """
    mapping_file = Path(mapping_file)
    spec = spec if spec is not None else parse_mapping_file(mapping_file)
    cols, opts, band_spec = spec["columns"], spec["options"], spec["bands"]
    present = set(names)
    for role, col in cols.items():
        if col not in present:
            raise GccatError(f"mapping names column '{col}' for {role}, which the file lacks",
                             file=path, column=col)
    flux_unit = opts.get("flux_unit", flux_unit)
    m = infer_mapping(path, names, units, flux_unit=flux_unit,
                      mw_corrected=opts.get("mw_corrected", mw_corrected),
                      ra=cols.get("ra"), dec=cols.get("dec"), infer_bands=not band_spec)
    for role in ("id", "z", "flags"):
        if role in cols:
            setattr(m, role, cols[role])
    if "class" in cols:
        m.class_ = cols["class"]
    for band, b in band_spec.items():
        value = b.get("flux") or b.get("mag")
        if value not in present:
            raise GccatError(f"band {band}: {'flux' if 'flux' in b else 'mag'} column '{value}' "
                             "not in the file", file=path, column=value)
        for key in ("error", "upper_limit"):
            if b.get(key) and b[key] not in present:
                raise GccatError(f"band {band}: {key} column '{b[key]}' not in the file",
                                 file=path, column=b[key])
        default = "ABmag" if "mag" in b else flux_unit
        kind, factor, unit = _unit_of(mapping_file, value, b.get("unit"), units, default)
        m.bands[band] = BandColumns(band, value, kind, factor, unit, b.get("error"),
                                    b.get("upper_limit"))
    m.method = opts.get("method", m.method)
    if "aperture_arcsec" in opts and "aperture_radius_arcsec" in opts:
        raise GccatError("[options] gives both aperture_radius_arcsec and the older aperture_arcsec "
                         "(a diameter); keep aperture_radius_arcsec", file=mapping_file)
    if "aperture_arcsec" in opts:  # older spelling: the aperture diameter
        m.aperture_radius_arcsec = check_number(opts["aperture_arcsec"], "[options] aperture_arcsec",
                                                lo=0, lo_open=True) / 2
    elif "aperture_radius_arcsec" in opts:
        m.aperture_radius_arcsec = check_number(opts["aperture_radius_arcsec"],
                                                "[options] aperture_radius_arcsec", lo=0, lo_open=True)
    _check_distinct(path, m)
    return m


def _check_distinct(path, m: ColumnMapping) -> None:
    """One column, one role: a column mapped twice (RA and a flux) is a mistake in the mapping."""
    roles = [("ra", m.ra), ("dec", m.dec), ("id", m.id), ("z", m.z), ("class", m.class_),
             ("flags", m.flags)]
    for b in m.bands.values():
        roles += [(f"{b.band} {b.kind}", b.value), (f"{b.band} error", b.error),
                  (f"{b.band} upper limit", b.upper_limit)]
    seen: dict[str, str] = {}
    for role, col in roles:
        if col is None:
            continue
        if col in seen:
            raise GccatError(f"the column is mapped both as {seen[col]} and as {role}", file=path,
                             column=col)
        seen[col] = role
