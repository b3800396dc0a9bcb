"""A temporary LMDB for fsck: what it scanned, keyed for the joins its checks make.

fsck must cross-check every name, inode and chunk of a cluster: at 10^8
files that cannot be Python objects in memory (the first fsck held every
record of two scans, >= 516 B per small file each). Scans stream page by
page into this store instead, one write transaction per page, and the
checks walk it with cursors. What stays in memory is a page or two of
replies and one transaction's dirty pages; the store itself is read through
LMDB's memory map (clean page cache, which the kernel can drop), and its
directory is removed when fsck is done.

Sub-databases and keys (all integers big-endian, so cursors walk them in order):

==========  =========================================  =============================
name        key                                        value
==========  =========================================  =============================
dirs        ino (8)                                    DirInfo (protobuf)
children    parent (8) + ino (8)                       (empty)
reach       ino (8)                                    1: reaches root, 0: does not
entries     parent (8) + utf-8 name + NUL + shard (4)  ino (8) + type (1)
refs        ino (8)                                    file names pointing at it (4)
inodes      ino (8) + shard (4)                        FileInfo (protobuf, no data)
chunks      ino (8) + index (8) + data server (4)      ChunkEntry (protobuf)
findings    repair rank (2) + key (JSON)               Finding (JSON)
==========  =========================================  =============================

Records are protobuf bytes: the wire format of the scans, stored as received.
"""
from __future__ import annotations

import shutil
import struct
import tempfile
from contextlib import contextmanager
from typing import Any, Iterator

import lmdb

U32 = struct.Struct(">I")
U64 = struct.Struct(">Q")
ENTRY_VALUE = struct.Struct(">QB")
NUL = b"\0"

DB_NAMES = ("dirs", "children", "reach", "entries", "refs", "inodes", "chunks", "findings")
MAP_SIZE = 1 << 40  # address space only: the file grows as it fills


def name_bytes(name: str) -> bytes:
    return name.encode("utf-8", "surrogateescape")


def entry_prefix(parent: int, name: str) -> bytes:
    return U64.pack(parent) + name_bytes(name) + NUL


def split_entry_key(key: bytes) -> tuple[int, str, int]:
    parent = U64.unpack_from(key)[0]
    return parent, key[8:-5].decode("utf-8", "surrogateescape"), U32.unpack_from(key, len(key) - 4)[0]


class Spill:
    """One temporary LMDB environment, deleted by :meth:`close`."""

    def __init__(self, parent_dir: str | None = None) -> None:
        self.path = tempfile.mkdtemp(prefix="superfs-fsck-", dir=parent_dir)
        self.env = lmdb.open(self.path, map_size=MAP_SIZE, max_dbs=len(DB_NAMES) + 1, sync=False,
                             metasync=False, readahead=False, lock=True, subdir=True)
        self.dbs = {n: self.env.open_db(n.encode()) for n in DB_NAMES}

    def close(self) -> None:
        if self.env is not None:
            self.env.close()
            self.env = None  # type: ignore[assignment]
            shutil.rmtree(self.path, ignore_errors=True)

    def __del__(self) -> None:  # a run that died half-way must not leave gigabytes in /tmp
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    # ------------------------------------------------------------ access

    @contextmanager
    def write(self) -> Iterator[lmdb.Transaction[bytes]]:
        with self.env.begin(write=True) as txn:
            yield txn

    @contextmanager
    def read(self) -> Iterator[lmdb.Transaction[bytes]]:
        with self.env.begin() as txn:
            yield txn

    def db(self, name: str) -> Any:
        return self.dbs[name]

    def count(self, name: str) -> int:
        with self.read() as txn:
            return int(txn.stat(self.dbs[name])["entries"])

    def get(self, name: str, key: bytes) -> bytes | None:
        with self.read() as txn:
            v = txn.get(key, db=self.dbs[name])
            return None if v is None else bytes(v)

    def prefix(self, name: str, prefix: bytes, txn: lmdb.Transaction[bytes] | None = None) -> list[tuple[bytes, bytes]]:
        """Every (key, value) whose key starts with ``prefix`` (a small range: one dir's name, one inode)."""
        if txn is None:
            with self.read() as own:
                return self.prefix(name, prefix, own)
        out: list[tuple[bytes, bytes]] = []
        with txn.cursor(db=self.dbs[name]) as cur:
            if cur.set_range(prefix):
                for k, v in cur:
                    if not bytes(k).startswith(prefix):
                        break
                    out.append((bytes(k), bytes(v)))
        return out

    def count_prefix(self, name: str, prefix: bytes) -> int:
        """How many keys start with ``prefix`` (a directory's children: counted, never listed)."""
        n = 0
        with self.read() as txn, txn.cursor(db=self.dbs[name]) as cur:
            if cur.set_range(prefix):
                for k in cur.iternext(keys=True, values=False):
                    if not bytes(k).startswith(prefix):
                        break
                    n += 1
        return n

    def items(self, name: str, start: bytes = b"", page: int = 10000) -> Iterator[tuple[bytes, bytes]]:
        """Every (key, value) of ``name`` from ``start``, read a page per transaction.

        Short transactions: the caller may write between pages (a memo, a finding).
        """
        after: bytes | None = None
        while True:
            rows: list[tuple[bytes, bytes]] = []
            with self.read() as txn, txn.cursor(db=self.dbs[name]) as cur:
                ok = cur.set_range(after) if after is not None else (cur.set_range(start) if start else cur.first())
                if ok and after is not None and cur.key() == after:
                    ok = cur.next()
                while ok and len(rows) < page:
                    rows.append((bytes(cur.key()), bytes(cur.value())))
                    ok = cur.next()
            yield from rows
            if len(rows) < page:
                return
            after = rows[-1][0]
