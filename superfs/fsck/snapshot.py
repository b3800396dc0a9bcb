"""Collecting what fsck checks: every directory, entry, inode, queue and chunk of a cluster.

The collection goes through :class:`~superfs.client.admin.AdminClient`, all
shards and all data servers in parallel. It is not one atomic snapshot (a
live cluster keeps changing), which is why the checks skip whatever a
pending operation explains and the runner confirms findings with a second
look. A daemon that cannot be scanned is recorded in ``unreachable`` rather
than failing the whole run: fsck then checks what it could and says so.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field

from superfs.client.admin import AdminClient
from superfs.errors import FsError
from superfs.v1 import superfs_pb2 as pb

log = logging.getLogger(__name__)

ChunkId = tuple[int, int]  # (ino, index)


@dataclass
class Snapshot:
    cmap: pb.ClusterMap
    dirs: dict[int, pb.DirInfo] = field(default_factory=dict)
    dir_intents: list[pb.DirIntent] = field(default_factory=list)
    # (shard id, entry) for every entry of every reachable shard
    entries: list[tuple[int, pb.EntryRecord]] = field(default_factory=list)
    # ino -> [(shard id, file)] (more than one shard holding it is itself a finding)
    inodes: dict[int, list[tuple[int, pb.FileInfo]]] = field(default_factory=lambda: defaultdict(list))
    pending: dict[int, pb.ShardPendingReply] = field(default_factory=dict)
    # data server id -> (ino, index) -> chunk entry
    chunks: dict[int, dict[ChunkId, pb.ChunkEntry]] = field(default_factory=dict)
    data_stats: dict[int, pb.DataStatsReply] = field(default_factory=dict)
    unreachable: dict[str, str] = field(default_factory=dict)  # "shard 1" -> why
    verified: bool = False
    dirs_scanned: bool = False

    # ------------------------------------------------------------- derived

    def shard_ids(self) -> list[int]:
        return sorted(s.id for s in self.cmap.shards)

    def reachable_shards(self) -> set[int]:
        return set(self.pending)

    def replicas(self) -> int:
        return self.cmap.replicas or 1

    def chunk_total(self) -> int:
        return sum(len(c) for c in self.chunks.values())

    def pending_count(self) -> int:
        n = len(self.dir_intents)
        for p in self.pending.values():
            n += len(p.intents) + len(p.outbox)
        return n

    def path_of(self, ino: int) -> str:
        """A readable path for directory ``ino`` (or ``<dir N>`` where the chain breaks)."""
        parts: list[str] = []
        seen: set[int] = set()
        cur = ino
        while cur != 1:
            d = self.dirs.get(cur)
            if d is None or cur in seen:
                return f"<dir {cur}>/" + "/".join(reversed(parts))
            seen.add(cur)
            parts.append(d.name)
            cur = d.parent_ino
        return "/" + "/".join(reversed(parts))

    def entry_path(self, parent: int, name: str) -> str:
        base = self.path_of(parent)
        return (base.rstrip("/") + "/" + name) if base else name


async def start(admin: AdminClient, *, verify: bool) -> Snapshot:
    """An empty snapshot of the current cluster map; fill it with the scan_* steps."""
    return Snapshot(cmap=await admin.cluster_map(), verified=verify)


async def scan_dirs(admin: AdminClient, snap: Snapshot) -> None:
    """Every directory and the dir server's intent log."""
    try:
        snap.dirs = {d.ino: d for d in await admin.all_dirs()}
        snap.dir_intents = await admin.dir_intents()
        snap.dirs_scanned = True
    except FsError as e:
        snap.unreachable["dir server"] = str(e)


async def scan_shards(admin: AdminClient, snap: Snapshot) -> None:
    """Every entry, inode and queue of every shard, in parallel."""
    await admin.each(admin.shards(), lambda s: _scan_shard(admin, snap, s.id))
    for sid in sorted(set(snap.cmap.partition_shard) - set(snap.shard_ids())):
        snap.unreachable[f"shard {sid}"] = "not registered with the dir server"


async def scan_data(admin: AdminClient, snap: Snapshot) -> None:
    """Every chunk of every data server (re-hashed if the snapshot verifies), in parallel."""
    await admin.each(admin.data_servers(), lambda d: _scan_data(admin, snap, d.id, snap.verified))


async def collect(admin: AdminClient, *, verify: bool, dirs: bool = True) -> Snapshot:
    """A whole scan (without the directories for ``dirs=False``: replica repair needs none)."""
    snap = await start(admin, verify=verify)
    if dirs:
        await scan_dirs(admin, snap)
    await scan_shards(admin, snap)
    await scan_data(admin, snap)
    return snap


async def _scan_shard(admin: AdminClient, snap: Snapshot, shard_id: int) -> None:
    try:
        pending = await admin.pending(shard_id)
        entries = await admin.scan_entries(shard_id)
        inodes = await admin.scan_inodes(shard_id)
    except FsError as e:
        snap.unreachable[f"shard {shard_id}"] = str(e)
        return
    snap.pending[shard_id] = pending
    snap.entries.extend((shard_id, e) for e in entries)
    for f in inodes:
        snap.inodes[f.attr.ino].append((shard_id, f))


async def _scan_data(admin: AdminClient, snap: Snapshot, server_id: int, verify: bool) -> None:
    try:
        stats = await admin.data_stats(server_id)
        chunks = await admin.list_chunks(server_id, verify=verify)
    except FsError as e:
        snap.unreachable[f"data server {server_id}"] = str(e)
        return
    snap.data_stats[server_id] = stats
    snap.chunks[server_id] = {(c.key.ino, c.key.index): c for c in chunks}
