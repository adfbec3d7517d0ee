"""Size limits by simulation (catalog.images.sizes) against a direct calculation.

For a Gaussian source (sigma_s) seen through a Gaussian PSF (sigma_p), the image is a Gaussian
of sigma_o = sqrt(sigma_p^2 + sigma_s^2). The scatter of a fitted sigma at a given flux and
noise follows from the Fisher matrix of the fitted model (flux, centre, sigma, background) on
the pixel grid, computed here by finite differences, independently of the simulation. The
size at which the FWHM excess equals k times that scatter is the predicted threshold.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from catalog.errors import GccatError
from catalog.images import make_psf
from catalog.images.psf import FWHM_PER_SIGMA
from catalog.images.psfphot import check_psf_stamp
from catalog.images.sizes import GAUSS_RH_PER_SIGMA, gaussian_fwhm, render_sources, simulate_size_limit

PSF_FWHM = 2.0
SIDE = 25
FLUX = 150.0
NOISE = 1.0
K = 3.0


def _gauss(q, xx, yy):
    f, x0, y0, s, b = q
    return f / (2 * np.pi * s * s) * np.exp(-0.5 * ((xx - x0) ** 2 + (yy - y0) ** 2) / (s * s)) + b


def fisher_sigma_error(sigma, flux, noise, side=SIDE, offsets=((0, 0), (0.5, 0), (0.5, 0.5), (0.25, 0.25))):
    """1-sigma error of a fitted Gaussian sigma (pixels), Fisher matrix averaged over offsets."""
    yy, xx = np.mgrid[0:side, 0:side].astype(float)
    var = []
    for dx, dy in offsets:
        q = np.array([flux, side // 2 + dx, side // 2 + dy, sigma, 0.0])
        jac = []
        for i in range(q.size):
            h = np.zeros_like(q)
            h[i] = 1e-5 * max(abs(q[i]), 1.0)
            jac.append(((_gauss(q + h, xx, yy) - _gauss(q - h, xx, yy)) / (2 * h[i])).ravel())
        jac = np.array(jac).T / noise
        var.append(np.linalg.inv(jac.T @ jac)[3, 3])
    return float(np.sqrt(np.mean(var)))


def test_convolution_adds_the_source_variance():
    """The renderer: a Gaussian source through the PSF adds sigma_s^2 to the stamp's second
    moment (convolution adds variances), keeps the flux, and a shift moves the centroid."""
    psf = make_psf(PSF_FWHM, size=41, kind="gaussian")
    yy, xx = np.mgrid[0:41, 0:41] - 20.0
    m0 = None
    for r_h in (0.0, 0.5, 1.5):
        img = render_sources(psf, r_h, side_pix=41)[0]
        m2 = float((img * xx**2).sum() / img.sum())
        m0 = m2 if m0 is None else m0
        assert abs(m2 - m0 - (r_h / GAUSS_RH_PER_SIGMA) ** 2) < 1e-3, (r_h, m2 - m0)
        assert abs(img.sum() - 1) < 1e-6
    img = render_sources(psf, 1.5, offsets=[(0.3, -0.2)], side_pix=41)[0]  # well sampled
    assert abs((img * xx).sum() - 0.3) < 1e-3 and abs((img * yy).sum() + 0.2) < 1e-3


@pytest.fixture(scope="module")
def sim():
    psf = make_psf(PSF_FWHM, size=SIDE, kind="gaussian")
    r_h = np.linspace(0.1, 1.0, 10)
    out = simulate_size_limit(
        psf, r_h, flux=FLUX, noise_sigma=NOISE, n_sim=400, nsigma=K, rng=np.random.default_rng(3)
    )
    return psf, out


def test_threshold_matches_the_fisher_prediction(sim):
    _, out = sim
    sigma_p = np.sqrt((PSF_FWHM / FWHM_PER_SIGMA) ** 2 + 1 / 12)  # the pixel-integrated PSF
    err = fisher_sigma_error(sigma_p, FLUX, NOISE)
    # the point sources' FWHM scatter is the Fisher one (within 10%)
    assert abs(out["fwhm_point_std"] / (FWHM_PER_SIGMA * err) - 1) < 0.10
    # predicted: sqrt(sigma_p^2 + sigma_s^2) = sigma_p + K err
    sigma_s = np.sqrt((sigma_p + K * err) ** 2 - sigma_p**2)
    r_pred = GAUSS_RH_PER_SIGMA * sigma_s
    assert abs(out["threshold_r_h_pix"] / r_pred - 1) < 0.10, (out["threshold_r_h_pix"], r_pred)
    # and the mean FWHM follows the quadrature sum
    fwhm_pred = FWHM_PER_SIGMA * np.sqrt(sigma_p**2 + (out["r_h_pix"] / GAUSS_RH_PER_SIGMA) ** 2)
    assert np.all(np.abs(out["fwhm_mean"] / fwhm_pred - 1) < 0.01)
    # at the threshold about half the realisations pass the point-source cut
    i = np.searchsorted(out["r_h_pix"], out["threshold_r_h_pix"])
    assert out["frac_resolved"][i - 1] <= 0.6 and out["frac_resolved"][i] >= 0.4


def test_stretch_lowers_the_threshold(sim):
    psf, out = sim
    stretched = simulate_size_limit(
        psf, out["r_h_pix"], flux=FLUX, noise_sigma=NOISE, mu_t=3.0, n_sim=100, nsigma=K,
        rng=np.random.default_rng(4),
    )  # fmt: skip
    assert stretched["threshold_r_h_pix"] < 0.75 * out["threshold_r_h_pix"]


def test_bad_inputs():
    psf = make_psf(PSF_FWHM, size=SIDE, kind="gaussian")
    rng = np.random.default_rng(0)
    with pytest.raises(GccatError, match="increasing"):
        simulate_size_limit(psf, [2.0, 1.0], flux=1.0, noise_sigma=1.0, rng=rng)
    with pytest.raises(GccatError, match="flux"):
        simulate_size_limit(psf, [1.0], flux=0.0, noise_sigma=1.0, rng=rng)
    with pytest.raises(GccatError, match="noise"):
        simulate_size_limit(psf, [1.0], flux=1.0, noise_sigma=-1.0, rng=rng)


def test_cells_anywhere_draw_what_one_generator_would():
    """Each cell carries the generator state where its draws begin: cells pickled and measured
    in reverse order give the FWHMs of one generator drawn in turn (point sources first, then
    each size: offsets, then noise), to the bit."""
    psf = make_psf(PSF_FWHM, size=SIDE, kind="gaussian")
    r_h, n_sim, side = [0.3, 0.9], 12, SIDE
    p = check_psf_stamp(psf)
    sigma_guess = float(np.clip(1.0 / np.sqrt(2 * np.pi * p.max()), 0.5, side / 4))
    rng = np.random.default_rng(11)
    ref = []
    for r in (0.0, *r_h):
        off = rng.uniform(-0.5, 0.5, (n_sim, 2))
        stamps = FLUX * render_sources(p, r, mu_t=1.5, offsets=off, side_pix=side)
        stamps += rng.normal(0.0, NOISE, stamps.shape)
        ref.append(np.array([gaussian_fwhm(s, sigma_guess) for s in stamps]))

    def reversed_pickled(fn, cells):
        return [fn(pickle.loads(pickle.dumps(c))) for c in cells[::-1]][::-1]

    kw = {"flux": FLUX, "noise_sigma": NOISE, "mu_t": 1.5, "n_sim": n_sim, "side_pix": side}
    got = simulate_size_limit(psf, r_h, rng=np.random.default_rng(11), map_tasks=reversed_pickled, **kw)
    plain = simulate_size_limit(psf, r_h, rng=np.random.default_rng(11), **kw)
    assert got["fwhm_point_mean"] == np.nanmean(ref[0]) and got["fwhm_point_std"] == np.nanstd(ref[0], ddof=1)
    assert np.array_equal(got["fwhm_mean"], [np.mean(f[np.isfinite(f)]) for f in ref[1:]])
    for key in ("fwhm_mean", "fwhm_std", "significance", "frac_resolved", "n_ok"):
        assert np.array_equal(got[key], plain[key]), key
