"""Writing chunk bytes into slots: planning a write, taking its bytes as they stream in, committing it.

A write of ``[offset, end)`` to a chunk is a :class:`WritePlan`, made before
its bytes arrive (a chained write streams them from a socket, so they are
never all in memory at once):

- *in place*, when it only appends (``offset`` at or past the chunk's end) to
  a chunk whose slot has room, and nothing longer was ever committed in that
  slot by this process (a reader holding an older, longer header may still
  be reading the bytes past the current end);
- otherwise *copy on write*: a fresh slot gets the bytes the write keeps
  (read and verified first, so corruption is never laundered under fresh
  sums), then the new bytes; the old slot is released after the commit.
  A write that replaces the whole chunk copies nothing.

The bytes of the blocks a write touches but does not cover come from the
old content and go into the block sums (:class:`BlockSummer`). The commit
makes the slot file durable, then puts the new header in one LMDB group
commit, which checks that the header is still the one the plan was made
from (a deletion or fsck's cut may have come between): if not, the write
is planned again with the same bytes, read back from where they were put.

Writers of one chunk take turns (a lock per chunk, in this process); every
plan pins the slot epoch, so a slot it reads or writes is not reused under it.
"""
from __future__ import annotations

import errno
import logging
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

import lmdb

from superfs.dataserver import blocks
from superfs.dataserver import chunk_format as fmt
from superfs.dataserver.slots import Slot, slot_class
from superfs.deadlines import call_deadline
from superfs.errors import FsError

if TYPE_CHECKING:
    from superfs.dataserver.chunk_store import ChunkStore, Spare

log = logging.getLogger(__name__)

COPY_PIECE = 4 << 20  # kept bytes of a copy-on-write move in pieces this big
_ZEROS = bytes(1 << 20)


class Conflict(Exception):
    """The chunk's header changed between a plan and its commit."""


class KeyLocks:
    """One lock per chunk key, created on demand and dropped when unused."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[bytes, tuple[threading.Lock, int]] = {}

    def acquire(self, key: bytes) -> None:
        with self._guard:
            lock, users = self._locks.get(key, (None, 0))
            if lock is None:
                lock = threading.Lock()
            self._locks[key] = (lock, users + 1)
        lock.acquire()

    def release(self, key: bytes) -> None:
        with self._guard:
            lock, users = self._locks[key]
            lock.release()
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


def version_of(head: fmt.ChunkHead | None) -> tuple[int, int, int, Slot | None] | None:
    """What identifies one committed state of a chunk's header."""
    return None if head is None else (head.write_seq, head.length, head.checksum, head.slot)


def zero_pieces(n: int) -> Iterator[memoryview]:
    view = memoryview(_ZEROS)
    while n > 0:
        take = min(n, len(view))
        yield view[:take]
        n -= take


@dataclass
class _Layout:
    """Where a write's bytes go and which blocks it rewrites."""

    old: fmt.ChunkHead | None
    offset: int
    end: int
    new_len: int
    start: int          # where the rewritten bytes begin: offset, or the old end when a gap is zero-filled
    first_block: int    # first block the write rewrites
    stop_block: int     # one past the last one


def layout(old: fmt.ChunkHead | None, offset: int, end: int, truncate: bool) -> _Layout:
    old_len = old.length if old is not None else 0
    new_len = end if truncate else max(old_len, end)
    start = min(offset, old_len)
    b = blocks.BLOCK
    first = start // b
    # the block holding ``start`` is rewritten if the write reaches into it, or if it keeps only its
    # head (a cut in the middle of a block changes that block's sum)
    stop = blocks.block_count(end) if end > first * b else first
    return _Layout(old, offset, end, new_len, start, first, stop)


class WritePlan:
    """One write, planned: feed it exactly ``end - offset`` bytes, then commit (or abort)."""

    def __init__(self, store: "ChunkStore", key: bytes, offset: int, end: int, truncate: bool, slot_hint: int,
                 spare: "Spare | None" = None, *, budget: bool = True) -> None:
        self.store = store
        self.key = key
        self.offset = offset
        self.end = end
        self.truncate = truncate
        self.slot_hint = slot_hint
        self.spare = spare
        self._stack = ExitStack()
        self._fed = 0
        self.slot: Slot | None = None
        self._new_slot = False
        self.spared = False
        try:
            if budget:
                self._stack.enter_context(store.write_budget.admit(end))
            store.locks.acquire(key)
            self._stack.callback(store.locks.release, key)
            self._stack.enter_context(store.slots.pinned())
            self._plan()
        except BaseException:
            self._stack.close()
            raise

    # -------------------------------------------------------------- planning

    def _plan(self) -> None:
        store = self.store
        old = store.head_of(self.key)
        if old is None and store.degraded and not self.truncate:
            # The chunk may exist, longer, on the other replicas: creating it
            # from this range alone would make this replica disagree with them.
            raise FsError(errno.EIO, f"chunk {fmt.split_key(self.key)} was lost here and is not repaired yet")
        self.base = version_of(old)
        lay = self.lay = layout(old, self.offset, self.end, self.truncate)
        b = blocks.BLOCK
        old_len = old.length if old is not None else 0
        before = store.old_bytes(self.key, old, lay.first_block * b, lay.start) if old is not None else b""
        after_stop = min(lay.stop_block * b, lay.new_len)
        after = store.old_bytes(self.key, old, self.end, after_stop) if old is not None and after_stop > self.end \
            else bytes(max(0, after_stop - self.end))
        self.summer = blocks.BlockSummer(lay.start, self.end, before, after)
        in_place = (old is not None and not old.legacy and old.block_log2 == blocks.BLOCK_LOG2
                    and self.offset >= old_len and self.end <= old.slot.size  # type: ignore[union-attr]
                    and old_len >= store.high_water.get(old.slot, old_len))  # type: ignore[arg-type]
        clean = False
        if in_place:
            assert old is not None and old.slot is not None
            slot = self.slot = old.slot
            store.slots.prepare(slot, old_len, self.end)
        else:
            slot, clean = store.slots.allocate(slot_class(max(lay.new_len, self.slot_hint, store.default_slot)))
            self.slot = slot
            self._new_slot = True
            store.slots.prepare(slot, 0, lay.new_len)
            self._copy_kept(old, before, after)
        self._pos = lay.start
        for piece in zero_pieces(self.offset - lay.start):  # a gap past the old end reads as zeros
            self.summer.feed(piece)
            if not clean:  # a clean slot is zeros already; a dirty one, or our own, is not
                store.slots.pwrite(slot, self._pos, piece)
            self._pos += len(piece)
        self._kept_sums = self._sums_kept(old)

    def _copy_kept(self, old: fmt.ChunkHead | None, before: bytes, after: bytes) -> None:
        """Into the fresh slot: the old bytes this write keeps, verified on the way."""
        if old is None:
            return
        store, lay, slot = self.store, self.lay, self.slot
        assert slot is not None
        b = blocks.BLOCK
        head_end = lay.first_block * b
        for pos in range(0, head_end, COPY_PIECE):
            store.slots.pwrite(slot, pos, store.old_bytes(self.key, old, pos, min(pos + COPY_PIECE, head_end)))
        if before:
            store.slots.pwrite(slot, head_end, before)
        if after:
            store.slots.pwrite(slot, self.end, after)
        tail = lay.stop_block * b
        for pos in range(tail, lay.new_len, COPY_PIECE):
            store.slots.pwrite(slot, pos, store.old_bytes(self.key, old, pos, min(pos + COPY_PIECE, lay.new_len)))

    def _sums_kept(self, old: fmt.ChunkHead | None) -> tuple[bytes, bytes]:
        """The sums of the untouched blocks before and after the rewritten ones."""
        if old is None:
            return b"", b""
        lay = self.lay
        count = blocks.block_count(lay.new_len)
        if not old.legacy and old.block_log2 == blocks.BLOCK_LOG2:
            size = blocks.SUM.size
            return old.sums[:lay.first_block * size], old.sums[lay.stop_block * size:count * size]
        # a legacy chunk has no block sums: hash the kept bytes (verified whole already)
        b = blocks.BLOCK
        head = blocks.sums_of(self.store.old_bytes(self.key, old, 0, lay.first_block * b))
        tail = blocks.sums_of(self.store.old_bytes(self.key, old, lay.stop_block * b, lay.new_len)) \
            if lay.new_len > lay.stop_block * b else b""
        return head, tail

    # ----------------------------------------------------------------- bytes

    def feed(self, piece: bytes | bytearray | memoryview, *, aligned: bool = False) -> None:
        """The next bytes of the write, in order (``aligned``: from a page-aligned buffer)."""
        n = len(piece)
        if self._fed + n > self.end - self.offset:
            raise FsError(errno.EINVAL, "more bytes than the write announced")
        assert self.slot is not None
        self.store.slots.pwrite(self.slot, self._pos, piece, aligned=aligned)
        self.summer.feed(piece)
        self._pos += n
        self._fed += n

    # ---------------------------------------------------------------- commit

    def commit(self) -> int:
        """Durable, then recorded; returns the chunk's length. Releases the plan either way."""
        try:
            if self._fed != self.end - self.offset:
                raise FsError(errno.EIO, f"write ended after {self._fed} of {self.end - self.offset} bytes")
            store, lay, slot = self.store, self.lay, self.slot
            assert slot is not None
            touched = self.summer.finish()
            kept_head, kept_tail = self._kept_sums
            sums = kept_head + b"".join(blocks.SUM.pack(s) for s in touched) + kept_tail
            if len(sums) != blocks.SUM.size * blocks.block_count(lay.new_len):
                raise FsError(errno.EIO, f"internal error: {len(sums) // 8} block sums for {lay.new_len} bytes")
            store.slots.sync(slot)
            old_len = lay.old.length if lay.old is not None else 0
            deadline = call_deadline.get()
            if deadline is not None and time.monotonic() > deadline:
                raise FsError(errno.ETIMEDOUT, "the caller stopped waiting before this write could be recorded")
            try:
                length = store.lmdb.write_now(lambda txn: self._record(txn, slot, sums))
            except Conflict:
                return self._again()
            if self.spared:
                if self._new_slot:
                    store.slots.discard(slot)
                return old_len
            store.note_length(slot, max(old_len, length))
            if self._new_slot and lay.old is not None and lay.old.slot is not None:
                store.forget_slot(lay.old.slot)
            self._new_slot = False  # committed: the slot is the chunk's now
            log.debug("wrote chunk %d:%d [%d, %d) -> length %d", *fmt.split_key(self.key), self.offset, self.end,
                      length)
            return length
        finally:
            self.abort()

    def _record(self, txn: lmdb.Transaction[bytes], slot: Slot, sums: bytes) -> int:
        """(writer thread) put the header, if the chunk is still what the plan saw."""
        store = self.store
        raw = txn.get(self.key, db=store.head_db)
        cur = fmt.decode_head(raw) if raw is not None else None
        if version_of(cur) != self.base:
            raise Conflict()
        if self.spare is not None and cur is not None and self.spare.protects(cur, time.time_ns()):
            log.info("chunk %d:%d left uncut: written at sequence %d, %.1f s ago", *fmt.split_key(self.key),
                     cur.write_seq, (time.time_ns() - cur.written_ns) / 1e9)
            self.spared = True
            return cur.length
        new_len = self.lay.new_len
        store.put_head(txn, self.key, slot, new_len, sums, cur)
        return new_len

    def _again(self) -> int:
        """The header changed under the plan: plan again, with the bytes read back from the slot."""
        assert self.slot is not None
        data = bytearray(self.end - self.offset)
        self.store.slots.pread_into(self.slot, self.offset, data)
        log.debug("chunk %d:%d changed while being written: writing again", *fmt.split_key(self.key))
        key, offset, truncate, hint, spare = self.key, self.offset, self.truncate, self.slot_hint, self.spare
        store = self.store
        self.abort()
        plan = WritePlan(store, key, offset, offset + len(data), truncate, hint, spare)
        plan.feed(data)
        return plan.commit()

    def abort(self) -> None:
        """Give up (or finish): free an uncommitted fresh slot, let go of the chunk."""
        if self._new_slot and self.slot is not None:
            self.store.slots.discard(self.slot)
            self._new_slot = False
        self._stack.close()


def cut(store: "ChunkStore", key: bytes, length: int, spare: "Spare") -> bool:
    """Cut or zero-extend a chunk to ``length``; False if ``spare`` protects it (nothing changed).

    A cut of a slot chunk stays in place (the sums of the blocks kept, the last
    one recomputed); growing it, or a chunk still in the old layout, goes
    through a :class:`WritePlan` of no bytes.
    """
    store.locks.acquire(key)
    try:
        with store.slots.pinned():
            old = store.head_of(key)
            if old is None:
                return True
            if old.legacy or old.block_log2 != blocks.BLOCK_LOG2 or length >= old.length:
                in_place = False
            else:
                in_place = True
                done = _cut_in_place(store, key, old, length, spare)
    finally:
        store.locks.release(key)
    if in_place:
        return done
    if length == old.length and not old.legacy:
        return True
    plan = WritePlan(store, key, length, length, True, 0, spare)  # copies into a slot, or zero-extends
    plan.commit()
    return not plan.spared


def _cut_in_place(store: "ChunkStore", key: bytes, old: fmt.ChunkHead, length: int, spare: "Spare") -> bool:
    b = blocks.BLOCK
    count = blocks.block_count(length)
    sums = old.sums[:count * blocks.SUM.size]
    if length % b:
        last = (length // b) * b
        sums = sums[:-blocks.SUM.size] + blocks.SUM.pack(blocks.sum_block(store.old_bytes(key, old, last, length)))
    base = version_of(old)
    assert old.slot is not None
    slot = old.slot

    def record(txn: lmdb.Transaction[bytes]) -> bool:
        raw = txn.get(key, db=store.head_db)
        cur = fmt.decode_head(raw) if raw is not None else None
        if version_of(cur) != base:
            raise Conflict()
        assert cur is not None
        if spare.protects(cur, time.time_ns()):
            log.info("chunk %d:%d left uncut: written at sequence %d, %.1f s ago", *fmt.split_key(key),
                     cur.write_seq, (time.time_ns() - cur.written_ns) / 1e9)
            return False
        store.put_head(txn, key, slot, length, sums, cur)
        return True

    try:
        done: bool = store.lmdb.write_now(record)
    except Conflict:
        return False  # deleted or rewritten meanwhile: this cut is moot
    if done:
        store.note_length(slot, old.length)
        log.debug("truncated chunk %d:%d %d -> %d", *fmt.split_key(key), old.length, length)
    return done


def repair(store: "ChunkStore", key: bytes, head: fmt.ChunkHead, fixed: dict[int, bytes]) -> int:
    """Write back corrupt blocks of a slot chunk with a replica's bytes that match their sums here."""
    if head.slot is None:
        return 0
    ino, index = fmt.split_key(key)
    store.locks.acquire(key)
    try:
        with store.slots.pinned():
            if version_of(store.head_of(key)) != version_of(head):
                return 0  # rewritten meanwhile: the new bytes carry new sums
            done = 0
            for blk, data in sorted(fixed.items()):
                want = min(head.block, head.length - blk * head.block)
                if len(data) != want or blocks.sum_block(data) != blocks.get_sum(head.sums, blk):
                    log.warning("chunk %d:%d block %d: the other replica's bytes do not match the checksum "
                                "here either; not repaired", ino, index, blk)
                    continue
                store.slots.pwrite(head.slot, blk * head.block, data)
                done += 1
            if done:
                store.slots.sync(head.slot)
                log.warning("chunk %d:%d in %s: repaired %d corrupt block(s) from another replica",
                            ino, index, store.store.path, done)
            return done
    finally:
        store.locks.release(key)
