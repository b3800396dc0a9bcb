"""Where a SuperFS file's chunks live: the one module that asks the client library.

Data-centric scheduling needs, for each byte range of an input file, the
data servers holding it (best first), and for each data server its address.
The public client has no helper for that yet, so this module reads it from
the client's internals in one place (the path resolver for a file's inode
and layout, the cluster view for the chunk size and the replica rule);
when the client grows a public ``locate(path)`` this is the file to change.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChunkExtent:
    """One chunk of a file: its index, byte range, and replica data server ids (read order)."""

    index: int
    offset: int
    length: int
    replicas: tuple[int, ...]


@dataclass(frozen=True)
class FileChunks:
    path: str
    ino: int
    size: int
    chunk_size: int
    inline: bool
    layout: tuple[int, ...]
    replicas_per_chunk: int

    def replicas(self, index: int) -> tuple[int, ...]:
        if self.inline or not self.layout:
            return ()
        from superfs.routing import chunk_replicas
        return tuple(chunk_replicas(self.ino, index, list(self.layout), self.replicas_per_chunk))

    def extents(self) -> list[ChunkExtent]:
        if self.inline or self.size == 0:
            return []
        out = []
        for i in range((self.size + self.chunk_size - 1) // self.chunk_size):
            start = i * self.chunk_size
            out.append(ChunkExtent(i, start, min(self.chunk_size, self.size - start), self.replicas(i)))
        return out

    def server_of(self, offset: int) -> int | None:
        """The data server a read at ``offset`` goes to first (None: inline, from the shard)."""
        reps = self.replicas(offset // self.chunk_size) if self.chunk_size else ()
        return reps[0] if reps else None


def file_chunks(client: Any, path: str) -> FileChunks:
    """The chunk map of ``path`` (one path resolution on the cluster)."""
    node = client.node_of(path)
    info = node.file
    if info is None:
        raise IsADirectoryError(path)
    layout = client.layout
    return FileChunks(path=path, ino=int(node.ino), size=int(info.attr.size),
                      chunk_size=int(info.chunk_size or layout.chunk_size),
                      inline=bool(info.inline), layout=tuple(int(x) for x in info.layout),
                      replicas_per_chunk=int(layout.replicas))


def data_servers(client: Any) -> dict[int, str]:
    """Data server id -> address, from the client's cluster map."""
    return {int(i): str(a) for i, a in client.layout.data_servers.items()}


def cluster_chunk_size(client: Any) -> int:
    return int(client.layout.chunk_size)
