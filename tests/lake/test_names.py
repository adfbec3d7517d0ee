"""Names that become paths (field ids, catalog and model names) are refused unless simple.

A refused name is a one-line error (exit code 2 through the CLI, ``GccatError`` through the
Python API) that leaves the lake exactly as it was, and the lake stays readable afterwards.
"""

import pytest

from catalog.checks import check_name
from catalog.errors import GccatError
from catalog.lake import Lake
from catalog.queries.connection import connect
from ingest.catalog import ingest_catalog
from ingest.lens import ingest_lens_maps

from ..conftest import snapshot

CSV = "id,ra,dec,flux_F150W,fluxerr_F150W\na,110.80,-73.45,10.0,1.0\nb,110.81,-73.46,12.0,1.5\n"

BAD = [
    # $ in re.match matches before a trailing newline: these were accepted and bricked the lake.
    "nl\n",
    "smacs0723\n",
    # control characters
    "tab\tx",
    "cr\rx",
    "bell\x07",
    "nul\x00x",
    "esc\x1b[31m",
    # unicode lookalikes and invisible characters
    "\u0430bell",  # Cyrillic a
    "smacs\u20100723",  # unicode hyphen
    "\ufb01eld",  # fi ligature
    "x\u200b",  # zero-width space
    "\uff46\uff55\uff4c\uff4c",  # fullwidth letters
    "a\u2028b",  # line separator
    "caf\u00e9",
    # path-like and hidden
    "../x",
    "a/b",
    "a\\b",
    ".hidden",
    "..",
    "a..b",
    "_delta_log",
    "_x",
    "-x",
    "a.",
    "a b",
    " lead",
    "trail ",
    "",
    # too long
    "x" * 65,
    # Windows device names, any case, with or without extension
    "con",
    "CON",
    "Nul",
    "aux",
    "prn",
    "com1",
    "COM9",
    "lpt1",
    "Lpt9",
    "aux.csv",
    "nul.txt",
    "prn.tar.gz",
    "con.",
    "COM3.parquet",
]
GOOD = ["abell2744", "x" * 64, "v1.0_b-2", "A", "9", "com10", "console", "nullify", "lpt0", "aux_1", "con-x"]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A lake with one committed catalog, and the small catalog file."""
    d = tmp_path_factory.mktemp("names")
    lake = Lake.create(d / "lake")
    path = d / "cat.csv"
    path.write_text(CSV)
    ingest_catalog(lake, path, field_id="f1", name="c")
    return lake, path


def _readable(lake: Lake, cli) -> None:
    """The lake answers queries, lists its tables and passes doctor."""
    con = connect(lake)
    assert con.execute("SELECT count(*) FROM detections").fetchall()[0][0] == 2
    for args in (("sql", "SELECT count(*) AS n FROM detections"), ("tables",), ("doctor",)):
        res = cli(*args, "--lake", lake.root)
        assert res.exit_code == 0, res.output


def _one_line_error(res) -> str:
    assert res.exit_code == 2, res.output
    err = res.stderr.strip()
    assert "\n" not in err and "\r" not in err and "Traceback" not in res.output
    assert err.startswith("gccat: error:") and "not a simple name" in err
    return err


@pytest.mark.parametrize("bad", BAD, ids=ascii)
@pytest.mark.parametrize("option", ["--field", "--name"])
def test_cli_refuses_unsafe_names(bad, option, base, cli):
    lake, path = base
    before = snapshot(lake)
    args = {"--field": "f1", "--name": "other"}
    args[option] = bad
    res = cli(
        "ingest", "catalog", path, "--field", args["--field"], "--name", args["--name"], "--lake", lake.root
    )
    _one_line_error(res)
    assert snapshot(lake) == before


@pytest.mark.parametrize("bad", BAD, ids=ascii)
def test_python_api_refuses_unsafe_names(bad, base, cli):
    lake, path = base
    before = snapshot(lake)
    for kwargs in ({"field_id": bad, "name": "other"}, {"field_id": "f1", "name": bad}):
        with pytest.raises(GccatError, match="not a simple name") as exc:
            ingest_catalog(lake, path, **kwargs)
        assert "\n" not in str(exc.value) and "\r" not in str(exc.value)
    from ingest.demo import bundled

    maps = [bundled(f"as1063_lenstool_patch_bin4_{a}-arcsec-deflect.fits") for a in "xy"]
    for kwargs in ({"field_id": bad, "model": "m"}, {"field_id": "f1", "model": bad}):
        with pytest.raises(GccatError, match="not a simple name"):
            ingest_lens_maps(lake, maps, **kwargs)
    assert snapshot(lake) == before


@pytest.mark.parametrize("good", GOOD)
def test_simple_names_are_accepted(good):
    assert check_name(good, "field id") == good


def test_a_field_id_in_a_fields_table_is_checked_too(base, tmp_path, cli):
    lake, _ = base
    before = snapshot(lake)
    fields = tmp_path / "fields.csv"
    fields.write_text("field_id,ra_center_deg,dec_center_deg\nnul,10.0,-10.0\n")
    res = cli("ingest", "fields", fields, "--lake", lake.root)
    _one_line_error(res)
    assert snapshot(lake) == before


def test_the_lake_is_still_readable_after_the_refusals(base, cli):
    # Runs after the refusals above (same module lake); each of them left the lake unchanged.
    lake, _ = base
    _readable(lake, cli)
    assert lake.version() == 1
