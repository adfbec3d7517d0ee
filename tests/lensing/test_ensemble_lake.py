"""Ensembles of lens-model realisations: ingest, median and 16/84 over the realisations at
sources, propagated into intrinsic fluxes and masses, against a direct computation.

The realisations are the real AS1063 Lenstool deflection patch scaled by known factors: kappa
and gamma derived from deflections are linear in them, so each realisation's kappa and gamma at
a source are the factor times the unscaled model's, and its mu follows; numpy's percentiles of
those are the direct computation the views must match.
"""

import numpy as np
import pytest
from astropy.io import fits

from catalog.lake import Lake
from catalog.lensing import magnification
from catalog.queries.connection import connect
from catalog.runs.fits import run_fit_ssp
from ingest.catalog import ingest_catalog, ingest_fields
from ingest.demo import bundled
from ingest.lens import ingest_lens_ensemble, ingest_lens_maps, realisation_groups

from ..conftest import FIELDS, snapshot

AXES = "xy"
FACTORS = np.array([0.9, 0.95, 0.97, 1.0, 1.02, 1.05, 1.08, 1.1, 0.93, 1.04])
Z_SOURCE = 1.378


def _write_realisations(root, per_folder: bool):
    for k, f in enumerate(FACTORS):
        for a in AXES:
            src = bundled(f"as1063_lenstool_patch_bin4_{a}-arcsec-deflect.fits")
            with fits.open(src) as h:
                h[0].data = h[0].data * f
                folder = root / f"real{k:02d}" if per_folder else root
                folder.mkdir(parents=True, exist_ok=True)
                name = f"{a}-arcsec-deflect.fits" if per_folder else f"real{k:02d}_{a}-arcsec-deflect.fits"
                h.writeto(folder / name)


@pytest.fixture(scope="module")
def ens_lake(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ensemble")
    lake = Lake.create(tmp / "lake")
    ingest_fields(lake, FIELDS)
    base = [bundled(f"as1063_lenstool_patch_bin4_{a}-arcsec-deflect.fits") for a in AXES]
    ingest_lens_maps(lake, base, field_id="as1063", model="base")
    _write_realisations(tmp / "real", per_folder=True)
    r = ingest_lens_ensemble(lake, [tmp / "real"], field_id="as1063", model="frac")
    assert not r.skipped
    con = connect(lake)
    pix = np.array(
        con.execute(
            "SELECT ra, dec FROM lens_map_pixels WHERE model_id = 'as1063/base' AND quantity = 'kappa' "
            "AND ix BETWEEN 3 AND 20 AND iy BETWEEN 3 AND 20"
        ).fetchall()
    )
    rng = np.random.default_rng(4)
    pick = pix[rng.choice(len(pix), 25, replace=False)] + rng.normal(0, 2e-6, (25, 2))
    bands = ["F090W", "F150W", "F200W", "F277W", "F356W", "F444W"]
    lines = ["id,ra,dec,z," + ",".join(f"flux_{b},fluxerr_{b}" for b in bands)]
    for i, (ra, dec) in enumerate(pick):
        flux = [300 + 20 * j + i for j in range(len(bands))]
        lines.append(
            f"g{i:02d},{ra:.10f},{dec:.10f},{Z_SOURCE}," + ",".join(f"{f},{f / 20:.3f}" for f in flux)
        )
    (tmp / "gcs.csv").write_text("\n".join(lines) + "\n")
    ingest_catalog(lake, tmp / "gcs.csv", field_id="as1063", name="gcs", mw_corrected=True)
    return lake


def _direct(lake):
    """Per source: the realisations' kappa, gamma, mu from the unscaled model, and the flux."""
    rows = (
        connect(lake)
        .execute(
            "SELECT detection_id, kappa, gamma, mu_undefined FROM lens_at_detections "
            "WHERE model_id = 'as1063/base' ORDER BY detection_id"
        )
        .fetchall()
    )
    out = {}
    for did, k, g, undefined in rows:
        kk, gg = FACTORS * k, FACTORS * g
        out[did] = (kk, gg, np.asarray(magnification(kk, gg), float), undefined)
    return out


def test_realisations_are_models_of_one_ensemble(ens_lake):
    con = connect(ens_lake)
    got = con.execute(
        "SELECT DISTINCT model_id, ensemble, realisation, realisation_key FROM lens_models "
        "WHERE ensemble IS NOT NULL ORDER BY realisation"
    ).fetchall()
    assert [g[0] for g in got] == [f"as1063/frac.r{k:03d}" for k in range(len(FACTORS))]
    assert [g[3] for g in got] == [f"real{k:02d}" for k in range(len(FACTORS))]
    per_model = con.execute(
        "SELECT count(*) FROM lens_at_detections WHERE ensemble_id = 'as1063/frac'"
    ).fetchall()[0][0]
    assert per_model == 25 * len(FACTORS)
    # single-model views keep one row per source and single model, not one per realisation
    assert con.execute("SELECT count(DISTINCT model_id) FROM photometry_demagnified").fetchall()[0][0] == 1


def test_ensemble_percentiles_match_a_direct_computation(ens_lake):
    direct = _direct(ens_lake)
    con = connect(ens_lake)
    rows = con.execute(
        "SELECT detection_id, n_realisations, n_undefined, kappa_p16, kappa_p50, kappa_p84, "
        "gamma_p50, mu_p16, mu_p50, mu_p84, abs_mu_p16, abs_mu_p50, abs_mu_p84, lambda_t_p50 "
        "FROM lens_ensemble_at_detections WHERE ensemble_id = 'as1063/frac' ORDER BY detection_id"
    ).fetchall()
    assert len(rows) == 25
    n_checked = 0
    for did, n_ok, n_bad, k16, k50, k84, g50, m16, m50, m84, a16, a50, a84, lt50 in rows:
        kk, gg, mu, undefined = direct[did]
        assert n_ok + n_bad == len(FACTORS)
        if n_bad:  # near a critical curve a realisation may leave mu undefined
            continue
        n_checked += 1
        np.testing.assert_allclose([k16, k50, k84], np.percentile(kk, [16, 50, 84]), rtol=1e-6)
        assert g50 == pytest.approx(np.median(gg), rel=1e-6)
        np.testing.assert_allclose([m16, m50, m84], np.percentile(mu, [16, 50, 84]), rtol=1e-5)
        np.testing.assert_allclose([a16, a50, a84], np.percentile(np.abs(mu), [16, 50, 84]), rtol=1e-5)
        assert lt50 == pytest.approx(np.median(1 - kk - gg), rel=1e-5, abs=1e-9)
        assert a16 <= a50 <= a84
    assert n_checked >= 20


def test_intrinsic_fluxes_and_masses_carry_the_ensemble_range(ens_lake):
    con = connect(ens_lake)
    rows = con.execute(
        "SELECT p.flux_njy, p.flux_intrinsic_njy, p.flux_intrinsic_p16_njy, p.flux_intrinsic_p84_njy, "
        "e.abs_mu_p16, e.abs_mu_p50, e.abs_mu_p84 FROM photometry_demagnified_ensemble p "
        "JOIN lens_ensemble_at_detections e USING (detection_id, ensemble_id) WHERE p.band = 'F150W'"
    ).fetchall()
    assert len(rows) >= 20
    for f, fi, f16, f84, a16, a50, a84 in rows:
        assert (
            fi == pytest.approx(f / a50) and f16 == pytest.approx(f / a84) and f84 == pytest.approx(f / a16)
        )
        assert f16 <= fi <= f84
    run_fit_ssp(ens_lake, "catalog = 'gcs'", n_samples=0, av_max=0.0, n_av=1)
    con = connect(ens_lake)
    m = con.execute(
        "SELECT log_mass_living, log_mass_living_intrinsic, log_mass_living_intrinsic_lens_p16, "
        "log_mass_living_intrinsic_lens_p84, abs_mu_p16, abs_mu_p50, abs_mu_p84 FROM fit_results_ensemble"
    ).fetchall()
    assert len(m) >= 20
    for lm, li, l16, l84, a16, a50, a84 in m:
        assert li == pytest.approx(lm - np.log10(a50))
        assert l16 == pytest.approx(lm - np.log10(a84)) and l84 == pytest.approx(lm - np.log10(a16))
    n_fit = con.execute("SELECT count(*) FROM fit_results WHERE source_id LIKE 'g%'").fetchall()[0][0]
    assert n_fit == 25  # one row per object for the single model, none per realisation


def test_files_in_one_folder_group_by_name_and_reingest_is_a_no_op(tmp_path):
    _write_realisations(tmp_path / "flat", per_folder=False)
    groups = realisation_groups([tmp_path / "flat"])
    assert list(groups) == [f"real{k:02d}" for k in range(len(FACTORS))]
    assert all(len(g) == 2 for g in groups.values())
    lake = Lake.create(tmp_path / "lake")
    ingest_fields(lake, FIELDS)
    r1 = ingest_lens_ensemble(lake, [tmp_path / "flat"], field_id="as1063", model="e")
    r2 = ingest_lens_ensemble(lake, [tmp_path / "flat"], field_id="as1063", model="e")
    assert not r1.skipped and r2.skipped


def test_bad_ensembles_exit_2_and_leave_the_lake_unchanged(ens_lake, tmp_path, cli):
    before = snapshot(ens_lake)
    one = tmp_path / "one"
    one.mkdir()
    for a in AXES:
        (one / f"r0_{a}-arcsec-deflect.fits").write_bytes(
            bundled(f"as1063_lenstool_patch_bin4_{a}-arcsec-deflect.fits").read_bytes()
        )
    mixed = tmp_path / "mixed"
    _write_realisations(mixed, per_folder=True)
    (mixed / "real03" / "y-arcsec-deflect.fits").unlink()
    empty = tmp_path / "empty"
    empty.mkdir()
    for path, needle in (
        (one, "at least 2 realisations"),
        (mixed, "realisation 'real03' has maps"),
        (empty, "no lens-map FITS files"),
    ):
        r = cli(
            "ingest", "lens-ensemble", path, "--field", "as1063", "--model", "bad", "--lake", ens_lake.root
        )
        lines = r.stderr.strip().splitlines()
        assert r.exit_code == 2 and len(lines) == 1 and needle in lines[0], r.output
    r = cli("ingest", "lens-ensemble", mixed, "--field", "as1063", "--model", "frac", "--lake", ens_lake.root)
    assert r.exit_code == 2
    assert snapshot(ens_lake) == before


def test_size_and_surface_density_limits_from_the_built_psf(ens_lake, tmp_path):
    """A PSF built from simulated stars (field as1063, F150W) sets HWHM; the size limit is
    HWHM x |lambda_t| in proper pc at the source redshift, against astropy directly."""
    import astropy.units as u
    from astropy.cosmology import FlatLambdaCDM

    from catalog.simulations import simulate_mosaic_files
    from ingest.psf import run_psf_build

    sim = simulate_mosaic_files(tmp_path / "stars", "s", bands=("F150W",), shape=(640, 640), n_points=45,
                                psf_fwhm_pix=3.0, noise_njy=0.2, bcg=False, flux_range_njy=(57.5, 363.0),
                                min_sep_pix=72.0, seed=4)  # fmt: skip
    psf = run_psf_build(
        ens_lake, sim["images"]["F150W"], tmp_path / "psf.fits", field_id="as1063", cutout_arcsec=0.75
    )
    con = connect(ens_lake)
    rows = con.execute(
        "SELECT s.detection_id, s.fwhm_arcsec, s.size_limit_arcsec, s.size_limit_pc, l.kappa, l.gamma, "
        "l.mu_undefined FROM size_limits s JOIN lens_at_detections l USING (detection_id, model_id) "
        "WHERE s.model_id = 'as1063/base' AND s.band = 'F150W' ORDER BY 1"
    ).fetchall()
    assert len(rows) == 25
    pc = (FlatLambdaCDM(H0=70, Om0=0.3).angular_diameter_distance(Z_SOURCE).to_value(u.pc)) * np.pi / 648000
    for _, fwhm, lim_arcsec, lim_pc, k, g, undefined in rows:
        assert fwhm == pytest.approx(psf["fwhm_arcsec"])
        if undefined:
            assert lim_arcsec is None
            continue
        assert lim_arcsec == pytest.approx(fwhm / 2 * abs(1 - k - g), rel=1e-9)
        assert lim_pc == pytest.approx(lim_arcsec * pc, rel=1e-6)
    dens = con.execute(
        "SELECT d.log_sigma_e_min, d.size_limit_pc, f.log_mass_living_intrinsic "
        "FROM surface_density_limits d JOIN fit_results f ON f.object_id = d.detection_id "
        "AND f.run_id = d.run_id AND f.lens_model = d.model_id"
    ).fetchall()
    assert len(dens) >= 20
    for sig, r_pc, lm in dens:
        assert sig == pytest.approx(np.log10(0.5 * 10**lm / (np.pi * r_pc**2)), rel=1e-9)


def test_plot_magnification_of_an_ensemble_and_of_one_model_with_sizes(ens_lake, tmp_path, cli):
    """The ensemble's plot draws its median and range; one model's plot has a size-limit panel
    (the PSF built in the previous test) and only the sources the model defines mu for."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from catalog.plots.lens import MAX_SOURCES, plot_magnification

    con = connect(ens_lake)
    want = con.execute(
        "SELECT abs_mu_p50 FROM lens_ensemble_at_detections WHERE ensemble_id = 'as1063/frac' "
        "AND abs_mu_p50 IS NOT NULL ORDER BY abs_mu_p50 DESC"
    ).fetchall()
    figs = []
    orig = plt.close
    plt.close = lambda fig=None: figs.append(fig)  # keep the figure to look at its data
    try:
        plot_magnification(ens_lake, "as1063", "frac", tmp_path / "ens.png")
        plot_magnification(ens_lake, "as1063", "base", tmp_path / "base.png")
    finally:
        plt.close = orig
    ens_ax = figs[0].axes[0]
    ys = ens_ax.lines[0].get_ydata()
    np.testing.assert_allclose(ys, [w[0] for w in want][:MAX_SOURCES])
    assert len(figs[1].axes) == 2  # |mu| and the size limits
    for f in figs:
        plt.close(f)
    res = cli("plot", "magnification", "--field", "as1063", "--model", "nosuch", "--out", tmp_path / "x.png",
              "--lake", ens_lake.root)  # fmt: skip
    assert res.exit_code == 2 and "no source of field 'as1063'" in res.stderr
