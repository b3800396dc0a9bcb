"""The one view of the cluster map every process routes by, and the one rule for retries.

The dir server publishes the map (which shard owns each partition, where
every daemon listens, its session endpoint); the client library, the shards,
fsck and the dir server itself (over its own registry, superfs/dirserver/
cluster_map.py) route through a :class:`ClusterView`:

- a map is adopted only if its epoch is not older than the one held (a
  reply that was overtaken by a newer one cannot move routing back);
- routing: entry -> partition -> shard, inode -> home partition -> shard,
  chunk -> replicas; a server id -> its address; the session endpoints of
  every adopted map are told to :class:`~superfs.rpc.channels.Channels`;
  a data server's byte path (:meth:`byte_target`; a server that restarted or
  moved has its old idle byte connections dropped);
- refreshes are coalesced (callers join the fetch in flight) and
  rate-limited (``min_age_s``: a burst of failures asks the dir server once);
- :meth:`entry_shard`, :meth:`home_shard`, :meth:`shard` and :meth:`data`
  hand out typed wrappers (superfs/rpc/stubs.py) whose every call follows
  ONE rule for what is sent again:

  * ESTALE from a shard the view chose by partition (it does not own that
    partition: it refused before doing anything): refresh, route again,
    send once more; and while the map lists a partition move and the shard
    says the call was misrouted (errors.MISROUTED: a move's source refuses
    changes during "freeze" and "copy", dirserver/moves.py), again after a
    short wait and a fresh map, until the move lands (up to MOVE_WAIT_S): a
    move is never seen by applications; but an ESTALE for a directory
    capability older than the directory's lease fence (errors.FENCED) goes
    to the caller at once, which fetches a fresh capability (the map is not
    what is stale);
  * the server could not be reached (EIO): refresh, and send again only if
    the map now puts that server at another address, and a mutation only if
    it is known never to have left this process (CallNotSent);
  * anything else (and ETIMEDOUT, which also asks for a fresh map in the
    background) goes to the caller: a mutation is never sent twice on a guess.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import time
from typing import Any, Awaitable, Callable

from superfs import routing
from superfs.errors import FsError, is_fenced, is_misrouted
from superfs.rpc.bytepath import ByteTarget
from superfs.rpc.channels import Channels
from superfs.rpc.client import CallNotSent
from superfs.rpc.methods import METHODS
from superfs.rpc.stubs import DataRpc, DirRpc, ShardRpc
from superfs.v1 import superfs_pb2 as pb
from superfs.v1 import superfs_pb2_grpc as pbg

log = logging.getLogger(__name__)

REFRESH_MIN_INTERVAL_S = 0.2   # a burst of failing calls asks the dir server once
UNKNOWN_PEER_REFRESH_S = 0.25  # a server missing from the map: ask again at most this often
UNREACHABLE_REFRESH_S = 1.0    # a session could not reach its daemon: it may have moved
MOVE_WAIT_S = 60.0             # a call refused by a partition being moved is sent again this long
MOVE_BACKOFF_MAX_S = 0.25
FROZEN_STEPS = ("freeze", "copy")  # a move's steps during which its source refuses changes
# ... and the step during which it refuses reads too: once the copy is done the flip follows, and
# the target may learn of it (its own map refresh) before the source does; a source still serving
# reads then would answer from its old copy what the target has already changed
SEALED_STEPS = ("copy",)

MapSource = Callable[[], Awaitable[pb.ClusterMap]]


class _Routed:
    """The Caller of a typed wrapper routed by the view: by partition, or to one server id."""

    __slots__ = ("view", "kind", "partition", "server_id")

    def __init__(self, view: "ClusterView", kind: str, *, partition: int | None = None,
                 server_id: int | None = None) -> None:
        self.view = view
        self.kind = kind
        self.partition = partition
        self.server_id = server_id

    def target(self) -> int:
        if self.partition is not None:
            return self.view.map.partition_shard[self.partition]
        assert self.server_id is not None
        return self.server_id

    async def call(self, full: str, request: Any, reply_cls: Any, timeout_s: float | None) -> Any:
        return await self.view._call(self, full, request, reply_cls, timeout_s)


class _DirCaller:
    """The Caller of the view's DirRpc: the dir server at its configured address, counted."""

    __slots__ = ("view",)

    def __init__(self, view: "ClusterView") -> None:
        self.view = view

    async def call(self, full: str, request: Any, reply_cls: Any, timeout_s: float | None) -> Any:
        view = self.view
        if view.dir_address is None:
            raise FsError(errno.EIO, f"{full}: this process has no dir server to ask")
        view.dir_rpcs += 1
        return await view.channels.caller(view.dir_address).call(full, request, reply_cls, timeout_s)


class ClusterView:
    """The current ClusterMap, routing by it, and calls that follow the retry rule.

    ``dir_address``: where maps come from (GetClusterMap) and where :attr:`dir` calls go;
    ``source``: another way to get the current map (the dir server's own registry);
    ``cluster_map``: a map to start with (tests build views with a fixed map and no source).
    """

    def __init__(self, channels: Channels, *, dir_address: str | None = None,
                 cluster_map: pb.ClusterMap | None = None, source: MapSource | None = None) -> None:
        self.channels = channels
        self.dir_address = dir_address
        self.dir = DirRpc(_DirCaller(self))
        self.dir_rpcs = 0  # RPCs sent to the dir server (benchmarks report it)
        self._source = source
        self._map: pb.ClusterMap | None = None
        self._shards: dict[int, str] = {}
        self._data: dict[int, str] = {}
        self._bytes: dict[int, ByteTarget] = {}
        self._last_refresh = float("-inf")
        self._refreshing: asyncio.Task[None] | None = None
        self._background: asyncio.Task[bool] | None = None
        self._by_partition: dict[int, ShardRpc] = {}
        self._shard_rpcs: dict[int, ShardRpc] = {}
        self._data_rpcs: dict[int, DataRpc] = {}
        channels.on_unreachable = lambda: self.refresh_soon(min_age_s=UNREACHABLE_REFRESH_S)
        if cluster_map is not None:
            self.adopt(cluster_map)

    @property
    def timeout_s(self) -> float:
        return self.channels.timeout_s

    # ------------------------------------------------------------------ map

    def adopt(self, cmap: pb.ClusterMap) -> bool:
        """Take ``cmap`` unless it is older than the map held (or malformed); whether it was taken."""
        if self._map is not None and cmap.epoch < self._map.epoch:
            return False
        if cmap.num_partitions == 0 or len(cmap.partition_shard) != cmap.num_partitions:
            log.warning("ignoring a cluster map with %d partitions and %d owners",
                        cmap.num_partitions, len(cmap.partition_shard))
            return False
        changed = self._map is None or cmap.epoch != self._map.epoch
        self._map = cmap
        self._shards = {s.id: s.address for s in cmap.shards}
        self._data = {d.id: d.address for d in cmap.data_servers}
        fresh = {d.id: ByteTarget(d.bytes_address, d.bytes_local) for d in cmap.data_servers if d.bytes_address}
        for sid, old in self._bytes.items():
            if fresh.get(sid) != old:
                self.channels.forget_byte_target(old)  # restarted or moved: its old connections are dead
        self._bytes = fresh
        endpoints = {**{s.address: s.session_address for s in cmap.shards},
                     **{d.address: d.session_address for d in cmap.data_servers}}
        if self.dir_address is not None:
            endpoints[self.dir_address] = cmap.dir_session_address
        self.channels.learn_sessions(endpoints)
        self._adopted(cmap, changed)
        return True

    def _adopted(self, cmap: pb.ClusterMap, changed: bool) -> None:
        """A map was adopted (``changed``: of another epoch): for views that keep more."""

    @property
    def ready(self) -> bool:
        """Has a cluster map been adopted?"""
        return self._map is not None

    @property
    def map(self) -> pb.ClusterMap:
        """The current map (do not change it); EAGAIN before the first one."""
        if self._map is None:
            raise FsError(errno.EAGAIN, "no cluster map yet")
        return self._map

    @property
    def inline_threshold(self) -> int:
        return self.map.inline_threshold

    # -------------------------------------------------------------- refresh

    async def _fetch(self) -> pb.ClusterMap:
        return await self.dir.get_cluster_map(pb.GetClusterMapRequest())

    def _map_source(self) -> MapSource | None:
        return self._source or (self._fetch if self.dir_address is not None else None)

    async def refresh(self, *, min_age_s: float = 0.0) -> bool:
        """Fetch the map now, joining a fetch in flight, unless one began within ``min_age_s``.

        Whether a fetch was made or joined; FsError if it failed. No-op without a source.
        """
        source = self._map_source()
        if source is None:
            return False
        task = self._refreshing
        if task is None or task.done():
            if time.monotonic() - self._last_refresh < min_age_s:
                return False
            self._last_refresh = time.monotonic()
            task = self._refreshing = asyncio.get_running_loop().create_task(self._refresh_now(source))
            task.add_done_callback(_retrieve)
        await asyncio.shield(task)
        return True

    async def _refresh_now(self, source: MapSource) -> None:
        self.adopt(await source())

    async def refresh_quietly(self, *, min_age_s: float = 0.0) -> bool:
        """:meth:`refresh`, a failure logged (routing goes on with the map held)."""
        try:
            return await self.refresh(min_age_s=min_age_s)
        except FsError as e:
            log.debug("cluster map refresh failed: %s", e)
            return False

    async def refresh_since(self, *, min_age_s: float = UNKNOWN_PEER_REFRESH_S) -> bool:
        """A map fetched from now on (a server the caller heard of may have registered after the last
        fetch): wait out the rate limit ``min_age_s`` since the last fetch, then fetch (quietly)."""
        wait = min_age_s - (time.monotonic() - self._last_refresh)
        if wait > 0:
            await asyncio.sleep(wait)
        return await self.refresh_quietly(min_age_s=min_age_s)

    def refresh_soon(self, *, min_age_s: float = REFRESH_MIN_INTERVAL_S) -> None:
        """Ask for a fresh map in the background (a call failed, or a request was misrouted)."""
        if self._map_source() is None or (self._background is not None and not self._background.done()):
            return
        if time.monotonic() - self._last_refresh < min_age_s:
            return
        try:
            self._background = asyncio.get_running_loop().create_task(self.refresh_quietly(min_age_s=min_age_s))
        except RuntimeError:  # no loop: a synchronous caller, nothing to schedule on
            pass

    # -------------------------------------------------------------- routing

    def entry_partition(self, parent: int, name: str) -> int:
        return routing.entry_partition(parent, name, self.map.num_partitions)

    def ino_partition(self, ino: int) -> int:
        """The partition holding the record of file inode ``ino``; ENOENT if not a file inode."""
        if routing.is_dir_ino(ino) or ino == 0:
            raise FsError(errno.ENOENT, f"{ino} is not a file inode")
        p = routing.ino_partition(ino)
        if p >= self.map.num_partitions:
            raise FsError(errno.ENOENT, f"inode {ino} has no partition {p}")
        return p

    def shard_of_entry(self, parent: int, name: str) -> int:
        return self.map.partition_shard[self.entry_partition(parent, name)]

    def shard_of_ino(self, ino: int) -> int:
        return self.map.partition_shard[self.ino_partition(ino)]

    def shard_ids(self) -> list[int]:
        """Shards registered in the map."""
        return sorted(self._shards)

    def partition_shards(self) -> list[int]:
        """Shards owning a partition (registered or not)."""
        return sorted(set(self.map.partition_shard))

    def shard_of_partition(self, partition: int) -> int:
        return int(self.map.partition_shard[partition])

    def partitions_of(self, shard_id: int) -> list[int]:
        """The partitions shard ``shard_id`` owns."""
        return [p for p, s in enumerate(self.map.partition_shard) if s == shard_id]

    def data_server_ids(self) -> list[int]:
        return sorted(self._data)

    def active_data_server_ids(self) -> list[int]:
        """The data servers new files' chunks may go to: not draining, dead or removed (superfs/rebalance)."""
        return sorted(d.id for d in self.map.data_servers if d.state in ("", "active"))

    def has_data_server(self, server_id: int) -> bool:
        return server_id in self._data

    def byte_target(self, server_id: int) -> ByteTarget | None:
        """Where data server ``server_id`` takes chunk bytes (None: it has no byte path; use gRPC)."""
        return self._bytes.get(server_id)

    def replicas_of(self, ino: int, index: int, layout: list[int]) -> list[int]:
        return routing.chunk_replicas(ino, index, layout, self.map.replicas or 1)

    def address_of(self, kind: str, server_id: int) -> str | None:
        """Where shard (``kind`` "shard") or data server ("data") ``server_id`` listens, if in the map."""
        return (self._shards if kind == "shard" else self._data).get(server_id)

    # ------------------------------------------------------------- wrappers

    def entry_shard(self, parent: int, name: str) -> ShardRpc:
        """The shard owning entry (parent, name), as the map says when each call is sent."""
        return self._partition_rpc(self.entry_partition(parent, name))

    def home_shard(self, ino: int) -> ShardRpc:
        """The shard holding the record of file inode ``ino``."""
        return self._partition_rpc(self.ino_partition(ino))

    def _partition_rpc(self, partition: int) -> ShardRpc:
        rpc = self._by_partition.get(partition)
        if rpc is None:
            rpc = self._by_partition[partition] = ShardRpc(_Routed(self, "shard", partition=partition))
        return rpc

    def shard(self, shard_id: int) -> ShardRpc:
        rpc = self._shard_rpcs.get(shard_id)
        if rpc is None:
            rpc = self._shard_rpcs[shard_id] = ShardRpc(_Routed(self, "shard", server_id=shard_id))
        return rpc

    def data(self, server_id: int) -> DataRpc:
        rpc = self._data_rpcs.get(server_id)
        if rpc is None:
            rpc = self._data_rpcs[server_id] = DataRpc(_Routed(self, "data", server_id=server_id))
        return rpc

    def data_streams(self, server_id: int) -> pbg.DataServiceStub:
        """The gRPC stub for the streamed chunk RPCs of data server ``server_id``."""
        address = self._data.get(server_id)
        if not address:
            raise FsError(errno.EIO, f"data server {server_id} is not in the cluster map")
        return self.channels.data_streams(address)

    def all_shards(self) -> list[ShardRpc]:
        return [self.shard(i) for i in sorted(self._shards)]

    def all_data_servers(self) -> list[DataRpc]:
        return [self.data(i) for i in sorted(self._data)]

    # ------------------------------------------------------ the retry rule

    async def _call(self, route: _Routed, full: str, request: Any, reply_cls: Any, timeout_s: float | None) -> Any:
        server_id = route.target()
        address = self.address_of(route.kind, server_id) or await self._unknown(route.kind, server_id)
        try:
            return await self.channels.caller(address).call(full, request, reply_cls, timeout_s)
        except FsError as e:
            again = await self._again(route, server_id, address, full, e)
            if again is None:
                raise
        if route.partition is None:
            return await self.channels.caller(again).call(full, request, reply_cls, timeout_s)
        return await self._through_moves(route, again, full, request, reply_cls, timeout_s)

    def moving(self) -> bool:
        """Does the map held list a partition move (its source may refuse changes, its target
        may not have heard of the flip yet)?"""
        return self._map is not None and len(self._map.moves) > 0

    async def after_stale(self, attempt: int) -> None:
        """Before sending again a call refused with ESTALE: a map fetched after the refusal, and
        while a partition is frozen by a move, a short wait (growing with ``attempt``) first."""
        if self.moving():
            await asyncio.sleep(min(MOVE_BACKOFF_MAX_S, 0.02 * 2 ** attempt))
        await self.refresh_since(min_age_s=REFRESH_MIN_INTERVAL_S)

    async def _through_moves(self, route: _Routed, address: str, full: str, request: Any, reply_cls: Any,
                             timeout_s: float | None) -> Any:
        """The second send of a call refused with ESTALE, and more while the map moves the call's
        partition elsewhere, or lists a move and the shard said the call is misrouted (a move's
        source refuses changes until the flip; its target may adopt the flipped map a moment
        after the dir server published it), each after a map fetched since the refusal, for up
        to MOVE_WAIT_S."""
        deadline = time.monotonic() + MOVE_WAIT_S
        attempt = 0
        target = route.target()
        while True:
            try:
                return await self.channels.caller(address).call(full, request, reply_cls, timeout_s)
            except FsError as e:
                if e.errno != errno.ESTALE or is_fenced(e) or time.monotonic() > deadline:
                    raise
                sent_to = target
                await self.after_stale(attempt)
                target = route.target()
                if target == sent_to and not (self.moving() and is_misrouted(e)):
                    raise
            attempt += 1
            address = self.address_of(route.kind, target) or await self._unknown(route.kind, target)

    async def _unknown(self, kind: str, server_id: int) -> str:
        await self.refresh_since()  # it may have registered since the last fetch
        address = self.address_of(kind, server_id)
        if not address:
            what = "shard" if kind == "shard" else "data server"
            raise FsError(errno.EIO, f"{what} {server_id} is not in the cluster map (not registered)")
        return address

    async def _again(self, route: _Routed, server_id: int, address: str, full: str, e: FsError) -> str | None:
        """Where to send a failed call once more, or None: the rule of the module docstring."""
        if is_fenced(e):
            return None  # the caller's directory capability is stale, not its map
        if e.errno == errno.ESTALE and route.partition is not None:
            await self.refresh_quietly(min_age_s=REFRESH_MIN_INTERVAL_S)
            target = route.target()
            return self.address_of(route.kind, target) or await self._unknown(route.kind, target)
        if e.errno in (errno.ESTALE, errno.ETIMEDOUT):
            self.refresh_soon()
            return None
        if e.errno != errno.EIO:
            return None
        await self.refresh_quietly(min_age_s=REFRESH_MIN_INTERVAL_S)
        moved = self.address_of(route.kind, server_id)
        if not moved or moved == address:
            return None
        if METHODS[full].mutation and not isinstance(e, CallNotSent):
            log.info("%s %d moved from %s to %s; not sending %s again: it may have been applied there",
                     route.kind, server_id, address, moved, full)
            return None
        log.info("%s %d moved from %s to %s; sending %s again", route.kind, server_id, address, moved, full)
        return moved


def _retrieve(task: "asyncio.Task[Any]") -> None:
    """Mark a refresh's failure seen: its callers got it (or were cancelled meanwhile)."""
    if not task.cancelled():
        task.exception()
