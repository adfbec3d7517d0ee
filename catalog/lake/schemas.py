"""Every lake table's schema, declared once, with unit, UCD and description per column.

The metadata travels into DuckDB view exports (Parquet, VOParquet, FITS, ECSV, VOTable),
so a column's unit is never written down anywhere else.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from dataclasses import field as _field

import pyarrow as pa

_TS = pa.timestamp("us", tz="UTC")


def col(
    name: str, type_: pa.DataType, unit: str = "", ucd: str = "", description: str = "", nullable: bool = True
) -> pa.Field:
    """A schema field carrying ``unit``, ``ucd`` and ``description`` metadata."""
    meta = {"unit": unit, "ucd": ucd, "description": description}
    return pa.field(name, type_, nullable=nullable, metadata={k: v for k, v in meta.items() if v})


INGEST_ID = col(
    "ingest_id",
    pa.string(),
    ucd="meta.id;meta.dataset",
    description="Ingest that wrote this row (see the ingests table)",
    nullable=False,
)
FIELD_ID = col(
    "field_id", pa.string(), ucd="meta.id;obs.field", description="Cluster field identifier", nullable=False
)

FIELDS = pa.schema(
    [
        FIELD_ID,
        col("name", pa.string(), ucd="meta.id", description="Field name"),
        col("aliases", pa.list_(pa.string()), ucd="meta.id", description="Other names of the field"),
        col("ra_center", pa.float64(), "deg", "pos.eq.ra;meta.main", "Field centre right ascension (ICRS)"),
        col("dec_center", pa.float64(), "deg", "pos.eq.dec;meta.main", "Field centre declination (ICRS)"),
        col("z_cluster", pa.float64(), "", "src.redshift", "Cluster (lens) redshift"),
        col("ebv_mw", pa.float64(), "mag", "phot.color.excess", "Milky Way E(B-V) toward the field"),
        col("kpc_per_arcsec", pa.float64(), "kpc/arcsec", "pos.angResolution", "Proper scale at z_cluster"),
        col(
            "pixel_scale_arcsec",
            pa.list_(pa.float64()),
            "arcsec",
            "instr.scale;instr.pixel",
            "Mosaic pixel scales",
        ),
        col("bands", pa.list_(pa.string()), "", "meta.id;instr.filter", "Filters observed"),
        col("depth_note", pa.string(), ucd="meta.note", description="Depths as quoted by the source"),
        col("source", pa.string(), ucd="meta.bib", description="Publication the facts come from"),
        INGEST_ID,
    ]
)

BANDS = pa.schema(
    [
        col(
            "band",
            pa.string(),
            "",
            "meta.id;instr.filter",
            "Filter name as used in gccat (e.g. F150W)",
            nullable=False,
        ),
        col("instrument", pa.string(), "", "instr", "Instrument (NIRCam, NIRISS, MIRI, ACS/WFC, ...)"),
        col("sedpy_name", pa.string(), "", "meta.id", "astro-sedpy filter curve name"),
        col("pivot_um", pa.float64(), "um", "em.wl", "Pivot wavelength of the filter curve"),
        col("wave_effective_um", pa.float64(), "um", "em.wl.effective", "Effective wavelength"),
        INGEST_ID,
    ]
)


class IngestKind(enum.StrEnum):
    """What one ``ingests`` row committed: the kind of the transaction that wrote it.

    Stored as its string value in ``ingests.kind``; the members compare equal to those strings.
    """

    #: ``gccat ingest fields``: the cluster fields table.
    FIELDS = "fields"
    #: ``gccat ingest bands``: filter curves and pivot wavelengths.
    BANDS = "bands"
    #: ``gccat ingest catalog``: a published or user catalog (detections and photometry).
    CATALOG = "catalog"
    #: ``gccat detect``: point sources found on images (detections).
    DETECTION = "detection"
    #: ``gccat photometry``: forced aperture photometry on images.
    PHOTOMETRY = "photometry"
    #: ``gccat inject``: injection-recovery corrections.
    INJECTION = "injection"
    #: ``gccat ingest lens-map``: maps of one lens model.
    LENS_MAP = "lens_map"
    #: A model grid built for the fits (``fit ssp|stack|sfh|nonparam`` build and store it).
    GRID = "grid"
    #: ``gccat fit ssp|stack|sfh|nonparam``: one fit run.
    FIT = "fit"
    #: ``gccat correlate``: one GC-kappa correlation run.
    CORRELATION = "correlation"
    #: ``gccat ingest multiple-images``: published multiple images of one lens (Lenstool text).
    MULTIPLE_IMAGES = "multiple_images"
    #: ``gccat ingest cluster-members``: cluster galaxies of a lens model (Lenstool potfile).
    CLUSTER_MEMBERS = "cluster_members"
    #: ``gccat lens crossmatch`` / ``counter-images``: a source-plane run on a lens model.
    SOURCE_PLANE = "source_plane"
    #: ``gccat psf build``: an empirical PSF stacked from an image's stars.
    PSF_MODEL = "psf_model"
    #: ``gccat psf match``: a PSF-matching kernel (and optionally a convolved image).
    PSF_KERNEL = "psf_kernel"
    #: ``gccat stack``: a median stack of point sources and its radial profile.
    STACK = "stack"
    #: ``gccat sizes``: a size-limit simulation.
    SIZE_SIM = "size_sim"


INGESTS = pa.schema(
    [
        INGEST_ID,
        col(
            "kind",
            pa.string(),
            ucd="meta.code",
            description="What was committed: " + ", ".join(k.value for k in IngestKind),
            nullable=False,
        ),
        col("name", pa.string(), ucd="meta.id", description="Catalog name (unique per field)"),
        col(
            "field_id",
            pa.string(),
            ucd="meta.id;obs.field",
            description=(
                "Field the ingest wrote to (null for fields, bands, grids and fits, which span fields)"
            ),
        ),
        col(
            "source_path",
            pa.string(),
            ucd="meta.ref;meta.file",
            description="Absolute path of the input file",
        ),
        col("sha256", pa.string(), ucd="meta.checksum", description="SHA-256 of the input file"),
        col("n_rows", pa.int64(), ucd="meta.number", description="Rows written to the main table"),
        col("n_photometry", pa.int64(), ucd="meta.number", description="Photometry rows written"),
        col("started_at", _TS, ucd="time.start", description="When the ingest started (UTC)"),
        col("committed_at", _TS, ucd="time.end", description="When the ingest committed (UTC)"),
        col(
            "command",
            pa.string(),
            ucd="meta.note",
            description="Command line or API call that ran the ingest",
        ),
        col(
            "gccat_version",
            pa.string(),
            ucd="meta.version",
            description="gccat version that wrote the ingest",
        ),
        col(
            "supersedes",
            pa.list_(pa.string()),
            ucd="meta.id",
            description="Earlier ingests hidden by this one (--replace)",
        ),
        col("options", pa.string(), ucd="meta.code", description="Ingest options and column mapping (JSON)"),
        col(
            "warnings", pa.list_(pa.string()), ucd="meta.note", description="Warnings raised while ingesting"
        ),
        col(
            "lake_version",
            pa.int64(),
            ucd="meta.version",
            description=(
                "Lake version this commit made (1 for the first; null in rows of lakes made before "
                "gccat stored it, whose version is their rank by committed_at)"
            ),
        ),
    ]
)

DETECTIONS = pa.schema(
    [
        col(
            "detection_id",
            pa.string(),
            "",
            "meta.id;meta.main",
            "Stable lake-wide id: field_id/catalog/source_id",
            nullable=False,
        ),
        FIELD_ID,
        col("catalog", pa.string(), "", "meta.dataset", "Catalog name given at ingest", nullable=False),
        col("source_id", pa.string(), "", "meta.id", "The source's id in its own catalog", nullable=False),
        col("ra", pa.float64(), "deg", "pos.eq.ra;meta.main", "Right ascension (ICRS)", nullable=False),
        col("dec", pa.float64(), "deg", "pos.eq.dec;meta.main", "Declination (ICRS)", nullable=False),
        col(
            "healpix29",
            pa.int64(),
            "",
            "pos.healpix",
            "NESTED HEALPix index at order 29 (equal to HATS _healpix_29)",
            nullable=False,
        ),
        col("z", pa.float64(), "", "src.redshift", "Assumed redshift of the source"),
        col("class", pa.string(), "", "src.class", "Source class from the catalog"),
        col("flags", pa.int64(), "", "meta.code", "Source flags from the catalog"),
        col("extra", pa.string(), "", "meta.note", "Unmapped catalog columns (JSON object)"),
        col("snr", pa.float64(), "", "stat.snr", "Detection S/N (peak over noise of the filtered sum)"),
        INGEST_ID,
    ]
)

PHOTOMETRY = pa.schema(
    [
        col("detection_id", pa.string(), "", "meta.id", "Detection this flux belongs to", nullable=False),
        FIELD_ID,
        col("band", pa.string(), "", "meta.id;instr.filter", "Filter", nullable=False),
        col("flux_njy", pa.float64(), "nJy", "phot.flux.density", "Flux density (negative values kept)"),
        col("flux_err_njy", pa.float64(), "nJy", "stat.error;phot.flux.density", "1-sigma flux error"),
        col(
            "is_upper_limit",
            pa.bool_(),
            "",
            "meta.code.error",
            "True when flux_njy is an upper limit rather than a measurement",
            nullable=False,
        ),
        col(
            "method",
            pa.string(),
            "",
            "meta.code",
            "Photometry method (catalog, aperture, psf, ...)",
            nullable=False,
        ),
        col(
            "aperture_radius_arcsec",
            pa.float64(),
            "arcsec",
            "phys.angSize;obs.param",
            "Radius of the circular aperture, if any (gccat's own: background from r to r + 0.08 arcsec)",
        ),
        col(
            "mw_corrected",
            pa.bool_(),
            "",
            "meta.code",
            "True when the flux is already corrected for Milky Way extinction",
            nullable=False,
        ),
        col(
            "quality",
            pa.int32(),
            "",
            "meta.code.qual",
            "Bit flags: 1 = error of 0 as published (fits add an error floor); PSF fits: 2 = at the "
            "shift bound, 4 = reduced chi2 > 3, 8 = cutout over half masked, 16 = no fit, "
            "32 = refitted over the smaller cutout",
            nullable=False,
        ),
        INGEST_ID,
    ]
)

MODEL_ID = col("model_id", pa.string(), "", "meta.id", "Lens model: field_id/model", nullable=False)
RUN_ID = col("run_id", pa.string(), "", "meta.id", "Run that wrote this row (its ingest_id)", nullable=False)
RA_DEC = [
    col("ra", pa.float64(), "deg", "pos.eq.ra", "Right ascension of the pixel centre (ICRS)"),
    col("dec", pa.float64(), "deg", "pos.eq.dec", "Declination of the pixel centre (ICRS)"),
]
IX_IY = [
    col("ix", pa.int32(), "pix", "pos.cartesian.x;instr.pixel", "Pixel column (0-based)"),
    col("iy", pa.int32(), "pix", "pos.cartesian.y;instr.pixel", "Pixel row (0-based)"),
]

LENS_MODELS = pa.schema(
    [
        MODEL_ID,
        FIELD_ID,
        col("model", pa.string(), "", "meta.id", "Model name given at ingest", nullable=False),
        col("team", pa.string(), "", "meta.curation", "Modelling team (CATS, Sharon, GLAFIC, ...)"),
        col("version", pa.string(), "", "meta.version", "Model version"),
        col(
            "quantity",
            pa.string(),
            "",
            "meta.code",
            "kappa, gamma, gamma1, gamma2, magnif, x-arcsec-deflect, y-arcsec-deflect or psi",
            nullable=False,
        ),
        col(
            "derived",
            pa.bool_(),
            "",
            "meta.code",
            "True when computed by gccat from other maps",
            nullable=False,
        ),
        col("derived_from", pa.list_(pa.string()), "", "meta.code", "Quantities it was derived from"),
        col(
            "dls_ds",
            pa.float64(),
            "",
            "pos.distance;arith.ratio",
            "D_ls/D_s the map is normalised to (HFF maps: 1)",
            nullable=False,
        ),
        col(
            "z_source_norm",
            pa.float64(),
            "",
            "src.redshift",
            "Source redshift of the normalisation, when given as --z-source",
        ),
        col("wcs_header", pa.string(), "", "meta.code", "FITS WCS header of the map"),
        col("pixel_scale_arcsec", pa.float64(), "arcsec", "instr.scale;instr.pixel", "Map pixel scale"),
        col("nx", pa.int32(), "pix", "meta.number", "Map width"),
        col("ny", pa.int32(), "pix", "meta.number", "Map height"),
        col("ra_center", pa.float64(), "deg", "pos.eq.ra", "RA of the map centre (ICRS)"),
        col("dec_center", pa.float64(), "deg", "pos.eq.dec", "Dec of the map centre (ICRS)"),
        col("source_path", pa.string(), "", "meta.ref;meta.file", "Input FITS file"),
        col("sha256", pa.string(), "", "meta.checksum", "SHA-256 of the input file"),
        col(
            "ensemble",
            pa.string(),
            "",
            "meta.id",
            "Ensemble of realisations of one model this model is one of (NULL: a single model)",
        ),
        col(
            "realisation", pa.int32(), "", "meta.number", "Index of the realisation in its ensemble (0-based)"
        ),
        col(
            "realisation_key",
            pa.string(),
            "",
            "meta.id",
            "The realisation's folder or file-name stem in the ingested ensemble",
        ),
        INGEST_ID,
    ]
)

LENS_MAP_PIXELS = pa.schema(
    [
        MODEL_ID,
        FIELD_ID,
        col("quantity", pa.string(), "", "meta.code", "Map quantity (see lens_models)", nullable=False),
        *IX_IY,
        *RA_DEC,
        col("healpix29", pa.int64(), "", "pos.healpix", "NESTED HEALPix index at order 29"),
        col(
            "value",
            pa.float64(),
            "",
            "phys",
            "Map value (kappa, gamma: dimensionless; deflection: arcsec; magnif: dimensionless)",
        ),
        INGEST_ID,
    ]
)

CORRELATION_RUNS = pa.schema(
    [
        RUN_ID,
        FIELD_ID,
        MODEL_ID,
        col("created_at", _TS, "", "time.creation", "When the run was made (UTC)"),
        col("where_sql", pa.string(), "", "meta.query", "Selection of GCs on photometry_wide"),
        col("alpha", pa.float64(), "", "stat.param", "Kernel exponent of W(d) = 1/(S_L + d)^alpha"),
        col("softening_arcsec", pa.float64(), "arcsec", "phys.angSize", "Kernel softening S_L"),
        col("box_arcsec", pa.float64(), "arcsec", "phys.angSize", "Box side for box statistics"),
        col(
            "z_source",
            pa.float64(),
            "",
            "src.redshift",
            "Source redshift kappa is scaled to (NULL: as stored)",
        ),
        col("mask_path", pa.string(), "", "meta.ref;meta.file", "FITS mask or mask table used"),
        col("centre_ra", pa.float64(), "deg", "pos.eq.ra", "Centre of the radial profiles"),
        col("centre_dec", pa.float64(), "deg", "pos.eq.dec", "Centre of the radial profiles"),
        col("n_gc", pa.int64(), "", "meta.number", "GCs on the unmasked map"),
        col("n_gc_inpainted", pa.int64(), "", "meta.number", "GCs added in masked regions"),
        col("inpaint_iterations", pa.int32(), "", "meta.number", "Monte Carlo inpainting iterations"),
        col("seed", pa.int64(), "", "meta.code", "Random seed"),
        col("masked_fraction", pa.float64(), "", "phys.angArea;arith.ratio", "Fraction of the map masked"),
        col("beta", pa.float64(), "", "arith.factor", "sum(kappa rho)/sum(rho^2)"),
        col("pearson_log", pa.float64(), "", "stat.correlation", "Pearson r of log kappa vs log rho"),
        col("spearman_log", pa.float64(), "", "stat.correlation", "Spearman rho of log kappa vs log rho"),
        col("A", pa.float64(), "", "stat.fit.param", "Amplitude of <kappa> = A n_GC^B"),
        col("B", pa.float64(), "", "stat.fit.param", "Exponent of <kappa> = A n_GC^B"),
        col("A_err", pa.float64(), "", "stat.error", "Bootstrap error of A"),
        col("B_err", pa.float64(), "", "stat.error", "Bootstrap error of B"),
        col("n_boxes", pa.int64(), "", "meta.number", "Boxes in the power-law fit"),
        col(
            "fit_method",
            pa.string(),
            "",
            "meta.code",
            "poisson: likelihood of the box counts (unbiased); lsq: least squares in log (the papers')",
        ),
        col("A_lsq", pa.float64(), "", "stat.fit.param", "A from least squares in log-log (papers' method)"),
        col("B_lsq", pa.float64(), "", "stat.fit.param", "B from least squares in log-log (papers' method)"),
        col("B_lsq_err", pa.float64(), "", "stat.error", "Bootstrap error of B_lsq"),
        col(
            "background_per_arcsec2",
            pa.float64(),
            "arcsec-2",
            "phys.density",
            "Background GC density subtracted from the profiles",
        ),
        col("background_err", pa.float64(), "arcsec-2", "stat.error", "Poisson error of the background"),
        col(
            "background_source",
            pa.string(),
            "",
            "meta.code",
            "none, annulus, density (GC/kpc^2 given) or region (--background-where count)",
        ),
        col("background_n_gc", pa.int64(), "", "meta.number", "GCs counted in the background region"),
        col("mass_radius_arcsec", pa.float64(), "arcsec", "phys.angSize", "Radius of the mass budget"),
        col("m_halo_msun", pa.float64(), "solMass", "phys.mass", "Halo mass within the radius from kappa"),
        col("m_gc_msun", pa.float64(), "solMass", "phys.mass", "Total GC mass (fraction x M_halo)"),
        col(
            "mean_gc_mass_msun",
            pa.float64(),
            "solMass",
            "phys.mass",
            "M_GC / number of GCs within the radius",
        ),
        col("gc_mass_fraction", pa.float64(), "", "phys.mass;arith.ratio", "M_GC / M_halo of the budget"),
        col(
            "mass_aperture_on_map_fraction",
            pa.float64(),
            "",
            "phys.angArea;arith.ratio",
            "Area of the mass aperture on the lens map / pi r^2 (< 1: the masses are lower limits)",
        ),
        col("light_image", pa.string(), "", "meta.ref;meta.file", "Image of the light profile (NULL: none)"),
        col("plots", pa.list_(pa.string()), "", "meta.ref;meta.file", "PNG plots and FITS maps written"),
        col("options", pa.string(), "", "meta.code", "All run options (JSON)"),
        INGEST_ID,
    ]
)

DENSITY_MAPS = pa.schema(
    [
        RUN_ID,
        FIELD_ID,
        *IX_IY,
        *RA_DEC,
        col("rho_gc", pa.float64(), "", "phys.density", "Smoothed GC density sum W(d) on the kappa grid"),
        col("kappa", pa.float64(), "", "phys.mass;phys.density", "Convergence on the grid"),
        col("residual", pa.float64(), "", "stat.fit.residual", "kappa - beta rho_gc"),
        col("masked", pa.bool_(), "", "meta.code", "Pixel is masked (inpainted)"),
        INGEST_ID,
    ]
)

BOX_STATS = pa.schema(
    [
        RUN_ID,
        FIELD_ID,
        col("ix0", pa.int32(), "pix", "pos.cartesian.x;instr.pixel", "First pixel column of the box"),
        col("iy0", pa.int32(), "pix", "pos.cartesian.y;instr.pixel", "First pixel row of the box"),
        *RA_DEC,
        col("n_gc", pa.int64(), "", "meta.number", "GCs in the box"),
        col("area_arcsec2", pa.float64(), "arcsec2", "phys.area", "Unmasked area of the box"),
        col("n_per_arcsec2", pa.float64(), "arcsec-2", "phys.density", "GC surface density"),
        col("kappa_mean", pa.float64(), "", "phys.mass;stat.mean", "Mean kappa over the box"),
        col("masked_fraction", pa.float64(), "", "phys.angArea;arith.ratio", "Masked fraction of the box"),
        col("n_bg", pa.float64(), "", "meta.number;stat.mean", "Expected background GCs in the box"),
        col("n_gc_bgsub", pa.float64(), "", "meta.number", "GCs in the box minus the expected background"),
        col("n_gc_bgsub_err", pa.float64(), "", "stat.error", "Poisson and background error of n_gc_bgsub"),
        INGEST_ID,
    ]
)

RADIAL_PROFILES = pa.schema(
    [
        RUN_ID,
        FIELD_ID,
        col("r_in_arcsec", pa.float64(), "arcsec", "pos.distance", "Inner radius of the annulus"),
        col("r_out_arcsec", pa.float64(), "arcsec", "pos.distance", "Outer radius of the annulus"),
        col("r_mid_arcsec", pa.float64(), "arcsec", "pos.distance", "Mid radius of the annulus"),
        col("r_in_kpc", pa.float64(), "kpc", "pos.distance", "Inner radius, proper kpc at z_cluster"),
        col("r_out_kpc", pa.float64(), "kpc", "pos.distance", "Outer radius, proper kpc at z_cluster"),
        col("n_gc", pa.int64(), "", "meta.number", "GCs in the annulus"),
        col("area_arcsec2", pa.float64(), "arcsec2", "phys.area", "Unmasked area"),
        col("sigma_gc", pa.float64(), "arcsec-2", "phys.density", "GC surface density"),
        col("sigma_gc_err", pa.float64(), "arcsec-2", "stat.error", "Poisson error of sigma_gc"),
        col("sigma_gc_bgsub", pa.float64(), "arcsec-2", "phys.density", "Background-subtracted density"),
        col(
            "sigma_gc_bgsub_err",
            pa.float64(),
            "arcsec-2",
            "stat.error",
            "Error of sigma_gc_bgsub (with background)",
        ),
        col("kappa_mean", pa.float64(), "", "phys.mass;stat.mean", "Mean kappa in the annulus"),
        col("rho_mean", pa.float64(), "", "phys.density;stat.mean", "Mean rho_gc in the annulus"),
        col("n_gc_image", pa.int64(), "", "meta.number", "GCs in the annulus on the light image's footprint"),
        col(
            "area_image_arcsec2",
            pa.float64(),
            "arcsec2",
            "phys.area",
            "Area of the annulus with light-image data",
        ),
        col(
            "sigma_gc_image",
            pa.float64(),
            "arcsec-2",
            "phys.density",
            "GC surface density on the image footprint",
        ),
        col("sigma_gc_image_err", pa.float64(), "arcsec-2", "stat.error", "Poisson error of sigma_gc_image"),
        col(
            "sigma_gc_image_bgsub",
            pa.float64(),
            "arcsec-2",
            "phys.density",
            "Background-subtracted GC density on the image footprint",
        ),
        col(
            "sigma_gc_image_bgsub_err",
            pa.float64(),
            "arcsec-2",
            "stat.error",
            "Error of sigma_gc_image_bgsub (with background)",
        ),
        col(
            "light_sb_njy_arcsec2",
            pa.float64(),
            "nJy/arcsec2",
            "phot.flux.density.sb",
            "Mean surface brightness of the light image in the annulus",
        ),
        INGEST_ID,
    ]
)

DETECTION_RUNS = pa.schema(
    [
        RUN_ID,
        FIELD_ID,
        col("catalog", pa.string(), "", "meta.dataset", "Catalog name of the detections", nullable=False),
        col("images", pa.list_(pa.string()), "", "meta.ref;meta.file", "Images summed for detection"),
        col("bands", pa.list_(pa.string()), "", "meta.id;instr.filter", "Their bands"),
        col("image_sha256", pa.list_(pa.string()), "", "meta.checksum", "SHA-256 of each image"),
        col("pixel_scale_arcsec", pa.float64(), "arcsec", "instr.scale;instr.pixel", "Pixel scale"),
        col("noise", pa.float64(), "", "stat.stdev", "Robust noise of the filtered sum (image units)"),
        col("threshold", pa.float64(), "", "stat.value", "Detection threshold (filtered units)"),
        col("n_detections", pa.int64(), "", "meta.number", "Sources kept"),
        col("mask_area_pix", pa.int64(), "pix", "phys.area", "Masked area, pixels"),
        col("mask_area_arcsec2", pa.float64(), "arcsec2", "phys.area", "Masked area"),
        col("unmasked_area_arcsec2", pa.float64(), "arcsec2", "phys.area", "Area searched"),
        col("params", pa.string(), "", "meta.code", "All detection parameters (JSON)"),
        INGEST_ID,
    ]
)

INJECTION_RUNS = pa.schema(
    [
        RUN_ID,
        FIELD_ID,
        col("catalog", pa.string(), "", "meta.dataset", "Catalog of the targets"),
        col("band", pa.string(), "", "meta.id;instr.filter", "Band of the image", nullable=False),
        col("mode", pa.string(), "", "meta.code", "targets (Sparkler) or random (Firefly)"),
        col("image", pa.string(), "", "meta.ref;meta.file", "Image injected into"),
        col("image_sha256", pa.string(), "", "meta.checksum", "SHA-256 of the image"),
        col("psf", pa.string(), "", "meta.ref;meta.file", "PSF injected"),
        col("n_flux", pa.int32(), "", "meta.number", "Fluxes per target"),
        col("n_locations", pa.int32(), "", "meta.number", "Locations per target"),
        col("flux_range_lo", pa.float64(), "", "arith.factor", "Lowest flux / measured flux"),
        col("flux_range_hi", pa.float64(), "", "arith.factor", "Highest flux / measured flux"),
        col(
            "aperture_radii_arcsec",
            pa.list_(pa.float64()),
            "arcsec",
            "phys.angSize;obs.param",
            "Radii of the circular apertures measured",
        ),
        col("seed", pa.int64(), "", "meta.code", "Random seed"),
        col("params", pa.string(), "", "meta.code", "All parameters (JSON)"),
        INGEST_ID,
    ]
)

INJECTION_SOURCES = pa.schema(
    [
        RUN_ID,
        FIELD_ID,
        col("band", pa.string(), "", "meta.id;instr.filter", "Band", nullable=False),
        col("detection_id", pa.string(), "", "meta.id", "Target near which it was injected"),
        col("injection", pa.int64(), "", "meta.id", "Injection number within the run"),
        col("x", pa.float64(), "pix", "pos.cartesian.x", "Injected x (0-based pixel)"),
        col("y", pa.float64(), "pix", "pos.cartesian.y", "Injected y (0-based pixel)"),
        *RA_DEC,
        col(
            "aperture_radius_arcsec",
            pa.float64(),
            "arcsec",
            "phys.angSize;obs.param",
            "Radius of the aperture measured",
        ),
        col("flux_in_njy", pa.float64(), "nJy", "phot.flux.density", "Injected flux"),
        col("flux_out_njy", pa.float64(), "nJy", "phot.flux.density", "Measured flux"),
        col("flux_err_njy", pa.float64(), "nJy", "stat.error;phot.flux.density", "Measured error"),
        col("recovered", pa.bool_(), "", "meta.code", "Measured above 3 sigma"),
        INGEST_ID,
    ]
)

INJECTION_CORRECTIONS = pa.schema(
    [
        RUN_ID,
        FIELD_ID,
        col("detection_id", pa.string(), "", "meta.id", "Target the correction is for"),
        col("band", pa.string(), "", "meta.id;instr.filter", "Band", nullable=False),
        col(
            "aperture_radius_arcsec",
            pa.float64(),
            "arcsec",
            "phys.angSize;obs.param",
            "Radius of the aperture the correction is for",
        ),
        col("c2", pa.float64(), "nJy-1", "stat.fit.param", "Quadratic coefficient of intrinsic(measured)"),
        col("c1", pa.float64(), "", "stat.fit.param", "Linear coefficient"),
        col("c0", pa.float64(), "nJy", "stat.fit.param", "Constant"),
        col(
            "flux_error_biweight_njy",
            pa.float64(),
            "nJy",
            "stat.error",
            "Biweight scale of flux_out - flux_in (random mode)",
        ),
        col(
            "location_scatter_njy",
            pa.float64(),
            "nJy",
            "stat.stdev;phot.flux.density",
            "Biweight scale of the corrected fluxes over the injection locations, at the target's flux",
        ),
        col(
            "location_noise_njy",
            pa.float64(),
            "nJy",
            "stat.error;phot.flux.density",
            "Part of location_scatter_njy the measured errors explain (median error x slope)",
        ),
        INGEST_ID,
    ]
)

MODEL_INJECTION_RUNS = pa.schema(
    [
        RUN_ID,
        FIELD_ID,
        col("arc", pa.string(), "", "meta.id", "Name of the modelled arc", nullable=False),
        col("band", pa.string(), "", "meta.id;instr.filter", "Band of the image", nullable=False),
        *RA_DEC,
        col("image", pa.string(), "", "meta.ref;meta.file", "Image injected into"),
        col("image_sha256", pa.string(), "", "meta.checksum", "SHA-256 of the image"),
        col("psf", pa.string(), "", "meta.ref;meta.file", "PSF of the components"),
        col("model_file", pa.string(), "", "meta.ref;meta.file", "Table of the model's components"),
        col("stamp_arcsec", pa.float64(), "arcsec", "phys.angSize;obs.param", "Side of the injection square"),
        col("n_injections", pa.int32(), "", "meta.number", "Copies of the model injected and refitted"),
        col("seed", pa.int64(), "", "meta.code", "Random seed"),
        col("params", pa.string(), "", "meta.code", "All parameters (JSON)"),
        INGEST_ID,
    ]
)

MODEL_INJECTION_COMPONENTS = pa.schema(
    [
        RUN_ID,
        FIELD_ID,
        col("arc", pa.string(), "", "meta.id", "Name of the modelled arc", nullable=False),
        col("component", pa.string(), "", "meta.id", "Component of the model", nullable=False),
        col("kind", pa.string(), "", "meta.code", "point (PSF) or sersic (PSF-convolved Sersic)"),
        *RA_DEC,
        col("band", pa.string(), "", "meta.id;instr.filter", "Band", nullable=False),
        col("flux_njy", pa.float64(), "nJy", "phot.flux.density", "Flux fitted at the model's place"),
        col(
            "flux_err_formal_njy",
            pa.float64(),
            "nJy",
            "stat.error;phot.flux.density",
            "Formal 1-sigma error of the fit (its covariance)",
        ),
        col(
            "flux_err_injection_njy",
            pa.float64(),
            "nJy",
            "stat.error;phot.flux.density",
            "Biweight scale of the refitted minus injected flux over the injections",
        ),
        col(
            "flux_bias_injection_njy",
            pa.float64(),
            "nJy",
            "phot.flux.density;stat.mean",
            "Biweight location of the refitted minus injected flux",
        ),
        INGEST_ID,
    ]
)

OBJECT_ID = col(
    "object_id",
    pa.string(),
    "",
    "meta.id",
    "Fitted object: a detection_id, or stack:<run_id> for a stack",
    nullable=False,
)

SSP_GRIDS = pa.schema(
    [
        col("grid_id", pa.string(), "", "meta.id", "Hash of the grid spec", nullable=False),
        col("z", pa.float64(), "", "src.redshift", "Redshift of the grid"),
        col("bands", pa.list_(pa.string()), "", "meta.id;instr.filter", "astro-sedpy filters, flux order"),
        col("spec", pa.string(), "", "meta.code", "Everything needed to rebuild the grid (JSON)"),
        col("shape", pa.list_(pa.int64()), "", "meta.number", "n_age, n_Z, n_Av, n_band"),
        col("age_gyr", pa.list_(pa.float64()), "Gyr", "time.age", "Age axis"),
        col("log_z_zsun", pa.list_(pa.float64()), "", "phys.abund.Z", "log10(Z/Zsun) axis"),
        col("av", pa.list_(pa.float64()), "mag", "phys.absorption", "Calzetti A_V axis"),
        col(
            "flux_njy",
            pa.list_(pa.float32()),
            "nJy",
            "phot.flux.density",
            "Band fluxes per Msun formed, C order over (age, Z, A_V, band)",
        ),
        col(
            "living_fraction",
            pa.list_(pa.float64()),
            "",
            "phys.mass;arith.ratio",
            "Living stellar mass / mass formed, C order over (age, Z)",
        ),
        col("created_at", _TS, "", "time.creation", "When the grid was built (UTC)"),
        INGEST_ID,
    ]
)

FIT_RUNS = pa.schema(
    [
        RUN_ID,
        col(
            "kind",
            pa.string(),
            "",
            "meta.code",
            "ssp, stack, sfh (SEDz*) or nonparam (Dense-Basis-like t_x atlas)",
            nullable=False,
        ),
        col("where_sql", pa.string(), "", "meta.query", "Selection on photometry_wide"),
        col("grid_ids", pa.list_(pa.string()), "", "meta.id", "SSP grids used"),
        col(
            "error_floor",
            pa.float64(),
            "",
            "stat.error;arith.ratio",
            "Fractional error floor added in quadrature",
        ),
        col("n_objects", pa.int64(), "", "meta.number", "Objects fitted"),
        col("n_samples", pa.int64(), "", "meta.number", "Posterior draws per object"),
        col("scheduler", pa.string(), "", "meta.code", "in-process, or the Dask scheduler used"),
        col("seconds", pa.float64(), "s", "time.duration", "Wall time of the fits"),
        col("gccat_version", pa.string(), "", "meta.version", "Code version"),
        col("config", pa.string(), "", "meta.code", "Full configuration (JSON)"),
        col("created_at", _TS, "", "time.creation", "When the run was made (UTC)"),
        INGEST_ID,
    ]
)

#: The parameters of fit_posteriors (one row per object and parameter): name -> (unit, UCD,
#: description). fit_posteriors' value columns take the unit of their row's parameter; the
#: views that pivot it (fit_results) declare each parameter's column with these.
FIT_PARAMETERS: dict[str, tuple[str, str, str]] = {
    "age_gyr": ("Gyr", "time.age", "SSP age"),
    "log_z": ("", "phys.abund.Z", "log10(Z/Zsun)"),
    "av": ("mag", "phys.absorption", "Calzetti A_V"),
    "log_mass_living": ("dex(solMass)", "phys.mass", "log10 living stellar mass"),
    "log_mass_formed": ("dex(solMass)", "phys.mass", "log10 stellar mass formed"),
    "t50_gyr": ("Gyr", "time.epoch", "Cosmic time by which half of the mass had formed (SFH)"),
    "z50": ("", "src.redshift", "Redshift at t50 (SFH)"),
    "t_peak_gyr": ("Gyr", "time.epoch", "Cosmic time of the peak epoch of star formation (SFH)"),
    "mass_total": ("solMass", "phys.mass", "Total stellar mass formed (SFH)"),
}
_PER_PARAMETER = (
    "in the unit of the row's parameter ("
    + ", ".join(f"{k}: {u or 'dimensionless'}" for k, (u, _, _) in FIT_PARAMETERS.items())
    + ")"
)

FIT_POSTERIORS = pa.schema(
    [
        RUN_ID,
        OBJECT_ID,
        col("field_id", pa.string(), "", "meta.id;obs.field", "Field of the object"),
        col(
            "parameter",
            pa.string(),
            "",
            "meta.id",
            "Fitted parameter of this row (one row per object and parameter): " + ", ".join(FIT_PARAMETERS),
            nullable=False,
        ),
        col(
            "p16",
            pa.float64(),
            "",
            "stat.fit.param;stat.percentile",
            f"16th percentile of the posterior, {_PER_PARAMETER}",
        ),
        col("p50", pa.float64(), "", "stat.fit.param;stat.median", f"Posterior median, {_PER_PARAMETER}"),
        col(
            "p84",
            pa.float64(),
            "",
            "stat.fit.param;stat.percentile",
            f"84th percentile of the posterior, {_PER_PARAMETER}",
        ),
        col(
            "map_value",
            pa.float64(),
            "",
            "stat.fit.param",
            "Posterior mode: grid model of largest likelihood x prior density (NULL for SFH fits), "
            + _PER_PARAMETER,
        ),
        col(
            "best_fit_value",
            pa.float64(),
            "",
            "stat.fit.param",
            f"Best fit: value of the minimum-chi2 model (SFH: the NNLS solution), {_PER_PARAMETER}",
        ),
        col("z", pa.float64(), "", "src.redshift", "Redshift the object was fitted at"),
        col("chi2_min", pa.float64(), "", "stat.fit.chi2", "Minimum chi2"),
        col("n_bands", pa.int64(), "", "meta.number", "Bands used"),
        col("reduced_chi2", pa.float64(), "", "stat.fit.chi2", "chi2_min / degrees of freedom"),
        INGEST_ID,
    ]
)

FIT_SAMPLES = pa.schema(
    [
        RUN_ID,
        OBJECT_ID,
        col("draw", pa.int32(), "", "meta.number", "Draw number"),
        col("age_gyr", pa.float64(), "Gyr", "time.age", "Age"),
        col("log_z", pa.float64(), "", "phys.abund.Z", "log10(Z/Zsun)"),
        col("av", pa.float64(), "mag", "phys.absorption", "Calzetti A_V"),
        col("log_mass_living", pa.float64(), "dex(solMass)", "phys.mass", "log10 living stellar mass"),
        col("log_mass_formed", pa.float64(), "dex(solMass)", "phys.mass", "log10 mass formed"),
        INGEST_ID,
    ]
)

FIT_CHI2_MAPS = pa.schema(
    [
        RUN_ID,
        OBJECT_ID,
        col("age_gyr", pa.float64(), "Gyr", "time.age", "Age"),
        col("log_z", pa.float64(), "", "phys.abund.Z", "log10(Z/Zsun)"),
        col("chi2", pa.float64(), "", "stat.fit.chi2", "chi2 minimised over mass and A_V"),
        INGEST_ID,
    ]
)

FIT_SKIPPED = pa.schema(
    [
        col("run_id", pa.string(), "", "meta.id", "Fit run (its ingest_id)", nullable=False),
        OBJECT_ID,
        col("field_id", pa.string(), "", "meta.id;obs.field", "Field of the object"),
        col("n_bands", pa.int64(), "", "meta.number", "Usable bands (detections and upper limits)"),
        col("min_bands", pa.int64(), "", "meta.number", "Bands the run required (--min-bands)"),
        col("reason", pa.string(), "", "meta.note", "Why the object was not fitted"),
        INGEST_ID,
    ]
)

SFH_EPOCHS = pa.schema(
    [
        RUN_ID,
        OBJECT_ID,
        col("epoch", pa.int32(), "", "meta.number", "Epoch index (0 = earliest)"),
        col("z_start", pa.float64(), "", "src.redshift", "Redshift at the epoch start"),
        col("z_end", pa.float64(), "", "src.redshift", "Redshift at the epoch end"),
        col("t_start_gyr", pa.float64(), "Gyr", "time.start", "Cosmic time at the epoch start"),
        col("t_end_gyr", pa.float64(), "Gyr", "time.end", "Cosmic time at the epoch end"),
        col("mass_msun", pa.float64(), "solMass", "phys.mass", "Mass formed in the epoch (best fit)"),
        col(
            "mass_p16",
            pa.float64(),
            "solMass",
            "phys.mass;stat.percentile",
            "16th percentile of the mass formed over the perturbed refits",
        ),
        col(
            "mass_p84",
            pa.float64(),
            "solMass",
            "phys.mass;stat.percentile",
            "84th percentile of the mass formed over the perturbed refits",
        ),
        col(
            "mass_q25",
            pa.float64(),
            "solMass",
            "phys.mass;stat.percentile",
            "First quartile (25%) of the mass formed over the perturbed refits (the GLASS study's band)",
        ),
        col(
            "mass_q50",
            pa.float64(),
            "solMass",
            "phys.mass;stat.median",
            "Median of the mass formed over the perturbed refits",
        ),
        col(
            "mass_q75",
            pa.float64(),
            "solMass",
            "phys.mass;stat.percentile",
            "Third quartile (75%) of the mass formed over the perturbed refits (the GLASS study's band)",
        ),
        col(
            "mass_burst_msun",
            pa.float64(),
            "solMass",
            "phys.mass",
            "Mass formed in the epoch's 10 Myr burst (best fit)",
        ),
        col(
            "mass_constant_msun",
            pa.float64(),
            "solMass",
            "phys.mass",
            "Mass formed by the epoch's constant star formation (best fit; 0 without that template)",
        ),
        col(
            "has_constant",
            pa.bool_(),
            "",
            "meta.code",
            "Whether the epoch had a constant-SF template (only epochs starting at z <= constant_z_max)",
        ),
        INGEST_ID,
    ]
)

#: Per-object summaries of fit sfh: redshift (given, catalogued or photometric), masses, t50.
SFH_RESULTS = pa.schema(
    [
        RUN_ID,
        OBJECT_ID,
        col("field_id", pa.string(), "", "meta.id;obs.field", "Field of the object"),
        col("z", pa.float64(), "", "src.redshift", "Redshift the history was fitted at"),
        col(
            "z_source",
            pa.string(),
            "",
            "meta.code",
            "Where z came from: --z (given), catalog (detection, else field), scan (photo-z of chi2(z))",
        ),
        col("z_catalog", pa.float64(), "", "src.redshift", "Catalogued redshift used (z_source = catalog)"),
        col(
            "z_phot",
            pa.float64(),
            "",
            "src.redshift.phot",
            "Photometric redshift: minimum of chi2(z) (parabola through the three nodes around it)",
        ),
        col(
            "z_phot_lo",
            pa.float64(),
            "",
            "src.redshift.phot;stat.min",
            "Lower end of the photo-z interval: lowest z with chi2 <= chi2_min + 1",
        ),
        col(
            "z_phot_hi",
            pa.float64(),
            "",
            "src.redshift.phot;stat.max",
            "Upper end of the photo-z interval: highest z with chi2 <= chi2_min + 1",
        ),
        col(
            "z_phot_at_edge",
            pa.bool_(),
            "",
            "meta.code.qual",
            "The photo-z interval reaches an end of the scan (unbounded there); false without a scan",
        ),
        col("chi2_min", pa.float64(), "", "stat.fit.chi2", "chi2 of the NNLS fit at z"),
        col("n_bands", pa.int64(), "", "meta.number", "Bands used"),
        col("n_templates", pa.int64(), "", "meta.number", "Templates at z (bursts and constant SF)"),
        col("mass_total", pa.float64(), "solMass", "phys.mass", "Stellar mass formed (best fit)"),
        col(
            "mass_total_q25",
            pa.float64(),
            "solMass",
            "phys.mass;stat.percentile",
            "First quartile (25%) of the mass formed over the perturbed refits",
        ),
        col(
            "mass_total_q50",
            pa.float64(),
            "solMass",
            "phys.mass;stat.median",
            "Median of the mass formed over the perturbed refits",
        ),
        col(
            "mass_total_q75",
            pa.float64(),
            "solMass",
            "phys.mass;stat.percentile",
            "Third quartile (75%) of the mass formed over the perturbed refits",
        ),
        col("mass_living", pa.float64(), "solMass", "phys.mass", "Living stellar mass (best fit)"),
        col("t50_gyr", pa.float64(), "Gyr", "time.epoch", "Cosmic time by which half of the mass had formed"),
        col(
            "t50_gyr_q25",
            pa.float64(),
            "Gyr",
            "time.epoch;stat.percentile",
            "First quartile (25%) of t50 over the perturbed refits",
        ),
        col(
            "t50_gyr_q50",
            pa.float64(),
            "Gyr",
            "time.epoch;stat.median",
            "Median of t50 over the perturbed refits",
        ),
        col(
            "t50_gyr_q75",
            pa.float64(),
            "Gyr",
            "time.epoch;stat.percentile",
            "Third quartile (75%) of t50 over the perturbed refits",
        ),
        col("z50", pa.float64(), "", "src.redshift", "Redshift at t50"),
        col("t_peak_gyr", pa.float64(), "Gyr", "time.epoch", "Cosmic time at the middle of the peak epoch"),
        INGEST_ID,
    ]
)

#: chi2 of fit sfh at each redshift tried: the scan's nodes for a scanned object (no redshift
#: given), else one row at the redshift fitted.
SFH_CHI2_Z = pa.schema(
    [
        RUN_ID,
        OBJECT_ID,
        col("z", pa.float64(), "", "src.redshift", "Redshift of the scan node"),
        col("chi2", pa.float64(), "", "stat.fit.chi2", "chi2 of the NNLS template fit at z"),
        INGEST_ID,
    ]
)

#: The quantities of nonparam_results (``fit nonparam``, :mod:`catalog.sed.nonparametric`):
#: key -> (unit, UCD, description); each has a _p16, _p50 and _p84 column.
NONPARAM_QUANTITIES: dict[str, tuple[str, str, str]] = {
    "log_mass_formed": ("dex(solMass)", "phys.mass", "log10 stellar mass formed"),
    "log_mass_living": ("dex(solMass)", "phys.mass", "log10 living stellar mass (BC03 living fraction)"),
    "sfr100": (
        "solMass/yr",
        "phys.SFR",
        "SFR averaged over the last 100 Myr (weakly constrained for old populations: see the sSFR prior)",
    ),
    "sfr10": (
        "solMass/yr",
        "phys.SFR",
        "SFR averaged over the last 10 Myr (weakly constrained for old populations: see the sSFR prior)",
    ),
    "log_ssfr100": (
        "dex(yr-1)",
        "phys.SFR;arith.ratio",
        "log10 sSFR: 100 Myr SFR / living mass (weakly constrained for old populations: see the sSFR prior)",
    ),
    "t25_gyr": ("Gyr", "time.age", "Lookback time (before observation) by which 25% of the mass had formed"),
    "t50_gyr": ("Gyr", "time.age", "Lookback time (before observation) by which 50% of the mass had formed"),
    "t75_gyr": ("Gyr", "time.age", "Lookback time (before observation) by which 75% of the mass had formed"),
    "t_peak_gyr": ("Gyr", "time.age", "Lookback time (before observation) of the peak SFR"),
    "mw_age_gyr": ("Gyr", "time.age", "Formed-mass-weighted age"),
    "av": ("mag", "phys.absorption", "Calzetti A_V"),
    "log_z": ("", "phys.abund.Z", "log10(Z/Zsun)"),
}
_NP_PCT = {
    "p16": ("stat.percentile", "16th percentile of the posterior"),
    "p50": ("stat.median", "posterior median"),
    "p84": ("stat.percentile", "84th percentile of the posterior"),
}

NONPARAM_RESULTS = pa.schema(
    [
        RUN_ID,
        OBJECT_ID,
        col("field_id", pa.string(), "", "meta.id;obs.field", "Field of the object"),
        col("z", pa.float64(), "", "src.redshift", "Redshift the object was fitted at"),
        *[
            col(f"{key}_{p}", pa.float64(), unit, f"{ucd};{pucd}", f"{desc}: {pdesc}")
            for key, (unit, ucd, desc) in NONPARAM_QUANTITIES.items()
            for p, (pucd, pdesc) in _NP_PCT.items()
        ],
        col(
            "best_log_mass_formed",
            pa.float64(),
            "dex(solMass)",
            "phys.mass;stat.fit.param",
            "log10 mass formed of the minimum-chi2 atlas history (at its best scale)",
        ),
        col(
            "best_t50_gyr",
            pa.float64(),
            "Gyr",
            "time.age;stat.fit.param",
            "t50 (lookback, Gyr) of the minimum-chi2 atlas history",
        ),
        col("chi2_min", pa.float64(), "", "stat.fit.chi2", "Minimum chi2 over the atlas"),
        col("n_bands", pa.int64(), "", "meta.number", "Bands used"),
        col(
            "reduced_chi2",
            pa.float64(),
            "",
            "stat.fit.chi2",
            "chi2_min / (n_bands - n_free), n_free = 1 (mass) + n_tx + 2 (Z, A_V)",
        ),
        col(
            "n_effective",
            pa.float64(),
            "",
            "stat.value",
            "Effective number of atlas histories in the posterior, (sum w)^2 / sum w^2",
        ),
        INGEST_ID,
    ]
)

NONPARAM_HISTORIES = pa.schema(
    [
        RUN_ID,
        OBJECT_ID,
        col("bin", pa.int32(), "", "meta.number", "History bin (0 = most recent)"),
        col(
            "lookback_lo_gyr",
            pa.float64(),
            "Gyr",
            "time.start",
            "Lookback time (before observation) of the bin's recent edge",
        ),
        col(
            "lookback_hi_gyr",
            pa.float64(),
            "Gyr",
            "time.end",
            "Lookback time (before observation) of the bin's early edge",
        ),
        col(
            "sfr_p16",
            pa.float64(),
            "solMass/yr",
            "phys.SFR;stat.percentile",
            "SFR averaged over the bin: 16th percentile of the posterior",
        ),
        col(
            "sfr_p50",
            pa.float64(),
            "solMass/yr",
            "phys.SFR;stat.median",
            "SFR averaged over the bin: posterior median (the median history)",
        ),
        col(
            "sfr_p84",
            pa.float64(),
            "solMass/yr",
            "phys.SFR;stat.percentile",
            "SFR averaged over the bin: 84th percentile of the posterior",
        ),
        INGEST_ID,
    ]
)

#: The rest-frame bands of restframe_results: key -> (UCD band word, description).
RESTFRAME_BANDS: dict[str, tuple[str, str]] = {
    "U": ("em.opt.U", "Bessell U"),
    "B": ("em.opt.B", "Bessell B"),
    "V": ("em.opt.V", "Bessell V"),
    "I": ("em.opt.I", "Bessell I"),
    "J": ("em.IR.J", "2MASS J"),
    "sdss_u": ("em.opt.U", "SDSS u"),
    "sdss_r": ("em.opt.R", "SDSS r"),
}
#: Its colours: key -> (UCD band word of the blue band, description).
RESTFRAME_COLORS: dict[str, tuple[str, str]] = {
    "uv_ab": ("em.opt.U", "Rest-frame U - V (Bessell, AB)"),
    "vj_ab": ("em.opt.V", "Rest-frame V - J (Bessell V, 2MASS J, AB)"),
    "ur_ab": ("em.opt.U", "Rest-frame u - r (SDSS, AB)"),
    "rj_ab": ("em.opt.R", "Rest-frame r - J (SDSS r, 2MASS J, AB)"),
    "bi_vega": ("em.opt.B", "Rest-frame (B - I)_Vega (Bessell)"),
    "vi_vega": ("em.opt.V", "Rest-frame (V - I)_Vega (Bessell)"),
}
_RF_MODEL = "of the best-fit (minimum-chi2) SSP or atlas history at its SED mass scale, with its fitted A_V"
_RF_PCT = "from the posterior draws' nearest grid models (NULL without draws and for nonparam fits)"


def _restframe_columns() -> list[pa.Field]:
    out = []
    for key, (band, name) in RESTFRAME_BANDS.items():
        for system, what in (("ab", "AB"), ("vega", "Vega (sedpy's CALSPEC Vega)")):
            out.append(
                col(
                    f"abs_{key}_{system}",
                    pa.float64(),
                    "mag",
                    f"phys.magAbs;{band}",
                    f"Rest-frame {name} absolute magnitude, {what}, {_RF_MODEL}",
                )
            )
    out.append(
        col(
            "abs_V_ab_p16",
            pa.float64(),
            "mag",
            "phys.magAbs;em.opt.V;stat.percentile",
            f"abs_V_ab: 16th percentile {_RF_PCT}",
        )
    )
    out.append(
        col(
            "abs_V_ab_p84",
            pa.float64(),
            "mag",
            "phys.magAbs;em.opt.V;stat.percentile",
            f"abs_V_ab: 84th percentile {_RF_PCT}",
        )
    )
    for key, (band, what) in RESTFRAME_COLORS.items():
        out.append(col(f"color_{key}", pa.float64(), "mag", f"phot.color;{band}", f"{what}, {_RF_MODEL}"))
        if key in ("uv_ab", "vj_ab", "bi_vega", "vi_vega"):
            for p, n in (("p16", "16th"), ("p84", "84th")):
                out.append(
                    col(
                        f"color_{key}_{p}",
                        pa.float64(),
                        "mag",
                        f"phot.color;{band};stat.percentile",
                        f"color_{key}: {n} percentile {_RF_PCT}",
                    )
                )
    return out


RESTFRAME_RESULTS = pa.schema(
    [
        RUN_ID,
        OBJECT_ID,
        col("field_id", pa.string(), "", "meta.id;obs.field", "Field of the object"),
        col("z", pa.float64(), "", "src.redshift", "Redshift the object was fitted at"),
        col(
            "ml_v",
            pa.float64(),
            "solMass/solLum",
            "phys.mass;phys.luminosity;arith.ratio",
            "V-band mass-to-light ratio M_living / L_V of the best-fit SSP or history, L_V intrinsic "
            "(dust-free), Bessell V, L_V,sun from sedpy's Sun (M_V,sun = 4.81 AB)",
        ),
        col(
            "ml_v_p16",
            pa.float64(),
            "solMass/solLum",
            "phys.mass;phys.luminosity;stat.percentile",
            f"ml_v: 16th percentile {_RF_PCT}",
        ),
        col(
            "ml_v_p84",
            pa.float64(),
            "solMass/solLum",
            "phys.mass;phys.luminosity;stat.percentile",
            f"ml_v: 84th percentile {_RF_PCT}",
        ),
        col(
            "log_lv",
            pa.float64(),
            "dex(solLum)",
            "phys.luminosity;em.opt.V",
            "log10 intrinsic rest-frame V luminosity (Bessell V, solar units): the flux of lv_band "
            "k-corrected and dust-corrected with the best-fit model; not corrected for magnification",
        ),
        col(
            "lv_band",
            pa.string(),
            "",
            "meta.id;instr.filter",
            "Observed band of L_V: the detected band whose pivot / (1 + z) is nearest rest-frame V",
        ),
        col("lv_band_rest_um", pa.float64(), "um", "em.wl", "Pivot wavelength of lv_band / (1 + z)"),
        col(
            "log_mass_living_sed",
            pa.float64(),
            "dex(solMass)",
            "phys.mass",
            "log10 living stellar mass, route 1 (SED scale): the best-fit model's mass scale over "
            "all fitted bands (= fit_posteriors best_fit_value); not corrected for magnification",
        ),
        col(
            "log_mass_living_ml",
            pa.float64(),
            "dex(solMass)",
            "phys.mass",
            "log10 living stellar mass, route 2 (M/L_V x L_V, the SMACS0723 study's): ml_v times "
            "10^log_lv; not corrected for magnification",
        ),
        *_restframe_columns(),
        INGEST_ID,
    ]
)

# -- strong-lensing constraints: published multiple images and cluster members (Lenstool text) --
MULTIPLE_IMAGES = pa.schema(
    [
        FIELD_ID,
        col("catalog", pa.string(), "", "meta.id", "Catalog name given at ingest", nullable=False),
        col("image_id", pa.string(), "", "meta.id;meta.main", "field_id/catalog/image_label", nullable=False),
        col("family_id", pa.string(), "", "meta.id", "Multiple-image family (system) as in the file"),
        col(
            "image_label",
            pa.string(),
            "",
            "meta.id",
            "Image label as text (e.g. 2.1; printf padding zeros stripped: 1.100000 -> 1.1)",
            nullable=False,
        ),
        col("label_raw", pa.string(), "", "meta.id", "Image label exactly as written in the file"),
        col("flag", pa.int32(), "", "meta.code", "Lenstool flag column of the file"),
        col("ra", pa.float64(), "deg", "pos.eq.ra;meta.main", "Right ascension of the image (ICRS)"),
        col("dec", pa.float64(), "deg", "pos.eq.dec;meta.main", "Declination of the image (ICRS)"),
        col("z", pa.float64(), "", "src.redshift", "Source redshift (NULL: unknown, z = 0 in the file)"),
        col(
            "pos_err_a_arcsec",
            pa.float64(),
            "arcsec",
            "stat.error;pos",
            "Positional error ellipse, semi-major axis",
        ),
        col(
            "pos_err_b_arcsec",
            pa.float64(),
            "arcsec",
            "stat.error;pos",
            "Positional error ellipse, semi-minor axis",
        ),
        col(
            "pos_err_theta_deg",
            pa.float64(),
            "deg",
            "pos.posAng",
            "Error ellipse angle from the East-West axis",
        ),
        col("row_number", pa.int32(), "", "meta.number", "1-based row of the file"),
        INGEST_ID,
    ]
)

CLUSTER_MEMBERS = pa.schema(
    [
        FIELD_ID,
        col("catalog", pa.string(), "", "meta.id", "Catalog name given at ingest", nullable=False),
        col("member_id", pa.string(), "", "meta.id;meta.main", "field_id/catalog/source_id", nullable=False),
        col("source_id", pa.string(), "", "meta.id", "Galaxy id as in the file"),
        col("ra", pa.float64(), "deg", "pos.eq.ra;meta.main", "Right ascension (ICRS)"),
        col("dec", pa.float64(), "deg", "pos.eq.dec;meta.main", "Declination (ICRS)"),
        col("mag", pa.float64(), "mag", "phot.mag", "Magnitude of the scaling relations, as in the file"),
        col(
            "a_arcsec", pa.float64(), "arcsec", "phys.angSize", "Major axis (potfile format, NULL otherwise)"
        ),
        col(
            "b_arcsec", pa.float64(), "arcsec", "phys.angSize", "Minor axis (potfile format, NULL otherwise)"
        ),
        col(
            "ellipticity", pa.float64(), "", "src.ellipticity", "Ellipticity (a^2-b^2)/(a^2+b^2), or as given"
        ),
        col("theta_deg", pa.float64(), "deg", "pos.posAng", "Position angle from the East-West axis"),
        col("row_number", pa.int32(), "", "meta.number", "1-based row of the file"),
        INGEST_ID,
    ]
)

SOURCE_PLANE_MATCHES = pa.schema(
    [
        FIELD_ID,
        MODEL_ID,
        col(
            "image_id_1", pa.string(), "", "meta.id", "First image (image_id or detection_id)", nullable=False
        ),
        col(
            "image_id_2",
            pa.string(),
            "",
            "meta.id",
            "Second image (image_id or detection_id)",
            nullable=False,
        ),
        col("family_1", pa.string(), "", "meta.id", "Family of the first image in its catalog"),
        col("family_2", pa.string(), "", "meta.id", "Family of the second image in its catalog"),
        col("z_source", pa.float64(), "", "src.redshift", "Source redshift the deflections were scaled to"),
        col("ra_src_1", pa.float64(), "deg", "pos.eq.ra", "Source-plane RA of the first image (ICRS)"),
        col("dec_src_1", pa.float64(), "deg", "pos.eq.dec", "Source-plane Dec of the first image (ICRS)"),
        col("ra_src_2", pa.float64(), "deg", "pos.eq.ra", "Source-plane RA of the second image (ICRS)"),
        col("dec_src_2", pa.float64(), "deg", "pos.eq.dec", "Source-plane Dec of the second image (ICRS)"),
        col("separation_arcsec", pa.float64(), "arcsec", "pos.angDistance", "Source-plane separation"),
        col("image_separation_arcsec", pa.float64(), "arcsec", "pos.angDistance", "Image-plane separation"),
        col(
            "source_table",
            pa.string(),
            "",
            "meta.code",
            "What the ids are: multiple_images.image_id or detections.detection_id",
        ),
        INGEST_ID,
    ]
)

COUNTER_IMAGES = pa.schema(
    [
        FIELD_ID,
        MODEL_ID,
        col(
            "from_image_id",
            pa.string(),
            "",
            "meta.id",
            "Image mapped to the source plane (NULL: a given position)",
        ),
        col("z_source", pa.float64(), "", "src.redshift", "Source redshift the deflections were scaled to"),
        col("ra_src", pa.float64(), "deg", "pos.eq.ra", "Source position beta_0, RA (ICRS)"),
        col("dec_src", pa.float64(), "deg", "pos.eq.dec", "Source position beta_0, Dec (ICRS)"),
        col("image_number", pa.int32(), "", "meta.number", "Predicted image, 1-based (pixel row order)"),
        col("ra", pa.float64(), "deg", "pos.eq.ra;meta.main", "Predicted image RA (ICRS)"),
        col("dec", pa.float64(), "deg", "pos.eq.dec;meta.main", "Predicted image Dec (ICRS)"),
        col("mu", pa.float64(), "", "phys", "Signed magnification of the grid triangle holding the image"),
        col(
            "offset_from_input_arcsec",
            pa.float64(),
            "arcsec",
            "pos.angDistance",
            "Distance to the input image",
        ),
        INGEST_ID,
    ]
)

CRITICAL_CURVES = pa.schema(
    [
        FIELD_ID,
        MODEL_ID,
        col("z_source", pa.float64(), "", "src.redshift", "Source redshift of the curves", nullable=False),
        col(
            "kind",
            pa.string(),
            "",
            "meta.code",
            "critical (image plane, det A = 0) or caustic (source plane)",
        ),
        col("curve_id", pa.int32(), "", "meta.id", "Curve number, 1 = longest", nullable=False),
        col("vertex", pa.int32(), "", "meta.number", "Vertex order along the curve, from 0", nullable=False),
        col("ra", pa.float64(), "deg", "pos.eq.ra", "Vertex right ascension (ICRS)"),
        col("dec", pa.float64(), "deg", "pos.eq.dec", "Vertex declination (ICRS)"),
        INGEST_ID,
    ]
)

ARC_MAGNIFICATIONS = pa.schema(
    [
        FIELD_ID,
        MODEL_ID,
        col("arc", pa.string(), "", "meta.id", "Name of the arc", nullable=False),
        col("ra", pa.float64(), "deg", "pos.eq.ra", "Right ascension of the aperture centre (ICRS)"),
        col("dec", pa.float64(), "deg", "pos.eq.dec", "Declination of the aperture centre (ICRS)"),
        col("radius_arcsec", pa.float64(), "arcsec", "phys.angSize", "Radius of the search aperture"),
        col("z_source", pa.float64(), "", "src.redshift", "Redshift of the arc"),
        col(
            "threshold_fraction",
            pa.float64(),
            "",
            "phot.flux;arith.ratio",
            "Pixels above this fraction of the peak",
        ),
        col("n_pixels", pa.int64(), "", "meta.number", "Pixels of the arc (connected, above the threshold)"),
        col("n_pixels_mu", pa.int64(), "", "meta.number", "Arc pixels where the model defines mu"),
        col("area_arcsec2", pa.float64(), "arcsec2", "phys.area", "Area of the arc's pixels"),
        col("mu_mean", pa.float64(), "", "phys;stat.mean", "Mean |mu| over the arc's pixels"),
        col("mu_median", pa.float64(), "", "phys;stat.median", "Median |mu| over the arc's pixels"),
        col("mu_flux_weighted", pa.float64(), "", "phys;stat.mean", "Flux-weighted mean |mu| over the arc"),
        col("mu_p16", pa.float64(), "", "phys;stat.min", "16th percentile of |mu| over the arc's pixels"),
        col("mu_p84", pa.float64(), "", "phys;stat.max", "84th percentile of |mu| over the arc's pixels"),
        col("image", pa.string(), "", "meta.ref;meta.file", "Image the arc was measured on"),
        col("image_sha256", pa.string(), "", "meta.checksum", "SHA-256 of the image"),
        INGEST_ID,
    ]
)

_EE_RADII = col(
    "ee_radii_arcsec", pa.list_(pa.float64()), "arcsec", "phys.angSize;obs.param", "Radii of the growth curve"
)

PSF_MODELS = pa.schema(
    [
        RUN_ID,
        FIELD_ID,
        col("band", pa.string(), "", "meta.id;instr.filter", "Band of the image", nullable=False),
        col("image", pa.string(), "", "meta.ref;meta.file", "Image the stars were taken from"),
        col("image_sha256", pa.string(), "", "meta.checksum", "SHA-256 of the image"),
        col("catalog", pa.string(), "", "meta.dataset", "Catalog of the candidates (null: image segments)"),
        col("psf_path", pa.string(), "", "meta.ref;meta.file", "PSF FITS file written"),
        col("psf_sha256", pa.string(), "", "meta.checksum", "SHA-256 of the PSF file"),
        col("pixel_scale_arcsec", pa.float64(), "arcsec", "instr.scale;instr.pixel", "Pixel scale (WCS)"),
        col("cutout_arcsec", pa.float64(), "arcsec", "phys.angSize", "Side of the star cutouts"),
        col("cutout_pix", pa.int32(), "pix", "phys.angSize", "Side of the cutouts and the PSF, pixels"),
        col("oversampling", pa.int32(), "", "arith.factor", "ePSF oversampling factor"),
        col("mag_min", pa.float64(), "mag", "phot.mag;stat.min", "Brightest star kept, AB"),
        col("mag_max", pa.float64(), "mag", "phot.mag;stat.max", "Faintest star kept, AB"),
        col("r_h_max_pix", pa.float64(), "pix", "phys.angSize", "Half-light radius cut, pixels"),
        col("n_candidates", pa.int64(), "", "meta.number", "Sources measured on the r_h-mag diagram"),
        col("n_stars", pa.int64(), "", "meta.number", "Stars stacked"),
        col("fwhm_pix", pa.float64(), "pix", "phys.angSize;instr.fov", "FWHM of the PSF (Moffat fit)"),
        col("fwhm_arcsec", pa.float64(), "arcsec", "phys.angSize;instr.fov", "FWHM of the PSF"),
        _EE_RADII,
        col("ee", pa.list_(pa.float64()), "", "phot.flux;arith.ratio", "Encircled energy there"),
        col("converged", pa.bool_(), "", "meta.code", "Star centres converged in EPSFBuilder"),
        col("params", pa.string(), "", "meta.code", "All parameters (JSON)"),
        INGEST_ID,
    ]
)

PSF_KERNELS = pa.schema(
    [
        RUN_ID,
        col("field_id", pa.string(), "", "meta.id;obs.field", "Field (null: not tied to one)"),
        col("source_psf", pa.string(), "", "meta.ref;meta.file", "PSF matched from"),
        col("source_psf_sha256", pa.string(), "", "meta.checksum", "SHA-256 of the source PSF"),
        col("target_psf", pa.string(), "", "meta.ref;meta.file", "PSF matched to"),
        col("target_psf_sha256", pa.string(), "", "meta.checksum", "SHA-256 of the target PSF"),
        col("kernel_path", pa.string(), "", "meta.ref;meta.file", "Kernel FITS file written"),
        col("kernel_sha256", pa.string(), "", "meta.checksum", "SHA-256 of the kernel file"),
        col(
            "pixel_scale_arcsec", pa.float64(), "arcsec", "instr.scale;instr.pixel", "Pixel scale of the PSFs"
        ),
        col("window", pa.string(), "", "meta.code", "Window of the kernel (SplitCosineBellWindow)"),
        col("window_alpha", pa.float64(), "", "stat.fit.param", "Window taper width (fraction)"),
        col("window_beta", pa.float64(), "", "stat.fit.param", "Window inner flat diameter (fraction)"),
        col("regularization", pa.float64(), "", "stat.param", "OTF threshold of the Fourier ratio"),
        col(
            "aperture_radii_arcsec",
            pa.list_(pa.float64()),
            "arcsec",
            "phys.angSize;obs.param",
            "Radii at which the growth curves were matched",
        ),
        col(
            "ee_source", pa.list_(pa.float64()), "", "phot.flux;arith.ratio", "Source PSF growth curve there"
        ),
        col(
            "ee_target", pa.list_(pa.float64()), "", "phot.flux;arith.ratio", "Target PSF growth curve there"
        ),
        col(
            "ee_matched",
            pa.list_(pa.float64()),
            "",
            "phot.flux;arith.ratio",
            "Matched PSF growth curve there",
        ),
        col("max_ee_deviation", pa.float64(), "", "stat.fit.residual", "max |ee_matched/ee_target - 1|"),
        col("image", pa.string(), "", "meta.ref;meta.file", "Image convolved (null: none)"),
        col("matched_image", pa.string(), "", "meta.ref;meta.file", "Convolved image written (null: none)"),
        col("params", pa.string(), "", "meta.code", "All parameters (JSON)"),
        INGEST_ID,
    ]
)

# -- image stacks and simulated size limits (gccat stack, gccat sizes; issue 12) ----------------

_BAND = col("band", pa.string(), "", "meta.id;instr.filter", "Band of the image", nullable=False)

STACKS = pa.schema(
    [
        RUN_ID,
        FIELD_ID,
        _BAND,
        col("image", pa.string(), "", "meta.ref;meta.file", "Image the cutouts were taken from"),
        col("image_sha256", pa.string(), "", "meta.checksum", "SHA-256 of the image"),
        col("catalog", pa.string(), "", "meta.dataset", "Catalog of the sources (null: all of the field)"),
        col("selection", pa.string(), "", "meta.query", "--where condition on photometry_wide (null: none)"),
        col("n_selected", pa.int64(), "", "meta.number", "Sources selected that lie on the image"),
        col("n_sources", pa.int64(), "", "meta.number", "Sources stacked (whole cutout on unmasked pixels)"),
        col("combine", pa.string(), "", "meta.code", "Pixel-wise median or mean of the cutouts"),
        col(
            "centre",
            pa.string(),
            "",
            "meta.code",
            "Re-centred on: detection (catalog) or psf (fitted) positions",
        ),
        col("annulus_in_pix", pa.float64(), "pix", "phys.angSize", "Inner radius of the background annulus"),
        col("annulus_out_pix", pa.float64(), "pix", "phys.angSize", "Outer radius of the background annulus"),
        col("side_pix", pa.int32(), "pix", "phys.angSize", "Side of the stack, pixels"),
        col("side_arcsec", pa.float64(), "arcsec", "phys.angSize", "Side of the stack, arcsec"),
        col("pixel_scale_arcsec", pa.float64(), "arcsec", "instr.scale;instr.pixel", "Pixel scale (WCS)"),
        col("psf_run_id", pa.string(), "", "meta.id", "psf_models run of the PSF (null: --psf file)"),
        col("psf_path", pa.string(), "", "meta.ref;meta.file", "PSF FITS fitted to the stack"),
        col("psf_sha256", pa.string(), "", "meta.checksum", "SHA-256 of the PSF file"),
        col("stack_path", pa.string(), "", "meta.ref;meta.file", "Stack FITS file written under the lake"),
        col("stack_sha256", pa.string(), "", "meta.checksum", "SHA-256 of the stack file"),
        col(
            "median_background_njy",
            pa.float64(),
            "nJy",
            "phot.flux.density",
            "Median annulus background per pixel",
        ),
        col("stack_flux_njy", pa.float64(), "nJy", "phot.flux.density", "Sum of the stack's pixels"),
        col("fit_flux_njy", pa.float64(), "nJy", "phot.flux.density", "PSF-fit flux of the stack"),
        col(
            "fit_flux_err_njy",
            pa.float64(),
            "nJy",
            "stat.error;phot.flux.density",
            "1-sigma error of fit_flux_njy",
        ),
        col("fit_chi2_reduced", pa.float64(), "", "stat.fit.chi2", "Reduced chi2 of the PSF fit"),
        col("fit_quality", pa.int32(), "", "meta.code.qual", "Quality bits of the PSF fit (as photometry)"),
        col(
            "fwhm_stack_pix", pa.float64(), "pix", "phys.angSize;instr.fov", "FWHM of the stack (Moffat fit)"
        ),
        col("fwhm_psf_pix", pa.float64(), "pix", "phys.angSize;instr.fov", "FWHM of the PSF (Moffat fit)"),
        col("fwhm_stack_arcsec", pa.float64(), "arcsec", "phys.angSize;instr.fov", "FWHM of the stack"),
        col("fwhm_psf_arcsec", pa.float64(), "arcsec", "phys.angSize;instr.fov", "FWHM of the PSF"),
        col("fwhm_ratio", pa.float64(), "", "phys.angSize;arith.ratio", "fwhm_stack / fwhm_psf"),
        col(
            "profile_max_dev",
            pa.float64(),
            "",
            "stat.fit.residual",
            "max |ratio - 1| where the PSF profile > 1% of its peak",
        ),
        col("params", pa.string(), "", "meta.code", "All parameters (JSON)"),
        INGEST_ID,
    ]
)

STACK_PROFILES = pa.schema(
    [
        RUN_ID,
        FIELD_ID,
        _BAND,
        col("radius_pix", pa.float64(), "pix", "pos.distance", "Mean radius of the 1-px annulus"),
        col("radius_arcsec", pa.float64(), "arcsec", "pos.angDistance", "Mean radius of the annulus"),
        col(
            "profile_stack",
            pa.float64(),
            "pix-1",
            "phot.flux;arith.ratio",
            "Stack profile / fitted flux, per pixel",
        ),
        col("profile_stack_err", pa.float64(), "pix-1", "stat.error", "1-sigma error of profile_stack"),
        col(
            "profile_psf",
            pa.float64(),
            "pix-1",
            "phot.flux;arith.ratio",
            "PSF profile (PSF sum 1), per pixel",
        ),
        col("ratio", pa.float64(), "", "phot.flux;arith.ratio", "profile_stack / profile_psf"),
        col("ratio_err", pa.float64(), "", "stat.error", "1-sigma error of ratio"),
        INGEST_ID,
    ]
)

SIZE_LIMIT_RUNS = pa.schema(
    [
        RUN_ID,
        FIELD_ID,
        _BAND,
        col(
            "z",
            pa.float64(),
            "",
            "src.redshift",
            "Redshift the sizes are placed at: z_cluster, or the stack's sources' median z (lens model)",
        ),
        col("pc_per_arcsec", pa.float64(), "pc/arcsec", "pos.angResolution", "Proper scale at z"),
        col(
            "pixel_scale_arcsec", pa.float64(), "arcsec", "instr.scale;instr.pixel", "Pixel scale of the PSF"
        ),
        col("psf_run_id", pa.string(), "", "meta.id", "psf_models run of the PSF (null: --psf file)"),
        col("psf_path", pa.string(), "", "meta.ref;meta.file", "PSF the sources are convolved with"),
        col("psf_sha256", pa.string(), "", "meta.checksum", "SHA-256 of the PSF file"),
        col(
            "stack_run_id", pa.string(), "", "meta.id", "stacks run whose fitted flux is used (null: --flux)"
        ),
        col("flux_njy", pa.float64(), "nJy", "phot.flux.density", "Total flux of each simulated source"),
        col("noise_njy", pa.float64(), "nJy", "stat.stdev;phot.flux.density", "Per-pixel noise"),
        col("noise_source", pa.string(), "", "meta.note", "Where the noise came from"),
        col("snr", pa.float64(), "", "stat.snr", "PSF-weighted S/N of a point source of that flux"),
        col("mu_t", pa.float64(), "", "arith.factor", "Tangential stretch along one axis"),
        col("lens_model", pa.string(), "", "meta.id", "Lens model mu_t came from (null: --mu-t)"),
        col("n_lensed", pa.int64(), "", "meta.number", "Stack sources whose 1/|lambda_t| gave mu_t (median)"),
        col("model", pa.string(), "", "meta.code", "Source profile"),
        col("metric", pa.string(), "", "meta.code", "Size measured"),
        col("criterion", pa.string(), "", "meta.note", "When a size counts as resolved"),
        col("nsigma", pa.float64(), "", "stat.param", "k of the criterion"),
        col("n_sim", pa.int64(), "", "meta.number", "Noise realisations per size"),
        col("seed", pa.int64(), "", "meta.code", "Random seed"),
        col("side_pix", pa.int32(), "pix", "phys.angSize", "Side of the simulated stamps"),
        col("fwhm_point_pix", pa.float64(), "pix", "phys.angSize;instr.fov", "Mean FWHM of point sources"),
        col("fwhm_point_std_pix", pa.float64(), "pix", "stat.stdev", "Scatter of the point-source FWHM"),
        col("threshold_r_h_pix", pa.float64(), "pix", "phys.angSize", "Smallest resolved half-light radius"),
        col(
            "threshold_r_h_arcsec",
            pa.float64(),
            "arcsec",
            "phys.angSize",
            "Smallest resolved half-light radius",
        ),
        col(
            "threshold_r_h_pc",
            pa.float64(),
            "pc",
            "phys.size.radius",
            "Smallest resolved half-light radius (null: none resolved)",
        ),
        col("params", pa.string(), "", "meta.code", "All parameters (JSON)"),
        INGEST_ID,
    ]
)

SIZE_LIMIT_SIZES = pa.schema(
    [
        RUN_ID,
        FIELD_ID,
        _BAND,
        col("r_h_pc", pa.float64(), "pc", "phys.size.radius", "Intrinsic half-light radius simulated"),
        col("r_h_arcsec", pa.float64(), "arcsec", "phys.angSize", "Intrinsic half-light radius"),
        col("r_h_pix", pa.float64(), "pix", "phys.angSize", "Intrinsic half-light radius, pixels"),
        col("fwhm_mean_pix", pa.float64(), "pix", "phys.angSize;instr.fov", "Mean measured FWHM"),
        col("fwhm_std_pix", pa.float64(), "pix", "stat.stdev", "Scatter of the measured FWHM"),
        col("fwhm_excess_pix", pa.float64(), "pix", "phys.angSize", "Mean FWHM minus the point sources'"),
        col("significance", pa.float64(), "", "stat.snr", "fwhm_excess / point-source FWHM scatter"),
        col("frac_resolved", pa.float64(), "", "stat.probability", "Realisations above the point-source cut"),
        col("resolved", pa.bool_(), "", "meta.code.qual", "significance >= nsigma"),
        col("n_ok", pa.int64(), "", "meta.number", "Fits that converged"),
        INGEST_ID,
    ]
)

#: The lake's tables: name -> (schema, partition columns).
TABLES: dict[str, tuple[pa.Schema, list[str]]] = {
    "ingests": (INGESTS, []),
    "fields": (FIELDS, []),
    "bands": (BANDS, []),
    "detections": (DETECTIONS, ["field_id"]),
    "photometry": (PHOTOMETRY, ["field_id"]),
    "lens_models": (LENS_MODELS, []),
    "lens_map_pixels": (LENS_MAP_PIXELS, ["field_id"]),
    "correlation_runs": (CORRELATION_RUNS, []),
    "density_maps": (DENSITY_MAPS, ["field_id"]),
    "box_stats": (BOX_STATS, []),
    "radial_profiles": (RADIAL_PROFILES, []),
    "detection_runs": (DETECTION_RUNS, []),
    "injection_runs": (INJECTION_RUNS, []),
    "injection_sources": (INJECTION_SOURCES, ["field_id"]),
    "injection_corrections": (INJECTION_CORRECTIONS, []),
    "model_injection_runs": (MODEL_INJECTION_RUNS, []),
    "model_injection_components": (MODEL_INJECTION_COMPONENTS, []),
    "ssp_grids": (SSP_GRIDS, []),
    "fit_runs": (FIT_RUNS, []),
    "fit_posteriors": (FIT_POSTERIORS, []),
    "fit_samples": (FIT_SAMPLES, []),
    "fit_chi2_maps": (FIT_CHI2_MAPS, []),
    "fit_skipped": (FIT_SKIPPED, []),
    "sfh_epochs": (SFH_EPOCHS, []),
    "sfh_results": (SFH_RESULTS, []),
    "sfh_chi2_z": (SFH_CHI2_Z, []),
    "nonparam_results": (NONPARAM_RESULTS, []),
    "nonparam_histories": (NONPARAM_HISTORIES, []),
    "restframe_results": (RESTFRAME_RESULTS, []),
    "multiple_images": (MULTIPLE_IMAGES, []),
    "cluster_members": (CLUSTER_MEMBERS, []),
    "source_plane_matches": (SOURCE_PLANE_MATCHES, []),
    "counter_images": (COUNTER_IMAGES, []),
    "critical_curves": (CRITICAL_CURVES, []),
    "arc_magnifications": (ARC_MAGNIFICATIONS, []),
    "psf_models": (PSF_MODELS, []),
    "psf_kernels": (PSF_KERNELS, []),
    "stacks": (STACKS, []),
    "stack_profiles": (STACK_PROFILES, []),
    "size_limit_runs": (SIZE_LIMIT_RUNS, []),
    "size_limit_sizes": (SIZE_LIMIT_SIZES, []),
}

#: What each table holds (the description of its live view, ``gccat views``). Tables whose view
#: only shows the rows of live ingests get it generated (``catalog.queries.connection``); the
#: others have their own file in ``sql/`` (``ingests``, ``fields``, ``bands``).
TABLE_DESCRIPTIONS = {
    "box_stats": ("Box statistics of a correlation run: GCs per arcsec^2 and mean kappa per box."),
    "correlation_runs": (
        "GC-kappa correlation runs: parameters, beta, correlations, <kappa> = A n_GC^B fit, mass budget."
    ),
    "density_maps": (
        "Smoothed GC density rho_gc, kappa and residual kappa - beta rho_gc per pixel of a correlation run."
    ),
    "detection_runs": (
        "Point-source detection runs: images, bands, noise, threshold, masked and searched areas."
    ),
    "detections": ("Sources of live ingests: stable detection_id, ICRS position (deg), healpix29, redshift."),
    "fit_chi2_maps": ("chi2 over age x metallicity (minimised over mass and A_V) of stacks, for chi2 maps."),
    "fit_posteriors": (
        "Posterior summaries per object and parameter: 16/50/84 percentiles, MAP, chi2, bands."
    ),
    "fit_runs": (
        "Fit runs: kind (ssp, stack, sfh, nonparam), selection, grids, error floor, scheduler, time, config."
    ),
    "fit_samples": ("Posterior draws per object (age, log Z, A_V, log living and formed masses)."),
    "fit_skipped": (
        "Objects a fit run selected but did not fit, with their usable bands and the reason (e.g. "
        "fewer usable bands than the fit's free parameters, --min-bands)."
    ),
    "injection_corrections": (
        "Per source, band and aperture radius: intrinsic = c2 f^2 + c1 f + c0 of the measured "
        "flux f (nJy), fitted to injections; or the biweight flux error of random injections."
    ),
    "injection_runs": (
        "Injection-recovery runs: image (and checksum), PSF, mode, fluxes, locations, aperture radii, seed."
    ),
    "injection_sources": (
        "Injected sources: position, aperture radius (arcsec), flux in and out (nJy), error, recovered."
    ),
    "model_injection_runs": (
        "Full-model injection runs (Firefly Sparkle): arc, image, PSF, model table, stamp, copies, seed."
    ),
    "model_injection_components": (
        "Per component of a modelled arc: fitted flux, formal error, and the biweight scale and "
        "location of its refitted flux over the injected copies (nJy)."
    ),
    "lens_map_pixels": (
        "Lens-map pixels: model, quantity, ix, iy, ICRS position and value (derived maps included)."
    ),
    "lens_models": (
        "Lens-model maps: one row per model and quantity, with normalisation (D_ls/D_s), WCS and shape."
    ),
    "photometry": ("Photometry of live ingests, one row per source, band and method (fluxes in nJy)."),
    "radial_profiles": (
        "Radial profiles of a correlation run: GC surface density (Poisson errors, background "
        "subtracted), mean kappa and rho_gc per annulus."
    ),
    "nonparam_histories": (
        "Non-parametric (Dense-Basis-like) fits: SFR per lookback-time bin, median history and "
        "its 16-84% band (Msun/yr)."
    ),
    "nonparam_results": (
        "Non-parametric (Dense-Basis-like) fits: 16/50/84 percentiles of formed and living mass, "
        "SFR (100 and 10 Myr), sSFR, t25/t50/t75, t_peak, mass-weighted age, A_V, log Z."
    ),
    "sfh_epochs": (
        "Non-parametric SFHs (SEDz*): mass formed per epoch with quartiles (25/50/75) and 16/84 "
        "percentiles of the perturbed refits."
    ),
    "sfh_results": (
        "Non-parametric SFHs (SEDz*) per object: fitted redshift and its source, photo-z with its "
        "delta-chi2 = 1 interval, mass formed and t50 with quartiles, z50, t_peak."
    ),
    "sfh_chi2_z": (
        "chi2 of the SEDz* fits per redshift tried: the chi2(z) scan of objects without a redshift "
        "(one row per node), else one row at the redshift fitted."
    ),
    "restframe_results": (
        "Rest-frame quantities of SSP, stack and nonparam fits: M/L_V, L_V, living mass by the SED "
        "scale and by "
        "M/L_V x L_V, absolute U B V I J u r magnitudes (AB, Vega), UVJ, urJ, (B-I) and (V-I) colours."
    ),
    "multiple_images": (
        "Published multiple images (Lenstool text files): family, label, ICRS position, z, positional errors."
    ),
    "cluster_members": (
        "Cluster member galaxies of lens models (Lenstool potfiles): ICRS position, mag, shape."
    ),
    "source_plane_matches": (
        "Pairs of multiple images whose source-plane positions (through a lens model) agree within "
        "a tolerance."
    ),
    "counter_images": ("Images predicted by solving the lens equation on a model's deflection maps."),
    "critical_curves": ("Critical curves (det A = 0) and caustics of a lens model at a source redshift."),
    "arc_magnifications": (
        "Magnification of arcs (gccat lens arc-magnification): |mu| over the pixels above a "
        "fraction of the arc's peak."
    ),
    "psf_models": (
        "Empirical PSFs (gccat psf build): image, star cut (mag range, r_h), cutout, stars stacked, FWHM, EE."
    ),
    "psf_kernels": (
        "PSF-matching kernels (gccat psf match): PSFs, window alpha/beta, growth curves, max deviation."
    ),
    "stacks": (
        "Median stacks of point sources (gccat stack): selection, annulus, PSF-fit flux, FWHM vs "
        "PSF, FITS file."
    ),
    "stack_profiles": (
        "Radial profiles of the stacks and their PSFs (fractions of the flux per pixel), ratio."
    ),
    "size_limit_runs": (
        "Simulated size limits (gccat sizes): flux, noise, PSF, criterion, smallest resolved r_h (pc)."
    ),
    "size_limit_sizes": ("Per simulated size: mean FWHM, scatter, excess over point sources, significance."),
    "ssp_grids": ("Cached SSP photometric grids: redshift, bands, spec, axes and fluxes per Msun formed."),
}

QUALITY_ZERO_ERROR = 1

#: Columns renamed since older lakes were written: table -> {column: (old column, factor)}.
#: Older gccat stored aperture *diameters* (``aperture_arcsec``, ``apertures_arcsec``); the raw
#: views (:mod:`catalog.queries.connection`) and :func:`ingest.pointsources.aperture_radius` read an old
#: file's value as ``factor x old value`` where the new column is absent (NULL).
RENAMED_COLUMNS: dict[str, dict[str, tuple[str, float]]] = {
    "photometry": {"aperture_radius_arcsec": ("aperture_arcsec", 0.5)},
    "injection_sources": {"aperture_radius_arcsec": ("aperture_arcsec", 0.5)},
    "injection_corrections": {"aperture_radius_arcsec": ("aperture_arcsec", 0.5)},
    "injection_runs": {"aperture_radii_arcsec": ("apertures_arcsec", 0.5)},
}


@dataclass(frozen=True)
class ColumnMeta:
    """Unit (astropy string), UCD (UCD1+) and description of one column."""

    unit: str = ""
    ucd: str = ""
    description: str = ""

    def __bool__(self) -> bool:
        return bool(self.unit or self.ucd or self.description)


def _m(unit: str, ucd: str, description: str) -> ColumnMeta:
    return ColumnMeta(unit, ucd, description)


def _fit_parameter_columns() -> dict[str, ColumnMeta]:
    """fit_results' pivot of fit_posteriors: each parameter's median, percentiles, best fit, mode."""
    out = {}
    for name, (unit, ucd, what) in FIT_PARAMETERS.items():
        out[name] = _m(unit, f"{ucd};stat.median", f"{what}: posterior median")
        out[f"{name}_p16"] = _m(unit, f"{ucd};stat.percentile", f"{what}: 16th percentile")
        out[f"{name}_p84"] = _m(unit, f"{ucd};stat.percentile", f"{what}: 84th percentile")
        out[f"{name}_best"] = _m(unit, f"{ucd};stat.fit.param", f"{what}: minimum-chi2 model")
        out[f"{name}_mode"] = _m(unit, f"{ucd};stat.fit.param", f"{what}: posterior mode (MAP)")
    return out


_MU_UNDEFINED = _m(
    "",
    "meta.code.qual",
    "True where mu changes by more than the connection's "
    "criterion (default 1) within one map pixel: mu is not defined by the map "
    "and intrinsic values are NULL",
)


_ENSEMBLE_ID = _m(
    "", "meta.id", "Ensemble of lens-model realisations: field_id/ensemble (NULL: a single model)"
)


def _ensemble_percentiles(quantities: dict[str, tuple[str, str]]) -> dict[str, ColumnMeta]:
    """<q>_p16/_p50/_p84 columns: percentiles over an ensemble's realisations."""
    out = {}
    for q, (ucd, what) in quantities.items():
        for p, stat in (("p16", "16th percentile"), ("p50", "median"), ("p84", "84th percentile")):
            out[f"{q}_{p}"] = _m("", ucd, f"{what}: {stat} over the realisations")
    return out


@dataclass(frozen=True)
class ViewColumns:
    """The declaration of a view's columns: its own (computed) ones and where the rest come from.

    ``base`` lists the tables or views whose columns the view passes through, in lookup order
    (a view named like a table needs no declaration: its base is that table).
    """

    base: tuple[str, ...]
    columns: dict[str, ColumnMeta] = _field(default_factory=dict)


#: The views of ``sql/`` and their columns: the one place where view-only columns are described.
VIEW_COLUMNS: dict[str, ViewColumns] = {
    "ingests": ViewColumns(("ingests",)),
    "live_ingests": ViewColumns(("ingests",)),
    "ingest_history": ViewColumns(
        ("ingests",),
        {
            "status": _m("", "meta.code.status", "live, or superseded by a later --replace"),
            "superseded_by": _m("", "meta.id", "Ingest that superseded this one"),
            "duration_s": _m("s", "time.duration", "Time from the start of the ingest to its commit"),
        },
    ),
    "field_summary": ViewColumns(
        ("fields",),
        {
            "n_detections": _m("", "meta.number", "Live detections in the field"),
            "n_catalogs": _m("", "meta.number", "Catalogs of those detections"),
            "n_bands": _m("", "meta.number", "Bands with measured photometry"),
            "median_mag_ab": _m(
                "",
                "phot.mag;stat.median",
                "Median AB magnitude per band (measured fluxes, photometry_best) as "
                "band=mag pairs, blue to red",
            ),
            "n_ingests": _m("", "meta.number", "Live ingests of the field"),
            "last_ingest_at": _m("", "time.processing", "When the field's last ingest committed (UTC)"),
        },
    ),
    "photometry_ranked": ViewColumns(
        ("photometry",),
        {
            "preference": _m(
                "",
                "stat.rank",
                "Preference of the row (higher wins): catalog photometry, "
                "then no aperture, then the smallest aperture, then the newest ingest",
            ),
        },
    ),
    "photometry_best": ViewColumns(("photometry",)),
    "photometry_wide": ViewColumns(
        ("detections",),
        {
            "no_photometry": _m("", "meta.code", "Placeholder column: the lake holds no photometry"),
        },
    ),
    "colors": ViewColumns(
        ("photometry",),
        {
            "band_blue": _m("", "meta.id;instr.filter", "Bluer band of the pair"),
            "band_red": _m("", "meta.id;instr.filter", "Redder band of the pair (next in pivot wavelength)"),
            "color_name": _m("", "meta.id", "Colour name: band_blue-band_red"),
            "color_ab": _m("mag", "phot.color", "AB colour m_blue - m_red (NULL for non-positive fluxes)"),
            "color_err": _m("mag", "stat.error;phot.color", "1-sigma error of the AB colour"),
        },
    ),
    "lens_at_detections": ViewColumns(
        ("detections", "lens_models", "fields"),
        {
            "kappa_map": _m(
                "",
                "phys.mass;phys.density",
                "Convergence of the map at the source, at the map's normalisation",
            ),
            "gamma_map": _m("", "phys", "Shear modulus of the map at the source, at its normalisation"),
            "dls_ds_scale": _m(
                "",
                "pos.distance;arith.ratio",
                "D_ls/D_s of the source redshift over that of the map's normalisation",
            ),
            "kappa": _m("", "phys.mass;phys.density", "Convergence at the source redshift"),
            "gamma": _m("", "phys", "Shear modulus at the source redshift"),
            "mu": _m("", "phys", "Magnification 1/((1-kappa)^2 - gamma^2), signed"),
            "lambda_t": _m("", "phys", "Tangential eigenvalue 1 - kappa - gamma"),
            "off_map": _m("", "meta.code", "True where the source is outside the map"),
            "mu_pixel_change": _m(
                "",
                "phys;arith.variation",
                "Largest |mu'/mu - 1| one map pixel away (inf: a critical curve is closer than a pixel)",
            ),
            "mu_undefined": _MU_UNDEFINED,
            "ensemble_id": _ENSEMBLE_ID,
        },
    ),
    "lens_ensemble_at_detections": ViewColumns(
        ("detections", "lens_at_detections"),
        {
            "ensemble_id": _ENSEMBLE_ID,
            "n_realisations": _m("", "meta.number", "Realisations that define mu at the source"),
            "n_undefined": _m(
                "", "meta.number", "Realisations that leave the source off the map or mu undefined"
            ),
            **_ensemble_percentiles(
                {
                    "kappa": ("phys.mass;phys.density", "Convergence at the source redshift"),
                    "gamma": ("phys", "Shear modulus at the source redshift"),
                    "mu": ("phys", "Signed magnification"),
                    "abs_mu": ("phys", "|mu|"),
                    "lambda_t": ("phys", "Tangential eigenvalue 1 - kappa - gamma"),
                }
            ),
        },
    ),
    "photometry_demagnified_ensemble": ViewColumns(
        ("photometry", "lens_ensemble_at_detections"),
        {
            "flux_intrinsic_njy": _m(
                "nJy", "phot.flux.density", "Flux density / |mu| at the ensemble's median |mu|"
            ),
            "flux_intrinsic_p16_njy": _m(
                "nJy", "phot.flux.density", "Flux density / |mu|_p84: 16th percentile over the realisations"
            ),
            "flux_intrinsic_p84_njy": _m(
                "nJy", "phot.flux.density", "Flux density / |mu|_p16: 84th percentile over the realisations"
            ),
            "flux_err_intrinsic_njy": _m(
                "nJy", "stat.error;phot.flux.density", "1-sigma flux error / median |mu|"
            ),
            "mag_intrinsic": _m("mag", "phot.mag", "Intrinsic AB magnitude at the median |mu|"),
        },
    ),
    "fit_results_ensemble": ViewColumns(
        ("fit_results", "lens_ensemble_at_detections"),
        {
            "log_mass_living_intrinsic": _m(
                "dex(solMass)", "phys.mass", "log10 living mass - log10 of the ensemble's median |mu|"
            ),
            "log_mass_living_intrinsic_lens_p16": _m(
                "dex(solMass)",
                "phys.mass",
                "log10 living mass - log10 |mu|_p84: 16th percentile over the lens realisations",
            ),
            "log_mass_living_intrinsic_lens_p84": _m(
                "dex(solMass)",
                "phys.mass",
                "log10 living mass - log10 |mu|_p16: 84th percentile over the lens realisations",
            ),
        },
    ),
    "box_relation_binned": ViewColumns(
        ("box_stats",),
        {
            "n_boxes": _m("", "meta.number", "Boxes with this GC count"),
            "n_per_arcsec2_mean": _m(
                "arcsec-2", "phys.density;stat.mean", "Mean GC surface density of the boxes"
            ),
            "kappa_bin_mean": _m("", "phys.mass;stat.mean", "Mean over the boxes of their mean kappa"),
            "kappa_bin_std": _m(
                "", "stat.stdev;phys.mass", "Dispersion (sample std) of the boxes' mean kappa"
            ),
            "kappa_bin_sem": _m("", "stat.error;phys.mass", "Error of kappa_bin_mean, std / sqrt(n_boxes)"),
        },
    ),
    "size_limits": ViewColumns(
        ("detections", "lens_at_detections", "psf_models"),
        {
            "psf_run_id": _m("", "meta.id", "Run of gccat psf build whose FWHM is used"),
            "hwhm_arcsec": _m("arcsec", "phys.angSize;instr.fov", "PSF half width at half maximum"),
            "size_limit_arcsec": _m(
                "arcsec",
                "phys.angSize;src",
                "Intrinsic (source-plane) size limit HWHM x |lambda_t|, arcsec (NULL where mu_undefined)",
            ),
            "pc_per_arcsec": _m("pc/arcsec", "pos.angResolution", "Proper scale at the source redshift"),
            "size_limit_pc": _m("pc", "phys.size.radius", "Intrinsic size limit in proper parsecs"),
        },
    ),
    "stack_summary": ViewColumns(
        ("stacks", "ingests"),
        {"fit_mag_ab": _m("mag", "phot.mag", "AB magnitude of the stack's PSF-fit flux")},
    ),
    "size_limits_sim": ViewColumns(("size_limit_runs", "ingests")),
    "size_limits_sim_sources": ViewColumns(
        ("lens_at_detections", "size_limit_runs"),
        {
            "mu_t": _m(
                "", "arith.factor", "The source's tangential stretch 1/|lambda_t| (single lens model)"
            ),
            "mu_t_lo": _m(
                "", "arith.factor", "Largest mu_t of the field's size grid at or below the source's"
            ),
            "mu_t_hi": _m(
                "", "arith.factor", "Smallest mu_t of the field's size grid at or above the source's"
            ),
            "n_grid": _m("", "meta.number", "Runs in the field and band's size grid (gccat sizes --mu-t)"),
            "threshold_r_h_arcsec": _m(
                "arcsec",
                "phys.angSize;src",
                "Smallest resolved intrinsic half-light radius at the source's mu_t (log-log interpolated; "
                "NULL outside the grid)",
            ),
            "threshold_r_h_pc": _m(
                "pc", "phys.size.radius", "threshold_r_h_arcsec in proper pc at the source redshift"
            ),
        },
    ),
    "surface_density_limits": ViewColumns(
        ("fit_results", "size_limits"),
        {
            "log_sigma_e_min": _m(
                "dex(solMass/pc2)",
                "phys.mass;phys.area;arith.ratio",
                "log10 lower limit on the stellar surface density within the half-light radius, "
                "(M_living,intrinsic / 2) / (pi r_lim^2)",
            ),
        },
    ),
    "photometry_demagnified": ViewColumns(
        ("photometry", "lens_at_detections"),
        {
            "flux_intrinsic_njy": _m(
                "nJy", "phot.flux.density", "Flux density / |mu| (NULL where mu_undefined)"
            ),
            "flux_err_intrinsic_njy": _m(
                "nJy", "stat.error;phot.flux.density", "1-sigma error of flux_intrinsic_njy"
            ),
            "mag_intrinsic": _m("mag", "phot.mag", "Intrinsic (demagnified) AB magnitude"),
        },
    ),
    "photometry_injection_corrected": ViewColumns(
        ("photometry",),
        {
            "correction_run": _m("", "meta.id", "Injection run of the correction (NULL: none)"),
            "flux_corrected_njy": _m(
                "nJy", "phot.flux.density", "Flux density corrected by the injection-recovery polynomial"
            ),
            "flux_err_corrected_njy": _m(
                "nJy",
                "stat.error;phot.flux.density",
                "1-sigma error of flux_corrected_njy: propagated error and location_error_njy in quadrature",
            ),
            "location_error_njy": _m(
                "nJy",
                "stat.error;phot.flux.density",
                "What the injection locations scatter beyond their noise, sqrt(max(0, scatter^2 - noise^2))",
            ),
        },
    ),
    "injection_completeness": ViewColumns(
        ("injection_sources",),
        {
            "mag_in": _m("mag", "phot.mag", "Injected AB magnitude: centre of a 0.25 mag bin"),
            "n_injected": _m("", "meta.number", "Injections in the bin"),
            "n_recovered": _m("", "meta.number", "Injections recovered above 3 sigma"),
            "completeness": _m("", "stat.probability", "Recovered fraction n_recovered / n_injected"),
            "median_flux_bias": _m(
                "", "phot.flux.density;arith.ratio;stat.median", "Median of flux_out/flux_in - 1"
            ),
            "flux_bias_scatter": _m(
                "", "stat.stdev;phot.flux.density;arith.ratio", "1.4826 x MAD of flux_out/flux_in - 1"
            ),
        },
    ),
    "fit_results": ViewColumns(
        ("fit_posteriors", "detections", "lens_at_detections"),
        {
            **_fit_parameter_columns(),
            "lens_model": _m("", "meta.id", "Lens model of mu and the intrinsic mass (NULL: none)"),
            "log_mass_living_intrinsic": _m(
                "dex(solMass)",
                "phys.mass",
                "log10 living stellar mass corrected for magnification: "
                "log_mass_living - log10|mu| (NULL where mu_undefined)",
            ),
        },
    ),
}

# Columns that views derive per band (photometry_wide, ...) or that queries compute: pattern ->
# metadata, after the declarations of the table or view.
_DERIVED: list[tuple[re.Pattern, ColumnMeta]] = [
    (re.compile(r"^flux_(?P<b>\w+)$"), ColumnMeta("nJy", "phot.flux.density", "Flux density in {b}")),
    (
        re.compile(r"^fluxerr_(?P<b>\w+)$"),
        ColumnMeta("nJy", "stat.error;phot.flux.density", "1-sigma flux error in {b}"),
    ),
    (re.compile(r"^mag_(?P<b>\w+)$"), ColumnMeta("mag", "phot.mag", "AB magnitude in {b}")),
    (
        re.compile(r"^magerr_(?P<b>\w+)$"),
        ColumnMeta("mag", "stat.error;phot.mag", "1-sigma AB magnitude error in {b}"),
    ),
    (re.compile(r"^(?P<b>\w+)_minus_(?P<r>\w+)$"), ColumnMeta("mag", "phot.color", "AB colour {b} - {r}")),
    (
        re.compile(r"^(separation_arcsec|sep_arcsec|distance_arcsec)$"),
        ColumnMeta("arcsec", "pos.angDistance", "Great-circle separation"),
    ),
    (re.compile(r"^(n_\w+)$"), ColumnMeta("", "meta.number", "Count")),
    (
        re.compile(r"^aperture_corrected$"),
        ColumnMeta(
            "",
            "meta.code",
            "True when the flux is gccat aperture photometry with the PSF aperture "
            "correction (a total flux); false otherwise (see method)",
        ),
    ),
    (
        re.compile(r"^injection_corrected$"),
        ColumnMeta("", "meta.code", "True when the flux is corrected by an injection-recovery polynomial"),
    ),
    (re.compile(r"^correction_run$"), ColumnMeta("", "meta.id", "Injection run of the correction")),
]

# Bookkeeping tables: a query's column is looked up in them last (``field_id`` of a query is
# the science tables' "Cluster field identifier", not the ingests table's "Field the ingest wrote to ...").
_BOOKKEEPING = ("ingests",)
_SCIENCE_FIRST = ("detections", "photometry", "fields", "bands")
_SIDES = re.compile(r"^(?P<name>.+)_(?P<side>[12])$")  # crossmatch columns: ra_1, ra_2, ...


def _table_columns(name: str) -> dict[str, ColumnMeta]:
    out = {}
    for f in TABLES[name][0]:
        md = f.metadata or {}
        out[f.name] = ColumnMeta(*(md.get(k, b"").decode() for k in (b"unit", b"ucd", b"description")))
    return out


def _chain(source: str, seen: set[str]) -> list[dict[str, ColumnMeta]]:
    """The column declarations to search for ``source``, in order: its own, then its bases'."""
    if source in seen:
        return []
    seen.add(source)
    if source.startswith("raw_") and source[4:] in TABLES:  # every stored row of a table
        source = source[4:]
    view = VIEW_COLUMNS.get(source)
    if view is None:
        return [_table_columns(source)] if source in TABLES else []
    out = [view.columns] if view.columns else []
    for base in view.base:
        if base == source:
            out.append(_table_columns(base))
        else:
            out += _chain(base, seen)
    return out


def _query_chain() -> list[dict[str, ColumnMeta]]:
    """For query results: science tables, the views' own columns, then bookkeeping tables."""
    order = [t for t in _SCIENCE_FIRST if t in TABLES]
    order += [t for t in TABLES if t not in order and t not in _BOOKKEEPING]
    chain = [_table_columns(t) for t in order]
    chain += [v.columns for v in VIEW_COLUMNS.values() if v.columns]
    return chain + [_table_columns(t) for t in _BOOKKEEPING if t in TABLES]


def _pattern_meta(name: str) -> ColumnMeta:
    for pattern, meta in _DERIVED:
        m = pattern.match(name)
        if m:
            return ColumnMeta(meta.unit, meta.ucd, meta.description.format(**m.groupdict()))
    return ColumnMeta()


def columns_meta(names, source: str | None = None) -> dict[str, ColumnMeta]:
    """Unit, UCD and description of each column of a table, view or query result.

    Parameters
    ----------
    names : iterable of str
        The column names.
    source : str, optional
        The lake table or view the columns come from (``gccat export --table``): its own
        declaration wins (a schema of :data:`TABLES`, or :data:`VIEW_COLUMNS` and the view's
        base tables). Without it (a query result) the science tables are searched first, then
        the views' own columns, then the bookkeeping tables (``ingests``).

    Returns
    -------
    dict
        name -> :class:`ColumnMeta`. Per-band columns (``flux_F150W``, ``mag_F150W``,
        ``F150W_minus_F200W``, ...) come from the patterns of :data:`_DERIVED`; crossmatch
        columns (``ra_1``, ``ra_2``) from their unsuffixed name; unknown columns get an empty
        :class:`ColumnMeta`.
    """
    chains = ([] if source is None else [_chain(source, set())]) + [_query_chain()]
    out = {}
    for name in names:
        out[name] = _lookup(name, chains)
    return out


def _lookup(name: str, chains) -> ColumnMeta:
    for k, chain in enumerate(chains):
        for decl in chain:
            if name in decl:
                return decl[name]
        if k == 0:  # per-band patterns before anything declared elsewhere
            meta = _pattern_meta(name)
            if meta:
                return meta
    m = _SIDES.match(name)
    if m:
        base = _lookup(m["name"], chains)
        if base:
            left = m["side"] == "1"
            ucd = base.ucd if left else base.ucd.replace(";meta.main", "")  # one main position
            side = "left" if left else "right"
            return ColumnMeta(base.unit, ucd, f"{base.description} ({side} side of the match)")
    return ColumnMeta()


def column_meta(name: str, source: str | None = None) -> ColumnMeta:
    """Unit, UCD and description of one column (see :func:`columns_meta`)."""
    return columns_meta([name], source)[name]


def with_metadata(
    schema: pa.Schema, source: str | None = None, meta: dict[str, ColumnMeta] | None = None
) -> pa.Schema:
    """``schema`` with each field's ``unit``/``ucd``/``description`` metadata set.

    ``meta`` (from :func:`columns_meta`) is looked up for ``source`` when not given.
    """
    meta = meta if meta is not None else columns_meta(schema.names, source)
    fields = []
    for f in schema:
        m = meta.get(f.name, ColumnMeta())
        md = {k: v for k, v in (("unit", m.unit), ("ucd", m.ucd), ("description", m.description)) if v}
        fields.append(f.with_metadata(md) if md else f)
    return pa.schema(fields, metadata=schema.metadata)
