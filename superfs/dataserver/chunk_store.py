"""ChunkStore: the data server's engine, chunks in one LMDB environment.

Millions of chunks must not become millions of local files (that would
recreate underneath us the small-file problem SuperFS exists to solve), so
every chunk is two records in one LMDB environment (see ``chunk_format``),
and a ``meta`` sub-database keeps the chunk count and byte total, updated in
the same transaction as the chunk, so statistics cost O(1).

Every read verifies the checksum of the whole stored chunk. A mismatch is
logged as an ERROR naming the chunk and raised as ``FsError(EIO)``; the
client then reads another replica. Reads hash a memoryview of LMDB's mapped
pages (``buffers=True``, valid only inside the read transaction) and copy out
just the requested slice: one copy of the payload on the read path.

Mutations are plain functions run by ``LmdbStore.write`` on its writer thread
(group commit: many mutations share one fsync). A write that replaces the
whole chunk passes the caller's bytes to LMDB untouched; a partial write is a
read-modify-write inside the transaction, and verifies the old bytes first so
that corruption is never laundered under a fresh checksum.

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
import errno
import logging
import time
from dataclasses import dataclass
from typing import Any

import lmdb

from superfs.dataserver import chunk_format as fmt
from superfs.dataserver.byte_budget import ByteBudget
from superfs.errors import FsError
from superfs.lmdb_store import LmdbStore

log = logging.getLogger(__name__)

DB_HEAD = "chunk_head"
DB_DATA = "chunk_data"
DB_META = "meta"
_META_CHUNKS = b"chunks"
_META_BYTES = b"bytes"
# The server id this store belongs to, written at its first start: a store
# without it was just created, which for an id the cluster already knew
# means the server lost its chunks (see ``degraded``).
_META_IDENTITY = b"identity"
_META_DEGRADED = b"degraded"
_META_WRITE_SEQ = b"write_seq"

MAX_U64 = (1 << 64) - 1
LIST_DEFAULT = 1000
LIST_MAX = 10000
# A verifying listing stops early once it has hashed this much, so one page
# of 10000 chunks of 64 MiB cannot run for minutes past every deadline.
VERIFY_BUDGET_BYTES = 1 << 30
# Chunks up to this size are read on the event loop thread: hashing them takes
# microseconds, less than a hop to a worker thread. Larger ones go to threads
# (xxhash and LMDB page faults release the GIL) so the loop keeps serving.
INLINE_READ_MAX = 256 * 1024
# Bytes of chunk writes admitted at once (bounds LMDB's in-memory dirty pages).
WRITE_BUDGET_BYTES = 256 * 1024 * 1024
# DeleteChunks removes a huge file's chunks in several bounded transactions.
DELETE_BATCH = 4096


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
    """Chunks keyed by (ino, index) with checksums, over one LmdbStore."""

    def __init__(
        self,
        store: LmdbStore,
        *,
        algorithm: str = "xxh3_64",
        read_threads: int = 4,
        write_budget_bytes: int = WRITE_BUDGET_BYTES,
    ) -> None:
        self.store = store
        self._write_budget = ByteBudget(write_budget_bytes)
        self.algorithm = fmt.ALGORITHM_IDS[algorithm]
        self._head_db = store.db(DB_HEAD)
        self._data_db = store.db(DB_DATA)
        self._meta_db = store.db(DB_META)
        self._readers = concurrent.futures.ThreadPoolExecutor(
            max_workers=read_threads, thread_name_prefix="chunk-read"
        )
        with store.read() as txn:
            self._degraded = txn.get(_META_DEGRADED, db=self._meta_db) is not None
            # only the writer thread moves it, inside the transactions that use it
            self._write_seq = fmt.decode_counter(txn.get(_META_WRITE_SEQ, db=self._meta_db))

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
        def fn(txn: lmdb.Transaction) -> None:
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

    async def set_degraded(self, degraded: bool) -> None:
        def fn(txn: lmdb.Transaction) -> None:
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

    @classmethod
    def open(cls, path: str, *, durable: bool = True, **kwargs: Any) -> "ChunkStore":
        # chunks are read sequentially, megabytes at a time: without the kernel's
        # read-ahead a cold read faults the mmap in one 4 KiB page at a time
        store = LmdbStore(path, [DB_HEAD, DB_DATA, DB_META], durable=durable, readahead=True)
        log.info("chunk store opened at %s (%s)", path, "durable" if durable else "async")
        return cls(store, **kwargs)

    def close(self) -> None:
        self._readers.shutdown(wait=True)
        self.store.close()

    # ------------------------------------------------------------ verifying

    def _verify(self, key: bytes, head: fmt.ChunkHead, body: Any) -> None:
        """Raise EIO (after an ERROR line naming the chunk) unless body matches head."""
        ino, index = fmt.split_key(key)
        if body is None:
            log.error("chunk ino=%d index=%d in %s: header present, data missing", ino, index, self.store.path)
            raise FsError(errno.EIO, f"chunk {ino}:{index} has no data")
        if len(body) != head.length:
            log.error(
                "chunk ino=%d index=%d in %s: %d bytes stored, header says %d",
                ino, index, self.store.path, len(body), head.length,
            )
            raise FsError(errno.EIO, f"chunk {ino}:{index} has the wrong length")
        actual = fmt.checksum(head.algorithm, body)
        if actual != head.checksum:
            log.error(
                "checksum mismatch in chunk ino=%d index=%d in %s: stored %016x, computed %016x over %d bytes",
                ino, index, self.store.path, head.checksum, actual, head.length,
            )
            raise FsError(errno.EIO, f"chunk {ino}:{index} is corrupt (checksum mismatch)")

    def _decode_head(self, key: bytes, raw: Any) -> fmt.ChunkHead:
        """Decode a header; a damaged one is an ERROR naming the chunk and EIO."""
        try:
            return fmt.decode_head(raw)
        except FsError as e:
            ino, index = fmt.split_key(key)
            log.error("chunk ino=%d index=%d in %s: %s", ino, index, self.store.path, e.message)
            raise

    def _is_intact(self, txn: lmdb.Transaction, key: bytes, head: fmt.ChunkHead) -> bool:
        try:
            self._verify(key, head, txn.get(key, db=self._data_db))
        except FsError:
            return False
        return True

    # ---------------------------------------------------------------- reads

    def read_now(self, ino: int, index: int, offset: int, length: int) -> bytes | None:
        """Bytes [offset, offset+length) of a chunk, short at its end; None if absent.

        Blocking (hashes the whole chunk): call from a worker thread or use
        :meth:`read`.
        """
        key = self._check_read(ino, index, offset, length)
        with self.store.env.begin(buffers=True) as txn:
            return self._read_in(txn, key, offset, length)

    async def read(self, ino: int, index: int, offset: int, length: int) -> bytes | None:
        """Like :meth:`read_now`, without blocking the event loop on large chunks."""
        key = self._check_read(ino, index, offset, length)
        with self.store.env.begin(buffers=True) as txn:
            raw = txn.get(key, db=self._head_db)
            if raw is None:
                return None
            if self._decode_head(key, raw).length <= INLINE_READ_MAX:
                return self._read_in(txn, key, offset, length)
        # The chunk may change between the two transactions; the worker reads
        # header and data again in its own consistent snapshot.
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self.read_now, ino, index, offset, length)

    def _check_read(self, ino: int, index: int, offset: int, length: int) -> bytes:
        key = _check_key(ino, index)
        _check_extent("read offset", offset)
        _check_extent("read length", length)
        return key

    def _read_in(self, txn: lmdb.Transaction, key: bytes, offset: int, length: int) -> bytes | None:
        raw = txn.get(key, db=self._head_db)
        if raw is None:
            return None
        head = self._decode_head(key, raw)
        body = txn.get(key, db=self._data_db)  # a memoryview of the map: no copy
        self._verify(key, head, body)
        end = min(offset + length, head.length)
        if offset >= end:
            return b""
        log.debug("read chunk %d:%d [%d, %d)", *fmt.split_key(key), offset, end)
        return bytes(body[offset:end])  # the one copy, of the requested slice only

    def list_now(
        self, after_ino: int = 0, after_index: int = 0, limit: int = 0, verify: bool = False
    ) -> tuple[list[ChunkInfo], bool]:
        """One page of chunks in key order; returns (entries, more).

        Cursor: entries strictly after the key (after_ino, after_index), unless
        both are 0, then from the start (ino 0 never holds chunks). To page,
        pass the last entry's (ino, index) back. ``limit`` 0 means 1000 and is
        capped at 10000. With ``verify`` every listed chunk is re-hashed and
        flagged ``corrupt`` on mismatch; such a page also ends (with
        more=True) once about 1 GiB has been hashed.
        """
        if not (0 <= after_ino <= MAX_U64 and 0 <= after_index <= MAX_U64):
            raise FsError(errno.EINVAL, "bad listing cursor")
        limit = LIST_DEFAULT if limit <= 0 else min(limit, LIST_MAX)
        out: list[ChunkInfo] = []
        hashed = 0
        with self.store.env.begin(buffers=True) as txn:
            cur = txn.cursor(db=self._head_db)
            if after_ino == 0 and after_index == 0:
                positioned = cur.first()
            else:
                start = fmt.chunk_key(after_ino, after_index)
                positioned = cur.set_range(start)
                if positioned and bytes(cur.key()) == start:
                    positioned = cur.next()
            while positioned:
                if len(out) >= limit or (verify and hashed >= VERIFY_BUDGET_BYTES):
                    return out, True
                key = bytes(cur.key())
                ino, index = fmt.split_key(key)
                try:
                    head = self._decode_head(key, cur.value())
                except FsError:
                    out.append(ChunkInfo(ino, index, 0, corrupt=True))
                else:
                    corrupt = False
                    if verify:
                        corrupt = not self._is_intact(txn, key, head)
                        hashed += head.length
                    out.append(ChunkInfo(ino, index, head.length, corrupt, head.checksum, head.algorithm,
                                         head.written_ns, head.write_seq))
                positioned = cur.next()
        return out, False

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
        return ChunkStats(chunks, total, self.store.db_bytes(), seq, time.time_ns())

    def marker(self) -> tuple[int, int]:
        """(write sequence, clock) now: every chunk with a higher sequence was written later.

        The committed sequence, not the writer thread's: a chunk numbered at
        or below it is on disk already.
        """
        with self.store.read() as txn:
            seq = fmt.decode_counter(txn.get(_META_WRITE_SEQ, db=self._meta_db))
        return seq, time.time_ns()

    # --------------------------------------------------------------- writes

    async def write(self, ino: int, index: int, offset: int, data: bytes, truncate: bool = False) -> int:
        """Write ``data`` at ``offset``; return the chunk's length afterwards.

        A gap between the old end and ``offset`` reads as zeros. With
        ``truncate`` the chunk ends at offset+len(data); without it, it only
        grows. A zero-byte write without ``truncate`` changes nothing (and
        creates nothing). offset+len(data) must be <= 64 MiB (else EINVAL,
        before any memory is allocated).
        """
        key = _check_key(ino, index)
        end = offset + len(data)
        _check_extent("write end", end)
        # Count the whole new chunk: a partial write rebuilds it in memory.
        async with self._write_budget.admit(end):
            return await self.store.write(lambda txn: self._write_fn(txn, key, offset, data, truncate))

    async def truncate(self, ino: int, index: int, length: int, spare: Spare = NO_SPARE) -> bool:
        """Cut or zero-extend a chunk to ``length``; a missing chunk stays missing.

        Returns False when ``spare`` protected the chunk (nothing changed).
        """
        key = _check_key(ino, index)
        _check_extent("chunk length", length)
        async with self._write_budget.admit(length):
            return await self.store.write(lambda txn: self._truncate_fn(txn, key, length, spare))

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
            n, more, start = await self.store.write(lambda txn: self._delete_fn(txn, ino, start, stop, spare))
            total += n
            if not more:
                break
        log.debug("deleted %d chunks of ino %d from index %d", total, ino, from_index)
        return total

    # The *_fn methods run on the LMDB writer thread inside a (child) write
    # transaction; an exception rolls back that mutation alone.

    def _write_fn(self, txn: lmdb.Transaction, key: bytes, offset: int, data: bytes, truncate: bool) -> int:
        raw = txn.get(key, db=self._head_db)
        head = self._decode_head(key, raw) if raw is not None else None
        old_len = head.length if head is not None else 0
        if not data and not truncate:
            return old_len
        if head is None and self._degraded and not truncate:
            # The chunk may exist, longer, on the other replicas: creating it
            # from this range alone would make this replica disagree with them.
            raise FsError(errno.EIO, f"chunk {fmt.split_key(key)} was lost here and is not repaired yet")
        end = offset + len(data)
        content: bytes | bytearray
        if offset == 0 and (truncate or end >= old_len):
            content = data  # replaces the whole chunk: LMDB copies it once, we never do
        else:
            new_len = end if truncate else max(old_len, end)
            buf = bytearray(new_len)  # zeros: fills any gap
            if head is not None:
                old = txn.get(key, db=self._data_db)
                self._verify(key, head, old)
                keep = min(old_len, new_len)
                buf[:keep] = memoryview(old)[:keep]
            buf[offset:end] = data
            content = buf
        self._put(txn, key, content, head)
        log.debug("wrote chunk %d:%d [%d, %d) -> length %d", *fmt.split_key(key), offset, end, len(content))
        return len(content)

    def _truncate_fn(self, txn: lmdb.Transaction, key: bytes, length: int, spare: Spare) -> bool:
        raw = txn.get(key, db=self._head_db)
        if raw is None:
            return True
        head = self._decode_head(key, raw)
        if spare.protects(head, time.time_ns()):
            log.info("chunk %d:%d left uncut: written at sequence %d, %.1f s ago", *fmt.split_key(key),
                     head.write_seq, (time.time_ns() - head.written_ns) / 1e9)
            return False
        if length == head.length:
            return True
        old = txn.get(key, db=self._data_db)
        self._verify(key, head, old)
        content: bytes | bytearray | memoryview
        if length < head.length:
            content = memoryview(old)[:length]
        else:
            content = bytearray(length)
            content[: head.length] = old
        self._put(txn, key, content, head)
        log.debug("truncated chunk %d:%d %d -> %d", *fmt.split_key(key), head.length, length)
        return True

    def _put(
        self, txn: lmdb.Transaction, key: bytes, content: bytes | bytearray | memoryview, old: fmt.ChunkHead | None
    ) -> None:
        sum_ = fmt.checksum(self.algorithm, content)
        self._write_seq += 1
        txn.put(_META_WRITE_SEQ, fmt.encode_counter(self._write_seq), db=self._meta_db)
        txn.put(key, content, db=self._data_db)
        txn.put(key, fmt.encode_head(self.algorithm, len(content), sum_, time.time_ns(), self._write_seq),
                db=self._head_db)
        self._count(txn, 0 if old is not None else 1, len(content) - (old.length if old is not None else 0))

    def _delete_fn(self, txn: lmdb.Transaction, ino: int, start: bytes, stop: bytes | None,
                   spare: Spare) -> tuple[int, bool, bytes]:
        """One bounded batch: (deleted, more to do, where the next batch starts)."""
        prefix = fmt.ino_prefix(ino)
        cur = txn.cursor(db=self._head_db)
        deleted = freed = seen = spared = 0
        now = time.time_ns()
        positioned = cur.set_range(start)
        while positioned:
            key = cur.key()
            if key[: fmt.INO_PREFIX_SIZE] != prefix or (stop is not None and bytes(key) >= stop):
                break
            if seen >= DELETE_BATCH:
                self._count(txn, -deleted, -freed)
                return deleted, True, bytes(key)
            seen += 1
            try:
                head = fmt.decode_head(cur.value())
            except FsError:
                # A damaged header: the data record's size keeps the totals right.
                body = txn.get(key, db=self._data_db)
                freed += len(body) if body is not None else 0
            else:
                if spare is not NO_SPARE and spare.protects(head, now):
                    spared += 1
                    positioned = cur.next()
                    continue
                freed += head.length
            txn.delete(key, db=self._data_db)
            deleted += 1
            positioned = cur.delete()  # moves to the next record
            if positioned and not cur.key():
                break  # deleted the last record of the sub-database
        self._count(txn, -deleted, -freed)
        if spared:
            log.info("left %d chunk(s) of ino %d alone: written since the caller's scan, or recently", spared, ino)
        return deleted, False, start

    def _count(self, txn: lmdb.Transaction, d_chunks: int, d_bytes: int) -> None:
        if d_chunks == 0 and d_bytes == 0:
            return
        chunks = fmt.decode_counter(txn.get(_META_CHUNKS, db=self._meta_db)) + d_chunks
        total = fmt.decode_counter(txn.get(_META_BYTES, db=self._meta_db)) + d_bytes
        if chunks < 0 or total < 0:  # cannot happen unless the counters were damaged
            log.error("chunk counters went negative in %s (%d chunks, %d bytes)", self.store.path, chunks, total)
            chunks, total = max(chunks, 0), max(total, 0)
        txn.put(_META_CHUNKS, fmt.encode_counter(chunks), db=self._meta_db)
        txn.put(_META_BYTES, fmt.encode_counter(total), db=self._meta_db)
