"""Replay a trace against a model of the store: same tiers, same decisions, no bytes.

The model uses the store's own :class:`TierIndex` and eviction policies and
follows the order of operations of :class:`kvserve.store.KvStore`, request
by request:

1. get_prefix of the request's block keys: the leading blocks held in DRAM
   or on SuperFS are hits, counted by tier. Blocks found on SuperFS are
   promoted into DRAM (they stay on SuperFS too: a later eviction of an
   unchanged block needs no write). DRAM hits and promoted blocks are leased
   meanwhile, so promotions never evict them. Hits are recorded from the
   last block to the first (a chain is evicted from its tail).
2. put of the blocks after the prefix (the serving engine computed them):
   space is made for each in turn (DRAM victims not already on SuperFS are
   demoted there), then they are committed from last to first.

Capacity None means unbounded; with no SuperFS tier, DRAM victims are lost.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from kvserve.policy import make_policy
from kvserve.replay.report import ReplayReport
from kvserve.replay.trace import DEFAULT_BLOCK_TOKENS, TraceRequest, summarize
from kvserve.tier_index import TierIndex

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SimConfig:
    block_bytes: int
    dram_bytes: int | None = None       # None: unbounded
    superfs: bool = False               # is there a SuperFS tier below DRAM
    superfs_bytes: int | None = None    # None: unbounded
    policy: str = "s3fifo"
    block_tokens: int = DEFAULT_BLOCK_TOKENS


class TieredModel:
    """The store's capacity and eviction behaviour over block ids."""

    def __init__(self, cfg: SimConfig, report: ReplayReport) -> None:
        self.cfg = cfg
        self.report = report
        self.dram: TierIndex[int] = TierIndex(cfg.dram_bytes, make_policy(cfg.policy))
        self.sfs: TierIndex[int] | None = TierIndex(cfg.superfs_bytes, make_policy(cfg.policy)) if cfg.superfs else None
        self.clean: set[int] = set()    # DRAM blocks whose bytes SuperFS also holds
        self.leased: set[int] = set()

    def held(self, block: int) -> bool:
        return block in self.dram or (self.sfs is not None and block in self.sfs)

    def _admit(self, block: int) -> bool:
        """Make room in DRAM for one block (demoting victims); False if it cannot fit."""
        size = self.cfg.block_bytes
        victims = self.dram.evict_for(size, busy=self.leased.__contains__, busy_bytes=len(self.leased) * size)
        if victims is None:
            return False
        for v, vsize in victims:
            self.report.evictions["dram"] += 1
            clean = v in self.clean
            self.clean.discard(v)
            if self.sfs is not None and not (clean and v in self.sfs):
                self._write_sfs(v, vsize)
        return True

    def _write_sfs(self, block: int, size: int) -> None:
        assert self.sfs is not None
        if block in self.sfs or not self.sfs.fits_ever(size):
            return
        for _ in self.sfs.evict_for(size) or ():
            self.report.evictions["superfs"] += 1
        self.sfs.add(block, size)
        self.report.bytes_moved["superfs_written"] += size

    def request(self, req: TraceRequest) -> None:
        ids = req.hash_ids
        size = self.cfg.block_bytes
        n = 0
        while n < len(ids) and self.held(ids[n]):
            n += 1
        dram_hits = [b for b in ids[:n] if b in self.dram]
        self.leased = set(dram_hits)
        for i, b in enumerate(ids[:n]):
            if b in self.dram:
                self.report.add_hit("dram", req.block_tokens(i, self.cfg.block_tokens))
                self.report.bytes_moved["dram_read"] += size
                continue
            assert self.sfs is not None
            self.sfs.touch(b)
            self.report.add_hit("superfs", req.block_tokens(i, self.cfg.block_tokens))
            self.report.bytes_moved["superfs_read"] += size
            if self._admit(b):  # promotion
                self.dram.add(b, size)
                self.clean.add(b)
                self.leased.add(b)
                self.report.bytes_moved["dram_written"] += size
        for b in reversed(dram_hits):
            self.dram.touch(b)
        self.leased = set()
        # put the blocks the prefill computed
        admitted = []
        for b in ids[n:]:
            if self.held(b) or b in admitted:
                self.dram.touch(b)
                continue
            if self._admit(b):
                self.dram.reserve(size)
                admitted.append(b)
        for b in reversed(admitted):
            self.dram.unreserve(size)
            self.dram.add(b, size)
            self.report.bytes_moved["dram_written"] += size


def simulate(requests: Sequence[TraceRequest], cfg: SimConfig, *, trace: str = "",
             progress: Callable[[int, ReplayReport], None] | None = None) -> ReplayReport:
    s = summarize(requests)
    report = ReplayReport("simulate", trace, s.requests, s.blocks, s.distinct_blocks, s.input_tokens,
                          cfg.block_bytes, cfg.policy, cfg.dram_bytes, cfg.superfs_bytes, cfg.superfs)
    model = TieredModel(cfg, report)
    start = time.perf_counter()
    for done, req in enumerate(requests, 1):
        model.request(req)
        if progress is not None:
            progress(done, report)
    report.seconds = time.perf_counter() - start
    return report
