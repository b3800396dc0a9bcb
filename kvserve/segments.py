"""Segment files: objects demoted together, in one file on the SuperFS tier.

One file per 32 KiB block made a demotion two metadata round trips (create,
then write) for every block, about 1,000 blocks/s in a live replay. A
segment holds a whole batch: the payloads back to back, then a footer
(``SegmentFooter``: namespace, key, offset, size and xxh3_64 of each), its
length and a magic number::

    payload 0 | payload 1 | ... | footer | footer length (8, LE) | b"KVSEG001"

Written as one file (create, one chunk write on the byte path for a batch up
to a chunk, size), it costs the metadata of one file for the whole batch.
The index in memory says where each object is; the footer lets a restarted
daemon rebuild it by reading each segment's tail only. Pure functions, no
I/O.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Sequence

import xxhash
from google.protobuf.message import DecodeError

from kvserve.v1 import kvserve_pb2 as pb

MAGIC = b"KVSEG001"
TRAILER = struct.Struct("<Q8s")   # footer length, magic
VERSION = 1


@dataclass(frozen=True)
class Entry:
    """One object of a segment."""

    namespace: str
    key: bytes
    offset: int
    size: int
    checksum: int


def encode(items: Sequence[tuple[str, bytes, bytes | memoryview, int]]) -> tuple[bytes, list[Entry]]:
    """(the segment's bytes, its entries) for (namespace, key, payload, checksum) items."""
    parts: list[bytes | memoryview] = []
    entries: list[Entry] = []
    pos = 0
    for namespace, key, data, checksum in items:
        entries.append(Entry(namespace, key, pos, len(data), checksum))
        parts.append(data)
        pos += len(data)
    footer = pb.SegmentFooter(version=VERSION, entries=[
        pb.SegmentEntry(namespace=e.namespace, key=e.key, offset=e.offset, size=e.size, checksum=e.checksum)
        for e in entries]).SerializeToString()
    parts.append(footer)
    parts.append(TRAILER.pack(len(footer), MAGIC))
    return b"".join(parts), entries


def footer_length(trailer: bytes, file_size: int) -> int | None:
    """The footer's length from a segment's last TRAILER.size bytes (None: not a sound segment)."""
    if len(trailer) != TRAILER.size:
        return None
    length, magic = TRAILER.unpack(trailer)
    if magic != MAGIC or length + TRAILER.size > file_size:
        return None
    return int(length)


def decode_footer(raw: bytes, file_size: int) -> list[Entry] | None:
    """The entries of a footer (None: damaged, or pointing outside the file)."""
    footer = pb.SegmentFooter()
    try:
        footer.ParseFromString(raw)
    except DecodeError:
        return None
    if footer.version != VERSION:
        return None
    end = file_size - len(raw) - TRAILER.size
    out = []
    for e in footer.entries:
        if e.offset + e.size > end:
            return None
        out.append(Entry(e.namespace, bytes(e.key), e.offset, e.size, e.checksum))
    return out


def sound(data: bytes | memoryview, entry: Entry) -> bool:
    return len(data) == entry.size and xxhash.xxh3_64_intdigest(data) == entry.checksum
