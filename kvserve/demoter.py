"""Demoter: writes objects evicted from DRAM to the SuperFS tier, in batches, in the background.

Eviction must not wait for a SuperFS round trip, so an evicted object's
bytes (copied out of the arena, whose pages are then reused at once) wait
here until a writer stores them. While waiting they are still served: a get
finds them here and promotes them back. The bytes waiting are bounded
(``limit_bytes``); a put that needs room waits for the queue to drain below
the bound, which throttles writers to what the SuperFS tier absorbs instead
of growing memory without limit.

Writers take the queue in batches of up to ``BATCH_BYTES`` (one segment
file each, kvserve/segments.py): a handful of writers, so that while they
write, the next evictions gather into the next batch. Demoting a 32 KiB
block cost two metadata round trips when each had its own file; a batch of
128 costs about five for all of them.

Stopping (:meth:`close`) refuses new demotions, waits (bounded) for those
queued and in flight, and drops and counts the rest: the daemon says how
many were written and how many dropped before it says it stopped.
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque

from kvserve.dram import ObjectId
from kvserve.sfs_tier import SuperFsTier

log = logging.getLogger(__name__)

BATCH_BYTES = 4 << 20      # one segment: a SuperFS chunk, one byte-path write
BATCH_WRITERS = 4          # segments being written at once
LINGER_S = 0.002           # a writer with less than a batch waits this long for more


class Demoter:
    def __init__(self, tier: SuperFsTier, limit_bytes: int, concurrency: int, batch_bytes: int = BATCH_BYTES) -> None:
        self.tier = tier
        self.limit_bytes = limit_bytes
        self.batch_bytes = batch_bytes
        self.max_writers = max(1, min(concurrency, BATCH_WRITERS))
        self._pending: dict[ObjectId, tuple[bytes, int]] = {}
        self._queue: deque[ObjectId] = deque()
        self._queued_bytes = 0
        self._cancelled: set[ObjectId] = set()
        self._writers: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Condition()
        self._closing = False
        self.inflight_bytes = 0
        self.written = 0   # objects now held by the tier
        self.dropped = 0   # objects that could not be written (lost from the cache)
        self.batches = 0

    def lookup(self, oid: ObjectId) -> tuple[bytes, int] | None:
        return self._pending.get(oid)

    def __contains__(self, oid: object) -> bool:
        return oid in self._pending

    async def wait_for_room(self) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.inflight_bytes < self.limit_bytes)

    def submit(self, oid: ObjectId, data: bytes, checksum: int) -> None:
        if oid in self._pending or oid in self.tier:
            return
        if self._closing:
            self.dropped += 1
            return
        self._pending[oid] = (data, checksum)
        self._cancelled.discard(oid)
        self._queue.append(oid)
        self._queued_bytes += len(data)
        self.inflight_bytes += len(data)
        if len(self._writers) < self.max_writers:
            task = asyncio.get_running_loop().create_task(self._write_loop())
            self._writers.add(task)
            task.add_done_callback(self._writers.discard)

    def cancel(self, oid: ObjectId) -> None:
        """The object was removed: do not let a pending write bring it back."""
        if oid in self._pending:
            self._cancelled.add(oid)

    def _take(self) -> list[tuple[ObjectId, bytes, int]]:
        batch: list[tuple[ObjectId, bytes, int]] = []
        size = 0
        while self._queue and (not batch or size + len(self._pending[self._queue[0]][0]) <= self.batch_bytes):
            oid = self._queue.popleft()
            data, checksum = self._pending[oid]
            self._queued_bytes -= len(data)
            if oid in self._cancelled:
                self._settle(oid, data, written=False, counted=False)
                continue
            batch.append((oid, data, checksum))
            size += len(data)
        return batch

    async def _write_loop(self) -> None:
        try:
            await self._write_batches()
        finally:
            async with self._changed:
                self._changed.notify_all()

    async def _write_batches(self) -> None:
        while self._queue:
            if self._queued_bytes < self.batch_bytes and len(self._writers) > 1 and not self._closing:
                await asyncio.sleep(LINGER_S)  # let the next evictions join this batch
            batch = self._take()
            if not batch:
                continue
            self.batches += 1
            try:
                held = await self.tier.write_batch(batch)
            except Exception:  # noqa: BLE001 - a cache may lose objects, the daemon must go on
                log.exception("demotion of %d objects failed", len(batch))
                held = [False] * len(batch)
            for (oid, data, _), ok in zip(batch, held):
                if oid in self._cancelled:
                    await self.tier.remove(oid)
                    self._settle(oid, data, written=False, counted=False)
                else:
                    self._settle(oid, data, written=ok, counted=True)
            async with self._changed:
                self._changed.notify_all()

    def _settle(self, oid: ObjectId, data: bytes, *, written: bool, counted: bool) -> None:
        if counted:
            if written:
                self.written += 1
            else:
                self.dropped += 1
        self._cancelled.discard(oid)
        self._pending.pop(oid, None)
        self.inflight_bytes -= len(data)

    async def drain(self, timeout_s: float | None = None) -> bool:
        """Wait for every pending write; False if some were still pending at the timeout."""
        async def empty() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: not self._pending)

        if not self._pending:
            return True
        try:
            await asyncio.wait_for(empty(), timeout_s)
        except asyncio.TimeoutError:
            return False
        return True

    async def close(self, timeout_s: float) -> tuple[int, int]:
        """Stop taking demotions, finish those pending within ``timeout_s``, drop the rest.

        Returns (written while closing, dropped while closing), and logs them.
        """
        self._closing = True
        written0, dropped0 = self.written, self.dropped
        waiting = len(self._pending)
        if not await self.drain(timeout_s):
            tasks = list(self._writers)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            left = list(self._pending.items())
            for oid, (data, _) in left:
                self._settle(oid, data, written=False, counted=oid not in self._cancelled)
            self._queue.clear()
            self._queued_bytes = 0
        written, dropped = self.written - written0, self.dropped - dropped0
        if waiting or dropped:
            log.log(logging.WARNING if dropped else logging.INFO,
                    "demotions to SuperFS at stop: %d pending, %d written, %d dropped", waiting, written, dropped)
        return written, dropped
