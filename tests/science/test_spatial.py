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


@pytest.mark.parametrize("radius", [0.2, 2.0, 30.0])
def test_crossmatch_mixed_sky_with_poles_and_ra_wrap_equals_search_around_sky(radius):
    # One call over clumps at both poles, across RA = 0/360, on the polar-cap boundary and
    # uniform all-sky points: the bucket order then follows a very uneven density.
    rng = np.random.default_rng(11)
    centres = [(123.0, 89.995), (301.0, -89.995), (0.0, 0.0), (359.9999, 41.8), (180.0, -41.8)]
    half = 20 * radius / 3600
    parts = [_random_sky(rng, 700, ra0, dec0, half) for ra0, dec0 in centres]
    w = rng.uniform(0, 1, (2, 1500))
    parts.append((360 * w[0], np.degrees(np.arcsin(2 * w[1] - 1))))
    ra1, dec1 = (np.concatenate(c) for c in zip(*parts, strict=True))
    n = len(ra1)
    m = n // 2  # half of the right side near left sources, half unrelated
    pick = rng.permutation(n)[:m]
    jitter = 0.5 * radius / 3600
    ra2 = np.r_[ra1[pick] + rng.normal(0, jitter, m) / np.cos(np.radians(dec1[pick])), ra1[: n - m] + 0.01]
    dec2 = np.clip(np.r_[dec1[pick] + rng.normal(0, jitter, m), dec1[: n - m][::-1]], -90, 90)
    ra2 %= 360
    i1, i2, sep = spatial.crossmatch(
        ra1, dec1, spatial.healpix29(ra1, dec1), ra2, dec2, spatial.healpix29(ra2, dec2), radius
    )
    r1, r2, _, _ = search_around_sky(
        SkyCoord(ra1, dec1, unit="deg"), SkyCoord(ra2, dec2, unit="deg"), radius * u.arcsec
    )
    assert len(r1) > 1000
    assert set(zip(i1.tolist(), i2.tolist(), strict=True)) == set(zip(r1.tolist(), r2.tolist(), strict=True))
    assert len(i1) == len(r1)  # no pair twice
    # Sorted by (idx1, separation); separations in arcsec, within the (inclusive) radius.
    assert np.all(np.diff(i1) >= 0)
    same = np.diff(i1) == 0
    assert np.all(np.diff(sep)[same] >= 0)
    np.testing.assert_allclose(
        sep, spatial.separation_arcsec(ra1[i1], dec1[i1], ra2[i2], dec2[i2]), atol=1e-9
    )
    assert sep.max() <= radius


def test_crossmatch_sparse_right_side_and_empty_results():
    rng = np.random.default_rng(12)
    ra1, dec1 = _random_sky(rng, 4000, 10.0, -60.0, 0.01)
    ra2, dec2 = ra1[:7] + 0.1 / 3600, dec1[:7].copy()  # a few right sources: coarse buckets
    h1, h2 = spatial.healpix29(ra1, dec1), spatial.healpix29(ra2, dec2)
    i1, i2, sep = spatial.crossmatch(ra1, dec1, h1, ra2, dec2, h2, 1.0)
    r1, r2, _, _ = search_around_sky(
        SkyCoord(ra1, dec1, unit="deg"), SkyCoord(ra2, dec2, unit="deg"), 1 * u.arcsec
    )
    assert set(zip(i1.tolist(), i2.tolist(), strict=True)) == set(zip(r1.tolist(), r2.tolist(), strict=True))
    assert {(k, k) for k in range(7)} <= set(zip(i1.tolist(), i2.tolist(), strict=True))
    none = spatial.crossmatch(ra1, dec1, h1, ra2 + 1.0, dec2, spatial.healpix29(ra2 + 1.0, dec2), 1.0)
    assert all(len(a) == 0 for a in none)
    empty = spatial.crossmatch(ra1[:0], dec1[:0], h1[:0], ra2, dec2, h2, 1.0)
    assert all(len(a) == 0 for a in empty)
