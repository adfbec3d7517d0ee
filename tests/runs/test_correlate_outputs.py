"""The GC-kappa analysis completed: light-image profiles past the lens map, the binned box
relation, FITS density and residual maps, and the mass budget's fraction and edge warning.
"""

import numpy as np
import pytest
from astropy import units as u
from astropy.io import fits
from astropy.wcs import WCS

from catalog.gckappa.plots import bin_boxes_by_count
from catalog.lake import Lake
from catalog.queries.connection import connect
from catalog.runs.correlation import run_correlation
from catalog.simulations import simulate_field_files
from ingest.catalog import ingest_catalog, ingest_fields
from ingest.lens import ingest_lens_maps

from ..conftest import FIELDS

RA0, DEC0 = 342.18321, -44.53088  # the as1063 field centre, also the simulated map's centre
#: Surface brightness profile of the light image: S0 (r / 10")^-2 MJy/sr, softened at 1".
S0_MJY_SR = 0.5
IMAGE_SCALE = 0.5  # arcsec/pixel
IMAGE_SIDE = 500  # pixels: 250" across, to r = 125"
#: Background-only GCs scattered over the image, arcsec^-2.
GC_DENSITY_OUT = 0.02


def _image_wcs() -> WCS:
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [RA0, DEC0]
    w.wcs.crpix = [(IMAGE_SIDE + 1) / 2, (IMAGE_SIDE + 1) / 2]
    w.wcs.cdelt = [-IMAGE_SCALE / 3600, IMAGE_SCALE / 3600]
    return w


def _light_profile(r_arcsec):
    return S0_MJY_SR * (np.hypot(r_arcsec, 1.0) / 10.0) ** -2


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    """A 40" simulated lens map, its GCs, GCs scattered over a 250" image, and the image."""
    tmp = tmp_path_factory.mktemp("wide")
    sim = simulate_field_files(
        tmp / "sim", "as1063", shape=(200, 200), pixel_scale_arcsec=0.2, n_mask_disks=0, seed=4
    )
    lake = Lake.create(tmp / "lake")
    ingest_fields(lake, FIELDS)
    ingest_lens_maps(lake, [sim.kappa_path], field_id="as1063", model="truth")
    ingest_catalog(lake, sim.catalog_path, field_id="as1063", name="gcs")
    rng = np.random.default_rng(21)
    half = IMAGE_SIDE * IMAGE_SCALE / 2 - 1
    n_out = rng.poisson(GC_DENSITY_OUT * (2 * half) ** 2)
    dx, dy = rng.uniform(-half, half, (2, n_out))
    ra = RA0 - dx / 3600 / np.cos(np.radians(DEC0))
    dec = DEC0 + dy / 3600
    out = tmp / "outer.csv"
    out.write_text(
        "id,ra,dec\n"
        + "".join(f"o{i},{a:.9f},{d:.9f}\n" for i, (a, d) in enumerate(zip(ra, dec, strict=True)))
    )
    ingest_catalog(lake, out, field_id="as1063", name="outer")
    w = _image_wcs()
    yy, xx = np.mgrid[0:IMAGE_SIDE, 0:IMAGE_SIDE]
    c = (IMAGE_SIDE - 1) / 2
    r = np.hypot(xx - c, yy - c) * IMAGE_SCALE
    data = _light_profile(r)
    data[:40, :40] = np.nan  # a corner without data: not footprint
    header = w.to_header()
    header["BUNIT"] = "MJy/sr"
    image = tmp / "f444w_i2d.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(data, header=header, name="SCI")]).writeto(image)
    return {"lake": lake, "sim": sim, "image": image, "data": data, "r": r, "tmp": tmp}


def test_light_image_profile_and_gc_profile_beyond_the_map(wide, cli):
    lake = wide["lake"]
    res = cli(
        "correlate",
        "--field",
        "as1063",
        "--model",
        "truth",
        "--inpaint-iter",
        "0",
        "--profile-log",
        "2,120,8",
        "--light-image",
        wide["image"],
        "--plots",
        wide["tmp"] / "plots",
        "--lake",
        lake.root,
    )
    assert res.exit_code == 0, res.output
    con = connect(lake)
    run_id, light, plots = con.execute("SELECT run_id, light_image, plots FROM correlation_runs").fetchall()[
        0
    ]
    assert light == str(wide["image"])
    assert any(p.endswith("radial_profiles_loglog.png") for p in plots)
    rows = con.execute(
        "SELECT r_in_arcsec, r_out_arcsec, n_gc, n_gc_image, area_image_arcsec2, sigma_gc_image, "
        "sigma_gc_image_err, light_sb_njy_arcsec2 FROM radial_profiles WHERE run_id = ? ORDER BY r_in_arcsec",
        [run_id],
    ).fetchall()
    # The light: the mean over the annulus's pixels with data, converted from MJy/sr to
    # nJy/arcsec^2 by astropy (1 MJy/sr = 23,504 nJy/arcsec^2).
    factor = (1 * u.MJy / u.sr).to_value(u.nJy / u.arcsec**2)
    finite = np.isfinite(wide["data"])
    for r_in, r_out, _n, _ni, area, _s, _e, sb in rows:
        pix = finite & (wide["r"] >= r_in) & (wide["r"] < r_out)
        assert area == pytest.approx(pix.sum() * IMAGE_SCALE**2, rel=1e-12)
        assert sb == pytest.approx(wide["data"][pix].mean() * factor, rel=1e-9)
    # The GCs past the 40" map: counted on the image's footprint, at the density they were
    # scattered with (within Poisson), while the map's own profile has no area there.
    outer = [r for r in rows if r[0] > 30]
    assert outer and all(r[2] == 0 for r in outer)
    n = sum(r[3] for r in outer)
    area = sum(r[4] for r in outer)
    assert abs(n / area - GC_DENSITY_OUT) < 3 * np.sqrt(n) / area
    for r in outer:
        assert r[6] == pytest.approx(np.sqrt(r[3]) / r[4])
    # every GC on the image inside the outer edge is in one annulus (the map's GCs included)
    assert sum(r[3] for r in rows) > sum(r[2] for r in rows)


def test_a_light_image_without_data_is_refused(wide, cli):
    bad = wide["tmp"] / "empty.fits"
    header = _image_wcs().to_header()
    header["BUNIT"] = "MJy/sr"
    fits.PrimaryHDU(np.full((20, 20), np.nan), header=header).writeto(bad)
    res = cli(
        "correlate",
        "--field",
        "as1063",
        "--model",
        "truth",
        "--light-image",
        bad,
        "--lake",
        wide["lake"].root,
    )
    assert res.exit_code == 2 and "no pixel with data" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_binned_box_relation_view_and_fits_maps(wide, tmp_path):
    lake = wide["lake"]
    r = run_correlation(lake, "as1063", "truth", inpaint_iterations=0, n_boot=50, plot_dir=tmp_path)
    run_id = r.run["run_id"]
    con = connect(lake)
    boxes = con.execute(
        "SELECT n_gc, n_per_arcsec2, kappa_mean FROM box_stats WHERE run_id = ?", [run_id]
    ).fetchnumpy()
    want = bin_boxes_by_count(boxes["n_gc"], boxes["n_per_arcsec2"], boxes["kappa_mean"])
    got = con.execute(
        "SELECT n_gc, n_boxes, n_per_arcsec2_mean, kappa_bin_mean, kappa_bin_std, kappa_bin_sem "
        "FROM box_relation_binned WHERE run_id = ? ORDER BY n_gc",
        [run_id],
    ).fetchnumpy()
    np.testing.assert_array_equal(got["n_gc"], want["n_gc"])
    np.testing.assert_array_equal(got["n_boxes"], want["n_boxes"])
    assert got["n_boxes"].sum() == len(boxes["n_gc"])
    np.testing.assert_allclose(got["kappa_bin_mean"], want["kappa_mean"], rtol=1e-12)
    np.testing.assert_allclose(got["n_per_arcsec2_mean"], want["n_per_arcsec2"], rtol=1e-12)
    several = want["n_boxes"] > 1
    np.testing.assert_allclose(got["kappa_bin_std"][several], want["kappa_std"][several], rtol=1e-9)
    np.testing.assert_allclose(
        got["kappa_bin_sem"][several],
        want["kappa_std"][several] / np.sqrt(want["n_boxes"][several]),
        rtol=1e-9,
    )
    # More GCs per box, more kappa: the binned relation rises (the simulation has B = 0.8 > 0).
    assert got["kappa_bin_mean"][-1] > got["kappa_bin_mean"][0]

    # The FITS maps: on the lens map's WCS, equal to the density_maps rows.
    path = next(p for p in r.plots if p.endswith(".fits"))
    rows = con.execute(
        "SELECT ix, iy, rho_gc, kappa, residual, masked FROM density_maps WHERE run_id = ?", [run_id]
    ).fetchnumpy()
    with fits.open(path) as hdus:
        assert [h.name for h in hdus[1:]] == ["RHO_GC", "KAPPA", "RESIDUAL", "MASK"]
        assert hdus["RHO_GC"].header["RUN_ID"] == run_id
        kappa_header = fits.getheader(wide["sim"].kappa_path)
        np.testing.assert_allclose(
            WCS(hdus["KAPPA"].header).pixel_to_world_values([0, 199], [0, 199]),
            WCS(kappa_header).pixel_to_world_values([0, 199], [0, 199]),
            atol=1e-10,
        )
        for name, col in (("RHO_GC", "rho_gc"), ("KAPPA", "kappa"), ("RESIDUAL", "residual")):
            np.testing.assert_allclose(
                hdus[name].data[rows["iy"], rows["ix"]], rows[col], rtol=1e-12, equal_nan=True
            )
        np.testing.assert_array_equal(hdus["MASK"].data[rows["iy"], rows["ix"]] == 1, rows["masked"])


def test_gc_mass_fraction_and_a_mass_aperture_past_the_map(wide, cli):
    lake = wide["lake"]
    base = ("correlate", "--field", "as1063", "--model", "truth", "--inpaint-iter", "0")
    base += ("--plots", wide["tmp"] / "p2", "--lake", lake.root)
    inside = cli(*base, "--mass-radius", "10")
    assert inside.exit_code == 0, inside.output
    assert "warning" not in inside.output
    scaled = cli(*base, "--mass-radius", "10", "--gc-mass-fraction", "1e-4")
    assert scaled.exit_code == 0, scaled.output
    past = cli(*base, "--mass-radius", "30")
    assert past.exit_code == 0, past.output
    assert "reaches past the lens map" in past.output and "lower limits" in past.output
    con = connect(lake)
    rows = con.execute(
        "SELECT mass_radius_arcsec, gc_mass_fraction, m_halo_msun, m_gc_msun, mass_aperture_on_map_fraction "
        "FROM correlation_runs WHERE mass_radius_arcsec IN (10, 30) ORDER BY created_at"
    ).fetchall()[-3:]
    (r1, f1, h1, g1, a1), (_, f2, h2, g2, _), (_, _, _, _, a3) = rows
    assert (r1, f1, f2) == (10, pytest.approx(2.9e-5), pytest.approx(1e-4))
    assert h2 == pytest.approx(h1, rel=1e-12) and g2 / g1 == pytest.approx(1e-4 / 2.9e-5, rel=1e-12)
    assert a1 == pytest.approx(1.0, abs=0.02)  # a 10" aperture inside the 40" map
    # 30" around the centre of a 40"-square map: the square's share of the disk
    on_map = _square_disk_fraction(20.0, 30.0)
    assert a3 == pytest.approx(on_map, abs=0.01)
    for extra in (("--gc-mass-fraction", "0"), ("--gc-mass-fraction", "2")):
        res = cli(*base, *extra)
        assert res.exit_code == 2 and "--gc-mass-fraction must be" in res.stderr, res.output


def _square_disk_fraction(half_side: float, radius: float, n: int = 2001) -> float:
    """Fraction of a disk of ``radius`` inside the centred square of half-side ``half_side``,
    by direct integration on a fine grid.
    """
    g = np.linspace(-radius, radius, n)
    x, y = np.meshgrid(g, g)
    disk = np.hypot(x, y) <= radius
    return float((disk & (np.abs(x) <= half_side) & (np.abs(y) <= half_side)).sum() / disk.sum())
