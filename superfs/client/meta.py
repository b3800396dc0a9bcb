"""Metadata operations by inode: the layer FUSE calls directly.

Every method takes the caller's credentials (FUSE serves many uids from one
process) and returns :class:`Node` or protobuf replies. Directory work goes
to the dir server, file work to the shard that owns the entry or the inode;
a directory's node (with its capability) comes from the lease cache when it
can, so a warm create/stat/unlink is one shard round trip. Shards need that
capability for every name operation: W|X to create or remove a name, X to
look one up, R to list the directory.
"""
from __future__ import annotations

import asyncio
import errno
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, TypeVar

from superfs import routing
from superfs.client.cache import DirCache
from superfs.client.dirtimes import DirTouches
from superfs.client.nodes import Node
from superfs.errors import FsError
from superfs.names import check_name
from superfs.rpc.cluster_map import ClusterView
from superfs.rpc.stubs import ShardRpc
from superfs.v1 import superfs_pb2 as pb

T = TypeVar("T")

LIST_PAGE = 1000
# what a call to a shard that is down or cut off ends with (superfs/rpc/client.py)
SHARD_DOWN = (errno.EIO, errno.ETIMEDOUT)

# SetAttr mask bits (see the proto)
SET_MODE, SET_UID, SET_GID, SET_SIZE, SET_ATIME, SET_MTIME, SET_ATIME_NOW, SET_MTIME_NOW = (
    1, 2, 4, 8, 16, 32, 64, 128)
SET_ENTRIES_CHANGED = 256  # directories: names created or removed at mtime_ns (see dirtimes.py)
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2  # renameat2(2) flags


@dataclass(frozen=True)
class Creds:
    uid: int
    gid: int
    groups: tuple[int, ...] = field(default_factory=tuple)

    def pb(self) -> pb.Creds:
        return pb.Creds(uid=self.uid, gid=self.gid, groups=list(self.groups))


class MetaOps:
    """Inode-level metadata operations over the cluster."""

    def __init__(self, cluster: ClusterView, cache: DirCache) -> None:
        self.cluster = cluster
        self.cache = cache
        self.touches = DirTouches(self._touch, cache.update_attr)

    @property
    def timeout(self) -> float:
        return self.cluster.timeout_s

    async def _with_cap(self, dir_ino: int, creds: Creds, op: Callable[[pb.DirCap], Awaitable[T]]) -> T:
        """Run ``op`` with the directory's capability; refresh it once if stale.

        A cached capability may also be older than a chmod or chown of the
        directory made elsewhere: a refusal (EACCES) is retried once with a
        fresh one if that grants different rights, so a cache never refuses
        what the directory's current mode allows.
        """
        node = await self.get_dir(dir_ino, creds)
        old = node.cap or pb.DirCap()
        try:
            return await op(old)
        except FsError as e:
            if e.errno not in (errno.ESTALE, errno.EACCES):
                raise
            refused = e
        self.cache.forget(dir_ino)
        node = await self.get_dir(dir_ino, creds)
        cap = node.cap or pb.DirCap()
        if refused.errno == errno.EACCES and _same_rights(cap, old):
            raise refused
        return await op(cap)

    # ------------------------------------------------------------ directories

    def dir_node(self, info: pb.DirInfo, cap: pb.DirCap | None, lease_ns: int) -> Node:
        now = time.monotonic()
        return Node(ino=info.ino, attr=info.attr, type=pb.DIRECTORY, parent=info.parent_ino,
                    name=info.name, cap=cap, expires=now + lease_ns / 1e9, fetched=now)

    async def get_dir(self, ino: int, creds: Creds, *, max_age: float | None = None) -> Node:
        """A directory's node, from the lease cache if it is at most ``max_age`` seconds old
        (any age within the lease if None); else from the dir server, renewing the cache."""
        node = self.cache.get(ino, creds)
        if node is not None and (max_age is None or time.monotonic() - node.fetched <= max_age):
            return node
        reply = await self.cluster.dir.get_dir(pb.DirRequest(ino=ino, creds=creds.pb()))
        node = self.dir_node(reply.dir, reply.cap, reply.lease_ns)
        self.cache.put(node, creds)
        return node

    async def lookup_dir(self, parent: int, name: str, creds: Creds) -> Node | None:
        """Directory ``name`` of ``parent`` as the dir server has it, or None if it has no such directory."""
        try:
            reply = await self.cluster.dir.lookup_dir(pb.LookupDirRequest(parent_ino=parent, name=name,
                                                                          creds=creds.pb()))
        except FsError as e:
            if e.errno != errno.ENOENT:
                raise
            return None
        node = self.dir_node(reply.dir, reply.cap, reply.lease_ns)
        self.cache.put(node, creds)
        return node

    async def mkdir(self, parent: int, name: str, mode: int, creds: Creds) -> Node:
        check_name(name)
        info = await self.cluster.dir.mkdir(pb.MkdirRequest(parent_ino=parent, name=name, mode=mode, creds=creds.pb()))
        self.cache.forget(parent)
        return Node(ino=info.ino, attr=info.attr, type=pb.DIRECTORY, parent=parent, name=name)

    async def rmdir(self, parent: int, name: str, creds: Creds) -> None:
        check_name(name)
        await self.cluster.dir.rmdir(pb.RmdirRequest(parent_ino=parent, name=name, creds=creds.pb()))
        self.cache.forget(parent)

    # ------------------------------------------------------------------ files

    def file_node(self, info: pb.FileInfo, parent: int = 0, name: str = "") -> Node:
        return Node(ino=info.attr.ino, attr=info.attr, type=info.type, parent=parent, name=name, file=info)

    async def lookup(self, parent: int, name: str, creds: Creds, *, want_data: bool = False,
                     max_age: float | None = None) -> Node:
        """The node named ``name`` in directory ``parent``: file, symlink or directory
        (a directory's from the cache only if at most ``max_age`` old, see get_dir)."""
        check_name(name)

        async def op(cap: pb.DirCap) -> pb.LookupFileReply:
            req = pb.LookupFileRequest(parent_ino=parent, name=name, want_data=want_data, creds=creds.pb(),
                                       cap=cap)
            return await self.cluster.entry_shard(parent, name).lookup_file(req)

        try:
            reply = await self._with_cap(parent, creds, op)
        except FsError as e:
            if e.errno not in SHARD_DOWN:
                raise
            # the shard holding the name's entry does not answer; if the name is a directory, the
            # dir server knows it on its own, so a subtree stays reachable while one shard is down
            node = await self.lookup_dir(parent, name, creds)
            if node is None:
                raise  # not a directory: the name, if it exists, is on the shard that is down
            return node
        if reply.entry.type == pb.DIRECTORY:
            return self.touches.overlay(await self.get_dir(reply.entry.ino, creds, max_age=max_age))
        if reply.has_file:
            return self.file_node(reply.file, parent, name)
        node = await self.get_file(reply.entry.ino, creds, want_data=want_data)
        node.parent, node.name = parent, name
        return node

    async def get_file(self, ino: int, creds: Creds, *, want_data: bool = False) -> Node:
        req = pb.GetFileRequest(ino=ino, want_data=want_data, creds=creds.pb())
        info = await self.cluster.home_shard(ino).get_file(req)
        return self.file_node(info)

    async def getattr(self, ino: int, creds: Creds, *, max_age: float | None = None) -> Node:
        if routing.is_dir_ino(ino):
            # its times as they are after what this client did in it (see dirtimes.py)
            return self.touches.overlay(await self.get_dir(ino, creds, max_age=max_age))
        return await self.get_file(ino, creds)

    async def create(self, parent: int, name: str, mode: int, creds: Creds, *, exclusive: bool = False,
                     truncate: bool = False, data: bytes = b"", symlink_target: str = "",
                     ftype: int = 0, rdev: int = 0) -> tuple[Node, bool]:
        """A regular file, a symlink (``symlink_target``) or a special file (``ftype``, ``rdev``)."""
        check_name(name)
        ftype = ftype or (pb.SYMLINK if symlink_target else pb.REGULAR)

        async def op(cap: pb.DirCap) -> pb.CreateFileReply:
            req = pb.CreateFileRequest(parent_ino=parent, name=name, mode=mode, type=ftype,  # type: ignore[arg-type]
                                       symlink_target=symlink_target, exclusive=exclusive,
                                       truncate=truncate, creds=creds.pb(), cap=cap, data=data, rdev=rdev)
            return await self.cluster.entry_shard(parent, name).create_file(req)

        reply = await self._with_cap(parent, creds, op)
        if reply.created:
            self.touches.changed(parent, creds.pb())
        return self.file_node(reply.file, parent, name), reply.created

    async def unlink(self, parent: int, name: str, creds: Creds) -> pb.UnlinkReply:
        check_name(name)

        async def op(cap: pb.DirCap) -> pb.UnlinkReply:
            req = pb.UnlinkRequest(parent_ino=parent, name=name, creds=creds.pb(), cap=cap)
            return await self.cluster.entry_shard(parent, name).unlink(req)

        reply = await self._with_cap(parent, creds, op)
        self.touches.changed(parent, creds.pb())
        return reply

    async def link(self, ino: int, new_parent: int, new_name: str, creds: Creds) -> pb.Attr:
        check_name(new_name)
        if routing.is_dir_ino(ino):
            raise FsError(errno.EPERM, "hard links to directories are not allowed")

        async def op(cap: pb.DirCap) -> pb.Attr:
            req = pb.LinkRequest(ino=ino, new_parent=new_parent, new_name=new_name, creds=creds.pb(), cap=cap)
            return await self.cluster.entry_shard(new_parent, new_name).link(req)

        attr = await self._with_cap(new_parent, creds, op)
        self.touches.changed(new_parent, creds.pb())
        return attr

    async def rename(self, src_parent: int, src_name: str, dst_parent: int, dst_name: str,
                     creds: Creds, flags: int = 0) -> None:
        """rename(2), or renameat2(2) with ``flags`` RENAME_NOREPLACE or RENAME_EXCHANGE
        (which swaps two existing names: through the shards for two files, through
        the dir server as soon as one is a directory)."""
        check_name(src_name)
        check_name(dst_name)
        if flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE) or flags == RENAME_NOREPLACE | RENAME_EXCHANGE:
            raise FsError(errno.EINVAL, f"bad rename flags {flags:#x}")
        src = await self.lookup(src_parent, src_name, creds)
        dst = await self.lookup(dst_parent, dst_name, creds) if flags & RENAME_EXCHANGE else None
        if src.is_dir or (dst is not None and dst.is_dir):
            await self.cluster.dir.rename_dir(pb.RenameDirRequest(
                src_parent=src_parent, src_name=src_name, dst_parent=dst_parent, dst_name=dst_name,
                flags=flags, creds=creds.pb()))
            for ino in (src.ino, dst.ino if dst is not None else 0, src_parent, dst_parent):
                self.cache.forget(ino)
            return
        src_dir = await self.get_dir(src_parent, creds)
        dst_dir = await self.get_dir(dst_parent, creds)
        req = pb.RenameFileRequest(src_parent=src_parent, src_name=src_name, dst_parent=dst_parent,
                                   dst_name=dst_name, flags=flags, creds=creds.pb(),
                                   src_cap=src_dir.cap, dst_cap=dst_dir.cap)
        try:
            await self.cluster.entry_shard(src_parent, src_name).rename_file(req)
        except FsError as e:
            if e.errno not in (errno.ESTALE, errno.EACCES):
                raise
            self.cache.forget(src_parent)
            self.cache.forget(dst_parent)
            src_cap, dst_cap = (await self.get_dir(src_parent, creds)).cap, (await self.get_dir(dst_parent, creds)).cap
            if e.errno == errno.EACCES and _same_rights(src_cap, req.src_cap) and _same_rights(dst_cap, req.dst_cap):
                raise  # not a stale capability (see _with_cap)
            req.src_cap.CopyFrom(src_cap)
            req.dst_cap.CopyFrom(dst_cap)
            await self.cluster.entry_shard(src_parent, src_name).rename_file(req)
        self.touches.changed(src_parent, creds.pb())
        if dst_parent != src_parent:
            self.touches.changed(dst_parent, creds.pb())

    async def setattr(self, ino: int, creds: Creds, *, mask: int, mode: int = 0, uid: int = 0, gid: int = 0,
                      size: int = 0, atime_ns: int = 0, mtime_ns: int = 0) -> pb.Attr:
        req = pb.SetAttrRequest(ino=ino, mask=mask, mode=mode, uid=uid, gid=gid, size=size,
                                atime_ns=atime_ns, mtime_ns=mtime_ns, creds=creds.pb())
        if routing.is_dir_ino(ino):
            await self.touches.settle(ino)  # a late touch must not undo these times
            attr = await self.cluster.dir.set_dir_attr(req)
            self.cache.forget(ino)
            return attr
        return await self.cluster.home_shard(ino).set_attr(req)

    async def _touch(self, dir_ino: int, creds: pb.Creds, changed_ns: int) -> pb.Attr:
        """A directory's mtime and ctime to (at least) the time of this client's last change
        in it (see dirtimes.py)."""
        req = pb.SetAttrRequest(ino=dir_ino, mask=SET_ENTRIES_CHANGED, mtime_ns=changed_ns, creds=creds)
        return await self.cluster.dir.set_dir_attr(req)

    # --------------------------------------------------------------- listings

    async def list_dir(self, dir_ino: int, creds: Creds, *, with_attrs: bool = False
                       ) -> list[tuple[pb.Dentry, pb.FileInfo | None]]:
        """Every entry of a directory, sorted by name: a parallel fan-out over shards."""

        async def op(cap: pb.DirCap) -> list[list[tuple[pb.Dentry, pb.FileInfo | None]]]:
            shards = self.cluster.all_shards()
            return await asyncio.gather(*(self._list_shard(s, dir_ino, creds, with_attrs, cap) for s in shards))

        pages = await self._with_cap(dir_ino, creds, op)  # ENOENT/ENOTDIR for bad directories
        merged = [item for page in pages for item in page]
        merged.sort(key=lambda item: item[0].name.encode("utf-8", "surrogateescape"))
        return merged

    async def list_dir_page(self, dir_ino: int, creds: Creds, *, after: str = "", limit: int = LIST_PAGE,
                            with_attrs: bool = False) -> tuple[list[tuple[pb.Dentry, pb.FileInfo | None]], bool]:
        """Up to ``limit`` entries named after ``after``, sorted by name, and whether more follow.

        One ListFiles per shard in parallel. Each shard with more to give returned
        ``limit`` names, so the first ``limit`` of the merge are the first of the
        directory: none of a shard's later names can come before them.
        """
        async def op(cap: pb.DirCap) -> list[tuple[list[tuple[pb.Dentry, pb.FileInfo | None]], bool]]:
            return await asyncio.gather(*(self._list_shard_page(s, dir_ino, creds, with_attrs, cap, after, limit)
                                          for s in self.cluster.all_shards()))

        pages = await self._with_cap(dir_ino, creds, op)
        merged = [item for page, _ in pages for item in page]
        merged.sort(key=lambda item: item[0].name.encode("utf-8", "surrogateescape"))
        return merged[:limit], len(merged) > limit or any(more for _, more in pages)

    async def list_subdirs_page(self, dir_ino: int, creds: Creds, *, after: str = "",
                                limit: int = LIST_PAGE) -> pb.ListDirsReply:
        """Up to ``limit`` subdirectories of ``dir_ino`` named after ``after`` (the dir server's
        paged listing, with their attributes), and whether more follow (``more``)."""
        return await self.cluster.dir.list_dirs(pb.ListDirsRequest(ino=dir_ino, after=after, limit=limit,
                                                                   creds=creds.pb()))

    async def _list_shard_page(self, shard: ShardRpc, dir_ino: int, creds: Creds, with_attrs: bool, cap: pb.DirCap,
                               after: str, limit: int) -> tuple[list[tuple[pb.Dentry, pb.FileInfo | None]], bool]:
        req = pb.ListFilesRequest(parent_ino=dir_ino, after=after, limit=limit, with_attrs=with_attrs,
                                  creds=creds.pb(), cap=cap)
        reply = await shard.list_files(req)
        out = [(entry, reply.files[i] if with_attrs and i < len(reply.files) and reply.files[i].attr.ino else None)
               for i, entry in enumerate(reply.entries)]
        return out, bool(reply.more and reply.entries)

    async def _list_shard(self, shard: ShardRpc, dir_ino: int, creds: Creds, with_attrs: bool, cap: pb.DirCap
                          ) -> list[tuple[pb.Dentry, pb.FileInfo | None]]:
        out: list[tuple[pb.Dentry, pb.FileInfo | None]] = []
        after = ""
        while True:
            req = pb.ListFilesRequest(parent_ino=dir_ino, after=after, limit=LIST_PAGE,
                                      with_attrs=with_attrs, creds=creds.pb(), cap=cap)
            reply = await shard.list_files(req)
            for i, entry in enumerate(reply.entries):
                info = reply.files[i] if with_attrs and i < len(reply.files) and reply.files[i].attr.ino else None
                out.append((entry, info))
            if not reply.more or not reply.entries:
                return out
            after = reply.entries[-1].name

    # ------------------------------------------------------------------ leases

    async def acquire_lease(self, dir_ino: int, creds: Creds, *, exclusive: bool = True) -> pb.LeaseReply:
        """Ask the dir server for a lease on ``dir_ino`` (on this process's session; it may call back)."""
        req = pb.LeaseRequest(dir_ino=dir_ino, want=2 if exclusive else 1, creds=creds.pb())
        return await self.cluster.dir.acquire_lease(req)

    async def release_leases(self, dir_inos: list[int], grants: list[int] | None = None) -> None:
        """Give leases back (``grants``, parallel: only those grants, a later one stays)."""
        await self.cluster.dir.release_lease(pb.ReleaseLeaseRequest(dir_inos=dir_inos, grants=grants or []))

    async def delegate_inodes(self, shard: int, partitions: list[int], count: int) -> list[pb.InoRange]:
        """Inode numbers of ``partitions`` (all on ``shard``) to create files with ahead."""
        reply = await self.cluster.shard(shard).delegate_inodes(pb.DelegateRequest(partitions=partitions, count=count))
        return list(reply.ranges)

    async def apply_batch(self, shard: int, request: pb.BatchRequest) -> pb.BatchReply:
        """Changes made ahead under leases, applied by ``shard`` in one group commit."""
        return await self.cluster.shard(shard).apply_batch(request)

    async def delegate_dir_inos(self, count: int) -> pb.InoRange:
        """Directory numbers to make subdirectories with ahead, under leases (usable on this session)."""
        return await self.cluster.dir.delegate_dir_inos(pb.DelegateDirInosRequest(count=count))

    async def apply_dir_batch(self, request: pb.BatchRequest) -> pb.BatchReply:
        """mkdirs and rmdirs made ahead under leases, applied by the dir server in their order."""
        reply = await self.cluster.dir.apply_dir_batch(request)
        for parent in {(op.mkdir if op.WhichOneof("op") == "mkdir" else op.rmdir).parent_ino for op in request.ops}:
            self.cache.forget(parent)
        return reply

    # ----------------------------------------------------------------- xattrs

    # A directory's extended attributes live on the dir server, a file's on its home shard.

    async def get_xattr(self, ino: int, creds: Creds, name: str) -> bytes:
        req = pb.XattrRequest(ino=ino, name=name, creds=creds.pb())
        if routing.is_dir_ino(ino):
            return (await self.cluster.dir.get_dir_xattr(req)).value
        return (await self.cluster.home_shard(ino).get_xattr(req)).value

    async def set_xattr(self, ino: int, creds: Creds, name: str, value: bytes, flags: int = 0) -> None:
        req = pb.XattrRequest(ino=ino, name=name, value=value, flags=flags, creds=creds.pb())
        if routing.is_dir_ino(ino):
            await self.cluster.dir.set_dir_xattr(req)
        else:
            await self.cluster.home_shard(ino).set_xattr(req)

    async def list_xattr(self, ino: int, creds: Creds) -> list[str]:
        req = pb.XattrRequest(ino=ino, creds=creds.pb())
        if routing.is_dir_ino(ino):
            return list((await self.cluster.dir.list_dir_xattr(req)).names)
        return list((await self.cluster.home_shard(ino).list_xattr(req)).names)

    async def remove_xattr(self, ino: int, creds: Creds, name: str) -> None:
        req = pb.XattrRequest(ino=ino, name=name, creds=creds.pb())
        if routing.is_dir_ino(ino):
            await self.cluster.dir.remove_dir_xattr(req)
        else:
            await self.cluster.home_shard(ino).remove_xattr(req)

    # ------------------------------------------------------------------ stats

    async def cluster_stats(self) -> dict[str, Any]:
        dir_stats, shard_stats, data_stats = await asyncio.gather(
            self.cluster.dir.stats(pb.Empty()),
            asyncio.gather(*(s.stats(pb.Empty()) for s in self.cluster.all_shards()), return_exceptions=True),
            asyncio.gather(*(d.stats(pb.Empty()) for d in self.cluster.all_data_servers()), return_exceptions=True),
        )
        return {"dir": dir_stats, "shards": list(shard_stats), "data": list(data_stats)}


def _same_rights(a: pb.DirCap | None, b: pb.DirCap | None) -> bool:
    """Would a refusal under capability ``b`` be the same under ``a``?"""
    a, b = a or pb.DirCap(), b or pb.DirCap()
    return (a.rights, a.sticky, a.owner_uid) == (b.rights, b.sticky, b.owner_uid)
