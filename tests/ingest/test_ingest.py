"""Catalog ingestion: formats, units, mappings, idempotence, --replace and versions."""

import numpy as np
import pyarrow.parquet as pq
import pytest
from astropy.coordinates import SkyCoord
from astropy.table import Table

from catalog.errors import GccatError
from catalog.queries.connection import connect
from ingest.catalog import ingest_catalog, ingest_fields

from ..conftest import GLASS, SMACS, snapshot

BANDS6 = ["F090W", "F150W", "F200W", "F277W", "F356W", "F444W"]


def smacs_table() -> Table:
    return Table.read(SMACS, format="ascii.csv", comment="#")


def lake_fluxes(lake, catalog):
    con = connect(lake)
    rows = con.execute(
        "SELECT source_id, band, flux_njy, flux_err_njy FROM photometry p "
        "JOIN detections d USING (detection_id) WHERE d.catalog = ? "
        "ORDER BY source_id, band",
        [catalog],
    ).fetchall()
    return {(s, b): (f, e) for s, b, f, e in rows}


def test_smacs_clusters_all_arrive_with_negative_fluxes_and_zero_errors(lake):
    r = ingest_catalog(lake, SMACS, field_id="smacs0723", name="faisst2022", mw_corrected=True)
    src = smacs_table()
    n_values = sum(int((~np.isnan(np.asarray(src[f"flux_{b}"], float))).sum()) for b in BANDS6)
    assert (r.n_rows, r.n_photometry, r.bands) == (178, n_values, BANDS6)
    fl = lake_fluxes(lake, "faisst2022")
    for row in src[:20]:
        for b in BANDS6:
            assert fl[(row["id"], b)] == (pytest.approx(row[f"flux_{b}"]), pytest.approx(row[f"fluxerr_{b}"]))
    n_neg = sum(int((np.asarray(src[f"flux_{b}"]) < 0).sum()) for b in BANDS6)
    n_zero = sum(int((np.asarray(src[f"fluxerr_{b}"]) == 0).sum()) for b in BANDS6)
    con = connect(lake)
    assert n_neg > 0 and n_zero > 0
    assert con.execute("SELECT count(*) FROM photometry WHERE flux_njy < 0").fetchall()[0][0] == n_neg
    assert con.execute("SELECT count(*) FROM photometry WHERE quality & 1 = 1").fetchall()[0][0] == n_zero
    assert con.execute("SELECT bool_and(mw_corrected) FROM photometry").fetchall()[0][0] is True
    assert any("errors of exactly 0" in w for w in r.warnings)


def test_sexagesimal_and_microjansky_are_converted(lake):
    ingest_catalog(lake, GLASS, field_id="abell2744_glass", name="glass")
    src = Table.read(GLASS, format="ascii.csv", comment="#")
    ref = SkyCoord(src["ra_hms"], src["dec_dms"], unit=("hourangle", "deg"))
    con = connect(lake)
    got = con.execute("SELECT source_id, ra, dec, z FROM detections ORDER BY source_id").fetchall()
    by_id = {s: (ra, dec, z) for s, ra, dec, z in got}
    for i, row in enumerate(src):
        ra, dec, z = by_id[str(row["id"])]
        assert ra == pytest.approx(ref[i].ra.deg, abs=1e-9)
        assert dec == pytest.approx(ref[i].dec.deg, abs=1e-9)
        assert z == pytest.approx(row["z_phot"])
    fl = lake_fluxes(lake, "glass")
    first = src[0]
    assert fl[(str(first["id"]), "F444W")][0] == pytest.approx(first["flux_F444W_uJy"] * 1000)
    extra = con.execute("SELECT extra FROM detections WHERE source_id = ?", [str(first["id"])]).fetchall()[0][
        0
    ]
    assert '"log_mass":' in extra


@pytest.mark.parametrize("fmt", ["ecsv", "fits", "votable", "parquet"])
def test_every_format_gives_the_same_nanojanskys(lake, tmp_path, fmt):
    t = smacs_table()
    for b in BANDS6:  # store in microJansky with declared units: gccat must convert
        for c in (f"flux_{b}", f"fluxerr_{b}"):
            t[c] = t[c] / 1000.0
            t[c].unit = "uJy"
    path = tmp_path / f"smacs.{ {'votable': 'vot'}.get(fmt, fmt) }"
    if fmt == "parquet":
        pq.write_table(t.to_pandas().pipe(__import__("pyarrow").Table.from_pandas), path)
        r = ingest_catalog(lake, path, field_id="smacs0723", name=fmt, flux_unit="uJy")
    else:
        t.write(path, format={"ecsv": "ascii.ecsv"}.get(fmt, fmt))
        r = ingest_catalog(lake, path, field_id="smacs0723", name=fmt)
    ingest_catalog(lake, SMACS, field_id="smacs0723", name="csv")
    assert r.n_rows == 178
    ours, ref = lake_fluxes(lake, fmt), lake_fluxes(lake, "csv")
    assert ours.keys() == ref.keys()
    for k, (f, e) in ref.items():
        assert ours[k][0] == pytest.approx(f, rel=1e-9, abs=1e-9)
        assert ours[k][1] == pytest.approx(e, rel=1e-9, abs=1e-9)


def test_ab_magnitudes_with_errors_become_fluxes(lake, tmp_path):
    p = tmp_path / "mags.csv"
    p.write_text(
        "# a magnitude catalog\nid,ra,dec,mag_F150W,magerr_F150W,F200W_mag,F200W_err\n"
        "a,110.8,-73.45,25.0,0.1,26.0,0.2\nb,110.81,-73.45,31.4,0.05,99.0,1.0\n"
    )
    # plain "mag" columns do not say AB or Vega: the system is declared
    r = ingest_catalog(lake, p, field_id="smacs0723", name="mags", mag_system="AB")
    fl = lake_fluxes(lake, "mags")
    f25 = 10 ** (-0.4 * (25.0 - 31.4))
    assert fl[("a", "F150W")][0] == pytest.approx(f25)
    assert fl[("a", "F150W")][1] == pytest.approx(0.4 * np.log(10) * f25 * 0.1)
    assert fl[("b", "F150W")][0] == pytest.approx(1.0)
    assert fl[("a", "F200W")][1] == pytest.approx(0.4 * np.log(10) * fl[("a", "F200W")][0] * 0.2)
    assert ("b", "F200W") not in fl  # mag 99 is a non-detection sentinel
    assert any("sentinel" in w for w in r.warnings)


def test_toml_mapping_names_columns_units_and_upper_limits(lake, tmp_path):
    p = tmp_path / "odd.csv"
    p.write_text(
        "NUM,RAdeg,DEdeg,photz,A,eA,limA\n1,342.18,-44.53,1.38,0.5,0.1,false\n2,342.19,-44.53,,0.3,0.1,true\n"
    )
    m = tmp_path / "map.toml"
    m.write_text(
        '[columns]\nid = "NUM"\nra = "RAdeg"\ndec = "DEdeg"\nz = "photz"\n'
        '[bands.F115WN]\nflux = "A"\nerror = "eA"\nunit = "uJy"\nupper_limit = "limA"\n'
        "[options]\nmw_corrected = true\naperture_arcsec = 0.3\n"
    )
    ingest_catalog(lake, p, field_id="as1063", name="odd", mapping_file=m, z=0.348)
    con = connect(lake)
    rows = con.execute(
        "SELECT source_id, d.z, band, flux_njy, is_upper_limit, mw_corrected, "
        "aperture_radius_arcsec FROM photometry JOIN detections d USING (detection_id) "
        "ORDER BY source_id"
    ).fetchall()
    # the older option aperture_arcsec is the aperture diameter: stored as radius 0.15"
    assert rows == [
        ("1", 1.38, "F115WN", 500.0, False, True, 0.15),
        ("2", 0.348, "F115WN", 300.0, True, True, 0.15),
    ]
    inst = con.execute("SELECT instrument FROM bands WHERE band = 'F115WN'").fetchall()[0][0]
    assert inst == "NIRISS"


def test_toml_aperture_radius_and_its_older_diameter_spelling(lake, tmp_path):
    p = tmp_path / "ap.csv"
    p.write_text("id,ra,dec,flux_F150W,fluxerr_F150W\n1,342.18,-44.53,5,1\n")
    m = tmp_path / "map.toml"
    m.write_text("[options]\naperture_radius_arcsec = 0.16\n")
    ingest_catalog(lake, p, field_id="as1063", name="radius", mapping_file=m)
    got = connect(lake).execute("SELECT aperture_radius_arcsec FROM photometry").fetchall()
    assert got == [(0.16,)]
    before = snapshot(lake)
    for text, match in (
        ("aperture_radius_arcsec = 0.16\naperture_arcsec = 0.32\n", "both"),
        ("aperture_radius_arcsec = -1\n", "aperture_radius_arcsec"),
        ('aperture_arcsec = "wide"\n', "aperture_arcsec"),
    ):
        m.write_text("[options]\n" + text)
        with pytest.raises(GccatError, match=match):
            ingest_catalog(lake, p, field_id="as1063", name="bad", mapping_file=m)
    assert snapshot(lake) == before


def test_same_file_twice_is_a_no_op(lake):
    ingest_catalog(lake, SMACS, field_id="smacs0723", name="faisst2022")
    before = snapshot(lake)
    r = ingest_catalog(lake, SMACS, field_id="smacs0723", name="faisst2022")
    assert r.skipped
    assert snapshot(lake) == before


def test_replace_supersedes_in_one_commit_and_old_versions_stay_readable(lake, tmp_path):
    ingest_catalog(lake, SMACS, field_id="smacs0723", name="sc")
    v1 = lake.version()
    edited = tmp_path / "smacs_v2.csv"
    lines = SMACS.read_text().splitlines()
    edited.write_text("\n".join(lines[:-10]) + "\n")  # a revised table with 10 fewer rows
    with pytest.raises(GccatError, match="--replace"):
        ingest_catalog(lake, edited, field_id="smacs0723", name="sc")
    r = ingest_catalog(lake, edited, field_id="smacs0723", name="sc", replace=True)
    assert lake.version() == v1 + 1 and len(r.superseded) == 1
    count = "SELECT count(*) FROM detections"
    assert connect(lake).execute(count).fetchall()[0][0] == 168
    assert connect(lake, as_of=v1).execute(count).fetchall()[0][0] == 178
    hist = (
        connect(lake)
        .execute(
            "SELECT status, superseded_by FROM ingest_history WHERE kind = 'catalog' ORDER BY committed_at"
        )
        .fetchall()
    )
    assert hist == [("superseded", r.ingest_id), ("live", None)]
    ids = connect(lake).execute("SELECT count(DISTINCT detection_id) FROM detections").fetchall()[0]
    assert ids[0] == 168


def test_detection_ids_are_stable_across_lakes(tmp_path):
    from catalog.lake import Lake

    ids = []
    for k in range(2):
        lk = Lake.create(tmp_path / f"l{k}")
        ingest_catalog(lk, SMACS, field_id="smacs0723", name="faisst2022")
        ids.append(
            connect(lk)
            .execute("SELECT list(detection_id ORDER BY detection_id) FROM detections")
            .fetchall()[0][0]
        )
    assert ids[0] == ids[1] and ids[0][0] == "smacs0723/faisst2022/SC_000"


def test_fields_and_their_bands(lake):
    from ..conftest import FIELDS

    r = ingest_fields(lake, FIELDS)
    con = connect(lake)
    f = con.execute(
        "SELECT z_cluster, ebv_mw, aliases, bands, pixel_scale_arcsec FROM fields "
        "WHERE field_id = 'smacs0723'"
    ).fetchall()[0]
    assert f[0] == 0.39 and f[1] == 0.2 and "SMACS0723" in f[2] and f[4] == [0.02, 0.04]
    assert "F115WN" in r.bands and "F435W" in r.bands
    pivot = con.execute("SELECT pivot_um FROM bands WHERE band = 'F150W'").fetchall()[0][0]
    assert pivot == pytest.approx(1.50, abs=0.01)
    assert ingest_fields(lake, FIELDS).skipped


def test_unknown_field_is_registered_at_the_sources_centre(lake, tmp_path):
    r = ingest_catalog(lake, SMACS, field_id="newfield", name="x")
    assert any("not in the lake" in w for w in r.warnings)
    ra, dec = connect(lake).execute("SELECT ra_center, dec_center FROM fields").fetchall()[0]
    assert ra == pytest.approx(110.83, abs=0.05) and dec == pytest.approx(-73.45, abs=0.05)
