"""Moving one chunk range: the byte path when the data server has one, gRPC otherwise.

The byte path (proto/superfs/v1/bytes.proto) carries chunk bytes outside
protobuf: a read lands straight in the caller's buffer (``recv_into`` a
memoryview of it: a numpy array, a slice of a bigger read), a write is sent
from the caller's memory (``sendmsg``), and a write goes to the chunk's
first replica only, which forwards it along the chain of the others as it
arrives: the client sends every byte once, not R times. A large read from
a server on this host is read from the server's slot file, verified here
(superfs/rpc/local_reads.py), when this process may open that file. Its calls block a
worker thread (``Channels.byte_workers``), never the event loop; a caller
that is cancelled aborts its connection, so the thread ends at once.

A data server the cluster map lists without a byte path (an older version)
is reached over gRPC, as before: streamed in ~1 MiB messages above
``streams.STREAM_MIN``, and a write to every replica in parallel.
"""
from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any, Callable, TypeVar

from superfs.client import streams
from superfs.rpc import local_reads
from superfs.rpc.bytepath import ByteTarget, ConnHolder
from superfs.rpc.cluster_map import ClusterView
from superfs.v1 import bytes_pb2 as bpb
from superfs.v1 import superfs_pb2 as pb

log = logging.getLogger(__name__)

T = TypeVar("T")


class ChunkIO:
    def __init__(self, cluster: ClusterView) -> None:
        self.cluster = cluster
        self.repaired = 0  # blocks data servers repaired from a peer while serving our reads
        self._hop_cache: dict[tuple[int, ...], list[bpb.ByteHop]] = {}
        self.local_reads = local_reads.enabled()   # large reads from a server on this host: its file

    @property
    def timeout(self) -> float:
        return self.cluster.timeout_s

    async def _blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args, on_conn=holder)`` on a byte worker; a cancelled caller aborts its connection."""
        holder = ConnHolder()
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(self.cluster.channels.byte_workers, lambda: fn(*args, on_conn=holder))
        try:
            return await fut
        except asyncio.CancelledError:
            holder.cancel()  # the worker's call fails at once; its outcome goes nowhere
            raise

    def _hops(self, peers: list[int]) -> list[bpb.ByteHop]:
        key = tuple(peers)
        hops = self._hop_cache.get(key)
        if hops is None:
            hops = [t.hop() for t in (self.cluster.byte_target(p) for p in peers) if t is not None]
            if len(self._hop_cache) > 1024:
                self._hop_cache.clear()
            self._hop_cache[key] = hops
        return hops

    def on_this_host(self, sid: int) -> bool:
        """Whether data server ``sid`` may be read here from its slot files (short-circuit reads)."""
        if not self.local_reads:
            return False
        target = self.cluster.byte_target(sid)
        return target is not None and bool(self._pool().may_be_local(target))

    def _pool(self) -> Any:
        return self.cluster.channels.byte_pool(self.cluster.dir_address)

    # ------------------------------------------------------------------ reads

    async def read_into(self, sid: int, ino: int, index: int, offset: int, view: memoryview, cap: pb.ChunkCap,
                        peers: list[int]) -> tuple[bool, int]:
        """Read ``len(view)`` bytes at ``offset`` of a chunk from data server ``sid`` into ``view``.

        Returns (exists, bytes read: short at the chunk's end). ``peers``: the
        chunk's other replicas, which the server repairs a corrupt block from.
        """
        target = self.cluster.byte_target(sid)
        key = pb.ChunkKey(ino=ino, index=index)
        if target is None:
            return await self._grpc_read_into(sid, key, offset, view, cap)
        req = bpb.ByteRequest(key=key, offset=offset, length=len(view), cap=cap, peers=self._hops(peers))
        exists, n, repaired = await self._blocking(functools.partial(self._pool().read_into, local_ok=self.local_reads),
                                                   target, req, view, self.timeout)
        self._note_repaired(sid, ino, index, repaired)
        return exists, n

    def read_into_now(self, sid: int, ino: int, index: int, offset: int, view: memoryview, cap: pb.ChunkCap,
                      peers: list[int]) -> tuple[bool, int] | None:
        """:meth:`read_into` on the calling thread (blocking), for callers that are not the event loop.

        None when the server has no byte path (the caller takes the async way). Thread-safe: it
        touches only the cluster map (read) and the connection pool.
        """
        target = self.cluster.byte_target(sid)
        if target is None:
            return None
        req = bpb.ByteRequest(key=pb.ChunkKey(ino=ino, index=index), offset=offset, length=len(view), cap=cap,
                              peers=self._hops(peers))
        exists, n, repaired = self._pool().read_into(target, req, view, self.timeout, local_ok=self.local_reads)
        self._note_repaired(sid, ino, index, repaired)
        return exists, n

    def _note_repaired(self, sid: int, ino: int, index: int, repaired: list[int]) -> None:
        if repaired:
            self.repaired += len(repaired)
            log.warning("data server %d repaired %d corrupt block(s) of chunk %d/%d from a replica while "
                        "serving a read", sid, len(repaired), ino, index)

    async def _grpc_read_into(self, sid: int, key: pb.ChunkKey, offset: int, view: memoryview,
                              cap: pb.ChunkCap) -> tuple[bool, int]:
        if len(view) >= streams.STREAM_MIN:
            data, exists = await streams.read_chunk(self.cluster.data_streams(sid), key, offset, len(view),
                                                    self.timeout, cap)
        else:
            req = pb.ReadChunkRequest(key=key, offset=offset, length=len(view), cap=cap)
            reply = await self.cluster.data(sid).read_chunk(req, self.timeout)
            data, exists = reply.data, reply.exists
        if not exists:
            return False, 0
        n = min(len(data), len(view))
        view[:n] = data[:n]
        return True, n

    # ----------------------------------------------------------------- writes

    async def write(self, sids: list[int], ino: int, index: int, offset: int, data: memoryview,
                    cap: pb.ChunkCap, chunk_size: int) -> None:
        """Write ``data`` at ``offset`` of a chunk on every replica in ``sids``; done when all have it."""
        key = pb.ChunkKey(ino=ino, index=index)
        targets = [self.cluster.byte_target(s) for s in sids]
        if sids and all(t is not None for t in targets):
            first, *rest = targets
            req = bpb.ByteRequest(key=key, offset=offset, cap=cap, chunk_size=chunk_size,
                                  chain=[t.hop() for t in rest if t is not None])
            assert first is not None
            await self._blocking(self._write, first, req, data)
            return
        await asyncio.gather(*(self._grpc_write(s, key, offset, data, cap) for s in sids))

    def _write(self, target: ByteTarget, req: bpb.ByteRequest, data: memoryview, *, on_conn: ConnHolder) -> int:
        return self._pool().write(target, req, data, self.timeout, on_conn=on_conn)

    async def _grpc_write(self, sid: int, key: pb.ChunkKey, offset: int, data: memoryview, cap: pb.ChunkCap) -> None:
        if len(data) >= streams.STREAM_MIN:
            await streams.write_chunk(self.cluster.data_streams(sid), key, offset, data, self.timeout, cap)
        else:
            await self.cluster.data(sid).write_chunk(
                pb.WriteChunkRequest(key=key, offset=offset, data=bytes(data), cap=cap), self.timeout)

