"""Open directories: a snapshot per handle, so readdir offsets stay stable.

The kernel lists a directory in several ``readdir`` calls, each resuming at
an offset the file system handed out. A snapshot of the whole listing is
taken when the listing starts (offset 0: opendir, or rewinddir) and offsets
are positions in it, so a directory of 100,000+ entries is listed
completely, each name exactly once, however it changes meanwhile (POSIX
allows entries added or removed during a listing to show or not; it does not
allow skips or repeats, which a cursor over a changing directory would give).

pyfuse3 always answers with readdirplus, so each entry carries attributes:
files come with them from the shards' listing (one prefix scan per shard,
in parallel); subdirectories from the dir server's ListDirs, paged; the few
files whose inode lives on another shard (renamed or hard-linked across
shards) are fetched by inode, in parallel.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import os
from dataclasses import dataclass, field

from superfs.client.fs import AsyncFs
from superfs.client.meta import Creds
from superfs.errors import FsError
from superfs.v1 import superfs_pb2 as pb

log = logging.getLogger(__name__)

DIR_PAGE = 1000
FETCH_PARALLEL = 32


@dataclass
class DirHandle:
    fh: int
    ino: int
    creds: Creds
    entries: list[tuple[bytes, pb.Attr]] | None = None   # None: not listed yet
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


async def list_with_attrs(fs: AsyncFs, dir_ino: int, creds: Creds, hide: frozenset[str] = frozenset()
                          ) -> list[tuple[bytes, pb.Attr]]:
    """Every entry of a directory with its attributes, sorted by name."""
    listing = await fs.meta.list_dir(dir_ino, creds, with_attrs=True)
    dir_attrs: dict[int, pb.Attr] = {}
    if any(entry.type == pb.DIRECTORY for entry, _ in listing):
        dir_attrs = await _subdir_attrs(fs, dir_ino, creds)
    missing = [entry for entry, info in listing
               if info is None and not (entry.type == pb.DIRECTORY and entry.ino in dir_attrs)]
    fetched = await _fetch_attrs(fs, missing, creds) if missing else {}
    out: list[tuple[bytes, pb.Attr]] = []
    for entry, info in listing:
        if entry.name in hide:
            continue
        if entry.type == pb.DIRECTORY:
            attr = dir_attrs.get(entry.ino) or fetched.get(entry.ino)
        else:
            attr = info.attr if info is not None else fetched.get(entry.ino)
        if attr is None:
            continue  # removed while we listed
        out.append((os.fsencode(entry.name), attr))
    return out


async def _subdir_attrs(fs: AsyncFs, dir_ino: int, creds: Creds) -> dict[int, pb.Attr]:
    """Attributes of every subdirectory, from the dir server (which owns them)."""
    attrs: dict[int, pb.Attr] = {}
    after = ""
    while True:
        # through the client library's cluster view: the dir server's paged listing
        reply = await fs.cluster.dir_call("ListDirs", pb.ListDirsRequest(
            ino=dir_ino, after=after, limit=DIR_PAGE, creds=creds.pb()))
        for info in reply.dirs:  # type: ignore[attr-defined]
            attrs[info.ino] = info.attr
        if not reply.more or not reply.dirs:  # type: ignore[attr-defined]
            return attrs
        after = reply.dirs[-1].name  # type: ignore[attr-defined]


async def _fetch_attrs(fs: AsyncFs, entries: list[pb.Dentry], creds: Creds) -> dict[int, pb.Attr]:
    sem = asyncio.Semaphore(FETCH_PARALLEL)

    async def one(entry: pb.Dentry) -> tuple[int, pb.Attr | None]:
        async with sem:
            try:
                node = await fs.meta.getattr(entry.ino, creds)
            except FsError as e:
                if e.errno not in (errno.ENOENT, errno.ESTALE):
                    raise
                return entry.ino, None
            return entry.ino, node.attr

    results = await asyncio.gather(*(one(e) for e in entries))
    return {ino: attr for ino, attr in results if attr is not None}


class DirHandleTable:
    def __init__(self) -> None:
        self._next = 1
        self.handles: dict[int, DirHandle] = {}

    def add(self, ino: int, creds: Creds) -> DirHandle:
        fh = self._next
        self._next += 1
        h = DirHandle(fh, ino, creds)
        self.handles[fh] = h
        return h

    def get(self, fh: int) -> DirHandle:
        try:
            return self.handles[fh]
        except KeyError:
            raise FsError(errno.EBADF, f"no open directory handle {fh}") from None

    def remove(self, fh: int) -> None:
        self.handles.pop(fh, None)
