"""Collecting what fsck checks: every directory, entry, inode, queue and chunk of a cluster.

The collection goes through :class:`~superfs.client.admin.AdminClient`, all
shards and all data servers in parallel, and streams every page into a
temporary LMDB (:class:`~superfs.fsck.spill.Spill`): memory does not grow
with the cluster. It is not one atomic snapshot (a live cluster keeps
changing), which is why the checks skip whatever a pending operation
explains and the runner confirms findings with a second look. A daemon that
cannot be scanned is recorded in ``unreachable`` rather than failing the
whole run: fsck then checks what it could and says so.

Small, bounded things stay in memory: the cluster map, the dir server's
intents, each shard's pending work (at most PENDING_MAX items of each kind)
and each server's markers: a data server's write sequence and clock when its
scan began, a shard's count of mutating calls when the scan ended.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Iterator

from superfs import routing
from superfs.client.admin import AdminClient
from superfs.errors import FsError
from superfs.fsck.findings import FindingStore
from superfs.fsck.spill import ENTRY_VALUE, U32, U64, Spill, entry_prefix, split_entry_key
from superfs.v1 import superfs_pb2 as pb

log = logging.getLogger(__name__)

ChunkId = tuple[int, int]  # (ino, index)


@dataclass
class DataMark:
    """A data server's write sequence and clock when fsck began to list it."""

    write_seq: int
    now_ns: int


@dataclass
class Snapshot:
    cmap: pb.ClusterMap
    spill: Spill = field(default_factory=Spill)
    dir_intents: list[pb.DirIntent] = field(default_factory=list)
    pending: dict[int, pb.ShardPendingReply] = field(default_factory=dict)
    data_stats: dict[int, pb.DataStatsReply] = field(default_factory=dict)
    data_marks: dict[int, DataMark] = field(default_factory=dict)
    shard_ops: dict[int, int] = field(default_factory=dict)  # shard -> mutating calls begun at scan end
    # shard -> its partitions' inode counters at scan end (counters only grow: past every inode scanned)
    counters: dict[int, list[pb.PartitionCounter]] = field(default_factory=dict)
    unreachable: dict[str, str] = field(default_factory=dict)  # "shard 1" -> why
    verified: bool = False
    dirs_scanned: bool = False
    n_dirs: int = 0
    n_entries: int = 0
    n_inodes: int = 0
    n_chunks: dict[int, int] = field(default_factory=dict)
    # the data servers' marks at the first of the scans a finding was confirmed by (runner.py)
    first_marks: dict[int, DataMark] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.findings = FindingStore(self.spill)

    def close(self) -> None:
        self.spill.close()

    # ------------------------------------------------------------- derived

    def shard_ids(self) -> list[int]:
        return sorted(s.id for s in self.cmap.shards)

    def reachable_shards(self) -> set[int]:
        return set(self.pending)

    def scanned_data_servers(self) -> set[int]:
        return set(self.n_chunks)

    def replicas(self) -> int:
        return self.cmap.replicas or 1

    def chunk_total(self) -> int:
        return sum(self.n_chunks.values())

    def pending_count(self) -> int:
        n = len(self.dir_intents)
        for p in self.pending.values():
            n += len(p.intents) + len(p.outbox)
        return n

    # ------------------------------------------------------------- filling

    def add_dirs(self, dirs: list[pb.DirInfo]) -> None:
        with self.spill.write() as txn:
            d_db, c_db = self.spill.db("dirs"), self.spill.db("children")
            for d in dirs:
                txn.put(U64.pack(d.ino), d.SerializeToString(), db=d_db)
                if d.ino != d.parent_ino:
                    txn.put(U64.pack(d.parent_ino) + U64.pack(d.ino), b"", db=c_db)
        self.n_dirs += len(dirs)

    def add_entries(self, shard: int, entries: list[pb.EntryRecord]) -> None:
        with self.spill.write() as txn:
            e_db, r_db = self.spill.db("entries"), self.spill.db("refs")
            for e in entries:
                txn.put(entry_prefix(e.parent_ino, e.name) + U32.pack(shard), ENTRY_VALUE.pack(e.ino, e.type),
                        db=e_db)
                if e.type != pb.DIRECTORY and self._owner(e.parent_ino, e.name) == shard:
                    # a name counts for its inode's link count; a misplaced one is reported instead
                    k = U64.pack(e.ino)
                    old = txn.get(k, db=r_db)
                    txn.put(k, U32.pack((U32.unpack(old)[0] if old else 0) + 1), db=r_db)
        self.n_entries += len(entries)

    def _owner(self, parent: int, name: str) -> int:
        m = self.cmap
        return m.partition_shard[routing.entry_partition(parent, name, m.num_partitions)]

    def add_inodes(self, shard: int, files: list[pb.FileInfo]) -> None:
        with self.spill.write() as txn:
            db = self.spill.db("inodes")
            for f in files:
                txn.put(U64.pack(f.attr.ino) + U32.pack(shard), f.SerializeToString(), db=db)
        self.n_inodes += len(files)

    def add_chunks(self, server: int, chunks: list[pb.ChunkEntry]) -> None:
        with self.spill.write() as txn:
            db = self.spill.db("chunks")
            for c in chunks:
                txn.put(U64.pack(c.key.ino) + U64.pack(c.key.index) + U32.pack(server), c.SerializeToString(),
                        db=db)
        self.n_chunks[server] = self.n_chunks.get(server, 0) + len(chunks)

    # ------------------------------------------------------------- lookups

    def dir(self, ino: int) -> pb.DirInfo | None:
        raw = self.spill.get("dirs", U64.pack(ino))
        return None if raw is None else pb.DirInfo.FromString(raw)

    def has_dir(self, ino: int) -> bool:
        return self.spill.get("dirs", U64.pack(ino)) is not None

    def children(self, ino: int) -> int:
        return self.spill.count_prefix("children", U64.pack(ino))

    def inodes_of(self, ino: int) -> list[tuple[int, pb.FileInfo]]:
        """(shard, record) of every shard holding inode ``ino`` (more than one is itself a finding)."""
        return [(U32.unpack_from(k, 8)[0], pb.FileInfo.FromString(v)) for k, v in self.spill.prefix(
            "inodes", U64.pack(ino))]

    def has_inode(self, ino: int) -> bool:
        key = U64.pack(ino)
        with self.spill.read() as txn, txn.cursor(db=self.spill.db("inodes")) as cur:
            return bool(cur.set_range(key)) and bytes(cur.key()[:8]) == key

    def file(self, ino: int) -> pb.FileInfo | None:
        recs = self.inodes_of(ino)
        return recs[0][1] if recs else None

    def entries_named(self, parent: int, name: str) -> list[tuple[int, pb.EntryRecord]]:
        out = []
        for k, v in self.spill.prefix("entries", entry_prefix(parent, name)):
            ino, ftype = ENTRY_VALUE.unpack(v)
            out.append((U32.unpack_from(k, len(k) - 4)[0],
                        pb.EntryRecord(parent_ino=parent, name=name, ino=ino, type=ftype)))
        return out

    def refs(self, ino: int) -> int:
        raw = self.spill.get("refs", U64.pack(ino))
        return U32.unpack(raw)[0] if raw else 0

    def chunk(self, server: int, ino: int, index: int) -> pb.ChunkEntry | None:
        raw = self.spill.get("chunks", U64.pack(ino) + U64.pack(index) + U32.pack(server))
        return None if raw is None else pb.ChunkEntry.FromString(raw)

    # ----------------------------------------------------------- iterating

    def iter_dirs(self) -> Iterator[pb.DirInfo]:
        for _, v in self.spill.items("dirs"):
            yield pb.DirInfo.FromString(v)

    def iter_entries(self) -> Iterator[tuple[int, pb.EntryRecord]]:
        for k, v in self.spill.items("entries"):
            parent, name, shard = split_entry_key(k)
            ino, ftype = ENTRY_VALUE.unpack(v)
            yield shard, pb.EntryRecord(parent_ino=parent, name=name, ino=ino, type=ftype)

    def iter_inodes(self) -> Iterator[tuple[int, list[tuple[int, pb.FileInfo]]]]:
        """(ino, [(shard, record)]) in ino order."""
        cur_ino = -1
        recs: list[tuple[int, pb.FileInfo]] = []
        for k, v in self.spill.items("inodes"):
            ino = U64.unpack_from(k)[0]
            if ino != cur_ino and recs:
                yield cur_ino, recs
                recs = []
            cur_ino = ino
            recs.append((U32.unpack_from(k, 8)[0], pb.FileInfo.FromString(v)))
        if recs:
            yield cur_ino, recs

    def iter_chunks(self) -> Iterator[tuple[int, int, dict[int, pb.ChunkEntry]]]:
        """(ino, index, {data server: entry}) in (ino, index) order."""
        cur: tuple[int, int] | None = None
        have: dict[int, pb.ChunkEntry] = {}
        for k, v in self.spill.items("chunks"):
            ino, idx = U64.unpack_from(k)[0], U64.unpack_from(k, 8)[0]
            if (ino, idx) != cur and have:
                assert cur is not None
                yield cur[0], cur[1], have
                have = {}
            cur = (ino, idx)
            have[U32.unpack_from(k, 16)[0]] = pb.ChunkEntry.FromString(v)
        if have:
            assert cur is not None
            yield cur[0], cur[1], have

    # --------------------------------------------------------------- paths

    def path_of(self, ino: int) -> str:
        """A readable path for directory ``ino`` (or ``<dir N>`` where the chain breaks)."""
        parts: list[str] = []
        seen: set[int] = set()
        cur = ino
        while cur != 1:
            d = self.dir(cur)
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
        async for page in admin.dir_pages():
            snap.add_dirs(page)
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


async def _scan_shard(admin: AdminClient, snap: Snapshot, shard_id: int) -> None:
    try:
        pending = await admin.pending(shard_id)
        async for page in admin.entry_pages(shard_id):
            snap.add_entries(shard_id, page)
        async for page in admin.inode_pages(shard_id):
            snap.add_inodes(shard_id, page)
        after = await admin.pending(shard_id)
    except FsError as e:
        snap.unreachable[f"shard {shard_id}"] = str(e)
        return
    snap.pending[shard_id] = pending
    snap.shard_ops[shard_id] = after.ops_begun
    snap.counters[shard_id] = list(after.counters)


async def _scan_data(admin: AdminClient, snap: Snapshot, server_id: int, verify: bool) -> None:
    try:
        stats = await admin.data_stats(server_id)
        snap.data_marks[server_id] = DataMark(stats.write_seq, stats.now_ns)
        snap.n_chunks.setdefault(server_id, 0)
        async for page in admin.chunk_pages(server_id, verify=verify):
            snap.add_chunks(server_id, page)
    except FsError as e:
        snap.unreachable[f"data server {server_id}"] = str(e)
        snap.n_chunks.pop(server_id, None)
        return
    snap.data_stats[server_id] = stats

