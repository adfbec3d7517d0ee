"""Ingest options: values that cannot be physical are refused in one line, the lake unchanged.

The Python API refuses the same values as the CLI (the checks live in ``ingest_catalog``).
"""

import math

import pytest

from catalog.errors import GccatError
from catalog.lake import Lake
from ingest.catalog import ingest_catalog

from ..conftest import SMACS, snapshot


def _one_error_line(res) -> str:
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("gccat: error: "), res.stderr
    assert "Traceback" not in res.output
    return lines[0]


@pytest.mark.parametrize("z", ["-0.1", "nan", "inf", "-inf", "25"])
def test_unphysical_redshift_option_is_refused(z, tmp_path, cli):
    lake = Lake.create(tmp_path / "lake")
    before = snapshot(lake)
    res = cli(
        "ingest", "catalog", SMACS, "--field", "smacs0723", "--name", "c", "--z", z, "--lake", lake.root
    )
    line = _one_error_line(res)
    assert "--z" in line and "[0, 20]" in line
    assert snapshot(lake) == before


@pytest.mark.parametrize("z", [-1.0, math.nan, math.inf])
def test_the_python_api_refuses_the_same_redshifts(z, lake):
    before = snapshot(lake)
    with pytest.raises(GccatError, match="--z"):
        ingest_catalog(lake, SMACS, field_id="smacs0723", name="c", z=z)
    assert snapshot(lake) == before


def test_a_valid_redshift_option_fills_only_missing_redshifts(tmp_path, lake):
    p = tmp_path / "cat.csv"
    p.write_text("id,ra,dec,z\na,110.8,-73.4,0.5\nb,110.8,-73.4,\nc,110.8,-73.4,nan\n")
    ingest_catalog(lake, p, field_id="f", name="c", z=0.39)
    from catalog.queries.connection import connect

    got = connect(lake).execute("SELECT source_id, z FROM detections ORDER BY 1").fetchall()
    assert got == [("a", 0.5), ("b", 0.39), ("c", 0.39)]


@pytest.mark.parametrize("unit", ["parsec", "ABmag", "", "erg/s"])
def test_unknown_flux_unit_is_refused_even_when_no_column_needs_it(unit, tmp_path, cli):
    # every flux column of this file declares its unit in its name: the option is unused,
    # but a wrong value must not be recorded in the ingest as if it meant something
    p = tmp_path / "cat.csv"
    p.write_text("id,ra,dec,flux_F150W_uJy\na,110.8,-73.4,1.0\n")
    lake = Lake.create(tmp_path / "lake")
    before = snapshot(lake)
    res = cli("ingest", "catalog", p, "--field", "f", "--name", "c", "--flux-unit", unit, "--lake", lake.root)
    line = _one_error_line(res)
    assert "--flux-unit" in line and repr(unit) in line
    assert snapshot(lake) == before


@pytest.mark.parametrize("unit,factor", [("uJy", 1e3), ("microJy", 1e3), ("mJy", 1e6), ("Jy", 1e9)])
def test_known_flux_units_convert_exactly(unit, factor, tmp_path, lake):
    p = tmp_path / "cat.csv"
    p.write_text("id,ra,dec,flux_F150W,fluxerr_F150W\na,110.8,-73.4,2.5,0.5\n")
    r = ingest_catalog(lake, p, field_id="f", name="c", flux_unit=unit)
    assert r.n_photometry == 1
    from catalog.queries.connection import connect

    f, e = connect(lake).execute("SELECT flux_njy, flux_err_njy FROM photometry").fetchall()[0]
    assert (f, e) == (2.5 * factor, 0.5 * factor)
