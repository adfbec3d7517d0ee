"""SEDz* completed: nebular templates, the epoch rules, the chi2(z) photo-z and quartile bands."""

import numpy as np
import pytest

from catalog.runs.fits import SfhTemplates, check_sfh_options, z_scan_grid
from catalog.sed.histories import photo_z, sfh_chi2_scan, sfh_templates
from catalog.sed.recipes import resolve_sfh

#: The GLASS study's seven NIRCam wide bands.
GLASS_BANDS = [f"jwst_{b}" for b in ("f090w", "f115w", "f150w", "f200w", "f277w", "f356w", "f444w")]


def test_templates_precede_the_epoch_of_observation():
    """A z = 6 object gets no template from the epochs at z < 6; the epoch 7-6 ends at z = 6."""
    tpl = sfh_templates(6.0, GLASS_BANDS, constant_z_max=10.0)
    assert tpl["z_start"].min() == 7.0 and np.all(tpl["z_start"] > 6.0)
    assert np.all(tpl["z_end"] >= 6.0) and tpl["epochs"][-1].tolist() == [7.0, 6.0]
    assert tpl["epochs_dropped"] == [6.0, 5.0, 4.0]
    assert np.all(tpl["t_end_gyr"] <= tpl["t_obs_gyr"] + 1e-12)
    # an object inside an epoch: that epoch is cut at the object's redshift
    tpl = sfh_templates(6.4, GLASS_BANDS)
    assert tpl["epochs"][-1].tolist() == [7.0, 6.4] and 6.0 in tpl["epochs_dropped"]


def test_constant_sf_only_at_z_le_10():
    tpl = sfh_templates(5.0, GLASS_BANDS, constant_z_max=10.0)
    const = tpl["kind"] == "constant"
    assert np.all(tpl["z_start"][const] <= 10.0)
    assert sorted(set(tpl["z_start"][const])) == [6.0, 7.0, 8.0, 9.0, 10.0]
    assert sorted(set(tpl["z_start"][~const])) == [6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0]
    # the sedz recipe and fit sfh's default apply the rule
    opts, _ = resolve_sfh("sedz")
    assert opts["constant_z_max"] == 10.0 and opts["nebular"] and opts["n_perturb"] == 21
    t2 = SfhTemplates(GLASS_BANDS, check_sfh_options(opts))(5.0)
    assert not np.any((t2["kind"] == "constant") & (t2["z_start"] > 10))


def test_nebular_emission_brightens_the_young_templates_only():
    neb = sfh_templates(6.3, GLASS_BANDS, nebular=True, log_u=-2.0)
    bare = sfh_templates(6.3, GLASS_BANDS)
    young = (neb["kind"] == "constant") & (neb["epoch"] == neb["epoch"].max())  # ages 0 to ~90 Myr
    assert np.all(neb["flux_njy"][young] > 1.03 * bare["flux_njy"][young])
    old = neb["t_obs_gyr"] - neb["t_start_gyr"] > 0.02  # every star older than 10 Myr
    old &= neb["kind"] == "burst"
    np.testing.assert_allclose(neb["flux_njy"][old], bare["flux_njy"][old], rtol=1e-10)


def test_photo_z_of_a_parabola():
    zg = np.arange(5.0, 8.0001, 0.1)
    r = photo_z(zg, 25 * (zg - 6.33) ** 2 + 3.0)
    assert r["z_phot"] == pytest.approx(6.33, abs=1e-6)
    assert r["z_lo"] == pytest.approx(6.13, abs=0.01) and r["z_hi"] == pytest.approx(6.53, abs=0.01)
    assert not r["at_edge"]
    flat = photo_z(zg, np.zeros_like(zg))
    assert flat["at_edge"] and flat["z_lo"] == 5.0 and flat["z_hi"] == pytest.approx(8.0)
    # a flat chi2(z) constrains nothing: no photo-z (it was the first node, 5.0)
    assert flat["unconstrained"] and np.isnan(flat["z_phot"])
    assert not r["unconstrained"]
    # an interval at one end only is a bound, not "unconstrained"
    edge = photo_z(zg, 25 * (zg - 5.0) ** 2)
    assert edge["at_edge"] and not edge["unconstrained"] and edge["z_phot"] == pytest.approx(5.0)


def _simulate(rng, n, z_range, tpl_at, s2n=(10, 20)):
    """Objects from random epoch histories of the templates at their true z (1-3 templates)."""
    z_true = rng.uniform(*z_range, n)
    flux, err, truth = [], [], []
    for z in z_true:
        tpl = tpl_at(z)
        m = np.zeros(len(tpl["kind"]))
        k = rng.choice(len(m), rng.integers(1, 4), replace=False)
        m[k] = 10 ** rng.uniform(8, 9, k.size)
        clean = m @ tpl["flux_njy"]
        e = clean / rng.uniform(*s2n)
        flux.append(clean + rng.normal(0, e))
        err.append(e)
        truth.append(np.bincount(tpl["epoch"], m, minlength=len(tpl["epochs"])))
    return z_true, np.array(flux), np.array(err), truth


def test_sedz_recovers_photo_z_and_epoch_masses():
    """Galaxies at 5.2 < z < 7.8 built from the sedz templates (nebular emission on, constant SF
    only at z <= 10), S/N 10-20 in the seven GLASS bands; a chi2(z) scan over 4.5-8.5 in 0.05,
    then the 21 perturbed refits at the photo-z. Figures printed; the rates asserted loosely."""
    opts, _ = resolve_sfh("sedz")
    o = check_sfh_options(opts)
    tpl_at = SfhTemplates(GLASS_BANDS, o)
    rng = np.random.default_rng(7)
    n = 40
    z_true, flux, err, truth = _simulate(rng, n, (5.2, 7.8), tpl_at)
    zg = z_scan_grid((4.5, 8.5, 0.05))
    chi2 = sfh_chi2_scan(tpl_at, zg, flux, err, error_floor=0.0)
    pz = photo_z(zg, chi2)
    inside = (pz["z_lo"] <= z_true) & (z_true <= pz["z_hi"])
    dz = (pz["z_phot"] - z_true) / (1 + z_true)
    from catalog.sed.histories import fit_sfh

    m_in, m_in_all, tot_in, n_ep = 0, 0, 0, 0
    for i in range(n):
        tpl = tpl_at(pz["z_phot"][i])
        r = fit_sfh(tpl, flux[i], err[i], n_perturb=o["n_perturb"], rng=rng, error_floor=0.0)
        # epochs of the truth (at z_true) and of the fit (at z_phot) share their start redshifts
        t = dict(zip(tpl_at(z_true[i])["epochs"][:, 0], truth[i], strict=True))
        for e, z0 in enumerate(tpl["epochs"][:, 0]):
            tm = t.get(z0, 0.0)
            ok = r["mass_epoch_q25"][e] * 0.999 <= tm <= r["mass_epoch_q75"][e] * 1.001 + 1e-6
            m_in_all += ok
            n_ep += 1
            if tm > 0:
                m_in += ok
        tot_in += r["mass_total_q25"] <= truth[i].sum() <= r["mass_total_q75"]
    n_true = sum(int(np.sum(t > 0)) for t in truth)
    print(
        f"\nsedz recovery, {n} galaxies at 5.2<z<7.8, S/N 10-20, 7 bands: photo-z inside its "
        f"delta-chi2=1 interval {inside.mean():.2f}; median |dz|/(1+z) {np.median(np.abs(dz)):.3f}, "
        f"outliers (>0.15) {np.mean(np.abs(dz) > 0.15):.2f}; epoch-mass quartile band covers the truth "
        f"in {m_in / n_true:.2f} of {n_true} epochs with mass, {m_in_all / n_ep:.2f} of all {n_ep} "
        f"epochs; total mass inside its quartiles {tot_in / n:.2f}"
    )
    assert inside.mean() >= 0.5
    assert np.median(np.abs(dz)) < 0.03
    assert m_in / n_true >= 0.2 and m_in_all / n_ep >= 0.5
