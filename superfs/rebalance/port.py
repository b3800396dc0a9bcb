"""The interface chunks move through, over the cluster's RPCs.

Everything the mover does to a cluster goes through :class:`ChunkPort`: a
chunk's bytes and checksum from one replica, its bytes written to another,
a replica deleted, a file's writes fenced on a server, a file's record read
and its layout switched on its shard. It is built on the typed transport
(superfs/rpc) and the current public data server RPCs only (ReadChunk,
WriteChunk, ListChunks, DeleteChunks), so a new byte path needs only this
module changed; the dir server runs it too (automatic re-replication), which
is why it takes a :class:`ClusterView` and not the client library.
"""
from __future__ import annotations

import errno
import logging
from dataclasses import dataclass
from typing import AsyncIterator

from superfs.errors import FsError
from superfs.rpc.cluster_map import ClusterView
from superfs.v1 import superfs_pb2 as pb

log = logging.getLogger(__name__)

ROOT = pb.Creds(uid=0, gid=0)
SCAN_PAGE = 2000
LIST_PAGE = 1000


@dataclass(frozen=True)
class ChunkCopy:
    """A chunk's whole content as one replica holds it, and the checksum that replica stored."""

    data: bytes
    checksum: int
    algorithm: int


class ChunkPort:
    """Chunk and layout operations for the mover (acting as root, with the daemon role)."""

    def __init__(self, view: ClusterView, *, timeout_s: float | None = None) -> None:
        self.view = view
        self.timeout_s = timeout_s or view.timeout_s

    # ----------------------------------------------------------------- files

    async def file(self, ino: int) -> pb.FileInfo | None:
        """The file's record (with a read-write chunk capability); None once it is gone."""
        try:
            return await self.view.home_shard(ino).get_file(pb.GetFileRequest(ino=ino, creds=ROOT))
        except FsError as e:
            if e.errno == errno.ENOENT:
                return None
            raise

    async def files(self) -> AsyncIterator[pb.FileInfo]:
        """Every chunked file of every shard, a page at a time."""
        for shard_id in self.view.shard_ids():
            shard = self.view.shard(shard_id)
            after = b""
            while True:
                reply = await shard.scan_inodes(pb.ScanRequest(after=after, limit=SCAN_PAGE), 4 * self.timeout_s)
                for f in reply.files:
                    if not f.inline and f.layout:
                        yield f
                if not reply.more:
                    break
                after = reply.next

    async def switch_layout(self, info: pb.FileInfo, layout: list[int]) -> pb.FileInfo:
        """The file's new record; EAGAIN if its layout or cut changed since ``info``, ENOENT if gone."""
        req = pb.SwitchLayoutRequest(ino=info.attr.ino, expect_layout=list(info.layout),
                                     expect_cut_generation=info.cut_generation, layout=layout)
        return await self.view.home_shard(info.attr.ino).switch_layout(req)

    # ---------------------------------------------------------------- chunks

    async def checksum(self, server: int, ino: int, index: int) -> tuple[int, int] | None:
        """(checksum, algorithm) of the chunk as ``server`` stores it; None if it has none."""
        req = pb.ListChunksRequest(after_ino=ino, after_index=index - 1, limit=1) if index else \
            pb.ListChunksRequest(after_ino=ino - 1, after_index=(1 << 64) - 1, limit=1)
        reply = await self.view.data(server).list_chunks(req, 2 * self.timeout_s)
        for c in reply.chunks:
            if c.key.ino == ino and c.key.index == index:
                return c.checksum, c.algorithm
        return None

    async def checksums(self, server: int, ino: int) -> dict[int, tuple[int, int]]:
        """index -> (checksum, algorithm) of every chunk of ``ino`` that ``server`` holds now."""
        out: dict[int, tuple[int, int]] = {}
        after_ino, after_index = ino - 1, (1 << 64) - 1
        while True:
            req = pb.ListChunksRequest(after_ino=after_ino, after_index=after_index, limit=LIST_PAGE)
            reply = await self.view.data(server).list_chunks(req, 2 * self.timeout_s)
            mine = [c for c in reply.chunks if c.key.ino == ino]
            out.update((c.key.index, (c.checksum, c.algorithm)) for c in mine)
            if not reply.more or len(mine) < len(reply.chunks) or not mine:
                return out
            after_ino, after_index = ino, mine[-1].key.index

    async def read(self, server: int, info: pb.FileInfo, index: int) -> ChunkCopy | None:
        """The whole chunk from ``server`` (checked against its checksum there); None if absent."""
        ino = info.attr.ino
        before = await self.checksum(server, ino, index)
        if before is None:
            return None
        req = pb.ReadChunkRequest(key=pb.ChunkKey(ino=ino, index=index), offset=0, length=info.chunk_size,
                                  cap=info.chunk_cap)
        reply = await self.view.data(server).read_chunk(req, 4 * self.timeout_s)
        after = await self.checksum(server, ino, index)
        if not reply.exists or after is None:
            return None
        if after != before:  # written while read: the bytes may be a mix
            raise FsError(errno.EAGAIN, f"chunk {ino}:{index} changed on data server {server} while read")
        return ChunkCopy(reply.data, after[0], after[1])

    async def write(self, server: int, info: pb.FileInfo, index: int, copy: ChunkCopy) -> None:
        """Replace the chunk on ``server`` by ``copy``, and check it stored the same checksum."""
        ino = info.attr.ino
        req = pb.WriteChunkRequest(key=pb.ChunkKey(ino=ino, index=index), offset=0, data=copy.data,
                                   truncate=True, cap=info.chunk_cap)
        await self.view.data(server).write_chunk(req, 4 * self.timeout_s)
        stored = await self.checksum(server, ino, index)
        if stored is None or (stored[1] == copy.algorithm and stored[0] != copy.checksum):
            raise FsError(errno.EIO, f"chunk {ino}:{index} copied to data server {server} does not verify "
                                     f"(stored {stored}, source {copy.checksum})")

    async def delete(self, server: int, ino: int, index: int) -> None:
        req = pb.DeleteChunksRequest(ino=ino, from_index=index, to_index=index + 1)
        await self.view.data(server).delete_chunks(req, 2 * self.timeout_s)

    async def fence(self, server: int, ino: int, hold_ns: int, admit: pb.ChunkCap | None = None) -> None:
        """Make ``server`` refuse writes to the file's chunks from capabilities signed before the hold
        ends, except ``admit`` (the mover's own)."""
        req = pb.FenceWritesRequest(ino=ino, hold_ns=hold_ns, admit_mac=admit.mac if admit is not None else b"")
        await self.view.data(server).fence_writes(req, self.timeout_s)

    async def chunk_count(self, server: int) -> int:
        return int((await self.view.data(server).stats(pb.Empty(), self.timeout_s)).chunks)
