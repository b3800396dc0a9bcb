"""File operations of the shard store: create, stat, attributes, inline bytes.

Each function runs inside one LMDB transaction (a :class:`ShardTxn`), checks
what Linux would check, and raises :class:`FsError` with Linux's errno.
Routing (is this the right shard?) and capabilities are checked by the
service before it gets here; POSIX permissions on the file itself are
checked here, against the inode in the same transaction.
"""
from __future__ import annotations

import errno
import stat
from dataclasses import dataclass

from superfs import chunkranges, perms
from superfs.errors import FsError
from superfs.filetypes import DEVICE_TYPES, FILE_TYPES, fmt_of_type
from superfs.perms import CredsLike
from superfs.shard.records import DIRECTORY, REGULAR, SYMLINK, Inode, ReclaimItem
from superfs.shard.store import ShardTxn
from superfs.shard.txn_base import now_ns
from superfs.v1 import superfs_pb2 as pb

MAX_FILE_SIZE = 1 << 60
MAX_IO = 64 * 1024 * 1024  # one inline read; bigger is a client bug
MAX_REPORTED_RANGES = 4096  # written ranges in one SetSize
SYMLINK_MAX = 4095

# SetAttr mask bits (see SetAttrRequest in the proto)
SET_MODE, SET_UID, SET_GID, SET_SIZE = 1, 2, 4, 8
SET_ATIME, SET_MTIME, SET_ATIME_NOW, SET_MTIME_NOW = 16, 32, 64, 128
SET_ALL = 255


@dataclass
class CreateResult:
    node: Inode | None      # None: the existing entry's inode lives on another shard
    created: bool
    remote_ino: int = 0
    reclaim: ReclaimItem | None = None


def is_owner(node: Inode, creds: CredsLike) -> bool:
    return creds.uid == 0 or creds.uid == node.uid


def _kill_suid(node: Inode, creds: CredsLike) -> None:
    """A write by a non-root user drops setuid (and setgid if group-executable), as Linux does."""
    if creds.uid != 0:
        node.mode &= ~stat.S_ISUID
        if node.mode & stat.S_IXGRP:
            node.mode &= ~stat.S_ISGID


def _touch(node: Inode, t_ns: int | None = None) -> None:
    t = now_ns() if t_ns is None else t_ns
    node.mtime_ns = node.ctime_ns = t
    node.generation += 1


def resize(t: ShardTxn, node: Inode, new_size: int, inline_threshold: int) -> ReclaimItem | None:
    """Set the size of a file; an inline file is cut or zero-extended.

    Returns the reclaim item queued when a chunked file shrank (the chunks
    past the new end are deleted by the reclaimer).
    """
    if new_size > MAX_FILE_SIZE:
        raise FsError(errno.EFBIG, f"size {new_size} exceeds the maximum file size")
    old = node.size
    node.size = new_size
    _touch(node)
    if node.inline:
        if new_size > inline_threshold:
            raise FsError(errno.EFBIG, "size exceeds the inline threshold: convert to chunks first")
        data = t.inline_data(node.ino)
        if new_size < len(data):
            t.put_inline(node.ino, data[:new_size])
        # growing leaves the tail implicit: bytes past the stored ones read as zeros
        return None
    if new_size < old:
        _cut_written(node, new_size)
        return t.add_reclaim(node, new_size, freed=False)
    return None


def _cut_written(node: Inode, new_size: int) -> None:
    """A chunked file shrinks: the chunks past the new end are holes from now on.

    ``cut_generation`` remembers when: a writer that reports chunks written
    from an older view may have had them cut (see :func:`set_size`).
    """
    node.cut_generation = node.generation
    if new_size == 0:  # nothing written: known exactly, even if it was not before
        node.written, node.written_state = (), pb.WRITTEN_EXACT
    elif node.written_state != pb.WRITTEN_UNKNOWN:
        node.written = chunkranges.cut(node.written, chunkranges.chunks_below(new_size, node.chunk_size))


def _in_group(creds: CredsLike, gid: int) -> bool:
    return creds.uid == 0 or creds.gid == gid or gid in creds.groups


def _not_regular(node: Inode) -> FsError | None:
    """Bytes and sizes belong to regular files: EINVAL for anything else (as truncate(2))."""
    if stat.S_ISREG(node.mode):
        return None
    return FsError(errno.EINVAL, "not a regular file")


def create_file(t: ShardTxn, *, parent: int, raw: bytes, partition: int, mode: int, ftype: int,
                target: bytes, exclusive: bool, truncate: bool, creds: CredsLike, data: bytes,
                inline_threshold: int, rdev: int = 0, group: int | None = None, ino: int = 0,
                holder: bytes = b"", time_ns: int = 0) -> CreateResult:
    """Create a file, symlink or special file; ``group``: the parent is setgid, and
    new files take its group instead of the creator's (as on Linux).

    ``ino``: a lease holder's create made ahead (ApplyBatch), as the inode number
    this shard delegated to ``holder``, at ``time_ns`` (never later than now).
    """
    if ftype not in FILE_TYPES:
        raise FsError(errno.EINVAL, "CreateFile makes files, symlinks and special files, not directories")
    if ftype == SYMLINK:
        if not target:
            raise FsError(errno.ENOENT, "empty symlink target")
        if len(target) > SYMLINK_MAX:
            raise FsError(errno.ENAMETOOLONG, "symlink target too long")
    t.check_not_sealed(parent)
    found = t.entry(parent, raw)
    if found is not None:
        ino, etype = found
        if exclusive or ftype != REGULAR:
            raise FsError(errno.EEXIST, "file exists")
        if etype == DIRECTORY:
            raise FsError(errno.EISDIR, "a directory has that name")
        if etype != REGULAR:
            raise FsError(errno.EEXIST, "a symlink or special file has that name")
        node = t.inode(ino)
        if node is None:
            return CreateResult(None, False, remote_ino=ino)
        reclaim = None
        if truncate:
            perms.require(node.mode, node.uid, node.gid, creds, perms.W_OK, "truncate")
            _kill_suid(node, creds)
            reclaim = resize(t, node, 0, inline_threshold)
            t.put_inode(node)
        return CreateResult(node, False, reclaim=reclaim)
    t.check_no_intent(parent, raw)
    if ftype in DEVICE_TYPES and creds.uid != 0:
        raise FsError(errno.EPERM, "only root may make device files")  # mknod(2): CAP_MKNOD
    if len(data) > inline_threshold:
        raise FsError(errno.EFBIG, "initial data exceeds the inline threshold")
    now = now_ns()
    if time_ns:
        now = min(time_ns, now)
    if ino:
        t.claim_delegated(partition, holder, ino)
    if ftype == SYMLINK:
        fmode, size, data = stat.S_IFLNK | 0o777, len(target), b""
    elif ftype == REGULAR:
        fmode, size, target = stat.S_IFREG | (mode & 0o7777), len(data), b""
    else:
        fmode, size, target, data = fmt_of_type(ftype) | (mode & 0o7777), 0, b"", b""
    gid = creds.gid if group is None else group
    if fmode & stat.S_ISGID and fmode & stat.S_IXGRP and not _in_group(creds, gid):
        fmode &= ~stat.S_ISGID  # Linux's mode_strip_sgid: not for a group the creator is not in
    node = Inode(ino or t.allocate_ino(partition), fmode, 1, creds.uid, gid, size, now, now, now, 1,
                 inline=True, symlink_target=target, rdev=rdev if ftype in DEVICE_TYPES else 0)
    t.put_inode(node)
    t.put_inline(node.ino, data)
    t.put_entry(parent, raw, node.ino, ftype)
    return CreateResult(node, True)


def _readable_data(t: ShardTxn, node: Inode, want_data: bool, creds: CredsLike | None) -> bytes:
    """Inline bytes for a lookup that asked for them, only if creds may read the file.

    A caller without read permission still gets the attributes (a lookup needs
    none); its read then goes to ReadInline, which answers EACCES.
    """
    if not (want_data and node.inline):
        return b""
    if creds is not None and not perms.allowed(node.mode, node.uid, node.gid, creds, perms.R_OK):
        return b""
    return t.inline_data(node.ino)


def lookup_file(t: ShardTxn, parent: int, raw: bytes, want_data: bool,
                creds: CredsLike | None = None) -> tuple[int, int, Inode | None, bytes]:
    """(ino, type, local inode or None, inline bytes if asked and readable) of one entry."""
    found = t.entry(parent, raw)
    if found is None:
        raise FsError(errno.ENOENT, "no such file")
    ino, ftype = found
    node = None if ftype == DIRECTORY else t.inode(ino)
    data = _readable_data(t, node, want_data, creds) if node is not None else b""
    return ino, ftype, node, data


def get_file(t: ShardTxn, ino: int, want_data: bool, creds: CredsLike | None = None) -> tuple[Inode, bytes]:
    node = t.require_inode(ino)
    return node, _readable_data(t, node, want_data, creds)


def _kills_privs(node: Inode, mode: int, creds: CredsLike) -> bool:
    """A mode change that only drops setuid/setgid, by someone who may write the file.

    The kernel drops them itself before a non-owner's write (file_remove_privs)
    and sends it as a chmod: anyone who may write may do what a write does.
    """
    # (a truncate drops them before its chmod comes: then that chmod changes nothing)
    old, new = node.mode & 0o7777, mode & 0o7777
    return (new & ~old == 0 and (old ^ new) & ~(stat.S_ISUID | stat.S_ISGID) == 0
            and perms.allowed(node.mode, node.uid, node.gid, creds, perms.W_OK))


def set_attr(t: ShardTxn, ino: int, *, mask: int, mode: int, uid: int, gid: int, size: int,
             atime_ns: int, mtime_ns: int, creds: CredsLike,
             inline_threshold: int) -> tuple[Inode, ReclaimItem | None]:
    if mask & ~SET_ALL:
        raise FsError(errno.EINVAL, f"unknown SetAttr mask bits {mask & ~SET_ALL:#x}")
    node = t.require_inode(ino)
    owner = is_owner(node, creds)
    # check everything first, so that a refused request changes nothing
    if mask & SET_MODE and not owner and not _kills_privs(node, mode, creds):
        raise FsError(errno.EPERM, "only the owner may chmod")
    if mask & SET_UID and creds.uid != 0 and (uid != node.uid or creds.uid != node.uid):
        raise FsError(errno.EPERM, "only root may change the owner")
    if mask & SET_GID and creds.uid != 0:
        if creds.uid != node.uid or (gid != node.gid and gid != creds.gid and gid not in creds.groups):
            raise FsError(errno.EPERM, "chgrp: not the owner, or not a member of the group")
    if mask & SET_SIZE:
        err = _not_regular(node)
        if err is not None:
            raise err
        perms.require(node.mode, node.uid, node.gid, creds, perms.W_OK, "truncate")
    if mask & (SET_ATIME | SET_MTIME) and not owner:
        raise FsError(errno.EPERM, "only the owner may set explicit times")
    if mask & (SET_ATIME_NOW | SET_MTIME_NOW) and not owner:
        perms.require(node.mode, node.uid, node.gid, creds, perms.W_OK, "utimes")
    now = now_ns()
    reclaim = None
    if mask & SET_SIZE:
        _kill_suid(node, creds)
        reclaim = resize(t, node, size, inline_threshold)
    if mask & SET_MODE:
        new = mode & 0o7777
        if creds.uid != 0 and node.gid != creds.gid and node.gid not in creds.groups:
            new &= ~stat.S_ISGID  # Linux drops setgid for a group the caller is not in
        node.mode = stat.S_IFMT(node.mode) | new
    if mask & (SET_UID | SET_GID):
        if mask & SET_UID:
            node.uid = uid
        if mask & SET_GID:
            node.gid = gid
        if not stat.S_ISLNK(node.mode):
            node.mode &= ~stat.S_ISUID
            if node.mode & stat.S_IXGRP:
                node.mode &= ~stat.S_ISGID
    if mask & SET_ATIME:
        node.atime_ns = atime_ns
    if mask & SET_MTIME:
        node.mtime_ns = mtime_ns
    if mask & SET_ATIME_NOW:
        node.atime_ns = now
    if mask & SET_MTIME_NOW:
        node.mtime_ns = now
    if mask:
        node.ctime_ns = now
    t.put_inode(node)
    return node, reclaim


def _writable_inline(t: ShardTxn, ino: int, creds: CredsLike) -> Inode:
    node = t.require_inode(ino)
    err = _not_regular(node)
    if err is not None:
        raise err
    perms.require(node.mode, node.uid, node.gid, creds, perms.W_OK, "write")
    return node


def write_inline(t: ShardTxn, ino: int, *, offset: int, data: bytes, truncate_to_end: bool,
                 creds: CredsLike, inline_threshold: int) -> Inode:
    node = _writable_inline(t, ino, creds)
    end = offset + len(data)
    if not node.inline:
        raise FsError(errno.EFBIG, "file is chunked: write to the data servers")
    if end > inline_threshold:
        raise FsError(errno.EFBIG, "write exceeds the inline threshold: convert to chunks")
    old = t.inline_data(ino)
    if len(old) < node.size:
        old = old + bytes(node.size - len(old))  # the implicit zero tail of a grown file
    if offset > len(old):
        old = old + bytes(offset - len(old))
    new = old[:offset] + data + (b"" if truncate_to_end else old[end:])
    t.put_inline(ino, new)
    node.size = len(new)
    _kill_suid(node, creds)
    _touch(node)
    t.put_inode(node)
    return node


def _record_written(node: Inode, written: list[tuple[int, int]] | None, seen_generation: int) -> None:
    if written is None:
        node.written, node.written_state = (), pb.WRITTEN_UNKNOWN
        return
    if len(written) > MAX_REPORTED_RANGES:
        raise FsError(errno.EINVAL, f"more than {MAX_REPORTED_RANGES} written ranges in one report")
    limit = chunkranges.chunks_below(node.size, node.chunk_size)  # bytes past the end do not count
    new = []
    for start, end in written:
        if not 0 <= start < end:
            raise FsError(errno.EINVAL, f"bad written chunk range [{start}, {end})")
        new.append((start, min(end, limit)))
    if node.written_state == pb.WRITTEN_UNKNOWN:
        return  # a file from before the record: chunks below the size may hold bytes anyway
    node.written, coarsened = chunkranges.add(node.written, new)
    if coarsened or seen_generation < node.cut_generation:
        node.written_state = pb.WRITTEN_SUPERSET


def read_inline(t: ShardTxn, ino: int, *, offset: int, length: int, creds: CredsLike) -> bytes:
    if length > MAX_IO:
        raise FsError(errno.EINVAL, f"read of {length} bytes exceeds {MAX_IO}")
    node = t.require_inode(ino)
    err = _not_regular(node)
    if err is not None:
        raise err
    perms.require(node.mode, node.uid, node.gid, creds, perms.R_OK, "read")
    if not node.inline:
        raise FsError(errno.EFBIG, "file is chunked: read from the data servers")
    if offset >= node.size:
        return b""
    end = min(node.size, offset + length)
    data = t.inline_data(ino)[offset:end]
    if len(data) < end - offset:
        data += bytes(end - offset - len(data))
    return data


def convert_to_chunked(t: ShardTxn, ino: int, *, creds: CredsLike, layout: list[int],
                       expect_generation: int, chunk_size: int) -> Inode:
    node = _writable_inline(t, ino, creds)
    if not node.inline:
        return node
    if not layout or len(layout) > 65535:
        raise FsError(errno.EINVAL, "a chunked file needs a layout of 1..65535 data servers")
    if chunk_size <= 0 or chunk_size >= 1 << 32:
        raise FsError(errno.EINVAL, f"bad chunk size {chunk_size}")
    if node.generation != expect_generation:
        raise FsError(errno.EAGAIN, "file changed since it was read: start the conversion over")
    copied = len(t.inline_data(ino))  # the bytes the client wrote as the first chunks
    t.put_inline(ino, b"")
    node.inline = False
    node.layout = tuple(layout)
    node.chunk_size = chunk_size
    node.written = ((0, chunkranges.chunks_below(copied, chunk_size)),) if copied else ()
    node.written_state = pb.WRITTEN_EXACT
    node.ctime_ns = now_ns()
    node.generation += 1  # cached inline copies must be dropped
    t.put_inode(node)
    return node


def fence_writers(t: ShardTxn, ino: int, *, size: int, generation: int) -> Inode:
    """fsck --repair is about to cut the bytes past a chunked file's end: from now on a writer that
    pushed bytes before this (its view of the file is older) may not size them (see set_size).
    ESTALE if the file changed since fsck's scan (size or generation)."""
    node = t.inode(ino)
    if node is None or node.inline or node.size != size or node.generation != generation:
        raise FsError(errno.ESTALE, "the file changed since the scan")
    node.generation += 1
    node.repair_generation = node.generation
    t.put_inode(node)
    return node


def set_size(t: ShardTxn, ino: int, *, size: int, mtime_ns: int, creds: CredsLike,
             written: list[tuple[int, int]] | None = None, seen_generation: int = 0) -> Inode:
    """Grow a chunked file to at least ``size`` after its chunks were written; record them.

    ``written``: the chunk ranges written since the writer's last report, or
    None from a client that does not report them (the shard then forgets
    which chunks hold bytes). ``seen_generation``: the file's generation
    when the writer wrote them; if a shrink cut chunks since, they may be
    gone again, and the record stops claiming to be exact.
    """
    node = _writable_inline(t, ino, creds)
    if node.inline:
        raise FsError(errno.EINVAL, "SetSize is for chunked files")
    if size > MAX_FILE_SIZE:
        raise FsError(errno.EFBIG, f"size {size} exceeds the maximum file size")
    if size > node.size and seen_generation < node.repair_generation:
        # fsck --repair cut the bytes past the end after this writer pushed them (it was frozen
        # past its deadline): growing the file now would hand out zeros as its data
        raise FsError(errno.EIO, "fsck --repair removed bytes this writer pushed before it; write them again")
    node.size = max(node.size, size)
    _record_written(node, written, seen_generation)
    _kill_suid(node, creds)
    _touch(node, None)
    if mtime_ns:
        node.mtime_ns = mtime_ns
    t.put_inode(node)
    return node
