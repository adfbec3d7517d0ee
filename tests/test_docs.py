"""Every command documents itself, and the README's command table lists exactly the commands.

In the manner of sqlite-utils' ``tests/test_docs.py``: the click command tree of the typer app
is walked; each command (and group) must have a description and an ``Examples:`` section whose
lines are ``gccat <that command> ...``, shown on their own lines by ``--help``, and that parse
with the command's own options (so an example cannot name an option that no longer exists).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from catalog.cli.app import app

README = Path(__file__).resolve().parents[1] / "README.md"
ROOT = typer.main.get_command(app)


def walk(cmd, path: tuple[str, ...] = ()):
    """(path, command) of ``cmd`` and everything under it; path () is ``gccat`` itself."""
    yield path, cmd
    for name, sub in sorted(getattr(cmd, "commands", {}).items()):
        yield from walk(sub, (*path, name))


COMMANDS = dict(walk(ROOT))
LEAVES = sorted(p for p, c in COMMANDS.items() if not hasattr(c, "commands"))
IDS = ["gccat " + " ".join(p) if p else "gccat" for p in COMMANDS]


def help_text(path: tuple[str, ...]) -> str:
    res = CliRunner().invoke(app, [*path, "--help"])
    assert res.exit_code == 0, res.output
    return res.output


def examples(text: str) -> list[str]:
    """The commands of the ``Examples:`` (or ``Example:``) section of a help text or docstring
    (a line ending in a backslash continues on the next)."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if re.fullmatch(r"\s*Examples?:\s*", line.replace("\b", "")):
            out: list[str] = []
            cont = False
            for nxt in lines[i + 1 :]:
                if not nxt.strip():
                    break
                part = nxt.strip()
                if cont:
                    out[-1] = out[-1][:-1].rstrip() + " " + part
                else:
                    out.append(part)
                cont = part.endswith("\\")
            return out
    return []


def resolve(args: list[str]):
    """(command, its arguments) of a command line's arguments after ``gccat``."""
    cmd = ROOT
    while hasattr(cmd, "commands") and args and args[0] in cmd.commands:
        cmd, args = cmd.commands[args[0]], args[1:]
    return cmd, args


def test_the_tree_is_what_the_docs_assume():
    assert ("ingest", "catalog") in LEAVES and ("fit", "ssp") in LEAVES and ("init",) in LEAVES
    assert len(LEAVES) >= 20


@pytest.mark.parametrize("path", list(COMMANDS), ids=IDS)
def test_command_has_a_description(path):
    cmd = COMMANDS[path]
    assert cmd.help and cmd.help.strip(), f"gccat {' '.join(path)} has no help text"
    first = cmd.help.strip().split("\n\n")[0]
    assert len(first) > 10 and not first.lower().startswith("example"), first
    assert " ".join(first.split()) in " ".join(help_text(path).split())


@pytest.mark.parametrize("path", list(COMMANDS), ids=IDS)
def test_command_has_examples(path):
    cmd = COMMANDS[path]
    name = " ".join(("gccat", *path))
    found = examples(cmd.help or "")
    assert found, f"{name}: its docstring has no 'Examples:' section"
    for ex in found:
        assert ex == name or ex.startswith(name + " "), f"{name}: example {ex!r} is not of {name}"
    # --help shows each example on a line of its own (click's \b paragraph), not rewrapped.
    shown = examples(help_text(path))
    assert shown == found, f"{name}: --help shows the examples as {shown!r}"


@pytest.mark.parametrize("path", list(COMMANDS), ids=IDS)
def test_examples_parse(path):
    """Each example names a command that exists and its arguments are accepted by that
    command's parser (nothing is run)."""
    for ex in examples(COMMANDS[path].help or ""):
        cmd, args = resolve(shlex.split(ex)[1:])
        assert not hasattr(cmd, "commands"), f"{ex!r} does not name a command"
        cmd.make_context(cmd.name, args).close()


def readme_table() -> dict[str, str]:
    """The README's command table: command -> what it does."""
    rows = {}
    for line in README.read_text().splitlines():
        m = re.fullmatch(r"\|\s*`(gccat[^`]*)`\s*\|(.*)\|\s*", line)
        if m:
            rows[m.group(1).strip()] = m.group(2).strip()
    return rows


def test_readme_lists_every_command():
    table = readme_table()
    leaves = {" ".join(("gccat", *p)) for p in LEAVES}
    assert sorted(leaves - set(table)) == [], "commands missing from the README's table"
    assert sorted(set(table) - leaves) == [], "the README's table lists commands that do not exist"
    for name, what in table.items():
        assert what and "|" not in what.replace("\\|", ""), f"{name}: {what!r}"


DOCS = [README, *sorted((README.parent / "docs").glob("*.md"))]


@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_docs_cite_only_files_in_the_repository(doc):
    """Backquoted paths (with a directory, e.g. `ingest/mapping.py`) exist in the repository,
    and nothing points outside it (absolute paths, ../ paths, files of other projects)."""
    text = doc.read_text()
    root = README.parent
    for ref in re.findall(r"`([A-Za-z0-9_.{}-]+(?:/[A-Za-z0-9_.{}<>-]+)+/?)`", text):
        if not re.search(r"(\.[a-z]{2,5}|/)$", ref):
            continue  # not a file or directory (detection ids like field/name/source_id)
        if "<" in ref or "{" in ref or ref.startswith(("LAKE/", "simf/", "mz/")):
            continue  # templates (sql/<name>.sql) and paths inside a lake or the tour's files
        assert (root / ref).exists(), f"{doc.name} cites {ref}, which is not in the repository"
    for bad in ("DESIGN.md", "/work/", "../shared", "/home/", "~/"):
        assert bad not in text, f"{doc.name} points outside the repository: {bad}"
