"""Aperture photometry and aperture injections on Dask: the same rows, to the bit, as in process.

``gccat photometry --scheduler`` measures the sources of each ``--tile`` square on the window
their apertures and annuli need; ``gccat inject --scheduler`` measures the batches of injection
tiles on the workers. The simulated image has sources on its edges and corners and on the
edges of the 64 and 100 px tiles.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from catalog.images import apertures as ap
from catalog.lake import Lake
from catalog.queries.connection import connect
from catalog.runs import cluster
from catalog.simulations import simulate_mosaic_files
from ingest.catalog import ingest_catalog
from tests.conftest import snapshot

#: Pixel positions on the image's edges and corners and on either side of tile edges.
EDGES = [(0.01, 150.2), (298.99, 37.5), (0.2, 0.3), (298.8, 298.99), (150.4, 0.01), (3.1, 296.2),
         (63.9, 64.1), (64.0, 127.5), (128.49, 199.51), (99.5, 100.5), (200.0, 250.7)]  # fmt: skip


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    out = tmp_path_factory.mktemp("apdask")
    s = simulate_mosaic_files(
        out, "a", bands=("F150W",), shape=(300, 300), n_points=50, seed=8, flux_range_njy=(20.0, 2000.0)
    )
    truth = Table.read(s["truth"], format="ascii.csv", comment="#")
    # data out to the image's edges (the simulation leaves a border without data)
    with fits.open(s["images"]["F150W"]) as hdul:
        border = hdul["WHT"].data == 0
        hdul["SCI"].data[border] = np.random.default_rng(2).normal(size=int(border.sum()))
        hdul["WHT"].data[border] = 1.0
        hdul.writeto(out / "full.fits")
    img = s["images"]["F150W"] = out / "full.fits"
    wcs = WCS(fits.getheader(img, "SCI"))
    ex, ey = np.array(EDGES).T
    ra, dec = wcs.pixel_to_world_values(ex, ey)
    pos = Table({"id": [str(v) for v in truth["id"]], "ra": truth["ra"], "dec": truth["dec"]})
    for k in range(len(EDGES)):
        pos.add_row((f"edge{k}", float(ra[k]), float(dec[k])))
    pos.write(out / "positions.csv", format="ascii.csv")
    return out, s, len(pos)


def _lake(tmp_path, sim, name):
    out = sim[0]
    lake = Lake.create(tmp_path / name)
    ingest_catalog(lake, out / "positions.csv", field_id="sim", name="gc")
    return lake


def test_aperture_photometry_on_dask_tiles_is_bit_identical(cli, tmp_path, sim, dask_scheduler):
    """In process, and on a worker process with 64 and 100 px tiles: the same rows."""
    out, s, n = sim
    img = s["images"]["F150W"]
    rows = []
    runs = (("a", ()), ("b", ("--tile", "64")), ("c", ("--tile", "100")))
    for name, tile in runs:
        lake = _lake(tmp_path, sim, name)
        extra = ("--scheduler", dask_scheduler, *tile) if tile else ()
        base = (
            "photometry",
            img,
            "--field",
            "sim",
            "--catalog",
            "gc",
            "--lake",
            lake.root,
            "--psf",
            s["psf"],
        )
        r = cli(*base, *extra)
        assert r.exit_code == 0, r.output
        con = connect(lake.root)
        rows.append(
            con.sql(
                "SELECT detection_id, aperture_radius_arcsec, flux_njy, flux_err_njy, is_upper_limit "
                "FROM photometry ORDER BY detection_id, aperture_radius_arcsec"
            ).fetchall()
        )
        opts = json.loads(
            con.sql("SELECT options FROM ingests WHERE name = 'gc/F150W/aperture'").fetchall()[0][0]
        )
        assert opts["scheduler"] == (dask_scheduler if tile else "in-process")
    assert len(rows[0]) == 3 * n and rows[0] == rows[1] == rows[2]
    edge = [r for r in rows[0] if "edge" in r[0]]
    assert len(edge) == 3 * len(EDGES) and all(r[2] is not None for r in edge), edge


def test_inject_aperture_on_dask_is_bit_identical(cli, tmp_path, sim, dask_scheduler):
    """gccat inject (targets and random modes) --scheduler: the same injection rows and
    corrections as in process; the positions are drawn on the client from the seed."""
    out, s, _ = sim
    img = s["images"]["F150W"]
    modes = (
        ("--n", "3", "--locations", "6", "--max-targets", "8"),
        ("--mode", "random", "--n-random", "30", "--max-targets", "5"),
    )
    for opts in modes:
        got = []
        for name, extra in (("a", ()), ("b", ("--scheduler", dask_scheduler))):
            lake = _lake(tmp_path / opts[1], sim, name)
            base = ("--field", "sim", "--catalog", "gc", "--lake", lake.root, "--psf", s["psf"])
            r = cli("inject", img, *base, *opts, "--seed", "3", *extra)
            assert r.exit_code == 0, r.output
            con = connect(lake.root)
            got.append(
                (
                    con.sql(
                        "SELECT detection_id, injection, x, y, aperture_radius_arcsec, flux_in_njy, "
                        "flux_out_njy, "
                        "flux_err_njy, recovered FROM injection_sources ORDER BY ALL"
                    ).fetchall(),
                    con.sql(
                        "SELECT * EXCLUDE (run_id, ingest_id) FROM injection_corrections ORDER BY ALL"
                    ).fetchall(),
                )
            )
            params = json.loads(con.sql("SELECT params FROM injection_runs").fetchall()[0][0])
            assert params["scheduler"] == (dask_scheduler if extra else "in-process")
        assert len(got[0][0]) > 0 and len(got[0][1]) > 0 and got[0] == got[1], opts


def test_unreachable_scheduler_exits_2_lake_unchanged(cli, tmp_path, sim, monkeypatch):
    monkeypatch.setattr(cluster, "SCHEDULER_TIMEOUT_S", 3.0)
    out, s, _ = sim
    img = s["images"]["F150W"]
    lake = _lake(tmp_path, sim, "u")
    before = snapshot(lake)
    base = ("--field", "sim", "--catalog", "gc", "--lake", lake.root, "--psf", s["psf"])
    for cmd in (
        ("photometry", img),
        ("inject", img, "--max-targets", "2"),
        ("photometry", img, "--tile", "8"),
    ):
        r = cli(*cmd, *base, "--scheduler", "tcp://127.0.0.1:1")
        assert r.exit_code == 2, (cmd, r.output)
        assert len(r.output.strip().splitlines()) == 1, r.output
        assert "--scheduler" in r.output or "--tile" in r.output
    assert snapshot(lake) == before


def _edge_positions():
    """Positions whose aperture edges ``x - r`` fall on a pixel edge: ``x - r + 0.5`` rounds to
    the whole number in window coordinates but not in the image's (or the other way round)."""
    r = 0.16 / 0.03
    k = np.arange(2000.0, 2200.0, 7.0)
    return k + r - 0.5, r


@pytest.mark.parametrize("tile", [7, 16, 64, 150])
def test_tiled_aperture_photometry_is_bit_identical(tile):
    """Tiles of any size give the numbers of one pass over the image: sources on and off its
    edges, masked and non-finite pixels, with an error map, a weight map, or neither, with or
    without an annulus and a PSF correction."""
    from catalog import images as im

    rng = np.random.default_rng(tile)
    ny, nx = 230, 310
    img = rng.normal(size=(ny, nx)) + 3
    img[rng.random(img.shape) < 0.003] = np.nan
    mask = rng.random(img.shape) < 0.01
    x = np.concatenate([rng.uniform(-8, nx + 8, 300), [0.0, nx - 1.0, -0.5, nx - 0.5, np.nan, 64.0, 63.5]])
    y = np.concatenate([rng.uniform(-8, ny + 8, 300), [0.0, ny - 1.0, 10.0, 100.0, 5.0, 127.5, 128.0]])
    psf = im.make_psf(2.0)
    for kw in (
        {"error": np.abs(rng.normal(1, 0.1, img.shape)), "mask": mask, "psf": psf},
        {"mask": mask, "psf": psf},
        {"annulus_width_pix": 0, "psf": psf},
        {"weight": np.ones(img.shape), "annulus_width_pix": 3.3},
    ):
        radii = [2.0, 4.0, 6.67]
        one = im.aperture_photometry(img, x, y, radii, **kw)
        tiled = im.aperture_photometry(img, x, y, radii, tile_pix=tile, map_tasks=_reversed_map, **kw)
        for key, v in one.items():
            assert np.array_equal(v, tiled[key], equal_nan=True), (kw.keys(), key)


def _reversed_map(fn, tasks):
    """A map that runs the tasks last first (the results still in order)."""
    tasks = list(tasks)
    return [fn(t) for t in tasks[::-1]][::-1]


def test_a_window_falls_back_where_photutils_would_round_its_boxes_otherwise(monkeypatch):
    """At x - r on a pixel edge, photutils' box of a shifted position can lose or gain a column
    (x - r + 0.5 rounds across the whole number): the window then starts at the image's first
    column, and the numbers stay those of the whole image; without that they change."""
    from catalog import images as im

    x, r = _edge_positions()
    y = np.full(x.size, 60.3)
    img = np.random.default_rng(1).normal(size=(120, 2300))
    kw = {"annulus_width_pix": 0.08 / 0.03}
    one = im.aperture_photometry(img, x, y, [r], **kw)
    tiled = im.aperture_photometry(img, x, y, [r], tile_pix=64, **kw)
    assert all(np.array_equal(v, tiled[k], equal_nan=True) for k, v in one.items())
    monkeypatch.setattr(ap, "_exact_window", lambda pos, extents, win, shape: win)
    naive = im.aperture_photometry(img, x, y, [r], tile_pix=64, **kw)
    assert not np.array_equal(one["flux"], naive["flux"])


def test_injections_through_any_map_are_those_in_process():
    """injection_recovery and injection_random_stamps with another map_tasks (tasks run last
    first) give the same numbers; the stamps of several targets are those of one
    injection_random call per target in turn, and the generator ends in the same state."""
    from catalog import images as im

    rng = np.random.default_rng(4)
    img = rng.normal(size=(260, 240)) + 2
    psf = im.make_psf(2.0)
    x, y = rng.uniform(10, 230, 6), rng.uniform(10, 250, 6)
    flux = np.array([40.0, 80.0, -1.0, 20.0, 60.0, 30.0])
    kw = {"n_flux": 3, "n_locations": 5, "annulus_width_pix": 2.67, "error": np.ones(img.shape)}
    one = im.injection_recovery(img, psf, x, y, flux, [2.0, 4.0], rng=np.random.default_rng(1), **kw)
    other = im.injection_recovery(
        img, psf, x, y, flux, [2.0, 4.0], rng=np.random.default_rng(1), map_tasks=_reversed_map, **kw
    )
    assert all(np.array_equal(v, other[k], equal_nan=True) for k, v in one.items())
    g, h = np.random.default_rng(9), np.random.default_rng(9)
    fl = [40.0, 80.0, 25.0]
    each = [
        im.injection_random(img, psf, (x[t], y[t]), 60, fl[t], 300, [2.0, 4.0], rng=g, annulus_width_pix=2.67)
        for t in range(3)
    ]
    centres = np.column_stack([x[:3], y[:3]])
    stamps = im.injection_random_stamps(
        img, psf, centres, 60, fl, 300, [2.0, 4.0], rng=h, annulus_width_pix=2.67, map_tasks=_reversed_map
    )
    for a, b in zip(each, stamps, strict=True):
        assert all(np.array_equal(v, b[k], equal_nan=True) for k, v in a.items())
    assert g.random() == h.random()
