"""ClusterLayout: what callers of the client library may know of how the cluster stores bytes.

FUSE sizes its buffers by it, ckpt and chukonu place work next to the data
servers holding a file's chunks. An immutable record taken from the cluster
map the client holds (:attr:`superfs.client.AsyncFs.layout`), so nothing
outside the client reaches into its routing.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

from superfs import routing
from superfs.v1 import superfs_pb2 as pb


@dataclass(frozen=True)
class ClusterLayout:
    epoch: int
    inline_threshold: int          # files up to this size keep their bytes in the shard record
    chunk_size: int                # the chunk size of files made chunked now
    replicas: int                  # copies of each chunk (R, at least 1)
    data_servers: Mapping[int, str]  # data server id -> address

    @classmethod
    def of(cls, cmap: pb.ClusterMap) -> "ClusterLayout":
        return cls(epoch=cmap.epoch, inline_threshold=cmap.inline_threshold, chunk_size=cmap.chunk_size,
                   replicas=cmap.replicas or 1,
                   data_servers=MappingProxyType({d.id: d.address for d in cmap.data_servers}))

    def replicas_of(self, ino: int, index: int, layout: list[int]) -> list[int]:
        """Data server ids holding chunk ``index`` of inode ``ino`` with file layout ``layout``, best first."""
        return routing.chunk_replicas(ino, index, layout, self.replicas)
