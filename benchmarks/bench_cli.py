"""CLI latency: ``gccat --help`` and a one-line ``gccat sql`` against bare baselines.

Each command runs in a fresh interpreter (as a user types it), ``--repeat`` times; the figures
are the median wall time and the ratio to its baseline, run in the same way:

- ``gccat --help`` vs the ``--help`` of a bare typer app with one command (the floor of any
  typer CLI on this machine);
- ``gccat sql "SELECT count(*) FROM detections"`` on the demo lake vs a bare Python script
  that imports duckdb and runs the same count over the same committed Parquet files.

Targets (issue "one architecture"): both ratios within 2x. Run from the repository root:
``.venv/bin/python benchmarks/bench_cli.py [--repeat 7]``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BARE_TYPER = """
import typer
app = typer.Typer()
@app.command()
def hello(name: str = "x"):
    print(name)
@app.command()
def other():
    pass
app()
"""

BARE_DUCKDB = """
import sys, duckdb
files = sys.argv[1:]
print(duckdb.sql("SELECT count(*) FROM read_parquet(?)", params=[files]).fetchall()[0][0])
"""


def timed(cmd: list[str], repeat: int) -> tuple[float, str]:
    times, out = [], ""
    for _ in range(repeat):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            raise SystemExit(f"{cmd[:3]} failed: {proc.stderr.strip()[:300]}")
        out = proc.stdout
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    py = sys.executable
    gccat = str(Path(py).parent / "gccat")
    with tempfile.TemporaryDirectory() as tmp:
        lake = Path(tmp) / "lake"
        subprocess.run([gccat, "demo", "--lake", str(lake)], check=True, capture_output=True)
        from catalog.lake import Lake

        files = Lake(lake).files("detections")
        bare_typer = Path(tmp) / "bare_typer.py"
        bare_typer.write_text(BARE_TYPER)
        bare_duckdb = Path(tmp) / "bare_duckdb.py"
        bare_duckdb.write_text(BARE_DUCKDB)

        t_help, _ = timed([gccat, "--help"], args.repeat)
        t_help0, _ = timed([py, str(bare_typer), "--help"], args.repeat)
        q = "SELECT count(*) AS n FROM detections"
        t_sql, out = timed([gccat, "sql", q, "--lake", str(lake)], args.repeat)
        t_sql0, out0 = timed([py, str(bare_duckdb), *files], args.repeat)
    print(
        f"gccat --help                      {t_help * 1e3:8.0f} ms   bare typer --help "
        f"{t_help0 * 1e3:6.0f} ms   ratio {t_help / t_help0:5.2f}x (target <= 2x)"
    )
    print(
        f"gccat sql 'count(*) detections'   {t_sql * 1e3:8.0f} ms   bare duckdb script "
        f"{t_sql0 * 1e3:5.0f} ms   ratio {t_sql / t_sql0:5.2f}x (target <= 2x)"
    )
    n_bare = out0.strip()
    if n_bare not in out:
        raise SystemExit(f"row counts differ: bare {n_bare}, gccat printed {out.strip()[-200:]}")


if __name__ == "__main__":
    main()
