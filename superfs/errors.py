"""The one table that maps POSIX errno <-> exception <-> gRPC status.

Stores and services raise :class:`FsError`. The service layer turns it into a
gRPC status whose trailing metadata carries the errno *name* (portable across
hosts); the client library turns that status back into an ``OSError`` with the
same errno. FUSE handlers turn the ``OSError`` into ``FUSEError``.
"""
from __future__ import annotations

import errno
import functools
import logging
import os
from typing import Any, Awaitable, Callable, TypeVar

import grpc

log = logging.getLogger(__name__)

ERRNO_KEY = "superfs-errno"


class FsError(Exception):
    """A failure with a POSIX meaning, raised below the RPC layer."""

    def __init__(self, err: int, message: str = "") -> None:
        super().__init__(err, message or os.strerror(err))
        self.errno = err
        self.message = message or os.strerror(err)

    def __str__(self) -> str:
        return f"[{errno.errorcode.get(self.errno, self.errno)}] {self.message}"


# errno -> the gRPC status code that describes it best. The errno itself always
# travels in the trailing metadata; the code is for humans and generic tools.
_STATUS_OF_ERRNO: dict[int, grpc.StatusCode] = {
    errno.ENOENT: grpc.StatusCode.NOT_FOUND,
    errno.ENODATA: grpc.StatusCode.NOT_FOUND,
    errno.ESTALE: grpc.StatusCode.NOT_FOUND,
    errno.EEXIST: grpc.StatusCode.ALREADY_EXISTS,
    errno.EACCES: grpc.StatusCode.PERMISSION_DENIED,
    errno.EPERM: grpc.StatusCode.PERMISSION_DENIED,
    errno.ENOTEMPTY: grpc.StatusCode.FAILED_PRECONDITION,
    errno.ENOTDIR: grpc.StatusCode.FAILED_PRECONDITION,
    errno.EISDIR: grpc.StatusCode.FAILED_PRECONDITION,
    errno.EXDEV: grpc.StatusCode.FAILED_PRECONDITION,
    errno.EBUSY: grpc.StatusCode.FAILED_PRECONDITION,
    errno.EFBIG: grpc.StatusCode.OUT_OF_RANGE,
    errno.E2BIG: grpc.StatusCode.OUT_OF_RANGE,
    errno.EMLINK: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errno.EINVAL: grpc.StatusCode.INVALID_ARGUMENT,
    errno.ENAMETOOLONG: grpc.StatusCode.INVALID_ARGUMENT,
    errno.ELOOP: grpc.StatusCode.INVALID_ARGUMENT,
    errno.ERANGE: grpc.StatusCode.INVALID_ARGUMENT,
    errno.ENOSPC: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errno.EIO: grpc.StatusCode.DATA_LOSS,
    errno.ETIMEDOUT: grpc.StatusCode.DEADLINE_EXCEEDED,
    errno.EAGAIN: grpc.StatusCode.UNAVAILABLE,
}

# errnos that answer a request the way POSIX says to (the name is not there, is there already, the
# directory is not empty, the caller may not, the capability needs refreshing): what clients cause
# every day (cp and ls look up missing names all the time). Metrics and 'superfs status' count them
# apart from failures, which every other errno is (EIO, ETIMEDOUT, ENOSPC, EAGAIN, ...).
EXPECTED_ERRNOS = frozenset({
    errno.ENOENT, errno.ENODATA, errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR, errno.EXDEV,
    errno.ENAMETOOLONG, errno.ELOOP, errno.ERANGE, errno.EINVAL, errno.EACCES, errno.EPERM, errno.ESTALE,
})
EXPECTED_NAMES = frozenset(errno.errorcode[e] for e in EXPECTED_ERRNOS)

# gRPC codes raised by the transport itself (no errno in the metadata).
_ERRNO_OF_TRANSPORT: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.UNAVAILABLE: errno.EIO,
    grpc.StatusCode.DEADLINE_EXCEEDED: errno.ETIMEDOUT,
    grpc.StatusCode.RESOURCE_EXHAUSTED: errno.EFBIG,
    grpc.StatusCode.INVALID_ARGUMENT: errno.EINVAL,
    grpc.StatusCode.CANCELLED: errno.EINTR,
    grpc.StatusCode.UNAUTHENTICATED: errno.EACCES,
    grpc.StatusCode.PERMISSION_DENIED: errno.EACCES,
}


# The dir server's answer to a call that waits for another client's directory lease to be recalled
# longer than the caller's deadline allows (a holder that stopped answering loses its lease only
# after the lease's lifetime): nothing was done, and the client library asks again (rpc/caller.py).
LEASE_WAIT = "waiting for another client's lease on the directory"
LEASE_WAIT_MAX_S = 60.0  # the longest a client keeps asking (several lease lifetimes)


def is_lease_wait(err: "FsError") -> bool:
    return err.errno == errno.EAGAIN and err.message.startswith(LEASE_WAIT)


# A shard's answer to a call for a partition it does not own, or owns but is moving away (frozen):
# nothing was done. The client sends it again once its map agrees (rpc/cluster_map.py); an ESTALE
# for another reason (a capability older than its directory's fence) is not this.
MISROUTED = "misrouted: "


def is_misrouted(err: "FsError") -> bool:
    return err.errno == errno.ESTALE and err.message.startswith(MISROUTED)


# A shard's refusal of a directory capability signed before the directory's lease was taken from
# someone (shard/fences.py): the caller fetches a fresh capability (client/meta.py _with_cap). Not a
# routing problem: the cluster map is not asked again for it.
FENCED = "fenced: "


def is_fenced(err: "FsError") -> bool:
    return err.errno == errno.ESTALE and err.message.startswith(FENCED)


# gRPC's refusal of a call beyond a server's maximum_concurrent_rpcs (grpc/_server.py): nothing ran.
OVERLOADED_DETAILS = "Concurrent RPC limit exceeded"


def is_overloaded(exc: grpc.RpcError) -> bool:
    """Did the server refuse the call for being at its limit of calls in progress (so it never ran)?"""
    return exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and OVERLOADED_DETAILS in (exc.details() or "")


def status_of(err: int) -> grpc.StatusCode:
    return _STATUS_OF_ERRNO.get(err, grpc.StatusCode.UNKNOWN)


def errno_of_rpc_error(exc: grpc.RpcError) -> tuple[int, str]:
    """Rebuild (errno, message) from a failed call, server-side or transport."""
    md = exc.trailing_metadata() or ()
    for key, value in md:
        if key == ERRNO_KEY:
            return getattr(errno, str(value), errno.EIO), exc.details() or ""
    code = exc.code()
    if is_overloaded(exc):
        return errno.EAGAIN, f"the daemon is at its limit of calls in progress: {exc.details()}"
    return _ERRNO_OF_TRANSPORT.get(code, errno.EIO), f"{code.name}: {exc.details()}"


def oserror(err: int, message: str = "", filename: str | None = None) -> OSError:
    """An OSError that looks like the one the local kernel would raise."""
    text = os.strerror(err)
    if message and message != text:
        text = f"{text} ({message})"
    if filename is not None:
        return OSError(err, text, filename)
    return OSError(err, text)


F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def rpc_handler(fn: F) -> F:
    """Decorate an async servicer method: FsError -> status with errno.

    Anything unexpected is logged with its traceback and becomes EIO; the
    daemon keeps serving.
    """

    @functools.wraps(fn)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await fn(self, request, context)
        except FsError as e:
            name = errno.errorcode.get(e.errno, "EIO")
            log.debug("%s -> %s %s", fn.__name__, name, e.message)
            context.set_trailing_metadata(((ERRNO_KEY, name),))
            await context.abort(status_of(e.errno), e.message)
        except (ValueError, OverflowError, TypeError, UnicodeError) as e:
            # Malformed input that slipped past validation: a client error.
            context.set_trailing_metadata(((ERRNO_KEY, "EINVAL"),))
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"bad request: {e}")
        except grpc.aio.AbortError:
            raise
        except Exception:  # noqa: BLE001 - the boundary where bugs become EIO
            log.exception("unexpected error in %s", fn.__name__)
            context.set_trailing_metadata(((ERRNO_KEY, "EIO"),))
            await context.abort(grpc.StatusCode.INTERNAL, "internal error (see daemon log)")

    return wrapper  # type: ignore[return-value]
