"""What a shard keeps of the cluster beyond routing: the partitions it owns, its registration.

Routing, peers and retries are the one view every process uses
(:class:`superfs.rpc.cluster_map.ClusterView`); a shard adds the partitions
it owns (and answers ESTALE for the others, asking for a fresh map), its
registration with the dir server, the check of a chunked file's layout, and
the two questions its seal collection asks the dir server. The map comes
from the dir server (RegisterServer at start, then GetClusterMap every few
seconds and whenever a peer call fails). Tests build a view with a fixed map
and no dir server.
"""
from __future__ import annotations

import errno
import logging
from typing import Callable

from superfs.dataserver.chunk_format import MAX_CHUNK
from superfs.errors import MISROUTED, FsError
from superfs.rpc.channels import Channels
from superfs.rpc.cluster_map import FROZEN_STEPS, SEALED_STEPS, ClusterView
from superfs.v1 import superfs_pb2 as pb

log = logging.getLogger(__name__)

LAYOUT_MAP_AGE_S = 1.0  # a new layout is checked against data server states at most this old



class ShardCluster(ClusterView):
    """The cluster view of shard ``shard_id``."""

    def __init__(self, shard_id: int, channels: Channels, *, cluster_map: pb.ClusterMap | None = None,
                 dir_server: str | None = None) -> None:
        self.shard_id = shard_id
        self.session_address = ""
        self._first_map = True  # this shard's session endpoint, registered with its address
        self._owned: frozenset[int] = frozenset()
        self._frozen: frozenset[int] = frozenset()
        self._sealed: frozenset[int] = frozenset()   # frozen ones whose copy is done: no reads either
        # told (new frozen set, first map?) whenever the partitions frozen here change
        self.on_frozen: Callable[[frozenset[int], bool], None] | None = None
        super().__init__(channels, dir_address=dir_server, cluster_map=cluster_map)

    @property
    def dir_server(self) -> str | None:
        return self.dir_address

    @dir_server.setter
    def dir_server(self, address: str | None) -> None:
        self.dir_address = address

    def _adopted(self, cmap: pb.ClusterMap, changed: bool) -> None:
        first = self._first_map
        self._first_map = False
        owned = frozenset(p for p, s in enumerate(cmap.partition_shard) if s == self.shard_id)
        if owned != self._owned:
            log.info("shard %d: cluster map epoch %d, %d of %d partitions owned here",
                     self.shard_id, cmap.epoch, len(owned), cmap.num_partitions)
        self._owned = owned
        frozen = frozenset(m.partition for m in cmap.moves if m.source == self.shard_id and m.step in FROZEN_STEPS)
        self._sealed = frozenset(m.partition for m in cmap.moves
                                 if m.source == self.shard_id and m.step in SEALED_STEPS)
        if frozen != self._frozen or first:
            self._frozen = frozen
            if self.on_frozen is not None:
                self.on_frozen(frozen, first)

    # ------------------------------------------------------------ ownership

    @property
    def owned_partitions(self) -> frozenset[int]:
        return self._owned

    @property
    def frozen_partitions(self) -> frozenset[int]:
        """Owned partitions being moved away: changes refused (ESTALE); reads served until the copy
        is done (SEALED_STEPS), refused after."""
        return self._frozen

    def _check_partition(self, p: int, what: str, read: bool) -> None:
        if p not in self._owned:
            self.refresh_soon()
            raise FsError(errno.ESTALE, f"{MISROUTED}{what} partition {p} is not on shard {self.shard_id}")
        if p in self._frozen and (not read or p in self._sealed):
            self.refresh_soon()
            raise FsError(errno.ESTALE, f"{MISROUTED}{what} partition {p} is moving to another shard")

    def owns_entry(self, parent: int, name: str) -> bool:
        return self.entry_partition(parent, name) in self._owned

    def check_entry(self, parent: int, name: str, *, read: bool = False) -> int:
        """The entry's partition; ESTALE if this shard does not own it (or, unless ``read``, it is frozen)."""
        p = self.entry_partition(parent, name)
        self._check_partition(p, "entry", read)
        return p

    def ino_home(self, ino: int) -> int:
        """The partition holding the record of file inode ``ino``; ENOENT if not a file inode."""
        return self.ino_partition(ino)

    def owns_ino(self, ino: int) -> bool:
        return self.ino_partition(ino) in self._owned

    def check_ino(self, ino: int, *, read: bool = False) -> None:
        self._check_partition(self.ino_partition(ino), "inode", read)

    # --------------------------------------------------------------- layouts

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
        unknown = [s for s in layout if not self.has_data_server(s)]
        if unknown:
            await self.refresh_since()  # it may have registered after our last fetch
            unknown = [s for s in layout if not self.has_data_server(s)]
        if unknown:
            raise FsError(errno.EINVAL, f"layout names data server(s) {unknown}, which the cluster map "
                                        f"does not list ({self.data_server_ids()})")
        # a server being drained or re-replicated takes no new chunks; the map held is at most
        # LAYOUT_MAP_AGE_S old, so a drain that waits longer after the state change (and then
        # scans) sees every file placed on it (superfs/rebalance/passes.py)
        await self.refresh_quietly(min_age_s=LAYOUT_MAP_AGE_S)
        closed = [s for s in layout if s not in self.active_data_server_ids()]
        if closed:  # the client's map may be the newer one (a server made active again)
            await self.refresh_since(min_age_s=0.1)
            closed = [s for s in layout if s not in self.active_data_server_ids()]
        if closed:
            raise FsError(errno.ESTALE, f"layout names data server(s) {closed}, which take no new chunks "
                                        "(draining, dead or removed): fetch the cluster map again")

    # ------------------------------------------------------ the dir server

    async def dir_exists(self, dir_ino: int) -> bool:
        """Does the dir server still have directory ``dir_ino``? (errors other than ENOENT raise)"""
        req = pb.DirRequest(ino=dir_ino, creds=pb.Creds(uid=0, gid=0))
        try:
            await self.dir.get_dir(req)
        except FsError as e:
            if e.errno == errno.ENOENT:
                return False
            raise
        return True

    async def dir_intent_targets(self) -> set[int]:
        """Every directory a dir server intent names (mkdir/rmdir/renamedir in flight)."""
        reply = await self.dir.list_dir_intents(pb.Empty())
        return {x for i in reply.intents for x in (i.ino, i.parent, i.dst_parent, i.replaced_ino) if x}

    async def register(self, address: str) -> None:
        """Announce this shard to the dir server and adopt the map it returns."""
        req = pb.RegisterServerRequest(kind="shard", server=pb.ServerInfo(
            id=self.shard_id, address=address, session_address=self.session_address))
        self.adopt(await self.dir.register_server(req))
