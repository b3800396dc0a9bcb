"""Channels and calls: the only place that opens gRPC connections to daemons.

Used by the client library and by daemons that talk to each other (the dir
server to shards, shards to shards and data servers). A failed call becomes
an :class:`FsError` with the errno the server sent, or EIO/ETIMEDOUT when the
daemon is down or slow; every call has a deadline, so nothing hangs.
"""
from __future__ import annotations

import logging
from typing import Any, TypeVar

import grpc

from superfs.daemon import GRPC_OPTIONS
from superfs.errors import FsError, errno_of_rpc_error
from superfs.v1 import superfs_pb2_grpc as pbg

log = logging.getLogger(__name__)

R = TypeVar("R")

# A restarted daemon is reached again within a second: gRPC's default
# reconnect backoff grows to two minutes, which would turn a short restart
# into minutes of EIO.
CHANNEL_OPTIONS = GRPC_OPTIONS + [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


class Channels:
    """One long-lived channel per daemon address, with typed stubs."""

    def __init__(self, timeout_s: float = 5.0) -> None:
        self.timeout_s = timeout_s
        self._channels: dict[str, grpc.aio.Channel] = {}
        self.calls = 0  # RPCs issued (benchmarks count dir-server round trips)

    def channel(self, address: str) -> grpc.aio.Channel:
        ch = self._channels.get(address)
        if ch is None:
            ch = grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
            self._channels[address] = ch
        return ch

    def dir(self, address: str) -> pbg.DirServiceStub:
        return pbg.DirServiceStub(self.channel(address))

    def shard(self, address: str) -> pbg.ShardServiceStub:
        return pbg.ShardServiceStub(self.channel(address))

    def data(self, address: str) -> pbg.DataServiceStub:
        return pbg.DataServiceStub(self.channel(address))

    async def close(self) -> None:
        for ch in self._channels.values():
            await ch.close()
        self._channels.clear()


async def call(method: Any, request: Any, timeout_s: float) -> Any:
    """Invoke one unary RPC; translate failures into FsError."""
    try:
        return await method(request, timeout=timeout_s)
    except grpc.aio.AioRpcError as e:
        err, msg = errno_of_rpc_error(e)
        raise FsError(err, msg) from None
