import numpy as np
import pytest

from catalog import units as ph


def test_ab_zeropoint_and_round_trip():
    # 3631 Jy is AB magnitude 0; 1 nJy is 31.4 by definition of the zeropoint.
    assert ph.flux_to_abmag(3631e9) == pytest.approx(0.0, abs=2e-4)
    assert ph.flux_to_abmag(1.0) == pytest.approx(31.4)
    mags = np.linspace(18, 32, 50)
    np.testing.assert_allclose(ph.flux_to_abmag(ph.abmag_to_flux(mags)), mags, rtol=0, atol=1e-12)


def test_non_positive_flux_has_no_magnitude():
    out = ph.flux_to_abmag([-3.0, 0.0, 10.0])
    assert np.isnan(out[:2]).all() and np.isfinite(out[2])


def test_error_propagation_matches_numerical_derivative():
    rng = np.random.default_rng(1)
    f = rng.uniform(1, 1e4, 100)
    sf = 1e-6 * f
    dm = np.abs(ph.flux_to_abmag(f + sf) - ph.flux_to_abmag(f))
    np.testing.assert_allclose(ph.flux_err_to_mag_err(f, sf), dm, rtol=1e-5)
    m = ph.flux_to_abmag(f)
    sm = ph.flux_err_to_mag_err(f, 0.05 * f)
    np.testing.assert_allclose(ph.mag_err_to_flux_err(m, sm), 0.05 * f, rtol=1e-12)


@pytest.mark.parametrize(
    ("unit", "factor"),
    [("nJy", 1), ("uJy", 1e3), ("microJansky", 1e3), ("µJy", 1e3), ("mJy", 1e6), ("Jy", 1e9)],
)
def test_flux_units_convert_exactly(unit, factor):
    assert ph.parse_unit(unit) == ("flux", factor)


def test_magnitude_units_and_bad_units():
    assert ph.parse_unit("mag(AB)")[0] == "mag"
    assert ph.parse_unit("ABmag")[0] == "mag"
    with pytest.raises(ValueError, match="furlong"):
        ph.parse_unit("furlong")
