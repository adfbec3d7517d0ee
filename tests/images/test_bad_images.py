"""Bad FITS inputs (images, PSFs, masks, weight/error maps, lens maps): exit code 2, one line
naming the file (and the option it was given to), and an unchanged lake."""

import numpy as np
import pytest
from astropy.io import fits

from catalog.lake import Lake
from catalog.simulations import simulate_field_files, simulate_mosaic_files
from ingest.catalog import ingest_catalog, ingest_fields
from ingest.demo import bundled
from ingest.lens import ingest_lens_maps
from ingest.pointsources import run_detection

from ..conftest import FIELDS, snapshot

AS1063 = [bundled(f"as1063_lenstool_patch_bin4_{a}-arcsec-deflect.fits") for a in "xy"]


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
    root = tmp_path_factory.mktemp("images")
    lake = Lake.create(root / "lake")
    ingest_fields(lake, FIELDS)
    mos = simulate_mosaic_files(
        root / "mos", "m", bands=("F150W", "F200W"), shape=(128, 128), n_points=30, seed=3
    )
    run_detection(lake, list(mos["images"].values()), field_id="as1063", name="gcs")
    sim = simulate_field_files(root / "sim", "sim", shape=(100, 100), pixel_scale_arcsec=0.2, seed=2)
    ingest_lens_maps(lake, [sim.kappa_path], field_id="sim", model="truth")
    ingest_catalog(lake, sim.catalog_path, field_id="sim", name="gcs")
    return {
        "lake": lake,
        "root": root,
        "image": mos["images"]["F150W"],
        "psf": mos["psf"],
        "kappa": sim.kappa_path,
    }


# -- science images ---------------------------------------------------------------------------


def _variant(src, dst, *, data=None, header=None, weight=None, drop=()):
    """A copy of the SCI/WHT mosaic ``src`` with its SCI data, header cards or WHT replaced."""
    with fits.open(src) as h:
        sci, wht = h["SCI"], h["WHT"]
        hdr = sci.header.copy()
        for k in drop:
            del hdr[k]
        for k, v in (header or {}).items():
            hdr[k] = v
        d = sci.data if data is None else data(sci.data)
        w = wht.data if weight is None else weight(wht.data)
        fits.HDUList(
            [fits.PrimaryHDU(), fits.ImageHDU(d, hdr, name="SCI"), fits.ImageHDU(w, wht.header, name="WHT")]
        ).writeto(dst)
    return dst


def img_truncated_padding(src, tmp):
    """Only the last block's padding is missing: astropy reads it with a mere warning."""
    p = tmp / "pad.fits"
    p.write_bytes(src.read_bytes()[:-100])
    return p, ["truncated"]


def img_truncated_data(src, tmp):
    p = tmp / "cut.fits"
    p.write_bytes(src.read_bytes()[:30_000])
    return p, ["truncated"]


def img_not_fits(src, tmp):
    p = tmp / "junk.fits"
    p.write_bytes(b"this is not a FITS file\n" * 200)
    return p, ["cannot read"]


def img_empty_file(src, tmp):
    p = tmp / "empty.fits"
    p.write_bytes(b"")
    return p, ["cannot read"]


def img_all_nan(src, tmp):
    return _variant(src, tmp / "nan.fits", data=lambda d: np.full_like(d, np.nan)), ["no pixel with data"]


def img_zero_weight(src, tmp):
    return _variant(src, tmp / "w0.fits", weight=np.zeros_like), ["zero weight"]


def img_unknown_projection(src, tmp):
    return _variant(src, tmp / "xyz.fits", header={"CTYPE1": "RA---XYZ"}), ["RA---XYZ", "projection"]


def img_no_celestial_wcs(src, tmp):
    return _variant(src, tmp / "nowcs.fits", drop=("CTYPE1", "CTYPE2")), ["no celestial WCS"]


def img_swapped_axes(src, tmp):
    """Dec on the first axis would silently swap RA and Dec in the pixel transforms."""
    hdr = fits.getheader(src, "SCI")
    swap = {
        "CTYPE1": "DEC--TAN",
        "CTYPE2": "RA---TAN",
        "CRVAL1": hdr["CRVAL2"],
        "CRVAL2": hdr["CRVAL1"],
        "CDELT1": hdr["CDELT2"],
        "CDELT2": hdr["CDELT1"],
    }
    return _variant(src, tmp / "swap.fits", header=swap), ["RA on axis 1"]


def img_singular_wcs(src, tmp):
    return _variant(src, tmp / "sing.fits", header={"CDELT1": 0.0}), ["WCS"]


def img_sci_not_2d(src, tmp):
    return _variant(src, tmp / "cube.fits", data=lambda d: np.stack([d, d])), ["SCI", "2-D"]


IMAGE_CASES = [
    img_truncated_padding,
    img_truncated_data,
    img_not_fits,
    img_empty_file,
    img_all_nan,
    img_zero_weight,
    img_unknown_projection,
    img_no_celestial_wcs,
    img_swapped_axes,
    img_singular_wcs,
    img_sci_not_2d,
]


@pytest.mark.parametrize("command", ["photometry", "detect", "inject"])
@pytest.mark.parametrize("case", IMAGE_CASES, ids=[c.__name__[4:] for c in IMAGE_CASES])
def test_bad_image_is_refused_naming_the_file(world, tmp_path, cli, command, case):
    bad, needles = case(world["image"], tmp_path)
    lake = world["lake"]
    args = {
        "photometry": ["--catalog", "gcs"],
        "detect": ["--name", "new"],
        "inject": ["--catalog", "gcs", "--psf", world["psf"]],
    }[command]
    before = snapshot(lake)
    refused(cli(command, bad, "--field", "as1063", *args, "--lake", lake.root), bad, *needles)
    assert snapshot(lake) == before and lake.doctor() == {}


# -- PSF, mask, error and weight files --------------------------------------------------------


def aux_psf_1d(w, tmp):
    p = tmp / "psf1d.fits"
    fits.PrimaryHDU(np.ones(25)).writeto(p)
    return ["--psf", p], ["--psf", "2-D"]


def aux_psf_zero(w, tmp):
    p = tmp / "psf0.fits"
    fits.PrimaryHDU(np.zeros((25, 25))).writeto(p)
    return ["--psf", p], ["--psf", "positive sum"]


def aux_psf_nan(w, tmp):
    p = tmp / "psfnan.fits"
    psf = fits.getdata(w["psf"]).astype(float)
    psf[3, 4] = np.nan
    fits.PrimaryHDU(psf).writeto(p)
    return ["--psf", p], ["--psf", "NaN"]


def aux_psf_missing(w, tmp):
    return ["--psf", tmp / "nope.fits"], ["--psf", "no such"]


def aux_psf_too_big(w, tmp):
    p = tmp / "psfbig.fits"
    fits.PrimaryHDU(np.ones((301, 301))).writeto(p)
    return ["--psf", p], ["--psf", "larger than the image"]


def aux_psf_truncated(w, tmp):
    p = tmp / "psfcut.fits"
    p.write_bytes(w["psf"].read_bytes()[:-10])
    return ["--psf", p], ["--psf", "truncated"]


def aux_error_shape(w, tmp):
    p = tmp / "err.fits"
    fits.PrimaryHDU(np.ones((5, 5))).writeto(p)
    return ["--error", p], ["--error", "(5, 5)"]


def aux_error_missing(w, tmp):
    return ["--error", tmp / "nope.fits"], ["--error", "no such"]


def aux_weight_not_fits(w, tmp):
    p = tmp / "wht.fits"
    p.write_text("not fits")
    return ["--weight", p], ["--weight", "cannot read"]


AUX_CASES = [
    aux_psf_1d,
    aux_psf_zero,
    aux_psf_nan,
    aux_psf_missing,
    aux_psf_too_big,
    aux_psf_truncated,
    aux_error_shape,
    aux_error_missing,
    aux_weight_not_fits,
]


@pytest.mark.parametrize("case", AUX_CASES, ids=[c.__name__[4:] for c in AUX_CASES])
def test_bad_auxiliary_file_of_photometry_is_refused(world, tmp_path, cli, case):
    opt, needles = case(world, tmp_path)
    lake = world["lake"]
    before = snapshot(lake)
    refused(
        cli("photometry", world["image"], "--field", "as1063", "--catalog", "gcs", *opt, "--lake", lake.root),
        opt[1],
        *needles,
    )
    assert snapshot(lake) == before


@pytest.mark.parametrize(
    "case", [aux_psf_1d, aux_psf_zero, aux_psf_missing], ids=["psf_1d", "psf_zero", "psf_missing"]
)
def test_bad_psf_of_injection_is_refused(world, tmp_path, cli, case):
    opt, needles = case(world, tmp_path)
    lake = world["lake"]
    before = snapshot(lake)
    refused(
        cli("inject", world["image"], "--field", "as1063", "--catalog", "gcs", *opt, "--lake", lake.root),
        opt[1],
        *needles,
    )
    assert snapshot(lake) == before


def _mask_wrong_shape(tmp):
    p = tmp / "mask5.fits"
    fits.PrimaryHDU(np.zeros((5, 5), np.uint8)).writeto(p)
    return p


def _mask_not_fits(tmp):
    p = tmp / "mask.fits"
    p.write_text("no")
    return p


def _mask_1d(tmp):
    p = tmp / "mask1d.fits"
    fits.PrimaryHDU(np.zeros(100, np.uint8)).writeto(p)
    return p


@pytest.mark.parametrize(
    "make, needle", [(_mask_wrong_shape, "shape"), (_mask_not_fits, "cannot read"), (_mask_1d, "2-D")]
)
def test_bad_detection_mask_is_refused(world, tmp_path, cli, make, needle):
    mask, lake = make(tmp_path), world["lake"]
    before = snapshot(lake)
    refused(
        cli(
            "detect",
            world["image"],
            "--field",
            "as1063",
            "--name",
            "new",
            "--mask",
            mask,
            "--lake",
            lake.root,
        ),
        "--mask",
        mask,
        needle,
    )
    assert snapshot(lake) == before


@pytest.mark.parametrize(
    "make, needle", [(_mask_wrong_shape, "another shape"), (_mask_not_fits, "cannot read"), (_mask_1d, "2-D")]
)
def test_bad_correlation_mask_is_refused(world, tmp_path, cli, make, needle):
    mask, lake = make(tmp_path), world["lake"]
    before = snapshot(lake)
    refused(
        cli(
            "correlate",
            "--field",
            "sim",
            "--model",
            "truth",
            "--mask",
            mask,
            "--plots",
            tmp_path / "plots",
            "--lake",
            lake.root,
        ),
        "--mask",
        mask,
        needle,
    )
    assert snapshot(lake) == before


def test_bad_mask_table_radius_is_refused(world, tmp_path, cli):
    table = tmp_path / "bright.csv"
    table.write_text("id,ra,dec,radius_arcsec\nb1,342.18,-44.53,2\nb2,342.18,-44.53,-3\n")
    lake = world["lake"]
    before = snapshot(lake)
    refused(
        cli(
            "correlate",
            "--field",
            "sim",
            "--model",
            "truth",
            "--mask-table",
            table,
            "--plots",
            tmp_path / "plots",
            "--lake",
            lake.root,
        ),
        table,
        "radius_arcsec",
        "row 2",
        "(0, 3600]",
    )
    assert snapshot(lake) == before


# -- lens maps --------------------------------------------------------------------------------


def _map(src, dst, fn=None, **cards):
    with fits.open(src) as h:
        hdr = h[0].header.copy()
        for k, v in cards.items():
            hdr[k] = v
        data = h[0].data.astype(float)
        fits.PrimaryHDU(data if fn is None else fn(data), hdr).writeto(dst)
    return dst


def lens_all_nan(w, tmp):
    return [_map(w["kappa"], tmp / "a_kappa.fits", lambda d: np.full_like(d, np.nan))], ["no finite pixel"]


def lens_constant(w, tmp):
    return [_map(w["kappa"], tmp / "b_kappa.fits", lambda d: np.full_like(d, 0.5))], ["constant"]


def lens_infinite_pixel(w, tmp):
    def f(d):
        d[10, 10] = np.inf
        return d

    return [_map(w["kappa"], tmp / "c_kappa.fits", f)], ["infinite"]


def lens_deflections_all_nan(w, tmp):
    return [_map(p, tmp / p.name, lambda d: np.full_like(d, np.nan)) for p in AS1063], [
        "x-arcsec-deflect",
        "no finite pixel",
    ]


def lens_deflections_constant(w, tmp):
    """A uniform deflection is a shift of the whole sky: kappa = 0, not a lens model."""
    return [_map(p, tmp / p.name, lambda d: np.full_like(d, 3.0)) for p in AS1063], ["constant"]


def lens_unknown_projection(w, tmp):
    return [_map(w["kappa"], tmp / "d_kappa.fits", CTYPE1="RA---XYZ")], ["RA---XYZ", "projection"]


def lens_truncated_padding(w, tmp):
    p = tmp / "e_kappa.fits"
    p.write_bytes(w["kappa"].read_bytes()[:-200])
    return [p], ["truncated"]


def lens_truncated_data(w, tmp):
    p = tmp / "f_kappa.fits"
    p.write_bytes(w["kappa"].read_bytes()[:20_000])
    return [p], ["truncated"]


def lens_no_quantity_in_name(w, tmp):
    p = _map(w["kappa"], tmp / "model.fits")
    with fits.open(p, mode="update") as h:
        del h[0].header["HFFQUANT"]
    return [p], ["--quantity"]


def lens_not_fits(w, tmp):
    p = tmp / "g_kappa.fits"
    p.write_bytes(b"\0" * 5000)
    return [p], ["cannot read"]


LENS_CASES = [
    lens_all_nan,
    lens_constant,
    lens_infinite_pixel,
    lens_deflections_all_nan,
    lens_deflections_constant,
    lens_unknown_projection,
    lens_truncated_padding,
    lens_truncated_data,
    lens_no_quantity_in_name,
    lens_not_fits,
]


@pytest.mark.parametrize("case", LENS_CASES, ids=[c.__name__[5:] for c in LENS_CASES])
def test_bad_lens_map_is_refused_naming_the_file(world, tmp_path, cli, case):
    files, needles = case(world, tmp_path)
    lake = world["lake"]
    field = "as1063" if len(files) == 2 else "sim"
    before = snapshot(lake)
    refused(
        cli("ingest", "lens-map", *files, "--field", field, "--model", "bad", "--lake", lake.root),
        files[0],
        *needles,
    )
    assert snapshot(lake) == before and lake.doctor() == {}
