"""Data printed by the CLI is shown literally: never read as rich markup or emoji codes."""

from pathlib import Path

import pytest

from catalog.lake import Lake

IDS = ["[red]x[/red]", "[/b]", "[link=file:///etc/passwd]y[/link]", ":thumbs_up:", "[bold]"]


@pytest.fixture
def marked(tmp_path) -> tuple[Lake, Path]:
    """A new lake and a catalog whose source ids (and file name) look like rich markup."""
    lake = Lake.create(tmp_path / "lake")
    p = tmp_path / "[bold]cat.csv"  # the file name is in the progress bar's label
    rows = [f'"{i}",110.8{k},-73.45,10.0,1.0' for k, i in enumerate(IDS)]
    p.write_text("id,ra,dec,flux_F150W,fluxerr_F150W\n" + "\n".join(rows) + "\n")
    return lake, p


def test_ids_that_look_like_markup_print_literally(marked, cli):
    lake, p = marked
    res = cli("ingest", "catalog", p, "--field", "smacs0723", "--name", "odd", "--lake", lake.root)
    assert res.exit_code == 0, res.output
    res = cli("sql", "SELECT source_id FROM detections ORDER BY ra", "--lake", lake.root)
    assert res.exit_code == 0, res.output
    for i in IDS:
        assert i in res.stdout, (i, res.stdout)
    assert "\x1b]8;" not in res.stdout  # no terminal hyperlink either


def test_column_names_and_titles_print_literally(marked, cli):
    lake, _ = marked
    res = cli("sql", 'SELECT 1 AS "[/b]", \'[red]v[/red]\' AS "[i]c"', "--lake", lake.root)
    assert res.exit_code == 0, res.output
    assert "[/b]" in res.stdout and "[i]c" in res.stdout and "[red]v[/red]" in res.stdout


def test_error_messages_with_markup_print_literally(marked, cli):
    lake, _ = marked
    res = cli("sql", "SELECT * FROM [/b]", "--lake", lake.root)
    assert res.exit_code == 2
    assert "Traceback" not in res.output
    res = cli(
        "export",
        "--table",
        "detections",
        "--format",
        "[/b][red]x",
        "--out",
        lake.root.parent / "o.parquet",
        "--lake",
        lake.root,
    )
    lines = res.stderr.strip().splitlines()
    assert res.exit_code == 2 and len(lines) == 1, res.output
    assert "'[/b][red]x'" in lines[0]


def test_a_written_path_with_markup_prints_literally(marked, cli, tmp_path):
    lake, _ = marked
    out = tmp_path / "[red]o[b].csv"
    res = cli("sql", "SELECT 1 AS x", "-o", out, "--lake", lake.root)
    assert res.exit_code == 0, res.output
    assert f"wrote 1 row to {out}" in res.stderr


def test_long_result_lines_are_not_wrapped_off_a_terminal(capsys):
    """Off a terminal the console was 200 columns wide and cut the ``fit stack`` result line
    mid-phrase ("log" / "Z -1.04"); a message is one line however long."""
    from catalog.cli.util import console

    line = "stack:x (178 sources): best fit " + "log Z -0.70, A_V 0.00, " * 20
    console.print(line)
    assert capsys.readouterr().out == line + "\n"
