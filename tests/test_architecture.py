"""The tree reads as the architecture: one-way layers (checked by import-linter), a public API."""

import subprocess
import sys
from pathlib import Path

import catalog

ROOT = Path(__file__).resolve().parents[1]


def test_imports_go_one_way():
    """cli -> ingest -> runs/plots -> queries -> lake -> science -> checks -> errors, as
    declared in pyproject.toml; nothing in catalog/ below the CLI imports ingest/."""
    code = (f"import os, sys; os.chdir({str(ROOT)!r}); from importlinter.cli import lint_imports; "
            "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True, no_logo=True))")
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
