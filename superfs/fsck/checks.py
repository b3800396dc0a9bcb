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
"""
from __future__ import annotations

from collections import defaultdict
from typing import Iterable

from superfs import routing
from superfs.filetypes import FILE_TYPES
from superfs.fsck.findings import Finding
from superfs.fsck.snapshot import Snapshot
from superfs.routing import ROOT_INO, is_dir_ino
from superfs.v1 import superfs_pb2 as pb



def check(snap: Snapshot) -> list[Finding]:
    c = _Checker(snap)
    c.unreachable()
    c.pending()
    if snap.dirs_scanned:
        c.directories()
        c.seals()
    c.entries()
    c.inodes()
    c.chunks()
    return c.findings


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
    def __init__(self, snap: Snapshot) -> None:
        self.s = snap
        self.findings: list[Finding] = []
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
        self.by_name: dict[tuple[int, str], list[tuple[int, pb.EntryRecord]]] = defaultdict(list)
        for shard, e in snap.entries:
            self.by_name[(e.parent_ino, e.name)].append((shard, e))
        self.files: dict[int, pb.FileInfo] = {ino: recs[0][1] for ino, recs in snap.inodes.items()}

    def add(self, kind: str, key: tuple[object, ...], message: str, **fix: object) -> None:
        self.findings.append(Finding(kind, (kind, *key), message, dict(fix)))

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
        dirs = self.s.dirs
        children: dict[int, int] = defaultdict(int)
        for d in dirs.values():
            if d.ino != ROOT_INO:
                children[d.parent_ino] += 1
        reaches_root: dict[int, bool] = {ROOT_INO: True}
        for d in dirs.values():
            if not self._reaches_root(d.ino, reaches_root) and d.ino not in self.busy_dirs:
                self.add("dir-orphan", (d.ino,), f"directory {d.ino} ({d.name!r}, parent {d.parent_ino}) "
                         "is not reachable from root")
            want = 2 + children[d.ino]
            if d.attr.nlink != want and d.ino not in self.busy_dirs:
                self.add("dir-nlink", (d.ino,), f"{self.s.path_of(d.ino)}: link count {d.attr.nlink}, "
                         f"{want} counted", ino=d.ino)
            if d.ino != ROOT_INO:
                self._reservation_of(d)

    def seals(self) -> None:
        for shard, p in sorted(self.s.pending.items()):
            for dir_ino in p.sealed_dirs:
                if dir_ino in self.s.dirs and dir_ino not in self.busy_dirs:
                    self.add("sealed-live-dir", (shard, dir_ino), f"{self.s.path_of(dir_ino)}: sealed on shard "
                             f"{shard} with no removal in flight: nothing can be created in it there",
                             shard=shard, ino=dir_ino)

    def _reaches_root(self, ino: int, memo: dict[int, bool]) -> bool:
        chain: list[int] = []
        cur = ino
        ok = False
        while True:
            if cur in memo:
                ok = memo[cur]
                break
            d = self.s.dirs.get(cur)
            if d is None or cur in chain:
                break
            chain.append(cur)
            cur = d.parent_ino
        for c in chain:
            memo[c] = ok
        return ok

    def _reservation_of(self, d: pb.DirInfo) -> None:
        shard = self.shard_of_entry(d.parent_ino, d.name)
        if shard not in self.reachable or (d.parent_ino, d.name) in self.busy_names or d.ino in self.busy_dirs:
            return
        found = [e for s, e in self.by_name.get((d.parent_ino, d.name), []) if s == shard]
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
        self.refs: dict[int, int] = defaultdict(int)
        for shard, e in self.s.entries:
            path = self.s.entry_path(e.parent_ino, e.name)
            if self.shard_of_entry(e.parent_ino, e.name) != shard:
                # no call reaches it where it is (each checks its routing): a person must move it
                self.add("entry-misplaced", (shard, e.parent_ino, e.name),
                         f"{path}: stored on shard {shard}, its partition belongs to shard "
                         f"{self.shard_of_entry(e.parent_ino, e.name)}")
                continue
            busy = (e.parent_ino, e.name) in self.busy_names
            if e.type == pb.DIRECTORY:
                d = self.s.dirs.get(e.ino)
                matches = d is not None and d.parent_ino == e.parent_ino and d.name == e.name
                if dirs_known and not matches and not busy and e.ino not in self.busy_dirs:
                    self.add("stale-reservation", (e.parent_ino, e.name, e.ino),
                             f"{path}: reserved on shard {shard} for directory {e.ino}, which "
                             + ("is elsewhere" if d is not None else "does not exist"),
                             parent=e.parent_ino, name=e.name, ino=e.ino)
                continue
            self.refs[e.ino] += 1
            if dirs_known and e.parent_ino not in self.s.dirs and e.parent_ino not in self.busy_dirs and not busy:
                self.add("entry-no-parent", (e.parent_ino, e.name, e.ino),
                         f"{path}: file {e.ino} in directory {e.parent_ino}, which does not exist",
                         parent=e.parent_ino, name=e.name, ino=e.ino, exists=e.ino in self.files)
                continue
            home = self.home_of(e.ino)
            if home is not None and home not in self.reachable:
                continue  # cannot tell
            if e.ino not in self.files and e.ino not in self.busy_inos and not busy:
                self.add("entry-dangling", (e.parent_ino, e.name, e.ino),
                         f"{path}: points at inode {e.ino}, which does not exist",
                         parent=e.parent_ino, name=e.name, ino=e.ino)

    # -------------------------------------------------------------- inodes

    def inodes(self) -> None:
        for ino, recs in sorted(self.s.inodes.items()):
            home = self.home_of(ino)
            holders = sorted(s for s, _ in recs)
            if home is None or holders != [home]:
                self.add("inode-misplaced", (ino,), f"inode {ino} is stored on shard(s) "
                         f"{','.join(map(str, holders))}, its home is {home}")
            if not self.all_shards_scanned or ino in self.busy_inos:
                continue  # names on an unscanned shard, or a link change in flight
            f = recs[0][1]
            refs = self.refs.get(ino, 0)
            if refs == 0:
                self.add("inode-orphan", (ino,), f"inode {ino} ({f.attr.size} bytes, nlink {f.attr.nlink}) "
                         "has no name", ino=ino, nlink=f.attr.nlink)
            elif refs != f.attr.nlink:
                self.add("inode-nlink", (ino,), f"inode {ino}: link count {f.attr.nlink}, {refs} names",
                         ino=ino, nlink=f.attr.nlink, refs=refs)

    # -------------------------------------------------------------- chunks

    def chunks(self) -> None:
        r = self.s.replicas()
        present: dict[int, set[int]] = defaultdict(set)  # ino -> indexes present somewhere
        garbage_past: dict[tuple[int, int], list[int]] = defaultdict(list)
        for sid, chunks in sorted(self.s.chunks.items()):
            if self.s.data_stats.get(sid, pb.DataStatsReply()).degraded:
                self.add("server-degraded", (sid,), f"data server {sid} lost its chunks and is not rebuilt yet",
                         server=sid)
            orphans: dict[int, list[int]] = defaultdict(list)
            inline: dict[int, list[int]] = defaultdict(list)
            for (ino, idx), c in sorted(chunks.items()):
                f = self.files.get(ino)
                if f is None:
                    home = self.home_of(ino)
                    if ino not in self.freed and (home is None or home in self.reachable):
                        orphans[ino].append(idx)
                    continue
                if f.inline:
                    inline[ino].append(idx)
                    continue
                present[ino].add(idx)
                reps = routing.chunk_replicas(ino, idx, list(f.layout), r)
                where = f"inode {ino} chunk {idx} on data server {sid}"
                if sid not in reps:
                    self.add("chunk-misplaced", (sid, ino, idx), f"{where}: not one of its replicas {reps}",
                             server=sid, ino=ino, index=idx)
                    continue
                if c.corrupt:
                    self.add("replica-corrupt", (sid, ino, idx), f"{where}: checksum mismatch",
                             target=sid, ino=ino, index=idx)
                if self._past_eof(f, idx, c.length):
                    garbage_past[(sid, ino)].append(idx)
            for ino, idxs in orphans.items():
                self.add("chunk-no-file", (sid, ino), f"data server {sid}: {len(idxs)} chunk(s) "
                         f"[{_ranges(idxs)}] of inode {ino}, which does not exist", server=sid, ino=ino)
            for ino, idxs in inline.items():
                self.add("chunk-inline-file", (sid, ino), f"data server {sid}: {len(idxs)} chunk(s) "
                         f"[{_ranges(idxs)}] of inode {ino}, whose bytes are inline", server=sid, ino=ino)
        for (sid, ino), idxs in sorted(garbage_past.items()):
            f = self.files[ino]
            self.add("chunk-past-eof", (sid, ino), f"data server {sid}: chunk(s) [{_ranges(idxs)}] of inode {ino} "
                     f"hold bytes past its end ({f.attr.size} bytes)", server=sid, ino=ino,
                     size=f.attr.size, chunk_size=f.chunk_size, generation=f.attr.generation)
        for ino, indexes in sorted(present.items()):
            self._replicas_of(self.files[ino], sorted(indexes), r)

    def _past_eof(self, f: pb.FileInfo, idx: int, length: int) -> bool:
        """Does chunk ``idx`` (of ``length`` bytes) hold bytes past the file's end?
        (Not if a queued shrink will cut them anyway.)"""
        cs, size = f.chunk_size, f.attr.size
        if cs <= 0 or idx * cs + length <= size:
            return False
        shrink = self.shrinking.get(f.attr.ino)
        return shrink is None or shrink > max(size, idx * cs)

    def _replicas_of(self, f: pb.FileInfo, idxs: list[int], r: int) -> None:
        ino, cs, size = f.attr.ino, f.chunk_size, f.attr.size
        for idx in idxs:
            if idx * cs >= size:
                continue  # past the end: garbage, reported above
            reps = routing.chunk_replicas(ino, idx, list(f.layout), r)
            have = {sid: self.s.chunks[sid].get((ino, idx)) for sid in reps if sid in self.s.chunks}
            healthy = [sid for sid in reps if have.get(sid) is not None and not have[sid].corrupt]  # type: ignore[union-attr]
            visible = min(cs, size - idx * cs)
            for sid in reps:
                if sid in self.s.chunks and have.get(sid) is None:
                    self.add("replica-missing", (sid, ino, idx), f"inode {ino} chunk {idx}: no replica on "
                             f"data server {sid} (replicas {reps})", target=sid, ino=ino, index=idx,
                             sources=healthy, cannot="" if healthy else "no healthy replica left")
            if any(have[sid].corrupt for sid in have if have[sid] is not None) and not healthy:  # type: ignore[union-attr]
                self.add("replica-corrupt", ("all", ino, idx), f"inode {ino} chunk {idx}: every replica is corrupt",
                         cannot="no healthy replica left", ino=ino, index=idx)
            sums = {(have[s].length, have[s].algorithm, have[s].checksum) for s in healthy}  # type: ignore[union-attr]
            if len(sums) > 1:
                # the stored checksums cover whole chunks: a stale tail past the end also differs.
                # The runner reads the visible bytes before calling this an inconsistency.
                self.add("replica-differs", (ino, idx), f"inode {ino} chunk {idx}: replicas "
                         f"{','.join(map(str, healthy))} hold different bytes", ino=ino, index=idx,
                         sources=healthy, visible=visible, candidate=True)
