"""KvClient: a synchronous client of one kvserve daemon.

Data moves on one of two paths, chosen when the client first needs one:

* same host (``shm``): the client maps the daemon's arena (Attach) and
  copies bytes straight between it and the caller's buffers. A put is
  Reserve (space, invisible) -> memcpy -> Commit (checksum verified, then
  visible); a get is Lease (placements, held against eviction) -> memcpy ->
  Release (sent in the background, not waited for).
* gRPC: a put streams pieces to the daemon, a get streams them back.

Every object read is checked against its checksum before it is returned: a
mismatch is reported as a miss, never as data. ``*_into`` variants and
numpy inputs avoid intermediate copies: bytes go from the arena (or the
gRPC pieces) straight into the caller's buffer.

Request-level failures raise (kvserve.errors): BadRequest,
UnknownNamespace, StoreUnavailable. Per-object outcomes of puts are
:class:`Status` values. Every call has a deadline.
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterator, Sequence

import grpc
import numpy as np
import xxhash

from kvserve.api import Hit, StoreApi
from kvserve.arena import Arena, as_bytes_view, checksum_of, host_id
from kvserve.errors import KvError, ShmUnavailable, Status, StoreUnavailable, Tier, error_of_rpc
from kvserve.prefix import Namespace, namespace_name
from kvserve.v1 import kvserve_pb2 as pb
from kvserve.v1 import kvserve_pb2_grpc as pbg

log = logging.getLogger(__name__)

MAX_MESSAGE = 80 * 1024 * 1024
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE),
    ("grpc.max_receive_message_length", MAX_MESSAGE),
    # a restarted daemon is reached again within a second, not minutes
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]
BATCH_KEYS = 1024         # keys per request (the daemon's max_keys is larger)
BATCH_BYTES = 64 << 20    # bytes per put request: a batch's space is held until it all commits
MIN_RATE = 50e6           # bytes/s: deadlines grow with the bytes a call moves
RELEASE_DELAY_S = 0.05    # an idle client gives its leases back after this long


def _chunks(n: int, step: int) -> Iterator[range]:
    for start in range(0, n, step):
        yield range(start, min(n, start + step))


def _put_chunks(sizes: Sequence[int]) -> Iterator[range]:
    """Consecutive runs of at most BATCH_KEYS objects and (but for single objects) BATCH_BYTES."""
    start, total = 0, 0
    for i, size in enumerate(sizes):
        if i > start and (i - start >= BATCH_KEYS or total + size > BATCH_BYTES):
            yield range(start, i)
            start, total = i, 0
        total += size
    if start < len(sizes):
        yield range(start, len(sizes))


class KvClient(StoreApi):
    def __init__(self, address: str, namespace: Namespace | str, *, timeout_s: float = 10.0,
                 shm: bool | None = None, piece_bytes: int = 512 << 10, streams: int = 2) -> None:
        """``shm``: None uses shared memory when the daemon is on this host; True requires it.

        ``streams``: gRPC connections a large batch is split over on the gRPC
        path (the daemon overlaps their work: measured 0.64 -> 0.92 GB/s with 2).
        """
        if streams < 1:
            raise ValueError("streams must be at least 1")
        self.address = address
        self.namespace = namespace_name(namespace)
        self.timeout_s = timeout_s
        self.piece_bytes = piece_bytes
        self.corrupt = 0  # objects dropped because their bytes failed the checksum
        self._shm_mode = shm
        self._arena: Arena | None = None
        self._attached = False
        self._lock = threading.RLock()
        self._releases: set[grpc.Future] = set()
        self._to_release: list[int] = []  # lease handles to give back with the next Lease
        self._releaser: threading.Thread | None = None
        self._closed = False
        self._channel = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
        self._stub = pbg.KvServiceStub(self._channel)
        # bulk gRPC transfers: their own connections (a local subchannel pool keeps them apart)
        self._bulk_channels = [self._channel] + [
            grpc.insecure_channel(address, options=CHANNEL_OPTIONS + [("grpc.use_local_subchannel_pool", 1)])
            for _ in range(streams - 1)]
        self._bulk = [pbg.KvServiceStub(ch) for ch in self._bulk_channels]
        self._pool: ThreadPoolExecutor | None = None

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._flush_releases()
        for fut in list(self._releases):
            try:
                fut.result(timeout=self.timeout_s)
            except grpc.RpcError:
                pass
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        for ch in self._bulk_channels:
            ch.close()
        if self._arena is not None:
            self._arena.close()
            self._arena = None

    def _deadline(self, nbytes: int = 0) -> float:
        return self.timeout_s + nbytes / MIN_RATE

    def _call(self, method: Any, request: Any, nbytes: int = 0) -> Any:
        try:
            return method(request, timeout=self._deadline(nbytes))
        except grpc.RpcError as e:
            err = error_of_rpc(e)
            if isinstance(err, StoreUnavailable):
                self._detach()  # it may come back as a new process with a new arena
            raise err from None

    def _detach(self) -> None:
        with self._lock:
            # not closed here: another thread may be copying from it; it is
            # unmapped when the last reference goes
            self._arena = None
            self._attached = False
            self._to_release.clear()  # they died with the daemon

    def _same_arena(self, arena: Arena, token: bytes) -> bool:
        """Do placements in a reply refer to the arena we mapped? Not if the daemon restarted."""
        if token == arena.token:
            return True
        log.info("the daemon at %s has a new arena (restarted): attaching again", self.address)
        self._detach()
        return False

    # -------------------------------------------------------- shared memory

    @property
    def uses_shm(self) -> bool:
        """Attach if not done yet; True if bulk bytes go through shared memory."""
        return self._current_arena() is not None

    def _current_arena(self) -> Arena | None:
        """The mapped arena (attaching first if needed), or None for the gRPC path.

        An operation takes it once: another thread may detach meanwhile (its
        call found the daemon gone), and the mapping stays valid while used.
        """
        if not self._attached:
            with self._lock:
                if not self._attached:
                    self._attach()
        return self._arena

    def _attach(self) -> None:
        if self._shm_mode is False:
            self._attached = True
            return
        reply = self._call(self._stub.Attach, pb.AttachRequest(host_id=host_id()))
        try:
            if not reply.available:
                raise ShmUnavailable(reply.reason)
            self._arena = Arena.attach(reply.path, reply.size, reply.token)
            log.debug("attached to the arena of %s", self.address)
        except ShmUnavailable as e:
            if self._shm_mode:
                raise
            log.debug("shared memory with %s unavailable (%s): using gRPC", self.address, e)
        self._attached = True

    def _release(self, handle: int) -> None:
        """Give a lease back: with the next Lease call, or on its own after RELEASE_DELAY_S.

        A separate Release right away would cost a round trip per get (the
        daemon serves it before the next request); batching it into the next
        Lease costs nothing, and a background thread bounds how long an idle
        client keeps objects from being evicted.
        """
        if not handle:
            return
        with self._lock:
            self._to_release.append(handle)
            if self._releaser is None and not self._closed:
                self._releaser = threading.Thread(target=self._release_loop, name="kvserve-release", daemon=True)
                self._releaser.start()

    def _release_loop(self) -> None:
        """Every RELEASE_DELAY_S, send the handles no Lease took since the last tick; stop when idle."""
        seen: set[int] = set()
        while True:
            time.sleep(RELEASE_DELAY_S)
            with self._lock:
                if self._closed or not self._to_release:
                    self._releaser = None
                    return
                stale = [h for h in self._to_release if h in seen]
                self._to_release = [h for h in self._to_release if h not in seen]
                seen = set(self._to_release)
            if stale:
                self._send_release(stale)

    def _take_releases(self) -> list[int]:
        with self._lock:
            handles, self._to_release = self._to_release, []
        return handles

    def _flush_releases(self) -> None:
        handles = self._take_releases()
        if handles:
            self._send_release(handles)

    def _send_release(self, handles: list[int]) -> None:
        try:
            fut = self._stub.Release.future(pb.ReleaseRequest(leases=handles), timeout=self.timeout_s)
        except ValueError:  # the channel was closed: the daemon expires the leases
            return
        self._releases.add(fut)  # keep it referenced until done
        fut.add_done_callback(self._releases.discard)

    # ------------------------------------------------------------------ put

    def put_batch(self, keys: Sequence[bytes], values: Sequence[Any], *, pin: bool = False) -> list[Status]:
        """Store objects (bytes, bytearray, memoryview or numpy arrays; not copied on the way)."""
        if len(keys) != len(values):
            raise ValueError("put_batch needs one value per key")
        views = [as_bytes_view(v) for v in values]
        out: list[Status] = []
        for r in _put_chunks([len(v) for v in views]):
            ks, vs = [keys[i] for i in r], [views[i] for i in r]
            arena = self._current_arena()
            out += self._put_shm(arena, ks, vs, pin) if arena is not None else self._put_grpc(ks, vs, pin)
        return out

    def _put_shm(self, arena: Arena, keys: list[bytes], views: list[np.ndarray], pin: bool) -> list[Status]:
        # checksums travel with the commit: computed while copying, the bytes are read once
        metas = [pb.ObjectMeta(key=k, size=len(v), pin=pin) for k, v in zip(keys, views)]
        reply = self._call(self._stub.Reserve, pb.ReserveRequest(namespace=self.namespace, objects=metas))
        statuses = [Status(p.status) for p in reply.placements]
        if not reply.reservation:
            return statuses
        if not self._same_arena(arena, reply.arena):
            self._call(self._stub.Commit, pb.CommitRequest(reservation=reply.reservation, abort=True))
            again = self._current_arena()
            return self._put_shm(again, keys, views, pin) if again is not None else self._put_grpc(keys, views, pin)
        checksums = []
        try:
            for p, v in zip(reply.placements, views):
                if p.status == Status.OK:
                    checksums.append(arena.write_hashed([(e.offset, e.length) for e in p.extents], v))
        except BaseException:
            self._call(self._stub.Commit, pb.CommitRequest(reservation=reply.reservation, abort=True))
            raise
        request = pb.CommitRequest(reservation=reply.reservation, checksums=checksums)
        committed = iter(self._call(self._stub.Commit, request).statuses)
        return [Status(next(committed)) if s is Status.OK else s for s in statuses]

    def _parallel(self, fn: Any, parts: list[Any]) -> list[Any]:
        """``fn(stub, part)`` for each part, each on its own bulk connection, in parallel."""
        if len(parts) == 1:
            return [fn(self._bulk[0], parts[0])]

        def run(i: int, part: Any) -> Any:
            try:
                return fn(self._bulk[i], part)
            except StoreUnavailable:
                if i == 0:
                    raise
                # each connection reconnects to a restarted daemon on its own backoff: this one
                # may still be waiting while the main one is up again
                return fn(self._bulk[0], part)

        if self._pool is None:
            self._pool = ThreadPoolExecutor(len(self._bulk), thread_name_prefix="kvserve-bulk")
        futures = [self._pool.submit(run, i, part) for i, part in enumerate(parts)]
        return [f.result() for f in futures]

    def _split(self, sizes: list[int]) -> list[range]:
        """Contiguous groups of about equal bytes, one per bulk stream (one group if small)."""
        total = sum(sizes)
        n = min(len(self._bulk), len(sizes), max(1, total // (4 * self.piece_bytes)))
        groups: list[range] = []
        start, acc = 0, 0
        for i, size in enumerate(sizes):
            acc += size
            if len(groups) < n - 1 and acc >= total * (len(groups) + 1) / n:
                groups.append(range(start, i + 1))
                start = i + 1
        groups.append(range(start, len(sizes)))
        return [g for g in groups if len(g)]

    def _put_grpc(self, keys: list[bytes], views: list[np.ndarray], pin: bool) -> list[Status]:
        groups = self._split([len(v) for v in views])
        parts = self._parallel(lambda stub, g: self._put_stream(stub, [keys[i] for i in g], [views[i] for i in g],
                                                                pin), groups)
        return [st for part in parts for st in part]

    def _put_stream(self, stub: pbg.KvServiceStub, keys: list[bytes], views: list[np.ndarray],
                    pin: bool) -> list[Status]:
        piece = self.piece_bytes

        def messages() -> Iterator[pb.PutRequest]:
            for i, (k, v) in enumerate(zip(keys, views)):
                meta = pb.ObjectMeta(key=k, size=len(v), checksum=checksum_of(v), pin=pin)
                first = v[:piece].tobytes()
                yield pb.PutRequest(namespace=self.namespace if i == 0 else "", object=meta, data=first)
                for pos in range(piece, len(v), piece):
                    yield pb.PutRequest(data=v[pos:pos + piece].tobytes())

        total = sum(len(v) for v in views)
        reply = self._call(stub.Put, messages(), total)
        return [Status(s) for s in reply.statuses]

    # ------------------------------------------------------------------ get

    def lookup(self, keys: Sequence[bytes], *, prefix: bool = False,
               outs: Sequence[Any] | None = None) -> list[Hit | None]:
        """The general get: with ``prefix``, a list as long as the present prefix."""
        if outs is not None and len(outs) != len(keys):
            raise ValueError("one output buffer per key")
        views = [as_bytes_view(o, writable=True) for o in outs] if outs is not None else None
        out: list[Hit | None] = []
        for r in _chunks(len(keys), BATCH_KEYS):
            ks = [keys[i] for i in r]
            vs = [views[i] for i in r] if views is not None else None
            arena = self._current_arena()
            part = self._lookup_shm(arena, ks, prefix, vs) if arena is not None else self._lookup_grpc(ks, prefix, vs)
            out += part
            if prefix and len(part) < len(ks):
                break
        return out

    def _lookup_shm(self, arena: Arena, keys: list[bytes], prefix: bool,
                    outs: list[np.ndarray] | None) -> list[Hit | None]:
        request = pb.LeaseRequest(namespace=self.namespace, keys=keys, prefix=prefix, release=self._take_releases())
        reply = self._call(self._stub.Lease, request)
        if reply.lease and not self._same_arena(arena, reply.arena):
            # leases in a new daemon we cannot read: they expire there
            again = self._current_arena()
            return self._lookup_shm(again, keys, prefix, outs) if again is not None else \
                self._lookup_grpc(keys, prefix, outs)
        out: list[Hit | None] = []
        fallback: list[int] = []
        try:
            for i, p in enumerate(reply.placements):
                if p.status == Status.FALLBACK:
                    fallback.append(i)
                    out.append(None)
                    continue
                if p.status != Status.OK:
                    out.append(None)
                    continue
                extents = [(e.offset, e.length) for e in p.extents]
                out.append(self._copy_out(arena, extents, p.object, Tier(p.tier), outs[i] if outs is not None else None))
        finally:
            self._release(reply.lease)
        if fallback:
            got = self._lookup_grpc([keys[i] for i in fallback], False,
                                    [outs[i] for i in fallback] if outs is not None else None)
            for i, h in zip(fallback, got):
                out[i] = h
        if prefix:
            cut = next((i for i, h in enumerate(out) if h is None), len(out))
            out = out[:cut]
        return out

    def _copy_out(self, arena: Arena, extents: list[tuple[int, int]], meta: pb.ObjectMeta, tier: Tier,
                  dst: np.ndarray | None) -> Hit | None:
        size = meta.size
        if dst is not None:
            if len(dst) < size:
                raise ValueError(f"output buffer of {len(dst)} bytes for an object of {size}")
            ok = arena.read_into_hashed(extents, dst[:size]) == meta.checksum
            hit = Hit(size, tier)
        else:
            data = arena.to_bytes(extents)  # get_into avoids this allocation and the second pass
            ok = xxhash.xxh3_64_intdigest(data) == meta.checksum
            hit = Hit(size, tier, data)
        if not ok:
            self.corrupt += 1
            log.warning("object %s from %s failed its checksum: treated as a miss", meta.key.hex(), self.address)
            return None
        return hit

    def _lookup_grpc(self, keys: list[bytes], prefix: bool, outs: list[np.ndarray] | None) -> list[Hit | None]:
        # object sizes are unknown before the answer: split by the caller's buffers, else by count
        sizes = [len(o) for o in outs] if outs is not None else [4 * self.piece_bytes] * len(keys)
        groups = self._split(sizes)
        parts = self._parallel(lambda stub, g: self._get_stream(
            stub, [keys[i] for i in g], prefix, [outs[i] for i in g] if outs is not None else None), groups)
        out: list[Hit | None] = []
        for g, part in zip(groups, parts):
            out += part
            if prefix and len(part) < len(g):
                break  # the prefix ended in this group: later groups do not extend it
        return out

    def _get_stream(self, stub: pbg.KvServiceStub, keys: list[bytes], prefix: bool,
                    outs: list[np.ndarray] | None) -> list[Hit | None]:
        request = pb.GetRequest(namespace=self.namespace, keys=keys, prefix=prefix)
        out: list[Hit | None] = []
        try:
            stream = stub.Get(request, timeout=self._deadline(sum(len(o) for o in outs) if outs else 0))
            for hit in self._read_stream(stream, keys, outs):
                out.append(hit)
        except grpc.RpcError as e:
            raise error_of_rpc(e) from None
        if prefix:
            cut = next((i for i, h in enumerate(out) if h is None), len(out))
            out = out[:cut]
        elif len(out) != len(keys):
            raise StoreUnavailable(f"{self.address} answered {len(out)} of {len(keys)} keys")
        return out

    def _read_stream(self, stream: Any, keys: list[bytes], outs: list[np.ndarray] | None) -> Iterator[Hit | None]:
        i = -1
        meta: pb.GetReply | None = None
        parts: list[bytes] = []
        filled = 0
        hasher = xxhash.xxh3_64()
        dst: np.ndarray | None = None

        def finish() -> Hit | None:
            assert meta is not None
            if meta.status != Status.OK:
                return None
            if hasher.intdigest() != meta.object.checksum or filled != meta.object.size:
                self.corrupt += 1
                log.warning("object %s from %s failed its checksum: treated as a miss", keys[i].hex(), self.address)
                return None
            data = None if dst is not None else (parts[0] if len(parts) == 1 else b"".join(parts))
            return Hit(filled, Tier(meta.tier), data)

        for msg in stream:
            if msg.HasField("object"):
                if meta is not None:
                    yield finish()
                i += 1
                if i >= len(keys) or msg.object.key != keys[i]:
                    raise KvError(f"{self.address} answered for the wrong key")
                meta, parts, filled, hasher = msg, [], 0, xxhash.xxh3_64()
                dst = outs[i] if outs is not None else None
                if dst is not None and len(dst) < msg.object.size:
                    raise ValueError(f"output buffer of {len(dst)} bytes for an object of {msg.object.size}")
            data = msg.data  # each access to a bytes field copies it: once
            if data:
                if meta is None:
                    raise KvError(f"{self.address} sent bytes before an object")
                hasher.update(data)
                if dst is not None:
                    dst[filled:filled + len(data)] = np.frombuffer(data, dtype=np.uint8)
                else:
                    parts.append(data)
                filled += len(data)
        if meta is not None:
            yield finish()

    # ---------------------------------------------------------------- admin

    def exists(self, keys: Sequence[bytes]) -> list[Tier]:
        reply = self._call(self._stub.Exists, pb.KeysRequest(namespace=self.namespace, keys=list(keys)))
        return [Tier(t) for t in reply.tiers]

    def remove(self, keys: Sequence[bytes]) -> list[Status]:
        reply = self._call(self._stub.Remove, pb.KeysRequest(namespace=self.namespace, keys=list(keys)))
        return [Status(s) for s in reply.statuses]

    def pin(self, keys: Sequence[bytes], pinned: bool = True) -> list[Status]:
        reply = self._call(self._stub.Pin, pb.PinRequest(namespace=self.namespace, keys=list(keys), pinned=pinned))
        return [Status(s) for s in reply.statuses]

    def stats(self) -> pb.StatsReply:
        return self._call(self._stub.Stats, pb.Empty())

    def attend(self, request: pb.AttendRequest, kv_bytes: int = 0) -> pb.AttendReply:
        """The Attend RPC (decode attention in the daemon); kvserve.attention.client builds the request.

        ``kv_bytes`` (what the daemon will read) stretches the deadline like a transfer's.
        """
        if not request.namespace:
            request.namespace = self.namespace
        return self._call(self._stub.Attend, request, kv_bytes)
