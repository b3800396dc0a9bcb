"""Inode numbers the shards handed this client ahead, to create files without asking.

A file's inode number says which partition holds it, and a new file takes
the partition of its name's entry, so the pool keeps numbers per partition.
Each shard delegates ``count`` numbers for every partition it owns in one
DelegateInodes call; when a partition runs low its shard is asked again in
the background, and a create that finds its partition empty is made
synchronously instead (never blocked on the pool). Numbers left over when
the client goes away are never used by anyone: the shard moved its counter
past them.
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Awaitable, Callable

from superfs.errors import FsError
from superfs.v1 import superfs_pb2 as pb

log = logging.getLogger(__name__)

COUNT = 64   # numbers per partition per request
LOW = 16     # a partition with fewer left asks its shard again

Delegate = Callable[[int, list[int], int], Awaitable[list[pb.InoRange]]]  # (shard, partitions, count)


class InoPool:
    def __init__(self, delegate: Delegate, partitions_of: Callable[[int], list[int]],
                 shard_of_partition: Callable[[int], int], *, count: int = COUNT, low: int = LOW) -> None:
        self.delegate = delegate
        self.partitions_of = partitions_of
        self.shard_of_partition = shard_of_partition
        self.count = count
        self.low = low
        self._free: dict[int, deque[int]] = {}
        self._from: dict[int, int] = {}  # partition -> the shard that delegated its numbers here
        self._filling: dict[int, asyncio.Task[None]] = {}

    def take(self, partition: int) -> int | None:
        """A number of ``partition`` nobody else will use, or None (then create synchronously)."""
        q = self._free.get(partition)
        if q and self._from.get(partition) != self.shard_of_partition(partition):
            # the partition moved to another shard (superfs admin add-shard): numbers delegated by
            # the old one are bound to this client's session with it, the new owner refuses them
            q.clear()
        ino = q.popleft() if q else None
        if q is None or len(q) < self.low:
            self.fill_soon(self.shard_of_partition(partition))
        return ino

    async def take_waiting(self, partition: int) -> int | None:
        """As :meth:`take`, but an empty partition waits for its shard's answer (the first create there)."""
        ino = self.take(partition)
        if ino is None:
            task = self._filling.get(self.shard_of_partition(partition))
            if task is not None:
                await asyncio.shield(task)
            ino = self.take(partition)
        return ino

    def fill_soon(self, shard: int) -> None:
        task = self._filling.get(shard)
        if task is None or task.done():
            self._filling[shard] = asyncio.get_running_loop().create_task(self._fill(shard))

    async def _fill(self, shard: int) -> None:
        parts = [p for p in self.partitions_of(shard) if len(self._free.get(p, ())) < self.low]
        if not parts:
            return
        try:
            ranges = await self.delegate(shard, parts, self.count)
        except FsError as e:
            log.info("shard %d delegated no inode numbers (%s): creates there go one by one", shard, e)
            return
        for r in ranges:
            if self._from.get(r.partition) != shard:
                self._free.pop(r.partition, None)
                self._from[r.partition] = shard
            self._free.setdefault(r.partition, deque()).extend(range(r.first, r.first + r.count))

    def available(self, partition: int) -> int:
        return len(self._free.get(partition, ()))
