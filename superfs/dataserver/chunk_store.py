"""ChunkStore: the data server's engine: chunk bytes in slot files, an LMDB index.

Millions of chunks must not become millions of local files (that would
recreate underneath us the small-file problem SuperFS exists to solve), nor
megabyte values in LMDB (every write copied into the map, every read
faulted through it): a chunk's bytes live in a slot of a large sparse file
(:mod:`superfs.dataserver.slots`), and LMDB holds only its header (where it
is, its length, a checksum per 64 KiB block, its write stamps; see
``chunk_format``) and a ``meta`` sub-database with the chunk count and byte
total, updated in the same transaction as the header, so statistics cost O(1).

Every read verifies the blocks it touches (a 4 KiB read hashes 64 KiB). A
mismatch is logged as an ERROR naming the chunk and raised as
:class:`CorruptBlocks` (EIO) listing the bad blocks: the byte path then
repairs them from another replica (:meth:`repair_blocks`), or the client
reads another replica. Chunks of a store written before slots existed keep
their bytes in LMDB (``chunk_data``) and are read there, checksummed whole,
until their next write or cut moves them into a slot (:meth:`migrate`
moves the rest in the background).

Writes (``chunk_writes``) are planned, fed their bytes (a chained write
streams them from a socket), made durable and recorded in one group commit
(``LmdbStore``: many writes share one fsync; their slot files share one
``fdatasync``). They run on threads: the byte path's connection threads,
or a pool for the gRPC path.

Every write or cut of a chunk stamps its header with the server's clock and
the next number of a per-server *write sequence* (kept in ``meta``, bumped in
the same transaction). fsck reads the sequence when it starts scanning and
asks for deletions that spare whatever was written since, or recently
(``max_write_seq`` / ``min_age_ns``): a writer's bytes pushed but not yet
sized on the shard look exactly like garbage past the end of its file.

No gRPC here: the service layer decodes requests and calls these methods.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import errno
import logging
import mmap
import os
import time
from dataclasses import dataclass
from typing import Any, Iterator

import lmdb

from superfs.dataserver import blocks, chunk_listing, legacy
from superfs.dataserver import chunk_format as fmt
from superfs.dataserver.byte_budget import ByteBudget
from superfs.dataserver.chunk_writes import KeyLocks, WritePlan, cut, repair
from superfs.dataserver.slots import RESERVE_BYTES, Slot, SlotFiles
from superfs.errors import FsError
from superfs.lmdb_store import LmdbStore

log = logging.getLogger(__name__)

DB_HEAD = "chunk_head"
DB_DATA = "chunk_data"   # bytes of chunks from before slot files (version 1/2 headers)
DB_META = "meta"
SLOT_DIR = "slots"
_META_CHUNKS = b"chunks"
_META_BYTES = b"bytes"
# The server id this store belongs to, written at its first start: a store
# without it was just created, which for an id the cluster already knew
# means the server lost its chunks (see ``degraded``).
_META_IDENTITY = b"identity"
_META_DEGRADED = b"degraded"
_META_WRITE_SEQ = b"write_seq"
_META_FENCE = b"fence/"   # + ino (8, BE) -> floor (8, BE) + the admitted capability's mac (write_fences.py)

MAX_U64 = (1 << 64) - 1
LIST_DEFAULT = 1000
LIST_MAX = 10000
# A verifying listing stops early once it has hashed this much, so one page
# of 10000 chunks of 64 MiB cannot run for minutes past every deadline.
VERIFY_BUDGET_BYTES = 1 << 30
# Reads up to this size are served on the event loop thread: a pread from the
# page cache and a 64 KiB hash take microseconds, less than a hop to a worker.
INLINE_READ_MAX = 256 * 1024
# Bytes of chunk writes admitted at once (bounds dirty page cache not yet durable).
WRITE_BUDGET_BYTES = 256 * 1024 * 1024
# DeleteChunks removes a huge file's chunks in several bounded transactions.
DELETE_BATCH = 4096
DEFAULT_SLOT = 4 << 20   # slot of a chunk whose writer gave no chunk size (the cluster default)
MIGRATE_BATCH = 64


class CorruptBlocks(FsError):
    """EIO: blocks of a chunk fail their checksums (``blocks``), under header ``head``."""

    def __init__(self, ino: int, index: int, head: fmt.ChunkHead, bad: list[int]) -> None:
        super().__init__(errno.EIO, f"chunk {ino}:{index} is corrupt (checksum mismatch in block(s) "
                                    f"{', '.join(map(str, bad[:8]))}{'...' if len(bad) > 8 else ''})")
        self.head = head
        self.blocks = bad


@dataclass(frozen=True)
class ChunkInfo:
    """One entry of a listing."""

    ino: int
    index: int
    length: int
    corrupt: bool = False
    checksum: int = 0
    algorithm: int = 0
    written_ns: int = 0
    write_seq: int = 0


@dataclass(frozen=True)
class Located:
    """Where a chunk's bytes lie: ``file_offset`` in ``path`` (that file's st_dev and st_ino)."""

    path: str
    dev: int
    file_ino: int
    file_offset: int
    length: int
    block_log2: int
    sums: bytes


@dataclass(frozen=True)
class ChunkStats:
    chunks: int
    bytes: int
    db_bytes: int
    write_seq: int = 0
    now_ns: int = 0


@dataclass(frozen=True)
class Spare:
    """Chunks a deletion or cut must leave alone: written after ``max_write_seq``
    (0: no limit) or less than ``min_age_ns`` ago by this server's clock."""

    max_write_seq: int = 0
    min_age_ns: int = 0

    def protects(self, head: fmt.ChunkHead, now_ns: int) -> bool:
        if self.max_write_seq and head.write_seq > self.max_write_seq:
            return True
        return bool(self.min_age_ns) and now_ns - head.written_ns < self.min_age_ns


NO_SPARE = Spare()


def _check_key(ino: int, index: int) -> bytes:
    if not 0 < ino <= MAX_U64:
        raise FsError(errno.EINVAL, f"bad inode number {ino} for a chunk")
    if not 0 <= index <= MAX_U64:
        raise FsError(errno.EINVAL, f"bad chunk index {index}")
    return fmt.chunk_key(ino, index)


def _check_extent(what: str, value: int) -> None:
    if not 0 <= value <= fmt.MAX_CHUNK:
        raise FsError(errno.EINVAL, f"{what} {value} is outside a chunk (max {fmt.MAX_CHUNK} bytes)")


class ChunkStore:
    """Chunks keyed by (ino, index) with block checksums: an LmdbStore index over SlotFiles."""

    def __init__(
        self,
        store: LmdbStore,
        slots: SlotFiles,
        *,
        algorithm: str = "xxh3_64",
        read_threads: int = 4,
        write_threads: int = 32,
        write_budget_bytes: int = WRITE_BUDGET_BYTES,
        default_slot: int = DEFAULT_SLOT,
    ) -> None:
        self.store = store
        self.lmdb = store
        self.slots = slots
        self.write_budget = ByteBudget(write_budget_bytes)
        self.algorithm = fmt.ALGORITHM_IDS[algorithm]  # of chunks still in LMDB (legacy)
        self.default_slot = default_slot
        self.head_db = store.db(DB_HEAD)
        self.data_db = store.db(DB_DATA)
        self._meta_db = store.db(DB_META)
        self.locks = KeyLocks()
        # per slot, the longest length ever committed in it by this process: bytes past a
        # shorter current end may still be read by someone holding the older header
        self.high_water: dict[Slot, int] = {}
        self._readers = concurrent.futures.ThreadPoolExecutor(
            max_workers=read_threads, thread_name_prefix="chunk-read")
        self._writers = concurrent.futures.ThreadPoolExecutor(
            max_workers=write_threads, thread_name_prefix="chunk-write")
        used: list[Slot] = []
        legacy = 0
        with store.read() as txn:
            self._degraded = txn.get(_META_DEGRADED, db=self._meta_db) is not None
            # only the writer thread moves it, inside the transactions that use it
            self._write_seq = fmt.decode_counter(txn.get(_META_WRITE_SEQ, db=self._meta_db))
            for key, raw in txn.cursor(db=self.head_db):
                try:
                    head = fmt.decode_head(raw)
                except FsError:
                    continue  # a damaged header: its chunk reads as EIO; its slot (unknown) stays unused
                if head.slot is not None:
                    used.append(head.slot)
                else:
                    legacy += 1
        slots.adopt(used)
        self.legacy_chunks = legacy
        if legacy:
            log.info("chunk store %s holds %d chunk(s) in the old layout (bytes in LMDB): read in place, "
                     "moved into slot files as they are written or migrated", store.path, legacy)

    @classmethod
    def open(cls, path: str, *, durable: bool = True, reserve_bytes: int = RESERVE_BYTES,
             **kwargs: Any) -> "ChunkStore":
        """``reserve_bytes``: freed slot space kept allocated for fast reuse (see ``slots``)."""
        # headers are small and random: no kernel read-ahead for the index
        store = LmdbStore(path, [DB_HEAD, DB_DATA, DB_META], durable=durable, readahead=False)
        try:
            slots = SlotFiles(os.path.join(path, SLOT_DIR), durable=durable, reserve_bytes=reserve_bytes)
            chunks = cls(store, slots, **kwargs)
        except BaseException:
            store.close()
            raise
        log.info("chunk store opened at %s (%s)", path, "durable" if durable else "async")
        return chunks

    def close(self) -> None:
        self._readers.shutdown(wait=True)
        self._writers.shutdown(wait=True)
        self.store.close()
        self.slots.close()

    # ------------------------------------------------------ lost-state mode

    def is_new(self) -> bool:
        """Was this store just created (first start, or its files were lost)?

        A new store counts as degraded until :meth:`settle_identity` says
        whether the cluster knew its server (a store holding chunks from
        before identities were recorded is not new).
        """
        with self.store.read() as txn:
            claimed = txn.get(_META_IDENTITY, db=self._meta_db) is not None
            holds_chunks = fmt.decode_counter(txn.get(_META_CHUNKS, db=self._meta_db)) > 0
        if not claimed and holds_chunks:
            # a store from before identities were recorded: claim it now, so that it
            # is not taken for a lost one should it ever be emptied and restarted
            self.store.write_now(lambda txn: txn.put(_META_IDENTITY, b"", db=self._meta_db))
            return False
        if not claimed:
            self._degraded = True
        return not claimed

    async def settle_identity(self, server_id: int, lost: bool) -> None:
        """Record which server this new store belongs to, and whether it replaces a lost one."""
        def fn(txn: lmdb.Transaction[bytes]) -> None:
            txn.put(_META_IDENTITY, fmt.encode_counter(server_id), db=self._meta_db)
            if lost:
                txn.put(_META_DEGRADED, b"1", db=self._meta_db)

        await self.store.write(fn)
        self._degraded = lost
        if lost:
            log.warning("data server store %s lost its chunks: degraded until `superfs repair` re-creates them",
                        self.store.path)

    @property
    def degraded(self) -> bool:
        """Did this server lose its chunks, with the replicas not re-created yet?

        While set, a chunk missing here may exist on the other replicas: a read
        of it answers EIO (the client then reads another replica) instead of
        "no such chunk" (which reads as zeros), and a write that would create
        it from a partial range is refused, so no replica is ever rebuilt from
        half a chunk. ``superfs repair`` copies the chunks back and clears it.
        """
        return self._degraded

    # ------------------------------------------------------ write fences

    def _fences(self, txn: lmdb.Transaction[bytes]) -> Iterator[tuple[bytes, int, int, bytes]]:
        """(key, ino, floor, admitted mac) of every fence row."""
        cur = txn.cursor(db=self._meta_db)
        if cur.set_range(_META_FENCE):
            for k, v in cur:
                if not k.startswith(_META_FENCE):
                    break
                yield k, int.from_bytes(k[len(_META_FENCE):], "big"), int.from_bytes(v[:8], "big"), bytes(v[8:])

    def load_fences(self) -> dict[int, tuple[int, bytes]]:
        """The write fences kept here: ino -> (floor, admitted mac)."""
        with self.store.read() as txn:
            return {ino: (floor, mac) for _, ino, floor, mac in self._fences(txn)}

    async def keep_fence(self, ino: int, floor: int, admit_mac: bytes) -> None:
        """Write a fence to disk (durable before the mover is told it holds); ones no capability
        can fall under any more (floor passed) are dropped on the way."""
        now = time.time_ns()

        def fn(txn: lmdb.Transaction[bytes]) -> None:
            stale = [k for k, _, floor, _ in self._fences(txn) if floor <= now]
            for k in stale:
                txn.delete(k, db=self._meta_db)
            txn.put(_META_FENCE + ino.to_bytes(8, "big"), floor.to_bytes(8, "big") + admit_mac, db=self._meta_db)

        await self.store.write(fn)

    async def set_degraded(self, degraded: bool) -> None:
        def fn(txn: lmdb.Transaction[bytes]) -> None:
            if degraded:
                txn.put(_META_DEGRADED, b"1", db=self._meta_db)
            else:
                txn.delete(_META_DEGRADED, db=self._meta_db)

        await self.store.write(fn)
        if degraded != self._degraded:
            log.warning("data server store %s %s", self.store.path,
                        "lost its chunks: degraded until `superfs repair` re-creates them"
                        if degraded else "repaired: no longer degraded")
        self._degraded = degraded

    # ------------------------------------------------------------- headers

    def head_of(self, key: bytes) -> fmt.ChunkHead | None:
        """The chunk's committed header (EIO, logged, if it is damaged)."""
        with self.store.env.begin(buffers=True) as txn:
            raw = txn.get(key, db=self.head_db)
            return self._decode_head(key, raw) if raw is not None else None

    def _decode_head(self, key: bytes, raw: Any) -> fmt.ChunkHead:
        """Decode a header; a damaged one is an ERROR naming the chunk and EIO."""
        try:
            return fmt.decode_head(raw)
        except FsError as e:
            ino, index = fmt.split_key(key)
            log.error("chunk ino=%d index=%d in %s: %s", ino, index, self.store.path, e.message)
            raise

    def put_head(self, txn: lmdb.Transaction[bytes], key: bytes, slot: Slot, length: int, sums: bytes,
                 old: fmt.ChunkHead | None) -> None:
        """(writer thread) record a chunk's new header, stamps and counters."""
        self._write_seq += 1
        txn.put(_META_WRITE_SEQ, fmt.encode_counter(self._write_seq), db=self._meta_db)
        txn.put(key, fmt.encode_head(slot, blocks.BLOCK_LOG2, length, sums, blocks.chunk_checksum(sums),
                                     time.time_ns(), self._write_seq), db=self.head_db)
        if old is not None and old.legacy:
            txn.delete(key, db=self.data_db)
        self.count(txn, 0 if old is not None else 1, length - (old.length if old is not None else 0))

    def note_length(self, slot: Slot, length: int) -> None:
        if length > self.high_water.get(slot, 0):
            self.high_water[slot] = length

    def forget_slot(self, slot: Slot) -> None:
        """The index stopped referencing ``slot`` (committed): reuse it once no reader can see it."""
        self.high_water.pop(slot, None)
        self.slots.release(slot)

    # ------------------------------------------------------------ verifying

    def _verify_legacy(self, key: bytes, head: fmt.ChunkHead, body: Any) -> None:
        legacy.verify(self.store.path, key, head, body)

    def _read_blocks(self, key: bytes, head: fmt.ChunkHead, start: int, stop: int,
                     scratch: Any = None) -> memoryview:
        """The verified bytes [start, stop) of a slot chunk (start block-aligned, stop <= length).

        ``scratch``: a buffer to read into if large enough; an ``mmap`` (page-aligned) lets a
        large read go around the page cache.
        """
        assert head.slot is not None
        n = stop - start
        use = scratch is not None and len(scratch) >= n
        buf = scratch if use else bytearray(n)
        view = memoryview(buf)[:n]
        self.slots.pread_into(head.slot, start, view, aligned=use and isinstance(scratch, mmap.mmap))
        bad = blocks.bad_blocks(view, start >> head.block_log2, head.sums, head.block)
        if bad:
            ino, index = fmt.split_key(key)
            log.error("checksum mismatch in chunk ino=%d index=%d in %s: block(s) %s of %d bytes (slot %s)",
                      ino, index, self.store.path, bad, head.block, head.slot)
            raise CorruptBlocks(ino, index, head, bad)
        return view

    def old_bytes(self, key: bytes, head: fmt.ChunkHead, start: int, stop: int) -> bytes:
        """A chunk's verified bytes [start, stop), zeros past its end (for writes that keep them)."""
        if stop <= start:
            return b""
        have = min(stop, head.length)
        out = b""
        if start < have:
            if head.legacy:
                with self.store.env.begin(buffers=True) as txn:
                    body = txn.get(key, db=self.data_db)
                    self._verify_legacy(key, head, body)
                    assert body is not None
                    out = bytes(body[start:have])
            else:
                b0 = start >> head.block_log2 << head.block_log2
                view = self._read_blocks(key, head, b0, min(head.length, blocks.block_count(have, head.block)
                                                            * head.block))
                out = bytes(view[start - b0:have - b0])
        return out + bytes(stop - max(start, have))

    # ---------------------------------------------------------------- reads

    def read_view(self, ino: int, index: int, offset: int, length: int,
                  scratch: Any = None) -> memoryview | None:
        """Verified bytes [offset, offset+length) of a chunk, short at its end; None if absent.

        Only the blocks the range touches are read and hashed. The view may
        point into ``scratch`` (reused by the caller for its next read).
        Raises :class:`CorruptBlocks` when a block fails its checksum.
        """
        key = self._check_read(ino, index, offset, length)
        with self.slots.pinned():
            with self.store.env.begin(buffers=True) as txn:
                raw = txn.get(key, db=self.head_db)
                if raw is None:
                    return None
                head = self._decode_head(key, raw)
                if head.legacy:
                    body = txn.get(key, db=self.data_db)  # a memoryview of the map: no copy
                    self._verify_legacy(key, head, body)
                    assert body is not None
                    end = min(offset + length, head.length)
                    return memoryview(bytes(body[offset:end]) if offset < end else b"")
            end = min(offset + length, head.length)
            if offset >= end:
                return memoryview(b"")
            start = offset >> head.block_log2 << head.block_log2
            stop = min(head.length, blocks.block_count(end, head.block) * head.block)
            view = self._read_blocks(key, head, start, stop, scratch)
            log.debug("read chunk %d:%d [%d, %d)", ino, index, offset, end)
            return view[offset - start:end - start]

    def locate(self, ino: int, index: int) -> Located | None:
        """Where a chunk's bytes are on disk, for a reader on this host that verifies them itself
        (the byte path's LOCATE); None if there is no such chunk. ``path`` is "" for a chunk kept
        in LMDB (version 1/2): read it with :meth:`read_view`."""
        key = self._check_read(ino, index, 0, 0)
        with self.store.env.begin(buffers=True) as txn:
            raw = txn.get(key, db=self.head_db)
            if raw is None:
                return None
            head = self._decode_head(key, raw)
        if head.slot is None:
            return Located("", 0, 0, 0, head.length, 0, b"")
        st = os.fstat(self.slots.fd(head.slot))
        return Located(self.slots.path(head.slot), st.st_dev, st.st_ino, head.slot.offset, head.length,
                       head.block_log2, head.sums)

    def read_now(self, ino: int, index: int, offset: int, length: int) -> bytes | None:
        """Bytes [offset, offset+length) of a chunk, short at its end; None if absent. Blocking."""
        view = self.read_view(ino, index, offset, length)
        return None if view is None else bytes(view)

    async def read(self, ino: int, index: int, offset: int, length: int) -> bytes | None:
        """Like :meth:`read_now`, without blocking the event loop on large reads."""
        if length <= INLINE_READ_MAX:
            return self.read_now(ino, index, offset, length)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self.read_now, ino, index, offset, length)

    def _check_read(self, ino: int, index: int, offset: int, length: int) -> bytes:
        key = _check_key(ino, index)
        _check_extent("read offset", offset)
        _check_extent("read length", length)
        return key

    def list_now(
        self, after_ino: int = 0, after_index: int = 0, limit: int = 0, verify: bool = False
    ) -> tuple[list[ChunkInfo], bool]:
        """One page of chunks in key order; returns (entries, more). See :func:`chunk_listing.list_page`."""
        return chunk_listing.list_page(self, after_ino, after_index, limit, verify)

    async def list(
        self, after_ino: int = 0, after_index: int = 0, limit: int = 0, verify: bool = False
    ) -> tuple[list[ChunkInfo], bool]:
        """:meth:`list_now` on a worker thread (a verifying page hashes up to 1 GiB)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self.list_now, after_ino, after_index, limit, verify)

    def stats(self) -> ChunkStats:
        with self.store.read() as txn:
            chunks = fmt.decode_counter(txn.get(_META_CHUNKS, db=self._meta_db))
            total = fmt.decode_counter(txn.get(_META_BYTES, db=self._meta_db))
            seq = fmt.decode_counter(txn.get(_META_WRITE_SEQ, db=self._meta_db))
        return ChunkStats(chunks, total, self.store.db_bytes() + self.slots.allocated_bytes(), seq, time.time_ns())

    def marker(self) -> tuple[int, int]:
        """(write sequence, clock) now: every chunk with a higher sequence was written later.

        The committed sequence, not the writer thread's: a chunk numbered at
        or below it is on disk already.
        """
        with self.store.read() as txn:
            seq = fmt.decode_counter(txn.get(_META_WRITE_SEQ, db=self._meta_db))
        return seq, time.time_ns()

    # --------------------------------------------------------------- writes

    def begin_write(self, ino: int, index: int, offset: int, length: int, truncate: bool = False,
                    chunk_size: int = 0, *, budget: bool = True) -> WritePlan:
        """Plan a write of ``length`` bytes at ``offset``: feed them to the plan, then commit it.

        ``chunk_size``: the file's chunk size, so that a chunk written in
        pieces gets a slot it grows into. ``budget``: admitted against the
        write budget (not a forward within a chain, whose first server did).
        Blocking (waits for the budget; verifies and copies kept bytes).
        """
        key = _check_key(ino, index)
        _check_extent("write end", offset + length)
        if chunk_size < 0 or chunk_size > fmt.MAX_CHUNK:
            raise FsError(errno.EINVAL, f"chunk size {chunk_size} is outside 0..{fmt.MAX_CHUNK}")
        return WritePlan(self, key, offset, offset + length, truncate, chunk_size, budget=budget)

    def write_now(self, ino: int, index: int, offset: int, data: bytes | bytearray | memoryview,
                  truncate: bool = False, chunk_size: int = 0) -> int:
        """Write ``data`` at ``offset``; return the chunk's length afterwards. Blocking.

        A gap between the old end and ``offset`` reads as zeros. With
        ``truncate`` the chunk ends at offset+len(data); without it, it only
        grows. A zero-byte write without ``truncate`` changes nothing (and
        creates nothing). offset+len(data) must be <= 64 MiB (else EINVAL,
        before anything is allocated).
        """
        key = _check_key(ino, index)
        _check_extent("write end", offset + len(data))
        if not len(data) and not truncate:
            head = self.head_of(key)
            return head.length if head is not None else 0
        plan = self.begin_write(ino, index, offset, len(data), truncate, chunk_size)
        try:
            plan.feed(data)
        except BaseException:
            plan.abort()
            raise
        return plan.commit()

    async def write(self, ino: int, index: int, offset: int, data: bytes | bytearray | memoryview,
                    truncate: bool = False, chunk_size: int = 0) -> int:
        """:meth:`write_now` on a writer thread.

        Serving a session call with a deadline (superfs/deadlines.py), the write
        is not recorded once that deadline has passed: ETIMEDOUT, nothing changed.
        """
        _check_key(ino, index)
        _check_extent("write end", offset + len(data))
        loop = asyncio.get_running_loop()
        ctx = contextvars.copy_context()  # the call's deadline goes with it to the thread
        return await loop.run_in_executor(self._writers, lambda: ctx.run(
            self.write_now, ino, index, offset, data, truncate, chunk_size))

    def truncate_now(self, ino: int, index: int, length: int, spare: Spare = NO_SPARE) -> bool:
        key = _check_key(ino, index)
        _check_extent("chunk length", length)
        return cut(self, key, length, spare)

    async def truncate(self, ino: int, index: int, length: int, spare: Spare = NO_SPARE) -> bool:
        """Cut or zero-extend a chunk to ``length``; a missing chunk stays missing.

        Returns False when ``spare`` protected the chunk (nothing changed).
        """
        _check_key(ino, index)
        _check_extent("chunk length", length)
        loop = asyncio.get_running_loop()
        ctx = contextvars.copy_context()
        return await loop.run_in_executor(self._writers, lambda: ctx.run(
            self.truncate_now, ino, index, length, spare))

    def repair_blocks(self, ino: int, index: int, head: fmt.ChunkHead, fixed: dict[int, bytes]) -> int:
        """Write back blocks found corrupt, with bytes from another replica; how many were repaired.

        Each block's new bytes must match the sum this chunk's header already
        holds for it (so only a replica's identical bytes can go in), and the
        header must still be ``head`` (the chunk was not rewritten meanwhile).
        """
        return repair(self, _check_key(ino, index), head, fixed)

    async def delete(self, ino: int, from_index: int = 0, to_index: int = 0, spare: Spare = NO_SPARE) -> int:
        """Delete the chunks of ``ino`` with from_index <= index < to_index
        (no upper bound if ``to_index`` is 0), except those ``spare`` protects;
        return how many were deleted.

        Idempotent. A huge file goes in several transactions of bounded size;
        a crash in between leaves a shorter tail that a retry finishes.
        """
        if not 0 < ino <= MAX_U64 or not 0 <= from_index <= MAX_U64 or not 0 <= to_index <= MAX_U64:
            raise FsError(errno.EINVAL, f"bad chunk range {ino}:{from_index}..{to_index}")
        total = 0
        start = fmt.chunk_key(ino, from_index)
        stop = fmt.chunk_key(ino, to_index) if to_index else None
        while True:
            freed: list[Slot] = []
            n, more, start = await self.store.write(
                lambda txn: chunk_listing.delete_batch(self, txn, ino, start, stop, spare, freed))
            for slot in freed:
                self.forget_slot(slot)
            total += n
            if not more:
                break
        log.debug("deleted %d chunks of ino %d from index %d", total, ino, from_index)
        return total

    def count(self, txn: lmdb.Transaction[bytes], d_chunks: int, d_bytes: int) -> None:
        """(writer thread) move the chunk count and byte total, in the mutation's transaction."""
        if d_chunks == 0 and d_bytes == 0:
            return
        chunks = fmt.decode_counter(txn.get(_META_CHUNKS, db=self._meta_db)) + d_chunks
        total = fmt.decode_counter(txn.get(_META_BYTES, db=self._meta_db)) + d_bytes
        if chunks < 0 or total < 0:  # cannot happen unless the counters were damaged
            log.error("chunk counters went negative in %s (%d chunks, %d bytes)", self.store.path, chunks, total)
            chunks, total = max(chunks, 0), max(total, 0)
        txn.put(_META_CHUNKS, fmt.encode_counter(chunks), db=self._meta_db)
        txn.put(_META_BYTES, fmt.encode_counter(total), db=self._meta_db)

    # ------------------------------------------------------------ migration

    def migrate_now(self, after: bytes = b"", limit: int = MIGRATE_BATCH) -> tuple[int, bytes | None]:
        """Move up to ``limit`` old-layout chunks after key ``after`` into slot files (see ``legacy``)."""
        return legacy.migrate_batch(self, after, limit)

    async def migrate(self) -> int:
        """Move every old-layout chunk into slot files, a batch at a time (in the background)."""
        loop = asyncio.get_running_loop()
        total = 0
        after: bytes | None = b""
        while after is not None and self.legacy_chunks:
            moved, after = await loop.run_in_executor(self._writers, self.migrate_now, after, MIGRATE_BATCH)
            total += moved
        if total:
            log.info("chunk store %s: moved %d chunk(s) from LMDB into slot files", self.store.path, total)
        self.legacy_chunks = 0
        return total
