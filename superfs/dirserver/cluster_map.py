"""The cluster map: which shard owns each partition, where every daemon listens.

Built from the dir server's config at first start and persisted in the dir
store, so a restart keeps the partition layout (moving partitions is an
explicit operation, never a side effect of a changed flag). Shards and data
servers announce themselves with RegisterServer; the epoch bumps only when
the map really changes, so clients can cache it by epoch.
"""
from __future__ import annotations

import asyncio
import errno
import logging
from typing import Callable

from superfs.config import DirServerConfig
from superfs.dirserver.store import DirStore
from superfs.errors import FsError
from superfs.v1 import superfs_pb2 as pb

log = logging.getLogger(__name__)

MAP_KEY = b"cluster_map"
KINDS = ("shard", "data")
DATA_STATES = ("active", "draining", "dead", "removed")


def initial_map(cfg: DirServerConfig) -> pb.ClusterMap:
    if cfg.shards < 1 or cfg.num_partitions < 1:
        raise ValueError("need at least one shard and one partition")
    if cfg.durability not in ("durable", "async"):
        raise ValueError(f"durability must be 'durable' or 'async', not {cfg.durability!r}")
    return pb.ClusterMap(
        epoch=1,
        cluster_name=cfg.cluster_name,
        num_partitions=cfg.num_partitions,
        partition_shard=[p % cfg.shards for p in range(cfg.num_partitions)],
        # R is what the operator asked for; the client clamps it to the data
        # servers it can see, so adding servers later needs no map rewrite.
        replicas=cfg.replicas,
        inline_threshold=cfg.inline_threshold,
        chunk_size=cfg.chunk_size,
        durability=cfg.durability,
    )


def shard_count(m: pb.ClusterMap) -> int:
    """Shard ids are 0..n-1, n being one more than the highest id owning a partition."""
    return max(m.partition_shard) + 1 if m.partition_shard else 0


def register(m: pb.ClusterMap, kind: str, server: pb.ServerInfo) -> bool:
    """Add or update one server in ``m``; return whether anything changed."""
    if kind not in KINDS:
        raise FsError(errno.EINVAL, f"unknown server kind {kind!r} (want 'shard' or 'data')")
    if not server.address or ":" not in server.address:
        raise FsError(errno.EINVAL, f"bad server address {server.address!r} (want host:port)")
    if kind == "shard":
        if server.id in m.removed_shards:
            raise FsError(errno.EINVAL, f"shard id {server.id} was removed from the cluster; give a new "
                                        "shard a new id")
        # a new shard takes the next id (it then owns nothing until add-shard moves partitions to it)
        limit = max([shard_count(m) - 1, *(s.id for s in m.shards), *m.removed_shards]) + 1
        if server.id > limit:
            raise FsError(errno.EINVAL, f"shard id {server.id} out of range (the next new shard is {limit})")
    servers = m.shards if kind == "shard" else m.data_servers
    for s in servers:
        if s.id == server.id:
            if s == server:
                return False
            state = s.state  # an operator's decision (drain, dead) outlives a restart
            s.CopyFrom(server)
            s.state = state
            return True
    new = sorted([*servers, server], key=lambda s: s.id)
    del servers[:]
    servers.extend(new)
    return True


class ClusterRegistry:
    """The persisted cluster map, with an in-memory copy for cheap reads.

    It is the source of truth; the dir server routes its own calls to shards
    through a view of it (superfs/rpc/cluster_map.py), told of every change by
    ``on_change``.
    """

    def __init__(self, store: DirStore, cfg: DirServerConfig) -> None:
        self.store = store
        self._lock = asyncio.Lock()  # read-modify-write of the map, one at a time
        self.on_change: Callable[[pb.ClusterMap], object] | None = None
        raw = store.get_meta(MAP_KEY)
        if raw is None:
            self.map = initial_map(cfg)
            self._persist_now()
            log.info("created cluster map %r: %d partitions over %d shards",
                     cfg.cluster_name, cfg.num_partitions, cfg.shards)
            return
        self.map = pb.ClusterMap.FromString(raw)
        if self.map.num_partitions != cfg.num_partitions or shard_count(self.map) != cfg.shards:
            log.warning("config asks for %d partitions over %d shards; keeping the persisted "
                        "layout of %d over %d", cfg.num_partitions, cfg.shards,
                        self.map.num_partitions, shard_count(self.map))
        # Tunables that do not move data follow the config.
        tuned = pb.ClusterMap()
        tuned.CopyFrom(self.map)
        tuned.cluster_name = cfg.cluster_name
        tuned.replicas = cfg.replicas
        tuned.inline_threshold = cfg.inline_threshold
        tuned.chunk_size = cfg.chunk_size
        tuned.durability = cfg.durability
        if tuned != self.map:
            tuned.epoch += 1
            self.map = tuned
            self._persist_now()
            log.info("cluster map tunables changed by config: epoch %d", tuned.epoch)

    def _persist_now(self) -> None:
        value = self.map.SerializeToString()
        self.store.db.write_now(lambda txn: self.store.put_meta_txn(txn, MAP_KEY, value))

    async def register(self, kind: str, server: pb.ServerInfo) -> pb.ClusterMap:
        async with self._lock:
            updated = pb.ClusterMap()
            updated.CopyFrom(self.map)
            if register(updated, kind, server):
                updated.epoch += 1
                value = updated.SerializeToString()
                await self.store.db.write(lambda txn: self.store.put_meta_txn(txn, MAP_KEY, value))
                self._set(updated)
                log.info("registered %s %d at %s: epoch %d", kind, server.id, server.address, updated.epoch)
            return self.map

    async def set_state(self, server_id: int, state: str) -> pb.ClusterMap:
        """Persist data server ``server_id``'s state (superfs/rebalance: drain, mark-dead, remove)."""
        if state not in DATA_STATES:
            raise FsError(errno.EINVAL, f"unknown data server state {state!r} (want one of {', '.join(DATA_STATES)})")
        async with self._lock:
            updated = pb.ClusterMap()
            updated.CopyFrom(self.map)
            found = [d for d in updated.data_servers if d.id == server_id]
            if not found:
                raise FsError(errno.ENOENT, f"no data server {server_id} in the cluster map")
            if (found[0].state or "active") == state:
                return self.map
            found[0].state = "" if state == "active" else state
            updated.epoch += 1
            value = updated.SerializeToString()
            await self.store.db.write(lambda txn: self.store.put_meta_txn(txn, MAP_KEY, value))
            self._set(updated)
            log.info("data server %d is %s: epoch %d", server_id, state, updated.epoch)
            return self.map

    async def update(self, change: Callable[[pb.ClusterMap], None]) -> pb.ClusterMap:
        """Apply ``change`` to a copy of the map; persist it at the next epoch, then publish it."""
        async with self._lock:
            updated = pb.ClusterMap()
            updated.CopyFrom(self.map)
            change(updated)
            updated.epoch = self.map.epoch + 1
            value = updated.SerializeToString()
            await self.store.db.write(lambda txn: self.store.put_meta_txn(txn, MAP_KEY, value))
            self._set(updated)
            return updated

    async def set_dir_session(self, address: str) -> None:
        """Publish the dir server's own session endpoint (clients take its port, and the host they dial)."""
        async with self._lock:
            if self.map.dir_session_address == address:
                return
            updated = pb.ClusterMap()
            updated.CopyFrom(self.map)
            updated.dir_session_address = address
            updated.epoch += 1
            value = updated.SerializeToString()
            await self.store.db.write(lambda txn: self.store.put_meta_txn(txn, MAP_KEY, value))
            self._set(updated)

    def _set(self, updated: pb.ClusterMap) -> None:
        self.map = updated
        if self.on_change is not None:
            self.on_change(updated)
