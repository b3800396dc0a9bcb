"""SuperFsStorage: checkpoints on a SuperFS cluster through the client library (no mount needed).

URLs: ``superfs://HOST:PORT/dir`` (the dir server's address) or
``superfs:///dir`` (the local cluster ``superfs up`` started). One
asyncio client per cluster address runs on its own event loop thread in
each process and is shared by every storage object for that address.

Data files are written with many chunk writes in flight at once (bounded
by ``MAX_INFLIGHT`` bytes, which also bounds memory), each a whole chunk,
placed by ``placement.balanced_chunk_map``; sizes are committed once at
close. A new file is first grown to its final size so SuperFS turns it
into a chunked file with a layout before the first byte is written:
that is when its placement becomes known.

Bytes move on SuperFS's byte path without a copy in this process: a write
is sent from the caller's memoryview (the tensor's own buffer), a read
lands in the destination buffer (``AsyncFs.read_into``), and each chunk is
sent once, to its first replica, which chains it to the others.
"""
from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import errno
import logging
import math
import os
import threading
import uuid
from typing import Any, Coroutine, TypeVar

from ckpt.placement import FilePlacement, balanced_chunk_map, placement_of
from ckpt.storage import SUPERFS_SCHEME, FileReader, FileWriter, Storage

log = logging.getLogger(__name__)

T = TypeVar("T")
# Enough chunk writes in flight to keep every data server busy, few enough that a queued one
# finishes well inside the RPC deadline when W ranks share a small cluster.
MAX_INFLIGHT = 64 << 20
MAX_IO = 64 << 20  # the client's largest single read or write
# Checkpoint traffic is bulk: a 4 MiB chunk write queued behind others on a busy data server
# may take seconds, which is not a failure. A dead server still fails fast (connection refused).
RPC_TIMEOUT_S = 30.0
# Chunk reads and writes are idempotent, so a transient EIO/ETIMEDOUT (a daemon too busy to
# finish a connection handshake in time) is retried a few times before it fails the save.
RETRY_DELAYS_S = (0.2, 1.0, 3.0)
TRANSIENT = (errno.EIO, errno.ETIMEDOUT)


async def with_retries(what: str, make: Any) -> Any:
    """Await ``make()``; on a transient error, try again after each of RETRY_DELAYS_S."""
    for delay in RETRY_DELAYS_S + (None,):
        try:
            return await make()
        except OSError as e:
            if delay is None or e.errno not in TRANSIENT:
                raise
            log.warning("%s failed (%s); retrying in %.1f s", what, e, delay)
            await asyncio.sleep(delay)


def open_async_fs(address: str | None) -> tuple[str, Any]:
    """(dir server address, AsyncFs) with the address and credentials ``superfs.connect`` would use.

    With no address: the local cluster (its cluster file's address, token
    and TLS); with one, the client finds credentials by address or in
    SUPERFS_TOKEN.
    """
    from superfs.client import AsyncFs, resolve, security_scope

    address, security, _ = resolve(address)
    with security_scope(security):  # the AsyncFs's channels pick their credentials up here
        return address, AsyncFs(address, timeout_s=RPC_TIMEOUT_S)


class Connection:
    """An AsyncFs on a private event loop thread; coroutines are submitted from any thread."""

    def __init__(self, address: str | None) -> None:
        self.address, self.fs = open_async_fs(address)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="ckpt-superfs", daemon=True)
        self.thread.start()
        try:
            self.run(self.fs.start())
        except BaseException:
            self.close()
            raise

    def submit(self, coro: Coroutine[Any, Any, T]) -> "concurrent.futures.Future[T]":
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.submit(coro).result()

    def close(self) -> None:
        if self.loop.is_running():
            try:
                self.run(self.fs.close())
            except Exception:  # noqa: BLE001 - closing anyway
                pass
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


_connections: dict[str, Connection] = {}
_connections_lock = threading.Lock()


def connection(address: str | None) -> Connection:
    key = address or ""
    with _connections_lock:
        conn = _connections.get(key)
        if conn is None or not conn.thread.is_alive():
            conn = _connections[key] = Connection(address)
        return conn


@atexit.register
def _close_all() -> None:
    with _connections_lock:
        for conn in _connections.values():
            conn.close()
        _connections.clear()


class SuperFsFileWriter(FileWriter):
    def __init__(self, conn: Connection, path: str, size: int) -> None:
        self.conn = conn
        self.path = path
        fs = conn.fs
        self.node = conn.run(fs.open_node(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL))
        self.placement: FilePlacement | None = None
        if size > fs.layout.inline_threshold:
            conn.run(fs.truncate(path, size))  # becomes chunked now, with its layout
            self.node = conn.run(fs.open_node(path, os.O_WRONLY))
            self.placement = placement_of(fs, self.node)
        if self.placement is not None:
            self.chunk_size = self.placement.chunk_size
            self.chunk_map = balanced_chunk_map(math.ceil(size / self.chunk_size), self.placement)
        self._cond = threading.Condition()
        self._limit = max(MAX_INFLIGHT, 2 * self.chunk_size)
        self._inflight = 0
        self._error: BaseException | None = None
        self._end = 0
        self._server_bytes: dict[int, int] = {}

    def write_at(self, offset: int, data: memoryview) -> None:
        n = len(data)
        with self._cond:
            while self._inflight and self._inflight + n > self._limit and self._error is None:
                self._cond.wait()
            if self._error is not None:
                raise self._error
            self._inflight += n
        self._end = max(self._end, offset + n)
        if self.placement is not None:
            for s in self.placement.servers_of(offset // self.placement.chunk_size):
                self._server_bytes[s] = self._server_bytes.get(s, 0) + n
        fs, node = self.conn.fs, self.node
        fut = self.conn.submit(with_retries(f"write of {self.path} at {offset}",
                                            lambda: fs.write_at(node, offset, data, defer_size=True)))
        fut.add_done_callback(lambda f: self._done(f, n))

    def _done(self, fut: "concurrent.futures.Future[int]", n: int) -> None:
        with self._cond:
            self._inflight -= n
            if self._error is None and not fut.cancelled() and fut.exception() is not None:
                self._error = fut.exception()
            self._cond.notify_all()

    def _drain(self) -> None:
        with self._cond:
            while self._inflight:
                self._cond.wait()

    def close(self) -> None:
        self._drain()
        if self._error is not None:
            raise self._error
        self.conn.run(self.conn.fs.commit_size(self.node, self._end))

    def abort(self) -> None:
        self._drain()

    @property
    def server_bytes(self) -> dict[int, int]:
        return dict(self._server_bytes)


class SuperFsFileReader(FileReader):
    def __init__(self, conn: Connection, path: str) -> None:
        self.conn = conn
        self.path = path
        self.node = conn.run(conn.fs.open_node(path, os.O_RDONLY))

    @property
    def size(self) -> int:
        return int(self.node.attr.size)

    async def _read(self, offset: int, buf: memoryview) -> int:
        done = 0
        while done < len(buf):
            pos, want = offset + done, min(MAX_IO, len(buf) - done)
            dest = buf[done:done + want]
            got = await with_retries(f"read of {self.path} at {pos}",
                                     lambda: self.conn.fs.read_into(self.node, pos, dest))
            if not got:
                break
            done += got
        return done

    def read_into(self, offset: int, buf: memoryview) -> int:
        return self.conn.run(self._read(offset, memoryview(buf).cast("B")))

    def read_many(self, requests: list[tuple[int, memoryview]]) -> list[int]:
        async def all_of() -> list[int]:
            return list(await asyncio.gather(*(self._read(o, memoryview(b).cast("B")) for o, b in requests)))

        return self.conn.run(all_of())


class SuperFsStorage(Storage):
    def __init__(self, address: str | None, root: str) -> None:
        self.conn = connection(address)
        self.fs = self.conn.fs
        self.root = "/" + root.strip("/")
        self.url = f"{SUPERFS_SCHEME}{address or ''}{self.root}"

    @staticmethod
    def from_url(url: str) -> "SuperFsStorage":
        rest = url[len(SUPERFS_SCHEME):]
        host, _, path = rest.partition("/")
        return SuperFsStorage(host or None, "/" + path)

    def _p(self, path: str) -> str:
        return f"{self.root.rstrip('/')}/{path}" if path else self.root

    def makedirs(self, path: str) -> None:
        self.conn.run(self.fs.makedirs(self._p(path), exist_ok=True))

    def listdir(self, path: str) -> list[str]:
        return self.conn.run(self.fs.listdir(self._p(path)))

    def exists(self, path: str) -> bool:
        return self.conn.run(self.fs.exists(self._p(path)))

    def read_bytes(self, path: str) -> bytes:
        r = SuperFsFileReader(self.conn, self._p(path))
        buf = bytearray(r.size)
        n = r.read_into(0, memoryview(buf))
        return bytes(buf[:n])

    async def _write_small(self, path: str, data: bytes) -> None:
        fs = self.fs
        tmp = f"{path}.tmp-{uuid.uuid4().hex[:12]}"
        node = await fs.open_node(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        try:
            view = memoryview(data)
            for off in range(0, len(view), MAX_IO):
                await fs.write_at(node, off, view[off:off + MAX_IO], defer_size=True)
            await fs.commit_size(node, len(view))
            await fs.replace(tmp, path)
        except BaseException:
            try:
                await fs.unlink(tmp)
            except OSError:
                pass
            raise

    def write_atomic(self, path: str, data: bytes) -> None:
        self.conn.run(self._write_small(self._p(path), data))

    def create(self, path: str, size: int) -> FileWriter:
        return SuperFsFileWriter(self.conn, self._p(path), size)

    def open(self, path: str) -> FileReader:
        return SuperFsFileReader(self.conn, self._p(path))

    def remove(self, path: str) -> None:
        self.conn.run(self.fs.unlink(self._p(path)))

    async def _remove_tree(self, path: str) -> None:
        try:
            entries = await self.fs.scandir(path)
        except FileNotFoundError:
            return
        await asyncio.gather(*(self._remove_tree(e.path) for e in entries if e.is_dir()))
        await asyncio.gather(*(self.fs.unlink(e.path) for e in entries if not e.is_dir()))
        try:
            await self.fs.rmdir(path)
        except FileNotFoundError:
            pass

    def remove_tree(self, path: str) -> None:
        self.conn.run(self._remove_tree(self._p(path)))
