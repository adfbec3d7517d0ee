"""The command line itself: one-line usage errors, --version, flags and choices in help."""

import pytest

from catalog.lake import gccat_version


@pytest.mark.parametrize(
    "args, words",
    [
        (["fit", "ssp", "--samples", "abc"], ["--samples"]),
        (["fit", "ssp", "--prior", "flat"], ["--prior", "index", "log-age"]),
        (["nosuch"], ["nosuch"]),
        (["cone", "1"], ["dec"]),
        (["correlate", "--field", "x", "--model", "m", "--fit", "chi"], ["--fit", "poisson", "lsq"]),
    ],
)
def test_usage_errors_are_one_line_with_exit_2(cli, args, words):
    """Regression: click printed a usage banner over three lines."""
    res = cli(*args)
    assert res.exit_code == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gccat: error:"), res.stderr
    assert all(w in lines[0] for w in words)


def test_version(cli):
    res = cli("--version")
    assert res.exit_code == 0 and res.stdout.strip() == f"gccat {gccat_version()}"


def test_help_shows_flags_as_flags_and_lists_choices(cli):
    res = cli("fit", "ssp", "--help")
    assert res.exit_code == 0
    assert "<bool>" not in res.stdout
    assert "index|log-age" in res.stdout
