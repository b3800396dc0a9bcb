"""A minimal pyfuse3 passthrough of a local directory: the floor of a Python FUSE FS.

Every request is answered by the matching system call on the source
directory, on the same asyncio loop machinery and with the same mount
options and cache timeouts as the SuperFS mount, so that the difference
between the two is what SuperFS itself costs (RPCs, bookkeeping), not FUSE
or Python.

    python bench/passthrough.py SOURCE MOUNTPOINT [--attr-timeout S] [--entry-timeout S]

Serves in the foreground until unmounted or sent SIGTERM/SIGINT.
"""
from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import os
import signal
import stat as stat_mod
from typing import Any, Sequence

import pyfuse3
import pyfuse3.asyncio

log = logging.getLogger(__name__)


class Passthrough(pyfuse3.Operations):
    enable_writeback_cache = False

    def __init__(self, source: str, attr_timeout: float, entry_timeout: float) -> None:
        super().__init__()
        self.attr_timeout = attr_timeout
        self.entry_timeout = entry_timeout
        self.paths: dict[int, str] = {pyfuse3.ROOT_INODE: source}
        self.lookups: dict[int, int] = {}
        self.fds: dict[int, int] = {}

    def _path(self, ino: int) -> str:
        try:
            return self.paths[ino]
        except KeyError:
            raise pyfuse3.FUSEError(errno.ESTALE) from None

    def _child(self, parent: int, name: bytes) -> str:
        return os.path.join(self._path(parent), os.fsdecode(name))

    def _attr(self, path: str | None = None, fd: int | None = None) -> pyfuse3.EntryAttributes:
        try:
            st = os.fstat(fd) if fd is not None else os.lstat(path)  # type: ignore[arg-type]
        except OSError as e:
            raise pyfuse3.FUSEError(e.errno) from None
        e = pyfuse3.EntryAttributes()
        for k in ("st_ino", "st_mode", "st_nlink", "st_uid", "st_gid", "st_rdev", "st_size",
                  "st_atime_ns", "st_mtime_ns", "st_ctime_ns"):
            setattr(e, k, getattr(st, k))
        e.st_blksize = 128 * 1024
        e.st_blocks = st.st_blocks
        e.generation = 0
        e.attr_timeout = self.attr_timeout
        e.entry_timeout = self.entry_timeout
        return e

    def _remember(self, path: str, e: pyfuse3.EntryAttributes) -> pyfuse3.EntryAttributes:
        self.paths[e.st_ino] = path
        self.lookups[e.st_ino] = self.lookups.get(e.st_ino, 0) + 1
        return e

    @staticmethod
    def _os(fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except OSError as e:
            raise pyfuse3.FUSEError(e.errno) from None

    async def lookup(self, parent_inode: int, name: bytes, ctx: Any) -> pyfuse3.EntryAttributes:
        path = self._child(parent_inode, name)
        return self._remember(path, self._attr(path))

    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        for ino, n in inode_list:
            left = self.lookups.get(ino, 0) - n
            if left > 0:
                self.lookups[ino] = left
            else:
                self.lookups.pop(ino, None)
                if ino != pyfuse3.ROOT_INODE:
                    self.paths.pop(ino, None)

    async def getattr(self, inode: int, ctx: Any) -> pyfuse3.EntryAttributes:
        return self._attr(self._path(inode))

    async def setattr(self, inode: int, attr: Any, fields: Any, fh: int | None, ctx: Any) -> pyfuse3.EntryAttributes:
        path = self._path(inode)
        if fields.update_size:
            self._os(os.truncate, path, attr.st_size)
        if fields.update_mode:
            self._os(os.chmod, path, stat_mod.S_IMODE(attr.st_mode))
        if fields.update_uid or fields.update_gid:
            self._os(os.chown, path, attr.st_uid if fields.update_uid else -1,
                     attr.st_gid if fields.update_gid else -1, )
        if fields.update_atime or fields.update_mtime:
            st = os.lstat(path)
            self._os(os.utime, path, None, ns=(attr.st_atime_ns if fields.update_atime else st.st_atime_ns,
                                               attr.st_mtime_ns if fields.update_mtime else st.st_mtime_ns))
        return self._attr(path)

    async def readlink(self, inode: int, ctx: Any) -> bytes:
        return os.fsencode(self._os(os.readlink, self._path(inode)))

    async def mkdir(self, parent_inode: int, name: bytes, mode: int, ctx: Any) -> pyfuse3.EntryAttributes:
        path = self._child(parent_inode, name)
        self._os(os.mkdir, path, mode)
        return self._remember(path, self._attr(path))

    async def mknod(self, parent_inode: int, name: bytes, mode: int, rdev: int, ctx: Any) -> pyfuse3.EntryAttributes:
        path = self._child(parent_inode, name)
        self._os(os.mknod, path, mode, rdev)
        return self._remember(path, self._attr(path))

    async def symlink(self, parent_inode: int, name: bytes, target: bytes, ctx: Any) -> pyfuse3.EntryAttributes:
        path = self._child(parent_inode, name)
        self._os(os.symlink, target, path)
        return self._remember(path, self._attr(path))

    async def link(self, inode: int, new_parent_inode: int, new_name: bytes, ctx: Any) -> pyfuse3.EntryAttributes:
        path = self._child(new_parent_inode, new_name)
        self._os(os.link, self._path(inode), path)
        return self._remember(path, self._attr(path))

    async def unlink(self, parent_inode: int, name: bytes, ctx: Any) -> None:
        self._os(os.unlink, self._child(parent_inode, name))

    async def rmdir(self, parent_inode: int, name: bytes, ctx: Any) -> None:
        self._os(os.rmdir, self._child(parent_inode, name))

    async def rename(self, p_old: int, n_old: bytes, p_new: int, n_new: bytes, flags: int, ctx: Any) -> None:
        if flags:
            raise pyfuse3.FUSEError(errno.EINVAL)
        old, new = self._child(p_old, n_old), self._child(p_new, n_new)
        ino = os.lstat(old).st_ino
        self._os(os.rename, old, new)
        if ino in self.paths:
            self.paths[ino] = new

    async def open(self, inode: int, flags: int, ctx: Any) -> pyfuse3.FileInfo:
        fd = self._os(os.open, self._path(inode), flags & ~os.O_CREAT)
        self.fds[fd] = fd
        return pyfuse3.FileInfo(fh=fd)

    async def create(self, parent_inode: int, name: bytes, mode: int, flags: int, ctx: Any
                     ) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        path = self._child(parent_inode, name)
        fd = self._os(os.open, path, flags | os.O_CREAT | os.O_TRUNC, mode)
        self.fds[fd] = fd
        return pyfuse3.FileInfo(fh=fd), self._remember(path, self._attr(fd=fd))

    async def read(self, fh: int, off: int, size: int) -> bytes:
        return self._os(os.pread, fh, size, off)

    async def write(self, fh: int, off: int, buf: bytes) -> int:
        return self._os(os.pwrite, fh, buf, off)

    async def flush(self, fh: int) -> None:
        pass

    async def fsync(self, fh: int, datasync: bool) -> None:
        self._os(os.fdatasync if datasync else os.fsync, fh)

    async def release(self, fh: int) -> None:
        self.fds.pop(fh, None)
        self._os(os.close, fh)

    async def opendir(self, inode: int, ctx: Any) -> int:
        return inode

    async def readdir(self, fh: int, start_id: int, token: Any) -> None:
        path = self._path(fh)
        entries = sorted((e.inode(), e.name) for e in os.scandir(path))
        for ino, name in entries:
            if ino <= start_id:
                continue
            child = os.path.join(path, name)
            attr = self._attr(child)
            if not pyfuse3.readdir_reply(token, os.fsencode(name), attr, ino):
                break
            self._remember(child, attr)

    async def releasedir(self, fh: int) -> None:
        pass

    async def statfs(self, ctx: Any) -> pyfuse3.StatvfsData:
        st = os.statvfs(self._path(pyfuse3.ROOT_INODE))
        s = pyfuse3.StatvfsData()
        for k in ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files", "f_ffree", "f_favail"):
            setattr(s, k, getattr(st, k))
        s.f_namemax = st.f_namemax
        return s


async def serve(ops: Passthrough, mountpoint: str) -> None:
    pyfuse3.init(ops, mountpoint, {"fsname=passthrough", "subtype=passthrough", "default_permissions"})
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, pyfuse3.terminate)
    try:
        await pyfuse3.main(max_tasks=128)
    finally:
        pyfuse3.close(unmount=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("source")
    p.add_argument("mountpoint")
    p.add_argument("--attr-timeout", type=float, default=1.0)
    p.add_argument("--entry-timeout", type=float, default=1.0)
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    pyfuse3.asyncio.enable()
    ops = Passthrough(os.path.abspath(args.source), args.attr_timeout, args.entry_timeout)
    asyncio.run(serve(ops, args.mountpoint))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
