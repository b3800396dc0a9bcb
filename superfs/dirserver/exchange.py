"""RENAME_EXCHANGE with a directory on either side: two directories, or a directory and a file.

renameat2(RENAME_EXCHANGE) swaps what two existing names point at,
atomically. Two files are the shards' business (shard/name_ops.py); as soon
as one side is a directory the dir server coordinates, because it owns
directories and their places in the tree, while the shards own every name
(a directory's name is a reservation entry there). The protocol:

1. check everything under the locks of both names, both directories and the
   rename lock (ancestry changes: no cycle may form), and write an intent;
2. re-point the two names on their shards (``RepointEntry``: idempotent, done
   if the name already points at its new target). A file's name goes first:
   it is the only one that can change under us (a shard unlinks or renames
   files without asking the dir server), and if it did, nothing has been
   done yet: the intent is dropped and the caller gets ENOENT. A directory's
   name cannot change while the intent holds its locks, so the second step
   can only fail transiently;
3. commit: one transaction swaps the two directories' places (or moves the
   one directory to the file's old name) and drops the intent. That is the
   commit point.

A crash or an unreachable shard anywhere after 1 leaves the intent, which
recovery rolls forward by repeating 2 and 3 (each step is idempotent),
unless the file's name changed before step 2 ever ran: then it drops the
intent, as the live operation would have. Between 2 and 3 a lookup through
the shards may already see the exchanged names; after recovery every object
has exactly one of the two names, never none and never both.
"""
from __future__ import annotations

import errno
import logging
import stat
from typing import TYPE_CHECKING

import lmdb

from superfs import names, perms
from superfs.dirserver.intents import Intent
from superfs.dirserver.locks import dir_key
from superfs.dirserver.store import now_ns
from superfs.errors import FsError
from superfs.faults import crash_point
from superfs.v1 import superfs_pb2 as pb

if TYPE_CHECKING:
    from superfs.dirserver.coordinator import Coordinator

log = logging.getLogger(__name__)

RETRIES = 8
TRANSIENT = frozenset({errno.EIO, errno.ETIMEDOUT, errno.EAGAIN, errno.EINTR})


class Side:
    """What one of the two names holds: a directory (its record) or a file (ino, type, owner)."""

    def __init__(self, parent: pb.DirInfo, name: str, d: pb.DirInfo | None,
                 f: tuple[int, int, int] | None) -> None:
        self.parent, self.name, self.dir = parent, name, d
        self.ino: int
        self.ftype: int
        self.owner: int
        if d is not None:
            self.ino, self.ftype, self.owner = d.ino, int(pb.DIRECTORY), d.attr.uid
        else:
            assert f is not None
            self.ino, self.ftype, self.owner = f


async def _side(coord: Coordinator, parent_ino: int, name: str, creds: pb.Creds) -> Side:
    parent = coord._need_dst_parent(parent_ino)
    perms.require(parent.attr.mode, parent.attr.uid, parent.attr.gid, creds, perms.X_OK, "search parent")
    d = coord.store.lookup(parent_ino, name)
    f = None if d is not None else await coord.shards.entry(parent_ino, name, creds)
    if d is None and (f is None or f[1] == pb.DIRECTORY):
        # a reservation without a directory is a mkdir or rmdir in flight: not there (yet / any more)
        raise FsError(errno.ENOENT, f"no {name!r} in {parent_ino}")
    return Side(parent, name, d, f)


async def exchange(coord: Coordinator, src_parent: int, src_name: str, dst_parent: int, dst_name: str,
                   creds: pb.Creds) -> None:
    names.check_name(src_name)
    names.check_name(dst_name)
    for _ in range(RETRIES):
        a = await _side(coord, src_parent, src_name, creds)
        b = await _side(coord, dst_parent, dst_name, creds)
        if a.dir is None and b.dir is None:
            raise FsError(errno.EINVAL, "two files are exchanged by their shards")
        subjects = {s.ino for s in (a, b) if s.dir is not None}
        parents = {src_parent, dst_parent}
        await coord.settle(coord.intents.conflicting(parents, subjects))
        exclusive = [(src_parent, src_name), (dst_parent, dst_name), *map(dir_key, subjects)]
        async with coord.rename_lock, coord.locks.hold(exclusive=exclusive, shared=map(dir_key, parents)):
            a2 = coord.store.lookup(src_parent, src_name)
            b2 = coord.store.lookup(dst_parent, dst_name)
            if ((a2.ino if a2 else 0) != (a.dir.ino if a.dir else 0)
                    or (b2.ino if b2 else 0) != (b.dir.ino if b.dir else 0)
                    or coord.intents.conflicting(parents, subjects)):
                continue  # changed while we waited: look again
            a.parent, b.parent = coord.store.need(src_parent), coord.store.need(dst_parent)
            await _exchange_locked(coord, a, b, creds)
            return
    raise FsError(errno.EAGAIN, "directories kept changing; retry")


def _check(coord: Coordinator, a: Side, b: Side, creds: pb.Creds) -> None:
    """What Linux's rename(2) checks for RENAME_EXCHANGE, in its order."""
    for moving, into in ((a, b.parent), (b, a.parent)):
        if moving.dir is not None and (into.ino == moving.ino or moving.ino in coord.store.ancestors(into.ino)):
            raise FsError(errno.EINVAL, "cannot move a directory into its own subtree")
    for s in (a, b):
        perms.require(s.parent.attr.mode, s.parent.attr.uid, s.parent.attr.gid, creds, perms.W_OK | perms.X_OK,
                      "change the parent")
    for s in (a, b):
        perms.check_sticky(bool(s.parent.attr.mode & stat.S_ISVTX), s.parent.attr.uid, s.owner, creds)
    if a.parent.ino != b.parent.ino:
        for s in (a, b):
            if s.dir is not None:  # its '..' changes: write permission on the directory itself
                perms.require(s.dir.attr.mode, s.dir.attr.uid, s.dir.attr.gid, creds, perms.W_OK,
                              "move a directory to another parent")


async def _exchange_locked(coord: Coordinator, a: Side, b: Side, creds: pb.Creds) -> None:
    if (a.parent.ino, a.name) == (b.parent.ino, b.name) or a.ino == b.ino:
        return
    _check(coord, a, b, creds)
    intent = Intent("exchange", ino=a.ino, parent=a.parent.ino, name=a.name, dst_parent=b.parent.ino,
                    dst_name=b.name, replaced_ino=b.ino, ftype=a.ftype, replaced_type=b.ftype)
    await coord.store.db.write(lambda txn: coord.intents.add_txn(txn, intent))
    crash_point("dir.exchange.after_intent")
    await exchange_forward(coord, intent)
    log.debug("exchange %d/%s <-> %d/%s", a.parent.ino, a.name, b.parent.ino, b.name)


async def exchange_forward(coord: Coordinator, i: Intent) -> None:
    """Steps 2 and 3 (see the module docstring); each idempotent. Locks are held."""
    src = (i.parent, i.name, i.ino, i.ftype, i.replaced_ino, i.replaced_type)
    dst = (i.dst_parent, i.dst_name, i.replaced_ino, i.replaced_type, i.ino, i.ftype)
    first, second = (dst, src) if i.ftype == pb.DIRECTORY else (src, dst)  # a file's name first
    try:
        await coord.shards.repoint(*first)
    except FsError as e:
        if e.errno in TRANSIENT:
            raise
        # the file's name changed before we touched anything: give up, as a rename would
        await coord.store.db.write(lambda txn: coord.intents.drop_txn(txn, i.id))
        raise FsError(errno.ENOENT, f"{first[1]!r} changed meanwhile: {e.message}") from None
    crash_point("dir.exchange.after_first")
    await coord.shards.repoint(*second)
    crash_point("dir.exchange.after_second")
    t = now_ns()

    def commit(txn: lmdb.Transaction[bytes]) -> None:
        if i.ftype == pb.DIRECTORY and i.replaced_type == pb.DIRECTORY:
            coord.store.exchange_dirs_txn(txn, i.ino, i.replaced_ino, t)
        elif i.ftype == pb.DIRECTORY:
            coord.store.move_dir_txn(txn, i.ino, i.dst_parent, i.dst_name, t)
        else:
            coord.store.move_dir_txn(txn, i.replaced_ino, i.parent, i.name, t)
        coord.intents.drop_txn(txn, i.id)

    await coord.store.db.write(commit)
    crash_point("dir.exchange.after_commit")
