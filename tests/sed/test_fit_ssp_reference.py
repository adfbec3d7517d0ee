"""fit_ssp against a straightforward float64 re-implementation of its documented arithmetic.

The reference fits one object at a time with explicit loops over the bands (no float32, no
blocks, no compiled passes): chi2 profiled over the mass, the Sawicki upper-limit term, the
prior, cell-spread percentiles of age index / log Z / A_V, and the log-mass percentiles of the
Gaussian mixture by root finding on its exact CDF.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize, special, stats

from catalog import sed as sps

QS = (0.16, 0.5, 0.84)


def _random_grid(seed=0, shape=(6, 3, 4), n_band=5):
    rng = np.random.default_rng(seed)
    flux = np.exp(rng.normal(0, 0.6, (*shape, n_band))) * 1e-5
    ages = np.sort(rng.uniform(0.01, 12, shape[0]))
    return sps.SSPGrid(
        z=0.4,
        bands=[f"b{i}" for i in range(n_band)],
        age_gyr=ages,
        log_z_zsun=np.sort(rng.uniform(-2, 0.4, shape[1])),
        av=np.linspace(0, 1.5, shape[2]),
        flux_njy=flux,
        living_fraction=rng.uniform(0.5, 1, shape[:2]),
        spec={},
    )


def _objects(grid, n, seed=1):
    rng = np.random.default_rng(seed)
    idx = [rng.integers(0, s, n) for s in grid.shape]
    true = grid.flux_njy[idx[0], idx[1], idx[2]] * 10 ** rng.uniform(6, 7, n)[:, None]
    err = true / rng.uniform(3, 20, (n, 1))
    obs = true + rng.normal(0, err)
    ul = np.zeros(obs.shape, bool)
    ul[rng.random(n) < 0.3, -1] = True  # some limits in the reddest band
    obs[ul] = true[ul] * 2
    obs[rng.random(obs.shape) < 0.08] = np.nan  # some missing bands
    obs[0] = np.nan  # nothing at all
    ul[1] = True  # limits only
    obs[1] = true[1] * 3
    return obs, err, ul


def _cell_quantile(w, coord, q):
    edges = np.concatenate([coord[:1], (coord[1:] + coord[:-1]) / 2, coord[-1:]])
    cdf = np.concatenate([[0.0], np.cumsum(w)]) / w.sum()
    k = min(int(np.searchsorted(cdf[1:], q, side="left")), coord.size - 1)
    lo, hi = cdf[k], cdf[k + 1]
    frac = (q - lo) / (hi - lo) if hi > lo else 0.5
    return edges[k] + min(max(frac, 0.0), 1.0) * (edges[k + 1] - edges[k])


def _reference(grid, flux, err, ul, floor=0.05):
    models, params = grid.flat()  # (n_mod, n_band), (n_mod, 3)
    n_mod = models.shape[0]
    lp = sps.default_log_prior(grid).ravel()
    lp = lp - special.logsumexp(lp)
    live = np.repeat(grid.living_fraction.reshape(-1), grid.av.size)
    n_age, n_z, n_av = grid.shape
    out = []
    for f, e, u in zip(flux, err, ul, strict=True):
        sig = np.sqrt(e**2 + (floor * np.abs(f)) ** 2)
        det = ~u & np.isfinite(f) & np.isfinite(sig) & (sig > 0)
        lim = u & np.isfinite(f) & (f > 0)
        ul_sig = np.where(np.isfinite(e) & (e > 0), e, f / 3)
        chi2, s, cc = np.zeros(n_mod), np.zeros(n_mod), np.zeros(n_mod)
        for m in range(n_mod):
            b = sum(f[j] * models[m, j] / sig[j] ** 2 for j in np.flatnonzero(det))
            c = sum(models[m, j] ** 2 / sig[j] ** 2 for j in np.flatnonzero(det))
            s[m] = max(b, 0.0) / c if det.any() else 0.0
            cc[m] = c
            chi2[m] = sum((f[j] - s[m] * models[m, j]) ** 2 / sig[j] ** 2 for j in np.flatnonzero(det))
            chi2[m] += sum(
                -2 * stats.norm.logcdf((f[j] - s[m] * models[m, j]) / ul_sig[j]) for j in np.flatnonzero(lim)
            )
        logp = -chi2 / 2 + lp
        post = np.exp(logp - logp.max())
        post /= post.sum()
        ibest = int(np.argmin(chi2))
        imode = int(np.argmax(logp - sps.default_log_prior(grid).ravel()))
        cube = post.reshape(n_age, n_z, n_av)
        r = {
            "chi2_min": max(chi2[ibest], 0.0),
            "log_evidence": special.logsumexp(logp),
            "n_bands": int((det | lim).sum()),
            "best": {},
            "map": {},
        }
        ia = np.array([_cell_quantile(cube.sum(axis=(1, 2)), np.arange(n_age, dtype=float), q) for q in QS])
        r["age_gyr"] = 10 ** np.interp(ia, np.arange(n_age), np.log10(grid.age_gyr))
        r["log_z"] = np.array([_cell_quantile(cube.sum(axis=(0, 2)), grid.log_z_zsun, q) for q in QS])
        r["av"] = np.array([_cell_quantile(cube.sum(axis=(0, 1)), grid.av, q) for q in QS])
        for key, i in (("best", ibest), ("map", imode)):
            lm = np.log10(s[i]) if det.any() and s[i] > 0 else np.nan
            r[key] = {
                "age_gyr": params[i, 0],
                "log_z": params[i, 1],
                "av": params[i, 2],
                "log_mass_formed": lm,
                "log_mass_living": lm + np.log10(live[i]),
            }
        keep = (post > 1e-3 / n_mod) & (s > 0) & det.any()
        r["mass_span"] = np.nan
        for key, shift in (("log_mass_formed", 0.0), ("log_mass_living", np.log10(live))):
            if not keep.any():
                r[key] = np.full(3, np.nan)
                continue
            w = post[keep] / post[keep].sum()
            mu = (np.log10(s) + shift)[keep]
            sd = 1 / (np.sqrt(cc) * s * np.log(10))
            width = np.sqrt(np.sum(w * sd[keep] ** 2))

            def cdf(x, w=w, mu=mu, width=width):
                return np.sum(w * stats.norm.cdf((x - mu) / width))

            a, b = mu.min() - 8 * width, mu.max() + 8 * width
            r[key] = np.array([optimize.brentq(lambda x, q=q, cdf=cdf: cdf(x) - q, a, b) for q in QS])
            r["mass_span"] = np.nanmax([r["mass_span"], mu.max() - mu.min() + 8 * width])
        out.append(r)
    return out


@pytest.fixture(scope="module")
def case():
    grid = _random_grid()
    obs, err, ul = _objects(grid, 40)
    return grid, obs, err, ul, _reference(grid, obs, err, ul)


def test_fit_ssp_matches_the_float64_reference(case):
    grid, obs, err, ul, ref = case
    res = sps.fit_ssp(grid, obs, err, upper_limit=ul)
    for i, r in enumerate(ref):
        assert res.n_bands[i] == r["n_bands"]
        np.testing.assert_allclose(res.chi2_min[i], r["chi2_min"], rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(res.log_evidence[i], r["log_evidence"], rtol=0, atol=1e-3)
        for k in ("age_gyr", "log_z", "av"):
            np.testing.assert_allclose(res.percentiles[k][i], r[k], rtol=1e-4, atol=1e-4, err_msg=k)
        for key, got in (("best", res.best_fit_params), ("map", res.map_params)):
            for k in sps.FIT_KEYS:
                np.testing.assert_allclose(
                    got[k][i], r[key][k], rtol=0, atol=1e-5, err_msg=f"{key} {k} object {i}"
                )
        # masses: a 512-bin histogram of the mixture, so good to about one bin
        tol = 1.5 * r["mass_span"] / 512 + 1e-4 if np.isfinite(r["mass_span"]) else 0
        for k in ("log_mass_formed", "log_mass_living"):
            np.testing.assert_allclose(
                res.percentiles[k][i], r[k], rtol=0, atol=tol, err_msg=f"{k} object {i}"
            )
    assert np.isnan(res.percentiles["log_mass_formed"][0]).all()  # no detection: no mass
    assert np.isnan(res.best_fit_params["log_mass_formed"][1])


def test_fit_ssp_is_independent_of_blocks_threads_and_neighbours(case):
    """Up to float32 round-off: the BLAS products of 1 row and of 7 rows may round apart."""
    grid, obs, err, ul, _ = case
    base = sps.fit_ssp(grid, obs, err, upper_limit=ul)
    runs = [
        sps.fit_ssp(grid, obs, err, upper_limit=ul, chunk_size=cs, n_threads=nt)
        for cs, nt in ((1, 1), (7, 2), (40, 1))
    ]
    alone = [sps.fit_ssp(grid, obs[i : i + 1], err[i : i + 1], upper_limit=ul[i : i + 1]) for i in (2, 5, 11)]

    def close(a, b):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)

    for k in sps.FIT_KEYS:
        for r in runs:
            close(r.percentiles[k], base.percentiles[k])
            close(r.best_fit_params[k], base.best_fit_params[k])
            close(r.map_params[k], base.map_params[k])
        for i, a in zip((2, 5, 11), alone, strict=True):
            close(a.percentiles[k][0], base.percentiles[k][i])
    for r in runs:
        close(r.chi2_min, base.chi2_min)
        close(r.log_evidence, base.log_evidence)


def test_draws_are_reproducible_and_follow_the_posterior(case):
    grid, obs, err, ul, ref = case
    a = sps.fit_ssp(grid, obs, err, upper_limit=ul, n_samples=400, rng=7, n_threads=1)
    b = sps.fit_ssp(grid, obs, err, upper_limit=ul, n_samples=400, rng=7, n_threads=2)
    for k in sps.FIT_KEYS:
        np.testing.assert_array_equal(a.samples[k], b.samples[k])
    # draws agree with the percentiles (within their sampling noise)
    med = np.median(a.samples["log_z"], axis=1)
    ref_med = np.array([r["log_z"][1] for r in ref])
    assert np.median(np.abs(med - ref_med)) < 0.1


def test_a_nan_chi2_object_is_fitted_as_alone_and_leaves_the_others_alone():
    """A model with zero flux in every detected band makes chi2 0/0 for that object: the
    rows that hit it take the array path; objects beside it in the block are unaffected."""
    grid = _random_grid(3)
    grid.flux_njy[0, 0, 0, 0] = 0.0
    obs, err, ul = _objects(grid, 12, seed=4)
    ul[:] = False
    obs[3] = np.nan
    obs[3, 0] = 1.0  # detected only in band 0, where model 0 is dark
    res = sps.fit_ssp(grid, obs, err)
    one = sps.fit_ssp(grid, obs[3:4], err[3:4])
    rest = sps.fit_ssp(grid, np.delete(obs, 3, axis=0), np.delete(err, 3, axis=0))
    for k in sps.FIT_KEYS:
        np.testing.assert_allclose(res.percentiles[k][3], one.percentiles[k][0], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(
            np.delete(res.percentiles[k], 3, axis=0), rest.percentiles[k], rtol=1e-4, atol=1e-4
        )
    assert np.isnan(res.chi2_min[3])


def _first_reaching(p, r):
    """Per row, the first model whose float64 cumulative weight reaches r x the row's total."""
    cum = np.cumsum(p, axis=1, dtype=np.float64)
    return np.stack([np.searchsorted(cum[i], r[i] * cum[i, -1], side="left") for i in range(p.shape[0])])


@pytest.mark.parametrize("n_mod", [200, 7, 32, 65])
def test_draw_indices_are_the_first_model_reaching_the_uniform(n_mod):
    """The compiled blocked draw search against a plain cumsum + searchsorted. The weights are
    multiples of 2^-20, so every partial sum is exact in any order and the indices must agree
    exactly: zero-weight runs, r = 0, r just below 1, one-model rows and n_mod not a multiple
    of the search's blocks included."""
    from catalog.sed.fitting import _draw_indices

    rng = np.random.default_rng(9)
    p = (rng.integers(0, 2**12, (30, n_mod)) * 2.0**-20).astype(np.float32)
    p[:, : n_mod // 10] = 0
    p[:, n_mod - n_mod // 7 :] = 0
    p[5] = 0
    p[5, n_mod // 2] = 2.0**-3
    r = rng.random((30, 50))
    # targets exactly on cumulative weights (ties go to the first model reaching them)
    r[7, :] = np.cumsum(p[7], dtype=np.float64)[rng.integers(0, n_mod, 50)] / p[7].sum(dtype=np.float64)
    r[:, 0] = 0.0
    r[3, 1] = np.nextafter(1.0, 0)
    got = np.empty(r.shape, np.int64)
    assert _draw_indices(p, r, got)
    np.testing.assert_array_equal(got, _first_reaching(p, r))
    assert np.all(p[np.arange(30)[:, None], got][r > 0] > 0)  # r > 0 never lands on a zero weight
    assert np.all(got[:, 0] == 0)  # r = 0
    p[2, 3] = np.nan
    assert not _draw_indices(p, r, got)


def test_draw_indices_of_float_weights_agree_with_a_sequential_cumsum():
    """With arbitrary float32 weights the blocked sums round differently from one sequential
    chain only in the last bits: a draw may differ only where its target lies within 1e-12 of
    a model's cumulative weight."""
    from catalog.sed.fitting import _draw_indices

    rng = np.random.default_rng(3)
    p = (rng.random((40, 21063)) ** 6).astype(np.float32)
    p /= p.sum(axis=1, keepdims=True)
    r = rng.random((40, 100))
    got = np.empty(r.shape, np.int64)
    assert _draw_indices(p, r, got)
    want = _first_reaching(p, r)
    differ = got != want
    cum = np.cumsum(p, axis=1, dtype=np.float64)
    rows = np.nonzero(differ)[0]
    gap = np.abs(cum[rows, np.minimum(got, want)[differ]] - r[differ] * cum[rows, -1])
    assert differ.mean() < 1e-3 and np.all(gap < 1e-12)


def test_compiled_exp_matches_numpy_to_two_ulp_and_underflows_to_zero():
    """The fit's vectorised float32 exp of (-chi2 / 2 + ln prior - max) against numpy's float64
    exp of the same float32 argument: within 2.5e-7 relative wherever float32 holds the value
    normally, exactly 0 below its underflow (and for a zero prior, chi2 = inf), exactly 1 at
    the maximum."""
    from catalog.sed.fitting import _EXP_LOWEST32, _exp_shifted

    rng = np.random.default_rng(4)
    chi2 = np.concatenate(
        [rng.uniform(0, 40, 4000), rng.uniform(0, 400, 4000), [0.0, 1e30, np.inf, 174.0, 175.0]]
    ).astype(np.float32)
    lp = rng.uniform(-12, -8, chi2.size).astype(np.float32)
    lp[5] = -np.inf
    pm = np.float32(-7.5)
    arg = (chi2 * np.float32(-0.5) + lp) - pm
    row = chi2.copy()
    _exp_shifted(row, lp, pm)
    want = np.exp(arg.astype(np.float64))
    normal = arg >= _EXP_LOWEST32
    assert normal.sum() > 3000 and (~normal).sum() > 2000
    np.testing.assert_allclose(row[normal], want[normal], rtol=2.5e-7, atol=0)
    assert np.all(row[~normal] == 0) and row[5] == 0
    one = np.zeros(3, np.float32)
    _exp_shifted(one, np.zeros(3, np.float32), np.float32(0))
    np.testing.assert_array_equal(one, 1.0)


def test_row_extrema_by_order_keys_match_numpy_with_ties_and_infinities():
    """The fit's integer-key extrema of a chi2 row against numpy's: argmin chi2 and argmax of
    p + density at their first index, min chi2 and max p (p = -chi2 / 2 + ln prior, float32),
    on rows full of ties, +inf chi2 and -inf priors; a NaN anywhere flags the row."""
    from catalog.sed.fitting import _row_extrema

    rng = np.random.default_rng(9)
    values = np.float32([0.0, 0.5, 1.0, 3.0, 1e30, np.inf])
    for _ in range(400):
        n = int(rng.integers(1, 300))
        chi2 = rng.choice(values, n)
        lp = rng.choice(np.float32([-12.0, -9.5, 0.0, -np.inf]), n)
        dens = rng.choice(np.float32([0.0, 0.25, -1.0]), n)
        bad, ib, vb, iq, pm = _row_extrema(chi2, lp, dens)
        p = chi2 * np.float32(-0.5) + lp
        assert not bad
        assert ib == np.argmin(chi2) and vb == chi2.min()
        assert iq == np.argmax(p + dens) and pm == p.max()
    chi2 = np.ones(50, np.float32)
    chi2[37] = np.nan
    assert _row_extrema(chi2, np.zeros(50, np.float32), np.zeros(50, np.float32))[0]


def test_the_fused_and_separate_mass_profiles_give_the_same_fit():
    """Without upper limits the mass is profiled inside the per-row posterior pass; with the
    chi2 grid kept it is profiled first over the block. Both run the same float32 operations,
    so every number agrees exactly, and both agree with the float64 reference."""
    grid = _random_grid(seed=5)
    obs, err, _ = _objects(grid, 30, seed=6)
    no_limits = np.zeros(obs.shape, bool)
    fused = sps.fit_ssp(grid, obs, err, n_samples=5, rng=1)
    separate = sps.fit_ssp(grid, obs, err, n_samples=5, rng=1, keep_chi2_grid=True)
    for k in sps.FIT_KEYS:
        np.testing.assert_array_equal(fused.percentiles[k], separate.percentiles[k])
        np.testing.assert_array_equal(fused.samples[k], separate.samples[k])
        np.testing.assert_array_equal(fused.best_fit_params[k], separate.best_fit_params[k])
    np.testing.assert_array_equal(fused.log_evidence, separate.log_evidence)
    ref = _reference(grid, obs, err, no_limits)
    for i, r in enumerate(ref):
        for k in ("age_gyr", "log_z", "av"):
            np.testing.assert_allclose(fused.percentiles[k][i], r[k], rtol=1e-4, atol=1e-4, err_msg=k)
        np.testing.assert_allclose(fused.chi2_min[i], r["chi2_min"], rtol=1e-4, atol=1e-3)


def test_direct_and_fft_smoothing_of_mass_histograms_agree():
    """The mass histograms are smoothed by direct convolution up to 8 bins wide and by FFT
    above. On the same rows (spikes at the edges, where mass smoothed past either end is
    dropped by both, and dense random rows): from 2 to 8 bins wide the smoothed rows agree
    within 2e-7 of the row's total; below 2 bins the FFT kernel is cut at the Nyquist frequency
    and rings, and the rows differ more. The quantiles agree within 0.01 bins from 2 bins wide
    up, and within half a bin (below the histogram's resolution) from 0.25 to 2 bins. Width 0
    leaves a row unchanged."""
    from catalog.sed.fitting import (
        _DIRECT_SMOOTHING_CUT,
        _DIRECT_SMOOTHING_MAX_BINS,
        _gaussian_smooth_direct,
        _gaussian_smooth_fft,
        _histogram_quantiles,
        _smoothed_histogram_quantiles,
    )

    rng = np.random.default_rng(12)
    n_bins, n = 512, 80
    h = np.zeros((n, n_bins), np.float32)
    h[: n // 2, [0, 3, 255, 508, 511]] = 1.0
    h[n // 2 :] = rng.exponential(1.0, (n // 2, n_bins)) * (rng.uniform(size=(n // 2, n_bins)) < 0.7)
    width = np.concatenate([np.linspace(0.25, _DIRECT_SMOOTHING_MAX_BINS, n // 2)] * 2)
    direct = np.empty_like(h)
    _gaussian_smooth_direct(h, width, np.arange(n), _DIRECT_SMOOTHING_CUT, direct)
    fft = _gaussian_smooth_fft(h, width)
    total = h.sum(axis=1, dtype=np.float64)
    sharp = width >= 2
    assert np.all(np.abs(direct - fft).max(axis=1)[sharp] < 2e-7 * total[sharp])
    # the edge spikes really lose mass past the ends, by the same amount in both
    lost = total[: n // 2] - direct[: n // 2].sum(axis=1, dtype=np.float64)
    lost_fft = total[: n // 2] - fft[: n // 2].sum(axis=1, dtype=np.float64)
    edge = sharp[: n // 2]
    assert np.all(lost[edge] > 0.8) and np.allclose(lost[edge], lost_fft[edge], rtol=0, atol=1e-5)
    lo, span, present = np.zeros(n), np.full(n, 5.12), np.ones(n, bool)
    got = _smoothed_histogram_quantiles(h, lo, span, width, present, QS)
    want = np.full((n, len(QS)), np.nan)
    _histogram_quantiles(np.clip(fft, 0, None), lo, span, present, np.asarray(QS), want)
    assert np.all(np.isfinite(got))
    bin_width = 5.12 / n_bins
    np.testing.assert_allclose(got[sharp], want[sharp], atol=0.01 * bin_width, rtol=0)
    np.testing.assert_allclose(got, want, atol=0.5 * bin_width, rtol=0)
    same = np.empty_like(h)
    _gaussian_smooth_direct(h, np.zeros(n), np.arange(n), _DIRECT_SMOOTHING_CUT, same)
    np.testing.assert_array_equal(same, h)
