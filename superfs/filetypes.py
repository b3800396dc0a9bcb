"""File types: the S_IFMT bits of a mode and the wire's FileType, in one table.

Besides directories (the dir server's) a shard stores regular files,
symlinks and the special files mknod(2), mkfifo(3) and bind(2) make: FIFOs,
sockets, character and block devices. A special file is only metadata (its
type, mode, owner, times and, for devices, the device number): what it does
when opened is the kernel's business, never the file system's.
"""
from __future__ import annotations

import stat

from superfs.v1 import superfs_pb2 as pb

TYPE_OF_FMT: dict[int, int] = {
    stat.S_IFREG: pb.REGULAR, stat.S_IFDIR: pb.DIRECTORY, stat.S_IFLNK: pb.SYMLINK,
    stat.S_IFIFO: pb.FIFO, stat.S_IFSOCK: pb.SOCKET, stat.S_IFCHR: pb.CHAR_DEVICE, stat.S_IFBLK: pb.BLOCK_DEVICE,
}
FMT_OF_TYPE: dict[int, int] = {t: fmt for fmt, t in TYPE_OF_FMT.items()}

SPECIAL_TYPES = frozenset({pb.FIFO, pb.SOCKET, pb.CHAR_DEVICE, pb.BLOCK_DEVICE})
DEVICE_TYPES = frozenset({pb.CHAR_DEVICE, pb.BLOCK_DEVICE})
# every type a shard inode may have: all but directories
FILE_TYPES = frozenset({pb.REGULAR, pb.SYMLINK}) | SPECIAL_TYPES


def type_of_mode(mode: int) -> int:
    """The FileType of a full st_mode (a mode without type bits is a regular file)."""
    return TYPE_OF_FMT.get(stat.S_IFMT(mode), pb.REGULAR)


def fmt_of_type(ftype: int) -> int:
    """The S_IFMT bits of a FileType."""
    return FMT_OF_TYPE.get(ftype, stat.S_IFREG)
