"""Intercepting every RPC of a daemon: its method handlers wrapped where they are registered.

The auth check must see the decoded request (its ``creds``) and metrics the
outcome (status and errno), so both wrap each method's *behaviour* rather
than look at raw calls. :func:`intercepting` hands ``add_services`` a server
that wraps every handler the servicers register (generated
``add_*Servicer_to_server`` functions register them twice: as a generic
handler and as registered methods), once per method. That is the job of a
grpc.aio server interceptor, without its per-call cost: measured in one
process, an interceptor that does nothing adds ~50-80 us of CPU per call, a
wrapped handler a few.

A wrapper is ``wrap(behaviour, kind) -> behaviour`` where kind is one of
``unary_unary``, ``unary_stream``, ``stream_unary``, ``stream_stream``;
streaming behaviours may be coroutine functions (using ``context.write``) or
async generator functions, and the wrapper must keep that shape.
"""
from __future__ import annotations

import asyncio
import inspect
from typing import Any, Callable, Sequence

import grpc

Behaviour = Callable[..., Any]
Wrap = Callable[[Behaviour, str], Behaviour]

_FACTORIES = {
    "unary_unary": grpc.unary_unary_rpc_method_handler,
    "unary_stream": grpc.unary_stream_rpc_method_handler,
    "stream_unary": grpc.stream_unary_rpc_method_handler,
    "stream_stream": grpc.stream_stream_rpc_method_handler,
}


def method_name(full: str) -> str:
    """'/superfs.v1.ShardService/CreateFile' -> 'CreateFile'."""
    return full.rsplit("/", 1)[-1]


def wrap_handler(handler: grpc.RpcMethodHandler | None, wrap: Wrap) -> grpc.RpcMethodHandler | None:
    if handler is None:
        return None
    for kind, factory in _FACTORIES.items():
        behaviour = getattr(handler, kind, None)
        if behaviour is not None:
            return factory(wrap(behaviour, kind), request_deserializer=handler.request_deserializer,
                           response_serializer=handler.response_serializer)
    return handler


WrapFor = Callable[[str], Wrap]  # method name ('CreateFile') -> its wrapper


def wrap_all(handler: grpc.RpcMethodHandler | None, method: str,
             wrappers: Sequence[WrapFor]) -> grpc.RpcMethodHandler | None:
    """``handler`` wrapped by each of ``wrappers``, the first outermost."""
    for wrap_for in reversed(wrappers):
        handler = wrap_handler(handler, wrap_for(method))
    return handler


class _WrappedGeneric(grpc.GenericRpcHandler):
    """A generic handler whose answers are wrapped (once per method)."""

    def __init__(self, inner: grpc.GenericRpcHandler, wrappers: Sequence[WrapFor]) -> None:
        self._inner = inner
        self._wrappers = wrappers
        self._cache: dict[str, tuple[Any, Any]] = {}

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        handler = self._inner.service(details)
        hit = self._cache.get(details.method)
        if hit is not None and hit[0] is handler:
            return hit[1]  # type: ignore[no-any-return]
        wrapped = wrap_all(handler, method_name(details.method), self._wrappers)
        if handler is not None:
            self._cache[details.method] = (handler, wrapped)
        return wrapped


class _InterceptingServer:
    """What ``add_services`` registers its servicers on: the real server, handlers wrapped."""

    def __init__(self, server: grpc.aio.Server, wrappers: Sequence[WrapFor]) -> None:
        self._server = server
        self._wrappers = wrappers

    def add_generic_rpc_handlers(self, handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        self._server.add_generic_rpc_handlers(tuple(_WrappedGeneric(h, self._wrappers) for h in handlers))

    def add_registered_method_handlers(self, service: str, handlers: dict[str, grpc.RpcMethodHandler]) -> None:
        self._server.add_registered_method_handlers(
            service, {m: wrap_all(h, m, self._wrappers) for m, h in handlers.items()})

    def __getattr__(self, name: str) -> Any:
        return getattr(self._server, name)


def intercepting(server: grpc.aio.Server, wrappers: Sequence[WrapFor]) -> Any:
    """``server`` itself when there is nothing to wrap, else a stand-in that wraps what is registered."""
    return _InterceptingServer(server, wrappers) if wrappers else server


def is_generator(behaviour: Behaviour) -> bool:
    """Whether a streaming-response behaviour yields (else it writes and returns)."""
    return inspect.isasyncgenfunction(behaviour)


DRAIN_BYTES = 80 << 20  # a little more than the largest chunk a client may stream
DRAIN_SECONDS = 5.0


async def drain_requests(requests: Any, limit_bytes: int = DRAIN_BYTES,
                         limit_s: float = DRAIN_SECONDS) -> None:
    """Read and drop what a client is still streaming before its call is refused.

    grpc-python's client loses the server's status when the call ends while
    it is still sending: the failed send replaces the status with "INTERNAL:
    Internal error from Core", so a refused chunk write would read as EIO
    instead of EACCES. Refusing after the client has half-closed avoids it.
    Bounded in bytes and time: past either, the call is refused at once.
    """
    async def swallow() -> None:
        seen = 0
        async for req in requests:
            seen += req.ByteSize()
            if seen > limit_bytes:
                return

    try:
        await asyncio.wait_for(swallow(), limit_s)
    except Exception:  # noqa: BLE001 - the call is being refused anyway; this only times it
        pass
