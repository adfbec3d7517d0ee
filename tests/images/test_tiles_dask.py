"""Image tiles as independent tasks: the tiling helper, the tiled high-pass filter and stack
(bit-identical to one task), and ``gccat detect``/``gccat stack --scheduler`` against in process."""

from __future__ import annotations

import json

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from catalog.images import detection as det_mod
from catalog.images._common import image_tiles, source_tiles
from catalog.images.detection import gaussian_highpass, highpass_reach_pix
from catalog.images.stack import SHIFT_PAD_PIX, stack_sources, stack_tasks
from catalog.lake import Lake
from catalog.queries.connection import connect
from catalog.simulations import simulate_mosaic_files
from catalog.simulations.mosaic import make_test_mosaic
from ingest.catalog import ingest_catalog
from tests.conftest import snapshot


def _bits(a):
    a = np.ascontiguousarray(a)
    return a.view(np.uint32 if a.dtype == np.float32 else np.uint64)


# -- the tiling helper ---------------------------------------------------------------------------


@pytest.mark.parametrize("tile", [1, 7, 64, 100, 300, 1000])
def test_image_tiles_cover_once_with_windows_clipped_at_the_edges(tile):
    shape, margin = (251, 300), 13
    count = np.zeros(shape, int)
    for t, w, inner in image_tiles(shape, tile, margin):
        count[t] += 1
        for a, b, n in zip(t, w, shape, strict=True):
            # a window side is the image edge there, else exactly `margin` real pixels beyond
            assert b.start == max(a.start - margin, 0) and b.stop == min(a.stop + margin, n)
        assert np.array_equal(
            np.arange(300 * 251).reshape(shape)[w][inner], np.arange(300 * 251).reshape(shape)[t]
        )
    assert (count == 1).all()
    starts = [(t[0].start, t[1].start) for t, _, _ in image_tiles(shape, tile, margin)]
    assert starts == sorted(starts)  # raster order


def test_source_tiles_hold_every_source_with_its_margin():
    rng = np.random.default_rng(0)
    shape = (400, 500)
    x = np.r_[rng.uniform(0, 499, 300), 0.0, 499.0, 250.4]
    y = np.r_[rng.uniform(0, 399, 300), 0.2, 398.9, 0.0]
    margin = 9
    tiles = source_tiles(x, y, shape, 128, margin)
    got = np.concatenate([sel for sel, _ in tiles])
    assert sorted(got.tolist()) == list(range(x.size))
    for sel, (wy, wx) in tiles:
        assert (np.diff(sel) > 0).all()
        cells = {(int(yy // 128), int(xx // 128)) for xx, yy in zip(x[sel], y[sel], strict=True)}
        assert len(cells) == 1
        for xx, yy in zip(x[sel], y[sel], strict=True):
            ix, iy = int(np.rint(xx)), int(np.rint(yy))
            assert wx.start == 0 or wx.start <= ix - margin
            assert wx.stop == shape[1] or wx.stop >= ix + margin + 1
            assert wy.start == 0 or wy.start <= iy - margin
            assert wy.stop == shape[0] or wy.stop >= iy + margin + 1
        assert 0 <= wx.start < wx.stop <= shape[1] and 0 <= wy.start < wy.stop <= shape[0]
    # cell positions keep a group in its first source's tile
    cx = np.full(x.size, 10.0)
    assert len(source_tiles(x, y, shape, 128, margin, cell_x=cx, cell_y=cx)) == 1


# -- tiled filter and stack in process -------------------------------------------------------------


@pytest.fixture(scope="module")
def noisy():
    rng = np.random.default_rng(1)
    img = rng.normal(size=(301, 257)).astype(np.float32)
    img[5:9, 100:140] = np.nan
    mask = np.zeros(img.shape, bool)
    mask[200:230, 0:20] = True
    return img, mask


def test_highpass_reach_is_the_sum_of_the_pairs_gaussian_radii():
    # sigma = FWHM / 2.3548: 5 px -> int(4 * 2.123 + 0.5) = 8, 3 px -> 5 (0.5 and 1 px reach less)
    assert highpass_reach_pix() == 8 + 5
    assert highpass_reach_pix([(1.0, 3.0)]) == 5


@pytest.mark.parametrize("tile", [13, 14, 29, 64, 100, 256, 4096])
def test_tiled_highpass_is_bit_identical(noisy, tile):
    """Masked and NaN pixels (zeroed first), reflected image edges, tiles smaller than the reach."""
    img, mask = noisy
    ref = gaussian_highpass(img, mask=mask)
    got = gaussian_highpass(img, mask=mask, tile_pix=tile, map_tasks=lambda f, ts: [f(t) for t in ts])
    assert got.dtype == np.float32 and np.array_equal(_bits(ref), _bits(got))
    ref64 = gaussian_highpass(img.astype(float), mask=mask)
    assert np.array_equal(_bits(ref64), _bits(gaussian_highpass(img.astype(float), mask=mask, tile_pix=tile)))


def test_tiled_highpass_with_a_reach_one_short_differs(noisy, monkeypatch):
    img, mask = noisy
    ref = gaussian_highpass(img, mask=mask)
    reach = highpass_reach_pix
    monkeypatch.setattr(det_mod, "highpass_reach_pix", lambda pairs: reach(pairs) - 1)
    assert not np.array_equal(ref, gaussian_highpass(img, mask=mask, tile_pix=64))


@pytest.fixture(scope="module")
def stars():
    rng = np.random.default_rng(3)
    m = make_test_mosaic((500, 440), n_points=250, rng=rng)
    x = np.r_[m["truth"]["x"], 2.0, 438.3, np.nan, 300.2]
    y = np.r_[m["truth"]["y"], 250.0, 10.7, 5.0, 499.0]
    mask = np.zeros(m["image"].shape, bool)
    mask[300:320, 200:260] = True
    return m, x, y, mask


@pytest.mark.parametrize("combine", ["median", "mean"])
def test_tiled_stack_is_bit_identical(stars, combine):
    m, x, y, mask = stars
    ref = stack_sources(m["image"], x, y, side_pix=25, mask=mask, weight=m["weight"], combine=combine)
    assert 200 < ref.n_sources < x.size
    for tile in (37, 100, 1024):
        s = stack_sources(m["image"], x, y, side_pix=25, mask=mask, weight=m["weight"], combine=combine,
                          tile_pix=tile)  # fmt: skip
        for a, b in ((ref.image, s.image), (ref.error, s.error), (ref.background, s.background),
                     (ref.offsets, s.offsets)):  # fmt: skip
            assert np.array_equal(_bits(a), _bits(b)), tile
        assert np.array_equal(ref.used, s.used)


def test_stack_task_windows_hold_cutouts_and_annuli(stars):
    m, x, y, mask = stars
    img = m["image"]
    side, annulus = 25, (5.0, 14.5)
    for idx, task in stack_tasks(img, mask, x, y, side, annulus, tile_pix=64):
        (y0, x0), win = task[0], task[1]
        reach = max((side + 2 * SHIFT_PAD_PIX) // 2, 15)
        for xx, yy in zip(x[idx], y[idx], strict=True):
            ix, iy = int(np.rint(xx)), int(np.rint(yy))
            assert x0 == 0 or x0 <= ix - reach
            assert y0 == 0 or y0 <= iy - reach
            assert x0 + win.shape[1] == img.shape[1] or x0 + win.shape[1] > ix + reach
            assert y0 + win.shape[0] == img.shape[0] or y0 + win.shape[0] > iy + reach
    assert all(np.isfinite(x[idx]).all() for idx, _ in stack_tasks(img, mask, x, y, side, annulus, 64))


# -- the CLI on a Dask cluster ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiles")
    s = simulate_mosaic_files(out, "t", bands=("F150W", "F200W"), shape=(420, 400), n_points=90, seed=5,
                              flux_range_njy=(50.0, 2000.0),
                              min_sep_pix=20.0)  # fmt: skip
    truth = Table.read(s["truth"], format="ascii.csv", comment="#")
    truth[["id", "ra", "dec"]].write(out / "positions.csv", format="ascii.csv")
    return out, s, truth


def _lake(path, out):
    lake = Lake.create(path)
    ingest_catalog(lake, out / "positions.csv", field_id="sim", name="gc")
    return lake


def test_detect_on_dask_tiles_is_bit_identical(cli, tmp_path, sim, dask_scheduler):
    """--scheduler with 64 and 150 px tiles (pickled to a worker process) detects the same
    sources, to the bit, as in process; the ingest records the scheduler."""
    out, s, truth = sim
    imgs = list(s["images"].values())
    got = []
    for name, extra in (("a", ()), ("b", ("--tile", "64")), ("c", ("--tile", "150"))):
        lake = Lake.create(tmp_path / name)
        sched = ("--scheduler", dask_scheduler) if extra else ()
        r = cli("detect", *imgs, "--field", "sim", "--name", "det", *sched, *extra, "--lake", lake.root)
        assert r.exit_code == 0, r.output
        con = connect(lake.root)
        got.append(
            (
                con.sql(
                    "SELECT detection_id, ra, dec, snr, extra FROM detections ORDER BY detection_id"
                ).fetchall(),
                con.sql(
                    "SELECT noise, threshold, n_detections, mask_area_pix FROM detection_runs"
                ).fetchall(),
            )
        )
        opts = json.loads(con.sql("SELECT options FROM ingests WHERE kind = 'detection'").fetchall()[0][0])
        assert opts["scheduler"] == (dask_scheduler if extra else "in-process")
    assert len(got[0][0]) >= 0.5 * len(truth)
    assert got[0] == got[1] == got[2]


def test_stack_on_dask_tiles_is_bit_identical(cli, tmp_path, sim, dask_scheduler):
    """The stack image, its error and its row are the same to the bit with 128 and 300 px tiles
    on a worker process as in process, re-centred on the catalog or on PSF-fitted positions."""
    out, s, _ = sim
    img = s["images"]["F150W"]
    cols = ("n_sources, median_background_njy, stack_flux_njy, fit_flux_njy, fit_flux_err_njy, "
            "fwhm_stack_pix, profile_max_dev, params")  # fmt: skip
    for centre in ("detection", "psf"):
        got = []
        for name, extra in (("a", ()), ("b", ("--tile", "128")), ("c", ("--tile", "300"))):
            if centre == "psf" and name == "c":
                continue
            lake = _lake(tmp_path / f"{centre}{name}", out)
            sched = ("--scheduler", dask_scheduler) if extra else ()
            r = cli("stack", img, "--field", "sim", "--catalog", "gc", "--psf", s["psf"], "--centre", centre,
                    *sched, *extra, "--lake", lake.root)  # fmt: skip
            assert r.exit_code == 0, r.output
            con = connect(lake.root)
            row = con.sql(f"SELECT {cols}, stack_path FROM stacks").fetchall()[0]
            with fits.open(row[-1]) as hdul:
                images = [_bits(hdul[0].data).tobytes(), _bits(hdul["ERR"].data).tobytes()]
            prof = con.sql(
                "SELECT radius_pix, profile_stack, ratio FROM stack_profiles ORDER BY 1"
            ).fetchall()
            got.append((row[:-1], images, prof))
            opts = json.loads(con.sql("SELECT options FROM ingests WHERE kind = 'stack'").fetchall()[0][0])
            assert opts["scheduler"] == (dask_scheduler if extra else "in-process")
        assert got[0][0][0] > 40
        assert all(g == got[0] for g in got[1:]), centre


@pytest.mark.parametrize("command", ["detect", "stack"])
def test_unreachable_scheduler_or_bad_tile_is_one_line_and_lake_unchanged(cli, tmp_path, sim, command):
    out, s, _ = sim
    lake = _lake(tmp_path / "lake", out)
    img = s["images"]["F150W"]
    args = {
        "detect": ("detect", img, "--field", "sim", "--name", "det"),
        "stack": ("stack", img, "--field", "sim", "--catalog", "gc", "--psf", s["psf"]),
    }[command]
    before = snapshot(lake)
    for extra, needle in (
        (("--scheduler", "tcp://127.0.0.1:1"), "--scheduler"),
        (("--scheduler", "nonsense"), "--scheduler"),
        (("--scheduler", "local", "--tile", "8"), "--tile"),
    ):
        r = cli(*args, *extra, "--lake", lake.root)
        lines = r.stderr.strip().splitlines()
        assert r.exit_code == 2 and len(lines) == 1 and needle in lines[0], r.output
    assert snapshot(lake) == before
