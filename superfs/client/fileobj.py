"""File objects for the synchronous client: a raw file under Python's io stack.

``RawFile`` moves bytes to and from the cluster; ``io.BufferedReader``/
``BufferedWriter``/``BufferedRandom`` and ``io.TextIOWrapper`` on top give
buffering, read-ahead and text modes exactly as the built-in ``open`` does.

A chunked file's size on its shard is grown at ``flush()`` (and so at
``close()``), not on every write: written bytes are durable on the data
servers when ``write`` returns, and become visible to other clients at
flush, close-to-open as NFS.
"""
from __future__ import annotations

import io
import os
from typing import TYPE_CHECKING, Any

from superfs.client.nodes import Node, to_stat

if TYPE_CHECKING:
    from superfs.client.sync import Client

DEFAULT_BUFFER = 1 << 20


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
        data = self._client._run(self._client._fs.read_at(self._node, self._pos, len(view)))
        n = len(data)
        view[:n] = data
        self._pos += n
        return n

    def readall(self) -> bytes:
        chunks = []
        while True:
            data = self._client._run(self._client._fs.read_at(self._node, self._pos, 16 << 20))
            if not data:
                return b"".join(chunks)
            self._pos += len(data)
            chunks.append(data)

    def write(self, buf: Any) -> int:
        self._checkClosed()
        if not self.writable():
            raise io.UnsupportedOperation("file not open for writing")
        data = memoryview(buf).cast("B")
        if self._flags & os.O_APPEND:
            self._pos = max(self._end, self._node.attr.size)
        end = self._client._run(self._client._fs.write_at(self._node, self._pos, data, defer_size=True))
        self._pos = end
        if end > self._end:
            self._end = end
        self._dirty = True
        return len(data)

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
        self._client._run(self._client._truncate_node(self._node, size))
        self._end = size
        return size

    def flush(self) -> None:
        if self._dirty and not self.closed:
            self._client._run(self._client._fs.commit_size(self._node, self._end))
            self._dirty = False

    def close(self) -> None:
        if not self.closed:
            try:
                self.flush()
            finally:
                super().close()

    def fileno(self) -> int:
        raise io.UnsupportedOperation("SuperFS files have no OS file descriptor (use a FUSE mount)")

    # -- extras
    def fsync(self) -> None:
        """Everything written is on disk once flushed (durable mode)."""
        self.flush()

    def fstat(self) -> os.stat_result:
        self._client._run(self._client._fs.refresh_node(self._node))
        return to_stat(self._node.attr)

    def _size(self) -> int:
        return max(self._end, self._node.attr.size)


def wrap(raw: RawFile, binary: bool, buffering: int, encoding: str | None, errors: str | None,
         newline: str | None) -> Any:
    """The io stack built-in open() would build on ``raw``."""
    if buffering == 0:
        if not binary:
            raise ValueError("can't have unbuffered text I/O")
        return raw
    size = buffering if buffering > 1 else DEFAULT_BUFFER
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
