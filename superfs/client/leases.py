"""Directory leases, the holder's side: what this client may answer about a directory without asking.

An exclusive lease on a directory (granted by the dir server, recalled by it
when another client needs the directory: superfs/dirserver/leases.py) lets
this client keep the directory's names as a *complete* table: a name found
there exists, a name not found does not, and creates, writes of small files
and unlinks are made here at once and sent later in batches
(superfs/client/batcher.py) with inode numbers the shards handed out ahead
(superfs/client/inopool.py).

A lease is trusted only while the dir server is heard from: it pings the
dir server while it holds leases, and drops every lease (sending what is
pending first) once ``ttl`` has passed without an answer, before the dir
server may hand the directory to someone else. A recall sends what is
pending for the directory, drops the table and tells the owner of the
kernel's caches (``on_drop``), then answers.

:class:`LeaseTable` is the bookkeeping; who uses it (the FUSE mount) decides
when a lease is worth taking.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import time
from dataclasses import dataclass, field
from typing import Callable

from superfs.client.batcher import Batcher, Pending
from superfs.errors import FsError
from superfs.v1 import superfs_pb2 as pb

log = logging.getLogger(__name__)

EXCLUSIVE = 2
TTL_MARGIN_S = 2.0   # drop leases this long before the dir server could take them
MAX_ENTRIES = 20000  # a directory with more names is not leased (its table would cost too much)
MAX_KEPT_ERRORS = 4   # failures kept per directory for its next fsyncdir (the first is reported)


@dataclass(eq=False)
class Entry:
    """A name in a leased directory: what it points at, and what this client did to it ahead."""

    ino: int
    ftype: int
    attr: pb.Attr | None = None       # files: attributes as this client knows them (None: ask)
    data: bytearray | None = None     # a small file's whole content, when this client knows it
    ops: list[Pending] = field(default_factory=list)   # changes made ahead, oldest first
    created_here: bool = False
    failures: list[FsError] = field(default_factory=list)  # changes of it the shard refused, oldest first
    lost: bool = False                # its create was refused: the file does not exist

    def collect(self) -> None:
        """Move the answered changes out of ``ops``; keep what was refused in ``failures``."""
        waiting = []
        for p in self.ops:
            if not p.done.is_set():
                waiting.append(p)
                continue
            err = p.failed
            if err is not None:
                self.failures.append(err)
                self.lost = self.lost or p.op.WhichOneof("op") in ("create", "mkdir")
        self.ops = waiting

    def unsent_create(self) -> Pending | None:
        for p in self.ops:
            if p.op.WhichOneof("op") == "create" and not p.sent and not p.withdrawn:
                return p
        return None


@dataclass(eq=False)
class DirLease:
    dir_ino: int
    epoch: int
    attr: pb.Attr
    grant: int = 0   # the dir server's number for this grant (recalls name it)
    origin: bytes = b""   # the boot of the dir server that granted it (a restarted one knows nothing of it)
    closing: bool = False   # being given back: nothing new is made ahead under it
    making: set[str] = field(default_factory=set)   # subdirectories being made by the dir server now
    caps: dict[tuple[int, int, tuple[int, ...]], pb.DirCap] = field(default_factory=dict)
    names: dict[str, Entry] = field(default_factory=dict)
    gone: list[Entry] = field(default_factory=list)        # unlinked ahead, their unlink not answered yet

    def pending(self) -> list[Pending]:
        return [p for e in (*self.names.values(), *self.gone) for p in e.ops if not p.done.is_set()]


class LeaseTable:
    """This client's exclusive leases and the complete name tables they cover."""

    def __init__(self, batcher: Batcher, *, on_drop: Callable[[DirLease], None] = lambda _: None) -> None:
        self.batcher = batcher
        self.on_drop = on_drop
        self.dirs: dict[int, DirLease] = {}
        self.ttl_s = 10.0
        self.last_heard = time.monotonic()   # from the dir server (its session), kept by whoever pings
        self.errors: dict[int, list[FsError]] = {}   # dir -> failures of changes made ahead there, for fsyncdir

    def valid(self, at: float | None = None) -> bool:
        return (time.monotonic() if at is None else at) - self.last_heard < self.ttl_s - TTL_MARGIN_S

    async def heard(self, sent: float) -> None:
        """The dir server answered a request sent at ``sent``. If the leases had lapsed before
        it was sent (this process was stopped, the network cut), the dir server may have
        given them away: they are dropped first, never revived by the late answer."""
        if self.dirs and not self.valid(sent):
            await self.drop_all("the dir server was not heard from in time")
        self.last_heard = max(self.last_heard, sent)

    def get(self, dir_ino: int) -> DirLease | None:
        lease = self.dirs.get(dir_ino)
        if lease is None or lease.closing:
            return None
        if not self.valid():
            asyncio.get_running_loop().create_task(self.drop_all("the dir server was not heard from"))
            return None
        return lease

    def adopt(self, reply: pb.LeaseReply, listing: list[tuple[pb.Dentry, pb.FileInfo | None]],
              creds_key: tuple[int, int, tuple[int, ...]], origin: bytes = b"") -> DirLease | None:
        """A granted lease and the directory's full listing, taken after the grant."""
        if reply.mode != EXCLUSIVE:
            return None
        self.ttl_s = reply.ttl_ns / 1e9 or self.ttl_s
        d = reply.dir.dir
        lease = DirLease(d.ino, reply.epoch, d.attr, reply.grant, origin)
        lease.caps[creds_key] = reply.dir.cap
        for entry, info in listing:
            lease.names[entry.name] = Entry(entry.ino, int(entry.type), info.attr if info is not None else None,
                                            bytearray(info.data) if info is not None and info.inline
                                            and len(info.data) == info.attr.size else None)
        self.dirs[d.ino] = lease
        return lease

    # ---------------------------------------------------------------- giving up

    async def flush(self, lease: DirLease) -> None:
        """Send what is pending for ``lease``'s directory and wait for the answers; keep the failures."""
        pending = lease.pending()
        if not pending:
            return
        await self.batcher.flush({p.shard for p in pending})
        await asyncio.gather(*(p.done.wait() for p in pending))
        lease.gone = [e for e in lease.gone if any(not p.done.is_set() for p in e.ops)]

    async def release(self, dir_ino: int) -> DirLease | None:
        """Send what is pending, then forget the directory's table (the caller tells the dir server)."""
        lease = self.dirs.get(dir_ino)
        if lease is None:
            return None
        lease.closing = True  # from now on the owner sends changes the ordinary way
        while lease.pending():  # and those made meanwhile (a close that raced this) go first too
            await self.flush(lease)
        if self.dirs.get(dir_ino) is lease:
            del self.dirs[dir_ino]
        self.on_drop(lease)
        return lease

    async def recall(self, dir_ino: int, grant: int = 0) -> None:
        """The dir server wants grant ``grant`` on the directory back (0: whatever is held)."""
        held = self.dirs.get(dir_ino)
        if held is not None and grant and held.grant > grant:
            return  # a later grant than the one recalled: ours to keep
        started = time.monotonic()
        lease = await self.release(dir_ino)
        if lease is not None:
            log.debug("lease on %d (epoch %d) recalled: %d names dropped in %.1f ms", dir_ino, lease.epoch,
                      len(lease.names),
                      (time.monotonic() - started) * 1000)

    async def drop_granted_before(self, origin: bytes, why: str) -> None:
        """Drop the leases a dir server other than boot ``origin`` granted (it restarted since)."""
        stale = [d for d, lease in self.dirs.items() if lease.origin != origin]
        if stale:
            log.info("dropping %d directory leases: %s", len(stale), why)
        for d in stale:
            await self.release(d)

    async def drop_all(self, why: str) -> None:
        if self.dirs:
            log.info("dropping %d directory leases: %s", len(self.dirs), why)
        for d in list(self.dirs):
            await self.release(d)

    def failed(self, dir_ino: int, err: FsError) -> None:
        """A change made ahead in ``dir_ino`` failed: the next fsyncdir reports it (kept after the lease)."""
        kept = self.errors.setdefault(dir_ino, [])
        if len(kept) < MAX_KEPT_ERRORS:
            kept.append(err)

    def check_error(self, dir_ino: int) -> FsError | None:
        """The first failure of a change made ahead in ``dir_ino`` since the last fsyncdir, if any (one
        report covers them all, as Linux reports a write-back error once)."""
        kept = self.errors.pop(dir_ino, None)
        return kept[0] if kept else None


def no_lease() -> FsError:
    return FsError(errno.ENOLCK, "no lease on the directory")
