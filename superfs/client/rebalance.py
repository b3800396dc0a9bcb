"""Which partitions to move where when a shard joins or leaves: pure plans over a cluster map.

A fair share is ``num_partitions // shards`` (some shards hold one more):
adding a shard takes partitions one at a time from whichever shard holds the
most; removing one gives each of its partitions to whichever remaining shard
holds the fewest. Moves already recorded in the map come first, to their
recorded target (a re-run finishes an interrupted plan).
"""
from __future__ import annotations

from superfs.v1 import superfs_pb2 as pb


def counts(cmap: pb.ClusterMap, shards: list[int]) -> dict[int, int]:
    out = {s: 0 for s in shards}
    for s in cmap.partition_shard:
        out[int(s)] = out.get(int(s), 0) + 1
    return out


def live_shards(cmap: pb.ClusterMap) -> list[int]:
    """Shards in the cluster: registered or owning partitions, not removed."""
    ids = {s.id for s in cmap.shards} | {int(s) for s in cmap.partition_shard}
    return sorted(ids - set(cmap.removed_shards))


def plan_add(cmap: pb.ClusterMap, new: int) -> list[tuple[int, int]]:
    """(partition, target) moves that give shard ``new`` its fair share; recorded moves first."""
    plan = [(m.partition, m.target) for m in cmap.moves]
    owner = [int(s) for s in cmap.partition_shard]
    for p, t in plan:
        owner[p] = t
    shards = sorted(set(live_shards(cmap)) | {new})
    share = len(owner) // len(shards)
    held = {s: 0 for s in shards}
    for s in owner:
        held[s] = held.get(s, 0) + 1
    moving = {p for p, _ in plan}
    while held[new] < share:
        donor = max((s for s in shards if s != new), key=lambda s: (held[s], -s))
        p = max(q for q, s in enumerate(owner) if s == donor and q not in moving)
        owner[p] = new
        held[donor] -= 1
        held[new] += 1
        moving.add(p)
        plan.append((p, new))
    return plan


def plan_drain(cmap: pb.ClusterMap, leaving: int) -> list[tuple[int, int]]:
    """(partition, target) moves that empty shard ``leaving`` onto the least loaded others."""
    plan = [(m.partition, m.target) for m in cmap.moves]
    owner = [int(s) for s in cmap.partition_shard]
    for p, t in plan:
        owner[p] = t
    others = [s for s in live_shards(cmap) if s != leaving and s in {x.id for x in cmap.shards}]
    if not others:
        return plan
    held = {s: 0 for s in others}
    for s in owner:
        if s in held:
            held[s] += 1
    for p, s in enumerate(owner):
        if s == leaving:
            target = min(others, key=lambda x: (held[x], x))
            held[target] += 1
            plan.append((p, target))
    return plan
