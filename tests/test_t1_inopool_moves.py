"""Tier 1: a client's delegated inode numbers after their partition moved to another shard.

Numbers are bound to the client's session with the shard that delegated
them: once the map gives the partition to another shard, the pool must not
hand them out (the new owner refuses them); it asks the new owner instead.
"""
from __future__ import annotations

import asyncio

from superfs.client.inopool import InoPool
from superfs.routing import make_file_ino
from superfs.v1 import superfs_pb2 as pb


def test_numbers_of_a_moved_partition_are_not_used() -> None:
    owner = {5: 0}
    asked: list[int] = []

    async def delegate(shard: int, parts: list[int], count: int) -> list[pb.InoRange]:
        asked.append(shard)
        base = 1000 * (shard + 1)
        return [pb.InoRange(partition=p, first=make_file_ino(p, base), count=count) for p in parts]

    async def run() -> None:
        pool = InoPool(delegate, lambda s: [p for p, o in owner.items() if o == s], lambda p: owner[p],
                       count=8, low=2)
        first = await pool.take_waiting(5)
        assert first == make_file_ino(5, 1000)
        owner[5] = 2  # the partition moved to shard 2
        taken = await pool.take_waiting(5)
        assert taken == make_file_ino(5, 3000), taken  # from the new owner, none of shard 0's
        assert asked == [0, 2]

    asyncio.run(run())
