"""File objects for the synchronous client: a raw file under Python's io stack.

``RawFile`` moves bytes to and from the cluster; ``io.BufferedReader``/
``BufferedWriter``/``BufferedRandom`` and ``io.TextIOWrapper`` on top give
buffering, read-ahead and text modes exactly as the built-in ``open`` does.

Writes to a chunked file are written behind: up to WRITE_BEHIND chunk
writes are in flight while the caller produces the next ones, and the file's
size on its shard is grown at ``flush()`` (and so at ``close()``). A write
is acknowledged (durable on every replica, visible to other clients) when
``flush()`` or ``close()`` returns, close-to-open as NFS; an error of a
background write is raised by the next write, flush or close. Bytes
written to the data servers and not yet sized are sized by a timer on the
client's loop within ``sizing.COMMIT_EVERY_S`` even if the caller neither
flushes nor closes: fsck treats older unsized bytes as garbage
(client/sizing.py). Reads land straight in the caller's buffer
(``readinto``: the chunk bytes come off the data server's socket into it);
reading on where the last read ended keeps READ_AHEAD windows of the same
size on their way (those are copied out once), and a random read starts
none. Random access is best done with ``buffering=0``.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import io
import os
import threading
from typing import TYPE_CHECKING, Any

from superfs.client.buffers import unzeroed
from superfs.client.nodes import Node, to_stat
from superfs.client.sizing import COMMIT_EVERY_S
from superfs.errors import oserror

if TYPE_CHECKING:
    from superfs.client.sync import Client

DEFAULT_BUFFER = 1 << 20
WRITE_BEHIND = 8  # chunk writes in flight per file
READ_AHEAD = 4    # reads in flight ahead of a sequential reader
READ_ALL_MAX = 16 << 20    # readall() reads at most this much at a time
READ_ALL_PROBE = 64 << 10  # and this much past the size it knows, to find whether the file grew


def parse_mode(mode: str) -> tuple[int, bool]:
    """open() mode string -> (os flags, binary)."""
    chars = set(mode)
    if len(mode) != len(chars) or not chars <= set("rwaxbt+") or len(chars & set("rwax")) != 1:
        raise ValueError(f"invalid mode: {mode!r}")
    if "b" in chars and "t" in chars:
        raise ValueError("can't have text and binary mode at once")
    plus = "+" in chars
    if "r" in chars:
        flags = os.O_RDWR if plus else os.O_RDONLY
    else:
        flags = (os.O_RDWR if plus else os.O_WRONLY) | os.O_CREAT
        flags |= {"w": os.O_TRUNC, "a": os.O_APPEND, "x": os.O_EXCL}[(chars & set("wax")).pop()]
    return flags, "b" in chars


class RawFile(io.RawIOBase):
    def __init__(self, client: "Client", node: Node, flags: int, path: str) -> None:
        super().__init__()
        self._client = client
        self._node = node
        self._flags = flags
        self.name = path
        self.mode = "rb" if flags & os.O_ACCMODE == os.O_RDONLY else "wb"
        self._pos = node.attr.size if flags & os.O_APPEND else 0
        self._end = node.attr.size  # largest end this handle wrote (or knew)
        self._dirty = False
        self._pending: list[tuple[int, int, concurrent.futures.Future[int]]] = []
        # The first failure of a background write. It poisons the handle: the
        # size is never grown over bytes that may not be on every replica,
        # and every later write, flush and close reports it.
        self._failed: BaseException | None = None
        # windows read ahead of a sequential reader: (offset, length, buffer, its read)
        self._ahead: list[tuple[int, int, memoryview, concurrent.futures.Future[int]]] = []
        self._next_seq = 0
        # _pending, _end, _dirty and _writes are shared with the sizer, on the client's loop
        self._state = threading.Lock()
        self._writes = 0
        self._sizer: concurrent.futures.Future[None] | None = None

    # -- io.RawIOBase protocol
    def readable(self) -> bool:
        return self._flags & os.O_ACCMODE in (os.O_RDONLY, os.O_RDWR)

    def writable(self) -> bool:
        return self._flags & os.O_ACCMODE in (os.O_WRONLY, os.O_RDWR)

    def seekable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        self._checkClosed()
        if not self.readable():
            raise io.UnsupportedOperation("file not open for reading")
        view = memoryview(buf).cast("B")
        self._drain()  # read your own writes
        n = self._read_into(self._pos, view)
        self._pos += n
        return n

    def _read_into(self, pos: int, view: memoryview) -> int:
        """Fill ``view`` from ``pos``: from a window read ahead if one starts there, else straight
        into ``view``. Reading on where the last read ended keeps READ_AHEAD windows on their way."""
        length = len(view)
        sequential = pos == self._next_seq
        ahead = self._ahead
        if ahead and ahead[0][0] == pos and ahead[0][1] == length:
            _, _, window, fut = ahead.pop(0)
            n = self._client.wait(fut)
            view[:n] = window[:n]
        else:
            self._drop_ahead()
            # within one chunk: this thread reads it itself; else (or on any trouble) the client's loop
            got = self._client.aio.read_into_now(self._node, pos, view)
            n = got if got is not None else self._client.run(self._client.aio.read_into(self._node, pos, view))
        self._next_seq = pos + n
        info = self._node.file
        if sequential and n == length and info is not None and not info.inline:
            size = self._size()
            nxt = ahead[-1][0] + length if ahead else pos + length
            while len(ahead) < READ_AHEAD and nxt < size:
                window = unzeroed(length)  # read_into writes every byte of it
                fut = self._client.submit(self._client.aio.read_into(self._node, nxt, window))
                ahead.append((nxt, length, window, fut))
                nxt += length
        return n

    def _drop_ahead(self) -> None:
        """Forget the windows read ahead (they finish on their own: their buffers are theirs)."""
        for _, _, _, fut in self._ahead:
            fut.add_done_callback(_quiet)
        self._ahead.clear()

    def readall(self) -> bytes:
        """The rest of the file, in reads as large as what is left of its known size (a small
        file costs a small buffer: zeroing a fixed 16 MiB one made each read() of a 64-byte file
        take milliseconds); past the known end, a small read finds whether it grew."""
        self._drain()
        chunks: list[bytes] = []
        while True:
            left = self._size() - self._pos
            buf = bytearray(min(left, READ_ALL_MAX) if left > 0 else READ_ALL_PROBE)
            n = self._read_into(self._pos, memoryview(buf))
            if not n:
                return b"".join(chunks)
            self._pos += n
            chunks.append(bytes(buf[:n]) if n < len(buf) else bytes(buf))

    def write(self, buf: Any) -> int:
        self._checkClosed()
        if not self.writable():
            raise io.UnsupportedOperation("file not open for writing")
        data = memoryview(buf).cast("B")
        if self._failed is not None:
            raise oserror(errno.EIO, f"an earlier write to this file failed: {self._failed}")
        if self._flags & os.O_APPEND:
            self._pos = max(self._end, self._node.attr.size)
        self._drop_ahead()  # it may hold bytes this write replaces
        self._reap(block=False)
        info = self._node.file
        start = self._pos
        if info is not None and not info.inline and len(data) >= info.chunk_size // 4:
            # write behind: wait only for overlapping or too many writes
            end = start + len(data)
            while self._pending and (len(self._pending) >= WRITE_BEHIND or
                                     any(s < end and start < e for s, e, _ in self._pending)):
                self._reap(block=True)
            fut = self._client.submit(
                self._client.aio.write_at(self._node, start, bytes(data), defer_size=True))
            with self._state:
                self._pending.append((start, end, fut))
                self._wrote(end)
        else:
            self._drain()
            end = self._client.run(self._client.aio.write_at(self._node, start, data, defer_size=True))
            with self._state:
                self._wrote(end)
        self._pos = end
        chunked = self._node.file is not None and not self._node.file.inline
        if chunked and self._sizer is None:  # inline bytes are sized by the write itself
            self._sizer = self._client.submit(self._size_soon())
        return len(data)

    def _wrote(self, end: int) -> None:
        """(under _state) a write up to ``end`` is pushed or on its way."""
        if end > self._end:
            self._end = end
        self._dirty = True
        self._writes += 1

    async def _size_soon(self) -> None:
        """On the client's loop: size what was pushed within COMMIT_EVERY_S, flushed or not.

        Only bytes whose writes have all completed are sized (never a size
        over bytes that may not be on every replica); a failed write stops
        it, and the caller's next call reports the failure.
        """
        try:
            while True:
                await asyncio.sleep(COMMIT_EVERY_S)
                with self._state:
                    if not self._dirty or self._failed is not None:
                        return
                    pending = [f for _, _, f in self._pending]
                    end, writes = self._end, self._writes
                for fut in pending:
                    await asyncio.wrap_future(fut)
                await self._client.aio.commit_size(self._node, end)
                with self._state:
                    if self._writes == writes:
                        self._dirty = False
                        return
        except asyncio.CancelledError:
            raise
        except BaseException:  # noqa: BLE001 - the caller's next write, flush or close reports it
            return
        finally:
            self._sizer = None

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._checkClosed()
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self._size() + offset
        else:
            raise ValueError(f"invalid whence ({whence})")
        if pos < 0:
            raise OSError(22, "Invalid argument")
        self._pos = pos
        return pos

    def tell(self) -> int:
        return self._pos

    def truncate(self, size: int | None = None) -> int:
        self._checkClosed()
        if not self.writable():
            raise io.UnsupportedOperation("file not open for writing")
        self.flush()
        size = self._pos if size is None else size
        self._client.run(self._client.aio.truncate_node(self._node, size))
        self._end = size
        return size

    def _reap(self, block: bool) -> None:
        """Collect finished background writes (the oldest, waiting, if block)."""
        while self._pending and (block or self._pending[0][2].done()):
            with self._state:
                _, _, fut = self._pending.pop(0)
            block = False
            try:
                self._client.wait(fut)
            except BaseException as e:
                self._failed = self._failed or e
                self._drain(raise_errors=False)
                raise

    def _drain(self, raise_errors: bool = True) -> None:
        """Wait for every background write; raise the first error."""
        first: BaseException | None = None
        while self._pending:
            with self._state:
                _, _, fut = self._pending.pop(0)
            try:
                self._client.wait(fut)
            except BaseException as e:  # noqa: BLE001 - reported below
                first = first or e
        if first is not None:
            self._failed = self._failed or first
        if self._failed is not None and raise_errors:
            raise oserror(errno.EIO, f"an earlier write to this file failed: {self._failed}")

    def flush(self) -> None:
        if self.closed:
            return
        self._drain()
        with self._state:
            dirty, end, writes = self._dirty, self._end, self._writes
        if dirty:
            self._client.run(self._client.aio.commit_size(self._node, end))
            with self._state:
                if self._writes == writes:
                    self._dirty = False

    def close(self) -> None:
        if not self.closed:
            try:
                self.flush()
            finally:
                if self._sizer is not None:
                    self._sizer.cancel()
                self._drop_ahead()
                self._drain(raise_errors=False)
                super().close()

    def fileno(self) -> int:
        raise io.UnsupportedOperation("SuperFS files have no OS file descriptor (use a FUSE mount)")

    # -- extras
    def fsync(self) -> None:
        """Everything written is on disk once flushed (durable mode)."""
        self.flush()

    def fstat(self) -> os.stat_result:
        self.flush()
        self._client.run(self._client.aio.refresh_node(self._node))
        return to_stat(self._node.attr)

    @property
    def chunk_size(self) -> int:
        return self._client.layout.chunk_size or DEFAULT_BUFFER

    def _size(self) -> int:
        return max(self._end, self._node.attr.size)


def wrap(raw: RawFile, binary: bool, buffering: int, encoding: str | None, errors: str | None,
         newline: str | None) -> Any:
    """The io stack built-in open() would build on ``raw``."""
    if buffering == 0:
        if not binary:
            raise ValueError("can't have unbuffered text I/O")
        return raw
    size = buffering if buffering > 1 else max(DEFAULT_BUFFER, raw.chunk_size)
    if raw.readable() and raw.writable():
        buffered: Any = io.BufferedRandom(raw, size)
    elif raw.writable():
        buffered = io.BufferedWriter(raw, size)
    else:
        buffered = io.BufferedReader(raw, size)
    if binary:
        return buffered
    return io.TextIOWrapper(buffered, encoding=encoding or "utf-8", errors=errors, newline=newline,
                            line_buffering=buffering == 1)


def _quiet(fut: "concurrent.futures.Future[Any]") -> None:
    """A dropped window's failure is nobody's news."""
    if not fut.cancelled():
        fut.exception()
