"""Open directories: listed a page at a time, with offsets that stay valid.

The kernel lists a directory in several ``readdir`` calls, each resuming at
an offset the file system handed out. A handle holds one page of the listing
(``DIR_PAGE`` names with their attributes) and, per page, the name it starts
after: page ``p``'s entry ``i`` is handed out with offset ``p * STRIDE + i + 1``
(1 and 2 follow "." and ".."), so a resumed or repeated ``readdir`` finds its
page again by that name, and a directory of 10^6 entries costs the mount one
page of memory per open handle, not the whole listing. The next page starts
strictly after the last name of the previous one: every name is listed once
and none skipped, however the directory changes meanwhile (POSIX lets names
added or removed during a listing show or not).

pyfuse3 always answers with readdirplus, so each entry carries attributes:
files come with them from the shards' listing (one prefix scan per shard,
in parallel); subdirectories from the dir server's ListDirs, paged the same
way; the few files whose inode lives on another shard (renamed or
hard-linked across shards) are fetched by inode, in parallel.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import os
import stat as stat_mod
from dataclasses import dataclass, field
from typing import AsyncIterator

from superfs.client.fs import AsyncFs
from superfs.client.meta import Creds
from superfs.errors import FsError
from superfs.v1 import superfs_pb2 as pb

log = logging.getLogger(__name__)

DIR_PAGE = 1000
STRIDE = 1 << 20  # > DIR_PAGE: an offset names its page and the entries of it already given
FETCH_PARALLEL = 32


@dataclass
class DirHandle:
    fh: int
    ino: int
    creds: Creds
    hide: frozenset[str] = frozenset()
    starts: dict[int, str] = field(default_factory=lambda: {1: ""})  # page -> the name it starts after
    last_page: int | None = None          # the page known to end the listing
    page_no: int = 0                      # which page ``page`` holds (0: none)
    page: list[tuple[bytes, pb.Attr]] = field(default_factory=list)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    empty_parent: int = 0   # known to be empty (made ahead here, fuse/dirs_ahead.py): its parent

    async def entries(self, fs: AsyncFs, start_id: int) -> AsyncIterator[tuple[bytes, pb.Attr, int, bool]]:
        """(name, attributes, offset of the next entry, whether it is "." or "..") from ``start_id`` on."""
        if start_id < 2:
            parent = self.empty_parent or (await fs.meta.get_dir(self.ino, self.creds)).parent or 1
            dots = [(b".", pb.Attr(ino=self.ino, mode=stat_mod.S_IFDIR | 0o755)),
                    (b"..", pb.Attr(ino=parent, mode=stat_mod.S_IFDIR | 0o755))]
            for i in range(start_id, 2):
                yield dots[i][0], dots[i][1], i + 1, True
            start_id = STRIDE  # page 1, nothing of it given yet
        if self.empty_parent:
            return
        p, i = max(1, start_id // STRIDE), start_id % STRIDE
        while True:
            if p not in self.starts:  # an offset from a page this handle never gave out
                return
            page = await self._page(fs, p)
            for k in range(i, len(page)):
                name, attr = page[k]
                yield name, attr, p * STRIDE + k + 1, False
            if self.last_page is not None and p >= self.last_page:
                return
            p, i = p + 1, 0

    async def _page(self, fs: AsyncFs, p: int) -> list[tuple[bytes, pb.Attr]]:
        if self.page_no != p:
            listing, more, last_name = await list_page(fs, self.ino, self.creds, self.starts[p], self.hide)
            self.page_no, self.page = p, listing
            if more:
                self.starts.setdefault(p + 1, last_name)
            else:
                self.last_page = p
        return self.page


async def list_page(fs: AsyncFs, dir_ino: int, creds: Creds, after: str, hide: frozenset[str] = frozenset()
                    ) -> tuple[list[tuple[bytes, pb.Attr]], bool, str]:
    """Up to DIR_PAGE entries after ``after`` with attributes; whether more follow; the page's last name."""
    listing, more = await fs.meta.list_dir_page(dir_ino, creds, after=after, limit=DIR_PAGE, with_attrs=True)
    dir_attrs: dict[int, pb.Attr] = {}
    if any(entry.type == pb.DIRECTORY for entry, _ in listing):
        dir_attrs = await _subdir_attrs(fs, dir_ino, creds, after)
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
    return out, more, listing[-1][0].name if listing else after


async def _subdir_attrs(fs: AsyncFs, dir_ino: int, creds: Creds, after: str) -> dict[int, pb.Attr]:
    """Attributes of the first DIR_PAGE subdirectories named after ``after``, from the dir server.

    A page of the listing holds at most DIR_PAGE subdirectories, the first ones after
    ``after``: exactly those.
    """
    attrs: dict[int, pb.Attr] = {}
    while len(attrs) < DIR_PAGE:
        reply = await fs.meta.list_subdirs_page(dir_ino, creds, after=after, limit=DIR_PAGE)
        for info in reply.dirs:
            attrs[info.ino] = info.attr
        if not reply.more or not reply.dirs:
            return attrs
        after = reply.dirs[-1].name
    return attrs


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

    def add(self, ino: int, creds: Creds, hide: frozenset[str] = frozenset(), *, empty_parent: int = 0) -> DirHandle:
        fh = self._next
        self._next += 1
        h = DirHandle(fh, ino, creds, hide, empty_parent=empty_parent)
        self.handles[fh] = h
        return h

    def get(self, fh: int) -> DirHandle:
        try:
            return self.handles[fh]
        except KeyError:
            raise FsError(errno.EBADF, f"no open directory handle {fh}") from None

    def remove(self, fh: int) -> None:
        self.handles.pop(fh, None)
