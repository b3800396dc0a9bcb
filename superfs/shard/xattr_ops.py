"""Extended attributes of files, kept beside the inode on its home shard.

Keys are ``ino (8, BE) + name`` so one file's attributes are a prefix range
(listed in one scan and deleted with the inode). Limits and errnos follow
Linux: names of 1..255 bytes (ERANGE), values up to 64 KiB (E2BIG); who may
read and change which namespace is :mod:`superfs.xattr_perms`.
"""
from __future__ import annotations

import errno

from superfs import xattr_perms
from superfs.errors import FsError
from superfs.perms import CredsLike
from superfs.shard.records import Inode, u64
from superfs.shard.store import ShardTxn
from superfs.shard.txn_base import now_ns

XATTR_NAME_MAX = 255
XATTR_SIZE_MAX = 65536
XATTR_CREATE = 1
XATTR_REPLACE = 2


def _name(name: str) -> bytes:
    raw = name.encode("utf-8", "surrogateescape")
    if not 1 <= len(raw) <= XATTR_NAME_MAX or b"\0" in raw:
        raise FsError(errno.ERANGE, f"xattr name must be 1..{XATTR_NAME_MAX} bytes without NUL")
    return raw


def _allowed(t: ShardTxn, ino: int, name: str, creds: CredsLike, *, write: bool) -> Inode:
    node = t.require_inode(ino)
    xattr_perms.check(name, mode=node.mode, uid=node.uid, gid=node.gid, creds=creds, write=write)
    return node


def get_xattr(t: ShardTxn, ino: int, name: str, creds: CredsLike) -> bytes:
    raw = _name(name)
    _allowed(t, ino, name, creds, write=False)
    value = t.txn.get(u64(ino) + raw, db=t.dbs["xattrs"])
    if value is None:
        raise FsError(errno.ENODATA, "no such attribute")
    return value


def list_xattr(t: ShardTxn, ino: int, creds: CredsLike) -> list[str]:
    t.require_inode(ino)
    prefix = u64(ino)
    names: list[str] = []
    with t.txn.cursor(db=t.dbs["xattrs"]) as cur:
        if cur.set_range(prefix):
            for key in cur.iternext(keys=True, values=False):
                if key[:8] != prefix:
                    break
                names.append(key[8:].decode("utf-8", "surrogateescape"))
    return [n for n in names if xattr_perms.listed(n, creds)]


def set_xattr(t: ShardTxn, ino: int, name: str, value: bytes, flags: int, creds: CredsLike) -> None:
    raw = _name(name)
    if len(value) > XATTR_SIZE_MAX:
        raise FsError(errno.E2BIG, f"xattr value over {XATTR_SIZE_MAX} bytes")
    if flags & ~(XATTR_CREATE | XATTR_REPLACE):
        raise FsError(errno.EINVAL, f"unknown xattr flags {flags:#x}")
    node = _allowed(t, ino, name, creds, write=True)
    key = u64(ino) + raw
    exists = t.txn.get(key, db=t.dbs["xattrs"]) is not None
    if flags & XATTR_CREATE and exists:
        raise FsError(errno.EEXIST, "attribute exists")
    if flags & XATTR_REPLACE and not exists:
        raise FsError(errno.ENODATA, "no such attribute")
    t.txn.put(key, value, db=t.dbs["xattrs"])
    node.ctime_ns = now_ns()
    t.put_inode(node)


def remove_xattr(t: ShardTxn, ino: int, name: str, creds: CredsLike) -> None:
    raw = _name(name)
    node = _allowed(t, ino, name, creds, write=True)
    if not t.txn.delete(u64(ino) + raw, db=t.dbs["xattrs"]):
        raise FsError(errno.ENODATA, "no such attribute")
    node.ctime_ns = now_ns()
    t.put_inode(node)
