"""Tier 2: the dir server's gRPC service in-process on 127.0.0.1:0, over real grpc.aio.

The shards are small fake ShardService servicers (a dict each, real gRPC
servers) implementing only what the dir server calls: Reserve/ReleaseDirEntry,
Seal/UnsealDir and LookupFile. They register through RegisterServer like real
shards, so every coordinator step crosses the network: errors come back as
errno in the status, a stopped shard is a real connection failure.
"""
from __future__ import annotations

import asyncio
import errno
import os
import signal
import stat
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Awaitable

import grpc
import pytest

from superfs import capability, daemon
from superfs.config import DirServerConfig
from superfs.dirserver import recovery
from superfs.dirserver.main import run
from superfs.dirserver.service import DirServicer
from superfs.dirserver.store import DirStore
from superfs.errors import FsError, rpc_handler
from superfs.rpc.channels import Channels
from superfs.rpc.stubs import DirRpc
from superfs.routing import ROOT_INO
from superfs.v1 import superfs_pb2 as pb
from superfs.v1 import superfs_pb2_grpc as pbg

SECRET = b"t2-cluster-secret-0123456789"
OWNER = pb.Creds(uid=1000, gid=1000)  # owns root in these tests (which may run as root)
OTHER = pb.Creds(uid=2000, gid=2000)
PROCESS = pb.Creds(uid=os.getuid(), gid=os.getgid())
ROOT = pb.Creds(uid=0, gid=0)
TIMEOUT = 1.0


class FakeShard(pbg.ShardServiceServicer):
    """A shard reduced to its directory-entry table; ``fail[method] = n`` fails the next n calls."""

    def __init__(self, sid: int) -> None:
        self.sid = sid
        self.entries: dict[tuple[int, str], tuple[int, int]] = {}
        self.sealed: set[int] = set()
        self.fail: dict[str, int] = {}
        self.calls: list[str] = []
        self.server: grpc.aio.Server | None = None
        self.address = ""

    async def start(self) -> None:
        self.server = grpc.aio.server()
        pbg.add_ShardServiceServicer_to_server(self, self.server)
        port = self.server.add_insecure_port("127.0.0.1:0")
        await self.server.start()
        self.address = f"127.0.0.1:{port}"

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(None)
            self.server = None

    def _enter(self, method: str) -> None:
        self.calls.append(method)
        if self.fail.get(method, 0) > 0:
            self.fail[method] -= 1
            raise FsError(errno.EIO, f"injected failure of {method}")

    @rpc_handler
    async def ReserveDirEntry(self, request: pb.DirEntryRequest, context: Any) -> pb.Empty:
        self._enter("ReserveDirEntry")
        key = (request.parent_ino, request.name)
        have = self.entries.get(key)
        if have is not None and have != (request.ino, pb.DIRECTORY):
            raise FsError(errno.EEXIST, "name taken")
        if request.parent_ino in self.sealed:
            raise FsError(errno.ENOENT, "parent is sealed")
        self.entries[key] = (request.ino, pb.DIRECTORY)
        return pb.Empty()

    @rpc_handler
    async def ReleaseDirEntry(self, request: pb.DirEntryRequest, context: Any) -> pb.Empty:
        self._enter("ReleaseDirEntry")
        key = (request.parent_ino, request.name)
        if self.entries.get(key) == (request.ino, pb.DIRECTORY):
            del self.entries[key]
        return pb.Empty()

    @rpc_handler
    async def SealDir(self, request: pb.SealRequest, context: Any) -> pb.SealReply:
        self._enter("SealDir")
        if any(parent == request.dir_ino for parent, _ in self.entries):
            return pb.SealReply(empty=False)
        self.sealed.add(request.dir_ino)
        return pb.SealReply(empty=True)

    @rpc_handler
    async def UnsealDir(self, request: pb.SealRequest, context: Any) -> pb.Empty:
        self._enter("UnsealDir")
        self.sealed.discard(request.dir_ino)
        return pb.Empty()

    @rpc_handler
    async def LookupFile(self, request: pb.LookupFileRequest, context: Any) -> pb.LookupFileReply:
        self._enter("LookupFile")
        have = self.entries.get((request.parent_ino, request.name))
        if have is None:
            raise FsError(errno.ENOENT, "no such entry")
        entry = pb.Dentry(name=request.name, ino=have[0], type=have[1])  # type: ignore[arg-type]
        return pb.LookupFileReply(entry=entry)


@dataclass
class Cluster:
    tmp: str
    cfg: DirServerConfig
    store: DirStore
    servicer: DirServicer
    server: grpc.aio.Server
    address: str
    shards: list[FakeShard]
    channels: Channels = field(default_factory=lambda: Channels(TIMEOUT))

    @property
    def stub(self) -> DirRpc:
        return self.channels.dir(self.address)

    @staticmethod
    async def err(call: Awaitable[Any]) -> int:
        with pytest.raises(FsError) as e:
            await call
        return e.value.errno

    def shard_of(self, parent: int, name: str) -> FakeShard:
        return self.shards[self.servicer.view.shard_of_entry(parent, name)]

    def add_file(self, parent: int, name: str, kind: int = pb.REGULAR) -> None:
        self.shard_of(parent, name).entries[(parent, name)] = (1 << 41 | len(name), kind)

    def name_on(self, shard: int, parent: int, prefix: str) -> str:
        for i in range(1000):
            if self.servicer.view.shard_of_entry(parent, f"{prefix}{i}") == shard:
                return f"{prefix}{i}"
        raise AssertionError("no name found")

    async def mkdir(self, parent: int, name: str, mode: int = 0o755, creds: pb.Creds = OWNER) -> pb.DirInfo:
        return await self.stub.mkdir(pb.MkdirRequest(parent_ino=parent, name=name, mode=mode, creds=creds))

    async def assert_consistent(self) -> None:
        """Each directory is reserved under its name on exactly its shard; no intent is left."""
        await self.servicer.coordinator.drain()  # rmdir and rename drop their intents after replying
        here: dict[tuple[int, str], int] = {}
        todo = [ROOT_INO]
        while todo:
            dirs, _ = self.store.list_children(todo.pop(), "", 100000)
            for d in dirs:
                here[(d.parent_ino, d.name)] = d.ino
                todo.append(d.ino)
        reserved: dict[tuple[int, str], int] = {}
        for sh in self.shards:
            for key, (ino, kind) in sh.entries.items():
                if kind == pb.DIRECTORY:
                    assert self.shard_of(*key) is sh, f"{key} reserved on the wrong shard"
                    reserved[key] = ino
            assert not sh.sealed & set(here.values()), "a live directory is sealed"
        assert here == reserved
        assert self.servicer.coordinator.intents.all() == []


async def open_dir_server(tmp: str, shards: list[FakeShard], **cfg_kw: Any) -> Cluster:
    cfg = DirServerConfig(data_dir=tmp, secret_file="", shards=len(shards), num_partitions=64,
                          rpc_timeout_s=TIMEOUT, **cfg_kw)
    store = DirStore.open(os.path.join(tmp, "dir.lmdb"), durable=True, root_uid=OWNER.uid, root_gid=OWNER.gid)
    servicer = DirServicer(cfg, store, SECRET)
    server = grpc.aio.server()
    pbg.add_DirServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return Cluster(tmp, cfg, store, servicer, server, f"127.0.0.1:{port}", shards)


async def close_dir_server(c: Cluster) -> None:
    await c.channels.close()
    await c.server.stop(None)
    await c.servicer.close()
    c.store.close()


@pytest.fixture
async def cluster(tmp_path: Any) -> AsyncIterator[Cluster]:
    shards = [FakeShard(i) for i in range(2)]
    for sh in shards:
        await sh.start()
    c = await open_dir_server(str(tmp_path), shards)
    for sh in shards:
        await c.stub.register_server(pb.RegisterServerRequest(
            kind="shard", server=pb.ServerInfo(id=sh.sid, address=sh.address)))
    yield c
    await close_dir_server(c)
    for sh in shards:
        await sh.stop()


# --------------------------------------------------------------- cluster map

async def test_cluster_map_over_rpc_and_across_restart(tmp_path: Any) -> None:
    shards = [FakeShard(i) for i in range(2)]
    c = await open_dir_server(str(tmp_path), shards, replicas=3, inline_threshold=1234)
    m = await c.stub.get_cluster_map(pb.GetClusterMapRequest())
    assert m.epoch == 1 and m.num_partitions == 64 and not m.shards and m.replicas == 3
    assert list(m.partition_shard) == [p % 2 for p in range(64)] and m.inline_threshold == 1234
    reg = lambda kind, sid, addr: pb.RegisterServerRequest(kind=kind, server=pb.ServerInfo(id=sid, address=addr))
    m = await c.stub.register_server(reg("shard", 1, "127.0.0.1:7001"))
    assert m.epoch == 2 and [(s.id, s.address) for s in m.shards] == [(1, "127.0.0.1:7001")]
    assert (await c.stub.register_server(reg("shard", 1, "127.0.0.1:7001"))).epoch == 2
    m = await c.stub.register_server(reg("data", 5, "127.0.0.1:8005"))
    assert m.epoch == 3 and m.data_servers[0].address == "127.0.0.1:8005"
    # a new shard takes the next id (2 here: it owns nothing until add-shard); one past it is a typo
    for bad in [reg("shard", 3, "127.0.0.1:1"), reg("meta", 0, "127.0.0.1:1"), reg("data", 1, "")]:
        assert await c.err(c.stub.register_server(bad)) == errno.EINVAL
    await close_dir_server(c)
    c = await open_dir_server(str(tmp_path), shards, replicas=3, inline_threshold=1234)
    assert await c.stub.get_cluster_map(pb.GetClusterMapRequest()) == m
    await close_dir_server(c)


# ------------------------------------------------------------ reads, mkdir

async def test_mkdir_lookup_resolve_list(cluster: Cluster) -> None:
    c = cluster
    a = await c.mkdir(ROOT_INO, "a")
    assert a.attr.mode == stat.S_IFDIR | 0o755 and a.attr.uid == OWNER.uid and a.parent_ino == ROOT_INO
    assert c.shard_of(ROOT_INO, "a").entries[(ROOT_INO, "a")] == (a.ino, pb.DIRECTORY)
    long = await c.mkdir(a.ino, "é" * 127)  # 254 bytes
    b = await c.mkdir(a.ino, "b", 0o700)
    assert (await c.mkdir(a.ino, "n" * 255)).name == "n" * 255
    c.add_file(a.ino, "file")
    r = await c.stub.resolve(pb.ResolveRequest(path="/a/b/../b/file.txt/x", creds=OWNER))
    assert [d.ino for d in r.dirs] == [ROOT_INO, a.ino, b.ino] and list(r.remaining) == ["file.txt", "x"]
    assert r.lease_ns == int(c.cfg.dir_lease_s * 1e9)
    capability.verify(SECRET, r.cap, dir_ino=b.ino, uid=OWNER.uid)
    assert r.cap.rights == 7 and r.cap.owner_uid == OWNER.uid and not r.cap.sticky
    r = await c.stub.resolve(pb.ResolveRequest(path="/a/file", creds=OWNER))
    assert [d.ino for d in r.dirs] == [ROOT_INO, a.ino] and list(r.remaining) == ["file"]
    got = await c.stub.lookup_dir(pb.LookupDirRequest(parent_ino=a.ino, name="é" * 127, creds=OWNER))
    assert got.dir == long and got.cap.dir_ino == long.ino
    assert (await c.stub.get_dir(pb.DirRequest(ino=b.ino, creds=OWNER))).dir.name == "b"
    page = await c.stub.list_dirs(pb.ListDirsRequest(ino=a.ino, limit=2, creds=OWNER))
    assert [d.name for d in page.dirs] == ["b", "n" * 255] and page.more
    page = await c.stub.list_dirs(pb.ListDirsRequest(ino=a.ino, after="n" * 255, creds=OWNER))
    assert [d.name for d in page.dirs] == ["é" * 127] and not page.more
    mk = lambda parent, name, creds=OWNER: pb.MkdirRequest(parent_ino=parent, name=name, mode=0o755, creds=creds)
    for req, err in [
        (mk(ROOT_INO, "a"), errno.EEXIST),            # a directory has the name
        (mk(a.ino, "file"), errno.EEXIST),            # a file has it (the shard says)
        (mk(ROOT_INO, "n" * 256), errno.ENAMETOOLONG),
        (mk(ROOT_INO, "x/y"), errno.EINVAL), (mk(ROOT_INO, "x\0y"), errno.EINVAL),
        (mk(ROOT_INO, "."), errno.EINVAL), (mk(ROOT_INO, ".."), errno.EINVAL),
        (mk(987654, "x"), errno.ENOENT),               # missing parent
        (mk(ROOT_INO, "theirs", OTHER), errno.EACCES),  # root is 0o755, owned by OWNER
    ]:
        assert await c.err(c.stub.mkdir(req)) == err, req
    for method, req, err in [
        (c.stub.lookup_dir, pb.LookupDirRequest(parent_ino=a.ino, name="file", creds=OWNER), errno.ENOENT),
        (c.stub.lookup_dir, pb.LookupDirRequest(parent_ino=b.ino, name="x", creds=OTHER), errno.EACCES),
        (c.stub.lookup_dir, pb.LookupDirRequest(parent_ino=a.ino, name="x" * 256, creds=OWNER), errno.ENAMETOOLONG),
        (c.stub.get_dir, pb.DirRequest(ino=424242, creds=OWNER), errno.ENOENT),
        (c.stub.resolve, pb.ResolveRequest(path="/a/b/c", creds=OTHER), errno.EACCES),
        (c.stub.resolve, pb.ResolveRequest(path="/a/" + "x" * 256, creds=OWNER), errno.ENAMETOOLONG),
        (c.stub.list_dirs, pb.ListDirsRequest(ino=b.ino, creds=OTHER), errno.EACCES),
        (c.stub.list_dirs, pb.ListDirsRequest(ino=55555, creds=OWNER), errno.ENOENT),
    ]:
        assert await c.err(method(req)) == err, (method, req)
    # OTHER may search and list a (0o755): its capability there grants R|X only, and shards would see it
    r = await c.stub.resolve(pb.ResolveRequest(path="/a", creds=OTHER))
    assert r.cap.rights == 5
    with pytest.raises(FsError) as e:
        capability.verify(SECRET, r.cap, dir_ino=a.ino, uid=OTHER.uid)
    assert e.value.errno == errno.EACCES
    forged = pb.DirCap()
    forged.CopyFrom(r.cap)
    forged.rights = 7
    with pytest.raises(FsError):
        capability.verify(SECRET, forged, dir_ino=a.ino, uid=OTHER.uid)
    stats = await c.stub.stats(pb.Empty())
    assert stats.directories == 5 and stats.db_bytes > 0
    c.shards[0].entries = {k: v for k, v in c.shards[0].entries.items() if v[1] == pb.DIRECTORY}
    c.shards[1].entries = {k: v for k, v in c.shards[1].entries.items() if v[1] == pb.DIRECTORY}
    await c.assert_consistent()


async def test_concurrent_mkdirs_in_one_directory(cluster: Cluster) -> None:
    c = cluster
    made = await asyncio.gather(*(c.mkdir(ROOT_INO, f"d{i:03}") for i in range(100)))
    assert len({d.ino for d in made}) == 100
    root = (await c.stub.get_dir(pb.DirRequest(ino=ROOT_INO, creds=OWNER))).dir
    assert root.attr.nlink == 102
    dup = await asyncio.gather(*(c.mkdir(ROOT_INO, "same") for _ in range(5)), return_exceptions=True)
    assert sum(isinstance(d, pb.DirInfo) for d in dup) == 1
    assert all(d.errno == errno.EEXIST for d in dup if isinstance(d, FsError))
    await c.assert_consistent()


# ---------------------------------------------------------------- rmdir

async def test_rmdir(cluster: Cluster) -> None:
    c = cluster
    a = await c.mkdir(ROOT_INO, "a")
    b = await c.mkdir(a.ino, "b")
    c.add_file(ROOT_INO, "f")
    rm = lambda parent, name, creds=OWNER: pb.RmdirRequest(parent_ino=parent, name=name, creds=creds)
    for req, err in [
        (rm(ROOT_INO, "a"), errno.ENOTEMPTY), (rm(ROOT_INO, "f"), errno.ENOTDIR),
        (rm(ROOT_INO, "zz"), errno.ENOENT), (rm(4040, "zz"), errno.ENOENT),
        (rm(a.ino, "b", OTHER), errno.EACCES), (rm(ROOT_INO, "."), errno.EINVAL),
        (rm(ROOT_INO, "x" * 256), errno.ENAMETOOLONG),
    ]:
        assert await c.err(c.stub.rmdir(req)) == err, req
    # a shard holds a file inside b: not empty, and b is unsealed again on every shard
    c.add_file(b.ino, "inner")
    assert await c.err(c.stub.rmdir(rm(a.ino, "b"))) == errno.ENOTEMPTY
    assert all(b.ino not in sh.sealed for sh in c.shards)
    del c.shard_of(b.ino, "inner").entries[(b.ino, "inner")]
    await c.stub.rmdir(rm(a.ino, "b"))
    assert all(b.ino in sh.sealed for sh in c.shards)  # no file can appear in it any more
    assert await c.err(c.stub.get_dir(pb.DirRequest(ino=b.ino, creds=OWNER))) == errno.ENOENT
    assert (await c.stub.get_dir(pb.DirRequest(ino=a.ino, creds=OWNER))).dir.attr.nlink == 2
    await c.stub.rmdir(rm(ROOT_INO, "a"))
    del c.shard_of(ROOT_INO, "f").entries[(ROOT_INO, "f")]
    await c.assert_consistent()


# --------------------------------------------------------------- rename

async def test_rename_dir(cluster: Cluster) -> None:
    c = cluster
    a = await c.mkdir(ROOT_INO, "a")
    b = await c.mkdir(a.ino, "b")
    full = await c.mkdir(ROOT_INO, "full")
    await c.mkdir(full.ino, "kid")
    busy = await c.mkdir(ROOT_INO, "busy")
    c.add_file(busy.ino, "data.bin")
    empty = await c.mkdir(ROOT_INO, "empty")
    c.add_file(ROOT_INO, "f")
    ren = lambda sp, sn, dp, dn, flags=0, creds=OWNER: pb.RenameDirRequest(
        src_parent=sp, src_name=sn, dst_parent=dp, dst_name=dn, flags=flags, creds=creds)
    for req, err in [
        (ren(ROOT_INO, "a", b.ino, "a"), errno.EINVAL),        # into its own subtree
        (ren(ROOT_INO, "a", a.ino, "a2"), errno.EINVAL),       # into itself
        (ren(ROOT_INO, "a", ROOT_INO, "full"), errno.ENOTEMPTY),
        (ren(ROOT_INO, "a", ROOT_INO, "busy"), errno.ENOTEMPTY),  # a shard says so
        (ren(ROOT_INO, "a", ROOT_INO, "f"), errno.ENOTDIR),
        (ren(ROOT_INO, "a", ROOT_INO, "empty", 1), errno.EEXIST),
        (ren(ROOT_INO, "a", ROOT_INO, "empty", 3), errno.EINVAL),  # NOREPLACE|EXCHANGE
        (ren(ROOT_INO, "f", ROOT_INO, "g"), errno.ENOTDIR),
        (ren(ROOT_INO, "none", ROOT_INO, "g"), errno.ENOENT),
        (ren(ROOT_INO, "a", 31337, "g"), errno.ENOENT),
        (ren(ROOT_INO, "a", ROOT_INO, "g/h"), errno.EINVAL),
        (ren(ROOT_INO, "a", ROOT_INO, "g" * 256), errno.ENAMETOOLONG),
        (ren(ROOT_INO, "a", ROOT_INO, "g", 0, OTHER), errno.EACCES),
    ]:
        assert await c.err(c.stub.rename_dir(req)) == err, req
    assert all(busy.ino not in sh.sealed for sh in c.shards)
    await c.stub.rename_dir(ren(ROOT_INO, "a", ROOT_INO, "a"))  # onto itself
    await c.stub.rename_dir(ren(a.ino, "b", ROOT_INO, "b2"))
    r = await c.stub.resolve(pb.ResolveRequest(path="/b2", creds=OWNER))
    assert r.dirs[-1].ino == b.ino and not r.remaining
    await c.stub.rename_dir(ren(ROOT_INO, "b2", ROOT_INO, "empty"))  # replaces the empty dir
    assert await c.err(c.stub.get_dir(pb.DirRequest(ino=empty.ino, creds=OWNER))) == errno.ENOENT
    got = await c.stub.lookup_dir(pb.LookupDirRequest(parent_ino=ROOT_INO, name="empty", creds=OWNER))
    assert got.dir.ino == b.ino
    await c.stub.rename_dir(ren(ROOT_INO, "empty", full.ino, "deeper"))
    r = await c.stub.resolve(pb.ResolveRequest(path="/full/deeper", creds=OWNER))
    assert [d.ino for d in r.dirs] == [ROOT_INO, full.ino, b.ino]
    for sh in c.shards:
        sh.entries = {k: v for k, v in sh.entries.items() if v[1] == pb.DIRECTORY}
    await c.assert_consistent()


# ----------------------------------------------------------- attrs, xattrs

async def test_setattr_and_xattrs(cluster: Cluster) -> None:
    c = cluster
    d = await c.mkdir(ROOT_INO, "d", 0o750)
    sa = lambda creds, **kw: pb.SetAttrRequest(ino=d.ino, creds=creds, **kw)
    a = await c.stub.set_dir_attr(sa(OWNER, mask=1, mode=0o1777))
    assert a.mode == stat.S_IFDIR | 0o1777 and a.ctime_ns >= d.attr.ctime_ns
    assert (await c.stub.get_dir(pb.DirRequest(ino=d.ino, creds=OTHER))).cap.sticky
    for req, err in [(sa(OTHER, mask=1, mode=0o700), errno.EPERM), (sa(OWNER, mask=2, uid=1), errno.EPERM),
                     (sa(OWNER, mask=8, size=1), errno.EISDIR), (sa(OTHER, mask=16, atime_ns=1), errno.EPERM)]:
        assert await c.err(c.stub.set_dir_attr(req)) == err, req
    assert (await c.stub.set_dir_attr(sa(ROOT, mask=2 | 4, uid=7, gid=8))).uid == 7
    x = lambda name, value=b"", flags=0, creds=ROOT: pb.XattrRequest(ino=d.ino, name=name, value=value,
                                                                      flags=flags, creds=creds)
    await c.stub.set_dir_xattr(x("user.k", b"v", 1))
    assert (await c.stub.get_dir_xattr(x("user.k"))).value == b"v"
    assert list((await c.stub.list_dir_xattr(x(""))).names) == ["user.k"]
    for method, req, err in [
        (c.stub.set_dir_xattr, x("user.k", b"w", 1), errno.EEXIST),
        (c.stub.set_dir_xattr, x("user.n", b"w", 2), errno.ENODATA),
        (c.stub.set_dir_xattr, x("u" * 256), errno.ERANGE),
        (c.stub.set_dir_xattr, x("user.big", b"b" * 65537), errno.E2BIG),
        (c.stub.set_dir_xattr, x("user.k", b"w", 0, OWNER), errno.EPERM),
        (c.stub.get_dir_xattr, x("user.zz"), errno.ENODATA),
        (c.stub.remove_dir_xattr, x("user.zz"), errno.ENODATA),
    ]:
        assert await c.err(method(req)) == err, (method, req)
    await c.stub.remove_dir_xattr(x("user.k"))
    assert list((await c.stub.list_dir_xattr(x(""))).names) == []


# ------------------------------------------- failures, intents and recovery

async def test_down_shard_fails_fast_and_recovery_finishes(cluster: Cluster) -> None:
    c = cluster
    up_name, down_name = c.name_on(0, ROOT_INO, "up"), c.name_on(1, ROOT_INO, "down")
    await c.shards[1].stop()
    t0 = time.monotonic()
    assert await c.err(c.stub.mkdir(pb.MkdirRequest(parent_ino=ROOT_INO, name=down_name, mode=0o755,
                                                creds=OWNER))) in (errno.EIO, errno.ETIMEDOUT)
    assert time.monotonic() - t0 < TIMEOUT + 1.0
    # what does not need the down shard keeps working
    await c.mkdir(ROOT_INO, up_name)
    assert (await c.stub.resolve(pb.ResolveRequest(path="/" + up_name, creds=OWNER))).dirs[-1].name == up_name
    assert len(c.servicer.coordinator.intents.all()) == 1  # the mkdir's, waiting to be undone
    assert await recovery.recover_all(c.servicer.coordinator) == 1
    # the shard comes back on another port and re-registers
    await c.shards[1].start()
    await c.stub.register_server(pb.RegisterServerRequest(
        kind="shard", server=pb.ServerInfo(id=1, address=c.shards[1].address)))
    assert await recovery.recover_all(c.servicer.coordinator) == 0
    await c.mkdir(ROOT_INO, down_name)
    await c.assert_consistent()


async def test_rename_rolls_forward_after_failed_step_and_restart(tmp_path: Any) -> None:
    shards = [FakeShard(i) for i in range(2)]
    for sh in shards:
        await sh.start()
    c = await open_dir_server(str(tmp_path), shards)
    for sh in shards:
        await c.stub.register_server(pb.RegisterServerRequest(
            kind="shard", server=pb.ServerInfo(id=sh.sid, address=sh.address)))
    a = await c.mkdir(ROOT_INO, "a")
    dst = await c.mkdir(ROOT_INO, "dst")
    await c.mkdir(a.ino, "sub")
    # 1. the destination reservation fails: the caller sees EIO, the intent stays
    c.shard_of(dst.ino, "a2").fail["ReserveDirEntry"] = 1
    req = pb.RenameDirRequest(src_parent=ROOT_INO, src_name="a", dst_parent=dst.ino, dst_name="a2", creds=OWNER)
    assert await c.err(c.stub.rename_dir(req)) == errno.EIO
    assert [i.op for i in c.servicer.coordinator.intents.all()] == ["renamedir"]
    # the dir server restarts; recovery (the daemon's background loop) rolls it forward
    await close_dir_server(c)
    c = await open_dir_server(str(tmp_path), shards)
    task = asyncio.create_task(recovery.recovery_loop(c.servicer.coordinator, interval_s=0.02, retry_s=0.02))
    for _ in range(200):
        if not c.servicer.coordinator.intents.all():
            break
        await asyncio.sleep(0.02)
    task.cancel()
    r = await c.stub.resolve(pb.ResolveRequest(path="/dst/a2/sub", creds=OWNER))
    assert [d.name for d in r.dirs] == ["", "dst", "a2", "sub"]
    await c.assert_consistent()
    # 2. the second shard call of a rename (releasing the old name) fails after the commit:
    #    the rename succeeded; the old name is released by recovery
    c.shard_of(dst.ino, "a2").fail["ReleaseDirEntry"] = 1
    await c.stub.rename_dir(pb.RenameDirRequest(src_parent=dst.ino, src_name="a2", dst_parent=ROOT_INO,
                                                 dst_name="back", creds=OWNER))
    assert c.shard_of(dst.ino, "a2").entries.get((dst.ino, "a2")) == (a.ino, pb.DIRECTORY)
    assert await recovery.recover_all(c.servicer.coordinator) == 0
    await c.assert_consistent()
    # 3. rmdir whose seal fails on one shard: EIO, unsealed again, the directory stays
    c.shards[1].fail["SealDir"] = 1
    assert await c.err(c.stub.rmdir(pb.RmdirRequest(parent_ino=ROOT_INO, name="dst", creds=OWNER))) == errno.EIO
    await c.assert_consistent()
    await c.stub.rmdir(pb.RmdirRequest(parent_ino=ROOT_INO, name="dst", creds=OWNER))
    await c.assert_consistent()
    await close_dir_server(c)
    for sh in shards:
        await sh.stop()


# ------------------------------------------------------------- the daemon

async def test_run_serves_recovers_and_stops_on_sigterm(tmp_path: Any) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_bytes(SECRET)
    secret_file.chmod(0o600)
    shard = FakeShard(0)
    await shard.start()
    ready = str(tmp_path / "dir.ready")
    cfg = DirServerConfig(data_dir=str(tmp_path / "data"), secret_file=str(secret_file), ready_file=ready,
                          shards=1, num_partitions=8, rpc_timeout_s=TIMEOUT)
    channels = Channels(TIMEOUT)

    async def start() -> tuple[asyncio.Task[None], DirRpc]:
        task = asyncio.create_task(run(cfg))
        for _ in range(500):
            info = daemon.read_ready_file(ready)
            if info:
                return task, channels.dir(str(info["address"]))
            assert not task.done(), task
            await asyncio.sleep(0.01)
        raise AssertionError("dir server never became ready")

    async def stop(task: asyncio.Task[None]) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(task, 10)
        assert not os.path.exists(ready)

    task, stub = await start()
    await stub.register_server(pb.RegisterServerRequest(
        kind="shard", server=pb.ServerInfo(id=0, address=shard.address)), TIMEOUT)
    root = await stub.get_dir(pb.DirRequest(ino=ROOT_INO, creds=PROCESS), TIMEOUT)
    assert (root.dir.attr.uid, root.dir.attr.gid) == (PROCESS.uid, PROCESS.gid)  # whoever started it
    assert root.dir.attr.mode == stat.S_IFDIR | 0o755
    d = await stub.mkdir(pb.MkdirRequest(parent_ino=ROOT_INO, name="kept", mode=0o755, creds=PROCESS),
                   TIMEOUT)
    shard.fail["ReserveDirEntry"] = 1
    with pytest.raises(FsError):
        await stub.mkdir(pb.MkdirRequest(parent_ino=ROOT_INO, name="lost", mode=0o755, creds=PROCESS),
                   TIMEOUT)
    await stop(task)
    await channels.close()
    task, stub = await start()
    r = await stub.resolve(pb.ResolveRequest(path="/kept", creds=PROCESS), TIMEOUT)
    assert r.dirs[-1].ino == d.ino
    capability.verify(SECRET, r.cap, dir_ino=d.ino, uid=PROCESS.uid)
    m = await stub.get_cluster_map(pb.GetClusterMapRequest(), TIMEOUT)
    assert m.shards[0].address == shard.address
    # the background recovery undid the failed mkdir's intent on its own
    for _ in range(300):
        if "ReleaseDirEntry" in shard.calls:
            break
        await asyncio.sleep(0.01)
    assert "ReleaseDirEntry" in shard.calls
    await stop(task)
    await channels.close()
    await shard.stop()
