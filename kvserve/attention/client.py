"""Send a batch of decode queries to a kvserve daemon and get the attention outputs back.

The caller (a serving engine's decode step, FastDecode's GPU side) keeps
each sequence's full KV blocks in the store, under the keys it put them
with, and sends per step only the queries, the block keys and the K/V of
the tokens after the last full block::

    layout = KvLayout(layers=32, kv_heads=8, head_dim=128, block_tokens=512)
    with KvClient(address, namespace) as c:
        c.put_batch(keys, [layout.pack(k, v) for k, v in blocks])      # once per full block
        res = attend(c, layout, queries, [seq_keys, ...], layer=l, tails=[(tail_k, tail_v), ...])
        res.outputs                   # [batch, q_heads, head_dim]
        res.missing                   # {sequence: index of its first block the store lacked}

A sequence whose block is gone (evicted, removed, its daemon restarted) is a
clear miss: it is in ``missing`` and its output row is zeros, never a result
computed over wrong or partial KV. The engine recomputes its prefix.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from kvserve.attention.layout import DTYPE, KvLayout
from kvserve.client import KvClient
from kvserve.errors import Status
from kvserve.v1 import kvserve_pb2 as pb


@dataclass
class AttendResult:
    outputs: np.ndarray                        # [batch, q_heads, head_dim] float32
    missing: dict[int, int] = field(default_factory=dict)  # sequence -> its first block not in the store
    kv_bytes: int = 0                          # K and V bytes the daemon read
    gathered_bytes: int = 0                    # of them, copied before computing (tails, split slabs)
    compute_seconds: float = 0.0


def attend(client: KvClient, layout: KvLayout, queries: np.ndarray, sequences: Sequence[Sequence[bytes]], *,
           layer: int = 0, tails: Sequence[tuple[np.ndarray, np.ndarray] | None] | None = None,
           scale: float | None = None) -> AttendResult:
    """Decode attention for ``queries`` [batch, q_heads, head_dim] over each sequence's blocks and tail.

    ``tails[i]``: K and V of shape [n, kv_heads, head_dim] of the tokens after
    sequence i's last full block (None or omitted: none).
    """
    q = np.ascontiguousarray(queries, dtype=DTYPE)
    if q.ndim != 3 or q.shape[0] != len(sequences) or q.shape[2] != layout.head_dim:
        raise ValueError(f"queries of shape {q.shape} for {len(sequences)} sequences of head_dim {layout.head_dim}")
    if tails is not None and len(tails) != len(sequences):
        raise ValueError("one tail (or None) per sequence")
    seqs, tk, tv = [], [], []
    for i, keys in enumerate(sequences):
        tail = tails[i] if tails is not None else None
        n = 0
        if tail is not None:
            k, v = (np.ascontiguousarray(x, dtype=DTYPE) for x in tail)
            if k.shape != v.shape or k.ndim != 3 or k.shape[1:] != (layout.kv_heads, layout.head_dim):
                raise ValueError(f"tail {i}: K and V must be [n, {layout.kv_heads}, {layout.head_dim}], "
                                 f"not {k.shape} and {v.shape}")
            n = k.shape[0]
            tk.append(k.reshape(-1))
            tv.append(v.reshape(-1))
        seqs.append(pb.AttendSequence(keys=list(keys), tail_tokens=n))
    request = pb.AttendRequest(
        layers=layout.layers, kv_heads=layout.kv_heads, head_dim=layout.head_dim,
        block_tokens=layout.block_tokens, q_heads=q.shape[1], layer=layer, scale=scale or 0.0,
        sequences=seqs, queries=q.tobytes(),
        tail_k=np.concatenate(tk).tobytes() if tk else b"", tail_v=np.concatenate(tv).tobytes() if tv else b"")
    kv_bytes = sum(len(s) for s in sequences) * 2 * layout.slab_floats * DTYPE.itemsize
    reply = client.attend(request, kv_bytes)
    out = np.frombuffer(reply.outputs, dtype=DTYPE).reshape(q.shape).copy()
    missing = {i: r.missing_block for i, r in enumerate(reply.results) if r.status != Status.OK}
    return AttendResult(out, missing, reply.kv_bytes, reply.gathered_bytes, reply.compute_seconds)
