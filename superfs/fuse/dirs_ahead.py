"""mkdir and rmdir made ahead in directories the mount leases, sent to the dir server in batches.

Under an exclusive lease on a directory (superfs/client/leases.py) nobody
else can see or change its names before the dir server recalls the lease,
and a recall first sends what is pending. So, as creates and unlinks of
files (superfs/fuse/leased.py), a subdirectory is made here at once:

- its number comes from a range the dir server delegated to this mount
  ahead (DelegateDirInos); its attributes are built here as the dir server
  builds them (mode bits, the setgid parent's group, the caller's uid);
- the mkdir travels later in a batch with others (ApplyDirBatch: one queue,
  so the dir server applies them in this mount's order; one group commit
  for many), named by the lease's grant: a lease that ended refuses it;
- an rmdir of a directory made here, that nothing was made in since and
  that nobody else can have seen (the lease was never recalled: any look
  from elsewhere recalls it), is made ahead too: it is known to be empty.
  An rmdir whose mkdir has not left yet withdraws both.

Anything that needs the new directory to exist on the servers (a lookup in
it, a create, a listing, a stat of it) first sends the pending batch and
waits for its mkdir's answer (:meth:`DirsAhead.before`).

What an application can observe is as for files made ahead: a refused
mkdir or rmdir (the lease ended before its batch arrived, a shard down) is
logged and reported by the next fsync of the directory, the lease is given
back and the mount then shows what the servers have.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import stat as stat_mod
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from superfs.client.batcher import Pending
from superfs.client.leases import DirLease, Entry
from superfs.client.meta import Creds
from superfs.errors import FsError
from superfs.perms import W_OK, X_OK
from superfs.v1 import superfs_pb2 as pb

if TYPE_CHECKING:
    from superfs.fuse.leased import LeasedDirs

log = logging.getLogger(__name__)

DIR_QUEUE = -1        # the batcher's queue for the dir server (shards are numbered from 0)
COUNT = 256           # directory numbers asked for at once
LOW = 64              # fewer left: ask again in the background
# at most this many changes wait for the dir server: beyond, the next one waits until they are answered
# (the dir server's pace bounds the mount's, and a crash of the mount loses at most this many)
MAX_WAITING = 512
# FUSE operations whose integer arguments are inodes (and modes, flags: a spurious match only sends early)
INODE_OPS = frozenset({"lookup", "getattr", "setattr", "readlink", "mknod", "mkdir", "unlink", "rmdir", "symlink",
                       "rename", "link", "open", "opendir", "create", "getxattr", "setxattr", "listxattr",
                       "removexattr", "access", "statfs"})
# ... and those that may put something in a directory, or change its attributes
CHANGING_OPS = frozenset({"setattr", "mknod", "mkdir", "symlink", "rename", "link", "create", "setxattr",
                          "removexattr"})


class DirsAhead:
    def __init__(self, owner: "LeasedDirs") -> None:
        self.owner = owner
        self.table = owner.table
        self.batcher = owner.batcher
        self.meta = owner.meta
        self.unsettled: dict[int, Pending] = {}             # made ahead, its mkdir not answered yet
        self.fresh: dict[int, tuple[DirLease, str]] = {}    # made ahead, nothing made in it since
        self._pool: deque[int] = deque()
        self._pool_boot = b""   # _holder() when the pool was filled
        self._filling: asyncio.Task[None] | None = None
        self.made = 0
        self.removed = 0

    # ------------------------------------------------------------- numbers

    def _holder(self) -> bytes:
        """Whom the dir server delegated the pool's numbers to: its run and this mount's session with it
        (after a restart of either, the numbers held are refused: they are dropped, and asked for again)."""
        cluster = self.owner.cluster
        s = self.owner.fs.channels.session(cluster.dir_address) if cluster.dir_address else None
        return (s.boot_id or b"") + bytes(s.session_id) if s is not None else b""

    def _take(self) -> int | None:
        holder = self._holder()
        if holder != self._pool_boot:
            self._pool.clear()
            self._pool_boot = holder
        ino = self._pool.popleft() if self._pool else None
        if len(self._pool) < LOW and (self._filling is None or self._filling.done()):
            self._filling = asyncio.get_running_loop().create_task(self._fill(holder))
        return ino

    async def _fill(self, holder: bytes) -> None:
        try:
            r = await self.meta.delegate_dir_inos(COUNT)
        except FsError as e:
            log.info("the dir server delegated no directory numbers (%s): mkdirs go one by one", e)
            return
        if holder == self._holder():
            self._pool.extend(range(r.first, r.first + r.count))

    async def _take_waiting(self) -> int | None:
        ino = self._take()
        if ino is None and self._filling is not None:
            await asyncio.shield(self._filling)
            ino = self._take()
        return ino

    # --------------------------------------------------------------- mkdir

    async def mkdir(self, parent: int, name: str, mode: int, creds: Creds) -> pb.Attr | None:
        """Make ``name`` ahead in leased ``parent``; its attributes, or None: the ordinary path."""
        await self._room()
        lease = self.table.get(parent)
        if lease is None:
            if self.owner.contended(parent):
                return None  # another client works there too: no lease taken for mkdirs alone
            lease = await self.owner.want(parent, creds)
            if lease is None:
                return None
        if name in lease.names or name in lease.making:
            raise FsError(errno.EEXIST, "file exists")
        cap = await self.owner.cap(lease, creds)
        if cap is None or cap.rights & (W_OK | X_OK) != W_OK | X_OK:
            return None  # the dir server says why
        ino = await self._take_waiting()
        if ino is None or self.table.get(parent) is not lease:
            return None
        if name in lease.names or name in lease.making:
            raise FsError(errno.EEXIST, "file exists")
        now = time.time_ns()
        bits, gid = mode & 0o1777, creds.gid   # as the dir server's mkdir (coordinator.py)
        if lease.attr.mode & stat_mod.S_ISGID:
            gid, bits = lease.attr.gid, bits | stat_mod.S_ISGID
        attr = pb.Attr(ino=ino, mode=stat_mod.S_IFDIR | bits, nlink=2, uid=creds.uid, gid=gid,
                       atime_ns=now, mtime_ns=now, ctime_ns=now)
        p = self.batcher.add(DIR_QUEUE, pb.BatchOp(mkdir=pb.MkdirRequest(
            parent_ino=parent, name=name, mode=mode, creds=creds.pb(), ino=ino, grant=lease.grant,
            time_ns=now)), parent)
        e = Entry(ino, pb.DIRECTORY, attr, created_here=True)
        e.ops.append(p)
        lease.names[name] = e
        lease.attr.nlink += 1
        lease.attr.mtime_ns = lease.attr.ctime_ns = now
        if len(self.unsettled) > 4 * COUNT:
            self.unsettled = {i: q for i, q in self.unsettled.items() if not q.done.is_set()}
        self.unsettled[ino] = p
        self.fresh[ino] = (lease, name)
        self.made += 1
        return attr

    def known_empty(self, ino: int) -> tuple[pb.Attr, int] | None:
        """(attributes, parent) of a directory made here that is known to be empty (nothing was made in
        it, nobody else has seen it): listed without asking anyone; None: ask."""
        where = self.fresh.get(ino)
        if where is None:
            return None
        lease, name = where
        e = lease.names.get(name)
        if e is None or e.ino != ino or e.attr is None or self.table.get(lease.dir_ino) is not lease:
            return None
        return e.attr, lease.dir_ino

    def local_attr(self, e: Entry) -> pb.Attr | None:
        """The attributes of a directory made here, while nothing else can have changed them."""
        where = self.fresh.get(e.ino)
        return e.attr if where is not None and where[0].names.get(where[1]) is e else None

    # --------------------------------------------------------------- rmdir

    async def rmdir(self, parent: int, name: str, creds: Creds) -> bool:
        """Remove ``name`` ahead if it is a directory made here that is known to be empty; False:
        the ordinary path, once the dir server has the directory's own mkdir."""
        if await self._rmdir_ahead(parent, name, creds):
            return True
        lease = self.table.get(parent)
        e = lease.names.get(name) if lease is not None else None
        p = self.unsettled.get(e.ino) if e is not None else None
        if p is not None and not p.done.is_set():
            await self.batcher.flush({DIR_QUEUE})
            await p.done.wait()
        return False

    async def _rmdir_ahead(self, parent: int, name: str, creds: Creds) -> bool:
        lease = self.table.get(parent)
        if lease is None or lease.attr.mode & stat_mod.S_ISVTX:
            return False
        await self._room()
        if self.table.get(parent) is not lease:
            return False
        e = lease.names.get(name)
        if e is None:
            raise FsError(errno.ENOENT, "no such directory (leased directory)")
        if e.ftype != pb.DIRECTORY:
            raise FsError(errno.ENOTDIR, "not a directory")
        where = self.fresh.get(e.ino)
        if where is None or where[0] is not lease:
            return False
        cap = await self.owner.cap(lease, creds)
        if cap is None or cap.rights & (W_OK | X_OK) != W_OK | X_OK:
            return False
        if self.table.get(parent) is not lease or lease.names.get(name) is not e:
            return False
        now = time.time_ns()
        lease.attr.nlink = max(2, lease.attr.nlink - 1)
        lease.attr.mtime_ns = lease.attr.ctime_ns = now
        del lease.names[name]
        self.fresh.pop(e.ino, None)
        self.removed += 1
        unsent = [p for p in e.ops if not p.sent and not p.withdrawn]
        if unsent and all(self.batcher.withdraw(p) for p in unsent):
            self.unsettled.pop(e.ino, None)  # never left this mount: nothing to tell anyone
            return True
        p = self.batcher.add(DIR_QUEUE, pb.BatchOp(rmdir=pb.RmdirRequest(
            parent_ino=parent, name=name, creds=creds.pb(), grant=lease.grant)), parent)
        e.ops.append(p)
        lease.gone.append(e)
        return True

    async def _room(self) -> None:
        if self.batcher.waiting(DIR_QUEUE) >= MAX_WAITING:
            await self.batcher.flush({DIR_QUEUE})

    # ------------------------------------------------------------ ordering

    async def before(self, op: str, args: tuple[Any, ...]) -> None:
        """Before FUSE operation ``op``: a directory it names whose mkdir is pending goes to the dir
        server first; one it may put something in stops being removable ahead."""
        for a in args:
            if type(a) is not int:
                continue
            p = self.unsettled.get(a)
            if p is not None:
                if not p.done.is_set():
                    await self.batcher.flush({DIR_QUEUE})
                    await p.done.wait()
                self.unsettled.pop(a, None)
            if op in CHANGING_OPS:
                self.fresh.pop(a, None)

    def forget(self, lease: DirLease) -> None:
        """``lease`` ended: what was made under it is the dir server's to answer for now."""
        for e in lease.names.values():
            if e.ftype == pb.DIRECTORY:
                self.fresh.pop(e.ino, None)
