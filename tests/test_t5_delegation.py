"""Inode numbers delegated to a lease holder are never issued twice, whatever restarts in between.

A client holding a directory's exclusive lease creates 100,000 files in
batches with inode numbers its shards delegated ahead, mixed with ordinary
creates (numbers from the same counters), while shards are killed with
SIGKILL (between batches, and in the middle of one at a crash point) and
restarted, and the client keeps using what was delegated before. Every
answered create has a number no other file has; the directory lists exactly
the answered files; numbers of a batch that died with its shard are never
used again; fsck is clean.
"""
from __future__ import annotations

import asyncio
import errno
from collections import deque
from typing import Iterator

import pytest
from t5_support import address, arm, restart, wait_crashed

from superfs.cli.launcher import LocalCluster
from superfs.client import AsyncFs
from superfs.client.admin import ROOT
from superfs.errors import FsError
from superfs.v1 import superfs_pb2 as pb

FILES = 100_000
BATCH = 256
KILL_EVERY = 25_000      # creates between two restarts of a shard
ORDINARY_EVERY = 1_000   # one ordinary create (a number from the same counter) per this many


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    c = LocalCluster(str(tmp_path_factory.mktemp("delegation")))
    c.init(shards=2, data_servers=1, replicas=1, inline_threshold=4096, chunk_size=64 * 1024, durability="async")
    c.start()
    yield c
    c.stop()


class Holder:
    """The lease holder's side, through the client library's public calls."""

    def __init__(self, fs: AsyncFs, dir_ino: int, cap: pb.DirCap) -> None:
        self.fs, self.dir_ino, self.cap = fs, dir_ino, cap
        self.cluster = fs.cluster
        self.free: dict[int, deque[int]] = {}
        self.delegated: set[int] = set()

    async def number(self, partition: int) -> int:
        """The next number of ``partition``, in order; its shard is asked for more before it runs out
        (for every one of its partitions running low), as the mount's pool does."""
        q = self.free.get(partition)
        if q is None or len(q) < 16:
            shard = self.cluster.shard_of_partition(partition)
            low = [p for p in self.cluster.partitions_of(shard) if len(self.free.get(p, ())) < 16]
            for r in await self.fs.meta.delegate_inodes(shard, low, 64):
                nums = range(r.first, r.first + r.count)
                assert self.delegated.isdisjoint(nums), "a shard delegated a number twice"
                self.delegated.update(nums)
                self.free.setdefault(r.partition, deque()).extend(nums)
            q = self.free[partition]
        return q.popleft()

    async def create_batch(self, shard: int, names: list[str]) -> list[tuple[str, int]]:
        ops, used = [], []
        for n in names:
            ino = await self.number(self.cluster.entry_partition(self.dir_ino, n))
            used.append((n, ino))
            ops.append(pb.BatchOp(create=pb.CreateFileRequest(
                parent_ino=self.dir_ino, name=n, mode=0o644, type=pb.REGULAR, exclusive=True,
                creds=ROOT.pb(), cap=self.cap, ino=ino)))
        reply = await self.fs.meta.apply_batch(shard, pb.BatchRequest(ops=ops))
        assert [r.errno_name for r in reply.results] == [""] * len(ops), reply.results[0]
        assert [r.file.attr.ino for r in reply.results] == [ino for _, ino in used]
        return used


async def make_files(cluster: LocalCluster) -> None:
    fs = await AsyncFs(address(cluster), timeout_s=10.0, creds=ROOT).start()
    try:
        node = await fs.meta.mkdir(1, "many", 0o755, ROOT)
        lease = await fs.meta.acquire_lease(node.ino, ROOT)
        assert lease.mode == 2
        holder = Holder(fs, node.ino, lease.dir.cap)
        made: dict[str, int] = {}
        burnt: set[int] = set()     # numbers of a batch that died with its shard
        pending: dict[int, list[str]] = {0: [], 1: []}
        i = killed = 0
        while len(made) < FILES:
            name = f"f{i:06d}"
            i += 1
            if i % ORDINARY_EVERY == 0:    # an ordinary create: a number from the same counter
                n, _ = await fs.meta.create(node.ino, name, 0o644, ROOT, exclusive=True)
                made[name] = n.ino
                continue
            shard = fs.cluster.shard_of_entry(node.ino, name)
            pending[shard].append(name)
            if len(pending[shard]) < BATCH:
                continue
            names, pending[shard] = pending[shard], []
            if len(made) >= (killed + 1) * KILL_EVERY:
                killed += 1
                victim = f"shard-{shard}"
                # (in threads: this event loop must see the connections drop, as a live client's does)
                if killed % 2:   # SIGKILL between batches: delegated numbers stay good after the restart
                    await asyncio.to_thread(cluster.kill, victim)
                    await asyncio.to_thread(restart, cluster, victim)
                else:            # killed in the middle of this batch: none of it is applied, its numbers burn
                    await asyncio.to_thread(arm, cluster, victim, "shard.batch.mid_apply@100")
                    with pytest.raises(FsError) as e:
                        await holder.create_batch(shard, names)
                    assert e.value.errno in (errno.EIO, errno.ETIMEDOUT)
                    await asyncio.to_thread(wait_crashed, cluster, victim)
                    await asyncio.to_thread(restart, cluster, victim)
                    burnt.update(holder.delegated - set(made.values()) - {
                        x for q in holder.free.values() for x in q})
            for n, ino in await holder.create_batch(shard, names):
                made[n] = ino
        assert killed >= 3
        inos = list(made.values())
        assert len(set(inos)) == len(inos), "an inode number was issued twice"
        assert burnt.isdisjoint(inos)
        listing = await fs.meta.list_dir(node.ino, ROOT)
        assert {e.name: e.ino for e, _ in listing} == made
    finally:
        await fs.close()


def test_delegated_inode_numbers_are_never_issued_twice(cluster: LocalCluster) -> None:
    asyncio.run(make_files(cluster))
    r = __import__("subprocess").run(
        [__import__("sys").executable, "-m", "superfs.cli.main", "fsck", "--state-dir", cluster.state_dir,
         "--grace", "0"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
