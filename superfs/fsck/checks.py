"""The cross-checks of fsck: a :class:`Snapshot` in, a list of :class:`Finding` out.

Pure functions, no network: every rule here can be tested on a hand-built
snapshot. The rules follow the cluster's invariants (DESIGN.md 1, 2):

- the directory tree: every directory reaches root, link counts are 2 +
  subdirectories, and every directory's name is reserved on the shard that
  would hold a file of that name (and no reservation names a directory that
  is not there);
- names and inodes: every file name's parent exists and its inode exists;
  every inode has as many links as names; no inode without a name;
- chunks: every chunk inside a chunked file has its R replicas, healthy and
  equal; no chunk outside a file, except what the reclaim queue is about
  to delete.

Whatever a pending operation explains (an intent, an owed link change, a
queued reclaim) is skipped, not reported: it is reported once as
``pending`` instead, so a check during a burst of renames is not a list of
false alarms. Where a daemon could not be scanned, the rules that would
need its contents are skipped and ``unreachable`` says so.

The rules walk the snapshot's spill store (snapshot.py) with cursors and
hand each finding to a sink as they go: nothing here holds a record per
file, so a check of 10^8 files runs in the memory of one. Chunk findings
carry the newest write stamp of the chunks they are about (``seqs``: data
server -> highest write sequence, ``newest_ns``): the runner drops those
written since its first scan and repairs leave young bytes alone.
"""
from __future__ import annotations

from collections import defaultdict
import time
from typing import Callable, Iterable

from superfs import routing
from superfs.filetypes import FILE_TYPES
from superfs.fsck.findings import Finding
from superfs.fsck.snapshot import Snapshot
from superfs.fsck.spill import U64
from superfs.routing import ROOT_INO, is_dir_ino
from superfs.v1 import superfs_pb2 as pb

Sink = Callable[[Finding], None]
MOVE_STUCK_AFTER_NS = 180 * 10**9  # a partition move whose last step is older than this is stuck


def check(snap: Snapshot) -> list[Finding]:
    """Every finding, as a list (small snapshots: tests)."""
    out: list[Finding] = []
    check_into(snap, out.append)
    return out


def check_into(snap: Snapshot, sink: Sink) -> None:
    c = _Checker(snap, sink)
    c.unreachable()
    c.pending()
    if snap.dirs_scanned:
        c.directories()
        c.seals()
    c.entries()
    c.inodes()
    c.delegations()
    c.moves()
    c.chunks()


def _ranges(indexes: Iterable[int]) -> str:
    """[0, 1, 2, 5] -> "0-2,5"."""
    out: list[str] = []
    run: list[int] = []
    for i in sorted(indexes):
        if run and i == run[-1] + 1:
            run.append(i)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [i]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out)


class _Checker:
    def __init__(self, snap: Snapshot, sink: Sink) -> None:
        self.s = snap
        self.sink = sink
        m = snap.cmap
        self.nparts = m.num_partitions
        self.reachable = snap.reachable_shards()
        self.all_shards_scanned = not any(k.startswith("shard") for k in snap.unreachable)
        # what pending operations touch: those are skipped by the rules below
        self.busy_dirs: set[int] = set()
        self.busy_names: set[tuple[int, str]] = set()
        for i in snap.dir_intents:
            self.busy_dirs |= {x for x in (i.ino, i.parent, i.dst_parent, i.replaced_ino) if x}
            self.busy_names |= {(i.parent, i.name), (i.dst_parent, i.dst_name)}
        self.busy_inos: set[int] = set()
        self.freed: set[int] = set()
        self.shrinking: dict[int, int] = {}
        for p in snap.pending.values():
            for si in p.intents:
                self.busy_inos.add(si.ino)
                self.busy_names |= {(si.parent_ino, si.name), (si.dst_parent, si.dst_name)}
            self.busy_inos |= {o.ino for o in p.outbox}
            for r in p.reclaim:
                if r.freed:
                    self.freed.add(r.ino)
                else:
                    self.shrinking[r.ino] = min(r.from_size, self.shrinking.get(r.ino, r.from_size))
        self.scanned_data = snap.scanned_data_servers()
        # each partition's counter, as the shard owning it reported it
        self.counters = {c.partition: c for sid, cs in snap.counters.items() for c in cs
                         if c.partition < self.nparts and snap.cmap.partition_shard[c.partition] == sid}

        # partitions being moved: their rows may be on both shards of the move (dirserver/moves.py)
        self.moving = {m.partition: m for m in snap.cmap.moves}

    def in_move(self, partition: int, shards: Iterable[int]) -> bool:
        """Are rows of ``partition`` on ``shards`` explained by a move in progress?"""
        m = self.moving.get(partition)
        return m is not None and set(shards) <= {m.source, m.target}

    def add(self, kind: str, key: tuple[object, ...], message: str, **fix: object) -> None:
        self.sink(Finding(kind, (kind, *key), message, dict(fix)))

    # ------------------------------------------------------------ routing

    def shard_of_entry(self, parent: int, name: str) -> int:
        return self.s.cmap.partition_shard[routing.entry_partition(parent, name, self.nparts)]

    def home_of(self, ino: int) -> int | None:
        """The home shard of a file inode, or None if ``ino`` cannot be one."""
        if is_dir_ino(ino) or ino == 0:
            return None
        part = routing.ino_partition(ino)
        if part >= self.nparts:
            return None
        return self.s.cmap.partition_shard[part]

    # ------------------------------------------------------------- general

    def unreachable(self) -> None:
        for who, why in sorted(self.s.unreachable.items()):
            self.add("unreachable", (who,), f"{who}: {why}")

    def pending(self) -> None:
        for i in self.s.dir_intents:
            what = f"{i.op} of directory {i.ino} ({self.s.entry_path(i.parent, i.name)}"
            what += f" -> {self.s.entry_path(i.dst_parent, i.dst_name)})" if i.op == "renamedir" else ")"
            self.add("pending", ("dir", i.id), f"dir server: unfinished {what}")
        for shard, p in sorted(self.s.pending.items()):
            for si in p.intents:
                target = f" -> {self.s.entry_path(si.dst_parent, si.dst_name)}" if si.kind == "rename" else ""
                self.add("pending", ("shard", shard, si.txid),
                         f"shard {shard}: unfinished {si.kind} of inode {si.ino} "
                         f"({self.s.entry_path(si.parent_ino, si.name)}{target})")
            for o in p.outbox:
                self.add("pending", ("outbox", shard, o.txid),
                         f"shard {shard}: link change {o.delta:+d} of inode {o.ino} not delivered to its home shard")

    # --------------------------------------------------------- directories

    def directories(self) -> None:
        for d in self.s.iter_dirs():
            if not self._reaches_root(d.ino) and d.ino not in self.busy_dirs:
                self.add("dir-orphan", (d.ino,), f"directory {d.ino} ({d.name!r}, parent {d.parent_ino}) "
                         "is not reachable from root")
            want = 2 + self.s.children(d.ino)
            if d.attr.nlink != want and d.ino not in self.busy_dirs:
                self.add("dir-nlink", (d.ino,), f"{self.s.path_of(d.ino)}: link count {d.attr.nlink}, "
                         f"{want} counted", ino=d.ino)
            if d.ino != ROOT_INO:
                self._reservation_of(d)

    def seals(self) -> None:
        for shard, p in sorted(self.s.pending.items()):
            for dir_ino in p.sealed_dirs:
                if self.s.has_dir(dir_ino) and dir_ino not in self.busy_dirs:
                    self.add("sealed-live-dir", (shard, dir_ino), f"{self.s.path_of(dir_ino)}: sealed on shard "
                             f"{shard} with no removal in flight: nothing can be created in it there",
                             shard=shard, ino=dir_ino)

    def _reaches_root(self, ino: int) -> bool:
        """Walk up to root or a known answer; remember the answer for the whole chain (in the spill)."""
        spill = self.s.spill
        chain: list[int] = []
        seen: set[int] = set()
        cur = ino
        ok = False
        while True:
            if cur == ROOT_INO:
                ok = True
                break
            memo = spill.get("reach", U64.pack(cur))
            if memo is not None:
                ok = memo == b"\x01"
                break
            d = self.s.dir(cur)
            if d is None or cur in seen:
                break
            chain.append(cur)
            seen.add(cur)
            cur = d.parent_ino
        if chain:
            with spill.write() as txn:
                for c in chain:
                    txn.put(U64.pack(c), b"\x01" if ok else b"\x00", db=spill.db("reach"))
        return ok

    def _reservation_of(self, d: pb.DirInfo) -> None:
        shard = self.shard_of_entry(d.parent_ino, d.name)
        if shard not in self.reachable or (d.parent_ino, d.name) in self.busy_names or d.ino in self.busy_dirs:
            return
        found = [e for s, e in self.s.entries_named(d.parent_ino, d.name) if s == shard]
        path = self.s.path_of(d.ino)
        if not found:
            self.add("dir-unreserved", (d.ino,), f"{path}: directory {d.ino} has no reservation on shard {shard}",
                     parent=d.parent_ino, name=d.name, ino=d.ino)
        elif found[0].type in FILE_TYPES:
            self.add("dir-unreserved", (d.ino,), f"{path}: a file (inode {found[0].ino}) and directory "
                     f"{d.ino} share this name", cannot="a file has the name; rename one of them",
                     parent=d.parent_ino, name=d.name, ino=d.ino)
        elif found[0].ino != d.ino:
            self.add("dir-unreserved", (d.ino,), f"{path}: the name is reserved for directory {found[0].ino}, "
                     f"not {d.ino}", parent=d.parent_ino, name=d.name, ino=d.ino)

    # ------------------------------------------------------------- entries

    def entries(self) -> None:
        dirs_known = self.s.dirs_scanned
        for shard, e in self.s.iter_entries():
            if shard not in self.reachable:
                continue  # a shard whose scan failed half-way: judged as unreachable
            path = _LazyPath(self.s, e.parent_ino, e.name)  # built only for a finding's message
            if self.shard_of_entry(e.parent_ino, e.name) != shard:
                if self.in_move(routing.entry_partition(e.parent_ino, e.name, self.nparts), [shard]):
                    continue  # the other copy of a partition being moved
                # no call reaches it where it is (each checks its routing): a person must move it
                self.add("entry-misplaced", (shard, e.parent_ino, e.name),
                         f"{path}: stored on shard {shard}, its partition belongs to shard "
                         f"{self.shard_of_entry(e.parent_ino, e.name)}")
                continue
            busy = (e.parent_ino, e.name) in self.busy_names
            if e.type == pb.DIRECTORY:
                d = self.s.dir(e.ino)
                matches = d is not None and d.parent_ino == e.parent_ino and d.name == e.name
                if dirs_known and not matches and not busy and e.ino not in self.busy_dirs:
                    self.add("stale-reservation", (e.parent_ino, e.name, e.ino),
                             f"{path}: reserved on shard {shard} for directory {e.ino}, which "
                             + ("is elsewhere" if d is not None else "does not exist"),
                             parent=e.parent_ino, name=e.name, ino=e.ino)
                continue
            exists = self.s.has_inode(e.ino)
            if dirs_known and not self.s.has_dir(e.parent_ino) and e.parent_ino not in self.busy_dirs and not busy:
                self.add("entry-no-parent", (e.parent_ino, e.name, e.ino),
                         f"{path}: file {e.ino} in directory {e.parent_ino}, which does not exist",
                         parent=e.parent_ino, name=e.name, ino=e.ino, exists=exists)
                continue
            home = self.home_of(e.ino)
            if home is not None and home not in self.reachable:
                continue  # cannot tell
            if not exists and e.ino not in self.busy_inos and not busy:
                self.add("entry-dangling", (e.parent_ino, e.name, e.ino),
                         f"{path}: points at inode {e.ino}, which does not exist",
                         parent=e.parent_ino, name=e.name, ino=e.ino)

    # -------------------------------------------------------------- inodes

    def inodes(self) -> None:
        for ino, recs in self.s.iter_inodes():
            recs = [(s, f) for s, f in recs if s in self.reachable]
            if not recs:
                continue
            home = self.home_of(ino)
            holders = sorted(s for s, _ in recs)
            if home is not None and holders != [home] and self.in_move(routing.ino_partition(ino), holders):
                recs = [(s, f) for s, f in recs if s == home] or recs[:1]  # judged by the owner's copy
            elif home is None or holders != [home]:
                self.add("inode-misplaced", (ino,), f"inode {ino} is stored on shard(s) "
                         f"{','.join(map(str, holders))}, its home is {home}")
            c = self.counters.get(routing.ino_partition(ino)) if home is not None else None
            if c is not None and ino & routing.SEQ_MASK > c.last:
                self.add("counter-behind", (ino,), f"inode {ino} is past partition {c.partition}'s counter "
                         f"({c.last}): a later create could be given its number")
            if not self.all_shards_scanned or ino in self.busy_inos:
                continue  # names on an unscanned shard, or a link change in flight
            f = recs[0][1]
            refs = self.s.refs(ino)
            if refs == 0:
                self.add("inode-orphan", (ino,), f"inode {ino} ({f.attr.size} bytes, nlink {f.attr.nlink}) "
                         "has no name", ino=ino, nlink=f.attr.nlink)
            elif refs != f.attr.nlink:
                self.add("inode-nlink", (ino,), f"inode {ino}: link count {f.attr.nlink}, {refs} names",
                         ino=ino, nlink=f.attr.nlink, refs=refs)

    def delegations(self) -> None:
        for p, c in sorted(self.counters.items()):
            if c.delegated_end and c.delegated_end - 1 > c.last:
                self.add("counter-behind", ("delegated", p), f"partition {p}: numbers up to "
                         f"{c.delegated_end - 1} are delegated to a lease holder, its counter is {c.last}")

    def moves(self) -> None:
        # a step recorded long ago (a step whose shard is down is tried for a minute, dirserver/moves.py),
        # and found again by the confirming scan at the same step (the key): stuck
        now = time.time_ns()
        for p, m in sorted(self.moving.items()):
            if now - m.step_ns < MOVE_STUCK_AFTER_NS:
                continue
            self.add("move-stuck", (p, m.step), f"partition {p}: its move from shard {m.source} to shard "
                     f"{m.target} stands at step {m.step!r} (a shard down? run 'superfs admin add-shard' or "
                     "'remove-shard' again to go on, or restart the dir server to roll it back)")

    # -------------------------------------------------------------- chunks

    def chunks(self) -> None:
        for sid in sorted(self.scanned_data):
            if self.s.data_stats.get(sid, pb.DataStatsReply()).degraded:
                self.add("server-degraded", (sid,), f"data server {sid} lost its chunks and is not rebuilt yet",
                         server=sid)
        r = self.s.replicas()
        cur_ino = -1
        f: pb.FileInfo | None = None
        per_ino = _InoChunks()
        for ino, idx, have in self.s.iter_chunks():
            have = {sid: c for sid, c in have.items() if sid in self.scanned_data}
            if not have:
                continue
            if ino != cur_ino:
                self._chunk_findings(cur_ino, f, per_ino)
                cur_ino, f, per_ino = ino, self.s.file(ino), _InoChunks()
            if f is None:
                home = self.home_of(ino)
                if ino not in self.freed and (home is None or home in self.reachable):
                    for sid, c in have.items():
                        per_ino.orphans[sid].append(idx)
                        per_ino.stamp(sid, c)
                continue
            if f.inline:
                for sid, c in have.items():
                    per_ino.inline[sid].append(idx)
                    per_ino.stamp(sid, c)
                continue
            reps = routing.chunk_replicas(ino, idx, list(f.layout), r)
            for sid, c in sorted(have.items()):
                where = f"inode {ino} chunk {idx} on data server {sid}"
                if sid not in reps:
                    self.add("chunk-misplaced", (sid, ino, idx), f"{where}: not one of its replicas {reps}",
                             server=sid, ino=ino, index=idx, **_stamps({sid: c}))
                    continue
                if c.corrupt:
                    self.add("replica-corrupt", (sid, ino, idx), f"{where}: checksum mismatch",
                             target=sid, ino=ino, index=idx)
                if self._past_eof(f, idx, c.length):
                    per_ino.past[sid].append(idx)
                    per_ino.stamp(sid, c)
            self._replicas_of(f, idx, r, {sid: c for sid, c in have.items() if sid in reps})
        self._chunk_findings(cur_ino, f, per_ino)

    def _chunk_findings(self, ino: int, f: pb.FileInfo | None, c: "_InoChunks") -> None:
        """The per-server findings about one inode's chunks, once all of them were seen."""
        for sid, idxs in sorted(c.orphans.items()):
            self.add("chunk-no-file", (sid, ino), f"data server {sid}: {len(idxs)} chunk(s) "
                     f"[{_ranges(idxs)}] of inode {ino}, which does not exist", server=sid, ino=ino,
                     **c.stamps_of(sid))
        for sid, idxs in sorted(c.inline.items()):
            self.add("chunk-inline-file", (sid, ino), f"data server {sid}: {len(idxs)} chunk(s) "
                     f"[{_ranges(idxs)}] of inode {ino}, whose bytes are inline", server=sid, ino=ino,
                     **c.stamps_of(sid))
        for sid, idxs in sorted(c.past.items()):
            assert f is not None
            self.add("chunk-past-eof", (sid, ino), f"data server {sid}: chunk(s) [{_ranges(idxs)}] of inode {ino} "
                     f"hold bytes past its end ({f.attr.size} bytes)", server=sid, ino=ino,
                     size=f.attr.size, chunk_size=f.chunk_size, generation=f.attr.generation, **c.stamps_of(sid))

    def _past_eof(self, f: pb.FileInfo, idx: int, length: int) -> bool:
        """Does chunk ``idx`` (of ``length`` bytes) hold bytes past the file's end?
        (Not if a queued shrink will cut them anyway.)"""
        cs, size = f.chunk_size, f.attr.size
        if cs <= 0 or idx * cs + length <= size:
            return False
        shrink = self.shrinking.get(f.attr.ino)
        return shrink is None or shrink > max(size, idx * cs)

    def _replicas_of(self, f: pb.FileInfo, idx: int, r: int, have: dict[int, pb.ChunkEntry]) -> None:
        """Replica rules for chunk ``idx`` of ``f``; ``have``: its replicas found on scanned servers."""
        ino, cs, size = f.attr.ino, f.chunk_size, f.attr.size
        if cs <= 0 or idx * cs >= size:
            return  # past the end: garbage, reported above
        reps = routing.chunk_replicas(ino, idx, list(f.layout), r)
        healthy = [sid for sid in reps if sid in have and not have[sid].corrupt]
        visible = min(cs, size - idx * cs)
        stamps = _stamps(have)
        for sid in reps:
            if sid in self.scanned_data and sid not in have:
                self.add("replica-missing", (sid, ino, idx), f"inode {ino} chunk {idx}: no replica on "
                         f"data server {sid} (replicas {reps})", target=sid, ino=ino, index=idx,
                         sources=healthy, cannot="" if healthy else "no healthy replica left", **stamps)
        if any(c.corrupt for c in have.values()) and not healthy:
            self.add("replica-corrupt", ("all", ino, idx), f"inode {ino} chunk {idx}: every replica is corrupt",
                     cannot="no healthy replica left", ino=ino, index=idx)
        sums = {(have[s].length, have[s].algorithm, have[s].checksum) for s in healthy}
        if len(sums) > 1:
            # the stored checksums cover whole chunks: a stale tail past the end also differs.
            # The runner reads the visible bytes before calling this an inconsistency.
            self.add("replica-differs", (ino, idx), f"inode {ino} chunk {idx}: replicas "
                     f"{','.join(map(str, healthy))} hold different bytes", ino=ino, index=idx,
                     sources=healthy, visible=visible, candidate=True, **stamps)


class _LazyPath:
    """An entry's readable path, worked out only if a message needs it (most entries are fine)."""

    def __init__(self, snap: Snapshot, parent: int, name: str) -> None:
        self.snap, self.parent, self.name = snap, parent, name

    def __str__(self) -> str:
        return self.snap.entry_path(self.parent, self.name)

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


class _InoChunks:
    """What one inode's chunks showed, per data server, until the next inode comes."""

    def __init__(self) -> None:
        self.orphans: dict[int, list[int]] = defaultdict(list)
        self.inline: dict[int, list[int]] = defaultdict(list)
        self.past: dict[int, list[int]] = defaultdict(list)
        self.seq: dict[int, int] = {}
        self.newest: dict[int, int] = {}

    def stamp(self, sid: int, c: pb.ChunkEntry) -> None:
        self.seq[sid] = max(self.seq.get(sid, 0), c.write_seq)
        self.newest[sid] = max(self.newest.get(sid, 0), c.written_ns)

    def stamps_of(self, sid: int) -> dict[str, object]:
        return {"seqs": {str(sid): self.seq.get(sid, 0)}, "newest_ns": {str(sid): self.newest.get(sid, 0)}}


def _stamps(have: dict[int, pb.ChunkEntry]) -> dict[str, object]:
    """The write stamps of the chunks a finding is about: data server -> newest write."""
    return {"seqs": {str(s): c.write_seq for s, c in have.items()},
            "newest_ns": {str(s): c.written_ns for s, c in have.items()}}
