"""Files unlinked while open: kept alive under a hidden name until the last close.

POSIX lets a process keep reading and writing a file after its last name is
gone; the space is freed at the last close. The servers free an inode as
soon as its last link goes, so the mount does what NFS clients do (the
"silly rename"): when a file that is open *in this mount* loses its last
name (unlink, or rename over it), the mount renames it instead into the
hidden directory ``/.superfs-orphans/`` under a name that says which mount
holds it, and unlinks it there at the last release. Readdir and lookup of
the root do not show that directory; fstat of such a file shows nlink 0.

The orphan directory is mode 01733 (like /tmp, without listing): any user
may move a file in (the servers still check the rights on the source, the
same rights unlink needs); only the owner or root may take it out. A mount
that dies leaves its orphans behind; the next mount on the same host removes
those whose mount process is gone.

Limitation (as with NFS): only opens in *this* mount are known. A file open
on one mount and unlinked through another mount (or another client) is
removed at once, and the first mount's reads and writes then fail with
ESTALE.
"""
from __future__ import annotations

import errno
import logging
import os
import socket

from superfs.procs import pid_alive as _pid_alive
from superfs.client.fs import AsyncFs
from superfs.client.meta import SET_MODE, Creds
from superfs.errors import FsError
from superfs.fuse.creds import ROOT

log = logging.getLogger(__name__)

ORPHAN_DIR = ".superfs-orphans"
ORPHAN_MODE = 0o1733
ROOT_INO = 1


class Orphans:
    """The hidden directory and the files this mount keeps in it."""

    def __init__(self, fs: AsyncFs) -> None:
        self.fs = fs
        self.dir_ino: int | None = None
        self.host = socket.gethostname().replace(".", "_")
        self.tag = f"{self.host}.{os.getpid()}"
        self.names: dict[int, str] = {}   # ino -> its name in the orphan directory

    @property
    def enabled(self) -> bool:
        return self.dir_ino is not None

    async def setup(self) -> None:
        """Find or make the orphan directory; clear what dead mounts left there."""
        meta = self.fs.meta
        try:
            try:
                node = await meta.lookup(ROOT_INO, ORPHAN_DIR, ROOT)
            except FsError as e:
                if e.errno != errno.ENOENT:
                    raise
                try:
                    node = await meta.mkdir(ROOT_INO, ORPHAN_DIR, ORPHAN_MODE, ROOT)
                except FsError as e2:
                    if e2.errno != errno.EEXIST:
                        raise
                    node = await meta.lookup(ROOT_INO, ORPHAN_DIR, ROOT)  # another mount made it
            if not node.is_dir:
                raise FsError(errno.ENOTDIR, f"/{ORPHAN_DIR} is not a directory")
            if node.attr.mode & 0o7777 != ORPHAN_MODE:
                await meta.setattr(node.ino, ROOT, mask=SET_MODE, mode=ORPHAN_MODE)
            self.dir_ino = node.ino
        except FsError as e:
            log.warning("files unlinked while open will not stay readable: no /%s (%s)", ORPHAN_DIR, e)
            return
        await self.reap_dead()

    async def reap_dead(self) -> None:
        """Remove orphans of mounts on this host whose process is gone."""
        assert self.dir_ino is not None
        try:
            entries = await self.fs.meta.list_dir(self.dir_ino, ROOT)
        except FsError as e:
            log.warning("cannot list /%s: %s", ORPHAN_DIR, e)
            return
        for entry, _ in entries:
            parts = entry.name.split(".")
            if len(parts) != 3 or parts[0] != self.host or not parts[1].isdigit():
                continue
            pid = int(parts[1])
            if pid == os.getpid() or _pid_alive(pid):
                continue
            try:
                await self.fs.meta.unlink(self.dir_ino, entry.name, ROOT)
                log.info("removed /%s/%s left by a mount that died", ORPHAN_DIR, entry.name)
            except FsError as e:
                log.warning("cannot remove /%s/%s: %s", ORPHAN_DIR, entry.name, e)

    def is_orphan(self, ino: int) -> bool:
        return ino in self.names

    async def hide(self, parent: int, name: str, ino: int, creds: Creds) -> None:
        """Move ``parent/name`` (inode ``ino``, open here) into the orphan directory."""
        assert self.dir_ino is not None
        hidden = f"{self.tag}.{ino}"
        await self.fs.meta.rename(parent, name, self.dir_ino, hidden, creds)
        self.names[ino] = hidden
        log.debug("inode %d unlinked while open: kept as /%s/%s", ino, ORPHAN_DIR, hidden)

    async def reap(self, ino: int) -> None:
        """The last handle closed: remove the orphan for good."""
        hidden = self.names.pop(ino, None)
        if hidden is None or self.dir_ino is None:
            return
        try:
            await self.fs.meta.unlink(self.dir_ino, hidden, ROOT)
        except FsError as e:
            log.warning("cannot remove orphan /%s/%s: %s", ORPHAN_DIR, hidden, e)

    async def reap_all(self) -> None:
        """At unmount: nothing is open any more."""
        for ino in list(self.names):
            await self.reap(ino)
