"""gccat's constants and defaults, each in one place.

Physical conventions (zero point, cosmology, angles), the aperture-photometry settings of the
Sparkler study, the GC-kappa kernel of the SMACS0723 study, and the lensing criteria. The CLI
defaults, the library defaults (:mod:`catalog.images`, :mod:`ingest.pointsources`),
the photometry preference rule of the views (``sql/photometry_ranked.sql``) and the fits read
these constants; nothing else spells them out.

Apertures are given by their **radius** everywhere in gccat (options, arguments, lake columns),
as in the Sparkler study (Mowla et al. 2022): circular apertures of radius 0.12, 0.16 and
0.20 arcsec, a median local background in an annulus from the aperture edge ``r`` to
``r + 0.08"``, aperture corrections from the PSF growth curve. Lakes written by gccat before
this convention stored the aperture *diameter* as ``aperture_arcsec``; the views read those rows
as radius = diameter / 2 (see :data:`catalog.lake.schemas.RENAMED_COLUMNS`).
"""

from __future__ import annotations

import math

# -- conventions ---------------------------------------------------------------------------------

#: AB magnitude of 1 nJy: m_AB = 31.4 - 2.5 log10(f / nJy).
AB_ZEROPOINT_NJY = 31.4
#: Arcseconds per radian.
ARCSEC_PER_RAD = 180.0 / math.pi * 3600.0
#: The cosmology of the source papers and of bagpipes: flat LambdaCDM, H0 in km/s/Mpc.
COSMOLOGY = {"name": "FlatLambdaCDM", "H0": 70.0, "Om0": 0.3}

# -- apertures -----------------------------------------------------------------------------------

#: Aperture radii of the Sparkler photometry, arcsec.
APERTURE_RADII_ARCSEC = (0.12, 0.16, 0.20)
#: Width of the local-background annulus, arcsec: from the aperture edge r to r + 0.08".
ANNULUS_WIDTH_ARCSEC = 0.08
#: The aperture whose photometry gccat prefers (photometry_best, the fits' default), arcsec.
#: The Sparkler study measures in three apertures without naming a final one here; 0.16" is
#: the one whose total flux depends least on the two corrections (docs/design.md, "Apertures").
FINAL_APERTURE_RADIUS_ARCSEC = 0.16
#: Significance below which a measured flux is stored as an upper limit of this many sigma.
UPPER_LIMIT_NSIGMA = 3.0
#: Pixel scale assumed only where a default in arcsec has to become pixels without an image
#: (NIRCam long-wavelength mosaics, arcsec per pixel).
DEFAULT_PIXEL_SCALE_ARCSEC = 0.03
#: Annulus width in pixels when an array function is given none: 0.08" at 0.03"/pix.
DEFAULT_ANNULUS_WIDTH_PIX = ANNULUS_WIDTH_ARCSEC / DEFAULT_PIXEL_SCALE_ARCSEC
#: Largest aperture radius accepted, arcsec: GCs are point sources (PSF FWHM 0.03-0.2"), and a
#: few arcsec already hold the whole PSF; each aperture and its annulus must also fit on the image.
MAX_APERTURE_RADIUS_ARCSEC = 5.0
#: Most apertures in one photometry or injection run.
MAX_APERTURES = 10
#: Radii closer than this are the same aperture when photometry rows, injection corrections and
#: ``--photometry aperture:R`` are matched, arcsec (0.1 mas; radii are stored as given).
RADIUS_MATCH_ARCSEC = 1e-4

# Injection-recovery (Sparkler: 20 fluxes at 0.1-10x the measured flux at 20 locations, a
# second-order polynomial; Firefly Sparkle: 100 random places in a 10" stamp).
#: Injected fluxes per target.
INJECT_N_FLUX = 20
#: Injection locations per target.
INJECT_N_LOCATIONS = 20
#: Injected fluxes span these multiples of the target's measured flux.
INJECT_FLUX_RANGE = (0.1, 10.0)
#: Degree of the polynomial intrinsic(measured) flux fitted to the injections.
FLUX_CORRECTION_DEGREE = 2
#: Random injection places per target (full-random mode).
INJECT_N_RANDOM = 100
#: Side (pixels) of the image tiles of one Dask task (``--tile``): the tiles ``gccat detect``
#: high-pass filters (each window reaching the filter's 13 px beyond it), and the tiles whose
#: sources ``gccat photometry`` (aperture or PSF) and ``gccat stack`` measure in one task.
IMAGE_TILE_PIX = 1024
#: Smallest and largest ``--tile`` accepted, pixels.
TILE_PIX_RANGE = (64, 65536)
#: Side of the stamp of the full-random injection, arcsec.
INJECT_STAMP_ARCSEC = 10.0
#: Copies of a whole arc model injected and refitted (gccat inject-model; Firefly Sparkle: 100).
MODEL_INJECT_N = 100
#: Side of the square the copies are placed in, arcsec (Firefly Sparkle: 10").
MODEL_INJECT_STAMP_ARCSEC = 10.0


def radii_text(radii=APERTURE_RADII_ARCSEC) -> str:
    """Radii as the CLI writes them: ``"0.12,0.16,0.2"``."""
    return ",".join(f"{float(r):g}" for r in radii)


# -- stellar populations -------------------------------------------------------------------------

#: The fields of the struct the ``ssp_fit`` SQL function returns (percentiles of age in Gyr,
#: log Z/Zsun, A_V in mag, log10 masses in Msun; chi2 and the bands used).
SSP_FIT_FIELDS = (
    "age_gyr_p16",
    "age_gyr_p50",
    "age_gyr_p84",
    "log_z_p50",
    "av_p50",
    "log_mass_living_p16",
    "log_mass_living_p50",
    "log_mass_living_p84",
    "log_mass_formed_p50",
    "chi2_min",
    "n_bands",
)


# -- lensing -----------------------------------------------------------------------------------

#: Largest fractional change of mu across one map pixel for which the map is taken to define
#: a source's magnification (see :func:`catalog.lensing.mu_pixel_change`); above it, or where the
#: sign of mu flips within one pixel (a critical curve closer than a pixel), mu is "undefined".
MU_PIXEL_CHANGE_MAX = 1.0


# -- GC-kappa correlation (SMACS0723 intracluster study) -----------------------------------------

#: Exponent of the GC density kernel W(d) = 1 / (S_L + d)^alpha (d and S_L in arcsec).
GC_KERNEL_ALPHA = 1.6
#: Softening length S_L of the GC density kernel, arcsec.
GC_KERNEL_SOFTENING_ARCSEC = 0.9
#: Side of the boxes in which GC counts and mean kappa are compared, arcsec.
BOX_ARCSEC = 3.0
#: Total GC mass over halo mass of the GC mass budget (Harris et al. 2017; used by Diego et al.
#: 2026), ``gccat correlate --gc-mass-fraction``.
GC_MASS_FRACTION = 2.9e-5
#: Bootstrap resamples of the box fits of ``gccat correlate`` (the errors of A and B).
CORRELATE_N_BOOT = 1000
#: Bootstrap resamples of the box fit per block, one Dask task of ``gccat correlate
#: --scheduler`` (the fits are the same whatever the block size).
BOOT_CHUNK = 250


# -- image stacks and simulated size limits (gccat stack, gccat sizes) ---------------------------

#: Background annulus of a stack's cutouts, inner and outer radius, pixels.
STACK_ANNULUS_PIX = (5.0, 10.0)
#: Side of a stack, arcsec (25 px at 0.03"/pix, about 8 FWHM of a NIRCam SW PSF).
STACK_SIDE_ARCSEC = 0.75
#: Half-light radii simulated by gccat sizes, proper pc.
SIZE_LIMIT_SIZES_PC = (20.0, 50.0, 100.0, 200.0)
#: Noise realisations per simulated size.
SIZE_LIMIT_N_SIM = 200
#: k of the resolved criterion: mean FWHM excess >= k x the point sources' FWHM scatter.
SIZE_LIMIT_NSIGMA = 3.0

#: Seconds to wait for a Dask scheduler before giving up with a one-line error.
SCHEDULER_TIMEOUT_S = 10.0
#: Batches of tasks a command keeps on a Dask cluster at once (:func:`catalog.runs.cluster.task_map`):
#: enough to keep a few workers busy, few enough to bound the memory of inputs and results.
DASK_BATCHES_IN_FLIGHT = 16
