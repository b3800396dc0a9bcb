"""DataServicer: the gRPC DataService over a ChunkStore.

Decode, check the chunk capability, call the store, encode. Validation of
sizes and keys lives in the store so it is tested without a network;
``rpc_handler`` turns its ``FsError`` into a gRPC status carrying the errno.
Every read verifies the chunk's checksum: a corrupt replica answers EIO and
the client moves on to another one.

Authorization: a data server knows nothing of files or owners, so every call
that reads or writes bytes carries a chunk capability for its inode, signed
by the inode's shard after that shard checked the caller's permissions
(:mod:`superfs.capability`); it is verified here with the cluster secret
before anything is touched. Listing, deleting and truncating chunks are for
daemons (reclaim, repair, fsck) and are refused to other credentials by the
auth check in front of every servicer (``superfs.auth.DAEMON_ONLY``).
"""
from __future__ import annotations

import errno
import logging
from typing import Any

import grpc

from superfs import capability
from superfs.dataserver.chunk_store import ChunkStore, Spare
from superfs.dataserver.write_fences import WriteFences
from superfs.dataserver.chunk_format import MAX_CHUNK
from superfs.errors import FsError, rpc_handler
from superfs.faults import crash_point
from superfs.interception import drain_requests
from superfs.perms import R_OK, W_OK
from superfs.v1 import superfs_pb2 as pb
from superfs.v1 import superfs_pb2_grpc as pbg

log = logging.getLogger(__name__)

STREAM_PIECE = 1 << 20  # bytes per streamed message


class DataServicer(pbg.DataServiceServicer):
    """Serves one ChunkStore; needs no dir server (tests build it directly).

    ``secret`` is the cluster secret that chunk capabilities are verified with.
    """

    def __init__(self, chunks: ChunkStore, secret: bytes, max_write: int = MAX_CHUNK) -> None:
        """``max_write``: the most one streamed write may carry (the cluster's chunk size), so a
        stream is refused before it has buffered more than one chunk's worth."""
        self.chunks = chunks
        self.secret = secret
        self.max_write = max_write
        self.fences = WriteFences()
        held = self.fences.restore(chunks.load_fences())
        if held:
            log.info("%d write fences kept from before the restart still hold", held)

    def _allow(self, cap: pb.ChunkCap, key: pb.ChunkKey, want: int) -> None:
        capability.verify_chunk(self.secret, cap, ino=key.ino, want=want)
        if want & W_OK:
            self.fences.check(cap, key.ino)

    def add_to(self, server: grpc.aio.Server) -> None:
        pbg.add_DataServiceServicer_to_server(self, server)

    @rpc_handler
    async def WriteChunk(self, request: pb.WriteChunkRequest, context: grpc.aio.ServicerContext) -> pb.WriteChunkReply:
        key = request.key
        self._allow(request.cap, key, W_OK)
        # request.data builds a new bytes object on every access: take it once.
        length = await self.chunks.write(key.ino, key.index, request.offset, request.data, request.truncate)
        return pb.WriteChunkReply(length=length)

    @rpc_handler
    async def ReadChunk(self, request: pb.ReadChunkRequest, context: grpc.aio.ServicerContext) -> pb.ReadChunkReply:
        key = request.key
        self._allow(request.cap, key, R_OK)
        data = await self.chunks.read(key.ino, key.index, request.offset, request.length)
        if data is None:
            self._check_not_lost(key)
            return pb.ReadChunkReply(exists=False)
        return pb.ReadChunkReply(data=data, exists=True)

    @rpc_handler
    async def WriteChunkStream(self, pieces: Any, context: grpc.aio.ServicerContext) -> pb.WriteChunkReply:
        first: pb.ChunkPiece | None = None
        parts: list[bytes] = []
        size = 0
        async for piece in pieces:
            if first is None:
                try:
                    self._allow(piece.cap, piece.key, W_OK)  # before a byte is buffered
                except FsError:
                    await drain_requests(pieces)  # else the client may see EIO, not the refusal
                    raise
                first = piece
            data = piece.data
            size += len(data)
            if size > self.max_write:  # refuse before buffering more than a chunk
                raise FsError(errno.EFBIG, f"streamed write longer than {self.max_write} bytes")
            parts.append(data)
        if first is None:
            raise FsError(errno.EINVAL, "empty chunk stream")
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        length = await self.chunks.write(first.key.ino, first.key.index, first.offset, data, first.truncate)
        return pb.WriteChunkReply(length=length)

    @rpc_handler
    async def ReadChunkStream(self, request: pb.ReadChunkRequest, context: grpc.aio.ServicerContext) -> None:
        key = request.key
        self._allow(request.cap, key, R_OK)
        data = await self.chunks.read(key.ino, key.index, request.offset, request.length)
        if data is None:
            self._check_not_lost(key)
            await context.write(pb.ReadChunkReply(exists=False))
            return
        view = memoryview(data)
        for off in range(0, max(len(data), 1), STREAM_PIECE):
            await context.write(pb.ReadChunkReply(data=bytes(view[off:off + STREAM_PIECE]), exists=True))

    @rpc_handler
    async def DeleteChunks(self, request: pb.DeleteChunksRequest, context: grpc.aio.ServicerContext) -> pb.Empty:
        await self.chunks.delete(request.ino, request.from_index, request.to_index, _spare(request))
        crash_point("data.delete_chunks.after_commit")
        return pb.Empty()

    @rpc_handler
    async def TruncateChunk(self, request: pb.TruncateChunkRequest, context: grpc.aio.ServicerContext) -> pb.Empty:
        await self.chunks.truncate(request.key.ino, request.key.index, request.length, _spare(request))
        return pb.Empty()

    @rpc_handler
    async def ListChunks(self, request: pb.ListChunksRequest, context: grpc.aio.ServicerContext) -> pb.ListChunksReply:
        seq, now = self.chunks.marker()  # read first: anything listed with a higher sequence is newer
        entries, more = await self.chunks.list(request.after_ino, request.after_index, request.limit, request.verify)
        return pb.ListChunksReply(
            chunks=[
                pb.ChunkEntry(key=pb.ChunkKey(ino=e.ino, index=e.index), length=e.length, corrupt=e.corrupt,
                              checksum=e.checksum, algorithm=e.algorithm, written_ns=e.written_ns,
                              write_seq=e.write_seq)
                for e in entries
            ],
            more=more, write_seq=seq, now_ns=now,
        )

    @rpc_handler
    async def Stats(self, request: pb.Empty, context: grpc.aio.ServicerContext) -> pb.DataStatsReply:
        s = self.chunks.stats()
        return pb.DataStatsReply(chunks=s.chunks, bytes=s.bytes, db_bytes=s.db_bytes, degraded=self.chunks.degraded,
                                 write_seq=s.write_seq, now_ns=s.now_ns)

    @rpc_handler
    async def SetDegraded(self, request: pb.SetDegradedRequest, context: grpc.aio.ServicerContext) -> pb.Empty:
        await self.chunks.set_degraded(request.degraded)
        return pb.Empty()

    @rpc_handler
    async def FenceWrites(self, request: pb.FenceWritesRequest, context: grpc.aio.ServicerContext) -> pb.Empty:
        floor = self.fences.fence(request.ino, request.hold_ns, request.admit_mac)
        await self.chunks.keep_fence(request.ino, floor, request.admit_mac)   # a restart keeps it
        return pb.Empty()

    def _check_not_lost(self, key: pb.ChunkKey) -> None:
        """A chunk missing from a server that lost its store may live on another replica."""
        if self.chunks.degraded:
            raise FsError(errno.EIO, f"chunk {key.ino}:{key.index} is not here: this server lost its "
                                     "chunks and `superfs repair` has not re-created them yet")


def _spare(request: pb.DeleteChunksRequest | pb.TruncateChunkRequest) -> Spare:
    """What a deletion or cut must leave alone (fsck's guard for a writer's unsized bytes)."""
    if request.min_age_ns < 0:
        raise FsError(errno.EINVAL, "min_age_ns must not be negative")
    return Spare(request.max_write_seq, request.min_age_ns)
