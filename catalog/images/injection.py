"""Point-source injection, injection-recovery and the flux-correction polynomial.

* **Injection-recovery** (Sparkler, ``docs/methods.md``): point sources injected near each
  target at 0.1-10 times its measured flux, at 20 locations, measured the same way as the
  science photometry (:mod:`catalog.images.apertures`), and intrinsic versus measured flux
  fitted by a second-order polynomial (the numbers live in :mod:`catalog.constants`).
* **Full-random injection** (Firefly Sparkle): a model injected at random places in a stamp;
  flux uncertainty = biweight scale of the recovered minus injected fluxes.

Units: positions, distances and stamp sizes in pixels, fluxes in image units. Random numbers
come only from a ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from astropy.stats import biweight_location, biweight_scale

from catalog.checks import as_grid as _image
from catalog.checks import as_mask as _bool_mask
from catalog.checks import as_rng as _rng
from catalog.constants import (
    FLUX_CORRECTION_DEGREE,
    INJECT_FLUX_RANGE,
    INJECT_N_FLUX,
    INJECT_N_LOCATIONS,
    UPPER_LIMIT_NSIGMA,
)
from catalog.errors import GccatError, GccatWarning
from catalog.images._common import _positions, _radii
from catalog.images.apertures import _annulus_width, aperture_photometry
from catalog.images.background import _dilate
from catalog.images.psf import _normalised_psf, _PsfShifter


def _add_stamp(image: np.ndarray, stamp: np.ndarray, ix0: int, iy0: int, scale: float) -> None:
    """Add ``scale * stamp`` with its first pixel at ``(ix0, iy0)``, clipped to the image."""
    ny, nx = image.shape
    sy, sx = stamp.shape
    y0, x0 = max(iy0, 0), max(ix0, 0)
    y1, x1 = min(iy0 + sy, ny), min(ix0 + sx, nx)
    if y1 <= y0 or x1 <= x0:
        return
    image[y0:y1, x0:x1] += scale * stamp[y0 - iy0 : y1 - iy0, x0 - ix0 : x1 - ix0]


def _recover_injection(task) -> tuple[float, float, int]:
    """PSF-fit one injection on its tile: flux, error (image units) and quality bits."""
    from catalog.images.psfphot import psf_photometry

    tile, err, bad, psf, px, py, fit_kw = task
    fit = psf_photometry(tile, px, py, psf, error=err, mask=bad, **fit_kw)
    return float(fit["flux"][0]), float(fit["flux_err"][0]), int(fit["quality"][0])


def inject_point_sources(image, psf, x, y, flux) -> np.ndarray:
    """Add point sources to a copy of an image.

    Parameters
    ----------
    image : array_like
        ``(ny, nx)`` image in image units.
    psf : array_like
        PSF stamp centred on its array centre (normalised here to sum 1), or any model stamp
        (e.g. a multi-component source model for full-model injection).
    x, y : array_like
        Positions, pixels (sub-pixel positions by a Fourier shift of the PSF).
    flux : float or array_like
        Total flux of each source, image units.

    Returns
    -------
    numpy.ndarray
        A float64 copy (float32 if the image is float32) with the sources added; each adds
        exactly its flux, except for light falling off the image.
    """
    dtype = np.float32 if np.asarray(image).dtype == np.float32 else np.float64
    out = np.array(_image("image", image, dtype=dtype), copy=True)
    xs, ys = _positions(x, y)
    fl = np.broadcast_to(np.asarray(flux, dtype=float), xs.shape)
    if not (np.isfinite(xs).all() and np.isfinite(ys).all() and np.isfinite(fl).all()):
        raise GccatError("injected positions and fluxes must be finite")
    shifter = _PsfShifter(_normalised_psf(psf))
    for xi, yi, fi in zip(xs, ys, fl, strict=True):
        stamp, ix0, iy0 = shifter.place(float(xi), float(yi))
        _add_stamp(out, stamp, ix0, iy0, float(fi))
    return out


def _footprint_clear(grown_bad: np.ndarray, x: np.ndarray, y: np.ndarray, reach: float) -> np.ndarray:
    """True where the circle of ``reach`` pixels lies on the image and holds no bad pixel;
    ``grown_bad`` is the bad-pixel mask grown by ``reach + 0.5`` (``_dilate``).
    """
    ny, nx = grown_bad.shape
    ok = (x - reach >= -0.5) & (x + reach <= nx - 0.5) & (y - reach >= -0.5) & (y + reach <= ny - 0.5)
    ix = np.clip(np.floor(x + 0.5).astype(int), 0, nx - 1)
    iy = np.clip(np.floor(y + 0.5).astype(int), 0, ny - 1)
    return ok & ~grown_bad[iy, ix]


def _bad_pixels(img: np.ndarray, error, weight, mask) -> tuple[np.ndarray, np.ndarray | None]:
    """Pixels without usable data and the error map (from ``error`` or ``1/sqrt(weight)``)."""
    shape = img.shape
    bad = ~np.isfinite(img) | _bool_mask(mask, shape)
    err = None
    if weight is not None:
        w = _image("weight", weight, shape)
        bad |= ~(w > 0)
        if error is None:
            with np.errstate(divide="ignore"):
                err = np.where(w > 0, 1.0 / np.sqrt(np.where(w > 0, w, 1.0)), np.inf)
    if error is not None:
        err = _image("error", error, shape)
    if err is not None:
        bad |= ~np.isfinite(err)
    return bad, err


def _injection_batches(img, bad, err, xs, ys, fluxes, opts, batch_size=None):
    """The injections in batches, each a task of :func:`_measure_batch`: per injection the tile
    of the image (and of ``bad`` and ``err``) within ``r_max + annulus + 2`` pixels of it,
    clipped to the image, laid side by side in a mosaic, with the injection's position in the
    mosaic and its flux. Yields ``(slice of the injections, task)``.
    """
    radii, width = opts[1], opts[2]
    h = int(math.ceil(float(radii.max()) + width)) + 2
    t = 2 * h + 1
    ny, nx = img.shape
    n = xs.size
    if batch_size is None:  # about 20 batches, so that progress moves; 4096 at most (memory)
        batch_size = int(min(4096, max(256, math.ceil(n / 20))))
    for start in range(0, n, batch_size):
        sl = slice(start, min(start + batch_size, n))
        m = sl.stop - sl.start
        ncol = int(math.ceil(math.sqrt(m)))
        nrow = int(math.ceil(m / ncol))
        mos = np.zeros((nrow * t, ncol * t))
        mos_bad = np.ones((nrow * t, ncol * t), dtype=bool)
        mos_err = None if err is None else np.full((nrow * t, ncol * t), np.inf)
        lx = np.empty(m)
        ly = np.empty(m)
        for q in range(m):
            xi, yi = float(xs[start + q]), float(ys[start + q])
            cx, cy = int(np.floor(xi + 0.5)), int(np.floor(yi + 0.5))
            ty, tx = (q // ncol) * t, (q % ncol) * t
            # copy the image tile around (cx, cy), clipped to the image
            y0, y1 = max(cy - h, 0), min(cy + h + 1, ny)
            x0, x1 = max(cx - h, 0), min(cx + h + 1, nx)
            oy, ox = ty + y0 - (cy - h), tx + x0 - (cx - h)
            mos[oy : oy + y1 - y0, ox : ox + x1 - x0] = img[y0:y1, x0:x1]
            mos_bad[oy : oy + y1 - y0, ox : ox + x1 - x0] = bad[y0:y1, x0:x1]
            if mos_err is not None:
                mos_err[oy : oy + y1 - y0, ox : ox + x1 - x0] = err[y0:y1, x0:x1]
            lx[q] = xi - (cx - h) + tx
            ly[q] = yi - (cy - h) + ty
        yield sl, (mos, mos_bad, mos_err, lx, ly, np.asarray(fluxes[sl], dtype=float), t, ncol, opts)


def _measure_batch(task) -> tuple[np.ndarray, np.ndarray]:
    """Add each injection of a batch (:func:`_injection_batches`) to its own tile of the mosaic
    and measure them all by one :func:`aperture_photometry` call: fluxes and errors (image
    units), ``(m, n_radii)``.
    """
    mos, mos_bad, mos_err, lx, ly, fluxes, t, ncol, opts = task
    psf, radii, width, psf_for_correction, upper_limit_nsigma, psf_annulus_correction = opts
    shifter = _PsfShifter(psf)
    for q in range(lx.size):
        ty, tx = (q // ncol) * t, (q % ncol) * t
        stamp, ix0, iy0 = shifter.place(lx[q], ly[q])
        tile = mos[ty : ty + t, tx : tx + t]  # a view: the source stays inside its own tile
        _add_stamp(tile, stamp, ix0 - tx, iy0 - ty, float(fluxes[q]))
    res = aperture_photometry(
        mos,
        lx,
        ly,
        radii,
        error=mos_err,
        mask=mos_bad,
        annulus_width_pix=width,
        psf=psf_for_correction,
        upper_limit_nsigma=upper_limit_nsigma,
        psf_annulus_correction=psf_annulus_correction,
    )
    return res["flux"], res["flux_err"]


def _measure_sets(img, bad, err, sets, opts, *, batch_size=None, progress=None, map_tasks=None) -> list[dict]:
    """:func:`_measure_injections` of several sets of injections ``(x, y, flux)`` at once, each
    set in its own batches (so that its numbers are those of measuring it alone), all the
    batches in one ``map_tasks`` (default the built-in ``map``): one dict per set.
    """
    k = opts[1].size
    out = [{key: np.full((xs.size, k), np.nan) for key in ("flux_out", "flux_err")} for xs, _, _ in sets]
    total = max(sum(xs.size for xs, _, _ in sets), 1)
    where: list[tuple[int, slice]] = []

    def tasks():
        for i, (xs, ys, fluxes) in enumerate(sets):
            for sl, task in _injection_batches(img, bad, err, xs, ys, fluxes, opts, batch_size):
                where.append((i, sl))
                yield task

    done = 0
    for q, (f, e) in enumerate((map if map_tasks is None else map_tasks)(_measure_batch, tasks())):
        i, sl = where[q]
        out[i]["flux_out"][sl] = f
        out[i]["flux_err"][sl] = e
        done += sl.stop - sl.start
        if progress is not None:
            progress(done / total)
    return out


def _measure_injections(
    img: np.ndarray,
    bad: np.ndarray,
    err: np.ndarray | None,
    psf: np.ndarray,
    xs: np.ndarray,
    ys: np.ndarray,
    fluxes: np.ndarray,
    radii: np.ndarray,
    width: float,
    psf_for_correction: np.ndarray | None,
    upper_limit_nsigma: float,
    psf_annulus_correction: bool,
    batch_size: int | None = None,
    progress=None,
    map_tasks=None,
) -> dict[str, np.ndarray]:
    """Inject one source per copy of the image and measure it with :func:`aperture_photometry`.

    ``progress``, if given, is called with the fraction of injections measured after each batch;
    ``map_tasks(function, tasks)`` (default the built-in ``map``) runs the batches, e.g. on Dask.

    Only the pixels within ``r_max + annulus`` of an injected source enter its measurement, so
    each copy is reduced to a tile of that reach around the source; the tiles (each holding the
    real image, with its neighbours, noise and halo, plus exactly one injected source) are laid
    side by side in a mosaic and measured by a single photometry call. This is the same as
    injecting one source at a time into the full image, at a fraction of the cost. The batches
    depend on the number of injections only, so where they run does not change the numbers.
    """
    opts = (psf, radii, width, psf_for_correction, upper_limit_nsigma, psf_annulus_correction)
    sets = [(xs, ys, fluxes)]
    return _measure_sets(
        img, bad, err, sets, opts, batch_size=batch_size, progress=progress, map_tasks=map_tasks
    )[0]


def _draw_near(
    rng: np.random.Generator,
    x0: float,
    y0: float,
    rmin: float,
    rmax: float,
    n: int,
    grown_bad: np.ndarray,
    reach: float,
    max_tries: int = 200,
) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``n`` positions uniform in area between ``rmin`` and ``rmax`` of ``(x0, y0)``, each
    with a clear aperture footprint of radius ``reach`` (see ``_footprint_clear``).
    """
    got_x: list[float] = []
    got_y: list[float] = []
    for _ in range(max_tries):
        k = 4 * n
        rad = np.sqrt(rng.uniform(rmin**2, rmax**2, k))
        phi = rng.uniform(0.0, 2.0 * np.pi, k)
        cx, cy = x0 + rad * np.cos(phi), y0 + rad * np.sin(phi)
        ok = _footprint_clear(grown_bad, cx, cy, reach)
        got_x.extend(cx[ok].tolist())
        got_y.extend(cy[ok].tolist())
        if len(got_x) >= n:
            break
    return np.asarray(got_x[:n]), np.asarray(got_y[:n])


def _injection_plan(rng, xs, ys, ref, factors, min_sep_pix, max_sep_pix, n_locations, grown_bad, reach,
                    skip: str) -> dict[str, np.ndarray]:  # fmt: skip
    """Where and how bright the injections near each target go: ``n_locations`` clear places
    (:func:`_draw_near`) times the fluxes ``ref[i] * factors``; a target without a finite
    position or a positive ``ref`` is skipped with the warning ``skip``. Returns ``target``,
    ``x``, ``y``, ``flux_in``.
    """
    cols: dict[str, list] = {"target": [], "x": [], "y": [], "flux_in": []}
    for i in range(xs.size):
        if not (np.isfinite(xs[i]) and np.isfinite(ys[i]) and np.isfinite(ref[i]) and ref[i] > 0):
            warnings.warn(f"target {i}: {skip}, skipped", GccatWarning, stacklevel=3)
            continue
        lx, ly = _draw_near(
            rng, xs[i], ys[i], float(min_sep_pix), float(max_sep_pix), int(n_locations), grown_bad, reach
        )
        if lx.size < int(n_locations):
            warnings.warn(
                f"target {i}: only {lx.size} clear injection positions of {n_locations}",
                GccatWarning,
                stacklevel=3,
            )
        cols["target"].append(np.full(lx.size * factors.size, i, dtype=np.int64))
        cols["x"].append(np.tile(lx, factors.size))
        cols["y"].append(np.tile(ly, factors.size))
        cols["flux_in"].append(np.repeat(ref[i] * factors, lx.size))
    return {
        k: (np.concatenate(v) if v else np.zeros(0, dtype=np.int64 if k == "target" else float))
        for k, v in cols.items()
    }


def injection_recovery(
    image,
    psf,
    x,
    y,
    measured_flux,
    radii_pix,
    *,
    error=None,
    weight=None,
    mask=None,
    n_flux=INJECT_N_FLUX,
    n_locations=INJECT_N_LOCATIONS,
    flux_range=INJECT_FLUX_RANGE,
    min_sep_pix=4.0,
    max_sep_pix=15.0,
    rng,
    annulus_width_pix=None,
    aperture_correct=True,
    psf_annulus_correction=True,
    upper_limit_nsigma=UPPER_LIMIT_NSIGMA,
    progress=None,
    map_tasks=None,
) -> dict[str, np.ndarray]:
    """Point-source injection-recovery around each target (the Sparkler procedure).

    For target ``i``, ``n_flux`` fluxes log-spaced over ``flux_range * measured_flux[i]`` are
    each injected at the same ``n_locations`` positions, drawn uniformly in area at distances
    ``min_sep_pix`` to ``max_sep_pix`` from the target with no masked pixel (nor pixel without
    data) within the largest aperture radius + 1 px. Each injection is measured alone by
    :func:`aperture_photometry` with the same radii, annulus and aperture correction
    (``_measure_injections``), so ``flux_out`` is what the science photometry would report for a
    source of total flux ``flux_in`` in that environment. Fit intrinsic versus measured with
    :func:`fit_flux_correction`.

    Parameters
    ----------
    image, error, weight, mask
        As for :func:`aperture_photometry` (image units).
    psf : array_like
        PSF stamp injected (normalised to sum 1 here) and, with ``aperture_correct``, used for
        the aperture correction: call the science photometry with the same ``psf``.
    x, y : array_like
        Target positions, pixels.
    measured_flux : array_like
        Measured flux of each target, image units. Where it is not positive or not finite the
        target's ``upper_limit_nsigma``-sigma flux limit (first radius) is used as reference.
    radii_pix : float or array_like
        Aperture radii, pixels.
    n_flux, n_locations : int
        Fluxes per target and positions per target (every flux at every position).
    flux_range : (float, float)
        Injected fluxes span these multiples of the reference flux (log-spaced).
    min_sep_pix, max_sep_pix : float
        Range of distances from the target, pixels.
    rng : numpy.random.Generator
        Source of the positions.
    annulus_width_pix : float, optional
        As for :func:`aperture_photometry`.
    aperture_correct : bool
        Measure with the PSF aperture correction (as the science photometry should).
    psf_annulus_correction, upper_limit_nsigma
        As for :func:`aperture_photometry`.
    progress : callable, optional
        Called with the fraction of injections measured so far (0-1), after each batch.
    map_tasks : callable, optional
        ``map_tasks(function, tasks)`` returning the results in order, e.g. a Dask client's map
        and gather; each task is a batch of injection tiles (up to 4096, as many as the number of
        injections alone decides), so the results do not depend on it. Default: the built-in
        ``map``. The positions are drawn before any task runs.

    Returns
    -------
    dict of numpy.ndarray
        Flat over all injections: ``target`` (index into x, y), ``x``, ``y`` (pixels),
        ``flux_in`` (image units), ``flux_out`` and ``flux_err`` of shape ``(n, n_radii)``,
        ``recovered`` (``(n, n_radii)`` bool: ``flux_out > upper_limit_nsigma * flux_err``).
        A target with fewer clear positions than ``n_locations`` gets fewer rows (a
        :class:`GccatWarning` says so).
    """
    rng = _rng(rng)
    img = _image("image", image)
    xs, ys = _positions(x, y)
    meas = np.broadcast_to(np.asarray(measured_flux, dtype=float), xs.shape)
    radii = _radii(radii_pix)
    width = _annulus_width(annulus_width_pix)
    p = _normalised_psf(psf)
    lo, hi = (float(v) for v in flux_range)
    if not (0 < lo <= hi) or int(n_flux) < 1 or int(n_locations) < 1:
        raise GccatError("flux_range must be 0 < low <= high and n_flux, n_locations >= 1")
    if not (0 <= min_sep_pix < max_sep_pix):
        raise GccatError("need 0 <= min_sep_pix < max_sep_pix")
    bad, err = _bad_pixels(img, error, weight, mask)
    ref = meas.copy()
    weak = ~(np.isfinite(ref) & (ref > 0))
    if weak.any():
        lim = aperture_photometry(
            img,
            xs[weak],
            ys[weak],
            radii[:1],
            error=err,
            mask=bad,
            annulus_width_pix=width,
            psf=p if aperture_correct else None,
            upper_limit_nsigma=upper_limit_nsigma,
            psf_annulus_correction=psf_annulus_correction,
        )["flux_limit"][:, 0]
        ref[weak] = lim
    factors = np.geomspace(lo, hi, int(n_flux))
    reach = float(radii.max()) + 1.0
    grown_bad = _dilate(bad, reach + 0.5)
    out = _injection_plan(rng, xs, ys, ref, factors, min_sep_pix, max_sep_pix, n_locations, grown_bad, reach,
                          "no usable position or reference flux")  # fmt: skip
    meas_res = _measure_injections(
        img,
        bad,
        err,
        p,
        out["x"],
        out["y"],
        out["flux_in"],
        radii,
        width,
        p if aperture_correct else None,
        float(upper_limit_nsigma),
        psf_annulus_correction,
        progress=progress,
        map_tasks=map_tasks,
    )
    out.update(meas_res)
    with np.errstate(invalid="ignore"):
        out["recovered"] = out["flux_out"] > float(upper_limit_nsigma) * out["flux_err"]
    return out


def injection_random(
    image,
    psf,
    stamp_center,
    stamp_size_pix,
    flux,
    n,
    radii_pix,
    *,
    rng,
    error=None,
    weight=None,
    mask=None,
    annulus_width_pix=None,
    aperture_correct=True,
    psf_annulus_correction=True,
) -> dict:
    """Full-random injection (the Firefly Sparkle procedure): ``n`` copies at random places.

    The model (``psf``: a PSF or any source model stamp) of total ``flux`` is injected at ``n``
    positions drawn uniformly in a square stamp (positions whose largest aperture + 1 px would
    touch a masked pixel or leave the image are redrawn), one per image copy, and measured
    with :func:`aperture_photometry`. The flux uncertainty is the biweight scale of
    ``flux_out - flux_in``, which includes noise, background and crowding in the stamp.
    :func:`injection_random_stamps` does it for several stamps at once.

    Parameters
    ----------
    image, error, weight, mask
        As for :func:`aperture_photometry` (image units).
    psf : array_like
        Model stamp, normalised here to sum 1.
    stamp_center : (float, float)
        Stamp centre ``(x, y)``, pixels.
    stamp_size_pix : float or (float, float)
        Side of the stamp, pixels, or ``(size_x, size_y)`` (10" = 333 px at 0.03"/pix in the paper).
    flux : float
        Total injected flux, image units.
    n : int
        Number of positions (100 in the paper).
    radii_pix : float or array_like
        Aperture radii, pixels.
    rng : numpy.random.Generator
        Source of the positions.
    annulus_width_pix, aperture_correct, psf_annulus_correction
        As for :func:`injection_recovery`.

    Returns
    -------
    dict
        ``x``, ``y`` (n,), ``flux_in`` (n,), ``flux_out`` and ``flux_err`` (n, n_radii),
        ``flux_error_biweight`` and ``flux_offset_biweight`` (n_radii,: biweight scale and
        location of ``flux_out - flux_in``, image units).
    """
    try:
        centre = tuple(float(v) for v in stamp_center)
    except (TypeError, ValueError):
        centre = ()
    if len(centre) != 2:
        raise GccatError(f"stamp_center must be (x, y) in pixels, got {stamp_center!r}")
    return injection_random_stamps(
        image,
        psf,
        [centre],
        stamp_size_pix,
        [flux],
        n,
        radii_pix,
        rng=rng,
        error=error,
        weight=weight,
        mask=mask,
        annulus_width_pix=annulus_width_pix,
        aperture_correct=aperture_correct,
        psf_annulus_correction=psf_annulus_correction,
    )[0]


def _draw_in_stamp(rng, cx, cy, sx, sy, n, grown_bad, reach) -> tuple[np.ndarray, np.ndarray]:
    """``n`` positions uniform in the stamp of sides ``sx``, ``sy`` about ``(cx, cy)`` with a
    clear footprint of ``reach`` (:func:`_footprint_clear`), drawn 4n at a time.
    """
    got_x: list[float] = []
    got_y: list[float] = []
    for _ in range(200):
        px = rng.uniform(cx - sx / 2, cx + sx / 2, 4 * n)
        py = rng.uniform(cy - sy / 2, cy + sy / 2, 4 * n)
        ok = _footprint_clear(grown_bad, px, py, reach)
        got_x.extend(px[ok].tolist())
        got_y.extend(py[ok].tolist())
        if len(got_x) >= n:
            break
    if len(got_x) < n:
        raise GccatError(f"only {len(got_x)} clear positions in the stamp for {n} injections")
    return np.asarray(got_x[:n]), np.asarray(got_y[:n])


def injection_random_stamps(
    image,
    psf,
    stamp_centers,
    stamp_size_pix,
    fluxes,
    n,
    radii_pix,
    *,
    rng,
    error=None,
    weight=None,
    mask=None,
    annulus_width_pix=None,
    aperture_correct=True,
    psf_annulus_correction=True,
    progress=None,
    map_tasks=None,
) -> list[dict]:
    """:func:`injection_random` in several stamps: the same numbers as one call per stamp in
    order with the same ``rng``, but the measurements of all stamps in one ``map_tasks``.

    All the positions are drawn first, stamp by stamp (the measurements draw no random
    numbers), then the injections are measured in the batches one call per stamp would make.

    Parameters
    ----------
    stamp_centers : sequence of (float, float)
        Stamp centres ``(x, y)``, pixels.
    fluxes : array_like
        Total injected flux of each stamp, image units.
    progress : callable, optional
        Called with the fraction of injections measured so far (0-1), after each batch.
    map_tasks : callable, optional
        ``map_tasks(function, tasks)`` returning the results in order, e.g. a Dask client's map
        and gather; each task is a batch of injection tiles. Default: the built-in ``map``.
    image, psf, stamp_size_pix, n, radii_pix, rng, error, weight, mask, annulus_width_pix, \
    aperture_correct, psf_annulus_correction
        As for :func:`injection_random`.

    Returns
    -------
    list of dict
        One :func:`injection_random` result per stamp.
    """
    rng = _rng(rng)
    img = _image("image", image)
    radii = _radii(radii_pix)
    width = _annulus_width(annulus_width_pix)
    p = _normalised_psf(psf)
    centres = np.asarray(stamp_centers, dtype=float).reshape(-1, 2)
    fl = np.asarray(fluxes, dtype=float).ravel()
    if fl.size != len(centres):
        raise GccatError(f"{len(centres)} stamp centres but {fl.size} fluxes")
    sx, sy = (float(v) for v in np.broadcast_to(np.asarray(stamp_size_pix, dtype=float), (2,)))
    n = int(n)
    if n < 2 or not (sx > 0 and sy > 0) or not np.isfinite(fl).all():
        raise GccatError("need n >= 2, a positive stamp size and a finite flux")
    bad, err = _bad_pixels(img, error, weight, mask)
    reach = float(radii.max()) + 1.0
    grown_bad = _dilate(bad, reach + 0.5)
    sets = []
    for (cx, cy), f in zip(centres, fl, strict=True):
        xs, ys = _draw_in_stamp(rng, float(cx), float(cy), sx, sy, n, grown_bad, reach)
        sets.append((xs, ys, np.full(n, float(f))))
    opts = (p, radii, width, p if aperture_correct else None, UPPER_LIMIT_NSIGMA, psf_annulus_correction)
    out = []
    measured = _measure_sets(img, bad, err, sets, opts, progress=progress, map_tasks=map_tasks)
    for (xs, ys, fin), res in zip(sets, measured, strict=True):
        diff = res["flux_out"] - fin[:, None]
        out.append(
            {
                "x": xs,
                "y": ys,
                "flux_in": fin,
                "flux_out": res["flux_out"],
                "flux_err": res["flux_err"],
                "flux_error_biweight": np.array([biweight_scale(d[np.isfinite(d)]) for d in diff.T]),
                "flux_offset_biweight": np.array([biweight_location(d[np.isfinite(d)]) for d in diff.T]),
            }
        )
    return out


def fit_flux_correction(flux_measured, flux_intrinsic, deg=FLUX_CORRECTION_DEGREE) -> np.ndarray:
    """Polynomial of intrinsic flux as a function of measured flux, from injections.

    Parameters
    ----------
    flux_measured, flux_intrinsic : array_like
        Recovered and injected fluxes of one target (one radius), image units; pairs with a
        non-finite value are dropped.
    deg : int
        Polynomial degree (2 in the Sparkler study).

    Returns
    -------
    numpy.ndarray
        Coefficients, highest power first (``numpy.polyfit`` order). The fit is only valid over
        the range of measured fluxes injected.
    """
    m = np.asarray(flux_measured, dtype=float).ravel()
    t = np.asarray(flux_intrinsic, dtype=float).ravel()
    if m.shape != t.shape:
        raise GccatError(f"flux_measured and flux_intrinsic differ in length ({m.size} and {t.size})")
    ok = np.isfinite(m) & np.isfinite(t)
    deg = int(deg)
    if ok.sum() <= deg:
        raise GccatError(f"a degree-{deg} flux correction needs more than {deg} finite pairs, got {ok.sum()}")
    return np.polyfit(m[ok], t[ok], deg)


def apply_flux_correction(coeffs, flux_measured) -> np.ndarray:
    """Intrinsic flux from measured flux with :func:`fit_flux_correction` coefficients (image units)."""
    return np.polyval(np.asarray(coeffs, dtype=float), np.asarray(flux_measured, dtype=float))


def location_scatter(coeffs, flux_in, flux_out, flux_err, flux_ref: float) -> tuple[float, float]:
    """The scatter of corrected fluxes over the injection locations of one target, and the part
    of it the photometric errors explain.

    At the injected flux level nearest ``flux_ref`` (the target's measured flux), the fluxes
    measured at the ``n_locations`` places are corrected with ``coeffs``; their biweight scale
    is the location scatter (the Sparkler study propagates it into the target's error). It
    holds the measurement noise at those places too: ``noise`` is the median measured error
    there times the polynomial's slope, so that ``max(0, scatter^2 - noise^2)`` is what the
    locations add to the target's own (propagated) error.

    Parameters
    ----------
    coeffs : array_like
        :func:`fit_flux_correction` coefficients.
    flux_in, flux_out, flux_err : array_like
        Injected flux, measured flux and its error of the target's injections (one radius),
        image units.
    flux_ref : float
        The target's measured flux (image units); non-finite or <= 0: the median level.

    Returns
    -------
    scatter, noise : float
        Image units; NaN with fewer than 3 finite measurements at the level.
    """
    fin = np.asarray(flux_in, float)
    out = np.asarray(flux_out, float)
    err = np.asarray(flux_err, float)
    levels = np.unique(fin[np.isfinite(fin)])
    if levels.size == 0:
        return float("nan"), float("nan")
    ref = float(flux_ref) if np.isfinite(flux_ref) and flux_ref > 0 else float(np.median(levels))
    level = levels[np.argmin(np.abs(np.log(levels / ref)))]
    at = (fin == level) & np.isfinite(out) & np.isfinite(err)
    if at.sum() < 3:
        return float("nan"), float("nan")
    corrected = apply_flux_correction(coeffs, out[at])
    c = np.asarray(coeffs, float)
    slope = abs(np.polyval(np.polyder(c), ref)) if c.size > 1 else 0.0
    return float(biweight_scale(corrected)), float(slope * np.median(err[at]))


def psf_injection_recovery(
    image,
    psf,
    x,
    y,
    measured_flux,
    *,
    error=None,
    weight=None,
    mask=None,
    neighbours=None,
    n_flux=INJECT_N_FLUX,
    n_locations=INJECT_N_LOCATIONS,
    flux_range=INJECT_FLUX_RANGE,
    min_sep_pix=4.0,
    max_sep_pix=15.0,
    rng,
    fit_size_pix=27,
    max_shift_pix=2.0,
    background="quadratic",
    refit_size_pix=None,
    upper_limit_nsigma=UPPER_LIMIT_NSIGMA,
    progress=None,
    map_tasks=None,
) -> dict[str, np.ndarray]:
    """Injection-recovery of PSF point sources measured by the PSF fit (:mod:`catalog.images.psfphot`).

    The same design as :func:`injection_recovery` (``n_flux`` fluxes over ``flux_range`` x each
    target's measured flux, at ``n_locations`` positions ``min_sep_pix``-``max_sep_pix`` from
    it, each with a cutout clear of bad pixels), but each injection is recovered the way the
    science PSF photometry measures: :func:`~catalog.images.psfphot.psf_photometry` with the
    same cutout, shift limit and background model, started at the injected position, with the
    catalog sources (``neighbours``) within a cutout side as priors too, grouped with it by the
    same rule as the science fit. One source is injected per copy of the image, and only the
    tile within two cutout sides of it is fitted. Place injections at least a cutout side from
    the target (``ingest.pointsources`` does) so that the target is not in the injection's
    cutout: a nearer injection is a close pair, whose bias is not the target's.

    Parameters
    ----------
    image, error, weight, mask
        As for :func:`~catalog.images.psfphot.psf_photometry` (image units). The constant error
        used without ``error`` and ``weight`` is that of the whole image.
    psf : array_like
        PSF stamp (odd sides) injected and fitted.
    x, y : array_like
        Target positions, pixels.
    measured_flux : array_like
        Measured (PSF-fit) flux of each target, image units; targets without a positive finite
        flux are skipped with a :class:`GccatWarning`.
    neighbours : (array_like, array_like), optional
        Positions (pixels) of all catalog sources fitted with each injection; default ``x, y``.
    n_flux, n_locations, flux_range, min_sep_pix, max_sep_pix, rng, progress
        As for :func:`injection_recovery`.
    fit_size_pix, max_shift_pix, background, refit_size_pix
        As for :func:`~catalog.images.psfphot.psf_photometry` (pixels; the background model).
    upper_limit_nsigma : float
        An injection is recovered when its fit succeeded and ``flux_out > k flux_err``.
    map_tasks : callable, optional
        ``map_tasks(function, tasks)`` returning the results in order (e.g. a Dask client's map
        and gather); each task is one injection's tile. Default: the built-in ``map``.

    Returns
    -------
    dict of numpy.ndarray
        ``target``, ``x``, ``y``, ``flux_in``, ``flux_out``, ``flux_err`` (image units),
        ``quality`` (the fit's bits) and ``recovered``, one entry per injection.
    """
    from catalog.images.psfphot import FLAG_FAILED, _noise_map, check_psf_stamp

    rng = _rng(rng)
    img = _image("image", image)
    xs, ys = _positions(x, y)
    meas = np.broadcast_to(np.asarray(measured_flux, dtype=float), xs.shape)
    p = check_psf_stamp(psf)
    lo, hi = (float(v) for v in flux_range)
    if not (0 < lo <= hi) or int(n_flux) < 1 or int(n_locations) < 1:
        raise GccatError("flux_range must be 0 < low <= high and n_flux, n_locations >= 1")
    if not (0 <= min_sep_pix < max_sep_pix):
        raise GccatError("need 0 <= min_sep_pix < max_sep_pix")
    size = int(fit_size_pix)
    half = size // 2
    nx_, ny_ = _positions(*(neighbours if neighbours is not None else (xs, ys)))
    data, err, bad = _noise_map(img, error, weight, mask)
    grown_bad = _dilate(bad, half + 0.5)
    factors = np.geomspace(lo, hi, int(n_flux))
    out = _injection_plan(rng, xs, ys, meas, factors, min_sep_pix, max_sep_pix, n_locations, grown_bad, half,
                          "no positive measured flux")  # fmt: skip
    n = out["x"].size
    shifter = _PsfShifter(p)
    ny, nx = img.shape
    reach = 2 * size + p.shape[0]  # the tile: the group's cutouts around the injection
    fit_kw = {"fit_size_pix": size, "max_shift_pix": max_shift_pix, "background": background,
              "refit_size_pix": refit_size_pix}  # fmt: skip

    def tasks():
        for q in range(n):
            xi, yi = float(out["x"][q]), float(out["y"][q])
            cx, cy = int(np.floor(xi + 0.5)), int(np.floor(yi + 0.5))
            y0, y1 = max(cy - reach, 0), min(cy + reach + 1, ny)
            x0, x1 = max(cx - reach, 0), min(cx + reach + 1, nx)
            tile = data[y0:y1, x0:x1].copy()
            stamp, ix0, iy0 = shifter.place(xi - x0, yi - y0)
            _add_stamp(tile, stamp, ix0, iy0, float(out["flux_in"][q]))
            # catalog sources whose cutout overlaps the injection's (grouped with it by the fit)
            near = (np.abs(nx_ - xi) <= size) & (np.abs(ny_ - yi) <= size)
            px = np.concatenate([[xi - x0], nx_[near] - x0])
            py = np.concatenate([[yi - y0], ny_[near] - y0])
            yield tile, err[y0:y1, x0:x1], bad[y0:y1, x0:x1], p, px, py, fit_kw

    results = []
    for q, r in enumerate((map if map_tasks is None else map_tasks)(_recover_injection, tasks())):
        results.append(r)
        if progress is not None and (q + 1) % 200 == 0:
            progress((q + 1) / n)
    flux_out = np.array([r[0] for r in results], float).reshape(n)
    flux_err = np.array([r[1] for r in results], float).reshape(n)
    quality = np.array([r[2] for r in results], np.int32).reshape(n)
    out.update(flux_out=flux_out, flux_err=flux_err, quality=quality)
    with np.errstate(invalid="ignore"):
        out["recovered"] = (flux_out > float(upper_limit_nsigma) * flux_err) & ((quality & FLAG_FAILED) == 0)
    return out
