"""The tree reads as the architecture: one-way layers (checked by import-linter), a public API."""

import subprocess
import sys
from pathlib import Path

import pytest

import catalog

ROOT = Path(__file__).resolve().parents[1]


def test_imports_go_one_way():
    """cli -> ingest -> runs/plots -> queries -> lake -> science -> checks -> errors, as
    declared in pyproject.toml; nothing in catalog/ below the CLI imports ingest/."""
    code = (
        f"import os, sys; os.chdir({str(ROOT)!r}); from importlinter.cli import lint_imports; "
        "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True, no_logo=True))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "1 kept, 0 broken" in proc.stdout


def test_the_public_api_resolves_and_connects(tmp_path):
    for name in catalog.__all__:
        assert callable(getattr(catalog, name)), name
    lake = catalog.init_lake(tmp_path / "lake")
    con = catalog.connect(lake)
    assert catalog.run_sql(con, "SELECT count(*) AS n FROM detections")["n"].to_pylist() == [0]
    assert catalog.doctor(lake) == {}


def test_export_and_tables_are_one_api_call_each(tmp_path):
    """``gccat export`` and ``gccat tables`` are :func:`catalog.export` and
    :func:`catalog.table_summary`; the command only prints what they return."""
    lake = catalog.init_lake(tmp_path / "lake")
    csv = tmp_path / "cat.csv"
    csv.write_text("id,ra,dec,flux_F150W,fluxerr_F150W\na,110.80,-73.45,10.0,1.0\n")
    catalog.ingest_catalog(lake, csv, field_id="f1", name="c")
    m = catalog.export(lake, tmp_path / "det.parquet", table="detections")
    assert (m["rows"], m["format"], m["lake_version"]) == (1, "parquet", 1)
    m0 = catalog.export(lake, tmp_path / "old.csv", query="SELECT * FROM detections", as_of=0)
    assert (m0["rows"], m0["format"], m0["lake_version"]) == (0, "csv", 0)
    with pytest.raises(catalog.GccatError, match="exactly one of --table or --query"):
        catalog.export(lake, tmp_path / "x.csv")
    summary, version = catalog.table_summary(lake)
    rows = {r["table"]: r for r in summary.to_pylist()}
    assert version == 1
    assert rows["detections"]["live_rows"] == rows["detections"]["stored_rows"] == 1
    assert rows["ingests"]["live_rows"] == 1
