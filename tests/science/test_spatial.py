import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord, search_around_sky

from catalog import sky as spatial


def _random_sky(rng, n, ra0, dec0, half_deg):
    ra = (ra0 + rng.uniform(-half_deg, half_deg, n) / np.cos(np.radians(dec0))) % 360
    dec = np.clip(dec0 + rng.uniform(-half_deg, half_deg, n), -90, 90)
    return ra, dec


def test_healpix29_equals_hats_spatial_index():
    from hats.pixel_math.spatial_index import compute_spatial_index

    rng = np.random.default_rng(2)
    ra = rng.uniform(0, 360, 5000)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, 5000)))
    np.testing.assert_array_equal(spatial.healpix29(ra, dec), compute_spatial_index(ra, dec))


def test_separation_matches_astropy():
    rng = np.random.default_rng(3)
    ra1, dec1 = _random_sky(rng, 1000, 110.8, -73.45, 0.1)
    ra2, dec2 = _random_sky(rng, 1000, 110.8, -73.45, 0.1)
    ref = SkyCoord(ra1, dec1, unit="deg").separation(SkyCoord(ra2, dec2, unit="deg")).arcsec
    np.testing.assert_allclose(spatial.separation_arcsec(ra1, dec1, ra2, dec2), ref, atol=1e-8)


@pytest.mark.parametrize(("ra0", "dec0"), [(110.8, -73.45), (0.0005, 10.0), (200.0, 89.999)])
def test_cone_ranges_cover_every_source_in_the_cone(ra0, dec0):
    rng = np.random.default_rng(4)
    ra, dec = _random_sky(rng, 20000, ra0, dec0, 30 / 3600)
    h = spatial.healpix29(ra, dec)
    for radius in (0.5, 5.0, 20.0):
        inside = spatial.separation_arcsec(ra, dec, ra0, dec0) <= radius
        ranges = spatial.cone_ranges(ra0, dec0, radius)
        covered = np.zeros(len(h), bool)
        for lo, hi in ranges:
            covered |= (h >= lo) & (h <= hi)
        assert inside.sum() > 0
        assert not (inside & ~covered).any()
        assert len(ranges) <= 64


@pytest.mark.parametrize(
    ("ra0", "dec0", "radius"),
    [
        (342.18, -44.53, 1.0),
        (0.0, 0.0, 1.0),
        (15.0, 89.99, 1.0),
        # Radii just below a HEALPix order step in the polar cap (SMACS0723, AS1063) once lost pairs.
        (110.8, -73.46, 0.2),
        (342.18, -44.53, 0.2),
        (60.0, 60.0, 0.75),
    ],
)
def test_crossmatch_equals_search_around_sky_pair_for_pair(ra0, dec0, radius):
    rng = np.random.default_rng(5)
    half = 0.01 * radius
    ra1, dec1 = _random_sky(rng, 3000, ra0, dec0, half)
    ra2, dec2 = _random_sky(rng, 3000, ra0, dec0, half)
    jitter = 0.3 * radius / 3600
    ra2[:1000] = ra1[:1000] + rng.normal(0, jitter, 1000) / np.cos(np.radians(dec1[:1000]))
    dec2[:1000] = np.clip(dec1[:1000] + rng.normal(0, jitter, 1000), -90, 90)
    ra2 %= 360
    i1, i2, sep = spatial.crossmatch(
        ra1, dec1, spatial.healpix29(ra1, dec1), ra2, dec2, spatial.healpix29(ra2, dec2), radius
    )
    c1, c2 = SkyCoord(ra1, dec1, unit="deg"), SkyCoord(ra2, dec2, unit="deg")
    r1, r2, rsep, _ = search_around_sky(c1, c2, radius * u.arcsec)
    ours = set(zip(i1.tolist(), i2.tolist(), strict=True))
    ref = set(zip(r1.tolist(), r2.tolist(), strict=True))
    assert len(ref) > 500
    assert ours == ref
    o = np.lexsort((r2, r1))
    p = np.lexsort((i2, i1))
    np.testing.assert_allclose(sep[p], rsep.arcsec[o], atol=1e-7)


def test_best_match_keeps_the_nearest():
    ra1 = np.array([10.0])
    dec1 = np.array([0.0])
    ra2 = 10.0 + np.array([0.3, 0.1, 0.2]) / 3600
    dec2 = np.zeros(3)
    i1, i2, sep = spatial.crossmatch(
        ra1, dec1, spatial.healpix29(ra1, dec1), ra2, dec2, spatial.healpix29(ra2, dec2), 0.5
    )
    assert list(i2) == [1, 2, 0]
    keep = spatial.best_matches(i1, i2, sep)
    assert list(i2[keep]) == [1]
