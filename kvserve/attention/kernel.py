"""Batched decode attention over K/V segments read in place: numba, with a numpy fallback.

For each sequence ``b`` of a batch and each query head ``hq`` (grouped-query
attention: query head ``hq`` reads KV head ``hq // (q_heads // kv_heads)``)::

    out[b, hq] = softmax(q[b, hq] . K[t, kv]^T * scale over t) . V[t, kv]

over the sequence's tokens, which come as *segments*: runs of tokens whose K
rows (``n x kv_heads x head_dim`` floats) start at float offset ``seg_k`` and
V rows at ``seg_v`` of a source array. A non-negative offset points into the
arena (the daemon's shared-memory DRAM tier, read in place); a negative one,
``-1 - offset``, into a small gather buffer (a request's tail tokens, or a
block slab split over two extents of the arena).

One pass over each segment's K then V, with a running (online) softmax per
head, so every byte of K and V is read once: decode attention is bound by
memory bandwidth, not arithmetic. Sequences are split over threads; the
numba kernel releases the GIL.
"""
from __future__ import annotations

import importlib.util
import logging
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import numpy as np

log = logging.getLogger(__name__)




@dataclass(frozen=True)
class Segments:
    """Where each sequence's tokens are: sequence b has segments start[b]:start[b+1]."""

    start: np.ndarray   # int64 [batch + 1]
    k: np.ndarray       # int64 [segments]: float offset of the K rows (negative: gather buffer)
    v: np.ndarray       # int64 [segments]
    n: np.ndarray       # int64 [segments]: tokens

    @property
    def batch(self) -> int:
        return len(self.start) - 1


def _attend_numpy(arena: np.ndarray, gather: np.ndarray, segs: Segments, q: np.ndarray, out: np.ndarray,
                  lo: int, hi: int, kv_heads: int, head_dim: int, scale: float) -> None:
    q_heads = q.shape[1]
    group = q_heads // kv_heads
    row = kv_heads * head_dim
    for b in range(lo, hi):
        qs = q[b].reshape(kv_heads, group, head_dim) * np.float32(scale)
        m = np.full((kv_heads, group), -np.inf, dtype=np.float32)
        den = np.zeros((kv_heads, group), dtype=np.float32)
        acc = np.zeros((kv_heads, group, head_dim), dtype=np.float32)
        for s in range(segs.start[b], segs.start[b + 1]):
            n, ko, vo = int(segs.n[s]), int(segs.k[s]), int(segs.v[s])
            if n == 0:
                continue
            src_k, ko = (arena, ko) if ko >= 0 else (gather, -1 - ko)
            src_v, vo = (arena, vo) if vo >= 0 else (gather, -1 - vo)
            k = src_k[ko:ko + n * row].reshape(n, kv_heads, head_dim)
            v = src_v[vo:vo + n * row].reshape(n, kv_heads, head_dim)
            scores = np.einsum("hgd,nhd->hgn", qs, k)
            new_m = np.maximum(m, scores.max(axis=2))
            alpha = np.exp(m - new_m)
            p = np.exp(scores - new_m[:, :, None])
            den = den * alpha + p.sum(axis=2)
            acc = acc * alpha[:, :, None] + np.einsum("hgn,nhd->hgd", p, v)
            m = new_m
        out[b] = (acc / np.where(den > 0, den, 1)[:, :, None]).reshape(q_heads, head_dim)


def _numba_kernel() -> Callable[..., None]:
    """The numba kernel, imported on first use: numba costs half a second to import."""
    from kvserve.attention.numba_kernel import attend_numba
    return attend_numba  # type: ignore[no-any-return]


def have_numba() -> bool:
    return importlib.util.find_spec("numba") is not None


def attend(arena: np.ndarray, gather: np.ndarray, segs: Segments, q: np.ndarray, *, kv_heads: int,
           head_dim: int, scale: float | None = None, threads: int = 1, kernel: str = "auto",
           pool: ThreadPoolExecutor | None = None) -> np.ndarray:
    """Outputs [batch, q_heads, head_dim] for queries ``q`` of the same shape (float32).

    ``arena`` and ``gather`` are flat float32 arrays; ``kernel`` is "numba",
    "numpy" or "auto" (numba when installed). A sequence with no tokens gets
    zeros.
    """
    if q.ndim != 3 or q.shape[0] != segs.batch or q.shape[2] != head_dim:
        raise ValueError(f"queries of shape {q.shape} for {segs.batch} sequences of head_dim {head_dim}")
    if q.shape[1] % kv_heads:
        raise ValueError(f"{q.shape[1]} query heads are not a multiple of {kv_heads} KV heads")
    if kernel == "auto":
        kernel = "numba" if have_numba() else "numpy"
    if kernel == "numba" and not have_numba():
        raise ValueError("the numba kernel needs numba (pip install numba)")
    if kernel not in ("numba", "numpy"):
        raise ValueError(f"kernel must be numba, numpy or auto, not {kernel!r}")
    q = np.ascontiguousarray(q, dtype=np.float32)
    out = np.zeros(q.shape, dtype=np.float32)
    scale = 1.0 / math.sqrt(head_dim) if scale is None else scale
    if gather.size == 0:
        gather = np.zeros(1, dtype=np.float32)  # numba wants an array of the same type, even unused
    max_tokens = int(segs.n.max()) if segs.n.size else 1

    def run(lo: int, hi: int) -> None:
        if kernel == "numba":
            _numba_kernel()(arena, gather, segs.start, segs.k, segs.v, segs.n, q, out, lo, hi, kv_heads,
                            head_dim, np.float32(scale), max(1, max_tokens))
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
