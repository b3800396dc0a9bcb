"""The shard's background loop: reclaim chunks, deliver owed links, finish intents.

Every second (and once at start-up, and when kicked) it:

- delivers outbox items (nlink changes owed to other shards);
- rolls pending cross-shard intents forward;
- finalizes and collects rmdir seals (shard/seals.py);
- deletes the chunks of freed (unlinked) files on the data servers:
  ``DeleteChunks(ino, 0)`` on every server of the file's layout. Freed
  inodes are never reused and no name leads to them any more, so nothing can
  need their chunks;
- tells other shards which idempotency records they may forget
  (shard/confirms.py).

The reclaim queue is worked through a due-time index (store ``reclaim_due``):
a round takes what is due, so an item that cannot finish now never holds up
the ones behind it. A server that answered is struck off the item's layout
at once; the item is retried for the rest with exponential backoff (up to
``RETRY_MAX_S``), and a server found down in a round is not called again in
that round. A server the cluster map no longer lists (after a fresh look)
has no chunks to delete: its part of the item is dropped, with a warning
naming the inode and the server. Layouts come from clients, but the shard
checks them against the map when the file becomes chunked
(ShardCluster.check_layout), so only a server removed for good gets there.

The chunks past the new end of a *shrunk* file are cut differently: at once,
by the request that shrank it, before it is answered (:meth:`Reclaimer.reclaim`
called by the service), and never later in the background. A deferred cut
cannot tell the stale bytes from bytes a writer put there since: clients
write chunks first and grow the size afterwards (SetSize), so between the two
a new write looks exactly like old data past the end. The randomized crash
test caught exactly that: a background retry of a shrink, run after a data
server came back, deleted chunks of an acknowledged rewrite of the file.
So a shrink that could not reach every replica leaves its bytes past the end
there: invisible to readers (reads stop at the size), reported by fsck as
garbage, cut by ``fsck --repair`` after re-checking the file.
"""
from __future__ import annotations

import asyncio
import errno
import logging
from dataclasses import replace
from typing import Any, Awaitable, Callable, TypeVar

from superfs.errors import FsError, is_misrouted
from superfs.faults import crash_point, wall_ns
from superfs.routing import chunk_replicas
from superfs.rpc.stubs import DataRpc
from superfs.shard.cluster import ShardCluster
from superfs.shard.crossshard import CrossShard
from superfs.shard.records import ReclaimItem
from superfs.shard.seals import SealWaiter
from superfs.shard.store import FileMetaStore, ShardTxn
from superfs.v1 import superfs_pb2 as pb

log = logging.getLogger(__name__)

T = TypeVar("T")

DataCall = Callable[[DataRpc], Awaitable[Any]]  # one call to a data server, whichever it is

BATCH = 256
ROUND_MAX = 4096          # items tried per round at most (the rest stay due for the next)
RETRY_BASE_S = 1.0
RETRY_MAX_S = 600.0
GONE_REFRESH_S = 30.0     # look at the map again before calling a server removed


def retry_delay_s(attempts: int) -> float:
    return min(RETRY_MAX_S, RETRY_BASE_S * 2 ** min(attempts, 20))


class Reclaimer:
    """Drives every piece of deferred work of one shard."""

    def __init__(self, store: FileMetaStore, cluster: ShardCluster, cross: CrossShard,
                 seals: SealWaiter | None = None, interval_s: float = 1.0) -> None:
        self.store = store
        self.cluster = cluster
        self.cross = cross
        self.seals = seals
        self.interval_s = interval_s
        self._wake = asyncio.Event()

    def kick(self) -> None:
        self._wake.set()

    async def run_forever(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the loop must survive any one bad round
                log.exception("background round failed; retrying in %.1f s", self.interval_s)
            try:
                await asyncio.wait_for(self._wake.wait(), self.interval_s)
            except asyncio.TimeoutError:
                pass

    async def run_once(self) -> None:
        await self.cross.deliver_outbox()
        await self.cross.roll_forward()
        if self.seals is not None:
            await self.seals.background_round()
        await self.reclaim_pending()
        await self.cross.confirms.run_once()

    def _read(self, fn: Callable[[ShardTxn], T]) -> T:
        with self.store.read() as t:
            return fn(t)

    # --------------------------------------------------------------- chunks

    async def reclaim_pending(self) -> int:
        """Work through the reclaim items due now; return how many finished."""
        if not self.cluster.ready:
            return 0
        now = wall_ns()
        down: set[int] = set()
        done = tried = 0
        while tried < ROUND_MAX:
            due = await asyncio.to_thread(self._read, lambda t: t.due_reclaim(now, BATCH))
            if not due:
                break
            progress = False
            for due_ns, attempts, item, key in due:
                tried += 1
                try:
                    if item is None:  # finished or replaced meanwhile: a stale pointer
                        await self.store.write(_done(None, due_ns, key))
                    elif not item.freed:
                        # a shrink whose request ended before it was cut (a crash): cutting now
                        # could cut a writer's new bytes (see the module docstring)
                        log.warning("inode %d: bytes past %d not cut when it shrank; left for fsck --repair",
                                    item.ino, item.from_size)
                        await self.store.write(_done(item, due_ns, key))
                    elif await self._freed(item, due_ns, attempts, down):
                        done += 1
                    progress = True
                except FsError as e:
                    if not is_misrouted(e):
                        raise
                    # its partition is frozen, being moved away: the rows go with it, and the
                    # new owner (or this shard, if the move is rolled back) finishes the work
                    log.debug("reclaim of %s waits for a partition move: %s", key.hex(), e)
            if not progress:
                break  # everything due is of frozen partitions: the next round
        return done

    async def _freed(self, item: ReclaimItem, due_ns: int, attempts: int, down: set[int]) -> bool:
        """One try at a freed inode's item; True once every server of it is done."""
        servers = sorted(set(item.layout))
        if any(not self.cluster.has_data_server(s) for s in servers):
            await self.cluster.refresh_quietly(min_age_s=GONE_REFRESH_S)
        gone = [s for s in servers if not self.cluster.has_data_server(s)]
        for s in gone:
            log.warning("inode %d: data server %d is not in the cluster map (removed for good?): "
                        "its chunks of this file are struck off the reclaim queue", item.ino, s)
        todo = [s for s in servers if s not in gone and s not in down]
        results = await asyncio.gather(*(self._delete_on(item, s) for s in todo), return_exceptions=True)
        failed = {s for s, r in zip(todo, results) if isinstance(r, BaseException)}
        for s, r in zip(todo, results):
            if isinstance(r, BaseException):
                down.add(s)
                log.debug("reclaim of inode %d on data server %d postponed: %s", item.ino, s, r)
        left = tuple(s for s in servers if s in failed or (s in down and s not in todo))
        key = item.key()
        if not left:
            crash_point("shard.reclaim.after_delete")
            await self.store.write(_done(item, due_ns, key))
            log.debug("reclaimed chunks of inode %d", item.ino)
            return True
        rest = replace(item, layout=left)
        retry_at = wall_ns() + int(retry_delay_s(attempts + 1) * 1e9)

        def postpone(t: ShardTxn) -> None:
            t.unschedule_reclaim(due_ns, key)
            if t.update_reclaim(item, rest):
                t.schedule_reclaim(key, retry_at, attempts + 1)

        await self.store.write(postpone)
        return False

    async def _delete_on(self, item: ReclaimItem, server: int) -> None:
        """The calls that delete ``item``'s chunks on one data server."""
        if item.chunk_size <= 0:
            return
        await self._run_calls([c for c in self._calls(item) if c[0] == server])

    async def reclaim(self, item: ReclaimItem) -> bool:
        """Cut a shrunk file's chunks past its new end, now, once; True if every server did.

        The request that shrank the file calls this before it answers; the
        item leaves the queue either way (see the module docstring).
        """
        try:
            if item.layout and item.chunk_size > 0:
                await self._run_calls(self._calls(item))
        except FsError as e:
            log.warning("inode %d shrank to %d bytes but a data server could not cut its chunks (%s): "
                        "the bytes past the end stay there, invisible, until fsck --repair", item.ino,
                        item.from_size, e)
            await self._forget(item)
            return False
        crash_point("shard.reclaim.after_delete")
        await self._forget(item)
        log.debug("cut chunks of inode %d from byte %d", item.ino, item.from_size)
        return True

    async def _forget(self, item: ReclaimItem) -> None:
        await self.store.write(lambda t: t.delete_reclaim(item))  # its index entry is dropped when due

    def _calls(self, item: ReclaimItem) -> list[tuple[int, DataCall]]:
        cs = item.chunk_size
        first_whole = -(-item.from_size // cs)
        calls: list[tuple[int, DataCall]] = []
        if item.from_size % cs:
            index = item.from_size // cs
            replicas = chunk_replicas(item.ino, index, item.layout, self.cluster.map.replicas or 1)
            req = pb.TruncateChunkRequest(key=pb.ChunkKey(ino=item.ino, index=index), length=item.from_size % cs)
            truncate: DataCall = lambda d: d.truncate_chunk(req)  # noqa: E731
            calls += [(sid, truncate) for sid in replicas]
        req_del = pb.DeleteChunksRequest(ino=item.ino, from_index=first_whole)
        delete: DataCall = lambda d: d.delete_chunks(req_del)  # noqa: E731
        calls += [(sid, delete) for sid in sorted(set(item.layout))]
        return calls

    async def _run_calls(self, calls: list[tuple[int, DataCall]]) -> None:
        results = await asyncio.gather(*(self._data_call(*c) for c in calls), return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                if isinstance(r, FsError):
                    raise r
                raise FsError(errno.EIO, f"data server call failed: {r!r}")

    async def _data_call(self, server_id: int, call: DataCall) -> None:
        try:
            await call(self.cluster.data(server_id))
        except FsError as e:
            if e.errno != errno.ENOENT:
                raise  # ENOENT: nothing there to delete, which is what we wanted


def _done(item: ReclaimItem | None, due_ns: int, key: bytes) -> Callable[[ShardTxn], None]:
    """The transaction that takes a finished (or vanished) item and its index entry off the queue."""
    def fn(t: ShardTxn) -> None:
        if item is not None:
            t.delete_reclaim(item)
        t.unschedule_reclaim(due_ns, key)
    return fn
