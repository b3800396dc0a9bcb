"""Channels and calls: the only place that opens gRPC connections to daemons.

Used by the client library and by daemons that talk to each other (the dir
server to shards, shards to shards and data servers). A failed call becomes
an :class:`FsError` with the errno the server sent, or EIO/ETIMEDOUT when the
daemon is down or slow; every call has a deadline, so nothing hangs.

Every channel carries the process's credentials (:class:`ClientSecurity`):
TLS channel credentials when the cluster uses TLS, and the bearer token as
call metadata on every RPC of the stubs handed out here. Which credentials a
:class:`Channels` uses, in order: the ``security`` it was given; the one
installed for the current context by :func:`security_scope` (how
``superfs.connect(config=...)`` reaches the Channels its AsyncFs creates);
the process default (:func:`set_default_security`: daemons set it from their
config); else, when the first channel is opened, the local cluster whose dir
server that address is (see :mod:`superfs.client.local`), else only
``SUPERFS_TOKEN`` from the environment.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import errno
import functools
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, TypeVar

import grpc

from superfs import auth, tls
from superfs.config import SecurityConfig, TlsConfig
from superfs.rpc.options import GRPC_OPTIONS
from superfs.errors import FsError, errno_of_rpc_error, is_overloaded
from superfs.rpc.bytepath import BytePool, ByteSecurity, ByteTarget
from superfs.rpc.client import Session
from superfs.rpc.methods import METHODS
from superfs.v1 import superfs_pb2_grpc as pbg

log = logging.getLogger(__name__)

R = TypeVar("R")

# A restarted daemon is reached again within a second: gRPC's default
# reconnect backoff grows to two minutes, which would turn a short restart
# into minutes of EIO. (Not grpc.min_reconnect_backoff_ms: gRPC also takes it
# as the minimum connect timeout, and 100 ms fails first connections to a
# daemon that is short of CPU with UNAVAILABLE.)
CHANNEL_OPTIONS = GRPC_OPTIONS + [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


_SERVICE_OF = {"dir": "DirService", "shard": "ShardService", "data": "DataService"}
BYTE_WORKERS = 64  # byte-path calls in flight at once per process (each blocks one thread)


@dataclass(frozen=True)
class ClientSecurity:
    """What a process presents to daemons: a token and/or TLS."""

    token: str | None = None
    tls: TlsConfig | None = None

    @classmethod
    def from_config(cls, security: SecurityConfig) -> "ClientSecurity":
        """Read the token (``SUPERFS_TOKEN`` wins over ``auth.token_file``) and check the TLS files.

        Raises FsError(EACCES) naming the file when a credential cannot be read.
        """
        try:
            token = auth.presented_token(security.auth)
            if security.tls is not None:
                tls.check(security.tls, server=False)
        except (auth.AuthError, tls.TlsError) as e:
            raise FsError(errno.EACCES, str(e)) from None
        return cls(token=token, tls=security.tls)

    @classmethod
    def from_environment(cls) -> "ClientSecurity":
        return cls.from_config(SecurityConfig())

    @property
    def metadata(self) -> tuple[tuple[str, str], ...] | None:
        return auth.token_metadata(self.token) if self.token else None

    def byte_security(self) -> ByteSecurity:
        """The same credentials for the byte path (superfs/rpc/bytepath.py)."""
        ctx = tls.client_ssl_context(self.tls) if self.tls is not None else None
        return ByteSecurity(token=self.token, ssl_context=ctx,
                            server_name=self.tls.server_name if self.tls is not None else None)


_scoped: contextvars.ContextVar[ClientSecurity | None] = contextvars.ContextVar("superfs_security", default=None)
_default: ClientSecurity | None = None


def set_default_security(security: ClientSecurity | None) -> None:
    """Credentials for every Channels created later in this process without its own."""
    global _default
    _default = security


@contextlib.contextmanager
def security_scope(security: ClientSecurity | None) -> Iterator[None]:
    """Channels created inside the block (in this thread or task) use ``security``."""
    token = _scoped.set(security)
    try:
        yield
    finally:
        _scoped.reset(token)


class _AuthStub:
    """A stub whose every method sends the token as call metadata."""

    def __init__(self, stub: Any, metadata: tuple[tuple[str, str], ...]) -> None:
        self._stub = stub
        self._metadata = metadata

    def __getattr__(self, name: str) -> Any:
        method = functools.partial(getattr(self._stub, name), metadata=self._metadata)
        setattr(self, name, method)  # next time, a plain attribute
        return method


class _SessionStub:
    """A service stub whose unary methods travel on a session; streamed ones on the gRPC stub.

    Called as a grpc.aio stub method is (``await stub.GetFile(request, timeout=...)``), so
    :func:`call` and every caller work unchanged; failures are FsError already.
    """

    def __init__(self, service: str, session: Session, grpc_stub: Any, timeout_s: float) -> None:
        self._service = service
        self._session = session
        self._grpc = grpc_stub
        self._timeout_s = timeout_s

    def __getattr__(self, name: str) -> Any:
        full = f"{self._service}/{name}"
        m = METHODS.get(full)
        if m is None:
            method = getattr(self._grpc, name)
        else:
            session, reply, default = self._session, m.reply, self._timeout_s

            async def method(request: Any, timeout: float | None = None, **_: Any) -> Any:
                return await session.call(full, request, reply, timeout or default)
        setattr(self, name, method)  # next time, a plain attribute
        return method


class Channels:
    """One long-lived channel per daemon address, with typed stubs (cached).

    With ``transport="session"`` (the default), a daemon whose session endpoint is known
    (:meth:`learn_sessions`, from the cluster map) is reached on one session
    (superfs/rpc/client.py) for every unary call; ``"grpc"`` keeps every call on gRPC.
    """

    def __init__(self, timeout_s: float = 5.0, security: ClientSecurity | None = None,
                 transport: str = "session") -> None:
        if transport not in ("session", "grpc"):
            raise ValueError(f"transport must be 'session' or 'grpc', not {transport!r}")
        self.timeout_s = timeout_s
        self.security: ClientSecurity | None = security or _scoped.get() or _default
        self.transport = transport
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._stubs: dict[tuple[str, str], Any] = {}
        self._session_of: dict[str, str] = {}      # gRPC address -> session address
        self._sessions: dict[str, Session] = {}
        self.on_unreachable: Callable[[], None] | None = None  # a session's daemon could not be reached
        self.calls = 0  # RPCs issued (benchmarks count dir-server round trips)
        self._byte_pool: BytePool | None = None
        self._byte_workers: concurrent.futures.ThreadPoolExecutor | None = None

    def learn_sessions(self, endpoints: dict[str, str]) -> None:
        """Session endpoints of daemons by their gRPC address (the host dialled, the session port)."""
        if self.transport != "session":
            return
        for address, session in endpoints.items():
            if not session:
                continue
            dial = f"{address.rpartition(':')[0]}:{session.rpartition(':')[2]}"
            if self._session_of.get(address) != dial:
                self._session_of[address] = dial
                for kind in ("dir", "shard", "data"):
                    self._stubs.pop((kind, address), None)

    def session(self, address: str) -> Session | None:
        """The session to the daemon whose gRPC address is ``address``, if it has an endpoint."""
        dial = self._session_of.get(address)
        if dial is None:
            return None
        s = self._sessions.get(dial)
        if s is None:
            sec = self.security or self._resolve_security(address)
            ctx = tls.client_ssl_context(sec.tls) if sec.tls is not None else None
            host = dial.rpartition(":")[0].strip("[]")
            s = self._sessions[dial] = Session(dial, token=sec.token, ssl_context=ctx,
                                               server_hostname=(sec.tls.server_name or host) if sec.tls else None)
            s.on_unreachable = self._unreachable
        return s

    def byte_pool(self, address_hint: str) -> BytePool:
        """Connections to data servers' byte paths (superfs/rpc/bytepath.py), with this process's credentials."""
        if self._byte_pool is None:
            sec = self.security or self._resolve_security(address_hint)
            self._byte_pool = BytePool(sec.byte_security())
        return self._byte_pool

    def forget_byte_target(self, target: ByteTarget) -> None:
        """A data server restarted or moved: drop the idle connections to where it was."""
        if self._byte_pool is not None:
            self._byte_pool.forget(target)

    @property
    def byte_workers(self) -> concurrent.futures.ThreadPoolExecutor:
        """The threads byte-path calls block on (the event loop never does)."""
        if self._byte_workers is None:
            self._byte_workers = concurrent.futures.ThreadPoolExecutor(
                max_workers=BYTE_WORKERS, thread_name_prefix="superfs-bytes")
        return self._byte_workers

    def _unreachable(self) -> None:
        if self.on_unreachable is not None:
            self.on_unreachable()

    def _resolve_security(self, first_address: str) -> ClientSecurity:
        from superfs.client.local import security_for_address

        self.security = security_for_address(first_address)
        return self.security

    def channel(self, address: str) -> grpc.aio.Channel:
        """The raw channel; use :meth:`dir`/:meth:`shard`/:meth:`data` so calls carry the token."""
        ch = self._channels.get(address)
        if ch is None:
            sec = self.security or self._resolve_security(address)
            if sec.tls is not None:
                ch = grpc.aio.secure_channel(address, tls.channel_credentials(sec.tls),
                                             options=CHANNEL_OPTIONS + tls.channel_options(sec.tls))
            else:
                ch = grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
            self._channels[address] = ch
        return ch

    def _stub(self, kind: str, cls: Any, address: str) -> Any:
        stub = self._stubs.get((kind, address))
        if stub is None:
            stub = cls(self.channel(address))
            md = self.security.metadata if self.security else None
            if md:
                stub = _AuthStub(stub, md)
            session = self.session(address)
            if session is not None:
                stub = _SessionStub(_SERVICE_OF[kind], session, stub, self.timeout_s)
            self._stubs[(kind, address)] = stub
        return stub

    def dir(self, address: str) -> pbg.DirServiceStub:
        return self._stub("dir", pbg.DirServiceStub, address)  # type: ignore[no-any-return]

    def shard(self, address: str) -> pbg.ShardServiceStub:
        return self._stub("shard", pbg.ShardServiceStub, address)  # type: ignore[no-any-return]

    def data(self, address: str) -> pbg.DataServiceStub:
        return self._stub("data", pbg.DataServiceStub, address)  # type: ignore[no-any-return]

    async def close(self) -> None:
        if self._byte_pool is not None:
            self._byte_pool.close()
            self._byte_pool = None
        if self._byte_workers is not None:
            self._byte_workers.shutdown(wait=False, cancel_futures=True)
            self._byte_workers = None
        for s in self._sessions.values():
            await s.close()
        self._sessions.clear()
        for ch in self._channels.values():
            await ch.close()
        self._channels.clear()
        self._stubs.clear()


# What gRPC says when the peer drops the connection while it is being set up:
# typically a TLS handshake one side refused (plaintext to a TLS daemon, no
# or an untrusted client certificate, a server certificate we do not trust).
_SETUP_FAILURES = ("Socket closed", "handshake", "SSL", "ssl", "certificate")
SETUP_HINT = ("; the connection was closed while being set up: if this persists, check that client and "
              "cluster agree on [tls] (CA, client certificate) in the cluster file")


async def call(method: Any, request: Any, timeout_s: float) -> Any:
    """Invoke one unary RPC; translate failures into FsError.

    A daemon at its limit of calls in progress refuses a call before running
    it (see config.ServerLimits): such a call is sent again, with backoff,
    until its deadline.
    """
    deadline = time.monotonic() + timeout_s
    pause = 0.005
    while True:
        try:
            return await method(request, timeout=max(0.001, deadline - time.monotonic()))
        except grpc.aio.AioRpcError as e:
            if is_overloaded(e) and time.monotonic() + pause < deadline:
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.2)
                continue
            err, msg = errno_of_rpc_error(e)
            if e.code() == grpc.StatusCode.UNAVAILABLE and any(s in msg for s in _SETUP_FAILURES):
                msg += SETUP_HINT
            raise FsError(err, msg) from None
