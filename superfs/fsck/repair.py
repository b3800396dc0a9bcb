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

Chunk bytes are deleted only under the data server's own guard: chunks
written after the first scan began (its write sequence then) are never
touched, and bytes past a file's end (or chunks of an inline file) younger
than ``grace_s`` are left alone, since a writer may not have sized them yet
(client/sizing.py). Findings arrive in repair order (findings.ORDER), one at
a time from the snapshot's store.
"""
from __future__ import annotations

import errno
import logging
from dataclasses import dataclass
from typing import AsyncIterator, Awaitable, Callable, Iterable

from superfs.client.admin import AdminClient
from superfs.errors import FsError
from superfs.fsck import replicas
from superfs.fsck.findings import Finding
from superfs.fsck.snapshot import Snapshot
from superfs.routing import ROOT_INO
from superfs.v1 import superfs_pb2 as pb

log = logging.getLogger(__name__)

LOST_FOUND = "lost+found"


class LeftAlone(Exception):
    """A repair step chose not to act now (its reason is the message)."""


@dataclass
class Outcome:
    finding: Finding
    fixed: bool
    note: str

    def __str__(self) -> str:
        return f"{'fixed' if self.fixed else 'NOT fixed'}: {self.finding.kind}: {self.finding.message}" + (
            f" ({self.note})" if self.note else "")


class Repairer:
    def __init__(self, admin: AdminClient, snap: Snapshot, *, grace_s: float) -> None:
        self.admin = admin
        self.snap = snap
        self.grace_ns = int(grace_s * 1e9)
        self._fenced: dict[int, int] = {}   # inode -> its generation after this run fenced its writers
        self._lost_found: int | None = None
        self._failed_targets: set[int] = set()  # data servers a copy to failed
        self._settled = False

    async def run(self, findings: Iterable[Finding]) -> AsyncIterator[Outcome]:
        """The outcome of each finding, in the order given (the store's: repair order)."""
        for f in findings:
            yield await self.one(f)

    def _guard(self, server: int, *, age: bool) -> dict[str, int]:
        """What the data server must spare: chunks written since the first scan (and young ones)."""
        mark = self.snap.first_marks.get(server)
        return {"max_write_seq": mark.write_seq if mark is not None and mark.write_seq else (1 << 64) - 1,
                "min_age_ns": self.grace_ns if age else 0}

    async def _young(self, server: int, ino: int, chunks: Callable[[pb.ChunkEntry], bool]) -> tuple[int, int]:
        """(chunks selected by ``chunks`` now, how many of them a writer may still size)."""
        found, now = await self.admin.chunks_of(server, ino)
        mark = self.snap.first_marks.get(server)
        picked = [c for c in found if chunks(c)]
        young = [c for c in picked if now - c.written_ns < self.grace_ns
                 or (mark is not None and c.write_seq > mark.write_seq)]
        return len(picked), len(young)

    async def one(self, f: Finding) -> Outcome:
        if not f.repairable:
            why = f.fix.get("cannot") or "fsck cannot repair this kind; it needs a person"
            return Outcome(f, False, why)
        step = self._STEPS.get(f.kind)
        if step is None:  # pragma: no cover - every repairable kind has a step
            return Outcome(f, False, "no repair step")
        try:
            note = await step(self, f)
        except LeftAlone as e:
            return Outcome(f, False, str(e))
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
        sid = f.fix["server"]
        await self.admin.delete_chunks(sid, f.fix["ino"], **self._guard(sid, age=False))
        return "deleted"

    async def _chunk_past_eof(self, f: Finding) -> str:
        sid, ino, size, cs = f.fix["server"], f.fix["ino"], f.fix["size"], f.fix["chunk_size"]
        # a write since the scan (size or generation moved) owns those bytes now
        cur = await self.admin.get_file(ino)
        seen = self._fenced.get(ino, f.fix["generation"])  # this run's own fence moved it, nobody else
        if cur.attr.size != size or cur.attr.generation != seen:
            return "skipped: the file changed since the scan"
        past, young = await self._young(sid, ino, lambda c: c.key.index * cs + c.length > size)
        if past and young == past:
            raise LeftAlone(f"left alone: written less than {self.grace_ns / 1e9:.0f} s ago or since the "
                            "first scan (a writer may not have sized them yet); a later run cuts them")
        if ino not in self._fenced:
            # a writer frozen past its deadline with bytes among these: its size commit is refused
            try:
                self._fenced[ino] = (await self.admin.fence_writers(ino, size, seen)).generation
            except FsError as e:
                if e.errno == errno.ESTALE:
                    return "skipped: the file changed since the scan"
                raise
        last, tail = divmod(size, cs)
        guard = self._guard(sid, age=True)
        if tail:
            await self.admin.truncate_chunk(sid, ino, last, tail, **guard)
            last += 1
        await self.admin.delete_chunks(sid, ino, from_index=last, **guard)
        return "cut at the end of the file" + (f" ({young} young chunk(s) left alone)" if young else "")

    async def _chunk_inline_file(self, f: Finding) -> str:
        sid, ino = f.fix["server"], f.fix["ino"]
        cur = await self.admin.get_file(ino)
        if not cur.inline:
            return "skipped: the file moved to chunks since the scan"
        found, young = await self._young(sid, ino, lambda c: True)
        if found and young == found:
            # a move to chunks in progress copies the inline bytes to chunk 0 before the shard switches
            raise LeftAlone(f"left alone: written less than {self.grace_ns / 1e9:.0f} s ago or since the "
                            "first scan (a move to chunks may be under way); a later run deletes them")
        await self.admin.delete_chunks(sid, ino, **self._guard(sid, age=True))
        return "deleted"

    async def _chunk_misplaced(self, f: Finding) -> str:
        idx, sid = f.fix["index"], f.fix["server"]
        await self.admin.delete_chunks(sid, f.fix["ino"], from_index=idx, to_index=idx + 1,
                                       **self._guard(sid, age=False))
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
