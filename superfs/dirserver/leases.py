"""Granting and recalling directory leases: the dir server's side, over client sessions.

:class:`LeaseManager` turns :class:`LeaseTable`'s decisions into actions:

- a request that conflicts with another client's lease makes the manager
  *recall* it: a call to that client over its session (``Client/RecallLease``);
  the holder sends what it has pending for the directory, drops its caches
  and answers; the lease is then released and the request decided again;
- a holder that does not answer within ``recall_timeout_s`` (stopped,
  partitioned, gone) loses its lease once it has surely stopped trusting it
  (no frame from it for ``lease_ttl_s``: clients drop every lease they hold
  when they have not heard from the dir server for that long); the
  directory's epoch goes up and is pushed to every shard (a *fence*), so a
  late batch from the old holder is refused there;
- a grant that must not coexist with capabilities signed earlier for other
  clients fences too (see lease_table.py).

Several requests for one directory wait on the same recall. Nothing here
blocks a holder's own requests (its capability refreshes never conflict),
so a holder flushing during a recall cannot deadlock against it.
"""
from __future__ import annotations

import asyncio
import errno
import functools
import logging
import time
from typing import Awaitable, Callable

from superfs.dirserver.lease_table import Grant, Holder, LeaseTable, Recall, Want
from superfs.deadlines import call_deadline
from superfs.errors import LEASE_WAIT, FsError
from superfs.rpc.methods import RECALL_LEASE
from superfs.rpc.server import ServerSession
from superfs.v1 import superfs_pb2 as pb

log = logging.getLogger(__name__)

RECALL_METHOD = RECALL_LEASE
RECALL_TIMEOUT_S = 5.0
LEASE_TTL_S = 10.0   # a holder that has not heard from the dir server for this long drops its leases
TIDY_EVERY_S = 30.0  # directories with nothing held are forgotten this often
ANSWER_MARGIN_S = 0.5  # a caller waiting on a recall hears EAGAIN this long before its deadline

Fence = Callable[[int, int], Awaitable[None]]  # (dir ino, epoch): push to every shard


class LeaseManager:
    def __init__(self, table: LeaseTable, fence: Fence, *, recall_timeout_s: float = RECALL_TIMEOUT_S,
                 lease_ttl_s: float = LEASE_TTL_S) -> None:
        self.table = table
        self.fence = fence
        self.recall_timeout_s = recall_timeout_s
        self.lease_ttl_s = lease_ttl_s
        self.sessions: dict[Holder, ServerSession] = {}
        self._recalls: dict[tuple[int, Holder], asyncio.Task[None]] = {}
        self._next_tidy = 0.0
        self.recalled = 0
        self.revoked = 0
        self.fences = 0

    async def use(self, dir_ino: int, holder: Holder, want: Want, session: ServerSession | None = None) -> Grant:
        """Wait until ``holder`` may have ``want`` on ``dir_ino``; the grant (epoch to sign, lease number)."""
        if session is not None and want in (Want.SHARED, Want.EXCLUSIVE):
            self.sessions[holder] = session
        now = time.monotonic()
        if now > self._next_tidy:
            self._next_tidy = now + TIDY_EVERY_S
            self.table.forget_idle(now)
        deadline = call_deadline.get()
        while True:
            d = self.table.decide(dir_ino, holder, want, time.monotonic())
            if isinstance(d, Grant):
                if d.fence:
                    await self._fence(dir_ino, d.epoch)
                return d
            assert isinstance(d, Recall)
            recalls = asyncio.gather(*(self._recall_once(dir_ino, h) for h in d.holders))
            if deadline is None:
                await recalls
                continue
            # a holder that does not answer is revoked only after its lease's lifetime: answer the
            # caller before it stops waiting (nothing was done; the client asks again), recalls go on
            try:
                await asyncio.wait_for(asyncio.shield(recalls), deadline - time.monotonic() - ANSWER_MARGIN_S)
            except asyncio.TimeoutError:
                recalls.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved: no warning
                raise FsError(errno.EAGAIN, f"{LEASE_WAIT} {dir_ino}; try again") from None

    def release(self, dir_ino: int, holder: Holder, grant: int = 0) -> None:
        self.table.release(dir_ino, holder, grant)

    def session_gone(self, holder: Holder) -> None:
        """The holder's session ended for good (it closed it): its leases go, no fence needed."""
        for dir_ino in self.table.held_by(holder):
            self.table.release(dir_ino, holder)
        self.sessions.pop(holder, None)

    async def _recall_once(self, dir_ino: int, holder: Holder) -> None:
        key = (dir_ino, holder)
        task = self._recalls.get(key)
        if task is None or task.done():
            task = self._recalls[key] = asyncio.get_running_loop().create_task(self._recall(dir_ino, holder))
            task.add_done_callback(functools.partial(self._forget_recall, key))
        await asyncio.shield(task)

    def _forget_recall(self, key: tuple[int, Holder], task: "asyncio.Task[None]") -> None:
        if self._recalls.get(key) is task:
            del self._recalls[key]

    async def _recall(self, dir_ino: int, holder: Holder) -> None:
        if self.table.mode_of(dir_ino, holder) is None:
            return  # let go meanwhile
        session = self.sessions.get(holder)
        grant = self.table.grant_of(dir_ino, holder)
        started = time.monotonic()
        try:
            if session is None:
                raise FsError(errno.EIO, "no session to the holder")
            await session.call_client(RECALL_METHOD, pb.RecallLeaseRequest(
                dir_ino=dir_ino, epoch=self.table.epoch(dir_ino), grant=grant), pb.Empty, self.recall_timeout_s)
            self.table.release(dir_ino, holder, grant)
            self.recalled += 1
            log.debug("lease on %d recalled from %s in %.1f ms", dir_ino, holder.hex()[:8],
                      (time.monotonic() - started) * 1000)
            return
        except FsError as e:
            log.info("lease on dir %d: holder %s did not answer its recall (%s); revoking it once it has "
                     "lapsed", dir_ino, holder.hex()[:8], e.message)
        # it may still believe it holds the lease: wait until it cannot any more
        last = session.last_heard if session is not None else 0.0
        wait = last + self.lease_ttl_s - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        if self.table.mode_of(dir_ino, holder) is None or self.table.grant_of(dir_ino, holder) != grant:
            return  # let go, or holds a later grant, meanwhile
        epoch = self.table.revoke(dir_ino, holder)
        self.revoked += 1
        await self._fence(dir_ino, epoch)

    async def _fence(self, dir_ino: int, epoch: int) -> None:
        await self.fence(dir_ino, epoch)
        self.fences += 1
        log.info("dir %d fenced at epoch %d", dir_ino, epoch)
