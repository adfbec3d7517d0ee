"""From images to the lake on a simulated two-band mosaic, every step by the CLI: detection,
empirical PSFs, PSF matching to the redder band, aperture photometry of the matched images,
PSF-fit photometry, injection corrections, a stack, size limits and an SSP fit."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table

from catalog.lake import Lake
from catalog.queries.connection import connect
from catalog.simulations import simulate_mosaic_files
from catalog.sky import separation_arcsec
from ingest.catalog import ingest_fields
from tests.conftest import FIELDS

FIELD = "as1063"
#: Two bands with different PSFs (FWHM px): F150W is matched to the broader F444W.
BANDS = {"F150W": 2.0, "F444W": 3.0}


@pytest.fixture(scope="module")
def mosaic(tmp_path_factory):
    out = tmp_path_factory.mktemp("e2e")
    images, truth = {}, None
    for band, fwhm in BANDS.items():
        # the same seed: the same sources in both bands, each band with its own PSF
        sim = simulate_mosaic_files(out / band, "m", bands=(band,), shape=(640, 640), n_points=45,
                                    psf_fwhm_pix=fwhm, noise_njy=0.2, bcg=False, flux_range_njy=(57.5, 363.0),
                                    min_sep_pix=72.0, seed=4)  # fmt: skip
        images[band] = sim["images"][band]
        truth = Table.read(sim["truth"], format="ascii.csv", comment="#")
    lake = Lake.create(out / "lake")
    ingest_fields(lake, FIELDS)
    return lake, images, truth, out


def _run(cli, *args):
    res = cli(*args)
    assert res.exit_code == 0, (args[0], res.output)
    return res


def test_images_to_photometry_corrections_stacks_sizes_and_fits(mosaic, cli):
    lake, img, truth, out = mosaic
    lk = ("--lake", lake.root)
    _run(cli, "detect", img["F150W"], img["F444W"], "--field", FIELD, "--name", "det", *lk)
    psf = {b: out / f"psf_{b}.fits" for b in BANDS}
    for b in BANDS:
        _run(cli, "psf", "build", img[b], "--field", FIELD, "--out", psf[b], "--cutout", "0.75", *lk)
    matched = out / "m150_to_444.fits"
    _run(cli, "psf", "match", "--psf", psf["F150W"], "--target", psf["F444W"], "--out", out / "k.fits",
         "--image", img["F150W"], "--out-image", matched, "--band", "F150W", "--field", FIELD,
         *lk)  # fmt: skip
    for image in (matched, img["F444W"]):
        _run(cli, "photometry", image, "--field", FIELD, "--catalog", "det", "--psf", psf["F444W"], *lk)
    for b in BANDS:
        _run(cli, "photometry", img[b], "--method", "psf", "--psf", psf[b], "--field", FIELD,
             "--catalog", "det", *lk)  # fmt: skip
    _run(cli, "inject", matched, "--psf", psf["F444W"], "--field", FIELD, "--catalog", "det", "--n", "5",
         "--locations", "6", "--max-targets", "3", *lk)  # fmt: skip
    _run(cli, "stack", img["F150W"], "--field", FIELD, "--catalog", "det", *lk)
    _run(cli, "sizes", "--field", FIELD, "--image", img["F150W"], "--n-sim", "20", *lk)
    _run(cli, "fit", "ssp", "--where", "catalog = 'det'", "--z", "0.348", "--samples", "0", "--no-dust",
         "--min-bands", "2", *lk)  # fmt: skip

    con = connect(lake)
    for table in ("detections", "psf_models", "psf_kernels", "injection_corrections", "stacks",
                  "size_limit_runs", "fit_results"):  # fmt: skip
        assert con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0] > 0, table
    methods = set(con.execute("SELECT DISTINCT band, method FROM photometry").fetchall())
    assert methods == {("F150W", "aperture"), ("F444W", "aperture"), ("F150W", "psf"), ("F444W", "psf")}
    # fluxes against the truth: the matched F150W apertures (aperture-corrected with the F444W
    # PSF) and the PSF fits, over the detections with S/N > 20
    rows = con.execute(
        "SELECT d.ra, d.dec, p.band, p.method, p.flux_njy, p.flux_err_njy FROM photometry p "
        "JOIN detections d USING (detection_id) WHERE p.flux_njy > 20 * p.flux_err_njy "
        "AND (p.method = 'psf' OR p.aperture_radius_arcsec BETWEEN 0.155 AND 0.165)"
    ).fetchall()
    ratios: dict[tuple[str, str], list[float]] = {}
    for ra, dec, band, method, f, _ in rows:
        sep = separation_arcsec(np.asarray(truth["ra"]), np.asarray(truth["dec"]), ra, dec)
        i = int(np.argmin(sep))
        if sep[i] < 0.06:
            ratios.setdefault((band, method), []).append(f / truth["flux_njy"][i])
    assert set(ratios) == methods
    print(
        "\nmedian flux / truth: "
        + ", ".join(f"{b} {m} {np.median(r):.4f} ({len(r)})" for (b, m), r in ratios.items())
    )
    for key, r in ratios.items():
        assert len(r) >= 10, key
        assert abs(np.median(r) - 1) < 0.03, (key, np.median(r))
    corrected = con.execute(
        "SELECT count(*) FROM photometry_injection_corrected WHERE correction_run IS NOT NULL"
    ).fetchall()[0][0]
    assert corrected >= 3
    assert con.execute("SELECT count(*) FROM fit_results WHERE chi2_min IS NOT NULL").fetchall()[0][0] >= 10
