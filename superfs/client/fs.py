"""AsyncFs: the asyncio client, with an API close to ``os`` on absolute paths.

Errors are ``OSError`` subclasses with the errno a local Linux file system
gives (``FileNotFoundError`` for ENOENT, ...), naming the path.
"""
from __future__ import annotations

import errno
import functools
import os
import posixpath
import stat as stat_mod
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, TypeVar

from superfs.client.cache import DirCache
from superfs.client.data import DataIO
from superfs.client.layout import ClusterLayout
from superfs.client.local import security_for_address
from superfs.client.meta import (SET_ATIME, SET_ATIME_NOW, SET_GID, SET_MODE, SET_MTIME, SET_MTIME_NOW,
                                 SET_UID, Creds, MetaOps)
from superfs.client.nodes import Node, to_stat
from superfs.client.paths import PathResolver
from superfs.errors import FsError, oserror
from superfs.faults import pause_point
from superfs.filetypes import SPECIAL_TYPES, type_of_mode
from superfs.perms import R_OK, W_OK, allowed
from superfs.rpc.channels import Channels
from superfs.rpc.cluster_map import ClusterView
from superfs.v1 import superfs_pb2 as pb

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

XATTR_CREATE, XATTR_REPLACE = 1, 2


def _oserrors(fn: F) -> F:
    """Turn FsError into the OSError the kernel would raise, naming the path."""

    @functools.wraps(fn)
    async def wrapper(self: "AsyncFs", path: Any = None, *args: Any, **kwargs: Any) -> Any:
        try:
            return await fn(self, path, *args, **kwargs)
        except FsError as e:
            raise oserror(e.errno, e.message, path if isinstance(path, str) else None) from None

    return wrapper  # type: ignore[return-value]


@dataclass(frozen=True)
class DirEntry:
    """What scandir yields: like os.DirEntry, without system calls."""

    name: str
    path: str
    inode: int
    type: int
    _stat: os.stat_result | None = None

    def is_dir(self, *, follow_symlinks: bool = True) -> bool:
        return self.type == pb.DIRECTORY

    def is_file(self, *, follow_symlinks: bool = True) -> bool:
        return self.type == pb.REGULAR

    def is_symlink(self) -> bool:
        return self.type == pb.SYMLINK

    def stat(self) -> os.stat_result | None:
        return self._stat


def _dot_last(path: str) -> str | None:
    """'.' or '..' when the path's last component is one (Linux answers those specially)."""
    last = path.rstrip("/").rsplit("/", 1)[-1]
    return last if last in (".", "..") else None


def default_creds() -> Creds:
    return Creds(os.getuid(), os.getgid(), tuple(os.getgroups()))


class AsyncFs:
    """A connection to one SuperFS cluster (asyncio)."""

    def __init__(self, dir_address: str, *, timeout_s: float = 5.0, creds: Creds | None = None,
                 umask: int = 0o022) -> None:
        self.channels = Channels(timeout_s, security_lookup=security_for_address)
        self.cluster = ClusterView(self.channels, dir_address=dir_address)
        self.cache = DirCache()
        # directory-time touches travel on the process's session to the dir server like every call:
        # a session never holds one call up behind another, and the dir server must see them come from
        # the client that holds the directory's lease (another channel would be another client)
        self.meta = MetaOps(self.cluster, self.cache)
        self.paths = PathResolver(self.meta)
        self.data = DataIO(self.cluster, self.meta)
        self.creds = creds or default_creds()
        self.umask = umask
        self._layout: ClusterLayout | None = None

    async def start(self) -> "AsyncFs":
        try:
            await self.cluster.refresh()
        except FsError as e:
            raise oserror(e.errno, f"cannot reach the dir server at {self.cluster.dir_address}: {e.message}")
        return self

    async def close(self) -> None:
        await self.meta.touches.settle_all()
        await self.channels.close()

    @property
    def layout(self) -> ClusterLayout:
        """Inline threshold, chunk size, replicas and data servers, as the current cluster map says."""
        cmap = self.cluster.map
        if self._layout is None or self._layout.epoch != cmap.epoch:
            self._layout = ClusterLayout.of(cmap)
        return self._layout

    # ------------------------------------------------------------------ stat

    @_oserrors
    async def stat(self, path: str, *, follow_symlinks: bool = True) -> os.stat_result:
        node, _ = await self.paths.resolve(path, self.creds, follow=follow_symlinks)
        if node.is_dir:
            node = await self.meta.getattr(node.ino, self.creds)  # after this client's own changes in it
        return to_stat(node.attr)

    @_oserrors
    async def node_of(self, path: str, *, follow_symlinks: bool = True) -> Node:
        """The node at ``path`` (a file's carries its FileInfo: size, layout, chunk size)."""
        node, _ = await self.paths.resolve(path, self.creds, follow=follow_symlinks)
        return node

    async def lstat(self, path: str) -> os.stat_result:
        return await self.stat(path, follow_symlinks=False)

    async def exists(self, path: str) -> bool:
        try:
            await self.stat(path)
            return True
        except FileNotFoundError:
            return False

    # ----------------------------------------------------------- directories

    @_oserrors
    async def mkdir(self, path: str, mode: int = 0o777) -> None:
        if _dot_last(path) or not path.strip("/"):
            await self.paths.resolve(path, self.creds)  # ENOENT etc. for a bad prefix
            raise FsError(errno.EEXIST, "file exists")
        parent, _, name = await self.paths.parent_of(path, self.creds)
        await self.meta.mkdir(parent.ino, name, mode & ~self.umask & 0o7777, self.creds)

    async def makedirs(self, path: str, mode: int = 0o777, exist_ok: bool = False) -> None:
        parts = [p for p in path.split("/") if p and p != "."]
        for i in range(1, len(parts) + 1):
            sub = "/" + "/".join(parts[:i])
            try:
                await self.mkdir(sub, mode)
            except FileExistsError:
                if i == len(parts) and not exist_ok:
                    raise
                if not stat_mod.S_ISDIR((await self.stat(sub)).st_mode):
                    raise
        if not parts and not exist_ok:
            raise oserror(errno.EEXIST, "", path)

    @_oserrors
    async def rmdir(self, path: str) -> None:
        dot = _dot_last(path)
        if dot or not path.strip("/"):
            await self.paths.resolve(path, self.creds)
            raise FsError(errno.EINVAL if dot == "." else errno.ENOTEMPTY if dot else errno.EBUSY, "")
        parent, ppath, name = await self.paths.parent_of(path, self.creds)
        await self.meta.rmdir(parent.ino, name, self.creds)
        self.cache.forget_subtree(posixpath.join(ppath, name))

    @_oserrors
    async def scandir(self, path: str) -> list[DirEntry]:
        node, full = await self.paths.resolve(path, self.creds)
        if not node.is_dir:
            raise FsError(errno.ENOTDIR, "not a directory")
        if not allowed(node.attr.mode, node.attr.uid, node.attr.gid, self.creds, R_OK):
            raise FsError(errno.EACCES, "no read permission on the directory")
        entries = await self.meta.list_dir(node.ino, self.creds, with_attrs=True)
        return [DirEntry(e.name, posixpath.join(full, e.name), e.ino, e.type,
                         to_stat(info.attr) if info is not None else None) for e, info in entries]

    async def listdir(self, path: str = "/") -> list[str]:
        return [e.name for e in await self.scandir(path)]

    # ----------------------------------------------------------------- names

    @_oserrors
    async def unlink(self, path: str) -> None:
        if _dot_last(path) or not path.strip("/"):
            raise FsError(errno.EISDIR, "is a directory")
        parent, _, name = await self.paths.parent_of(path, self.creds)
        await self.meta.unlink(parent.ino, name, self.creds)

    remove = unlink

    @_oserrors
    async def rename(self, src: str, dst: str, *, flags: int = 0) -> None:
        if _dot_last(src) or _dot_last(dst) or not src.strip("/") or not dst.strip("/"):
            raise FsError(errno.EBUSY if not src.strip("/") or not dst.strip("/") else errno.EINVAL,
                          "cannot rename '.', '..' or '/'")
        sp, spath, sname = await self.paths.parent_of(src, self.creds)
        try:
            dp, dpath, dname = await self.paths.parent_of(dst, self.creds)
        except FsError as e:
            raise oserror(e.errno, e.message, dst) from None
        await self.meta.rename(sp.ino, sname, dp.ino, dname, self.creds, flags)
        self.cache.forget_subtree(posixpath.join(spath, sname))
        self.cache.forget_subtree(posixpath.join(dpath, dname))

    async def replace(self, src: str, dst: str) -> None:
        await self.rename(src, dst)

    @_oserrors
    async def link(self, src: str, dst: str) -> None:
        node, _ = await self.paths.resolve(src, self.creds, follow=False)
        if node.is_dir:
            raise FsError(errno.EPERM, "hard links to directories are not allowed")
        try:
            dp, _, dname = await self.paths.parent_of(dst, self.creds)
        except FsError as e:
            raise oserror(e.errno, e.message, dst) from None
        await self.meta.link(node.ino, dp.ino, dname, self.creds)

    @_oserrors
    async def symlink(self, path: str, target: str) -> None:
        """Create symlink ``path`` pointing at ``target`` (note: path first)."""
        if not target or "\0" in target or len(target.encode()) >= 4096:
            raise FsError(errno.ENOENT if not target else errno.ENAMETOOLONG, "bad symlink target")
        parent, _, name = await self.paths.parent_of(path, self.creds)
        await self.meta.create(parent.ino, name, 0o777, self.creds, exclusive=True, symlink_target=target)

    @_oserrors
    async def mknod(self, path: str, mode: int = 0o600 | stat_mod.S_IFREG, device: int = 0) -> None:
        """As os.mknod: a regular file, FIFO, socket, or (root only) device node."""
        ftype = type_of_mode(mode)
        if ftype not in SPECIAL_TYPES and ftype != pb.REGULAR:
            raise FsError(errno.EINVAL if ftype != pb.DIRECTORY else errno.EPERM, "mknod makes files only")
        if _dot_last(path) or not path.strip("/"):
            raise FsError(errno.EEXIST, "file exists")
        parent, _, name = await self.paths.parent_of(path, self.creds)
        await self.meta.create(parent.ino, name, mode & ~self.umask & 0o7777, self.creds, exclusive=True,
                               ftype=ftype, rdev=device)

    async def mkfifo(self, path: str, mode: int = 0o666) -> None:
        await self.mknod(path, stat_mod.S_IFIFO | (mode & 0o7777))

    @_oserrors
    async def readlink(self, path: str) -> str:
        node, _ = await self.paths.resolve(path, self.creds, follow=False)
        if not node.is_symlink or node.file is None:
            raise FsError(errno.EINVAL, "not a symbolic link")
        return node.file.symlink_target

    # ------------------------------------------------------------- attributes

    @_oserrors
    async def chmod(self, path: str, mode: int, *, follow_symlinks: bool = True) -> None:
        node, _ = await self.paths.resolve(path, self.creds, follow=follow_symlinks)
        await self.meta.setattr(node.ino, self.creds, mask=SET_MODE, mode=mode & 0o7777)

    @_oserrors
    async def chown(self, path: str, uid: int, gid: int, *, follow_symlinks: bool = True) -> None:
        node, _ = await self.paths.resolve(path, self.creds, follow=follow_symlinks)
        mask = (SET_UID if uid != -1 else 0) | (SET_GID if gid != -1 else 0)
        if mask:
            await self.meta.setattr(node.ino, self.creds, mask=mask, uid=max(uid, 0), gid=max(gid, 0))

    @_oserrors
    async def utime(self, path: str, times: tuple[float, float] | None = None, *,
                    ns: tuple[int, int] | None = None, follow_symlinks: bool = True) -> None:
        node, _ = await self.paths.resolve(path, self.creds, follow=follow_symlinks)
        if ns is None and times is not None:
            ns = (int(times[0] * 1e9), int(times[1] * 1e9))
        if ns is None:
            await self.meta.setattr(node.ino, self.creds, mask=SET_ATIME_NOW | SET_MTIME_NOW)
        else:
            await self.meta.setattr(node.ino, self.creds, mask=SET_ATIME | SET_MTIME,
                                    atime_ns=ns[0], mtime_ns=ns[1])

    @_oserrors
    async def truncate(self, path: str, length: int) -> None:
        node, _ = await self.paths.resolve(path, self.creds)
        if node.is_dir:
            raise FsError(errno.EISDIR, "is a directory")
        await self.data.truncate(node, length, self.creds)

    async def truncate_node(self, node: Node, length: int) -> None:
        """Truncate the open file ``node`` (as ftruncate), keeping the node current."""
        try:
            await self.data.truncate(node, length, self.creds)
        except FsError as e:
            raise oserror(e.errno, e.message) from None

    # ----------------------------------------------------------------- xattrs

    @_oserrors
    async def getxattr(self, path: str, name: str, *, follow_symlinks: bool = True) -> bytes:
        node, _ = await self.paths.resolve(path, self.creds, follow=follow_symlinks)
        return await self.meta.get_xattr(node.ino, self.creds, name)

    @_oserrors
    async def setxattr(self, path: str, name: str, value: bytes, flags: int = 0, *,
                       follow_symlinks: bool = True) -> None:
        node, _ = await self.paths.resolve(path, self.creds, follow=follow_symlinks)
        await self.meta.set_xattr(node.ino, self.creds, name, bytes(value), flags)

    @_oserrors
    async def listxattr(self, path: str, *, follow_symlinks: bool = True) -> list[str]:
        node, _ = await self.paths.resolve(path, self.creds, follow=follow_symlinks)
        return await self.meta.list_xattr(node.ino, self.creds)

    @_oserrors
    async def removexattr(self, path: str, name: str, *, follow_symlinks: bool = True) -> None:
        node, _ = await self.paths.resolve(path, self.creds, follow=follow_symlinks)
        await self.meta.remove_xattr(node.ino, self.creds, name)

    # ------------------------------------------------------------------- open

    @_oserrors
    async def open_node(self, path: str, flags: int, mode: int = 0o666) -> Node:
        """Resolve or create the file for an open(2) with ``flags``; check access."""
        if flags & os.O_CREAT and (_dot_last(path) or not path.strip("/")):
            raise FsError(errno.EISDIR, "is a directory")
        acc = flags & os.O_ACCMODE
        want = {os.O_RDONLY: R_OK, os.O_WRONLY: W_OK, os.O_RDWR: R_OK | W_OK}[acc]
        if flags & os.O_CREAT:
            # One RPC in the common case: a non-exclusive CreateFile returns the
            # file that is already there. A symlink, a directory, or a parent we
            # may not write (opening an existing file is still allowed) take the
            # path-resolving route below.
            parent, ppath, name = await self.paths.parent_of(path, self.creds)
            try:
                node, created = await self.meta.create(parent.ino, name, mode & ~self.umask & 0o7777,
                                                       self.creds, exclusive=bool(flags & os.O_EXCL))
                if created:
                    return node
            except FsError as e:
                if e.errno == errno.EEXIST and flags & os.O_EXCL:
                    raise
                if e.errno not in (errno.EEXIST, errno.EACCES, errno.EISDIR):
                    raise
                try:
                    node, _ = await self.paths.resolve(posixpath.join(ppath, name), self.creds, want_data=True)
                except FsError as e2:
                    if e2.errno == errno.ENOENT and e.errno == errno.EEXIST:
                        raise FsError(errno.ENOENT, "dangling symlink") from None
                    raise e from None
                if flags & os.O_EXCL:
                    raise FsError(errno.EEXIST, "file exists") from None
        else:
            node, _ = await self.paths.resolve(path, self.creds, want_data=True)
        if node.is_dir:
            if acc != os.O_RDONLY:
                raise FsError(errno.EISDIR, "is a directory")
            return node
        if not allowed(node.attr.mode, node.attr.uid, node.attr.gid, self.creds, want):
            raise FsError(errno.EACCES, "permission denied")
        if flags & os.O_TRUNC and acc != os.O_RDONLY and node.attr.size:
            await self.data.truncate(node, 0, self.creds)
        return node

    async def read_at(self, node: Node, offset: int, length: int) -> bytes:
        info = node.file
        assert info is not None
        if info.inline and info.data and len(info.data) == info.attr.size:
            return info.data[offset:offset + length]  # bytes came with the open
        try:
            return await self.data.read(info, offset, length, self.creds)
        except FsError as e:
            raise oserror(e.errno, e.message) from None

    async def read_into(self, node: Node, offset: int, buf: Any) -> int:
        """Read into ``buf`` (any writable buffer: bytearray, memoryview, numpy array) at ``offset``.

        The bytes read (short only at EOF). Chunk bytes land in ``buf``
        straight off the data server's socket: no copy in between.
        """
        info = node.file
        assert info is not None
        view = memoryview(buf).cast("B")
        if info.inline and info.data and len(info.data) == info.attr.size:
            data = info.data[offset:offset + len(view)]  # bytes came with the open
            view[:len(data)] = data
            return len(data)
        try:
            return await self.data.read_into(info, offset, view, self.creds)
        except FsError as e:
            raise oserror(e.errno, e.message) from None

    def read_into_now(self, node: Node, offset: int, buf: Any) -> int | None:
        """:meth:`read_into` on the calling thread, for a read within one chunk; None when the
        read needs the event loop (then call :meth:`read_into`). For synchronous callers."""
        info = node.file
        if info is None:
            return None
        return self.data.read_into_now(info, offset, memoryview(buf).cast("B"))

    async def write_at(self, node: Node, offset: int, data: bytes | memoryview, *,
                       defer_size: bool = False) -> int:
        try:
            end = await self.data.write(node, offset, data, self.creds, defer_size=defer_size)
        except FsError as e:
            raise oserror(e.errno, e.message) from None
        if node.file is not None and node.file.inline:
            node.file.data = b""  # the cached bytes are stale now
        return end

    async def commit_size(self, node: Node, end: int) -> None:
        pause_point("client.commit_size")
        try:
            await self.data.commit_size(node, end, self.creds)
        except FsError as e:
            raise oserror(e.errno, e.message) from None

    async def refresh_node(self, node: Node) -> Node:
        try:
            fresh = await self.meta.get_file(node.ino, self.creds)
        except FsError as e:
            raise oserror(e.errno, e.message) from None
        node.file, node.attr = fresh.file, fresh.attr
        return node

    # ------------------------------------------------------------------ misc

    async def statfs(self) -> dict[str, int]:
        stats = await self.meta.cluster_stats()
        files = sum(s.files for s in stats["shards"] if not isinstance(s, Exception))
        used = sum(d.bytes for d in stats["data"] if not isinstance(d, Exception))
        used += sum(s.inline_bytes for s in stats["shards"] if not isinstance(s, Exception))
        return {"files": files, "directories": stats["dir"].directories, "bytes_used": used,
                "shards": len(stats["shards"]), "data_servers": len(stats["data"])}

    def now_ns(self) -> int:
        return time.time_ns()

