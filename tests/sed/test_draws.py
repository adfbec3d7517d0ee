"""Per-object random streams: keys stable across processes, numpy's Philox numbers, chunk-free fits."""

import numpy as np

from catalog import sed as sps
from catalog.sed import draws
from catalog.sed import nonparametric as npm

BANDS = ["jwst_f090w", "jwst_f150w", "jwst_f200w", "jwst_f277w", "jwst_f356w", "jwst_f444w"]


def test_keys_are_blake2b_of_seed_and_id_and_streams_are_numpys_philox():
    k = draws.object_keys(0, ["smacs0723/faisst2022/SC_000", "x"])
    assert k.shape == (2, 2) and k.dtype == np.uint64
    # pinned: a key must never change between versions, processes or machines
    import hashlib

    digest = hashlib.blake2b(b"0\0smacs0723/faisst2022/SC_000", digest_size=16).digest()
    assert k[0].tolist() == np.frombuffer(digest, "<u8").tolist()
    assert not np.array_equal(draws.object_keys(1, ["x"])[0], k[1])
    raw = draws.raw_streams(k, 7)
    for i in range(2):
        assert raw[i].tolist() == np.random.Philox(key=k[i]).random_raw(7).tolist()
    u = draws.uniforms(raw)
    assert ((u >= 0) & (u < 1)).all()
    z = draws.normals(draws.raw_streams(draws.object_keys(0, range(2000)), 50))
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01 and np.isfinite(z).all()


def test_compiled_streams_are_numpys_philox_at_extreme_keys_and_every_length():
    """The compiled Philox4x64-10 against numpy's for keys at 0 and 2^64 - 1 and lengths that
    end inside a block of four."""
    keys = np.array([[0, 0], [2**64 - 1, 2**64 - 1], [1, 2**63], [12345, 678]], np.uint64)
    keys = np.concatenate([keys, draws.object_keys(3, range(20))])
    for n in (1, 3, 4, 5, 8, 101, 501):
        raw = draws.raw_streams(keys, n)
        assert raw.shape == (len(keys), n) and raw.dtype == np.uint64
        for i, k in enumerate(keys):
            assert np.array_equal(raw[i], np.random.Philox(key=k).random_raw(n)), (n, i)
    assert draws.raw_streams(keys, 0).shape == (len(keys), 0)
    assert draws.raw_streams(np.empty((0, 2), np.uint64), 5).shape == (0, 5)


def _synthetic(grid, n, seed=1):
    rng = np.random.default_rng(seed)
    idx = [rng.integers(0, s, n) for s in grid.shape]
    true = grid.flux_njy[idx[0], idx[1], idx[2]] * 10 ** rng.uniform(5.5, 7, n)[:, None]
    return true + rng.normal(0, true / 10), true / 10


def test_fit_draws_of_an_object_do_not_depend_on_its_neighbours():
    grid = sps.build_grid(0.39, BANDS, av_max=1.0, n_av=3)
    obs, err = _synthetic(grid, 9)
    keys = draws.object_keys(4, [f"o{i}" for i in range(9)])
    full = sps.fit_ssp(grid, obs, err, n_samples=6, draw_keys=keys)
    atlas = npm.build_atlas(grid, 300, seed=1)
    nfull = npm.fit_atlas(atlas, obs, err, n_draws=12, draw_keys=keys)
    for lo, hi in ((0, 1), (1, 5), (5, 9)):  # one object alone, then blocks of others
        part = sps.fit_ssp(grid, obs[lo:hi], err[lo:hi], n_samples=6, draw_keys=keys[lo:hi])
        npart = npm.fit_atlas(atlas, obs[lo:hi], err[lo:hi], n_draws=12, draw_keys=keys[lo:hi])
        for k in sps.FIT_KEYS:
            assert np.array_equal(part.samples[k], full.samples[k][lo:hi], equal_nan=True)
            assert np.array_equal(part.percentiles[k], full.percentiles[k][lo:hi], equal_nan=True)
        for k in npm.NONPARAM_KEYS:
            assert np.array_equal(npart.percentiles[k], nfull.percentiles[k][lo:hi], equal_nan=True)
        assert np.array_equal(npart.history, nfull.history[lo:hi], equal_nan=True)
