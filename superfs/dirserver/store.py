"""Directory records of the dir server: the tree, its children index and xattrs, in LMDB.

Sub-databases of one LMDB environment:

- ``dirs``     ino (8 bytes BE) -> ``DirInfo`` protobuf (parent, name, attributes)
- ``children`` parent (8 bytes BE) + name (UTF-8) -> child ino: a directory's
  subdirectories are one prefix scan, already in byte order of the name
- ``xattrs``   ino (8 bytes BE) + name (UTF-8) -> value
- ``meta``     counters (next directory ino, next intent id) and the cluster map
- ``intents``  the coordinator's intent log (see :mod:`superfs.dirserver.intents`)

Reads open their own read transaction. Mutations are the ``*_txn`` functions,
run by the caller inside ``LmdbStore.write`` (group commit on the writer
thread): they never await, and raising rolls the mutation back alone.
"""
from __future__ import annotations

import errno
import logging
import os
import stat
import struct
import time
from typing import Iterator

import lmdb

from superfs.errors import FsError
from superfs.lmdb_store import LmdbStore
from superfs.routing import DIR_INO_LIMIT, ROOT_INO, InodeId
from superfs.v1 import superfs_pb2 as pb

log = logging.getLogger(__name__)

DB_NAMES = ["dirs", "children", "xattrs", "meta", "intents"]
NEXT_INO_KEY = b"next_ino"
_U64 = struct.Struct(">Q")


def ino_key(ino: int) -> bytes:
    return _U64.pack(ino)


def name_bytes(name: str) -> bytes:
    return name.encode("utf-8", "surrogateescape")


def child_key(parent: int, name: str) -> bytes:
    return _U64.pack(parent) + name_bytes(name)


def now_ns() -> int:
    return time.time_ns()


class DirStore:
    """The directory tree over one :class:`LmdbStore`; knows nothing of shards or RPC."""

    def __init__(self, db: LmdbStore) -> None:
        self.db = db
        self._dirs = db.db("dirs")
        self._children = db.db("children")
        self._xattrs = db.db("xattrs")
        self._meta = db.db("meta")

    @classmethod
    def open(cls, path: str, *, durable: bool = True, root_uid: int | None = None,
             root_gid: int | None = None) -> "DirStore":
        """Open (or create) the store; the first open creates root, owned by the caller."""
        store = cls(LmdbStore(path, DB_NAMES, durable=durable))
        store.ensure_root(os.getuid() if root_uid is None else root_uid,
                          os.getgid() if root_gid is None else root_gid)
        return store

    def close(self) -> None:
        self.db.close()

    def ensure_root(self, uid: int, gid: int) -> None:
        def fn(txn: lmdb.Transaction[bytes]) -> bool:
            if txn.get(ino_key(ROOT_INO), db=self._dirs) is not None:
                return False
            t = now_ns()
            root = pb.DirInfo(ino=ROOT_INO, parent_ino=ROOT_INO, name="", attr=pb.Attr(
                ino=ROOT_INO, mode=stat.S_IFDIR | 0o755, nlink=2, uid=uid, gid=gid,
                atime_ns=t, mtime_ns=t, ctime_ns=t))
            txn.put(ino_key(ROOT_INO), root.SerializeToString(), db=self._dirs)
            txn.put(NEXT_INO_KEY, ino_key(ROOT_INO + 1), db=self._meta)
            return True

        if self.db.write_now(fn):
            log.info("created root directory (uid %d, gid %d) in %s", uid, gid, self.db.path)

    # ------------------------------------------------------------------ reads

    def get(self, ino: int) -> pb.DirInfo | None:
        with self.db.read() as txn:
            return self.get_txn(txn, ino)

    def get_txn(self, txn: lmdb.Transaction[bytes], ino: int) -> pb.DirInfo | None:
        if not 0 < ino < DIR_INO_LIMIT:
            return None
        raw = txn.get(ino_key(ino), db=self._dirs)
        if raw is None:
            return None
        return pb.DirInfo.FromString(raw)

    def need(self, ino: int) -> pb.DirInfo:
        """The directory ``ino``, or ENOENT."""
        d = self.get(ino)
        if d is None:
            raise FsError(errno.ENOENT, f"no directory with inode {ino}")
        return d

    def lookup(self, parent: int, name: str) -> pb.DirInfo | None:
        with self.db.read() as txn:
            return self.lookup_txn(txn, parent, name)

    def lookup_txn(self, txn: lmdb.Transaction[bytes], parent: int, name: str) -> pb.DirInfo | None:
        raw = txn.get(child_key(parent, name), db=self._children)
        if raw is None:
            return None
        return self.get_txn(txn, _U64.unpack(raw)[0])

    def list_children(self, parent: int, after: str, limit: int) -> tuple[list[pb.DirInfo], bool]:
        """Up to ``limit`` subdirectories with names > ``after``; and whether more follow."""
        out: list[pb.DirInfo] = []
        with self.db.read() as txn:
            for _, child in self._scan_children(txn, parent, after):
                if len(out) == limit:
                    return out, True
                d = self.get_txn(txn, child)
                if d is not None:
                    out.append(d)
        return out, False

    def has_children(self, parent: int) -> bool:
        with self.db.read() as txn:
            return self.has_children_txn(txn, parent)

    def has_children_txn(self, txn: lmdb.Transaction[bytes], parent: int) -> bool:
        for _ in self._scan_children(txn, parent, ""):
            return True
        return False

    def _scan_children(self, txn: lmdb.Transaction[bytes], parent: int, after: str) -> Iterator[tuple[bytes, int]]:
        prefix = ino_key(parent)
        start = prefix + name_bytes(after)
        cur = txn.cursor(db=self._children)
        if not cur.set_range(start):
            return
        for key, value in cur:
            if not key.startswith(prefix):
                return
            if after and key == start:
                continue  # the cursor is exclusive: names strictly greater
            yield key[8:], _U64.unpack(value)[0]

    def scan_dirs(self, after_ino: int, limit: int) -> tuple[list[pb.DirInfo], bool]:
        """Every directory with ino > ``after_ino``, by ino, up to ``limit``; and whether more follow."""
        out: list[pb.DirInfo] = []
        with self.db.read() as txn:
            cur = txn.cursor(db=self._dirs)
            positioned = cur.set_range(ino_key(after_ino + 1))
            while positioned:
                if len(out) >= limit:
                    return out, True
                out.append(pb.DirInfo.FromString(cur.value()))
                positioned = cur.next()
        return out, False

    def ancestors(self, ino: int) -> list[int]:
        """Inos from ``ino``'s parent up to root (root included, ``ino`` not)."""
        out: list[int] = []
        with self.db.read() as txn:
            cur = self.get_txn(txn, ino)
            while cur is not None and cur.ino != ROOT_INO:
                out.append(cur.parent_ino)
                if len(out) > DIR_INO_LIMIT:  # pragma: no cover - a cycle would be a bug
                    raise FsError(errno.ELOOP, "directory cycle")
                cur = self.get_txn(txn, cur.parent_ino)
        return out

    def count(self) -> int:
        with self.db.read() as txn:
            return int(txn.stat(self._dirs)["entries"])

    def get_meta(self, key: bytes) -> bytes | None:
        with self.db.read() as txn:
            return self.get_meta_txn(txn, key)

    def get_meta_txn(self, txn: lmdb.Transaction[bytes], key: bytes) -> bytes | None:
        return txn.get(key, db=self._meta)

    def get_xattr(self, ino: int, name: str) -> bytes | None:
        with self.db.read() as txn:
            return self.get_xattr_txn(txn, ino, name)

    def get_xattr_txn(self, txn: lmdb.Transaction[bytes], ino: int, name: str) -> bytes | None:
        return txn.get(ino_key(ino) + name_bytes(name), db=self._xattrs)

    def list_xattrs(self, ino: int) -> list[str]:
        prefix = ino_key(ino)
        out: list[str] = []
        with self.db.read() as txn:
            cur = txn.cursor(db=self._xattrs)
            if cur.set_range(prefix):
                for key in cur.iternext(keys=True, values=False):
                    if not key.startswith(prefix):
                        break
                    out.append(key[8:].decode("utf-8", "surrogateescape"))
        return out

    # ----------------------------------------------------- mutations (in txn)

    def alloc_ino_txn(self, txn: lmdb.Transaction[bytes]) -> InodeId:
        raw = txn.get(NEXT_INO_KEY, db=self._meta)
        ino = _U64.unpack(raw)[0] if raw else ROOT_INO + 1
        if ino >= DIR_INO_LIMIT:
            raise FsError(errno.ENOSPC, "directory inode numbers exhausted")
        txn.put(NEXT_INO_KEY, ino_key(ino + 1), db=self._meta)
        return InodeId(ino)

    def alloc_range_txn(self, txn: lmdb.Transaction[bytes], count: int) -> InodeId:
        """``count`` consecutive numbers, the first returned: a lease holder makes directories with
        them ahead (dirserver/dir_batch.py). The counter moves past them at once, so numbers left
        unused (the holder went away) are skipped for good, never handed out twice."""
        first = self.alloc_ino_txn(txn)
        if first + count > DIR_INO_LIMIT:
            raise FsError(errno.ENOSPC, "directory inode numbers exhausted")
        txn.put(NEXT_INO_KEY, ino_key(first + count), db=self._meta)
        return first

    def put_meta_txn(self, txn: lmdb.Transaction[bytes], key: bytes, value: bytes) -> None:
        txn.put(key, value, db=self._meta)

    def put_dir_txn(self, txn: lmdb.Transaction[bytes], d: pb.DirInfo) -> None:
        """Rewrite a directory's record (attributes only; not its place in the tree)."""
        txn.put(ino_key(d.ino), d.SerializeToString(), db=self._dirs)

    def need_txn(self, txn: lmdb.Transaction[bytes], ino: int) -> pb.DirInfo:
        d = self.get_txn(txn, ino)
        if d is None:
            raise FsError(errno.ENOENT, f"no directory with inode {ino}")
        return d

    def create_dir_txn(self, txn: lmdb.Transaction[bytes], d: pb.DirInfo) -> None:
        """Insert a new directory under its parent: record, index entry, parent nlink."""
        parent = self.need_txn(txn, d.parent_ino)
        if txn.get(child_key(d.parent_ino, d.name), db=self._children) is not None:
            raise FsError(errno.EEXIST, f"directory {d.name!r} exists")
        txn.put(ino_key(d.ino), d.SerializeToString(), db=self._dirs)
        txn.put(child_key(d.parent_ino, d.name), ino_key(d.ino), db=self._children)
        parent.attr.nlink += 1
        _touch(parent.attr, d.attr.ctime_ns)
        self.put_dir_txn(txn, parent)

    def delete_dir_txn(self, txn: lmdb.Transaction[bytes], ino: int, t: int) -> pb.DirInfo:
        """Remove an (empty) directory: record, xattrs, index entry, parent nlink."""
        d = self.need_txn(txn, ino)
        if self.has_children_txn(txn, ino):
            raise FsError(errno.ENOTEMPTY, "directory has subdirectories")
        txn.delete(ino_key(ino), db=self._dirs)
        txn.delete(child_key(d.parent_ino, d.name), db=self._children)
        self._drop_xattrs_txn(txn, ino)
        parent = self.get_txn(txn, d.parent_ino)
        if parent is not None:
            parent.attr.nlink = max(2, parent.attr.nlink - 1)
            _touch(parent.attr, t)
            self.put_dir_txn(txn, parent)
        return d

    def move_dir_txn(self, txn: lmdb.Transaction[bytes], ino: int, dst_parent: int, dst_name: str, t: int) -> None:
        """Give directory ``ino`` a new parent and name; the destination name must be free."""
        d = self.need_txn(txn, ino)
        self.need_txn(txn, dst_parent)
        if txn.get(child_key(dst_parent, dst_name), db=self._children) is not None:
            raise FsError(errno.EEXIST, f"directory {dst_name!r} exists")
        src_parent = d.parent_ino
        txn.delete(child_key(src_parent, d.name), db=self._children)
        txn.put(child_key(dst_parent, dst_name), ino_key(ino), db=self._children)
        d.parent_ino = dst_parent
        d.name = dst_name
        d.attr.ctime_ns = t
        self.put_dir_txn(txn, d)
        sp = self.need_txn(txn, src_parent)
        if src_parent != dst_parent:
            sp.attr.nlink = max(2, sp.attr.nlink - 1)
        _touch(sp.attr, t)
        self.put_dir_txn(txn, sp)
        if src_parent != dst_parent:
            dp = self.need_txn(txn, dst_parent)
            dp.attr.nlink += 1
            _touch(dp.attr, t)
            self.put_dir_txn(txn, dp)

    def exchange_dirs_txn(self, txn: lmdb.Transaction[bytes], a_ino: int, b_ino: int, t: int) -> None:
        """Swap the places (parent, name) of two directories (RENAME_EXCHANGE); link counts stay."""
        a, b = self.need_txn(txn, a_ino), self.need_txn(txn, b_ino)
        (pa, na), (pb_, nb) = (a.parent_ino, a.name), (b.parent_ino, b.name)
        txn.put(child_key(pa, na), ino_key(b_ino), db=self._children)
        txn.put(child_key(pb_, nb), ino_key(a_ino), db=self._children)
        a.parent_ino, a.name, a.attr.ctime_ns = pb_, nb, t
        b.parent_ino, b.name, b.attr.ctime_ns = pa, na, t
        self.put_dir_txn(txn, a)
        self.put_dir_txn(txn, b)
        for parent in {pa, pb_}:
            p = self.need_txn(txn, parent)
            _touch(p.attr, t)
            self.put_dir_txn(txn, p)

    def recount_txn(self, txn: lmdb.Transaction[bytes], ino: int) -> pb.Attr:
        """Set a directory's link count from its subdirectories (2 + their number)."""
        d = self.need_txn(txn, ino)
        n = sum(1 for _ in self._scan_children(txn, ino, ""))
        if d.attr.nlink != 2 + n:
            log.warning("directory %d had link count %d, %d counted", ino, d.attr.nlink, 2 + n)
            d.attr.nlink = 2 + n
            self.put_dir_txn(txn, d)
        return d.attr

    def set_xattr_txn(self, txn: lmdb.Transaction[bytes], ino: int, name: str, value: bytes) -> None:
        txn.put(ino_key(ino) + name_bytes(name), value, db=self._xattrs)

    def remove_xattr_txn(self, txn: lmdb.Transaction[bytes], ino: int, name: str) -> bool:
        return bool(txn.delete(ino_key(ino) + name_bytes(name), db=self._xattrs))

    def _drop_xattrs_txn(self, txn: lmdb.Transaction[bytes], ino: int) -> None:
        prefix = ino_key(ino)
        cur = txn.cursor(db=self._xattrs)
        if not cur.set_range(prefix):
            return
        while cur.key().startswith(prefix):
            if not cur.delete():  # delete() moves to the next record
                break


def _touch(attr: pb.Attr, t: int) -> None:
    """An entry was added or removed: the directory's mtime and ctime move."""
    attr.mtime_ns = t
    attr.ctime_ns = t
