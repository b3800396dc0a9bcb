"""Batched decode attention over K/V segments read in place: numpy (BLAS) or numba.

For each sequence ``b`` of a batch and each query head ``hq`` (grouped-query
attention: query head ``hq`` reads KV head ``hq // (q_heads // kv_heads)``)::

    out[b, hq] = softmax(q[b, hq] . K[kv, t]^T * scale over t) . V[kv, t]

over the sequence's tokens, which come as *segments*: runs of ``n`` tokens
stored head-major, K of head ``h``, token ``t`` at float offset
``k + h * hs + t * head_dim`` of a source array (``hs``, the head stride, is
``block_tokens * head_dim`` in a block). A non-negative offset points into
the arena (the daemon's shared-memory DRAM tier, read in place); a negative
one, ``-1 - offset``, into a small gather buffer (a request's tail tokens,
or a slab split over two extents of the arena).

Every byte of K and V is read once; decode attention is bound by memory
bandwidth when the arithmetic keeps up, which is the kernels' whole concern:

* ``numpy`` (the default): per segment and head one matrix product of the
  group's queries with the head's ``n x head_dim`` K matrix (BLAS, stacked
  over heads), an exact softmax over the whole sequence, then one product
  with V per segment;
* ``numba``: one pass over K with a dot product per (row, query head) and
  an online softmax, then one pass over V; no BLAS.

Measured here on one core, one interleaved run (bytes of K and V read per
second against numpy's copy rate of 18-20 GB/s): numpy 26 / 13 / 10 GB/s and
numba 15 / 15 / 10 GB/s with 1 / 4 / 8 query heads per KV head. Head-major
blocks matter: over token-major ones the numba kernel read 2-5 GB/s.

Sequences are split over threads (BLAS, numpy's ufuncs and the numba kernel
release the GIL). BLAS's own threads are for large products: inside many
small ones they only contend, so ``python -m kvserve`` sets
OPENBLAS_NUM_THREADS=1 unless the caller chose otherwise.
"""
from __future__ import annotations

import importlib.util
import logging
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import numpy as np

from superfs.extras import require

log = logging.getLogger(__name__)

KERNELS = ("numpy", "numba")


@dataclass(frozen=True)
class Segments:
    """Where each sequence's tokens are: sequence b has segments start[b]:start[b+1]."""

    start: np.ndarray   # int64 [batch + 1]
    k: np.ndarray       # int64 [segments]: float offset of head 0's first K row (negative: gather buffer)
    v: np.ndarray       # int64 [segments]
    n: np.ndarray       # int64 [segments]: tokens
    hs: np.ndarray      # int64 [segments]: floats from one head's rows to the next

    @property
    def batch(self) -> int:
        return len(self.start) - 1


def _heads(arena: np.ndarray, gather: np.ndarray, off: int, n: int, hs: int, kv_heads: int,
           head_dim: int) -> np.ndarray:
    """The segment's [kv_heads, n, head_dim] view (no copy)."""
    src, off = (arena, off) if off >= 0 else (gather, -1 - off)
    base = src[off:off + (kv_heads - 1) * hs + n * head_dim]
    return np.lib.stride_tricks.as_strided(base, (kv_heads, n, head_dim),
                                           (hs * 4, head_dim * 4, 4), writeable=False)


def _attend_numpy(arena: np.ndarray, gather: np.ndarray, segs: Segments, q: np.ndarray, out: np.ndarray,
                  lo: int, hi: int, kv_heads: int, head_dim: int, scale: float) -> None:
    q_heads = q.shape[1]
    group = q_heads // kv_heads
    for b in range(lo, hi):
        s0, s1 = int(segs.start[b]), int(segs.start[b + 1])
        total = int(segs.n[s0:s1].sum())
        if total == 0:
            continue
        qs = q[b].reshape(kv_heads, group, head_dim) * np.float32(scale)
        scores = np.empty((kv_heads, group, total), dtype=np.float32)
        pos = 0
        for s in range(s0, s1):
            n = int(segs.n[s])
            k = _heads(arena, gather, int(segs.k[s]), n, int(segs.hs[s]), kv_heads, head_dim)
            np.matmul(qs, k.transpose(0, 2, 1), out=scores[:, :, pos:pos + n])
            pos += n
        np.subtract(scores, scores.max(axis=2, keepdims=True), out=scores)
        np.exp(scores, out=scores)
        den = scores.sum(axis=2)
        acc = np.zeros((kv_heads, group, head_dim), dtype=np.float32)
        part = np.empty_like(acc)
        pos = 0
        for s in range(s0, s1):
            n = int(segs.n[s])
            v = _heads(arena, gather, int(segs.v[s]), n, int(segs.hs[s]), kv_heads, head_dim)
            np.matmul(scores[:, :, pos:pos + n], v, out=part)
            acc += part
            pos += n
        out[b] = (acc / den[:, :, None]).reshape(q_heads, head_dim)


def _numba_kernel() -> Callable[..., None]:
    """The numba kernel, imported on first use: numba costs half a second to import."""
    from kvserve.attention.numba_kernel import attend_numba
    return attend_numba  # type: ignore[no-any-return]


def have_numba() -> bool:
    return importlib.util.find_spec("numba") is not None


def attend(arena: np.ndarray, gather: np.ndarray, segs: Segments, q: np.ndarray, *, kv_heads: int,
           head_dim: int, scale: float | None = None, threads: int = 1, kernel: str = "numpy",
           pool: ThreadPoolExecutor | None = None) -> np.ndarray:
    """Outputs [batch, q_heads, head_dim] for queries ``q`` of the same shape (float32).

    ``arena`` and ``gather`` are flat float32 arrays; ``kernel`` is "numpy"
    or "numba". A sequence with no tokens gets zeros.
    """
    if q.ndim != 3 or q.shape[0] != segs.batch or q.shape[2] != head_dim:
        raise ValueError(f"queries of shape {q.shape} for {segs.batch} sequences of head_dim {head_dim}")
    if q.shape[1] % kv_heads:
        raise ValueError(f"{q.shape[1]} query heads are not a multiple of {kv_heads} KV heads")
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {', '.join(KERNELS)}, not {kernel!r}")
    if kernel == "numba":
        require("kvserve", "the numba attention kernel")
    q = np.ascontiguousarray(q, dtype=np.float32)
    out = np.zeros(q.shape, dtype=np.float32)
    scale = 1.0 / math.sqrt(head_dim) if scale is None else scale
    if gather.size == 0:
        gather = np.zeros(1, dtype=np.float32)  # numba wants an array of the same type, even unused
    max_tokens = max(1, int(segs.n.max())) if segs.n.size else 1

    def run(lo: int, hi: int) -> None:
        if kernel == "numba":
            _numba_kernel()(arena, gather, segs.start, segs.k, segs.v, segs.n, segs.hs, q, out, lo, hi, kv_heads,
                            head_dim, np.float32(scale), max_tokens)
        else:
            _attend_numpy(arena, gather, segs, q, out, lo, hi, kv_heads, head_dim, scale)

    batch = segs.batch
    threads = max(1, min(threads, batch))
    if threads == 1:
        run(0, batch)
        return out
    bounds = [batch * i // threads for i in range(threads + 1)]
    own = pool is None
    pool = pool or ThreadPoolExecutor(threads, thread_name_prefix="kvserve-attend")
    try:
        for f in [pool.submit(run, bounds[i], bounds[i + 1]) for i in range(threads)]:
            f.result()
    finally:
        if own:
            pool.shutdown()
    return out
