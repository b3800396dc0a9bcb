"""File bytes: inline in the shard record, or chunks replicated on data servers.

A file starts inline (its bytes in the shard record: one round trip to
create, write or read a small file). A write that would take it past the
cluster's inline threshold moves it to chunks: the client copies the inline
bytes to chunk 0 on the data servers first, and only then asks the shard to
drop them (ConvertToChunked, guarded by the file's generation), so a crash
in between loses nothing.

Chunk bytes travel on the data servers' byte path (``chunk_io``): a
write goes to a chunk's first replica, which forwards it along the chain of
the others as it arrives, and is acknowledged when every replica has it on
disk; a read lands straight in the caller's buffer (:meth:`DataIO.read_into`). The shard's recorded size is grown after
the chunks are written (SetSize), so a reader never sees a size whose bytes
are not there yet; the same call reports which chunks were written, and the
shard records them with the file.

Reads use that record: a chunk it lists as never written is a hole, read as
zeros without asking any data server. Any other chunk is read from its first
replica, falling over to the next on EIO (a checksum failure the server
could not repair from another replica), an unreachable server, or "no such
chunk" (a replica that missed it must not hide one that has it). A chunk the record says was written and no replica
has is lost: EIO, never zeros.

A file's layout can change while it is open (superfs/rebalance moves its
chunks to other servers): a chunk that no replica of the cached layout has,
and a write that a server the file is leaving refuses with ESTALE (its write
fence), make the client fetch the file's record and go on with its current
layout.

Every chunk read or write carries the file's chunk capability (the rights
its shard found for the caller, in every FileInfo it sends). One that lacks
the right needed, or that a data server found expired (ESTALE), is replaced
by a fresh one from the file's shard (one GetFile), and the call is retried
once.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import time
from typing import Awaitable, Callable, Iterable, TypeVar

from superfs import chunkranges, routing
from superfs.client.chunk_io import ChunkIO
from superfs.client.meta import SET_SIZE, Creds, MetaOps
from superfs.client.nodes import Node
from superfs.errors import FsError
from superfs.faults import pause_point
from superfs.perms import R_OK, W_OK
from superfs.rpc.cluster_map import ClusterView
from superfs.v1 import superfs_pb2 as pb

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_IO = 64 * 1024 * 1024  # one read or write call moves at most this much
STALE_RETRIES = 40  # ESTALE answers taken (about 15 s of a mover's fence) before giving up


def _ranges(rs: Iterable[pb.ChunkRange]) -> chunkranges.Ranges:
    return tuple((r.start, r.end) for r in rs)


def _set_written(info: pb.FileInfo, ranges: Iterable[tuple[int, int]]) -> None:
    del info.written[:]
    info.written.extend(pb.ChunkRange(start=a, end=b) for a, b in ranges)


class ChunkLost(FsError):
    """EIO: the file's record says a chunk was written, and no replica has it."""

    def __init__(self, ino: int, index: int) -> None:
        super().__init__(errno.EIO, f"chunk {index} of inode {ino} was written but no replica has it")
        self.index = index


class DataIO:
    def __init__(self, cluster: ClusterView, meta: MetaOps) -> None:
        self.cluster = cluster
        self.meta = meta
        self.chunk_io = ChunkIO(cluster)

    @property
    def timeout(self) -> float:
        return self.cluster.timeout_s

    # ----------------------------------------------------------- capabilities

    async def _chunk_cap(self, info: pb.FileInfo, want: int, creds: Creds, *, fresh: bool = False) -> pb.ChunkCap:
        """``info``'s chunk capability, fetched anew if asked or if it lacks ``want``."""
        cap = info.chunk_cap
        if fresh or not cap.mac or cap.rights & want != want:
            current = (await self.meta.get_file(info.attr.ino, creds)).file
            assert current is not None
            cap = current.chunk_cap
            info.chunk_cap.CopyFrom(cap)
            if not info.inline and list(current.layout) != list(info.layout):
                # the mover switched it (superfs/rebalance): the new servers from now on
                del info.layout[:]
                info.layout.extend(current.layout)
            if cap.rights & want != want:
                raise FsError(errno.EACCES, "permission denied: may not " + ("write" if want & W_OK else "read")
                              + f" inode {info.attr.ino}")
        return cap

    async def _with_chunk_cap(self, info: pb.FileInfo, want: int, creds: Creds,
                              op: Callable[[pb.ChunkCap], Awaitable[T]]) -> T:
        """``op(cap)``; again with a fresh capability (and layout) if a data server found it
        expired, or fenced while the file's chunks move (superfs/dataserver/write_fences.py)."""
        cap = await self._chunk_cap(info, want, creds)
        pause = 0.02
        for _ in range(STALE_RETRIES):
            try:
                return await op(cap)
            except FsError as e:
                if e.errno != errno.ESTALE:
                    raise
            cap = await self._chunk_cap(info, want, creds, fresh=True)
            await asyncio.sleep(pause)  # a fence holds for seconds at most
            pause = min(pause * 2, 0.5)
        return await op(cap)

    # ------------------------------------------------------------------ reads

    async def read(self, info: pb.FileInfo, offset: int, length: int, creds: Creds) -> bytes:
        """Up to ``length`` bytes at ``offset`` (short at EOF); holes read as zeros."""
        if length < 0 or offset < 0:
            raise FsError(errno.EINVAL, "negative offset or length")
        length = min(length, MAX_IO, max(0, info.attr.size - offset))
        if length <= 0:
            return b""
        if info.inline:
            return await self._read_inline(info, offset, length, creds)
        buf = bytearray(length)
        n = await self.read_into(info, offset, memoryview(buf), creds)
        return bytes(buf) if n == length else bytes(buf[:n])

    async def read_into(self, info: pb.FileInfo, offset: int, view: memoryview, creds: Creds) -> int:
        """Read into ``view`` (a writable buffer: bytearray, numpy array) at ``offset``; the bytes read.

        Short only at EOF. Chunk bytes land in ``view`` as they come off the
        socket, no copy in between.
        """
        if offset < 0:
            raise FsError(errno.EINVAL, "negative offset")
        view = view.cast("B") if view.format != "B" or view.ndim != 1 else view
        length = min(len(view), MAX_IO, max(0, info.attr.size - offset))
        if length <= 0:
            return 0
        if info.inline:
            data = await self._read_inline(info, offset, length, creds)
            view[:len(data)] = data
            return len(data)
        ino = info.attr.ino
        for _ in range(length // info.chunk_size + 2):
            try:
                await self._read_chunks(info, offset, view[:length], creds)
                return length
            except ChunkLost as lost:
                # our view may predate a truncate that made the chunk a hole: the shard decides
                fresh = (await self.meta.get_file(ino, creds)).file
                assert fresh is not None
                if list(fresh.layout) != list(info.layout):  # moved meanwhile (superfs/rebalance)
                    del info.layout[:]
                    info.layout.extend(fresh.layout)
                    continue
                if fresh.written_state == pb.WRITTEN_EXACT and chunkranges.covers(_ranges(fresh.written), lost.index):
                    raise
                _set_written(info, chunkranges.subtract(_ranges(info.written), (lost.index, lost.index + 1)))
        raise FsError(errno.EIO, f"inode {ino}: chunks kept vanishing while being read")

    async def _read_inline(self, info: pb.FileInfo, offset: int, length: int, creds: Creds) -> bytes:
        ino = info.attr.ino
        req = pb.ReadInlineRequest(ino=ino, offset=offset, length=length, creds=creds.pb())
        reply = await self.cluster.home_shard(ino).read_inline(req)
        return reply.data

    async def _read_chunks(self, info: pb.FileInfo, offset: int, view: memoryview, creds: Creds) -> None:
        length = len(view)
        cs = info.chunk_size
        first, last = offset // cs, (offset + length - 1) // cs
        pieces = [(idx, max(offset, idx * cs) - idx * cs, max(offset, idx * cs) - offset,
                   min(offset + length, (idx + 1) * cs) - max(offset, idx * cs)) for idx in range(first, last + 1)]
        known = info.written_state != pb.WRITTEN_UNKNOWN
        written = _ranges(info.written)
        wanted = [p for p in pieces if not known or chunkranges.covers(written, p[0])]
        if len(wanted) < len(pieces):
            for idx, _, at, n in pieces:
                if known and not chunkranges.covers(written, idx):
                    view[at:at + n] = bytes(n)  # a hole: zeros, without a data-server call
        if wanted:  # a read of holes only needs neither a capability nor a data server
            async def read_all(cap: pb.ChunkCap) -> None:
                if len(wanted) == 1:
                    idx, off, at, n = wanted[0]
                    await self._read_chunk(info, idx, off, view[at:at + n], cap)
                    return
                await asyncio.gather(*(self._read_chunk(info, idx, off, view[at:at + n], cap)
                                       for idx, off, at, n in wanted))

            await self._with_chunk_cap(info, R_OK, creds, read_all)

    def read_into_now(self, info: pb.FileInfo, offset: int, view: memoryview) -> int | None:
        """A read within one written chunk, done on the calling thread (not the event loop's): no
        hop to the loop and to a byte worker. None when it cannot be done so (an inline file, a
        hole, several chunks, no usable capability, no byte path, any failure): then the caller
        reads with :meth:`read_into`, which handles all of those."""
        cap = info.chunk_cap
        if info.inline or not cap.mac or not cap.rights & R_OK or cap.expires_ns < time.time_ns() + 1_000_000_000:
            return None
        length = min(len(view), max(0, info.attr.size - offset))
        cs = info.chunk_size
        if length <= 0 or offset < 0 or offset // cs != (offset + length - 1) // cs:
            return None
        index, off = divmod(offset, cs)
        if info.written_state == pb.WRITTEN_UNKNOWN or not chunkranges.covers(_ranges(info.written), index):
            return None
        ino = info.attr.ino
        replicas = self._read_order(ino, index, list(info.layout))
        try:
            got = self.chunk_io.read_into_now(replicas[0], ino, index, off, view[:length], cap, replicas[1:])
        except FsError:
            return None
        if got is None or not got[0]:
            return None
        n = got[1]
        if n < length:
            view[n:length] = bytes(length - n)  # a short chunk inside the file: the rest is a hole
        return length

    def _read_order(self, ino: int, index: int, layout: list[int]) -> list[int]:
        return routing.read_order(ino, self.cluster.replicas_of(ino, index, layout), self.chunk_io.on_this_host)

    async def _read_chunk(self, info: pb.FileInfo, index: int, off: int, view: memoryview, cap: pb.ChunkCap) -> None:
        ino = info.attr.ino
        length = len(view)
        last_err: FsError | None = None
        replicas = self._read_order(ino, index, list(info.layout))
        missing = 0
        for sid in replicas:
            try:
                exists, n = await self.chunk_io.read_into(sid, ino, index, off, view,
                                                          cap, [p for p in replicas if p != sid])
            except FsError as e:
                if e.errno in (errno.EACCES, errno.ESTALE):
                    raise  # the capability, not this replica: every replica would say the same
                log.warning("read of chunk %d/%d from data server %d failed: %s", ino, index, sid, e)
                last_err = e
                continue
            if not exists:
                missing += 1  # this replica may have missed it: ask the next
                continue
            if n < length:  # a short chunk inside the file: the rest is a hole
                view[n:] = bytes(length - n)
            return
        if missing == len(replicas) and info.written_state == pb.WRITTEN_SUPERSET:
            raise ChunkLost(ino, index)  # read() asks the shard: moved (a new layout) or a hole
        if missing and info.written_state != pb.WRITTEN_EXACT:
            # a healthy replica does not have it and the shard cannot say it was written: a hole
            # (as every read was before the shard recorded writes)
            view[:] = bytes(length)
            return
        if missing == len(replicas):
            raise ChunkLost(ino, index)
        raise FsError(errno.EIO, f"no replica of chunk {index} of inode {ino} is readable") from last_err

    # ----------------------------------------------------------------- writes

    async def write(self, node: Node, offset: int, data: bytes | memoryview, creds: Creds,
                    *, defer_size: bool = False) -> int:
        """Write ``data`` at ``offset``; returns the new end (offset + len).

        With ``defer_size`` the shard's size of a chunked file is not grown
        here: the caller does it with :meth:`commit_size` at flush time.
        """
        if offset < 0:
            raise FsError(errno.EINVAL, "negative offset")
        n = len(data)
        if n > MAX_IO:
            raise FsError(errno.EINVAL, f"write of {n} bytes is larger than {MAX_IO}")
        if n == 0:
            return offset
        info = node.file
        assert info is not None
        end = offset + n
        threshold = self.cluster.map.inline_threshold
        if info.inline and end <= threshold:
            req = pb.WriteInlineRequest(ino=info.attr.ino, offset=offset, data=bytes(data), creds=creds.pb())
            try:
                attr = await self.cluster.home_shard(info.attr.ino).write_inline(req)
                info.attr.CopyFrom(attr)
                return end
            except FsError as e:
                if e.errno != errno.EFBIG:
                    raise
                await self._refresh(node, creds)
        if node.file is not None and node.file.inline:
            await self.convert(node, creds)
        info = node.file
        assert info is not None
        view = memoryview(data).cast("B")
        seen = info.attr.generation  # the view this write is based on (a shrink since may cut it)
        await self._with_chunk_cap(info, W_OK, creds, lambda cap: self._write_chunks(info, offset, view, cap))
        self._wrote(node, info, chunkranges.of_bytes(offset, n, info.chunk_size), seen)
        if not defer_size:
            await self.commit_size(node, end, creds)
        return end

    async def _write_chunks(self, info: pb.FileInfo, offset: int, data: memoryview, cap: pb.ChunkCap) -> None:
        """Every piece to its chunk's replicas: sent once, to the first, which chains it on."""
        cs = info.chunk_size
        ino = info.attr.ino
        jobs = []
        pos = 0
        while pos < len(data):
            idx, off = divmod(offset + pos, cs)
            take = min(cs - off, len(data) - pos)
            replicas = self.cluster.replicas_of(ino, idx, list(info.layout))
            jobs.append(self.chunk_io.write(replicas, ino, idx, off, data[pos:pos + take], cap, cs))
            pos += take
        await asyncio.gather(*jobs)

    @staticmethod
    def _wrote(node: Node, info: pb.FileInfo, chunks: tuple[int, int], seen_generation: int) -> None:
        """Chunks written (on every replica): to report at commit, and readable here from now on."""
        node.unreported_generation = (seen_generation if not node.unreported
                                      else min(node.unreported_generation, seen_generation))
        node.unreported.append(chunks)
        if info.written_state != pb.WRITTEN_UNKNOWN:
            _set_written(info, chunkranges.add(_ranges(info.written), [chunks], limit=1 << 30)[0])

    async def commit_size(self, node: Node, end: int, creds: Creds) -> None:
        """Grow the shard's size to ``end`` and report the chunks written since the last commit."""
        info = node.file
        assert info is not None
        if info.inline or (end <= info.attr.size and not node.unreported):
            return
        reported = len(node.unreported)
        written = [pb.ChunkRange(start=a, end=b) for a, b in chunkranges.normalize(node.unreported)]
        req = pb.SetSizeRequest(ino=info.attr.ino, size=end, creds=creds.pb(), written=written,
                                reports_written=True, seen_generation=node.unreported_generation)
        attr = await self.cluster.home_shard(info.attr.ino).set_size(req)
        info.attr.CopyFrom(attr)
        del node.unreported[:reported]  # writes that finished meanwhile go with the next commit

    async def _refresh(self, node: Node, creds: Creds) -> None:
        fresh = await self.meta.get_file(node.ino, creds, want_data=True)
        node.file = fresh.file
        node.attr = fresh.attr

    async def convert(self, node: Node, creds: Creds) -> None:
        """Move an inline file to chunks without a window that could lose bytes."""
        for _ in range(5):
            layout = self.cluster.active_data_server_ids()
            if not layout:
                raise FsError(errno.ENOSPC, "the cluster has no active data servers for files above the inline "
                                            "threshold")
            chunk_size = self.cluster.map.chunk_size
            await self._refresh(node, creds)
            info = node.file
            assert info is not None
            if not info.inline:
                return
            if info.attr.size and not info.chunk_cap.rights & R_OK:
                # its bytes did not come with the reply: moving nothing would lose them
                raise FsError(errno.EACCES, f"inode {node.ino}: may not read the bytes to move them to chunks")
            staged = pb.FileInfo(attr=info.attr, inline=False, layout=layout, chunk_size=chunk_size,
                                 chunk_cap=info.chunk_cap)
            if info.data:
                # the inline file's capability already covers its chunks: they are written first
                await self._with_chunk_cap(staged, W_OK, creds,
                                           lambda cap: self._write_chunks(staged, 0, memoryview(info.data), cap))
            req = pb.ConvertRequest(ino=node.ino, creds=creds.pb(), layout=layout,
                                    expect_generation=info.attr.generation, chunk_size=chunk_size)
            try:
                converted = await self.cluster.home_shard(node.ino).convert_to_chunked(req)
            except FsError as e:
                if e.errno == errno.EAGAIN:
                    continue  # someone wrote meanwhile: copy again
                if e.errno == errno.ESTALE:  # a server of our map is being drained: a newer map
                    await self.cluster.refresh()
                    continue
                raise
            node.file = converted
            node.attr = converted.attr
            return
        raise FsError(errno.EAGAIN, "file kept changing while being moved to chunks")

    # --------------------------------------------------------------- truncate

    async def truncate(self, node: Node, size: int, creds: Creds) -> pb.Attr:
        """Set the file's size. The shard cuts the chunks past a smaller size itself, in order,
        before it answers; nothing here touches chunks (a cut from here, after the answer,
        could cut what another client wrote since)."""
        if size < 0:
            raise FsError(errno.EINVAL, "negative size")
        try:
            attr = await self.meta.setattr(node.ino, creds, mask=SET_SIZE, size=size)
        except FsError as e:
            if e.errno != errno.EFBIG:
                raise
            await self.convert(node, creds)
            attr = await self.meta.setattr(node.ino, creds, mask=SET_SIZE, size=size)
        pause_point("client.truncate.after_setattr")
        node.attr = attr
        if node.file is not None:
            old_size = node.file.attr.size
            node.file.attr.CopyFrom(attr)
            if node.file.inline:
                node.file.data = b""  # cut or grown: the cached bytes are stale
            elif size < old_size:
                self._cut_written(node, node.file, size)
        return attr

    @staticmethod
    def _cut_written(node: Node, info: pb.FileInfo, size: int) -> None:
        """Mirror what the shard did to the written chunks when the file shrank to ``size``."""
        end = chunkranges.chunks_below(size, info.chunk_size)
        if size == 0:
            info.written_state = pb.WRITTEN_EXACT
        _set_written(info, chunkranges.cut(_ranges(info.written), end))
        # our own unreported writes past the end are gone (their generation stays: another
        # client's cut may have hit them too; at worst the record stops claiming to be exact)
        node.unreported[:] = list(chunkranges.cut(chunkranges.normalize(node.unreported), end))
