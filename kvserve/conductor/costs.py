"""The cost model: every time the simulator charges, as explicit constants.

Nothing here is measured on this machine: the constants describe the GPU
cluster being simulated, and each one says where it comes from. The default
(``llama2-70b``) follows the setting of the Mooncake paper: LLaMA-2-70B
(80 layers, 64 query heads, 8 KV heads of 128 dims, bf16) served by prefill
and decode instances of one node with 8 A800-class GPUs each.

Prefill of a request with ``c`` prompt tokens already cached and ``n`` new
tokens takes::

    prefill_overhead_s + n * prefill_s_per_token + pairs * prefill_s_per_token_pair
    pairs = n * c + n * (n + 1) / 2          # (query, key) pairs of causal attention

``prefill_s_per_token``: 2 x 70e9 FLOPs per token at 8 x 312 TFLOP/s and 50%
utilisation = 1.12e-4 s (about 8,900 tokens/s with nothing cached).
``prefill_s_per_token_pair``: 4 x 80 layers x 8192 (query width) FLOPs per
(query, key) pair at the same rate = 2.1e-9 s.

One decode step of a batch of ``b`` requests holding ``C`` context tokens
takes::

    decode_step_base_s + b * decode_s_per_seq + C * decode_s_per_context_token

the base being the weights read once per step (140 GB from 8 x 2 TB/s HBM at
70% = 12.5 ms), the context term the KV read (kv_bytes_per_token at the same
rate: 2.9e-8 s per token), the per-sequence term the rest of the work. A
decode instance holds at most ``decode_kv_tokens`` tokens of KV (HBM left
after the weights).

KV bytes per token: 2 (K, V) x 80 layers x 8 heads x 128 dims x 2 bytes =
327,680; one 512-token block is 160 MiB. Blocks move between tiers at the
bandwidths below, on the critical path of the prefill that needs them: from
the instance's own DRAM to its GPUs (``local_bytes_per_s``: 8 PCIe 4.0 x16
links at 20 GB/s), from another instance's DRAM (``pool_bytes_per_s``: 8 x
200 Gb/s RDMA NICs are 200 GB/s on the wire; Mooncake's transfer engine
reports 87 GB/s over 4 such NICs; we take 80), from the SuperFS tier
(``superfs_bytes_per_s``: 10 GB/s, SSD-backed and over the network). The
prompt's KV goes to the decode instance layer by layer while prefill
computes (``to_decode_bytes_per_s``, the same NICs): decode has it when both
are done. A hot block copied to another instance in the background takes
``block_bytes / pool_bytes_per_s`` and delays nothing else.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from kvserve.replay.trace import DEFAULT_BLOCK_TOKENS


@dataclass(frozen=True)
class CostModel:
    name: str = "llama2-70b"
    block_tokens: int = DEFAULT_BLOCK_TOKENS
    kv_bytes_per_token: int = 327_680
    prefill_overhead_s: float = 0.02
    prefill_s_per_token: float = 1.12e-4
    prefill_s_per_token_pair: float = 2.1e-9
    decode_step_base_s: float = 0.0125
    decode_s_per_seq: float = 1.0e-4
    decode_s_per_context_token: float = 2.9e-8
    decode_kv_tokens: int = 1_200_000
    local_bytes_per_s: float = 160e9
    pool_bytes_per_s: float = 80e9
    superfs_bytes_per_s: float = 10e9
    to_decode_bytes_per_s: float = 80e9

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name != "name" and not value > 0:
                raise ValueError(f"cost model: {f.name} must be positive, not {value!r}")

    @property
    def block_bytes(self) -> int:
        return self.kv_bytes_per_token * self.block_tokens

    def prefill_s(self, new_tokens: int, cached_tokens: int) -> float:
        n, c = max(0, new_tokens), max(0, cached_tokens)
        pairs = n * c + n * (n + 1) / 2
        return self.prefill_overhead_s + n * self.prefill_s_per_token + pairs * self.prefill_s_per_token_pair

    def decode_step_s(self, batch: int, context_tokens: int) -> float:
        return (self.decode_step_base_s + batch * self.decode_s_per_seq
                + context_tokens * self.decode_s_per_context_token)

    def load_s(self, local: int, pool: int, superfs: int) -> float:
        """Moving blocks to the GPUs of the instance that prefills: from its DRAM, the pool, SuperFS."""
        b = self.block_bytes
        return b * (local / self.local_bytes_per_s + pool / self.pool_bytes_per_s + superfs / self.superfs_bytes_per_s)

    def to_decode_s(self, tokens: int) -> float:
        return tokens * self.kv_bytes_per_token / self.to_decode_bytes_per_s

    def replace(self, **changes: object) -> "CostModel":
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


# Presets: the paper's setting, and smaller models whose blocks fit this machine's daemons (live mode).
MODELS: dict[str, CostModel] = {
    "llama2-70b": CostModel(),
    # LLaMA-3-8B (32 layers, 8 KV heads x 128, bf16) on one GPU: 128 KiB of KV per token, 64 MiB blocks
    "llama3-8b": CostModel(name="llama3-8b", kv_bytes_per_token=131_072, prefill_overhead_s=0.01,
                           prefill_s_per_token=1.0e-4, prefill_s_per_token_pair=3.4e-9,
                           decode_step_base_s=0.009, decode_s_per_seq=1.0e-4, decode_s_per_context_token=7.5e-8,
                           decode_kv_tokens=400_000, local_bytes_per_s=25e9, pool_bytes_per_s=12.5e9,
                           superfs_bytes_per_s=3e9, to_decode_bytes_per_s=12.5e9),
    # LLaMA-3.2-1B (16 layers, 8 KV heads x 64, bf16) on one GPU: 32 KiB per token, 16 MiB blocks
    "llama3.2-1b": CostModel(name="llama3.2-1b", kv_bytes_per_token=32_768, prefill_overhead_s=0.005,
                             prefill_s_per_token=1.6e-5, prefill_s_per_token_pair=8.4e-10,
                             decode_step_base_s=0.002, decode_s_per_seq=2.0e-5, decode_s_per_context_token=1.9e-8,
                             decode_kv_tokens=2_000_000, local_bytes_per_s=25e9, pool_bytes_per_s=12.5e9,
                             superfs_bytes_per_s=3e9, to_decode_bytes_per_s=12.5e9),
}


@dataclass(frozen=True)
class Objectives:
    """Service-level objectives: a request counts for goodput only if it meets both.

    ``ttft_s``: time from arrival to the first token (Mooncake's real-workload
    experiment used 30 s). ``tbt_s``: the request's mean time between tokens
    (from the first token to the last; 0.1 s there).
    """

    ttft_s: float = 30.0
    tbt_s: float = 0.1

    def __post_init__(self) -> None:
        if not (self.ttft_s > 0 and self.tbt_s > 0):
            raise ValueError("objectives must be positive")

    def met(self, ttft: float, tbt: float) -> bool:
        return ttft <= self.ttft_s and tbt <= self.tbt_s


@dataclass(frozen=True)
class ClusterShape:
    """The simulated cluster: instance counts and their KV caches.

    Each prefill instance keeps a DRAM cache of ``prefill_cache_blocks``
    blocks (the pool is the union of these caches, as in Mooncake: any
    instance can read another's blocks over RDMA). Blocks evicted from an
    instance's DRAM go to a shared SuperFS tier (``superfs_blocks``; None:
    unbounded; 0: no tier).
    """

    prefill: int = 4
    decode: int = 2
    prefill_cache_blocks: int = 4096
    superfs_blocks: int | None = None
    cache_policy: str = "lru"

    def __post_init__(self) -> None:
        if self.prefill < 1 or self.decode < 1:
            raise ValueError("a cluster needs at least one prefill and one decode instance")
        if self.prefill_cache_blocks < 1 or (self.superfs_blocks is not None and self.superfs_blocks < 0):
            raise ValueError("cache sizes must be positive (superfs_blocks may be 0: no SuperFS tier)")
