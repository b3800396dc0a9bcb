"""kvserve.attention: decode attention beside the cache (FastDecode's CPU side).

The KV blocks of many sequences stay in a kvserve daemon's DRAM tier; a
client sends the queries of a decode batch (``client.attend``) and the
daemon computes softmax(q K^T / sqrt(d)) V over the blocks where they lie in
its shared-memory arena, with grouped-query attention, and answers the
outputs (``serve.py``). A block that is gone is a clear miss for its
sequence, never a wrong output.

* ``layout.py``: a block's bytes: float32 [layers, 2, kv_heads, block_tokens, head_dim]
* ``kernel.py``: the batched kernel over in-place segments (numpy/BLAS; ``numba_kernel.py``)
* ``serve.py``: the daemon's Attend: lease, locate slabs, compute in a worker thread
* ``client.py``: build an Attend request from numpy arrays, decode the reply
"""
from __future__ import annotations

from kvserve.attention.layout import KvLayout

__all__ = ["KvLayout"]
