"""The operator's moves over every file: rebalance, drain, re-replication of a dead server.

Each pass scans every shard's chunked files (ChunkPort.files), moves those
whose layout must change (superfs/rebalance/mover.py) and scans again until
a scan finds nothing left to do; a file that changed while moved is simply
met again by the next scan. ``report`` gets one progress line per
``every`` chunks moved, and a last one.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import time
from typing import Callable

from superfs.errors import FsError
from superfs.rebalance import plan
from superfs.rebalance.mover import Mover
from superfs.rebalance.port import ChunkPort
from superfs.v1 import superfs_pb2 as pb

log = logging.getLogger(__name__)

MAX_SCANS = 20
# A shard checks a new layout against data server states at most 1 s old (LAYOUT_MAP_AGE_S in
# superfs/shard/cluster.py): a scan that begins this long after a state change meets every file
# that will ever be placed on the server.
SETTLE_S = 3.0
RETRY_PAUSE_S = 1.0  # between scans that left files to retry (20 scans outlast a dead mover's fence)
CHECK_EVERY = 8  # files moved between two looks at the servers' shares
Report = Callable[[str], None]


class _Reporter:
    def __init__(self, mover: Mover, what: str, report: Report, every: int) -> None:
        self.mover, self.what, self.report, self.every = mover, what, report, max(1, every)
        self.next = self.every

    def tick(self) -> None:
        if self.mover.progress.chunks >= self.next:
            self.report(self.mover.progress.line(self.what))
            while self.next <= self.mover.progress.chunks:
                self.next += self.every

    def done(self) -> None:
        self.report(self.mover.progress.line(self.what + " done"))


async def _fresh_map(port: ChunkPort, mover: Mover) -> None:
    """Each scan with the map as it is now (a server may have been added, drained or declared dead)."""
    await port.view.refresh_quietly()
    mover.cmap = port.view.map


async def shares(port: ChunkPort, servers: list[int]) -> dict[int, int]:
    """Chunks each server holds now."""
    return {s: await port.chunk_count(s) for s in servers}


async def empty_servers(port: ChunkPort, mover: Mover, servers: set[int], *, what: str, report: Report,
                        every: int = 100) -> int:
    """Move every file off ``servers`` (draining or dead in ``mover.cmap``); files left behind (0: done)."""
    rep = _Reporter(mover, what, report, every)
    load = await shares(port, plan.active(mover.cmap))
    settled = time.monotonic() + SETTLE_S
    left = 0
    for _ in range(MAX_SCANS):
        left = found = 0
        began = time.monotonic()
        await _fresh_map(port, mover)
        async for f in port.files():
            if not servers & set(f.layout):
                continue
            found += 1
            target = plan.drain_target(list(f.layout), mover.cmap, load)
            if not target:
                raise FsError(errno.ENOSPC, "no active data server is left to take the chunks")
            try:
                if not await mover.move(f, target):
                    left += 1
            except FsError as e:
                if e.errno == errno.EBUSY:
                    raise  # another mover took the lease
                log.warning("inode %d: move failed: %s", f.attr.ino, e)
                mover.progress.failed += 1
                left += 1
            for s in target:
                load[s] = load.get(s, 0) + 1
            rep.tick()
        if not found and began >= settled:
            break  # a whole scan found nothing, and no shard can place a new file there any more
        if not found:
            await asyncio.sleep(settled - time.monotonic())
        elif left:
            await asyncio.sleep(RETRY_PAUSE_S)  # files that changed, or an earlier mover's fence
    rep.done()
    return left or found


async def rebalance(port: ChunkPort, mover: Mover, *, tolerance: float, report: Report,
                    every: int = 100) -> dict[int, int]:
    """Move files onto every active server until each holds its share within ``tolerance``."""
    target = plan.rebalance_target(mover.cmap)
    if not target:
        raise FsError(errno.ENOSPC, "no active data server")
    rep = _Reporter(mover, "rebalance", report, every)
    counts = await shares(port, target)
    report(f"rebalance: chunks per server {counts}, tolerance {tolerance:.0%}")
    for _ in range(MAX_SCANS):
        if plan.within_tolerance(counts, tolerance):
            break
        pending = moved = 0
        await _fresh_map(port, mover)
        async for f in port.files():
            if sorted(f.layout) == target:
                continue
            try:
                if not await mover.move(f, target):
                    pending += 1
            except FsError as e:
                if e.errno == errno.EBUSY:
                    raise  # another mover took the lease
                log.warning("inode %d: move failed: %s", f.attr.ino, e)
                mover.progress.failed += 1
            rep.tick()
            moved += 1
            if moved % CHECK_EVERY == 0:  # stop as soon as the shares are even enough
                counts = await shares(port, target)
                if plan.within_tolerance(counts, tolerance):
                    break
        counts = await shares(port, target)
        if not pending:
            break
        await asyncio.sleep(RETRY_PAUSE_S)
    rep.done()
    report(f"rebalance: chunks per server {counts}")
    return counts


async def under_replicated(port: ChunkPort, cmap: pb.ClusterMap) -> tuple[int, dict[int, int]]:
    """Chunks with a copy on a dead or removed server, and files still placed on each leaving server."""
    chunks = 0
    leaving = plan.leaving(cmap)
    files_on: dict[int, int] = {s: 0 for s in leaving}
    async for f in port.files():
        chunks += plan.under_replicated(f, cmap)
        for s in leaving & set(f.layout):
            files_on[s] += 1
    return chunks, files_on
