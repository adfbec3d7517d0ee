"""Lens maps: HFF reading/writing, kappa/gamma from deflections, magnification, sampling, D_ls/D_s."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.cosmology import FlatLambdaCDM, LambdaCDM, Planck18
from astropy.io import fits

from catalog import lensing
from catalog.errors import GccatError
from catalog.lensing import LensMap
from catalog.simulations.lensfield import simulate_lens_field
from ingest.demo import bundled

# The real Lenstool patch of AS1063 as shipped with gccat (binned 4x4 to 0.08"/pix).
AS1063_X = bundled("as1063_lenstool_patch_bin4_x-arcsec-deflect.fits")
AS1063_Y = bundled("as1063_lenstool_patch_bin4_y-arcsec-deflect.fits")

# One cored isothermal halo, slightly off the grid centre: kappa0 = 1.5, r_c = 2".
NIS = [{"x_arcsec": 0.3, "y_arcsec": -0.2, "kappa0": 1.5, "r_core_arcsec": 2.0}]


@pytest.fixture(scope="module")
def as1063():
    """(alpha_x, alpha_y, kappa, gamma1, gamma2, gamma) of the real Abell S1063 patch."""
    ax, ay = lensing.read_hff_map(AS1063_X), lensing.read_hff_map(AS1063_Y)
    return (ax, ay, *lensing.kappa_gamma_from_deflection(ax, ay))


def _sim(quantity, **kw):
    return simulate_lens_field(quantity=quantity, **kw)


def _on_grid(quantity: str, data: np.ndarray, like: LensMap) -> LensMap:
    return LensMap(quantity, data, like.wcs.deepcopy(), like.header.copy())


# --- file names and reading ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "quantity"),
    [
        ("hlsp_frontier_model_abell2744_cats_v4_kappa.fits", "kappa"),
        ("hlsp_frontier_model_abell2744_cats_v4_gamma.fits", "gamma"),
        ("hlsp_frontier_model_abell2744_cats_v4_gamma1.fits", "gamma1"),
        ("hlsp_frontier_model_macs0416_williams_v4_gamma2.fits.gz", "gamma2"),
        ("/data/hff/hlsp_frontier_model_abell2744_zitrin-nfw_v3_x-arcsec-deflect.fits", "x-arcsec-deflect"),
        ("hlsp_frontier_model_abell2744_cats_v4_y-arcsec-deflect.fits", "y-arcsec-deflect"),
        ("hlsp_frontier_model_abell2744_cats_v1_x-pixels-deflect.fits", "x-pixels-deflect"),
        ("hlsp_frontier_model_abell2744_cats_v4_magnif.fits", "magnif"),
        ("hlsp_frontier_model_abell2744_cats_v4_z02-magnif.fits", "z02-magnif"),
        ("hlsp_frontier_model_abell2744_cats_v4_psi.fits", "psi"),
        ("HLSP_FRONTIER_MODEL_ABELL370_SHARON_V4_KAPPA.FITS", "kappa"),
        ("kappa.fits", "kappa"),
        ("as1063_lenstool_patch_x-arcsec-deflect.fits", "x-arcsec-deflect"),
        ("hlsp_frontier_model_abell2744_cats_v4_kappa_map.fits", None),
        ("hlsp_frontier_model_abell2744_cats_v4_superkappa.fits", None),
        ("hlsp_frontier_model_abell2744_cats_v4_kappa.txt", None),
        ("image_drz.fits", None),
    ],
)
def test_quantity_from_filename(name, quantity):
    assert lensing.quantity_from_filename(name) == quantity


def test_read_real_lenstool_patch():
    m = lensing.read_hff_map(AS1063_X)
    assert m.quantity == "x-arcsec-deflect"
    assert m.shape == (250, 250) and m.data.dtype == np.float64
    assert m.path == str(AS1063_X)
    # CDELT = 4 x 5.5611e-6 deg (binned 4x4 from the README's 0.02"/pix, which is this rounded).
    assert m.pixel_scale_arcsec == pytest.approx(4 * 5.56111667222778e-06 * 3600, rel=1e-12)
    assert m.data[0, 0] == np.float32(fits.getdata(AS1063_X)[0, 0])
    assert "LensMap(quantity='x-arcsec-deflect'" in repr(m)


def test_read_explicit_quantity_and_extension(tmp_path):
    # An HFF-like file with an empty primary and the map in an image extension, under a name
    # that says nothing about the quantity.
    sim = simulate_lens_field(shape=(20, 30))
    path = tmp_path / "model.fits"
    fits.HDUList(
        [
            fits.PrimaryHDU(),
            fits.BinTableHDU.from_columns([fits.Column("a", "E", array=[1.0])]),
            fits.ImageHDU(sim.data.astype(np.float32), header=sim.wcs.to_header()),
        ]
    ).writeto(path)
    with pytest.raises(GccatError, match="quantity"):
        lensing.read_hff_map(path)
    m = lensing.read_hff_map(path, quantity="kappa")
    assert m.quantity == "kappa" and m.shape == (20, 30)
    np.testing.assert_allclose(m.data, sim.data, rtol=1e-6)
    with pytest.raises(GccatError, match="unknown lens-map quantity 'convergence'"):
        lensing.read_hff_map(path, quantity="convergence")


def _bad_files(tmp_path: Path) -> dict[str, Path]:
    sim = simulate_lens_field(shape=(40, 50))
    good = tmp_path / "good_kappa.fits"
    fits.PrimaryHDU(sim.data, header=sim.wcs.to_header()).writeto(good)
    raw = good.read_bytes()
    files = {}
    files["truncated"] = tmp_path / "truncated_kappa.fits"
    files["truncated"].write_bytes(raw[: len(raw) // 2])
    files["header_only"] = tmp_path / "header_only_kappa.fits"
    files["header_only"].write_bytes(raw[:1000])
    files["not_fits"] = tmp_path / "text_kappa.fits"
    files["not_fits"].write_text("ra,dec,kappa\n342.1,-44.5,0.4\n")
    files["table_only"] = tmp_path / "table_kappa.fits"
    fits.HDUList(
        [fits.PrimaryHDU(), fits.BinTableHDU.from_columns([fits.Column("kappa", "D", array=np.ones(5))])]
    ).writeto(files["table_only"])
    files["cube"] = tmp_path / "cube_kappa.fits"
    cube_header = sim.wcs.to_header()
    cube_header["CTYPE3"] = "FREQ"
    fits.PrimaryHDU(np.ones((3, 40, 50)), header=cube_header).writeto(files["cube"])
    files["no_wcs"] = tmp_path / "pixels_kappa.fits"
    fits.PrimaryHDU(sim.data).writeto(files["no_wcs"])
    files["dec_first"] = tmp_path / "swapped_kappa.fits"
    swapped = sim.wcs.to_header()
    swapped["CTYPE1"], swapped["CTYPE2"] = "DEC--TAN", "RA---TAN"
    swapped["CRVAL1"], swapped["CRVAL2"] = swapped["CRVAL2"], swapped["CRVAL1"]
    fits.PrimaryHDU(sim.data, header=swapped).writeto(files["dec_first"])
    files["missing"] = tmp_path / "missing_kappa.fits"
    return files


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("truncated", "not a readable FITS file"),
        ("header_only", "not a readable FITS file"),
        ("not_fits", "not a readable FITS file"),
        ("table_only", "no image HDU"),
        ("cube", r"no 2-D image HDU.*\(3, 40, 50\)"),
        ("no_wcs", "no celestial WCS"),
        ("dec_first", "RA on axis 1"),
        ("missing", "no such lens-map file"),
    ],
)
def test_read_bad_files_raise_gccat_error(tmp_path, case, message):
    path = _bad_files(tmp_path)[case]
    with pytest.raises(GccatError, match=message) as err:
        lensing.read_hff_map(path)
    assert err.value.file == str(path)


def test_read_unknown_quantity_name(tmp_path):
    sim = simulate_lens_field(shape=(10, 10))
    path = tmp_path / "map.fits"
    fits.PrimaryHDU(sim.data, header=sim.wcs.to_header()).writeto(path)
    with pytest.raises(GccatError, match="cannot tell the lens-map quantity"):
        lensing.read_hff_map(path)


# --- kappa and gamma from deflections -----------------------------------------------------------


def test_as1063_kappa_positive_with_median_about_0p4(as1063):
    _, _, kappa, _, _, gamma = as1063
    assert kappa.quantity == "kappa" and gamma.quantity == "gamma"
    # README: in pixel axes kappa is positive, median about 0.4 (measured: 0.398).
    assert np.mean(kappa.data > 0) > 0.99
    assert 0.3 < np.median(kappa.data) < 0.5
    assert np.median(kappa.data) == pytest.approx(0.398, abs=0.002)
    # The derived maps stay on the deflection grid.
    assert kappa.wcs.wcs.compare(as1063[0].wcs.wcs) and kappa.shape == (250, 250)
    assert gamma.header["CDELT1"] == as1063[0].header["CDELT1"]


def test_as1063_mu_equals_inverse_jacobian_determinant(as1063):
    ax, ay, kappa, _, _, gamma = as1063
    det = lensing.jacobian_determinant_from_deflection(ax, ay)
    mu = lensing.magnification(kappa.data, gamma.data)
    # A critical curve crosses the patch: both signs of det A occur.
    assert (det < 0).any() and (det > 0).any()
    away = np.abs(det) > 0.1
    rel = np.abs(mu * det - 1.0)[away]
    # mu * det A - 1 = omega^2 / ((1-kappa)^2 - gamma^2), omega the finite-difference curl of the
    # float32 deflections: on the full 0.02" map 6e-11 in the median; on the 4x4-binned map
    # shipped with gccat ~1e-9 in the median, 5e-8 at the 95th percentile.
    assert np.median(rel) < 1e-8
    assert np.percentile(rel, 95) < 1e-6
    gy_x, gx_x = np.gradient(ax.data, ax.pixel_scale_arcsec, edge_order=2)
    gy_y, gx_y = np.gradient(ay.data, ay.pixel_scale_arcsec, edge_order=2)
    omega = 0.5 * (gy_x - gx_y)
    np.testing.assert_allclose(det, 1.0 / mu + omega**2, rtol=0, atol=1e-12)


def test_finite_differences_recover_cored_isothermal_sphere():
    kw = {"shape": (161, 201), "pixel_scale_arcsec": 0.1, "halos": NIS}
    maps = lensing.kappa_gamma_from_deflection(_sim("x-arcsec-deflect", **kw), _sim("y-arcsec-deflect", **kw))
    # Second-order differences at h = 0.1" = r_c/20: |error| < 1e-3 (kappa0 = 1.5; measured 9.4e-4).
    for m in maps:
        np.testing.assert_allclose(m.data, _sim(m.quantity, **kw).data, rtol=0, atol=1e-3)
    # ...and the error falls by 4 when the pixel is halved.
    kw2 = {"shape": (321, 401), "pixel_scale_arcsec": 0.05, "halos": NIS}
    kappa2 = lensing.kappa_gamma_from_deflection(
        _sim("x-arcsec-deflect", **kw2), _sim("y-arcsec-deflect", **kw2)
    )[0]
    err1 = np.abs(maps[0].data - _sim("kappa", **kw).data).max()
    err2 = np.abs(kappa2.data - _sim("kappa", **kw2).data).max()
    assert 3.7 < err1 / err2 < 4.3


def test_finite_differences_recover_point_mass():
    # alpha = theta_E^2 theta / |theta|^2: kappa = 0, gamma = theta_E^2 / r^2, written here
    # independently of the module's halo formulas.
    theta_e, h = 5.0, 0.05
    base = simulate_lens_field(shape=(400, 400), pixel_scale_arcsec=h, halos=[])
    x = (np.arange(400) - 199.5) * h  # the mass sits between pixels
    xx, yy = np.meshgrid(x, x)
    r2 = xx**2 + yy**2
    ax = _on_grid("x-arcsec-deflect", theta_e**2 * xx / r2, base)
    ay = _on_grid("y-arcsec-deflect", theta_e**2 * yy / r2, base)
    kappa, g1, g2, gamma = lensing.kappa_gamma_from_deflection(ax, ay)
    far = r2 > 2.0**2
    # Truncation error of the central differences: |kappa| = 2 h^2 theta_E^2 / r^4 to leading
    # order (measured coefficient 2.015 at h = 0.05", 2.008 at 0.025"), i.e. < 4e-3 beyond 2".
    assert np.all(np.abs(kappa.data[far]) * r2[far] ** 2 / (h * theta_e) ** 2 < 2.05)
    assert np.abs(kappa.data[far]).max() > 1e-3  # the bound above is tight, not vacuous
    np.testing.assert_allclose(gamma.data[far], (theta_e**2 / r2)[far], rtol=5e-5)
    np.testing.assert_allclose(g1.data[far], (theta_e**2 * (yy**2 - xx**2) / r2**2)[far], atol=2e-5)
    np.testing.assert_allclose(g2.data[far], (-2 * theta_e**2 * xx * yy / r2**2)[far], atol=2e-5)


def test_deflection_pair_must_match():
    kw = {"shape": (30, 40), "pixel_scale_arcsec": 0.1, "halos": NIS}
    ax, ay = _sim("x-arcsec-deflect", **kw), _sim("y-arcsec-deflect", **kw)
    with pytest.raises(GccatError, match="x-arcsec-deflect, y-arcsec-deflect"):
        lensing.kappa_gamma_from_deflection(ay, ax)
    with pytest.raises(GccatError, match="differ in shape"):
        lensing.kappa_gamma_from_deflection(ax, _sim("y-arcsec-deflect", **{**kw, "shape": (30, 41)}))
    shifted = _sim("y-arcsec-deflect", **kw, centre_deg=(342.18321, -44.52))
    with pytest.raises(GccatError, match="different WCS"):
        lensing.jacobian_determinant_from_deflection(ax, shifted)


# --- magnification, eigenvalues, critical curves -------------------------------------------------


def test_magnification_and_tangential_eigenvalue():
    kappa = np.array([0.0, 0.4, 0.5, 0.7, 0.9, np.nan])
    gamma = np.array([0.0, 0.2, 0.5, 0.1, 0.3, 0.1])
    mu = lensing.magnification(kappa, gamma)
    np.testing.assert_allclose(mu[:2], [1.0, 1 / (0.36 - 0.04)])
    assert mu[2] == np.inf  # 1 - kappa = gamma: tangential critical curve
    assert mu[3] == pytest.approx(1 / (0.09 - 0.01))
    assert mu[4] < 0  # between the critical curves the image is parity-flipped
    assert np.isnan(mu[5])
    np.testing.assert_allclose(lensing.magnification(kappa, gamma, absolute=True)[4], abs(mu[4]))
    np.testing.assert_allclose(lensing.tangential_eigenvalue(kappa, gamma)[:5], [1.0, 0.4, 0.0, 0.2, -0.2])
    # det A = lambda_t * lambda_r.
    lam_r = 1 - kappa + gamma
    np.testing.assert_allclose(1 / mu[:5], lensing.tangential_eigenvalue(kappa, gamma)[:5] * lam_r[:5])
    np.testing.assert_array_equal(
        lensing.on_critical_curve(kappa, gamma), [False, False, True, False, False, False]
    )
    # Rescaling from D_ls/D_s = 1 to a source with D_ls/D_s = 0.5 halves kappa and gamma.
    np.testing.assert_allclose(
        lensing.magnification(0.8, 0.4, dls_ds_scale=0.5), lensing.magnification(0.4, 0.2)
    )


def test_simulated_critical_curve_is_where_mu_diverges():
    kappa, gamma = _sim("kappa").data, _sim("gamma").data
    crit = lensing.on_critical_curve(kappa, gamma, tol=0.05)
    mu = lensing.magnification(kappa, gamma)
    assert crit.any() and (mu < 0).any()
    assert np.all(np.abs(mu[crit]) > 20) and np.all(np.abs(mu[~crit]) <= 20)


# --- sampling -------------------------------------------------------------------------------------


def test_sample_map_exact_at_pixel_centres_real_patch(as1063):
    ax, _, kappa = as1063[:3]
    rng = np.random.default_rng(5)
    iy, ix = rng.integers(0, 250, 500), rng.integers(0, 250, 500)
    ix[:4], iy[:4] = [0, 249, 0, 249], [0, 0, 249, 249]  # the corners are on the map
    ra, dec = ax.wcs.pixel_to_world_values(ix, iy)
    for m in (ax, kappa):
        for order in (1, 3):
            np.testing.assert_allclose(
                lensing.sample_map(m, ra, dec, order=order), m.data[iy, ix], rtol=1e-12, atol=0
            )


def test_sample_map_bilinear_between_pixels_and_nan_off_map():
    base = simulate_lens_field(shape=(30, 40), pixel_scale_arcsec=0.1)
    iy, ix = np.mgrid[0:30, 0:40]
    plane = _on_grid("kappa", 0.3 + 0.01 * ix - 0.02 * iy + 0.001 * ix * iy, base)
    rng = np.random.default_rng(6)
    x, y = rng.uniform(0, 39, 300), rng.uniform(0, 29, 300)
    ra, dec = base.wcs.pixel_to_world_values(x, y)
    # Bilinear interpolation reproduces a bilinear function exactly.
    # (to 1e-9: the pixel -> world -> pixel round trip itself is good to ~2e-9 pixel here)
    np.testing.assert_allclose(
        lensing.sample_map(plane, ra, dec), 0.3 + 0.01 * x - 0.02 * y + 0.001 * x * y, rtol=0, atol=1e-9
    )
    noisy = _on_grid("kappa", rng.normal(size=(30, 40)), base)
    ra, dec = base.wcs.pixel_to_world_values(10.5, 20.5)
    assert lensing.sample_map(noisy, ra, dec) == pytest.approx(noisy.data[20:22, 10:12].mean(), rel=1e-9)
    # Off the map: just outside [0, n - 1] on each side, and NaN positions.
    px = np.array([-0.01, 39.01, 5.0, 5.0, 39.0])
    py = np.array([5.0, 5.0, -0.01, 29.01, 29.0])
    ra, dec = base.wcs.pixel_to_world_values(px, py)
    got = lensing.sample_map(noisy, np.r_[ra, np.nan], np.r_[dec, -44.5])
    assert np.isnan(got[:4]).all() and np.isnan(got[5])
    assert got[4] == noisy.data[29, 39]
    # Shape follows the positions; a scalar gives a 0-d array.
    ra2, dec2 = base.wcs.pixel_to_world_values(np.full((2, 3), 3.0), np.full((2, 3), 4.0))
    assert lensing.sample_map(noisy, ra2, dec2).shape == (2, 3)
    assert lensing.sample_map(noisy, ra2[0, 0], dec2[0, 0]) == noisy.data[4, 3]
    with pytest.raises(GccatError, match="order"):
        lensing.sample_map(noisy, ra2, dec2, order=2)


def test_sample_map_cubic_keeps_nan_pixels_local():
    base = simulate_lens_field(shape=(40, 40), pixel_scale_arcsec=0.1, halos=NIS)
    holed = _on_grid("kappa", base.data.copy(), base)
    holed.data[20, 20] = np.nan
    # The cubic stencil of x is floor(x) - 1 .. floor(x) + 2: it reaches pixel 20 from 18.5 to 21.9.
    x, y = np.array([20.3, 21.9, 18.5, 22.1, 25.0, 10.5]), np.array([20.0, 21.5, 20.0, 20.0, 25.5, 10.5])
    ra, dec = base.wcs.pixel_to_world_values(x, y)
    got = lensing.sample_map(holed, ra, dec, order=3)
    assert np.isnan(got[:3]).all() and np.isfinite(got[3:]).all()
    # Away from the hole the cubic spline matches the smooth analytic map.
    exact = lensing.sample_map(base, ra, dec, order=3)
    np.testing.assert_allclose(got[4:], exact[4:], rtol=1e-3)
    np.testing.assert_allclose(exact[3:], lensing.sample_map(base, ra, dec, order=1)[3:], rtol=1e-3)


# --- distances and critical density ---------------------------------------------------------------


def test_dls_ds_matches_astropy_distances():
    z_lens, z_s = 0.348, np.array([0.1, 0.348, 0.35, 0.5, 1.0, 1.378, 3.0, 8.3, np.nan])
    got = lensing.dls_ds(z_lens, z_s)
    cosmo = FlatLambdaCDM(H0=70, Om0=0.3)
    # Flat universe: D_ls = (D_M(z_s) - D_M(z_l)) / (1 + z_s), D_s = D_M(z_s) / (1 + z_s).
    flat = 1 - cosmo.comoving_transverse_distance(z_lens) / cosmo.comoving_transverse_distance(z_s[2:8])
    np.testing.assert_allclose(got[2:8], flat.value, rtol=1e-10)
    assert got[0] == 0 and got[1] == 0 and np.isnan(got[8])
    assert np.all(np.diff(got[1:8]) > 0) and got[7] < 1
    # Same cosmology by default; a curved one agrees with astropy's z1 -> z2 distance.
    np.testing.assert_array_equal(lensing.dls_ds(z_lens, z_s, cosmology=cosmo), got)
    assert abs(lensing.dls_ds(z_lens, 2.0, cosmology=Planck18) - lensing.dls_ds(z_lens, 2.0)) > 1e-3
    curved = LambdaCDM(H0=70, Om0=0.3, Ode0=0.8)
    for zs in (0.6, 2.0, 6.0):
        try:
            d_ls = curved.angular_diameter_distance(z_lens, zs)  # astropy >= 7.1
        except TypeError:
            d_ls = curved.angular_diameter_distance_z1z2(z_lens, zs)
        assert lensing.dls_ds(z_lens, zs, cosmology=curved) == pytest.approx(
            (d_ls / curved.angular_diameter_distance(zs)).value, rel=1e-12
        )
    # Curvature matters: the flat identity no longer holds.
    assert abs(lensing.dls_ds(z_lens, 2.0, cosmology=curved) - lensing.dls_ds(z_lens, 2.0)) > 1e-3


def test_dls_ds_broadcasts_lens_and_source_columns():
    # The SQL UDF passes both as columns, NULL as NaN.
    got = lensing.dls_ds(np.array([0.3, np.nan, 0.3, 0.5, -1.0]), np.array([1.0, 2.0, np.nan, 0.4, 1.0]))
    assert got[0] == pytest.approx(float(lensing.dls_ds(0.3, 1.0)))
    assert np.isnan(got[[1, 2, 4]]).all() and got[3] == 0


def test_sigma_crit_at_abell_s1063():
    z = 0.348
    # The default cosmology gives the paper's scale, 1" = 4.921 kpc.
    kpc_per_arcsec = lensing.DEFAULT_COSMOLOGY.kpc_proper_per_arcmin(z).to_value(u.kpc / u.arcmin) / 60
    assert kpc_per_arcsec == pytest.approx(4.921, abs=0.001)
    # Sigma_cr = c^2 / (4 pi G D_l) times (1 arcsec at D_l)^2, in SI by hand.
    d_l = kpc_per_arcsec * 3.0856775814913673e19 / (np.pi / 648000)  # m
    c, g, msun = 299792458.0, 6.6743e-11, 1.988409870698051e30
    expected = c**2 / (4 * np.pi * g * d_l) * (d_l * np.pi / 648000) ** 2 / msun
    got = lensing.sigma_crit_msun_per_arcsec2(z)
    assert got == pytest.approx(expected, rel=1e-4)
    assert got == pytest.approx(3.97e10, rel=0.01)
    # With a source redshift: Sigma_cr / (D_ls/D_s).
    assert lensing.sigma_crit_msun_per_arcsec2(z, z_source=1.378) == pytest.approx(
        got / float(lensing.dls_ds(z, 1.378)), rel=1e-12
    )
    with pytest.raises(GccatError):
        lensing.sigma_crit_msun_per_arcsec2(0.0)
    with pytest.raises(GccatError, match="behind the lens"):
        lensing.sigma_crit_msun_per_arcsec2(z, z_source=0.2)


# --- simulation and round trip --------------------------------------------------------------------


def test_simulated_field_looks_like_an_hff_kappa_map():
    m = simulate_lens_field()
    assert m.quantity == "kappa" and m.shape == (512, 512)
    assert m.header["CTYPE1"] == "RA---TAN" and m.header["CTYPE2"] == "DEC--TAN"
    assert m.header["CDELT1"] < 0 < m.header["CDELT2"]
    assert m.header["GCSYNTH"] is True and m.header["NHALO"] == 8
    assert m.pixel_scale_arcsec == pytest.approx(0.2, rel=1e-12)
    ra, dec = m.wcs.pixel_to_world_values(255.5, 255.5)
    assert (ra, dec) == pytest.approx((342.18321, -44.53088), abs=1e-10)
    centre = m.data[128:384, 128:384]
    assert 0.1 < np.median(centre) < 0.5
    assert np.all(m.data > 0)
    np.testing.assert_array_equal(simulate_lens_field(seed=0).data, m.data)
    assert not np.array_equal(simulate_lens_field(seed=1).data, m.data)
    # East is left: the main halo's deflection points West (+x) on the West side.
    ax = _sim("x-arcsec-deflect", halos=NIS, shape=(21, 21), pixel_scale_arcsec=1.0)
    assert ax.data[10, 15] > 0 > ax.data[10, 5]
    ra_w, _ = ax.wcs.pixel_to_world_values(15, 10)
    assert ra_w < 342.18321


def test_simulated_halo_parameters():
    kw = {"shape": (41, 41), "pixel_scale_arcsec": 0.5}
    one = _sim("kappa", halos=[{"x_arcsec": 0, "y_arcsec": 0, "kappa0": 2.0, "r_core_arcsec": 1.0}], **kw)
    assert one.data[20, 20] == pytest.approx(2.0, rel=1e-12)
    cut = _sim(
        "kappa",
        halos=[{"x_arcsec": 0, "y_arcsec": 0, "kappa0": 2.0, "r_core_arcsec": 1.0, "r_cut_arcsec": 5.0}],
        **kw,
    )
    assert cut.data[20, 20] == pytest.approx(2.0, rel=1e-12) and cut.data[20, 40] < 0.2 * one.data[20, 40]
    # sigma_v = 1000 km/s: b = 4 pi (sigma_v / c)^2 = 28.8".
    sis = _sim("kappa", halos=[{"x_arcsec": 0, "y_arcsec": 0, "sigma_v": 1000.0, "r_core_arcsec": 1.0}], **kw)
    assert sis.header["H001B"] == pytest.approx(28.84, abs=0.01)
    for bad in (
        {"x_arcsec": 0, "y_arcsec": 0, "r_core_arcsec": 1.0},
        {"x_arcsec": 0, "y_arcsec": 0, "kappa0": 1.0, "sigma_v": 300.0, "r_core_arcsec": 1.0},
        {"x_arcsec": 0, "y_arcsec": 0, "kappa0": 1.0, "r_core_arcsec": 0.0},
        {"x_arcsec": 0, "kappa0": 1.0, "r_core_arcsec": 1.0},
    ):
        with pytest.raises(GccatError, match="halo 0"):
            _sim("kappa", halos=[bad], **kw)
    with pytest.raises(GccatError, match="cannot simulate"):
        _sim("magnif", **kw)


def test_write_read_round_trip(tmp_path):
    sim = simulate_lens_field(shape=(64, 80), pixel_scale_arcsec=0.3, seed=3)
    path = tmp_path / "hlsp_frontier_model_synthetic_gccat_v1_kappa.fits"
    lensing.write_hff_map(sim, path)
    back = lensing.read_hff_map(path)
    assert back.quantity == "kappa" and back.path == str(path)
    np.testing.assert_array_equal(back.data, sim.data)
    assert back.wcs.wcs.compare(sim.wcs.wcs, tolerance=1e-14)
    iy, ix = np.mgrid[0:64:7, 0:80:9]
    np.testing.assert_array_equal(
        back.wcs.pixel_to_world_values(ix, iy), sim.wcs.pixel_to_world_values(ix, iy)
    )
    assert back.header["GCSYNTH"] is True and back.header["H003RC"] == sim.header["H003RC"]
    with pytest.raises(GccatError, match="file exists"):
        lensing.write_hff_map(sim, path)
    lensing.write_hff_map(sim, path, overwrite=True)
    with pytest.raises(GccatError, match="says 'gamma'"):
        lensing.write_hff_map(sim, tmp_path / "model_gamma.fits")
    # A name without a quantity reads back through the HFFQUANT keyword.
    lensing.write_hff_map(_sim("psi", shape=(8, 8)), tmp_path / "potential.fits")
    assert lensing.read_hff_map(tmp_path / "potential.fits").quantity == "psi"
    assert not list(tmp_path.glob("tmp*"))


def test_derived_kappa_of_real_patch_round_trips(tmp_path, as1063):
    kappa = as1063[2]
    path = tmp_path / "as1063_lenstool_patch_kappa.fits"
    lensing.write_hff_map(kappa, path)
    back = lensing.read_hff_map(path)
    np.testing.assert_array_equal(back.data, kappa.data)
    # The Lenstool header had RADECSYS and CDELT; the written WCS is the same transformation.
    rng = np.random.default_rng(7)
    x, y = rng.uniform(0, 999, 50), rng.uniform(0, 999, 50)
    np.testing.assert_allclose(
        back.wcs.pixel_to_world_values(x, y), kappa.wcs.pixel_to_world_values(x, y), rtol=0, atol=1e-12
    )
    assert back.header["ORIGIN"] == "JPK-SOFT" and back.header["HFFQUANT"] == "kappa"
