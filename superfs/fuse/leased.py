"""The mount's fast path: directories it holds an exclusive lease on, answered from memory.

When a process creates a file in a directory, the mount asks the dir server
for an exclusive lease on it and lists it once (superfs/client/leases.py).
From then on, in that directory:

- a lookup is answered from the table, found or not (ENOENT for a name that
  is not there: the table is complete);
- a create takes an inode number the shard delegated ahead, builds the
  file's attributes here and answers at once; the create travels later in a
  batch (superfs/client/batcher.py), and the bytes of a small file written
  and closed before it leaves ride in the same create;
- reads, stats and reopens of files created here are served from memory, and
  the kernel may cache their names and attributes for as long as the lease
  lasts (they are invalidated when it ends);
- an unlink is queued the same way, and withdraws a create that never left.

What an application can observe: everything it did is visible at once in
this mount; other clients see it as soon as they look (their look recalls
the lease, which first sends what is pending). Changes wait here at most
``batcher.DELAY_S`` before they leave, and at most one batch per shard is on
the wire. A change the shard refuses (a full shard, a fenced lease) is
reported by the next fsync of the file or of its directory, and logged,
and the directory's lease is given back at once (this mount then shows
what the shard has: a refused create is not there). A crash of the mount loses the changes not sent yet (a few milliseconds'
worth); kill -9 of a shard loses none that was answered.

Files that outgrow the inline threshold, and every other operation on a
leased directory (rename, link, setattr...), first send what is pending and
then take the ordinary path.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import os
import stat as stat_mod
import time
from dataclasses import dataclass
from typing import Any

import pyfuse3

from superfs.names import check_name
from superfs.client.batcher import DELAY_S, Batcher, Pending
from superfs.client.fs import AsyncFs
from superfs.client.inopool import InoPool
from superfs.client.leases import MAX_ENTRIES, DirLease, Entry, LeaseTable
from superfs.client.meta import Creds
from superfs.client.nodes import Node
from superfs.fuse.dirs_ahead import DIR_QUEUE, DirsAhead
from superfs.errors import FsError
from superfs.v1 import superfs_pb2 as pb

log = logging.getLogger(__name__)

LOCAL_FH_BASE = 1 << 48     # file handles of files served from memory
KERNEL_TIMEOUT_S = 3600.0   # names and attributes of files made here: invalidated when the lease ends
REFUSED_FOR_S = 5.0         # a directory whose lease was refused is not asked about again for this long
PING_EVERY_S = 1.0
CONTENDED_S = 5.0           # a directory whose lease was recalled this recently is not leased for a mkdir


@dataclass(eq=False)
class LocalHandle:
    fh: int
    entry: Entry
    parent: int
    name: str
    creds: Creds
    flags: int
    dirty: bool = False
    seen: int = 0        # failures of its file reported to this handle (Linux reports each once per open file)


def creds_key(creds: Creds) -> tuple[int, int, tuple[int, ...]]:
    return creds.uid, creds.gid, tuple(creds.groups)


class LeasedDirs:
    def __init__(self, fs: AsyncFs, *, batch_delay_s: float = DELAY_S) -> None:
        self.fs = fs
        self.meta = fs.meta
        self.cluster = fs.cluster
        self.batcher = Batcher(self._send_batch, delay_s=batch_delay_s, on_failed=self._failed,
                               reroute=self._reroute, holder_of=self._session_id)
        self.table = LeaseTable(self.batcher, on_drop=self._forget_kernel)
        self.pool = InoPool(self._delegate, self._partitions_of, self._shard_of_partition)
        self.ahead = DirsAhead(self)   # mkdirs and rmdirs made ahead (dirs_ahead.py)
        self.files: dict[int, tuple[int, str]] = {}    # ino of a file made here -> (dir, name)
        self.handles: dict[int, LocalHandle] = {}
        self._next_fh = LOCAL_FH_BASE
        self._refused: dict[int, float] = {}
        self._recalled: dict[int, int] = {}   # dir -> the latest grant the dir server recalled
        self._recalled_at: dict[int, float] = {}   # dir -> when (monotonic) it was last recalled
        self._acquiring: dict[int, asyncio.Task[DirLease | None]] = {}
        self._pinger: asyncio.Task[None] | None = None
        self._closing = False

    # ------------------------------------------------------------- leases

    def lease(self, dir_ino: int) -> DirLease | None:
        return self.table.get(dir_ino)

    async def want(self, dir_ino: int, creds: Creds) -> DirLease | None:
        """The lease on ``dir_ino``, taken now if it is worth it (a create there); None: the ordinary path."""
        lease = self.table.get(dir_ino)
        if lease is not None:
            return lease
        if self._refused.get(dir_ino, 0.0) > time.monotonic():
            return None
        task = self._acquiring.get(dir_ino)
        if task is None:
            task = self._acquiring[dir_ino] = asyncio.get_running_loop().create_task(self._acquire(dir_ino, creds))
            task.add_done_callback(lambda _t: self._acquiring.pop(dir_ino, None))
        return await asyncio.shield(task)

    async def _acquire(self, dir_ino: int, creds: Creds) -> DirLease | None:
        try:
            sent = time.monotonic()
            reply = await self.meta.acquire_lease(dir_ino, creds)
            if reply.mode != 2:
                self._refused[dir_ino] = time.monotonic() + REFUSED_FOR_S
                return None
            await self.table.heard(sent)
            # This mount may still be giving back an earlier grant of the same directory (the dir
            # server grants its holder again at once): its changes must be in the listing.
            old = self.table.dirs.get(dir_ino)
            while old is not None and old.closing and old.pending():
                await self.table.flush(old)
            listing, more = await self.meta.list_dir_page(dir_ino, creds, limit=MAX_ENTRIES, with_attrs=True)
            if more:  # too big to keep whole: give it back
                self._refused[dir_ino] = time.monotonic() + 60.0
                await self.meta.release_leases([dir_ino], [reply.grant])
                return None
        except FsError as e:
            log.debug("no lease on %d: %s", dir_ino, e)
            self._refused[dir_ino] = time.monotonic() + REFUSED_FOR_S
            return None
        if reply.grant and self._recalled.get(dir_ino, 0) >= reply.grant:
            # recalled before its grant reached us (the recall was answered for it): not ours
            return None
        lease = self.table.adopt(reply, listing, creds_key(creds), self.dir_server_boot())
        if lease is not None:
            self._ping_soon()
            for shard in set(self.cluster.partition_shards()):
                self.pool.fill_soon(shard)
        return lease

    def contended(self, dir_ino: int) -> bool:
        """Was the lease on ``dir_ino`` recalled lately (another client works there too)? Then an
        operation that would take it only for itself (a mkdir) goes the ordinary way instead."""
        at = self._recalled_at.get(dir_ino)
        if at is None:
            return False
        if time.monotonic() - at < CONTENDED_S:
            return True
        del self._recalled_at[dir_ino]
        return False

    async def recall(self, body: bytes) -> bytes:
        """The dir server's Client/RecallLease: send what is pending for the directory, forget it."""
        req = pb.RecallLeaseRequest.FromString(body)
        # a grant not later than this one still on its way to us is void
        self._recalled[req.dir_ino] = max(self._recalled.get(req.dir_ino, 0), req.grant)
        now = self._recalled_at[req.dir_ino] = time.monotonic()
        if len(self._recalled_at) > 4096:
            self._recalled_at = {d: t for d, t in self._recalled_at.items() if now - t < CONTENDED_S}
        await self.table.recall(req.dir_ino, req.grant)
        return pb.Empty().SerializeToString()

    async def give_back(self, dir_ino: int) -> None:
        """Give a lease back (an ordinary operation on the directory follows)."""
        lease = await self.table.release(dir_ino)
        if lease is not None:
            try:
                await self.meta.release_leases([dir_ino], [lease.grant])
            except FsError as e:
                log.debug("release of lease %d: %s", dir_ino, e)

    def _ping_soon(self) -> None:
        if self._pinger is None or self._pinger.done():
            self._pinger = asyncio.get_running_loop().create_task(self._ping_forever())

    async def _ping_forever(self) -> None:
        """While leases are held: hear from the dir server, or drop them before it may give them away."""
        while self.table.dirs:
            sent = time.monotonic()
            try:
                await self.cluster.refresh()
                await self.table.drop_granted_before(self.dir_server_boot(), "the dir server restarted")
                await self.table.heard(sent)
            except FsError as e:
                log.debug("dir server ping: %s", e)
            if not self.table.valid():
                await self.table.drop_all("the dir server does not answer")
            await asyncio.sleep(PING_EVERY_S)

    def dir_server_boot(self) -> bytes:
        """Which run of the dir server this client's session reaches (changes when it restarts)."""
        s = self.fs.channels.session(self.cluster.dir_address) if self.cluster.dir_address else None
        return (s.boot_id or b"") if s is not None else b""

    def _forget_kernel(self, lease: DirLease) -> None:
        """The lease ended: the kernel must ask again about everything it cached from it."""
        log.debug("lease on %d ended: %d names the kernel must ask about again", lease.dir_ino, len(lease.names))
        self.ahead.forget(lease)
        for name, e in lease.names.items():
            self.files.pop(e.ino, None)
            if self._closing:
                continue  # unmounting: the kernel refuses notifications and forgets everything anyway
            try:
                pyfuse3.invalidate_entry_async(lease.dir_ino, name.encode("utf-8", "surrogateescape"),
                                               ignore_enoent=True)
            except Exception as err:  # noqa: BLE001 - best effort: the kernel's timeout ends it anyway
                log.debug("invalidate_entry %d/%s: %r", lease.dir_ino, name, err)

    def _failed(self, p: Pending, err: FsError) -> None:
        """A change made ahead was refused: fsyncdir will say so, and the directory's lease goes back,
        so that this mount shows what the shard has (the kernel forgets what it was told)."""
        if not p.dir_ino:
            return
        self.table.failed(p.dir_ino, err)
        if p.dir_ino in self.table.dirs and not self._closing:
            asyncio.get_running_loop().create_task(self.give_back(p.dir_ino))

    async def shutdown(self) -> None:
        self._closing = True
        await self.table.drop_all("unmounting")

    # ------------------------------------------------------------- answers

    def lookup(self, parent: int, name: str) -> Entry | None:
        """The leased table's answer for ``name`` (FsError ENOENT if absent); None: not leased, ask."""
        lease = self.table.get(parent)
        if lease is None:
            return None
        e = lease.names.get(name)
        if e is None:
            check_name(name)  # ENAMETOOLONG, EINVAL before ENOENT, as the servers answer
            raise FsError(errno.ENOENT, "no such file (leased directory)")
        return e

    def attr(self, ino: int) -> pb.Attr | None:
        """Attributes of a file made here, while its directory is leased."""
        where = self.files.get(ino)
        if where is None or self.table.get(where[0]) is None:
            return None
        e = self.table.dirs[where[0]].names.get(where[1])
        return e.attr if e is not None and e.created_here else None

    # -------------------------------------------------------------- creates

    async def create(self, parent: int, name: str, mode: int, flags: int, creds: Creds
                     ) -> tuple[Entry, int] | None:
        """Create ``name`` ahead; (entry, file handle), or None to take the ordinary path."""
        check_name(name)
        lease = await self.want(parent, creds)
        if lease is None:
            return None
        if name in lease.names:
            if flags & os.O_EXCL:
                raise FsError(errno.EEXIST, "file exists")
            return None  # open the existing one the ordinary way
        if name in lease.making:
            return None  # a mkdir of the name is on its way: the servers decide which one wins
        partition = self.cluster.entry_partition(parent, name)
        ino = await self.pool.take_waiting(partition)
        cap = await self.cap(lease, creds)
        if cap is None:
            return None
        if self.table.get(parent) is not lease or name in lease.names:
            # recalled (or the name taken) while this waited: what is queued from now on would
            # carry a capability of an epoch that may be fenced already
            return None
        if ino is None:  # the shard gave no numbers ahead: create it now, keep the lease
            node, _ = await self.meta.create(parent, name, mode & 0o7777, creds, exclusive=True)
            e = Entry(node.ino, pb.REGULAR, node.attr, bytearray(), created_here=True)
            lease.names[name] = e
            self.files[node.ino] = (parent, name)
            return e, self._handle(e, parent, name, creds, flags).fh
        a = lease.attr
        gid = a.gid if a.mode & stat_mod.S_ISGID else creds.gid
        fmode = stat_mod.S_IFREG | (mode & 0o7777)
        if fmode & stat_mod.S_ISGID and fmode & stat_mod.S_IXGRP and creds.uid != 0 \
                and gid != creds.gid and gid not in creds.groups:
            fmode &= ~stat_mod.S_ISGID
        now = time.time_ns()
        attr = pb.Attr(ino=ino, mode=fmode, nlink=1, uid=creds.uid, gid=gid, size=0, atime_ns=now,
                       mtime_ns=now, ctime_ns=now, generation=1)
        op = pb.BatchOp(create=pb.CreateFileRequest(parent_ino=parent, name=name, mode=mode & 0o7777,
                                                    type=pb.REGULAR, exclusive=True, creds=creds.pb(), cap=cap,
                                                    ino=ino, time_ns=now))
        shard = self._shard_of_partition(partition)
        e = Entry(ino, pb.REGULAR, attr, bytearray(), created_here=True)
        e.ops.append(self.batcher.add(shard, op, parent))
        lease.names[name] = e
        self.files[ino] = (parent, name)
        lease.attr.mtime_ns = lease.attr.ctime_ns = now
        self.meta.touches.changed(parent, creds.pb())  # the directory's own times, off the caller's path
        return e, self._handle(e, parent, name, creds, flags).fh

    async def cap(self, lease: DirLease, creds: Creds) -> pb.DirCap | None:
        key = creds_key(creds)
        cap = lease.caps.get(key)
        if cap is None or cap.expires_ns < time.time_ns() + 5_000_000_000:
            try:
                node = await self.meta.get_dir(lease.dir_ino, creds)
                if node.cap is None or node.cap.epoch < lease.epoch:  # cached from before the lease's fence
                    node = await self.meta.get_dir(lease.dir_ino, creds, max_age=0)
            except FsError:
                return None
            if node.cap is None or node.cap.epoch < lease.epoch:
                return None
            cap = lease.caps[key] = node.cap
        return cap

    def _handle(self, e: Entry, parent: int, name: str, creds: Creds, flags: int) -> LocalHandle:
        fh = self._next_fh
        self._next_fh += 1
        h = self.handles[fh] = LocalHandle(fh, e, parent, name, creds, flags, seen=len(e.failures))
        return h

    # --------------------------------------------------------------- unlinks

    async def unlink(self, parent: int, name: str, creds: Creds) -> bool:
        """Remove ``name`` ahead; False: not leased (take the ordinary path)."""
        lease = self.table.get(parent)
        if lease is None:
            return False
        e = lease.names.get(name)
        if e is None:
            raise FsError(errno.ENOENT, "no such file (leased directory)")
        if e.ftype == pb.DIRECTORY:
            raise FsError(errno.EISDIR, "is a directory")
        create = e.unsent_create()
        lease.attr.mtime_ns = lease.attr.ctime_ns = time.time_ns()
        self.meta.touches.changed(parent, creds.pb())
        if create is not None and all(self.batcher.withdraw(p) for p in e.ops if not p.sent):
            # never left this mount: nothing to tell anyone
            del lease.names[name]
            self.files.pop(e.ino, None)
            return True
        cap = await self.cap(lease, creds)
        if cap is None or self.table.get(parent) is not lease or lease.names.get(name) is not e:
            return False  # recalled while this waited: the ordinary path
        shard = self.cluster.shard_of_entry(parent, name)
        p = self.batcher.add(shard, pb.BatchOp(unlink=pb.UnlinkRequest(parent_ino=parent, name=name,
                                                                       creds=creds.pb(), cap=cap)), parent)
        del lease.names[name]
        self.files.pop(e.ino, None)
        e.ops.append(p)
        lease.gone.append(e)
        if e.attr is None or e.attr.nlink != 1:
            # the file lives on under another name, whose stat must show one link less at once
            await self.table.flush(lease)
            if p.failed is not None:
                raise p.failed
        return True

    def linked(self, ino: int, attr: pb.Attr) -> None:
        """``ino`` got another name: the tables that know it learn its new link count (an unlink
        of one of its names then waits for its answer, see ``unlink``)."""
        for lease in self.table.dirs.values():
            for e in lease.names.values():
                if e.ino == ino and e.attr is not None:
                    e.attr.CopyFrom(attr)

    # ---------------------------------------------------------- directories

    async def mkdir(self, parent: int, name: str, mode: int, creds: Creds) -> Node | None:
        """Make a subdirectory of a directory this mount leases, keeping the lease; None: not leased.

        The dir server makes it (a holder's own change recalls nothing), so this saves the
        lookup the kernel sends first and the lease's return and retaking; the table learns
        the name. A pending unlink could be of the same name: what is pending goes first."""
        check_name(name)
        # only under a lease taken for creates: taking one for mkdirs alone made another client's
        # first look into the new directories wait ~175 ms (bench/lease_recall.py, not understood yet)
        lease = self.table.get(parent)
        if lease is None or lease.closing:
            return None
        if name in lease.names or name in lease.making:
            raise FsError(errno.EEXIST, "file exists")
        if lease.gone:
            await self.table.flush(lease)
            if self.table.get(parent) is not lease or name in lease.names:
                return None
        lease.making.add(name)
        try:
            node = await self.meta.mkdir(parent, name, mode, creds)
        finally:
            lease.making.discard(name)
        if self.table.get(parent) is lease:
            lease.names[name] = Entry(node.ino, pb.DIRECTORY, None)
            lease.attr.mtime_ns = lease.attr.ctime_ns = node.attr.ctime_ns
            lease.attr.nlink += 1
        return node

    def subdir(self, parent: int, name: str) -> int | None:
        """The inode of subdirectory ``name`` of a leased directory (FsError if the table says there
        is none); None: not leased, ask."""
        e = self.lookup(parent, name)
        if e is None:
            return None
        if e.ftype != pb.DIRECTORY:
            raise FsError(errno.ENOTDIR, "not a directory")
        return e.ino

    def removed_dir(self, parent: int, name: str, ino: int) -> None:
        """Subdirectory ``name`` (inode ``ino``) of ``parent`` is gone: the table forgets it."""
        lease = self.table.get(parent)
        if lease is None:
            return
        e = lease.names.get(name)
        if e is not None and e.ino == ino:
            del lease.names[name]
            lease.attr.mtime_ns = lease.attr.ctime_ns = time.time_ns()
            lease.attr.nlink = max(2, lease.attr.nlink - 1)

    # ---------------------------------------------------------------- files

    def open(self, ino: int, flags: int, creds: Creds) -> int | None:
        """A handle on a file made here, served from memory; None: the ordinary path."""
        where = self.files.get(ino)
        if where is None or self.table.get(where[0]) is None:
            log.debug("open(%d): not from memory (%s)", ino, "not made here" if where is None else "no lease")
            return None
        e = self.table.dirs[where[0]].names.get(where[1])
        if e is None or e.data is None or not e.created_here:
            log.debug("open(%d): not from memory (its entry moved on)", ino)
            return None
        if flags & os.O_TRUNC and flags & os.O_ACCMODE != os.O_RDONLY:
            e.data.clear()
            self._touch(e)
        return self._handle(e, where[0], where[1], creds, flags).fh

    def is_local(self, fh: int) -> bool:
        return fh >= LOCAL_FH_BASE

    def live(self, fh: int) -> bool:
        """Is this handle still served from memory (its file made here, its directory still leased)?"""
        h = self.handles.get(fh)
        if h is None or h.entry.data is None or not h.entry.created_here:
            return False
        lease = self.table.get(h.parent)
        return lease is not None and lease.names.get(h.name) is h.entry

    async def handover(self, fh: int) -> tuple[LocalHandle, bytes | None, FsError | None]:
        """Stop serving ``fh`` from memory: its file's changes sent so far are answered; what it wrote
        since (the whole content, or None if nothing) is for the caller to write the ordinary way, and
        a refused change not reported to this handle yet for the caller to report (``entry.lost``: the
        file's create was refused, it does not exist)."""
        h = self.handles.pop(fh)
        e = h.entry
        data = bytes(e.data) if h.dirty and e.data is not None else None
        create = e.unsent_create()
        if data is not None and create is not None and self.live_entry(h):
            create.op.create.data = data  # rides with the create after all
            data = None
        await self._answered(e)
        return h, None if e.lost else data, self._unreported(h)

    def live_entry(self, h: LocalHandle) -> bool:
        lease = self.table.get(h.parent)
        return lease is not None and lease.names.get(h.name) is h.entry

    def read(self, fh: int, off: int, size: int) -> bytes:
        h = self.handles[fh]
        assert h.entry.data is not None
        return bytes(h.entry.data[off:off + size])

    def write(self, fh: int, off: int, buf: bytes) -> int | None:
        """Bytes written, or None when the file outgrew what is kept in memory (the caller moves it)."""
        h = self.handles[fh]
        e = h.entry
        assert e.data is not None and e.attr is not None
        end = off + len(buf)
        if end > self.cluster.inline_threshold:
            return None
        if off > len(e.data):
            e.data.extend(bytes(off - len(e.data)))
        e.data[off:end] = buf
        self._touch(e)
        h.dirty = True
        return len(buf)

    def _touch(self, e: Entry) -> None:
        assert e.attr is not None and e.data is not None
        e.attr.size = len(e.data)
        e.attr.mtime_ns = e.attr.ctime_ns = time.time_ns()
        if e.attr.mode & (stat_mod.S_ISUID | stat_mod.S_ISGID):
            pass  # the shard applies the set-id rules to the bytes it is sent

    def flush(self, fh: int) -> None:
        """A close: the bytes ride with the create if it has not left, else follow it as a write."""
        h = self.handles.get(fh)
        if h is None or not h.dirty:
            return
        h.dirty = False
        e = h.entry
        assert e.data is not None
        create = e.unsent_create()
        if create is not None:
            create.op.create.data = bytes(e.data)
            return
        lease = self.table.get(h.parent)
        where = self.files.get(e.ino)
        if lease is None or where is None:
            return
        shard = self.cluster.shard_of_ino(e.ino)
        e.ops.append(self.batcher.add(shard, pb.BatchOp(write=pb.WriteInlineRequest(
            ino=e.ino, offset=0, data=bytes(e.data), truncate_to_end=True, creds=h.creds.pb())), h.parent))

    def release(self, fh: int) -> None:
        self.flush(fh)
        self.handles.pop(fh, None)

    async def fsync(self, fh: int) -> None:
        """Send the file's changes and report how they went."""
        h = self.handles[fh]
        self.flush(fh)
        await self._answered(h.entry)
        self._report(h)

    async def _answered(self, e: Entry) -> None:
        """Send the changes of ``e`` still waiting, and wait until all of them are answered."""
        waiting = [p for p in e.ops if not p.done.is_set() and not p.withdrawn]
        if waiting:
            await self.batcher.flush({p.shard for p in waiting})
            await asyncio.gather(*(p.done.wait() for p in waiting))
        e.collect()

    @staticmethod
    def _unreported(h: LocalHandle) -> FsError | None:
        """The latest refused change of ``h``'s file not reported to ``h`` yet, if any (now it is)."""
        failures = h.entry.failures
        if len(failures) <= h.seen:
            return None
        h.seen = len(failures)
        err = failures[-1]
        return FsError(err.errno, f"a change made ahead failed: {err.message}")

    def _report(self, h: LocalHandle) -> None:
        err = self._unreported(h)
        if err is not None:
            raise err

    async def fsyncdir(self, dir_ino: int) -> None:
        lease = self.table.dirs.get(dir_ino)
        if lease is not None:
            await self.table.flush(lease)
        err = self.table.check_error(dir_ino)
        if err is not None:
            raise FsError(err.errno, f"a change made ahead failed: {err.message}")

    async def settle_dir(self, dir_ino: int, *, ending_only: bool = False) -> None:
        """Before an ordinary operation on a leased directory: what is pending goes first
        (``ending_only``: only if the lease is being given back, or has lapsed)."""
        lease = self.table.dirs.get(dir_ino)
        if lease is not None and (not ending_only or self.table.get(dir_ino) is None):
            await self.table.flush(lease)

    async def settle_file(self, ino: int) -> None:
        """Before an ordinary operation on a file made here: its changes go first, and it stops being
        served from memory (its attributes may change elsewhere from now on)."""
        where = self.files.get(ino)
        if where is None:
            return
        log.debug("inode %d leaves memory: its changes go first", ino)
        lease = self.table.dirs.get(where[0])
        e = lease.names.get(where[1]) if lease is not None else None
        if e is not None:
            try:
                await self._answered(e)  # failures are the open handles' to report
            finally:
                e.created_here = False
                e.data = None
        self.files.pop(ino, None)

    # ---------------------------------------------------------------- wiring

    async def _send_batch(self, shard: int, req: pb.BatchRequest) -> pb.BatchReply:
        if shard == DIR_QUEUE:
            return await self.meta.apply_dir_batch(req)
        return await self.meta.apply_batch(shard, req)

    async def _reroute(self, p: Pending, attempt: int) -> int | None:
        """The shard a change refused as misrouted goes to now: after a fresh map (and a short wait
        while a partition move is listed); None once the map agrees with the refusal and lists none."""
        await self.cluster.after_stale(attempt)
        kind = p.op.WhichOneof("op")
        if kind == "write":
            target = self.cluster.shard_of_ino(p.op.write.ino)
        else:
            r = p.op.create if kind == "create" else p.op.unlink
            target = self.cluster.shard_of_entry(r.parent_ino, r.name)
        if target == p.shard and not self.cluster.moving():
            return None
        return target

    def _session_id(self, shard: int) -> bytes | None:
        """This mount's session id with ``shard`` (the holder its delegated numbers are bound to)."""
        address = self.cluster.address_of("shard", shard)
        session = self.cluster.channels.session(address) if address else None
        return bytes(session.session_id) if session is not None else None

    async def _delegate(self, shard: int, partitions: list[int], count: int) -> list[pb.InoRange]:
        return await self.meta.delegate_inodes(shard, partitions, count)

    def _partitions_of(self, shard: int) -> list[int]:
        return self.cluster.partitions_of(shard)

    def _shard_of_partition(self, partition: int) -> int:
        return self.cluster.shard_of_partition(partition)

    def kernel_timeout(self) -> float:
        return KERNEL_TIMEOUT_S

    def stats(self) -> dict[str, Any]:
        return {"leases": len(self.table.dirs), "batches": self.batcher.batches, "batched_ops": self.batcher.ops,
                "queued": self.batcher.queued(), "mkdirs_ahead": self.ahead.made, "rmdirs_ahead": self.ahead.removed}
