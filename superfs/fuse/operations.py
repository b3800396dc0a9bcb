"""The pyfuse3 request handlers: POSIX calls turned into SuperFS client calls.

This is the only module that raises ``pyfuse3.FUSEError``. Every handler
runs with the calling process's uid/gid/groups as the credentials of each
client call, so the servers enforce POSIX permissions per user (the mount
also passes ``default_permissions`` so the kernel checks mode bits first).
An ``FsError`` becomes its errno; anything unexpected is logged with its
traceback and becomes EIO, and the mount keeps serving.

Consistency (close-to-open, as NFS): a file's bytes reach the servers at
close, fsync or when a chunk's worth is buffered; ``open`` asks the servers
for the file's current version, so what another mount wrote and closed
before this open is what this open reads (the kernel's page cache is kept
only if the version is unchanged). Names and attributes are cached by the
kernel for ``entry_timeout``/``attr_timeout`` seconds (default 1 s): a
rename, chmod or new file made elsewhere may take that long to show up in
``stat``. What the kernel asks about a directory comes from the client's
lease cache only while that copy is younger than the kernel's timeout,
because the kernel checks permissions against it; a capability cached under
the lease that the shard refuses is renewed and the operation tried once
more. So a chmod or chown of a directory made elsewhere is honoured within
twice the kernel's timeout, not the lease.
Misses are not cached: a file created elsewhere is found by the next open.
Inode operations on an inode that another client removed answer ESTALE, so
the kernel looks the path up afresh.
"""
from __future__ import annotations

import asyncio
import errno
import functools
import logging
import os
from typing import Any, Awaitable, Callable, Sequence, TypeVar

import pyfuse3

from superfs import routing
from superfs.client.fs import AsyncFs
from superfs.client.meta import SET_SIZE, Creds
from superfs.client.nodes import Node
from superfs.errors import FsError
from superfs.filetypes import type_of_mode
from superfs.fuse import setattrs
from superfs.fuse.creds import CredsOf
from superfs.fuse.dirhandles import DirHandleTable
from superfs.fuse.handles import HandleTable, OpenFile, as_opened
from superfs.fuse.dirs_ahead import INODE_OPS
from superfs.fuse.leased import LOCAL_FH_BASE, LeasedDirs
from superfs.rpc.methods import RECALL_LEASE
from superfs.fuse.inodes import InodeTable, entry_attributes, version_of
from superfs.fuse.options import MountOptions
from superfs.fuse.orphans import ORPHAN_DIR, Orphans
from superfs.fuse.readahead import set_read_ahead
from superfs.fuse.statfs import StatfsCache
from superfs.perms import R_OK, W_OK, X_OK, allowed
from superfs.v1 import superfs_pb2 as pb

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

ROOT_INO = pyfuse3.ROOT_INODE
# POSIX ACLs (system.*) are not supported: answered here, never stored.
LOCAL_XATTR_PREFIXES = ("system.",)
# The kernel asks for this before every write(2) to a file: an open file
# remembers the answer (see OpenFile.caps), which saves a round trip per write.
CAPS_XATTR = "security.capability"


def fuse_op(fn: F) -> F:
    """FsError -> FUSEError(errno); anything else -> logged, FUSEError(EIO)."""
    name = fn.__name__

    ordered = name in INODE_OPS

    @functools.wraps(fn)
    async def wrapper(self: "SuperFsOperations", *args: Any) -> Any:
        try:
            ahead = self.leased.ahead if self.leased is not None else None
            if ordered and ahead is not None and (ahead.unsettled or ahead.fresh):
                await ahead.before(name, args)  # directories made ahead that this operation names
            return await fn(self, *args)
        except pyfuse3.FUSEError:
            raise
        except FsError as e:
            log.debug("%s%r -> %s", name, args[:3], e)
            raise pyfuse3.FUSEError(e.errno) from None
        except OSError as e:
            log.debug("%s%r -> %r", name, args[:3], e)
            raise pyfuse3.FUSEError(e.errno or errno.EIO) from None
        except Exception:  # noqa: BLE001 - the boundary: a bug must not take the mount down
            log.exception("unexpected error in %s%r", name, args[:3])
            raise pyfuse3.FUSEError(errno.EIO) from None
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # the mount is shutting down
            # something this request awaited was cancelled: a bug, but pyfuse3
            # would drop the request unanswered and the caller would hang
            log.exception("%s%r awaited a cancelled task", name, args[:3])
            raise pyfuse3.FUSEError(errno.EIO) from None

    return wrapper  # type: ignore[return-value]


def _stale(e: FsError) -> FsError:
    """An inode that is gone: ESTALE makes the kernel look its path up again."""
    return FsError(errno.ESTALE, e.message) if e.errno == errno.ENOENT else e


def _want_of(flags: int) -> int:
    acc = flags & os.O_ACCMODE
    return {os.O_RDONLY: R_OK, os.O_WRONLY: W_OK}.get(acc, R_OK | W_OK)


class SuperFsOperations(pyfuse3.Operations):
    supports_dot_lookup = True
    enable_writeback_cache = False  # close-to-open needs writes to reach us at close
    enable_acl = False

    def __init__(self, fs: AsyncFs, opts: MountOptions) -> None:
        super().__init__()
        self.fs = fs
        self.meta = fs.meta
        self.data = fs.data
        self.opts = opts
        self.inodes = InodeTable()
        self.handles = HandleTable()
        self.dirs = DirHandleTable()
        self.creds_of = CredsOf()
        self.orphans = Orphans(fs)
        self.statfs_cache = StatfsCache(fs)
        # directories this mount holds an exclusive lease on: answered from memory (leased.py)
        self.leased: LeasedDirs | None = LeasedDirs(fs, batch_delay_s=opts.batch_delay_ms / 1000) if opts.leases and not opts.read_only else None
        self._redirect: dict[int, int] = {}  # a file served from memory that moved to the ordinary path
        self._owed: dict[int, FsError] = {}  # such a handle -> a refused change of its file, not reported yet
        if self.leased is not None:
            fs.cluster.channels.handlers[RECALL_LEASE] = self.leased.recall

    def init(self) -> None:
        """INIT: once it is answered, raise the kernel's read-ahead (see readahead.py)."""
        if self.opts.read_ahead_kb > 0:
            # call_soon: the INIT reply is written when this returns, and the kernel
            # would cap a value set before it at the 128 KiB that INIT offers
            asyncio.get_running_loop().call_soon(set_read_ahead, self.opts.mountpoint, self.opts.read_ahead_kb)

    async def setup(self) -> None:
        if not self.opts.read_only:
            await self.orphans.setup()

    async def shutdown(self) -> None:
        """Unmounting: send what leased directories have pending, push what open files still buffer,
        drop orphans."""
        if self.leased is not None:
            try:
                await self.leased.shutdown()
            except Exception as e:  # noqa: BLE001 - unmounting anyway; say what was lost
                log.error("unmount: changes made ahead may be lost: %r", e)
        for of in list(self.handles.files.values()):
            try:
                await of.flush()
            except Exception as e:  # noqa: BLE001 - unmounting anyway; say what was lost
                log.error("unmount: buffered writes of inode %d lost: %r", of.ino, e)
        try:
            await self.orphans.reap_all()
        except Exception as e:  # noqa: BLE001
            log.warning("unmount: orphans left behind: %r", e)

    # ------------------------------------------------------------- helpers

    @property
    def _threshold(self) -> int:
        return self.fs.layout.inline_threshold

    def _entry(self, attr: pb.Attr, *, count: bool) -> pyfuse3.EntryAttributes:
        ino = attr.ino
        size = mtime = nlink = None
        if self.handles.files:
            local = self.handles.local_size(ino)
            if local is not None:
                size, mtime = max(attr.size, local[0]), local[1]
        if self.orphans.names and ino in self.orphans.names:
            nlink = max(0, attr.nlink - 1)  # its only name is the hidden one
        e = entry_attributes(attr, self.opts.entry_timeout, self.opts.attr_timeout,
                             nlink=nlink, size=size, mtime_ns=mtime)
        self.inodes.note_reported(ino, e.st_size, e.st_mtime_ns)
        if count:
            self.inodes.add_lookup(ino)
        return e

    def _local_entry(self, attr: pb.Attr, *, count: bool) -> pyfuse3.EntryAttributes:
        """A file made here under a lease: the kernel may keep it until the lease ends (leased.py)."""
        assert self.leased is not None
        t = self.leased.kernel_timeout()
        e = entry_attributes(attr, t, t)
        if count:
            self.inodes.add_lookup(attr.ino)
        return e

    async def _unlease(self, *dirs: int) -> None:
        """An ordinary operation on these directories: give their leases back first (pending changes sent),
        and move their files' open handles to the ordinary path (where an unlinked open file is kept)."""
        if self.leased is not None:
            for fh, h in list(self.leased.handles.items()):
                if h.parent in dirs and self.leased.live(fh):
                    await self._materialize(fh)
            for d in dirs:
                if self.leased.lease(d) is not None:
                    await self.leased.give_back(d)

    async def _settle(self, ino: int) -> None:
        """An ordinary operation on a file made here: its pending changes go first."""
        if self.leased is not None and ino in self.leased.files:
            for fh, h in list(self.leased.handles.items()):
                if h.entry.ino == ino:
                    await self._materialize(fh)
            await self.leased.settle_file(ino)

    async def _materialize(self, fh: int) -> int | None:
        """A handle served from memory moves to the ordinary path: its file grew past what is kept in
        memory, is changed some other way, or its directory's lease ended while it was open. A refused
        change of its file is owed to this handle's next flush or fsync; None: its file's create was
        refused (there is nothing to open)."""
        assert self.leased is not None
        h, unsent, owed = await self.leased.handover(fh)
        if owed is not None:
            self._owed[fh] = owed
        if h.entry.lost:
            return None
        ino = h.entry.ino
        if h.entry.created_here and self.leased.files.get(ino) is not None:
            await self.leased.settle_file(ino)
        node = await self._get_file(ino, h.creds, want_data=True)
        of = self._open_file(node)
        real = self.handles.add(of, h.flags | os.O_RDWR, h.creds)
        self._redirect[fh] = real.fh
        if unsent is not None:  # written while served from memory, not sent yet: the whole content
            await as_opened(lambda c: of.write(0, unsent, c), h.creds)
        return real.fh

    async def _local(self, fh: int) -> int | None:
        """``fh`` if it is served from memory (leased.py); a handle of the ordinary path otherwise."""
        if self.leased is None or fh not in self.leased.handles:
            return None
        if self.leased.live(fh):
            return fh
        await self._materialize(fh)
        return None

    def _fh(self, fh: int) -> int:
        return self._redirect.get(fh, fh)

    def _node_entry(self, node: Node, *, count: bool) -> pyfuse3.EntryAttributes:
        if not node.attr.ino:
            node.attr.ino = node.ino
        return self._entry(node.attr, count=count)

    def _writable(self) -> None:
        if self.opts.read_only:
            raise FsError(errno.EROFS, "mounted read-only")

    async def _get_file(self, ino: int, creds: Creds, *, want_data: bool = False) -> Node:
        try:
            return await self.meta.get_file(ino, creds, want_data=want_data)
        except FsError as e:
            raise _stale(e) from None

    async def _getattr(self, ino: int, creds: Creds) -> Node:
        # the kernel checks permissions against what we answer (default_permissions):
        # a directory's attributes come from the lease cache only while younger than
        # the kernel's own timeout, so a change made elsewhere counts within twice
        # that, not the lease (the kernel asks after every create in a directory:
        # the cache answers those)
        try:
            return await self.meta.getattr(ino, creds, max_age=self.opts.attr_timeout)
        except FsError as e:
            raise _stale(e) from None

    def _hidden(self, parent: int, name: str) -> bool:
        return parent == ROOT_INO and name == ORPHAN_DIR

    # -------------------------------------------------------------- names

    @fuse_op
    async def lookup(self, parent_inode: int, name: bytes, ctx: Any) -> pyfuse3.EntryAttributes:
        creds = self.creds_of(ctx)
        sname = os.fsdecode(name)
        if sname == ".":
            node = await self._getattr(parent_inode, creds)
        elif sname == "..":
            here = await self.meta.get_dir(parent_inode, creds)
            node = await self.meta.get_dir(here.parent or ROOT_INO, creds)
        elif self._hidden(parent_inode, sname):
            raise FsError(errno.ENOENT, "hidden")
        else:
            known = self.leased.lookup(parent_inode, sname) if self.leased is not None else None
            if known is not None and known.ftype == pb.DIRECTORY:
                made = self.leased.ahead.local_attr(known) if self.leased is not None else None
                if made is not None:  # made ahead here: attributes as it was made, the usual timeouts
                    return self._entry(made, count=True)
            elif known is not None and known.created_here and known.attr is not None:
                return self._local_entry(known.attr, count=True)
            if self.leased is not None:
                await self.leased.settle_dir(parent_inode, ending_only=True)  # a lease given back: changes first
            node = await self.meta.lookup(parent_inode, sname, creds, want_data=True,
                                          max_age=self.opts.entry_timeout)
            if node.file is not None:
                self.inodes.note_name(parent_inode, sname, node.ino)
                if node.is_symlink:
                    self.inodes.remember_target(node.ino, node.file.symlink_target)
                elif node.file.inline:
                    self.inodes.stash(node, ctx.pid)
        return self._node_entry(node, count=True)

    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        # must not raise at all: there is no request to answer, and pyfuse3
        # would end the main loop
        try:
            for ino, n in inode_list:
                self.inodes.forget(ino, n)
        except Exception:  # noqa: BLE001
            log.exception("forget(%r) failed", inode_list[:4])

    @fuse_op
    async def getattr(self, inode: int, ctx: Any) -> pyfuse3.EntryAttributes:
        if self.leased is not None:
            local = self.leased.attr(inode)
            if local is not None:
                return self._local_entry(local, count=False)
            lease = self.leased.lease(inode)
            if lease is not None:  # a leased directory: nobody else changes it before recalling the lease
                return self._local_entry(lease.attr, count=False)
            made = self.leased.ahead.known_empty(inode)
            if made is not None:  # made ahead here, unchanged since: as it was made
                return self._entry(made[0], count=False)
            await self.leased.settle_file(inode)  # made here, its lease being given back: changes first
        node = await self._getattr(inode, self.creds_of(ctx))
        return self._node_entry(node, count=False)

    @fuse_op
    async def access(self, inode: int, mode: int, ctx: Any) -> bool:
        creds = self.creds_of(ctx)
        node = await self._getattr(inode, creds)
        if mode & W_OK and self.opts.read_only:
            raise FsError(errno.EROFS, "mounted read-only")
        if mode == os.F_OK:
            return True
        return allowed(node.attr.mode, node.attr.uid, node.attr.gid, creds, mode & (R_OK | W_OK | X_OK))

    @fuse_op
    async def readlink(self, inode: int, ctx: Any) -> bytes:
        target = self.inodes.target(inode)
        if target is None:
            node = await self._get_file(inode, self.creds_of(ctx))
            if not node.is_symlink or node.file is None:
                raise FsError(errno.EINVAL, "not a symbolic link")
            target = node.file.symlink_target
            self.inodes.remember_target(inode, target)
        return os.fsencode(target)

    @fuse_op
    async def mkdir(self, parent_inode: int, name: bytes, mode: int, ctx: Any) -> pyfuse3.EntryAttributes:
        self._writable()
        sname, creds = os.fsdecode(name), self.creds_of(ctx)
        if self.leased is not None and not self._hidden(parent_inode, sname):
            made = await self.leased.ahead.mkdir(parent_inode, sname, mode & 0o7777, creds)
            if made is not None:
                return self._entry(made, count=True)
        node = await self.leased.mkdir(parent_inode, sname, mode & 0o7777, creds) if self.leased else None
        if node is None:
            await self._unlease(parent_inode)
            node = await self.meta.mkdir(parent_inode, sname, mode & 0o7777, creds)
        return self._node_entry(node, count=True)

    @fuse_op
    async def rmdir(self, parent_inode: int, name: bytes, ctx: Any) -> None:
        self._writable()
        sname = os.fsdecode(name)
        if self._hidden(parent_inode, sname):
            raise FsError(errno.ENOENT, "hidden")
        if self.leased is not None and await self.leased.ahead.rmdir(parent_inode, sname, self.creds_of(ctx)):
            return
        child = self.leased.subdir(parent_inode, sname) if self.leased is not None else None
        if child is None:  # which directory the name is, is not known here: every lease it could be
            await self._unlease(parent_inode, *self._leased_children(parent_inode))
        else:  # a leased parent keeps its lease (the dir server recalls nothing from its holder)
            await self._unlease(child)
        await self.meta.rmdir(parent_inode, sname, self.creds_of(ctx))
        if child is not None and self.leased is not None:
            self.leased.removed_dir(parent_inode, sname, child)

    @fuse_op
    async def mknod(self, parent_inode: int, name: bytes, mode: int, rdev: int, ctx: Any
                    ) -> pyfuse3.EntryAttributes:
        self._writable()
        ftype = type_of_mode(mode)
        if ftype == pb.DIRECTORY:
            raise FsError(errno.EPERM, "mknod cannot make a directory")
        # the kernel checked CAP_MKNOD for devices already; the shard checks again (library clients)
        await self._unlease(parent_inode)
        node, _ = await self.meta.create(parent_inode, os.fsdecode(name), mode & 0o7777, self.creds_of(ctx),
                                         exclusive=True, ftype=ftype, rdev=rdev)
        return self._node_entry(node, count=True)

    @fuse_op
    async def symlink(self, parent_inode: int, name: bytes, target: bytes, ctx: Any) -> pyfuse3.EntryAttributes:
        self._writable()
        starget = os.fsdecode(target)
        await self._unlease(parent_inode)
        node, _ = await self.meta.create(parent_inode, os.fsdecode(name), 0o777, self.creds_of(ctx),
                                         exclusive=True, symlink_target=starget)
        self.inodes.remember_target(node.ino, starget)
        return self._node_entry(node, count=True)

    @fuse_op
    async def link(self, inode: int, new_parent_inode: int, new_name: bytes, ctx: Any) -> pyfuse3.EntryAttributes:
        self._writable()
        sname = os.fsdecode(new_name)
        await self._settle(inode)
        await self._unlease(new_parent_inode)
        attr = await self.meta.link(inode, new_parent_inode, sname, self.creds_of(ctx))
        self.inodes.note_name(new_parent_inode, sname, inode)
        if self.leased is not None:
            self.leased.linked(inode, attr)
        return self._entry(attr, count=True)

    async def _open_victim(self, parent: int, name: str, creds: Creds) -> Node | None:
        """The file at parent/name if removing that name would free a file open here."""
        if not self.handles.files or not self.orphans.enabled:
            return None
        known = self.inodes.ino_of_name(parent, name)
        if known is not None and not self.handles.is_open(known):
            return None  # the name leads to a file that is not open here: no lookup needed
        try:
            node = await self.meta.lookup(parent, name, creds)
        except FsError as e:
            if e.errno == errno.ENOENT:
                return None
            raise
        if node.is_dir or not self.handles.is_open(node.ino) or node.attr.nlink > 1:
            return None
        return node

    @fuse_op
    async def unlink(self, parent_inode: int, name: bytes, ctx: Any) -> None:
        self._writable()
        creds = self.creds_of(ctx)
        sname = os.fsdecode(name)
        if self._hidden(parent_inode, sname):
            raise FsError(errno.ENOENT, "hidden")
        if self.leased is not None and self.leased.lease(parent_inode) is not None:
            known = self.leased.lookup(parent_inode, sname)
            busy = known is not None and (self.handles.is_open(known.ino)
                                          or any(h.entry is known for h in self.leased.handles.values()))
            if not busy and await self.leased.unlink(parent_inode, sname, creds):
                self.inodes.drop_name(parent_inode, sname)
                return
            await self._unlease(parent_inode)
        victim = await self._open_victim(parent_inode, sname, creds)
        self.inodes.drop_name(parent_inode, sname)
        if victim is not None:
            await self.orphans.hide(parent_inode, sname, victim.ino, creds)
            return
        await self.meta.unlink(parent_inode, sname, creds)

    @fuse_op
    async def rename(self, parent_inode_old: int, name_old: bytes, parent_inode_new: int, name_new: bytes,
                     flags: int, ctx: Any) -> None:
        self._writable()
        creds = self.creds_of(ctx)
        src, dst = os.fsdecode(name_old), os.fsdecode(name_new)
        if self._hidden(parent_inode_old, src) or self._hidden(parent_inode_new, dst):
            raise FsError(errno.EPERM, f"/{ORPHAN_DIR} is reserved")
        if not flags & (pyfuse3.RENAME_NOREPLACE | pyfuse3.RENAME_EXCHANGE):  # exchange replaces nothing
            victim = await self._open_victim(parent_inode_new, dst, creds)
            if victim is not None:
                moving = await self.meta.lookup(parent_inode_old, src, creds)
                if moving.ino == victim.ino:
                    return  # both names are one file: rename does nothing
                if moving.is_dir:
                    raise FsError(errno.ENOTDIR, "cannot replace a file with a directory")
                await self.orphans.hide(parent_inode_new, dst, victim.ino, creds)
        self.inodes.drop_name(parent_inode_old, src)
        self.inodes.drop_name(parent_inode_new, dst)
        await self._unlease(parent_inode_old, parent_inode_new, *self._leased_children(parent_inode_old),
                            *self._leased_children(parent_inode_new))
        await self.meta.rename(parent_inode_old, src, parent_inode_new, dst, creds, flags)

    # ----------------------------------------------------------- attributes

    @fuse_op
    async def setattr(self, inode: int, attr: pyfuse3.EntryAttributes, fields: pyfuse3.SetattrFields,
                      fh: int | None, ctx: Any) -> pyfuse3.EntryAttributes:
        creds = self.creds_of(ctx)
        changes = (fields.update_size or fields.update_mode or fields.update_uid or fields.update_gid
                   or fields.update_atime or fields.update_mtime)
        if changes:
            self._writable()
        is_dir = routing.is_dir_ino(inode)
        if fh is not None and self.leased is not None and self.leased.is_local(fh):
            fh = await self._materialize(fh) if fh in self.leased.handles else self._fh(fh)
        await self._settle(inode)
        if is_dir:
            await self._unlease(inode)
        result: pb.Attr | None = None
        of = self.handles.open_file(inode)
        if fields.update_size:
            if is_dir:
                raise FsError(errno.EISDIR, "is a directory")
            size = attr.st_size
            if fh is not None and self._opened_for_writing(fh):
                # ftruncate: the descriptor's write access counts, not the mode now
                result = await as_opened(lambda c: self._truncate(inode, of, size, c), creds)
            else:
                result = await self._truncate(inode, of, size, creds)
        mask, kw = setattrs.changes(attr, fields)
        if mask:
            if fields.update_mtime and of is not None and of.dirty:
                await of.flush()  # buffered writes must not land after (and override) the new mtime
            result = await self._setattr(inode, creds, mask, kw)
        if result is None:
            result = (await self._getattr(inode, creds)).attr
        if of is not None:
            of.node.attr.CopyFrom(result)
        return self._entry(result, count=False)

    def _opened_for_writing(self, fh: int) -> bool:
        h = self.handles.handles.get(fh)
        return h is not None and h.flags & os.O_ACCMODE != os.O_RDONLY

    async def _setattr(self, inode: int, creds: Creds, mask: int, kw: dict[str, int]) -> pb.Attr:
        try:
            return await self.meta.setattr(inode, creds, mask=mask, **kw)
        except FsError as e:
            now_mask = setattrs.as_now(mask, kw) if e.errno in (errno.EPERM, errno.EACCES) else None
            if now_mask is None:
                raise _stale(e) from None
        return await self.meta.setattr(inode, creds, mask=now_mask, **kw)

    async def _truncate(self, ino: int, of: OpenFile | None, size: int, creds: Creds) -> pb.Attr:
        if of is not None:
            await of.flush()
            node = of.node
        else:
            node = await self._get_file(ino, creds)
        if node.is_symlink:
            raise FsError(errno.EINVAL, "cannot truncate a symbolic link")
        if node.file is not None and node.file.inline and size <= self._threshold:
            attr = await self.meta.setattr(ino, creds, mask=SET_SIZE, size=size)
            node.attr.CopyFrom(attr)
            node.file.data = b""
        else:
            attr = await self.data.truncate(node, size, creds)
        if of is not None:
            of.drop_cache()
        return attr

    # ----------------------------------------------------------------- files

    def _open_file(self, node: Node) -> OpenFile:
        of = self.handles.open_file(node.ino)
        if of is None:
            layout = self.fs.layout
            of = OpenFile(node, self.data, self.meta, layout.chunk_size, layout.inline_threshold)
            of.refresh(node)
        return of

    def _file_info(self, fh: int, ino: int, version: tuple[int, int, int], *, fresh: bool) -> pyfuse3.FileInfo:
        """keep_cache only if the kernel's cached pages are of this very version."""
        keep = not fresh or self.inodes.cached_version.get(ino) == version
        self.inodes.cached_version[ino] = version
        return pyfuse3.FileInfo(fh=fh, keep_cache=keep)

    @fuse_op
    async def open(self, inode: int, flags: int, ctx: Any) -> pyfuse3.FileInfo:
        creds = self.creds_of(ctx)
        acc = flags & os.O_ACCMODE
        trunc = bool(flags & os.O_TRUNC) and acc != os.O_RDONLY
        if self.opts.read_only and (acc != os.O_RDONLY or trunc):
            raise FsError(errno.EROFS, "mounted read-only")
        if self.leased is not None:
            local = self.leased.open(inode, flags, creds)
            if local is not None:
                return pyfuse3.FileInfo(fh=local, keep_cache=True)
            await self.leased.settle_file(inode)  # made here, its lease being given back: changes first
        of = self.handles.open_file(inode)
        fresh: Node | None = None
        if of is None or not of.dirty:
            # close-to-open: the servers' current version (our own unpushed writes are newer still)
            fresh = self.inodes.take_stash(inode, ctx.pid)
            if fresh is None:
                # a small file's bytes come along, unless the open cannot read them
                fresh = await self._get_file(inode, creds, want_data=acc != os.O_WRONLY)
                log.debug("open(%d): fetched", inode)
            else:
                log.debug("open(%d): attributes and bytes came with the lookup", inode)
            if fresh.is_dir:
                raise FsError(errno.EISDIR, "is a directory")
        attr = (fresh or of.node).attr  # type: ignore[union-attr]
        if not allowed(attr.mode, attr.uid, attr.gid, creds, _want_of(flags)):
            raise FsError(errno.EACCES, "permission denied")
        if of is None:
            assert fresh is not None
            of = self._open_file(fresh)
        elif fresh is not None:
            of.refresh(fresh)
        h = self.handles.add(of, flags, creds)
        try:
            if trunc and of.local_size():
                await self._truncate(inode, of, 0, creds)
                of.inline_bytes = b""
        except BaseException:
            self.handles.remove(h.fh)
            raise
        version = version_of(of.node.attr)
        info = self._file_info(h.fh, inode, version, fresh=fresh is not None and not trunc)
        if trunc:
            info.keep_cache = False
        if fresh is not None and self.inodes.kernel_attr_stale(of.node.attr):
            self._invalidate_attr(inode)
        return info

    def _invalidate_attr(self, ino: int) -> None:
        """The kernel holds an old size or mtime: make it ask again."""
        try:
            pyfuse3.invalidate_inode(ino, attr_only=True)
        except OSError as e:
            log.debug("invalidate_inode(%d): %s", ino, e)
        self.inodes.reported.pop(ino, None)

    @fuse_op
    async def create(self, parent_inode: int, name: bytes, mode: int, flags: int, ctx: Any
                     ) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        self._writable()
        creds = self.creds_of(ctx)
        sname = os.fsdecode(name)
        if self._hidden(parent_inode, sname):
            raise FsError(errno.EEXIST, "reserved name")
        if self.leased is not None:
            made = await self.leased.create(parent_inode, sname, mode, flags, creds)
            if made is not None:
                entry, fh = made
                assert entry.attr is not None
                return pyfuse3.FileInfo(fh=fh, keep_cache=True), self._local_entry(entry.attr, count=True)
            await self._unlease(parent_inode)
        node, created = await self.meta.create(parent_inode, sname, mode & 0o7777, creds,
                                               exclusive=bool(flags & os.O_EXCL))
        self.inodes.note_name(parent_inode, sname, node.ino)
        if not created:
            # the name appeared between the kernel's lookup and this create: open it as open(2) would
            if not allowed(node.attr.mode, node.attr.uid, node.attr.gid, creds, _want_of(flags)):
                raise FsError(errno.EACCES, "permission denied")
        of = self._open_file(node)
        if created:
            of.inline_bytes = b""
        h = self.handles.add(of, flags, creds)
        try:
            if not created and flags & os.O_TRUNC and flags & os.O_ACCMODE != os.O_RDONLY and of.local_size():
                await self._truncate(node.ino, of, 0, creds)
        except BaseException:
            self.handles.remove(h.fh)
            raise
        info = self._file_info(h.fh, node.ino, version_of(of.node.attr), fresh=not created)
        if created:
            info.keep_cache = True
        return info, self._entry(of.node.attr, count=True)

    @fuse_op
    async def read(self, fh: int, off: int, size: int) -> bytes:
        if await self._local(fh) is not None:
            return self.leased.read(fh, off, size)  # type: ignore[union-attr]
        if self._dropped(fh):
            raise FsError(errno.EIO, "the file's create was refused (fsync or close reports why)")
        h = self.handles.get(self._fh(fh))
        return await h.file.read(off, size, h.creds, h)  # type: ignore[return-value]  # a view: pyfuse3 takes buffers

    @fuse_op
    async def write(self, fh: int, off: int, buf: bytes) -> int:
        self._writable()
        if await self._local(fh) is not None:
            n = self.leased.write(fh, off, buf)  # type: ignore[union-attr]
            if n is not None:
                return n
            await self._materialize(fh)  # outgrew what is served from memory
        if self._dropped(fh):
            raise FsError(errno.EIO, "the file's create was refused (fsync or close reports why)")
        h = self.handles.get(self._fh(fh))
        return await h.file.write(off, buf, h.creds)

    async def _flush(self, fh: int) -> None:
        h = self.handles.get(fh)
        of = h.file
        if not of.dirty:
            return
        try:
            await of.flush()
        except FsError as e:
            # bytes a program wrote did not reach the servers: worth more than a debug line
            log.warning("write-back of inode %d failed: %s", h.ino, e)
            raise
        # the kernel's pages hold what we just wrote: they are of the new version
        if h.ino in self.inodes.cached_version:
            self.inodes.cached_version[h.ino] = version_of(of.node.attr)

    @fuse_op
    async def flush(self, fh: int) -> None:
        if await self._local(fh) is not None:
            self.leased.flush(fh)  # type: ignore[union-attr]
            return
        self._report_owed(fh)
        if self._dropped(fh):
            return
        await self._flush(self._fh(fh))

    @fuse_op
    async def fsync(self, fh: int, datasync: bool) -> None:
        # the servers acknowledge only what is on disk (durable mode): pushing is syncing
        if await self._local(fh) is not None:
            await self.leased.fsync(fh)  # type: ignore[union-attr]
            return
        self._report_owed(fh)
        if self._dropped(fh):
            return
        await self._flush(self._fh(fh))

    def _dropped(self, fh: int) -> bool:
        """A handle once served from memory whose file's create was refused: nothing to send or read."""
        return fh >= LOCAL_FH_BASE and fh not in self._redirect

    def _report_owed(self, fh: int) -> None:
        """A refused change made ahead, reported to the handle it was made through, once (as Linux
        reports a write-back error once per open file)."""
        err = self._owed.pop(fh, None)
        if err is not None:
            raise err

    @fuse_op
    async def release(self, fh: int) -> None:
        if await self._local(fh) is not None:
            self.leased.release(fh)  # type: ignore[union-attr]
            return
        owed = self._owed.pop(fh, None)
        if owed is not None:
            log.warning("release: a change made ahead through handle %d was refused: %s", fh, owed)
        if self._dropped(fh):
            return  # its file's create was refused
        fh = self._redirect.pop(fh, fh)
        try:
            await self._flush(fh)
        except Exception as e:  # noqa: BLE001 - nobody is left to tell but the log
            log.error("release: buffered writes of handle %d lost: %r", fh, e)
        finally:
            h, last = self.handles.remove(fh)
            if last and self.orphans.is_orphan(h.ino):
                await self.orphans.reap(h.ino)

    # ------------------------------------------------------------ directories

    @fuse_op
    async def opendir(self, inode: int, ctx: Any) -> int:
        creds = self.creds_of(ctx)
        if not routing.is_dir_ino(inode):
            raise FsError(errno.ENOTDIR, "not a directory")
        known = self.leased.ahead.known_empty(inode) if self.leased is not None else None
        if known is not None:  # made here ahead, nothing in it: listed from memory (dirs_ahead.py)
            attr, parent = known
            if not allowed(attr.mode, attr.uid, attr.gid, creds, R_OK):
                raise FsError(errno.EACCES, "no read permission on the directory")
            return self.dirs.add(inode, creds, empty_parent=parent).fh
        try:
            node = await self.meta.get_dir(inode, creds, max_age=self.opts.attr_timeout)
        except FsError as e:
            raise _stale(e) from None
        if not allowed(node.attr.mode, node.attr.uid, node.attr.gid, creds, R_OK):
            raise FsError(errno.EACCES, "no read permission on the directory")
        hide = frozenset((ORPHAN_DIR,)) if inode == ROOT_INO else frozenset()
        if self.leased is not None:
            await self.leased.settle_dir(inode)  # the listing comes from the shards: pending creates first
        return self.dirs.add(inode, creds, hide).fh

    @fuse_op
    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        h = self.dirs.get(fh)
        async with h.lock:  # one page of the listing per handle (dirhandles.py)
            async for name, attr, next_id, dot in h.entries(self.fs, start_id):
                if dot:  # . and ..: the kernel does not link them, no lookup count
                    if not pyfuse3.readdir_reply(token, name, entry_attributes(attr, 0, 0), next_id):
                        return
                    continue
                if not pyfuse3.readdir_reply(token, name, self._entry(attr, count=False), next_id):
                    return
                self.inodes.add_lookup(attr.ino)

    @fuse_op
    async def releasedir(self, fh: int) -> None:
        self.dirs.remove(fh)

    @fuse_op
    async def fsyncdir(self, fh: int, datasync: bool) -> None:
        h = self.dirs.get(fh)  # directory changes are durable when acknowledged, but not those made ahead
        if self.leased is not None:
            await self.leased.fsyncdir(h.ino)

    # --------------------------------------------------------------- statfs

    @fuse_op
    async def statfs(self, ctx: Any) -> pyfuse3.StatvfsData:
        return await self.statfs_cache.get()

    # ---------------------------------------------------------------- xattrs

    @fuse_op
    async def getxattr(self, inode: int, name: bytes, ctx: Any) -> bytes:
        sname = os.fsdecode(name)
        if sname.startswith(LOCAL_XATTR_PREFIXES):
            raise FsError(pyfuse3.ENOATTR, "not stored")
        if self.leased is not None and self.leased.attr(inode) is not None:
            # made here and served from memory: no xattr was set on it (setxattr moves it to the servers)
            raise FsError(pyfuse3.ENOATTR, "no such attribute")
        of = self.handles.open_file(inode) if sname == CAPS_XATTR else None
        if of is not None and of.caps_known:
            if of.caps is None:
                raise FsError(pyfuse3.ENOATTR, "no file capabilities")
            return of.caps
        try:
            value = await self.meta.get_xattr(inode, self.creds_of(ctx), sname)
        except FsError as e:
            if of is not None and e.errno == pyfuse3.ENOATTR:
                of.caps, of.caps_known = None, True
            raise _stale(e) from None
        if of is not None:
            of.caps, of.caps_known = value, True
        return value

    @fuse_op
    async def setxattr(self, inode: int, name: bytes, value: bytes, ctx: Any) -> None:
        await self._settle(inode)
        self._writable()
        sname = os.fsdecode(name)
        if sname.startswith(LOCAL_XATTR_PREFIXES):
            raise FsError(errno.EOPNOTSUPP, f"{sname.split('.')[0]}.* attributes are not supported")
        self._forget_caps(inode, sname)
        try:
            await self.meta.set_xattr(inode, self.creds_of(ctx), sname, bytes(value))
        except FsError as e:
            raise _stale(e) from None

    @fuse_op
    async def listxattr(self, inode: int, ctx: Any) -> list[bytes]:
        if self.leased is not None and self.leased.attr(inode) is not None:
            return []
        try:
            names = await self.meta.list_xattr(inode, self.creds_of(ctx))
        except FsError as e:
            raise _stale(e) from None
        return [os.fsencode(n) for n in names]

    @fuse_op
    async def removexattr(self, inode: int, name: bytes, ctx: Any) -> None:
        await self._settle(inode)
        self._writable()
        sname = os.fsdecode(name)
        if sname.startswith(LOCAL_XATTR_PREFIXES):
            raise FsError(pyfuse3.ENOATTR, "not stored")
        self._forget_caps(inode, sname)
        try:
            await self.meta.remove_xattr(inode, self.creds_of(ctx), sname)
        except FsError as e:
            raise _stale(e) from None

    def _leased_children(self, parent: int) -> list[int]:
        """Leases that a directory removed or moved out of ``parent`` could hold: this mount does not
        track where its leased directories sit, so all of them (such operations are rare)."""
        return list(self.leased.table.dirs) if self.leased is not None else []

    def _forget_caps(self, inode: int, name: str) -> None:
        of = self.handles.open_file(inode) if name == CAPS_XATTR else None
        if of is not None:
            of.caps_known = False
