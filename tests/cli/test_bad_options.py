"""Bad option values: exit code 2, one line naming the option and its range, an unchanged lake.

Every command that takes a number checks it in the library function it calls (so the Python API
refuses the same values), before anything is read in bulk or written.
"""

import time

import numpy as np
import pytest

from catalog.errors import GccatError
from catalog.lake import Lake
from catalog.runs import cluster
from catalog.runs import fits as fitting
from catalog.runs.correlation import run_correlation
from catalog.runs.fits import run_fit_sfh, run_fit_ssp, run_fit_stack
from catalog.simulations import simulate_field_files, simulate_mosaic_files
from ingest.catalog import ingest_catalog, ingest_fields
from ingest.demo import bundled
from ingest.lens import ingest_lens_maps
from ingest.pointsources import run_detection, run_injection, run_photometry

from ..conftest import FIELDS, SMACS, snapshot

AS1063 = [bundled(f"as1063_lenstool_patch_bin4_{a}-arcsec-deflect.fits") for a in "xy"]
FEW = "source_id < 'SC_005'"


def refused(res, *needles):
    """Exit code 2 and exactly one stderr line, ``gccat: error: ...``, holding each needle."""
    lines = res.stderr.strip().splitlines()
    assert res.exit_code == 2, (res.exit_code, res.output)
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("gccat: error: "), lines[0]
    for n in needles:
        assert str(n) in lines[0], (n, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A lake with fields, the SMACS0723 clusters, the AS1063 deflections, a simulated lens
    field with its GCs and point sources detected on a small simulated mosaic."""
    root = tmp_path_factory.mktemp("options")
    lake = Lake.create(root / "lake")
    ingest_fields(lake, FIELDS)
    ingest_catalog(lake, SMACS, field_id="smacs0723", name="faisst2022", mw_corrected=True)
    ingest_lens_maps(lake, AS1063, field_id="as1063", model="lenstool")
    sim = simulate_field_files(root / "sim", "sim", shape=(120, 120), pixel_scale_arcsec=0.2, seed=1)
    ingest_lens_maps(lake, [sim.kappa_path], field_id="sim", model="truth")
    ingest_catalog(lake, sim.catalog_path, field_id="sim", name="gcs")
    mos = simulate_mosaic_files(
        root / "mos", "m", bands=("F150W", "F200W"), shape=(128, 128), n_points=30, seed=3
    )
    run_detection(lake, list(mos["images"].values()), field_id="as1063", name="gcs")
    regions = root / "bright.csv"
    regions.write_text("id,ra,dec\nb1,342.18,-44.53\n")
    return {
        "lake": lake,
        "root": root,
        "image": mos["images"]["F150W"],
        "psf": mos["psf"],
        "regions": regions,
    }


LENS = ["ingest", "lens-map", *AS1063, "--field", "as1063", "--model", "other"]
CORR = ["correlate", "--field", "sim", "--model", "truth"]
PHOT = ["photometry", "{image}", "--field", "as1063", "--catalog", "gcs"]
INJ = ["inject", "{image}", "--psf", "{psf}", "--field", "as1063", "--catalog", "gcs", "--max-targets", "1"]
DET = ["detect", "{image}", "--field", "as1063", "--name", "new"]
SSP = ["fit", "ssp", "--where", FEW]
STACK = ["fit", "stack", "--where", FEW]
SFH = ["fit", "sfh", "--where", "source_id < 'SC_002'"]
GRID = ["grid", "build", "--bands", "F150W,F200W"]

CASES = [
    # lens maps: a source at or in front of the cluster (z = 0.348) is not lensed (D_ls/D_s = 0)
    (LENS + ["--z-source", "0.2"], ["--z-source", "0.348", "0.2"]),
    (LENS + ["--z-source", "0.348"], ["--z-source", "(0.348, 20]"]),
    (LENS + ["--z-source", "nan"], ["--z-source", "nan"]),
    (LENS + ["--z-source", "inf"], ["--z-source", "inf"]),
    (LENS + ["--dls-ds", "nan"], ["--dls-ds", "(0, 1]"]),
    (LENS + ["--dls-ds", "inf"], ["--dls-ds", "(0, 1]"]),
    (LENS + ["--dls-ds", "0"], ["--dls-ds", "(0, 1]"]),
    (LENS + ["--dls-ds", "1.5"], ["--dls-ds", "(0, 1]"]),
    # correlate
    (CORR + ["--box", "1e9"], ["--box", "(0, 24]"]),
    (CORR + ["--box", "0"], ["--box"]),
    (CORR + ["--alpha", "nan"], ["--alpha", "(0, 5]"]),
    (CORR + ["--alpha", "50"], ["--alpha", "(0, 5]"]),
    (CORR + ["--alpha", "0"], ["--alpha"]),
    (CORR + ["--softening", "0"], ["--softening"]),
    (CORR + ["--softening", "-1"], ["--softening"]),
    (CORR + ["--softening", "1e6"], ["--softening", "(0, 24]"]),
    (CORR + ["--inpaint-iter", "100000"], ["--inpaint-iter", "[0, 100]"]),
    (CORR + ["--inpaint-iter", "-1"], ["--inpaint-iter"]),
    (CORR + ["--mass-radius", "0"], ["--mass-radius", "(0, inf)"]),
    (CORR + ["--mass-radius", "-5"], ["--mass-radius"]),
    (CORR + ["--z-source", "nan"], ["--z-source"]),
    (["correlate", "--field", "as1063", "--model", "lenstool", "--z-source", "0.1"], ["--z-source", "0.348"]),
    (CORR + ["--centre", "nan,2"], ["--centre", "[0, 360]"]),
    (CORR + ["--centre", "10,95"], ["--centre", "[-90, 90]"]),
    (CORR + ["--background-annulus", "5,2"], ["--background-annulus"]),
    (CORR + ["--background-annulus", "nan,2"], ["--background-annulus"]),
    (CORR + ["--mask-table", "{regions}", "--mask-radius", "-1"], ["--mask-radius", "(0, 3600]"]),
    (CORR + ["--seed", "-1"], ["--seed"]),
    # photometry
    (PHOT + ["--zeropoint", "nan"], ["--zeropoint", "[0, 40]"]),
    (PHOT + ["--zeropoint", "inf"], ["--zeropoint"]),
    (PHOT + ["--zeropoint", "99"], ["--zeropoint", "[0, 40]"]),
    (PHOT + ["--apertures", "1e6"], ["--apertures", "(0, 5]"]),
    (PHOT + ["--apertures", "0.1,nan"], ["--apertures"]),
    (PHOT + ["--apertures", "0"], ["--apertures"]),
    (PHOT + ["--apertures", "4.9"], ["--apertures", "wider than the image"]),
    (PHOT + ["--catalog", "nosuch"], ["--catalog", "nosuch", "gcs"]),
    # injection-recovery
    (INJ + ["--n", "0"], ["--n ", "[1, 1000]"]),
    (INJ + ["--n", "-3"], ["--n "]),
    (INJ + ["--n", "1000000"], ["--n ", "[1, 1000]"]),
    (INJ + ["--locations", "0"], ["--locations", "[1, 1000]"]),
    (INJ + ["--mode", "random", "--n-random", "0"], ["--n-random", "[2, 10000]"]),
    (INJ + ["--mode", "random", "--n-random", "-1"], ["--n-random"]),
    (INJ + ["--mode", "bad"], ["--mode"]),
    (INJ + ["--max-targets", "0"], ["--max-targets"]),
    (INJ + ["--flux-range", "nan,10"], ["--flux-range", "(0, 1000]"]),
    (INJ + ["--flux-range", "0.1,inf"], ["--flux-range"]),
    (INJ + ["--flux-range", "10,1"], ["--flux-range", "increasing"]),
    (INJ + ["--apertures", "1e6"], ["--apertures", "(0, 5]"]),
    (INJ + ["--zeropoint", "nan"], ["--zeropoint"]),
    (INJ + ["--seed", "-1"], ["--seed"]),
    (INJ + ["--band", "NOPE"], ["--band", "NOPE"]),
    (INJ[:7] + ["nosuch"], ["--catalog", "nosuch"]),
    # detection
    (DET + ["--exclusion", "0"], ["--exclusion", "(0, 50]"]),
    (DET + ["--exclusion", "nan"], ["--exclusion"]),
    (DET + ["--exclusion", "1e9"], ["--exclusion", "(0, 50]"]),
    (DET + ["--threshold", "0"], ["--threshold", "(0, 1000]"]),
    (DET + ["--threshold", "-1"], ["--threshold"]),
    (DET + ["--keep", "0"], ["--keep", "[1, 100]"]),
    (DET + ["--highpass", "0,5,1,3"], ["--highpass", "(0, 50]"]),
    (DET + ["--highpass", "-1,5,1,3"], ["--highpass"]),
    (DET + ["--highpass", "1e9,5,1,3"], ["--highpass", "(0, 50]"]),
    (DET + ["--z", "nan"], ["--z", "(0, 20]"]),
    (DET + ["--z", "-1"], ["--z", "(0, 20]"]),
    (DET + ["--z", "inf"], ["--z"]),
    # SSP fits, stacks, SFHs and grids
    (SSP + ["--samples", "-5"], ["--samples", "[0, 10000]"]),
    (SSP + ["--samples", "100000000"], ["--samples", "[0, 10000]"]),
    (SSP + ["--chunk", "0"], ["--chunk", "[1, 65536]"]),
    (SSP + ["--chunk", "-1"], ["--chunk"]),
    (SSP + ["--error-floor", "-0.1"], ["--error-floor", "[0, 1]"]),
    (SSP + ["--error-floor", "nan"], ["--error-floor"]),
    (SSP + ["--z", "nan"], ["--z", "(0, 20]"]),
    (SSP + ["--z", "-1"], ["--z"]),
    (SSP + ["--z", "inf"], ["--z"]),
    (SSP + ["--n-av", "0"], ["--n-av", "[1, 101]"]),
    (SSP + ["--av-max", "-1"], ["--av-max", "[0, 10]"]),
    (SSP + ["--av-max", "nan"], ["--av-max"]),
    (SSP + ["--metallicities", "0,1"], ["--metallicities", "[0.005, 5]"]),
    (SSP + ["--metallicities", "-1,1"], ["--metallicities"]),
    (SSP + ["--metallicities", "nan"], ["--metallicities"]),
    (SSP + ["--seed", "-1"], ["--seed"]),
    (SSP + ["--prior", "bogus"], ["--prior"]),
    (STACK + ["--n-boot", "0"], ["--n-boot", "[10, 100000]"]),
    (STACK + ["--n-boot", "-1"], ["--n-boot"]),
    (STACK + ["--z", "nan"], ["--z"]),
    (STACK + ["--error-floor", "2"], ["--error-floor"]),
    (SFH + ["--n-perturb", "0"], ["--n-perturb", "[1, 10000]"]),
    (SFH + ["--n-perturb", "-1"], ["--n-perturb"]),
    (SFH + ["--epochs", "4,6,8"], ["--epochs", "decreasing"]),
    (SFH + ["--epochs", "nan,4"], ["--epochs"]),
    (SFH + ["--epochs", "0.1"], ["--epochs", "0.39"]),
    (SFH + ["--z", "-1"], ["--z"]),
    (GRID + ["--z", "nan"], ["--z", "(0, 20]"]),
    (GRID + ["--z", "-1"], ["--z"]),
    (GRID + ["--z", "0"], ["--z"]),
    (GRID + ["--z", "0.3", "--n-av", "0"], ["--n-av"]),
    (GRID + ["--z", "0.3", "--metallicities", "0"], ["--metallicities"]),
    (GRID + ["--z", "0.3", "--av-max", "-1"], ["--av-max"]),
    (["grid", "build", "--z", "0.3", "--bands", "F150W,F999W"], ["--bands", "F999W"]),
    # grid options and recipes
    (SSP + ["--age-range", "1"], ["--age-range", "MIN,MAX"]),
    (SSP + ["--age-range", "-1,5"], ["--age-range MIN", "[0, 20]"]),
    (SSP + ["--age-range", "0.5,30"], ["--age-range MAX", "(0, 20]"]),
    (SSP + ["--age-range", "5,1"], ["--age-range", "must not exceed"]),
    (SSP + ["--age-range", "0.5,11", "--age-step", "0"], ["--age-step", "[0.001, 20]"]),
    (SSP + ["--age-range", "0.5,11", "--age-step", "nan"], ["--age-step"]),
    (SSP + ["--age-step", "0.5"], ["--age-step needs --age-range"]),
    (STACK + ["--z", "6", "--age-range", "1,11"], ["--age-range", "Universe", "0.917 Gyr"]),
    (SSP + ["--log-u", "1"], ["--log-u", "[-4, 0]"]),
    (SSP + ["--no-dust", "--av-max", "2"], ["--no-dust", "--av-max"]),
    (SSP + ["--recipe", "sedz"], ["--recipe", "smacs0723-ssp"]),
    (STACK + ["--recipe", "nope"], ["--recipe"]),
    (SFH + ["--recipe", "smacs0723-ssp"], ["--recipe", "sedz"]),
    (SFH + ["--metallicity", "10"], ["--metallicity", "[0.005, 5]"]),
    (SFH + ["--av", "-1"], ["--av", "[0, 10]"]),
    (GRID + ["--z", "0.3", "--age-range", "0.5,11", "--age-step", "0.0001"], ["--age-step"]),
    (GRID + ["--z", "0.3", "--imf", "salpeter"], ["--imf"]),
]


def _ids(case):
    args, _ = case
    cmd = " ".join(a for a in args[:2] if not a.startswith("{") and "/" not in a)
    return f"{cmd} {' '.join(args[-2:])}"


@pytest.mark.parametrize("case", CASES, ids=[_ids(c) for c in CASES])
def test_bad_option_is_one_line_and_the_lake_is_unchanged(world, cli, case):
    args, needles = case
    lake = world["lake"]
    args = [str(a).format(**{k: v for k, v in world.items() if k != "lake"}) for a in args]
    before = snapshot(lake)
    refused(cli(*args, "--lake", lake.root), *needles)
    assert snapshot(lake) == before
    assert lake.doctor() == {}


@pytest.mark.parametrize(
    "args, needles",
    [
        (["mosaic", "--size", "0"], ["--size", "[64, 4096]"]),
        (["mosaic", "--size", "100000"], ["--size", "[64, 4096]"]),
        (["mosaic", "--size", "64", "--n-points", "-1"], ["--n-points"]),
        (["mosaic", "--size", "64", "--bands", "F150W,XX"], ["--bands", "XX"]),
        (["lens-field", "--size", "0"], ["--size", "[32, 4096]"]),
        (["lens-field", "--size", "1000000"], ["--size", "[32, 4096]"]),
        (["lens-field", "--size", "64", "--pixel-scale", "0"], ["--pixel-scale"]),
        (["lens-field", "--size", "64", "--A", "nan"], ["--A"]),
    ],
)
def test_bad_simulation_sizes_write_nothing(tmp_path, cli, args, needles):
    out = tmp_path / "out"
    refused(cli("simulate", *args, "--out", out), *needles)
    assert not out.exists()


# -- the Python API refuses the same values ---------------------------------------------------


def test_the_python_api_refuses_the_same_values(world):
    lake = world["lake"]
    before = snapshot(lake)
    calls = [
        (lambda: run_fit_ssp(lake, FEW, n_samples=-5), "--samples"),
        (lambda: run_fit_ssp(lake, FEW, chunk=0), "--chunk"),
        (lambda: run_fit_ssp(lake, FEW, z=float("nan")), "--z"),
        (lambda: run_fit_ssp(lake, FEW, n_av=0), "--n-av"),
        (lambda: run_fit_ssp(lake, FEW, bogus=1), "unknown grid option"),
        (lambda: run_fit_stack(lake, FEW, n_boot=0), "--n-boot"),
        (lambda: run_fit_sfh(lake, FEW, epochs_z=(4, 6)), "--epochs"),
        (lambda: ingest_lens_maps(lake, AS1063, field_id="as1063", model="x", z_source=0.2), "--z-source"),
        (
            lambda: ingest_lens_maps(lake, AS1063, field_id="as1063", model="x", dls_ds_norm=float("inf")),
            "--dls-ds",
        ),
        (lambda: run_correlation(lake, "sim", "truth", box_arcsec=1e9), "--box"),
        (lambda: run_correlation(lake, "sim", "truth", n_boot=1), "--n-boot"),
        (
            lambda: run_photometry(
                lake, world["image"], band=None, field_id="as1063", catalog="gcs", aperture_radii_arcsec=[1e6]
            ),
            "--apertures",
        ),
        (
            lambda: run_photometry(
                lake, world["image"], band=None, field_id="as1063", catalog="gcs", zeropoint_ab=float("nan")
            ),
            "--zeropoint",
        ),
        (
            lambda: run_injection(
                lake,
                world["image"],
                band=None,
                psf_path=world["psf"],
                field_id="as1063",
                catalog="gcs",
                n_flux=0,
            ),
            "--n",
        ),
        (
            lambda: run_injection(
                lake,
                world["image"],
                band=None,
                psf_path=world["psf"],
                field_id="as1063",
                catalog="gcs",
                stamp_arcsec=-1,
            ),
            "stamp_arcsec",
        ),
        (
            lambda: run_detection(
                lake, [world["image"]], field_id="as1063", name="x", params={"exclusion_radius_pix": 1e9}
            ),
            "--exclusion",
        ),
        (
            lambda: run_detection(lake, [world["image"]], field_id="as1063", name="x", params={"bogus": 1}),
            "unknown detection setting",
        ),
    ]
    for call, needle in calls:
        with pytest.raises(GccatError, match=needle.replace("-", r"\-")):
            call()
    assert snapshot(lake) == before


# -- rejected or failed fits leave no rows behind ---------------------------------------------


@pytest.fixture
def fresh_fit_lake(tmp_path):
    """A lake where no SSP grid is cached yet (the old orphan rows needed a grid to build)."""
    lake = Lake.create(tmp_path / "lake")
    ingest_fields(lake, FIELDS)
    ingest_catalog(lake, SMACS, field_id="smacs0723", name="faisst2022", mw_corrected=True)
    return lake


@pytest.mark.parametrize("option", [["--samples", "-5"], ["--chunk", "0"]])
def test_rejected_fit_leaves_no_orphan_grid(fresh_fit_lake, cli, option):
    before = snapshot(fresh_fit_lake)
    refused(cli("fit", "ssp", "--where", FEW, *option, "--lake", fresh_fit_lake.root), option[0])
    assert fresh_fit_lake.doctor() == {}
    assert fresh_fit_lake.read("ssp_grids").num_rows == 0
    assert snapshot(fresh_fit_lake) == before


class Interrupted(Exception):
    """Raised by a progress callback, as a Ctrl-C or a dying worker would stop a fit."""


def _fail_at(n_call: int):
    calls = []

    def progress(stage, frac):
        if stage.startswith("fitting"):
            calls.append(stage)
            if len(calls) == n_call:
                raise Interrupted(stage)

    return progress


def test_fit_failing_after_its_grid_is_built_writes_nothing(fresh_fit_lake):
    before = snapshot(fresh_fit_lake)
    with pytest.raises(Interrupted):  # the grid is built and one chunk fitted, then it fails
        run_fit_ssp(fresh_fit_lake, "field_id = 'smacs0723'", chunk=64, n_samples=3, progress=_fail_at(2))
    assert fresh_fit_lake.doctor() == {}
    assert snapshot(fresh_fit_lake) == before


def test_fit_failing_in_a_later_block_is_rolled_back(fresh_fit_lake, monkeypatch):
    monkeypatch.setattr(fitting, "BLOCK", 64)  # 178 objects: three blocks written in turn
    version = fresh_fit_lake.version()
    with pytest.raises(Interrupted):
        run_fit_ssp(fresh_fit_lake, "field_id = 'smacs0723'", chunk=64, n_samples=3, progress=_fail_at(2))
    assert fresh_fit_lake.doctor() == {}
    assert fresh_fit_lake.version() == version
    for table in ("ssp_grids", "fit_posteriors", "fit_samples", "fit_runs"):
        assert fresh_fit_lake.read(table).num_rows == 0, table
    # and the lake still fits normally afterwards
    r = run_fit_ssp(fresh_fit_lake, FEW, n_samples=0, chunk=64)
    assert r["n_objects"] == 5 and fresh_fit_lake.doctor() == {}


def test_unreachable_scheduler_is_one_line_and_quick(fresh_fit_lake, cli, monkeypatch):
    monkeypatch.setattr(cluster, "SCHEDULER_TIMEOUT_S", 3.0)
    before = snapshot(fresh_fit_lake)
    t0 = time.perf_counter()
    for address in ("tcp://127.0.0.1:1", "nonsense", "foo://x:1"):
        refused(
            cli("fit", "ssp", "--where", FEW, "--scheduler", address, "--lake", fresh_fit_lake.root),
            "--scheduler",
            address,
        )
    assert time.perf_counter() - t0 < 3 * 3.0 + 10
    assert snapshot(fresh_fit_lake) == before
    assert fresh_fit_lake.doctor() == {}


def test_sfh_with_one_perturbation_still_works(fresh_fit_lake):
    r = run_fit_sfh(fresh_fit_lake, "source_id = 'SC_000'", epochs_z=(6, 4), n_perturb=1)
    assert (
        r["n_objects"] == 1 and np.isfinite(fresh_fit_lake.live("sfh_epochs")["mass_msun"].to_numpy()).all()
    )
