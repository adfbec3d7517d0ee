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


def _find(names: list[str], candidates: list[str]) -> str | None:
    lower = {n.lower(): n for n in names}
    for c in candidates:
        if c in lower:
            return lower[c]
    return None


def _unit_of(path, column: str, suffix: str | None, declared: dict[str, str], default: str):
    """(kind, factor, unit) from a name suffix, the file's declared unit, or the default."""
    unit = suffix or declared.get(column) or default
    try:
        kind, factor = parse_unit(unit)
    except ValueError as exc:
        raise GccatError(str(exc), file=path, column=column) from None
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
    ra = ra or _find(names, RA_NAMES)
    dec = dec or _find(names, DEC_NAMES)
    for role, found, cands in (("ra", ra, RA_NAMES), ("dec", dec, DEC_NAMES)):
        if found is None:
            close = difflib.get_close_matches(role, [n.lower() for n in names], n=1, cutoff=0.5)
            hint = f"; is '{close[0]}' a misspelling? " if close else "; "
            raise GccatError(f"no {role.upper()} coordinate column (looked for "
                             f"{', '.join(cands[:6])}, ...){hint}name it in a --mapping file",
                             file=path, column=role)
    mapping = ColumnMapping(ra=ra, dec=dec, id=_find(names, ID_NAMES), z=_find(names, Z_NAMES),
                            class_=_find(names, CLASS_NAMES), flags=_find(names, FLAG_NAMES),
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
                roles.setdefault(band, {})[role] = (name, m.groupdict().get("unit"))
                break
        else:
            lb = _LOOKS_LIKE_BAND.search(low)
            if lb and re.search(r"flux|mag|err|^f\d", low) and bandreg.lookup(lb[1]) is None:
                _known_band(path, name, lb[1].split("_")[0])
    for band, r in roles.items():
        if "flux" in r:
            col, suffix = r["flux"]
            kind, factor, unit = _unit_of(path, col, suffix, units, flux_unit)
            err = r.get("error", (None, None))[0]
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


def load_mapping(path, mapping_file, names: list[str], units: dict[str, str], *,
                 flux_unit: str = "nJy", mw_corrected: bool = False) -> ColumnMapping:
    """Read a TOML mapping file; what it does not name is inferred as without one."""
    mapping_file = Path(mapping_file)
    try:
        spec = tomllib.loads(mapping_file.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise GccatError(f"cannot read the mapping: {exc}", file=mapping_file) from None
    cols, opts, band_spec = spec.get("columns", {}), spec.get("options", {}), spec.get("bands", {})
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
    for token, b in band_spec.items():
        band = _known_band(mapping_file, token, token)
        value = b.get("flux") or b.get("mag")
        if not value or value not in present:
            raise GccatError(f"band {band}: flux/mag column '{value}' not in the file",
                             file=path, column=str(value))
        for key in ("error", "upper_limit"):
            if b.get(key) and b[key] not in present:
                raise GccatError(f"band {band}: {key} column '{b[key]}' not in the file",
                                 file=path, column=b[key])
        default = "ABmag" if "mag" in b and "flux" not in b else flux_unit
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
    return m
