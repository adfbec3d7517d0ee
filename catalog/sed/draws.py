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


def raw_streams(keys: np.ndarray, n: int) -> np.ndarray:
    """The first ``n`` uint64 outputs of each key's Philox stream, (n_keys, n).

    Resetting one bit generator's state costs ~4 us per key (a new ``Philox`` ~16 us); the
    numbers are those of ``numpy.random.Philox(key=k).random_raw(n)``.
    """
    keys = np.asarray(keys, dtype=np.uint64).reshape(-1, 2)
    out = np.empty((len(keys), int(n)), np.uint64)
    if not out.size:
        return out
    bg = np.random.Philox(key=keys[0])
    state = bg.state
    for i, k in enumerate(keys):
        state["state"]["key"] = k
        state["state"]["counter"] = np.zeros(4, np.uint64)
        state["buffer_pos"] = 4
        state["has_uint32"] = 0
        bg.state = state
        out[i] = bg.random_raw(int(n))
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
