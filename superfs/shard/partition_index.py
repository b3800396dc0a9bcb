"""Which rows a partition owns, without scanning: an index of the shard's large per-partition tables.

Moving a partition (partition_ops.py) exports, digests and drops the rows
it owns. Those rows are not clustered by partition: dentries are keyed by
parent and name (their partition is a hash of the key) and inode records
and inline bytes by sequence before partition (records.inode_key). Without
an index each of the three steps reads the whole table, so a partition's
frozen window grew with the shard (bench/README.md: the p99 during an
add-shard went from 1.8x to 4.7x the p99 before between 500 and 20,000
files).

The ``by_partition`` database holds one empty value per row of
``dentries``, ``inodes`` and ``inline`` that a partition owns, keyed
``partition (4, BE) + table code (1) + the row's key``: a partition's rows of
a table are one prefix range, in the table's own key order. Every write of
those tables goes through ShardTxn, which keeps the index in the same
transaction. The other per-partition tables are small (intents, reclaim
queues: work in flight) or keyed by inode, hence by partition, already
(xattrs, reclaim), and are read the old way.

The index is built for one partition count (the cluster map's), recorded
under ``BUILT``. A store opened before the count is known keeps the index
it has; the first time the shard learns the count, a missing or different
index is rebuilt in one transaction (a store of an older version gets one
at its first start: a pass over its rows).
"""
from __future__ import annotations

import struct
from typing import Any, Iterator

import lmdb
import xxhash

from superfs.routing import ino_partition, is_dir_ino
from superfs.shard.records import PARTITION_KEY, U64, ino_of_inode_key

DB = "by_partition"
CODES = {"dentries": b"d", "inodes": b"i", "inline": b"l"}
BUILT = b"\xff\xff\xff\xff~built"     # value: the partition count the index is for (4, BE)
_COUNT = struct.Struct(">I")


def _of_ino(ino: int) -> int:
    return -1 if is_dir_ino(ino) or ino == 0 else ino_partition(ino)


def partition_of(db: str, key: bytes, num_partitions: int) -> int:
    """The partition owning row ``key`` of ``db`` (a per-partition table); -1: none (a directory's)."""
    if db in ("dentries", "intents"):
        return xxhash.xxh64_intdigest(key) % num_partitions
    if db in ("inodes", "inline"):
        return _of_ino(ino_of_inode_key(key[:8]))
    if db in ("xattrs", "reclaim"):
        return _of_ino(U64.unpack_from(key)[0])
    if db == "reclaim_due":
        return _of_ino(U64.unpack_from(key, 8)[0])
    if db in ("counters", "delegated"):
        return PARTITION_KEY.unpack_from(key)[0]
    raise ValueError(f"{db} is not a per-partition database")


def entry(db: str, key: bytes, num_partitions: int) -> bytes | None:
    """The index key of row ``key`` of table ``db``; None: not indexed."""
    code = CODES.get(db)
    if code is None:
        return None
    p = partition_of(db, key, num_partitions)
    return None if p < 0 else PARTITION_KEY.pack(p) + code + key


def built_for(txn: lmdb.Transaction[bytes], dbs: dict[str, Any]) -> int:
    """The partition count the index was built for; 0: none."""
    raw = txn.get(BUILT, db=dbs[DB])
    return _COUNT.unpack(raw)[0] if raw else 0


def build(txn: lmdb.Transaction[bytes], dbs: dict[str, Any], num_partitions: int) -> int:
    """(Re)build the index for ``num_partitions``; the rows indexed."""
    index = dbs[DB]
    txn.drop(index, delete=False)
    n = 0
    for db in CODES:
        with txn.cursor(db=dbs[db]) as cur:
            for key in cur.iternext(keys=True, values=False):
                k = entry(db, bytes(key), num_partitions)
                if k is not None:
                    txn.put(k, b"", db=index)
                    n += 1
    txn.put(BUILT, _COUNT.pack(num_partitions), db=index)
    return n


def keys(txn: lmdb.Transaction[bytes], dbs: dict[str, Any], partition: int, db: str, after: bytes) -> Iterator[bytes]:
    """Keys of table ``db`` that ``partition`` owns, in key order, after ``after`` (b"": from the first)."""
    prefix = PARTITION_KEY.pack(partition) + CODES[db]
    start = prefix + after
    with txn.cursor(db=dbs[DB]) as cur:
        if not cur.set_range(start):
            return
        for k in cur.iternext(keys=True, values=False):
            k = bytes(k)
            if not k.startswith(prefix):
                return
            if after and k == start:
                continue
            yield k[len(prefix):]
