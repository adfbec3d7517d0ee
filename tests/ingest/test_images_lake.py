"""From FITS images to the lake: detection, forced photometry and injection-recovery."""

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from catalog.lake import Lake
from catalog.queries.connection import connect
from catalog.simulations import simulate_mosaic_files
from catalog.sky import separation_arcsec
from ingest.pointsources import run_detection, run_injection, run_photometry

from ..conftest import snapshot


@pytest.fixture(scope="module")
def mosaic(tmp_path_factory):
    out = tmp_path_factory.mktemp("mosaic")
    sim = simulate_mosaic_files(out, "m", bands=("F150W", "F200W"), shape=(320, 320), n_points=120, seed=3)
    lake = Lake.create(out / "lake")
    imgs = [sim["images"][b] for b in ("F150W", "F200W")]
    run = run_detection(lake, imgs, field_id="as1063", name="gcs")
    return sim, lake, run


def test_detection_finds_the_bright_injected_sources(mosaic):
    sim, lake, run = mosaic
    truth = Table.read(sim["truth"], format="ascii.csv", comment="#")
    con = connect(lake)
    det = con.execute("SELECT ra, dec, snr FROM detections WHERE catalog = 'gcs'").fetchall()
    assert len(det) == run["n_detections"] > 0
    ra, dec = np.array([d[0] for d in det]), np.array([d[1] for d in det])
    found = np.array(
        [
            separation_arcsec(ra, dec, r, d).min() < 0.06 if len(ra) else False
            for r, d in zip(truth["ra"], truth["dec"], strict=True)
        ]
    )
    bright = truth["flux_njy"] > 100  # ~ S/N > 30 in one band at 1 nJy/pix noise
    assert found[bright].mean() >= 0.9
    assert run["mask_area_arcsec2"] > 0 and run["unmasked_area_arcsec2"] > 0
    r = con.execute("SELECT n_detections, bands FROM detection_runs").fetchall()[0]
    assert r == (run["n_detections"], ["F150W", "F200W"])


def test_forced_photometry_recovers_fluxes_in_njy(mosaic):
    sim, lake, _ = mosaic
    res = run_photometry(
        lake, sim["images"]["F150W"], band=None, field_id="as1063", catalog="gcs", psf_path=sim["psf"]
    )
    assert res["n_rows"] == 3 * res["n_sources"]
    truth = Table.read(sim["truth"], format="ascii.csv", comment="#")
    con = connect(lake)
    # the smallest aperture: the simulated sources sit >= 0.18" apart on a BCG, and at radius
    # 0.2" (6.7 PSF FWHM here) apertures and annuli hold neighbours
    rows = con.execute(
        "SELECT d.ra, d.dec, p.flux_njy, p.flux_err_njy FROM photometry p JOIN "
        "detections d USING (detection_id) WHERE p.aperture_radius_arcsec = 0.12 "
        "AND NOT p.is_upper_limit"
    ).fetchall()
    ratios = []
    for ra, dec, f, e in rows:
        sep = separation_arcsec(np.asarray(truth["ra"]), np.asarray(truth["dec"]), ra, dec)
        i = int(np.argmin(sep))
        if sep[i] < 0.06 and f / e > 20:
            ratios.append(f / truth["flux_njy"][i])
    assert len(ratios) > 10
    # The BCG and neighbours bias some sources; the median must still be close to the truth.
    assert abs(np.median(ratios) - 1) < 0.05
    again = run_photometry(
        lake, sim["images"]["F150W"], band=None, field_id="as1063", catalog="gcs", psf_path=sim["psf"]
    )
    assert again["skipped"]


def test_injection_recovery_fills_runs_sources_and_corrections(mosaic):
    sim, lake, _ = mosaic
    r = run_injection(
        lake,
        sim["images"]["F150W"],
        band=None,
        psf_path=sim["psf"],
        field_id="as1063",
        catalog="gcs",
        n_flux=8,
        n_locations=6,
        max_targets=4,
        seed=2,
    )
    assert r["n_injections"] == 4 * 8 * 6
    con = connect(lake)
    comp = con.execute(
        "SELECT sum(n_injected), min(completeness), max(completeness) FROM "
        "injection_completeness WHERE aperture_radius_arcsec = 0.16"
    ).fetchall()[0]
    assert comp[0] == 4 * 8 * 6 and 0 <= comp[1] <= comp[2] <= 1 and comp[2] == 1
    corr = con.execute("SELECT count(*) FROM injection_corrections WHERE c1 IS NOT NULL").fetchall()[0][0]
    assert corr == 4 * 3
    fixed = con.execute(
        "SELECT count(*) FROM photometry_injection_corrected WHERE correction_run IS NOT NULL"
    ).fetchall()[0][0]
    assert fixed > 0
    # the corrected error: the propagated error and what the locations add, in quadrature
    rows = con.execute(
        "SELECT p.flux_njy, p.flux_err_njy, p.flux_err_corrected_njy, p.location_error_njy, c.c2, c.c1, "
        "c.location_scatter_njy, c.location_noise_njy FROM photometry_injection_corrected p "
        "JOIN injection_corrections c ON c.run_id = p.correction_run AND c.detection_id = p.detection_id "
        "AND c.band = p.band AND abs(c.aperture_radius_arcsec - p.aperture_radius_arcsec) < 1e-6"
    ).fetchall()
    assert rows and all(r[6] is not None and r[7] > 0 for r in rows)
    for f, e, e_corr, e_loc, c2, c1, scatter, noise in rows:
        assert e_loc == pytest.approx(np.sqrt(max(scatter**2 - noise**2, 0.0)), rel=1e-9, abs=1e-12)
        assert e_corr == pytest.approx(np.hypot(abs(2 * c2 * f + c1) * e, e_loc), rel=1e-9)
    # what the fits read: injection-corrected photometry at the final radius for the targets
    # (an upper limit keeps its limit)
    picked = con.execute(
        "SELECT aperture_radius_arcsec, injection_corrected, is_upper_limit, "
        "count(*) FROM photometry_best WHERE band = 'F150W' AND detection_id IN "
        "(SELECT detection_id FROM injection_corrections) GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    assert {(r, c) for r, c, u, _ in picked} == {(0.16, not u) for _, _, u, _ in picked}
    assert sum(n for *_, u, n in picked if not u) >= 2
    rnd = run_injection(
        lake,
        sim["images"]["F150W"],
        band=None,
        psf_path=sim["psf"],
        field_id="as1063",
        catalog="gcs",
        mode="random",
        n_random=30,
        max_targets=2,
        stamp_arcsec=3.0,
    )
    bw = (
        connect(lake)
        .execute(
            "SELECT count(*) FROM injection_corrections WHERE run_id = ? AND flux_error_biweight_njy > 0",
            [rnd["run_id"]],
        )
        .fetchall()[0][0]
    )
    assert bw == 2 * 3


def test_bad_images_are_refused_and_the_lake_is_unchanged(mosaic, tmp_path, cli):
    sim, lake, _ = mosaic
    before = snapshot(lake)
    broken = tmp_path / "broken.fits"
    broken.write_bytes(sim["images"]["F150W"].read_bytes()[:20000])
    res = cli("photometry", broken, "--field", "as1063", "--catalog", "gcs", "--lake", lake.root)
    assert res.exit_code == 2 and str(broken) in res.stderr
    counts = tmp_path / "counts.fits"
    with fits.open(sim["images"]["F150W"]) as h:
        h["SCI"].header["BUNIT"] = "ELECTRONS"
        h.writeto(counts)
    res = cli("photometry", counts, "--field", "as1063", "--catalog", "gcs", "--lake", lake.root)
    assert res.exit_code == 2 and "--zeropoint" in res.stderr
    res = cli("detect", sim["images"]["F150W"], "--field", "as1063", "--name", "gcs", "--lake", lake.root)
    assert res.exit_code == 2 and "already exists" in res.stderr
    assert snapshot(lake) == before


def test_detect_takes_the_bands_of_images_without_filter(mosaic, tmp_path, cli):
    """Regression: an image without FILTER asked for a --band option detect did not have."""
    sim, _, _ = mosaic
    paths = []
    for b in ("F150W", "F200W"):
        with fits.open(sim["images"][b]) as hdul:
            for h in hdul:
                h.header.pop("FILTER", None)
            p = tmp_path / f"nofilter_{b}.fits"
            hdul.writeto(p)
        paths.append(p)
    lake = Lake.create(tmp_path / "lake")
    res = cli("detect", *paths, "--field", "as1063", "--name", "nf", "--lake", lake.root)
    assert res.exit_code == 2 and "--bands (detect)" in res.stderr
    res = cli(
        "detect", *paths, "--field", "as1063", "--name", "nf", "--bands", "F150W,F200W", "--lake", lake.root
    )
    assert res.exit_code == 0, res.output
    bands = connect(lake).execute("SELECT bands FROM detection_runs").fetchall()[0][0]
    assert list(bands) == ["F150W", "F200W"]


def test_catalogs_and_detection_runs_share_one_name_space(mosaic, tmp_path):
    """Both write detection ids field/name/..., so each refuses (or replaces) the other."""
    from catalog.errors import GccatError
    from catalog.lake import DETECTION_KINDS
    from ingest.catalog import ingest_catalog

    sim, _, _ = mosaic
    lake = Lake.create(tmp_path / "lake")
    imgs = [sim["images"]["F150W"]]
    run = run_detection(lake, imgs, field_id="as1063", name="gcs")
    csv = tmp_path / "gcs.csv"
    csv.write_text("id,ra,dec,flux_F150W,fluxerr_F150W\na,342.18,-44.53,10,1\n")
    before = snapshot(lake)
    with pytest.raises(GccatError, match="detection ingest"):
        ingest_catalog(lake, csv, field_id="as1063", name="gcs")
    assert snapshot(lake) == before
    cat = ingest_catalog(lake, csv, field_id="as1063", name="gcs", replace=True)
    assert cat.superseded == [run["run_id"]]
    before = snapshot(lake)
    with pytest.raises(GccatError, match="catalog ingest"):
        run_detection(lake, imgs, field_id="as1063", name="gcs")
    assert snapshot(lake) == before
    again = run_detection(lake, imgs, field_id="as1063", name="gcs", replace=True)
    live = lake.live_named("as1063", "gcs", kinds=DETECTION_KINDS)
    assert live["ingest_id"].to_pylist() == [again["run_id"]]
    assert lake.live_named("as1063", "gcs", kind="catalog").num_rows == 0
    con = connect(lake)
    n = con.execute("SELECT count(*), count(DISTINCT detection_id) FROM detections").fetchall()[0]
    assert n == (again["n_detections"], again["n_detections"])


def test_injection_reports_progress_that_moves(mosaic):
    """Regression: the bar stayed at 20% for the whole injection."""
    sim, lake, _ = mosaic
    seen = []
    run_injection(
        lake,
        sim["images"]["F150W"],
        band=None,
        psf_path=sim["psf"],
        field_id="as1063",
        catalog="gcs",
        n_flux=10,
        n_locations=20,
        max_targets=30,
        seed=1,
        progress=lambda stage, frac: seen.append(frac),
    )
    inside = [f for f in seen if 0.2 < f < 0.9]
    assert len(set(inside)) >= 5 and seen == sorted(seen)
