"""A daemon's memory is bounded whatever its clients send (config.ServerLimits).

Against a real data server process: a request larger than the daemon's
limit (here its chunk size plus headroom) is refused before it is decoded,
up to a 200 MiB one; 1,000 concurrent chunk streams that each push a whole
chunk and then stall are held to the daemon's limit of calls in progress,
the rest refused at once; the daemon's resident memory stays under the
bound its limits state (3 x calls in progress x largest message, plus slack
for the interpreter), and it goes on serving.
"""
from __future__ import annotations

import asyncio
import errno
import os
from typing import AsyncIterator

import grpc
import pytest

from superfs import capability
from superfs.rpc.caller import grpc_call
from superfs.config import ServerLimits, read_secret
from superfs.daemon import read_ready_file
from superfs.errors import FsError, OVERLOADED_DETAILS
from superfs.v1 import superfs_pb2 as pb
from superfs.v1 import superfs_pb2_grpc as pbg

CHUNK = 1 << 20
SLACK = 96 << 20  # allocator fragmentation, gRPC's buffers, the interpreter


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def channel(address: str) -> grpc.aio.Channel:
    """A channel with a TCP connection of its own (gRPC shares one between identical channels)."""
    big = 300 << 20  # this client will send what it likes
    return grpc.aio.insecure_channel(address, options=[("grpc.max_send_message_length", big),
                                                       ("grpc.max_receive_message_length", big),
                                                       ("grpc.use_local_subchannel_pool", 1)])


@pytest.fixture
def data_server(cluster_factory):  # type: ignore[no-untyped-def]
    cluster = cluster_factory(shards=1, data_servers=1, replicas=1, chunk_size=CHUNK)
    info = read_ready_file(cluster.path("run", "data-0.ready"))
    assert info is not None
    secret = read_secret(cluster.path("secret"))
    return str(info["address"]), int(info["pid"]), secret  # type: ignore[call-overload]


def cap(secret: bytes, ino: int) -> pb.ChunkCap:
    """What a shard would sign for a writer of ``ino``: the data server checks bytes against it."""
    return capability.sign_chunk(secret, ino=ino, rights=capability.CHUNK_RIGHTS)


async def test_an_oversized_request_is_refused_before_it_is_decoded(data_server):
    address, pid, secret = data_server
    limit = ServerLimits.for_data_server(CHUNK).max_message_bytes
    ino = (1 << 40) | 7
    before = rss_bytes(pid)
    ch = channel(address)
    try:
        stub = pbg.DataServiceStub(ch)
        for size in (limit + 1, 200 << 20):
            req = pb.WriteChunkRequest(key=pb.ChunkKey(ino=ino, index=0), data=bytes(size), cap=cap(secret, ino))
            with pytest.raises(FsError) as e:
                await grpc_call(stub.WriteChunk, req, 30.0)
            assert e.value.errno == errno.EFBIG, e.value
        grown = rss_bytes(pid) - before
        print(f"data server RSS grew by {grown >> 20} MiB after a 200 MiB request")
        assert grown < 3 * limit + SLACK
        # and it serves a request within the limit
        ok = pb.WriteChunkRequest(key=pb.ChunkKey(ino=ino, index=0), data=b"x" * 1000, cap=cap(secret, ino))
        assert (await grpc_call(stub.WriteChunk, ok, 10.0)).length == 1000
    finally:
        await ch.close()


async def test_a_thousand_stalled_streams_are_held_to_the_limit(data_server):
    address, pid, secret = data_server
    limits = ServerLimits.for_data_server(CHUNK)
    bound = 3 * limits.max_concurrent_rpcs * limits.max_message_bytes + SLACK
    before = rss_bytes(pid)
    release = asyncio.Event()
    conns = 40  # 25 streams each: every stream reaches the daemon (a connection carries 32 at once)
    channels = [channel(address) for _ in range(conns)]

    async def stalled(stub: pbg.DataServiceStub, n: int) -> str:
        async def pieces() -> AsyncIterator[pb.ChunkPiece]:
            ino = (1 << 40) | (1000 + n)
            yield pb.ChunkPiece(key=pb.ChunkKey(ino=ino, index=0), data=os.urandom(CHUNK), cap=cap(secret, ino))
            await release.wait()  # never half-closes until released: the server holds what it got

        try:
            await stub.WriteChunkStream(pieces(), timeout=120)
            return "done"
        except grpc.aio.AioRpcError as e:
            if OVERLOADED_DETAILS in (e.details() or ""):
                return "refused"
            if e.code() == grpc.StatusCode.INTERNAL and "Internal error from Core" in (e.details() or ""):
                # grpc-python's client race: the refusal came while it was still sending, and the
                # client reports INTERNAL instead of the server's status (seen in 1 CI run of 4)
                return "refused, status lost by the client"
            return e.code().name

    try:
        tasks = [asyncio.create_task(stalled(pbg.DataServiceStub(channels[i % conns]), i)) for i in range(1000)]
        # the refused ones end at once; the admitted ones stall until released
        refused = 0
        for _ in range(600):
            refused = sum(1 for t in tasks if t.done() and t.result().startswith("refused"))
            if refused >= 1000 - limits.max_concurrent_rpcs:
                break
            await asyncio.sleep(0.1)
        assert refused == 1000 - limits.max_concurrent_rpcs, refused
        await asyncio.sleep(2)  # let the admitted streams' pieces arrive
        grown = rss_bytes(pid) - before
        print(f"data server RSS grew by {grown >> 20} MiB with 1000 streams ({refused} refused); "
              f"bound {bound >> 20} MiB")
        assert grown < bound
        release.set()
        results = await asyncio.gather(*tasks)
        assert set(results) <= {"done", "refused", "refused, status lost by the client"}, set(results)
        # most refusals carry the server's own status; the rest lost it to grpc-python's client race
        # (above), which grows with the machine's load: 3 in a quiet CI run, 170 of 936 in one suite
        # run on a loaded machine
        lost = results.count("refused, status lost by the client")
        assert lost <= refused // 2, (lost, refused)
        # it goes on serving
        stub = pbg.DataServiceStub(channels[0])
        ino = (1 << 40) | 1000
        req = pb.ReadChunkRequest(key=pb.ChunkKey(ino=ino, index=0), length=10, cap=cap(secret, ino))
        await grpc_call(stub.ReadChunk, req, 10.0)
    finally:
        release.set()
        for ch in channels:
            await ch.close()
