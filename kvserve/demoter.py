"""Demoter: writes objects evicted from DRAM to the SuperFS tier, in the background.

Eviction must not wait for a SuperFS round trip, so an evicted object's
bytes (copied out of the arena, whose pages are then reused at once) wait
here until a writer task stores them. While waiting they are still served:
a get finds them here and promotes them back. The bytes waiting are bounded
(``limit_bytes``); a put that needs room waits for the queue to drain below
the bound, which throttles writers to what the SuperFS tier absorbs instead
of growing memory without limit.
"""
from __future__ import annotations

import asyncio
import logging

from kvserve.dram import ObjectId
from kvserve.sfs_tier import SuperFsTier

log = logging.getLogger(__name__)


class Demoter:
    def __init__(self, tier: SuperFsTier, limit_bytes: int, concurrency: int) -> None:
        self.tier = tier
        self.limit_bytes = limit_bytes
        self._sem = asyncio.Semaphore(concurrency)
        self._pending: dict[ObjectId, tuple[bytes, int]] = {}
        self._cancelled: set[ObjectId] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Condition()
        self.inflight_bytes = 0
        self.dropped = 0  # objects that could not be written (lost from the cache)

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
        self._pending[oid] = (data, checksum)
        self._cancelled.discard(oid)
        self.inflight_bytes += len(data)
        task = asyncio.get_running_loop().create_task(self._write(oid, data, checksum))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def cancel(self, oid: ObjectId) -> None:
        """The object was removed: do not let a pending write bring it back."""
        if oid in self._pending:
            self._cancelled.add(oid)

    async def _write(self, oid: ObjectId, data: bytes, checksum: int) -> None:
        ok = False
        try:
            async with self._sem:
                if oid not in self._cancelled:
                    ok = await self.tier.write(oid, data, checksum)
            if oid in self._cancelled:
                await self.tier.remove(oid)
        except Exception:  # noqa: BLE001 - a cache may lose an object, the daemon must go on
            log.exception("demotion of %s failed", oid[1].hex())
        finally:
            if not ok and oid not in self._cancelled:
                self.dropped += 1
            self._cancelled.discard(oid)
            del self._pending[oid]
            self.inflight_bytes -= len(data)
            async with self._changed:
                self._changed.notify_all()

    async def drain(self, timeout_s: float | None = None) -> bool:
        """Wait for every pending write; False if some were still running at the timeout."""
        if not self._tasks:
            return True
        done, not_done = await asyncio.wait(set(self._tasks), timeout=timeout_s)
        return not not_done

    async def close(self, timeout_s: float) -> None:
        if not await self.drain(timeout_s):
            tasks = list(self._tasks)
            log.warning("%d demotions to SuperFS were still pending at shutdown: dropped", len(tasks))
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
