"""Running fsck and replica repair: phases, progress lines, confirmation, report, exit status.

fsck, in phases (one progress line each):

1. settle: wait (bounded) for operations in flight to finish, so that the
   scan sees a cluster at rest where it can;
2. directories, 3. shards, 4. data servers: the scan (snapshot.py);
5. cross-check (checks.py); findings are then *confirmed* by a second scan:
   only what both scans show is reported, so an operation that was half-way
   through during the first scan is not reported. The second scan starts
   once every shard has finished the mutating calls it had begun when the
   first scan ended (a marker each shard keeps: ops_begun / ops_low_water),
   and a chunk finding is dropped if a chunk it is about was written after
   the first scan began (each data server's write sequence);
6. (``--repair``) the fixes (repair.py), then a full re-check whose result
   is the exit status.

``--repair`` never cuts bytes a writer pushed and has not sized yet: chunk
bytes past a file's end are left alone when they were written less than
``grace_s`` ago (by the data server's clock; a writer sizes what it pushed
within client.sizing.UNSIZED_DEADLINE_S) or after the first scan began, and
the data server itself enforces both in the deletion (DeleteChunks'
max_write_seq / min_age_ns), so a write landing during the repair is safe.

Everything scanned streams into temporary LMDB files (spill.py), removed at
the end: fsck's memory does not grow with the number of files.

Exit status: 0 when no inconsistency is left (garbage alone is reported,
not counted), 1 otherwise.

``superfs repair`` runs the replica part only: scan shards and data servers,
re-create every missing, corrupt or diverging replica, clear the degraded
flag of rebuilt data servers, and check again.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TextIO

from superfs.client.admin import AdminClient
from superfs.client.sizing import UNSIZED_DEADLINE_S
from superfs.errors import FsError
from superfs.faults import pause_point
from superfs.fsck import checks, replicas, snapshot
from superfs.fsck.findings import ERROR, GARBAGE, KINDS, Finding
from superfs.fsck.repair import Repairer
from superfs.fsck.snapshot import DataMark, Snapshot

log = logging.getLogger(__name__)

POLL_S = 0.05  # how often the shards' markers are read while waiting for them
GRACE_S = UNSIZED_DEADLINE_S + 20.0
REPLICA_KINDS = frozenset({"replica-missing", "replica-corrupt", "replica-differs", "server-degraded"})


@dataclass(frozen=True)
class Options:
    repair: bool = False
    verify: bool = True        # re-hash every chunk (ListChunks verify)
    settle_s: float = 10.0     # longest wait for operations in flight
    confirm: bool = True       # report only what a second scan shows again
    grace_s: float = GRACE_S   # --repair leaves chunk bytes past a file's end this young alone


class Run:
    """One fsck or repair run, printing to ``out``."""

    def __init__(self, admin: AdminClient, opts: Options, out: TextIO) -> None:
        self.admin = admin
        self.opts = opts
        self.out = out

    def say(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    # ------------------------------------------------------------------ fsck

    async def fsck(self) -> int:
        cmap = await self.admin.cluster_map()
        self.say(f"superfs fsck: cluster {cmap.cluster_name!r} at {self.admin.dir_address}: "
                 f"{len(cmap.shards)} shards, {len(cmap.data_servers)} data servers, R={cmap.replicas}")
        await self.settle()
        first = await self.scan_and_check(verbose=True)
        pause_point("fsck.after_first_scan")
        snap = await self.confirm(first)
        try:
            self.report(snap)
            if not self.opts.repair:
                if snap.findings.errors and any(f.repairable for f in snap.findings):
                    self.say("run again with --repair to fix what can be fixed")
                return 1 if snap.findings.errors else 0
            if not len(snap.findings):
                return 0
            self.say(f"repair: {len(snap.findings)} findings")
            async for o in Repairer(self.admin, snap, grace_s=self.opts.grace_s).run(snap.findings):
                self.say(f"  {o}")
        finally:
            snap.close()
        self.say("re-checking after the repair")
        await self.settle()
        after = await self.confirm(await self.scan_and_check(verbose=False))
        try:
            self.report(after)
            return 1 if after.findings.errors else 0
        finally:
            after.close()

    async def settle(self) -> int:
        """Wait up to settle_s for pending operations to drain; return how many are left."""
        deadline = time.monotonic() + self.opts.settle_s
        first = None
        while True:
            left = await self._pending_count()
            if first is None:
                first = left
            if left == 0 or time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.2)
        if first:
            self.say(f"phase 1/5 settle: {first} operations in flight at the start, {left} left")
        else:
            self.say("phase 1/5 settle: no operations in flight")
        return left

    async def _pending_count(self) -> int:
        n = 0
        try:
            n += len(await self.admin.dir_intents())
        except Exception:  # noqa: BLE001 - unreachable: the scan reports it
            pass
        for r in await self.admin.each(self.admin.shards(), lambda s: self.admin.pending(s.id)):
            if not isinstance(r, BaseException):
                n += len(r.intents) + len(r.outbox)
        return n

    async def scan_and_check(self, *, verbose: bool) -> Snapshot:
        """One full scan into a new snapshot, its findings in ``snap.findings``."""
        say = self.say if verbose else (lambda line: None)
        snap = await snapshot.start(self.admin, verify=self.opts.verify)
        try:
            await snapshot.scan_dirs(self.admin, snap)
            say(f"phase 2/5 directories: {snap.n_dirs} directories, {len(snap.dir_intents)} intents")
            await snapshot.scan_shards(self.admin, snap)
            say(f"phase 3/5 shards: {snap.n_entries} names, {snap.n_inodes} inodes on "
                f"{len(snap.pending)} of {len(set(snap.cmap.partition_shard))} shards")
            await snapshot.scan_data(self.admin, snap)
            say(f"phase 4/5 data servers: {snap.chunk_total()} chunks on {len(snap.n_chunks)} of "
                f"{len(snap.cmap.data_servers)} data servers"
                + (", checksums verified" if self.opts.verify else ", checksums not verified"))
            checks.check_into(snap, snap.findings.add)
            await replicas.resolve_differs(self.admin, snap.findings)
        except BaseException:
            snap.close()
            raise
        snap.first_marks = dict(snap.data_marks)
        say(f"phase 5/5 cross-check: {snap.findings.errors} inconsistencies, {snap.findings.garbage} garbage")
        return snap

    async def confirm(self, first: Snapshot) -> Snapshot:
        """Only what a second scan shows again, and not about chunks written since the first.

        The second scan waits for the shards' marker (wait_for_calls), not for
        a guessed moment. Returns the second snapshot (the first is closed).
        """
        if not len(first.findings) or not self.opts.confirm:
            return first
        await self.wait_for_calls(first.shard_ops)
        try:
            again = await self.scan_and_check(verbose=False)
        except BaseException:
            first.close()
            raise
        try:
            stale = [f for f in again.findings
                     if not first.findings.has(f) or _written_since(f, first.data_marks)]
            for f in stale:
                again.findings.discard(f)
            dropped = len(first.findings) - len(again.findings)
            again.first_marks = dict(first.data_marks)
        finally:
            first.close()
        if dropped > 0:
            self.say(f"confirm: {dropped} findings were gone on a second look (operations in flight)")
        return again

    async def wait_for_calls(self, begun: dict[int, int]) -> None:
        """Until every shard finished the mutating calls it had begun at ``begun`` (bounded by settle_s)."""
        deadline = time.monotonic() + self.opts.settle_s
        left = dict(begun)
        while left and time.monotonic() < deadline:
            for sid, mark in list(left.items()):
                try:
                    p = await self.admin.pending(sid)
                except FsError:
                    del left[sid]  # unreachable now: the second scan says so
                    continue
                if p.ops_low_water > mark:
                    del left[sid]
            if left:
                await asyncio.sleep(POLL_S)
        if left:
            self.say(f"confirm: shard(s) {', '.join(map(str, sorted(left)))} still busy with calls from before "
                     "the first scan")

    def report(self, snap: Snapshot) -> None:
        for severity in (ERROR, GARBAGE):
            for f in snap.findings:
                if f.severity == severity:
                    fixable = "" if f.repairable else "  [--repair cannot fix this]"
                    self.say(f"  {f}{fixable}")
        reclaim = sum(len(p.reclaim) for p in snap.pending.values())
        tail = f"; {reclaim} reclaim items queued" if reclaim else ""
        garbage = snap.findings.garbage
        if not snap.findings.errors:
            self.say(f"clean: no inconsistencies ({garbage} garbage{tail})")
        else:
            kinds = snap.findings.kinds(ERROR)
            self.say(f"NOT clean: {snap.findings.errors} inconsistencies ({', '.join(kinds)}), "
                     f"{garbage} garbage{tail}")

    # ---------------------------------------------------------------- repair

    async def repair_replicas(self) -> int:
        cmap = await self.admin.cluster_map()
        self.say(f"superfs repair: cluster {cmap.cluster_name!r} at {self.admin.dir_address}: "
                 f"{len(cmap.data_servers)} data servers, R={cmap.replicas}")
        snap = await self._replica_findings(verbose=True)
        try:
            todo = sum(1 for f in snap.findings if f.kind in REPLICA_KINDS)
            self.say(f"phase 3/4 plan: {todo} replicas to re-create or fix")
            fixed = bad = 0
            chosen = (f for f in snap.findings if f.kind in REPLICA_KINDS)
            async for o in Repairer(self.admin, snap, grace_s=self.opts.grace_s).run(chosen):
                if o.fixed:
                    fixed += 1
                else:
                    bad += 1
                    self.say(f"  {o}")
            self.say(f"phase 4/4 repair: {fixed} fixed, {bad} not")
        finally:
            snap.close()
        after = await self._replica_findings(verbose=False)
        try:
            left = [f for f in after.findings if f.kind in REPLICA_KINDS or f.kind == "unreachable"]
        finally:
            after.close()
        for f in left:
            self.say(f"  {f}")
        if left:
            self.say(f"NOT done: {len(left)} problems left (see above)")
            return 1
        self.say(f"done: every chunk has its {cmap.replicas} healthy replicas")
        return 0

    async def _replica_findings(self, *, verbose: bool) -> Snapshot:
        say = self.say if verbose else (lambda line: None)
        snap = await snapshot.start(self.admin, verify=self.opts.verify)
        try:
            await snapshot.scan_shards(self.admin, snap)
            say(f"phase 1/4 shards: {snap.n_inodes} inodes on {len(snap.pending)} shards")
            await snapshot.scan_data(self.admin, snap)
            say(f"phase 2/4 data servers: {snap.chunk_total()} chunks on {len(snap.n_chunks)} of "
                f"{len(snap.cmap.data_servers)} data servers")
            checks.check_into(snap, lambda f: snap.findings.add(f) if (
                f.kind in REPLICA_KINDS or (f.kind == "unreachable" and "data" in f.message)) else None)
            await replicas.resolve_differs(self.admin, snap.findings)
        except BaseException:
            snap.close()
            raise
        snap.first_marks = dict(snap.data_marks)
        return snap


def _written_since(f: Finding, marks: dict[int, DataMark]) -> bool:
    """Is a chunk this finding is about newer than the first scan (a write in flight)?"""
    for sid, seq in (f.fix.get("seqs") or {}).items():
        mark = marks.get(int(sid))
        if mark is not None and seq > mark.write_seq:
            return True
    return False


def legend() -> str:
    """Every kind fsck reports, for --help."""
    lines = []
    for k in KINDS.values():
        sev = "error  " if k.severity == ERROR else "garbage"
        lines.append(f"  {k.name:<18} {sev} {k.what}")
    return "\n".join(lines)
