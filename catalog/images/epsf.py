"""Empirical PSFs from the stars of an image, as the SMACS0723 intracluster study built them.

Stars are chosen on the half-light-radius vs magnitude diagram (default 25 to 27 AB mag and
r_h < 3 px), cut out in 2" x 2" stamps, re-centred and stacked into an effective PSF with
photutils' :class:`~photutils.psf.EPSFBuilder` (Anderson & King 2000), which is then sampled
back onto the image's pixel grid and normalised to sum 1.

Units: positions, radii and FWHMs in pixels; the image in nJy per pixel (magnitudes are AB,
m = 31.4 - 2.5 log10(f / nJy)).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from catalog.checks import as_grid as _image
from catalog.checks import as_mask as _bool_mask
from catalog.constants import AB_ZEROPOINT_NJY
from catalog.errors import GccatError
from catalog.images.background import _coarse_background, robust_noise

#: Fewest stars an ePSF is built from.
MIN_PSF_STARS = 5

#: Wing models of :func:`build_epsf`: ``moffat`` replaces the pixels where the stack is
#: noise by the circular Moffat fitted to it; ``none`` keeps the stack everywhere.
PSF_WING_MODELS = ("moffat", "none")

#: Radius of the aperture that normalises each star before stacking, in units of the stars'
#: median half-light radius (about 75% of a Moffat star's light, little of its sky noise).
STAR_FLUX_RADIUS_RH = 3.0


def check_wings(wings: str) -> str:
    """``wings`` if it is one of :data:`PSF_WING_MODELS`, else a one-line error."""
    if wings not in PSF_WING_MODELS:
        raise GccatError(f"--wings must be one of {', '.join(PSF_WING_MODELS)}, not {wings!r}")
    return wings


@dataclass
class StarCandidates:
    """Sources of an image measured for the r_h-magnitude diagram.

    Attributes
    ----------
    x, y : numpy.ndarray
        Centroids, pixels.
    mag_ab : numpy.ndarray
        Kron magnitude, AB.
    r_h_pix : numpy.ndarray
        Half-light radius (of the Kron flux), pixels.
    isolated : numpy.ndarray of bool
        No other source brighter than 10% of its flux inside its cutout, and the cutout on
        pixels with data.
    selected : numpy.ndarray of bool
        Passes the magnitude and r_h cuts and is isolated.
    """

    x: np.ndarray
    y: np.ndarray
    mag_ab: np.ndarray
    r_h_pix: np.ndarray
    isolated: np.ndarray
    selected: np.ndarray


def measure_candidates(
    image_njy,
    *,
    cutout_pix: int,
    mag_range=(25.0, 27.0),
    r_h_max_pix=3.0,
    mask=None,
    x=None,
    y=None,
    nsigma=3.0,
    npixels=5,
    background_box_pix=64,
) -> StarCandidates:
    """Sources of an image with their Kron magnitudes and half-light radii (photutils).

    The coarse background (median in ``background_box_pix`` boxes) is subtracted, sources are
    segmented above ``nsigma`` times the robust noise (at least ``npixels`` connected pixels)
    and measured with :class:`photutils.segmentation.SourceCatalog` (``kron_flux``,
    ``flux_radius(0.5)``). With ``x, y`` only the segments under those positions are kept
    (a catalog's sources); otherwise every segment is a candidate.

    Parameters
    ----------
    image_njy : array_like
        Image, nJy per pixel.
    cutout_pix : int
        Side of the star cutouts, pixels (for the isolation and on-image tests).
    mag_range : (float, float)
        AB magnitudes of the stars kept.
    r_h_max_pix : float
        Largest half-light radius of a star, pixels.
    mask : numpy.ndarray of bool, optional
        Pixels without data (True).
    x, y : array_like, optional
        Positions of catalog sources, pixels.

    Returns
    -------
    StarCandidates
    """
    from photutils.segmentation import SourceCatalog, detect_sources

    img = _image("image", image_njy)
    bad = ~np.isfinite(img) | _bool_mask(mask, img.shape)
    valid = ~bad
    data = np.where(valid, img - _coarse_background(img, valid, int(background_box_pix)), 0.0)
    noise = robust_noise(data, bad)
    if not (np.isfinite(noise) and noise > 0):
        raise GccatError("the image has no noise to segment its sources against")
    segm = detect_sources(np.where(valid, data, 0.0), nsigma * noise, n_pixels=int(npixels), mask=bad)
    empty = StarCandidates(*(np.empty(0) for _ in range(4)), np.empty(0, bool), np.empty(0, bool))
    if segm is None:
        return empty
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sources whose Kron aperture is undefined give NaN
        cat = SourceCatalog(data, segm, mask=bad)
        if x is not None:
            ix = np.clip(np.rint(np.asarray(x, float)).astype(int), 0, img.shape[1] - 1)
            iy = np.clip(np.rint(np.asarray(y, float)).astype(int), 0, img.shape[0] - 1)
            labels = np.unique(segm.data[iy, ix])
            labels = labels[labels > 0]
            if labels.size == 0:
                return empty
            sel = cat.get_labels(labels)
        else:
            sel = cat
        flux = np.atleast_1d(np.asarray(sel.kron_flux, float))
        rh = np.atleast_1d(np.asarray(getattr(sel.flux_radius(0.5), "value", sel.flux_radius(0.5)), float))
        cx = np.atleast_1d(np.asarray(sel.xcentroid, float))
        cy = np.atleast_1d(np.asarray(sel.ycentroid, float))
        all_x = np.asarray(cat.xcentroid, float)
        all_y = np.asarray(cat.ycentroid, float)
        all_f = np.asarray(cat.kron_flux, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        mag = np.where(flux > 0, AB_ZEROPOINT_NJY - 2.5 * np.log10(flux), np.nan)
    half = cutout_pix / 2.0
    ny, nx = img.shape
    isolated = np.zeros(cx.size, bool)
    for k in range(cx.size):
        near = (np.abs(all_x - cx[k]) < half) & (np.abs(all_y - cy[k]) < half)
        near &= ~((all_x == cx[k]) & (all_y == cy[k]))
        x0, y0 = int(np.rint(cx[k] - half)), int(np.rint(cy[k] - half))
        on = x0 >= 0 and y0 >= 0 and x0 + cutout_pix <= nx and y0 + cutout_pix <= ny
        isolated[k] = bool(
            on
            and not (np.nan_to_num(all_f[near]) > 0.1 * flux[k]).any()
            and not bad[y0 : y0 + cutout_pix, x0 : x0 + cutout_pix].any()
        )
    lo, hi = mag_range
    with np.errstate(invalid="ignore"):
        selected = (mag >= lo) & (mag <= hi) & (rh < r_h_max_pix) & isolated
    return StarCandidates(cx, cy, mag, rh, isolated, selected)


@dataclass
class EmpiricalPsf:
    """An ePSF built from stars (see :func:`build_epsf`).

    Attributes
    ----------
    psf : numpy.ndarray
        ``(cutout_pix, cutout_pix)`` PSF at the image's pixel scale, centred on the central
        pixel, sum 1.
    epsf : numpy.ndarray
        The oversampled ePSF of photutils.
    n_stars : int
        Stars stacked (those photutils did not exclude).
    n_excluded : int
        Stars photutils excluded after repeated fit failures.
    converged : bool
        Whether the star centres converged.
    flux_radius_pix : float or None
        Radius of the aperture each star was normalised by before stacking (None: the sum of
        its whole cutout, photutils' own estimate).
    wing_radius_pix : float
        Radius beyond which the PSF is the fitted Moffat (``inf``: the stack everywhere).
    """

    psf: np.ndarray
    epsf: np.ndarray
    n_stars: int
    n_excluded: int
    converged: bool
    flux_radius_pix: float | None = None
    wing_radius_pix: float = float("inf")


def build_epsf(
    image_njy,
    x,
    y,
    *,
    cutout_pix: int,
    oversampling: int = 4,
    mask=None,
    error=None,
    maxiters=10,
    flux_radius_pix: float | None = None,
    wings: str = "moffat",
):
    """Stack stars into an effective PSF sampled at the image's pixel scale.

    Each star's cutout (``cutout_pix`` side, odd) has its local background, the sigma-clipped
    median of the cutout's outermost 2 pixels, subtracted; :func:`photutils.psf.extract_stars`
    cuts the stars out of :class:`astropy.nddata.NDData` (with the error as its uncertainty),
    :class:`photutils.psf.EPSFBuilder` re-centres and stacks them (``oversampling``, quartic
    smoothing, 3-sigma clipping). The ePSF, which is already the PSF integrated over a pixel,
    is evaluated at the pixel centres of a ``cutout_pix`` stamp and normalised to sum 1.

    Each star enters the stack divided by its flux. photutils 3.0.0 divides by the flux it
    first estimates, the sum of the whole cutout, in every iteration (the fitted fluxes never
    reach the normalisation: photutils PR #2386, not released), and on a 2" cutout of a
    25-27 mag star that sum carries 10-25% of sky noise. With ``flux_radius_pix`` the stars
    are normalised by their flux in that aperture instead (photutils' ``flux`` column of the
    star catalog). With ``wings="moffat"`` the pixels where a circular Moffat fitted to the
    stack falls below the stack's own pixel noise (its robust scatter about the Moffat beyond
    3 FWHM) are replaced by the Moffat: thousands of noise pixels otherwise decide the
    normalisation to sum 1 (encircled energies off by up to 20% at 2" cutouts).

    Parameters
    ----------
    image_njy : array_like
        Image, nJy per pixel (any unit works: the PSF is normalised).
    x, y : array_like
        Star positions, pixels.
    cutout_pix : int
        Side of the cutouts and of the PSF, pixels (made odd).
    oversampling : int
        ePSF oversampling factor.
    mask, error : numpy.ndarray, optional
        Pixels without data (True); 1-sigma per-pixel errors.
    maxiters : int
        EPSFBuilder iterations.
    flux_radius_pix : float, optional
        Radius of the aperture that normalises each star, pixels.
    wings : {"moffat", "none"}
        Wing model (see above).

    Returns
    -------
    EmpiricalPsf
    """
    from astropy.nddata import NDData, StdDevUncertainty
    from astropy.stats import SigmaClip, sigma_clipped_stats
    from astropy.table import Table
    from photutils.aperture import CircularAperture
    from photutils.psf import EPSFBuilder, extract_stars

    img = _image("image", image_njy)
    bad = ~np.isfinite(img) | _bool_mask(mask, img.shape)
    size = int(cutout_pix) | 1
    half = size // 2
    xs, ys = np.asarray(x, float), np.asarray(y, float)
    datas, cats = [], []
    for xi, yi in zip(xs, ys, strict=True):
        ix, iy = int(np.rint(xi)), int(np.rint(yi))
        x0, y0 = ix - half - 2, iy - half - 2
        if x0 < 0 or y0 < 0 or x0 + size + 4 > img.shape[1] or y0 + size + 4 > img.shape[0]:
            continue
        sub = img[y0 : y0 + size + 4, x0 : x0 + size + 4]
        sub_bad = bad[y0 : y0 + size + 4, x0 : x0 + size + 4]
        frame = np.ones(sub.shape, bool)
        frame[4:-4, 4:-4] = False
        sky = sigma_clipped_stats(sub[frame & ~sub_bad], sigma=3.0)[1]
        unc = None
        if error is not None:
            e = np.asarray(error, float)[y0 : y0 + size + 4, x0 : x0 + size + 4]
            unc = StdDevUncertainty(np.where(np.isfinite(e) & (e > 0), e, np.inf))
        data = np.where(sub_bad, 0.0, sub - sky)
        datas.append(NDData(data, mask=sub_bad, uncertainty=unc))
        cat = {"x": [xi - x0], "y": [yi - y0]}
        if flux_radius_pix is not None:
            ap = CircularAperture((xi - x0, yi - y0), r=float(flux_radius_pix))
            cat["flux"] = [float(ap.do_photometry(data, mask=sub_bad)[0][0])]
        cats.append(Table(cat))
    check_wings(wings)
    if len(datas) < MIN_PSF_STARS:
        raise GccatError(f"only {len(datas)} stars have a whole {size}x{size} px cutout on the image")
    if flux_radius_pix is not None:
        ok = [float(c["flux"][0]) > 0 for c in cats]
        datas = [d for d, k in zip(datas, ok, strict=True) if k]
        cats = [c for c, k in zip(cats, ok, strict=True) if k]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # photutils' fit-quality warnings on faint stars
        stars = extract_stars(datas, cats, size=size)
        builder = EPSFBuilder(
            oversampling=int(oversampling),
            maxiters=int(maxiters),
            progress_bar=False,
            sigma_clip=SigmaClip(sigma=3.0, maxiters=10),
        )
        res = builder(stars)
    model = res.epsf
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    model.x_0, model.y_0, model.flux = half, half, 1.0
    psf = np.asarray(model(xx, yy), float)
    if not (np.isfinite(psf).all() and psf.sum() > 0):
        raise GccatError("the stacked ePSF is not finite or sums to <= 0")
    wing_radius = float("inf")
    if wings == "moffat":
        psf, wing_radius = moffat_wings(psf)
    return EmpiricalPsf(
        psf=psf / psf.sum(),
        epsf=np.asarray(model.data, float),
        n_stars=int(len(stars.all_good_stars)) if hasattr(stars, "all_good_stars") else len(datas),
        n_excluded=int(res.n_excluded_stars),
        converged=bool(res.converged),
        flux_radius_pix=None if flux_radius_pix is None else float(flux_radius_pix),
        wing_radius_pix=wing_radius,
    )


def _fit_moffat(p: np.ndarray):
    """Circular Moffat (astropy ``Moffat2D``) fitted to a centred stamp, and the pixel grid."""
    from astropy.modeling import fitting, models

    ny, nx = p.shape
    yy, xx = np.mgrid[0:ny, 0:nx].astype(float)
    m0 = models.Moffat2D(amplitude=p.max(), x_0=(nx - 1) / 2, y_0=(ny - 1) / 2, gamma=2.0, alpha=2.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fitting.LMLSQFitter()(m0, xx, yy, p, maxiter=500), xx, yy


def moffat_wings(psf, min_pixels: int = 100) -> tuple[np.ndarray, float]:
    """Replace a stacked PSF's noise-dominated wings by the Moffat fitted to it.

    The pixel noise of the stack is the robust (MAD) scatter of the stack about the fitted
    circular Moffat beyond 3 FWHM; the wing radius is where the Moffat falls below it.

    Parameters
    ----------
    psf : array_like
        Centred PSF stamp (any normalisation).
    min_pixels : int
        Fewest pixels beyond 3 FWHM to measure the noise on; with fewer the stamp is returned
        unchanged.

    Returns
    -------
    (numpy.ndarray, float)
        The stamp (the same normalisation) and the wing radius in pixels (``inf`` if unchanged).
    """
    p = _image("psf", psf)
    m, xx, yy = _fit_moffat(p)
    model = m(xx, yy)
    r = np.hypot(xx - m.x_0.value, yy - m.y_0.value)
    far = r > 3 * abs(m.fwhm)
    if far.sum() < min_pixels or not np.isfinite(model).all():
        return p, float("inf")
    resid = (p - model)[far]
    noise = 1.4826 * np.median(np.abs(resid - np.median(resid)))
    # The Moffat's radial profile, on a fine grid, against the noise.
    rr = np.linspace(0.0, float(r.max()), 4000)
    profile = m.amplitude.value * (1 + (rr / m.gamma.value) ** 2) ** (-m.alpha.value)
    below = rr[profile < noise]
    if not below.size:
        return p, float("inf")
    wing_radius = float(below[0])
    return np.where(r > wing_radius, model, p), wing_radius


def psf_fwhm_pix(psf) -> float:
    """FWHM of a centred PSF stamp from a circular Moffat fit (astropy), pixels.

    Parameters
    ----------
    psf : array_like
        PSF stamp centred on its array centre.

    Returns
    -------
    float
        FWHM of the fitted Moffat profile (evaluated at pixel centres), pixels.
    """
    return float(_fit_moffat(_image("psf", psf))[0].fwhm)


def empirical_psf(
    image_njy,
    *,
    cutout_pix: int,
    mag_range=(25.0, 27.0),
    r_h_max_pix=3.0,
    oversampling=2,
    min_stars=MIN_PSF_STARS,
    mask=None,
    error=None,
    x=None,
    y=None,
    wings="moffat",
) -> tuple[EmpiricalPsf, StarCandidates]:
    """Select the stars of an image on the r_h-magnitude diagram and stack them into a PSF.

    :func:`measure_candidates`, then :func:`build_epsf` of the selected stars, each normalised
    by its flux within ``STAR_FLUX_RADIUS_RH`` times the stars' median half-light radius.

    Parameters
    ----------
    image_njy : array_like
        Image, nJy per pixel.
    cutout_pix : int
        Side of the cutouts and of the PSF, pixels.
    mag_range : (float, float)
        AB magnitudes of the stars.
    r_h_max_pix : float
        Largest half-light radius of a star, pixels.
    oversampling : int
        ePSF oversampling factor.
    min_stars : int
        Fewest stars to stack.
    mask, error, x, y, wings
        As for :func:`measure_candidates` and :func:`build_epsf`.

    Returns
    -------
    (EmpiricalPsf, StarCandidates)

    Raises
    ------
    GccatError
        One line saying how many stars passed which cut, when fewer than ``min_stars`` did.
    """
    lo, hi = (float(v) for v in mag_range)
    if not lo < hi:
        raise GccatError(f"--mag-range must be two increasing AB magnitudes, not {lo:g},{hi:g}")
    cand = measure_candidates(
        image_njy,
        cutout_pix=int(cutout_pix),
        mag_range=(lo, hi),
        r_h_max_pix=r_h_max_pix,
        mask=mask,
        x=x,
        y=y,
    )
    n = int(cand.selected.sum())
    if n < int(min_stars):
        raise GccatError(
            f"only {n} of {cand.x.size} sources pass the star cut ({lo:g} <= mag <= {hi:g} AB, "
            f"r_h < {r_h_max_pix:g} px, isolated in a {int(cutout_pix)} px cutout); need at least "
            f"{int(min_stars)}: widen --mag-range or --rh-max"
        )
    psf = build_epsf(
        image_njy,
        cand.x[cand.selected],
        cand.y[cand.selected],
        cutout_pix=cutout_pix,
        oversampling=oversampling,
        mask=mask,
        error=error,
        flux_radius_pix=max(1.0, STAR_FLUX_RADIUS_RH * float(np.median(cand.r_h_pix[cand.selected]))),
        wings=wings,
    )
    return psf, cand
