"""What the client knows about one file or directory, and its os.stat form."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from superfs.v1 import superfs_pb2 as pb

BLOCK = 512


@dataclass
class Node:
    """A resolved inode: a directory (from the dir server) or a file (a shard)."""

    ino: int
    attr: pb.Attr
    type: int  # a pb.FileType
    parent: int = 0
    name: str = ""
    file: pb.FileInfo | None = None          # files only
    cap: pb.DirCap | None = None            # directories only
    expires: float = 0.0                    # lease end (monotonic), directories
    fetched: float = 0.0                    # when the dir server answered (monotonic), directories
    extra: dict[str, object] = field(default_factory=dict)
    # chunked files: chunk ranges written through this node and not yet reported to the shard
    # (SetSize at commit), and the file's generation when the first of them was written
    unreported: list[tuple[int, int]] = field(default_factory=list)
    unreported_generation: int = 0

    @property
    def is_dir(self) -> bool:
        return self.type == pb.DIRECTORY

    @property
    def is_symlink(self) -> bool:
        return self.type == pb.SYMLINK


def to_stat(attr: pb.Attr, *, dev: int = 0x5F5) -> os.stat_result:
    """An os.stat_result from an Attr (st_blocks from the size, 512-byte units)."""
    blocks = (attr.size + BLOCK - 1) // BLOCK
    fields = (
        attr.mode, attr.ino, dev, attr.nlink, attr.uid, attr.gid, attr.size,
        attr.atime_ns // 1_000_000_000, attr.mtime_ns // 1_000_000_000, attr.ctime_ns // 1_000_000_000,
    )
    extra = {
        "st_atime": attr.atime_ns / 1e9, "st_mtime": attr.mtime_ns / 1e9, "st_ctime": attr.ctime_ns / 1e9,
        "st_atime_ns": attr.atime_ns, "st_mtime_ns": attr.mtime_ns, "st_ctime_ns": attr.ctime_ns,
        "st_blksize": 1 << 20, "st_blocks": blocks, "st_rdev": attr.rdev,
    }
    return os.stat_result(fields, extra)

