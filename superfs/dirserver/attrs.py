"""Directory attributes and extended attributes: chmod, chown, utimes, xattrs.

These touch only the dir store, never a shard. Each mutation reads the
record, checks the caller's rights and writes the record back inside one
write transaction, so two concurrent changes of one directory cannot lose
each other's update. The rules mirror Linux (see chmod(2), chown(2),
utimensat(2), setxattr(2)); the shards apply the same ones to files.
"""
from __future__ import annotations

import errno
import logging
import stat

import lmdb

from superfs import perms, xattr_perms
from superfs.dirserver.store import DirStore, name_bytes, now_ns
from superfs.errors import FsError
from superfs.v1 import superfs_pb2 as pb

log = logging.getLogger(__name__)

# SetAttrRequest.mask bits (see the proto)
SET_MODE, SET_UID, SET_GID, SET_SIZE = 1, 2, 4, 8
SET_ATIME, SET_MTIME, SET_ATIME_NOW, SET_MTIME_NOW = 16, 32, 64, 128
SET_ENTRIES_CHANGED = 256  # a client created/removed names in it at mtime_ns (client/dirtimes.py)

XATTR_CREATE, XATTR_REPLACE = 1, 2
XATTR_NAME_MAX = 255
XATTR_SIZE_MAX = 65536


def _in_group(creds: pb.Creds, gid: int) -> bool:
    return creds.gid == gid or gid in creds.groups


def apply_setattr(a: pb.Attr, req: pb.SetAttrRequest, t: int) -> None:
    """Check ``req`` against ``a`` for ``req.creds`` and apply it; raise on refusal."""
    c = req.creds
    root = c.uid == 0
    owner = root or c.uid == a.uid
    mask = req.mask
    if mask & SET_SIZE:
        raise FsError(errno.EISDIR, "cannot set the size of a directory")
    if mask & SET_UID and req.uid != a.uid and not root:
        raise FsError(errno.EPERM, "only root may change a directory's owner")
    if mask & SET_UID and not owner:
        raise FsError(errno.EPERM, "not the owner")
    if mask & SET_GID and not root and not (owner and (req.gid == a.gid or _in_group(c, req.gid))):
        raise FsError(errno.EPERM, "may only change the group to one of your own")
    if mask & SET_MODE and not owner:
        raise FsError(errno.EPERM, "only the owner may change the mode")
    if mask & (SET_ATIME | SET_MTIME) and not owner:
        raise FsError(errno.EPERM, "only the owner may set explicit times")
    if mask & (SET_ATIME_NOW | SET_MTIME_NOW | SET_ENTRIES_CHANGED) and not owner and not perms.allowed(
            a.mode, a.uid, a.gid, c, perms.W_OK):
        raise FsError(errno.EACCES, "need write permission to touch")
    if mask & SET_ENTRIES_CHANGED:
        if mask != SET_ENTRIES_CHANGED:
            raise FsError(errno.EINVAL, "entries-changed (256) goes alone")
        # max: touches may arrive late and out of order, and never move times back;
        # min: a client's clock must not push them into the future
        changed = min(req.mtime_ns, t)
        a.mtime_ns = max(a.mtime_ns, changed)
        a.ctime_ns = max(a.ctime_ns, changed)
        return
    if mask & SET_UID:
        a.uid = req.uid
    if mask & SET_GID:
        a.gid = req.gid
    if mask & SET_MODE:
        bits = req.mode & 0o7777
        if not root and not _in_group(c, a.gid):
            bits &= ~stat.S_ISGID  # as Linux: setgid only for members of the group
        a.mode = stat.S_IFDIR | bits
    if mask & SET_ATIME:
        a.atime_ns = req.atime_ns
    if mask & SET_MTIME:
        a.mtime_ns = req.mtime_ns
    if mask & SET_ATIME_NOW:
        a.atime_ns = t
    if mask & SET_MTIME_NOW:
        a.mtime_ns = t
    a.ctime_ns = t


def check_xattr_name(name: str) -> None:
    if not 1 <= len(name_bytes(name)) <= XATTR_NAME_MAX:
        raise FsError(errno.ERANGE, f"xattr name must be 1..{XATTR_NAME_MAX} bytes")


class DirAttrs:
    """Attribute and xattr operations on directories."""

    def __init__(self, store: DirStore) -> None:
        self.store = store

    async def set_attr(self, req: pb.SetAttrRequest) -> pb.Attr:
        def fn(txn: lmdb.Transaction[bytes]) -> pb.Attr:
            d = self.store.need_txn(txn, req.ino)
            apply_setattr(d.attr, req, now_ns())
            self.store.put_dir_txn(txn, d)
            return d.attr

        return await self.store.db.write(fn)

    def get_xattr(self, ino: int, name: str, creds: pb.Creds) -> bytes:
        check_xattr_name(name)
        self._allowed(self.store.need(ino), name, creds, write=False)
        value = self.store.get_xattr(ino, name)
        if value is None:
            raise FsError(errno.ENODATA, f"no xattr {name!r}")
        return value

    def list_xattrs(self, ino: int, creds: pb.Creds) -> list[str]:
        self.store.need(ino)
        return [n for n in self.store.list_xattrs(ino) if xattr_perms.listed(n, creds)]

    async def set_xattr(self, ino: int, name: str, value: bytes, flags: int, creds: pb.Creds) -> None:
        check_xattr_name(name)
        if len(value) > XATTR_SIZE_MAX:
            raise FsError(errno.E2BIG, f"xattr value over {XATTR_SIZE_MAX} bytes")
        if flags & ~(XATTR_CREATE | XATTR_REPLACE) or flags == XATTR_CREATE | XATTR_REPLACE:
            raise FsError(errno.EINVAL, f"bad xattr flags {flags}")

        def fn(txn: lmdb.Transaction[bytes]) -> None:
            d = self._allowed(self.store.need_txn(txn, ino), name, creds, write=True)
            exists = self.store.get_xattr_txn(txn, ino, name) is not None
            if flags & XATTR_CREATE and exists:
                raise FsError(errno.EEXIST, f"xattr {name!r} exists")
            if flags & XATTR_REPLACE and not exists:
                raise FsError(errno.ENODATA, f"no xattr {name!r}")
            self.store.set_xattr_txn(txn, ino, name, value)
            d.attr.ctime_ns = now_ns()
            self.store.put_dir_txn(txn, d)

        await self.store.db.write(fn)

    async def remove_xattr(self, ino: int, name: str, creds: pb.Creds) -> None:
        check_xattr_name(name)

        def fn(txn: lmdb.Transaction[bytes]) -> None:
            d = self._allowed(self.store.need_txn(txn, ino), name, creds, write=True)
            if not self.store.remove_xattr_txn(txn, ino, name):
                raise FsError(errno.ENODATA, f"no xattr {name!r}")
            d.attr.ctime_ns = now_ns()
            self.store.put_dir_txn(txn, d)

        await self.store.db.write(fn)

    @staticmethod
    def _allowed(d: pb.DirInfo, name: str, creds: pb.Creds, *, write: bool) -> pb.DirInfo:
        a = d.attr
        xattr_perms.check(name, mode=a.mode, uid=a.uid, gid=a.gid, creds=creds, write=write)
        return d
