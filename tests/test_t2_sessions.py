"""Sessions in process: a SessionServer on 127.0.0.1:0 serving a small ShardService servicer.

What the transport must do whatever daemon sits behind it: answer many calls
at once on one connection, carry errnos, apply a mutation exactly once when
it is sent again after a forced reconnect, refuse bad credentials and
garbage, and let the daemon call the client back.
"""
from __future__ import annotations

import asyncio
import errno
import struct

import pytest

from superfs import auth
from superfs.config import AuthConfig, SecurityConfig
from superfs.errors import FsError, rpc_handler
from superfs.rpc.client import Session
from superfs.rpc.server import SessionServer
from superfs.v1 import superfs_pb2 as pb
from superfs.v1 import superfs_pb2_grpc as pbg

TOKEN = "t" * 32


class Shard(pbg.ShardServiceServicer):
    """GetFile echoes the ino (ENOENT for 0); SetSize counts applications and may be held."""

    def __init__(self) -> None:
        self.applied: dict[int, int] = {}
        self.hold = asyncio.Event()
        self.hold.set()
        self.arrived = asyncio.Event()

    @rpc_handler
    async def GetFile(self, request: pb.GetFileRequest, context: object) -> pb.FileInfo:
        if request.ino == 0:
            raise FsError(errno.ENOENT, "no inode 0")
        await asyncio.sleep(0.001 * (request.ino % 7))  # answers come back out of order
        return pb.FileInfo(attr=pb.Attr(ino=request.ino))

    @rpc_handler
    async def SetSize(self, request: pb.SetSizeRequest, context: object) -> pb.Attr:
        self.arrived.set()
        await self.hold.wait()
        self.applied[request.ino] = self.applied.get(request.ino, 0) + 1
        return pb.Attr(ino=request.ino, size=request.size)


@pytest.fixture
async def served():
    shard = Shard()
    server = SessionServer("test", {"ShardService": shard})
    address = await server.start("127.0.0.1", 0)
    yield shard, server, address
    await server.close()


async def test_many_calls_at_once_on_one_connection_come_back_each_to_its_caller(served):
    _, server, address = served
    s = Session(address)
    try:
        replies = await asyncio.gather(*(s.call("ShardService/GetFile", pb.GetFileRequest(ino=i), pb.FileInfo, 5.0)
                                         for i in range(1, 65)))
        assert [r.attr.ino for r in replies] == list(range(1, 65))
        with pytest.raises(FsError) as e:
            await s.call("ShardService/GetFile", pb.GetFileRequest(ino=0), pb.FileInfo, 5.0)
        assert e.value.errno == errno.ENOENT and "no inode 0" in e.value.message
        with pytest.raises(FsError) as e:  # a method this daemon does not serve
            await s.call("DirService/GetDir", pb.DirRequest(ino=1), pb.DirAttrReply, 5.0)
        assert e.value.errno == errno.ENOSYS
        assert len(server.connections) == 1
    finally:
        await s.close()


async def test_a_mutation_sent_again_after_a_forced_reconnect_is_applied_once(served):
    shard, server, address = served
    s = Session(address)
    try:
        shard.hold.clear()
        call = asyncio.create_task(s.call("ShardService/SetSize", pb.SetSizeRequest(ino=7, size=10), pb.Attr, 10.0))
        await asyncio.wait_for(shard.arrived.wait(), 5)
        # the connection dies while the daemon is applying it; the client reconnects and sends it again
        for conn in list(server.connections):
            conn.close()
        while s.reconnects == 0:
            await asyncio.sleep(0.01)
        shard.hold.set()
        reply = await call
        assert reply.size == 10 and shard.applied == {7: 1}
        # and once more, the answer already known: sent again, answered from the table, applied once
        shard.arrived.clear()
        reply = await s.call("ShardService/SetSize", pb.SetSizeRequest(ino=8, size=3), pb.Attr, 5.0)
        assert shard.applied == {7: 1, 8: 1}
    finally:
        await s.close()


async def test_the_daemon_calls_the_client_back_and_learns_when_it_is_gone(served):
    _, server, address = served

    async def recall(body: bytes) -> bytes:
        req = pb.DirRequest.FromString(body)
        return pb.Attr(ino=req.ino * 2).SerializeToString()

    s = Session(address, handlers={"Client/Recall": recall})
    try:
        await s.call("ShardService/GetFile", pb.GetFileRequest(ino=1), pb.FileInfo, 5.0)
        (session,) = server.sessions.values()
        reply = await session.call_client("Client/Recall", pb.DirRequest(ino=21), pb.Attr, 5.0)
        assert reply.ino == 42
        with pytest.raises(FsError) as e:
            await session.call_client("Client/Unknown", pb.DirRequest(ino=1), pb.Attr, 5.0)
        assert e.value.errno == errno.ENOSYS
    finally:
        await s.close()
    await asyncio.sleep(0.1)
    with pytest.raises(FsError) as e:
        await session.call_client("Client/Recall", pb.DirRequest(ino=21), pb.Attr, 1.0)
    assert e.value.errno == errno.EIO


async def test_an_unreachable_daemon_fails_reads_at_once():
    s = Session("127.0.0.1:1")
    try:
        with pytest.raises(FsError) as e:
            await s.call("ShardService/GetFile", pb.GetFileRequest(ino=1), pb.FileInfo, 5.0)
        assert e.value.errno == errno.EIO and "unreachable" in e.value.message
    finally:
        await s.close()


async def test_tokens_are_checked_and_garbage_is_dropped(tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{TOKEN} 1000 1000\n")
    tokens.chmod(0o600)
    authenticator = auth.Authenticator.from_config(SecurityConfig(auth=AuthConfig(tokens_file=str(tokens))))
    server = SessionServer("test", {"ShardService": Shard()}, authenticator=authenticator)
    address = await server.start("127.0.0.1", 0)
    try:
        for token, want in ((None, errno.EACCES), ("w" * 32, errno.EACCES)):
            s = Session(address, token=token)
            with pytest.raises(FsError) as e:
                await s.call("ShardService/GetFile", pb.GetFileRequest(ino=1), pb.FileInfo, 5.0)
            assert e.value.errno == want, e.value
            await s.close()
        s = Session(address, token=TOKEN)
        try:
            ok = pb.GetFileRequest(ino=1, creds=pb.Creds(uid=1000, gid=1000))
            assert (await s.call("ShardService/GetFile", ok, pb.FileInfo, 5.0)).attr.ino == 1
            forged = pb.GetFileRequest(ino=1, creds=pb.Creds(uid=0, gid=0))
            with pytest.raises(FsError) as e:
                await s.call("ShardService/GetFile", forged, pb.FileInfo, 5.0)
            assert e.value.errno == errno.EPERM
            with pytest.raises(FsError) as e:  # daemon-only method, no daemon role
                await s.call("ShardService/SealDir", pb.SealRequest(dir_ino=5), pb.SealReply, 5.0)
            assert e.value.errno == errno.EPERM
        finally:
            await s.close()
        # garbage: a frame that claims 4 GiB, then bytes that are no frame: dropped, the daemon goes on
        host, port = address.rsplit(":", 1)
        for junk in (struct.pack(">I", 0xFFFFFFFF) + b"x" * 100, struct.pack(">I", 5) + b"\xff" * 5):
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(junk)
            await writer.drain()
            assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the daemon
            writer.close()
        s = Session(address, token=TOKEN)
        ok = pb.GetFileRequest(ino=3, creds=pb.Creds(uid=1000, gid=1000))
        assert (await s.call("ShardService/GetFile", ok, pb.FileInfo, 5.0)).attr.ino == 3
        await s.close()
    finally:
        await server.close()


async def test_a_request_larger_than_the_daemon_takes_is_refused_alone(served):
    """The daemon's WELCOME says how large a frame it takes; a larger call fails with EFBIG on the client
    (sent, it would end the connection and every call on it), and the session goes on."""
    _, server, address = served
    s = Session(address)
    try:
        await s.call("ShardService/GetFile", pb.GetFileRequest(ino=1), pb.FileInfo, 5.0)  # welcomed
        assert s.max_frame == server.max_frame
        big = pb.WriteInlineRequest(ino=5, data=b"x" * server.max_frame)
        slow = asyncio.ensure_future(s.call("ShardService/GetFile", pb.GetFileRequest(ino=6), pb.FileInfo, 5.0))
        with pytest.raises(FsError) as e:
            await s.call("ShardService/WriteInline", big, pb.FileInfo, 5.0)
        assert e.value.errno == errno.EFBIG and "larger than" in e.value.message
        assert (await slow).attr.ino == 6
        assert (await s.call("ShardService/GetFile", pb.GetFileRequest(ino=7), pb.FileInfo, 5.0)).attr.ino == 7
        assert s.reconnects == 0
    finally:
        await s.close()
