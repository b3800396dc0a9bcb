"""Channels: the only place that opens connections to daemons.

Used by the client library and by daemons that talk to each other (the dir
server to shards and data servers, shards to shards and data servers, data
servers to the dir server). :meth:`Channels.dir`, :meth:`Channels.shard`
and :meth:`Channels.data` hand out typed wrappers (superfs/rpc/stubs.py),
one method per RPC; a failed call raises :class:`FsError` with the errno
the daemon sent, or EIO/ETIMEDOUT when the daemon is down or slow; every
call has a deadline, so nothing hangs.

A wrapper sends its calls on the process's session to the daemon
(superfs/rpc/client.py) once the daemon's session endpoint is known
(:meth:`Channels.learn_sessions`, told by the cluster map view), else as
gRPC unary calls. Only the streamed chunk RPCs use a gRPC stub
(:meth:`Channels.data_streams`, superfs/client/streams.py). Chunk bytes go
on the data servers' byte path (superfs/rpc/bytepath.py): one pool of
connections per process (:meth:`Channels.byte_pool`), whose blocking calls
run on :attr:`Channels.byte_workers`, never on the event loop.

Every connection carries the process's credentials (superfs/rpc/security.py):
TLS when the cluster uses it, and the bearer token on every call.
"""
from __future__ import annotations

import concurrent.futures
import functools
import logging
from typing import Any, Awaitable, Callable, Sequence

import grpc

from superfs import tls
from superfs.rpc.bytepath import BytePool, ByteTarget
from superfs.rpc.caller import Caller, GrpcCaller, SessionCaller
from superfs.rpc.client import Session
from superfs.rpc.options import GRPC_OPTIONS
from superfs.rpc.security import ClientSecurity, current_security
from superfs.rpc.stubs import DataRpc, DirRpc, ShardRpc
from superfs.v1 import superfs_pb2_grpc as pbg

log = logging.getLogger(__name__)

# A restarted daemon is reached again within a second: gRPC's default
# reconnect backoff grows to two minutes, which would turn a short restart
# into minutes of EIO. (Not grpc.min_reconnect_backoff_ms: gRPC also takes it
# as the minimum connect timeout, and 100 ms fails first connections to a
# daemon that is short of CPU with UNAVAILABLE.)
CHANNEL_OPTIONS = GRPC_OPTIONS + [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]

BYTE_WORKERS = 64  # byte-path calls in flight at once per process (each blocks one thread)

SecurityLookup = Callable[[str], ClientSecurity]  # dir server address -> credentials for that cluster


class _AuthStub:
    """A gRPC stub whose every method sends the token as call metadata (streamed chunk RPCs)."""

    def __init__(self, stub: Any, metadata: tuple[tuple[str, str], ...]) -> None:
        self._stub = stub
        self._metadata = metadata

    def __getattr__(self, name: str) -> Any:
        method = functools.partial(getattr(self._stub, name), metadata=self._metadata)
        setattr(self, name, method)  # next time, a plain attribute
        return method


class Channels:
    """One long-lived connection per daemon address, with typed wrappers (cached).

    With ``transport="session"`` (the default), a daemon whose session endpoint is known
    (:meth:`learn_sessions`) is reached on one session for every unary call; ``"grpc"``
    keeps every call on gRPC (daemons calling each other, comparisons).
    ``security_lookup`` finds credentials by the first address dialled when none were
    given or set for the process (see superfs/rpc/security.py).
    """

    def __init__(self, timeout_s: float = 5.0, security: ClientSecurity | None = None,
                 transport: str = "session", options: Sequence[tuple[str, Any]] = (),
                 security_lookup: SecurityLookup | None = None) -> None:
        if transport not in ("session", "grpc"):
            raise ValueError(f"transport must be 'session' or 'grpc', not {transport!r}")
        self.timeout_s = timeout_s
        self._options = CHANNEL_OPTIONS + list(options)
        self.security: ClientSecurity | None = security or current_security()
        self._security_lookup = security_lookup
        self.transport = transport
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._callers: dict[str, Caller] = {}
        self._wrappers: dict[tuple[str, str], Any] = {}
        self._streams: dict[str, Any] = {}
        self._session_of: dict[str, str] = {}      # gRPC address -> session address
        self._sessions: dict[str, Session] = {}
        # calls daemons may make to this process on its sessions (method -> handler): a lease recall
        self.handlers: dict[str, Callable[[bytes], Awaitable[bytes]]] = {}
        self.on_unreachable: Callable[[], None] | None = None  # a session's daemon could not be reached
        self._byte_pool: BytePool | None = None
        self._byte_workers: concurrent.futures.ThreadPoolExecutor | None = None

    # ------------------------------------------------------------- sessions

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
                self._callers.pop(address, None)
                for kind in ("dir", "shard", "data"):
                    self._wrappers.pop((kind, address), None)

    def session(self, address: str) -> Session | None:
        """The session to the daemon whose gRPC address is ``address``, if it has an endpoint."""
        dial = self._session_of.get(address)
        if dial is None:
            return None
        s = self._sessions.get(dial)
        if s is None:
            sec = self._security(address)
            ctx = tls.client_ssl_context(sec.tls) if sec.tls is not None else None
            host = dial.rpartition(":")[0].strip("[]")
            s = self._sessions[dial] = Session(dial, token=sec.token, ssl_context=ctx,
                                               server_hostname=(sec.tls.server_name or host) if sec.tls else None,
                                               handlers=self.handlers)
            s.on_unreachable = self._unreachable
        return s

    def sessions(self) -> list[Session]:
        """The sessions opened so far (tests cut their connections)."""
        return list(self._sessions.values())

    def _unreachable(self) -> None:
        if self.on_unreachable is not None:
            self.on_unreachable()

    def _security(self, first_address: str) -> ClientSecurity:
        if self.security is None:
            lookup = self._security_lookup or (lambda _address: ClientSecurity.from_environment())
            self.security = lookup(first_address)
        return self.security

    # ------------------------------------------------------------ channels

    def channel(self, address: str) -> grpc.aio.Channel:
        """The raw gRPC channel; calls on it carry no token (use the wrappers)."""
        ch = self._channels.get(address)
        if ch is None:
            sec = self._security(address)
            if sec.tls is not None:
                ch = grpc.aio.secure_channel(address, tls.channel_credentials(sec.tls),
                                             options=self._options + tls.channel_options(sec.tls))
            else:
                ch = grpc.aio.insecure_channel(address, options=self._options)
            self._channels[address] = ch
        return ch

    def caller(self, address: str) -> Caller:
        """How a unary call reaches the daemon at ``address``: its session, else gRPC."""
        c = self._callers.get(address)
        if c is None:
            session = self.session(address)
            if session is not None:
                c = SessionCaller(session, self.timeout_s)
            else:
                channel = self.channel(address)
                assert self.security is not None  # resolved by channel()
                c = GrpcCaller(channel, self.timeout_s, self.security.metadata)
            self._callers[address] = c
        return c

    def _wrapper(self, kind: str, cls: Any, address: str) -> Any:
        w = self._wrappers.get((kind, address))
        if w is None:
            w = self._wrappers[(kind, address)] = cls(self.caller(address))
        return w

    def dir(self, address: str) -> DirRpc:
        return self._wrapper("dir", DirRpc, address)  # type: ignore[no-any-return]

    def shard(self, address: str) -> ShardRpc:
        return self._wrapper("shard", ShardRpc, address)  # type: ignore[no-any-return]

    def data(self, address: str) -> DataRpc:
        return self._wrapper("data", DataRpc, address)  # type: ignore[no-any-return]

    def data_streams(self, address: str) -> pbg.DataServiceStub:
        """The gRPC stub of a data server, for the streamed chunk RPCs only (with the token)."""
        stub: Any = self._streams.get(address)
        if stub is None:
            stub = pbg.DataServiceStub(self.channel(address))
            md = self._security(address).metadata
            if md:
                stub = _AuthStub(stub, md)
            self._streams[address] = stub
        return stub  # type: ignore[no-any-return]

    # ----------------------------------------------------------- byte path

    def byte_pool(self, address_hint: str | None) -> BytePool:
        """Connections to data servers' byte paths, with this process's credentials.

        ``address_hint``: the address whose credentials apply if none were resolved yet (the dir server's).
        """
        if self._byte_pool is None:
            self._byte_pool = BytePool(self._security(address_hint or "").byte_security())
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
        self._callers.clear()
        self._wrappers.clear()
        self._streams.clear()
