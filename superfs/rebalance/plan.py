"""What to move where: pure functions over the cluster map and a file's record.

A chunked file's layout is the set of data servers its chunks are placed
over by rendezvous hashing (superfs/routing.py); the mover changes the
layout, and every chunk whose placement changes with it is copied first.

- *readable* servers hold copies a reader may use: active and draining
  ones (a draining server keeps serving until its chunks are elsewhere);
  dead and removed ones hold nothing usable.
- A file's *target* layout is its layout without the servers to empty
  (draining, dead, removed), topped up with the least loaded active
  servers until it has R (so a chunk keeps R copies); a rebalance target
  is every active server.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from superfs import chunkranges, routing
from superfs.v1 import superfs_pb2 as pb

ACTIVE, DRAINING, DEAD, REMOVED = "active", "draining", "dead", "removed"


def state_of(server: pb.ServerInfo) -> str:
    return server.state or ACTIVE


def states(cmap: pb.ClusterMap) -> dict[int, str]:
    return {d.id: state_of(d) for d in cmap.data_servers}


def active(cmap: pb.ClusterMap) -> list[int]:
    return sorted(i for i, s in states(cmap).items() if s == ACTIVE)


def readable(cmap: pb.ClusterMap) -> set[int]:
    return {i for i, s in states(cmap).items() if s in (ACTIVE, DRAINING)}


def leaving(cmap: pb.ClusterMap) -> set[int]:
    """Servers whose chunks must go elsewhere: draining, dead and removed ones."""
    return {i for i, s in states(cmap).items() if s != ACTIVE}


def replicas(cmap: pb.ClusterMap) -> int:
    return max(1, cmap.replicas or 1)


def chunk_indices(info: pb.FileInfo) -> list[int]:
    """The chunks of a file that may hold bytes (holes the shard knows of are skipped)."""
    if info.inline or info.chunk_size <= 0:
        return []
    below = chunkranges.chunks_below(info.attr.size, info.chunk_size)
    if info.written_state == pb.WRITTEN_UNKNOWN:
        return list(range(below))
    out: list[int] = []
    for r in info.written:
        out.extend(range(r.start, min(r.end, below)))
    return out


def drain_target(layout: Sequence[int], cmap: pb.ClusterMap, load: dict[int, int]) -> list[int]:
    """``layout`` without the leaving servers, topped up to R with the least loaded active ones."""
    gone = leaving(cmap)
    kept = [s for s in layout if s not in gone]
    spare = sorted((s for s in active(cmap) if s not in kept), key=lambda s: (load.get(s, 0), s))
    while len(kept) < replicas(cmap) and spare:
        kept.append(spare.pop(0))
    return sorted(kept)


def rebalance_target(cmap: pb.ClusterMap) -> list[int]:
    """Every active server: rendezvous hashing then gives each its share of the file's chunks."""
    return active(cmap)


@dataclass(frozen=True)
class ChunkMove:
    """One chunk whose placement changes: copy to ``add``, then delete from ``drop``."""

    index: int
    old: tuple[int, ...]   # placement under the old layout, best first
    new: tuple[int, ...]   # under the new one
    add: tuple[int, ...]
    drop: tuple[int, ...]


def chunk_moves(ino: int, indices: Iterable[int], old_layout: Sequence[int], new_layout: Sequence[int],
                r: int) -> list[ChunkMove]:
    out = []
    for idx in indices:
        old = routing.chunk_replicas(ino, idx, old_layout, r)
        new = routing.chunk_replicas(ino, idx, new_layout, r)
        add = tuple(s for s in new if s not in old)
        drop = tuple(s for s in old if s not in new)
        if add or drop:
            out.append(ChunkMove(idx, tuple(old), tuple(new), add, drop))
    return out


def within_tolerance(counts: dict[int, int], tolerance: float) -> bool:
    """Does every server hold its share (the mean) within ``tolerance`` (0.1: 10%)?"""
    if not counts:
        return True
    mean = sum(counts.values()) / len(counts)
    if mean == 0:
        return True
    return all(abs(c - mean) <= tolerance * mean for c in counts.values())


def under_replicated(info: pb.FileInfo, cmap: pb.ClusterMap) -> int:
    """Chunks of a file with fewer than R copies on readable servers where its layout places them
    (a copy on a dead or removed server, or a layout of fewer than R servers)."""
    if info.inline:
        return 0
    ok = readable(cmap)
    r = replicas(cmap)
    if len(info.layout) >= r and set(info.layout) <= ok:
        return 0
    return sum(1 for idx in chunk_indices(info)
               if sum(1 for s in routing.chunk_replicas(info.attr.ino, idx, list(info.layout), r) if s in ok) < r)
