"""The client's view of the cluster: the map, and where each request goes."""
from __future__ import annotations

import asyncio
import errno
import logging
import time

from superfs import routing
from superfs.client.rpc import Channels, call
from superfs.errors import FsError
from superfs.rpc.bytepath import ByteTarget
from superfs.v1 import superfs_pb2 as pb
from superfs.v1 import superfs_pb2_grpc as pbg

log = logging.getLogger(__name__)


class ClusterView:
    """Routes requests using the cluster map fetched from the dir server."""

    def __init__(self, dir_address: str, channels: Channels) -> None:
        self.dir_address = dir_address
        self.channels = channels
        self.map = pb.ClusterMap()
        self._shards: dict[int, str] = {}
        self._data: dict[int, str] = {}
        self._bytes: dict[int, ByteTarget] = {}
        self._refreshed = 0.0
        self._lock = asyncio.Lock()
        self.dir_calls = 0  # RPCs sent to the dir server (benchmarks report it)
        self._refreshing: asyncio.Task[None] | None = None
        channels.on_unreachable = self._refresh_soon

    def _refresh_soon(self) -> None:
        """A daemon's session could not be reached: it may have restarted elsewhere; look again."""
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.get_running_loop().create_task(self._quiet_refresh())

    async def _quiet_refresh(self) -> None:
        try:
            await self.refresh(min_age_s=1.0)
        except FsError as e:
            log.debug("map refresh after an unreachable session: %s", e)

    @property
    def timeout(self) -> float:
        return self.channels.timeout_s

    async def refresh(self, *, min_age_s: float = 0.0) -> None:
        async with self._lock:
            if time.monotonic() - self._refreshed < min_age_s:
                return
            m = await self.dir_call("GetClusterMap", pb.GetClusterMapRequest())
            self.map = m
            self._shards = {s.id: s.address for s in m.shards}
            self._data = {d.id: d.address for d in m.data_servers}
            fresh = {d.id: ByteTarget(d.bytes_address, d.bytes_local) for d in m.data_servers if d.bytes_address}
            for sid, old in self._bytes.items():
                if fresh.get(sid) != old:
                    self.channels.forget_byte_target(old)  # restarted or moved: its old connections are dead
            self._bytes = fresh
            self.channels.learn_sessions({self.dir_address: m.dir_session_address,
                                          **{s.address: s.session_address for s in m.shards},
                                          **{d.address: d.session_address for d in m.data_servers}})
            self._refreshed = time.monotonic()

    async def dir_call(self, method: str, request: object) -> object:
        self.dir_calls += 1
        stub = self.channels.dir(self.dir_address)
        return await call(getattr(stub, method), request, self.timeout)

    # ----------------------------------------------------------------- routing

    def _shard_address(self, shard_id: int) -> str:
        try:
            return self._shards[shard_id]
        except KeyError:
            raise FsError(errno.EIO, f"shard {shard_id} has not registered with the dir server") from None

    def entry_shard(self, parent: int, name: str) -> pbg.ShardServiceStub:
        part = routing.entry_partition(parent, name, self.map.num_partitions)
        return self.channels.shard(self._shard_address(self.map.partition_shard[part]))

    def home_shard(self, ino: int) -> pbg.ShardServiceStub:
        part = routing.ino_partition(ino)
        if part >= self.map.num_partitions:
            raise FsError(errno.ENOENT, f"no inode {ino}")
        return self.channels.shard(self._shard_address(self.map.partition_shard[part]))

    def all_shards(self) -> list[pbg.ShardServiceStub]:
        return [self.channels.shard(a) for _, a in sorted(self._shards.items())]

    def data_server(self, server_id: int) -> pbg.DataServiceStub:
        try:
            return self.channels.data(self._data[server_id])
        except KeyError:
            raise FsError(errno.EIO, f"data server {server_id} is not in the cluster map") from None

    def byte_target(self, server_id: int) -> ByteTarget | None:
        """Where data server ``server_id`` takes chunk bytes (None: it has no byte path; use gRPC)."""
        return self._bytes.get(server_id)

    def data_server_ids(self) -> list[int]:
        return sorted(self._data)

    def all_data_servers(self) -> list[pbg.DataServiceStub]:
        return [self.channels.data(a) for _, a in sorted(self._data.items())]

    def replicas_of(self, ino: int, index: int, layout: list[int]) -> list[int]:
        return routing.chunk_replicas(ino, index, layout, self.map.replicas or 1)
