"""Argument checks shared by the library: user errors (one line, exit 2), not asserts.

Arrays (correlate, imaging) and scalar options alike; every public function that takes a
number from a user checks it here, so the CLI and the Python API refuse the same values.
"""

from __future__ import annotations

import re

import numpy as np

from catalog.errors import GccatError


def as_grid(name: str, values, shape: tuple[int, int] | None = None, dtype=np.float64) -> np.ndarray:
    """``values`` as a 2-D ``(ny, nx)`` array of ``dtype``, of ``shape`` if given."""
    a = np.asarray(values, dtype=dtype)
    if a.ndim != 2:
        raise GccatError(f"{name} must be a 2-D array (ny, nx), got {a.ndim} dimension(s)")
    if shape is not None and a.shape != shape:
        raise GccatError(f"{name} has shape {a.shape}, expected {shape}")
    return a


def as_mask(mask, shape: tuple[int, int], name: str = "mask") -> np.ndarray:
    """A boolean mask (True = masked) of ``shape``; None means nothing masked."""
    if mask is None:
        return np.zeros(shape, dtype=bool)
    m = np.asarray(mask)
    if m.shape != shape:
        raise GccatError(f"{name} has shape {m.shape}, expected {shape}")
    if m.dtype != bool:
        raise GccatError(f"{name} must be boolean (True = masked), got dtype {m.dtype}")
    return m


def as_rng(rng) -> np.random.Generator:
    """Refuse anything but a ``numpy.random.Generator`` (no hidden global random state)."""
    if not isinstance(rng, np.random.Generator):
        raise GccatError("rng must be a numpy.random.Generator (e.g. numpy.random.default_rng(seed))")
    return rng


def check_number(
    value,
    option: str,
    *,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    hi_open: bool = False,
    allow_none: bool = False,
    integer: bool = False,
) -> float | int | None:
    """``value`` as a finite number inside ``[lo, hi]`` (``(lo`` / ``hi)`` with ``*_open``).

    Parameters
    ----------
    value : number or None
        What the user gave (an option or a keyword argument of the Python API).
    option : str
        How the user named it (e.g. ``"--z"``), for the message.
    lo, hi : float, optional
        Allowed range; None leaves that side open to infinity.
    lo_open, hi_open : bool
        Exclude the bound itself.
    allow_none : bool
        Accept None (an optional value left out) and return it.
    integer : bool
        Require a whole number and return an ``int``.

    Raises
    ------
    GccatError
        One line naming the option, the value and the allowed range. NaN and infinities are
        never accepted: they cannot be a physical value.
    """
    if value is None:
        if allow_none:
            return None
        raise GccatError(f"{option} is required")
    kind = "a whole number" if integer else "a finite number"
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise GccatError(f"{option} must be {kind}, not {value!r}") from None
    if integer and (isinstance(value, bool) or not np.isfinite(x) or x != int(x)):
        raise GccatError(f"{option} must be {kind}, not {value!r}")
    rng = _range_text(lo, hi, lo_open, hi_open)
    if not np.isfinite(x):
        raise GccatError(f"{option} must be {kind} in {rng}, not {value!r}")
    if lo is not None and (x < lo or (lo_open and x == lo)):
        raise GccatError(f"{option} must be in {rng}, not {value!r}")
    if hi is not None and (x > hi or (hi_open and x == hi)):
        raise GccatError(f"{option} must be in {rng}, not {value!r}")
    return int(x) if integer else x


def _range_text(lo, hi, lo_open, hi_open) -> str:
    left = "(-inf" if lo is None else ("(" if lo_open else "[") + f"{lo:g}"
    right = "inf)" if hi is None else f"{hi:g}" + (")" if hi_open else "]")
    return f"{left}, {right}"


#: Highest redshift gccat accepts for a source, a fit or a lens normalisation: beyond z ~ 20
#: the Universe is younger than the first galaxies (and the BC03 ages of a grid run out).
Z_MAX = 20.0


def check_numbers(values, option: str, *, n_min: int = 1, n_max: int | None = None, **bounds) -> list[float]:
    """A list of numbers given to one option (``--apertures 0.1,0.2``), each checked by
    :func:`check_number` with ``bounds``, and between ``n_min`` and ``n_max`` of them.
    """
    if values is None:
        values = []
    elif np.ndim(values) == 0:
        values = [values]
    # plain Python numbers, so messages show 0.5 rather than np.float64(0.5)
    values = [v.item() if isinstance(v, np.generic) else v for v in np.asarray(values, dtype=object).ravel()]
    if len(values) < n_min or (n_max is not None and len(values) > n_max):
        want = f"{n_min}" if n_max == n_min else f"{n_min} to {n_max}" if n_max else f"at least {n_min}"
        raise GccatError(f"{option} takes {want} value(s), got {len(values)}")
    return [check_number(v, option, **bounds) for v in values]


# Names become directory and file names: ASCII letters, digits and _ . - only (no control
# characters, no unicode lookalikes), starting with a letter or digit (so never ".x", "_delta_log"
# or "-x"). Always used with fullmatch: "$" would also match before a trailing newline.
_NAME_CHARS = re.compile(r"[A-Za-z0-9_.-]+")
_NAME_MAX = 64
# Windows device names, which no file or directory may be called, with any extension.
_RESERVED_NAME = re.compile(r"(con|prn|aux|nul|com[1-9]|lpt[1-9])(\..*)?", re.IGNORECASE)


def _name_problem(value) -> str | None:
    """Why ``value`` is not a safe simple name, or None if it is one."""
    if not isinstance(value, str):
        return "is not a string"
    if not value:
        return "is empty"
    if not _NAME_CHARS.fullmatch(value):
        return "holds a character other than an ASCII letter, a digit, _ . or -"
    if len(value) > _NAME_MAX:
        return f"is longer than {_NAME_MAX} characters"
    if not value[0].isalnum():
        return "must start with a letter or a digit"
    if ".." in value:
        return "may not contain '..'"
    if value.endswith("."):
        return "may not end with a dot"  # Windows drops it: 'a.' and 'a' would be one path
    if _RESERVED_NAME.fullmatch(value):
        return "is a reserved device name on Windows"
    return None


def check_name(value: str, what: str) -> str:
    """Refuse a name that could become an unsafe or unportable path.

    Field ids, catalog and model names become directory and file names, so they must be
    1-64 ASCII letters, digits and ``_ . -``, start with a letter or digit, contain no
    ``..``, not end with a dot and not be a Windows device name (``con``, ``nul``, ``aux``,
    ``prn``, ``com1``-``com9``, ``lpt1``-``lpt9``, in any case, with or without extension).

    Parameters
    ----------
    value : str
        The name to check.
    what : str
        What the name is, for the error message (e.g. ``"field id"``).

    Returns
    -------
    str
        ``value``, unchanged.

    Raises
    ------
    GccatError
        If the name is not safe; the message is one line whatever the name holds.
    """
    problem = _name_problem(value)
    if problem is not None:
        # ascii() escapes newlines, control and non-ASCII characters: the message stays one
        # line and shows a lookalike for what it is.
        shown = ascii(value) if len(str(value)) <= 80 else ascii(str(value)[:80]) + "..."
        raise GccatError(
            f"{what} {shown} is not a simple name: it {problem} (use 1-{_NAME_MAX} "
            "ASCII letters, digits and _ . -, starting with a letter or digit)"
        )
    return value
