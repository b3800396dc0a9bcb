"""Tier 2: the one cluster-map view (superfs/rpc/cluster_map.py) and its one retry rule.

Real servers in this process on 127.0.0.1:0: a fake DirService whose map the
test moves, and small ShardService servicers (over gRPC, and one over a
session) that answer, refuse with ESTALE, or fail as a daemon dying in the
middle of a call would. What is checked is what each server saw:

- a map older than the one held is never adopted;
- concurrent refreshes make one GetClusterMap; a recent one is not repeated;
- ESTALE from a shard chosen by partition: refresh, route again, send once more;
  ESTALE from a shard named by id goes to the caller (it re-routes);
- a server that moved gets a read again, and a mutation only if that mutation
  never left this process (gRPC or session), never one that may have been applied;
- a server missing from the map is looked up, then EIO.
"""
from __future__ import annotations

import asyncio
import errno
from typing import Any, AsyncIterator

import grpc
import pytest

from superfs.errors import FsError, rpc_handler
from superfs.rpc.channels import Channels
from superfs.rpc.cluster_map import ClusterView
from superfs.rpc.server import SessionServer
from superfs.v1 import superfs_pb2 as pb
from superfs.v1 import superfs_pb2_grpc as pbg

TIMEOUT = 3.0
PARTITIONS = 8
DEAD = "127.0.0.1:1"  # nothing listens there: a connection is refused, nothing is sent
INO = (3 + 1) << 40 | 7  # a file inode of partition 3


def cluster_map(epoch: int, shards: dict[int, str], owner: int = 0,
                sessions: dict[int, str] | None = None) -> pb.ClusterMap:
    return pb.ClusterMap(epoch=epoch, num_partitions=PARTITIONS, partition_shard=[owner] * PARTITIONS,
                         shards=[pb.ServerInfo(id=i, address=a, session_address=(sessions or {}).get(i, ""))
                                 for i, a in sorted(shards.items())], replicas=1)


class FakeDir(pbg.DirServiceServicer):
    def __init__(self, cmap: pb.ClusterMap) -> None:
        self.map = cmap
        self.fetches = 0

    @rpc_handler
    async def GetClusterMap(self, request: pb.GetClusterMapRequest, context: Any) -> pb.ClusterMap:
        self.fetches += 1
        await asyncio.sleep(0.05)  # long enough for concurrent refreshes to overlap
        return self.map


class Shard(pbg.ShardServiceServicer):
    """Answers ("ok"), refuses as not owning the partition ("estale"), or fails the call
    the way a daemon dying under it does: no errno, only UNAVAILABLE ("die")."""

    def __init__(self, tag: int, mode: str = "ok") -> None:
        self.tag = tag
        self.mode = mode
        self.seen: list[str] = []

    async def _answer(self, method: str, context: Any) -> None:
        self.seen.append(method)
        if self.mode == "estale":
            raise FsError(errno.ESTALE, f"partition not on shard {self.tag}")
        if self.mode == "die":
            await context.abort(grpc.StatusCode.UNAVAILABLE, "connection reset under the call")

    @rpc_handler
    async def GetFile(self, request: pb.GetFileRequest, context: Any) -> pb.FileInfo:
        await self._answer("GetFile", context)
        return pb.FileInfo(attr=pb.Attr(ino=request.ino, uid=self.tag))

    @rpc_handler
    async def CreateFile(self, request: pb.CreateFileRequest, context: Any) -> pb.CreateFileReply:
        await self._answer("CreateFile", context)
        return pb.CreateFileReply(file=pb.FileInfo(attr=pb.Attr(ino=INO, uid=self.tag)), created=True)


async def grpc_server(servicer: Any, add: Any) -> tuple[grpc.aio.Server, str]:
    server = grpc.aio.server()
    add(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


class World:
    def __init__(self) -> None:
        self.servers: list[grpc.aio.Server] = []
        self.channels: list[Channels] = []
        self.dir = FakeDir(pb.ClusterMap())
        self.dir_address = ""

    async def shard(self, tag: int, mode: str = "ok") -> tuple[Shard, str]:
        s = Shard(tag, mode)
        server, address = await grpc_server(s, pbg.add_ShardServiceServicer_to_server)
        self.servers.append(server)
        return s, address

    def view(self, start: pb.ClusterMap, transport: str = "grpc") -> ClusterView:
        channels = Channels(TIMEOUT, transport=transport)
        self.channels.append(channels)
        return ClusterView(channels, dir_address=self.dir_address, cluster_map=start)


@pytest.fixture
async def world() -> AsyncIterator[World]:
    w = World()
    server, w.dir_address = await grpc_server(w.dir, pbg.add_DirServiceServicer_to_server)
    w.servers.append(server)
    yield w
    for c in w.channels:
        await c.close()
    for s in w.servers:
        await s.stop(None)


async def test_an_older_or_malformed_map_is_never_adopted(world: World) -> None:
    view = world.view(cluster_map(5, {0: "127.0.0.1:5000"}))
    assert not view.adopt(cluster_map(4, {0: "127.0.0.1:4000"}))
    bad = cluster_map(6, {0: "127.0.0.1:6000"})
    del bad.partition_shard[:]
    assert not view.adopt(bad)
    assert view.map.epoch == 5 and view.address_of("shard", 0) == "127.0.0.1:5000"
    assert view.adopt(cluster_map(5, {0: "127.0.0.1:5000"}))  # the same epoch again: harmless
    world.dir.map = cluster_map(3, {0: "127.0.0.1:3000"})  # a dir server answering with an older map
    await view.refresh()
    assert view.map.epoch == 5


async def test_concurrent_refreshes_ask_the_dir_server_once(world: World) -> None:
    world.dir.map = cluster_map(2, {0: "127.0.0.1:2000"})
    view = world.view(cluster_map(1, {0: "127.0.0.1:1000"}))
    await asyncio.gather(*(view.refresh() for _ in range(20)))
    assert world.dir.fetches == 1 and view.map.epoch == 2
    await view.refresh(min_age_s=60.0)  # one began just now: not again
    assert world.dir.fetches == 1


async def test_estale_from_a_shard_chosen_by_partition_refreshes_and_is_sent_once_more(world: World) -> None:
    old, old_address = await world.shard(0, "estale")
    new, new_address = await world.shard(1)
    shards = {0: old_address, 1: new_address}
    world.dir.map = cluster_map(2, shards, owner=1)  # the partitions moved to shard 1
    view = world.view(cluster_map(1, shards, owner=0))
    info = await view.home_shard(INO).get_file(pb.GetFileRequest(ino=INO))
    assert info.attr.uid == 1 and old.seen == ["GetFile"] and new.seen == ["GetFile"]
    # a mutation refused with ESTALE was not applied: it is sent once more too
    view.adopt(cluster_map(3, shards, owner=0))
    world.dir.map = cluster_map(4, shards, owner=1)
    await asyncio.sleep(0.25)  # past the refresh rate limit
    reply = await view.entry_shard(1, "f").create_file(pb.CreateFileRequest(parent_ino=1, name="f"))
    assert reply.created and old.seen.count("CreateFile") == 1 and new.seen.count("CreateFile") == 1


async def test_estale_from_a_shard_named_by_id_goes_to_the_caller(world: World) -> None:
    old, old_address = await world.shard(0, "estale")
    new, new_address = await world.shard(1)
    shards = {0: old_address, 1: new_address}
    world.dir.map = cluster_map(2, shards, owner=1)
    view = world.view(cluster_map(1, shards, owner=0))
    with pytest.raises(FsError) as e:
        await view.shard(0).get_file(pb.GetFileRequest(ino=INO))
    assert e.value.errno == errno.ESTALE and new.seen == []


async def test_a_moved_server_is_asked_a_read_again_but_never_a_mutation_that_may_have_been_applied(
        world: World) -> None:
    dying, dying_address = await world.shard(0, "die")
    moved, moved_address = await world.shard(0)
    world.dir.map = cluster_map(2, {0: moved_address})  # shard 0 came back elsewhere
    view = world.view(cluster_map(1, {0: dying_address}))
    info = await view.home_shard(INO).get_file(pb.GetFileRequest(ino=INO))
    assert info.attr.ino == INO and dying.seen == ["GetFile"] and moved.seen == ["GetFile"]
    view.adopt(cluster_map(3, {0: dying_address}))
    world.dir.map = cluster_map(4, {0: moved_address})
    await asyncio.sleep(0.25)  # past the refresh rate limit
    with pytest.raises(FsError) as e:
        await view.entry_shard(1, "f").create_file(pb.CreateFileRequest(parent_ino=1, name="f"))
    assert e.value.errno == errno.EIO
    assert dying.seen.count("CreateFile") == 1 and "CreateFile" not in moved.seen
    assert view.map.epoch == 4  # the map did move on


async def test_a_mutation_that_never_left_is_sent_to_the_new_address_over_grpc(world: World) -> None:
    moved, moved_address = await world.shard(0)
    world.dir.map = cluster_map(2, {0: moved_address})
    view = world.view(cluster_map(1, {0: DEAD}))
    reply = await view.entry_shard(1, "f").create_file(pb.CreateFileRequest(parent_ino=1, name="f"))
    assert reply.created and moved.seen == ["CreateFile"]


async def test_a_mutation_that_never_left_is_sent_to_the_new_address_over_a_session(world: World) -> None:
    shard = Shard(0)
    server = SessionServer("test", {"ShardService": shard})
    session_address = await server.start("127.0.0.1", 0)
    try:
        # the map names a gRPC address and a session endpoint; a client dials the session
        world.dir.map = cluster_map(2, {0: session_address}, sessions={0: session_address})
        view = world.view(cluster_map(1, {0: DEAD}, sessions={0: DEAD}), transport="session")
        reply = await view.entry_shard(1, "f").create_file(pb.CreateFileRequest(parent_ino=1, name="f"))
        assert reply.created and shard.seen == ["CreateFile"]
    finally:
        await server.close()


async def test_a_server_missing_from_the_map_is_looked_up_then_eio(world: World) -> None:
    _, address = await world.shard(0)
    world.dir.map = cluster_map(2, {0: address})
    view = world.view(cluster_map(1, {0: address}))
    with pytest.raises(FsError) as e:
        await view.shard(5).get_file(pb.GetFileRequest(ino=INO))
    assert e.value.errno == errno.EIO and world.dir.fetches == 1
    with pytest.raises(FsError):
        await asyncio.gather(*(view.shard(5).get_file(pb.GetFileRequest(ino=INO)) for _ in range(5)))
    # asked again (it may have registered since the last fetch): once for five callers at once
    assert world.dir.fetches == 2
