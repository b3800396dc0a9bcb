"""How a KV block is laid out in its kvserve object, for decode attention beside the cache.

One object holds the K and V of ``block_tokens`` consecutive tokens of one
sequence, for every layer, as one C-ordered float32 array, heads before
tokens ("HND", as paged-attention kernels store blocks)::

    [layers, 2 (K then V), kv_heads, block_tokens, head_dim]

so one layer's K (or V) of a block is one contiguous slab, and within it
each head's ``block_tokens x head_dim`` matrix is contiguous: a kernel
multiplies it with that head's queries in one matrix product or streams its
rows (measured here: about 3x the rate of the numba kernel over token-major
blocks). Only full blocks are objects (keyed by ``kvserve.block_hashes``);
the tokens after the last full block (the "tail", which grows as the
sequence decodes) travel with each attention request, token-major
``[n, kv_heads, head_dim]`` as a decode step produces them.

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

    @property
    def head_stride(self) -> int:
        """Floats from one head's matrix to the next inside a slab."""
        return self.block_tokens * self.head_dim

    def pack(self, k: np.ndarray, v: np.ndarray) -> np.ndarray:
        """A block's object bytes from K and V as a model makes them: [layers, block_tokens, kv_heads, head_dim]."""
        shape = (self.layers, self.block_tokens, self.kv_heads, self.head_dim)
        if k.shape != shape or v.shape != shape:
            raise ValueError(f"K and V must have shape {shape}, not {k.shape} and {v.shape}")
        out = np.empty((self.layers, 2, self.kv_heads, self.block_tokens, self.head_dim), dtype=DTYPE)
        out[:, 0] = k.transpose(0, 2, 1, 3)
        out[:, 1] = v.transpose(0, 2, 1, 3)
        return out.reshape(-1).view(np.uint8)
