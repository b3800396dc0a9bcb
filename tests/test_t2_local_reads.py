"""Tier 2: short-circuit reads (superfs/rpc/local_reads.py, LOCATE in bytes.proto), in-process.

A client on a data server's host asks where a chunk lies and reads the
server's slot file itself. What must hold: the bytes are exact at every
edge; a block that fails its sum on disk is never returned (the read goes
to the server, which repairs it from a peer or says EIO); LOCATE is refused
on TCP and checks the chunk capability as READ does; a file the client may
not open, or not the one the server named, is read through the server.
"""
from __future__ import annotations

import errno
import os
import time
from pathlib import Path

import pytest
from test_t2_byte_path import INO, T, Node, _key, cap, nodes, pool, write  # noqa: F401 (fixtures)

from superfs import capability
from superfs.dataserver.blocks import BLOCK
from superfs.errors import FsError
from superfs.rpc import byteframes as bf
from superfs.rpc.bytepath import BytePool, ByteSecurity, ByteTarget, connect
from superfs.rpc.local_reads import MIN_READ, LocalFiles
from superfs.v1 import bytes_pb2 as bpb
from superfs.v1 import superfs_pb2 as pb

MiB = 1 << 20


def read_local(pool: BytePool, target: ByteTarget, offset: int, length: int, *, index: int = 0,
               c: pb.ChunkCap | None = None, peers: list[ByteTarget] = ()) -> bytes | None:  # type: ignore[assignment]
    buf = bytearray(length)
    req = bpb.ByteRequest(key=pb.ChunkKey(ino=INO, index=index), offset=offset, length=length,
                          cap=c if c is not None else cap(), peers=[p.hop() for p in peers])
    exists, n, _ = pool.read_into(target, req, memoryview(buf), T, local_ok=True)
    return bytes(buf[:n]) if exists else None


def test_a_large_read_on_this_host_reads_the_slot_file_itself_byte_exact(nodes: list[Node], pool: BytePool) -> None:
    n = nodes[0]
    data = os.urandom(4 * MiB - 3)   # a short last block
    write(pool, n.target, 0, 0, data, truncate=True)
    reads_before = n.server.reads
    cases = [(0, len(data)), (0, 8 * MiB), (BLOCK, MIN_READ), (BLOCK - 1, MIN_READ + 2), (17, MiB),
             (len(data) - MIN_READ + 5, MIN_READ), (len(data) - 10, MIN_READ)]
    for off, length in cases:
        assert read_local(pool, n.target, off, length) == data[off:off + length], (off, length)
    assert n.server.located == len(cases)
    assert n.server.reads == reads_before                # not one byte came over the socket
    assert pool.local_files.reads == len(cases) and pool.local_files.fallbacks == 0
    assert read_local(pool, n.target, len(data), MIN_READ) == b""   # at the end: nothing, not a hole
    assert read_local(pool, n.target, 0, MIN_READ, index=9) is None  # no such chunk


def test_small_reads_and_tcp_targets_use_the_ordinary_read(nodes: list[Node], pool: BytePool) -> None:
    n = nodes[0]
    data = os.urandom(2 * MiB)
    write(pool, n.target, 0, 0, data)
    assert read_local(pool, n.target, 5, MIN_READ - 1) == data[5:5 + MIN_READ - 1]
    assert read_local(pool, n.tcp_only, 0, 2 * MiB) == data
    assert n.server.located == 0 and n.server.reads == 2


def test_a_flipped_byte_on_disk_is_never_returned(nodes: list[Node], pool: BytePool) -> None:
    a, b = nodes[:2]
    data = os.urandom(2 * MiB)
    write(pool, a.target, 0, 0, data, chain=[b.target])
    head = a.chunks.head_of(_key(0))
    fd = a.chunks.slots.fd(head.slot)
    at = head.slot.offset + 5 * BLOCK + 99
    os.pwrite(fd, bytes([os.pread(fd, 1, at)[0] ^ 0x01]), at)   # one flipped bit in block 5
    with pytest.raises(FsError) as e:
        read_local(pool, a.target, 0, MiB)   # no peer named: the server cannot repair it either
    assert e.value.errno == errno.EIO
    assert pool.local_files.fallbacks == 1
    assert read_local(pool, a.target, 0, len(data), peers=[b.target]) == data   # repaired from b on the way
    assert a.server.repaired_blocks == 1
    assert read_local(pool, a.target, 0, len(data)) == data   # and read here again: the file is whole
    assert pool.local_files.reads == 1


def test_locate_is_refused_on_tcp_and_checks_the_capability(nodes: list[Node], pool: BytePool) -> None:
    n = nodes[0]
    write(pool, n.target, 0, 0, os.urandom(MiB))
    deadline = time.monotonic() + T

    def locate(target: ByteTarget, c: pb.ChunkCap, local: bool = True) -> bpb.ByteReply:
        conn = connect(target, ByteSecurity(), deadline, use_local=local)
        try:
            return conn.call(bpb.ByteRequest(op=bf.LOCATE, key=pb.ChunkKey(ino=INO, index=0), cap=c), deadline)
        finally:
            conn.close()

    assert getattr(errno, locate(n.tcp_only, cap(), local=False).errno_name) == errno.EOPNOTSUPP
    for c, err in [(cap(ino=INO + 1), "EACCES"), (cap(ttl_ns=-1), "ESTALE"), (pb.ChunkCap(), "EACCES"),
                   (cap(rights=2), "EACCES"),
                   (capability.sign_chunk(b"another cluster's secret", ino=INO, rights=4), "EACCES")]:
        reply = locate(n.target, c)
        assert reply.errno_name == err and not reply.path
    ok = locate(n.target, cap(rights=4))
    st = os.stat(ok.path)
    assert ok.exists and ok.length == MiB and (st.st_dev, st.st_ino) == (ok.file_dev, ok.file_ino)
    with pytest.raises(FsError) as e:
        read_local(pool, n.target, 0, MiB, c=cap(ino=INO + 1))
    assert e.value.errno == errno.EACCES


def test_a_file_not_openable_here_or_not_the_one_named_is_not_read(tmp_path: Path) -> None:
    f = tmp_path / "slot.dat"
    data = os.urandom(2 * BLOCK)
    f.write_bytes(data)
    st = os.stat(f)
    from superfs.dataserver.blocks import sums_of
    right = bpb.ByteReply(exists=True, length=len(data), path=str(f), file_dev=st.st_dev, file_ino=st.st_ino,
                          file_offset=0, block_log2=BLOCK.bit_length() - 1, sums=sums_of(data))
    files = LocalFiles()
    buf = bytearray(len(data))
    assert files.read(right, 0, memoryview(buf)) == len(data) and bytes(buf) == data
    for wrong in (bpb.ByteReply(**{**_fields(right), "path": str(tmp_path / "missing.dat")}),
                  bpb.ByteReply(**{**_fields(right), "file_ino": st.st_ino + 1}),
                  bpb.ByteReply(**{**_fields(right), "sums": right.sums[:8]}),          # a table too short
                  bpb.ByteReply(**{**_fields(right), "sums": bytes(len(right.sums))})):  # sums that fail
        assert files.read(wrong, 0, memoryview(bytearray(len(data)))) is None
    assert files.fallbacks == 4


def _fields(reply: bpb.ByteReply) -> dict[str, object]:
    return {fd.name: value for fd, value in reply.ListFields()}
