"""Tier 2: rmdir seals are collected once no shard needs them, and background rounds cost what is pending.

Every rmdir seals the directory on every shard. A seal is needed while the
rmdir may still fail (pending), then while anything could still put a name
into the removed directory: a client holding a capability signed before the
removal (they expire after capability.CAP_TTL_NS), or a cross-shard intent
on another shard whose destination is that directory. Directory inode
numbers are never reused, so once both are ruled out the seal can go.

The shards' wall clock is advanced in-process (the faults.wall_ns hook), so
nothing here waits for the real 30-second expiries.
"""
from __future__ import annotations

from typing import Any

import pytest
from test_t2_shard_service import DIR, Cluster, cl  # noqa: F401

from superfs import faults
from superfs.shard.records import REGULAR, Intent
from superfs.v1 import superfs_pb2 as pb

N_DIRS = 2000
FIRST = 1000
HOUR_NS = 3600 * 10**9


def advance(monkeypatch: pytest.MonkeyPatch, hours: int) -> None:
    monkeypatch.setattr(faults, "_CLOCK_OFFSET_NS", hours * HOUR_NS)


def sealed(cl: Cluster, shard: int) -> int:  # noqa: F811
    with cl.stores[shard].read() as t:
        return t.count("sealed")


async def test_seals_are_collected_unless_an_intent_elsewhere_still_targets_the_directory(
        cl: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    for d in range(FIRST, FIRST + N_DIRS):
        assert (await cl.shard(0).seal_dir(pb.SealRequest(dir_ino=d))).empty
    # shard 1 holds a rename into directory FIRST that it has not finished (its destination shard is 0)
    intent = Intent("rename", "stuck", 0x10000000001, REGULAR, DIR, b"src", FIRST, "dst", 0, 0)
    cl.stores[1].write_now(lambda t: t.put_intent(intent))
    bg = cl.servicers[0].reclaimer

    advance(monkeypatch, 1)   # the rmdirs are long over: their seals become final ...
    await bg.run_once()
    assert sealed(cl, 0) == N_DIRS
    advance(monkeypatch, 2)   # ... and every capability signed before them has expired
    await bg.run_once()
    assert sealed(cl, 0) == 1  # only the directory shard 1's intent still targets
    with cl.stores[0].read() as t:
        assert t.is_sealed(FIRST)

    cl.stores[1].write_now(lambda t: t.delete_intent(intent.key()))
    advance(monkeypatch, 4)
    await bg.run_once()
    assert sealed(cl, 0) == 0


async def test_a_background_round_costs_what_is_due_not_every_seal_ever_made(
        cl: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    for d in range(FIRST, FIRST + N_DIRS):
        await cl.shard(0).seal_dir(pb.SealRequest(dir_ino=d))
    seals = cl.servicers[0].seals
    advance(monkeypatch, 1)
    first: Any = await seals.background_round()
    assert first.examined == N_DIRS and first.finalized == N_DIRS
    # all final now, none due for collection yet: the next rounds look at nothing
    again: Any = await seals.background_round()
    assert again.examined == 0
    assert sealed(cl, 0) == N_DIRS
