"""Filters known to gccat, named as astronomers write them, with astro-sedpy curves.

Naming: NIRCam, MIRI, ACS/WFC and WFC3/IR filters by their plain name (``F150W``);
NIRISS imaging filters with a trailing ``N`` (``F150WN``, as in CANUCS tables); WFC3/UVIS
filters that share a name with an ACS/WFC filter get ``_UVIS`` (``F606W_UVIS``).
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Band:
    """A filter gccat knows: its name, its instrument and its astro-sedpy curve."""

    band: str
    instrument: str
    sedpy_name: str


def _sedpy_filter_dir() -> str:
    from sedpy import observate

    return os.path.join(os.path.dirname(observate.__file__), "data", "filters")


@functools.cache
def known_bands() -> dict[str, Band]:
    """All filters gccat can name, from the curves shipped with astro-sedpy."""
    names = sorted(f[:-4] for f in os.listdir(_sedpy_filter_dir()) if f.endswith(".par"))
    out: dict[str, Band] = {}
    acs = set()
    for n in names:
        if m := re.fullmatch(r"acs_wfc_(f\w+)", n):
            out[m[1].upper()] = Band(m[1].upper(), "ACS/WFC", n)
            acs.add(m[1].upper())
        elif m := re.fullmatch(r"wfc3_ir_(f\w+)", n):
            out[m[1].upper()] = Band(m[1].upper(), "WFC3/IR", n)
        elif m := re.fullmatch(r"jwst_niriss_(f\w+)", n):
            out[m[1].upper() + "N"] = Band(m[1].upper() + "N", "NIRISS", n)
        elif m := re.fullmatch(r"jwst_(f\d+\w*)", n):
            inst = "NIRCam" if m[1] in _NIRCAM else "MIRI"
            out[m[1].upper()] = Band(m[1].upper(), inst, n)
    for n in names:
        if m := re.fullmatch(r"wfc3_uvis_(f\w+)", n):
            name = m[1].upper() + ("_UVIS" if m[1].upper() in acs else "")
            out[name] = Band(name, "WFC3/UVIS", n)
    return out


_NIRCAM = {
    "f070w",
    "f090w",
    "f115w",
    "f140m",
    "f150w",
    "f150w2",
    "f162m",
    "f164n",
    "f182m",
    "f187n",
    "f200w",
    "f210m",
    "f212n",
    "f250m",
    "f277w",
    "f300m",
    "f322w2",
    "f323n",
    "f335m",
    "f356w",
    "f360m",
    "f405n",
    "f410m",
    "f430m",
    "f444w",
    "f460m",
    "f466n",
    "f470n",
    "f480m",
}


def lookup(name: str) -> Band | None:
    """The :class:`Band` called ``name`` (case-insensitive), or None."""
    return known_bands().get(name.upper())
