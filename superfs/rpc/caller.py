"""How a typed RPC wrapper (superfs/rpc/stubs.py) reaches its daemon: a session, or gRPC.

A :class:`Caller` sends one unary call, named "Service/Method", and returns
the reply message or raises FsError with the daemon's errno. The two kinds
behave alike to their callers:

- :class:`SessionCaller`: on the process's session to the daemon (the default
  for every SuperFS process, superfs/rpc/client.py);
- :class:`GrpcCaller`: a grpc.aio unary call on a channel (tools and daemons
  without a session endpoint); a call the daemon refused for being at its
  limit of calls in progress is sent again, with backoff, until its deadline.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any, Protocol

import grpc

from superfs.errors import LEASE_WAIT_MAX_S, FsError, errno_of_rpc_error, is_lease_wait, is_overloaded
from superfs.rpc.client import CallNotSent, Session

# What gRPC says when the peer drops the connection while it is being set up:
# typically a TLS handshake one side refused (plaintext to a TLS daemon, no
# or an untrusted client certificate, a server certificate we do not trust).
_SETUP_FAILURES = ("Socket closed", "handshake", "SSL", "ssl", "certificate")
# What gRPC says when it never got a connection to send the call on.
_NOT_CONNECTED = ("failed to connect", "Connection refused")
SETUP_HINT = ("; the connection was closed while being set up: if this persists, check that client and "
              "cluster agree on [tls] (CA, client certificate) in the cluster file")


class Caller(Protocol):
    async def call(self, full: str, request: Any, reply_cls: Any, timeout_s: float | None) -> Any:
        """The reply of ``full`` ("ShardService/GetFile") to ``request``; FsError on failure."""


class SessionCaller:
    __slots__ = ("session", "timeout_s")

    def __init__(self, session: Session, timeout_s: float) -> None:
        self.session = session
        self.timeout_s = timeout_s

    async def call(self, full: str, request: Any, reply_cls: Any, timeout_s: float | None) -> Any:
        # the dir server answers EAGAIN (LEASE_WAIT) to a call that waited for another client's lease
        # to be recalled as long as the caller's deadline allowed: nothing was done, so it is asked
        # again, for up to LEASE_WAIT_MAX_S (a holder that stopped answering loses its lease within
        # the lease's lifetime)
        give_up = time.monotonic() + LEASE_WAIT_MAX_S
        while True:
            try:
                return await self.session.call(full, request, reply_cls, timeout_s or self.timeout_s)
            except FsError as e:
                if not is_lease_wait(e) or time.monotonic() > give_up:
                    raise


async def grpc_call(method: Any, request: Any, timeout_s: float) -> Any:
    """Invoke one grpc.aio unary method; failures become FsError; overload refusals are sent again.

    A daemon at its limit of calls in progress refuses a call before running
    it (see config.ServerLimits): such a call is sent again, with backoff,
    until its deadline. A call that found no connection raises CallNotSent.
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
            if e.code() == grpc.StatusCode.UNAVAILABLE:
                if any(s in msg for s in _SETUP_FAILURES):
                    msg += SETUP_HINT
                elif any(s in msg for s in _NOT_CONNECTED):
                    raise CallNotSent(err, msg) from None
            raise FsError(err, msg) from None


class GrpcCaller:
    """Unary calls on a grpc.aio channel, with the process's bearer token as call metadata."""

    def __init__(self, channel: grpc.aio.Channel, timeout_s: float,
                 metadata: tuple[tuple[str, str], ...] | None = None) -> None:
        self.channel = channel
        self.timeout_s = timeout_s
        self.metadata = metadata
        self._methods: dict[str, Any] = {}

    async def call(self, full: str, request: Any, reply_cls: Any, timeout_s: float | None) -> Any:
        method = self._methods.get(full)
        if method is None:
            raw = self.channel.unary_unary(f"/superfs.v1.{full}", request_serializer=type(request).SerializeToString,
                                           response_deserializer=reply_cls.FromString)
            method = self._methods[full] = (
                raw if not self.metadata else (lambda r, timeout, _m=raw: _m(r, timeout=timeout,
                                                                              metadata=self.metadata)))
        return await grpc_call(method, request, timeout_s or self.timeout_s)
