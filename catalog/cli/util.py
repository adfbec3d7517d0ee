"""Shared pieces of the typer commands: the --lake option, error handling, table printing."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from catalog.errors import GccatError

if TYPE_CHECKING:  # pyarrow and deltalake load with the commands that read or write a lake
    import pyarrow as pa

    from catalog.lake import Lake

# typer >= 0.20 vendors its own click: catch the exceptions of the click that typer runs.
_click_exc = sys.modules[type(typer.BadParameter("")).__mro__[1].__module__]

# Everything printed holds data (ids, paths, SQL, messages quoting input), so no console
# interprets rich markup, emoji codes or highlighting: "[red]x[/red]" prints as itself and "[/b]"
# cannot raise. Styling is explicit, with rich.text.Text. Off a terminal (pipes, CI logs)
# tables get room instead of rich's 80-column default, and messages are never wrapped (a
# result line cut mid-phrase in a log reads as two lines).
_PLAIN = {"markup": False, "emoji": False, "highlight": False}
console = Console(width=None if sys.stdout.isatty() else 200, soft_wrap=True, **_PLAIN)
err_console = Console(stderr=True, soft_wrap=True, **_PLAIN)  # messages stay one line

LakeOpt = Annotated[
    Path, typer.Option("--lake", envvar="GCCAT_LAKE", help="Lake root directory (or $GCCAT_LAKE).")
]
AsOfOpt = Annotated[int | None, typer.Option("--as-of", help="Read the lake as of this version.")]
DEFAULT_LAKE = Path("data_lake")


class _OneLineUsageError(_click_exc.ClickException):
    """A usage error (bad option value, missing argument) shown as one line, exit code 2."""

    exit_code = 2

    def show(self, file=None) -> None:
        err_console.print(f"gccat: error: {self.message}", markup=False, highlight=False, soft_wrap=True)


class OneLineErrorsGroup(TyperGroup):
    """The top-level command group: click's usage errors become one line (no usage banner)."""

    def make_context(self, *args, **kwargs):
        """Parse the command line; a usage error becomes one line and exit code 2."""
        try:
            return super().make_context(*args, **kwargs)
        except _click_exc.NoArgsIsHelpError:
            raise
        except _click_exc.UsageError as exc:
            raise _OneLineUsageError(exc.format_message()) from None

    def invoke(self, ctx):
        """Run the command; a usage error raised inside becomes one line and exit code 2."""
        try:
            return super().invoke(ctx)
        except _click_exc.NoArgsIsHelpError:
            raise
        except _click_exc.UsageError as exc:
            raise _OneLineUsageError(exc.format_message()) from None


def new_app(help: str, top: bool = False) -> typer.Typer:
    """A typer app with gccat's conventions: plain help (flags shown as flags, choices listed),
    help when called without arguments, one-line errors and no pretty tracebacks.
    """
    return typer.Typer(
        help=help,
        no_args_is_help=True,
        rich_markup_mode=None,
        pretty_exceptions_enable=False,
        cls=OneLineErrorsGroup if top else None,
    )


def handle_errors(fn):
    """Turn a GccatError into one line on stderr and exit code 2 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except GccatError as exc:
            err_console.print(f"gccat: error: {exc}")
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("gccat: interrupted; the lake keeps its last committed version")
            raise typer.Exit(130) from None

    return wrapper


def command(app: typer.Typer, name: str | None = None, **kwargs):
    """``app.command`` plus :func:`handle_errors`."""

    def deco(fn):
        return app.command(name, **kwargs)(handle_errors(fn))

    return deco


PrintFormat = Literal["table", "csv", "json"]
PrintFormatOpt = Annotated[
    PrintFormat | None,
    typer.Option(
        "--print-format",
        help="How rows go to standard output: table (the default), csv or json "
        "(-o - alone: csv). Numbers at full precision.",
    ),
]


def plural(n: int, noun: str) -> str:
    """``"1 row"``, ``"2 rows"``: a count and its noun."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def print_table(
    t: pa.Table, title: str | None = None, max_rows: int = 40, out: Console | None = None
) -> None:
    """Print an Arrow table as a rich table (first ``max_rows`` rows) at full precision.

    No column is ever narrower than its longest word: on a terminal the table folds long cells
    at spaces and is as wide as the terminal or the widest unbreakable cells need; off a
    terminal (a pipe, a file) it takes its natural width, one line per row.
    """
    from rich.measure import Measurement

    from catalog.queries.textformat import text_cells

    out = out or console
    # Text cells, headers and title are shown literally whatever the console's settings.
    table = Table(
        title=None if title is None else Text(title, style="table.title"),
        show_lines=False,
        header_style="bold",
    )
    for name in t.column_names:
        table.add_column(Text(name), overflow="fold")
    for cells in text_cells(t.slice(0, max_rows)):
        table.add_row(*(Text(c) for c in cells))
    natural = Measurement.get(out, out.options.update(width=1 << 20), table)
    width = max(out.width, natural.minimum if out.is_terminal else natural.maximum)
    wide = Console(
        file=out.file, width=width, force_terminal=out.is_terminal, color_system=out.color_system, **_PLAIN
    )
    wide.print(table, crop=False)
    if t.num_rows > max_rows:
        out.print(f"... {t.num_rows - max_rows} more rows ({t.num_rows} in all; use --output to save them)")
    elif not out.is_terminal:
        out.print(f"({plural(t.num_rows, 'row')})")


def print_rows(t: pa.Table, fmt: str = "table", title: str | None = None, max_rows: int = 40) -> None:
    """Rows to standard output: a table (``max_rows`` rows), or every row as CSV or JSON."""
    from catalog.queries.textformat import write_csv, write_json

    if fmt == "table":
        print_table(t, title=title, max_rows=max_rows)
    elif fmt == "csv":
        write_csv(t, sys.stdout)
    elif fmt == "json":
        write_json(t, sys.stdout)
    else:
        raise GccatError(f"unknown print format '{fmt}' (choose from table, csv, json)")
    sys.stdout.flush()


class StageProgress:
    """A rich progress bar driven by ``progress(stage, fraction)`` callbacks."""

    def __init__(self, label: str):
        self.progress = Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            console=err_console,
            transient=True,
        )
        self.label = label
        self.task = None

    def __enter__(self):
        self.progress.__enter__()
        self.task = self.progress.add_task(self.label, total=1.0)
        return self

    def __call__(self, stage: str, fraction: float) -> None:
        """Show ``stage`` and move the bar to ``fraction`` (0 to 1) of the work."""
        self.progress.update(self.task, completed=fraction, description=f"{self.label}: {stage}")

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)


def open_lake(root: str | Path | None = None) -> Lake:
    """:func:`catalog.lake.open_lake`, imported when a command first needs the lake (so that
    ``gccat --help`` and usage errors do not load pyarrow and deltalake).
    """
    from catalog.lake import open_lake as _open

    return _open(root)


def command_line() -> str:
    """:func:`catalog.lake.command_line` (the command as typed, recorded with every write)."""
    from catalog.lake import command_line as _command_line

    return _command_line()
