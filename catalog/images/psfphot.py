"""PSF-fit photometry with a local background fitted jointly (the SMACS0723 Tractor-style fit).

Each source (or group of sources closer than a cutout's half-side: photutils'
:class:`~photutils.psf.SourceGrouper`'s groups, from KD-tree pairs, :func:`group_sources`) is
fitted in a square cutout around its prior position with the PSF (photutils
:class:`~photutils.psf.ImagePSF`, flux and position free, the position within
``max_shift_pix`` of the prior) plus a local background, a polynomial of degree 0-3
(constant, plane, quadratic by default, cubic), fitted
**jointly** with the fluxes, so that the halo of a cluster galaxy or the intracluster light
under the source is removed by the fit rather than by an annulus median. photutils'
``PSFPhotometry`` only subtracts a fixed local background, so the fit itself is a weighted
least-squares problem solved with :func:`scipy.optimize.least_squares` (``docs/methods.md``).

Units: positions, shifts and cutout sides in pixels; pixel values, fluxes and backgrounds in
image units (the caller converts to nJy).
"""

from __future__ import annotations

import numpy as np
from astropy.stats import sigma_clipped_stats
from photutils.psf import ImagePSF
from scipy.optimize import least_squares

from catalog.checks import as_grid as _image
from catalog.errors import GccatError
from catalog.images._common import _positions, tile_windows
from catalog.images.apertures import _usable_pixels

#: Background models fitted jointly with the PSF, as the degree of a polynomial in (x - xc, y - yc):
#: a constant, a plane b0 + bx dx + by dy, a quadratic (adds dx^2, dx dy, dy^2) or a cubic.
BACKGROUND_DEGREES = {"constant": 0, "plane": 1, "quadratic": 2, "cubic": 3}
BACKGROUND_MODELS = tuple(BACKGROUND_DEGREES)
#: Quality bits of a PSF fit (the photometry table's ``quality``).
FLAG_AT_BOUND = 2  # the position reached the +-max_shift_pix limit
FLAG_POOR_FIT = 4  # reduced chi2 of the cutout above ``chi2_flag``
FLAG_MASKED = 8  # over half of the cutout masked or off the image
FLAG_FAILED = 16  # no fit (no usable pixels, or the least-squares solver failed)
FLAG_REFIT = 32  # poor at fit_size_pix, refitted at refit_size_pix (informational, not a fault)
#: Per-source results of a fit, image units or pixels.
_FIT_COLUMNS = ("flux", "flux_err", "x", "y", "x_err", "y_err", "background", "background_err")
#: Bits that mark a fit as unusable for corrections and science (all but FLAG_REFIT).
FLAG_PROBLEMS = FLAG_AT_BOUND | FLAG_POOR_FIT | FLAG_MASKED | FLAG_FAILED


def check_psf_stamp(psf) -> np.ndarray:
    """A PSF stamp for fitting: 2-d, odd sides (centre on a pixel), finite, positive sum.

    Returns
    -------
    numpy.ndarray
        The stamp normalised to sum 1.
    """
    p = np.asarray(psf, dtype=float)
    if p.ndim != 2 or min(p.shape) < 3:
        raise GccatError(f"the PSF must be a 2-d stamp of at least 3x3 pixels, got shape {p.shape}")
    if p.shape[0] % 2 == 0 or p.shape[1] % 2 == 0:
        raise GccatError(
            f"the PSF is {p.shape[0]}x{p.shape[1]} pixels; PSF fitting needs odd sides (centre on a pixel)"
        )
    if not np.isfinite(p).all():
        raise GccatError(f"the PSF has {int((~np.isfinite(p)).sum())} NaN or infinite pixels")
    if not p.sum() > 0:
        raise GccatError(f"the PSF must have a positive sum, got {p.sum():g}")
    return p / p.sum()


def _noise_map(img, error, weight, mask):
    """Image with bad pixels zeroed, the 1-sigma map and the bad mask; without ``error`` or
    ``weight`` the error is the 3-sigma-clipped standard deviation of the unmasked pixels.
    """
    data, err, bad = _usable_pixels(img, error, weight, mask)
    if err is None:
        good = img[~bad]
        if good.size < 10:
            raise GccatError("the image has fewer than 10 usable pixels to estimate its noise")
        sigma = float(sigma_clipped_stats(good, sigma=3.0, maxiters=10)[2])
        if not sigma > 0:
            raise GccatError(
                "the image noise (sigma-clipped standard deviation) is 0; give --error or --weight"
            )
        err = np.full(img.shape, sigma)
    return data, err, bad | ~(err > 0)


class _GridPsf:
    """An ImagePSF on the pixels ``use`` of a box with axes ``ax_x``, ``ax_y`` (pixels).

    The spline (the ImagePSF's own cubic ``interpolator``, zero outside the stamp like its
    ``fill_value``) is evaluated on the box's two axes, a tensor product 30x faster than at
    scattered points, and the used pixels are picked out.
    """

    def __init__(self, psf_model, ax_x, ax_y, use):
        self.spline = psf_model.interpolator
        self.ox, self.oy = (float(v) for v in psf_model.origin)
        self.pny, self.pnx = psf_model.data.shape
        self.ax_x, self.ax_y, self.use = ax_x, ax_y, use

    def _on_grid(self, xi, yi, dx=0, dy=0):
        ok_x, ok_y = (xi >= 0) & (xi <= self.pnx - 1), (yi >= 0) & (yi <= self.pny - 1)
        full = np.zeros((yi.size, xi.size))
        if ok_x.any() and ok_y.any():
            full[np.ix_(ok_y, ok_x)] = self.spline(xi[ok_x], yi[ok_y], dx=dx, dy=dy, grid=True).T
        return full[self.use]

    def __call__(self, xpos, ypos, grads=False):
        """PSF columns at the positions, and with ``grads`` their d/dx_0 and d/dy_0.

        The values of the last positions are kept: least_squares asks for the Jacobian at the
        point whose residuals it has just computed, so its columns are not evaluated twice.
        """
        key = (tuple(np.asarray(xpos, float)), tuple(np.asarray(ypos, float)))
        cached = self._last[1] if getattr(self, "_last", (None,))[0] == key else None
        vals, gx, gy = [], [], []
        for k, (a, b) in enumerate(zip(xpos, ypos, strict=True)):
            xi, yi = self.ax_x - a + self.ox, self.ax_y - b + self.oy
            vals.append(cached[k] if cached is not None else self._on_grid(xi, yi))
            if grads:  # d/dx_0 of PSF(x - x_0) is minus the spline's x derivative
                gx.append(-self._on_grid(xi, yi, dx=1))
                gy.append(-self._on_grid(xi, yi, dy=1))
        self._last = (key, vals)
        return vals, gx, gy


def _fit_group(data, err, bad, psf_model, xs, ys, half, max_shift, degree, origin=(0, 0)):
    """Fit one group of sources jointly with the background; see :func:`psf_photometry`.

    ``data``, ``err`` and ``bad`` may be a window of the image whose first pixel is the image's
    pixel ``origin`` = (y, x); positions and results stay in image pixels, so a fit on a window
    that holds the group's cutouts is the same, to the bit, as on the whole image.
    """
    oy, ox = origin
    ny, nx = data.shape
    x0 = max(int(np.floor(xs.min())) - half, ox)
    x1 = min(int(np.ceil(xs.max())) + half + 1, ox + nx)
    y0 = max(int(np.floor(ys.min())) - half, oy)
    y1 = min(int(np.ceil(ys.max())) + half + 1, oy + ny)
    n = xs.size
    side = (2 * half + 1) ** 2
    fail = {"ok": False, "n_pix": 0, "masked": True}
    if x1 <= x0 or y1 <= y0:
        return fail
    yy, xx = np.mgrid[y0:y1, x0:x1]
    # each source's own cutout of side 2 half + 1 (clipped at the image edge), joined
    use = np.zeros(xx.shape, bool)
    for x, y in zip(xs, ys, strict=True):
        use |= (np.abs(xx - np.round(x)) <= half) & (np.abs(yy - np.round(y)) <= half)
    n_area = int(use.sum())
    box = (slice(y0 - oy, y1 - oy), slice(x0 - ox, x1 - ox))
    use &= ~bad[box]
    n_pix = int(use.sum())
    masked = n_pix < 0.5 * n * side
    powers = [(i, k - i) for k in range(degree + 1) for i in range(k, -1, -1)]
    nb = len(powers)
    if n_pix <= 3 * n + nb:
        return fail | {"n_pix": n_pix}
    px, py = xx[use].astype(float), yy[use].astype(float)
    d = data[box][use]
    w = 1.0 / err[box][use]
    xc, yc = float(xs.mean()), float(ys.mean())
    # polynomial columns in offsets scaled by the half-side (conditioning), powers (i, j) of (u, v)
    u, v = (px - xc) / max(half, 1), (py - yc) / max(half, 1)
    bkg_cols = [u**i * v**j for i, j in powers]

    bkg = np.column_stack(bkg_cols) * w[:, None]
    psf_columns = _GridPsf(psf_model, np.arange(x0, x1, dtype=float), np.arange(y0, y1, dtype=float), use)

    # linear start: fluxes and background at the prior positions
    a0 = np.column_stack(psf_columns(xs, ys)[0]) * w[:, None]
    lin = np.linalg.lstsq(np.column_stack([a0, bkg]), d * w, rcond=None)[0]

    def resid(p):
        vals = psf_columns(p[n : 2 * n], p[2 * n : 3 * n])[0]
        return np.column_stack(vals) @ p[:n] * w + bkg @ p[3 * n :] - d * w

    def jac(p):
        # analytic Jacobian: flux columns, flux x gradient for the positions, the background
        vals, gx, gy = psf_columns(p[n : 2 * n], p[2 * n : 3 * n], grads=True)
        f = p[:n]
        cols = [v * w for v in vals] + [g * fi * w for g, fi in zip(gx, f, strict=True)]
        cols += [g * fi * w for g, fi in zip(gy, f, strict=True)]
        return np.column_stack(cols + [bkg])

    p0 = np.concatenate([lin[:n], xs, ys, lin[n:]])
    lo = np.concatenate([np.full(n, -np.inf), xs - max_shift, ys - max_shift, np.full(nb, -np.inf)])
    hi = np.concatenate([np.full(n, np.inf), xs + max_shift, ys + max_shift, np.full(nb, np.inf)])
    try:
        sol = least_squares(resid, p0, jac=jac, bounds=(lo, hi), method="trf", x_scale="jac", max_nfev=200)
    except (ValueError, np.linalg.LinAlgError):
        return fail | {"n_pix": n_pix, "masked": masked}
    if not sol.success and sol.status <= 0:
        return fail | {"n_pix": n_pix, "masked": masked}
    p = sol.x
    # covariance of the weighted fit, not rescaled by chi2 (the errors are the noise's)
    try:
        cov = np.linalg.pinv(sol.jac.T @ sol.jac)
    except np.linalg.LinAlgError:
        return fail | {"n_pix": n_pix, "masked": masked}
    e = np.sqrt(np.clip(np.diag(cov), 0, None))
    dof = n_pix - p.size
    chi2 = float(np.sum(sol.fun**2)) / max(dof, 1)
    bx, by = p[n : 2 * n], p[2 * n : 3 * n]
    bu, bv = (bx - xc) / max(half, 1), (by - yc) / max(half, 1)
    bkg_at = sum(p[3 * n + k] * bu**i * bv**j for k, (i, j) in enumerate(powers))
    at_bound = (np.abs(bx - xs) >= max_shift * (1 - 1e-6)) | (np.abs(by - ys) >= max_shift * (1 - 1e-6))
    return {
        "ok": True,
        "flux": p[:n],
        "flux_err": e[:n],
        "x": bx,
        "y": by,
        "x_err": e[n : 2 * n],
        "y_err": e[2 * n : 3 * n],
        "background": bkg_at,
        "background_err": np.full(n, e[3 * n]),
        "chi2": chi2,
        "n_pix": n_pix,
        "n_area": n_area,
        "masked": masked,
        "at_bound": at_bound,
    }


def _refit_members(data, err, bad, psf_model, xs, ys, r, half, max_shift, degree, origin=(0, 0)):
    """Each member of a refitted group fitted alone, the other members' fitted PSFs subtracted.

    One polynomial over the union of a group's cutouts spans up to twice a cutout side, where a
    galaxy's halo is no longer a quadratic: next to a bright galaxy the group fit's errors are
    1.7x too small for pairs 4-12 px apart, and 1.1x after this step (``docs/methods.md``).
    Members whose own fit fails keep the group's values.
    """
    n = xs.size
    if n < 2:
        return r
    oy, ox = origin
    ny, nx = data.shape
    reach = _member_reach(half, psf_model.data.shape)
    x0, x1 = max(int(xs.min()) - reach, ox), min(int(xs.max()) + reach + 1, ox + nx)
    y0, y1 = max(int(ys.min()) - reach, oy), min(int(ys.max()) + reach + 1, oy + ny)
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(float)
    models = [
        r["flux"][k] * psf_model.evaluate(xx, yy, 1.0, r["x"][k], r["y"][k])
        if np.isfinite(r["flux"][k])
        else 0.0
        for k in range(n)
    ]
    total = np.sum(models, axis=0)
    win = (slice(y0 - oy, y1 - oy), slice(x0 - ox, x1 - ox))
    out = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in r.items()}
    for k in range(n):
        alone = data[win] - (total - models[k])
        rk = _fit_group(alone, err[win], bad[win], psf_model, xs[k : k + 1], ys[k : k + 1], half,
                        max_shift, degree, origin=(y0, x0))  # fmt: skip
        if not rk["ok"]:
            continue
        for key in ("flux", "flux_err", "x", "y", "x_err", "y_err", "background", "background_err"):
            out[key][k] = rk[key][0]
        out["at_bound"][k] = rk["at_bound"][0]
    return out


def _member_reach(half: int, psf_shape) -> int:
    """Pixels around a member that its refit reads: a cutout plus a neighbour's PSF wings."""
    return 2 * half + 1 + max(psf_shape) // 2


def group_sources(x, y, min_separation: float) -> np.ndarray:
    """Group labels (1, 2, ... in order of first appearance) of sources closer than
    ``min_separation`` (pixels), chained: photutils' :class:`~photutils.psf.SourceGrouper`.

    The same groups as SourceGrouper (single-linkage clusters cut at that distance are the
    connected components of the graph of pairs within it), from a KD-tree's pairs instead of
    scipy's hierarchical clustering, whose condensed distance matrix takes n^2/2 doubles:
    3.6 GB and most of the time for 3x10^4 sources (``benchmarks/bench_psfphot.py``).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    x, y = np.asarray(x, float), np.asarray(y, float)
    n = x.size
    if n <= 1:
        return np.ones(n, np.int64)
    pairs = cKDTree(np.column_stack([x, y])).query_pairs(float(min_separation), output_type="ndarray")
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    # renumber by first appearance, as SourceGrouper does
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(first.size, np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(1, first.size + 1)
    return rank[inverse]


def _psf_tasks(data, err, bad, psf, xs, ys, groups, margin, tile_pix, opts) -> list[tuple]:
    """Independent fit tasks: the groups binned by the tile (``tile_pix`` square cells) of
    their first source, each with the window of the image that holds all its cutouts (``margin``
    pixels around its sources); one task of the whole image without ``tile_pix``.
    """
    if tile_pix is None:
        return [((0, 0), data, err, bad, psf, xs, ys, groups, np.arange(xs.size), opts)]
    labels, first = np.unique(groups, return_index=True)
    lead = first[np.searchsorted(labels, groups)]  # each source's group's first source
    tasks = []
    for sel, win in tile_windows(xs, ys, tile_pix, margin, data.shape, anchor=(xs[lead], ys[lead])):
        origin = (win[0].start, win[1].start)
        tasks.append((origin, data[win], err[win], bad[win], psf, xs[sel], ys[sel], groups[sel], sel, opts))
    return tasks


def _fit_task(task) -> tuple[np.ndarray, dict]:
    """Fit the groups of one task (see :func:`_psf_tasks`): its source indices and results."""
    origin, data, err, bad, psf, xs, ys, groups, sel, opts = task
    half, refit_half, shift, degree, chi2_flag = opts
    psf_model = ImagePSF(psf, flux=1.0, x_0=0.0, y_0=0.0)
    n = xs.size
    res = {k: np.full(n, np.nan) for k in _FIT_COLUMNS}
    res["chi2_reduced"] = np.full(n, np.nan)
    res["fit_size_pix"] = np.full(n, 2 * half + 1, np.int64)
    res["quality"] = np.zeros(n, np.int32)
    for g in np.unique(groups):
        k = np.flatnonzero(groups == g)
        r = _fit_group(data, err, bad, psf_model, xs[k], ys[k], half, shift, degree, origin)
        q = np.zeros(k.size, np.int32)
        if refit_half is not None and r["ok"] and r["chi2"] > chi2_flag:
            r2 = _fit_group(data, err, bad, psf_model, xs[k], ys[k], refit_half, shift, degree, origin)
            if r2["ok"]:
                r = _refit_members(data, err, bad, psf_model, xs[k], ys[k], r2, refit_half, shift, degree,
                                   origin)  # fmt: skip
                q |= FLAG_REFIT
                res["fit_size_pix"][k] = 2 * refit_half + 1
        if r.get("masked"):
            q |= FLAG_MASKED
        if not r["ok"]:
            res["quality"][k] = q | FLAG_FAILED
            continue
        for key in _FIT_COLUMNS:
            res[key][k] = r[key]
        res["chi2_reduced"][k] = r["chi2"]
        q |= np.where(r["at_bound"], FLAG_AT_BOUND, 0).astype(np.int32)
        if r["chi2"] > chi2_flag:
            q |= FLAG_POOR_FIT
        res["quality"][k] = q
    return sel, res


def _check_fit_sizes(fit_size_pix, refit_size_pix) -> tuple[int, int | None]:
    """The cutout side (odd, >= 3 px) and the refit's half-side (None: no refit)."""
    size = int(fit_size_pix) if float(fit_size_pix) == int(fit_size_pix) else -1
    if size < 3 or size % 2 == 0:
        raise GccatError(f"fit_size_pix must be an odd whole number >= 3 pixels, got {fit_size_pix!r}")
    if refit_size_pix is None:
        return size, None
    rs = int(refit_size_pix) if float(refit_size_pix) == int(refit_size_pix) else -1
    if rs < 3 or rs % 2 == 0 or rs >= size:
        raise GccatError(
            f"refit_size_pix must be an odd whole number of pixels >= 3 and below fit_size_pix "
            f"({size}), got {refit_size_pix!r}"
        )
    return size, rs // 2


def psf_photometry(
    image,
    x,
    y,
    psf,
    *,
    error=None,
    weight=None,
    mask=None,
    fit_size_pix=27,
    max_shift_pix=2.0,
    background="quadratic",
    group_separation_pix=None,
    chi2_flag=3.0,
    refit_size_pix=None,
    tile_pix=None,
    map_tasks=None,
) -> dict[str, np.ndarray]:
    """PSF-fit photometry at prior positions with a jointly fitted local background.

    For each group of sources (prior positions closer than ``group_separation_pix``, default
    half the cutout side, are fitted together) the model is ``sum_i F_i PSF(x - x_i, y - y_i)
    + B(x, y)`` on the union of the sources' cutouts, with ``B`` a polynomial in the offsets from
    the group centre (scaled by the cutout's half-side): a constant, a plane, a quadratic
    (the default: near a bright n = 4 galaxy a plane leaves the halo's curvature in the fit,
    ``docs/methods.md``) or a cubic. The fluxes ``F_i`` (image units), the positions (pixels, each within
    ``+-max_shift_pix`` of its prior on both axes) and the background are fitted at once by
    weighted least squares (weights ``1 / error``); the errors are the square roots of the
    diagonal of ``(J^T J)^-1`` of the weighted Jacobian, i.e. the noise's, not rescaled by
    the fit's chi2 (which ``quality`` flags instead).

    With ``refit_size_pix``, a group whose reduced chi2 exceeds ``chi2_flag`` is fitted again
    on cutouts of that (smaller) side and the refit replaces it, flagged ``FLAG_REFIT``: next
    to a bright galaxy the halo is not a quadratic over 0.8", and the fit's errors are then
    too small (pull width 1.9), while over 0.45" they are right (``docs/methods.md``).

    Parameters
    ----------
    image : array_like
        ``(ny, nx)`` image in image units.
    x, y : array_like
        Prior positions, pixels (0-based).
    psf : array_like
        PSF stamp of odd sides, centred on its central pixel, at the image's pixel scale (any
        normalisation; the fitted flux is the total flux of the stamp, normalised to 1).
    error, weight : array_like, optional
        1-sigma error map, or inverse-variance map (error = 1/sqrt(weight)), image units.
        Without either, a constant error: the 3-sigma-clipped standard deviation of the image.
    mask : numpy.ndarray of bool, optional
        Pixels to leave out (``True`` = masked).
    fit_size_pix : int
        Side of each source's cutout, pixels (odd; 0.8 arcsec is 27 px at 0.03"/pix).
    max_shift_pix : float
        Largest shift of a fitted position from its prior on each axis, pixels.
    background : {"quadratic", "plane", "constant", "cubic"}
        Local background model fitted jointly with the fluxes (polynomial of degree 2, 1, 0, 3).
    group_separation_pix : float, optional
        Sources whose priors are closer than this (pixels) are fitted in one model.
    chi2_flag : float
        Reduced chi2 above which the fit is flagged ``FLAG_POOR_FIT`` (or refitted).
    refit_size_pix : int, optional
        Odd cutout side (pixels, smaller than ``fit_size_pix``) of the refit of poor fits.
    tile_pix : int, optional
        Split the fit into independent tasks, the groups of each ``tile_pix`` square of the
        image with the window that holds their cutouts (default: one task). The results do not
        depend on it: each group is fitted on the same pixels in image coordinates.
    map_tasks : callable, optional
        ``map_tasks(function, tasks)`` returning the results in order, e.g. a Dask client's map
        and gather (default: the built-in ``map``, in this process).

    Returns
    -------
    dict of numpy.ndarray
        Each of length ``n_sources``: ``flux``, ``flux_err`` (image units), ``x``, ``y``,
        ``x_err``, ``y_err`` (pixels), ``dx``, ``dy`` (fitted minus prior, pixels),
        ``background`` and ``background_err`` (the fitted background per pixel at the source,
        image units), ``chi2_reduced`` (of the group's cutout), ``group_id``, ``group_size``,
        ``fit_size_pix`` (the cutout side the result comes from) and ``quality`` (bits
        ``FLAG_AT_BOUND``, ``FLAG_POOR_FIT``, ``FLAG_MASKED``, ``FLAG_FAILED``, ``FLAG_REFIT``).
        Failed fits give NaN.
    """
    img = _image("image", image)
    xs, ys = _positions(x, y)
    p = check_psf_stamp(psf)
    size, refit_half = _check_fit_sizes(fit_size_pix, refit_size_pix)
    shift = float(max_shift_pix)
    if not (np.isfinite(shift) and shift > 0):
        raise GccatError(f"max_shift_pix must be > 0 pixels, got {max_shift_pix!r}")
    if background not in BACKGROUND_MODELS:
        raise GccatError(f"background must be one of {', '.join(BACKGROUND_MODELS)}, got {background!r}")
    half = size // 2
    sep = half if group_separation_pix is None else float(group_separation_pix)
    data, err, bad = _noise_map(img, error, weight, mask)
    n = xs.size
    out = {
        k: np.full(n, np.nan)
        for k in ("flux", "flux_err", "x", "y", "x_err", "y_err", "dx", "dy", "background", "background_err")
    }
    out["chi2_reduced"] = np.full(n, np.nan)
    out["group_id"] = np.zeros(n, np.int64)
    out["group_size"] = np.zeros(n, np.int64)
    out["fit_size_pix"] = np.full(n, size, np.int64)
    out["quality"] = np.zeros(n, np.int32)
    if n == 0:
        return out
    finite = np.isfinite(xs) & np.isfinite(ys)
    out["quality"][~finite] = FLAG_FAILED
    idx = np.flatnonzero(finite)
    if idx.size == 0:
        return out
    groups = group_sources(xs[idx], ys[idx], sep)
    _, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    out["group_id"][idx] = groups
    out["group_size"][idx] = counts[inverse]
    opts = (half, refit_half, shift, BACKGROUND_DEGREES[background], float(chi2_flag))
    margin = max(half, _member_reach(refit_half, p.shape) if refit_half is not None else 0) + 1
    tasks = _psf_tasks(data, err, bad, p, xs[idx], ys[idx], groups, margin, tile_pix, opts)
    for sel, res in (map if map_tasks is None else map_tasks)(_fit_task, tasks):
        for k, v in res.items():
            out[k][idx[sel]] = v
    out["dx"] = out["x"] - xs
    out["dy"] = out["y"] - ys
    return out
