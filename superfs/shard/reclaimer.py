"""The shard's background loop: reclaim chunks, deliver owed links, finish intents.

Every second (and once at start-up, and when kicked) it:

- delivers outbox items (nlink changes owed to other shards);
- rolls pending cross-shard intents forward;
- finalizes the pending seals of directories the dir server no longer has;
- deletes the chunks of freed (unlinked) files on the data servers:
  ``DeleteChunks(ino, 0)`` on every server of the file's layout. An item is
  deleted only once every server has answered, so a data server that is down
  keeps it queued until it is back. Freed inodes are never reused and no
  name leads to them any more, so nothing can need their chunks;
- once a minute, forgets idempotency records older than an hour.

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
import time
from typing import Any

from superfs.errors import FsError
from superfs.faults import crash_point, wall_ns
from superfs.routing import chunk_replicas
from superfs.shard.cluster import ClusterView
from superfs.shard.crossshard import CrossShard
from superfs.shard.records import ReclaimItem
from superfs.shard.seals import SealWaiter
from superfs.shard.store import FileMetaStore
from superfs.v1 import superfs_pb2 as pb

log = logging.getLogger(__name__)

APPLIED_TTL_NS = 3600 * 10**9
PRUNE_EVERY_S = 60.0
BATCH = 256


class Reclaimer:
    """Drives every piece of deferred work of one shard."""

    def __init__(self, store: FileMetaStore, cluster: ClusterView, cross: CrossShard,
                 seals: SealWaiter | None = None, interval_s: float = 1.0) -> None:
        self.store = store
        self.cluster = cluster
        self.cross = cross
        self.seals = seals
        self.interval_s = interval_s
        self._wake = asyncio.Event()
        self._last_prune = 0.0

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
            await self.seals.finalize_old()
        await self.reclaim_pending()
        if time.monotonic() - self._last_prune > PRUNE_EVERY_S:
            self._last_prune = time.monotonic()
            cutoff = wall_ns() - APPLIED_TTL_NS
            n = await self.store.write(lambda t: t.prune_applied(cutoff))
            if n:
                log.debug("forgot %d idempotency records", n)

    # --------------------------------------------------------------- chunks

    async def reclaim_pending(self) -> int:
        if not self.cluster.ready:
            return 0
        with self.store.read() as t:
            items = t.reclaim_items(BATCH)
        done = 0
        for item in items:
            if not item.freed:
                # a shrink whose request ended before it was cut (a crash): cutting now
                # could cut a writer's new bytes (see the module docstring)
                log.warning("inode %d: bytes past %d not cut when it shrank; left for fsck --repair",
                            item.ino, item.from_size)
                await self._forget(item)
                continue
            if await self.reclaim(item):
                done += 1
        return done

    async def reclaim(self, item: ReclaimItem) -> bool:
        """Delete the chunks ``item`` names; True if every server did.

        A freed inode's item stays queued until every server answered. A
        shrink's item is run once, by the request that shrank the file, and
        leaves the queue either way.
        """
        try:
            await self._delete_chunks(item)
        except FsError as e:
            if item.freed:
                log.debug("reclaim of inode %d postponed: %s", item.ino, e)
                return False
            log.warning("inode %d shrank to %d bytes but a data server could not cut its chunks (%s): "
                        "the bytes past the end stay there, invisible, until fsck --repair", item.ino,
                        item.from_size, e)
            await self._forget(item)
            return False
        crash_point("shard.reclaim.after_delete")
        await self._forget(item)
        log.debug("reclaimed chunks of inode %d from byte %d", item.ino, item.from_size)
        return True

    async def _forget(self, item: ReclaimItem) -> None:
        await self.store.write(lambda t: t.delete_reclaim(item))

    async def _delete_chunks(self, item: ReclaimItem) -> None:
        if not item.layout or item.chunk_size <= 0:
            return
        cs = item.chunk_size
        first_whole = -(-item.from_size // cs)
        calls: list[tuple[int, str, Any]] = []
        if item.from_size % cs:
            index = item.from_size // cs
            replicas = chunk_replicas(item.ino, index, item.layout, self.cluster.map.replicas or 1)
            req = pb.TruncateChunkRequest(key=pb.ChunkKey(ino=item.ino, index=index), length=item.from_size % cs)
            calls += [(sid, "TruncateChunk", req) for sid in replicas]
        req_del = pb.DeleteChunksRequest(ino=item.ino, from_index=first_whole)
        calls += [(sid, "DeleteChunks", req_del) for sid in sorted(set(item.layout))]
        results = await asyncio.gather(*(self._data_call(*c) for c in calls), return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                if isinstance(r, FsError):
                    raise r
                raise FsError(errno.EIO, f"data server call failed: {r!r}")

    async def _data_call(self, server_id: int, method: str, request: Any) -> None:
        try:
            await self.cluster.call_peer("data", server_id, method, request)
        except FsError as e:
            if e.errno != errno.ENOENT:
                raise  # ENOENT: nothing there to delete, which is what we wanted
