"""Waiting out a pending seal, so that a create racing an rmdir gets the rmdir's real outcome.

rmdir seals the directory on every shard at once; a shard that holds an
entry of it refuses, and the dir server then unseals the others. Between
the seal and the unseal a create on a sealed shard used to fail with ENOENT
although the directory went on existing: with two creates racing one rmdir,
one create could succeed (making the rmdir fail with ENOTEMPTY) while the
other failed with ENOENT, an outcome no serial order explains.

A seal is therefore *pending* until its outcome is known. An operation that
meets a pending seal (:class:`~superfs.shard.store.DirSealed`) waits for it
to resolve: the seal is lifted (the rmdir failed: the operation is retried
and succeeds) or the dir server says the directory is gone (the seal becomes
*final*, the operation fails with ENOENT). The wait is bounded: past
``SEAL_WAIT_S`` (an rmdir stuck on an unreachable shard) the answer is EAGAIN.

Seals whose rmdir committed stay pending until someone asks; the background
loop finalizes old ones (:meth:`SealWaiter.finalize_old`), so that later
creates in a removed directory are answered without asking the dir server.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import time
from typing import Awaitable, Callable, TypeVar

from superfs.errors import FsError
from superfs.shard.cluster import ClusterView
from superfs.shard.store import DirSealed, FileMetaStore

log = logging.getLogger(__name__)

T = TypeVar("T")

SEAL_WAIT_S = 3.0          # longest wait for a pending seal, then EAGAIN
RECHECK_S = 0.1            # how often a waiter asks the dir server again
FINALIZE_AFTER_S = 30.0    # pending seals older than this are checked in the background
FINALIZE_BATCH = 256


class SealWaiter:
    """Resolves pending seals for the operations that meet them."""

    def __init__(self, store: FileMetaStore, cluster: ClusterView) -> None:
        self.store = store
        self.cluster = cluster
        self._lifted: dict[int, asyncio.Event] = {}

    def lifted(self, dir_ino: int) -> None:
        """UnsealDir ran: wake the operations waiting on ``dir_ino``."""
        ev = self._lifted.pop(dir_ino, None)
        if ev is not None:
            ev.set()

    async def run(self, op: Callable[[], Awaitable[T]]) -> T:
        """Run ``op`` (one store operation); while it meets a pending seal, wait and retry."""
        deadline: float | None = None
        while True:
            try:
                return await op()
            except DirSealed as e:
                if e.final:
                    raise
                if deadline is None:
                    deadline = time.monotonic() + SEAL_WAIT_S
                await self._resolve(e.dir_ino, deadline)

    async def _resolve(self, dir_ino: int, deadline: float) -> None:
        """Return once the seal of ``dir_ino`` is lifted; raise ENOENT once it is final."""
        while True:
            with self.store.read() as t:
                state = t.seal_state(dir_ino)
            if state is None:
                return
            if state[0] or not await self._dir_exists(dir_ino):
                raise DirSealed(dir_ino, final=True)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise FsError(errno.EAGAIN, f"directory {dir_ino} is being removed; try again")
            ev = self._lifted.setdefault(dir_ino, asyncio.Event())
            try:
                await asyncio.wait_for(ev.wait(), min(RECHECK_S, remaining))
            except asyncio.TimeoutError:
                pass

    async def _dir_exists(self, dir_ino: int) -> bool:
        """Ask the dir server; a directory it no longer has is gone for good (inos are never reused)."""
        if self.cluster.dir_server is None:
            exists = False  # a shard without a dir server (tests): seals are final
        else:
            exists = await self.cluster.dir_exists(dir_ino)
        if not exists:
            await self.store.write(lambda t: t.finalize_seal(dir_ino))
            log.debug("seal of directory %d is final", dir_ino)
        return exists

    async def finalize_old(self, older_than_s: float = FINALIZE_AFTER_S) -> int:
        """Finalize pending seals of removed directories; return how many."""
        if self.cluster.dir_server is None or not self.cluster.ready:
            return 0
        cutoff = time.time_ns() - int(older_than_s * 1e9)
        with self.store.read() as t:
            old = [d for d, at in t.pending_seals(FINALIZE_BATCH) if at < cutoff]
        done = 0
        for dir_ino in old:
            try:
                if not await self._dir_exists(dir_ino):
                    done += 1
            except FsError as e:
                log.debug("cannot check sealed directory %d: %s", dir_ino, e)
                break  # the dir server is unreachable: next round
        return done
