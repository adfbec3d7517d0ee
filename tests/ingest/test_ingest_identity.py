"""An ingest is identified by its file(s) and the options that change what is stored.

The same file with the same options is a no-op; the same file with other options (a
corrected mapping, --flux-unit, --z, --mw-corrected, --mag-system; for lens maps --dls-ds,
--z-source, --quantity) needs --replace, and the error says what differs.
"""

import json

import pytest

from catalog.errors import GccatError
from catalog.files import sha256_file
from catalog.lake import Lake
from catalog.queries.connection import connect
from ingest.catalog import ingest_catalog, ingest_fields
from ingest.demo import bundled
from ingest.lens import ingest_lens_maps

from ..conftest import FIELDS, snapshot

CSV = "id,ra,dec,z,flux_F150W,fluxerr_F150W\na,110.8,-73.45,,10.0,1.0\nb,110.81,-73.45,0.5,12.0,1.5\n"
#: with a plain magnitude column, which needs --mag-system (or a mapping) to be read at all
CSV_MAG = (
    "id,ra,dec,z,flux_F150W,fluxerr_F150W,mag_F200W,magerr_F200W\n"
    "a,110.8,-73.45,,10.0,1.0,25.0,0.1\nb,110.81,-73.45,0.5,12.0,1.5,26.0,0.2\n"
)


@pytest.fixture
def cat(tmp_path):
    p = tmp_path / "cat.csv"
    p.write_text(CSV)
    return p


def _flux(lake, band="F150W"):
    return (
        connect(lake)
        .execute(
            "SELECT flux_njy FROM photometry JOIN detections d "
            "USING (detection_id) WHERE band = ? AND source_id = 'a'",
            [band],
        )
        .fetchall()[0][0]
    )


CHANGES = {  # option change -> (first options, second options, what the error names,
    #                              a check of what is stored after --replace)
    "flux_unit": ({}, {"flux_unit": "uJy"}, "factor_to_njy", lambda lk: _flux(lk) == 10000.0),
    "z": (
        {},
        {"z": 0.39},
        "z: None -> 0.39",
        lambda lk: (
            connect(lk).execute("SELECT z FROM detections WHERE source_id = 'a'").fetchall()[0][0] == 0.39
        ),
    ),
    "mw_corrected": (
        {},
        {"mw_corrected": True},
        "mw_corrected",
        lambda lk: (
            connect(lk).execute("SELECT bool_and(mw_corrected) FROM photometry").fetchall()[0][0] is True
        ),
    ),
    "mapping": ({}, {"mapping": "uJy"}, "factor_to_njy", lambda lk: _flux(lk) == 10000.0),
    "mag_system": (
        {"mag_system": "AB"},
        {"mapping": "vega"},
        "mag_system",
        lambda lk: _flux(lk, "F200W") == pytest.approx(10 ** (-0.4 * (26.0 - 31.4))),
    ),
}
MAPPINGS = {
    "vega": '[bands.F150W]\nflux = "flux_F150W"\nerror = "fluxerr_F150W"\n'
    '[bands.F200W]\nmag = "mag_F200W"\nerror = "magerr_F200W"\n'
    'mag_system = "Vega"\nab_offset = 1.0\n',
    "uJy": '[bands.F150W]\nflux = "flux_F150W"\nerror = "fluxerr_F150W"\nunit = "uJy"\n',
}


def _kw(tmp_path, change: dict) -> dict:
    kw = dict(change)
    if "mapping" in kw:
        m = tmp_path / "map.toml"
        m.write_text(MAPPINGS[kw.pop("mapping")])
        kw["mapping_file"] = m
    return kw


def test_same_file_and_same_options_is_a_no_op(cat, lake):
    first = ingest_catalog(lake, cat, field_id="f", name="c")
    before = snapshot(lake)
    again = ingest_catalog(lake, cat, field_id="f", name="c", replace=True)
    assert again.skipped and again.ingest_id == first.ingest_id
    assert snapshot(lake) == before


def test_the_spelling_of_a_unit_is_not_an_option_that_changes_the_data(cat, lake):
    ingest_catalog(lake, cat, field_id="f", name="c", flux_unit="uJy")
    assert ingest_catalog(lake, cat, field_id="f", name="c", flux_unit="microJy").skipped


@pytest.mark.parametrize("key", sorted(CHANGES))
def test_same_file_with_other_options_needs_replace_and_then_supersedes(key, cat, lake, tmp_path):
    first_kw, change, named, stored = CHANGES[key]
    if key == "mag_system":
        cat.write_text(CSV_MAG)
    first = ingest_catalog(lake, cat, field_id="f", name="c", **first_kw)
    before = snapshot(lake)
    kw = _kw(tmp_path, change)
    with pytest.raises(GccatError, match="--replace") as exc:
        ingest_catalog(lake, cat, field_id="f", name="c", **kw)
    assert "from this file with other options" in exc.value.message and named in exc.value.message
    assert snapshot(lake) == before
    r = ingest_catalog(lake, cat, field_id="f", name="c", replace=True, **kw)
    assert not r.skipped and r.superseded == [first.ingest_id]
    assert stored(lake)
    assert connect(lake).execute("SELECT count(*) FROM detections").fetchall()[0][0] == 2
    assert ingest_catalog(lake, cat, field_id="f", name="c", **kw).skipped  # and now it is a repeat


def test_the_cli_says_what_differs(cat, tmp_path, cli):
    lake = Lake.create(tmp_path / "lake")
    args = ["ingest", "catalog", cat, "--field", "f", "--name", "c", "--lake", lake.root]
    assert cli(*args).exit_code == 0
    res = cli(*args)
    assert res.exit_code == 0 and "same file and options" in res.stdout
    res = cli(*args, "--flux-unit", "uJy")
    assert res.exit_code == 2
    line = res.stderr.strip()
    assert len(line.splitlines()) == 1 and "other options" in line and "--replace" in line
    res = cli(*args, "--flux-unit", "uJy", "--replace")
    assert res.exit_code == 0 and "superseding" in res.stdout


def test_an_ingest_recorded_before_identities_is_compared_by_its_file(cat, lake):
    """Old lakes have no identity in their ingests' options: the same file stays a no-op."""
    with lake.transaction("catalog") as tx:
        tx.commit(
            name="c",
            field_id="f",
            source_path=cat.resolve(),
            sha256=sha256_file(cat),
            n_rows=2,
            options={"mapping": {}, "z": None, "flux_unit": "nJy"},
        )
    assert ingest_catalog(lake, cat, field_id="f", name="c", z=0.3).skipped


def test_the_identity_is_recorded_next_to_the_file_digest(cat, lake):
    cat.write_text(CSV_MAG)
    r = ingest_catalog(lake, cat, field_id="f", name="c", mag_system="AB")
    row = lake.ingests().to_pylist()[0]
    assert row["ingest_id"] == r.ingest_id and row["sha256"] == sha256_file(cat)
    opts = json.loads(row["options"])
    assert len(opts["identity"]) == 64 and opts["identity_options"]["z"] is None
    assert opts["identity_options"]["mapping"]["bands"]["F200W"]["mag_system"] == "AB"


# -- lens maps -----------------------------------------------------------------------------

XDEF = bundled("as1063_lenstool_patch_bin4_x-arcsec-deflect.fits")


@pytest.fixture
def lens_lake(tmp_path):
    lake = Lake.create(tmp_path / "lake")
    ingest_fields(lake, FIELDS)
    return lake


@pytest.mark.parametrize(
    "first,second,named",
    [
        ({}, {"dls_ds_norm": 0.5}, "dls_ds: 1.0 -> 0.5"),
        ({}, {"z_source": 2.0}, "z_source"),
        ({}, {"quantity": "psi"}, "quantities"),
        ({"team": "Lenstool"}, {"team": "CATS"}, "team"),
    ],
)
def test_lens_maps_with_other_options_need_replace(first, second, named, lens_lake):
    one = ingest_lens_maps(lens_lake, [XDEF], field_id="as1063", model="m", **first)
    assert ingest_lens_maps(lens_lake, [XDEF], field_id="as1063", model="m", **first).skipped
    before = snapshot(lens_lake)
    with pytest.raises(GccatError, match="--replace") as exc:
        ingest_lens_maps(lens_lake, [XDEF], field_id="as1063", model="m", **second)
    assert "other options" in exc.value.message and named in exc.value.message
    assert snapshot(lens_lake) == before
    r = ingest_lens_maps(lens_lake, [XDEF], field_id="as1063", model="m", replace=True, **second)
    assert r.superseded == [one.ingest_id]
    row = connect(lens_lake).execute("SELECT quantity, dls_ds, team FROM lens_models").fetchall()
    want_q = second.get("quantity", "x-arcsec-deflect")
    assert len(row) == 1 and row[0][0] == want_q
    if "dls_ds_norm" in second:
        assert row[0][1] == 0.5
    if "z_source" in second:
        assert row[0][1] < 1
    assert ingest_lens_maps(lens_lake, [XDEF], field_id="as1063", model="m", **second).skipped
