"""Open files: write-back buffering, read-ahead, and the handles that share them.

All handles of one inode in this mount share one :class:`OpenFile`, so that
what one descriptor wrote is what another reads, and ``stat`` sees the size
the writes made, before anything reaches the servers:

* **Writes** are gathered in memory (contiguous writes coalesce into one
  extent) until the buffer holds a cluster chunk's worth, then pushed with
  ``DataIO.write(..., defer_size=True)`` while the next chunks fill: up to
  ``WRITE_BEHIND`` pushes of a chunked file are in flight at once (never two
  that overlap), so the byte path and the data servers' group flushes stay
  busy; a small file is pushed once, as one ``WriteInline``, when it is closed. ``flush``
  (every close), ``fsync`` and ``release`` push what is left and commit the
  size on the shard: close-to-open consistency, as NFS. A write error found
  by a background push is reported by the next write, flush or fsync.
  Bytes pushed and not yet sized are sized within ``sizing.COMMIT_EVERY_S``
  even if the file stays open and idle (the rest of the buffer is pushed
  first): fsck treats older unsized bytes as garbage (client/sizing.py).
* **Reads** never see older bytes than this mount wrote: a small (inline)
  file is read once, whole, kept in memory with this mount's writes applied,
  and served from there. A chunked file's dirty data is pushed first; read
  sequentially, it is fetched in windows ahead of the reader (``RA_AHEAD``
  of them), so the kernel's requests (up to 1 MiB) are served from memory
  while the next windows are on their way; a window is read straight into
  its buffer and replies are views of it (pyfuse3 copies them to the kernel
  once). Each handle is its own sequential stream, and the
  windows are shared: readers at different places in one file (a data
  loader's workers) each keep their windows. A window is never cancelled,
  only forgotten (least recently used first), because another reader may be
  waiting for it.

Cached bytes live as long as the OpenFile (while any handle is open) and are
dropped when an ``open`` finds the file changed on the servers.

Permission is checked when a file is opened (by the kernel, with
default_permissions, and by the mount against the servers' current mode),
as POSIX has it: a descriptor opened for writing keeps writing after a
chmod, and a file created with mode 0444 is written through the descriptor
that created it (git's objects, cp of read-only files). So a push, read or
size commit the servers refuse for the caller's uid is sent again as root:
the open already authorised it (:func:`as_opened`).
"""
from __future__ import annotations

import asyncio
import errno
import logging
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, TypeVar


from superfs.client.buffers import unzeroed
from superfs.client.data import DataIO
from superfs.client.meta import SET_MTIME_NOW, Creds, MetaOps
from superfs.client.sizing import COMMIT_EVERY_S
from superfs.client.nodes import Node
from superfs.errors import FsError
from superfs.fuse.creds import ROOT
from superfs.v1 import superfs_pb2 as pb

T = TypeVar("T")

log = logging.getLogger(__name__)

MAX_EXTENTS = 64            # more scattered writes than this: push them
MAX_PUSH = 16 << 20         # push at least this often, whatever the chunk size
RA_MIN_WINDOW = 1 << 20     # read-ahead window bounds
RA_MAX_WINDOW = 8 << 20
RA_AHEAD = 2                # windows fetched ahead of a sequential reader
RA_WINDOWS_PER_READER = RA_AHEAD + 1  # windows kept per open handle (the one read and those ahead), LRU
RA_MAX_WINDOWS = 16
WRITE_BEHIND = 8            # pushes of one chunked file in flight at once
RA_TRIGGER = 128 * 1024     # a first read this big (the kernel's read-ahead size) starts read-ahead


@dataclass
class Extent:
    offset: int
    data: bytearray

    @property
    def end(self) -> int:
        return self.offset + len(self.data)


async def as_opened(op: Callable[[Creds], Awaitable[T]], creds: Creds) -> T:
    """``op(creds)``; if the servers refuse it, ``op`` as root (the open authorised it).

    Trying the caller first keeps what the servers do differently for a
    non-root writer (dropping setuid on write).
    """
    try:
        return await op(creds)
    except FsError as e:
        if e.errno not in (errno.EACCES, errno.EPERM) or creds == ROOT:
            raise
        first = e
    log.debug("refused for uid %d (%s): the open authorised it, retrying as root", creds.uid, first)
    try:
        return await op(ROOT)
    except FsError as e:
        if e.errno in (errno.EACCES, errno.EPERM):
            # this mount's credential may not act as root (a single-user
            # token): the caller's own refusal is the honest answer
            raise first from None
        raise


class OpenFile:
    """One inode's open state in this mount, shared by all its handles."""

    def __init__(self, node: Node, data: DataIO, meta: MetaOps, chunk_size: int, inline_threshold: int) -> None:
        self.node = node
        self.ino = node.ino
        self._data = data
        self._meta = meta
        self.chunk_size = max(chunk_size, 1 << 16)
        self.push_at = min(self.chunk_size, MAX_PUSH)
        self.inline_threshold = inline_threshold
        self.handles = 0
        self.lock = asyncio.Lock()          # orders buffer changes and pushes
        self.extents: list[Extent] = []
        self.buffered = 0
        self.dirty_end = 0                  # end of the furthest byte written and not committed
        self.mtime_ns = 0                   # time of the last buffered write
        self.writer: Creds | None = None    # whose write is pending (pushed with these creds)
        self.unsized = False                # chunk bytes pushed, size/mtime not yet committed
        self._pushes: dict[asyncio.Task[None], tuple[int, int]] = {}  # in flight -> byte range
        self._sizer: asyncio.Task[None] | None = None  # sizes pushed bytes of an idle open file
        self._error: FsError | None = None  # a background push failed: report it once
        self.inline_bytes: bytes | None = None   # the whole content of an inline file
        # security.capability, asked by the kernel before every write: known since the last open
        self.caps: bytes | None = None
        self.caps_known = False
        self._windows: dict[int, asyncio.Task[memoryview]] = {}  # read-ahead, least recently used first

    # ------------------------------------------------------------- state

    @property
    def dirty(self) -> bool:
        return bool(self.extents) or bool(self._pushes) or self.unsized

    def local_size(self) -> int:
        """The size including bytes written here and not yet on the shard."""
        return max(self.node.attr.size, self.dirty_end)

    def refresh(self, fresh: Node) -> None:
        """Take the servers' newer view of the file (only while not dirty)."""
        self.caps_known = False  # close-to-open: setcap done elsewhere is seen by the next open
        old = self.node.attr
        same = (old.generation, old.size, old.mtime_ns) == (
            fresh.attr.generation, fresh.attr.size, fresh.attr.mtime_ns)
        self.node.attr = fresh.attr
        self.node.file = fresh.file
        if not same:
            self.drop_cache()
        info = fresh.file
        if info is not None and info.inline and (info.data or not fresh.attr.size):
            # bytes came with the reply; a file grown by truncate has an implicit zero tail
            self.inline_bytes = bytes(info.data) + bytes(max(0, fresh.attr.size - len(info.data)))

    def _patch_cache(self, offset: int, buf: bytes) -> None:
        """Keep a small file's cached bytes equal to what the shard will hold after the push.

        Read-after-write of small files is common (editors, config files,
        databases): patching the copy spares a fetch after every flush.
        """
        self._windows.clear()
        data = self.inline_bytes
        info = self.node.file
        if data is None or info is None or not info.inline or offset + len(buf) > self.inline_threshold:
            self.inline_bytes = None
            return
        b = bytearray(data)
        if offset > len(b):
            b.extend(bytes(offset - len(b)))  # a gap reads as zeros, as the shard fills it
        b[offset:offset + len(buf)] = buf
        self.inline_bytes = bytes(b)

    def drop_cache(self) -> None:
        # windows in flight finish for whoever awaits them (a read that began
        # before the change); nobody new finds them
        self.inline_bytes = None
        self._windows.clear()

    # ------------------------------------------------------------ writes

    async def write(self, offset: int, buf: bytes, creds: Creds) -> int:
        async with self.lock:
            await self._reap_done()
            self._raise_pending_error()
            self._patch_cache(offset, buf)
            self.writer = creds
            self._add_extent(offset, buf)
            self.dirty_end = max(self.dirty_end, offset + len(buf))
            self.mtime_ns = time.time_ns()
            if self.buffered >= self.push_at or len(self.extents) > MAX_EXTENTS:
                await self._start_push()
        return len(buf)

    def _add_extent(self, offset: int, buf: bytes) -> None:
        last = self.extents[-1] if self.extents else None
        if last is not None and last.offset <= offset <= last.end:
            # appending (the common case) or overwriting the tail of the last extent
            rel = offset - last.offset
            last.data[rel:rel + len(buf)] = buf
            self.buffered = sum(len(e.data) for e in self.extents)
            return
        self.extents.append(Extent(offset, bytearray(buf)))
        self.buffered += len(buf)

    async def _start_push(self) -> None:
        """Hand the buffer to a background push: at once, unless too many are in flight, one of them
        overlaps it, or the file is still inline (the first push may move it to chunks)."""
        extents, self.extents, self.buffered = self.extents, [], 0
        lo = min(e.offset for e in extents)
        hi = max(e.end for e in extents)
        info = self.node.file
        chunked = info is not None and not info.inline
        while self._pushes and (not chunked or len(self._pushes) >= WRITE_BEHIND
                                or any(a < hi and lo < b for a, b in self._pushes.values())):
            await self._wait_one()
        creds = self.writer
        assert creds is not None
        task = asyncio.create_task(self._push_extents(extents, creds))
        self._pushes[task] = (lo, hi)

    async def _wait_one(self) -> None:
        """Wait for the oldest push in flight; keep its error for the caller."""
        task = next(iter(self._pushes))
        try:
            await task
        except FsError as e:
            self._error = self._error or e
        except Exception as e:  # noqa: BLE001 - kept for the caller, logged by operations
            log.error("write-back of inode %d failed: %r", self.ino, e)
            self._error = self._error or FsError(errno.EIO, f"write-back failed: {e!r}")
        finally:
            self._pushes.pop(task, None)

    async def _wait_push(self) -> None:
        """Wait for every push in flight."""
        while self._pushes:
            await self._wait_one()

    async def _reap_done(self) -> None:
        """Collect the pushes that ended (their errors are reported by the next write)."""
        while self._pushes and next(iter(self._pushes)).done():
            await self._wait_one()

    def _raise_pending_error(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    async def _push_extents(self, extents: list[Extent], creds: Creds) -> None:
        for ext in extents:
            before_inline = self.node.file is not None and self.node.file.inline
            view = memoryview(ext.data)
            await as_opened(lambda c: self._data.write(self.node, ext.offset, view, c, defer_size=True), creds)
            if not (before_inline and self.node.file is not None and self.node.file.inline):
                self.unsized = True  # chunk bytes: the shard's size and mtime follow at commit
                if self._sizer is None or self._sizer.done():
                    self._sizer = asyncio.create_task(self._size_soon())

    async def flush(self) -> None:
        """Push everything buffered and commit size and mtime (close, fsync)."""
        async with self.lock:
            if self.extents:
                await self._start_push()
            await self._wait_push()
            self._raise_pending_error()
            if self.unsized:
                await self._commit()
            self.dirty_end = 0

    async def _size_soon(self) -> None:
        """Size what was pushed within COMMIT_EVERY_S, whether or not anyone flushes."""
        while True:
            await asyncio.sleep(COMMIT_EVERY_S)
            async with self.lock:
                if not self.unsized:
                    return
                if self.extents:
                    await self._start_push()  # the size must not cover bytes still only here
                await self._wait_push()
                if self._error is not None:
                    return  # never size over a failed push; the next write, flush or fsync reports it
                if not self.unsized:
                    return
                try:
                    await self._commit()
                except FsError as e:
                    self._error = e
                    return
                except Exception as e:  # noqa: BLE001 - kept for the caller, like a push's error
                    log.error("size commit of inode %d failed: %r", self.ino, e)
                    self._error = FsError(errno.EIO, f"size commit failed: {e!r}")
                    return
                self.dirty_end = 0
                if not self.unsized:
                    return

    async def _commit(self) -> None:
        creds = self.writer
        assert creds is not None
        node = self.node
        before = node.attr.generation
        end = self.dirty_end
        await as_opened(lambda c: self._data.commit_size(node, end, c), creds)
        if node.attr.generation == before:
            # an overwrite inside the file's size: the shard's size did not
            # move, but mtime (and so other mounts' caches) must
            attr = await as_opened(lambda c: self._meta.setattr(node.ino, c, mask=SET_MTIME_NOW), creds)
            node.attr.CopyFrom(attr)
        self.unsized = False

    # ------------------------------------------------------------- reads

    async def read(self, offset: int, size: int, creds: Creds, cursor: "ReadCursor") -> bytes | memoryview:
        """Bytes at ``offset``; ``cursor`` is the reading handle's sequential position."""
        if self.dirty:
            data, info = self.inline_bytes, self.node.file
            if data is not None and info is not None and info.inline:
                return data[offset:offset + size]  # a small file's bytes, our writes included
            await self.flush()
        info = self.node.file
        if info is None:
            raise FsError(errno.EIO, f"inode {self.ino} has no file record")
        file_size = info.attr.size
        if offset >= file_size or size <= 0:
            return b""
        size = min(size, file_size - offset)
        if info.inline:
            return await self._read_inline(offset, size, creds)
        # read-ahead once reads follow each other, or a big read starts the file
        # (a database reading its header must not pull in megabytes)
        sequential = offset == cursor.next_seq or (offset == 0 and size >= RA_TRIGGER)
        cursor.next_seq = offset + size
        if not sequential:
            return await as_opened(lambda c: self._data.read(info, offset, size, c), creds)
        return await self._read_ahead(info, offset, size, creds)

    async def _read_inline(self, offset: int, size: int, creds: Creds) -> bytes:
        data = self.inline_bytes
        if data is None:
            fresh = await self._meta.get_file(self.ino, creds, want_data=True)
            self.refresh(fresh)
            info = self.node.file
            assert info is not None
            if not info.inline:  # converted meanwhile by another client
                return await as_opened(lambda c: self._data.read(info, offset, size, c), creds)
            data = self.inline_bytes = bytes(info.data)
        if len(data) < self.node.attr.size:
            data = self.inline_bytes = data + bytes(self.node.attr.size - len(data))  # grown by truncate
        return data[offset:offset + size]

    def _window_size(self) -> int:
        return min(max(self.chunk_size, RA_MIN_WINDOW), RA_MAX_WINDOW)

    async def _fetch(self, info: pb.FileInfo, start: int, length: int, creds: Creds) -> memoryview:
        """One window, read straight into its own buffer."""
        buf = unzeroed(length)  # read_into writes every byte of it, and we keep [:n]
        n = await as_opened(lambda c: self._data.read_into(info, start, buf, c), creds)
        return buf[:n]

    def _window(self, info: pb.FileInfo, idx: int, wsize: int, creds: Creds) -> "asyncio.Task[memoryview]":
        task = self._windows.pop(idx, None)
        if task is None:
            start = idx * wsize
            length = min(wsize, info.attr.size - start)
            task = asyncio.ensure_future(self._fetch(info, start, length, creds))
            task.add_done_callback(_retrieve)  # a window nobody reads must not warn when it fails
        self._windows[idx] = task  # now the most recently used
        keep = min(RA_MAX_WINDOWS, RA_WINDOWS_PER_READER * max(1, self.handles) + 1)
        while len(self._windows) > keep:
            del self._windows[next(iter(self._windows))]
        return task

    async def _read_ahead(self, info: pb.FileInfo, offset: int, size: int, creds: Creds) -> bytes | memoryview:
        wsize = self._window_size()
        first, last = offset // wsize, (offset + size - 1) // wsize
        for ahead in range(last + 1, last + 1 + RA_AHEAD):
            if ahead * wsize < info.attr.size:
                self._window(info, ahead, wsize, creds)  # the next windows, ahead of the reader
        tasks = [self._window(info, i, wsize, creds) for i in range(first, last + 1)]
        try:
            # one by one, not gather(): a window already fetched is then taken
            # without a trip round the event loop
            parts = [await task for task in tasks]
        except Exception:
            for i, task in zip(range(first, last + 1), tasks):
                if self._windows.get(i) is task:
                    del self._windows[i]  # a failed window is fetched again next time
            raise
        rel = offset - first * wsize
        if len(parts) == 1:
            return parts[0][rel:rel + size]  # a view: pyfuse3 copies it to the kernel
        return b"".join(parts)[rel:rel + size]


def _retrieve(task: "asyncio.Task[memoryview]") -> None:
    if not task.cancelled():
        task.exception()


class ReadCursor:
    """Where one reader reads next, to tell sequential reading from random."""

    next_seq: int = -1


@dataclass
class FileHandle(ReadCursor):
    """One open file description (what the kernel calls ``fh``), and its read position."""

    fh: int
    ino: int
    flags: int
    creds: Creds
    file: OpenFile


class HandleTable:
    """Open file handles and the OpenFile each inode shares between them."""

    def __init__(self) -> None:
        self._next = 1
        self.handles: dict[int, FileHandle] = {}
        self.files: dict[int, OpenFile] = {}

    def open_file(self, ino: int) -> OpenFile | None:
        return self.files.get(ino)

    def add(self, of: OpenFile, flags: int, creds: Creds) -> FileHandle:
        self.files[of.ino] = of
        of.handles += 1
        fh = self._next
        self._next += 1
        h = FileHandle(fh, of.ino, flags, creds, of)
        self.handles[fh] = h
        return h

    def get(self, fh: int) -> FileHandle:
        try:
            return self.handles[fh]
        except KeyError:
            raise FsError(errno.EBADF, f"no open file handle {fh}") from None

    def remove(self, fh: int) -> tuple[FileHandle, bool]:
        """Forget a handle; True if it was the inode's last one here."""
        h = self.handles.pop(fh)
        of = h.file
        of.handles -= 1
        last = of.handles <= 0
        if last and self.files.get(of.ino) is of:
            del self.files[of.ino]
            of.drop_cache()
        return h, last

    def is_open(self, ino: int) -> bool:
        return ino in self.files

    def local_size(self, ino: int) -> tuple[int, int] | None:
        """(size, mtime_ns) including unpushed writes, if this mount has any."""
        of = self.files.get(ino)
        if of is None or not of.dirty or not of.dirty_end:
            return None
        return of.local_size(), of.mtime_ns or of.node.attr.mtime_ns
