"""The one table: kvserve exceptions <-> gRPC status codes, and object statuses.

Request-level failures (a malformed key, an unknown namespace, a daemon that
is down) are exceptions. The service turns one into a gRPC status whose
trailing metadata names the exception class (``kvserve-error``); the client
rebuilds the same exception from it. Per-object outcomes of a batch (stored,
already there, too large, ...) are :class:`Status` values, not exceptions:
one oversized object must not fail the other 63 of a batch.
"""
from __future__ import annotations

import enum
import functools
import logging
from typing import Any, AsyncIterator, Awaitable, Callable, TypeVar

import grpc

from kvserve.v1 import kvserve_pb2 as pb

log = logging.getLogger(__name__)

ERROR_KEY = "kvserve-error"


class Status(enum.IntEnum):
    """Outcome for one object; values are those of ``ObjectStatus`` on the wire."""

    OK = pb.OK
    MISSING = pb.MISSING
    EXISTS = pb.EXISTS
    TOO_LARGE = pb.TOO_LARGE
    NO_SPACE = pb.NO_SPACE
    CORRUPT = pb.CORRUPT
    ABORTED = pb.ABORTED
    FALLBACK = pb.FALLBACK
    UNAVAILABLE = pb.UNAVAILABLE

    @property
    def stored(self) -> bool:
        """After a put: is the object in the store now?"""
        return self in (Status.OK, Status.EXISTS)


class Tier(enum.IntEnum):
    """Where an object was found; values are those of ``Tier`` on the wire."""

    NONE = pb.TIER_NONE
    DRAM = pb.DRAM
    SUPERFS = pb.SUPERFS


class KvError(Exception):
    """Base of every kvserve failure."""


class BadRequest(KvError, ValueError):
    """Malformed input: a key that is not 16/32 bytes, a bad namespace name, ..."""


class UnknownNamespace(KvError, LookupError):
    """The daemon serves a fixed set of namespaces and this is not one of them."""


class ObjectTooLarge(KvError, ValueError):
    """An object beyond the daemon's max_object_bytes."""


class NoSpace(KvError):
    """DRAM is full of objects that may not be evicted right now."""


class StoreUnavailable(KvError, ConnectionError):
    """The daemon did not answer (down, restarting, or too slow)."""


class ShmUnavailable(KvError):
    """The same-host shared-memory path cannot be used with this daemon."""


# exception class <-> gRPC status code. Transport failures without our
# metadata (the daemon is down) come back as StoreUnavailable.
_CODE_OF: dict[type[KvError], grpc.StatusCode] = {
    BadRequest: grpc.StatusCode.INVALID_ARGUMENT,
    UnknownNamespace: grpc.StatusCode.NOT_FOUND,
    ObjectTooLarge: grpc.StatusCode.OUT_OF_RANGE,
    NoSpace: grpc.StatusCode.RESOURCE_EXHAUSTED,
    StoreUnavailable: grpc.StatusCode.UNAVAILABLE,
    ShmUnavailable: grpc.StatusCode.FAILED_PRECONDITION,
}
_CLASS_OF_NAME: dict[str, type[KvError]] = {cls.__name__: cls for cls in _CODE_OF}


def error_of_rpc(exc: grpc.RpcError) -> KvError:
    """Rebuild the exception the daemon raised (or StoreUnavailable)."""
    md = exc.trailing_metadata() or ()  # type: ignore[attr-defined]
    for key, value in md:
        if key == ERROR_KEY and value in _CLASS_OF_NAME:
            return _CLASS_OF_NAME[value](exc.details())  # type: ignore[attr-defined]
    code = exc.code()  # type: ignore[attr-defined]
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return BadRequest(exc.details())  # type: ignore[attr-defined]
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:  # a message beyond the transport's limit
        return ObjectTooLarge(exc.details())  # type: ignore[attr-defined]
    return StoreUnavailable(f"{code.name}: {exc.details()}")  # type: ignore[attr-defined]


F = TypeVar("F", bound=Callable[..., Awaitable[Any]])
G = TypeVar("G", bound=Callable[..., AsyncIterator[Any]])


async def _abort(context: grpc.aio.ServicerContext, exc: BaseException, name: str) -> None:
    if isinstance(exc, KvError):
        cls = type(exc)
        while cls not in _CODE_OF:
            cls = cls.__mro__[1]
        code, name = _CODE_OF[cls], cls.__name__
    elif isinstance(exc, (ValueError, TypeError, OverflowError)):
        code, name = grpc.StatusCode.INVALID_ARGUMENT, BadRequest.__name__
    else:
        log.error("unexpected error in %s", name, exc_info=exc)
        code, name = grpc.StatusCode.INTERNAL, "InternalError"
    context.set_trailing_metadata(((ERROR_KEY, name),))
    await context.abort(code, str(exc) or name)


def rpc_handler(fn: F) -> F:
    """Decorate a unary servicer method: exceptions become statuses, never tracebacks."""

    @functools.wraps(fn)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await fn(self, request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as e:  # noqa: BLE001 - the boundary
            await _abort(context, e, fn.__name__)

    return wrapper  # type: ignore[return-value]


def stream_handler(fn: G) -> G:
    """Same as :func:`rpc_handler`, for a server-streaming method (async generator)."""

    @functools.wraps(fn)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        try:
            async for item in fn(self, request, context):
                yield item
        except grpc.aio.AbortError:
            raise
        except Exception as e:  # noqa: BLE001 - the boundary
            await _abort(context, e, fn.__name__)

    return wrapper  # type: ignore[return-value]
