"""FileMetaStore: the shard's LMDB environment and its row-level helpers.

Sub-databases (record formats in records.py):

==========  ==================================  ===================================
name        key                                 value
==========  ==================================  ===================================
dentries    parent ino (8, BE) + utf-8 name     ino (8) + type (1)
inodes      inode_key(ino) (8)                  packed Inode (57 bytes + extras)
inline      inode_key(ino) (8) + piece (2, BE)  the file's bytes, in page-sized pieces
xattrs      ino (8, BE) + name                  value
sealed      dir ino (8, BE)                     created_ns (8) [+ b"F" + final_ns (8)]
seal_work   due_ns (8, BE) + dir ino (8, BE)    b"P" (check if final) or b"C" (collect)
counters    partition (4, BE)                   last inode sequence (8)
intents     local dentry key                    Intent as JSON
applied     kind (1) + txid                     created_ns (8) + reply bytes
confirm     kind (1) + txid                     receiving shard id (4, BE)
outbox      txid                                ino (8) + delta (4) + created_ns (8)
reclaim     ino (8, BE) + from_size (8, BE)     chunk_size, generation, freed, layout
reclaim_due due_ns (8, BE) + reclaim key (16)   failed attempts (4, BE)
fences      dir ino (8, BE)                     lease epoch (8): older capabilities refused
delegated   partition (4, BE) + holder (16)     ranges: next sequence (8) + end (8), half-open,
                                                oldest first, at most MAX_DELEGATED_RANGES
by_partition partition (4, BE) + table (1) + key empty: the index of dentries, inodes and inline
                                                by partition (partition_index.py)
==========  ==================================  ===================================

``delegated`` holds the inode numbers a lease holder (a client session) may
create files with ahead of this shard (DelegateInodes, then ApplyBatch): the
partition's counter moved past them when they were handed out, so nothing
else ever gets them, and a create may use one only at or after its range's
``next``, which it moves on, so none is used twice (a replay after a crash
included). A holder asks for more before it runs out, so a partition keeps
its last few ranges; numbers left in an older one are given up.

A seal is *pending* while the dir server's rmdir (or rename over an empty
directory) may still fail and unseal it, and *final* once the dir server
said the directory is gone (see :class:`DirSealed` and shard/seals.py); a
final seal is *collected* once nothing can name the directory any more.

Background work is found through due-time indexes (``seal_work``,
``reclaim_due``): a round reads what is due now, so it costs what is
pending, not every seal or queued item ever made. An index entry is only a
pointer; one whose record is gone or changed is dropped when it comes due.

``applied`` records make RemoteLink and AdjustNlink apply once per txid.
They are kept until the sending shard confirms that it will never send the
txid again (ForgetApplied); the sender remembers what it owes that
confirmation in ``confirm``, written in the transaction that ends its own
use of the txid. No wall clock decides when a record may go.

Keys start with the parent (or ino) in big-endian so one directory's entries,
or one inode's xattrs or inline pieces, are one prefix range. Inode records are keyed by
sequence before partition (records.inode_key): new inodes of all partitions
then land near the end of the tree, so pages fill up instead of being split
in half at 500 insertion points (measured: 30 -> 50 records per leaf page). Inline bytes live apart from the
inode so that a stat never copies file data. Counters are per partition so a
partition can move to another shard with its sequence.

The store is a pure engine: no gRPC here. :class:`ShardTxn` is built in
layers: rows and the guards of moving partitions (txn_base.py), the
durable work records (txn_work.py: seals, applied txids, queues, intents),
then entries, inodes, inode numbers and fences here. Operations are plain
functions over a :class:`ShardTxn` (file_ops, name_ops, xattr_ops) that raise
:class:`FsError` with the errno Linux would give, and run on the group-commit
writer thread via :meth:`FileMetaStore.write`.
"""
from __future__ import annotations

import errno
import logging
import struct
import time
from contextlib import contextmanager
from typing import Callable, Iterator, TypeVar

import lmdb

from superfs.errors import FsError
from superfs.lmdb_store import LmdbStore
from superfs.routing import INO_PARTITION_SHIFT, SEQ_MASK, make_file_ino
from superfs.shard import partition_index
from superfs.shard.records import (
    DENTRY_VALUE, PARTITION_KEY, PIECE_INDEX, SIZE_OFFSET, U64, Inode, OutboxItem, dentry_key, inline_pieces,
    inode_key, u64,
)
from superfs.shard.txn_base import now_ns
from superfs.shard.txn_work import WorkRows

log = logging.getLogger(__name__)

T = TypeVar("T")

DB_NAMES = ["dentries", "inodes", "inline", "xattrs", "sealed", "counters", "intents",
            "applied", "outbox", "reclaim", "confirm", "reclaim_due", "seal_work", "fences", "delegated",
            partition_index.DB]
DELEGATED = struct.Struct(">QQ")
MAX_DELEGATED_RANGES = 4  # per (partition, holder): numbers of older ranges are given up
HOLDER_LEN = 16


class ShardTxn(WorkRows):
    """One LMDB transaction with typed accessors for every sub-database.

    ``frozen``: partitions being moved away from this shard (shard/partition_ops.py):
    every accessor that changes a row of one of them raises ESTALE, so no change
    to a frozen partition commits, whichever operation (or background round) tries.
    """

    def nested(self, child: lmdb.Transaction[bytes]) -> "ShardTxn":
        """The same view over ``child``, a transaction nested in this one (a batch's step): the
        freeze guard and the by_partition index hold inside it as outside."""
        return ShardTxn(child, self.dbs, self.frozen, self.num_partitions, self.index_n)

    # ------------------------------------------------------------- entries

    def entry(self, parent: int, raw: bytes) -> tuple[int, int] | None:
        """(ino, type) of entry (parent, name), or None."""
        v = self.txn.get(dentry_key(parent, raw), db=self.dbs["dentries"])
        return None if v is None else DENTRY_VALUE.unpack(v)

    def put_entry(self, parent: int, raw: bytes, ino: int, ftype: int) -> None:
        self.guard_key(dentry_key(parent, raw))
        self.put_row("dentries", dentry_key(parent, raw), DENTRY_VALUE.pack(ino, ftype))

    def delete_entry(self, parent: int, raw: bytes) -> None:
        self.guard_key(dentry_key(parent, raw))
        self.delete_row("dentries", dentry_key(parent, raw))

    def has_children(self, parent: int) -> bool:
        prefix = u64(parent)
        with self.txn.cursor(db=self.dbs["dentries"]) as cur:
            return cur.set_range(prefix) and cur.key()[:8] == prefix

    def scan_entries(self, parent: int, after: bytes, limit: int) -> tuple[list[tuple[bytes, int, int]], bool]:
        """Up to ``limit`` entries of ``parent`` with names > ``after``; and whether more follow."""
        prefix = u64(parent)
        out: list[tuple[bytes, int, int]] = []
        with self.txn.cursor(db=self.dbs["dentries"]) as cur:
            if not cur.set_range(prefix + after):
                return out, False
            for key, value in cur:
                if key[:8] != prefix:
                    return out, False
                name = key[8:]
                if name <= after and after:
                    continue
                if len(out) == limit:
                    return out, True
                ino, ftype = DENTRY_VALUE.unpack(value)
                out.append((name, ino, ftype))
        return out, False

    # -------------------------------------------------------------- inodes

    def inode(self, ino: int) -> Inode | None:
        v = self.txn.get(inode_key(ino), db=self.dbs["inodes"])
        return None if v is None else Inode.unpack(ino, v)

    def require_inode(self, ino: int) -> Inode:
        node = self.inode(ino)
        if node is None:
            raise FsError(errno.ENOENT, f"no file inode {ino}")
        return node

    def put_inode(self, node: Inode) -> None:
        self.guard_ino(node.ino)
        self.put_row("inodes", inode_key(node.ino), node.pack())

    def inline_data(self, ino: int) -> bytes:
        prefix = inode_key(ino)
        parts: list[bytes] = []
        with self.txn.cursor(db=self.dbs["inline"]) as cur:
            if cur.set_range(prefix):
                for key, value in cur:
                    if key[:8] != prefix:
                        break
                    parts.append(value)
        return b"".join(parts)

    def put_inline(self, ino: int, data: bytes) -> None:
        """Replace a file's inline bytes (stored as pieces, see records.inline_pieces)."""
        self.guard_ino(ino)
        self.delete_inline(ino)
        prefix = inode_key(ino)
        for i, piece in enumerate(inline_pieces(data)):
            self.put_row("inline", prefix + PIECE_INDEX.pack(i), piece)

    def delete_inline(self, ino: int) -> None:
        self.delete_prefix("inline", inode_key(ino))

    def allocate_ino(self, partition: int) -> int:
        """Next inode number of ``partition``; the counter travels with the partition."""
        self.guard_partition(partition)
        key = PARTITION_KEY.pack(partition)
        db = self.dbs["counters"]
        raw = self.txn.get(key, db=db)
        seq = (U64.unpack(raw)[0] if raw else 0) + 1
        if seq > SEQ_MASK:
            raise FsError(errno.ENOSPC, f"partition {partition} ran out of inode numbers")
        self.txn.put(key, U64.pack(seq), db=db)
        return make_file_ino(partition, seq)

    def last_seq(self, partition: int) -> int:
        """The last inode sequence of ``partition`` handed out (0: none yet)."""
        raw = self.txn.get(PARTITION_KEY.pack(partition), db=self.dbs["counters"])
        return U64.unpack(raw)[0] if raw else 0

    def delegations(self) -> dict[int, list[int]]:
        """Partition -> the end of each holder's furthest delegated range."""
        out: dict[int, list[int]] = {}
        with self.txn.cursor(db=self.dbs["delegated"]) as cur:
            for key, raw in cur:
                (partition,) = PARTITION_KEY.unpack_from(key)
                ranges = _ranges(raw)
                if ranges:
                    out.setdefault(partition, []).append(max(end for _, end in ranges))
        return out

    def delegate_inos(self, partition: int, holder: bytes, count: int) -> int:
        """Hand ``count`` inode numbers of ``partition`` to ``holder``; the first one's sequence.

        Numbers the holder had left of an earlier range are given up (never reused).
        """
        self.guard_partition(partition)
        key = PARTITION_KEY.pack(partition)
        db = self.dbs["counters"]
        raw = self.txn.get(key, db=db)
        first = (U64.unpack(raw)[0] if raw else 0) + 1
        if first + count - 1 > SEQ_MASK:
            raise FsError(errno.ENOSPC, f"partition {partition} ran out of inode numbers")
        self.txn.put(key, U64.pack(first + count - 1), db=db)
        dkey = key + _holder(holder)
        ranges = _ranges(self.txn.get(dkey, db=self.dbs["delegated"]))
        if ranges and ranges[-1][1] == first:   # nobody allocated in between: one range grows
            ranges[-1] = (ranges[-1][0], first + count)
        else:
            ranges.append((first, first + count))
        self.txn.put(dkey, _pack_ranges(ranges[-MAX_DELEGATED_RANGES:]), db=self.dbs["delegated"])
        return first

    def claim_delegated(self, partition: int, holder: bytes, ino: int) -> None:
        """``holder`` creates a file as ``ino``: EINVAL unless it was delegated to it and is unused."""
        if ino >> INO_PARTITION_SHIFT != partition + 1:
            raise FsError(errno.EINVAL, f"inode {ino} is not of the entry's partition {partition}")
        self.guard_partition(partition)
        seq = ino & SEQ_MASK
        key = PARTITION_KEY.pack(partition) + _holder(holder)
        ranges = _ranges(self.txn.get(key, db=self.dbs["delegated"]))
        for i, (nxt, end) in enumerate(ranges):
            if nxt <= seq < end:
                break
        else:
            raise FsError(errno.EINVAL, f"inode {ino} was not delegated to this client, or was used")
        if seq + 1 < end:
            ranges[i] = (seq + 1, end)
        else:
            del ranges[i]
        if ranges:
            self.txn.put(key, _pack_ranges(ranges), db=self.dbs["delegated"])
        else:
            self.txn.delete(key, db=self.dbs["delegated"])

    # -------------------------------------------------------------- fences

    def fence(self, dir_ino: int) -> int:
        raw = self.txn.get(u64(dir_ino), db=self.dbs["fences"])
        return U64.unpack(raw)[0] if raw is not None else 0

    def set_fence(self, dir_ino: int, epoch: int) -> int:
        """Raise ``dir_ino``'s fence to ``epoch`` (never lower it); the fence now."""
        now = max(self.fence(dir_ino), epoch)
        self.txn.put(u64(dir_ino), U64.pack(now), db=self.dbs["fences"])
        return now

    def fences(self) -> dict[int, int]:
        with self.txn.cursor(db=self.dbs["fences"]) as cur:
            return {U64.unpack(k)[0]: U64.unpack(v)[0] for k, v in cur}

    def free_inode(self, node: Inode) -> None:
        """Delete an inode with no links left: record, bytes, xattrs; queue its chunks."""
        self.guard_ino(node.ino)
        self.delete_row("inodes", inode_key(node.ino))
        self.delete_inline(node.ino)
        key = u64(node.ino)
        with self.txn.cursor(db=self.dbs["xattrs"]) as cur:
            if cur.set_range(key):
                while cur.key()[:8] == key:
                    cur.delete()  # moves to the next record
        if not node.inline:
            self.add_reclaim(node, 0, freed=True)

    def adjust_local_nlink(self, node: Inode, delta: int) -> Inode:
        """Apply a link-count change to a local inode; free it at zero."""
        node.nlink = max(0, node.nlink + delta)
        node.ctime_ns = now_ns()
        if node.nlink == 0:
            self.free_inode(node)
        else:
            self.put_inode(node)
        return node

    def drop_link(self, ino: int, txid: str) -> int | None:
        """One link to ``ino`` went away: count it here, or owe it to the home shard.

        Returns the links left when the inode is local, None when the change
        was queued for another shard (the outbox delivers it by ``txid``).
        """
        node = self.inode(ino)
        if node is not None:
            return self.adjust_local_nlink(node, -1).nlink
        self.add_outbox(OutboxItem(txid, ino, -1, now_ns()))
        return None

    # --------------------------------------------------------------- stats

    def sum_sizes(self) -> tuple[int, int]:
        """(inline bytes, logical bytes): a full scan, for the rare Stats call."""
        inline = 0
        with self.txn.cursor(db=self.dbs["inline"]) as cur:
            for _, v in cur:
                inline += len(v)
        logical = 0
        with self.txn.cursor(db=self.dbs["inodes"]) as cur:
            for _, v in cur:
                logical += _size_of(v)
        return inline, logical


def _ranges(raw: bytes | None) -> list[tuple[int, int]]:
    """A delegated record's ranges, oldest first."""
    if not raw:
        return []
    return [DELEGATED.unpack_from(raw, off) for off in range(0, len(raw), DELEGATED.size)]


def _pack_ranges(ranges: list[tuple[int, int]]) -> bytes:
    return b"".join(DELEGATED.pack(a, b) for a, b in ranges)


def _holder(holder: bytes) -> bytes:
    return holder[:HOLDER_LEN].ljust(HOLDER_LEN, b"\0")


def _size_of(raw: bytes) -> int:
    return int.from_bytes(raw[SIZE_OFFSET:SIZE_OFFSET + 8], "little")


class FileMetaStore:
    """The shard's LMDB store: typed transactions over a group-commit LmdbStore."""

    def __init__(self, path: str, *, durable: bool = True, map_size: int | None = None) -> None:
        self.lmdb = (LmdbStore(path, DB_NAMES, durable=durable) if map_size is None
                     else LmdbStore(path, DB_NAMES, durable=durable, map_size=map_size))
        self.dbs = self.lmdb.dbs
        # partitions no write may change (set once a move's freeze has drained; shard/partition_ops.py)
        self.frozen: frozenset[int] = frozenset()
        self._num_partitions = 0
        with self.lmdb.read() as txn:   # kept from the first write on, if built before
            self.index_n = partition_index.built_for(txn, self.dbs)

    @property
    def num_partitions(self) -> int:
        return self._num_partitions

    @num_partitions.setter
    def num_partitions(self, n: int) -> None:
        """The cluster's partition count, once known: the by_partition index is built for it if it
        was not (partition_index.py; a pass over the rows, once)."""
        self._num_partitions = n
        if n and n != self.index_n:
            t0 = time.monotonic()
            before = self.index_n

            def build(txn: lmdb.Transaction[bytes]) -> int:
                rows = partition_index.build(txn, self.dbs, n)
                self.index_n = n   # here, on the writer thread: every write after this one keeps it
                return rows

            try:
                rows = self.lmdb.write_now(build)
            except BaseException:
                self.index_n = before
                raise
            log.info("shard store %s: indexed %d rows by partition (%d partitions) in %.1f s", self.lmdb.path,
                     rows, n, time.monotonic() - t0)

    def _txn(self, txn: lmdb.Transaction[bytes]) -> ShardTxn:
        return ShardTxn(txn, self.dbs, self.frozen, self._num_partitions, self.index_n)

    async def write(self, fn: Callable[[ShardTxn], T]) -> T:
        """Run ``fn`` in the next group commit; its result once it is durable."""
        return await self.lmdb.write(lambda txn: fn(self._txn(txn)))

    def write_now(self, fn: Callable[[ShardTxn], T]) -> T:
        """Synchronous write, for start-up, recovery and unit tests."""
        return self.lmdb.write_now(lambda txn: fn(self._txn(txn)))

    @contextmanager
    def read(self) -> Iterator[ShardTxn]:
        with self.lmdb.read() as txn:
            yield ShardTxn(txn, self.dbs, index_n=self.index_n)

    def db_bytes(self) -> int:
        return self.lmdb.db_bytes()

    def close(self) -> None:
        self.lmdb.close()
