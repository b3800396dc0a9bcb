"""Applying fixes: one small, idempotent step per finding, through the client library.

Order matters only a little: reservations are released before others are
made (a directory may need a name a stale reservation holds), names are
moved to /lost+found before link counts are corrected (a move keeps the
count), replicas are re-created before a degraded data server is declared
rebuilt. Every step is safe to repeat, so an interrupted repair is finished
by running it again.

Files are never deleted to make a cluster consistent: a file whose directory
is gone, and an inode without a name, get a name in ``/lost+found``
(``<parent>-<name>`` and ``#<ino>``), as e2fsck does.
"""
from __future__ import annotations

import errno
import logging
from dataclasses import dataclass
from typing import Awaitable, Callable

from superfs.client.admin import AdminClient
from superfs.errors import FsError
from superfs.fsck import replicas
from superfs.fsck.findings import Finding
from superfs.fsck.snapshot import Snapshot
from superfs.routing import ROOT_INO

log = logging.getLogger(__name__)

LOST_FOUND = "lost+found"

# the order kinds are repaired in
ORDER = ["pending", "stale-reservation", "dir-unreserved", "dir-nlink", "sealed-live-dir",
         "entry-no-parent", "entry-dangling", "inode-orphan", "inode-nlink",
         "replica-missing", "replica-corrupt", "replica-differs", "server-degraded",
         "chunk-no-file", "chunk-past-eof", "chunk-inline-file", "chunk-misplaced"]


@dataclass
class Outcome:
    finding: Finding
    fixed: bool
    note: str

    def __str__(self) -> str:
        return f"{'fixed' if self.fixed else 'NOT fixed'}: {self.finding.kind}: {self.finding.message}" + (
            f" ({self.note})" if self.note else "")


class Repairer:
    def __init__(self, admin: AdminClient, snap: Snapshot) -> None:
        self.admin = admin
        self.snap = snap
        self._lost_found: int | None = None
        self._failed_targets: set[int] = set()  # data servers a copy to failed
        self._settled = False

    async def run(self, findings: list[Finding]) -> list[Outcome]:
        rank = {k: i for i, k in enumerate(ORDER)}
        out: list[Outcome] = []
        for f in sorted(findings, key=lambda f: rank.get(f.kind, len(ORDER))):
            out.append(await self.one(f))
        return out

    async def one(self, f: Finding) -> Outcome:
        if not f.repairable:
            why = f.fix.get("cannot") or "fsck cannot repair this kind; it needs a person"
            return Outcome(f, False, why)
        step = self._STEPS.get(f.kind)
        if step is None:  # pragma: no cover - every repairable kind has a step
            return Outcome(f, False, "no repair step")
        try:
            note = await step(self, f)
        except FsError as e:
            log.warning("repair of %s failed: %s", f, e)
            if f.kind in ("replica-missing", "replica-corrupt", "replica-differs"):
                self._failed_targets.update(f.fix.get("targets") or [f.fix.get("target")])
            return Outcome(f, False, f"failed: {e}")
        return Outcome(f, True, note)

    # ---------------------------------------------------------------- steps

    async def _pending(self, f: Finding) -> str:
        if not self._settled:
            self._settled = True
            await self.admin.settle_dir_intents()
            await self.admin.each(self.admin.shards(), lambda s: self.admin.run_maintenance(s.id))
        return "asked the daemons to finish it; the re-check says whether they could"

    async def _stale_reservation(self, f: Finding) -> str:
        await self.admin.release_dir_entry(f.fix["parent"], f.fix["name"], f.fix["ino"])
        return "released"

    async def _dir_unreserved(self, f: Finding) -> str:
        await self.admin.reserve_dir_entry(f.fix["parent"], f.fix["name"], f.fix["ino"])
        return "reserved"

    async def _dir_nlink(self, f: Finding) -> str:
        attr = await self.admin.recount_dir(f.fix["ino"])
        return f"now {attr.nlink}"

    async def _sealed_live_dir(self, f: Finding) -> str:
        await self.admin.unseal(f.fix["shard"], f.fix["ino"])
        return "unsealed"

    async def _lost_and_found(self) -> int:
        if self._lost_found is None:
            self._lost_found = await self.admin.mkdir_p(ROOT_INO, LOST_FOUND)
        return self._lost_found

    async def _entry_no_parent(self, f: Finding) -> str:
        parent, name, ino = f.fix["parent"], f.fix["name"], f.fix["ino"]
        note = "removed the name (its inode does not exist either)"
        if f.fix.get("exists"):
            new = f"{parent}-{name}"[:255]
            await self.admin.link(ino, await self._lost_and_found(), new)
            note = f"moved to /{LOST_FOUND}/{new}"
        await self.admin.remove_entry(parent, name, ino, drop_link=bool(f.fix.get("exists")))
        return note

    async def _entry_dangling(self, f: Finding) -> str:
        await self.admin.remove_entry(f.fix["parent"], f.fix["name"], f.fix["ino"], drop_link=False)
        return "removed the name"

    async def _inode_orphan(self, f: Finding) -> str:
        ino, nlink = f.fix["ino"], f.fix["nlink"]
        name = f"#{ino}"
        await self.admin.link(ino, await self._lost_and_found(), name)
        await self.admin.adjust_nlink(ino, -nlink)  # the link just made is its only name
        return f"named /{LOST_FOUND}/{name}"

    async def _inode_nlink(self, f: Finding) -> str:
        attr = await self.admin.adjust_nlink(f.fix["ino"], f.fix["refs"] - f.fix["nlink"])
        return f"now {attr.nlink}"

    async def _replica(self, f: Finding) -> str:
        return await replicas.repair_chunk(self.admin, self.snap, f)

    async def _server_degraded(self, f: Finding) -> str:
        sid = f.fix["server"]
        if sid in self._failed_targets:
            raise FsError(errno.EIO, "some of its replicas could not be re-created; it stays degraded")
        await self.admin.set_degraded(sid, False)
        return "every replica it should hold is back"

    async def _chunk_no_file(self, f: Finding) -> str:
        await self.admin.delete_chunks(f.fix["server"], f.fix["ino"])
        return "deleted"

    async def _chunk_past_eof(self, f: Finding) -> str:
        sid, ino, size, cs = f.fix["server"], f.fix["ino"], f.fix["size"], f.fix["chunk_size"]
        # a write since the scan (size or generation moved) owns those bytes now
        cur = await self.admin.get_file(ino)
        if cur.attr.size != size or cur.attr.generation != f.fix["generation"]:
            return "skipped: the file changed since the scan"
        last, tail = divmod(size, cs)
        if tail:
            await self.admin.truncate_chunk(sid, ino, last, tail)
            last += 1
        await self.admin.delete_chunks(sid, ino, from_index=last)
        return "cut at the end of the file"

    async def _chunk_inline_file(self, f: Finding) -> str:
        cur = await self.admin.get_file(f.fix["ino"])
        if not cur.inline:
            return "skipped: the file moved to chunks since the scan"
        await self.admin.delete_chunks(f.fix["server"], f.fix["ino"])
        return "deleted"

    async def _chunk_misplaced(self, f: Finding) -> str:
        idx = f.fix["index"]
        await self.admin.delete_chunks(f.fix["server"], f.fix["ino"], from_index=idx, to_index=idx + 1)
        return "deleted"

    _STEPS: dict[str, Callable[["Repairer", Finding], Awaitable[str]]] = {
        "pending": _pending,
        "stale-reservation": _stale_reservation,
        "dir-unreserved": _dir_unreserved,
        "dir-nlink": _dir_nlink,
        "sealed-live-dir": _sealed_live_dir,
        "entry-no-parent": _entry_no_parent,
        "entry-dangling": _entry_dangling,
        "inode-orphan": _inode_orphan,
        "inode-nlink": _inode_nlink,
        "replica-missing": _replica,
        "replica-corrupt": _replica,
        "replica-differs": _replica,
        "server-degraded": _server_degraded,
        "chunk-no-file": _chunk_no_file,
        "chunk-past-eof": _chunk_past_eof,
        "chunk-inline-file": _chunk_inline_file,
        "chunk-misplaced": _chunk_misplaced,
    }
