"""A partition's rows on a shard: export, import, drop and digest them (moving partitions).

A partition P owns these rows (record formats in store.py):

- ``dentries`` and ``intents``: keys whose entry partition is P (xxh64 of the key);
- ``inodes``, ``inline``, ``xattrs``, ``reclaim``: rows of inodes whose home is P
  (``reclaim_due`` by the reclaim key it points at);
- ``counters`` and ``delegated``: keyed by P itself (the inode counter and the
  ranges delegated to lease holders travel with the partition, so no inode
  number is ever handed out twice and a holder's range stays valid).

Those are copied byte for byte and compared by digest before the flip. Some
rows are per directory or per txid, not per partition, and every shard needs
them: ``sealed``/``seal_work`` (an rmdir in flight, or a removed directory's
final seal), ``fences`` (leases taken away) and ``applied`` (a RemoteLink or
AdjustNlink already applied, which its sender may send again, now to the new
owner). They are merged into the target (kept if present; a fence raised to
the higher epoch) and never dropped from the source.

The big tables' rows are found through the shard's index by partition
(partition_index.py) when it is built for the partition count asked about;
otherwise, and for the small tables, by a scan.

Pure functions over a :class:`ShardTxn`; the service pages through them.
"""
from __future__ import annotations

import errno
import hashlib
import itertools
from typing import Callable, Iterator

from superfs.errors import FsError
from superfs.shard import partition_index
from superfs.shard.partition_index import partition_of
from superfs.shard.records import PARTITION_KEY, U64
from superfs.shard.store import ShardTxn

OWNED_DBS = ("dentries", "intents", "inodes", "inline", "xattrs", "reclaim", "reclaim_due",
             "counters", "delegated")
SHARED_DBS = ("sealed", "seal_work", "fences", "applied")
EXPORT_DBS = OWNED_DBS + SHARED_DBS
PAGE_BYTES = 1 << 20  # a page of rows stays well under a session frame


def _rows(t: ShardTxn, db: str, after: bytes) -> Iterator[tuple[bytes, bytes]]:
    with t.txn.cursor(db=t.dbs[db]) as cur:
        if after:
            if not cur.set_range(after):
                return
            if cur.key() == after and not cur.next():
                return
        elif not cur.first():
            return
        for k, v in cur.iternext():
            yield bytes(k), bytes(v)


def _partition_rows(t: ShardTxn, partition: int, num_partitions: int, db: str,
                    after: bytes) -> Iterator[tuple[bytes, bytes]]:
    """The rows of ``db`` that ``partition`` owns (every row of a shared table), in key order, after
    ``after``: through the by_partition index where it covers the table, else by a scan."""
    if db in partition_index.CODES and t.index_n == num_partitions:
        d = t.dbs[db]
        for k in partition_index.keys(t.txn, t.dbs, partition, db, after):
            v = t.txn.get(k, db=d)
            if v is None:
                raise FsError(errno.EIO, f"the by_partition index names a row of {db} that is not there")
            yield k, bytes(v)
        return
    owned = _owned(partition, num_partitions, db)
    for k, v in _rows(t, db, after):
        if owned(k):
            yield k, v


def _owned(partition: int, num_partitions: int, db: str) -> Callable[[bytes], bool]:
    if db in SHARED_DBS:
        return lambda key: True
    return lambda key: partition_of(db, key, num_partitions) == partition


def export_rows(t: ShardTxn, partition: int, num_partitions: int, db: str, after: bytes,
                limit: int) -> tuple[list[tuple[str, bytes, bytes]], str, bytes, bool]:
    """Rows of ``partition`` from (db, after) on: (rows, next db, next key, more)."""
    if db and db not in EXPORT_DBS:
        raise FsError(errno.EINVAL, f"unknown database {db!r}")
    out: list[tuple[str, bytes, bytes]] = []
    size = 0
    start = EXPORT_DBS.index(db) if db else 0
    for i in range(start, len(EXPORT_DBS)):
        name = EXPORT_DBS[i]
        for k, v in _partition_rows(t, partition, num_partitions, name, after if i == start else b""):
            out.append((name, k, v))
            size += len(k) + len(v)
            if len(out) >= limit or size >= PAGE_BYTES:
                return out, name, k, True
    return out, "", b"", False


def import_rows(t: ShardTxn, rows: list[tuple[str, bytes, bytes]], partition: int, num_partitions: int) -> int:
    """Write copied rows; shared ones merged (see the module docstring). Rows written."""
    n = 0
    for db, key, value in rows:
        d = t.dbs.get(db)
        if d is None or db not in EXPORT_DBS:
            raise FsError(errno.EINVAL, f"unknown database {db!r}")
        if db in OWNED_DBS:
            if partition_of(db, key, num_partitions) != partition:
                raise FsError(errno.EINVAL, f"a row of {db} is not of partition {partition}")
            t.put_row(db, key, value)
        elif db == "fences":
            old = t.txn.get(key, db=d)
            if old is None or U64.unpack(old)[0] < U64.unpack(value)[0]:
                t.txn.put(key, value, db=d)
        else:
            t.txn.put(key, value, db=d, overwrite=False)
        n += 1
    return n


def drop_rows(t: ShardTxn, partition: int, num_partitions: int, limit: int = 0) -> int:
    """Delete the rows ``partition`` owns here (rows shared by all partitions stay). Rows deleted.

    ``limit`` > 0: once the big tables are indexed for ``num_partitions``, delete at most about
    that many of their rows (the small tables go in full); call again until it returns less than
    ``limit``. A shard drops a partition of a million-file shard in many short transactions, not
    one that holds its writer (and every other change on the shard) until all ~6,000 deletes and
    their commit are done.
    """
    indexed = t.index_n == num_partitions
    if limit > 0 and indexed:
        n = 0
        for db in partition_index.CODES:
            for k in list(itertools.islice(partition_index.keys(t.txn, t.dbs, partition, db, b""), limit - n)):
                t.delete_row(db, k)
                n += 1
            if n >= limit:
                return n
        return n + drop_rows(t, partition, num_partitions)   # the small tables: what is left
    n = 0
    for db in OWNED_DBS:
        with t.txn.cursor(db=t.dbs[db]) as cur:
            if db in ("counters", "delegated"):
                prefix = PARTITION_KEY.pack(partition)
                if cur.set_range(prefix):
                    while cur.key()[:4] == prefix:
                        cur.delete()  # moves to the next record (key b"" past the end)
                        n += 1
                continue
            if db in partition_index.CODES and t.index_n == num_partitions:
                continue   # below, through the index
            if not cur.first():
                continue
            while cur.key():
                if partition_of(db, bytes(cur.key()), num_partitions) == partition:
                    cur.delete()
                    n += 1
                elif not cur.next():
                    break
    if t.index_n == num_partitions:
        for db in partition_index.CODES:
            for k in list(partition_index.keys(t.txn, t.dbs, partition, db, b"")):
                t.delete_row(db, k)
                n += 1
    return n


def digest_rows(t: ShardTxn, partition: int, num_partitions: int) -> tuple[int, bytes]:
    """(rows, sha256) of every row ``partition`` owns here, database by database in key order."""
    h = hashlib.sha256()
    n = 0
    for db in OWNED_DBS:
        for k, v in _partition_rows(t, partition, num_partitions, db, b""):
            for part in (db.encode(), k, v):
                h.update(len(part).to_bytes(4, "big"))
                h.update(part)
            n += 1
    return n, h.digest()
