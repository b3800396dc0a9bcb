"""fsck's rules on hand-built snapshots: no daemons, no network, one rule per test.

The cluster-level tests (test_t5_fsck.py) plant damage in a real cluster;
these pin down the subtle parts of the rules: what an operation in flight
excuses, what is garbage rather than an inconsistency, and what cannot be
judged when a daemon could not be scanned.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from superfs import routing
from superfs.fsck import checks
from superfs.fsck.findings import Finding, errors
from superfs.fsck.snapshot import Snapshot
from superfs.v1 import superfs_pb2 as pb

PARTS = 4
CS = 1000


def cmap() -> pb.ClusterMap:
    return pb.ClusterMap(num_partitions=PARTS, partition_shard=[0, 1, 0, 1], replicas=2, chunk_size=CS,
                         shards=[pb.ServerInfo(id=0, address="a:1"), pb.ServerInfo(id=1, address="b:1")],
                         data_servers=[pb.ServerInfo(id=0, address="c:1"), pb.ServerInfo(id=1, address="d:1")])


def shard_of(parent: int, name: str) -> int:
    return [0, 1, 0, 1][routing.entry_partition(parent, name, PARTS)]


@dataclass
class Model:
    """What a scan would find, as plain containers the tests can edit; loaded into a Snapshot to check."""

    dirs: dict[int, pb.DirInfo] = field(default_factory=dict)
    entries: list[tuple[int, pb.EntryRecord]] = field(default_factory=list)
    inodes: dict[int, list[tuple[int, pb.FileInfo]]] = field(default_factory=lambda: defaultdict(list))
    pending: dict[int, pb.ShardPendingReply] = field(default_factory=dict)
    chunks: dict[int, dict[tuple[int, int], pb.ChunkEntry]] = field(default_factory=dict)
    data_stats: dict[int, pb.DataStatsReply] = field(default_factory=dict)
    unreachable: dict[str, str] = field(default_factory=dict)
    counters: dict[int, list[pb.PartitionCounter]] = field(default_factory=dict)

    def snapshot(self) -> Snapshot:
        snap = Snapshot(cmap=cmap(), verified=True, dirs_scanned=True)
        snap.add_dirs(list(self.dirs.values()))
        for shard, e in self.entries:
            snap.add_entries(shard, [e])
        for recs in self.inodes.values():
            for shard, f in recs:
                snap.add_inodes(shard, [f])
        for sid, chunks in self.chunks.items():
            snap.n_chunks[sid] = 0
            snap.add_chunks(sid, list(chunks.values()))
        snap.pending = dict(self.pending)
        snap.data_stats = dict(self.data_stats)
        snap.unreachable = dict(self.unreachable)
        snap.counters = dict(self.counters)
        return snap


def check(model: Model) -> list[Finding]:
    snap = model.snapshot()
    try:
        return checks.check(snap)
    finally:
        snap.close()


class Builder:
    """A consistent little cluster: add to it, then break one thing."""

    def __init__(self) -> None:
        self.s = Model()
        self.s.pending = {0: pb.ShardPendingReply(), 1: pb.ShardPendingReply()}
        self.s.chunks = {0: {}, 1: {}}
        self.s.data_stats = {0: pb.DataStatsReply(), 1: pb.DataStatsReply()}
        self.seq = 0
        self.dir(1, 1, "")

    def dir(self, ino: int, parent: int, name: str, nlink: int = 2) -> None:
        self.s.dirs[ino] = pb.DirInfo(ino=ino, parent_ino=parent, name=name, attr=pb.Attr(ino=ino, nlink=nlink))
        if ino != 1:
            self.s.dirs[parent].attr.nlink += 1
            self.entry(parent, name, ino, pb.DIRECTORY)

    def entry(self, parent: int, name: str, ino: int, ftype: int = pb.REGULAR) -> None:
        self.s.entries.append((shard_of(parent, name), pb.EntryRecord(parent_ino=parent, name=name, ino=ino,
                                                                      type=ftype)))

    def file(self, parent: int, name: str, size: int = 10, chunked: bool = False) -> int:
        self.seq += 1
        part = routing.entry_partition(parent, name, PARTS)
        ino = int(routing.make_file_ino(part, self.seq))
        info = pb.FileInfo(attr=pb.Attr(ino=ino, nlink=1, size=size), type=pb.REGULAR, inline=not chunked,
                           layout=[0, 1] if chunked else [], chunk_size=CS if chunked else 0)
        self.s.inodes[ino].append((shard_of(parent, name), info))
        self.entry(parent, name, ino)
        if chunked:
            for idx in range(-(-size // CS)):
                length = min(CS, size - idx * CS)
                for sid in (0, 1):
                    self.chunk(sid, ino, idx, length)
        return ino

    def chunk(self, sid: int, ino: int, idx: int, length: int, checksum: int = 7) -> None:
        self.s.chunks[sid][(ino, idx)] = pb.ChunkEntry(key=pb.ChunkKey(ino=ino, index=idx), length=length,
                                                       checksum=checksum, algorithm=2)

    def kinds(self) -> list[str]:
        return sorted(f.kind for f in check(self.s))


def test_a_consistent_cluster_has_no_findings():
    b = Builder()
    b.dir(2, 1, "d")
    b.file(2, "small")
    b.file(2, "big", size=2500, chunked=True)
    assert check(b.s) == []


def test_a_rename_in_flight_excuses_its_two_names_and_is_reported_once_as_pending():
    b = Builder()
    b.dir(2, 1, "a")
    ino = b.file(2, "src")
    b.entry(1, "dst", ino)  # RemoteLink applied, the source not yet removed: two names, nlink 1
    src_shard = shard_of(2, "src")
    b.s.pending[src_shard].intents.append(pb.ShardIntent(kind="rename", txid="t", ino=ino, parent_ino=2,
                                                         name="src", dst_parent=1, dst_name="dst"))
    assert b.kinds() == ["pending"]
    b.s.pending[src_shard].ClearField("intents")
    assert b.kinds() == ["inode-nlink"]


def test_chunks_of_a_freed_inode_are_not_a_leak_while_its_reclaim_is_queued():
    b = Builder()
    ino = b.file(1, "gone", size=1500, chunked=True)
    del b.s.inodes[ino]
    b.s.entries = [(s, e) for s, e in b.s.entries if e.ino != ino]
    b.s.pending[0].reclaim.append(pb.ReclaimEntry(ino=ino, from_size=0, freed=True, layout=[0, 1]))
    assert b.kinds() == []
    b.s.pending[0].ClearField("reclaim")
    assert b.kinds() == ["chunk-no-file", "chunk-no-file"]  # one per data server


def test_bytes_past_the_end_are_garbage_not_an_inconsistency():
    b = Builder()
    ino = b.file(1, "f", size=1500, chunked=True)
    b.chunk(1, ino, 1, CS)   # a longer last chunk on one replica: bytes past the end
    b.chunk(0, ino, 5, 10)   # a whole chunk past the end
    b.chunk(1, ino, 5, 10)
    found = check(b.s)
    assert sorted(f.kind for f in found) == ["chunk-past-eof", "chunk-past-eof", "replica-differs"]
    assert [f.kind for f in errors(found)] == ["replica-differs"]
    assert next(f for f in found if f.kind == "replica-differs").fix["candidate"]  # resolved by reading


def test_replicas_differ_only_by_their_stored_checksums():
    b = Builder()
    ino = b.file(1, "f", size=1000, chunked=True)
    assert b.kinds() == []
    b.chunk(1, ino, 0, 1000, checksum=8)
    assert b.kinds() == ["replica-differs"]
    b.s.chunks[1].pop((ino, 0))
    assert b.kinds() == ["replica-missing"]


def test_a_directory_cycle_is_an_orphaned_subtree():
    b = Builder()
    b.dir(2, 1, "a")
    b.dir(3, 2, "b")
    b.s.dirs[2].parent_ino = 3  # a <-> b, cut off from root
    kinds = b.kinds()
    assert kinds.count("dir-orphan") == 2


def test_nothing_is_judged_on_what_an_unscanned_shard_holds():
    b = Builder()
    ino = b.file(1, "f")
    home = shard_of(1, "f")
    other = next(f"n{i}" for i in range(100) if shard_of(1, f"n{i}") != home)
    b.s.entries = [(s, e) for s, e in b.s.entries if e.ino != ino]  # its only name: on the other shard,
    unscanned = shard_of(1, other)                                   # which could not be scanned
    del b.s.pending[unscanned]
    b.s.unreachable[f"shard {unscanned}"] = "down"
    assert b.kinds() == ["unreachable"]  # not "inode-orphan": its name may well be on that shard


def test_chunk_findings_carry_their_newest_write_so_writes_since_the_first_scan_are_not_confirmed():
    from superfs.fsck.runner import _written_since
    from superfs.fsck.snapshot import DataMark
    b = Builder()
    ino = b.file(1, "f", size=1500, chunked=True)
    b.s.chunks[0][(ino, 5)] = pb.ChunkEntry(key=pb.ChunkKey(ino=ino, index=5), length=10, write_seq=42,
                                            written_ns=7)
    (past,) = [f for f in check(b.s) if f.kind == "chunk-past-eof"]
    assert past.fix["seqs"] == {"0": 42} and past.fix["newest_ns"] == {"0": 7}
    assert not _written_since(past, {0: DataMark(write_seq=42, now_ns=0)})
    assert _written_since(past, {0: DataMark(write_seq=41, now_ns=0)})  # written after the first scan began


def test_a_scan_that_failed_half_way_is_not_judged_on_what_it_had_read():
    b = Builder()
    ino = b.file(1, "f")
    home = shard_of(1, "f")
    b.s.inodes[ino] = [(s, f) for s, f in b.s.inodes[ino]]
    del b.s.pending[home]  # its records were spilled, then the shard stopped answering
    b.s.unreachable[f"shard {home}"] = "down"
    assert b.kinds() == ["unreachable"]


def test_an_inode_or_a_delegated_range_past_its_partitions_counter_is_reported():
    """A counter behind what it handed out would give a number twice (to a create, or to a lease holder's
    batch); counters as each partition's owner reports them after the scan."""
    b = Builder()
    b.dir(2, 1, "d")
    ino = b.file(2, "f")
    part = routing.ino_partition(ino)
    owner = [0, 1, 0, 1][part]
    b.s.counters = {s: [pb.PartitionCounter(partition=p, last=b.seq) for p in range(PARTS) if [0, 1, 0, 1][p] == s]
                    for s in (0, 1)}
    assert b.kinds() == []
    b.s.counters[owner][part // 2].last = b.seq - 1            # the counter is behind the inode
    assert b.kinds() == ["counter-behind"]
    b.s.counters[owner][part // 2].last = b.seq
    b.s.counters[owner][part // 2].delegated_end = b.seq + 10  # numbers up to seq + 9 delegated, not counted
    assert b.kinds() == ["counter-behind"]
    b.s.counters[owner][part // 2].last = b.seq + 9
    assert b.kinds() == []
    b.s.counters[1 - owner] = [pb.PartitionCounter(partition=part, last=0)]  # not its partition: not believed
    assert b.kinds() == []
