"""Where things live: partitions of entries, home shards of inodes, replicas of chunks.

Pure functions shared by the client (which routes requests) and the daemons
(which check that a request reached the right place and find peers).
"""
from __future__ import annotations

import struct
from typing import Callable, NewType, Sequence

import xxhash

InodeId = NewType("InodeId", int)
ShardId = NewType("ShardId", int)
DataServerId = NewType("DataServerId", int)

ROOT_INO = InodeId(1)
INO_PARTITION_SHIFT = 40
DIR_INO_LIMIT = 1 << INO_PARTITION_SHIFT  # directory inos are below this
SEQ_MASK = DIR_INO_LIMIT - 1
DEFAULT_PARTITIONS = 1024


def is_dir_ino(ino: int) -> bool:
    """Directories are numbered by the dir server below 2**40."""
    return 0 < ino < DIR_INO_LIMIT


def entry_partition(parent: int, name: str, num_partitions: int) -> int:
    """The virtual partition owning directory entry (parent, name)."""
    h = xxhash.xxh64_intdigest(struct.pack(">Q", parent) + name.encode("utf-8", "surrogateescape"))
    return h % num_partitions


def make_file_ino(partition: int, seq: int) -> InodeId:
    if not 0 < seq <= SEQ_MASK:
        raise ValueError(f"inode sequence {seq} out of range")
    return InodeId(((partition + 1) << INO_PARTITION_SHIFT) | seq)


def ino_partition(ino: int) -> int:
    """The home partition of a file inode (where its record lives)."""
    if is_dir_ino(ino):
        raise ValueError(f"inode {ino} is a directory")
    return (ino >> INO_PARTITION_SHIFT) - 1


def chunk_replicas(ino: int, index: int, layout: Sequence[int], replicas: int) -> list[int]:
    """Data server ids holding chunk (ino, index), best first.

    Rendezvous (highest-random-weight) hashing over the file's layout, the
    data servers chosen when the file became chunked: every chunk of a file
    spreads evenly, and a lost server only moves its own chunks.
    """
    key = struct.pack(">QQ", ino, index)
    scored = sorted(layout, key=lambda sid: xxhash.xxh64_intdigest(key + struct.pack(">I", sid)), reverse=True)
    return scored[: max(1, min(replicas, len(scored)))]


def read_order(ino: int, replicas: Sequence[int], here: Callable[[int], bool]) -> list[int]:
    """A chunk's replicas (best first) in the order to read them: those ``here`` (on this host,
    read from their slot files) first, and among them the same one for every chunk of a file
    that holds it, so a file read in order is one slot file read in order (the kernel then
    reads ahead in large requests: superfs/rpc/open_files.py); then the others, as given."""
    local = [sid for sid in replicas if here(sid)]
    if not local:
        return list(replicas)
    key = struct.pack(">Q", ino)
    local.sort(key=lambda sid: xxhash.xxh64_intdigest(key + struct.pack(">I", sid)), reverse=True)
    return local + [sid for sid in replicas if sid not in local]
