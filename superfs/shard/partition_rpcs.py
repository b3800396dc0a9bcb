"""The shard's side of moving a partition: adopt a map (draining a newly frozen partition),
export, import, drop and digest a partition's rows.

The dir server drives a move (dirserver/moves.py) and tells each shard the map
of every step with AdoptClusterMap. A partition listed as moving away at step
"freeze" or "copy" is *frozen* here: a call that would change it is refused
with ESTALE at once (ShardCluster's checks; the client waits while a move is
listed and sends again), calls that began before are let finish (up to
DRAIN_WAIT_S), and from then on the store refuses any write to one of its rows
(ShardTxn.guard_*), background rounds included. Reads go on from this copy
until the flip.

Import is accepted only for a partition whose move to this shard is listed,
and drop only for one this shard neither owns nor is freezing, so neither can
touch a partition that serves (nor the source's copy before the flip).
"""
from __future__ import annotations

import asyncio
import errno
import logging
import time
from typing import TYPE_CHECKING, Any

from superfs.errors import FsError, rpc_handler
from superfs.faults import crash_point
from superfs.shard import partition_ops
from superfs.v1 import superfs_pb2 as pb

if TYPE_CHECKING:
    from superfs.shard.cluster import ShardCluster
    from superfs.shard.fences import Fences
    from superfs.shard.inflight import OpTracker
    from superfs.shard.store import FileMetaStore

log = logging.getLogger(__name__)

DRAIN_WAIT_S = 10.0       # calls in flight on a partition being frozen get this long to finish
MAX_EXPORT_ROWS = 10000
# Rows written or deleted per transaction when a partition is imported or dropped. A transaction
# holds the shard's writer while it runs, and its commit writes every page it changed: with a whole
# partition per transaction (3,000 rows and as many index entries in a shard of 10^6 files), the p99
# of the operations during an add-shard was 13.4x the p99 before it; 256 rows: 2.7x (bench/grow.py,
# bench/README.md).
ROWS_PER_TXN = 256


class PartitionMoveRpcs:
    """Mixed into ShardServicer: the RPCs of partition moves."""

    store: "FileMetaStore"      # the servicer's (service.py)
    cluster: "ShardCluster"
    ops: "OpTracker"
    fences: "Fences"
    imported_rows = 0   # rows and bytes of partitions copied onto this shard since start (metrics)
    imported_bytes = 0

    def _frozen_changed(self, frozen: frozenset[int], first: bool) -> None:
        """The map's frozen partitions changed: the store's guard follows (at once when it
        shrinks or at start-up; a newly frozen one after AdoptClusterMap drained it)."""
        self.store.num_partitions = self.cluster.map.num_partitions
        self.store.frozen = frozen if first else self.store.frozen & frozen

    async def _drain(self) -> None:
        """Let the mutating calls that began before now finish (bounded), then freeze the store."""
        ticket = self.ops.begun
        deadline = time.monotonic() + DRAIN_WAIT_S
        while self.ops.low_water <= ticket and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if self.ops.low_water <= ticket:
            log.warning("shard %d: calls still running after %.0f s of freezing; their writes to frozen "
                        "partitions will be refused", self.cluster.shard_id, DRAIN_WAIT_S)
        self.store.frozen = self.cluster.frozen_partitions
        await self.store.write(lambda t: None)  # whatever ran before the guard is committed now

    def _moving_here(self, partition: int) -> pb.PartitionMove:
        for m in self.cluster.map.moves:
            if m.partition == partition and m.target == self.cluster.shard_id:
                return m
        raise FsError(errno.EINVAL, f"no move of partition {partition} to shard {self.cluster.shard_id} is listed")

    def _check_partition_arg(self, partition: int) -> int:
        n = self.cluster.map.num_partitions
        if not 0 <= partition < n:
            raise FsError(errno.EINVAL, f"partition {partition} is outside 0..{n - 1}")
        return n

    @rpc_handler
    async def AdoptClusterMap(self, request: pb.ClusterMap, context: Any) -> pb.Empty:
        owned = self.cluster.owned_partitions if self.cluster.ready else None
        self.cluster.adopt(request)
        if any(m.target == self.cluster.shard_id for m in self.cluster.map.moves):
            crash_point("shard.move.after_prepare")
        if self.cluster.frozen_partitions - self.store.frozen:
            await self._drain()
            crash_point("shard.move.after_freeze")
        if owned is not None and self.cluster.owned_partitions != owned:
            crash_point("shard.move.after_flip")
        return pb.Empty()

    @rpc_handler
    async def ExportPartition(self, request: pb.PartitionExportRequest,
                              context: Any) -> pb.PartitionRows:
        n = self._check_partition_arg(request.partition)
        limit = max(1, min(request.limit or MAX_EXPORT_ROWS, MAX_EXPORT_ROWS))

        def scan() -> tuple[list[tuple[str, bytes, bytes]], str, bytes, bool]:
            with self.store.read() as t:
                return partition_ops.export_rows(t, request.partition, n, request.db, request.after, limit)

        rows, db, nxt, more = await asyncio.to_thread(scan)
        return pb.PartitionRows(partition=request.partition, next_db=db, next=nxt, more=more,
                                rows=[pb.PartitionRow(db=d, key=k, value=v) for d, k, v in rows])

    @rpc_handler
    async def ImportPartition(self, request: pb.PartitionRows, context: Any) -> pb.Empty:
        n = self._check_partition_arg(request.partition)
        if self.cluster.map.partition_shard[request.partition] == self.cluster.shard_id:
            raise FsError(errno.EBUSY, f"partition {request.partition} already serves here: no copy onto it")
        self._moving_here(request.partition)
        rows = [(r.db, r.key, r.value) for r in request.rows]
        count = 0
        for i in range(0, len(rows), ROWS_PER_TXN):   # short transactions: other writes go between them
            part = rows[i:i + ROWS_PER_TXN]
            count += await self.store.write(lambda t: partition_ops.import_rows(t, part, request.partition, n))
        crash_point("shard.move.after_import")
        with self.store.read() as t:
            self.fences._epochs = t.fences()  # fences came with the rows
        self.imported_rows += count
        self.imported_bytes += sum(len(k) + len(v) for _, k, v in rows)
        return pb.Empty()

    @rpc_handler
    async def DropPartition(self, request: pb.PartitionRequest, context: Any) -> pb.PartitionDigest:
        n = self._check_partition_arg(request.partition)
        p = request.partition
        if p in self.cluster.owned_partitions or p in self.cluster.frozen_partitions:
            raise FsError(errno.EBUSY, f"partition {p} is owned by shard {self.cluster.shard_id}: not dropping it")
        rows = 0
        while True:   # short transactions, as for imports; the partition is no longer served here
            k = await self.store.write(lambda t: partition_ops.drop_rows(t, p, n, ROWS_PER_TXN))
            rows += k
            if k < ROWS_PER_TXN:
                break
        if rows:
            crash_point("shard.move.after_drop")
            log.info("shard %d: dropped %d rows of partition %d", self.cluster.shard_id, rows, p)
        return pb.PartitionDigest(partition=p, rows=rows)

    @rpc_handler
    async def DigestPartition(self, request: pb.PartitionRequest,
                              context: Any) -> pb.PartitionDigest:
        n = self._check_partition_arg(request.partition)

        def scan() -> tuple[int, bytes]:
            with self.store.read() as t:
                return partition_ops.digest_rows(t, request.partition, n)

        rows, digest = await asyncio.to_thread(scan)
        return pb.PartitionDigest(partition=request.partition, rows=rows, digest=digest)
