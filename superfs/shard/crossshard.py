"""Operations that span shards: rename and link across shards, owed link counts.

Protocol for a rename whose destination entry lives on another shard (the
source shard coordinates):

1. one transaction here: check the source, write an *intent* keyed by the
   source entry (which locks that entry against unlink/rename/replace);
2. ``RemoteLink`` on the destination shard: inserts or replaces the entry,
   idempotent by txid (it records the txid with its reply in the same
   transaction, and counts the replaced inode's lost link there or through
   its own outbox);
3. one transaction here: delete the source entry and the intent.

A crash or an unreachable peer between 1 and 3 leaves the intent, which the
background loop rolls forward (re-sending RemoteLink is safe by txid). A
definitive refusal (EEXIST, ENOENT, EISDIR ...) drops the intent and leaves
the source in place. So after recovery the file has exactly one name.

The intent records the destination entry as the caller's request found it
(the inode there, or none; looked up before step 1, and "none" when the
destination shard could not be asked), and RemoteLink is applied only onto
exactly that. A caller told EIO may create a new file at
the destination meanwhile: the roll-forward then finds another target, is
refused (ECANCELED, recorded under the txid so that an older attempt still
in flight is refused too) and rolls the rename back. While the live request
is still waiting, a target that changed since the lookup is looked up again
(POSIX lets a rename replace whatever is there when it happens).

An exchange (renameat2 RENAME_EXCHANGE) of two files is the same shape:
the intent carries RENAME_EXCHANGE in its flags, step 2 (RemoteLink with
``exchange``) points the destination entry at the source's inode and
answers what it held, recorded by txid, and step 3 points the source entry
at that. Between 2 and 3 the source's file has both names and the other
file none; the roll-forward finishes it, so after recovery each has one.

A link to an inode whose home is another shard is the same shape: intent on
the new name, ``AdjustNlink(+1)`` on the home shard (by txid), then insert.
An unlink of such a name writes an outbox item in its own transaction; the
item is delivered (``AdjustNlink(-1)``, by txid) right away and retried by
the background loop until the home shard has it.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import uuid
from contextlib import asynccontextmanager
from typing import AsyncIterator, Awaitable, Callable, TypeVar

from superfs.errors import FsError
from superfs.faults import crash_point
from superfs.perms import CredsLike
from superfs.shard import name_ops
from superfs.shard.cluster import ShardCluster
from superfs.shard.confirms import AppliedConfirmer
from superfs.shard.name_ops import DirGuard
from superfs.shard.records import Inode, Intent, OutboxItem, dentry_key, encode_name
from superfs.shard.store import FileMetaStore, ShardTxn
from superfs.v1 import superfs_pb2 as pb

log = logging.getLogger(__name__)

T = TypeVar("T")

# Answers that say the peer did not and will not apply the step: the intent
# is dropped. They are all given after the peer's idempotency check, or from
# the request alone, so a replay of an applied step never gets them.
DEFINITIVE = frozenset({errno.ENOENT, errno.EEXIST, errno.EISDIR, errno.EINVAL, errno.ENAMETOOLONG,
                        errno.ENOTDIR, errno.EMLINK, errno.EPERM, errno.ECANCELED})


def _gave_up(e: FsError, fresh: bool) -> bool:
    """Did the peer refuse for good? EAGAIN (busy, or no map yet) proves that
    nothing was applied only for a txid never sent before this request."""
    return e.errno in DEFINITIVE or (fresh and e.errno == errno.EAGAIN)
ESTALE_RETRIES = 10  # a partition being moved refuses for a moment (ClusterView.after_stale waits)
BUSY_RETRIES = 5
RETARGET_RETRIES = 3  # the live request re-reads a destination that changed under it this often


def new_txid() -> str:
    return uuid.uuid4().hex


class TargetChanged(FsError):
    """RemoteLink found another destination than the intent expected; nothing was applied there.

    ``shard`` recorded the refusal when it was asked to (a roll-forward).
    """

    def __init__(self, shard: int, message: str) -> None:
        super().__init__(errno.ECANCELED, message)
        self.shard = shard


def inode_of_attr(attr: pb.Attr) -> Inode:
    return Inode(attr.ino, attr.mode, attr.nlink, attr.uid, attr.gid, attr.size, attr.atime_ns,
                 attr.mtime_ns, attr.ctime_ns, attr.generation, rdev=attr.rdev)


class KeyLocks:
    """In-process exclusion per dentry key while a cross-shard step is awaited.

    The intent already makes conflicting operations fail with EAGAIN; this
    lets operations from this process wait for the few milliseconds instead.
    """

    def __init__(self) -> None:
        self._held: dict[bytes, asyncio.Event] = {}

    def held(self, key: bytes) -> bool:
        return key in self._held

    @asynccontextmanager
    async def hold(self, key: bytes) -> AsyncIterator[None]:
        while key in self._held:
            await self._held[key].wait()
        ev = self._held[key] = asyncio.Event()
        try:
            yield
        finally:
            del self._held[key]
            ev.set()

    async def wait_free(self, key: bytes, timeout_s: float) -> None:
        ev = self._held.get(key)
        if ev is not None:
            try:
                await asyncio.wait_for(ev.wait(), timeout_s)
            except asyncio.TimeoutError:
                pass  # the store answers EAGAIN on the intent


class CrossShard:
    """Runs the network steps between the transactions of cross-shard operations."""

    def __init__(self, store: FileMetaStore, cluster: ShardCluster) -> None:
        self.store = store
        self.cluster = cluster
        self.locks = KeyLocks()
        self.confirms = AppliedConfirmer(store, cluster)

    # ------------------------------------------------------ idempotent steps

    async def remote_link(self, intent: Intent, *, final: bool) -> tuple[int, int]:
        """Step 2 of a rename: the destination entry, wherever it lives now.

        Returns (replaced ino, the shard that holds the entry). Raises
        :class:`TargetChanged` when the destination no longer holds what the
        intent expects; with ``final`` (a roll-forward) that refusal is
        recorded there under the txid.
        """
        raw = encode_name(intent.dst_name)
        no_replace = bool(intent.flags & name_ops.RENAME_NOREPLACE)
        check = intent.expect_ino >= 0
        expect = intent.expect_ino if check else None
        busy = 0
        for attempt in range(ESTALE_RETRIES + BUSY_RETRIES):
            target = self.cluster.shard_of_entry(intent.dst_parent, intent.dst_name)
            if target == self.cluster.shard_id:
                replaced = await self.store.write(lambda t: name_ops.remote_link(
                    t, intent.dst_parent, raw, ino=intent.ino, ftype=intent.ftype, replace=True,
                    no_replace=no_replace, txid=intent.txid, expect_ino=expect, record_refusal=final))
                if replaced is None:
                    raise TargetChanged(target, "the destination changed since the rename began")
                return replaced, target
            req = pb.RemoteLinkRequest(parent_ino=intent.dst_parent, name=intent.dst_name, ino=intent.ino,
                                       type=pb.FileType.ValueType(intent.ftype), replace=not no_replace,
                                       no_replace=no_replace,
                                       txid=intent.txid, check_target=check, expect_ino=max(0, intent.expect_ino),
                                       record_refusal=final)
            try:
                reply = await self.cluster.shard(target).remote_link(req)
                return int(reply.replaced_ino), target
            except FsError as e:
                if e.errno == errno.ECANCELED:
                    raise TargetChanged(target, e.message) from None
                if e.errno == errno.EAGAIN and busy < BUSY_RETRIES:
                    # the destination name is locked by another cross-shard step: brief wait
                    busy += 1
                    await asyncio.sleep(0.02 * 2**busy)
                    continue
                if e.errno != errno.ESTALE or attempt - busy >= ESTALE_RETRIES - 1:
                    raise
                await self.cluster.after_stale(attempt)
        raise AssertionError("unreachable")

    async def adjust_nlink(self, ino: int, delta: int, txid: str) -> tuple[Inode, int]:
        """AdjustNlink on the inode's home shard (here, if that is us); (inode, that shard)."""
        for attempt in range(ESTALE_RETRIES):
            home = self.cluster.shard_of_ino(ino)
            if home == self.cluster.shard_id:
                return await self.store.write(lambda t: name_ops.adjust_nlink(t, ino, delta, txid)), home
            try:
                attr = await self.cluster.shard(home).adjust_nlink(pb.NlinkRequest(ino=ino, delta=delta, txid=txid))
                return inode_of_attr(attr), home
            except FsError as e:
                if e.errno != errno.ESTALE or attempt == ESTALE_RETRIES - 1:
                    raise
                await self.cluster.after_stale(attempt)
        raise AssertionError("unreachable")

    # ---------------------------------------------------------------- rename

    async def rename(self, *, src_parent: int, src_raw: bytes, dst_parent: int, dst_name: str, flags: int,
                     creds: CredsLike, guard: DirGuard, owners: dict[int, int],
                     target: Callable[[], Awaitable[int]]) -> None:
        """``target()`` looks up what the destination entry holds now (0: nothing)."""
        txid = new_txid()
        async with self.locks.hold(dentry_key(src_parent, src_raw)):
            expect = await target()
            intent = await self.store.write(lambda t: name_ops.begin_rename(
                t, src_parent, src_raw, dst_parent, dst_name, flags=flags, creds=creds, guard=guard,
                owners=owners, txid=txid, expect_ino=expect))
            crash_point("shard.rename.after_intent")
            for _ in range(RETARGET_RETRIES):
                try:
                    await self._finish_rename(intent, fresh=True)
                    return
                except TargetChanged:
                    # nothing applied there (not recorded either): the caller still waits,
                    # so the rename may replace what the destination holds now
                    now = await target()
                    intent = await self.store.write(lambda t: name_ops.retarget_intent(t, intent, now))
            await self.store.write(lambda t: name_ops.drop_intent(t, intent))
            raise FsError(errno.EAGAIN, "the destination kept changing during the rename; try again")

    async def remote_exchange(self, intent: Intent) -> tuple[int, int]:
        """Step 2 of an exchange: the destination entry takes our inode; what it held."""
        raw = encode_name(intent.dst_name)
        busy = 0
        for attempt in range(ESTALE_RETRIES + BUSY_RETRIES):
            target = self.cluster.shard_of_entry(intent.dst_parent, intent.dst_name)
            if target == self.cluster.shard_id:
                return await self.store.write(lambda t: name_ops.remote_exchange(
                    t, intent.dst_parent, raw, ino=intent.ino, ftype=intent.ftype, txid=intent.txid))
            req = pb.RemoteLinkRequest(parent_ino=intent.dst_parent, name=intent.dst_name, ino=intent.ino,
                                       type=pb.FileType.ValueType(intent.ftype), exchange=True, txid=intent.txid)
            try:
                reply = await self.cluster.shard(target).remote_link(req)
                return int(reply.replaced_ino), int(reply.replaced_type)
            except FsError as e:
                if e.errno == errno.EAGAIN and busy < BUSY_RETRIES:
                    busy += 1
                    await asyncio.sleep(0.02 * 2**busy)
                    continue
                if e.errno != errno.ESTALE or attempt - busy >= ESTALE_RETRIES - 1:
                    raise
                await self.cluster.after_stale(attempt)
        raise AssertionError("unreachable")

    async def _finish_exchange(self, intent: Intent, fresh: bool) -> None:
        try:
            ino, ftype = await self.remote_exchange(intent)
        except FsError as e:
            if _gave_up(e, fresh):
                await self.store.write(lambda t: name_ops.drop_intent(t, intent))
                raise
            raise FsError(errno.EIO, f"destination shard unavailable, the exchange completes later: {e.message}")
        crash_point("shard.exchange.after_remote")
        await self.store.write(lambda t: name_ops.finish_exchange(t, intent, ino, ftype))
        crash_point("shard.exchange.after_finish")
        await self._renamed_elsewhere(intent)
        log.debug("exchange %s: %d/%s <-> %d/%s", intent.txid, intent.parent, intent.raw_name,
                  intent.dst_parent, intent.dst_name)

    async def _finish_rename(self, intent: Intent, fresh: bool = False) -> None:
        if intent.flags & name_ops.RENAME_EXCHANGE:
            await self._finish_exchange(intent, fresh)
            return
        try:
            replaced, peer = await self.remote_link(intent, final=not fresh)
        except TargetChanged as e:
            if fresh:
                raise
            recorded_on = e.shard
            await self.store.write(lambda t: name_ops.drop_intent(t, intent, recorded_on=recorded_on))
            log.info("rolled rename %s back: its destination %d/%s holds another file than when it began",
                     intent.txid, intent.dst_parent, intent.dst_name)
            raise
        except FsError as e:
            if _gave_up(e, fresh):
                await self.store.write(lambda t: name_ops.drop_intent(t, intent))
                raise
            raise FsError(errno.EIO, "destination shard unavailable: the rename completes later if its "
                                     f"destination still holds what it held, else it is undone: {e.message}")
        crash_point("shard.rename.after_remote_link")
        await self.store.write(lambda t: name_ops.finish_rename(t, intent, replaced, peer))
        self.confirms.noted(name_ops.APPLIED_REMOTE_LINK, intent.txid)
        crash_point("shard.rename.after_finish")
        await self._renamed_elsewhere(intent)
        log.debug("rename %s: ino %d now at %d/%s", intent.txid, intent.ino, intent.dst_parent, intent.dst_name)

    async def _renamed_elsewhere(self, intent: Intent) -> None:
        """The renamed file's ctime, when its inode lives on neither shard of the rename
        (the two steps moved it when it lives on theirs). Best effort: a ctime."""
        try:
            home = self.cluster.shard_of_ino(intent.ino)
            if home in (self.cluster.shard_id, self.cluster.shard_of_entry(intent.dst_parent, intent.dst_name)):
                return
            await self.adjust_nlink(intent.ino, 0, f"{intent.txid}/ctime")  # moves ctime, once by txid
        except FsError as e:
            log.debug("rename %s: ctime of inode %d not moved: %s", intent.txid, intent.ino, e)

    # ------------------------------------------------------------------ link

    async def link(self, ino: int, parent: int, raw: bytes) -> Inode:
        txid = new_txid()
        async with self.locks.hold(dentry_key(parent, raw)):
            intent = await self.store.write(lambda t: name_ops.begin_link(t, ino, parent, raw, txid))
            crash_point("shard.link.after_intent")
            return await self._finish_link(intent, fresh=True)

    async def _finish_link(self, intent: Intent, fresh: bool = False) -> Inode:
        try:
            node, home = await self.adjust_nlink(intent.ino, +1, intent.txid)
        except FsError as e:
            if _gave_up(e, fresh):
                await self.store.write(lambda t: name_ops.drop_intent(t, intent))
                raise
            raise FsError(errno.EIO, f"the file's home shard is unavailable: {e.message}")
        crash_point("shard.link.after_adjust")
        err = await self.store.write(lambda t: name_ops.finish_link(t, intent, node.ftype, home))
        self.confirms.noted(name_ops.APPLIED_NLINK, intent.txid)
        if err:
            raise FsError(err, "the new name could not be inserted")
        return node

    # ---------------------------------------------------------- background

    async def deliver(self, item: OutboxItem, down: set[int] | None = None) -> Inode | None:
        """Deliver one owed nlink change; None if it must wait for a later round.

        Deliveries of one txid are serialised here and start only while its
        item is queued: once the item is gone (and the receiver told it may
        forget the txid), nothing here sends the txid again.
        """
        try:
            home = self.cluster.shard_of_ino(item.ino)
        except FsError as e:
            if e.errno != errno.ENOENT:
                return None
            home = -1
        if down is not None and home in down:
            return None
        async with self.locks.hold(b"outbox\0" + item.txid.encode()):
            with self.store.read() as t:
                if not t.outbox_has(item.txid):
                    return None  # delivered meanwhile (the unlink's own call, or an earlier round)
            node: Inode | None = None
            applied_on: int | None = None
            if home >= 0:
                try:
                    node, applied_on = await self.adjust_nlink(item.ino, item.delta, item.txid)
                except FsError as e:
                    if e.errno not in (errno.ENOENT, errno.EMLINK):
                        log.debug("outbox %s for inode %d: shard %d: %s", item.txid, item.ino, home, e)
                        if down is not None:
                            down.add(home)
                        return None
                    log.warning("dropping owed link change %+d of inode %d: %s", item.delta, item.ino, e)
            crash_point("shard.outbox.after_deliver")

            def done(t: ShardTxn) -> None:
                t.delete_outbox(item.txid)
                if applied_on is not None:
                    t.add_confirm(name_ops.APPLIED_NLINK, item.txid, applied_on)

            await self.store.write(done)
            if applied_on is not None:
                self.confirms.noted(name_ops.APPLIED_NLINK, item.txid)
            return node

    async def deliver_outbox(self, limit: int = 512) -> int:
        if not self.cluster.ready:
            return 0
        items = await asyncio.to_thread(self._read, lambda t: t.outbox(limit))
        down: set[int] = set()
        done = 0
        for item in items:
            if await self.deliver(item, down) is not None:
                done += 1
        return done

    async def roll_forward(self) -> int:
        """Finish (or drop) the intents left by a crash or an unreachable peer."""
        if not self.cluster.ready:
            return 0  # without a map no answer could be trusted to be definitive
        intents = await asyncio.to_thread(self._read, lambda t: t.intents())
        finished = 0
        for listed in intents:
            if self.locks.held(listed.key()):
                continue  # a live request is driving it
            async with self.locks.hold(listed.key()):
                with self.store.read() as t:
                    intent = t.intent(listed.key())
                if intent is None or intent.txid != listed.txid:
                    continue  # finished meanwhile: its txid must not be sent again
                try:
                    if intent.kind == "rename":
                        await self._finish_rename(intent)
                    else:
                        await self._finish_link(intent)
                    finished += 1
                    log.info("rolled %s %s forward", intent.kind, intent.txid)
                except FsError as e:
                    if e.errno in DEFINITIVE:
                        log.info("dropped %s %s: %s", intent.kind, intent.txid, e)
                    else:
                        log.debug("%s %s still pending: %s", intent.kind, intent.txid, e)
        return finished

    def _read(self, fn: Callable[[ShardTxn], T]) -> T:
        """A read transaction, run on a worker thread by the background rounds."""
        with self.store.read() as t:
            return fn(t)
