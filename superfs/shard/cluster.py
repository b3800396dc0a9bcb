"""The shard's view of the cluster: which partitions it owns, where its peers are.

The cluster map comes from the dir server (RegisterServer at start, then
GetClusterMap every few seconds and whenever a peer call fails). Tests build
a view with a fixed map and no dir server.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import time
from typing import Any

from superfs import routing
from superfs.client.rpc import Channels, call
from superfs.dataserver.chunk_format import MAX_CHUNK
from superfs.errors import FsError
from superfs.v1 import superfs_pb2 as pb

log = logging.getLogger(__name__)

REFRESH_MIN_INTERVAL_S = 0.2  # a burst of failing peer calls asks the dir server once
UNKNOWN_PEER_REFRESH_S = 2.0  # a peer missing from the map: ask again at most this often


class ClusterView:
    """The current ClusterMap and the routing questions asked of it."""

    def __init__(self, shard_id: int, channels: Channels, *, cluster_map: pb.ClusterMap | None = None,
                 dir_server: str | None = None, timeout_s: float = 5.0) -> None:
        self.shard_id = shard_id
        self.channels = channels
        self.dir_server = dir_server
        self.timeout_s = timeout_s
        self.session_address = ""  # this shard's session endpoint, registered with its address
        self._map: pb.ClusterMap | None = None
        self._owned: frozenset[int] = frozenset()
        self._shards: dict[int, str] = {}
        self._data: dict[int, str] = {}
        self._last_refresh = 0.0
        self._refreshing: asyncio.Task[None] | None = None
        if cluster_map is not None:
            self.set_map(cluster_map)

    # ---------------------------------------------------------------- state

    def set_map(self, cmap: pb.ClusterMap) -> None:
        """Adopt ``cmap`` unless it is older than the one held."""
        if self._map is not None and cmap.epoch < self._map.epoch:
            return
        if cmap.num_partitions == 0 or len(cmap.partition_shard) != cmap.num_partitions:
            log.warning("ignoring a cluster map with %d partitions and %d owners",
                        cmap.num_partitions, len(cmap.partition_shard))
            return
        changed = self._map is None or cmap.epoch != self._map.epoch
        self._map = cmap
        self._owned = frozenset(p for p, s in enumerate(cmap.partition_shard) if s == self.shard_id)
        self._shards = {s.id: s.address for s in cmap.shards}
        self._data = {s.id: s.address for s in cmap.data_servers}
        if changed:
            log.info("shard %d: cluster map epoch %d, %d of %d partitions owned here",
                     self.shard_id, cmap.epoch, len(self._owned), cmap.num_partitions)

    @property
    def ready(self) -> bool:
        """Has a cluster map been adopted?"""
        return self._map is not None

    @property
    def map(self) -> pb.ClusterMap:
        if self._map is None:
            raise FsError(errno.EAGAIN, "shard has no cluster map yet")
        return self._map

    @property
    def inline_threshold(self) -> int:
        return self.map.inline_threshold

    # -------------------------------------------------------------- routing

    def entry_partition(self, parent: int, name: str) -> int:
        return routing.entry_partition(parent, name, self.map.num_partitions)

    def owns_entry(self, parent: int, name: str) -> bool:
        return self.entry_partition(parent, name) in self._owned

    def check_entry(self, parent: int, name: str) -> int:
        """The entry's partition; ESTALE if this shard does not own it."""
        p = self.entry_partition(parent, name)
        if p not in self._owned:
            self.refresh_soon()
            raise FsError(errno.ESTALE, f"entry partition {p} is not on shard {self.shard_id}")
        return p

    def ino_home(self, ino: int) -> int:
        """The partition holding the record of file inode ``ino``; ENOENT if not a file inode."""
        if routing.is_dir_ino(ino) or ino == 0:
            raise FsError(errno.ENOENT, f"{ino} is not a file inode")
        p = routing.ino_partition(ino)
        if p >= self.map.num_partitions:
            raise FsError(errno.ENOENT, f"inode {ino} has no partition {p}")
        return p

    def owns_ino(self, ino: int) -> bool:
        return self.ino_home(ino) in self._owned

    def check_ino(self, ino: int) -> None:
        p = self.ino_home(ino)
        if p not in self._owned:
            self.refresh_soon()
            raise FsError(errno.ESTALE, f"inode partition {p} is not on shard {self.shard_id}")

    def shard_of_entry(self, parent: int, name: str) -> int:
        return self.map.partition_shard[self.entry_partition(parent, name)]

    def shard_of_ino(self, ino: int) -> int:
        return self.map.partition_shard[self.ino_home(ino)]

    async def call_peer(self, kind: str, server_id: int, method: str, request: Any) -> Any:
        """One RPC to shard or data server ``server_id``, through the current map.

        A peer missing from the map (it registered after our last refresh),
        or failing to connect (it may have restarted on another address),
        makes us fetch the map at once; the call is retried only if the
        peer's address changed, so a slow peer is never asked twice.
        """
        table = self._shards if kind == "shard" else self._data
        address = table.get(server_id)
        if not address:
            await self.refresh_if_older(UNKNOWN_PEER_REFRESH_S)
            table = self._shards if kind == "shard" else self._data
            address = table.get(server_id)
            if not address:
                raise FsError(errno.EIO, f"{kind} {server_id} is not in the cluster map")
        try:
            return await call(getattr(self._stub(kind, address), method), request, self.timeout_s)
        except FsError as e:
            if e.errno in (errno.ESTALE, errno.ETIMEDOUT):
                self.refresh_soon()
            if e.errno != errno.EIO:
                raise
            await self.refresh_if_older(REFRESH_MIN_INTERVAL_S)  # many failing calls ask once
            table = self._shards if kind == "shard" else self._data
            moved = table.get(server_id)
            if not moved or moved == address:
                raise
            log.info("%s %d moved from %s to %s; retrying", kind, server_id, address, moved)
            return await call(getattr(self._stub(kind, moved), method), request, self.timeout_s)

    def has_data_server(self, server_id: int) -> bool:
        return server_id in self._data

    async def check_layout(self, layout: list[int], chunk_size: int) -> None:
        """EINVAL unless ``layout`` names distinct data servers the cluster map knows.

        A client chooses a chunked file's layout; the shard keeps it and later
        reclaims the chunks from exactly those servers, so a layout naming a
        server that does not exist must never get in.
        """
        if not 0 < chunk_size <= MAX_CHUNK:
            raise FsError(errno.EINVAL, f"chunk size {chunk_size} is outside 1..{MAX_CHUNK}")
        if not layout:
            raise FsError(errno.EINVAL, "a chunked file needs at least one data server")
        if len(set(layout)) != len(layout):
            raise FsError(errno.EINVAL, f"layout {layout} names a data server twice")
        unknown = [s for s in layout if s not in self._data]
        if unknown:
            # it may have registered just now (a cluster that just started: this shard fetched its map
            # before the last data server registered); a refusal here fails a client's write, so ask
            await self.refresh()
            unknown = [s for s in layout if s not in self._data]
        if unknown:
            raise FsError(errno.EINVAL, f"layout names data server(s) {unknown}, which the cluster map "
                                        f"does not list ({sorted(self._data)})")

    async def refresh_if_older(self, age_s: float) -> None:
        """Fetch the map unless it was fetched within ``age_s``."""
        if time.monotonic() - self._last_refresh >= age_s:
            await self.refresh()

    def _stub(self, kind: str, address: str) -> Any:
        return self.channels.shard(address) if kind == "shard" else self.channels.data(address)

    async def dir_exists(self, dir_ino: int) -> bool:
        """Does the dir server still have directory ``dir_ino``? (errors other than ENOENT raise)"""
        assert self.dir_server is not None
        req = pb.DirRequest(ino=dir_ino, creds=pb.Creds(uid=0, gid=0))
        try:
            await call(self.channels.dir(self.dir_server).GetDir, req, self.timeout_s)
        except FsError as e:
            if e.errno == errno.ENOENT:
                return False
            raise
        return True

    async def dir_intent_targets(self) -> set[int]:
        """Every directory a dir server intent names (mkdir/rmdir/renamedir in flight)."""
        assert self.dir_server is not None
        reply = await call(self.channels.dir(self.dir_server).ListDirIntents, pb.Empty(), self.timeout_s)
        return {x for i in reply.intents for x in (i.ino, i.parent, i.dst_parent, i.replaced_ino) if x}

    # -------------------------------------------------------------- refresh

    async def register(self, address: str) -> None:
        """Announce this shard to the dir server and adopt the map it returns."""
        assert self.dir_server is not None
        req = pb.RegisterServerRequest(kind="shard", server=pb.ServerInfo(
            id=self.shard_id, address=address, session_address=self.session_address))
        cmap = await call(self.channels.dir(self.dir_server).RegisterServer, req, self.timeout_s)
        self.set_map(cmap)

    async def refresh(self) -> None:
        """Fetch the map from the dir server now (no-op without one: tests)."""
        if self.dir_server is None:
            return
        self._last_refresh = time.monotonic()
        try:
            cmap = await call(self.channels.dir(self.dir_server).GetClusterMap,
                              pb.GetClusterMapRequest(), self.timeout_s)
        except FsError as e:
            log.debug("cluster map refresh failed: %s", e)
            return
        self.set_map(cmap)

    def refresh_soon(self) -> None:
        """Ask for a fresh map in the background (a peer failed, or a request was misrouted)."""
        if self.dir_server is None or (self._refreshing is not None and not self._refreshing.done()):
            return
        if time.monotonic() - self._last_refresh < REFRESH_MIN_INTERVAL_S:
            return
        try:
            self._refreshing = asyncio.get_running_loop().create_task(self.refresh())
        except RuntimeError:  # no loop: a synchronous caller, nothing to schedule on
            pass
