"""Shared helpers for the gccat benchmarks: synthetic catalogs, timing, memory, scratch dirs.

Not a benchmark itself; the ``bench_*.py`` scripts import it (they run with ``benchmarks/``
first on ``sys.path``).
"""

from __future__ import annotations

import contextlib
import resource
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

BANDS = ["F090W", "F115W", "F150W", "F200W", "F277W", "F356W", "F410M", "F444W"]

#: Cluster-field centres (ICRS deg); the polar-cap ones (|dec| > 41.8) matter for HEALPix code.
FIELDS = {
    "abell2744": (3.58641, -30.39970),
    "macs0416": (64.03813, -24.06750),
    "smacs0723": (110.80542, -73.45694),
    "as1063": (342.18321, -44.53088),
    "macs1423": (215.94900, 24.07800),
    "macs0417": (64.39450, -11.90880),
    "elgordo": (15.71880, -49.24960),
    "macs0647": (101.95950, 70.24840),
    "rxj2129": (322.41650, 0.08920),
    "abell370": (39.97130, -1.58220),
}


def positions(
    rng: np.random.Generator, n: int, centre: tuple[float, float], size_arcmin: float = 2.0
) -> tuple[np.ndarray, np.ndarray]:
    """Uniform positions in a box ``size_arcmin`` on a side (true angle) around ``centre``."""
    ra0, dec0 = centre
    half = size_arcmin / 120.0
    dec = dec0 + rng.uniform(-half, half, n)
    ra = (ra0 + rng.uniform(-half, half, n) / np.cos(np.radians(dec))) % 360.0
    return ra, dec


def catalog(
    rng: np.random.Generator,
    n: int,
    centre: tuple[float, float],
    bands: list[str] = BANDS,
    size_arcmin: float = 2.0,
    first_id: int = 1,
) -> pa.Table:
    """A synthetic GC catalog: ``id, ra, dec`` and ``flux_<b>, fluxerr_<b>`` in nJy per band.

    Magnitudes are uniform in 25-31 AB with a smooth colour across the bands; errors are
    3-8 nJy and the fluxes carry that noise (so faint sources can be negative).
    """
    ra, dec = positions(rng, n, centre, size_arcmin)
    cols: dict[str, np.ndarray] = {"id": np.arange(first_id, first_id + n), "ra": ra, "dec": dec}
    mag = rng.uniform(25.0, 31.0, n)
    for k, band in enumerate(bands):
        err = rng.uniform(3.0, 8.0, n)
        flux = 10 ** (-0.4 * (mag - 0.05 * k - 31.4))
        cols[f"flux_{band}"] = flux + rng.normal(0.0, 1.0, n) * err
        cols[f"fluxerr_{band}"] = err
    return pa.table(cols)


def add_scan_options(ap, what: str = "time") -> None:
    """``--scan`` and ``--scan-max`` of every benchmark that fits a growth exponent."""
    ap.add_argument("--scan", action="store_true", help=f"{what} at N = 10^4 .. --scan-max, fit exponents")
    ap.add_argument("--scan-max", type=int, default=1_000_000, help="largest N of --scan (10^6; or 10^7)")


def add_survey_options(ap, n: int, m: int, area: float, partition_rows: int) -> None:
    """The options of the HATS survey benchmarks (``bench_hats*.py``), with their defaults."""
    ap.add_argument("--n", type=int, default=n, help=f"survey sources (default {n:,})")
    ap.add_argument("--m", type=int, default=m, help=f"detections on the left (default {m:,})")
    ap.add_argument("--area", type=float, default=area, help=f"survey area, deg^2 (default {area:g})")
    ap.add_argument("--radius", type=float, default=0.5, help="match radius, arcsec")
    ap.add_argument("--partition-rows", type=int, default=partition_rows, help="max rows per HATS partition")
    ap.add_argument("--field", choices=sorted(FIELDS), default="abell2744", help="survey centre")


def scan_sizes(scan_max: int) -> list[int]:
    """The N of a ``--scan``: 10^4, 10^5, ... up to ``scan_max``."""
    return [n for n in (10**4, 10**5, 10**6, 10**7) if n <= scan_max]


def exponent(sizes, seconds) -> float:
    """k of time ~ N**k: the slope of log10(seconds) against log10(sizes) (least squares)."""
    return float(np.polyfit(np.log10(sizes), np.log10(seconds), 1)[0])


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (Linux: ru_maxrss is KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def rss_mb() -> float:
    """Resident set size of this process now, in MiB (``/proc/self/statm``)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


@contextlib.contextmanager
def sampled_rss(every_s: float = 0.005) -> Iterator[dict[str, float]]:
    """Sample this process's resident set every ``every_s`` seconds while the block runs.

    Yields a dict: ``start`` (MiB, on entry) at once, ``peak`` (MiB, the largest sample and the
    value on exit) after the block.
    """
    out, done = {"start": rss_mb(), "peak": 0.0}, threading.Event()

    def sample():
        while not done.is_set():
            out["peak"] = max(out["peak"], rss_mb())
            time.sleep(every_s)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    try:
        yield out
    finally:
        done.set()
        th.join()
        out["peak"] = max(out["peak"], rss_mb())


def sorted_pairs(i, j) -> np.ndarray:
    """(n, 2) int64 pairs (i, j) sorted by i, then j: pair sets that compare with array_equal."""
    o = np.lexsort((j, i))
    return np.column_stack([np.asarray(i, np.int64)[o], np.asarray(j, np.int64)[o]])


def survey_pairs(t: pa.Table) -> np.ndarray:
    """:func:`sorted_pairs` of a crossmatch of detections (``i``) with a survey (``sid``)."""
    return sorted_pairs(t["i_1"].to_numpy(), t["sid_2"].to_numpy())


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    """(seconds, result) of one call."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t0, out


def best_of(repeat: int, fn, *args, **kwargs) -> tuple[float, object]:
    """(fastest seconds, last result) over ``repeat`` calls."""
    runs = [timed(fn, *args, **kwargs) for _ in range(repeat)]
    return min(r[0] for r in runs), runs[-1][1]


@contextlib.contextmanager
def scratch(prefix: str) -> Iterator[Path]:
    """A temporary directory (``tempfile.mkdtemp``) removed on exit, whatever happens."""
    d = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def line(
    label: str, value: float, unit: str = "s", baseline: float | None = None, base_name: str = "baseline"
) -> None:
    """Print ``label  value unit  (ratio x baseline)``."""
    ratio = f"   {value / baseline:7.2f}x {base_name}" if baseline else ""
    print(f"  {label:<46s} {value:10.3f} {unit}{ratio}")
