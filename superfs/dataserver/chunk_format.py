"""How a chunk is laid out in LMDB: key encoding, header encoding, checksums.

A chunk lives under one 16-byte key, ``ino`` then ``index``, both 8-byte
big-endian, so that one file's chunks are adjacent and sorted by index (a
prefix scan lists them and a range delete drops a tail). The chunk is split
over two sub-databases under the same key:

- ``chunk_head``: a small header (format version, checksum algorithm, length,
  checksum);
- ``chunk_data``: the chunk's bytes, exactly, nothing prepended.

Keeping the bytes bare (rather than header + bytes in one value) lets a full
chunk write hand the request's bytes straight to LMDB with no concatenation
copy, and lets deletes, listings and statistics walk the tiny headers without
ever touching (or, in a write transaction, copying) megabytes of data.
Both records change in the same transaction, so they never disagree after a
crash; if they do disagree (disk damage), reads report EIO.

Header version 2 adds when the chunk was last written (the server's wall
clock) and the server's write sequence at that write: fsck must tell a
writer's freshly pushed bytes, not yet sized on the shard, from garbage
(superfs/fsck/). Version 1 headers still read, as written at time 0.
"""
from __future__ import annotations

import errno
import struct
from dataclasses import dataclass
from typing import Callable

import xxhash

from superfs.errors import FsError

MAX_CHUNK = 64 * 1024 * 1024  # largest chunk (and largest single read) accepted

_KEY = struct.Struct(">QQ")
_HEAD_V1 = struct.Struct(">BBQQ")  # version, algorithm, length, checksum
_HEAD = struct.Struct(">BBQQqQ")   # ... then written_ns, write_seq
_COUNTER = struct.Struct(">Q")
HEAD_VERSION = 2

KEY_SIZE = _KEY.size
INO_PREFIX_SIZE = 8

# Algorithm ids are stored in every header, so the default can change without
# making old chunks unreadable.
XXH64 = 1
XXH3_64 = 2
_HASHERS: dict[int, Callable[..., int]] = {
    XXH64: xxhash.xxh64_intdigest,
    XXH3_64: xxhash.xxh3_64_intdigest,
}
ALGORITHM_IDS = {"xxh64": XXH64, "xxh3_64": XXH3_64}


@dataclass(frozen=True)
class ChunkHead:
    """The header of one stored chunk."""

    algorithm: int
    length: int
    checksum: int
    written_ns: int = 0
    write_seq: int = 0


def chunk_key(ino: int, index: int) -> bytes:
    return _KEY.pack(ino, index)


def ino_prefix(ino: int) -> bytes:
    return _KEY.pack(ino, 0)[:INO_PREFIX_SIZE]


def split_key(key: bytes | memoryview) -> tuple[int, int]:
    ino, index = _KEY.unpack_from(key)
    return ino, index


def checksum(algorithm: int, data: bytes | bytearray | memoryview) -> int:
    """Checksum of ``data``; xxhash releases the GIL on large buffers."""
    try:
        hasher = _HASHERS[algorithm]
    except KeyError:
        raise FsError(errno.EIO, f"unknown checksum algorithm {algorithm}") from None
    return hasher(data)


def encode_head(algorithm: int, length: int, sum_: int, written_ns: int = 0, write_seq: int = 0) -> bytes:
    return _HEAD.pack(HEAD_VERSION, algorithm, length, sum_, written_ns, write_seq)


def decode_head(raw: bytes | memoryview) -> ChunkHead:
    if len(raw) == _HEAD.size:
        version, algorithm, length, sum_, written_ns, seq = _HEAD.unpack_from(raw)
        if version == HEAD_VERSION:
            return ChunkHead(algorithm, length, sum_, written_ns, seq)
    elif len(raw) == _HEAD_V1.size:
        version, algorithm, length, sum_ = _HEAD_V1.unpack_from(raw)
        if version == 1:
            return ChunkHead(algorithm, length, sum_)
    else:
        raise FsError(errno.EIO, f"chunk header has {len(raw)} bytes, expected {_HEAD.size}")
    raise FsError(errno.EIO, f"chunk header version {version} is not supported")


def encode_counter(value: int) -> bytes:
    return _COUNTER.pack(value)


def decode_counter(raw: bytes | memoryview | None) -> int:
    return 0 if raw is None else _COUNTER.unpack_from(raw)[0]
