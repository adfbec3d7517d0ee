"""Errors that gccat reports to users as one line (exit code 2), never as a traceback."""

from __future__ import annotations


class GccatWarning(UserWarning):
    """A warning raised by gccat itself (turned into an error in the test suite)."""


class GccatError(Exception):
    """A user-facing error: bad input, a path that is not a lake, an unsafe name.

    Parameters
    ----------
    message : str
        What is wrong, in one sentence.
    file : str, optional
        The input file concerned.
    column : str, optional
        The column concerned.
    row : int, optional
        The first bad data row, 1-based (the header is not counted).
    """

    exit_code = 2

    def __init__(self, message: str, *, file=None, column=None, row=None):
        super().__init__(message)
        self.message = message
        self.file = None if file is None else str(file)
        self.column = column
        self.row = row

    def __str__(self) -> str:
        where = []
        if self.file:
            where.append(self.file)
        if self.column is not None:
            where.append(f"column '{self.column}'")
        if self.row is not None:
            where.append(f"row {self.row}")
        # One line whatever the message holds (library messages such as WCSLIB's span lines):
        # the CLI prints exactly one "gccat: error: ..." line.
        text = "; ".join(part.strip() for part in self.message.splitlines() if part.strip())
        return (": ".join(where) + ": " if where else "") + text


class LakeLockedError(GccatError):
    """Another process holds the lake's writer lock for longer than the wait allowed."""
