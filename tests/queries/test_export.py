"""Exports keep units, UCDs and descriptions; HATS exports open in LSDB."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from astropy.io import fits
from astropy.table import Table

from catalog.sky import healpix29

QUERY = (
    "SELECT detection_id, ra, dec, healpix29, flux_F150W, fluxerr_F150W, mag_F150W "
    "FROM photometry_wide WHERE field_id = 'smacs0723'"
)


def _export(cli, demo, out, fmt):
    res = cli("export", "--query", QUERY, "--format", fmt, "--out", out, "--lake", demo.lake.root)
    assert res.exit_code == 0, res.output


def test_parquet_carries_arrow_and_voparquet_metadata_and_a_manifest(demo, tmp_path, cli):
    out = tmp_path / "sc.parquet"
    _export(cli, demo, out, "parquet")
    schema = pq.read_schema(out)
    md = schema.field("flux_F150W").metadata
    assert md[b"unit"] == b"nJy" and md[b"ucd"] == b"phot.flux.density"
    assert schema.field("ra").metadata[b"ucd"] == b"pos.eq.ra;meta.main"
    assert b"IVOA.VOTable-Parquet.content" in schema.metadata
    t = Table.read(out, format="parquet.votable")
    assert len(t) == 178
    assert str(t["ra"].unit) == "deg" and str(t["flux_F150W"].unit) == "nJy"
    assert str(t["mag_F150W"].unit) == "mag"
    assert "1-sigma" in t["fluxerr_F150W"].description
    man = json.loads(out.with_name("sc.parquet.manifest.json").read_text())
    assert man["rows"] == 178 and man["lake_version"] == demo.lake.version()
    assert man["query"] == QUERY
    import hashlib

    assert man["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()


@pytest.mark.parametrize("fmt", ["fits", "ecsv", "votable"])
def test_fits_ecsv_votable_keep_units(demo, tmp_path, cli, fmt):
    out = tmp_path / f"sc.{ {'votable': 'vot'}.get(fmt, fmt) }"
    _export(cli, demo, out, fmt)
    t = Table.read(out, format={"ecsv": "ascii.ecsv"}.get(fmt, fmt))
    assert len(t) == 178
    assert str(t["flux_F150W"].unit) == "nJy" and str(t["dec"].unit) == "deg"
    if fmt == "fits":
        h = fits.getheader(out, 1)
        i = t.colnames.index("flux_F150W") + 1
        assert h[f"TUCD{i}"] == "phot.flux.density"
    if fmt == "votable":
        from astropy.io.votable import parse_single_table

        f = parse_single_table(out).get_field_by_id("flux_F150W")
        assert f.ucd == "phot.flux.density"


def test_existing_output_is_not_overwritten_without_flag(demo, tmp_path, cli):
    out = tmp_path / "sc.parquet"
    out.write_text("precious")
    res = cli("export", "--table", "detections", "--out", out, "--lake", demo.lake.root)
    assert res.exit_code == 2 and out.read_text() == "precious"


def test_hats_export_opens_in_lsdb(demo, tmp_path, cli):
    import lsdb

    out = tmp_path / "smacs_hats"
    _export(cli, demo, out, "hats")
    cat = lsdb.open_catalog(out)
    df = cat.compute()
    assert len(df) == 178
    np.testing.assert_array_equal(
        np.sort(df.index.to_numpy()), np.sort(healpix29(df["ra"].to_numpy(), df["dec"].to_numpy()))
    )
    assert json.loads((out / "gccat_manifest.json").read_text())["rows"] == 178
