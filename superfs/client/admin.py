"""Cluster administration calls: what ``superfs fsck`` and ``superfs repair`` need.

The file-system API (:class:`AsyncFs`) never shows a shard's raw contents,
the intent logs or the work queues; fsck must see all of them to check a
cluster, and must be able to apply a few primitive fixes. Those calls live
here, in the client library (the only code that talks to daemons), on top
of one :class:`AsyncFs` connection: same channels, same routing, same
credentials.

Every method raises :class:`FsError` like the rest of the client library.
Listings are paged: the ``*_pages`` generators yield one reply's records at
a time (fsck streams them to disk, whatever the size of the cluster); the
list-returning forms collect them, for small uses. A shard or data server
is named by its id in the cluster map.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import uuid
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable, TypeVar

from superfs.client.fs import AsyncFs
from superfs.client.meta import Creds
from superfs.errors import FsError
from superfs.v1 import superfs_pb2 as pb

log = logging.getLogger(__name__)

T = TypeVar("T")

ROOT = Creds(0, 0)
PAGE = 5000
CHUNK_PAGE = 10000


@dataclass(frozen=True)
class ServerRef:
    """A shard or data server of the cluster map."""

    kind: str  # "shard" or "data"
    id: int
    address: str

    def __str__(self) -> str:
        return f"{self.kind} {self.id} ({self.address})"


class AdminClient:
    """Administrative calls over one cluster connection (acting as root)."""

    def __init__(self, fs: AsyncFs) -> None:
        self.fs = fs
        self.cluster = fs.cluster
        self.channels = fs.channels

    @classmethod
    async def connect(cls, address: str, *, timeout_s: float = 5.0) -> "AdminClient":
        fs = AsyncFs(address, timeout_s=timeout_s, creds=ROOT, umask=0)
        await fs.start()
        return cls(fs)

    async def close(self) -> None:
        await self.fs.close()

    @property
    def timeout(self) -> float:
        return self.channels.timeout_s

    # ---------------------------------------------------------- cluster map

    async def cluster_map(self) -> pb.ClusterMap:
        await self.cluster.refresh()
        return self.cluster.map

    def shards(self) -> list[ServerRef]:
        return [ServerRef("shard", s.id, s.address) for s in sorted(self.cluster.map.shards, key=lambda s: s.id)]

    def data_servers(self) -> list[ServerRef]:
        """The data servers of the map, less those removed (drained or re-replicated: they hold nothing)."""
        return [ServerRef("data", d.id, d.address)
                for d in sorted(self.cluster.map.data_servers, key=lambda d: d.id) if d.state != "removed"]

    def shard_of_entry(self, parent: int, name: str) -> int:
        return self.cluster.shard_of_entry(parent, name)

    def shard_of_ino(self, ino: int) -> int:
        return self.cluster.shard_of_ino(ino)

    async def move_partition(self, partition: int, target: int, timeout_s: float) -> pb.PartitionMove:
        """Move ``partition`` to shard ``target`` (the dir server runs every step; dirserver/moves.py)."""
        req = pb.MovePartitionRequest(partition=partition, target=target)
        return await self.cluster.dir.move_partition(req, timeout_s)

    async def remove_shard(self, shard_id: int) -> pb.ClusterMap:
        cmap = await self.cluster.dir.remove_shard(pb.RemoveShardRequest(shard_id=shard_id))
        self.cluster.adopt(cmap)
        return cmap

    async def shard_stats(self, shard_id: int) -> pb.ShardStatsReply:
        """A shard's Stats (EIO/ETIMEDOUT when it is down)."""
        return await self.cluster.shard(shard_id).stats(pb.Empty())

    @property
    def dir_address(self) -> str:
        return self.fs.cluster.dir_address or ""

    # ----------------------------------------------------------- dir server

    async def all_dirs(self) -> list[pb.DirInfo]:
        return [d async for page in self.dir_pages() for d in page]

    async def dir_pages(self) -> AsyncIterator[list[pb.DirInfo]]:
        after = 0
        while True:
            reply = await self.cluster.dir.list_all_dirs(pb.ListAllDirsRequest(after_ino=after, limit=PAGE))
            yield list(reply.dirs)
            if not reply.more or not reply.dirs:
                return
            after = reply.dirs[-1].ino

    async def dir_intents(self) -> list[pb.DirIntent]:
        return list((await self.cluster.dir.list_dir_intents(pb.Empty())).intents)

    async def settle_dir_intents(self) -> list[pb.DirIntent]:
        """Have the dir server try every pending intent now; the ones still pending."""
        return list((await self.cluster.dir.settle_dir_intents(pb.Empty())).intents)

    async def recount_dir(self, ino: int) -> pb.Attr:
        return await self.cluster.dir.recount_dir(pb.DirRequest(ino=ino))

    async def mkdir_p(self, parent: int, name: str, mode: int = 0o700) -> int:
        """Inode of directory ``name`` in ``parent``, created if missing."""
        try:
            reply = await self.cluster.dir.lookup_dir(pb.LookupDirRequest(parent_ino=parent, name=name,
                                                                          creds=ROOT.pb()))
            return int(reply.dir.ino)
        except FsError as e:
            if e.errno != errno.ENOENT:
                raise
        node = await self.fs.meta.mkdir(parent, name, mode, ROOT)
        return node.ino

    # --------------------------------------------------------------- shards

    async def scan_entries(self, shard_id: int) -> list[pb.EntryRecord]:
        return [r async for page in self.entry_pages(shard_id) for r in page]

    async def scan_inodes(self, shard_id: int) -> list[pb.FileInfo]:
        return [r async for page in self.inode_pages(shard_id) for r in page]

    async def entry_pages(self, shard_id: int) -> AsyncIterator[list[pb.EntryRecord]]:
        """Every name record of one shard (ScanEntries), a page at a time."""
        shard = self.cluster.shard(shard_id)
        after = b""
        while True:
            reply = await shard.scan_entries(pb.ScanRequest(after=after, limit=PAGE))
            yield list(reply.entries)
            if not reply.more:
                return
            after = reply.next

    async def inode_pages(self, shard_id: int) -> AsyncIterator[list[pb.FileInfo]]:
        """Every inode record of one shard (ScanInodes), a page at a time."""
        shard = self.cluster.shard(shard_id)
        after = b""
        while True:
            reply = await shard.scan_inodes(pb.ScanRequest(after=after, limit=PAGE))
            yield list(reply.files)
            if not reply.more:
                return
            after = reply.next

    async def pending(self, shard_id: int) -> pb.ShardPendingReply:
        return await self.cluster.shard(shard_id).list_pending(pb.Empty())

    async def run_maintenance(self, shard_id: int) -> pb.ShardPendingReply:
        """One round of the shard's background work now; what is still pending after it."""
        return await self.cluster.shard(shard_id).run_maintenance(pb.Empty(), 4 * self.timeout)

    async def remove_entry(self, parent: int, name: str, ino: int, *, drop_link: bool) -> None:
        req = pb.RemoveEntryRequest(parent_ino=parent, name=name, ino=ino, drop_link=drop_link)
        await self.cluster.shard(self.shard_of_entry(parent, name)).remove_entry(req)

    async def reserve_dir_entry(self, parent: int, name: str, ino: int) -> None:
        req = pb.DirEntryRequest(parent_ino=parent, name=name, ino=ino)
        await self.cluster.shard(self.shard_of_entry(parent, name)).reserve_dir_entry(req)

    async def release_dir_entry(self, parent: int, name: str, ino: int) -> None:
        req = pb.DirEntryRequest(parent_ino=parent, name=name, ino=ino)
        await self.cluster.shard(self.shard_of_entry(parent, name)).release_dir_entry(req)

    async def unseal(self, shard_id: int, dir_ino: int) -> None:
        await self.cluster.shard(shard_id).unseal_dir(pb.SealRequest(dir_ino=dir_ino))

    async def adjust_nlink(self, ino: int, delta: int) -> pb.Attr:
        """Add ``delta`` links, once (by a fresh txid), then let the shard forget that txid."""
        txid = "fsck-" + uuid.uuid4().hex
        shard = self.cluster.shard(self.shard_of_ino(ino))
        attr = await shard.adjust_nlink(pb.NlinkRequest(ino=ino, delta=delta, txid=txid))
        try:  # this call is over and the txid never sent again: its record may go
            await shard.forget_applied(pb.ForgetAppliedRequest(nlinks=[txid]))
        except FsError as e:
            log.debug("the shard keeps the record of %s: %s", txid, e)
        return attr

    async def get_file(self, ino: int) -> pb.FileInfo:
        req = pb.GetFileRequest(ino=ino, creds=ROOT.pb())
        return await self.cluster.shard(self.shard_of_ino(ino)).get_file(req)

    async def fence_writers(self, ino: int, size: int, generation: int) -> pb.Attr:
        """Before cutting bytes past the end of ``ino``: writers that pushed bytes earlier may no
        longer size them (ESTALE if the file is no longer at ``size`` and ``generation``)."""
        req = pb.FenceWritersRequest(ino=ino, size=size, generation=generation)
        return await self.cluster.shard(self.shard_of_ino(ino)).fence_writers(req)

    async def link(self, ino: int, parent: int, name: str) -> pb.Attr:
        """A new name for inode ``ino`` (as root)."""
        return await self.fs.meta.link(ino, parent, name, ROOT)

    # --------------------------------------------------------- data servers

    async def list_chunks(self, server_id: int, *, verify: bool = False) -> list[pb.ChunkEntry]:
        return [c async for page in self.chunk_pages(server_id, verify=verify) for c in page]

    async def chunk_pages(self, server_id: int, *, verify: bool = False) -> AsyncIterator[list[pb.ChunkEntry]]:
        data = self.cluster.data(server_id)
        after_ino = after_index = 0
        while True:
            req = pb.ListChunksRequest(after_ino=after_ino, after_index=after_index, limit=CHUNK_PAGE,
                                       verify=verify)
            # a verifying page hashes up to 1 GiB: give it time
            reply = await data.list_chunks(req, self.timeout * (12 if verify else 2))
            yield list(reply.chunks)
            if not reply.more or not reply.chunks:
                return
            after_ino, after_index = reply.chunks[-1].key.ino, reply.chunks[-1].key.index

    async def chunk_cap(self, ino: int) -> pb.ChunkCap | None:
        """A read-write capability for the chunks of ``ino`` (asked as root); None if the file is gone.

        Data servers read and write bytes only for a capability the inode's
        shard signed; administration gets one like anybody else.
        """
        try:
            return (await self.get_file(ino)).chunk_cap
        except FsError as e:
            if e.errno == errno.ENOENT:
                return None
            raise

    async def chunks_of(self, server_id: int, ino: int) -> tuple[list[pb.ChunkEntry], int]:
        """The chunks of one inode on one data server now, and that server's clock."""
        data = self.cluster.data(server_id)
        out: list[pb.ChunkEntry] = []
        after_ino, after_index = ino - 1, (1 << 64) - 1
        now = 0
        while True:
            req = pb.ListChunksRequest(after_ino=after_ino, after_index=after_index, limit=1000)
            reply = await data.list_chunks(req, self.timeout * 2)
            now = now or reply.now_ns
            mine = [c for c in reply.chunks if c.key.ino == ino]
            out += mine
            if not reply.more or len(mine) < len(reply.chunks) or not mine:
                return out, now
            after_ino, after_index = ino, mine[-1].key.index

    async def read_chunk(self, server_id: int, ino: int, index: int, length: int) -> bytes | None:
        """The first ``length`` bytes of a chunk (checksum-verified by the server); None if absent
        (or if its file is gone)."""
        cap = await self.chunk_cap(ino)
        if cap is None:
            return None
        req = pb.ReadChunkRequest(key=pb.ChunkKey(ino=ino, index=index), offset=0, length=length, cap=cap)
        reply = await self.cluster.data(server_id).read_chunk(req, self.timeout * 4)
        return reply.data if reply.exists else None

    async def put_chunk(self, server_id: int, ino: int, index: int, data: bytes) -> None:
        """Replace a chunk's whole content (creating it); ENOENT if its file is gone."""
        cap = await self.chunk_cap(ino)
        if cap is None:
            raise FsError(errno.ENOENT, f"inode {ino} is gone: its chunks are not re-created")
        req = pb.WriteChunkRequest(key=pb.ChunkKey(ino=ino, index=index), offset=0, data=data, truncate=True,
                                   cap=cap)
        await self.cluster.data(server_id).write_chunk(req, self.timeout * 4)

    async def delete_chunks(self, server_id: int, ino: int, from_index: int = 0, to_index: int = 0, *,
                            max_write_seq: int = 0, min_age_ns: int = 0) -> None:
        """Delete chunks [from_index, to_index) of ``ino`` (0: no end); the server leaves alone those
        written after ``max_write_seq`` (0: no limit) or less than ``min_age_ns`` ago."""
        req = pb.DeleteChunksRequest(ino=ino, from_index=from_index, to_index=to_index,
                                     max_write_seq=max_write_seq, min_age_ns=min_age_ns)
        await self.cluster.data(server_id).delete_chunks(req, self.timeout * 2)

    async def truncate_chunk(self, server_id: int, ino: int, index: int, length: int, *,
                             max_write_seq: int = 0, min_age_ns: int = 0) -> None:
        req = pb.TruncateChunkRequest(key=pb.ChunkKey(ino=ino, index=index), length=length,
                                      max_write_seq=max_write_seq, min_age_ns=min_age_ns)
        await self.cluster.data(server_id).truncate_chunk(req, self.timeout * 2)

    async def data_stats(self, server_id: int) -> pb.DataStatsReply:
        return await self.cluster.data(server_id).stats(pb.Empty())

    async def set_data_server_state(self, server_id: int, state: str) -> pb.ClusterMap:
        """Persist a data server's state in the map ("active", "draining", "dead", "removed"); the new map."""
        cmap = await self.cluster.dir.set_server_state(pb.SetServerStateRequest(id=server_id, state=state))
        self.cluster.adopt(cmap)
        return self.cluster.map

    async def mover_lease(self, holder: str, ttl_s: float, *, release: bool = False) -> pb.MoverLeaseReply:
        """Take, renew or give back the dir server's one-mover-at-a-time lease (superfs/rebalance)."""
        return await self.cluster.dir.mover_lease(pb.MoverLeaseRequest(holder=holder, ttl_s=ttl_s, release=release))

    async def set_degraded(self, server_id: int, degraded: bool) -> None:
        await self.cluster.data(server_id).set_degraded(pb.SetDegradedRequest(degraded=degraded))

    # -------------------------------------------------------------- helpers

    @staticmethod
    async def each(items: list[T], fn: Callable[[T], Awaitable[Any]]) -> list[Any]:
        """``fn`` over ``items`` in parallel; results (or the exception) in order."""
        return list(await asyncio.gather(*(fn(i) for i in items), return_exceptions=True))
