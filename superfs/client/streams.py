"""Streamed chunk transfers over gRPC: bulk bytes in ~1 MiB messages (the fall-back path).

Chunk bytes normally travel on the data servers' byte path
(superfs/client/chunk_io.py). A data server the cluster map lists without
one (an older version) is reached here: Python gRPC moves one
multi-megabyte unary message several times slower than the same bytes as a
stream of 1 MiB messages (measured: 0.13 vs 0.83 GB/s between two
processes), so chunk reads and writes above STREAM_MIN use the streaming
RPCs. Failures become FsError exactly as in superfs.rpc.caller.grpc_call.
"""
from __future__ import annotations

import asyncio
import time
from typing import AsyncIterator

import grpc

from superfs.errors import FsError, errno_of_rpc_error, is_overloaded
from superfs.v1 import superfs_pb2 as pb
from superfs.v1 import superfs_pb2_grpc as pbg

STREAM_MIN = 256 * 1024   # smaller transfers go as one unary message
PIECE = 1 << 20


async def write_chunk(stub: pbg.DataServiceStub, key: pb.ChunkKey, offset: int, data: memoryview,
                      timeout_s: float, cap: pb.ChunkCap | None = None) -> int:
    """Write ``data`` at ``offset`` of one chunk; ``cap`` (W_OK for key.ino) rides on the first piece."""
    async def pieces() -> AsyncIterator[pb.ChunkPiece]:
        yield pb.ChunkPiece(key=key, offset=offset, data=bytes(data[:PIECE]), cap=cap)
        for off in range(PIECE, len(data), PIECE):
            yield pb.ChunkPiece(data=bytes(data[off:off + PIECE]))

    deadline = time.monotonic() + timeout_s
    pause = 0.005
    while True:
        try:
            reply = await stub.WriteChunkStream(pieces(), timeout=max(0.001, deadline - time.monotonic()))
            return reply.length
        except grpc.aio.AioRpcError as e:
            if is_overloaded(e) and time.monotonic() + pause < deadline:  # refused before it ran: again
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.2)
                continue
            err, msg = errno_of_rpc_error(e)
            raise FsError(err, msg) from None


async def read_chunk(stub: pbg.DataServiceStub, key: pb.ChunkKey, offset: int, length: int,
                     timeout_s: float, cap: pb.ChunkCap | None = None) -> tuple[bytes, bool]:
    """(bytes, exists) of one chunk range; ``cap`` needs R_OK for key.ino."""
    deadline = time.monotonic() + timeout_s
    pause = 0.005
    req = pb.ReadChunkRequest(key=key, offset=offset, length=length, cap=cap)
    while True:
        parts: list[bytes] = []
        exists = True
        try:
            async for reply in stub.ReadChunkStream(req, timeout=max(0.001, deadline - time.monotonic())):
                exists = reply.exists
                if reply.data:
                    parts.append(reply.data)
            return (parts[0] if len(parts) == 1 else b"".join(parts)), exists
        except grpc.aio.AioRpcError as e:
            if is_overloaded(e) and time.monotonic() + pause < deadline:  # refused before it ran: again
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.2)
                continue
            err, msg = errno_of_rpc_error(e)
            raise FsError(err, msg) from None
