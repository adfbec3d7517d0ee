"""The README cannot go stale: its console blocks and Python examples are run and compared.

Every ```console block runs, in order, in one fresh directory holding the bundled tables of
``catalog/data`` (the README says ``/tmp/tour``), with this interpreter's ``bin`` first on
``PATH``. A block line starting with ``$ `` is a command (continued by lines ending in ``\\``,
or while a quote is open), run by bash; the lines up to the next command are its expected
output (stdout and stderr together). Both sides are normalised by :func:`normalise` (ingest
and run ids, timestamps, digests, timings, the directory's path), and an expected line ``...``
matches any lines. Every ```pycon block runs as a doctest, with the same normalisation, in a
fresh directory of its own.
"""

from __future__ import annotations

import difflib
import doctest
import os
import re
import shlex
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
#: The directory the README's console blocks say they run in.
TOUR_DIR = "/tmp/tour"

# (pattern, replacement), applied in order to expected and actual text alike.
NORMALISE = [
    (re.compile(r"\b\d{8}T\d{6}-[0-9a-f]{8}\b"), "<ID>"),  # ingest and run ids
    (re.compile(r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?"), "<TIME>"),
    (re.compile(r"\b[0-9a-f]{64}\b"), "<SHA256>"),  # full digests
    (re.compile(r"\bsha256 [0-9a-f]{6,63}\.\.\."), "sha256 <SHA256>..."),  # abbreviated ones
    (re.compile(r"\b\d+(\.\d+)? (s|ms)\b(?! per)"), "<T> s"),  # timings: "in 6.04 s"
    (re.compile(r"\(\d+ per s\)"), "(<N> per s)"),  # rates: "(29 per s)"
]


def normalise(text: str, tmp: str | None = None) -> str:
    """``text`` with the run-dependent parts replaced by placeholders (see NORMALISE)."""
    if tmp is not None:
        real = os.path.realpath(tmp)
        for p in sorted({tmp, real}, key=len, reverse=True):
            text = text.replace(p, TOUR_DIR)
    for pattern, repl in NORMALISE:
        text = pattern.sub(repl, text)
    return "\n".join(line.rstrip() for line in text.splitlines()).strip("\n")


def blocks(text: str, lang: str) -> list[tuple[int, str]]:
    """(first line number, body) of every ```lang block of ``text``."""
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        if lines[i].strip() == f"```{lang}":
            start, body = i + 2, []
            i += 1
            while i < len(lines) and lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            out.append((start, "\n".join(body)))
        i += 1
    return out


def _complete(cmd: str) -> bool:
    """True unless ``cmd`` ends in a backslash or leaves a quote open."""
    if cmd.endswith("\\"):
        return False
    try:
        shlex.split(cmd)
    except ValueError:
        return False
    return True


def commands(body: str) -> list[tuple[str, list[str]]]:
    """(command, expected output lines) of each ``$ `` command of a console block."""
    out: list[tuple[str, list[str]]] = []
    lines = body.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.startswith("$ "):
            if out:
                out[-1][1].append(line)
            elif line.strip():
                raise AssertionError(f"console block line before any command: {line!r}")
            i += 1
            continue
        cmd = line[2:]
        while not _complete(cmd) and i + 1 < len(lines):
            i += 1
            cmd += "\n" + lines[i]
        out.append((cmd, []))
        i += 1
    return out


def matches(expected: list[str], actual: list[str]) -> bool:
    """Line-by-line equality, where an expected line ``...`` matches any lines (also none)."""
    memo: dict[tuple[int, int], bool] = {}

    def m(i: int, j: int) -> bool:
        if (i, j) not in memo:
            if i == len(expected):
                r = j == len(actual)
            elif expected[i] == "...":
                r = any(m(i + 1, k) for k in range(j, len(actual) + 1))
            else:
                r = j < len(actual) and expected[i] == actual[j] and m(i + 1, j + 1)
            memo[i, j] = r
        return memo[i, j]

    return m(0, 0)


def bundled_dir(tmp: Path) -> Path:
    """``tmp`` holding a copy of every bundled data table (the files the README names)."""
    data = resources.files("catalog.data")
    for f in data.iterdir():
        if f.name.endswith((".csv", ".fits")):
            shutil.copyfile(str(f), tmp / f.name)
    return tmp


def environment() -> dict[str, str]:
    """The environment the README's commands run in: this venv's bin first, no lake set."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("GCCAT_LAKE", "FORCE_COLOR", "COLUMNS", "LINES", "PYTHONWARNINGS")
    }
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["PYTHONUNBUFFERED"] = "1"  # stdout and stderr interleave as printed
    env["NO_COLOR"] = "1"
    return env


def run_console_blocks(text: str, tmp: Path) -> list[str]:
    """Run every console block of ``text`` in ``tmp``; a report per mismatching command."""
    env, failures = environment(), []
    for lineno, body in blocks(text, "console"):
        for cmd, expected in commands(body):
            proc = subprocess.run(
                ["bash", "-c", cmd],
                cwd=tmp,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=600,
            )
            want = normalise("\n".join(expected)).splitlines()
            got = normalise(proc.stdout, str(tmp)).splitlines()
            if proc.returncode != 0 or not matches(want, got):
                diff = "\n".join(difflib.unified_diff(want, got, "README", "actual", lineterm=""))
                failures.append(
                    f"README.md block at line {lineno}: $ {cmd}\n"
                    f"exit code {proc.returncode}\n{diff}\n--- actual output:\n"
                    f"{proc.stdout}"
                )
    return failures


class NormalisingChecker(doctest.OutputChecker):
    """doctest's checker after :func:`normalise` of both sides (and ELLIPSIS as usual)."""

    def __init__(self, tmp: str):
        self.tmp = tmp

    def check_output(self, want, got, optionflags):
        return super().check_output(
            normalise(want, self.tmp) + "\n", normalise(got, self.tmp) + "\n", optionflags
        )


def run_pycon_blocks(text: str, tmp: Path) -> tuple[int, str]:
    """Run every pycon block of ``text`` as a doctest in ``tmp``: (failures, report)."""
    import io

    parser = doctest.DocTestParser()
    runner = doctest.DocTestRunner(
        checker=NormalisingChecker(str(tmp)), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    )
    report = io.StringIO()
    cwd = os.getcwd()
    os.chdir(tmp)
    try:
        globs: dict = {}
        for lineno, body in blocks(text, "pycon"):
            test = parser.get_doctest(body, globs, f"README.md:{lineno}", str(README), lineno - 1)
            runner.run(test, out=report.write, clear_globs=False)
    finally:
        os.chdir(cwd)
    return runner.failures, report.getvalue()


# -- the README itself -------------------------------------------------------------------------

TEXT = README.read_text()


def test_readme_starts_with_the_install_and_test_commands():
    cmds = [body.strip() for _, body in blocks(TEXT, "bash")][:2]
    assert cmds == [
        "python3 -m venv .venv && .venv/bin/pip install -q -e . && .venv/bin/gccat demo",
        'python3 -m venv .venv && .venv/bin/pip install -q -e ".[test]" && .venv/bin/python -m pytest -q',
    ]
    first_block = min(TEXT.find("```bash"), TEXT.find("```console"), TEXT.find("```pycon"))
    assert first_block == TEXT.find("```bash")
    ci = (README.parent / ".ci" / "run").read_text()
    assert cmds[1] in ci


@pytest.mark.slow  # 35 s idle, 1-3 min on a busy machine: the tour fits 178 clusters, correlates
def test_readme_console_blocks(tmp_path):
    assert blocks(TEXT, "console"), "the README has no console blocks"
    failures = run_console_blocks(TEXT, bundled_dir(tmp_path))
    assert not failures, "\n\n".join(failures)


def test_readme_python_api(tmp_path):
    assert blocks(TEXT, "pycon"), "the README has no pycon blocks"
    failed, report = run_pycon_blocks(TEXT, bundled_dir(tmp_path))
    assert failed == 0, report


# -- the checker can fail --------------------------------------------------------------------


def test_normalise_keeps_what_is_not_run_dependent():
    a = normalise("run 20261121T114037-2c16fe12: 178 of 178 objects fitted in 1.02 s (174 per s)")
    b = normalise("run 20261202T042826-9d20ea3f: 178 of 178 objects fitted in 6.04 s (29 per s)")
    assert a == b == "run <ID>: 178 of 178 objects fitted in <T> s (<N> per s)"
    assert normalise("178 of 178") != normalise("177 of 178")
    assert normalise("(lake version 3; sha256 0cd662ba199d...)") == normalise(
        "(lake version 3; sha256 d52ab1142eef...)"
    )
    assert normalise("lake version 3") != normalise("lake version 4")
    assert normalise("lake ready at /x/y/lake", "/x/y") == "lake ready at /tmp/tour/lake"


def test_wildcard_lines():
    assert matches(["a", "...", "d"], ["a", "b", "c", "d"])
    assert matches(["a", "..."], ["a"])
    assert not matches(["a", "...", "d"], ["a", "b", "c"])
    assert not matches(["a", "b"], ["a", "b", "c"])


def test_commands_with_continuations_and_open_quotes():
    body = '$ gccat sql "SELECT 1\n    AS x" --lake lake\nout 1\n$ gccat a \\\n  --b\n$ echo x\nx\n...'
    assert commands(body) == [
        ('gccat sql "SELECT 1\n    AS x" --lake lake', ["out 1"]),
        ("gccat a \\\n  --b", []),
        ("echo x", ["x", "..."]),
    ]


def test_an_altered_output_line_fails(tmp_path):
    """A README whose output says something else fails (one block, run for real)."""
    good = (
        "```console\n$ gccat init --lake lake\nlake ready at /tmp/tour/lake (version 0)\n"
        '$ echo done; echo "exit=$?"\ndone\nexit=0\n```\n'
    )
    assert run_console_blocks(good, tmp_path) == []
    bad = good.replace("(version 0)", "(version 1)")
    (tmp_path / "lake").rename(tmp_path / "old_lake")
    failures = run_console_blocks(bad, tmp_path)
    assert len(failures) == 1 and "-lake ready at /tmp/tour/lake (version 1)" in failures[0]


def test_an_altered_pycon_line_fails(tmp_path):
    good = "```pycon\n>>> 1 + 1\n2\n>>> print('20261202T042826-9d20ea3f')\n20261121T114037-2c16fe12\n```"
    assert run_pycon_blocks(good, tmp_path)[0] == 0
    assert run_pycon_blocks(good.replace("\n2\n", "\n3\n"), tmp_path)[0] == 1
