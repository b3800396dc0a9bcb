"""The base of the shard's transaction: rows of per-partition tables, and the guards of moving partitions.

:class:`~superfs.shard.store.ShardTxn` is this with typed accessors for every
sub-database on top (its table of sub-databases is in store.py's docstring).
A row of a per-partition table (dentries, inodes, inline) is written with
:meth:`TxnBase.put_row` and :meth:`TxnBase.delete_row`, which keep the
by_partition index (partition_index.py) when the store has one; every
accessor that changes a row checks first that its partition is not frozen
for a move (shard/partition_ops.py).
"""
from __future__ import annotations

import errno
from typing import Any

import lmdb
import xxhash

from superfs.errors import MISROUTED, FsError
from superfs.faults import wall_ns
from superfs.routing import ino_partition, is_dir_ino
from superfs.shard import partition_index


def now_ns() -> int:
    return wall_ns()


class TxnBase:
    """One LMDB transaction: ``frozen`` holds the partitions being moved away from this shard."""

    def __init__(self, txn: lmdb.Transaction[bytes], dbs: dict[str, Any],
                 frozen: frozenset[int] = frozenset(), num_partitions: int = 0, index_n: int = 0) -> None:
        self.txn = txn
        self.dbs = dbs
        self.frozen = frozen
        self.num_partitions = num_partitions
        self.index_n = index_n   # the partition count of the by_partition index kept here (0: none)

    # ------------------------------------------------ rows and their index

    def put_row(self, db: str, key: bytes, value: bytes) -> None:
        """Write a row of a per-partition table, and its index entry (partition_index.py)."""
        self.txn.put(key, value, db=self.dbs[db])
        if self.index_n:
            k = partition_index.entry(db, key, self.index_n)
            if k is not None:
                self.txn.put(k, b"", db=self.dbs[partition_index.DB])

    def delete_row(self, db: str, key: bytes) -> bool:
        """Delete a row of a per-partition table, and its index entry; whether it was there."""
        found = self.txn.delete(key, db=self.dbs[db])
        if self.index_n:
            k = partition_index.entry(db, key, self.index_n)
            if k is not None:
                self.txn.delete(k, db=self.dbs[partition_index.DB])
        return bool(found)

    def delete_prefix(self, db: str, prefix: bytes) -> int:
        """Delete every row of ``db`` whose key starts with ``prefix`` (and their index entries)."""
        keys = []
        with self.txn.cursor(db=self.dbs[db]) as cur:
            if cur.set_range(prefix):
                for k in cur.iternext(keys=True, values=False):
                    if not bytes(k).startswith(prefix):
                        break
                    keys.append(bytes(k))
        for k in keys:
            self.delete_row(db, k)
        return len(keys)

    # -------------------------------------------------------------- moves

    def guard_partition(self, partition: int) -> None:
        if partition in self.frozen:
            raise FsError(errno.ESTALE, f"{MISROUTED}partition {partition} is frozen: it is moving to another shard")

    def guard_key(self, key: bytes) -> None:
        """ESTALE if the dentry (or intent) key is of a frozen partition."""
        if self.frozen:
            self.guard_partition(xxhash.xxh64_intdigest(key) % self.num_partitions)

    def guard_ino(self, ino: int) -> None:
        if self.frozen and not is_dir_ino(ino):
            self.guard_partition(ino_partition(ino))

    # --------------------------------------------------------------- stats

    def count(self, db: str) -> int:
        return int(self.txn.stat(self.dbs[db])["entries"])
