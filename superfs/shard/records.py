"""On-disk record formats of the file-metadata shard.

Records are hand-packed little-endian structs: a shard holds billions of
them, and protobuf's per-field tags and varints would cost more bytes and
more CPU per record than a fixed layout. These bytes never travel on the
wire (the service layer encodes protobuf replies); they only live in LMDB.

Key and value formats (the sub-database layout is described in store.py):

- dentry key   ``parent (8, big-endian) + name (utf-8)``: big-endian so that
  one directory's entries are one contiguous, name-ordered range.
- dentry value ``ino (8) + type (1)``.
- inode key    ``inode_key(ino)``: 8 bytes, sequence before partition.
- inode value  ``INODE_HEAD`` then, for chunked files, ``chunk_size (4) +
  count (2) + server ids (4 each)`` and, when the flags say so
  (``FLAG_WRITTEN``), ``cut_generation (8) + count (2) + [start, end) chunk
  index ranges (8 + 8 each)``: the chunks written, then (``FLAG_REPAIRED``)
  the generation at which fsck --repair cut bytes past the end (8); for symlinks, the target
  bytes; for character and block devices, the device
  number (8). Records written before the ranges existed lack the flag (the shard
  then knows nothing of which chunks were written: WRITTEN_UNKNOWN); code
  that predates them ignores the flag bits and the trailing bytes.
"""
from __future__ import annotations

import json
import stat
import struct
from dataclasses import dataclass

from superfs.filetypes import type_of_mode
from superfs.routing import INO_PARTITION_SHIFT, SEQ_MASK
from superfs.v1 import superfs_pb2 as pb

REGULAR = pb.REGULAR
DIRECTORY = pb.DIRECTORY
SYMLINK = pb.SYMLINK

U64 = struct.Struct(">Q")
RDEV = struct.Struct("<Q")
PARTITION_KEY = struct.Struct(">I")
DENTRY_VALUE = struct.Struct("<QB")
# mode, nlink, uid, gid, size, atime, mtime, ctime, generation, flags
INODE_HEAD = struct.Struct("<IIIIQqqqqB")
CHUNKED_HEAD = struct.Struct("<IH")
SERVER_ID = struct.Struct("<I")
FLAG_INLINE = 1
FLAG_WRITTEN = 2        # chunked: the written ranges follow the layout
FLAG_WRITTEN_EXACT = 4  # ... and they are exact (a chunk in them that no replica has is lost)
FLAG_REPAIRED = 8       # chunked: fsck cut bytes past its end at ``repair_generation`` (8 bytes, last)
REPAIR_GENERATION = struct.Struct("<q")
WRITTEN_HEAD = struct.Struct("<qH")
CHUNK_RANGE = struct.Struct("<QQ")
SIZE_OFFSET = 16  # of ``size`` in a packed inode: Stats sums it without unpacking

# outbox value: ino, delta, created_ns
OUTBOX_VALUE = struct.Struct("<Qiq")
# reclaim value head: chunk_size, generation, freed, then layout ids
RECLAIM_HEAD = struct.Struct("<IqB")
# applied value head: created_ns, then the reply bytes
APPLIED_HEAD = struct.Struct("<q")
# a stored Attr reply: ino, mode, nlink, uid, gid, size, atime, mtime, ctime, generation
ATTR_REPLY = struct.Struct("<QIIIIQqqqq")


def u64(n: int) -> bytes:
    return U64.pack(n)


def inode_key(ino: int) -> bytes:
    """Key of an inode record: sequence (40 bits) before partition (24 bits).

    A bijection of the ino. Inodes are created in every partition at once,
    each at the end of its own sequence; ordering by sequence first makes
    those inserts near-appends (dense pages) rather than one insertion point
    per partition (half-empty pages). A partition's records are then not one
    range, but neither are its dentries, so moving a partition scans anyway.
    """
    return U64.pack(((ino & SEQ_MASK) << 24) | (ino >> INO_PARTITION_SHIFT))


def ino_of_inode_key(key: bytes) -> int:
    """The inverse of :func:`inode_key`."""
    v = U64.unpack(key)[0]
    return ((v & ((1 << 24) - 1)) << INO_PARTITION_SHIFT) | (v >> 24)


PIECE_INDEX = struct.Struct(">H")
# LMDB stores a value too big for half a leaf page on whole overflow pages
# (16-byte header each): a 4096-byte value takes two 4 KiB pages. Inline
# bytes are therefore cut into pieces that fill overflow pages exactly,
# then a tail of pieces small enough to share leaf pages. A 4 KiB file then
# costs about 4.2 KB instead of 8.4 KB.
OVERFLOW_PIECE = 4096 - 16
LEAF_PIECE = 1000


def inline_pieces(data: bytes) -> list[bytes]:
    view = memoryview(data)
    out: list[bytes] = []
    i, n = 0, len(data)
    while n - i >= OVERFLOW_PIECE:
        out.append(bytes(view[i:i + OVERFLOW_PIECE]))
        i += OVERFLOW_PIECE
    while i < n:
        out.append(bytes(view[i:i + LEAF_PIECE]))
        i += LEAF_PIECE
    return out


def dentry_key(parent: int, raw_name: bytes) -> bytes:
    return U64.pack(parent) + raw_name


def split_dentry_key(key: bytes) -> tuple[int, bytes]:
    return U64.unpack_from(key)[0], key[8:]


def encode_name(name: str) -> bytes:
    return name.encode("utf-8", "surrogateescape")


def decode_name(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


@dataclass
class Inode:
    """A file's attributes as the shard keeps them (inline bytes live apart)."""

    ino: int
    mode: int
    nlink: int
    uid: int
    gid: int
    size: int
    atime_ns: int
    mtime_ns: int
    ctime_ns: int
    generation: int
    inline: bool = True
    chunk_size: int = 0
    layout: tuple[int, ...] = ()
    symlink_target: bytes = b""
    # chunked files: which chunks were written (see superfs/chunkranges.py and WrittenState in the proto)
    written: tuple[tuple[int, int], ...] = ()
    written_state: int = pb.WRITTEN_UNKNOWN
    cut_generation: int = 0  # the generation a shrink cut chunks at (a report from before may be stale)
    rdev: int = 0  # character and block devices only
    # chunked files: the generation at which fsck --repair cut bytes past the end (a writer that
    # pushed bytes before it may not size them: see file_ops.set_size)
    repair_generation: int = 0

    @property
    def ftype(self) -> int:
        return type_of_mode(self.mode)

    @property
    def is_device(self) -> bool:
        return stat.S_ISCHR(self.mode) or stat.S_ISBLK(self.mode)

    def pack(self) -> bytes:
        flags = FLAG_INLINE if self.inline else 0
        known = not self.inline and self.written_state != pb.WRITTEN_UNKNOWN
        if known:
            flags |= FLAG_WRITTEN | (FLAG_WRITTEN_EXACT if self.written_state == pb.WRITTEN_EXACT else 0)
        if not self.inline and self.repair_generation:
            flags |= FLAG_REPAIRED
        head = INODE_HEAD.pack(
            self.mode, self.nlink, self.uid, self.gid, self.size, self.atime_ns,
            self.mtime_ns, self.ctime_ns, self.generation, flags,
        )
        if not self.inline:
            ids = b"".join(SERVER_ID.pack(s) for s in self.layout)
            out = head + CHUNKED_HEAD.pack(self.chunk_size, len(self.layout)) + ids
            if known:
                out += WRITTEN_HEAD.pack(self.cut_generation, len(self.written)) + b"".join(
                    CHUNK_RANGE.pack(a, b) for a, b in self.written)
            if self.repair_generation:
                out += REPAIR_GENERATION.pack(self.repair_generation)
            return out
        if self.is_device:
            return head + RDEV.pack(self.rdev)
        return head + self.symlink_target

    @classmethod
    def unpack(cls, ino: int, raw: bytes) -> "Inode":
        mode, nlink, uid, gid, size, at, mt, ct, gen, flags = INODE_HEAD.unpack_from(raw)
        node = cls(ino, mode, nlink, uid, gid, size, at, mt, ct, gen, bool(flags & FLAG_INLINE))
        rest = raw[INODE_HEAD.size:]
        if not node.inline:
            node.chunk_size, count = CHUNKED_HEAD.unpack_from(rest)
            off = CHUNKED_HEAD.size
            node.layout = tuple(SERVER_ID.unpack_from(rest, off + 4 * i)[0] for i in range(count))
            off += 4 * count
            if flags & FLAG_WRITTEN:
                node.cut_generation, n = WRITTEN_HEAD.unpack_from(rest, off)
                off += WRITTEN_HEAD.size
                node.written = tuple(CHUNK_RANGE.unpack_from(rest, off + CHUNK_RANGE.size * i) for i in range(n))
                node.written_state = pb.WRITTEN_EXACT if flags & FLAG_WRITTEN_EXACT else pb.WRITTEN_SUPERSET
                off += CHUNK_RANGE.size * n
            if flags & FLAG_REPAIRED:
                node.repair_generation = REPAIR_GENERATION.unpack_from(rest, off)[0]
        elif node.is_device:
            node.rdev = RDEV.unpack_from(rest)[0] if len(rest) >= RDEV.size else 0
        else:
            node.symlink_target = bytes(rest)
        return node

    def attr_reply(self) -> bytes:
        return ATTR_REPLY.pack(self.ino, self.mode, self.nlink, self.uid, self.gid, self.size,
                               self.atime_ns, self.mtime_ns, self.ctime_ns, self.generation)

    @classmethod
    def from_attr_reply(cls, raw: bytes) -> "Inode":
        ino, mode, nlink, uid, gid, size, at, mt, ct, gen = ATTR_REPLY.unpack_from(raw)
        return cls(ino, mode, nlink, uid, gid, size, at, mt, ct, gen)


@dataclass
class ReclaimItem:
    """Chunks of ``ino`` at and past byte ``from_size`` are to be deleted."""

    ino: int
    from_size: int
    chunk_size: int
    generation: int
    freed: bool  # the inode is gone: nothing can race with the deletion
    layout: tuple[int, ...] = ()

    def key(self) -> bytes:
        return U64.pack(self.ino) + U64.pack(self.from_size)

    def pack(self) -> bytes:
        return RECLAIM_HEAD.pack(self.chunk_size, self.generation, int(self.freed)) + b"".join(
            SERVER_ID.pack(s) for s in self.layout
        )

    @classmethod
    def unpack(cls, key: bytes, raw: bytes) -> "ReclaimItem":
        ino, from_size = U64.unpack_from(key)[0], U64.unpack_from(key, 8)[0]
        cs, gen, freed = RECLAIM_HEAD.unpack_from(raw)
        n = (len(raw) - RECLAIM_HEAD.size) // 4
        layout = tuple(SERVER_ID.unpack_from(raw, RECLAIM_HEAD.size + 4 * i)[0] for i in range(n))
        return cls(ino, from_size, cs, gen, bool(freed), layout)


@dataclass
class OutboxItem:
    """An nlink change owed to the inode's home shard, delivered by txid."""

    txid: str
    ino: int
    delta: int
    created_ns: int

    def pack(self) -> bytes:
        return OUTBOX_VALUE.pack(self.ino, self.delta, self.created_ns)

    @classmethod
    def unpack(cls, key: bytes, raw: bytes) -> "OutboxItem":
        ino, delta, ts = OUTBOX_VALUE.unpack(raw)
        return cls(key.decode(), ino, delta, ts)


@dataclass
class Intent:
    """A cross-shard operation in flight, keyed by the local entry it locks.

    kind "rename": the local entry is the source; ``dst_*`` is the entry to
    create on the destination shard with RemoteLink, and ``expect_ino`` what
    that entry held when the rename began (0: nothing; -1: not recorded, an
    intent from before this was kept): the rename is rolled forward only onto
    exactly that. kind "link": the local entry is the new name, to be
    inserted once the inode's home shard has counted the extra link. Rare,
    so stored as JSON for readability.
    """

    kind: str
    txid: str
    ino: int
    ftype: int
    parent: int
    raw_name: bytes
    dst_parent: int = 0
    dst_name: str = ""
    flags: int = 0
    created_ns: int = 0
    expect_ino: int = -1

    def key(self) -> bytes:
        return dentry_key(self.parent, self.raw_name)

    def pack(self) -> bytes:
        return json.dumps({
            "kind": self.kind, "txid": self.txid, "ino": self.ino, "ftype": self.ftype,
            "dst_parent": self.dst_parent, "dst_name": self.dst_name, "flags": self.flags,
            "created_ns": self.created_ns, "expect": self.expect_ino,
        }).encode()

    @classmethod
    def unpack(cls, key: bytes, raw: bytes) -> "Intent":
        d = json.loads(raw)
        parent, raw_name = split_dentry_key(key)
        return cls(d["kind"], d["txid"], d["ino"], d["ftype"], parent, raw_name,
                   d["dst_parent"], d["dst_name"], d["flags"], d["created_ns"], d.get("expect", -1))
