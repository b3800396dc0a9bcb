"""Replay a trace against running daemons: real get_prefix and put calls.

Each trace block id becomes a 16-byte key (hashed with the namespace, like
:func:`kvserve.prefix.block_hashes` chains token blocks) and each block's
bytes are derived from its id, so every block read back is checked: a
block whose bytes are not the ones put is counted in ``wrong_data`` (it
must stay 0). Per request: get_prefix of all its keys (hits counted by the
tier the daemon served them from), then put of the keys after the prefix.

Tier capacities and the policy are the daemons' own settings; the report
takes evictions and SuperFS traffic from their Stats before and after.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable, Sequence

import numpy as np
import xxhash

from kvserve.api import StoreApi
from kvserve.errors import Status, Tier
from kvserve.prefix import chain_seed
from kvserve.replay.report import ReplayReport
from kvserve.replay.trace import DEFAULT_BLOCK_TOKENS, TraceRequest, summarize

log = logging.getLogger(__name__)

HEADER = 8  # the block id, little-endian, at the start of its bytes


def block_key(seed: bytes, block_id: int) -> bytes:
    return xxhash.xxh3_128_digest(seed + block_id.to_bytes(8, "little"))


def block_bytes_of(block_id: int, size: int) -> np.ndarray:
    """The bytes a block is stored with: its id, then a fill that depends on it."""
    data = np.full(size, block_id % 251, dtype=np.uint8)
    head = np.frombuffer(block_id.to_bytes(8, "little"), dtype=np.uint8)[:size]
    data[:len(head)] = head
    return data


def is_block(block_id: int, data: bytes | None, size: int) -> bool:
    if data is None or len(data) != size:
        return False
    view = np.frombuffer(data, dtype=np.uint8)
    head = block_id.to_bytes(8, "little")[:size]
    return data[:len(head)] == head and bool((view[len(head):] == block_id % 251).all())


def _totals(stats: Sequence[Any]) -> dict[str, int]:
    out = {"dram_evictions": 0, "superfs_evictions": 0, "superfs_read": 0, "superfs_written": 0}
    for s in stats:
        if s is None:
            continue
        out["dram_evictions"] += s.dram.evictions
        out["superfs_evictions"] += s.superfs.evictions
        out["superfs_read"] += s.superfs.bytes_read
        out["superfs_written"] += s.superfs.bytes_written
    return out


def drive(requests: Sequence[TraceRequest], store: StoreApi, *, namespace: str, block_bytes: int,
          stats: Callable[[], Sequence[Any]], trace: str = "", block_tokens: int = DEFAULT_BLOCK_TOKENS,
          progress: Callable[[int, ReplayReport], None] | None = None) -> ReplayReport:
    """Replay ``requests`` through ``store`` (a KvClient or KvCluster)."""
    if block_bytes < 1:
        raise ValueError("block_bytes must be positive")
    s = summarize(requests)
    first = [x for x in stats() if x is not None]
    policy = first[0].policy if first else "?"
    sfs_enabled = any(x.superfs_enabled for x in first)
    dram_cap = sum(x.dram.capacity for x in first) or None
    sfs_cap = sum(x.superfs.capacity for x in first) if sfs_enabled and all(
        x.superfs.capacity for x in first) else None
    report = ReplayReport("drive", trace, s.requests, s.blocks, s.distinct_blocks, s.input_tokens, block_bytes,
                          policy, dram_cap, sfs_cap, sfs_enabled)
    before = _totals(first)
    seed = chain_seed(namespace, block_tokens, "xxh3")
    start = time.perf_counter()
    for done, req in enumerate(requests, 1):
        keys = [block_key(seed, b) for b in req.hash_ids]
        hits = store.lookup(keys, prefix=True)
        for i, hit in enumerate(hits):
            assert hit is not None
            if not is_block(req.hash_ids[i], hit.data, block_bytes):
                report.wrong_data += 1
                log.error("block %d came back with the wrong bytes", req.hash_ids[i])
            tier = "dram" if hit.tier == Tier.DRAM else "superfs"
            report.add_hit(tier, req.block_tokens(i, block_tokens))
        n = len(hits)
        report.bytes_moved["dram_read"] += sum(h.size for h in hits if h is not None and h.tier == Tier.DRAM)
        if n < len(keys):
            todo = req.hash_ids[n:]
            statuses = store.put_batch(keys[n:], [block_bytes_of(b, block_bytes) for b in todo])
            report.bytes_moved["dram_written"] += block_bytes * sum(1 for st in statuses if st is Status.OK)
            report.unavailable += sum(1 for st in statuses if st is Status.UNAVAILABLE)
        if progress is not None:
            progress(done, report)
    report.seconds = time.perf_counter() - start
    after = _totals(stats())
    report.evictions["dram"] = after["dram_evictions"] - before["dram_evictions"]
    report.evictions["superfs"] = after["superfs_evictions"] - before["superfs_evictions"]
    report.bytes_moved["superfs_read"] = after["superfs_read"] - before["superfs_read"]
    report.bytes_moved["superfs_written"] = after["superfs_written"] - before["superfs_written"]
    # promotions from SuperFS are DRAM writes too
    report.bytes_moved["dram_written"] += report.bytes_moved["superfs_read"]
    return report
