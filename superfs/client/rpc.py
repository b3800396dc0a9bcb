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

import contextlib
import contextvars
import errno
import functools
import logging
from dataclasses import dataclass
from typing import Any, Iterator, Sequence, TypeVar

import grpc

from superfs import auth, tls
from superfs.config import SecurityConfig, TlsConfig
from superfs.daemon import GRPC_OPTIONS
from superfs.errors import FsError, errno_of_rpc_error
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
# For background calls (client/dirtimes.py): channels to one address share
# their connection unless told not to, and a background call that meets a
# daemon being restarted would put the connection the caller's next
# operation needs into reconnect backoff (a fast EIO after the restart).
ISOLATED = [("grpc.use_local_subchannel_pool", 1)]


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


class Channels:
    """One long-lived channel per daemon address, with typed stubs (cached)."""

    def __init__(self, timeout_s: float = 5.0, security: ClientSecurity | None = None,
                 options: Sequence[tuple[str, Any]] = ()) -> None:
        self.timeout_s = timeout_s
        self._options = CHANNEL_OPTIONS + list(options)
        self.security: ClientSecurity | None = security or _scoped.get() or _default
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._stubs: dict[tuple[str, str], Any] = {}
        self.calls = 0  # RPCs issued (benchmarks count dir-server round trips)

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
                                             options=self._options + tls.channel_options(sec.tls))
            else:
                ch = grpc.aio.insecure_channel(address, options=self._options)
            self._channels[address] = ch
        return ch

    def _stub(self, kind: str, cls: Any, address: str) -> Any:
        stub = self._stubs.get((kind, address))
        if stub is None:
            stub = cls(self.channel(address))
            md = self.security.metadata if self.security else None
            if md:
                stub = _AuthStub(stub, md)
            self._stubs[(kind, address)] = stub
        return stub

    def dir(self, address: str) -> pbg.DirServiceStub:
        return self._stub("dir", pbg.DirServiceStub, address)  # type: ignore[no-any-return]

    def shard(self, address: str) -> pbg.ShardServiceStub:
        return self._stub("shard", pbg.ShardServiceStub, address)  # type: ignore[no-any-return]

    def data(self, address: str) -> pbg.DataServiceStub:
        return self._stub("data", pbg.DataServiceStub, address)  # type: ignore[no-any-return]

    async def close(self) -> None:
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
    """Invoke one unary RPC; translate failures into FsError."""
    try:
        return await method(request, timeout=timeout_s)
    except grpc.aio.AioRpcError as e:
        err, msg = errno_of_rpc_error(e)
        if e.code() == grpc.StatusCode.UNAVAILABLE and any(s in msg for s in _SETUP_FAILURES):
            msg += SETUP_HINT
        raise FsError(err, msg) from None
