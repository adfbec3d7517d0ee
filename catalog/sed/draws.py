"""Random streams keyed by object: draws that depend on (run seed, object id) only.

Every posterior draw, perturbation and jitter of a fit comes from its object's own stream, so
a result is the same whatever the chunking, the thread count or the Dask scheduler. An
object's key is the 128-bit BLAKE2b digest of the run seed and its id (stable across Python
processes and machines, unlike ``hash()``), used as the key of numpy's counter-based Philox
4x64-10 generator with its counter at 0. Objects without ids (the Python API called on bare
arrays) are keyed by their row number.
"""

from __future__ import annotations

import hashlib

import numba
import numpy as np

#: The seeding rule, as recorded in ``fit_runs.config`` (``draws``).
SEEDING = (
    "per object: numpy Philox stream keyed by BLAKE2b-128 of '<seed>\\0<object_id>' "
    "(independent of --chunk, threads and --scheduler)"
)
#: Bytes of an object key: the two 64-bit words of a Philox key.
KEY_BYTES = 16


def object_keys(seed: int, object_ids) -> np.ndarray:
    """The (n, 2) uint64 Philox keys of ``object_ids`` under the run seed ``seed``.

    Parameters
    ----------
    seed : int
        The run seed (``--seed``, >= 0).
    object_ids : sequence of str
        The objects' ids (``detection_id``); any other value is keyed by its ``str``.

    Returns
    -------
    numpy.ndarray
        (n, 2) uint64: BLAKE2b-128 of ``"<seed>\\0<id>"`` as two little-endian words.
    """
    prefix = f"{int(seed)}\0".encode()
    buf = b"".join(
        hashlib.blake2b(prefix + str(o).encode(), digest_size=KEY_BYTES).digest() for o in object_ids
    )
    return np.frombuffer(buf, dtype="<u8").reshape(-1, 2).astype(np.uint64)


def row_keys(rng, n: int) -> np.ndarray:
    """(n, 2) uint64 keys of rows without ids: those of their row numbers under a seed drawn
    from ``rng`` (a Generator, a seed or None).
    """
    seed = int(np.random.default_rng(rng).integers(0, 2**63 - 1))
    return object_keys(seed, range(n))


#: Philox4x64-10's multipliers and Weyl key increments (Salmon et al. 2011, Random123).
_PHILOX_M = (np.uint64(0xD2E7470EE14C6C93), np.uint64(0xCA5A826395121157))
_PHILOX_W = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBB67AE8584CAA73B))
_LOW32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)


@numba.njit(nogil=True, cache=True, inline="always")
def _mulhilo(a, b):  # pragma: no cover - compiled
    """(high, low) 64-bit words of the 128-bit product of uint64 ``a`` and ``b``."""
    a_lo, a_hi = a & _LOW32, a >> _S32
    b_lo, b_hi = b & _LOW32, b >> _S32
    lo_lo = a_lo * b_lo
    hi_lo = a_hi * b_lo
    cross = (lo_lo >> _S32) + (hi_lo & _LOW32) + a_lo * b_hi
    return a_hi * b_hi + (hi_lo >> _S32) + (cross >> _S32), a * b


@numba.njit(nogil=True, cache=True)
def _philox_streams(keys, out):  # pragma: no cover - compiled
    """``out[i]`` = the first outputs of Philox4x64-10 keyed by ``keys[i]`` from counter 0, as
    numpy's ``Philox``: the counter is incremented (with carry) before each block of four.
    """
    one, zero = np.uint64(1), np.uint64(0)
    m0, m1 = _PHILOX_M
    w0, w1 = _PHILOX_W
    n = out.shape[1]
    for i in range(keys.shape[0]):
        c0 = c1 = c2 = c3 = zero
        for j in range(0, n, 4):
            c0 += one
            if c0 == zero:
                c1 += one
                if c1 == zero:
                    c2 += one
                    if c2 == zero:
                        c3 += one
            k0, k1 = keys[i, 0], keys[i, 1]
            x0, x1, x2, x3 = c0, c1, c2, c3
            for r in range(10):
                if r > 0:
                    k0 += w0
                    k1 += w1
                hi0, lo0 = _mulhilo(m0, x0)
                hi1, lo1 = _mulhilo(m1, x2)
                x0, x1, x2, x3 = hi1 ^ x1 ^ k0, lo1, hi0 ^ x3 ^ k1, lo0
            block = (x0, x1, x2, x3)
            for t in range(min(4, n - j)):
                out[i, j + t] = block[t]


def raw_streams(keys: np.ndarray, n: int) -> np.ndarray:
    """The first ``n`` uint64 outputs of each key's Philox stream, (n_keys, n).

    The numbers are those of ``numpy.random.Philox(key=k).random_raw(n)``, computed compiled:
    resetting one numpy bit generator's state per key cost ~4.4 us (a new ``Philox`` ~16 us),
    against 1.4 us here for 100 outputs (and the same 7 us for 501).
    """
    keys = np.ascontiguousarray(np.asarray(keys, dtype=np.uint64).reshape(-1, 2))
    out = np.empty((len(keys), int(n)), np.uint64)
    if out.size:
        _philox_streams(keys, out)
    return out


def uniforms(raw: np.ndarray) -> np.ndarray:
    """Uniform doubles in [0, 1) from uint64 outputs (their top 53 bits, as numpy's ``random``)."""
    return (np.asarray(raw, np.uint64) >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


def normals(raw: np.ndarray) -> np.ndarray:
    """Standard normal doubles from uint64 outputs, by the inverse CDF of (k + 1/2) / 2^53."""
    from scipy import special

    u = ((np.asarray(raw, np.uint64) >> np.uint64(11)).astype(np.float64) + 0.5) * (1.0 / 9007199254740992.0)
    return special.ndtri(u)


def object_generator(key) -> np.random.Generator:
    """A numpy Generator on one object's Philox stream (for per-object loops such as NNLS refits)."""
    return np.random.Generator(np.random.Philox(key=np.asarray(key, dtype=np.uint64)))
