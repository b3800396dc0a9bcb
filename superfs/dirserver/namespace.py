"""Read-side directory operations: resolve a path, look up, stat and list directories.

Each answer that lets a client act on a directory carries a capability for
it, signed with the cluster secret: the rights (W|X) the caller holds there,
which shards check without asking the dir server again, and a lease telling
the client how long it may cache what it got.
"""
from __future__ import annotations

import errno
import logging
import stat

from superfs import capability, names, perms
from superfs.dirserver.store import DirStore
from superfs.errors import FsError
from superfs.routing import ROOT_INO
from superfs.v1 import superfs_pb2 as pb

log = logging.getLogger(__name__)

DEFAULT_LIST_LIMIT = 1000
MAX_LIST_LIMIT = 10000


class Namespace:
    """Path resolution and directory reads, with POSIX permission checks."""

    def __init__(self, store: DirStore, secret: bytes, lease_s: float) -> None:
        self.store = store
        self.secret = secret
        self.lease_ns = int(lease_s * 1e9)

    def cap(self, d: pb.DirInfo, creds: pb.Creds) -> pb.DirCap:
        a = d.attr
        return capability.sign(
            self.secret, dir_ino=d.ino, uid=creds.uid,
            rights=perms.rights(a.mode, a.uid, a.gid, creds) & (perms.W_OK | perms.X_OK),
            sticky=bool(a.mode & stat.S_ISVTX), owner_uid=a.uid,
            setgid=bool(a.mode & stat.S_ISGID), gid=a.gid,
        )

    def attr_reply(self, d: pb.DirInfo, creds: pb.Creds) -> pb.DirAttrReply:
        return pb.DirAttrReply(dir=d, cap=self.cap(d, creds), lease_ns=self.lease_ns)

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
        return pb.ResolveReply(dirs=stack, remaining=parts[i:], cap=self.cap(stack[-1], creds),
                               lease_ns=self.lease_ns)

    def get_dir(self, ino: int, creds: pb.Creds) -> pb.DirAttrReply:
        return self.attr_reply(self.store.need(ino), creds)

    def lookup_dir(self, parent_ino: int, name: str, creds: pb.Creds) -> pb.DirAttrReply:
        parent = self.store.need(parent_ino)
        perms.require(parent.attr.mode, parent.attr.uid, parent.attr.gid, creds, perms.X_OK,
                      "search parent")
        if name == ".":
            return self.attr_reply(parent, creds)
        if name == "..":
            return self.attr_reply(self.store.need(parent.parent_ino), creds)
        names.check_name(name)
        d = self.store.lookup(parent_ino, name)
        if d is None:
            raise FsError(errno.ENOENT, f"no directory {name!r} in {parent_ino}")
        return self.attr_reply(d, creds)

    def list_dirs(self, ino: int, after: str, limit: int, creds: pb.Creds) -> pb.ListDirsReply:
        d = self.store.need(ino)
        perms.require(d.attr.mode, d.attr.uid, d.attr.gid, creds, perms.R_OK, "read directory")
        limit = min(limit or DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT)
        dirs, more = self.store.list_children(ino, after, limit)
        return pb.ListDirsReply(dirs=dirs, more=more)
