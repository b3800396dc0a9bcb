"""What a servicer method sees of a call that came over a session.

Servicers are written against grpc.aio's ``ServicerContext`` and use a small
part of it: ``abort`` and ``set_trailing_metadata`` (through
``errors.rpc_handler``, to send an errno), ``code``/``trailing_metadata``
(metrics), ``peer``, ``time_remaining``. :class:`SessionContext` offers exactly that part, so
one servicer serves gRPC and sessions alike; ``abort`` raises
:class:`CallAborted`, which the session server turns into an error reply.

The deadline of the call being served is in :data:`superfs.deadlines.call_deadline`
(a monotonic time) while its handler runs: the LMDB writer refuses to apply a
mutation whose caller has stopped waiting (superfs/lmdb_store.py).
"""
from __future__ import annotations

import time
from typing import Any, NoReturn, Sequence

import grpc

from superfs.errors import ERRNO_KEY

class CallAborted(Exception):
    """A servicer aborted the call: send ``errno_name`` and ``details`` back."""

    def __init__(self, code: grpc.StatusCode, details: str, errno_name: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details
        self.errno_name = errno_name


class SessionContext:
    """The part of grpc.aio.ServicerContext that SuperFS servicers use."""

    __slots__ = ("_peer", "_code", "_trailing", "_deadline", "session")

    def __init__(self, peer: str, deadline: float | None = None, session: Any = None) -> None:
        self._peer = peer
        self._deadline = deadline  # monotonic
        self.session = session     # the ServerSession the call came on (lease holders are sessions)
        self._code: grpc.StatusCode | None = None
        self._trailing: Sequence[tuple[str, Any]] = ()

    def peer(self) -> str:
        return self._peer

    def time_remaining(self) -> float | None:
        """Seconds until the caller stops waiting (None: no deadline), as grpc.aio answers."""
        return None if self._deadline is None else max(0.0, self._deadline - time.monotonic())

    def set_trailing_metadata(self, metadata: Sequence[tuple[str, Any]]) -> None:
        self._trailing = metadata

    def trailing_metadata(self) -> Sequence[tuple[str, Any]]:
        return self._trailing

    def code(self) -> grpc.StatusCode | None:
        return self._code

    def invocation_metadata(self) -> Sequence[tuple[str, Any]]:
        return ()

    async def abort(self, code: grpc.StatusCode, details: str = "") -> NoReturn:
        self._code = code
        name = next((str(v) for k, v in self._trailing if k == ERRNO_KEY), "EIO")
        raise CallAborted(code, details, name)
