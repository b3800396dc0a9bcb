"""ApplyDirBatch and DelegateDirInos through real daemons: mkdirs and rmdirs made ahead by a lease holder.

The dir server applies a holder's batch only under the grant it names, with
numbers it delegated to that holder, each once; other clients see the
result as soon as they look, through any path (the recall of the holder's
lease comes first). Also here: a capability refused by a shard's fence is
fetched again without asking for the cluster map (that cost a 200 ms wait
in the map's rate limit on every first look after a fence).
"""
from __future__ import annotations

import errno
from typing import AsyncIterator, Iterator

import pytest
from t5_support import address

from superfs.cli.launcher import LocalCluster
from superfs.cli.status import scrape, total
from superfs.client import AsyncFs
from superfs.client.admin import ROOT
from superfs.errors import FsError
from superfs.rpc.methods import RECALL_LEASE
from superfs.v1 import superfs_pb2 as pb


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    c = LocalCluster(str(tmp_path_factory.mktemp("dirbatch")))
    c.init(shards=2, data_servers=1, replicas=1, inline_threshold=4096, chunk_size=64 * 1024,
           durability="durable", metrics=True)
    c.start()
    yield c
    c.stop()


class Holder:
    """A client that takes leases and, recalled, applies what it made ahead first, as a mount does."""

    def __init__(self, fs: AsyncFs) -> None:
        self.fs = fs
        self.recalled: list[int] = []
        self.pending: list[pb.BatchOp] = []
        fs.cluster.channels.handlers[RECALL_LEASE] = self._recall

    async def _recall(self, body: bytes) -> bytes:
        self.recalled.append(pb.RecallLeaseRequest.FromString(body).dir_ino)
        if self.pending:
            ops, self.pending = self.pending, []
            assert errnos(await self.fs.meta.apply_dir_batch(pb.BatchRequest(ops=ops))) == [""] * len(ops)
        return pb.Empty().SerializeToString()


@pytest.fixture
async def two(cluster: LocalCluster) -> AsyncIterator[tuple[AsyncFs, AsyncFs]]:
    a = await AsyncFs(address(cluster), timeout_s=10.0, creds=ROOT).start()
    b = await AsyncFs(address(cluster), timeout_s=10.0, creds=ROOT).start()
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


def mkdir_op(parent: int, name: str, ino: int, grant: int) -> pb.BatchOp:
    return pb.BatchOp(mkdir=pb.MkdirRequest(parent_ino=parent, name=name, mode=0o750, creds=ROOT.pb(), ino=ino,
                                            grant=grant))


def rmdir_op(parent: int, name: str, grant: int) -> pb.BatchOp:
    return pb.BatchOp(rmdir=pb.RmdirRequest(parent_ino=parent, name=name, creds=ROOT.pb(), grant=grant))


def errnos(reply: pb.BatchReply) -> list[str]:
    return [r.errno_name for r in reply.results]


async def test_a_batch_needs_the_grant_it_names_and_numbers_delegated_to_its_sender(
        two: tuple[AsyncFs, AsyncFs]) -> None:
    a, b = two
    Holder(a)
    parent = (await a.meta.mkdir(1, "held", 0o755, ROOT)).ino
    lease = await a.meta.acquire_lease(parent, ROOT)
    assert lease.mode == 2
    r = await a.meta.delegate_dir_inos(8)
    assert r.count == 8
    n = list(range(r.first, r.first + r.count))
    reply = await a.meta.apply_dir_batch(pb.BatchRequest(ops=[
        mkdir_op(parent, "d0", n[0], lease.grant), mkdir_op(parent, "d1", n[1], lease.grant),
        mkdir_op(parent, "d2", n[0], lease.grant),          # a number used already
        mkdir_op(parent, "d3", n[0] - 1, lease.grant),      # not delegated to a
        mkdir_op(parent, "d4", n[2], lease.grant + 1),      # a grant a does not hold
        mkdir_op(parent, "d0", n[3], lease.grant),          # the name is taken (after d0, in order)
        rmdir_op(parent, "d1", lease.grant), mkdir_op(parent, "d1", n[4], lease.grant)]))  # in order
    assert errnos(reply) == ["", "", "EINVAL", "EINVAL", "ESTALE", "EEXIST", "", ""]
    made = reply.results[0].dir
    assert (made.ino, made.name, made.attr.mode & 0o7777) == (n[0], "d0", 0o750)
    # b's numbers are b's: a cannot use them, nor b make anything under a's lease
    rb = await b.meta.delegate_dir_inos(4)
    assert errnos(await a.meta.apply_dir_batch(pb.BatchRequest(ops=[
        mkdir_op(parent, "x", rb.first, lease.grant)]))) == ["EINVAL"]
    assert errnos(await b.meta.apply_dir_batch(pb.BatchRequest(ops=[
        mkdir_op(parent, "x", rb.first, lease.grant)]))) == ["ESTALE"]
    # b's look recalls a's lease; after it, a's late batch is refused
    assert sorted(d.name for d in (await b.cluster.dir.list_dirs(pb.ListDirsRequest(
        ino=parent, creds=ROOT.pb()))).dirs) == ["d0", "d1"]
    assert errnos(await a.meta.apply_dir_batch(pb.BatchRequest(ops=[
        mkdir_op(parent, "late", n[5], lease.grant)]))) == ["ESTALE"]
    assert (await b.meta.get_dir(reply.results[7].dir.ino, ROOT)).name == "d1"


async def test_a_path_through_a_leased_directory_recalls_the_lease_first(
        two: tuple[AsyncFs, AsyncFs]) -> None:
    """The dir server resolves a whole path itself: a directory on the way whose holder may have made
    or removed names ahead is recalled before the walk, else b sees what a removed, or misses what a made."""
    a, b = two
    holder = Holder(a)
    top = (await a.meta.mkdir(1, "walk", 0o755, ROOT)).ino
    mid = (await a.meta.mkdir(top, "mid", 0o755, ROOT)).ino
    await a.meta.mkdir(mid, "gone", 0o755, ROOT)
    lease = await a.meta.acquire_lease(mid, ROOT)
    holder.pending.append(rmdir_op(mid, "gone", lease.grant))       # removed ahead, not sent yet
    with pytest.raises(FileNotFoundError):
        await b.stat("/walk/mid/gone")
    assert holder.recalled == [mid]
    lease = await a.meta.acquire_lease(mid, ROOT)
    r = await a.meta.delegate_dir_inos(1)
    holder.pending.append(mkdir_op(mid, "new", r.first, lease.grant))   # made ahead, not sent yet
    found = await b.meta.lookup_dir(mid, "new", ROOT)
    assert found is not None and found.ino == r.first
    assert holder.recalled == [mid, mid]
    # a walk that stops in a leased directory (the name is not there yet) recalls it too
    lease = await a.meta.acquire_lease(mid, ROOT)
    r = await a.meta.delegate_dir_inos(1)
    holder.pending.append(mkdir_op(mid, "newer", r.first, lease.grant))
    await b.mkdir("/walk/mid/newer/below")
    assert holder.recalled == [mid, mid, mid]


async def test_a_fenced_capability_is_fetched_again_without_asking_for_the_map(
        cluster: LocalCluster, two: tuple[AsyncFs, AsyncFs]) -> None:
    a, b = two
    Holder(a)
    d = (await a.meta.mkdir(1, "fenced", 0o755, ROOT)).ino
    await a.meta.create(d, "f", 0o644, ROOT)
    await b.meta.lookup(d, "f", ROOT)                        # b holds a live capability of d
    assert (await a.meta.acquire_lease(d, ROOT)).mode == 2   # which a's lease fences
    url = cluster.metrics_url("dir")
    assert url is not None
    maps = total(scrape(url), "superfs_rpc_requests_total", method="GetClusterMap")
    assert (await b.meta.lookup(d, "f", ROOT)).name == "f"  # refused by the fence, asked again
    assert total(scrape(url), "superfs_rpc_requests_total", method="GetClusterMap") == maps
