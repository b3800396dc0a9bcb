"""File systems behind a path: local files, or SuperFS through ``superfs.client``.

Paths are URLs so that a task shipped to another process knows where to
read: ``superfs://HOST:PORT/dir/file`` (a cluster by its dir server),
``superfs:///dir/file`` (the local cluster ``superfs up`` started; its state
directory from $SUPERFS_STATE_DIR or the default), ``file:///dir`` or a
plain local path. One SuperFS client per process and cluster is kept open.

Reads of SuperFS files are counted as local or remote: a byte is local when
the data server it is read from is the one the running worker sits beside
(``ReadAccounting.data_server``, set by the task runner).
"""
from __future__ import annotations

import io
import logging
import os
import posixpath
import shutil
import threading
from dataclasses import dataclass
from typing import Any, BinaryIO

log = logging.getLogger(__name__)

SCHEME = "superfs://"


@dataclass(frozen=True)
class FileInfo:
    url: str
    size: int


class ReadAccounting(threading.local):
    """Bytes read by the current task, by locality (thread-local: one task per thread)."""

    def __init__(self) -> None:
        self.reset(None)

    def reset(self, data_server: int | None) -> None:
        self.data_server = data_server
        self.local = 0
        self.remote = 0


ACCOUNTING = ReadAccounting()


class FileSystem:
    """The operations readers, writers and shuffles need."""

    def url(self, path: str) -> str:
        raise NotImplementedError

    def open_read(self, path: str, raw: bool = False) -> BinaryIO:
        """A binary reader; ``raw`` ones read exactly what is asked (no read-ahead past a split)."""
        raise NotImplementedError

    def open_write(self, path: str) -> BinaryIO:
        raise NotImplementedError

    def size(self, path: str) -> int:
        raise NotImplementedError

    def exists(self, path: str) -> bool:
        raise NotImplementedError

    def isdir(self, path: str) -> bool:
        raise NotImplementedError

    def listdir(self, path: str) -> list[str]:
        raise NotImplementedError

    def makedirs(self, path: str) -> None:
        raise NotImplementedError

    def rename(self, src: str, dst: str) -> None:
        raise NotImplementedError

    def remove(self, path: str) -> None:
        raise NotImplementedError

    def rmtree(self, path: str) -> None:
        raise NotImplementedError

    def chunks(self, path: str) -> Any:
        """The SuperFS chunk map of a file (None on local files)."""
        return None

    def list_files(self, path: str) -> list[FileInfo]:
        """The file itself, or every data file under a directory (names starting with _ or . skipped)."""
        if not self.exists(path):
            raise FileNotFoundError(f"[PATH_NOT_FOUND] Path does not exist: {self.url(path)}")
        if not self.isdir(path):
            return [FileInfo(self.url(path), self.size(path))]
        out: list[FileInfo] = []
        for name in sorted(self.listdir(path)):
            if name.startswith("_") or name.startswith("."):
                continue
            child = posixpath.join(path, name) if "/" in path else os.path.join(path, name)
            if self.isdir(child):
                out.extend(self.list_files(child))
            else:
                out.append(FileInfo(self.url(child), self.size(child)))
        return out


class LocalFileSystem(FileSystem):
    def url(self, path: str) -> str:
        return os.path.abspath(path)

    def open_read(self, path: str, raw: bool = False) -> BinaryIO:
        return open(path, "rb", buffering=0 if raw else -1)

    def open_write(self, path: str) -> BinaryIO:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        return open(path, "wb")

    def size(self, path: str) -> int:
        return os.path.getsize(path)

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def isdir(self, path: str) -> bool:
        return os.path.isdir(path)

    def listdir(self, path: str) -> list[str]:
        return os.listdir(path)

    def makedirs(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)

    def rename(self, src: str, dst: str) -> None:
        os.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
        os.replace(src, dst)

    def remove(self, path: str) -> None:
        os.unlink(path)

    def rmtree(self, path: str) -> None:
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.unlink(path)


class CountingReader(io.RawIOBase):
    """A SuperFS file that counts bytes read by the data server they come from."""

    def __init__(self, raw: Any, chunks: Any) -> None:
        super().__init__()
        self._raw = raw
        self._chunks = chunks
        self.name = getattr(raw, "name", "")

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def readinto(self, buf: Any) -> int:
        pos = self._raw.tell()
        n = self._raw.readinto(buf)
        if n:
            self._count(pos, n)
        return n

    def read(self, size: int = -1) -> bytes:
        """Exactly ``size`` bytes unless the file ends first (one call may move at most 64 MiB)."""
        if size is None or size < 0:
            return self.readall()
        parts = []
        while size > 0:
            piece = super().read(size)
            if not piece:
                break
            parts.append(piece)
            size -= len(piece)
        return b"".join(parts)

    def _count(self, pos: int, n: int) -> None:
        chunks = self._chunks
        acc = ACCOUNTING
        if chunks is None or chunks.inline or not chunks.chunk_size:
            acc.remote += n
            return
        end = pos + n
        cs = chunks.chunk_size
        while pos < end:
            upto = min(end, (pos // cs + 1) * cs)
            if acc.data_server is not None and chunks.server_of(pos) == acc.data_server:
                acc.local += upto - pos
            else:
                acc.remote += upto - pos
            pos = upto

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            super().close()


class SuperFileSystem(FileSystem):
    def __init__(self, address: str | None, client: Any) -> None:
        self.address = address
        self.client = client
        self._chunk_cache: dict[str, Any] = {}

    def url(self, path: str) -> str:
        return f"{SCHEME}{self.address or ''}{path}"

    def chunks(self, path: str) -> Any:
        from chukonu.placement import file_chunks
        return file_chunks(self.client, path)

    def open_read(self, path: str, raw: bool = False) -> BinaryIO:
        chunks = self.chunks(path)
        counting = CountingReader(self.client.open(path, "rb", buffering=0), chunks)
        if raw:
            return counting  # type: ignore[return-value]
        return io.BufferedReader(counting, 1 << 20)  # type: ignore[return-value]

    def open_write(self, path: str) -> BinaryIO:
        self.makedirs(posixpath.dirname(path))
        return self.client.open(path, "wb")

    def size(self, path: str) -> int:
        return int(self.client.stat(path).st_size)

    def exists(self, path: str) -> bool:
        return bool(self.client.exists(path))

    def isdir(self, path: str) -> bool:
        return bool(self.client.isdir(path))

    def listdir(self, path: str) -> list[str]:
        return list(self.client.listdir(path))

    def makedirs(self, path: str) -> None:
        if path and path != "/":
            self.client.makedirs(path, exist_ok=True)

    def rename(self, src: str, dst: str) -> None:
        self.makedirs(posixpath.dirname(dst))
        self.client.replace(src, dst)

    def remove(self, path: str) -> None:
        self.client.unlink(path)

    def rmtree(self, path: str) -> None:
        if not self.exists(path):
            return
        if not self.isdir(path):
            self.client.unlink(path)
            return
        for top, dirs, files in list(self.client.walk(path, topdown=False)):
            for f in files:
                self.client.unlink(posixpath.join(top, f))
            self.client.rmdir(top)


_clients: dict[tuple[int, str], Any] = {}
_clients_lock = threading.Lock()


def superfs_client(address: str | None) -> Any:
    """This process's client for the cluster at ``address`` (None: the local cluster)."""
    key = (os.getpid(), address or "")
    with _clients_lock:
        c = _clients.get(key)
        if c is None:
            import superfs
            if address:
                c = superfs.connect(address)
            else:
                c = superfs.connect(None, state_dir=os.environ.get("SUPERFS_STATE_DIR"))
            _clients[key] = c
        return c


def close_clients() -> None:
    with _clients_lock:
        for c in _clients.values():
            try:
                c.close()
            except Exception:  # noqa: BLE001 - closing anyway
                pass
        _clients.clear()


def is_superfs(url: str) -> bool:
    return url.startswith(SCHEME)


def resolve(url: str) -> tuple[FileSystem, str]:
    """The file system of ``url`` and the path within it."""
    if url.startswith(SCHEME):
        rest = url[len(SCHEME):]
        slash = rest.find("/")
        address, path = (rest, "/") if slash < 0 else (rest[:slash], rest[slash:])
        return SuperFileSystem(address or None, superfs_client(address or None)), path or "/"
    if url.startswith("file://"):
        url = url[len("file://"):]
    return LocalFileSystem(), os.path.abspath(url)


def join(url: str, *parts: str) -> str:
    if url.startswith(SCHEME):
        return posixpath.join(url, *parts)
    return os.path.join(url, *parts)


def dirname(url: str) -> str:
    return posixpath.dirname(url) if url.startswith(SCHEME) else os.path.dirname(url)
