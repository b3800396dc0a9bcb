"""Path resolution: the dir server walks directories, the client follows symlinks.

The dir server resolves every directory component of a path in one RPC,
checking search permission on each. Where it stops (a component that is not
a directory) the client looks the name up on its shard: a symlink is read
and resolution restarts on the substituted path (at most 40 times, then
ELOOP, as Linux); anything else in the middle of a path is ENOTDIR.
Resolved directory paths are cached under the dir server's lease.
"""
from __future__ import annotations

import errno
import posixpath

from superfs.client.meta import Creds, MetaOps
from superfs.client.nodes import Node
from superfs.errors import FsError
from superfs.names import split_path
from superfs.v1 import superfs_pb2 as pb

MAX_SYMLINKS = 40


class PathResolver:
    def __init__(self, meta: MetaOps) -> None:
        self.meta = meta
        self.cache = meta.cache
        self.cluster = meta.cluster

    async def dir_of(self, parts: list[str], creds: Creds, hops: int = 0) -> tuple[Node, str]:
        """The directory at ``parts`` and its canonical path."""
        path = "/" + "/".join(parts)
        if ".." not in parts:
            node = self.cache.get_path(path, creds)
            if node is not None:
                return node, path
        reply = await self.cluster.dir.resolve(pb.ResolveRequest(path=path, creds=creds.pb()))
        walked = "/"
        deepest: Node | None = None
        for i, info in enumerate(reply.dirs):
            if i > 0:
                walked = posixpath.join(walked, info.name)
            node = self.meta.dir_node(info, reply.cap if i == len(reply.dirs) - 1 else None, reply.lease_ns)
            if node.cap is not None:
                self.cache.put_path(walked, creds, node)
            deepest = node
        assert deepest is not None
        if not reply.remaining:
            return deepest, walked
        comp, rest = reply.remaining[0], list(reply.remaining[1:])
        entry = await self.meta.lookup(deepest.ino, comp, creds)
        if entry.is_symlink:
            if hops >= MAX_SYMLINKS:
                raise FsError(errno.ELOOP, "too many levels of symbolic links")
            target = entry.file.symlink_target if entry.file else ""
            base = [] if target.startswith("/") else split_path(walked)
            return await self.dir_of(base + split_path(target) + rest, creds, hops + 1)
        if entry.is_dir:  # reserved on its shard, not yet committed by the dir server
            raise FsError(errno.ENOENT, f"'{comp}' is being created")
        raise FsError(errno.ENOTDIR, f"'{comp}' is not a directory")

    async def parent_of(self, path: str, creds: Creds) -> tuple[Node, str, str]:
        """(parent directory node, its path, final name) of ``path``."""
        parts = split_path(path)
        if not parts:
            raise FsError(errno.EBUSY, "the root directory has no parent")
        if parts[-1] == "..":
            raise FsError(errno.EINVAL, "path ends in '..'")
        parent, parent_path = await self.dir_of(parts[:-1], creds)
        return parent, parent_path, parts[-1]

    async def resolve(self, path: str, creds: Creds, *, follow: bool = True, want_data: bool = False,
                      hops: int = 0) -> tuple[Node, str]:
        """The node at ``path`` (following a final symlink if ``follow``) and its path."""
        parts = split_path(path)
        if not parts or parts[-1] == "..":
            node, p = await self.dir_of(parts, creds, hops)
            return node, p
        parent, parent_path, name = await self.parent_of(path, creds)
        full = posixpath.join(parent_path, name)
        cached = self.cache.get_path(full, creds)
        if cached is not None:
            return cached, full
        node = await self.meta.lookup(parent.ino, name, creds, want_data=want_data)
        if node.is_symlink and follow:
            if hops >= MAX_SYMLINKS:
                raise FsError(errno.ELOOP, "too many levels of symbolic links")
            target = node.file.symlink_target if node.file else ""
            nxt = target if target.startswith("/") else posixpath.join(parent_path, target)
            return await self.resolve(nxt, creds, follow=True, want_data=want_data, hops=hops + 1)
        if node.is_dir:
            self.cache.put_path(full, creds, node)
        elif path.endswith("/"):
            raise FsError(errno.ENOTDIR, "not a directory (trailing slash)")
        return node, full

