"""The daemon side of sessions: every unary method of its servicers on long-lived connections.

A daemon runs one :class:`SessionServer` beside its gRPC server, serving the
same servicer objects (superfs/rpc/context.py makes them work unchanged).
Why: a grpc.aio unary call costs about 0.5-0.6 ms here in Python's gRPC
machinery alone, a frame on an open asyncio connection a fraction of that
(bench/rpc_floor.py), and every metadata operation pays it.

Per connection: the first frame must be HELLO; the credential in it (or the
TLS client certificate) is checked by the same :class:`superfs.auth.Authenticator`
as a gRPC call, and each CALL then by the same per-method and per-creds
rules. Calls run as tasks, many at once; replies go out in the order they
finish, several per write when several are ready. At most
``max_calls_per_session`` run at once: past that the connection stops being
read (TCP pushes back on the client) rather than buffering.

Mutations apply at most once per (session id, call id): their answer is kept
(:class:`ServerSession`) until the client says it was delivered
(``done_below``) or the session has been gone for ``SESSION_IDLE_S``, and a
CALL sent again after a reconnect gets that answer (or waits for the first
one still running). A mutation is never cancelled once started; a read is,
by CANCEL or its deadline.

The daemon can call its clients back: :meth:`ServerSession.call_client`.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import os
import ssl
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from superfs.auth import Authenticator, Grant, Refused, identify_connection
from superfs.errors import FsError
from superfs.rpc import frames
from superfs.deadlines import call_deadline
from superfs.rpc.context import CallAborted, SessionContext
from superfs.rpc.methods import METHODS, Method
from superfs.v1 import session_pb2 as spb

log = logging.getLogger(__name__)

HELLO_TIMEOUT_S = 10.0
SESSION_IDLE_S = 600.0        # a session with no connection for this long is forgotten
MAX_CALLS_PER_SESSION = 512   # in progress at once; past that the connection is not read
MAX_TIMEOUT_MS = 600_000
OPEN = Grant("no authentication configured")  # a daemon without tokens or mutual TLS


@dataclass
class _Served:
    """One method as served: the wrapped behaviour (servicer method + metrics)."""

    method: Method
    behaviour: Callable[[Any, Any], Any]


@dataclass
class _Answer:
    """A mutation's reply frame, once known; ``done`` is set when it is."""

    frame: bytes = b""
    done: asyncio.Event = field(default_factory=asyncio.Event)


class ServerSession:
    """What a daemon keeps of one client session across its connections."""

    def __init__(self, server: "SessionServer", session_id: bytes, grant: Grant) -> None:
        self.server = server
        self.session_id = session_id
        self.grant = grant
        self.conn: "_Connection | None" = None
        self.answers: dict[int, _Answer] = {}     # mutations: call id -> answer
        self.running: dict[int, asyncio.Task[None]] = {}
        self.detached_at = 0.0
        self.last_heard = time.monotonic()   # the last frame from the client, on any connection
        self._next_out = 1
        self._out: dict[int, asyncio.Future[bytes]] = {}

    def forget_below(self, done_below: int) -> None:
        if done_below and self.answers:
            for cid in [c for c, a in self.answers.items() if c < done_below and a.done.is_set()]:
                del self.answers[cid]

    async def call_client(self, full: str, request: Any, reply_cls: Any, timeout_s: float) -> Any:
        """Call the client of this session (e.g. recall a lease); FsError(ETIMEDOUT/EIO) if it is gone."""
        conn = self.conn
        if conn is None:
            raise FsError(errno.EIO, "the client is not connected")
        cid = self._next_out
        self._next_out += 1
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._out[cid] = fut
        conn.send(frames.encode(spb.Frame(kind=frames.CALL, id=cid, method=full, from_daemon=True,
                                          body=request.SerializeToString(),
                                          timeout_ms=int(timeout_s * 1000))))
        try:
            body = await asyncio.wait_for(fut, timeout_s)
        except asyncio.TimeoutError:
            raise FsError(errno.ETIMEDOUT, f"the client did not answer {full} in {timeout_s:.1f} s") from None
        finally:
            self._out.pop(cid, None)
        return reply_cls.FromString(body)

    def client_replied(self, frame: spb.Frame) -> None:
        fut = self._out.get(frame.id)
        if fut is None or fut.done():
            return
        if frame.errno_name:
            fut.set_exception(FsError(getattr(errno, frame.errno_name, errno.EIO), frame.message))
        else:
            fut.set_result(frame.body)

    def detach(self, conn: "_Connection") -> None:
        if self.conn is conn:
            self.conn = None
            self.detached_at = time.monotonic()
            for fut in self._out.values():
                if not fut.done():
                    fut.set_exception(FsError(errno.EIO, "the client's connection closed"))


class SessionServer:
    """Serves ``servicers`` ({"ShardService": servicer, ...}) on session connections."""

    def __init__(self, name: str, servicers: Mapping[str, Any], *, authenticator: Authenticator | None = None,
                 ssl_context: ssl.SSLContext | None = None, max_frame: int = 1 << 20,
                 wrappers: Sequence[Callable[[str], Callable[[Any, str], Any]]] = (),
                 max_calls_per_session: int = MAX_CALLS_PER_SESSION) -> None:
        self.name = name
        self.authenticator = authenticator
        self.ssl_context = ssl_context
        self.max_frame = max_frame + 64 * 1024   # the frame around the largest message
        self.max_calls = max_calls_per_session
        self.boot_id = os.urandom(8)
        self.sessions: dict[bytes, ServerSession] = {}
        self.served: dict[str, _Served] = {}
        for full, m in METHODS.items():
            servicer = servicers.get(m.service)
            if servicer is None:
                continue
            behaviour = getattr(servicer, m.name)
            for wrap_for in reversed(wrappers):
                behaviour = wrap_for(m.name)(behaviour, "unary_unary")
            self.served[full] = _Served(m, behaviour)
        self._server: asyncio.AbstractServer | None = None
        self._reaper: asyncio.Task[None] | None = None
        self.connections: set[_Connection] = set()

    async def start(self, host: str, port: int = 0) -> str:
        """Listen; the address clients dial (host:port)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), host, port, ssl=self.ssl_context,
                                                reuse_address=True)
        bound = self._server.sockets[0].getsockname()[1]
        self._reaper = loop.create_task(self._reap_forever())
        return f"{host}:{bound}"

    async def close(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.close()
        for s in self.sessions.values():
            for t in s.running.values():
                t.cancel()
        if self._server is not None:
            try:
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            except asyncio.TimeoutError:
                pass

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(SESSION_IDLE_S / 10)
            cutoff = time.monotonic() - SESSION_IDLE_S
            for sid in [sid for sid, s in self.sessions.items()
                        if s.conn is None and s.detached_at < cutoff and not s.running]:
                del self.sessions[sid]

    # ------------------------------------------------------------- sessions

    def authenticate(self, hello: spb.Frame, ssl_object: Any) -> Grant:
        if self.authenticator is None:
            return OPEN
        return identify_connection(self.authenticator, hello.token, ssl_object)

    def attach(self, conn: "_Connection", session_id: bytes, grant: Grant) -> ServerSession:
        s = self.sessions.get(session_id)
        if s is None or s.grant != grant:
            # a session id presented with another credential starts afresh: answers are the credential's own
            s = self.sessions[session_id] = ServerSession(self, session_id, grant)
        if s.conn is not None and s.conn is not conn:
            s.conn.close()  # the client reconnected: the old connection is dead to it
        s.conn = conn
        return s


class _Connection(asyncio.Protocol):
    """One session connection on the daemon's side."""

    def __init__(self, server: SessionServer) -> None:
        self.server = server
        self.reader = frames.FrameReader(server.max_frame)
        self.transport: asyncio.Transport | None = None
        self.session: ServerSession | None = None
        self.peer = "?"
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self._paused = False
        self._hello_timer: asyncio.TimerHandle | None = None

    # ----------------------------------------------------------- transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.server.connections.add(self)
        self._hello_timer = asyncio.get_running_loop().call_later(HELLO_TIMEOUT_S, self.close)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        if self._hello_timer is not None:
            self._hello_timer.cancel()
        if self.session is not None:
            s = self.session
            s.detach(self)
            for cid, task in list(s.running.items()):
                if cid not in s.answers:  # a read: nobody waits for it any more
                    task.cancel()
        self.transport = None

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
        if self.session is not None:
            self.session.last_heard = time.monotonic()
        try:
            received = self.reader.feed(data)
        except frames.FrameError as e:
            log.info("session from %s dropped: %s", self.peer, e)
            self.close()
            return
        for frame in received:
            try:
                self._handle(frame)
            except Exception:  # noqa: BLE001 - a bad frame must not take the daemon down
                log.exception("session frame from %s", self.peer)
                self.close()
                return

    # -------------------------------------------------------------- frames

    def _handle(self, frame: spb.Frame) -> None:
        kind = frame.kind
        if self.session is None:
            if kind != frames.HELLO:
                self.close()
                return
            self._hello(frame)
            return
        if kind == frames.CALL:
            if frame.from_daemon:
                return
            self._call(frame)
        elif kind == frames.PING:
            self.send(frames.encode(spb.Frame(kind=frames.PONG)))
        elif kind == frames.CANCEL:
            task = self.session.running.get(frame.id)
            if task is not None and frame.id not in self.session.answers:
                task.cancel()
        elif kind == frames.REPLY and frame.from_daemon:
            self.session.client_replied(frame)

    def _hello(self, hello: spb.Frame) -> None:
        if self._hello_timer is not None:
            self._hello_timer.cancel()
            self._hello_timer = None
        sslobj = self.transport.get_extra_info("ssl_object") if self.transport is not None else None
        try:
            if len(hello.session_id) < 8:
                raise FsError(errno.EINVAL, "a session id of at least 8 bytes is required")
            grant = self.server.authenticate(hello, sslobj)
        except (Refused, FsError) as r:
            log.info("session from %s refused: %s", self.peer, r.message)
            self.send(frames.encode(spb.Frame(kind=frames.REPLY, errno_name=errno.errorcode.get(r.errno, "EACCES"),
                                              message=r.message)))
            asyncio.get_running_loop().call_soon(self.close)
            return
        self.session = self.server.attach(self, bytes(hello.session_id), grant)
        self.send(frames.encode(spb.Frame(kind=frames.WELCOME, version=frames.VERSION,
                                          boot_id=self.server.boot_id, max_frame=self.server.max_frame)))

    def _reply_error(self, cid: int, err: int, message: str) -> bytes:
        return frames.encode(spb.Frame(kind=frames.REPLY, id=cid, errno_name=errno.errorcode.get(err, "EIO"),
                                       message=message))

    def _call(self, frame: spb.Frame) -> None:
        s = self.session
        assert s is not None
        cid = frame.id
        s.forget_below(frame.done_below)
        served = self.server.served.get(frame.method)
        if served is None:
            self.send(self._reply_error(cid, errno.ENOSYS, f"no method {frame.method!r} on this daemon"))
            return
        if served.method.mutation:
            answer = s.answers.get(cid)
            if answer is not None:
                if answer.done.is_set():
                    self.send(answer.frame)  # sent again after a reconnect: the first answer
                # else still running: its answer goes to whichever connection the session has then
                return
            s.answers[cid] = _Answer()
        elif cid in s.running:
            return  # a read sent again while it still runs
        timeout_s = min(frame.timeout_ms or MAX_TIMEOUT_MS, MAX_TIMEOUT_MS) / 1000
        task = asyncio.get_running_loop().create_task(self._run(s, served, frame, timeout_s))
        s.running[cid] = task
        if len(s.running) >= self.server.max_calls and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    async def _run(self, s: ServerSession, served: _Served, frame: spb.Frame, timeout_s: float) -> None:
        cid = frame.id
        m = served.method
        deadline = time.monotonic() + timeout_s
        call_deadline.set(deadline)
        try:
            out = await self._execute(s, served, frame, timeout_s)
        except asyncio.CancelledError:
            s.running.pop(cid, None)
            self._resume()
            if not m.mutation:
                return  # withdrawn by the client, or its connection is gone: nobody to answer
            out = self._reply_error(cid, errno.EINTR, "the daemon is stopping")
        s.running.pop(cid, None)
        self._resume()
        if m.mutation:
            answer = s.answers.get(cid)
            if answer is not None:
                answer.frame = out
                answer.done.set()
        conn = s.conn
        if conn is not None:
            conn.send(out)

    async def _execute(self, s: ServerSession, served: _Served, frame: spb.Frame, timeout_s: float) -> bytes:
        cid = frame.id
        m = served.method
        try:
            if self.server.authenticator is not None:
                Authenticator.check_method(s.grant, m.name)
            try:
                request = m.request.FromString(frame.body)
            except Exception as e:  # noqa: BLE001 - protobuf's DecodeError
                raise FsError(errno.EINVAL, f"undecodable {m.name} request: {e}") from None
            if self.server.authenticator is not None:
                Authenticator.check_creds(s.grant, request)
            ctx = SessionContext(self.peer, call_deadline.get(), s)
            if m.mutation:
                reply = await served.behaviour(request, ctx)  # never cut short: applied or refused whole
            else:
                reply = await asyncio.wait_for(served.behaviour(request, ctx), timeout_s)
        except CallAborted as a:
            return frames.encode(spb.Frame(kind=frames.REPLY, id=cid, errno_name=a.errno_name, message=a.details))
        except Refused as r:
            log.info("refused %s from %s: %s", m.name, self.peer, r.message)
            return self._reply_error(cid, r.errno, r.message)
        except FsError as e:
            return self._reply_error(cid, e.errno, e.message)
        except asyncio.TimeoutError:
            return self._reply_error(cid, errno.ETIMEDOUT, f"{m.name} did not finish in {timeout_s:.1f} s")
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the boundary where bugs become EIO
            log.exception("unexpected error in %s over a session", m.name)
            return self._reply_error(cid, errno.EIO, "internal error (see daemon log)")
        if reply is None:  # an abort that a wrapper swallowed
            return self._reply_error(cid, errno.EIO, "no reply")
        return frames.encode(spb.Frame(kind=frames.REPLY, id=cid, body=reply.SerializeToString()))

    def _resume(self) -> None:
        s = self.session
        if self._paused and self.transport is not None and s is not None and len(s.running) < self.server.max_calls:
            self._paused = False
            self.transport.resume_reading()

