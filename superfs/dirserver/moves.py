"""Moving a partition from one shard to another, online: the dir server drives every step.

The move record is a :class:`pb.PartitionMove` in the cluster map itself, so
it is durable with the map (dir store) and every shard and client sees it.
Steps, each recorded before the next begins and each followed by a named
crash point (``dir.move.after_<step>``):

1. ``prepare``: the target drops leftovers of an earlier attempt; the map lists
   the move, and the target (told the map) accepts copy rows for the partition.
2. ``freeze``: the source adopts the map saying so and drains the calls in
   flight; from then on it refuses changes to the partition (ESTALE; clients
   wait while a move is listed and send again) and serves reads from its copy.
   Everything is copied frozen: one partition is 1/1024 of a shard, so the
   frozen window is one copy of that much (simpler than a live bulk copy
   followed by a delta, which would need a change log per partition).
3. ``copy``: every row of the partition (store.py's per-partition key spaces:
   entries, intents, inodes, inline bytes, xattrs, reclaim items, the inode
   counter and delegated ranges; and the seals, fences and applied records every
   shard shares, merged) goes from source to target in pages; the two digests
   of the partition's rows must then be equal (byte-identical), else the move
   rolls back. The source then adopts the map saying so, and from then on
   refuses the partition's reads too: the flip that follows may reach the
   target first (a shard also refreshes its map by itself), and the target
   takes changes the source's copy would not show. Until the flip, calls on
   the partition wait and are sent again, as for a frozen one's changes.
4. ``flip``: the map gives the partition to the target, at the next epoch,
   persisted before anyone is told; then the target and the source adopt it.
5. ``cleanup``: the source, holding the flipped map, drops its copy.
6. done: the record leaves the map.

A step whose shard cannot be reached is tried again (backoff, up to
STEP_WAIT_S): a shard killed at any step and restarted lets the move go on.
At dir server start-up (:meth:`PartitionMover.recover`) a move recorded
before the flip is rolled back (the record leaves the map, which unfreezes the
source; the target's partial copy is dropped, or at the latest by the next
prepare) and one recorded at or after the flip is finished (cleanup). Either
way running the move again (``superfs admin add-shard`` again) goes on.

Directory leases: a lease holder's delegated inode ranges are rows of the
partition (``delegated``), copied with it; a holder's batch that claims one
is refused during the freeze (ESTALE, retried) and lands on the target after
the flip, which has the same ranges. Fences and seals go to move targets
too (dirserver/shards.py) so none set during a move is missed.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import time
from typing import Awaitable, Callable, TypeVar

from superfs.dirserver.cluster_map import ClusterRegistry
from superfs.errors import FsError
from superfs.faults import crash_point, wall_ns
from superfs.rpc.cluster_map import ClusterView
from superfs.rpc.stubs import ShardRpc
from superfs.v1 import superfs_pb2 as pb

log = logging.getLogger(__name__)

T = TypeVar("T")

STEPS = ("prepare", "freeze", "copy", "flip", "cleanup")
BEFORE_FLIP = ("prepare", "freeze", "copy")
STEP_WAIT_S = 60.0      # a step whose shard is down is tried again this long
EXPORT_PAGE = 2000      # rows per ExportPartition page
CALL_TIMEOUT_S = 30.0
TRANSIENT = (errno.EIO, errno.ETIMEDOUT, errno.EAGAIN, errno.ECONNREFUSED)


class PartitionMover:
    """Runs partition moves one at a time (a lock), resumable from the record in the map."""

    def __init__(self, registry: ClusterRegistry, view: ClusterView) -> None:
        self.registry = registry
        self.view = view
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[pb.PartitionMove]] = set()  # moves whose callers may be gone
        self.moved = 0          # metrics: partitions moved since start, rows and bytes copied
        self.rows_copied = 0
        self.bytes_copied = 0

    # ----------------------------------------------------------- the record

    def record(self, partition: int) -> pb.PartitionMove | None:
        for m in self.registry.map.moves:
            if m.partition == partition:
                return m
        return None

    async def _set_step(self, rec: pb.PartitionMove, step: str, *, owner: int | None = None) -> pb.ClusterMap:
        rec.step = step
        rec.step_ns = wall_ns()

        def change(m: pb.ClusterMap) -> None:
            keep = [x for x in m.moves if x.partition != rec.partition]
            del m.moves[:]
            m.moves.extend([*keep, rec])
            if owner is not None:
                m.partition_shard[rec.partition] = owner
        cmap = await self.registry.update(change)
        log.info("partition %d (shard %d -> %d): %s, map epoch %d", rec.partition, rec.source, rec.target,
                 step, cmap.epoch)
        return cmap

    async def _forget(self, partition: int) -> pb.ClusterMap:
        def change(m: pb.ClusterMap) -> None:
            keep = [x for x in m.moves if x.partition != partition]
            del m.moves[:]
            m.moves.extend(keep)
        return await self.registry.update(change)

    # ------------------------------------------------------------ the move

    async def move(self, partition: int, target: int) -> pb.PartitionMove:
        """Move ``partition`` to shard ``target`` (or finish its recorded move there); the record at the end.

        The move runs as a task of its own: a caller that goes away (the operator's command
        killed, its connection lost) does not stop it half-way, with its partition frozen.
        """
        task = asyncio.get_running_loop().create_task(self._move(partition, target))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return await asyncio.shield(task)

    async def _move(self, partition: int, target: int) -> pb.PartitionMove:
        cmap = self.registry.map
        if not 0 <= partition < cmap.num_partitions:
            raise FsError(errno.EINVAL, f"partition {partition} is outside 0..{cmap.num_partitions - 1}")
        if target not in {s.id for s in cmap.shards}:
            raise FsError(errno.EINVAL, f"shard {target} is not registered (start it first)")
        async with self._lock:
            rec = self.record(partition)
            if rec is not None and rec.target != target:
                raise FsError(errno.EBUSY, f"partition {partition} is moving to shard {rec.target}")
            if rec is None:
                source = int(self.registry.map.partition_shard[partition])
                if source == target:
                    return pb.PartitionMove(partition=partition, source=source, target=target, step="done")
                rec = pb.PartitionMove(partition=partition, source=source, target=target, step="")
            else:
                rec = _copy(rec)
            return await self._run(rec)

    async def _run(self, rec: pb.PartitionMove) -> pb.PartitionMove:
        p = rec.partition
        try:
            if rec.step == "":
                await self._step(lambda: self._shard(rec.target).drop_partition(pb.PartitionRequest(partition=p)))
                cmap = await self._set_step(rec, "prepare")
                await self._step(lambda: self._shard(rec.target).adopt_cluster_map(cmap))
                crash_point("dir.move.after_prepare")
            if rec.step == "prepare":
                cmap = await self._set_step(rec, "freeze")
                await self._step(lambda: self._shard(rec.source).adopt_cluster_map(cmap))
                crash_point("dir.move.after_freeze")
            if rec.step == "freeze":
                await self._copy(rec)
                cmap = await self._set_step(rec, "copy")
                # the source stops serving the partition's reads before the flip can reach anyone:
                # the target, once it owns the partition, takes changes the source's copy lacks
                await self._step(lambda: self._shard(rec.source).adopt_cluster_map(cmap))
                crash_point("dir.move.after_copy")
        except FsError as e:
            if rec.step in BEFORE_FLIP or rec.step == "":
                log.warning("move of partition %d to shard %d failed at %s (%s): rolling back",
                            p, rec.target, rec.step or "start", e)
                await self.roll_back(rec)
                raise FsError(e.errno, f"moving partition {p} to shard {rec.target}: {e}; rolled back") from e
            raise
        if rec.step == "copy":
            cmap = await self._set_step(rec, "flip", owner=rec.target)
            crash_point("dir.move.after_flip")
            await self._tell(rec.target, cmap)
            await self._tell(rec.source, cmap)
        if rec.step == "flip":
            await self._cleanup(rec)
        if rec.step == "cleanup":
            await self._forget(p)
            self.moved += 1
            rec.step = "done"
            log.info("partition %d moved from shard %d to shard %d (%d rows, %d bytes)",
                     p, rec.source, rec.target, rec.rows, rec.bytes)
        return rec

    async def _copy(self, rec: pb.PartitionMove) -> None:
        p = rec.partition
        src, dst = self._shard(rec.source), self._shard(rec.target)
        await self._step(lambda: dst.drop_partition(pb.PartitionRequest(partition=p)))  # a partial earlier copy
        db, after, more = "", b"", True
        rows = size = 0
        while more:
            page = await self._step(lambda: src.export_partition(pb.PartitionExportRequest(
                partition=p, db=db, after=after, limit=EXPORT_PAGE), CALL_TIMEOUT_S))
            if page.rows:
                await self._step(lambda: dst.import_partition(page, CALL_TIMEOUT_S))
            rows += len(page.rows)
            size += sum(len(r.key) + len(r.value) for r in page.rows)
            db, after, more = page.next_db, page.next, page.more
        want = await self._step(lambda: src.digest_partition(pb.PartitionRequest(partition=p), CALL_TIMEOUT_S))
        got = await self._step(lambda: dst.digest_partition(pb.PartitionRequest(partition=p), CALL_TIMEOUT_S))
        if (want.rows, want.digest) != (got.rows, got.digest):
            raise FsError(errno.EIO, f"copy of partition {p} differs: {want.rows} rows on shard {rec.source}, "
                                     f"{got.rows} on shard {rec.target}")
        rec.rows, rec.bytes = rows, size
        self.rows_copied += rows
        self.bytes_copied += size

    async def _cleanup(self, rec: pb.PartitionMove) -> None:
        """The source drops its copy; it must hold the flipped map first (its DropPartition checks)."""
        cmap = self.registry.map
        await self._tell(rec.target, cmap)  # it serves the partition now (resumed after a restart: not told yet)
        src = self._shard(rec.source)
        await self._step(lambda: src.adopt_cluster_map(cmap))
        await self._step(lambda: src.drop_partition(pb.PartitionRequest(partition=rec.partition), CALL_TIMEOUT_S))
        await self._set_step(rec, "cleanup")
        crash_point("dir.move.after_cleanup")

    async def roll_back(self, rec: pb.PartitionMove) -> None:
        """Undo a move recorded before its flip: forget it (the source unfreezes), drop the target's copy."""
        cmap = await self._forget(rec.partition)
        await self._tell(rec.source, cmap)
        try:
            await self._shard(rec.target).adopt_cluster_map(cmap)
            await self._shard(rec.target).drop_partition(pb.PartitionRequest(partition=rec.partition),
                                                         CALL_TIMEOUT_S)
        except FsError as e:  # its next prepare drops it
            log.info("partition %d: shard %d keeps a partial copy for now (%s)", rec.partition, rec.target, e)
        log.info("move of partition %d to shard %d rolled back", rec.partition, rec.target)

    async def recover(self) -> None:
        """At start-up: roll back every move recorded before its flip, finish the others (in the background)."""
        async with self._lock:
            for rec in [_copy(m) for m in self.registry.map.moves]:
                try:
                    if rec.step in BEFORE_FLIP:
                        await self.roll_back(rec)
                    else:
                        await self._run(rec)
                except FsError as e:
                    log.warning("recovery of the move of partition %d failed (%s); it is left recorded",
                                rec.partition, e)

    # -------------------------------------------------------------- helpers

    def _shard(self, shard_id: int) -> ShardRpc:
        return self.view.shard(shard_id)

    async def _tell(self, shard_id: int, cmap: pb.ClusterMap) -> None:
        """Best effort: a shard not told refreshes its map on its own."""
        try:
            await self._shard(shard_id).adopt_cluster_map(cmap, CALL_TIMEOUT_S)
        except FsError as e:
            log.info("shard %d not told of map epoch %d (%s)", shard_id, cmap.epoch, e)

    async def _step(self, call: Callable[[], Awaitable[T]]) -> T:
        """``call`` until it succeeds; a shard that is down (EIO, ETIMEDOUT) gets STEP_WAIT_S to come back."""
        deadline = time.monotonic() + STEP_WAIT_S
        delay = 0.1
        while True:
            try:
                return await call()
            except FsError as e:
                if e.errno not in TRANSIENT or time.monotonic() > deadline:
                    raise
                log.info("partition move: %s; trying again in %.1f s", e, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


async def remove_shard(registry: ClusterRegistry, shard_id: int) -> pb.ClusterMap:
    """Take shard ``shard_id`` out of the map once it owns no partition and no move involves it.

    Its id is recorded as removed: it may not register again (a restarted old
    daemon must not come back with stale rows). Removing it again is a no-op.
    """
    cmap = registry.map
    if shard_id in cmap.removed_shards:
        return cmap
    if shard_id not in {s.id for s in cmap.shards} and shard_id not in set(cmap.partition_shard):
        raise FsError(errno.ENOENT, f"no shard {shard_id} in the cluster")
    owned = sum(1 for s in cmap.partition_shard if s == shard_id)
    if owned:
        raise FsError(errno.EBUSY, f"shard {shard_id} still owns {owned} partitions: move them first")
    if any(shard_id in (m.source, m.target) for m in cmap.moves):
        raise FsError(errno.EBUSY, f"a partition move involving shard {shard_id} is in progress")
    if len({s.id for s in cmap.shards} - {shard_id}) < 1:
        raise FsError(errno.EINVAL, "the last shard cannot be removed")

    def change(m: pb.ClusterMap) -> None:
        keep = [s for s in m.shards if s.id != shard_id]
        del m.shards[:]
        m.shards.extend(keep)
        m.removed_shards.append(shard_id)
    updated = await registry.update(change)
    log.info("shard %d removed from the cluster map: epoch %d", shard_id, updated.epoch)
    return updated


def _copy(m: pb.PartitionMove) -> pb.PartitionMove:
    out = pb.PartitionMove()
    out.CopyFrom(m)
    return out
