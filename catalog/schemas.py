"""Every lake table's schema, declared once, with unit, UCD and description per column.

The metadata travels into DuckDB view exports (Parquet, VOParquet, FITS, ECSV, VOTable),
so a column's unit is never written down anywhere else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pyarrow as pa

_TS = pa.timestamp("us", tz="UTC")


def col(name: str, type_: pa.DataType, unit: str = "", ucd: str = "", description: str = "",
        nullable: bool = True) -> pa.Field:
    """A schema field carrying ``unit``, ``ucd`` and ``description`` metadata."""
    meta = {"unit": unit, "ucd": ucd, "description": description}
    return pa.field(name, type_, nullable=nullable, metadata={k: v for k, v in meta.items() if v})


INGEST_ID = col("ingest_id", pa.string(), ucd="meta.id;meta.dataset",
                description="Ingest that wrote this row (see the ingests table)", nullable=False)
FIELD_ID = col("field_id", pa.string(), ucd="meta.id;obs.field",
               description="Cluster field identifier", nullable=False)

FIELDS = pa.schema([
    FIELD_ID,
    col("name", pa.string(), ucd="meta.id", description="Field name"),
    col("aliases", pa.list_(pa.string()), ucd="meta.id", description="Other names of the field"),
    col("ra_center", pa.float64(), "deg", "pos.eq.ra;meta.main", "Field centre right ascension (ICRS)"),
    col("dec_center", pa.float64(), "deg", "pos.eq.dec;meta.main", "Field centre declination (ICRS)"),
    col("z_cluster", pa.float64(), "", "src.redshift", "Cluster (lens) redshift"),
    col("ebv_mw", pa.float64(), "mag", "phys.absorption;em.opt.B", "Milky Way E(B-V) toward the field"),
    col("kpc_per_arcsec", pa.float64(), "kpc/arcsec", "pos.angResolution", "Proper scale at z_cluster"),
    col("pixel_scale_arcsec", pa.list_(pa.float64()), "arcsec", "instr.pixel", "Mosaic pixel scales"),
    col("bands", pa.list_(pa.string()), "", "instr.filter", "Filters observed"),
    col("depth_note", pa.string(), description="Depths as quoted by the source"),
    col("source", pa.string(), ucd="meta.bib", description="Publication the facts come from"),
    INGEST_ID,
])

BANDS = pa.schema([
    col("band", pa.string(), "", "instr.filter;meta.id", "Filter name as used in gccat (e.g. F150W)",
        nullable=False),
    col("instrument", pa.string(), "", "instr", "Instrument (NIRCam, NIRISS, MIRI, ACS/WFC, ...)"),
    col("sedpy_name", pa.string(), "", "meta.id", "astro-sedpy filter curve name"),
    col("pivot_um", pa.float64(), "um", "em.wl", "Pivot wavelength of the filter curve"),
    col("wave_effective_um", pa.float64(), "um", "em.wl.effective", "Effective wavelength"),
    INGEST_ID,
])

INGESTS = pa.schema([
    INGEST_ID,
    col("kind", pa.string(), description="What was ingested: fields, bands, catalog", nullable=False),
    col("name", pa.string(), ucd="meta.id", description="Catalog name (unique per field)"),
    col("field_id", pa.string(), ucd="meta.id;obs.field", description="Field of a catalog ingest"),
    col("source_path", pa.string(), ucd="meta.file", description="Absolute path of the input file"),
    col("sha256", pa.string(), ucd="meta.checksum", description="SHA-256 of the input file"),
    col("n_rows", pa.int64(), ucd="meta.number", description="Rows written to the main table"),
    col("n_photometry", pa.int64(), ucd="meta.number", description="Photometry rows written"),
    col("started_at", _TS, ucd="time.start", description="When the ingest started (UTC)"),
    col("committed_at", _TS, ucd="time.end", description="When the ingest committed (UTC)"),
    col("command", pa.string(), description="Command line or API call that ran the ingest"),
    col("gccat_version", pa.string(), description="gccat version that wrote the ingest"),
    col("supersedes", pa.list_(pa.string()), ucd="meta.id",
        description="Earlier ingests hidden by this one (--replace)"),
    col("options", pa.string(), description="Ingest options and column mapping (JSON)"),
    col("warnings", pa.list_(pa.string()), description="Warnings raised while ingesting"),
])

DETECTIONS = pa.schema([
    col("detection_id", pa.string(), "", "meta.id;meta.main",
        "Stable lake-wide id: field_id/catalog/source_id", nullable=False),
    FIELD_ID,
    col("catalog", pa.string(), "", "meta.dataset", "Catalog name given at ingest", nullable=False),
    col("source_id", pa.string(), "", "meta.id", "The source's id in its own catalog", nullable=False),
    col("ra", pa.float64(), "deg", "pos.eq.ra;meta.main", "Right ascension (ICRS)", nullable=False),
    col("dec", pa.float64(), "deg", "pos.eq.dec;meta.main", "Declination (ICRS)", nullable=False),
    col("healpix29", pa.int64(), "", "pos.healpix",
        "NESTED HEALPix index at order 29 (equal to HATS _healpix_29)", nullable=False),
    col("z", pa.float64(), "", "src.redshift", "Assumed redshift of the source"),
    col("class", pa.string(), "", "src.class", "Source class from the catalog"),
    col("flags", pa.int64(), "", "meta.code", "Source flags from the catalog"),
    col("extra", pa.string(), "", "meta.note", "Unmapped catalog columns (JSON object)"),
    INGEST_ID,
])

PHOTOMETRY = pa.schema([
    col("detection_id", pa.string(), "", "meta.id", "Detection this flux belongs to", nullable=False),
    FIELD_ID,
    col("band", pa.string(), "", "instr.filter", "Filter", nullable=False),
    col("flux_njy", pa.float64(), "nJy", "phot.flux.density", "Flux density (negative values kept)"),
    col("flux_err_njy", pa.float64(), "nJy", "stat.error;phot.flux.density", "1-sigma flux error"),
    col("is_upper_limit", pa.bool_(), "", "meta.code.error",
        "True when flux_njy is an upper limit rather than a measurement", nullable=False),
    col("method", pa.string(), "", "meta.code", "Photometry method (catalog, aperture, psf, ...)",
        nullable=False),
    col("aperture_arcsec", pa.float64(), "arcsec", "phys.angSize;instr.aperture",
        "Aperture diameter, if any"),
    col("mw_corrected", pa.bool_(), "", "meta.code",
        "True when the flux is already corrected for Milky Way extinction", nullable=False),
    col("quality", pa.int32(), "", "meta.code.qual",
        "Bit flags: 1 = error of 0 as published (fits add an error floor)", nullable=False),
    INGEST_ID,
])

#: The lake's tables: name -> (schema, partition columns).
TABLES: dict[str, tuple[pa.Schema, list[str]]] = {
    "ingests": (INGESTS, []),
    "fields": (FIELDS, []),
    "bands": (BANDS, []),
    "detections": (DETECTIONS, ["field_id"]),
    "photometry": (PHOTOMETRY, ["field_id"]),
}

QUALITY_ZERO_ERROR = 1


@dataclass(frozen=True)
class ColumnMeta:
    unit: str = ""
    ucd: str = ""
    description: str = ""


# Columns that views derive per band (photometry_wide, colors, ...): pattern -> metadata.
_DERIVED: list[tuple[re.Pattern, ColumnMeta]] = [
    (re.compile(r"^flux_(?P<b>\w+)$"), ColumnMeta("nJy", "phot.flux.density", "Flux density in {b}")),
    (re.compile(r"^fluxerr_(?P<b>\w+)$"),
     ColumnMeta("nJy", "stat.error;phot.flux.density", "1-sigma flux error in {b}")),
    (re.compile(r"^mag_(?P<b>\w+)$"), ColumnMeta("mag", "phot.mag", "AB magnitude in {b}")),
    (re.compile(r"^magerr_(?P<b>\w+)$"),
     ColumnMeta("mag", "stat.error;phot.mag", "1-sigma AB magnitude error in {b}")),
    (re.compile(r"^(?P<b>\w+)_minus_(?P<r>\w+)$"),
     ColumnMeta("mag", "phot.color", "AB colour {b} - {r}")),
    (re.compile(r"^(color_ab|median_mag_ab)$"), ColumnMeta("mag", "phot.color", "AB colour")),
    (re.compile(r"^color_err$"), ColumnMeta("mag", "stat.error;phot.color", "AB colour error")),
    (re.compile(r"^(separation_arcsec|sep_arcsec|distance_arcsec)$"),
     ColumnMeta("arcsec", "pos.angDistance", "Great-circle separation")),
    (re.compile(r"^(n_\w+)$"), ColumnMeta("", "meta.number", "Count")),
]


def column_meta(name: str) -> ColumnMeta:
    """Unit, UCD and description of a lake or view column, looked up by name.

    Table columns come from the schemas above; per-band view columns (``flux_F150W``,
    ``mag_F150W``, ``F150W_minus_F200W``, ...) from the patterns of :data:`_DERIVED`.
    Columns of joined tables (``ra_1``) and unknown columns get empty metadata.
    """
    for schema, _ in TABLES.values():
        idx = schema.get_field_index(name)
        if idx >= 0:
            md = schema.field(idx).metadata or {}
            return ColumnMeta(*(md.get(k, b"").decode() for k in (b"unit", b"ucd", b"description")))
    for pattern, meta in _DERIVED:
        m = pattern.match(name)
        if m:
            return ColumnMeta(meta.unit, meta.ucd, meta.description.format(**m.groupdict()))
    return ColumnMeta()


def with_metadata(schema: pa.Schema) -> pa.Schema:
    """Attach :func:`column_meta` to every field of ``schema`` (e.g. a query result)."""
    fields = []
    for f in schema:
        m = column_meta(f.name)
        md = {k: v for k, v in (("unit", m.unit), ("ucd", m.ucd), ("description", m.description)) if v}
        fields.append(f.with_metadata(md) if md else f)
    return pa.schema(fields, metadata=schema.metadata)
