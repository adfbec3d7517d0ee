"""Lens maps in the lake, lens quantities at sources, and correlation runs end to end."""

import json

import numpy as np
import pyarrow as pa
import pytest
from astropy.io import fits

from catalog.lake import Lake
from catalog.lensing import dls_ds, magnification
from catalog.queries.connection import connect
from catalog.runs.correlation import run_correlation
from catalog.simulations import simulate_field_files
from ingest.catalog import ingest_catalog, ingest_fields
from ingest.demo import bundled
from ingest.lens import ingest_lens_maps

from ..conftest import FIELDS, snapshot

AS1063 = [bundled(f"as1063_lenstool_patch_bin4_{a}-arcsec-deflect.fits") for a in "xy"]


@pytest.fixture(scope="module")
def lens_lake(tmp_path_factory):
    lake = Lake.create(tmp_path_factory.mktemp("lens") / "lake")
    ingest_fields(lake, FIELDS)
    ingest_lens_maps(lake, AS1063, field_id="as1063", model="lenstool", team="Lenstool")
    return lake


def _kappa_map(lake):
    con = connect(lake)
    rows = con.execute(
        "SELECT ix, iy, ra, dec, value FROM lens_map_pixels WHERE quantity = 'kappa' ORDER BY iy, ix"
    ).fetchall()
    return np.array(rows, dtype=float)


def test_kappa_derived_from_real_deflections_is_positive_near_0_4(lens_lake):
    con = connect(lens_lake)
    q = dict(con.execute("SELECT quantity, derived FROM lens_models").fetchall())
    assert q == {
        "x-arcsec-deflect": False,
        "y-arcsec-deflect": False,
        "kappa": True,
        "gamma1": True,
        "gamma2": True,
        "gamma": True,
    }
    k = _kappa_map(lens_lake)[:, 4]
    assert (k > 0).mean() > 0.99
    assert 0.35 < np.median(k) < 0.45


def test_sources_at_pixel_centres_get_the_map_values_and_rescale_with_redshift(lens_lake, tmp_path):
    pix = _kappa_map(lens_lake)
    rng = np.random.default_rng(3)
    pick = pix[rng.choice(len(pix), 40, replace=False)]
    csv = tmp_path / "arcs.csv"
    lines = ["id,ra,dec,z"] + [
        f"s{i},{r[2]:.12f},{r[3]:.12f},{1.378 if i % 2 else 0.348}" for i, r in enumerate(pick)
    ]
    csv.write_text("\n".join(lines) + "\n")
    lake = Lake(lens_lake.root)
    ingest_catalog(lake, csv, field_id="as1063", name="arcs")
    con = connect(lake)
    got = con.execute(
        "SELECT source_id, kappa_map, kappa, gamma, mu, z, off_map FROM "
        "lens_at_detections WHERE detection_id LIKE 'as1063/arcs/%' "
        "ORDER BY source_id"
    ).fetchall()
    by_id = {g[0]: g[1:] for g in got}
    scale = float(dls_ds(0.348, 1.378))
    assert 0.5 < scale < 1
    for i, r in enumerate(pick):
        kappa_map, kappa, gamma, mu, z, off = by_id[f"s{i}"]
        assert kappa_map == pytest.approx(r[4], abs=1e-9)
        assert not off
        if z == pytest.approx(0.348):  # a cluster member is not lensed
            assert kappa == 0 and mu == pytest.approx(1.0)
        else:
            assert kappa == pytest.approx(scale * r[4], rel=1e-9)
            assert mu == pytest.approx(float(magnification(kappa, gamma)))
    demag = con.execute("SELECT count(*) FROM photometry_demagnified").fetchall()[0][0]
    assert demag == 0  # no photometry in this catalog: the view joins cleanly


def test_a_bad_lens_map_is_refused_and_the_lake_is_unchanged(lens_lake, tmp_path, cli):
    before = snapshot(lens_lake)
    bad = tmp_path / "broken_kappa.fits"
    bad.write_bytes(AS1063[0].read_bytes()[:5000])
    res = cli("ingest", "lens-map", bad, "--field", "as1063", "--model", "broken", "--lake", lens_lake.root)
    assert res.exit_code == 2 and str(bad) in res.stderr
    res = cli("correlate", "--field", "as1063", "--model", "nosuch", "--lake", lens_lake.root)
    assert res.exit_code == 2 and "no kappa map" in res.stderr
    assert snapshot(lens_lake) == before


def test_replace_only_supersedes_an_ingest_of_the_same_kind(tmp_path):
    """A catalog named like a lens model (and the other way round) leaves the other live."""
    lake = Lake.create(tmp_path / "lake")
    ingest_fields(lake, FIELDS)
    ingest_lens_maps(lake, AS1063, field_id="as1063", model="m")
    csv = tmp_path / "m.csv"
    csv.write_text("id,ra,dec,flux_F150W,fluxerr_F150W\na,342.1735,-44.5322,10,1\nb,342.1740,-44.5320,12,1\n")
    r = ingest_catalog(lake, csv, field_id="as1063", name="m", replace=True)
    assert r.superseded == []
    con = connect(lake)
    assert con.execute("SELECT DISTINCT model_id FROM lens_models").fetchall() == [("as1063/m",)]
    kappa = con.execute(
        "SELECT count(kappa_map) FROM lens_at_detections WHERE detection_id LIKE 'as1063/m/%'"
    ).fetchall()[0][0]
    assert kappa == 2  # both sources sampled on the (still live) model
    # The other way round: replacing the lens model keeps the catalog.
    lens = ingest_lens_maps(lake, AS1063[:1], field_id="as1063", model="m", replace=True)
    live = {
        (k, n)
        for k, n in zip(lake.ingests()["kind"].to_pylist(), lake.ingests()["name"].to_pylist(), strict=True)
    }
    assert {("catalog", "m"), ("lens_map", "m")} <= live
    assert lens.superseded and r.ingest_id not in lens.superseded
    assert connect(lake).execute("SELECT count(*) FROM detections").fetchall()[0][0] == 2


def test_correlate_recovers_the_simulated_relation_and_writes_everything(tmp_path, cli):
    sim = simulate_field_files(
        tmp_path / "sim", "sim", shape=(400, 400), pixel_scale_arcsec=0.15, A=0.5, B=0.8, seed=7
    )
    lake = Lake.create(tmp_path / "lake")
    ingest_lens_maps(lake, [sim.kappa_path], field_id="sim", model="truth")
    ingest_catalog(lake, sim.catalog_path, field_id="sim", name="gcs")
    res = cli(
        "correlate",
        "--field",
        "sim",
        "--model",
        "truth",
        "--mask",
        sim.mask_path,
        "--plots",
        tmp_path / "plots",
        "--seed",
        "1",
        "--lake",
        lake.root,
    )
    assert res.exit_code == 0, res.output
    con = connect(lake)
    run = con.execute(
        "SELECT A, A_err, B, B_err, n_gc, n_gc_inpainted, beta, pearson_log, "
        "plots, run_id FROM correlation_runs"
    ).fetchall()[0]
    a, a_err, b, b_err, n_gc, n_added, beta, pearson, plots, run_id = run
    assert n_gc == sim.n_gc
    assert abs(a - 0.5) < 3 * a_err and abs(b - 0.8) < 3 * b_err
    hidden = sim.truth["n_gc_hidden_by_mask"]
    assert abs(n_added - hidden) < 3 * np.sqrt(hidden) + 3
    assert beta > 0 and pearson > 0.8
    assert len(plots) == 5 and all(__import__("pathlib").Path(p).stat().st_size > 10_000 for p in plots)
    assert sum(p.endswith(".png") for p in plots) == 4 and plots[-1].endswith("density_maps.fits")
    counts = con.execute(
        "SELECT (SELECT count(*) FROM density_maps), (SELECT count(*) FROM "
        "box_stats), (SELECT count(*) FROM radial_profiles)"
    ).fetchall()[0]
    assert counts[0] == 400 * 400 and counts[1] > 100 and counts[2] == 12
    prof_n = con.execute("SELECT sum(n_gc) FROM radial_profiles").fetchall()[0][0]
    assert prof_n <= n_gc


def test_correlate_says_when_no_gc_lies_on_the_map(tmp_path, cli):
    """Regression: it said 'rho_gc is zero' when the selection had no GC on the map."""
    sim = simulate_field_files(tmp_path / "sim", "sim", shape=(100, 100), pixel_scale_arcsec=0.2, seed=2)
    lake = Lake.create(tmp_path / "lake")
    ingest_lens_maps(lake, [sim.kappa_path], field_id="sim", model="truth")
    far = tmp_path / "far.csv"
    far.write_text("id,ra,dec\na,10.0,10.0\nb,10.001,10.0\n")
    ingest_catalog(lake, far, field_id="sim", name="far")
    res = cli(
        "correlate", "--field", "sim", "--model", "truth", "--plots", tmp_path / "p", "--lake", lake.root
    )
    assert res.exit_code == 2
    assert "none of the 2 selected detections of field 'sim' lies on the kappa map" in res.stderr


def test_null_relation_gives_no_positive_slope(tmp_path):
    """GCs placed uniformly, whatever kappa is: the fitted exponent must not look real."""
    sim = simulate_field_files(tmp_path / "sim", "sim", shape=(300, 300), pixel_scale_arcsec=0.2, seed=5)
    lake = Lake.create(tmp_path / "lake")
    ingest_lens_maps(lake, [sim.kappa_path], field_id="sim", model="truth")
    rng = np.random.default_rng(11)
    hdr = fits.getheader(sim.kappa_path)
    from astropy.wcs import WCS

    x, y = rng.uniform(-0.5, 299.5, (2, 3000))
    ra, dec = WCS(hdr).pixel_to_world_values(x, y)
    path = tmp_path / "uniform.parquet"
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": np.arange(3000), "ra": ra, "dec": dec}), path)
    ingest_catalog(lake, path, field_id="sim", name="uniform")
    r = run_correlation(lake, "sim", "truth", fit_method="lsq", inpaint_iterations=0, n_boot=300)
    assert abs(r.run["B"]) < 3 * r.run["B_err"] + 0.05
    assert abs(r.run["pearson_log"]) < 0.5
    assert json.loads(r.run["options"])["fit"]["method"] == "lsq"


def test_bright_source_regions_from_a_table_are_masked(tmp_path, cli):
    sim = simulate_field_files(
        tmp_path / "sim", "sim", shape=(200, 200), pixel_scale_arcsec=0.2, n_mask_disks=0, seed=9
    )
    lake = Lake.create(tmp_path / "lake")
    ingest_lens_maps(lake, [sim.kappa_path], field_id="sim", model="truth")
    ingest_catalog(lake, sim.catalog_path, field_id="sim", name="gcs")
    hdr = fits.getheader(sim.kappa_path)
    from astropy.wcs import WCS

    ra, dec = WCS(hdr).pixel_to_world_values([50.0, 150.0], [50.0, 120.0])
    regions = tmp_path / "bright.csv"
    regions.write_text(f"id,ra,dec,radius_arcsec\nb1,{ra[0]},{dec[0]},4\nb2,{ra[1]},{dec[1]},2\n")
    res = cli(
        "correlate",
        "--field",
        "sim",
        "--model",
        "truth",
        "--mask-table",
        regions,
        "--plots",
        tmp_path / "plots",
        "--lake",
        lake.root,
    )
    assert res.exit_code == 0, res.output
    frac = connect(lake).execute("SELECT masked_fraction FROM correlation_runs").fetchall()[0][0]
    expected = np.pi * ((4 / 0.2) ** 2 + (2 / 0.2) ** 2) / 200**2
    assert frac == pytest.approx(expected, rel=0.1)


def test_high_magnification_is_kept_and_only_an_undefined_mu_is_flagged(tmp_path):
    """|mu| of 15-100 (the Sparkler's images) keeps its demagnified flux and intrinsic mass;
    only a source so close to the critical curve that mu changes sign within one map pixel
    is flagged mu_undefined (regression: |mu| > 20 used to be blanked)."""
    lake = Lake.create(tmp_path / "lake")
    ingest_fields(lake, FIELDS)
    # Maps normalised to the sources' redshift: the view's mu is the map's mu.
    ingest_lens_maps(lake, AS1063, field_id="as1063", model="lenstool", z_source=1.0)
    con = connect(lake)
    px = {
        q: np.array(
            con.execute(
                "SELECT ix, iy, ra, dec, value FROM lens_map_pixels WHERE quantity = ? ORDER BY iy, ix", [q]
            ).fetchall(),
            dtype=float,
        )
        for q in ("kappa", "gamma")
    }
    ny, nx = int(px["kappa"][:, 1].max()) + 1, int(px["kappa"][:, 0].max()) + 1
    det = ((1 - px["kappa"][:, 4]) ** 2 - px["gamma"][:, 4] ** 2).reshape(ny, nx)
    mu = 1 / det
    sign = np.sign(det)
    flip = np.zeros_like(det, bool)  # det A changes sign towards a neighbour
    flip[:, :-1] |= sign[:, :-1] != sign[:, 1:]
    flip[:, 1:] |= sign[:, 1:] != sign[:, :-1]
    flip[:-1] |= sign[:-1] != sign[1:]
    flip[1:] |= sign[1:] != sign[:-1]
    change = np.zeros_like(det)  # largest |mu_neighbour / mu - 1| one pixel away
    for axis in (0, 1):
        for step in (1, -1):
            ratio = det / np.roll(det, step, axis=axis)
            change = np.maximum(change, np.abs(ratio - 1))
    interior = np.zeros_like(flip)
    interior[2:-2, 2:-2] = True
    high = np.flatnonzero((np.abs(mu) > 15) & (np.abs(mu) < 100) & ~flip & (change < 1) & interior)
    crit = np.flatnonzero(flip & interior)
    assert len(high) >= 10 and len(crit) >= 5
    picks = list(high[:: len(high) // 10][:10]) + list(crit[:: len(crit) // 5][:5])
    rows = ["id,ra,dec,z,flux_F150W,fluxerr_F150W"]
    for i, k in enumerate(picks):
        rows.append(f"s{i:02d},{px['kappa'][k, 2]:.12f},{px['kappa'][k, 3]:.12f},1.0,100.0,5.0")
    csv = tmp_path / "arcs.csv"
    csv.write_text("\n".join(rows) + "\n")
    ingest_catalog(lake, csv, field_id="as1063", name="arcs")
    got = (
        connect(lake)
        .execute(
            "SELECT l.source_id, l.mu, l.mu_undefined, l.mu_pixel_change, p.flux_intrinsic_njy "
            "FROM photometry_demagnified p JOIN lens_at_detections l USING (detection_id, model_id) "
            "ORDER BY l.source_id"
        )
        .fetchall()
    )
    assert len(got) == len(picks)
    expected_change = change
    for i, (_, m, undefined, change, intrinsic) in enumerate(got):
        assert m == pytest.approx(mu.ravel()[picks[i]], rel=1e-6)
        if i < 10:
            assert 15 < abs(m) < 100 and not undefined
            assert change == pytest.approx(expected_change.ravel()[picks[i]], rel=1e-6)
            assert intrinsic == pytest.approx(100.0 / abs(m), rel=1e-9)
        else:
            assert undefined and change == np.inf and intrinsic is None
    # The criterion is configurable: a stricter one flags the strongly magnified ones too.
    strict = connect(lake, mu_pixel_change_max=1e-3)
    flagged = strict.execute(
        "SELECT count(*) FILTER (WHERE mu_undefined) FROM lens_at_detections"
    ).fetchall()[0][0]
    assert flagged > 5


def test_the_halo_mass_does_not_depend_on_the_source_redshift(tmp_path):
    """Regression: with z_source = 3 the mass inside the radius dropped by D_ls/D_s = 0.785."""
    sim = simulate_field_files(tmp_path / "sim", "sim", shape=(200, 200), pixel_scale_arcsec=0.3, seed=3)
    lake = Lake.create(tmp_path / "lake")
    from astropy.wcs import WCS

    ra0, dec0 = WCS(fits.getheader(sim.kappa_path)).pixel_to_world_values(99.5, 99.5)
    fields = tmp_path / "fields.csv"
    fields.write_text(f"field_id,ra_center_deg,dec_center_deg,z_cluster\nsim,{ra0},{dec0},0.348\n")
    ingest_fields(lake, fields)
    ingest_lens_maps(lake, [sim.kappa_path], field_id="sim", model="truth")
    ingest_catalog(lake, sim.catalog_path, field_id="sim", name="gcs")
    runs = [
        run_correlation(
            lake, "sim", "truth", z_source=z, mass_radius_arcsec=20, inpaint_iterations=0, n_boot=50
        ).run
        for z in (None, 3.0, 1.0)
    ]
    m = [r["m_halo_msun"] for r in runs]
    assert m[0] > 0
    assert m[1] == pytest.approx(m[0], rel=1e-12) and m[2] == pytest.approx(m[0], rel=1e-12)
    # ... while kappa itself (and so beta) does scale with the source redshift.
    assert runs[1]["beta"] == pytest.approx(runs[0]["beta"] * float(dls_ds(0.348, 3.0)), rel=1e-6)


def _background_lake(tmp_path, bg_per_arcsec2: float, n_off: int):
    """A simulated cluster (field as1063, with its z_cluster) with a uniform background on the
    map, and ``n_off`` background-only detections in a 60" x 60" square off the map.
    """
    sim = simulate_field_files(
        tmp_path / "sim",
        "as1063",
        shape=(200, 200),
        pixel_scale_arcsec=0.2,
        background_per_arcsec2=bg_per_arcsec2,
        n_mask_disks=0,
        seed=4,
    )
    lake = Lake.create(tmp_path / "lake")
    ingest_fields(lake, FIELDS)
    ingest_lens_maps(lake, [sim.kappa_path], field_id="as1063", model="truth")
    ingest_catalog(lake, sim.catalog_path, field_id="as1063", name="gcs")
    rng = np.random.default_rng(12)
    dec0 = -44.53088 + 0.1  # 6 arcmin north of the map
    ra = 342.18321 + rng.uniform(-30, 30, n_off) / 3600 / np.cos(np.radians(dec0))
    dec = dec0 + rng.uniform(-30, 30, n_off) / 3600
    off = tmp_path / "off.csv"
    off.write_text(
        "id,ra,dec\n"
        + "".join(f"o{i},{a:.9f},{d:.9f}\n" for i, (a, d) in enumerate(zip(ra, dec, strict=True)))
    )
    ingest_catalog(lake, off, field_id="as1063", name="off")
    return lake, sim


def test_correlate_subtracts_a_background_counted_off_the_map(tmp_path):
    bg = 0.3
    n_off = int(np.random.default_rng(1).poisson(bg * 3600))
    lake, sim = _background_lake(tmp_path, bg, n_off)
    r = run_correlation(
        lake,
        "as1063",
        "truth",
        inpaint_iterations=0,
        n_boot=50,
        background_where=f"dec > {-44.53088 + 0.05}",
        background_area_arcsec2=3600.0,
    )
    run = r.run
    assert (run["background_source"], run["background_n_gc"]) == ("region", n_off)
    assert run["n_gc"] == sim.n_gc  # the off-map detections are not GCs of the map
    assert run["background_per_arcsec2"] == pytest.approx(n_off / 3600)
    assert abs(run["background_per_arcsec2"] - bg) < 2 * run["background_err"]
    con = connect(lake)
    prof = con.execute(
        "SELECT sigma_gc, sigma_gc_bgsub, sigma_gc_bgsub_err, sigma_gc_err FROM radial_profiles "
        "WHERE run_id = ?",
        [run["run_id"]],
    ).fetchall()
    for s, sub, sub_err, err in prof:
        if s == s:  # annuli with area
            assert sub == pytest.approx(s - n_off / 3600)
            assert sub_err == pytest.approx(np.hypot(err, run["background_err"]))
    boxes = con.execute(
        "SELECT n_gc, area_arcsec2, n_bg, n_gc_bgsub FROM box_stats WHERE run_id = ?", [run["run_id"]]
    ).fetchall()
    for n, area, n_bg, sub in boxes:
        assert n_bg == pytest.approx(area * n_off / 3600) and sub == pytest.approx(n - n_bg)
    assert json.loads(run["options"])["background"]["source"] == "region"


def test_correlate_background_per_kpc2_and_bad_values(tmp_path, cli):
    lake, _ = _background_lake(tmp_path, 0.0, 3)
    base = ("correlate", "--field", "as1063", "--model", "truth", "--plots", tmp_path / "p")
    base += ("--inpaint-iter", "0", "--lake", lake.root)
    res = cli(*base, "--background-density", "0.015", "--background-density-err", "0.003")
    assert res.exit_code == 0, res.output
    k = connect(lake).execute("SELECT kpc_per_arcsec FROM fields WHERE field_id = 'as1063'").fetchall()[0][0]
    got = (
        connect(lake)
        .execute("SELECT background_per_arcsec2, background_err, background_source FROM correlation_runs")
        .fetchall()
    )
    assert got[0][0] == pytest.approx(0.015 * k**2) and got[0][1] == pytest.approx(0.003 * k**2)
    assert got[0][2] == "density"
    for extra, message in [
        (("--background-density", "-0.01"), "--background-density must be"),
        (("--background-where", "dec > 0"), "--background-where and --background-area-arcsec2 go together"),
        (("--background-where", "dec > 0", "--background-area-arcsec2", "100"), "background region is empty"),
        (
            ("--background-where", "dec < 0", "--background-area-arcsec2", "-5"),
            "--background-area-arcsec2 must be",
        ),
        (("--background-density", "0.01", "--background-annulus", "10,20"), "give one background source"),
    ]:
        res = cli(*base, *extra)
        assert res.exit_code == 2, (extra, res.output)
        assert message in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_correlate_log_profile_to_250_arcsec_in_kpc_beyond_the_map(tmp_path, cli):
    lake, _ = _background_lake(tmp_path, 0.0, 3)
    base = ("correlate", "--field", "as1063", "--model", "truth", "--plots", tmp_path / "p")
    base += ("--inpaint-iter", "0", "--lake", lake.root)
    res = cli(*base, "--profile-log", "1,250,10")
    assert res.exit_code == 0, res.output
    con = connect(lake)
    k = con.execute("SELECT kpc_per_arcsec FROM fields WHERE field_id = 'as1063'").fetchall()[0][0]
    rows = con.execute(
        "SELECT r_in_arcsec, r_out_arcsec, r_in_kpc, r_out_kpc, n_gc, sigma_gc, kappa_mean "
        "FROM radial_profiles ORDER BY r_in_arcsec"
    ).fetchall()
    edges = np.geomspace(1, 250, 11)
    np.testing.assert_allclose([r[0] for r in rows], edges[:-1])
    np.testing.assert_allclose([r[1] for r in rows], edges[1:])
    np.testing.assert_allclose([r[2] for r in rows], edges[:-1] * k)
    np.testing.assert_allclose([r[3] for r in rows], edges[1:] * k)
    # the 40" map ends inside 250": outer annuli have no area, so no density and no kappa
    beyond = [r for r in rows if r[0] > 30]
    assert beyond and all(r[4] == 0 and r[5] is None and r[6] is None for r in beyond)
    assert all(r[5] is not None for r in rows if r[1] < 15)
    for extra, message in [
        (("--profile-log", "0,250,10"), "--profile-log R_MIN must be"),
        (("--profile-edges", "1,5,3"), "--profile-edges must be"),
        (("--profile-edges", "1,5", "--profile-log", "1,5,2"), "not both"),
    ]:
        res = cli(*base, *extra)
        assert res.exit_code == 2, (extra, res.output)
        assert message in res.stderr, res.stderr
