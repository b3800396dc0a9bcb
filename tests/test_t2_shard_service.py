"""Tier 2: the shard's gRPC service in-process on 127.0.0.1:0, over real grpc.aio.

Two real ShardServicers share a fixed ClusterMap (16 partitions, even ones on
shard 0, odd ones on shard 1), so cross-shard renames and links really cross
the network. Errors arrive as gRPC statuses carrying the errno, read back
through the typed wrappers of superfs.rpc.channels.Channels. A small fake
DataService records what the reclaimer asks of data servers; a fake
DirService drives main.run.
"""
from __future__ import annotations

import asyncio
import errno
import json
import os
import stat
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Awaitable

import grpc
import pytest

from superfs import capability, routing
from superfs.config import ShardConfig
from superfs.errors import ERRNO_KEY, FsError, rpc_handler
from superfs.rpc.channels import Channels
from superfs.rpc.stubs import ShardRpc
from superfs.shard import main as shard_main
from superfs.shard.cluster import ShardCluster
from superfs.shard.service import ShardServicer
from superfs.shard.store import FileMetaStore
from superfs.v1 import superfs_pb2 as pb
from superfs.v1 import superfs_pb2_grpc as pbg

SECRET = b"t2-shard-secret-0123456789"
PARTITIONS = 16
THRESHOLD = 4096
CHUNK = 1024
TIMEOUT = 2.0
DEAD = "127.0.0.1:1"  # nothing listens there: calls fail at once
ALICE = pb.Creds(uid=1000, gid=1000)
BOB = pb.Creds(uid=1001, gid=1001)
DIR = 5  # a directory ino (the dir server's business; shards only see the number)
DIR2 = 6


def cap(dir_ino: int, creds: pb.Creds = ALICE, **kw: Any) -> pb.DirCap:
    args: dict[str, Any] = {"rights": 7, "sticky": False, "owner_uid": 0} | kw
    return capability.sign(SECRET, dir_ino=dir_ino, uid=creds.uid, **args)


def shard_of(parent: int, name: str) -> int:
    return routing.entry_partition(parent, name, PARTITIONS) % 2


def name_on(shard: int, parent: int, prefix: str) -> str:
    for i in range(1000):
        if shard_of(parent, f"{prefix}{i}") == shard:
            return f"{prefix}{i}"
    raise AssertionError("no name found")


def home_of(ino: int) -> int:
    return routing.ino_partition(ino) % 2


def make_map(shard_addresses: list[str], data: dict[int, str] | None = None, epoch: int = 1) -> pb.ClusterMap:
    return pb.ClusterMap(
        epoch=epoch, cluster_name="t2", num_partitions=PARTITIONS,
        partition_shard=[p % 2 for p in range(PARTITIONS)],
        shards=[pb.ServerInfo(id=i, address=a) for i, a in enumerate(shard_addresses)],
        data_servers=[pb.ServerInfo(id=i, address=a) for i, a in (data or {}).items()],
        replicas=2, inline_threshold=THRESHOLD, chunk_size=CHUNK, durability="async")


class FakeData(pbg.DataServiceServicer):
    """Records chunk deletions; nothing is stored."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, int, int]] = []

    @rpc_handler
    async def DeleteChunks(self, request: pb.DeleteChunksRequest, context: Any) -> pb.Empty:
        self.calls.append(("DeleteChunks", request.ino, request.from_index, 0))
        return pb.Empty()

    @rpc_handler
    async def TruncateChunk(self, request: pb.TruncateChunkRequest, context: Any) -> pb.Empty:
        self.calls.append(("TruncateChunk", request.key.ino, request.key.index, request.length))
        return pb.Empty()


@dataclass
class Cluster:
    servicers: list[ShardServicer]
    views: list[ShardCluster]
    stores: list[FileMetaStore]
    addresses: list[str]
    servers: list[grpc.aio.Server]
    channels: Channels
    data: list[FakeData] = field(default_factory=list)
    data_addresses: dict[int, str] = field(default_factory=dict)

    def shard(self, shard: int) -> ShardRpc:
        return self.channels.shard(self.addresses[shard])

    @staticmethod
    async def err(call: Awaitable[Any]) -> int:
        with pytest.raises(FsError) as ei:
            await call
        return ei.value.errno

    async def create(self, parent: int, name: str, *, creds: pb.Creds = ALICE, data: bytes = b"",
                     mode: int = 0o644, **kw: Any) -> pb.CreateFileReply:
        req = pb.CreateFileRequest(parent_ino=parent, name=name, mode=mode, creds=creds, cap=cap(parent, creds),
                                   data=data, **kw)
        return await self.shard(shard_of(parent, name)).create_file(req)

    async def lookup(self, parent: int, name: str, **kw: Any) -> pb.LookupFileReply:
        return await self.shard(shard_of(parent, name)).lookup_file(
            pb.LookupFileRequest(parent_ino=parent, name=name, creds=ALICE, cap=cap(parent), **kw))

    async def get(self, ino: int, **kw: Any) -> pb.FileInfo:
        return await self.shard(home_of(ino)).get_file(pb.GetFileRequest(ino=ino, creds=ALICE, **kw))

    async def rename(self, sp: int, sn: str, dp: int, dn: str, flags: int = 0, creds: pb.Creds = ALICE) -> None:
        await self.shard(shard_of(sp, sn)).rename_file(pb.RenameFileRequest(
            src_parent=sp, src_name=sn, dst_parent=dp, dst_name=dn, flags=flags, creds=creds,
            src_cap=cap(sp, creds), dst_cap=cap(dp, creds)))

    def set_map(self, shard_addresses: list[str], epoch: int) -> None:
        for v in self.views:
            v.adopt(make_map(shard_addresses, self.data_addresses, epoch))


@pytest.fixture
async def cl(tmp_path: Any) -> AsyncIterator[Cluster]:
    c = Cluster([], [], [], [], [], Channels(TIMEOUT))
    for i in range(2):
        store = FileMetaStore(str(tmp_path / f"shard{i}"), durable=False)
        view = ShardCluster(i, Channels(TIMEOUT))
        servicer = ShardServicer(store, view, SECRET)
        server = grpc.aio.server()
        pbg.add_ShardServiceServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        c.servicers.append(servicer)
        c.views.append(view)
        c.stores.append(store)
        c.servers.append(server)
        c.addresses.append(f"127.0.0.1:{port}")
    for i in range(2):
        fake = FakeData()
        server = grpc.aio.server()
        pbg.add_DataServiceServicer_to_server(fake, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        c.data.append(fake)
        c.servers.append(server)
        c.data_addresses[i] = f"127.0.0.1:{port}"
    c.set_map(c.addresses, 1)
    yield c
    for server in c.servers:
        await server.stop(None)
    for v in c.views:
        await v.channels.close()
    await c.channels.close()
    for s in c.stores:
        s.close()


# ------------------------------------------------------------------ basics


async def test_create_stat_write_read_unlink(cl: Cluster) -> None:
    rep = await cl.create(DIR, "hello.txt", data=b"hi there")
    assert rep.created
    f = rep.file
    assert f.type == pb.REGULAR and f.inline and f.attr.size == 8 and f.attr.nlink == 1
    assert f.attr.mode == stat.S_IFREG | 0o644 and f.attr.uid == 1000
    # the new inode lives in the partition of its entry: one shard for everything
    assert routing.ino_partition(f.attr.ino) == routing.entry_partition(DIR, "hello.txt", PARTITIONS)
    look = await cl.lookup(DIR, "hello.txt", want_data=True)
    assert look.has_file and look.entry.ino == f.attr.ino and look.file.data == b"hi there"
    attr = await cl.shard(home_of(f.attr.ino)).write_inline(pb.WriteInlineRequest(
        ino=f.attr.ino, offset=3, data=b"THERE!", creds=ALICE))
    assert attr.size == 9 and attr.generation == 2
    data = await cl.shard(home_of(f.attr.ino)).read_inline(pb.ReadInlineRequest(
        ino=f.attr.ino, offset=0, length=100, creds=ALICE))
    assert data.data == b"hi THERE!"
    again = await cl.create(DIR, "hello.txt")
    assert not again.created and again.file.attr.ino == f.attr.ino
    reply = await cl.shard(shard_of(DIR, "hello.txt")).unlink(pb.UnlinkRequest(
        parent_ino=DIR, name="hello.txt", creds=ALICE, cap=cap(DIR)))
    assert (reply.ino, reply.nlink) == (f.attr.ino, 0)
    assert await cl.err(cl.shard(shard_of(DIR, "hello.txt")).lookup_file(
        pb.LookupFileRequest(parent_ino=DIR, name="hello.txt", cap=cap(DIR, pb.Creds())))) \
        == errno.ENOENT
    assert await cl.err(cl.shard(home_of(f.attr.ino)).get_file(pb.GetFileRequest(ino=f.attr.ino))) == errno.ENOENT


async def test_errors_arrive_as_errno(cl: Cluster) -> None:
    good = name_on(0, DIR, "f")
    wrong = 1 - shard_of(DIR, good)
    req = pb.CreateFileRequest(parent_ino=DIR, name=good, creds=ALICE, cap=cap(DIR))
    assert await cl.err(cl.shard(wrong).create_file(req)) == errno.ESTALE
    # the raw status carries the errno name in the trailing metadata
    stub = pbg.ShardServiceStub(cl.channels.channel(cl.addresses[wrong]))
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await stub.CreateFile(req, timeout=TIMEOUT)
    assert (ERRNO_KEY, "ESTALE") in tuple(ei.value.trailing_metadata() or ())
    assert ei.value.code() == grpc.StatusCode.NOT_FOUND

    s = shard_of(DIR, good)
    assert await cl.err(cl.shard(s).create_file(
        pb.CreateFileRequest(parent_ino=DIR, name=good, creds=ALICE))) == errno.EACCES
    forged = cap(DIR)
    forged.rights = 3
    forged.uid = 0
    assert await cl.err(cl.shard(s).create_file(pb.CreateFileRequest(parent_ino=DIR, name=good, creds=pb.Creds(uid=0),
                                                              cap=forged))) == errno.EACCES
    expired = cap(DIR, ttl_ns=-1)
    assert await cl.err(cl.shard(s).create_file(pb.CreateFileRequest(parent_ino=DIR, name=good, creds=ALICE,
                                                              cap=expired))) == errno.ESTALE
    read_only = cap(DIR, rights=1)
    assert await cl.err(cl.shard(s).create_file(pb.CreateFileRequest(parent_ino=DIR, name=good, creds=ALICE,
                                                              cap=read_only))) == errno.EACCES
    other_dir = cap(DIR2)
    assert await cl.err(cl.shard(s).create_file(pb.CreateFileRequest(parent_ino=DIR, name=good, creds=ALICE,
                                                              cap=other_dir))) == errno.EACCES
    for name, want in (("a/b", errno.EINVAL), ("a\0b", errno.EINVAL), ("x" * 256, errno.ENAMETOOLONG),
                       ("", errno.ENOENT), ("..", errno.EINVAL)):
        for shard in (0, 1):  # names are checked before routing
            assert await cl.err(cl.shard(shard).create_file(pb.CreateFileRequest(
                parent_ino=DIR, name=name, creds=ALICE, cap=cap(DIR)))) == want, name
    assert await cl.err(cl.shard(0).get_file(pb.GetFileRequest(ino=0))) == errno.ENOENT
    assert await cl.err(cl.shard(0).get_file(pb.GetFileRequest(ino=DIR))) == errno.ENOENT
    assert await cl.err(cl.shard(0).get_file(pb.GetFileRequest(ino=2**64 - 1))) == errno.ENOENT
    ino_on_0 = routing.make_file_ino(0, 999)
    assert await cl.err(cl.shard(0).get_file(pb.GetFileRequest(ino=ino_on_0))) == errno.ENOENT
    assert await cl.err(cl.shard(1).get_file(pb.GetFileRequest(ino=ino_on_0))) == errno.ESTALE
    f = (await cl.create(DIR, good, data=b"abc")).file
    h = home_of(f.attr.ino)
    assert await cl.err(cl.shard(h).write_inline(pb.WriteInlineRequest(
        ino=f.attr.ino, offset=2**63, data=b"x", creds=ALICE))) == errno.EFBIG
    assert await cl.err(cl.shard(h).read_inline(pb.ReadInlineRequest(
        ino=f.attr.ino, offset=2**63, length=2**32 - 1, creds=ALICE))) == errno.EINVAL
    assert (await cl.shard(h).read_inline(pb.ReadInlineRequest(
        ino=f.attr.ino, offset=2**63, length=10, creds=ALICE))).data == b""
    assert await cl.err(cl.shard(h).write_inline(pb.WriteInlineRequest(
        ino=f.attr.ino, data=b"x", creds=BOB))) == errno.EACCES
    assert await cl.err(cl.shard(h).set_attr(
        pb.SetAttrRequest(ino=f.attr.ino, mask=1, mode=0o777, creds=BOB))) == errno.EPERM
    assert await cl.err(cl.shard(h).set_attr(pb.SetAttrRequest(
        ino=f.attr.ino, mask=8, size=2**63, creds=ALICE))) == errno.EFBIG
    assert await cl.err(cl.shard(h).get_xattr(
        pb.XattrRequest(ino=f.attr.ino, name="user.x", creds=ALICE))) == errno.ENODATA
    assert await cl.err(cl.shard(h).set_xattr(pb.XattrRequest(
        ino=f.attr.ino, name="user.x", value=b"v" * 65537, creds=ALICE))) == errno.E2BIG
    assert await cl.err(cl.shard(h).adjust_nlink(pb.NlinkRequest(ino=f.attr.ino, delta=1))) == errno.EINVAL  # no txid
    # after all that the daemon still serves
    assert (await cl.get(f.attr.ino, want_data=True)).data == b"abc"


async def test_setattr_and_xattrs(cl: Cluster) -> None:
    f = (await cl.create(DIR, "f", data=b"0123456789")).file
    h, ino = home_of(f.attr.ino), f.attr.ino
    attr = await cl.shard(h).set_attr(pb.SetAttrRequest(ino=ino, mask=1 | 8 | 16 | 32, mode=0o600, size=4,
                                                          atime_ns=5, mtime_ns=6, creds=ALICE))
    assert (attr.mode, attr.size, attr.atime_ns, attr.mtime_ns) == (stat.S_IFREG | 0o600, 4, 5, 6)
    assert attr.ctime_ns > 6
    assert await cl.err(cl.shard(h).read_inline(pb.ReadInlineRequest(ino=ino, length=4, creds=BOB))) == errno.EACCES
    attr = await cl.shard(h).set_attr(pb.SetAttrRequest(ino=ino, mask=2 | 4, uid=1001, gid=1001,
                                                          creds=pb.Creds(uid=0)))
    assert (attr.uid, attr.gid) == (1001, 1001)
    await cl.shard(h).set_xattr(pb.XattrRequest(ino=ino, name="user.k", value=b"v", creds=BOB))
    assert (await cl.shard(h).get_xattr(pb.XattrRequest(ino=ino, name="user.k", creds=BOB))).value == b"v"
    assert list((await cl.shard(h).list_xattr(pb.XattrRequest(ino=ino, creds=BOB))).names) == ["user.k"]
    assert await cl.err(cl.shard(h).set_xattr(pb.XattrRequest(ino=ino, name="user.k", value=b"w", flags=1,
                                                       creds=BOB))) == errno.EEXIST
    await cl.shard(h).remove_xattr(pb.XattrRequest(ino=ino, name="user.k", creds=BOB))
    assert list((await cl.shard(h).list_xattr(pb.XattrRequest(ino=ino, creds=BOB))).names) == []


async def test_symlink(cl: Cluster) -> None:
    rep = await cl.create(DIR, "ln", type=pb.SYMLINK, symlink_target="../target")
    assert rep.file.type == pb.SYMLINK and rep.file.symlink_target == "../target"
    assert rep.file.attr.mode == stat.S_IFLNK | 0o777 and rep.file.attr.size == 9
    look = await cl.lookup(DIR, "ln")
    assert look.entry.type == pb.SYMLINK and look.file.symlink_target == "../target"
    with pytest.raises(FsError) as ei:
        await cl.create(DIR, "ln")
    assert ei.value.errno == errno.EEXIST


async def test_concurrent_creates_share_commits(cl: Cluster) -> None:
    names = [name_on(0, DIR, f"c{i}-") for i in range(150)]
    replies = await asyncio.gather(*(cl.create(DIR, n) for n in names))
    inos = {r.file.attr.ino for r in replies}
    assert len(inos) == len(names) and all(r.created for r in replies)
    lm = cl.stores[0].lmdb
    assert lm.batches < lm.batched_ops  # group commit: fewer commits than operations


# ---------------------------------------------------- dir server's calls


async def test_reservations_and_seals(cl: Cluster) -> None:
    d = name_on(1, DIR, "sub")
    req = pb.DirEntryRequest(parent_ino=DIR, name=d, ino=77)
    assert await cl.err(cl.shard(0).reserve_dir_entry(req)) == errno.ESTALE
    await cl.shard(1).reserve_dir_entry(req)
    await cl.shard(1).reserve_dir_entry(req)  # idempotent
    assert await cl.err(cl.shard(1).reserve_dir_entry(
        pb.DirEntryRequest(parent_ino=DIR, name=d, ino=78))) == errno.EEXIST
    assert await cl.err(cl.shard(1).reserve_dir_entry(pb.DirEntryRequest(
        parent_ino=DIR, name=d, ino=routing.make_file_ino(1, 1)))) == errno.EINVAL
    with pytest.raises(FsError) as ei:
        await cl.create(DIR, d)
    assert ei.value.errno == errno.EISDIR
    look = await cl.lookup(DIR, d)
    assert look.entry.type == pb.DIRECTORY and look.entry.ino == 77 and not look.has_file
    assert await cl.err(cl.shard(1).unlink(pb.UnlinkRequest(parent_ino=DIR, name=d, creds=ALICE,
                                                      cap=cap(DIR)))) == errno.EISDIR
    # the shard holding the reservation is not empty; the other one is
    assert not (await cl.shard(1).seal_dir(pb.SealRequest(dir_ino=DIR))).empty
    assert (await cl.shard(0).seal_dir(pb.SealRequest(dir_ino=DIR))).empty
    with pytest.raises(FsError) as ei:
        await cl.create(DIR, name_on(0, DIR, "late"))
    assert ei.value.errno == errno.ENOENT
    await cl.shard(0).unseal_dir(pb.SealRequest(dir_ino=DIR))
    await cl.shard(0).unseal_dir(pb.SealRequest(dir_ino=DIR))
    await cl.create(DIR, name_on(0, DIR, "late"))
    await cl.shard(1).release_dir_entry(req)
    await cl.shard(1).release_dir_entry(req)
    assert (await cl.create(DIR, d)).created


async def test_lookups_and_listings_need_the_directory_capability(cl: Cluster) -> None:
    f = (await cl.create(DIR, "caps.txt", mode=0o640)).file
    # no capability, a listing-only one, another directory's, another user's: refused
    for bad in (pb.DirCap(), cap(DIR, rights=4), cap(DIR2), cap(DIR, BOB)):
        assert await cl.err(cl.shard(shard_of(DIR, "caps.txt")).lookup_file(pb.LookupFileRequest(
            parent_ino=DIR, name="caps.txt", creds=ALICE, cap=bad))) == errno.EACCES
    assert (await cl.lookup(DIR, "caps.txt")).entry.ino == f.attr.ino  # X alone is enough
    for shard in (0, 1):
        for bad in (pb.DirCap(), cap(DIR, rights=1), cap(DIR, rights=3)):
            assert await cl.err(cl.shard(shard).list_files(pb.ListFilesRequest(
                parent_ino=DIR, creds=ALICE, cap=bad))) == errno.EACCES
        await cl.shard(shard).list_files(pb.ListFilesRequest(parent_ino=DIR, creds=ALICE, cap=cap(DIR, rights=4)))


async def test_replies_carry_the_chunk_rights_of_the_caller(cl: Cluster) -> None:
    f = (await cl.create(DIR, "rights.txt", mode=0o640)).file
    ino = f.attr.ino
    assert f.chunk_cap.rights == 6  # its creator: read and write, whatever the mode
    capability.verify_chunk(SECRET, f.chunk_cap, ino=ino, want=6)
    in_group, other = pb.Creds(uid=1001, gid=1000), BOB
    for creds, rights in ((ALICE, 6), (in_group, 4), (other, 0), (pb.Creds(), 6)):
        info = await cl.shard(home_of(ino)).get_file(pb.GetFileRequest(ino=ino, creds=creds))
        assert info.chunk_cap.rights == rights and bool(info.chunk_cap.mac) == bool(rights)
        if rights:
            capability.verify_chunk(SECRET, info.chunk_cap, ino=ino, want=rights)
    look = await cl.lookup(DIR, "rights.txt")
    assert look.file.chunk_cap.rights == 6
    link = (await cl.create(DIR, "rights.lnk", type=pb.SYMLINK, symlink_target="x")).file
    assert not link.chunk_cap.mac  # symlinks have no bytes on data servers


async def test_links_follow_protected_hardlinks_locally_and_across_shards(cl: Cluster) -> None:
    src = name_on(0, DIR, "private")
    f = (await cl.create(DIR, src, mode=0o600)).file
    for shard in (0, 1):  # the new name on the inode's shard, and on the other one
        name = name_on(shard, DIR2, "stolen")
        req = pb.LinkRequest(ino=f.attr.ino, new_parent=DIR2, new_name=name, creds=BOB, cap=cap(DIR2, BOB))
        assert await cl.err(cl.shard(shard).link(req)) == errno.EPERM
        req = pb.LinkRequest(ino=f.attr.ino, new_parent=DIR2, new_name=name, creds=ALICE, cap=cap(DIR2))
        assert (await cl.shard(shard).link(req)).nlink == 2 + shard


async def test_list_files_fan_out(cl: Cluster) -> None:
    names = sorted(f"e{i:03d}" for i in range(60))
    await asyncio.gather(*(cl.create(DIR, n, data=n.encode()) for n in names))
    await cl.shard(shard_of(DIR, "zdir")).reserve_dir_entry(pb.DirEntryRequest(parent_ino=DIR, name="zdir", ino=9))
    await cl.create(DIR2, "elsewhere")
    seen: dict[str, pb.FileInfo] = {}
    for shard in (0, 1):
        after = ""
        while True:
            rep = await cl.shard(shard).list_files(pb.ListFilesRequest(parent_ino=DIR, after=after, limit=7,
                                                                       with_attrs=True, cap=cap(DIR, pb.Creds())))
            assert len(rep.entries) == len(rep.files) <= 7
            for e, f in zip(rep.entries, rep.files):
                assert shard_of(DIR, e.name) == shard
                seen[e.name] = f
            if not rep.more:
                break
            after = rep.entries[-1].name
    assert sorted(seen) == names + ["zdir"]
    assert seen["e005"].attr.size == 4 and not seen["zdir"].HasField("attr")


# ------------------------------------------------------------ cross-shard


async def test_cross_shard_rename(cl: Cluster) -> None:
    src = name_on(0, DIR, "src")
    dst = name_on(1, DIR2, "dst")
    f = (await cl.create(DIR, src, data=b"payload")).file
    await cl.rename(DIR, src, DIR2, dst)
    with pytest.raises(FsError) as ei:
        await cl.lookup(DIR, src)
    assert ei.value.errno == errno.ENOENT
    look = await cl.lookup(DIR2, dst)
    assert look.entry.ino == f.attr.ino and not look.has_file  # the inode stayed home
    assert (await cl.get(f.attr.ino, want_data=True)).data == b"payload"
    with cl.stores[0].read() as t:
        assert t.intents() == []
    # replace an existing file on the destination: it loses its only link
    victim = (await cl.create(DIR2, name_on(1, DIR2, "victim"))).file
    other = (await cl.create(DIR, name_on(0, DIR, "other"), data=b"o")).file
    await cl.rename(DIR, name_on(0, DIR, "other"), DIR2, name_on(1, DIR2, "victim"))
    with pytest.raises(FsError) as ei:
        await cl.get(victim.attr.ino)
    assert ei.value.errno == errno.ENOENT
    assert (await cl.lookup(DIR2, name_on(1, DIR2, "victim"))).entry.ino == other.attr.ino
    # and back again: the destination now holds an inode whose home is shard 0 (remote for both)
    back = name_on(0, DIR, "back")
    await cl.rename(DIR2, dst, DIR, back)
    look = await cl.lookup(DIR, back)
    assert look.has_file and look.file.attr.ino == f.attr.ino and look.file.attr.nlink == 1


async def test_cross_shard_rename_refused(cl: Cluster) -> None:
    src, dst = name_on(0, DIR, "s"), name_on(1, DIR, "d")
    await cl.create(DIR, src)
    await cl.create(DIR, dst)
    with pytest.raises(FsError) as ei:
        await cl.rename(DIR, src, DIR, dst, flags=1)
    assert ei.value.errno == errno.EEXIST
    await cl.shard(1).reserve_dir_entry(pb.DirEntryRequest(parent_ino=DIR, name=name_on(1, DIR, "dd"), ino=70))
    with pytest.raises(FsError) as ei:
        await cl.rename(DIR, src, DIR, name_on(1, DIR, "dd"))
    assert ei.value.errno == errno.EISDIR
    with pytest.raises(FsError) as ei:
        await cl.rename(DIR, src, DIR, name_on(1, DIR, "dd"), flags=2)  # exchange with a directory: not ours
    assert ei.value.errno == errno.EISDIR
    with pytest.raises(FsError) as ei:
        await cl.rename(DIR, src, DIR, name_on(1, DIR, "nope"), flags=2)
    assert ei.value.errno == errno.ENOENT
    with pytest.raises(FsError) as ei:
        await cl.rename(DIR, src, DIR, dst, flags=3)
    assert ei.value.errno == errno.EINVAL
    assert (await cl.lookup(DIR, src)).has_file
    with cl.stores[0].read() as t:
        assert t.intents() == []


async def test_cross_shard_exchange(cl: Cluster) -> None:
    src, dst = name_on(0, DIR, "xs"), name_on(1, DIR2, "xd")
    a = (await cl.create(DIR, src)).file.attr.ino
    b = (await cl.create(DIR2, dst, type=pb.SYMLINK, symlink_target="t")).file.attr.ino
    await cl.rename(DIR, src, DIR2, dst, flags=2)
    got_src, got_dst = await cl.lookup(DIR, src), await cl.lookup(DIR2, dst)
    assert (got_src.entry.ino, got_src.entry.type) == (b, pb.SYMLINK)
    assert (got_dst.entry.ino, got_dst.entry.type) == (a, pb.REGULAR)
    for store in cl.stores:
        with store.read() as t:
            assert t.intents() == []


async def test_cross_shard_rename_to_sticky_dir(cl: Cluster) -> None:
    src, dst = name_on(0, DIR, "mine"), name_on(1, DIR2, "bobs")
    await cl.create(DIR, src)
    await cl.create(DIR2, dst, creds=BOB)
    with pytest.raises(FsError) as ei:
        await cl.shard(0).rename_file(pb.RenameFileRequest(
            src_parent=DIR, src_name=src, dst_parent=DIR2, dst_name=dst, creds=ALICE, src_cap=cap(DIR),
            dst_cap=cap(DIR2, sticky=True, owner_uid=0)))
    assert ei.value.errno == errno.EPERM
    assert (await cl.lookup(DIR, src)).has_file


async def test_rename_with_destination_shard_down_rolls_forward(cl: Cluster) -> None:
    src, dst = name_on(0, DIR, "s"), name_on(1, DIR2, "d")
    f = (await cl.create(DIR, src)).file
    cl.views[0].adopt(make_map([cl.addresses[0], DEAD], cl.data_addresses, epoch=2))
    with pytest.raises(FsError) as ei:
        await cl.rename(DIR, src, DIR2, dst)
    assert ei.value.errno == errno.EIO
    with cl.stores[0].read() as t:
        assert [i.txid for i in t.intents()] != []
    # the source is locked until the rename completes
    assert await cl.err(cl.shard(0).unlink(pb.UnlinkRequest(parent_ino=DIR, name=src, creds=ALICE,
                                                      cap=cap(DIR)))) == errno.EAGAIN
    await cl.servicers[0].reclaimer.run_once()  # still down: still pending
    with cl.stores[0].read() as t:
        assert len(t.intents()) == 1
    cl.set_map(cl.addresses, epoch=3)
    await cl.servicers[0].reclaimer.run_once()
    with cl.stores[0].read() as t:
        assert t.intents() == []
    with pytest.raises(FsError):
        await cl.lookup(DIR, src)
    assert (await cl.lookup(DIR2, dst)).entry.ino == f.attr.ino


async def test_roll_forward_after_a_crash_between_steps(cl: Cluster) -> None:
    """Intents left by a crash finish exactly once, whether or not the peer had applied its step."""
    from superfs.shard import name_ops

    names = []
    for k, applied in (("a", False), ("b", True)):
        src, dst = name_on(0, DIR, f"crash-{k}"), name_on(1, DIR2, f"moved-{k}")
        f = (await cl.create(DIR, src)).file
        intent = await cl.stores[0].write(lambda t: name_ops.begin_rename(
            t, DIR, src.encode(), DIR2, dst, flags=0, creds=ALICE, guard=name_ops.DirGuard(), owners={},
            txid=f"crash-{k}", expect_ino=0))
        if applied:  # the destination had answered before the "crash"
            await cl.shard(1).remote_link(pb.RemoteLinkRequest(parent_ino=DIR2, name=dst, ino=f.attr.ino,
                                                               type=pb.REGULAR, replace=True, txid=intent.txid))
        names.append((src, dst, f.attr.ino))
    await cl.servicers[0].reclaimer.run_once()
    for src, dst, ino in names:
        with pytest.raises(FsError):
            await cl.lookup(DIR, src)
        assert (await cl.lookup(DIR2, dst)).entry.ino == ino
        assert (await cl.get(ino)).attr.nlink == 1
    with cl.stores[0].read() as t:
        assert t.intents() == []


async def test_peer_missing_from_the_map_is_looked_up(cl: Cluster) -> None:
    fake = FakeDir(make_map(cl.addresses, cl.data_addresses, epoch=5))
    server, dir_addr = await start_fake_dir(fake)
    try:
        view = cl.views[0]
        view.dir_server = dir_addr
        view.adopt(make_map(cl.addresses[:1], cl.data_addresses, epoch=4))  # shard 1 not known yet
        src, dst = name_on(0, DIR, "s"), name_on(1, DIR2, "d")
        f = (await cl.create(DIR, src)).file
        await cl.rename(DIR, src, DIR2, dst)
        assert (await cl.lookup(DIR2, dst)).entry.ino == f.attr.ino
        assert view.map.epoch == 5
    finally:
        await server.stop(None)


async def test_remote_link_and_unlink(cl: Cluster) -> None:
    f = (await cl.create(DIR, name_on(0, DIR, "orig"))).file
    ino = f.attr.ino
    new = name_on(1, DIR2, "alias")
    attr = await cl.shard(1).link(pb.LinkRequest(ino=ino, new_parent=DIR2, new_name=new, creds=ALICE,
                                                  cap=cap(DIR2)))
    assert attr.nlink == 2
    assert (await cl.get(ino)).attr.nlink == 2
    look = await cl.lookup(DIR2, new)
    assert look.entry.ino == ino and not look.has_file
    assert await cl.err(cl.shard(1).link(pb.LinkRequest(ino=ino, new_parent=DIR2, new_name=new, creds=ALICE,
                                                  cap=cap(DIR2)))) == errno.EEXIST
    assert await cl.err(cl.shard(1).link(pb.LinkRequest(ino=DIR, new_parent=DIR2, new_name=name_on(1, DIR2, "x"),
                                                  creds=ALICE, cap=cap(DIR2)))) == errno.EPERM
    assert await cl.err(cl.shard(1).link(pb.LinkRequest(ino=routing.make_file_ino(0, 9999), new_parent=DIR2,
                                                  new_name=name_on(1, DIR2, "x"), creds=ALICE,
                                                  cap=cap(DIR2)))) == errno.ENOENT
    with cl.stores[1].read() as t:
        assert t.intents() == []
    # the remote name goes first: the home shard is told at once
    rep = await cl.shard(1).unlink(pb.UnlinkRequest(parent_ino=DIR2, name=new, creds=ALICE, cap=cap(DIR2)))
    assert (rep.ino, rep.nlink) == (ino, 1)
    with cl.stores[1].read() as t:
        assert t.outbox(10) == []
    # home shard down: the unlink still succeeds, the link count follows later
    await cl.shard(1).link(pb.LinkRequest(ino=ino, new_parent=DIR2, new_name=new, creds=ALICE, cap=cap(DIR2)))
    cl.views[1].adopt(make_map([DEAD, cl.addresses[1]], cl.data_addresses, epoch=2))
    rep = await cl.shard(1).unlink(pb.UnlinkRequest(parent_ino=DIR2, name=new, creds=ALICE, cap=cap(DIR2)))
    assert rep.ino == ino
    assert (await cl.get(ino)).attr.nlink == 2
    cl.set_map(cl.addresses, epoch=3)
    await cl.servicers[1].reclaimer.run_once()
    assert (await cl.get(ino)).attr.nlink == 1
    await cl.servicers[1].reclaimer.run_once()  # delivered once only
    assert (await cl.get(ino)).attr.nlink == 1


async def test_calls_between_shards_are_idempotent(cl: Cluster) -> None:
    f = (await cl.create(DIR, name_on(0, DIR, "f"))).file
    ino = f.attr.ino
    for _ in range(2):
        attr = await cl.shard(0).adjust_nlink(pb.NlinkRequest(ino=ino, delta=1, txid="tx-a"))
        assert attr.nlink == 2
    req = pb.RemoteLinkRequest(parent_ino=DIR2, name=name_on(1, DIR2, "r"), ino=ino, type=pb.REGULAR,
                               replace=True, txid="tx-b")
    for _ in range(2):
        assert (await cl.shard(1).remote_link(req)).replaced_ino == 0
    assert await cl.err(cl.shard(0).remote_link(req)) == errno.ESTALE
    assert (await cl.get(ino)).attr.nlink == 2


async def test_stats(cl: Cluster) -> None:
    await cl.create(DIR, name_on(0, DIR, "a"), data=b"12345")
    await cl.create(DIR, name_on(0, DIR, "b"))
    st = await cl.shard(0).stats(pb.Empty())
    assert (st.files, st.dentries, st.inline_bytes, st.logical_bytes) == (2, 2, 5, 5)
    assert st.db_bytes > 0


# -------------------------------------------------------------- reclaiming


async def chunked_file(cl: Cluster, name: str, size: int) -> pb.FileInfo:
    f = (await cl.create(DIR, name, data=b"x")).file
    h = home_of(f.attr.ino)
    info = await cl.shard(h).convert_to_chunked(pb.ConvertRequest(
        ino=f.attr.ino, creds=ALICE, layout=[0, 1], expect_generation=f.attr.generation))
    assert not info.inline and list(info.layout) == [0, 1] and info.chunk_size == CHUNK
    again = await cl.shard(h).convert_to_chunked(pb.ConvertRequest(
        ino=f.attr.ino, creds=ALICE, layout=[0], expect_generation=0))
    assert list(again.layout) == [0, 1]  # already chunked: returned as is
    attr = await cl.shard(h).set_size(pb.SetSizeRequest(ino=f.attr.ino, size=size, creds=ALICE))
    assert attr.size == size
    return info


async def test_shrink_and_unlink_reclaim_chunks(cl: Cluster) -> None:
    name = name_on(0, DIR, "big")
    info = await chunked_file(cl, name, 10 * CHUNK)
    ino = info.attr.ino
    assert await cl.err(cl.shard(0).write_inline(pb.WriteInlineRequest(ino=ino, data=b"x", creds=ALICE))) == errno.EFBIG
    # a shrink to mid-chunk truncates the boundary chunk on its replicas and drops the rest
    await cl.shard(0).set_attr(pb.SetAttrRequest(ino=ino, mask=8, size=2 * CHUNK + 10, creds=ALICE))
    calls = sorted(c for d in cl.data for c in d.calls)
    assert calls == [("DeleteChunks", ino, 3, 0)] * 2 + [("TruncateChunk", ino, 2, 10)] * 2
    with cl.stores[0].read() as t:
        assert t.reclaim_items(10) == []
    for d in cl.data:
        d.calls.clear()
    await cl.shard(0).unlink(pb.UnlinkRequest(parent_ino=DIR, name=name, creds=ALICE, cap=cap(DIR)))
    await cl.servicers[0].reclaimer.run_once()
    assert sorted(c for d in cl.data for c in d.calls) == [("DeleteChunks", ino, 0, 0)] * 2


async def test_reclaim_waits_for_a_down_data_server(cl: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    from superfs import faults
    name = name_on(0, DIR, "big")
    info = await chunked_file(cl, name, 4 * CHUNK)
    live = dict(cl.data_addresses)
    cl.data_addresses[1] = DEAD
    cl.set_map(cl.addresses, epoch=2)
    await cl.shard(0).unlink(pb.UnlinkRequest(parent_ino=DIR, name=name, creds=ALICE, cap=cap(DIR)))
    await cl.servicers[0].reclaimer.run_once()
    with cl.stores[0].read() as t:  # what data server 0 did is struck off; 1 is retried later
        assert [(i.ino, i.layout) for i in t.reclaim_items(10)] == [(info.attr.ino, (1,))]
    cl.data_addresses = live
    cl.set_map(cl.addresses, epoch=3)
    await cl.servicers[0].reclaimer.run_once()
    with cl.stores[0].read() as t:
        assert len(t.reclaim_items(10)) == 1  # backing off
    monkeypatch.setattr(faults, "_CLOCK_OFFSET_NS", 3600 * 10**9)
    await cl.servicers[0].reclaimer.run_once()
    with cl.stores[0].read() as t:
        assert t.reclaim_items(10) == []
    assert ("DeleteChunks", info.attr.ino, 0, 0) in cl.data[1].calls


async def test_shrink_then_regrow_keeps_new_chunks(cl: Cluster) -> None:
    """A queued shrink must not delete data written after it."""
    name = name_on(0, DIR, "grow")
    info = await chunked_file(cl, name, 4 * CHUNK)
    ino = info.attr.ino
    cl.data_addresses[0] = DEAD
    cl.set_map(cl.addresses, epoch=2)
    await cl.shard(0).set_attr(pb.SetAttrRequest(ino=ino, mask=8, size=0, creds=ALICE))
    await cl.shard(0).set_size(pb.SetSizeRequest(ino=ino, size=3 * CHUNK, creds=ALICE))  # rewritten since
    for d in cl.data:
        d.calls.clear()
    await cl.servicers[0].reclaimer.run_once()
    assert all(not d.calls for d in cl.data)
    with cl.stores[0].read() as t:
        assert t.reclaim_items(10) == []


# -------------------------------------------------------------- main.run


class FakeDir(pbg.DirServiceServicer):
    def __init__(self, base: pb.ClusterMap) -> None:
        self.map = base
        self.registered: list[tuple[str, int, str]] = []

    @rpc_handler
    async def RegisterServer(self, request: pb.RegisterServerRequest, context: Any) -> pb.ClusterMap:
        self.registered.append((request.kind, request.server.id, request.server.address))
        if all(s.id != request.server.id for s in self.map.shards):
            self.map.shards.append(request.server)
            self.map.epoch += 1
        return self.map

    @rpc_handler
    async def GetClusterMap(self, request: pb.GetClusterMapRequest, context: Any) -> pb.ClusterMap:
        return self.map


async def start_fake_dir(fake: FakeDir, listen: str = "127.0.0.1:0") -> tuple[grpc.aio.Server, str]:
    server = grpc.aio.server()
    pbg.add_DirServiceServicer_to_server(fake, server)
    port = server.add_insecure_port(listen)
    await server.start()
    return server, f"127.0.0.1:{port}"


async def wait_ready(path: str, timeout_s: float = 20.0) -> str:
    for _ in range(int(timeout_s / 0.05)):
        if os.path.exists(path):
            with open(path) as f:
                return str(json.load(f)["address"])
        await asyncio.sleep(0.05)
    raise AssertionError("shard never became ready")


async def test_run_registers_and_serves(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shard_main, "REGISTER_WAIT_S", 0.5)
    secret_file = tmp_path / "secret"
    secret_file.write_bytes(SECRET)
    secret_file.chmod(0o600)
    base = make_map([])
    base.partition_shard[:] = [0] * PARTITIONS
    base.epoch = 1
    fake = FakeDir(base)
    # the dir server is down at first: the shard retries, and still comes up
    probe, dir_addr = await start_fake_dir(fake)
    await probe.stop(None)
    cfg = ShardConfig(shard_id=0, data_dir=str(tmp_path / "data"), dir_server=dir_addr,
                      secret_file=str(secret_file), ready_file=str(tmp_path / "ready.json"), durability="async",
                      rpc_timeout_s=1.0)
    task = asyncio.get_running_loop().create_task(shard_main.run(cfg))
    channels = Channels(TIMEOUT)
    server = None
    try:
        address = await wait_ready(cfg.ready_file or "")
        req = pb.CreateFileRequest(parent_ino=DIR, name="f", creds=ALICE, cap=cap(DIR))
        with pytest.raises(FsError) as ei:
            await channels.shard(address).create_file(req, TIMEOUT)
        assert ei.value.errno == errno.EAGAIN  # no cluster map yet
        server, _ = await start_fake_dir(fake, dir_addr)
        for _ in range(200):
            if fake.registered:
                break
            await asyncio.sleep(0.05)
        assert fake.registered == [("shard", 0, address)]
        rep = await channels.shard(address).create_file(req, TIMEOUT)
        assert rep.created
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await channels.close()
        if server is not None:
            await server.stop(None)
    assert not os.path.exists(cfg.ready_file or "")


# ------------------------------------------------------------ partition moves


async def test_a_moving_partition_serves_reads_until_its_copy_is_done(cl: Cluster) -> None:
    """Frozen, the source still answers reads from its copy; once the map says the copy is done
    (the flip comes next, and may reach the target first), it refuses them too. It answered them
    before: a file renamed into the partition on the new owner then read as ENOENT (a grow test)."""
    await cl.create(7, "f")
    p = routing.entry_partition(7, "f", PARTITIONS)
    src = p % 2
    view = cl.views[src]
    steps = []
    for step in ("freeze", "copy"):
        cmap = make_map(cl.addresses, cl.data_addresses, epoch=2 + len(steps))
        cmap.moves.append(pb.PartitionMove(partition=p, source=src, target=1 - src, step=step))
        view.adopt(cmap)
        try:
            view.check_entry(7, "f", read=True)
            steps.append((step, "read served"))
        except FsError as e:
            assert e.errno == errno.ESTALE and "moving" in str(e)
            steps.append((step, "read refused"))
        with pytest.raises(FsError) as e:
            view.check_entry(7, "f")
        assert e.value.errno == errno.ESTALE
    assert steps == [("freeze", "read served"), ("copy", "read refused")]
    view.adopt(make_map(cl.addresses, cl.data_addresses, epoch=9))   # the move forgotten (rolled back)
    assert view.check_entry(7, "f", read=True) == p
