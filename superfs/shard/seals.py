"""Waiting out a pending seal, so that a create racing an rmdir gets the rmdir's real outcome.

rmdir seals the directory on every shard at once; a shard that holds an
entry of it refuses, and the dir server then unseals the others. Between
the seal and the unseal a create on a sealed shard used to fail with ENOENT
although the directory went on existing: with two creates racing one rmdir,
one create could succeed (making the rmdir fail with ENOTEMPTY) while the
other failed with ENOENT, an outcome no serial order explains.

A seal is therefore *pending* until its outcome is known. An operation that
meets a pending seal (:class:`~superfs.shard.txn_work.DirSealed`) waits for it
to resolve: the seal is lifted (the rmdir failed: the operation is retried
and succeeds) or the dir server says the directory is gone (the seal becomes
*final*, the operation fails with ENOENT). The wait is bounded: past
``SEAL_WAIT_S`` (an rmdir stuck on an unreachable shard) the answer is EAGAIN.

Seals whose rmdir committed stay pending until someone asks; the background
round (:meth:`SealWaiter.background_round`) finalizes old ones, so that later
creates in a removed directory are answered without asking the dir server.

A final seal is then *collected* once nothing can put a name into the
removed directory any more. Directory inode numbers are never reused, so
only two things could: a client holding a capability for the directory
signed before its removal (capabilities expire ``CAP_TTL_NS`` after signing,
and the dir server signs none for a directory it no longer has), and an
operation already under way that targets it: a cross-shard rename or link
intent on any shard (RemoteLink and the link's insert check the seal, not a
capability), or a dir server intent (mkdir, renamedir into it). So a seal is
collected ``SEAL_COLLECT_AFTER_NS`` (CAP_TTL plus a margin for clock skew)
after it became final, and only when no shard's intents and no dir server
intent name the directory (DirsTargeted, ListDirIntents); otherwise it is
looked at again later.

The background work goes through the store's due-time index (``seal_work``),
read on a worker thread: a round costs what is due, not every seal ever made.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, TypeVar

from superfs.errors import FsError
from superfs.faults import wall_ns
from superfs.shard import admin_ops
from superfs.shard.cluster import ShardCluster
from superfs.shard.store import FileMetaStore, ShardTxn
from superfs.shard.txn_work import SEAL_CHECK, SEAL_COLLECT, DirSealed
from superfs.v1 import superfs_pb2 as pb

log = logging.getLogger(__name__)

T = TypeVar("T")

SEAL_WAIT_S = 3.0          # longest wait for a pending seal, then EAGAIN
RECHECK_S = 0.1            # how often a waiter asks the dir server again
WORK_BATCH = 512
MAX_BATCHES = 20           # per round; what is left stays due for the next round
LATER_NS = 30 * 10**9      # a live directory's seal, a targeted one, or an unreachable peer: look again then


@dataclass
class Round:
    """What one background round did (for logs and tests)."""

    examined: int = 0
    finalized: int = 0
    collected: int = 0
    postponed: int = 0


class SealWaiter:
    """Resolves pending seals for the operations that meet them."""

    def __init__(self, store: FileMetaStore, cluster: ShardCluster) -> None:
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

    async def background_round(self) -> Round:
        """Finalize the seals due for a check, collect those due for collection."""
        r = Round()
        if not self.cluster.ready:
            return r
        now = wall_ns()
        for _ in range(MAX_BATCHES):
            work = await asyncio.to_thread(self._due, now)
            if not work:
                break
            r.examined += len(work)
            if not await self._batch(work, r):
                break  # the dir server or a shard is unreachable: the rest waits for a later round
        if r.finalized or r.collected:
            log.debug("seals: %d finalized, %d collected, %d postponed", r.finalized, r.collected, r.postponed)
        return r

    def _due(self, now: int) -> list[tuple[int, int, bytes, tuple[bool, int] | None]]:
        with self.store.read() as t:
            return [(due, d, kind, t.seal_state(d)) for due, d, kind in t.seal_work(now, WORK_BATCH)]

    async def _batch(self, work: list[tuple[int, int, bytes, tuple[bool, int] | None]], r: Round) -> bool:
        drop: list[tuple[int, int]] = []        # index entries done with
        later: list[tuple[int, int, bytes]] = []  # index entries to look at again
        collect: list[int] = []
        ok = True
        checks = [(due, d) for due, d, kind, st in work if kind == SEAL_CHECK and st is not None and not st[0]]
        candidates = [(due, d) for due, d, kind, st in work if kind == SEAL_COLLECT and st is not None and st[0]]
        keep = {(due, d) for due, d in checks + candidates}
        drop += [(due, d) for due, d, _, _ in work if (due, d) not in keep]  # unsealed, or already final
        if checks:
            results = await asyncio.gather(*(self._dir_exists(d) for _, d in checks), return_exceptions=True)
            for (due, d), exists in zip(checks, results):
                if isinstance(exists, BaseException):
                    log.debug("cannot check sealed directory %d: %s", d, exists)
                    later.append((due, d, SEAL_CHECK))
                    ok = False
                elif exists:
                    later.append((due, d, SEAL_CHECK))  # an rmdir still deciding, or a stale seal (fsck)
                else:
                    drop.append((due, d))  # final now; finalize_seal queued its collection
                    r.finalized += 1
        if candidates:
            try:
                targeted = await self._targeted({d for _, d in candidates})
            except FsError as e:
                log.debug("cannot ask who still targets removed directories: %s", e)
                targeted = None
                ok = False
            for due, d in candidates:
                if targeted is None or d in targeted:
                    later.append((due, d, SEAL_COLLECT))
                else:
                    drop.append((due, d))
                    collect.append(d)
        r.postponed += len(later)
        again = wall_ns() + LATER_NS

        def apply(t: ShardTxn) -> int:
            for due, d in drop:
                t.delete_seal_work(due, d)
            for due, d, kind in later:
                t.delete_seal_work(due, d)
                t.put_seal_work(again, d, kind)
            return sum(1 for d in collect if t.collect_seal(d))

        r.collected += await self.store.write(apply)
        return ok

    async def _targeted(self, dirs: set[int]) -> set[int]:
        """Which of ``dirs`` an intent on any shard, or of the dir server, may still put a name into."""
        local = await asyncio.to_thread(self._local_targets)
        found = dirs & local
        peers = sorted(set(self.cluster.map.partition_shard) - {self.cluster.shard_id})
        req = pb.DirsTargetedRequest(dir_inos=sorted(dirs))
        replies = await asyncio.gather(*(self.cluster.shard(s).dirs_targeted(req) for s in peers))
        for reply in replies:
            found |= set(reply.dir_inos)
        if self.cluster.dir_server is not None:
            found |= dirs & await self.cluster.dir_intent_targets()
        return found

    def _local_targets(self) -> set[int]:
        with self.store.read() as t:
            return admin_ops.targeted_dirs(t)
