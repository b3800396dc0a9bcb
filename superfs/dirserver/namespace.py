"""Read-side directory operations: resolve a path, look up, stat and list directories.

Each answer that lets a client act on a directory carries a capability for
it, signed with the cluster secret: the rights (R|W|X) the caller holds there,
which shards check without asking the dir server again, and a lease telling
the client how long it may cache what it got.

A directory is only as accessible as the path to it: the rights go into a
capability only if the caller may search every directory above it (it can
*reach* it), whether it was named by path (Resolve checks each component on
the way down) or by inode number (GetDir, LookupDir, and the coordinator's
mkdir/rmdir/rename walk the parent links up to root, locally: one LMDB read
per level). An unreachable directory's capability holds no rights, so a
credential that learnt an inode number cannot list, look up, create or
remove names below a directory it may not search.
"""
from __future__ import annotations

import errno
import logging
import stat

from superfs import capability, names, perms
from superfs.dirserver.store import DirStore
from superfs.errors import FsError
from superfs.routing import DIR_INO_LIMIT, ROOT_INO
from superfs.v1 import superfs_pb2 as pb

log = logging.getLogger(__name__)

DEFAULT_LIST_LIMIT = 1000
MAX_LIST_LIMIT = 10000


def can_reach(store: DirStore, d: pb.DirInfo, creds: pb.Creds) -> bool:
    """May ``creds`` search every directory above ``d``, up to root (``d`` itself not checked)?"""
    if creds.uid == 0:
        return True
    with store.db.read() as txn:
        cur = d
        for _ in range(DIR_INO_LIMIT):
            if cur.ino == ROOT_INO:
                return True
            parent = store.get_txn(txn, cur.parent_ino)
            if parent is None:
                return False  # removed meanwhile
            a = parent.attr
            if not perms.allowed(a.mode, a.uid, a.gid, creds, perms.X_OK):
                return False
            cur = parent
    raise FsError(errno.ELOOP, "directory cycle")  # pragma: no cover - a cycle would be a bug


def require_search(store: DirStore, d: pb.DirInfo, creds: pb.Creds, what: str) -> None:
    """EACCES unless ``creds`` may search ``d`` and every directory above it."""
    perms.require(d.attr.mode, d.attr.uid, d.attr.gid, creds, perms.X_OK, what)
    if not can_reach(store, d, creds):
        raise FsError(errno.EACCES, f"permission denied: {what} (a directory above it is not searchable)")


class Namespace:
    """Path resolution and directory reads, with POSIX permission checks."""

    def __init__(self, store: DirStore, secret: bytes, lease_s: float) -> None:
        self.store = store
        self.secret = secret
        self.lease_ns = int(lease_s * 1e9)

    def cap(self, d: pb.DirInfo, creds: pb.Creds, *, reachable: bool) -> pb.DirCap:
        """``d``'s capability for ``creds``: its rights on ``d``, none if it cannot reach ``d``."""
        a = d.attr
        return capability.sign(
            self.secret, dir_ino=d.ino, uid=creds.uid,
            rights=perms.rights(a.mode, a.uid, a.gid, creds) if reachable else 0,
            sticky=bool(a.mode & stat.S_ISVTX), owner_uid=a.uid,
            setgid=bool(a.mode & stat.S_ISGID), gid=a.gid,
        )

    def attr_reply(self, d: pb.DirInfo, creds: pb.Creds, *, reachable: bool) -> pb.DirAttrReply:
        return pb.DirAttrReply(dir=d, cap=self.cap(d, creds, reachable=reachable), lease_ns=self.lease_ns)

    def resolve(self, path: str, creds: pb.Creds) -> pb.ResolveReply:
        """Walk ``path`` from root as far as it names directories."""
        parts = names.split_path(path)
        with self.store.db.read() as txn:
            root = self.store.get_txn(txn, ROOT_INO)
            if root is None:  # pragma: no cover - created at first start
                raise FsError(errno.EIO, "root directory is missing")
            stack = [root]
            i = 0
            while i < len(parts):
                cur = stack[-1]
                perms.require(cur.attr.mode, cur.attr.uid, cur.attr.gid, creds, perms.X_OK,
                              f"search {cur.name or '/'}")
                comp = parts[i]
                if comp == "..":
                    if len(stack) > 1:  # root's parent is root
                        stack.pop()
                    i += 1
                    continue
                child = self.store.lookup_txn(txn, cur.ino, comp)
                if child is None:
                    break  # a file, a symlink, or nothing: the client asks the shard
                stack.append(child)
                i += 1
        log.debug("resolve %r: %d dirs, %d remaining", path, len(stack), len(parts) - i)
        # every directory of the stack was searched on the way down: the deepest is reachable
        return pb.ResolveReply(dirs=stack, remaining=parts[i:], cap=self.cap(stack[-1], creds, reachable=True),
                               lease_ns=self.lease_ns)

    def get_dir(self, ino: int, creds: pb.Creds) -> pb.DirAttrReply:
        """Attributes of any directory; its name, and rights in its capability, only if ``creds``
        can reach it (directory inode numbers are small and dense: names below a directory one
        may not read must not be listed by asking for every number in turn)."""
        d = self.store.need(ino)
        reachable = can_reach(self.store, d, creds)
        if not reachable:
            d = pb.DirInfo(ino=d.ino, parent_ino=d.parent_ino, attr=d.attr)
        return self.attr_reply(d, creds, reachable=reachable)

    def lookup_dir(self, parent_ino: int, name: str, creds: pb.Creds) -> pb.DirAttrReply:
        parent = self.store.need(parent_ino)
        require_search(self.store, parent, creds, "search parent")
        if name == ".":
            return self.attr_reply(parent, creds, reachable=True)
        if name == "..":
            return self.attr_reply(self.store.need(parent.parent_ino), creds, reachable=True)
        names.check_name(name)
        d = self.store.lookup(parent_ino, name)
        if d is None:
            raise FsError(errno.ENOENT, f"no directory {name!r} in {parent_ino}")
        return self.attr_reply(d, creds, reachable=True)

    def list_dirs(self, ino: int, after: str, limit: int, creds: pb.Creds) -> pb.ListDirsReply:
        d = self.store.need(ino)
        perms.require(d.attr.mode, d.attr.uid, d.attr.gid, creds, perms.R_OK, "read directory")
        if not can_reach(self.store, d, creds):
            raise FsError(errno.EACCES, "permission denied: a directory above it is not searchable")
        limit = min(limit or DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT)
        dirs, more = self.store.list_children(ino, after, limit)
        return pb.ListDirsReply(dirs=dirs, more=more)
