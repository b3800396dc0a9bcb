"""Tier 2: the byte path (bytes.proto) in-process: ByteServers over real ChunkStores, real sockets.

Each server is the data server's ByteServer on 127.0.0.1:0 and an abstract
Unix socket; clients are the BytePool the client library uses. Covers
byte-exact round trips around block, chunk (slot) and message (piece)
boundaries on both the Unix and the TCP path, chained writes reaching every
replica, the chunk capability (another inode's, expired, none) refused on
reads and writes, a corrupt block repaired from a peer during a read, a dead
replica failing a chained write, and clients that send garbage or stall
being dropped without hurting others. And the transport's view of it: the
cluster map's ClusterView learns each data server's byte path and drops the
idle connections to one that moved.
"""
from __future__ import annotations

import asyncio
import errno
import os
import socket
import struct
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from superfs import auth, capability
from superfs.dataserver.blocks import BLOCK
from superfs.dataserver.byte_server import ByteServer
from superfs.dataserver.chunk_store import ChunkStore
from superfs.errors import FsError
from superfs.rpc import byteframes as bf
from superfs.rpc.bytepath import BytePool, ByteSecurity, ByteTarget
from superfs.rpc.channels import Channels
from superfs.rpc.cluster_map import ClusterView
from superfs.rpc.security import ClientSecurity
from superfs.v1 import bytes_pb2 as bpb
from superfs.v1 import superfs_pb2 as pb

INO = (1 << 40) | 42
SECRET = b"t2-bytes-secret-0123456789"
PIECE = 256 * 1024   # small pieces, so messages span several of them
T = 10.0
MiB = 1 << 20


def cap(ino: int = INO, rights: int = 6, ttl_ns: int = capability.CHUNK_CAP_TTL_NS) -> pb.ChunkCap:
    return capability.sign_chunk(SECRET, ino=ino, rights=rights, ttl_ns=ttl_ns)


class Node:
    """One data server's store and byte path."""

    def __init__(self, d: Path, name: str, **kw: object) -> None:
        self.chunks = ChunkStore.open(str(d / name), durable=False)
        self.forward = BytePool(ByteSecurity())
        self.server = ByteServer(self.chunks, SECRET, self.forward, name=name, piece=PIECE, **kw)  # type: ignore[arg-type]
        address, local = self.server.start("127.0.0.1", 0)
        self.target = ByteTarget(address, local)
        self.tcp_only = ByteTarget(address, "")

    def close(self) -> None:
        self.server.close()
        self.forward.close()
        self.chunks.close()


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[list[Node]]:
    ns = [Node(tmp_path, f"d{i}") for i in range(3)]
    yield ns
    for n in ns:
        n.close()


@pytest.fixture
def pool() -> Iterator[BytePool]:
    p = BytePool(ByteSecurity())
    yield p
    p.close()


def read(pool: BytePool, target: ByteTarget, index: int, offset: int, length: int, *, c: pb.ChunkCap | None = None,
         peers: list[ByteTarget] = ()) -> bytes | None:  # type: ignore[assignment]
    buf = bytearray(length)
    req = bpb.ByteRequest(key=pb.ChunkKey(ino=INO, index=index), offset=offset, length=length,
                          cap=c if c is not None else cap(), peers=[p.hop() for p in peers])
    exists, n, _ = pool.read_into(target, req, memoryview(buf), T)
    return bytes(buf[:n]) if exists else None


def write(pool: BytePool, target: ByteTarget, index: int, offset: int, data: bytes, *, c: pb.ChunkCap | None = None,
          chain: list[ByteTarget] = (), truncate: bool = False) -> int:  # type: ignore[assignment]
    req = bpb.ByteRequest(key=pb.ChunkKey(ino=INO, index=index), offset=offset, truncate=truncate,
                          cap=c if c is not None else cap(), chunk_size=4 * MiB, chain=[t.hop() for t in chain])
    return pool.write(target, req, data, T)


SIZES = [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, PIECE - 1, PIECE, PIECE + 1, MiB + 7, 4 * MiB - 1, 4 * MiB]


@pytest.mark.parametrize("path", ["unix", "tcp"])
def test_byte_exact_round_trips_at_every_edge(nodes: list[Node], pool: BytePool, path: str) -> None:
    n = nodes[0]
    target = n.target if path == "unix" else n.tcp_only
    for i, size in enumerate(SIZES):
        data = os.urandom(size)
        assert write(pool, target, i, 0, data, truncate=True) == size
        assert read(pool, target, i, 0, 4 * MiB + BLOCK) == data  # asked for more: short at the end
        for off in {0, 1, BLOCK - 1, BLOCK, PIECE, size - 1, size} - {-1}:
            if 0 <= off <= size:
                for length in (1, BLOCK + 1, PIECE + 3):
                    assert read(pool, target, i, off, length) == data[off:off + length], (size, off, length)
    # a write straddling blocks and pieces in the middle of a chunk, and an append with a gap
    base = bytearray(os.urandom(3 * MiB))
    write(pool, target, 50, 0, bytes(base))
    patch = os.urandom(PIECE + BLOCK + 5)
    write(pool, target, 50, BLOCK - 3, patch)
    base[BLOCK - 3:BLOCK - 3 + len(patch)] = patch
    write(pool, target, 50, len(base) + 1000, b"tail")
    base += bytes(1000) + b"tail"
    assert read(pool, target, 50, 0, len(base) + 10) == bytes(base)
    assert read(pool, target, 99, 0, 10) is None  # no such chunk
    assert (pool.local_opened > 0) == (path == "unix")


def test_a_chained_write_reaches_every_replica_before_it_is_acknowledged(nodes: list[Node], pool: BytePool) -> None:
    a, b, c = nodes
    data = os.urandom(2 * MiB + 123)
    assert write(pool, a.target, 0, 0, data, chain=[b.target, c.tcp_only]) == len(data)
    for n in nodes:  # each replica's own store, not through the path
        assert n.chunks.read_now(INO, 0, 0, 4 * MiB) == data
    assert a.server.forwarded == 1 and b.server.forwarded == 1 and c.server.forwarded == 0
    # overwrite in the middle, chained too
    write(pool, a.target, 0, MiB, b"X" * 10, chain=[b.target, c.target])
    want = data[:MiB] + b"X" * 10 + data[MiB + 10:]
    assert all(n.chunks.read_now(INO, 0, 0, 4 * MiB) == want for n in nodes)


def test_a_chained_write_fails_when_a_replica_is_down(nodes: list[Node], pool: BytePool) -> None:
    a, b, c = nodes
    c.server.close()
    with pytest.raises(FsError) as e:
        write(pool, a.target, 1, 0, os.urandom(MiB), chain=[b.target, c.tcp_only])
    assert e.value.errno == errno.EIO and c.tcp_only.address in str(e.value)
    # the connection to the head of the chain is still good for the next request
    assert write(pool, a.target, 2, 0, b"ok", chain=[b.target]) == 2


@pytest.mark.parametrize("path", ["unix", "tcp"])
def test_capabilities_are_checked_on_the_byte_path(nodes: list[Node], pool: BytePool, path: str) -> None:
    n = nodes[0]
    target = n.target if path == "unix" else n.tcp_only
    write(pool, target, 0, 0, b"secret bytes")
    refusals = [
        (cap(ino=INO + 1), errno.EACCES),               # another inode's
        (cap(ttl_ns=-1), errno.ESTALE),                  # expired
        (pb.ChunkCap(), errno.EACCES),                   # none
        (pb.ChunkCap(ino=INO, rights=6, expires_ns=time.time_ns() + 10**10, mac=b"x" * 32), errno.EACCES),  # forged
    ]
    for c, err in refusals:
        with pytest.raises(FsError) as e:
            read(pool, target, 0, 0, 100, c=c)
        assert e.value.errno == err
        with pytest.raises(FsError) as e:
            write(pool, target, 0, 0, b"overwritten" * 1000, c=c)  # its payload is drained: the connection lives
        assert e.value.errno == err
    with pytest.raises(FsError) as e:
        write(pool, target, 0, 0, b"x", c=cap(rights=4))  # read-only
    assert e.value.errno == errno.EACCES
    with pytest.raises(FsError) as e:
        read(pool, target, 0, 0, 1, c=cap(rights=2))  # write-only
    assert e.value.errno == errno.EACCES
    assert read(pool, target, 0, 0, 100) == b"secret bytes"
    assert pool.opened == 1  # every refusal left the connection usable


def test_a_corrupt_block_is_repaired_from_a_peer_during_a_read(nodes: list[Node], pool: BytePool) -> None:
    a, b, _ = nodes
    data = os.urandom(3 * BLOCK + 100)
    write(pool, a.target, 0, 0, data, chain=[b.target])
    head = a.chunks.head_of(_key(0))
    fd = a.chunks.slots.fd(head.slot)
    at = head.slot.offset + BLOCK + 17
    os.pwrite(fd, bytes([os.pread(fd, 1, at)[0] ^ 0x20]), at)  # one flipped bit in block 1
    with pytest.raises(FsError) as e:
        read(pool, a.target, 0, BLOCK, 10)  # no peer named: EIO
    assert e.value.errno == errno.EIO
    assert read(pool, a.target, 0, 0, 4096) == data[:4096]  # other blocks still read
    buf = bytearray(len(data))
    req = bpb.ByteRequest(key=pb.ChunkKey(ino=INO, index=0), length=len(data), cap=cap(), peers=[b.target.hop()])
    exists, n, repaired = pool.read_into(a.target, req, memoryview(buf), T)
    assert exists and bytes(buf[:n]) == data and repaired == [1]
    assert a.chunks.read_now(INO, 0, 0, len(data)) == data  # written back on a
    assert a.server.repaired_blocks == 1


def _key(index: int) -> bytes:
    return struct.pack(">QQ", INO, index)


def _raw(target: ByteTarget) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect("\0" + target.local)
    return s


def _closed_within(s: socket.socket, bound_s: float) -> bool:
    s.settimeout(bound_s)
    try:
        while s.recv(65536):
            pass
        return True
    except socket.timeout:
        return False
    except OSError:
        return True


def test_garbage_and_stalled_clients_are_dropped_without_hurting_others(tmp_path: Path, pool: BytePool) -> None:
    n = Node(tmp_path, "slow", frame_timeout_s=0.5, idle_timeout_s=30.0)
    try:
        write(pool, n.target, 0, 0, b"before")
        garbage = _raw(n.target)
        garbage.sendall(os.urandom(64) + struct.pack(">I", 1 << 30))
        stalled_hello = _raw(n.target)  # connects, says nothing
        mid_header = _raw(n.target)
        mid_header.sendall(bf.encode(bpb.ByteRequest(op=bf.HELLO, version=1)))
        mid_header.sendall(struct.pack(">I", 200) + b"\x08")  # a header cut short
        mid_payload = _raw(n.target)
        mid_payload.sendall(bf.encode(bpb.ByteRequest(op=bf.HELLO, version=1)))
        mid_payload.sendall(bf.encode(bpb.ByteRequest(op=bf.WRITE, id=1, key=pb.ChunkKey(ino=INO, index=5),
                                                      length=MiB, cap=cap())) + b"half")
        # meanwhile others are served
        for i in range(5):
            assert write(pool, n.target, 1, 0, b"during %d" % i) == 8
        for s in (garbage, stalled_hello, mid_header, mid_payload):
            assert _closed_within(s, 15.0)  # the bound: generous, the server's is 0.5 s
            s.close()
        assert n.server.dropped >= 4
        assert read(pool, n.target, 0, 0, 10) == b"before"
        assert n.chunks.read_now(INO, 5, 0, 10) is None  # half a payload committed nothing
    finally:
        n.close()


def test_hello_needs_a_credential_when_the_cluster_has_tokens(tmp_path: Path) -> None:
    good, bad = "g" * 40, "b" * 40
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{good} any any\n")
    tokens.chmod(0o600)
    authn = auth.Authenticator(auth.load_tokens_file(str(tokens)), mutual_tls=False)
    n = Node(tmp_path, "authd", authenticator=authn)
    try:
        for token, ok in ((good, True), (bad, False), (None, False)):
            p = BytePool(ByteSecurity(token=token))
            try:
                if ok:
                    assert write(p, n.target, 0, 0, b"x") == 1
                else:
                    with pytest.raises(FsError) as e:
                        write(p, n.target, 0, 0, b"x")
                    assert e.value.errno == errno.EACCES
            finally:
                p.close()
    finally:
        n.close()


def test_many_clients_at_once(nodes: list[Node]) -> None:
    a, b, _ = nodes
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        p = BytePool(ByteSecurity())
        try:
            for i in range(5):
                data = os.urandom(BLOCK * (k + 1) + i)
                write(p, a.target, 100 + k, 0, data, chain=[b.target], truncate=True)
                assert read(p, b.target, 100 + k, 0, len(data) + 5) == data
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)
        finally:
            p.close()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors


@pytest.mark.parametrize("path", ["unix", "tcp"])
def test_tls_with_client_certificates_on_both_paths(tmp_path: Path, path: str) -> None:
    from superfs import tls
    from superfs.config import SecurityConfig, TlsConfig
    from test_t6_auth import make_pki

    pki = make_pki(str(tmp_path), ["node", "client"])
    server_tls = TlsConfig(ca_file=pki["ca.crt"], cert_file=pki["node.crt"], key_file=pki["node.key"],
                           require_client_cert=True)
    n = Node(tmp_path, "tlsd", ssl_context=tls.server_ssl_context(server_tls),
             authenticator=auth.Authenticator.from_config(SecurityConfig(tls=server_tls)))
    target = n.target if path == "unix" else n.tcp_only
    try:
        good = BytePool(ByteSecurity(ssl_context=tls.client_ssl_context(TlsConfig(
            ca_file=pki["ca.crt"], cert_file=pki["client.crt"], key_file=pki["client.key"])),
            server_name="localhost"))
        anonymous = BytePool(ByteSecurity(ssl_context=tls.client_ssl_context(TlsConfig(ca_file=pki["ca.crt"])),
                                          server_name="localhost"))
        try:
            data = os.urandom(PIECE * 3 + 5)
            assert write(good, target, 0, 0, data) == len(data)
            assert read(good, target, 0, 0, len(data) + 10) == data
            assert (good.local_opened > 0) == (path == "unix")
            with pytest.raises(FsError) as e:
                read(anonymous, target, 0, 0, 10)
            assert e.value.errno in (errno.EACCES, errno.EIO)  # refused in the handshake or at HELLO
        finally:
            good.close()
            anonymous.close()
    finally:
        n.close()


def _data_map(epoch: int, bytes_of: dict[int, ByteTarget | None]) -> pb.ClusterMap:
    return pb.ClusterMap(epoch=epoch, num_partitions=4, partition_shard=[0] * 4, replicas=1, data_servers=[
        pb.ServerInfo(id=i, address=f"127.0.0.1:{9000 + i}", bytes_address=t.address if t else "",
                      bytes_local=t.local if t else "") for i, t in sorted(bytes_of.items())])


def test_the_cluster_view_follows_byte_paths_and_forgets_a_moved_one(nodes: list[Node]) -> None:
    channels = Channels(security=ClientSecurity())
    view = ClusterView(channels, cluster_map=_data_map(1, {1: nodes[0].target, 2: None}))
    assert view.byte_target(1) == nodes[0].target
    assert view.byte_target(2) is None  # listed without a byte path: its chunks go over gRPC
    assert view.byte_target(3) is None  # not in the map
    pool = channels.byte_pool(None)
    assert channels.byte_pool(None) is pool  # one pool per process
    write(pool, nodes[0].target, 0, 0, b"x" * 100, truncate=True)
    assert read(pool, nodes[0].target, 0, 0, 100) == b"x" * 100
    assert pool.opened == 1  # the second call took the idle connection

    view.adopt(_data_map(2, {1: nodes[0].target, 2: None}))  # a new epoch, server 1 where it was
    read(pool, nodes[0].target, 0, 0, 1)
    assert pool.opened == 1

    view.adopt(_data_map(3, {1: nodes[1].target, 2: None}))  # server 1 restarted elsewhere
    assert view.byte_target(1) == nodes[1].target
    read(pool, nodes[0].target, 0, 0, 1)
    assert pool.opened == 2  # its idle connection to where it was was dropped: a fresh one

    assert not view.adopt(_data_map(2, {1: nodes[0].target}))  # older: not taken
    assert view.byte_target(1) == nodes[1].target
    asyncio.run(channels.close())
    with pytest.raises(FsError):
        read(pool, nodes[1].target, 0, 0, 1)  # closed with the channels
