"""Kernel inodes: lookup counts, what the kernel was told, and attribute replies.

SuperFS inode numbers are already unique 64-bit integers that are never
reused, and the root directory is 1 (``pyfuse3.ROOT_INODE``), so the kernel's
inode number *is* the SuperFS one: the mapping is the identity and nothing
has to be translated or persisted. What remains to track per inode is:

* the lookup count (lookup, create, mkdir, symlink, link, mknod and each
  readdirplus entry add one; ``forget`` subtracts), so that per-inode state
  is dropped once the kernel no longer knows the inode;
* the attributes last sent to the kernel and the content version the kernel's
  page cache may hold, so that ``open`` can tell whether the kernel's cached
  pages and size are still right (close-to-open consistency);
* the file data that came with a lookup, for the ``open`` that follows it.
"""
from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass

import pyfuse3

from superfs.client.nodes import Node
from superfs.v1 import superfs_pb2 as pb

log = logging.getLogger(__name__)

BLKSIZE = 128 * 1024  # st_blksize: what cp, stdio and shutil size their buffers by
# An open this soon after a lookup by the same process uses the lookup's
# attributes and inline bytes instead of asking the shard again. The window
# is kept tiny because a cached dentry means the kernel does not look up
# again before an open: only the lookup of the open's own path walk (tens of
# microseconds before it) may be trusted under close-to-open consistency.
STASH_WINDOW_S = 0.001
MAX_STASH = 1024
MAX_TARGETS = 65536
MAX_NAMES = 65536

Version = tuple[int, int, int]  # (generation, size, mtime_ns) of a file's content


def version_of(attr: pb.Attr) -> Version:
    return (attr.generation, attr.size, attr.mtime_ns)


@dataclass
class Stashed:
    at: float
    pid: int
    node: Node


def entry_attributes(attr: pb.Attr, entry_timeout: float, attr_timeout: float, *,
                     nlink: int | None = None, size: int | None = None,
                     mtime_ns: int | None = None) -> pyfuse3.EntryAttributes:
    """The kernel's form of an Attr; ``nlink``/``size``/``mtime_ns`` override it."""
    e = pyfuse3.EntryAttributes()
    e.st_ino = attr.ino
    e.generation = 0  # inode numbers are never reused
    e.entry_timeout = entry_timeout
    e.attr_timeout = attr_timeout
    e.st_mode = attr.mode
    e.st_nlink = attr.nlink if nlink is None else nlink
    e.st_uid = attr.uid
    e.st_gid = attr.gid
    e.st_rdev = attr.rdev
    e.st_size = attr.size if size is None else size
    e.st_blksize = BLKSIZE
    e.st_blocks = (e.st_size + 511) // 512
    e.st_atime_ns = attr.atime_ns
    e.st_mtime_ns = attr.mtime_ns if mtime_ns is None else mtime_ns
    e.st_ctime_ns = attr.ctime_ns
    return e


class InodeTable:
    """Per-inode state the mount keeps for as long as the kernel knows the inode."""

    def __init__(self) -> None:
        self.lookups: dict[int, int] = {pyfuse3.ROOT_INODE: 1}
        self.reported: dict[int, tuple[int, int]] = {}     # ino -> (size, mtime_ns) the kernel holds
        self.cached_version: dict[int, Version] = {}        # ino -> content the page cache may hold
        self._stash: dict[int, Stashed] = {}
        self._targets: OrderedDict[int, str] = OrderedDict()
        self._names: OrderedDict[tuple[int, str], int] = OrderedDict()

    # ----------------------------------------------------------- lookups

    def add_lookup(self, ino: int) -> None:
        self.lookups[ino] = self.lookups.get(ino, 0) + 1

    def forget(self, ino: int, n: int) -> bool:
        """Drop ``n`` lookups; True if the kernel no longer knows the inode."""
        if ino == pyfuse3.ROOT_INODE:
            return False  # the root is never forgotten while mounted
        left = self.lookups.get(ino, 0) - n
        if left > 0:
            self.lookups[ino] = left
            return False
        self.lookups.pop(ino, None)
        self.reported.pop(ino, None)
        self.cached_version.pop(ino, None)
        self._stash.pop(ino, None)
        self._targets.pop(ino, None)
        return True

    def known(self, ino: int) -> bool:
        return ino in self.lookups

    # ------------------------------------------------- what the kernel holds

    def note_reported(self, ino: int, size: int, mtime_ns: int) -> None:
        self.reported[ino] = (size, mtime_ns)

    def kernel_attr_stale(self, attr: pb.Attr) -> bool:
        """Does the kernel hold a size or mtime that differs from ``attr``?"""
        seen = self.reported.get(attr.ino)
        return seen is not None and seen != (attr.size, attr.mtime_ns)

    # --------------------------------------------- lookup data for the open

    def stash(self, node: Node, pid: int) -> None:
        if len(self._stash) >= MAX_STASH:
            self._stash.clear()  # entries only live for a millisecond anyway
        self._stash[node.ino] = Stashed(time.monotonic(), pid, node)

    def take_stash(self, ino: int, pid: int) -> Node | None:
        """The node a lookup by ``pid`` fetched just now, used at most once."""
        s = self._stash.pop(ino, None)
        if s is None or s.pid != pid or time.monotonic() - s.at > STASH_WINDOW_S:
            return None
        return s.node

    # ---------------------------------------------------------------- names

    def note_name(self, parent: int, name: str, ino: int) -> None:
        """(parent, name) led to file ``ino`` in a reply this mount gave the kernel.

        Only used to skip a lookup when removing a name cannot free a file
        that is open here; a stale entry (another client renamed things)
        only costs the cross-mount limitation that orphans.py describes.
        """
        key = (parent, name)
        self._names[key] = ino
        self._names.move_to_end(key)
        if len(self._names) > MAX_NAMES:
            self._names.popitem(last=False)

    def drop_name(self, parent: int, name: str) -> None:
        self._names.pop((parent, name), None)

    def ino_of_name(self, parent: int, name: str) -> int | None:
        return self._names.get((parent, name))

    # ------------------------------------------------------------- symlinks

    def remember_target(self, ino: int, target: str) -> None:
        """Symlink targets never change, so they are kept while the ino is known."""
        self._targets[ino] = target
        if len(self._targets) > MAX_TARGETS:
            self._targets.popitem(last=False)

    def target(self, ino: int) -> str | None:
        return self._targets.get(ino)
