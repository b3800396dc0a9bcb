"""Client: the synchronous facade over AsyncFs, for scripts and notebooks.

The asyncio client runs on a private event loop in a daemon thread; each
call here submits a coroutine to it and waits with a timeout, so a call can
never hang forever even if a daemon does.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import os
import posixpath
import stat as stat_mod
import threading
from typing import Any, Coroutine, Iterator, TypeVar

from superfs.client.fileobj import RawFile, parse_mode, wrap
from superfs.client.fs import AsyncFs, DirEntry
from superfs.client.layout import ClusterLayout
from superfs.client.meta import Creds
from superfs.client.nodes import Node
from superfs.errors import FsError, oserror

T = TypeVar("T")


class Client:
    """A synchronous connection to a SuperFS cluster, with an os-like API."""

    def __init__(self, dir_address: str, *, timeout_s: float = 5.0, creds: Creds | None = None,
                 umask: int = 0o022) -> None:
        self.timeout_s = timeout_s
        # an operation fans out into several RPCs, each bounded by timeout_s
        self.op_timeout_s = max(60.0, 12 * timeout_s)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="superfs-client", daemon=True)
        self._thread.start()
        self._fs = AsyncFs(dir_address, timeout_s=timeout_s, creds=creds, umask=umask)
        self._closed = False
        try:
            self.run(self._fs.start())
        except BaseException:
            self.close()
            raise

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` (a call of :attr:`aio`) on the client's loop and wait for it, at most
        ``op_timeout_s`` (then ETIMEDOUT); FsError becomes the OSError the kernel would raise."""
        if self._closed:
            coro.close()
            raise ValueError("client is closed")
        return self.wait(asyncio.run_coroutine_threadsafe(coro, self._loop))

    def submit(self, coro: Coroutine[Any, Any, T]) -> "concurrent.futures.Future[T]":
        """Start ``coro`` on the client's loop without waiting (write-behind, read-ahead); see :meth:`wait`."""
        if self._closed:
            coro.close()
            raise ValueError("client is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def wait(self, fut: "concurrent.futures.Future[T]") -> T:
        """The result of a :meth:`submit`, as :meth:`run` gives it."""
        try:
            return fut.result(self.op_timeout_s)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise oserror(errno.ETIMEDOUT, "operation timed out") from None
        except FsError as e:
            raise oserror(e.errno, e.message) from None

    def close(self) -> None:
        if self._closed:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._fs.close(), self._loop).result(10)
        except Exception:  # noqa: BLE001 - closing anyway
            pass
        self._closed = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def aio(self) -> AsyncFs:
        """The underlying asyncio client (use it only from its own loop)."""
        return self._fs

    @property
    def creds(self) -> Creds:
        return self._fs.creds

    @property
    def layout(self) -> ClusterLayout:
        """Inline threshold, chunk size, replicas and data servers of the cluster (see AsyncFs.layout)."""
        return self._fs.layout

    def node_of(self, path: str, *, follow_symlinks: bool = True) -> Node:
        """The node at ``path``; a file's carries its FileInfo (size, layout, chunk size)."""
        return self.run(self._fs.node_of(path, follow_symlinks=follow_symlinks))

    # ------------------------------------------------------------------ files

    def open(self, path: str, mode: str = "r", buffering: int = -1, encoding: str | None = None,
             errors: str | None = None, newline: str | None = None) -> Any:
        """Like built-in open(): modes r, w, a, x with + and b/t."""
        flags, binary = parse_mode(mode)
        node: Node = self.run(self._fs.open_node(path, flags))
        if node.is_dir:
            raise oserror(errno.EISDIR, "", path)
        raw = RawFile(self, node, flags, path)
        return wrap(raw, binary, buffering, encoding, errors, newline)

    def read_bytes(self, path: str) -> bytes:
        with self.open(path, "rb", buffering=0) as f:  # one read of the whole file: no buffer between
            return f.read()

    def write_bytes(self, path: str, data: bytes) -> int:
        with self.open(path, "wb") as f:
            return f.write(data)

    # ------------------------------------------------------------ os-like API

    def stat(self, path: str, *, follow_symlinks: bool = True) -> os.stat_result:
        return self.run(self._fs.stat(path, follow_symlinks=follow_symlinks))

    def lstat(self, path: str) -> os.stat_result:
        return self.run(self._fs.lstat(path))

    def exists(self, path: str) -> bool:
        return self.run(self._fs.exists(path))

    def isdir(self, path: str) -> bool:
        try:
            return self.stat(path).st_mode & 0o170000 == 0o040000
        except FileNotFoundError:
            return False

    def isfile(self, path: str) -> bool:
        try:
            return self.stat(path).st_mode & 0o170000 == 0o100000
        except FileNotFoundError:
            return False

    def mkdir(self, path: str, mode: int = 0o777) -> None:
        self.run(self._fs.mkdir(path, mode))

    def makedirs(self, path: str, mode: int = 0o777, exist_ok: bool = False) -> None:
        self.run(self._fs.makedirs(path, mode, exist_ok))

    def rmdir(self, path: str) -> None:
        self.run(self._fs.rmdir(path))

    def listdir(self, path: str = "/") -> list[str]:
        return self.run(self._fs.listdir(path))

    def scandir(self, path: str = "/") -> list[DirEntry]:
        return self.run(self._fs.scandir(path))

    def walk(self, top: str = "/", topdown: bool = True) -> Iterator[tuple[str, list[str], list[str]]]:
        """Like os.walk (symlinks to directories are not followed)."""
        try:
            entries = self.scandir(top)
        except OSError:
            return
        dirs = [e.name for e in entries if e.is_dir()]
        files = [e.name for e in entries if not e.is_dir()]
        if topdown:
            yield top, dirs, files
        for d in dirs:
            yield from self.walk(posixpath.join(top, d), topdown)
        if not topdown:
            yield top, dirs, files

    def unlink(self, path: str) -> None:
        self.run(self._fs.unlink(path))

    remove = unlink

    def rename(self, src: str, dst: str, *, flags: int = 0) -> None:
        """os.rename; ``flags`` as renameat2(2): RENAME_NOREPLACE (1) or RENAME_EXCHANGE (2)."""
        self.run(self._fs.rename(src, dst, flags=flags))

    def replace(self, src: str, dst: str) -> None:
        self.run(self._fs.replace(src, dst))

    def link(self, src: str, dst: str) -> None:
        self.run(self._fs.link(src, dst))

    def symlink(self, target: str, path: str) -> None:
        """Like os.symlink(src, dst): ``path`` will point at ``target``."""
        self.run(self._fs.symlink(path, target))

    def mknod(self, path: str, mode: int = 0o600 | stat_mod.S_IFREG, device: int = 0) -> None:
        """As os.mknod: a regular file, FIFO, socket, or (root only) device node."""
        self.run(self._fs.mknod(path, mode, device))

    def mkfifo(self, path: str, mode: int = 0o666) -> None:
        self.run(self._fs.mkfifo(path, mode))

    def readlink(self, path: str) -> str:
        return self.run(self._fs.readlink(path))

    def chmod(self, path: str, mode: int, *, follow_symlinks: bool = True) -> None:
        self.run(self._fs.chmod(path, mode, follow_symlinks=follow_symlinks))

    def chown(self, path: str, uid: int, gid: int, *, follow_symlinks: bool = True) -> None:
        self.run(self._fs.chown(path, uid, gid, follow_symlinks=follow_symlinks))

    def utime(self, path: str, times: tuple[float, float] | None = None, *,
              ns: tuple[int, int] | None = None, follow_symlinks: bool = True) -> None:
        self.run(self._fs.utime(path, times, ns=ns, follow_symlinks=follow_symlinks))

    def truncate(self, path: str, length: int) -> None:
        self.run(self._fs.truncate(path, length))

    def getxattr(self, path: str, name: str, *, follow_symlinks: bool = True) -> bytes:
        return self.run(self._fs.getxattr(path, name, follow_symlinks=follow_symlinks))

    def setxattr(self, path: str, name: str, value: bytes, flags: int = 0, *,
                 follow_symlinks: bool = True) -> None:
        self.run(self._fs.setxattr(path, name, value, flags, follow_symlinks=follow_symlinks))

    def listxattr(self, path: str, *, follow_symlinks: bool = True) -> list[str]:
        return self.run(self._fs.listxattr(path, follow_symlinks=follow_symlinks))

    def removexattr(self, path: str, name: str, *, follow_symlinks: bool = True) -> None:
        self.run(self._fs.removexattr(path, name, follow_symlinks=follow_symlinks))

    def statfs(self) -> dict[str, int]:
        return self.run(self._fs.statfs())
