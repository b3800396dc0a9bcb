"""Wrapping a servicer's method handlers: the one helper the server interceptors share.

A grpc.aio server interceptor sees the method name and metadata before the
request is decoded. To see the decoded request (the auth check reads its
``creds``) and the outcome (metrics count status and errno), an interceptor
returns the same handler with its behaviour wrapped. :func:`wrap_handler`
does that for the four kinds of handler, keeping the serializers.

A wrapper is ``wrap(behaviour, kind) -> behaviour`` where kind is one of
``unary_unary``, ``unary_stream``, ``stream_unary``, ``stream_stream``;
streaming behaviours may be coroutine functions (using ``context.write``) or
async generator functions, and the wrapper must keep that shape.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable

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


class WrappedHandlers:
    """Wrapped handlers by method, built once: a call then costs a dict lookup, not a rebuild."""

    def __init__(self, wrap_for: Callable[[str], Wrap]) -> None:
        self._wrap_for = wrap_for
        self._cache: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler | None]] = {}

    def get(self, full_method: str, handler: grpc.RpcMethodHandler | None) -> grpc.RpcMethodHandler | None:
        hit = self._cache.get(full_method)
        if hit is not None and hit[0] is handler:
            return hit[1]
        wrapped = wrap_handler(handler, self._wrap_for(method_name(full_method)))
        if handler is not None:
            self._cache[full_method] = (handler, wrapped)
        return wrapped


def is_generator(behaviour: Behaviour) -> bool:
    """Whether a streaming-response behaviour yields (else it writes and returns)."""
    return inspect.isasyncgenfunction(behaviour)
