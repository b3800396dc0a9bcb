"""The client side of a session: one connection to one daemon, every call of a process on it.

:meth:`Session.call` sends a CALL frame and waits for its REPLY; many calls
are in flight at once, frames queued in one loop turn leave in one write.
The connection is opened on first use and again whenever it is lost:

- after a reconnect to the same daemon process (same boot id), every call
  still waiting is sent again; the daemon answers a mutation it already
  applied with its first answer (superfs/rpc/server.py), so nothing is done
  twice and nobody is told a change failed that was made;
- after the daemon restarted (another boot id), reads are sent again, and so
  are mutations that never left this process; a mutation that was on the wire
  when the daemon went down fails with EIO saying its outcome is unknown (the
  daemon's answer table died with it);
- when the daemon cannot be reached, calls fail at once with EIO, except
  mutations already sent, which wait for it until their deadline.

A connection that says nothing for ``DEAD_AFTER_S`` while calls wait (a
stopped daemon, a cut link) is dropped; the calls then end as above, never
later than their deadline. A mutation's deadline is passed to the daemon a
little shorter than the caller's: the daemon refuses to start it after that
(superfs/lmdb_store.py), so a caller told ETIMEDOUT while the daemon was
reachable was told the truth. The daemon may call this process back
(``handlers``: method -> coroutine taking and returning message bytes).
"""
from __future__ import annotations

import asyncio
import errno
import logging
import os
import ssl
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping

from superfs.errors import FsError
from superfs.rpc import frames
from superfs.rpc.methods import METHODS
from superfs.v1 import session_pb2 as spb

log = logging.getLogger(__name__)

PING_EVERY_S = 1.0
DEAD_AFTER_S = 3.0
CONNECT_TIMEOUT_S = 3.0
MUTATION_MARGIN_S = 0.25       # the daemon's deadline for a mutation is this much (at most 20%) shorter
MAX_FRAME = 256 * 1024 * 1024  # replies come from trusted daemons; bounded all the same

Handler = Callable[[bytes], Awaitable[bytes]]


class CallNotSent(FsError):
    """The call never left this process: its daemon could not be reached. Sending it
    elsewhere (the daemon moved) cannot apply it twice."""


@dataclass
class _Call:
    id: int
    method: str
    body: bytes
    mutation: bool
    deadline: float
    future: asyncio.Future[bytes]
    sent_boot: bytes | None = None   # the daemon boot it was last sent to; None: never sent


class Session:
    """A session with the daemon at ``address`` (host:port)."""

    def __init__(self, address: str, *, token: str | None = None, ssl_context: ssl.SSLContext | None = None,
                 server_hostname: str | None = None, handlers: Mapping[str, Handler] | None = None) -> None:
        self.address = address
        host, _, port = address.rpartition(":")
        self.host, self.port = host.strip("[]"), int(port)
        self.token = token
        self.ssl_context = ssl_context
        self.server_hostname = server_hostname if ssl_context is not None else None
        self.handlers = handlers if handlers is not None else {}  # shared: the owner may add to it later
        self.session_id = os.urandom(16)
        self.boot_id: bytes | None = None
        self.max_frame = 0   # the largest frame the daemon takes (its WELCOME says; 0: not known yet)
        self._conn: _ClientConnection | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._pending: dict[int, _Call] = {}
        self._next_id = 1
        self._keepalive: asyncio.Task[None] | None = None
        self._closed = False
        self.reconnects = 0
        self.calls = 0
        # told when the daemon cannot be reached: it may have moved (a new map says where)
        self.on_unreachable: Callable[[], None] | None = None

    # ---------------------------------------------------------------- calls

    async def call(self, full: str, request: Any, reply_cls: Any, timeout_s: float) -> Any:
        """Send ``request`` to method ``full`` ("ShardService/GetFile"); its reply, or FsError."""
        if self._closed:
            raise FsError(errno.EIO, "session closed")
        mutation = METHODS[full].mutation if full in METHODS else True
        loop = asyncio.get_running_loop()
        cid = self._next_id
        self._next_id += 1
        self.calls += 1
        c = _Call(cid, full, request.SerializeToString(), mutation, time.monotonic() + timeout_s,
                  loop.create_future())
        self._pending[cid] = c
        try:
            if self._conn is not None and self._conn.ready:
                self._send(c)
            else:
                self._connect_soon()
            body = await self._wait(c)
        finally:
            self._pending.pop(cid, None)
        return reply_cls.FromString(body)

    async def _wait(self, c: _Call) -> bytes:
        try:
            return await asyncio.wait_for(asyncio.shield(c.future), max(0.0, c.deadline - time.monotonic()))
        except asyncio.TimeoutError:
            pass
        except asyncio.CancelledError:
            if not c.mutation and self._conn is not None and self._conn.ready and c.sent_boot is not None:
                self._conn.send(frames.encode(spb.Frame(kind=frames.CANCEL, id=c.id)))
            raise
        if not c.mutation:
            if self._conn is not None and self._conn.ready and c.sent_boot is not None:
                self._conn.send(frames.encode(spb.Frame(kind=frames.CANCEL, id=c.id)))
            raise FsError(errno.ETIMEDOUT, f"{c.method} to {self.address}: no answer in time")
        # a mutation: the daemon refuses to start it past its (shorter) deadline and answers either way,
        # so while it is reachable, its answer is worth a little longer wait than the caller's deadline
        if self._conn is not None and self._conn.ready and c.sent_boot is not None:
            try:
                return await asyncio.wait_for(asyncio.shield(c.future), DEAD_AFTER_S)
            except asyncio.TimeoutError:
                pass
        raise FsError(errno.ETIMEDOUT, f"{c.method} to {self.address}: no answer in time; the daemon was "
                                       "unreachable, so the change may or may not have been made")

    def _send(self, c: _Call) -> None:
        conn = self._conn
        assert conn is not None and conn.ready
        remaining = c.deadline - time.monotonic()
        if c.mutation:
            remaining -= min(MUTATION_MARGIN_S, remaining * 0.2)
        done_below = min(self._pending) if self._pending else self._next_id
        frame = frames.encode(spb.Frame(kind=frames.CALL, id=c.id, method=c.method, body=c.body,
                                        timeout_ms=max(1, int(remaining * 1000)), done_below=done_below))
        if self.max_frame and len(frame) - frames.LENGTH.size > self.max_frame:
            # the daemon would drop the connection (and every call on it): refuse this one alone
            if not c.future.done():
                c.future.set_exception(FsError(errno.EFBIG, f"{c.method}: a request of {len(c.body)} bytes is "
                                                            f"larger than {self.address} takes ({self.max_frame})"))
            return
        conn.send(frame)
        c.sent_boot = self.boot_id
        self._ensure_keepalive()

    # ------------------------------------------------------------ connection

    def _connect_soon(self) -> None:
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        delay = 0.05
        while not self._closed:
            err: FsError | None = None
            try:
                await self._open()
                return
            except FsError as e:
                err = e
            # unreachable: what can be told so now is; mutations on the wire wait for their deadline
            if self.on_unreachable is not None:
                self.on_unreachable()
            now = time.monotonic()
            waiting = False
            for c in list(self._pending.values()):
                if c.future.done():
                    continue
                if c.mutation and c.sent_boot is not None and c.deadline > now:
                    waiting = True
                    continue
                failed = CallNotSent if c.sent_boot is None else FsError
                c.future.set_exception(failed(err.errno, err.message))
            if not waiting:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(loop.create_connection(
                lambda: _ClientConnection(self), self.host, self.port, ssl=self.ssl_context,
                server_hostname=self.server_hostname), CONNECT_TIMEOUT_S)
        except asyncio.TimeoutError:
            raise FsError(errno.ETIMEDOUT, f"daemon at {self.address}: no connection in "
                                           f"{CONNECT_TIMEOUT_S:.0f} s") from None
        except ssl.SSLError as e:
            raise FsError(errno.EACCES, f"daemon at {self.address}: TLS handshake failed ({e.reason}); check "
                                        "that client and cluster agree on [tls] in the cluster file") from None
        except OSError as e:
            raise FsError(errno.EIO, f"daemon at {self.address} is unreachable: {e.strerror or e}") from None
        conn.send(frames.encode(spb.Frame(kind=frames.HELLO, session_id=self.session_id, token=self.token or "",
                                          version=frames.VERSION)))
        try:
            welcome = await asyncio.wait_for(asyncio.shield(conn.welcomed), CONNECT_TIMEOUT_S)
        except asyncio.TimeoutError:
            conn.close()
            raise FsError(errno.ETIMEDOUT, f"daemon at {self.address} accepted the connection but did not "
                                           "answer (stopped or overloaded)") from None
        except FsError:
            conn.close()
            raise
        restarted = self.boot_id is not None and welcome.boot_id != self.boot_id
        if self.boot_id is not None:
            self.reconnects += 1
        self.boot_id = welcome.boot_id
        self.max_frame = welcome.max_frame
        self._conn = conn
        conn.ready = True
        for c in sorted(self._pending.values(), key=lambda c: c.id):
            if c.future.done():
                continue
            if restarted and c.mutation and c.sent_boot is not None:
                c.future.set_exception(FsError(errno.EIO, f"{c.method}: the daemon at {self.address} restarted "
                                                          "before answering; the change may or may not have "
                                                          "been made"))
                continue
            self._send(c)

    def connection_lost(self, conn: "_ClientConnection") -> None:
        if self._conn is conn:
            self._conn = None
        if any(not c.future.done() for c in self._pending.values()) and not self._closed:
            self._connect_soon()

    def _ensure_keepalive(self) -> None:
        if self._keepalive is None or self._keepalive.done():
            self._keepalive = asyncio.get_running_loop().create_task(self._keep_alive())

    async def _keep_alive(self) -> None:
        """While calls wait: ping an idle connection; drop one that has gone silent."""
        while self._pending and not self._closed:
            await asyncio.sleep(PING_EVERY_S / 2)
            conn = self._conn
            if conn is None or not conn.ready:
                continue
            quiet = time.monotonic() - conn.last_heard
            if quiet > DEAD_AFTER_S:
                log.info("session to %s silent for %.1f s: reconnecting", self.address, quiet)
                conn.close()
            elif quiet > PING_EVERY_S:
                conn.send(frames.encode(spb.Frame(kind=frames.PING)))

    def answered(self, frame: spb.Frame) -> None:
        c = self._pending.get(frame.id)
        if c is None or c.future.done():
            return
        if frame.errno_name:
            c.future.set_exception(FsError(getattr(errno, frame.errno_name, errno.EIO), frame.message))
        else:
            c.future.set_result(frame.body)

    async def serve_daemon_call(self, conn: "_ClientConnection", frame: spb.Frame) -> None:
        handler = self.handlers.get(frame.method)
        reply = spb.Frame(kind=frames.REPLY, id=frame.id, from_daemon=True)
        if handler is None:
            reply.errno_name, reply.message = "ENOSYS", f"no handler for {frame.method}"
        else:
            try:
                reply.body = await handler(frame.body)
            except FsError as e:
                reply.errno_name, reply.message = errno.errorcode.get(e.errno, "EIO"), e.message
            except Exception as e:  # noqa: BLE001 - the daemon must get an answer
                log.exception("handling %s from %s", frame.method, self.address)
                reply.errno_name, reply.message = "EIO", repr(e)
        conn.send(frames.encode(reply))

    async def close(self) -> None:
        self._closed = True
        for c in self._pending.values():
            if not c.future.done():
                c.future.set_exception(FsError(errno.EIO, "session closed"))
        for t in (self._connecting, self._keepalive):
            if t is not None:
                t.cancel()
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class _ClientConnection(asyncio.Protocol):
    def __init__(self, session: Session) -> None:
        self.session = session
        self.reader = frames.FrameReader(MAX_FRAME)
        self.transport: asyncio.Transport | None = None
        self.ready = False
        self.last_heard = time.monotonic()
        self.welcomed: asyncio.Future[spb.Frame] = asyncio.get_running_loop().create_future()
        self._out: list[bytes] = []
        self._flush_scheduled = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.ready = False
        if not self.welcomed.done():
            self.welcomed.set_exception(FsError(errno.EIO, f"daemon at {self.session.address} closed the "
                                                           "connection"))
        self.session.connection_lost(self)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def send(self, data: bytes) -> None:
        if self.transport is None:
            return
        self._out.append(data)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        out, self._out = self._out, []
        if self.transport is not None and out:
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))

    def data_received(self, data: bytes) -> None:
        self.last_heard = time.monotonic()
        try:
            received = self.reader.feed(data)
        except frames.FrameError as e:
            log.warning("session to %s: %s", self.session.address, e)
            self.close()
            return
        for frame in received:
            kind = frame.kind
            if kind == frames.REPLY:
                if frame.from_daemon:
                    continue
                if not self.welcomed.done():  # the daemon refused the HELLO
                    self.welcomed.set_exception(FsError(getattr(errno, frame.errno_name, errno.EACCES),
                                                        frame.message))
                    continue
                self.session.answered(frame)
            elif kind == frames.WELCOME:
                if not self.welcomed.done():
                    self.welcomed.set_result(frame)
            elif kind == frames.CALL and frame.from_daemon:
                asyncio.get_running_loop().create_task(self.session.serve_daemon_call(self, frame))
            elif kind == frames.PING:
                self.send(frames.encode(spb.Frame(kind=frames.PONG)))
