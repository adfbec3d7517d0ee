"""Source-plane crossmatch and counter-images on real Delta tables: a simulated SIS lens with
known multiple images, ingested like any HFF model and Lenstool catalog."""

from __future__ import annotations

import numpy as np
import pyarrow.compute as pc
import pytest
from astropy.coordinates import SkyCoord
from typer.testing import CliRunner

from catalog.cli.app import app
from catalog.errors import GccatError
from catalog.lensing import dls_ds
from catalog.runs.sourceplane import run_counter_images, run_source_plane_crossmatch
from ingest.lenstool import ingest_multiple_images

from .sis import PIX, THETA_E, ZL, sis_lake

FAMILIES = {"1": ((1.03, 0.52), 2.0), "2": ((-2.01, 1.37), 3.0), "3": ((0.33, -3.12), 4.0)}


def _sky(m, x, y):
    ny, nx = m.shape
    ra, dec = m.wcs.pixel_to_world_values((nx - 1) / 2 + x / PIX, (ny - 1) / 2 + y / PIX)
    return float(ra), float(dec)


def _images(beta, theta_e):
    b = np.hypot(*beta)
    u = np.asarray(beta) / b
    return [tuple((b + theta_e) * u), tuple((b - theta_e) * u)]


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    root = tmp_path_factory.mktemp("sis")
    lake, ax, ay = sis_lake(root)
    lines, truth = [], {}
    for fam, (beta, z) in FAMILIES.items():
        te = THETA_E * float(dls_ds(ZL, z))
        for k, t in enumerate(_images(beta, te), start=1):
            ra, dec = _sky(ax, *t)
            truth[f"{fam}.{k}"] = (ra, dec)
            lines.append(f"{fam} 1 {ra:.9f} {dec:.9f} {z} 0.1 0.1 0 0 0 0 {fam}.{k}\n")
    (root / "sis_images.txt").write_text("".join(lines))
    ingest_multiple_images(lake, root / "sis_images.txt", field_id="simsis", name="sis")
    return lake, ax, truth


def test_crossmatch_pairs_the_right_images(sim, tmp_path):
    lake, _, _ = sim
    out = run_source_plane_crossmatch(
        lake, "simsis", "truth", tolerance_arcsec=0.5, plot=tmp_path / "pairs.png"
    )
    assert (tmp_path / "pairs.png").stat().st_size > 10_000
    pairs = {(r["image_id_1"].split("/")[-1], r["image_id_2"].split("/")[-1]) for r in out.to_pylist()}
    assert pairs == {("1.1", "1.2"), ("2.1", "2.2"), ("3.1", "3.2")}
    # measured source-plane scatter: < 0.002" (0.02 pix) at 0.1"/pix
    assert max(out["separation_arcsec"].to_pylist()) < 0.2 * PIX
    assert lake.live("source_plane_matches").num_rows == 3


def test_counter_images_of_an_ingested_image(sim, tmp_path):
    lake, _, truth = sim
    out = run_counter_images(lake, "simsis", "truth", image="2.1", plot=tmp_path / "ci.png")
    assert (tmp_path / "ci.png").stat().st_size > 10_000
    assert out.num_rows == 2
    found = SkyCoord(out["ra"].to_numpy(), out["dec"].to_numpy(), unit="deg")
    for label in ("2.1", "2.2"):
        sep = found.separation(SkyCoord(*truth[label], unit="deg")).arcsec.min()
        assert sep < 0.1 * PIX  # well within the 1 pixel asked for
    assert min(out["offset_from_input_arcsec"].to_pylist()) < 0.1 * PIX


def test_cli_and_errors(sim):
    lake, ax, _ = sim
    res = CliRunner().invoke(
        app, ["lens", "crossmatch", "--field", "simsis", "--model", "truth", "--lake", str(lake.root)]
    )
    assert res.exit_code == 0, res.output
    assert "3 source-plane pairs" in res.output
    res = CliRunner().invoke(
        app,
        [
            "lens",
            "counter-images",
            "--field",
            "simsis",
            "--model",
            "nope",
            "--image",
            "1.1",
            "--lake",
            str(lake.root),
        ],
    )
    assert res.exit_code == 2 and "no x/y-arcsec-deflect" in res.output
    with pytest.raises(GccatError, match="behind the cluster"):
        run_counter_images(lake, "simsis", "truth", position=_sky(ax, 1, 1), z_source=0.2)


def test_critical_curves_in_the_lake(sim):
    lake, ax, _ = sim
    from catalog.runs.sourceplane import run_critical_curves

    out = run_critical_curves(lake, "simsis", "truth", z_source=2.0)
    crit = out.filter(pc.and_(pc.equal(out["kind"], "critical"), pc.equal(out["curve_id"], 1)))
    centre = SkyCoord(*_sky(ax, 0.0, 0.0), unit="deg")
    r = SkyCoord(crit["ra"].to_numpy(), crit["dec"].to_numpy(), unit="deg").separation(centre).arcsec
    assert np.abs(r - THETA_E * float(dls_ds(ZL, 2.0))).max() < 0.5 * PIX
    assert crit["vertex"].to_pylist() == list(range(crit.num_rows))


def test_critical_curves_at_several_redshifts_in_one_commit_with_a_plot(sim, tmp_path):
    """The AS1063 study's three redshifts at once: each z's tangential critical curve at its
    own Einstein radius theta_E D_ls/D_s(z), one ingest, and the figure written."""
    lake, ax, _ = sim
    n_ingests = lake.ingests().num_rows
    runner = CliRunner()
    png = tmp_path / "cc.png"
    args = ["lens", "critical-curves", "--field", "simsis", "--model", "truth", "--plot", str(png)]
    res = runner.invoke(app, [*args, "--z-source", "3", "--z-source", "1.23", "--lake", str(lake.root)])
    assert res.exit_code == 0, res.output
    assert "z_s = 1.23" in res.output and "z_s = 3" in res.output
    assert png.stat().st_size > 10_000
    assert lake.ingests().num_rows == n_ingests + 1
    t = lake.live("critical_curves")
    centre = SkyCoord(*_sky(ax, 0.0, 0.0), unit="deg")
    for z in (1.23, 3.0):
        crit = t.filter(
            pc.and_(
                pc.equal(t["z_source"], z),
                pc.and_(pc.equal(t["kind"], "critical"), pc.equal(t["curve_id"], 1)),
            )
        )
        assert crit.num_rows > 20
        r = SkyCoord(crit["ra"].to_numpy(), crit["dec"].to_numpy(), unit="deg").separation(centre).arcsec
        assert np.abs(r - THETA_E * float(dls_ds(ZL, z))).max() < 0.5 * PIX
    bad = runner.invoke(app, [*args, "--z-source", "0.1", "--lake", str(lake.root)])
    assert bad.exit_code == 2 and "behind the cluster" in bad.output
    assert lake.ingests().num_rows == n_ingests + 1


def test_correlate_draws_the_stored_critical_curves(sim, tmp_path):
    """Each stored curve is one line on density_kappa.png, its vertices in order, through the
    map's WCS into the figure's arcsec coordinates."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from catalog.figures import draw_critical_curves
    from catalog.runs.correlation import _critical_curves

    lake, ax_map, _ = sim
    curves = _critical_curves(lake, "simsis/truth")
    assert curves is not None and set(np.unique(curves["kind"])) == {"critical", "caustic"}
    fig, axes = plt.subplots()
    draw_critical_curves(axes, curves, lambda ra, dec: (ra * 2, dec * 3))
    keys = {(z, k, c) for z, k, c in zip(curves["z_source"], curves["kind"], curves["curve_id"], strict=True)}
    assert len(axes.lines) == len(keys)
    first = axes.lines[0]
    one = (
        (curves["z_source"] == curves["z_source"].min())
        & (curves["kind"] == "critical")
        & (curves["curve_id"] == 1)
    )
    order = np.argsort(curves["vertex"][one])
    np.testing.assert_allclose(first.get_xdata(), curves["ra"][one][order] * 2)
    np.testing.assert_allclose(first.get_ydata(), curves["dec"][one][order] * 3)
    plt.close(fig)
    assert _critical_curves(lake, "simsis/nosuch") is None


def test_detected_compact_sources_are_cross_identified_between_images(sim, tmp_path):
    """Compact sources of one lensed galaxy, detected in both of its SIS images, pair by
    source-plane distance; unrelated detections do not. A neighbour 0.2" along the arc from
    c0.1 lies 0.2 |lambda_t| = 0.03" from it in the source plane: within 0.05" it is a
    counter-image candidate of c0.2 (kept) and a pair with c0.1 in the same image, which the
    image-plane separation leaves out."""
    from ingest.catalog import ingest_catalog

    lake, ax, _ = sim
    z = 2.0
    te = THETA_E * float(dls_ds(ZL, z))
    rng = np.random.default_rng(5)
    rows, truth = [], set()
    for k in range(6):
        beta = np.array([0.6, 0.2]) if k == 0 else rng.uniform(-1.0, 1.0, 2)
        for m, t in enumerate(_images(beta, te), start=1):
            rows.append((f"c{k}.{m}", *_sky(ax, *t)))
        truth.add((f"c{k}.1", f"c{k}.2"))
    x1, y1 = _images(np.array([0.6, 0.2]), te)[0]
    r1 = np.hypot(x1, y1)
    rows.append(("n0", *_sky(ax, x1 - 0.2 * y1 / r1, y1 + 0.2 * x1 / r1)))
    rows += [(f"u{k}", *_sky(ax, *rng.uniform(-8, 8, 2))) for k in range(10)]  # unrelated
    cat = tmp_path / "compact.csv"
    cat.write_text("id,ra,dec\n" + "".join(f"{i},{a:.10f},{d:.10f}\n" for i, a, d in rows))
    ingest_catalog(lake, cat, field_id="simsis", name="compact")
    label = {r["detection_id"]: r["source_id"] for r in lake.live("detections").to_pylist()}

    def pairs(out):
        ids = zip(out["image_id_1"].to_pylist(), out["image_id_2"].to_pylist(), strict=True)
        return {tuple(sorted((label[a], label[b]))) for a, b in ids}

    kw = {"catalog": "compact", "z_source": z, "detections": True}
    out = run_source_plane_crossmatch(lake, "simsis", "truth", tolerance_arcsec=0.02, **kw)
    assert pairs(out) == truth
    assert set(out["source_table"].to_pylist()) == {"detections"}
    assert max(out["separation_arcsec"].to_pylist()) < 0.2 * PIX
    wider = run_source_plane_crossmatch(lake, "simsis", "truth", tolerance_arcsec=0.05, **kw)
    assert pairs(wider) == truth | {("c0.2", "n0")}
    close = run_source_plane_crossmatch(
        lake, "simsis", "truth", tolerance_arcsec=0.05, min_image_separation_arcsec=0.0, **kw
    )
    assert pairs(close) == truth | {("c0.2", "n0"), ("c0.1", "n0")}
    with pytest.raises(GccatError, match="give --detections"):
        run_source_plane_crossmatch(lake, "simsis", "truth", where="snr > 5")
