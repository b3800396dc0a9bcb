"""Running fsck and replica repair: phases, progress lines, confirmation, report, exit status.

fsck, in phases (one progress line each):

1. settle: wait (bounded) for operations in flight to finish, so that the
   scan sees a cluster at rest where it can;
2. directories, 3. shards, 4. data servers: the scan (snapshot.py);
5. cross-check (checks.py); findings are then *confirmed* by a second scan
   a moment later: only what both scans show is reported, so an operation
   that was half-way through during the first scan is not reported;
6. (``--repair``) the fixes (repair.py), then a full re-check whose result
   is the exit status.

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
from superfs.fsck import checks, replicas, snapshot
from superfs.fsck.findings import ERROR, GARBAGE, KINDS, Finding, errors
from superfs.fsck.repair import Repairer
from superfs.fsck.snapshot import Snapshot

log = logging.getLogger(__name__)

CONFIRM_DELAY_S = 1.0
REPLICA_KINDS = frozenset({"replica-missing", "replica-corrupt", "replica-differs", "server-degraded"})


@dataclass(frozen=True)
class Options:
    repair: bool = False
    verify: bool = True        # re-hash every chunk (ListChunks verify)
    settle_s: float = 10.0     # longest wait for operations in flight
    confirm: bool = True       # report only what a second scan shows again


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
        self.say(f"superfs fsck: cluster {cmap.cluster_name!r} at {self.admin.cluster.dir_address}: "
                 f"{len(cmap.shards)} shards, {len(cmap.data_servers)} data servers, R={cmap.replicas}")
        await self.settle()
        findings, snap = await self.scan_and_check(verbose=True)
        findings = await self.confirm(findings)
        self.report(findings, snap)
        if not self.opts.repair:
            if errors(findings) and any(f.repairable for f in findings):
                self.say("run again with --repair to fix what can be fixed")
            return 1 if errors(findings) else 0
        if not findings:
            return 0
        self.say(f"repair: {len(findings)} findings")
        outcomes = await Repairer(self.admin, snap).run(findings)
        for o in outcomes:
            self.say(f"  {o}")
        self.say("re-checking after the repair")
        await self.settle()
        after, snap = await self.scan_and_check(verbose=False)
        after = await self.confirm(after)
        self.report(after, snap)
        return 1 if errors(after) else 0

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

    async def scan_and_check(self, *, verbose: bool) -> tuple[list[Finding], Snapshot]:
        say = self.say if verbose else (lambda line: None)
        snap = await snapshot.start(self.admin, verify=self.opts.verify)
        await snapshot.scan_dirs(self.admin, snap)
        say(f"phase 2/5 directories: {len(snap.dirs)} directories, {len(snap.dir_intents)} intents")
        await snapshot.scan_shards(self.admin, snap)
        say(f"phase 3/5 shards: {len(snap.entries)} names, {len(snap.inodes)} inodes on "
            f"{len(snap.pending)} of {len(set(snap.cmap.partition_shard))} shards")
        await snapshot.scan_data(self.admin, snap)
        say(f"phase 4/5 data servers: {snap.chunk_total()} chunks on {len(snap.chunks)} of "
            f"{len(snap.cmap.data_servers)} data servers"
            + (", checksums verified" if self.opts.verify else ", checksums not verified"))
        findings = await replicas.resolve_differs(self.admin, checks.check(snap))
        say(f"phase 5/5 cross-check: {len(errors(findings))} inconsistencies, "
            f"{len(findings) - len(errors(findings))} garbage")
        return findings, snap

    async def confirm(self, findings: list[Finding]) -> list[Finding]:
        """Only what a second scan shows again (a half-done operation during the first is not a finding)."""
        if not findings or not self.opts.confirm:
            return findings
        await asyncio.sleep(CONFIRM_DELAY_S)
        again, _ = await self.scan_and_check(verbose=False)
        keys = {f.key for f in again}
        kept = [f for f in again if f.key in {g.key for g in findings}]
        dropped = len([f for f in findings if f.key not in keys])
        if dropped:
            self.say(f"confirm: {dropped} findings were gone on a second look (operations in flight)")
        return kept

    def report(self, findings: list[Finding], snap: Snapshot) -> None:
        errs = errors(findings)
        garbage = [f for f in findings if f.severity == GARBAGE]
        for f in errs + garbage:
            fixable = "" if f.repairable else "  [--repair cannot fix this]"
            self.say(f"  {f}{fixable}")
        reclaim = sum(len(p.reclaim) for p in snap.pending.values())
        tail = f"; {reclaim} reclaim items queued" if reclaim else ""
        if not errs:
            self.say(f"clean: no inconsistencies ({len(garbage)} garbage{tail})")
        else:
            kinds = sorted({f.kind for f in errs})
            self.say(f"NOT clean: {len(errs)} inconsistencies ({', '.join(kinds)}), {len(garbage)} garbage{tail}")

    # ---------------------------------------------------------------- repair

    async def repair_replicas(self) -> int:
        cmap = await self.admin.cluster_map()
        self.say(f"superfs repair: cluster {cmap.cluster_name!r} at {self.admin.cluster.dir_address}: "
                 f"{len(cmap.data_servers)} data servers, R={cmap.replicas}")
        findings, snap = await self._replica_findings(verbose=True)
        todo = [f for f in findings if f.kind in REPLICA_KINDS]
        self.say(f"phase 3/4 plan: {len(todo)} replicas to re-create or fix")
        outcomes = await Repairer(self.admin, snap).run(todo)
        bad = [o for o in outcomes if not o.fixed]
        for o in bad:
            self.say(f"  {o}")
        self.say(f"phase 4/4 repair: {len(outcomes) - len(bad)} fixed, {len(bad)} not")
        after, _ = await self._replica_findings(verbose=False)
        left = [f for f in after if f.kind in REPLICA_KINDS or f.kind == "unreachable"]
        for f in left:
            self.say(f"  {f}")
        if left:
            self.say(f"NOT done: {len(left)} problems left (see above)")
            return 1
        self.say(f"done: every chunk has its {cmap.replicas} healthy replicas")
        return 0

    async def _replica_findings(self, *, verbose: bool) -> tuple[list[Finding], Snapshot]:
        say = self.say if verbose else (lambda line: None)
        snap = await snapshot.start(self.admin, verify=self.opts.verify)
        await snapshot.scan_shards(self.admin, snap)
        say(f"phase 1/4 shards: {len(snap.inodes)} inodes on {len(snap.pending)} shards")
        await snapshot.scan_data(self.admin, snap)
        say(f"phase 2/4 data servers: {snap.chunk_total()} chunks on {len(snap.chunks)} of "
            f"{len(snap.cmap.data_servers)} data servers")
        findings = [f for f in await replicas.resolve_differs(self.admin, checks.check(snap))
                    if f.kind in REPLICA_KINDS or (f.kind == "unreachable" and "data" in f.message)]
        return findings, snap


def legend() -> str:
    """Every kind fsck reports, for --help."""
    lines = []
    for k in KINDS.values():
        sev = "error  " if k.severity == ERROR else "garbage"
        lines.append(f"  {k.name:<18} {sev} {k.what}")
    return "\n".join(lines)
