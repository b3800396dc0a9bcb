"""Reader/writer locks on directories and on names, for the coordinator.

A multi-step directory operation awaits shard RPCs between its LMDB
transactions, so the checks it made at the start must still hold at the end.
Two kinds of key are locked:

- a directory, ``(ino, "")``: held *shared* by operations that add or remove
  entries in it (many mkdirs in one directory run in parallel and share
  group commits), *exclusive* by operations that remove or move it;
- a name, ``(parent, name)``: held exclusive by whoever creates, removes or
  takes that name, so two mkdirs of one name are serialised.

So a mkdir inside a directory being removed waits, then finds it gone. Keys
are always acquired in one global order (after the global rename lock, for
renames), so no two operations can wait on each other in a circle.
"""
from __future__ import annotations

import asyncio
import logging
import weakref
from collections import deque
from contextlib import asynccontextmanager
from typing import AsyncIterator, Iterable

log = logging.getLogger(__name__)

LockKey = tuple[int, str]


def dir_key(ino: int) -> LockKey:
    return (ino, "")


class RWLock:
    """Many readers or one writer, granted first come first served (no starvation).

    Release is synchronous, so a cancelled task can never leave a lock held.
    """

    def __init__(self) -> None:
        self._readers = 0
        self._writer = False
        self._waiters: deque[tuple[asyncio.Future[None], bool]] = deque()

    def _free_for(self, exclusive: bool) -> bool:
        return not self._writer and (not exclusive or not self._readers)

    def _grant(self, exclusive: bool) -> None:
        if exclusive:
            self._writer = True
        else:
            self._readers += 1

    async def acquire(self, exclusive: bool) -> None:
        if not self._waiters and self._free_for(exclusive):
            self._grant(exclusive)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((fut, exclusive))
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release(exclusive)  # granted just as we were cancelled
            else:
                self._wake()
            raise

    def release(self, exclusive: bool) -> None:
        if exclusive:
            self._writer = False
        else:
            self._readers -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            fut, exclusive = self._waiters[0]
            if fut.done():  # cancelled while waiting
                self._waiters.popleft()
                continue
            if not self._free_for(exclusive):
                return
            self._waiters.popleft()
            self._grant(exclusive)
            fut.set_result(None)

    def busy(self) -> bool:
        return self._writer or self._readers > 0 or bool(self._waiters)


class DirLocks:
    """Locks by key, alive only while someone holds or awaits them."""

    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[LockKey, RWLock] = weakref.WeakValueDictionary()

    def _lock(self, key: LockKey) -> RWLock:
        lock = self._locks.get(key)
        if lock is None:
            lock = RWLock()
            self._locks[key] = lock
        return lock

    @asynccontextmanager
    async def hold(self, *, exclusive: Iterable[LockKey] = (),
                   shared: Iterable[LockKey] = ()) -> AsyncIterator[None]:
        wanted: dict[LockKey, bool] = {k: False for k in shared if k[0]}
        wanted.update({k: True for k in exclusive if k[0]})
        order = sorted(wanted, key=lambda k: (k[0], k[1].encode("utf-8", "surrogateescape")))
        # The list keeps the locks alive (the dictionary holds them weakly).
        taken: list[tuple[RWLock, bool]] = []
        try:
            for key in order:
                lock = self._lock(key)
                await lock.acquire(wanted[key])
                taken.append((lock, wanted[key]))
            yield
        finally:
            for lock, excl in reversed(taken):
                lock.release(excl)

    def busy(self, key: LockKey) -> bool:
        lock = self._locks.get(key)
        return lock is not None and lock.busy()
