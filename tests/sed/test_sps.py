"""BC03 SSP grids, grid fitting, stacks, SEDz* SFHs and Milky Way extinction (catalog.sed)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from astropy.cosmology import FlatLambdaCDM
from scipy import stats

from catalog import sed as sps

# SMACS0723-like set: ACS F814W and eight NIRCam bands (pivot order)
BANDS = [
    "acs_wfc_f814w",
    "jwst_f090w",
    "jwst_f115w",
    "jwst_f150w",
    "jwst_f200w",
    "jwst_f277w",
    "jwst_f356w",
    "jwst_f410m",
    "jwst_f444w",
]
Z_SMACS = 0.39
L_SUN = 3.826e33  # erg/s, the solar luminosity of the BC03 tables
C_AA = 2.99792458e18  # Angstrom/s


@pytest.fixture(scope="module")
def grid():
    return sps.build_grid(Z_SMACS, BANDS)


def _filter(name):
    from sedpy import observate

    return observate.load_filters([name])[0]


# ------------------------------------------------------------------------------------------ grid


def test_load_bc03_axes_and_living_fraction():
    bc = sps.load_bc03()
    assert bc["spectra"].shape == (7, 221, bc["wave_angstrom"].size)
    assert bc["age_yr"].size == 221 and bc["age_yr"][0] == 0 and np.all(np.diff(bc["age_yr"]) > 0)
    np.testing.assert_allclose(bc["z_zsun"], [0.005, 0.02, 0.2, 0.4, 1, 2.5, 5])
    lf = bc["living_fraction"]
    assert lf.shape == (221, 7) and np.all(lf <= 1) and np.all(lf > 0.3)
    # stars only ever return mass (the BC03 table has two upticks of <0.4%, at 55 Myr and 227 Myr)
    assert np.all(np.diff(lf, axis=0) < 0.004)
    assert np.all(lf[-1] < lf[100])
    # a Chabrier SSP: ~1000 L_sun per Msun at 0.1 Myr, well below 1 L_sun per Msun when old
    lbol = np.trapezoid(bc["spectra"][4], bc["wave_angstrom"], axis=1)
    assert 300 < lbol[1] < 3000 and 0.05 < lbol[-1] < 0.5


def test_f150w_magnitude_of_1gyr_cluster_matches_direct_integration(grid):
    """1e6 Msun, solar, 1 Gyr at z=0.39: the grid against a direct integral of the BC03 spectrum."""
    bc = sps.load_bc03()
    ia = int(np.argmin(np.abs(grid.age_gyr - 1.0)))
    iz = int(np.argmin(np.abs(grid.log_z_zsun)))
    age_yr = grid.age_gyr[ia] * 1e9
    spec = bc["spectra"][4, int(np.argmin(np.abs(bc["age_yr"] - age_yr)))]  # L_sun/A per Msun formed
    d_l = FlatLambdaCDM(H0=70, Om0=0.3).luminosity_distance(Z_SMACS).to_value("cm")
    wave_obs = bc["wave_angstrom"] * (1 + Z_SMACS)
    f_lam = 1e6 * spec * L_SUN / (4 * np.pi * d_l**2 * (1 + Z_SMACS))  # erg/s/cm2/A observed
    f_nu_njy = f_lam * wave_obs**2 / C_AA / 1e-32
    filt = _filter("jwst_f150w")
    w, t = filt.wavelength, filt.transmission
    # photon-counting AB band flux: int f_nu T / lambda / int T / lambda
    direct = np.trapezoid(np.interp(w, wave_obs, f_nu_njy) * t / w, w) / np.trapezoid(t / w, w)
    mag_direct = 31.4 - 2.5 * np.log10(direct)
    mag_grid = 31.4 - 2.5 * np.log10(1e6 * grid.flux_njy[ia, iz, 0, BANDS.index("jwst_f150w")])
    assert abs(mag_grid - mag_direct) < 0.01
    assert abs(filt.ab_mag(wave_obs, f_lam) - mag_direct) < 0.01  # sedpy's own projection
    # plausible: M/L ~ 1 at 1 Gyr, distance modulus ~41.6 -> an intracluster GC of ~30 AB
    assert 29.0 < mag_grid < 31.5


def test_fluxes_fall_with_age(grid):
    # from 0.1 Gyr on: red supergiants make the near-IR of 10-50 Myr populations brighter than at 10 Myr
    ages = [0.1, 0.3, 1.0, 3.0, 9.0]
    idx = [int(np.argmin(np.abs(grid.age_gyr - a))) for a in ages]
    for b in ("acs_wfc_f814w", "jwst_f150w"):
        for iz in range(grid.log_z_zsun.size):
            f = grid.flux_njy[idx, iz, 0, BANDS.index(b)]
            assert np.all(np.diff(f) < 0), (b, iz, f)
    assert grid.age_gyr.max() <= FlatLambdaCDM(H0=70, Om0=0.3).age(Z_SMACS).value
    assert grid.age_gyr.min() > 0


def test_av_reddens(grid):
    pivots = np.array([_filter(b).wave_pivot for b in BANDS])
    assert np.all(np.diff(pivots) > 0)
    ratio = grid.flux_njy[:, :, -1, :] / grid.flux_njy[:, :, 0, :]  # A_V = 1 over A_V = 0
    assert np.all(ratio < 1)
    assert np.all(np.diff(ratio, axis=-1) > 0)  # redder bands lose less
    # for a smooth spectrum the band ratio is close to the curve at the rest-frame pivot
    k = sps.calzetti_attenuation(pivots / (1 + Z_SMACS))
    ia = int(np.argmin(np.abs(grid.age_gyr - 3.0)))
    np.testing.assert_allclose(ratio[ia, 4], 10 ** (-0.4 * k), rtol=0.03)


def test_calzetti_reference_values():
    # Calzetti et al. (2000): k(0.15 um) = 10.33, k(0.55 um) = R_V = 4.05, k(2.2 um) = 0.37
    got = sps.calzetti_attenuation([1500.0, 5500.0, 22000.0]) * 4.05
    np.testing.assert_allclose(got, [10.33, 4.05, 0.37], rtol=0.01)
    beyond = sps.calzetti_attenuation([900.0, 1100.0, 32000.0, 50000.0])
    assert beyond[0] > beyond[1] > 10.33 / 4.05 and beyond[2] == 0 and beyond[3] == 0


def test_igm_kills_flux_blueward_of_lyman_alpha_at_z6():
    z = 6.0
    lya = 1215.67 * (1 + z)
    blue = np.linspace(4000, lya - 30, 200)
    t_blue = sps.igm_transmission(blue, z)
    assert t_blue.max() < 0.2 and t_blue.mean() < 0.1
    np.testing.assert_array_equal(sps.igm_transmission(np.linspace(lya + 1, 3e4, 50), z), 1.0)
    bands = ["jwst_f070w", "jwst_f090w", "jwst_f150w"]
    with_igm = sps.build_grid(z, bands, n_av=1)
    without = sps.build_grid(z, bands, n_av=1, igm=False)
    r = with_igm.flux_njy / without.flux_njy
    assert np.all(r[..., 0] < 0.15)  # F070W lies wholly blueward of Lyman-alpha at z=6
    assert np.all((r[..., 1] < 1) & (r[..., 1] > r[..., 0]))  # F090W straddles it
    np.testing.assert_allclose(r[..., 2], 1.0)
    # and nothing changes at z=0.39 in these bands
    low = sps.build_grid(Z_SMACS, ["jwst_f090w"], n_av=1)
    low_no = sps.build_grid(Z_SMACS, ["jwst_f090w"], n_av=1, igm=False)
    np.testing.assert_allclose(low.flux_njy, low_no.flux_njy)


def test_grid_shape_spec_flat_and_rebuild(grid):
    n_age, n_z, n_av = grid.shape
    assert (n_z, n_av) == (7, 11) and grid.flux_njy.shape == (n_age, 7, 11, len(BANDS))
    assert grid.living_fraction.shape == (n_age, 7)
    fluxes, params = grid.flat()
    assert fluxes.shape == (n_age * 77, len(BANDS)) and params.shape == (n_age * 77, 3)
    k = 5 * 77 + 3 * 11 + 7
    np.testing.assert_array_equal(fluxes[k], grid.flux_njy[5, 3, 7])
    np.testing.assert_allclose(params[k], [grid.age_gyr[5], grid.log_z_zsun[3], grid.av[7]])
    spec = json.loads(json.dumps(grid.spec))
    assert spec["bc03_sha256"] == sps.load_bc03()["sha256"]
    again = sps.SSPGrid.from_spec(spec)
    np.testing.assert_array_equal(again.flux_njy, grid.flux_njy)


def test_metallicity_interpolation_in_log_z():
    g = sps.build_grid(Z_SMACS, ["jwst_f150w"], metallicities=[0.2, 10**-0.55, 0.4], n_av=1)
    mid = g.flux_njy[:, 1, 0, 0]
    w = (-0.55 - np.log10(0.2)) / (np.log10(0.4) - np.log10(0.2))
    np.testing.assert_allclose(mid, (1 - w) * g.flux_njy[:, 0, 0, 0] + w * g.flux_njy[:, 2, 0, 0])
    with pytest.raises(ValueError):
        sps.build_grid(Z_SMACS, ["jwst_f150w"], metallicities=[10.0])


def test_nebular_emission_only_for_young_populations():
    # H-alpha at z=0.39 falls in F090W
    plain = sps.build_grid(Z_SMACS, ["jwst_f090w", "jwst_f444w"], n_av=1)
    neb = sps.build_grid(Z_SMACS, ["jwst_f090w", "jwst_f444w"], n_av=1, nebular=True)
    young = plain.age_gyr < 0.002
    old = plain.age_gyr > 0.011
    # (the 5 Zsun BC03 SSPs emit almost no ionising photons, so their nebular emission is ~0)
    assert np.all(neb.flux_njy[young, :6, 0, 0] > 2 * plain.flux_njy[young, :6, 0, 0])
    assert np.all(neb.flux_njy[young, :6, 0, 1] > plain.flux_njy[young, :6, 0, 1])
    np.testing.assert_array_equal(neb.flux_njy[old], plain.flux_njy[old])


# ----------------------------------------------------------------------------------------- fitting


def _interp_models(g, xa, xz, xv):
    """Fluxes and living fractions at fractional grid indices (multilinear), per Msun formed."""
    f, lf = g.flux_njy, g.living_fraction
    out, live = 0.0, 0.0
    idx = []
    for x, n in ((xa, f.shape[0]), (xz, f.shape[1]), (xv, f.shape[2])):
        i = np.clip(np.floor(x).astype(int), 0, n - 2)
        idx.append((i, x - i))
    (ia, fa), (iz, fz), (iv, fv) = idx
    for da, wa in ((0, 1 - fa), (1, fa)):
        for dz, wz in ((0, 1 - fz), (1, fz)):
            live = live + wa * wz * lf[ia + da, iz + dz]
            for dv, wv in ((0, 1 - fv), (1, fv)):
                out = out + (wa * wz * wv)[:, None] * f[ia + da, iz + dz, iv + dv]
    return out, live


def test_recovery_of_synthetic_ssps_is_calibrated(capsys):
    """~1000 SSPs per S/N, drawn from the prior, noisy, fitted: 16-84% intervals hold ~68%."""
    z_grid = 10 ** np.linspace(np.log10(0.005), np.log10(5), 16)  # 0.2 dex steps in log Z
    g = sps.build_grid(Z_SMACS, BANDS, metallicities=z_grid)
    n_age, n_z, n_av = g.shape
    rng = np.random.default_rng(20240723)
    n = 1000
    rows = []
    for snr in (5, 10, 20, 50):
        # truths drawn from the default prior (uniform in age index, log Z, A_V), between nodes
        xa, xz, xv = rng.uniform(0, n_age - 1, n), rng.uniform(0, n_z - 1, n), rng.uniform(0, n_av - 1, n)
        log_m = rng.uniform(5, 7, n)
        unit, live = _interp_models(g, xa, xz, xv)
        true_flux = unit * 10 ** log_m[:, None]
        err = true_flux / snr
        flux = true_flux + err * rng.standard_normal(true_flux.shape)
        # the synthetic photometry is exact: no error floor
        res = sps.fit_ssp(g, flux, err, error_floor=0.0, n_samples=200 if snr == 10 else 0, rng=1)
        truth = {
            "age_gyr": np.interp(xa, np.arange(n_age), np.log10(g.age_gyr)),  # compared in log age
            "log_z": np.interp(xz, np.arange(n_z), g.log_z_zsun),
            "av": np.interp(xv, np.arange(n_av), g.av),
            "log_mass_formed": log_m,
            "log_mass_living": log_m + np.log10(live),
        }
        line = {"snr": snr}
        for key, tv in truth.items():
            pc = res.percentiles[key].copy()
            if key == "age_gyr":
                pc = np.log10(pc)
            assert np.all(pc[:, 0] <= pc[:, 1]) and np.all(pc[:, 1] <= pc[:, 2])
            d = pc[:, 1] - tv
            line[key] = (
                np.mean((tv >= pc[:, 0]) & (tv <= pc[:, 2])),
                np.median(d),
                1.4826 * np.median(np.abs(d - np.median(d))),
            )
        rows.append(line)
        for key in ("age_gyr", "log_mass_formed", "log_mass_living", "log_z", "av"):
            assert abs(line[key][0] - 0.68) < 0.06, (snr, key, line[key])
        assert abs(line["log_mass_formed"][1]) < 0.05
        assert np.all(res.n_bands == len(BANDS))
        if snr == 10:
            # draws follow the same posterior as the percentiles
            for key in ("age_gyr", "log_mass_formed", "av"):
                med = np.median(res.samples[key], axis=1)
                ref = res.percentiles[key][:, 1]
                if key == "age_gyr":
                    med, ref = np.log10(med), np.log10(ref)
                assert np.median(np.abs(med - ref)) < 0.05
    with capsys.disabled():
        print("\nSSP recovery (coverage of 16-84 / median bias / robust scatter of the median):")
        for line in rows:
            print(
                f"  S/N {line['snr']:>2}: "
                + "; ".join(
                    f"{k} {c:.2f}/{b:+.3f}/{s:.3f}"
                    for k, (c, b, s) in (
                        (k, line[k]) for k in ("age_gyr", "log_z", "av", "log_mass_formed", "log_mass_living")
                    )
                )
            )
    # scatter shrinks with S/N
    assert rows[-1]["log_mass_formed"][2] < rows[0]["log_mass_formed"][2]
    assert rows[-1]["age_gyr"][2] < rows[0]["age_gyr"][2]


def test_fit_of_noiseless_model_finds_it(grid):
    ia, iz, iv = 150, 4, 3
    flux = 3e6 * grid.flux_njy[ia, iz, iv][None]
    res = sps.fit_ssp(grid, flux, 0.02 * flux, error_floor=0.0)
    assert res.map_params["age_gyr"][0] == grid.age_gyr[ia]
    assert res.map_params["log_z"][0] == grid.log_z_zsun[iz]
    assert res.map_params["av"][0] == pytest.approx(grid.av[iv])
    assert res.map_params["log_mass_formed"][0] == pytest.approx(np.log10(3e6), abs=1e-4)
    live = np.log10(3e6 * grid.living_fraction[ia, iz])
    assert res.map_params["log_mass_living"][0] == pytest.approx(live, abs=1e-4)
    assert res.chi2_min[0] < 1e-2
    assert res.n_bands[0] == len(BANDS)
    assert res.reduced_chi2[0] == pytest.approx(res.chi2_min[0] / (len(BANDS) - 4))


def test_missing_bands_are_dropped_per_object(grid):
    rng = np.random.default_rng(3)
    flux = 1e6 * grid.flux_njy[120, 2, 2] * (1 + 0.1 * rng.standard_normal(len(BANDS)))
    err = 0.1 * np.abs(flux)
    f2 = np.vstack([flux, flux, flux])
    e2 = np.vstack([err, err, err])
    f2[1, 2] = np.nan
    e2[2, 2] = np.inf
    res = sps.fit_ssp(grid, f2, e2)
    np.testing.assert_array_equal(res.n_bands, [9, 8, 8])
    # dropping a band equals fitting a grid without it
    keep = [b for i, b in enumerate(BANDS) if i != 2]
    g8 = sps.build_grid(Z_SMACS, keep)
    ref = sps.fit_ssp(g8, np.delete(f2[1:2], 2, axis=1), np.delete(e2[1:2], 2, axis=1))
    assert res.chi2_min[1] == pytest.approx(ref.chi2_min[0], rel=1e-3, abs=1e-3)
    assert res.chi2_min[2] == pytest.approx(ref.chi2_min[0], rel=1e-3, abs=1e-3)
    for k in sps.FIT_KEYS:
        np.testing.assert_allclose(res.percentiles[k][1], ref.percentiles[k][0], atol=2e-3)


def test_upper_limit_erf_term_on_a_two_model_grid():
    """Two models identical in the detected bands: the one above the limit is disfavoured."""
    flux = np.zeros((2, 1, 1, 3))
    flux[0, 0, 0] = [1.0, 1.0, 0.5]  # below the limit at the best scale
    flux[1, 0, 0] = [1.0, 1.0, 3.0]  # 6 sigma above it
    g = sps.SSPGrid(
        z=0.39,
        bands=["a", "b", "c"],
        age_gyr=np.array([1.0, 2.0]),
        log_z_zsun=np.zeros(1),
        av=np.zeros(1),
        flux_njy=flux,
        living_fraction=np.ones((2, 1)),
        spec={},
    )
    f = np.array([[100.0, 100.0, np.nan], [100.0, 100.0, 100.0]])
    e = np.array([[5.0, 5.0, np.nan], [5.0, 5.0, np.nan]])  # limit without error: sigma = limit/3
    ul = np.array([[False, False, False], [False, False, True]])
    res = sps.fit_ssp(g, f, e, upper_limit=ul, error_floor=0.0, keep_chi2_grid=True)
    np.testing.assert_allclose(res.chi2_grid[0, :, 0], [0.0, 0.0], atol=1e-3)
    sigma = 100.0 / 3
    expect = [-2 * stats.norm.logcdf((100 - 100 * m) / sigma) for m in (0.5, 3.0)]
    np.testing.assert_allclose(res.chi2_grid[1, :, 0], expect, rtol=1e-3, atol=1e-3)
    assert res.n_bands.tolist() == [2, 3]
    assert res.map_params["age_gyr"][1] == 1.0
    # without the limit the two ages are equally likely: the median sits between them
    assert res.percentiles["age_gyr"][0, 1] == pytest.approx(np.sqrt(2.0), rel=0.02)
    assert res.percentiles["age_gyr"][1, 2] < 1.5


def test_upper_limit_constrains_a_bc03_fit():
    """F444W only as a limit below the truth pulls the fit down; a limit far above changes nothing."""
    bands = ["acs_wfc_f814w", "jwst_f090w", "jwst_f115w", "jwst_f150w", "jwst_f444w"]
    g = sps.build_grid(Z_SMACS, bands)
    models, params = g.flat()
    j = 4
    model = 1e6 * g.flux_njy[150, 4, 0]
    f = np.vstack([model, model, model])
    e = 0.05 * np.abs(f)
    f[0, j] = np.nan  # F444W not measured
    f[1, j] = 0.5 * model[j]  # an upper limit below the truth
    f[2, j] = 10.0 * model[j]  # a limit far above it
    e[1:, j] = np.nan  # sigma = limit / 3
    ul = np.zeros_like(f, dtype=bool)
    ul[1:, j] = True
    res = sps.fit_ssp(g, f, e, upper_limit=ul)

    def map_f444w(i):
        k = np.flatnonzero(
            (params[:, 0] == res.map_params["age_gyr"][i])
            & (params[:, 1] == res.map_params["log_z"][i])
            & np.isclose(params[:, 2], res.map_params["av"][i])
        )[0]
        return 10 ** res.map_params["log_mass_formed"][i] * models[k, j] / model[j]

    assert map_f444w(1) < map_f444w(0) - 0.2
    assert map_f444w(1) < 0.5 * (1 + 2 / 3)  # within 2 sigma of the limit
    assert res.chi2_min[1] > res.chi2_min[0] + 1
    assert res.n_bands.tolist() == [4, 5, 5]
    assert res.chi2_min[2] < 0.05
    for key in sps.FIT_KEYS:
        a, b = res.percentiles[key][2], res.percentiles[key][0]
        if key == "age_gyr":
            a, b = np.log10(a), np.log10(b)
        np.testing.assert_allclose(a, b, atol=0.02)


def test_default_prior_is_flat_in_index_log_z_and_av(grid):
    lp = sps.default_log_prior(grid)
    w = np.exp(lp)
    assert w.sum() == pytest.approx(1.0)
    # interior nodes equal, end nodes half (cells clipped to the axis range)
    assert w[5, 3, 5] == pytest.approx(w[6, 3, 5])
    assert w[0, 3, 5] == pytest.approx(w[5, 3, 5] / 2)
    assert w[5, 3, 0] == pytest.approx(w[5, 3, 5] / 2)


# ------------------------------------------------------------------------------------------ stacks


def test_stack_of_identical_sources_returns_the_source():
    src = np.array([10.0, 25.0, -3.0, 80.0])
    f = np.tile(src, (50, 1))
    e = np.tile([1.0, 2.0, 1.0, 4.0], (50, 1))
    out = sps.stack_photometry(f, e, n_boot=200, rng=1)
    np.testing.assert_allclose(out["median"], src)
    np.testing.assert_allclose(out["ivw_mean"], src)
    np.testing.assert_allclose(out["median_err"], 0.0, atol=1e-12)
    np.testing.assert_allclose(out["ivw_err"], np.array([1.0, 2.0, 1.0, 4.0]) / np.sqrt(50))
    np.testing.assert_array_equal(out["n"], 50)
    f[:5, 1] = np.nan
    e[5:8, 2] = np.nan
    out = sps.stack_photometry(f, e, n_boot=50, rng=1)
    assert out["n"].tolist() == [50, 45, 50, 50]
    np.testing.assert_allclose(out["ivw_mean"], src)
    # an error floor tames near-zero published errors in the weights
    f2 = np.array([[10.0], [20.0]])
    e2 = np.array([[0.01], [1.0]])
    assert sps.stack_photometry(f2, e2, n_boot=10, rng=1)["ivw_mean"][0] < 10.01
    floored = sps.stack_photometry(f2, e2, n_boot=10, rng=1, error_floor=0.05)["ivw_mean"][0]
    w = 1 / np.array([0.01**2 + 0.5**2, 1.0 + 1.0**2])
    assert floored == pytest.approx((w @ [10.0, 20.0]) / w.sum())


def test_stack_bootstrap_error_scales_as_inverse_sqrt_n():
    rng = np.random.default_rng(7)
    truth, sigma = 40.0, 10.0
    errs = {}
    for n in (200, 3200):
        # 20 independent stacks: one bootstrap error of a median scatters by ~20% at n=200
        f = truth + sigma * rng.standard_normal((n, 20))
        out = sps.stack_photometry(f, np.full_like(f, sigma), n_boot=500, rng=rng)
        errs[n] = out["median_err"].mean()
        # median of a Gaussian sample: sqrt(pi/2) sigma / sqrt(n)
        assert errs[n] == pytest.approx(np.sqrt(np.pi / 2) * sigma / np.sqrt(n), rel=0.15)
        assert np.all(np.abs(out["median"] - truth) < 4 * errs[n])
        assert np.all(np.abs(out["ivw_mean"] - truth) < 4 * sigma / np.sqrt(n))
    assert errs[200] / errs[3200] == pytest.approx(4.0, rel=0.2)


# --------------------------------------------------------------------------------------------- SFH

SFH_BANDS = [
    "acs_wfc_f606w",
    "acs_wfc_f814w",
    "jwst_f090w",
    "jwst_f115w",
    "jwst_f150w",
    "jwst_f200w",
    "jwst_f277w",
    "jwst_f356w",
    "jwst_f410m",
    "jwst_f444w",
]


def test_sfh_templates_layout():
    tpl = sps.sfh_templates(5.5, SFH_BANDS)
    cosmo = FlatLambdaCDM(H0=70, Om0=0.3)
    np.testing.assert_allclose(tpl["epochs"], [[12, 11], [11, 10], [10, 9], [9, 8], [8, 7], [7, 6], [6, 5.5]])
    assert tpl["flux_njy"].shape == (14, len(SFH_BANDS))
    assert tpl["kind"].tolist() == ["burst", "constant"] * 7
    np.testing.assert_allclose(tpl["t_start_gyr"][::2], cosmo.age([12, 11, 10, 9, 8, 7, 6]).value)
    assert tpl["t_obs_gyr"] == pytest.approx(cosmo.age(5.5).value)
    assert np.all(tpl["flux_njy"] > 0)
    # older bursts are fainter in the rest-frame UV (F115W: 1770 A at z=5.5) per Msun formed
    assert np.all(np.diff(tpl["flux_njy"][::2, 3]) > 0)
    # F606W lies blueward of Lyman-alpha at z=5.5 (rest 720-1110 A): the IGM leaves little
    assert np.all(tpl["flux_njy"][:, 0] < 0.15 * tpl["flux_njy"][:, 3])
    no_igm = sps.sfh_templates(5.5, SFH_BANDS, igm=False)
    assert np.all(tpl["flux_njy"][:, 0] < 0.2 * no_igm["flux_njy"][:, 0])
    np.testing.assert_allclose(tpl["flux_njy"][:, 4:], no_igm["flux_njy"][:, 4:])
    assert np.all((tpl["living_fraction"] > 0.5) & (tpl["living_fraction"] <= 1))


def test_sfh_recovers_dominant_epochs_within_error_bars():
    """SEDz* NNLS: 100 noisy realisations of two dominant epochs; truth inside the error bars."""
    tpl = sps.sfh_templates(5.5, SFH_BANDS, epochs_z=(12, 8, 6))
    masses = np.zeros(len(tpl["kind"]))
    masses[1] = 5e8  # constant SF from z=12 to 8
    masses[5] = 1e8  # constant SF from z=6 to 5.5 (observation)
    true_epoch = np.array([masses[0] + masses[1], masses[2] + masses[3], masses[4] + masses[5]])
    clean = masses @ tpl["flux_njy"]
    err = clean / 20
    rng = np.random.default_rng(11)
    flux = clean + err * rng.standard_normal((100, clean.size))
    res = sps.fit_sfh(tpl, flux, np.broadcast_to(err, flux.shape), rng=5)
    dom = true_epoch > 0
    lo, hi, best = res["mass_epoch_p16"][:, dom], res["mass_epoch_p84"][:, dom], res["mass_epoch"][:, dom]
    inside = (true_epoch[dom] >= lo) & (true_epoch[dom] <= hi)
    inside2 = (true_epoch[dom] >= best - 2 * (best - lo)) & (true_epoch[dom] <= best + 2 * (hi - best))
    assert np.all(inside.mean(axis=0) > 0.45), inside.mean(axis=0)
    assert np.all(inside2.mean(axis=0) > 0.85), inside2.mean(axis=0)
    np.testing.assert_allclose(np.median(best, axis=0), true_epoch[dom], rtol=0.1)
    # the empty middle epoch stays minor
    assert np.median(res["mass_epoch"][:, 1]) < 0.2 * true_epoch.sum()
    np.testing.assert_allclose(np.median(res["mass_total"]), true_epoch.sum(), rtol=0.05)
    # t50 of the fitted template masses, integrated here on a fine time grid (cosmic time)
    t = np.linspace(0.3, tpl["t_obs_gyr"], 20001)
    t1 = np.where(tpl["kind"] == "burst", tpl["t_start_gyr"] + 0.01, tpl["t_end_gyr"])
    for i in (0, 1, 2):
        sfr = sum(
            m / (b - a) * ((t >= a) & (t < b))
            for m, a, b in zip(res["mass_template"][i], tpl["t_start_gyr"], t1, strict=True)
        )
        cum = np.cumsum(sfr) * (t[1] - t[0])
        assert res["t50_gyr"][i] == pytest.approx(t[np.searchsorted(cum, cum[-1] / 2)], abs=2e-3)
        z50 = res["z50"][i]
        assert FlatLambdaCDM(H0=70, Om0=0.3).age(z50).value == pytest.approx(res["t50_gyr"][i], abs=1e-3)
    assert np.all(res["mass_epoch_draws"].shape[1:] == (21, 3))
    single = sps.fit_sfh(tpl, flux[0], err, rng=5)
    np.testing.assert_allclose(single["mass_epoch"], res["mass_epoch"][0])


# ----------------------------------------------------------------------------------- MW extinction


def test_mw_extinction_g23_through_filters():
    import astropy.units as u
    from dust_extinction.parameter_averages import G23

    bands = [
        "acs_wfc_f606w",
        "acs_wfc_f814w",
        "jwst_f090w",
        "jwst_f115w",
        "jwst_f150w",
        "jwst_f200w",
        "jwst_f277w",
        "jwst_f356w",
        "jwst_f444w",
    ]
    ebv = 0.19  # SMACS0723 is at low Galactic latitude
    a_band = sps.mw_extinction_mag(bands, ebv)
    assert np.all(np.diff(a_band) < 0) and np.all(a_band > 0)
    pivots = np.array([_filter(b).wave_pivot for b in bands])
    at_pivot = ebv * 3.1 * G23(Rv=3.1)(pivots * u.AA)
    np.testing.assert_allclose(a_band, at_pivot, rtol=0.05)
    np.testing.assert_allclose(sps.mw_extinction_mag(bands, 2 * ebv), 2 * a_band, rtol=0.02)
    assert sps.mw_extinction_mag(["jwst_f150w"], 0.0)[0] == 0.0


def test_best_fit_is_the_chi2_minimum_and_the_mode_uses_the_prior_density(grid):
    """Regression: the stored 'MAP' weighted end nodes of each axis by half (cell widths used
    as prior density), so it was neither the chi2 minimum nor the posterior mode."""
    rng = np.random.default_rng(5)
    n_age, n_z, n_av = grid.shape
    n = 40
    # truths on end nodes of log Z and A_V (where the half-width cells mattered) and inside
    ia = rng.integers(0, n_age, n)
    iz = rng.choice([0, n_z - 1, 3], n)
    iv = rng.choice([0, n_av - 1], n)
    truth = 1e6 * grid.flux_njy[ia, iz, iv]
    err = 0.1 * truth
    obs = truth + err * rng.normal(size=truth.shape)
    res = sps.fit_ssp(grid, obs, err, error_floor=0.0)
    models, params = grid.flat()
    # chi2 of every model with its analytic best mass scale, in float64
    w = 1 / err**2
    b = (obs * w) @ models.T
    c = w @ (models**2).T
    scale = np.maximum(b, 0) / c
    chi2 = (obs**2 * w).sum(axis=1)[:, None] - 2 * scale * b + scale**2 * c
    best = np.argmin(chi2, axis=1)
    np.testing.assert_array_equal(res.best_fit_params["age_gyr"], params[best, 0])
    np.testing.assert_array_equal(res.best_fit_params["log_z"], params[best, 1])
    np.testing.assert_allclose(res.best_fit_params["av"], params[best, 2])
    np.testing.assert_allclose(
        res.best_fit_params["log_mass_formed"], np.log10(scale[np.arange(n), best]), atol=1e-4
    )
    np.testing.assert_allclose(res.chi2_min, chi2[np.arange(n), best], rtol=1e-4, atol=1e-3)
    # A prior flat in the grid coordinates has a constant density: its mode is the best fit.
    for k in sps.FIT_KEYS:
        np.testing.assert_array_equal(res.map_params[k], res.best_fit_params[k])
    # With the log-age prior the mode maximises chi2/2 - ln(prior density) instead.
    lg = sps.fit_ssp(grid, obs, err, error_floor=0.0, log_prior=sps.log_age_prior(grid))
    density = (sps.log_age_prior(grid) - sps.default_log_prior(grid)).ravel()
    mode = np.argmax(-chi2 / 2 + density, axis=1)
    agree = lg.map_params["age_gyr"] == params[mode, 0]
    assert agree.mean() > 0.95  # float32 chi2 may break a near tie
