"""Directory operations that span the dir server and the shards: mkdir, rmdir, rename.

Shards hold a reservation entry for every directory name, so that a file and
a directory never share one; creating, removing or moving a directory thus
changes both this server's store and one or more shards. Each operation:

1. checks everything it can locally, holding the locks of the directories
   involved (:mod:`superfs.dirserver.locks`) for its whole duration;
2. writes an intent (:mod:`superfs.dirserver.intents`) before the first shard call;
3. calls the shards (each call idempotent by ino);
4. commits the local change, dropping the intent in the same transaction
   when no shard step is left.

If anything fails in between, the intent stays and :mod:`superfs.dirserver.recovery`
finishes or undoes the operation later (at start-up, periodically, or before
another operation that depends on it). The commit point of each operation:

- mkdir: the transaction creating the directory. Before it, recovery undoes
  (releases the reservation): the caller never saw success.
- rmdir: the transaction deleting the directory. Before it, recovery unseals.
- rename: the transaction moving the directory. Before it, recovery rolls
  forward, unless the coordinator had already decided to abort (the intent's
  ``aborting`` flag); after it, only the source reservation is left to release.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import stat
from typing import Awaitable, NoReturn

import lmdb

from superfs import names, perms
from superfs.dirserver import exchange, recovery
from superfs.dirserver.intents import Intent, IntentLog
from superfs.dirserver.locks import DirLocks, dir_key
from superfs.dirserver.namespace import require_search
from superfs.dirserver.shards import ShardOps
from superfs.dirserver.store import DirStore, now_ns
from superfs.errors import FsError
from superfs.faults import crash_point
from superfs.filetypes import FILE_TYPES
from superfs.routing import ROOT_INO, is_dir_ino
from superfs.v1 import superfs_pb2 as pb

log = logging.getLogger(__name__)

RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2
# Failures that say nothing about the outcome (the shard may be down, slow, or
# busy): the step is retried later. Any other refusal is final.
TRANSIENT = frozenset({errno.EIO, errno.ETIMEDOUT, errno.EAGAIN, errno.EINTR})
# How often an operation re-reads and re-locks when its directories changed
# while it waited for their locks, before giving up with EAGAIN.
RETRIES = 8


def _require(d: pb.DirInfo, creds: pb.Creds, want: int, what: str) -> None:
    perms.require(d.attr.mode, d.attr.uid, d.attr.gid, creds, want, what)


def _sticky(parent: pb.DirInfo, child_uid: int, creds: pb.Creds) -> None:
    perms.check_sticky(bool(parent.attr.mode & stat.S_ISVTX), parent.attr.uid, child_uid, creds)


class Coordinator:
    """Runs mkdir, rmdir and rename of directories across the dir store and the shards."""

    def __init__(self, store: DirStore, shards: ShardOps) -> None:
        self.store = store
        self.shards = shards
        self.intents = IntentLog(store)
        self.locks = DirLocks()
        # Renames change ancestry: one at a time, so that the subtree check
        # and the move happen in one critical section and no cycle can form.
        self.rename_lock = asyncio.Lock()
        self._drops: set[asyncio.Task[None]] = set()  # intents of finished operations, being dropped

    # ------------------------------------------------------------------ mkdir

    async def mkdir(self, parent_ino: int, name: str, mode: int, creds: pb.Creds, *,
                    ino: int = 0, time_ns: int = 0) -> pb.DirInfo:
        """``ino`` and ``time_ns``: a lease holder's mkdir made ahead (dir_batch.py), with the number
        it was delegated (checked by the caller) and the time it told its application."""
        names.check_name(name)
        parent = self.store.need(parent_ino)
        require_search(self.store, parent, creds, "search parent")
        if self.intents.removing(parent_ino):
            # A removal of the parent is pending (a shard was down): settle it first.
            await self.settle(self.intents.removing_list(parent_ino))
        async with self.locks.hold(exclusive=[(parent_ino, name)], shared=[dir_key(parent_ino)]):
            # Re-read: the parent may have been removed while we waited.
            parent = self.store.need(parent_ino)
            if self.intents.removing(parent_ino):
                raise FsError(errno.ENOENT, "parent directory is being removed")
            if self.store.lookup(parent_ino, name) is not None:
                raise FsError(errno.EEXIST, f"directory {name!r} exists")
            _require(parent, creds, perms.W_OK | perms.X_OK, "create in parent")
            intent = Intent("mkdir", ino=ino, parent=parent_ino, name=name)

            def begin(txn: lmdb.Transaction[bytes]) -> None:
                if not ino:
                    intent.ino = self.store.alloc_ino_txn(txn)
                elif self.store.get_txn(txn, ino) is not None:
                    raise FsError(errno.EEXIST, f"directory number {ino} is in use")
                self.intents.add_txn(txn, intent)

            await self.store.db.write(begin)
            crash_point("dir.mkdir.after_intent")
            try:
                await self.shards.reserve(parent_ino, name, intent.ino)
            except FsError as e:
                if e.errno == errno.EEXIST:  # a file has that name: nothing was reserved
                    await self._drop(intent)
                else:
                    await _quietly(self._undo_mkdir(intent), "undo mkdir")
                raise
            crash_point("dir.mkdir.after_reserve")
            t = time_ns or now_ns()
            bits = mode & 0o1777  # as mkdir(2): setuid/setgid from the caller are ignored
            gid = creds.gid
            if parent.attr.mode & stat.S_ISGID:
                # BSD group semantics on setgid dirs, inherited by subdirectories
                gid = parent.attr.gid
                bits |= stat.S_ISGID
            d = pb.DirInfo(ino=intent.ino, parent_ino=parent_ino, name=name, attr=pb.Attr(
                ino=intent.ino, mode=stat.S_IFDIR | bits, nlink=2, uid=creds.uid, gid=gid,
                atime_ns=t, mtime_ns=t, ctime_ns=t))

            def commit(txn: lmdb.Transaction[bytes]) -> None:
                self.store.create_dir_txn(txn, d)
                self.intents.drop_txn(txn, intent.id)

            await self.store.db.write(commit)
        log.debug("mkdir %d/%s -> %d", parent_ino, name, d.ino)
        return d

    async def _undo_mkdir(self, intent: Intent) -> None:
        await self.shards.release(intent.parent, intent.name, intent.ino)
        await self._drop(intent)

    # ------------------------------------------------------------------ rmdir

    async def rmdir(self, parent_ino: int, name: str, creds: pb.Creds) -> None:
        names.check_name(name)
        for _ in range(RETRIES):
            parent = self.store.need(parent_ino)
            require_search(self.store, parent, creds, "search parent")
            d = self.store.lookup(parent_ino, name)
            if d is None:
                await self._not_a_dir(parent_ino, name, creds)
            assert d is not None
            if d.ino == ROOT_INO:  # pragma: no cover - root is nobody's child
                raise FsError(errno.EBUSY, "cannot remove root")
            await self.settle(self.intents.conflicting({parent_ino}, {d.ino}))
            async with self.locks.hold(exclusive=[(parent_ino, name), dir_key(d.ino)],
                                       shared=[dir_key(parent_ino)]):
                parent = self.store.need(parent_ino)
                cur = self.store.lookup(parent_ino, name)
                if cur is None or cur.ino != d.ino or self.intents.conflicting({parent_ino}, {d.ino}):
                    continue  # changed while we waited: look again
                await self._rmdir_locked(parent, cur, creds)
                return
        raise FsError(errno.EAGAIN, "directory kept changing; retry")

    async def _rmdir_locked(self, parent: pb.DirInfo, d: pb.DirInfo, creds: pb.Creds) -> None:
        _require(parent, creds, perms.W_OK | perms.X_OK, "remove from parent")
        _sticky(parent, d.attr.uid, creds)
        if self.store.has_children(d.ino):
            raise FsError(errno.ENOTEMPTY, "directory has subdirectories")
        intent = Intent("rmdir", ino=d.ino, parent=parent.ino, name=d.name)
        await self.store.db.write(lambda txn: self.intents.add_txn(txn, intent))
        crash_point("dir.rmdir.after_intent")
        try:
            empty = await self.shards.seal_all(d.ino)
        except FsError:
            await _quietly(self._undo_rmdir(intent), "undo rmdir")
            raise
        if not all(empty):
            await _quietly(self._undo_rmdir(intent), "undo rmdir")
            raise FsError(errno.ENOTEMPTY, "directory has entries")
        crash_point("dir.rmdir.after_seal")
        t = now_ns()
        await self.store.db.write(lambda txn: self.store.delete_dir_txn(txn, d.ino, t))
        crash_point("dir.rmdir.after_commit")
        # Committed. What is left (releasing the name on its shard) recovery can finish.
        await self._release_then_drop(intent, intent.parent, intent.name)
        log.debug("rmdir %d/%s (%d)", parent.ino, d.name, d.ino)

    async def _undo_rmdir(self, intent: Intent) -> None:
        await self.shards.unseal_all(intent.ino)
        await self._drop(intent)

    # ----------------------------------------------------------------- rename

    async def rename_dir(self, src_parent: int, src_name: str, dst_parent: int, dst_name: str,
                         flags: int, creds: pb.Creds) -> None:
        if flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE) or flags == RENAME_NOREPLACE | RENAME_EXCHANGE:
            raise FsError(errno.EINVAL, f"bad rename flags {flags:#x}")
        if flags & RENAME_EXCHANGE:
            await exchange.exchange(self, src_parent, src_name, dst_parent, dst_name, creds)
            return
        names.check_name(src_name)
        names.check_name(dst_name)
        for _ in range(RETRIES):
            sp = self.store.need(src_parent)
            dp = self._need_dst_parent(dst_parent)
            require_search(self.store, sp, creds, "search source parent")
            require_search(self.store, dp, creds, "search destination parent")
            src = self.store.lookup(src_parent, src_name)
            if src is None:
                await self._not_a_dir(src_parent, src_name, creds)
            assert src is not None
            dst = self.store.lookup(dst_parent, dst_name)
            parents = {src_parent, dst_parent}
            subjects = {src.ino} | ({dst.ino} if dst else set())
            await self.settle(self.intents.conflicting(parents, subjects))
            exclusive = [(src_parent, src_name), (dst_parent, dst_name), *map(dir_key, subjects)]
            async with self.rename_lock, self.locks.hold(exclusive=exclusive, shared=map(dir_key, parents)):
                src2 = self.store.lookup(src_parent, src_name)
                dst2 = self.store.lookup(dst_parent, dst_name)
                if (src2 is None or src2.ino != src.ino or (dst2.ino if dst2 else 0) != (dst.ino if dst else 0)
                        or self.intents.conflicting(parents, subjects)):
                    continue  # changed while we waited: look again
                await self._rename_locked(self.store.need(src_parent), src_name,
                                          self.store.need(dst_parent), dst_name, flags, creds, src2, dst2)
                return
        raise FsError(errno.EAGAIN, "directories kept changing; retry")

    def _need_dst_parent(self, ino: int) -> pb.DirInfo:
        if ino and not is_dir_ino(ino):
            raise FsError(errno.ENOTDIR, "destination parent is not a directory")
        return self.store.need(ino)

    async def _rename_locked(self, sp: pb.DirInfo, src_name: str, dp: pb.DirInfo, dst_name: str,
                             flags: int, creds: pb.Creds, src: pb.DirInfo, dst: pb.DirInfo | None) -> None:
        # Checked in the order Linux's rename(2) checks them.
        if sp.ino == dp.ino and src_name == dst_name:
            return  # rename onto itself: nothing to do
        if dp.ino == src.ino or src.ino in self.store.ancestors(dp.ino):
            raise FsError(errno.EINVAL, "cannot move a directory into its own subtree")
        _require(sp, creds, perms.W_OK | perms.X_OK, "remove from source parent")
        _require(dp, creds, perms.W_OK | perms.X_OK, "create in destination parent")
        _sticky(sp, src.attr.uid, creds)
        if sp.ino != dp.ino:
            # its '..' entry changes: Linux asks for write permission on the directory itself
            _require(src, creds, perms.W_OK, "move directory to another parent")
        if dst is None:
            kind = await self.shards.file_type(dp.ino, dst_name, creds)
            if kind in FILE_TYPES:
                if flags & RENAME_NOREPLACE:
                    raise FsError(errno.EEXIST, f"{dst_name!r} exists")
                raise FsError(errno.ENOTDIR, f"{dst_name!r} is not a directory")
        else:
            if flags & RENAME_NOREPLACE:
                raise FsError(errno.EEXIST, f"{dst_name!r} exists")
            _sticky(dp, dst.attr.uid, creds)
            if self.store.has_children(dst.ino):
                raise FsError(errno.ENOTEMPTY, f"{dst_name!r} has subdirectories")
        intent = Intent("renamedir", ino=src.ino, parent=sp.ino, name=src_name, dst_parent=dp.ino,
                        dst_name=dst_name, replaced_ino=dst.ino if dst else 0)
        await self.store.db.write(lambda txn: self.intents.add_txn(txn, intent))
        crash_point("dir.renamedir.after_intent")
        await self.rename_forward(intent)
        log.debug("renamedir %d/%s -> %d/%s (%d)", sp.ino, src_name, dp.ino, dst_name, src.ino)

    async def rename_forward(self, i: Intent) -> None:
        """Run (or re-run) every step of a rename; each is idempotent. Locks are held."""
        if i.replaced_ino and self.store.get(i.replaced_ino) is not None:
            # The replaced directory goes away in the move transaction, so it
            # still existing means its seal and release may not have happened.
            if self.store.has_children(i.replaced_ino):
                await self._abort_rename(i, FsError(errno.ENOTEMPTY, "target has subdirectories"))
            empty = await self.shards.seal_all(i.replaced_ino)
            if not all(empty):
                await self._abort_rename(i, FsError(errno.ENOTEMPTY, "target directory has entries"))
            await self.shards.release(i.dst_parent, i.dst_name, i.replaced_ino)
            crash_point("dir.renamedir.after_seal_replaced")
        try:
            await self.shards.reserve(i.dst_parent, i.dst_name, i.ino)
        except FsError as e:
            if e.errno not in TRANSIENT:  # e.g. EEXIST: a file took the name; it will not change
                await self._abort_rename(i, e)
            raise
        crash_point("dir.renamedir.after_reserve")
        t = now_ns()

        def move(txn: lmdb.Transaction[bytes]) -> None:
            if i.replaced_ino and self.store.get_txn(txn, i.replaced_ino) is not None:
                self.store.delete_dir_txn(txn, i.replaced_ino, t)
            self.store.move_dir_txn(txn, i.ino, i.dst_parent, i.dst_name, t)

        await self.store.db.write(move)
        crash_point("dir.renamedir.after_commit")
        # Committed. Only the source name's reservation is left to release.
        await self._release_then_drop(i, i.parent, i.name)

    async def _abort_rename(self, i: Intent, why: FsError) -> NoReturn:
        """Decide durably to undo ``i``, undo what can be undone now, raise ``why``."""
        i.aborting = True
        await self.store.db.write(lambda txn: self.intents.update_txn(txn, i))
        await _quietly(self.rename_undo(i), "undo rename")
        raise why

    async def rename_undo(self, i: Intent) -> None:
        """Put the destination back as it was before ``i``; idempotent. Locks are held."""
        await self.shards.release(i.dst_parent, i.dst_name, i.ino)
        if i.replaced_ino and self.store.get(i.replaced_ino) is not None:
            try:
                await self.shards.reserve(i.dst_parent, i.dst_name, i.replaced_ino)
            except FsError as e:
                if e.errno != errno.EEXIST:
                    raise
                # A file was created under the name while it was released. The
                # replaced directory is empty and sealed everywhere, and a dir and
                # a file must never share a name: the directory goes.
                log.warning("rename undo: a file took %d/%s; removing the empty directory %d",
                            i.dst_parent, i.dst_name, i.replaced_ino)
                t = now_ns()

                def drop_replaced(txn: lmdb.Transaction[bytes]) -> None:
                    self.store.delete_dir_txn(txn, i.replaced_ino, t)
                    self.intents.drop_txn(txn, i.id)

                await self.store.db.write(drop_replaced)
                return
            await self.shards.unseal_all(i.replaced_ino)
        await self._drop(i)

    # ---------------------------------------------------------------- helpers

    async def settle(self, pending: list[Intent]) -> None:
        """Finish (or undo) pending intents an operation depends on; raise if one cannot be."""
        for intent in pending:
            await recovery.recover_intent(self, intent)

    async def _not_a_dir(self, parent: int, name: str, creds: pb.Creds) -> None:
        """Raise the right error for a name that is not a directory here."""
        kind = await self.shards.file_type(parent, name, creds)
        if kind in FILE_TYPES:
            raise FsError(errno.ENOTDIR, f"{name!r} is not a directory")
        raise FsError(errno.ENOENT, f"no directory {name!r}")

    async def _drop(self, intent: Intent) -> None:
        await self.store.db.write(lambda txn: self.intents.drop_txn(txn, intent.id))

    async def _release_then_drop(self, intent: Intent, parent: int, name: str) -> None:
        """Release a committed operation's old name; on failure leave it to recovery."""
        try:
            await self.shards.release(parent, name, intent.ino)
        except FsError as e:
            log.warning("%s of %d committed; releasing %d/%s failed (%s), recovery will retry",
                        intent.op, intent.ino, parent, name, e)
            return
        # Finished: the caller need not wait for the intent's removal to be durable. Lost in a
        # crash, it is settled again by recovery, whose steps are all idempotent.
        task = asyncio.get_running_loop().create_task(self._drop_quietly(intent))
        self._drops.add(task)
        task.add_done_callback(self._drops.discard)

    async def _drop_quietly(self, intent: Intent) -> None:
        try:
            await self._drop(intent)
        except Exception as e:  # noqa: BLE001 - recovery settles it later
            log.warning("dropping the finished %s intent %d failed (%s); recovery will", intent.op, intent.id, e)

    async def drain(self) -> None:
        """Wait for the intents of finished operations to be dropped (before the store closes)."""
        while self._drops:
            await asyncio.gather(*self._drops, return_exceptions=True)


async def _quietly(step: Awaitable[None], what: str) -> None:
    """Run an undo step whose failure must not hide the operation's own error."""
    try:
        await step
    except FsError as e:
        log.warning("%s failed (%s); the intent stays for recovery", what, e)
