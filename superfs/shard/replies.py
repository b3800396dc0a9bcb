"""Protobuf replies made from shard records: an inode's attributes and its file record."""
from __future__ import annotations

from superfs.shard.records import Inode, decode_name
from superfs.v1 import superfs_pb2 as pb


def attr_of(node: Inode) -> pb.Attr:
    return pb.Attr(ino=node.ino, mode=node.mode, nlink=node.nlink, uid=node.uid, gid=node.gid,
                   size=node.size, atime_ns=node.atime_ns, mtime_ns=node.mtime_ns,
                   ctime_ns=node.ctime_ns, generation=node.generation, rdev=node.rdev)


def file_info_of(node: Inode, data: bytes = b"") -> pb.FileInfo:
    info = pb.FileInfo(attr=attr_of(node), type=pb.FileType.ValueType(node.ftype),
                       symlink_target=decode_name(node.symlink_target),
                       inline=node.inline, data=data, layout=node.layout, chunk_size=node.chunk_size,
                       written_state=pb.WrittenState.ValueType(node.written_state),
                       cut_generation=node.cut_generation)
    if node.written:
        info.written.extend(pb.ChunkRange(start=a, end=b) for a, b in node.written)
    return info
