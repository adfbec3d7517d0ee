"""Full-model injection (the Firefly Sparkle study): a multi-component model of an arc, point
sources plus extended (Sersic) components, fitted at its place, then injected at random places
in a stamp around it and refitted; the biweight scale of each component's refitted flux is its
flux uncertainty.

Positions and sizes are in pixels of the image, fluxes in image units. The fit is linear in the
component fluxes (plus a constant background): the components' shapes and positions are those
given, the fluxes are free, as when a model's photometry is re-measured on a new noise and
background realisation. Refitting the positions and shapes too is not done here (said in the
docs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy.stats import biweight_location, biweight_scale

from catalog.errors import GccatError

#: Kinds of model component.
COMPONENT_KINDS = ("point", "sersic")
#: A Sersic component is drawn out to this many effective radii (the rest of its light is lost
#: by the truncation: < 1% for n <= 4 at 8 r_eff).
SERSIC_TRUNCATION_REFF = 8.0


@dataclass(frozen=True)
class Component:
    """One component of an arc's model.

    ``dx``, ``dy``: offset from the model centre, pixels; for ``sersic``: ``r_eff_pix``,
    ``sersic_n``, ``ellipticity`` (1 - b/a) and ``theta_deg`` (major axis from +x, counter-clockwise).
    """

    name: str
    kind: str
    dx: float
    dy: float
    r_eff_pix: float = 0.0
    sersic_n: float = 1.0
    ellipticity: float = 0.0
    theta_deg: float = 0.0


def _template(c: Component, psf: np.ndarray, half: int, x0: float, y0: float) -> np.ndarray:
    """Unit-flux image of component ``c`` at ``(x0 + dx, y0 + dy)`` in a ``(2 half + 1)^2`` stamp
    whose centre pixel is ``(round(x0), round(y0))``; the PSF-convolved Sersic is normalised
    before truncation at the stamp (flux outside the stamp is outside).
    """
    from scipy.signal import fftconvolve

    from catalog.images.injection import inject_point_sources

    size = 2 * half + 1
    cx, cy = int(np.floor(x0 + 0.5)), int(np.floor(y0 + 0.5))
    px, py = x0 + c.dx - (cx - half), y0 + c.dy - (cy - half)
    if c.kind == "point":
        return inject_point_sources(np.zeros((size, size)), psf, [px], [py], [1.0])
    from astropy.modeling.models import Sersic2D

    # 5x oversampled, so that an r_eff of a pixel or two is drawn right
    os_ = 5
    g = (np.arange(size * os_) + 0.5) / os_ - 0.5
    xx, yy = np.meshgrid(g, g)
    model = Sersic2D(amplitude=1.0, r_eff=c.r_eff_pix, n=c.sersic_n, x_0=px, y_0=py,
                     ellip=c.ellipticity, theta=np.radians(c.theta_deg))  # fmt: skip
    fine = model(xx, yy)
    fine[np.hypot(xx - px, yy - py) > SERSIC_TRUNCATION_REFF * c.r_eff_pix] = 0.0
    img = fine.reshape(size, os_, size, os_).sum(axis=(1, 3))
    total = img.sum()
    if not total > 0:
        raise GccatError(f"component {c.name!r}: the Sersic profile has no light on the stamp")
    img = fftconvolve(img / total, psf / psf.sum(), mode="same")
    return img


def templates(components, psf, half: int, x0: float, y0: float) -> np.ndarray:
    """``(n_components, size, size)`` unit-flux images of the components at ``(x0, y0)``."""
    return np.stack([_template(c, psf, half, x0, y0) for c in components])


def _stamp(image, half: int, x0: float, y0: float):
    cx, cy = int(np.floor(x0 + 0.5)), int(np.floor(y0 + 0.5))
    ny, nx = image.shape
    if cx - half < 0 or cy - half < 0 or cx + half >= nx or cy + half >= ny:
        return None
    return (slice(cy - half, cy + half + 1), slice(cx - half, cx + half + 1))


def fit_fluxes(stamp: np.ndarray, err: np.ndarray | None, tmpl: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted linear least squares of component fluxes and a constant background.

    Returns the fluxes (image units, one per template) and their formal 1-sigma errors from the
    covariance (``err``: per-pixel 1-sigma; None: unit weights, errors scaled by the residual).
    Pixels that are not finite are left out.
    """
    n = tmpl.shape[0]
    a = np.concatenate([tmpl.reshape(n, -1), np.ones((1, stamp.size))]).T
    b = stamp.ravel()
    w = np.ones_like(b) if err is None else 1.0 / np.asarray(err, float).ravel()
    ok = np.isfinite(b) & np.isfinite(w) & (w > 0)
    aw, bw = a[ok] * w[ok, None], b[ok] * w[ok]
    sol, *_ = np.linalg.lstsq(aw, bw, rcond=None)
    cov = np.linalg.pinv(aw.T @ aw)
    if err is None:
        dof = max(ok.sum() - n - 1, 1)
        cov = cov * float(np.sum((bw - aw @ sol) ** 2)) / dof
    return sol[:n], np.sqrt(np.diag(cov)[:n])


def model_injection(image, psf, components, x0: float, y0: float, *, stamp_pix: float, n_inject: int, rng,
                    error=None, min_offset_pix: float | None = None) -> dict:  # fmt: skip
    """Fit the model at ``(x0, y0)``, inject it (with the fitted fluxes) at ``n_inject`` random
    places within the ``stamp_pix`` square around it and refit each copy.

    Parameters
    ----------
    image : numpy.ndarray
        The image (image units); ``error`` its 1-sigma map (None: unit weights).
    psf : numpy.ndarray
        PSF stamp (odd sides).
    components : sequence of Component
    x0, y0 : float
        Model centre, pixels.
    stamp_pix : float
        Side of the square of injection places (the Firefly study: 10").
    n_inject : int
        Injections (the Firefly study: 100).
    rng : numpy.random.Generator
    min_offset_pix : float, optional
        Injection centres at least this far from the model (default: the fit box size), so
        that a copy does not land on the arc itself.

    Returns
    -------
    dict
        ``flux`` and ``flux_err_formal`` (fit at the model's place), per component;
        ``x``, ``y`` (n_inject,) of the copies, ``flux_out`` (n_inject, n_components);
        ``flux_error_biweight`` and ``flux_bias_biweight`` (per component: biweight scale and
        location of refitted minus injected flux).
    """
    comps = list(components)
    if not comps:
        raise GccatError("the model has no components")
    img = np.asarray(image, float)
    reach = max(max(abs(c.dx), abs(c.dy)) + max(SERSIC_TRUNCATION_REFF * c.r_eff_pix if c.kind == "sersic"
                                                 else 0, psf.shape[0] / 2) for c in comps)  # fmt: skip
    half = int(np.ceil(reach)) + 2
    sl = _stamp(img, half, x0, y0)
    if sl is None:
        raise GccatError("the model's fit box runs off the image")
    err = None if error is None else np.asarray(error, float)
    t0 = templates(comps, psf, half, x0, y0)
    flux, flux_err = fit_fluxes(img[sl], None if err is None else err[sl], t0)
    model_img = np.tensordot(flux, t0, axes=1)
    min_off = (2 * half + 1) if min_offset_pix is None else float(min_offset_pix)
    xs, ys, outs = [], [], []
    tries = 0
    while len(xs) < n_inject and tries < 50 * n_inject:
        tries += 1
        x = x0 + rng.uniform(-stamp_pix / 2, stamp_pix / 2)
        y = y0 + rng.uniform(-stamp_pix / 2, stamp_pix / 2)
        if np.hypot(x - x0, y - y0) < min_off:
            continue
        s = _stamp(img, half, x, y)
        if s is None or not np.isfinite(img[s]).any():
            continue
        tx = templates(comps, psf, half, x, y)
        copy = img[s] + np.tensordot(flux, tx, axes=1)
        f, _ = fit_fluxes(copy, None if err is None else err[s], tx)
        xs.append(x)
        ys.append(y)
        outs.append(f)
    if len(xs) < max(3, n_inject // 2):
        raise GccatError(f"only {len(xs)} of {n_inject} injection places lie on the image")
    outs = np.array(outs)
    diff = outs - flux[None, :]
    return {
        "flux": flux,
        "flux_err_formal": flux_err,
        "model_image": model_img,
        "x": np.array(xs),
        "y": np.array(ys),
        "flux_out": outs,
        "flux_error_biweight": np.array([biweight_scale(d) for d in diff.T]),
        "flux_bias_biweight": np.array([biweight_location(d) for d in diff.T]),
    }
