"""The shard's RPCs for cluster administration: stats, fsck's scans and fixes, pending work, maintenance.

Mixed into ShardServicer (service.py), like the RPCs of partition moves
(partition_rpcs.py). The scans page through every entry and inode for
fsck (admin_ops.py); ListPending and RunMaintenance show and run the
background work (`superfs admin pending`); FenceWriters bumps a file's
generation before fsck cuts bytes past its end.
"""
from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from superfs.errors import rpc_handler
from superfs.shard import admin_ops, file_ops, name_ops
from superfs.shard.inflight import tracked
from superfs.shard.records import Inode, decode_name
from superfs.shard.replies import attr_of, file_info_of
from superfs.v1 import superfs_pb2 as pb

if TYPE_CHECKING:
    from superfs.shard.cluster import ShardCluster
    from superfs.shard.inflight import OpTracker
    from superfs.shard.reclaimer import Reclaimer
    from superfs.shard.store import FileMetaStore

log = logging.getLogger(__name__)

Ctx = Any  # grpc.aio.ServicerContext (grpc has no types)


class AdminRpcs:
    """Mixed into ShardServicer: the RPCs of cluster administration."""

    store: "FileMetaStore"      # the servicer's (service.py)
    cluster: "ShardCluster"
    ops: "OpTracker"
    reclaimer: "Reclaimer"

    @rpc_handler
    async def Stats(self, request: pb.Empty, context: Ctx) -> pb.ShardStatsReply:
        def scan() -> dict[str, int]:
            with self.store.read() as t:
                return name_ops.stats(t)

        counts = await asyncio.to_thread(scan)
        return pb.ShardStatsReply(db_bytes=self.store.db_bytes(), **counts)

    @rpc_handler
    async def ScanEntries(self, request: pb.ScanRequest, context: Ctx) -> pb.ScanEntriesReply:
        def scan() -> tuple[list[tuple[int, bytes, int, int]], bytes, bool]:
            with self.store.read() as t:
                return admin_ops.scan_entries(t, request.after, request.limit)

        rows, nxt, more = await asyncio.to_thread(scan)
        return pb.ScanEntriesReply(next=nxt, more=more, entries=[
            pb.EntryRecord(parent_ino=p, name=decode_name(raw), ino=ino, type=pb.FileType.ValueType(ft))
            for p, raw, ino, ft in rows])

    @rpc_handler
    async def ScanInodes(self, request: pb.ScanRequest, context: Ctx) -> pb.ScanInodesReply:
        def scan() -> tuple[list[Inode], bytes, bool]:
            with self.store.read() as t:
                return admin_ops.scan_inodes(t, request.after, request.limit)

        nodes, nxt, more = await asyncio.to_thread(scan)
        return pb.ScanInodesReply(files=[file_info_of(n) for n in nodes], next=nxt, more=more)

    @rpc_handler
    async def ListPending(self, request: pb.Empty, context: Ctx) -> pb.ShardPendingReply:
        return self._pending_reply()

    @rpc_handler
    async def RunMaintenance(self, request: pb.Empty, context: Ctx) -> pb.ShardPendingReply:
        await self.reclaimer.run_once()
        return self._pending_reply()

    def _pending_reply(self) -> pb.ShardPendingReply:
        owned = self.cluster.owned_partitions if self.cluster.ready else frozenset()
        with self.store.read() as t:
            p = admin_ops.pending(t)
            counters = admin_ops.counters(t, owned)
        return pb.ShardPendingReply(
            counters=[pb.PartitionCounter(partition=part, last=last, delegated_end=end, delegations=n)
                      for part, last, end, n in counters],
            applied_records=p.applied, unconfirmed=p.unconfirmed, ops_begun=self.ops.begun,
            ops_low_water=self.ops.low_water,
            intents=[pb.ShardIntent(kind=i.kind, txid=i.txid, ino=i.ino, parent_ino=i.parent,
                                    name=decode_name(i.raw_name), dst_parent=i.dst_parent, dst_name=i.dst_name,
                                    created_ns=i.created_ns) for i in p.intents],
            outbox=[pb.OutboxEntry(txid=o.txid, ino=o.ino, delta=o.delta, created_ns=o.created_ns)
                    for o in p.outbox],
            reclaim=[pb.ReclaimEntry(ino=r.ino, from_size=r.from_size, freed=r.freed, layout=r.layout,
                                     chunk_size=r.chunk_size, generation=r.generation) for r in p.reclaim],
            sealed_dirs=p.sealed)

    @rpc_handler
    @tracked
    async def FenceWriters(self, request: pb.FenceWritersRequest, context: Ctx) -> pb.Attr:
        r = request
        self.cluster.check_ino(r.ino)
        node = await self.store.write(lambda t: file_ops.fence_writers(
            t, r.ino, size=r.size, generation=r.generation))
        log.info("fsck fenced the writers of %d (generation %d) before cutting past its end", r.ino,
                 node.generation)
        return attr_of(node)
