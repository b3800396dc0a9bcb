"""Tier 2: DataService over real gRPC, in-process on 127.0.0.1:0.

The servicer runs in a grpc.aio server in this process; calls go through
the typed wrappers of ``superfs.rpc.channels.Channels`` (gRPC unary calls
here) and the streamed chunk RPCs, so errors are checked the way the client
library will see them: a gRPC status whose trailing metadata
carries the errno name, rebuilt into ``FsError``. Also covers registration
with a (fake) dir server and the daemon entry point ``run(cfg)``.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
from pathlib import Path
from typing import AsyncIterator

import grpc
import pytest

from superfs import capability
from superfs.client import streams
from superfs.config import DataServerConfig
from superfs.daemon import GRPC_OPTIONS, read_ready_file
from superfs.dataserver import main as data_main
from superfs.dataserver.chunk_format import MAX_CHUNK
from superfs.dataserver.chunk_store import ChunkStore
from superfs.dataserver.registration import Registrar
from superfs.dataserver.service import DataServicer
from superfs.errors import ERRNO_KEY, FsError
from superfs.rpc.channels import Channels
from superfs.v1 import superfs_pb2 as pb
from superfs.v1 import superfs_pb2_grpc as pbg

INO = (1 << 40) | 42
TIMEOUT = 10.0
SECRET = b"t2-data-secret-0123456789"


def cap(ino: int = INO, rights: int = 6, ttl_ns: int = capability.CHUNK_CAP_TTL_NS) -> pb.ChunkCap:
    """What the inode's shard would sign for a caller holding ``rights``."""
    return capability.sign_chunk(SECRET, ino=ino, rights=rights, ttl_ns=ttl_ns)


class DataServer:
    """A DataServicer on a real grpc.aio server, with its typed wrapper and streaming stub."""

    def __init__(self, tmp: Path) -> None:
        self.chunks = ChunkStore.open(str(tmp / "chunks"))
        self.server = grpc.aio.server(options=GRPC_OPTIONS)
        DataServicer(self.chunks, SECRET).add_to(self.server)
        port = self.server.add_insecure_port("127.0.0.1:0")
        self.address = f"127.0.0.1:{port}"
        self.channels = Channels(timeout_s=TIMEOUT)
        self.rpc = self.channels.data(self.address)
        self.streams = self.channels.data_streams(self.address)

    async def stop(self) -> None:
        await self.channels.close()
        await self.server.stop(grace=None)
        self.chunks.close()


@pytest.fixture
async def ds(tmp_path: Path) -> AsyncIterator[DataServer]:
    d = DataServer(tmp_path)
    await d.server.start()
    yield d
    await d.stop()


def key(index: int, ino: int = INO) -> pb.ChunkKey:
    return pb.ChunkKey(ino=ino, index=index)


async def write(ds: DataServer, index: int, data: bytes, offset: int = 0, truncate: bool = False) -> int:
    reply = await ds.rpc.write_chunk(
        pb.WriteChunkRequest(key=key(index), offset=offset, data=data, truncate=truncate, cap=cap()), TIMEOUT)
    return reply.length


async def read(ds: DataServer, index: int, offset: int, length: int, ino: int = INO) -> pb.ReadChunkReply:
    return await ds.rpc.read_chunk(
        pb.ReadChunkRequest(key=key(index, ino), offset=offset, length=length, cap=cap(ino)), TIMEOUT)


async def expect_errno(err: int, coro: object) -> None:
    with pytest.raises(FsError) as exc:
        await coro  # type: ignore[misc]
    assert exc.value.errno == err, exc.value


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("size", [1, 4096, 65_537, 1 << 20, 4 << 20, 8 << 20])
async def test_round_trip_sizes(ds: DataServer, size: int) -> None:
    data = os.urandom(size)
    assert await write(ds, 0, data) == size
    reply = await read(ds, 0, 0, size)
    assert reply.exists and reply.data == data
    reply = await read(ds, 0, size // 2, size)  # short tail
    assert reply.data == data[size // 2 :]


async def test_offsets_gaps_and_truncate(ds: DataServer) -> None:
    assert await write(ds, 1, b"abc", offset=10) == 13
    assert (await read(ds, 1, 0, 100)).data == bytes(10) + b"abc"
    assert await write(ds, 1, b"Z", offset=0) == 13
    assert await write(ds, 1, b"end", offset=4, truncate=True) == 7
    assert (await read(ds, 1, 0, 100)).data == b"Z" + bytes(3) + b"end"
    await ds.rpc.truncate_chunk(pb.TruncateChunkRequest(key=key(1), length=2), TIMEOUT)
    assert (await read(ds, 1, 0, 100)).data == b"Z\0"
    await ds.rpc.truncate_chunk(pb.TruncateChunkRequest(key=key(1), length=5), TIMEOUT)
    assert (await read(ds, 1, 0, 100)).data == b"Z" + bytes(4)
    await ds.rpc.truncate_chunk(pb.TruncateChunkRequest(key=key(77), length=5), TIMEOUT)
    assert not (await read(ds, 77, 0, 1)).exists


async def test_unknown_chunk_reads_as_hole(ds: DataServer) -> None:
    reply = await read(ds, 123, 0, 4096)
    assert not reply.exists and reply.data == b""
    reply = await read(ds, 0, 0, 10, ino=INO + 999)
    assert not reply.exists
    await write(ds, 0, b"x")
    reply = await read(ds, 0, 5, 10)  # past the end of an existing chunk
    assert reply.exists and reply.data == b""


async def test_concurrent_writers(ds: DataServer) -> None:
    pieces = {i: os.urandom(64 * 1024) for i in range(32)}
    lengths = await asyncio.gather(*(write(ds, i, d) for i, d in pieces.items()))
    assert lengths == [64 * 1024] * 32
    replies = await asyncio.gather(*(read(ds, i, 0, 1 << 20) for i in pieces))
    assert [r.data for r in replies] == list(pieces.values())


async def test_delete_list_and_stats(ds: DataServer) -> None:
    for i in range(5):
        await write(ds, i, b"%d" % i * 10)
    stats = await ds.rpc.stats(pb.Empty(), TIMEOUT)
    assert (stats.chunks, stats.bytes) == (5, 50) and stats.db_bytes > 0

    seen = []
    after = (0, 0)
    while True:
        reply = await ds.rpc.list_chunks(
            pb.ListChunksRequest(after_ino=after[0], after_index=after[1], limit=2, verify=True), TIMEOUT)
        seen += [(c.key.ino, c.key.index, c.length, c.corrupt) for c in reply.chunks]
        if not reply.more:
            break
        after = (reply.chunks[-1].key.ino, reply.chunks[-1].key.index)
    assert seen == [(INO, i, 10, False) for i in range(5)]

    await ds.rpc.delete_chunks(pb.DeleteChunksRequest(ino=INO, from_index=2), TIMEOUT)
    await ds.rpc.delete_chunks(pb.DeleteChunksRequest(ino=INO, from_index=2), TIMEOUT)  # idempotent
    assert [(await read(ds, i, 0, 1)).exists for i in range(5)] == [True, True, False, False, False]
    stats = await ds.rpc.stats(pb.Empty(), TIMEOUT)
    assert (stats.chunks, stats.bytes) == (2, 20)


# ---------------------------------------------------------------- capabilities


async def test_bytes_move_only_with_a_capability_for_their_inode_and_right(ds: DataServer) -> None:
    """Missing, forged, other-inode and too-weak capabilities: EACCES; expired: ESTALE; nothing moves."""
    await write(ds, 0, b"owner's bytes")
    forged = pb.ChunkCap(ino=INO, rights=6, expires_ns=2**62, mac=b"\0" * 32)
    widened = cap(rights=4)
    widened.rights = 6  # the MAC covers the rights
    refused = [(None, errno.EACCES), (forged, errno.EACCES), (widened, errno.EACCES),
               (cap(ino=INO + 1), errno.EACCES), (cap(ttl_ns=-1), errno.ESTALE)]
    for bad, err in refused:
        for attempt in (
            ds.rpc.write_chunk(pb.WriteChunkRequest(key=key(0), data=b"mallory", cap=bad), TIMEOUT),
            ds.rpc.read_chunk(pb.ReadChunkRequest(key=key(0), length=100, cap=bad), TIMEOUT),
            streams.write_chunk(ds.streams, key(0), 0, memoryview(b"m" * 600_000), TIMEOUT, bad),
            streams.read_chunk(ds.streams, key(0), 0, 100, TIMEOUT, bad),
        ):
            await expect_errno(err, attempt)
    read_only = cap(rights=4)
    await expect_errno(errno.EACCES, ds.rpc.write_chunk(pb.WriteChunkRequest(
        key=key(0), data=b"mallory", cap=read_only), TIMEOUT))
    await expect_errno(errno.EACCES, streams.write_chunk(ds.streams, key(0), 0, memoryview(b"m" * 600_000),
                                                         TIMEOUT, read_only))
    write_only = cap(rights=2)
    await expect_errno(errno.EACCES, ds.rpc.read_chunk(pb.ReadChunkRequest(
        key=key(0), length=100, cap=write_only), TIMEOUT))
    reply = await ds.rpc.read_chunk(pb.ReadChunkRequest(key=key(0), length=100, cap=read_only), TIMEOUT)
    assert reply.data == b"owner's bytes"  # unchanged, and the server still serves
    assert await streams.read_chunk(ds.streams, key(0), 0, 100, TIMEOUT, read_only) == (b"owner's bytes", True)


# ----------------------------------------------------------------- bad input


async def test_bad_input_is_einval_and_server_keeps_serving(ds: DataServer) -> None:
    await write(ds, 0, b"fine")
    bad = [
        ds.rpc.write_chunk(pb.WriteChunkRequest(key=key(0), offset=2**62, data=b"x", cap=cap()), TIMEOUT),
        ds.rpc.write_chunk(pb.WriteChunkRequest(key=key(0), offset=2**64 - 1, data=b"x", cap=cap()), TIMEOUT),
        ds.rpc.write_chunk(pb.WriteChunkRequest(key=key(0), offset=MAX_CHUNK, data=b"x", cap=cap()), TIMEOUT),
        ds.rpc.write_chunk(pb.WriteChunkRequest(data=b"no key", cap=cap(0)), TIMEOUT),  # ino 0
        ds.rpc.read_chunk(pb.ReadChunkRequest(key=key(0), length=2**31, cap=cap()), TIMEOUT),
        ds.rpc.read_chunk(pb.ReadChunkRequest(key=key(0), length=2**32 - 1, cap=cap()), TIMEOUT),
        ds.rpc.read_chunk(pb.ReadChunkRequest(key=key(0), offset=2**64 - 1, length=1, cap=cap()), TIMEOUT),
        ds.rpc.read_chunk(pb.ReadChunkRequest(length=1, cap=cap(0)), TIMEOUT),
        ds.rpc.truncate_chunk(pb.TruncateChunkRequest(key=key(0), length=2**63), TIMEOUT),
        ds.rpc.delete_chunks(pb.DeleteChunksRequest(ino=0), TIMEOUT),
    ]
    for coro in bad:
        await expect_errno(errno.EINVAL, coro)
    # nothing changed, and the server still answers
    assert (await read(ds, 0, 0, 100)).data == b"fine"
    stats = await ds.rpc.stats(pb.Empty(), TIMEOUT)
    assert (stats.chunks, stats.bytes) == (1, 4)


async def test_oversized_write_is_einval(ds: DataServer) -> None:
    # Fits in a gRPC message (80 MiB) but not in a chunk.
    await expect_errno(errno.EINVAL, write(ds, 0, bytes(MAX_CHUNK + 1)))
    assert not (await read(ds, 0, 0, 1)).exists


async def test_errors_travel_as_status_with_errno_metadata(ds: DataServer) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await ds.streams.ReadChunk(pb.ReadChunkRequest(key=key(0), length=2**31, cap=cap()), timeout=TIMEOUT)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (ERRNO_KEY, "EINVAL") in tuple(exc.value.trailing_metadata())


async def test_corrupt_chunk_is_eio_over_the_wire(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    victim = os.urandom(200_000)
    d = DataServer(tmp_path)
    await d.server.start()
    await write(d, 3, victim)
    await d.stop()
    needle = victim[100_000:100_032]
    db = next(f for f in (tmp_path / "chunks" / "slots").iterdir() if needle in f.read_bytes())
    raw = bytearray(db.read_bytes())
    at = raw.find(needle)
    while at >= 0:  # every copy, stale ones included
        raw[at + 5] ^= 0xFF
        at = raw.find(needle, at + 32)
    db.write_bytes(bytes(raw))

    d = DataServer(tmp_path)
    await d.server.start()
    try:
        with caplog.at_level(logging.ERROR, logger="superfs.dataserver"):
            with pytest.raises(grpc.aio.AioRpcError) as exc:
                await d.streams.ReadChunk(pb.ReadChunkRequest(key=key(3), offset=100_000, length=10, cap=cap()),
                                          timeout=TIMEOUT)
        assert exc.value.code() == grpc.StatusCode.DATA_LOSS
        assert (ERRNO_KEY, "EIO") in tuple(exc.value.trailing_metadata())
        assert any(f"ino={INO} index=3" in r.getMessage() for r in caplog.records)
        await expect_errno(errno.EIO, read(d, 3, 100_000, 10))
        reply = await d.rpc.list_chunks(pb.ListChunksRequest(verify=True), TIMEOUT)
        assert [(c.key.index, c.corrupt) for c in reply.chunks] == [(3, True)]
    finally:
        await d.stop()


# --------------------------------------------------- registration and run()


class FakeDirService(pbg.DirServiceServicer):
    """Answers RegisterServer only; refuses the first ``fail`` attempts with EAGAIN."""

    def __init__(self, fail: int = 0) -> None:
        self.fail = fail
        self.requests: list[pb.RegisterServerRequest] = []

    async def RegisterServer(self, request: pb.RegisterServerRequest, context: grpc.aio.ServicerContext) -> pb.ClusterMap:
        if self.fail > 0:
            self.fail -= 1
            context.set_trailing_metadata(((ERRNO_KEY, "EAGAIN"),))
            await context.abort(grpc.StatusCode.UNAVAILABLE, "not ready")
        self.requests.append(request)
        return pb.ClusterMap(epoch=7, cluster_name="test", data_servers=[request.server])


@pytest.fixture
async def fake_dir() -> AsyncIterator[tuple[FakeDirService, str]]:
    svc = FakeDirService()
    server = grpc.aio.server()
    pbg.add_DirServiceServicer_to_server(svc, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield svc, f"127.0.0.1:{port}"
    await server.stop(grace=None)


async def test_registrar_retries_then_registers(fake_dir: tuple[FakeDirService, str]) -> None:
    svc, address = fake_dir
    svc.fail = 2
    channels = Channels(timeout_s=2.0)
    reg = Registrar(channels, address, server_id=3, timeout_s=2.0)
    try:
        assert await reg.start("198.51.100.3:7000", wait_s=5.0)
        assert [(r.kind, r.server.id, r.server.address) for r in svc.requests] == [("data", 3, "198.51.100.3:7000")]
        assert reg.cluster_map is not None and reg.cluster_map.epoch == 7
    finally:
        await reg.stop()
        await channels.close()


async def test_registrar_gives_up_waiting_but_keeps_trying(
    fake_dir: tuple[FakeDirService, str], caplog: pytest.LogCaptureFixture
) -> None:
    svc, address = fake_dir
    svc.fail = 3  # attempts at ~0, 0.2, 0.6 s fail; the wait ends before the 4th
    channels = Channels(timeout_s=2.0)
    reg = Registrar(channels, address, server_id=4, timeout_s=2.0)
    try:
        with caplog.at_level(logging.WARNING, logger="superfs.dataserver"):
            assert not await reg.start("127.0.0.1:9", wait_s=0.7)
        assert sum("cannot register" in r.getMessage() for r in caplog.records) >= 2
        for _ in range(200):  # the background task gets through
            if svc.requests:
                break
            await asyncio.sleep(0.05)
        assert [r.server.id for r in svc.requests] == [4]
    finally:
        await reg.stop()
        await channels.close()


async def test_registrar_unreachable_dir_server_does_not_hang() -> None:
    channels = Channels(timeout_s=1.0)
    reg = Registrar(channels, "127.0.0.1:1", server_id=5, timeout_s=1.0)  # nothing listens on port 1
    try:
        assert not await asyncio.wait_for(reg.start("127.0.0.1:9", wait_s=0.5), timeout=5.0)
    finally:
        await reg.stop()
        await channels.close()


async def test_run_serves_registers_and_stops_on_sigterm(
    tmp_path: Path, fake_dir: tuple[FakeDirService, str]
) -> None:
    svc, dir_address = fake_dir
    ready = tmp_path / "ready.json"
    secret = tmp_path / "secret"
    secret.write_bytes(SECRET)
    secret.chmod(0o600)
    cfg = DataServerConfig(server_id=9, data_dir=str(tmp_path / "data"), dir_server=dir_address,
                           secret_file=str(secret), ready_file=str(ready))
    task = asyncio.create_task(data_main.run(cfg))
    try:
        for _ in range(200):
            info = read_ready_file(str(ready))
            if info is not None or task.done():
                break
            await asyncio.sleep(0.05)
        assert info is not None, "no ready file"
        address = str(info["address"])
        # registered (before the ready file) under the bound address
        assert [(r.kind, r.server.id, r.server.address) for r in svc.requests] == [("data", 9, address)]
        channels = Channels(timeout_s=TIMEOUT)
        try:
            stub = channels.data(address)
            await stub.write_chunk(pb.WriteChunkRequest(key=key(0), data=b"via run", cap=cap()), TIMEOUT)
            reply = await stub.read_chunk(pb.ReadChunkRequest(key=key(0), length=100, cap=cap()), TIMEOUT)
            assert reply.data == b"via run"
        finally:
            await channels.close()
    finally:
        if not task.done():  # else SIGTERM would hit pytest itself
            os.kill(os.getpid(), signal.SIGTERM)  # serve() handles it on this loop
        await asyncio.wait_for(task, timeout=10.0)
    assert not ready.exists()
    assert (tmp_path / "data" / "chunks" / "data.mdb").exists()
