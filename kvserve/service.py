"""KvServicer: the gRPC face of one KvStore. Decode, call the store, encode.

Bulk bytes over gRPC travel as a stream of pieces (``piece_bytes`` each) so
that no message holds a whole object and sending overlaps receiving. The
same-host RPCs (Attach, Reserve, Commit, Lease, Release) only move
placements: the bytes go through the shared-memory arena. Attend computes
decode attention over blocks in the arena (kvserve/attention/serve.py).

Exceptions become gRPC statuses in kvserve/errors.py; a put stream that
breaks off leaves nothing behind (its reserved space is given back).
"""
from __future__ import annotations

import logging
import time
from typing import AsyncIterator

import grpc
import xxhash

from kvserve.arena import host_id
from kvserve.attention.serve import AttentionService
from kvserve.errors import BadRequest, Status, Tier, rpc_handler, stream_handler
from kvserve.metrics import StoreMetrics
from kvserve.dram import Slot
from kvserve.store import Found, KvStore, PutSpec
from kvserve.v1 import kvserve_pb2 as pb
from kvserve.v1 import kvserve_pb2_grpc as pbg

log = logging.getLogger(__name__)


def _placement(status: Status, extents: list[tuple[int, int]] = (), tier: Tier = Tier.NONE,  # type: ignore[assignment]
               meta: pb.ObjectMeta | None = None) -> pb.Placement:
    return pb.Placement(status=status, tier=tier, object=meta,  # type: ignore[arg-type]
                        extents=[pb.Extent(offset=o, length=n) for o, n in extents])


class KvServicer(pbg.KvServiceServicer):
    def __init__(self, store: KvStore, metrics: StoreMetrics) -> None:
        self.store = store
        self.metrics = metrics
        self.piece = store.cfg.piece_bytes
        self.host_id = host_id()
        self.attention = AttentionService(store, store.cfg.attention_threads, store.cfg.attention_kernel)

    def add_to(self, server: grpc.aio.Server) -> None:
        pbg.add_KvServiceServicer_to_server(self, server)

    def _observe(self, op: str, start: float) -> None:
        self.metrics.latency.labels(op).observe(time.perf_counter() - start)

    # ------------------------------------------------------------- gRPC path

    @rpc_handler
    async def Put(self, request_iterator: AsyncIterator[pb.PutRequest], context: grpc.aio.ServicerContext) -> pb.PutReply:
        start = time.perf_counter()
        store, arena = self.store, self.store.arena
        statuses: list[Status | None] = []  # None: filled, waiting to be committed with the batch
        filled: list[Slot] = []
        namespace: str | None = None
        slot = None
        hasher = xxhash.xxh3_64()
        skip = 0  # bytes of a refused object still to come
        received = 0
        try:
            async for msg in request_iterator:
                if namespace is None:
                    namespace = msg.namespace
                    store.object_ids(namespace, [])  # unknown namespace: refuse before any bytes
                if msg.HasField("object"):
                    if slot is not None or skip:
                        raise BadRequest("a new object started before the previous one's bytes ended")
                    meta = msg.object
                    spec = PutSpec(meta.key, meta.size, meta.checksum, meta.pin)
                    (status, slot), = await store.reserve(namespace, [spec])
                    hasher = xxhash.xxh3_64()
                    if slot is None:
                        statuses.append(status)
                        skip = meta.size
                data = msg.data  # each access to a bytes field copies it: once
                if data:
                    received += len(data)
                    if slot is not None:
                        if slot.filled + len(data) > slot.size:
                            raise BadRequest("more bytes than the object's size")
                        hasher.update(data)  # while the piece is in cache, not the arena afterwards
                        arena.write_at(slot.extents, slot.filled, data)
                        slot.filled += len(data)
                    elif skip >= len(data):
                        skip -= len(data)
                    else:
                        raise BadRequest("bytes outside of any object")
                if slot is not None and slot.filled == slot.size:
                    if hasher.intdigest() == slot.checksum:
                        filled.append(slot)
                        statuses.append(None)
                    else:
                        store.dram.abort(slot)
                        store.dram.counters.corrupt += 1
                        statuses.append(Status.CORRUPT)
                    slot = None
            if slot is not None:
                statuses.append(Status.ABORTED)
            # the whole batch becomes visible at once, committed like a shared-memory batch
            committed = iter(store.commit_slots(filled, verify=False))  # verified piece by piece
            filled = []
            statuses = [next(committed) if st is None else st for st in statuses]
        finally:
            for s in filled + ([slot] if slot is not None else []):
                store.dram.abort(s)  # the stream broke off: nothing of it stays
        self.metrics.transfer.labels("grpc", "in").inc(received)
        self._observe("put", start)
        return pb.PutReply(statuses=statuses)  # type: ignore[arg-type]

    @stream_handler
    async def Get(self, request: pb.GetRequest, context: grpc.aio.ServicerContext) -> AsyncIterator[pb.GetReply]:
        start = time.perf_counter()
        found = await self.store.acquire(request.namespace, list(request.keys), prefix=request.prefix)
        sent = 0
        try:
            for key, f in zip(request.keys, found):
                if f is None:
                    yield pb.GetReply(object=pb.ObjectMeta(key=key), status=Status.MISSING)  # type: ignore[arg-type]
                    continue
                meta = pb.ObjectMeta(key=key, size=f.size, checksum=f.checksum)
                first = True
                for piece in self._pieces(f):
                    msg = pb.GetReply(data=bytes(piece))
                    if first:
                        msg.object.CopyFrom(meta)
                        msg.status, msg.tier, first = Status.OK, f.tier, False  # type: ignore[assignment]
                    sent += len(piece)
                    yield msg
                if first:  # an empty object
                    yield pb.GetReply(object=meta, status=Status.OK, tier=f.tier)  # type: ignore[arg-type]
        finally:
            self.store.release(found)
        self.metrics.transfer.labels("grpc", "out").inc(sent)
        self._observe("get", start)

    def _pieces(self, f: Found) -> list[memoryview]:
        if f.obj is not None:
            return self.store.arena.pieces(f.obj.extents, self.piece)
        assert f.data is not None
        view = memoryview(f.data)
        return [view[p:p + self.piece] for p in range(0, len(view), self.piece)]

    # ----------------------------------------------------------------- admin

    @rpc_handler
    async def Exists(self, request: pb.KeysRequest, context: grpc.aio.ServicerContext) -> pb.ExistsReply:
        return pb.ExistsReply(tiers=self.store.exists(request.namespace, list(request.keys)))  # type: ignore[arg-type]

    @rpc_handler
    async def Remove(self, request: pb.KeysRequest, context: grpc.aio.ServicerContext) -> pb.StatusReply:
        statuses = await self.store.remove(request.namespace, list(request.keys))
        return pb.StatusReply(statuses=statuses)  # type: ignore[arg-type]

    @rpc_handler
    async def Pin(self, request: pb.PinRequest, context: grpc.aio.ServicerContext) -> pb.StatusReply:
        statuses = self.store.pin(request.namespace, list(request.keys), request.pinned)
        return pb.StatusReply(statuses=statuses)  # type: ignore[arg-type]

    @rpc_handler
    async def Stats(self, request: pb.Empty, context: grpc.aio.ServicerContext) -> pb.StatsReply:
        s = self.store.stats()
        cfg = self.store.cfg
        return pb.StatsReply(
            dram=pb.TierStats(**s["dram"]), superfs=pb.TierStats(**s["superfs"]),  # type: ignore[arg-type]
            misses=s["misses"], puts=s["puts"], leases_active=s["leases_active"],  # type: ignore[arg-type]
            demotions_dropped=s["demotions_dropped"], policy=cfg.policy,  # type: ignore[arg-type]
            max_object_bytes=cfg.max_object_bytes, namespaces=list(cfg.namespaces),
            superfs_enabled=self.store.sfs is not None)

    # -------------------------------------------------------- same-host path

    @rpc_handler
    async def Attach(self, request: pb.AttachRequest, context: grpc.aio.ServicerContext) -> pb.AttachReply:
        if not self.store.cfg.shm:
            return pb.AttachReply(available=False, reason="the daemon runs with shm disabled")
        if request.host_id != self.host_id:
            return pb.AttachReply(available=False, reason="the client is on another host")
        arena = self.store.arena
        return pb.AttachReply(available=True, path=arena.path, size=arena.size, token=arena.token)

    @rpc_handler
    async def Reserve(self, request: pb.ReserveRequest, context: grpc.aio.ServicerContext) -> pb.ReserveReply:
        start = time.perf_counter()
        specs = [PutSpec(m.key, m.size, m.checksum, m.pin) for m in request.objects]
        outcomes = await self.store.reserve(request.namespace, specs)
        handle = self.store.park([slot for _, slot in outcomes if slot is not None])
        placements = [_placement(status, slot.extents if slot is not None else [])
                      for status, slot in outcomes]
        self._observe("reserve", start)
        return pb.ReserveReply(reservation=handle, placements=placements, arena=self.store.arena.token)

    @rpc_handler
    async def Commit(self, request: pb.CommitRequest, context: grpc.aio.ServicerContext) -> pb.StatusReply:
        start = time.perf_counter()
        statuses = self.store.commit(request.reservation, abort=request.abort, checksums=list(request.checksums))
        self._observe("commit", start)
        return pb.StatusReply(statuses=statuses)  # type: ignore[arg-type]

    @rpc_handler
    async def Lease(self, request: pb.LeaseRequest, context: grpc.aio.ServicerContext) -> pb.LeaseReply:
        start = time.perf_counter()
        self.store.release_handles(list(request.release))
        found = await self.store.acquire(request.namespace, list(request.keys), prefix=request.prefix)
        placements = []
        for key, f in zip(request.keys, found):
            if f is None:
                placements.append(_placement(Status.MISSING))
                continue
            meta = pb.ObjectMeta(key=key, size=f.size, checksum=f.checksum)
            if f.obj is None:  # held as bytes only (no DRAM room to promote it): use Get
                placements.append(_placement(Status.FALLBACK, tier=f.tier, meta=meta))
            else:
                placements.append(_placement(Status.OK, f.obj.extents, f.tier, meta))
        handle = self.store.hold(found)
        self._observe("lease", start)
        return pb.LeaseReply(lease=handle, placements=placements, lease_seconds=self.store.cfg.lease_seconds,
                             arena=self.store.arena.token)

    # ---------------------------------------------------------- computation

    @rpc_handler
    async def Attend(self, request: pb.AttendRequest, context: grpc.aio.ServicerContext) -> pb.AttendReply:
        start = time.perf_counter()
        reply = await self.attention.attend(request)
        self._observe("attend", start)
        return reply

    @rpc_handler
    async def Release(self, request: pb.ReleaseRequest, context: grpc.aio.ServicerContext) -> pb.Empty:
        self.store.release_handles(list(request.leases))
        return pb.Empty()
