"""The numba kernel of kvserve.attention.kernel (see there): compiled on first use, cached on disk.

Written with row slices and small inlined helpers: LLVM then drops the index
checks and vectorizes each dot product and row update (3.8x the rate of a
first version indexing the arena directly), over each head's contiguous rows
(head-major blocks).
"""
# mypy: ignore-errors
from __future__ import annotations

import numba
import numpy as np


@numba.njit(nogil=True, fastmath=True, inline="always")
def _scores(src, ko, n, hs, qs, scores, kv_heads, head_dim, group):
    """scores[hq, t] = qs[hq] . K[hq // group, t] for the segment's n tokens: one pass over K."""
    for h in range(kv_heads):
        for t in range(n):
            base = ko + h * hs + t * head_dim
            krow = src[base:base + head_dim]
            for g in range(group):
                hq = h * group + g
                qrow = qs[hq]
                s = np.float32(0.0)
                for d in range(head_dim):
                    s += qrow[d] * krow[d]
                scores[hq, t] = s


@numba.njit(nogil=True, fastmath=True, inline="always")
def _softmax(scores, n, m, den, acc):
    """Online softmax: exponentiate against the new running maximum, rescale what was summed."""
    for hq in range(scores.shape[0]):
        mb = m[hq]
        for t in range(n):
            if scores[hq, t] > mb:
                mb = scores[hq, t]
        alpha = np.exp(m[hq] - mb)
        total = den[hq] * alpha
        for t in range(n):
            p = np.exp(scores[hq, t] - mb)
            scores[hq, t] = p
            total += p
        den[hq] = total
        m[hq] = mb
        acc[hq] *= alpha


@numba.njit(nogil=True, fastmath=True, inline="always")
def _values(src, vo, n, hs, scores, acc, kv_heads, head_dim, group):
    """acc[hq] += p[hq, t] * V[hq // group, t]: one pass over V."""
    for h in range(kv_heads):
        for t in range(n):
            base = vo + h * hs + t * head_dim
            vrow = src[base:base + head_dim]
            for g in range(group):
                hq = h * group + g
                p = scores[hq, t]
                a = acc[hq]
                for d in range(head_dim):
                    a[d] += p * vrow[d]


@numba.njit(nogil=True, fastmath=True, cache=True)
def attend_numba(arena, gather, seg_start, seg_k, seg_v, seg_n, seg_hs, q, out, lo, hi,
                 kv_heads, head_dim, scale, max_tokens):
    q_heads = q.shape[1]
    group = q_heads // kv_heads
    qs = np.empty((q_heads, head_dim), dtype=np.float32)
    scores = np.empty((q_heads, max_tokens), dtype=np.float32)
    acc = np.empty((q_heads, head_dim), dtype=np.float32)
    m = np.empty(q_heads, dtype=np.float32)
    den = np.empty(q_heads, dtype=np.float32)
    for b in range(lo, hi):
        m[:] = -np.inf
        den[:] = 0.0
        acc[:] = 0.0
        for hq in range(q_heads):
            for d in range(head_dim):
                qs[hq, d] = q[b, hq, d] * scale
        for s in range(seg_start[b], seg_start[b + 1]):
            n = seg_n[s]
            if n == 0:
                continue
            ko = seg_k[s]
            vo = seg_v[s]
            hs = seg_hs[s]
            if ko >= 0:
                _scores(arena, ko, n, hs, qs, scores, kv_heads, head_dim, group)
            else:
                _scores(gather, -1 - ko, n, hs, qs, scores, kv_heads, head_dim, group)
            _softmax(scores, n, m, den, acc)
            if vo >= 0:
                _values(arena, vo, n, hs, scores, acc, kv_heads, head_dim, group)
            else:
                _values(gather, -1 - vo, n, hs, scores, acc, kv_heads, head_dim, group)
        for hq in range(q_heads):
            inv = np.float32(1.0) / den[hq] if den[hq] > 0 else np.float32(0.0)
            for d in range(head_dim):
                out[b, hq, d] = acc[hq, d] * inv
