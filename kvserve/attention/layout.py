"""How a KV block is laid out in its kvserve object, for decode attention beside the cache.

One object holds the K and V of ``block_tokens`` consecutive tokens of one
sequence, for every layer, as one C-ordered float32 array::

    [layers, 2 (K then V), block_tokens, kv_heads, head_dim]

so one layer's K (or V) of a block is one contiguous slab of
``block_tokens * kv_heads * head_dim`` floats, and a token's row for one
head is ``head_dim`` contiguous floats. Only full blocks are objects (they
are keyed by ``kvserve.block_hashes``); the tokens after the last full block
(the "tail", which grows as the sequence decodes) travel with each attention
request.

float32 only: numba has no float16 arithmetic on CPU and numpy no bfloat16.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DTYPE = np.dtype(np.float32)


@dataclass(frozen=True)
class KvLayout:
    layers: int
    kv_heads: int
    head_dim: int
    block_tokens: int = 512

    def __post_init__(self) -> None:
        for name in ("layers", "kv_heads", "head_dim", "block_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive")

    @property
    def row(self) -> int:
        """Floats of one token's K (or V) over all heads."""
        return self.kv_heads * self.head_dim

    @property
    def slab_floats(self) -> int:
        return self.block_tokens * self.row

    @property
    def block_bytes(self) -> int:
        return self.layers * 2 * self.slab_floats * DTYPE.itemsize

    def k_offset(self, layer: int) -> int:
        """Byte offset of ``layer``'s K slab inside a block object."""
        return (2 * layer) * self.slab_floats * DTYPE.itemsize

    def v_offset(self, layer: int) -> int:
        return (2 * layer + 1) * self.slab_floats * DTYPE.itemsize

    def check_layer(self, layer: int) -> None:
        if not 0 <= layer < self.layers:
            raise ValueError(f"layer {layer} is not in [0, {self.layers})")

    def pack(self, k: np.ndarray, v: np.ndarray) -> np.ndarray:
        """One block's object bytes from K and V of shape [layers, block_tokens, kv_heads, head_dim]."""
        shape = (self.layers, self.block_tokens, self.kv_heads, self.head_dim)
        if k.shape != shape or v.shape != shape:
            raise ValueError(f"K and V must have shape {shape}, not {k.shape} and {v.shape}")
        out = np.empty((self.layers, 2) + shape[1:], dtype=DTYPE)
        out[:, 0] = k
        out[:, 1] = v
        return out.reshape(-1).view(np.uint8)
