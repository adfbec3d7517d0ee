"""Units read with astropy (case-sensitive), magnitude systems, and magnitude errors.

Catalog columns, mapping files, ``--flux-unit``, image BUNIT and the ``to_njy`` SQL function
all go through :func:`catalog.units.parse_flux_unit`.
"""

import duckdb
import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from catalog import units as ph
from catalog.errors import GccatError
from catalog.lake import Lake
from catalog.queries.connection import connect
from ingest.catalog import ingest_catalog
from ingest.images import njy_per_unit

from ..conftest import snapshot

RA, DEC = 110.8, -73.45
ARCSEC2_PER_SR = (180 / np.pi * 3600) ** 2  # square arcsec in a steradian


def _fluxes(lake, catalog="c"):
    rows = (
        connect(lake)
        .execute(
            "SELECT source_id, band, flux_njy, flux_err_njy FROM photometry JOIN detections d "
            "USING (detection_id) WHERE d.catalog = ? ORDER BY 1, 2",
            [catalog],
        )
        .fetchall()
    )
    return {(s, b): (f, e) for s, b, f, e in rows}


def _ecsv(tmp_path, columns: dict, units: dict, name="cat.ecsv"):
    t = Table({"id": ["a", "b"], "ra": [RA, RA + 0.01], "dec": [DEC, DEC], **columns})
    for c, u in units.items():
        t[c].unit = u
    p = tmp_path / name
    t.write(p, format="ascii.ecsv")
    return p


def _one_error_line(res) -> str:
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("gccat: error: "), res.stderr
    return lines[0]


# -- the parser ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "unit,kind,factor",
    [
        ("MJy", "flux", 1e15),
        ("mJy", "flux", 1e6),
        ("uJy", "flux", 1e3),
        ("µJy", "flux", 1e3),
        ("μJy", "flux", 1e3),
        ("nJy", "flux", 1.0),
        ("Jy", "flux", 1e9),
        ("10 nJy", "flux", 10.0),
        ("erg/(s cm2 Hz)", "flux", 1e32),
        ("1e-23 erg/s/cm2/Hz", "flux", 1e9),
        ("microJy", "flux", 1e3),
        ("MJy/sr", "surface_brightness", 1e15),
        ("mJy/sr", "surface_brightness", 1e6),
        ("nJy/pix", "per_pixel", 1.0),
        ("uJy/arcsec2", "surface_brightness", 1e3 * ARCSEC2_PER_SR),
    ],
)
def test_flux_units_are_read_case_sensitively_and_exactly(unit, kind, factor):
    fu = ph.parse_flux_unit(unit)
    assert fu.kind == kind
    assert fu.to_njy == pytest.approx(factor, rel=1e-14)
    if factor in (1e15, 1e6, 1e3, 1.0, 1e9, 10.0, 1e32):
        assert fu.to_njy == factor  # decimal factors exactly


@pytest.mark.parametrize(
    "unit,system,offset",
    [
        ("mag(AB)", "AB", 0.0),
        ("ABmag", "AB", 0.0),
        ("AB", "AB", 0.0),
        ("mag", None, None),
        ("Vegamag", "Vega", None),
        ("mag(ST)", "ST", None),
        ("mag(Jy)", "mag(Jy)", 8.9),
    ],
)
def test_magnitude_units_say_their_system(unit, system, offset):
    fu = ph.parse_flux_unit(unit)
    assert (fu.kind, fu.mag_system, fu.ab_offset) == ("mag", system, offset)


@pytest.mark.parametrize(
    "unit,words",
    [
        ("MJY", "ambiguous"),
        ("mjy/sr", "ambiguous"),
        ("furlong", "astropy"),
        ("erg/s", "not a flux density"),
        ("erg/s/cm2/Angstrom", "per wavelength"),
        ("", "no unit"),
        ("dex", "not a flux density"),
        ("mJy/beam", "not a flux density"),
    ],
)
def test_units_that_are_not_photometric_or_are_ambiguous_are_refused(unit, words):
    with pytest.raises(ValueError, match=words):  # a UnitError
        ph.parse_flux_unit(unit)


# -- catalog columns ---------------------------------------------------------------------


def test_megajansky_and_millijansky_columns_differ_by_1e9(tmp_path, lake):
    p = _ecsv(
        tmp_path,
        {"flux_F150W": [1.0, 2.0], "flux_F200W": [1.0, 2.0]},
        {"flux_F150W": "MJy", "flux_F200W": "mJy"},
    )
    ingest_catalog(lake, p, field_id="f", name="c")
    fl = _fluxes(lake)
    assert fl[("a", "F150W")][0] == 1e15 and fl[("b", "F150W")][0] == 2e15
    assert fl[("a", "F200W")][0] == 1e6 and fl[("b", "F200W")][0] == 2e6


def test_unit_suffixes_of_names_keep_their_case(tmp_path, lake):
    p = tmp_path / "cat.csv"
    p.write_text("id,ra,dec,flux_F150W_MJy,flux_F200W_mJy\na,110.8,-73.45,1.0,1.0\n")
    ingest_catalog(lake, p, field_id="f", name="c")
    fl = _fluxes(lake)
    assert (fl[("a", "F150W")][0], fl[("a", "F200W")][0]) == (1e15, 1e6)


@pytest.mark.parametrize(
    "flux_unit,factor", [("MJy", 1e15), ("mJy", 1e6), ("10 nJy", 10.0), ("erg/(s cm2 Hz)", 1e32)]
)
def test_flux_unit_option_is_read_with_astropy(flux_unit, factor, tmp_path, lake):
    p = tmp_path / "cat.csv"
    p.write_text("id,ra,dec,flux_F150W,fluxerr_F150W\na,110.8,-73.45,2.5,0.5\n")
    ingest_catalog(lake, p, field_id="f", name="c", flux_unit=flux_unit)
    assert _fluxes(lake)[("a", "F150W")] == (2.5 * factor, 0.5 * factor)


def test_scaled_and_cgs_units_declared_by_the_file(tmp_path, lake):
    p = _ecsv(
        tmp_path,
        {
            "flux_F150W": [3.0, 4.0],
            "fluxerr_F150W": [0.5, 0.5],
            "flux_F200W": [2e-29, 3e-29],
            "fluxerr_F200W": [1e-30, 1e-30],
        },
        {
            "flux_F150W": "10 nJy",
            "fluxerr_F150W": "10 nJy",
            "flux_F200W": "erg / (s cm2 Hz)",
            "fluxerr_F200W": "erg / (s cm2 Hz)",
        },
    )
    ingest_catalog(lake, p, field_id="f", name="c")
    fl = _fluxes(lake)
    assert fl[("a", "F150W")] == (30.0, 5.0)
    assert fl[("a", "F200W")][0] == pytest.approx(2000.0, rel=1e-12)  # 1e-29 cgs = 1 uJy / 10
    assert fl[("b", "F200W")][1] == pytest.approx(100.0, rel=1e-12)


@pytest.mark.parametrize(
    "unit,words",
    [
        ("MJy/sr", "surface brightness"),
        ("erg/s", "not a flux density"),
        ("MJY", "ambiguous"),
    ],
)
def test_a_column_unit_that_is_not_a_source_flux_is_refused(unit, words, tmp_path, cli):
    p = _ecsv(tmp_path, {"flux_F150W": [1.0, 2.0]}, {"flux_F150W": unit})
    lake = Lake.create(tmp_path / "lake")
    before = snapshot(lake)
    line = _one_error_line(cli("ingest", "catalog", p, "--field", "f", "--name", "c", "--lake", lake.root))
    assert str(p) in line and "'flux_F150W'" in line and words in line
    assert snapshot(lake) == before


# -- magnitude systems -------------------------------------------------------------------

MAGS = "id,ra,dec,mag_F150W,magerr_F150W\na,110.8,-73.45,25.0,0.1\nb,110.81,-73.45,26.0,0.2\n"


def test_plain_mag_is_refused_without_a_declared_system(tmp_path, cli):
    p = tmp_path / "mags.csv"
    p.write_text(MAGS)
    lake = Lake.create(tmp_path / "lake")
    before = snapshot(lake)
    line = _one_error_line(cli("ingest", "catalog", p, "--field", "f", "--name", "c", "--lake", lake.root))
    assert str(p) in line and "'mag_F150W'" in line and "--mag-system AB" in line
    assert snapshot(lake) == before


def test_a_fits_column_in_plain_mag_is_refused_too(tmp_path, lake):
    p = tmp_path / "mags.fits"
    t = Table({"id": ["a"], "ra": [RA], "dec": [DEC], "F150W_mag": [25.0]})
    t["F150W_mag"].unit = "mag"
    t.write(p)
    with pytest.raises(GccatError, match="--mag-system AB") as exc:
        ingest_catalog(lake, p, field_id="f", name="c")
    assert exc.value.column == "F150W_mag"


def _want_ab(m, sm=None):
    f = 10 ** (-0.4 * (np.asarray(m) - 31.4))
    return f, (None if sm is None else 0.4 * np.log(10) * f * np.asarray(sm))


@pytest.mark.parametrize(
    "how", ["option", "cli", "mapping_unit", "mapping_option", "mapping_band", "name", "file_unit"]
)
def test_plain_mag_is_accepted_when_declared_ab(how, tmp_path, lake, cli):
    p = tmp_path / "mags.csv"
    text = MAGS
    kw = {}
    if how == "option":
        kw["mag_system"] = "AB"
    elif how == "name":
        text = text.replace("mag_F150W", "abmag_F150W")
    elif how.startswith("mapping"):
        m = tmp_path / "map.toml"
        spec = {
            "mapping_unit": '[bands.F150W]\nmag = "mag_F150W"\nerror = "magerr_F150W"\nunit = "ABmag"\n',
            "mapping_option": '[options]\nmag_system = "AB"\n',
            "mapping_band": '[bands.F150W]\nmag = "mag_F150W"\nerror = "magerr_F150W"\nmag_system = "AB"\n',
        }[how]
        m.write_text(spec)
        kw["mapping_file"] = m
    if how == "file_unit":
        t = Table.read(text, format="ascii.csv")
        t["mag_F150W"].unit = "mag(AB)"
        t["magerr_F150W"].unit = "mag"
        p = tmp_path / "mags.ecsv"
        t.write(p)
    else:
        p.write_text(text)
    if how == "cli":
        res = cli(
            "ingest", "catalog", p, "--field", "f", "--name", "c", "--mag-system", "AB", "--lake", lake.root
        )
        assert res.exit_code == 0, res.output
    else:
        ingest_catalog(lake, p, field_id="f", name="c", **kw)
    f, e = _want_ab([25.0, 26.0], [0.1, 0.2])
    fl = _fluxes(lake)
    for i, s in enumerate("ab"):
        assert fl[(s, "F150W")] == (pytest.approx(f[i], rel=1e-12), pytest.approx(e[i], rel=1e-12))


def test_vega_magnitudes_need_the_bands_ab_offset(tmp_path, lake):
    p = tmp_path / "mags.csv"
    p.write_text(MAGS)
    m = tmp_path / "map.toml"
    m.write_text('[bands.F150W]\nmag = "mag_F150W"\nerror = "magerr_F150W"\nmag_system = "Vega"\n')
    with pytest.raises(GccatError, match="ab_offset") as exc:
        ingest_catalog(lake, p, field_id="f", name="c", mapping_file=m)
    assert exc.value.column == "mag_F150W"
    with pytest.raises(GccatError, match="ab_offset"):  # --mag-system Vega alone is not enough
        ingest_catalog(lake, p, field_id="f", name="c", mag_system="Vega")
    m.write_text(m.read_text() + "ab_offset = 1.25\n")
    ingest_catalog(lake, p, field_id="f", name="c", mapping_file=m)
    f, e = _want_ab([26.25, 27.25], [0.1, 0.2])
    assert _fluxes(lake)[("b", "F150W")] == (pytest.approx(f[1], rel=1e-12), pytest.approx(e[1], rel=1e-12))


@pytest.mark.parametrize(
    "mapping,kw,words",
    [
        ('[options]\nmag_system = "AB"\n', {"mag_system": "Vega"}, "contradicts"),
        (
            '[bands.F150W]\nmag = "mag_F150W"\nunit = "ABmag"\nmag_system = "Vega"\nab_offset = 1.0\n',
            {},
            "said differently",
        ),
        ('[bands.F150W]\nmag = "mag_F150W"\nunit = "ABmag"\nab_offset = 1.0\n', {}, "these are AB"),
        ('[bands.F150W]\nflux = "mag_F150W"\nmag_system = "AB"\n', {}, "not a flux"),
        ('[bands.F150W]\nflux = "mag_F150W"\nunit = "ABmag"\n', {}, "as flux"),
        ('[bands.F150W]\nmag = "mag_F150W"\nmag_system = "Johnson"\n', {}, "AB, Vega or ST"),
        ('[bands.F150W]\nmag = "mag_F150W"\nmag_system = "Vega"\nab_offset = 99\n', {}, "ab_offset"),
        ('[bands.F150W]\nmag = "mag_F150W"\nunit = "MJy/sr"\n', {}, "surface brightness"),
    ],
)
def test_contradicting_or_impossible_magnitude_declarations_are_refused(mapping, kw, words, tmp_path, lake):
    p = tmp_path / "mags.csv"
    p.write_text(MAGS)
    m = tmp_path / "map.toml"
    m.write_text(mapping)
    before = snapshot(lake)
    with pytest.raises(GccatError, match=words):
        ingest_catalog(lake, p, field_id="f", name="c", mapping_file=m, **kw)
    assert snapshot(lake) == before


def test_mag_system_option_is_checked(tmp_path, cli):
    p = tmp_path / "mags.csv"
    p.write_text(MAGS)
    lake = Lake.create(tmp_path / "lake")
    line = _one_error_line(
        cli(
            "ingest",
            "catalog",
            p,
            "--field",
            "f",
            "--name",
            "c",
            "--mag-system",
            "Johnson",
            "--lake",
            lake.root,
        )
    )
    assert "--mag-system" in line and "'Johnson'" in line


# -- magnitude errors --------------------------------------------------------------------


@pytest.mark.parametrize("unit", ["mag", "mag(AB)"])
def test_vizier_style_fits_magnitudes_with_errors_become_fluxes_with_errors(unit, tmp_path, lake):
    rng = np.random.default_rng(4)
    n = 30
    flux = {"F150W": rng.uniform(5, 500, n), "F200W": rng.uniform(5, 500, n)}
    t = Table(
        {
            "ID": np.arange(1, n + 1),
            "RAJ2000": RA + rng.uniform(0, 0.01, n),
            "DEJ2000": DEC + rng.uniform(0, 0.01, n),
        }
    )
    sig_m = {b: rng.uniform(0.01, 0.3, n) for b in flux}
    t["F150Wmag"] = 31.4 - 2.5 * np.log10(flux["F150W"])
    t["e_F150Wmag"] = sig_m["F150W"]
    t["F200W_mag"] = 31.4 - 2.5 * np.log10(flux["F200W"])
    t["e_F200W_mag"] = sig_m["F200W"]
    for c in ("F150Wmag", "e_F150Wmag", "F200W_mag", "e_F200W_mag"):
        t[c].unit = "mag"  # TUNIT 'mag', as VizieR writes it (then the system is an option)
    t["RAJ2000"].unit = t["DEJ2000"].unit = "deg"
    p = tmp_path / "vizier.fits"
    t.write(p)
    if unit != "mag":  # astropy writes no FITS unit it does not know: set the cards
        with fits.open(p, mode="update") as hdul:
            for k in (4, 6):
                hdul[1].header[f"TUNIT{k}"] = unit
    assert fits.getheader(p, 1)["TUNIT4"] == unit
    r = ingest_catalog(lake, p, field_id="f", name="c", **({"mag_system": "AB"} if unit == "mag" else {}))
    assert r.n_photometry == 2 * n
    con = connect(lake)
    assert con.execute("SELECT count(flux_err_njy) FROM photometry").fetchall()[0][0] == 2 * n
    extra = con.execute("SELECT extra FROM detections LIMIT 1").fetchall()[0][0]
    assert extra is None  # every column mapped: nothing left in extra
    fl = _fluxes(lake)
    for b in flux:
        for i in range(n):
            f, e = fl[(str(i + 1), b)]
            assert f == pytest.approx(flux[b][i], rel=1e-10)
            assert e == pytest.approx(0.4 * np.log(10) * flux[b][i] * sig_m[b][i], rel=1e-10)


ERROR_SPELLINGS = [  # (value column, error column)
    ("F150W_mag", "e_F150W_mag"),
    ("F150W_mag", "F150W_mag_err"),
    ("F150W_mag", "F150W_magerr"),
    ("F150W_mag", "F150W_emag"),
    ("mag_F150W", "magerr_F150W"),
    ("F150Wmag", "e_F150Wmag"),
    ("mag_F150W", "e_mag_F150W"),
    ("mag_F150W", "mag_F150W_err"),
    ("F150W_mag", "F150W_err"),
    ("flux_F150W", "e_F150W"),
    ("F150W_flux", "F150W_flux_err"),
    ("F150W_flux", "F150W_fluxerr"),
    ("flux_F150W", "flux_F150W_err"),
    ("F150W", "e_F150W"),
    ("flux_F150W", "e_F150W_flux"),
    ("F150W_flux", "F150W_err"),
    ("flux_F150W", "fluxerr_F150W"),
    ("f_F150W", "df_F150W"),
]


@pytest.mark.parametrize("value,error", ERROR_SPELLINGS, ids=[f"{v}|{e}" for v, e in ERROR_SPELLINGS])
def test_every_usual_error_spelling_is_recognised(value, error, tmp_path, lake):
    is_mag = "mag" in value.lower()
    # magnitudes declared AB by the file (ECSV units), as a table from the papers would be
    p = _ecsv(
        tmp_path, {value: [25.0, 24.0], error: [0.1, 0.2]}, {value: "mag(AB)", error: "mag"} if is_mag else {}
    )
    r = ingest_catalog(lake, p, field_id="f", name="c")
    assert r.bands == ["F150W"]
    got = connect(lake).execute("SELECT count(flux_err_njy), count(*) FROM photometry").fetchall()[0]
    assert got == (2, 2)
    assert r.mapping["bands"]["F150W"]["error"] == error
    assert not any("no error column" in w for w in r.warnings)


def test_a_band_without_errors_and_dropped_values_are_warned_about(tmp_path, lake):
    p = tmp_path / "cat.csv"
    p.write_text(
        "id,ra,dec,flux_F150W,flux_F200W,fluxerr_F200W\n"
        "a,110.8,-73.45,10,5,1\nb,110.8,-73.45,,6,\nc,110.8,-73.45,nan,7,1\n"
    )
    r = ingest_catalog(lake, p, field_id="f", name="c")
    assert any("F150W" in w and "no error column" in w for w in r.warnings), r.warnings
    assert any(w.startswith("flux_F150W: 2 of 3") for w in r.warnings), r.warnings
    assert any(w.startswith("fluxerr_F200W: 1 ") and "no error" in w for w in r.warnings)


def test_sentinel_magnitudes_and_errors_are_dropped_with_a_count(tmp_path, lake):
    p = tmp_path / "cat.csv"
    p.write_text(
        "id,ra,dec,F150W_abmag,F150W_magerr\na,110.8,-73.45,25.0,0.1\n"
        "b,110.8,-73.45,99.0,-99.0\nc,110.8,-73.45,24.0,99.0\n"
    )
    r = ingest_catalog(lake, p, field_id="f", name="c")
    fl = _fluxes(lake)
    assert ("b", "F150W") not in fl
    assert fl[("c", "F150W")] == (pytest.approx(_want_ab(24.0)[0]), None)
    assert any(w.startswith("F150W_abmag: 1 magnitudes >= 90") for w in r.warnings), r.warnings
    assert any(w.startswith("F150W_magerr: 1 magnitude errors >= 90") for w in r.warnings)


# -- images --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bunit,factor",
    [
        ("MJy/sr", 1e15 * 0.04**2 / ARCSEC2_PER_SR),
        ("mJy/sr", 1e6 * 0.04**2 / ARCSEC2_PER_SR),
        ("uJy/arcsec2", 1e3 * 0.04**2),
        ("nJy/pix", 1.0),
        ("nJy", 1.0),
        ("10 nJy", 10.0),
        ("Jy/pixel", 1e9),
    ],
)
def test_image_units(bunit, factor):
    assert njy_per_unit(fits.Header({"BUNIT": bunit}), 0.04) == pytest.approx(factor, rel=1e-12)


def test_image_count_rates_use_photfnu_and_counts_are_refused(tmp_path):
    h = fits.Header({"BUNIT": "ELECTRONS/S", "PHOTFNU": 1.5e-7})
    assert njy_per_unit(h, 0.04) == pytest.approx(150.0)
    h = fits.Header({"PHOTFNU": 1.5e-7})  # HST without BUNIT: PHOTFNU is per count/s
    assert njy_per_unit(h, 0.04) == pytest.approx(150.0)
    for bunit, words in (
        ("ELECTRONS", "not a count rate"),
        ("furlong", "astropy"),
        ("MJY/SR", "ambiguous"),
        ("K", "not a flux"),
    ):
        with pytest.raises(GccatError, match=words) as exc:
            njy_per_unit(fits.Header({"BUNIT": bunit, "PHOTFNU": 1.5e-7}), 0.04, path=tmp_path / "img.fits")
        assert "BUNIT" in str(exc.value) and "img.fits" in str(exc.value)
        assert "--zeropoint" in str(exc.value)


def test_an_image_in_millijansky_per_steradian_is_measured_1e9_below_megajansky(tmp_path):
    from catalog.simulations import simulate_mosaic_files
    from ingest.pointsources import run_photometry

    sim = simulate_mosaic_files(tmp_path / "sim", "m", bands=("F150W",), shape=(64, 64), n_points=4, seed=1)
    src = sim["images"]["F150W"]
    cat = tmp_path / "pos.csv"
    cat.write_text("id,ra,dec\na,342.18321,-44.53088\nb,342.18330,-44.53080\n")
    measured = {}
    for bunit in ("nJy", "MJy/sr", "mJy/sr"):
        img = tmp_path / f"img_{bunit.replace('/', '_')}.fits"
        with fits.open(src) as hdul:
            for h in hdul:
                h.header.pop("BUNIT", None)
            hdul["SCI"].header["BUNIT"] = bunit  # same pixel values, other unit
            hdul.writeto(img)
        lake = Lake.create(tmp_path / f"lake_{bunit.replace('/', '_')}")
        ingest_catalog(lake, cat, field_id="as1063", name="pos")
        run_photometry(lake, img, band=None, field_id="as1063", catalog="pos", aperture_radii_arcsec=[0.2])
        rows = (
            connect(lake)
            .execute(
                "SELECT detection_id, flux_njy, flux_err_njy FROM photometry "
                "WHERE method = 'aperture' ORDER BY 1"
            )
            .fetchall()
        )
        measured[bunit] = np.array([r[1:] for r in rows], float)
    pix_sr = 0.03**2 / ARCSEC2_PER_SR
    np.testing.assert_allclose(measured["mJy/sr"], 1e-9 * measured["MJy/sr"], rtol=1e-12)
    np.testing.assert_allclose(measured["MJy/sr"], 1e15 * pix_sr * measured["nJy"], rtol=1e-6)


# -- the SQL function ----------------------------------------------------------------------


def test_to_njy_in_sql_is_case_sensitive_and_refuses_plain_mag():
    from catalog.queries.udfs import register_udfs

    con = duckdb.connect()
    register_udfs(con)
    got = con.execute(
        "SELECT to_njy(1.0, 'MJy'), to_njy(1.0, 'mJy'), to_njy(3.0, '10 nJy'), "
        "to_njy(1e-29, 'erg/(s cm2 Hz)'), to_njy(31.4, 'mag(AB)'), "
        "to_njy(0.0, 'mag(Jy)')"
    ).fetchall()[0]
    assert got == pytest.approx((1e15, 1e6, 30.0, 1000.0, 1.0, 1e9), rel=1e-12)
    for unit, words in (("mag", "does not say AB"), ("MJy/sr", "not a flux density"), ("furlong", "astropy")):
        with pytest.raises(duckdb.Error, match=words):
            con.execute("SELECT to_njy(25.0, ?)", [unit]).fetchall()
