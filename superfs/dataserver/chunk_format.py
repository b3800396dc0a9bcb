"""How a chunk is recorded: key encoding, header encoding, checksums.

A chunk lives under one 16-byte key, ``ino`` then ``index``, both 8-byte
big-endian, so that one file's chunks are adjacent and sorted by index (a
prefix scan lists them and a range delete drops a tail). Its header is the
value of that key in the ``chunk_head`` sub-database.

Header version 3 (every chunk written by this version): the chunk's bytes
are in a slot of a slot file (superfs/dataserver/slots.py), named in the
header with its class, file and index, and the header holds a checksum per
64 KiB block (superfs/dataserver/blocks.py); its ``checksum`` (what
replicas compare) is the hash of those sums. LMDB is the index only.

Versions 1 and 2 (stores written before): the bytes are the value of the
same key in ``chunk_data``, checksummed whole. They are still read there,
and moved into a slot by their next write or cut (``legacy``). Version 2
added when the chunk was last written (the server's wall clock) and the
server's write sequence at that write: fsck must tell a writer's freshly
pushed bytes, not yet sized on the shard, from garbage (superfs/fsck/).
Version 1 headers read as written at time 0.
"""
from __future__ import annotations

import errno
import struct
from dataclasses import dataclass
from typing import Callable

import xxhash

from superfs.dataserver.slots import Slot
from superfs.errors import FsError

MAX_CHUNK = 64 * 1024 * 1024  # largest chunk (and largest single read) accepted

_KEY = struct.Struct(">QQ")
_HEAD_V1 = struct.Struct(">BBQQ")  # version, algorithm, length, checksum
_HEAD_V2 = struct.Struct(">BBQQqQ")   # ... then written_ns, write_seq
# version, algorithm, block log2, slot log2, slot file, slot index, length, checksum, written_ns, write_seq;
# then the block sums
_HEAD = struct.Struct(">BBBBIIQQqQ")
_COUNTER = struct.Struct(">Q")
HEAD_VERSION = 3

KEY_SIZE = _KEY.size
INO_PREFIX_SIZE = 8

# Algorithm ids are stored in every header, so the default can change without
# making old chunks unreadable.
XXH64 = 1
XXH3_64 = 2
XXH3_BLOCKS = 3  # xxh3_64 of every block; the chunk checksum hashes the sums (version 3 headers)
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
    slot: Slot | None = None   # None: a version 1/2 chunk, bytes in LMDB
    block_log2: int = 0
    sums: bytes = b""          # little-endian u64 per block (version 3)

    @property
    def legacy(self) -> bool:
        return self.slot is None

    @property
    def block(self) -> int:
        return 1 << self.block_log2


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


def encode_legacy_head(algorithm: int, length: int, sum_: int, written_ns: int = 0, write_seq: int = 0) -> bytes:
    """A version 2 header (tests build old stores with it)."""
    return _HEAD_V2.pack(2, algorithm, length, sum_, written_ns, write_seq)


def encode_head(slot: Slot, block_log2: int, length: int, sums: bytes, checksum: int, written_ns: int,
                write_seq: int) -> bytes:
    return _HEAD.pack(HEAD_VERSION, XXH3_BLOCKS, block_log2, slot.size_log2, slot.file_no, slot.index, length,
                      checksum, written_ns, write_seq) + sums


def decode_head(raw: bytes | memoryview) -> ChunkHead:
    if len(raw) >= _HEAD.size and raw[0] == HEAD_VERSION:
        (_, algorithm, block_log2, slot_log2, file_no, index, length, sum_, written_ns,
         seq) = _HEAD.unpack_from(raw)
        sums = bytes(raw[_HEAD.size:])
        if algorithm != XXH3_BLOCKS or not 12 <= block_log2 <= 26 or \
                len(sums) != 8 * ((length + (1 << block_log2) - 1) >> block_log2):
            raise FsError(errno.EIO, f"chunk header (version 3) is inconsistent: {len(sums)} bytes of block "
                                     f"sums for {length} bytes")
        return ChunkHead(algorithm, length, sum_, written_ns, seq, Slot(slot_log2, file_no, index), block_log2,
                         sums)
    if len(raw) == _HEAD_V2.size:
        version, algorithm, length, sum_, written_ns, seq = _HEAD_V2.unpack_from(raw)
        if version == 2:
            return ChunkHead(algorithm, length, sum_, written_ns, seq)
    elif len(raw) == _HEAD_V1.size:
        version, algorithm, length, sum_ = _HEAD_V1.unpack_from(raw)
        if version == 1:
            return ChunkHead(algorithm, length, sum_)
    else:
        raise FsError(errno.EIO, f"chunk header has {len(raw)} bytes, expected at least {_HEAD.size}")
    raise FsError(errno.EIO, f"chunk header version {raw[0]} is not supported")


def encode_counter(value: int) -> bytes:
    return _COUNTER.pack(value)


def decode_counter(raw: bytes | memoryview | None) -> int:
    return 0 if raw is None else _COUNTER.unpack_from(raw)[0]
