"""kvserve tier 2: the gRPC service in-process on 127.0.0.1:0, through the real client.

Both data paths are exercised: gRPC streams (``shm=False``) and the
same-host shared-memory arena (``shm=True``). Raw stubs are used where a
well-behaved client cannot reach a state (a stream that breaks off
mid-object, bytes that do not match their checksum, a lease never released).
"""
from __future__ import annotations

import os
import urllib.request
from typing import Iterator

import grpc
import numpy as np
import pytest

from kvserve.arena import checksum_of
from kvserve.client import KvClient
from kvserve.config import ServerConfig
from kvserve.errors import BadRequest, Status, Tier, UnknownNamespace
from kvserve.launch import ServerThread
from kvserve.v1 import kvserve_pb2 as pb
from kvserve.v1 import kvserve_pb2_grpc as pbg

NS = "llama/bf16/nhd/tp0of1"
MiB = 1 << 20
PATHS = ["shm", "grpc"]


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    cfg = ServerConfig(dram_bytes=192 * MiB, max_object_bytes=64 * MiB, namespaces=(NS,), metrics_port=0)
    with ServerThread(cfg) as s:
        yield s


@pytest.fixture(params=PATHS)
def client(server: ServerThread, request: pytest.FixtureRequest) -> Iterator[KvClient]:
    with KvClient(server.address, NS, shm=request.param == "shm") as c:
        assert c.uses_shm == (request.param == "shm")
        yield c


@pytest.fixture
def stub(server: ServerThread) -> Iterator[pbg.KvServiceStub]:
    with grpc.insecure_channel(server.address) as ch:
        yield pbg.KvServiceStub(ch)


def rand(size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8)


def new_key() -> bytes:
    return os.urandom(16)


@pytest.mark.parametrize("size", [1, 4095, 4096, 4097, 256 * 1024 + 3, 2 * MiB, 16 * MiB + 1, 64 * MiB])
def test_round_trip_is_byte_exact(client: KvClient, size: int) -> None:
    data = rand(size, size)
    k = new_key()
    assert client.put(k, data) is Status.OK
    assert client.get(k) == data.tobytes()
    out = np.zeros(size + 10, dtype=np.uint8)
    assert client.get_into([k], [out]) == [size]
    assert np.array_equal(out[:size], data) and not out[size:].any()
    assert client.remove([k]) == [Status.OK]
    assert client.get(k) is None


def test_batches_prefixes_and_zero_copy_reads(client: KvClient) -> None:
    keys = [new_key() for _ in range(40)]
    datas = [rand(100_000 + i, i) for i in range(40)]
    assert client.put_batch(keys, datas) == [Status.OK] * 40
    assert client.put_batch(keys[:3], datas[:3]) == [Status.EXISTS] * 3
    got = client.get_batch(keys + [new_key()])
    assert got[:40] == [d.tobytes() for d in datas] and got[40] is None
    missing = new_key()
    for cut in (0, 10, 30, 40):  # the gRPC path splits a batch over two streams: a miss in either
        prefix = client.get_prefix(keys[:cut] + [missing] + keys[cut:])
        assert prefix == [d.tobytes() for d in datas[:cut]]
    outs = [np.empty(200_000, dtype=np.uint8) for _ in range(12)]
    n = client.get_prefix_into(keys[:7] + [missing] + keys[7:11], outs)
    assert n == 7 and all(np.array_equal(outs[i][:len(datas[i])], datas[i]) for i in range(7))
    assert client.exists([keys[0], missing]) == [Tier.DRAM, Tier.NONE]
    assert client.remove(keys) == [Status.OK] * 40


def test_empty_and_numpy_views(client: KvClient) -> None:
    k = new_key()
    assert client.put(k, b"") is Status.OK
    assert client.get(k) == b""
    matrix = rand(4096 * 3).reshape(3, 1024, 4).view(np.float32)  # any C-contiguous array
    k2 = new_key()
    assert client.put(k2, matrix) is Status.OK
    out = np.empty_like(matrix)
    assert client.get_into([k2], [out]) == [matrix.nbytes]
    assert np.array_equal(out.view(np.uint8), matrix.view(np.uint8))
    with pytest.raises(ValueError):
        client.get_into([k2], [np.empty(10, dtype=np.uint8)])  # too small: refused, not overrun


def test_a_put_stream_that_breaks_off_stores_nothing(server: ServerThread, stub: pbg.KvServiceStub) -> None:
    k = new_key()
    data = rand(3 * MiB)

    def broken() -> Iterator[pb.PutRequest]:
        meta = pb.ObjectMeta(key=k, size=len(data), checksum=checksum_of(data))
        yield pb.PutRequest(namespace=NS, object=meta, data=data[:MiB].tobytes())
        raise RuntimeError("client died")

    with pytest.raises(grpc.RpcError):
        stub.Put(broken(), timeout=10)
    short = [pb.PutRequest(namespace=NS, object=pb.ObjectMeta(key=k, size=len(data), checksum=checksum_of(data)),
                           data=data[:MiB].tobytes())]
    assert list(stub.Put(iter(short), timeout=10).statuses) == [Status.ABORTED]
    with KvClient(server.address, NS) as c:
        assert c.exists([k]) == [Tier.NONE] and c.get(k) is None
    assert server.call(lambda: server.server.store.dram.index.reserved) == 0


def test_bytes_that_fail_their_checksum_are_not_stored(server: ServerThread, stub: pbg.KvServiceStub) -> None:
    k = new_key()
    data = rand(10_000)
    meta = pb.ObjectMeta(key=k, size=len(data), checksum=checksum_of(data) ^ 1)
    reply = stub.Put(iter([pb.PutRequest(namespace=NS, object=meta, data=data.tobytes())]), timeout=10)
    assert list(reply.statuses) == [Status.CORRUPT]
    # same through the same-host path
    r = stub.Reserve(pb.ReserveRequest(namespace=NS, objects=[meta]), timeout=10)
    assert r.placements[0].status == Status.OK
    assert list(stub.Commit(pb.CommitRequest(reservation=r.reservation), timeout=10).statuses) == [Status.CORRUPT]
    # checksums given at commit (computed while copying) are checked the same way
    r = stub.Reserve(pb.ReserveRequest(namespace=NS, objects=[pb.ObjectMeta(key=k, size=len(data))]), timeout=10)
    request = pb.CommitRequest(reservation=r.reservation, checksums=[checksum_of(data) ^ 1])
    assert list(stub.Commit(request, timeout=10).statuses) == [Status.CORRUPT]
    r = stub.Reserve(pb.ReserveRequest(namespace=NS, objects=[pb.ObjectMeta(key=k, size=len(data))]), timeout=10)
    with pytest.raises(grpc.RpcError) as e:  # one checksum per reserved object
        stub.Commit(pb.CommitRequest(reservation=r.reservation, checksums=[1, 2]), timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with KvClient(server.address, NS) as c:
        assert c.get(k) is None


def test_reserved_space_is_invisible_until_committed(server: ServerThread, stub: pbg.KvServiceStub) -> None:
    k = new_key()
    data = rand(MiB)
    meta = pb.ObjectMeta(key=k, size=len(data), checksum=checksum_of(data))
    r = stub.Reserve(pb.ReserveRequest(namespace=NS, objects=[meta]), timeout=10)
    with KvClient(server.address, NS, shm=True) as c:
        assert c.uses_shm
        arena = c._arena
        assert arena is not None
        extents = [(e.offset, e.length) for e in r.placements[0].extents]
        arena.write_at(extents, 0, data[:1000])
        assert c.get(k) is None and c.exists([k]) == [Tier.NONE]
        arena.write(extents, data)
        assert c.get(k) is None
        assert list(stub.Commit(pb.CommitRequest(reservation=r.reservation), timeout=10).statuses) == [Status.OK]
        assert c.get(k) == data.tobytes()


def test_a_lease_keeps_an_object_through_eviction_pressure(stub: pbg.KvServiceStub) -> None:
    cfg = ServerConfig(dram_bytes=8 * MiB, max_object_bytes=2 * MiB, policy="lru")
    with ServerThread(cfg) as small, KvClient(small.address, NS, shm=True) as c:
        k = new_key()
        data = rand(2 * MiB, 7)
        assert c.put(k, data) is Status.OK
        with grpc.insecure_channel(small.address) as ch:
            lease = pbg.KvServiceStub(ch).Lease(pb.LeaseRequest(namespace=NS, keys=[k]), timeout=10)
            assert lease.placements[0].status == Status.OK
            for i in range(12):  # 24 MiB through 8 MiB
                assert c.put(new_key(), rand(2 * MiB, i)) is Status.OK
            assert c.exists([k]) == [Tier.DRAM]
            assert c._arena is not None
            extents = [(e.offset, e.length) for e in lease.placements[0].extents]
            assert c._arena.to_bytes(extents) == data.tobytes()
            pbg.KvServiceStub(ch).Release(pb.ReleaseRequest(leases=[lease.lease]), timeout=10)
        for i in range(4):
            c.put(new_key(), rand(2 * MiB, 100 + i))
        assert c.exists([k]) == [Tier.NONE]


def test_pinned_objects_outlive_unpinned_ones() -> None:
    with ServerThread(ServerConfig(dram_bytes=8 * MiB, max_object_bytes=MiB, policy="lru")) as small, \
            KvClient(small.address, NS) as c:
        system_prompt = new_key()
        assert c.put(system_prompt, rand(MiB), pin=True) is Status.OK
        for i in range(30):
            c.put(new_key(), rand(MiB, i))
        assert c.exists([system_prompt]) == [Tier.DRAM]
        assert c.unpin([system_prompt]) == [Status.OK]
        for i in range(10):
            c.put(new_key(), rand(MiB, i))
        assert c.exists([system_prompt]) == [Tier.NONE]


def test_bad_input_is_refused_and_the_daemon_keeps_serving(client: KvClient, server: ServerThread,
                                                           stub: pbg.KvServiceStub) -> None:
    big = np.zeros(64 * MiB + 1, dtype=np.uint8)
    k = new_key()
    assert client.put_batch([k, new_key()], [big, b"fine"]) == [Status.TOO_LARGE, Status.OK]
    assert client.get(k) is None
    with KvClient(server.address, "other-model/bf16/nhd/tp0of1", shm=client.uses_shm) as other:
        with pytest.raises(UnknownNamespace):
            other.put(new_key(), b"x")
        with pytest.raises(UnknownNamespace):
            other.get(new_key())
        with pytest.raises(UnknownNamespace):
            other.exists([new_key()])
    for bad in (b"", b"15-byte-key....", os.urandom(17), os.urandom(33)):
        with pytest.raises(BadRequest):
            client.put(bad, b"x")
        with pytest.raises(BadRequest):
            client.get(bad)
    for request in (pb.KeysRequest(namespace=NS, keys=[new_key()] * 5000),
                    pb.KeysRequest(namespace="spaces are bad", keys=[new_key()])):
        with pytest.raises(grpc.RpcError) as e:
            stub.Exists(request, timeout=10)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert ("kvserve-error", "BadRequest") in e.value.trailing_metadata()
    k2 = new_key()
    assert client.put(k2, b"still here") is Status.OK and client.get(k2) == b"still here"


def test_stats_and_prometheus_endpoint(server: ServerThread) -> None:
    with KvClient(server.address, NS, shm=False) as c:
        k = new_key()
        c.put(k, rand(1000))
        c.get(k)
        c.get(new_key())
        s = c.stats()
    assert s.dram.hits >= 1 and s.misses >= 1 and s.dram.misses >= 1 and s.puts >= 1 and s.policy == "s3fifo"
    assert list(s.namespaces) == [NS] and not s.superfs_enabled
    port = server.server.metrics_port
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    for name in ('kvserve_hits_total{tier="dram"}', "kvserve_misses_total", 'kvserve_tier_misses_total{tier="dram"}',
                 'kvserve_tier_bytes{tier="dram"}',
                 "kvserve_evictions_total", 'kvserve_request_seconds_bucket{le="0.001",op="get"}',
                 'kvserve_transfer_bytes_total{direction="in",path="grpc"}'):
        assert name in text, name
