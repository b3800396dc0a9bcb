"""Reads tell a hole from a lost chunk (issue 13, item 8), against a real cluster.

A replica that answers "no such chunk" must not be read as zeros while
another replica has the chunk; a chunk the file's shard says was written and
no replica has is EIO, not zeros; and a range the shard says was never
written reads as zeros without asking any data server (so it reads even
with every data server down).
"""
from __future__ import annotations

import errno
import os

import pytest
from conftest import SMALL_CHUNK
from t5_support import with_admin

from superfs import routing
from superfs.client import connect
from superfs.v1 import superfs_pb2 as pb

CS = SMALL_CHUNK


def _replicas(c, path: str, index: int) -> tuple[int, list[int]]:
    node = c.node_of(path)
    return node.ino, routing.chunk_replicas(node.ino, index, list(node.file.layout), 2)


def _delete(cluster, ino: int, index: int, servers: list[int]) -> None:
    async def fn(admin):
        for sid in servers:
            await admin.delete_chunks(sid, ino, from_index=index, to_index=index + 1)
    with_admin(cluster, fn)


def test_a_replica_without_the_chunk_does_not_hide_the_one_that_has_it(cluster_factory):
    cluster = cluster_factory()
    with connect(str(cluster.config["dir_server"])) as c:
        data = os.urandom(3 * CS)
        c.write_bytes("/f", data)
        ino, (first, second) = _replicas(c, "/f", 1)
        _delete(cluster, ino, 1, [first])  # the replica read first lost it
        assert c.read_bytes("/f") == data
        _delete(cluster, ino, 1, [second])  # now no replica has it: lost, not a hole
        with pytest.raises(OSError) as e:
            c.read_bytes("/f")
        assert e.value.errno == errno.EIO
        with c.open("/f", "rb", buffering=0) as f:  # the chunks around it still read
            assert f.read(CS) == data[:CS]
            f.seek(2 * CS)
            assert f.read() == data[2 * CS:]


def test_holes_read_as_zeros_without_any_data_server(cluster_factory):
    cluster = cluster_factory()
    with connect(str(cluster.config["dir_server"]), timeout_s=3.0) as c:
        head, tail = os.urandom(CS // 2), os.urandom(CS)
        c.write_bytes("/sparse", head)        # inline, then moved to chunks below
        c.truncate("/sparse", 10 * CS)        # chunks 1..9: a hole
        with c.open("/sparse", "r+b") as f:
            f.seek(7 * CS)
            f.write(tail)                     # chunk 7 written
        assert c.read_bytes("/sparse") == head + bytes(7 * CS - len(head)) + tail + bytes(2 * CS)
        for name in ("data-0", "data-1"):
            cluster.kill(name)
        with c.open("/sparse", "rb", buffering=0) as f:
            f.seek(CS)
            assert f.read(5 * CS) == bytes(5 * CS)   # holes: nobody asked
            f.seek(8 * CS)
            assert f.read(2 * CS) == bytes(2 * CS)
            f.seek(7 * CS)
            with pytest.raises(OSError) as e:        # written: needs a data server
                f.read(CS)
            assert e.value.errno in (errno.EIO, errno.ETIMEDOUT)


def test_a_file_without_a_record_of_its_writes_reads_as_before(cluster_factory):
    """A SetSize from a client that does not report its writes: the shard forgets them, and
    a chunk no replica has reads as zeros again (the behaviour of files from before the record)."""
    cluster = cluster_factory()
    with connect(str(cluster.config["dir_server"])) as c:
        data = os.urandom(2 * CS)
        c.write_bytes("/old", data)
        ino, replicas = _replicas(c, "/old", 1)
        req = pb.SetSizeRequest(ino=ino, size=2 * CS, creds=pb.Creds())  # as an old client sends it
        c.run(c.aio.cluster.home_shard(ino).set_size(req, 5.0))
        info = c.run(c.aio.meta.get_file(ino, c.creds)).file
        assert info.written_state == pb.WRITTEN_UNKNOWN
        _delete(cluster, ino, 1, replicas)
        assert c.read_bytes("/old") == data[:CS] + bytes(CS)


def test_a_reader_whose_view_predates_a_truncate_reads_the_new_hole_as_zeros(cluster_factory):
    """Its record says chunk 5 was written; the shard's says a truncate made it a hole since."""
    cluster = cluster_factory()
    address = str(cluster.config["dir_server"])
    with connect(address) as a, connect(address) as b:
        data = os.urandom(8 * CS)
        a.write_bytes("/t", data)
        with a.open("/t", "rb", buffering=0) as f:
            assert f.read(CS) == data[:CS]
            b.truncate("/t", CS)           # cuts chunks 1..7 on the data servers
            b.truncate("/t", 8 * CS)       # and grows back: a hole
            f.seek(5 * CS)
            assert f.read(CS) == bytes(CS)
        assert a.read_bytes("/t") == data[:CS] + bytes(7 * CS)


def test_read_ahead_windows_read_holes_as_zeros(cluster_factory):
    """A sequential reader's windows are not zeroed when made (buffers.py): every byte of a hole,
    inside a chunk or whole chunks, must still be written, after other bytes used that memory."""
    cluster = cluster_factory()
    with connect(str(cluster.config["dir_server"])) as c:
        noise = os.urandom(12 * CS)
        c.write_bytes("/noise", noise)
        expect = bytearray(9 * CS + 123)
        with c.open("/sparse", "wb") as f:
            for at, n in ((0, 1000), (3 * CS + 5, 5000), (6 * CS - 10, 20)):
                piece = os.urandom(n)
                f.seek(at)
                f.write(piece)
                expect[at:at + n] = piece
        c.truncate("/sparse", len(expect))
        for _ in range(2):
            with c.open("/noise", "rb", buffering=0) as f:
                assert b"".join(iter(lambda: f.read(CS), b"")) == noise
            with c.open("/sparse", "rb", buffering=0) as f:  # reads of CS bytes: windows ahead
                got = b"".join(iter(lambda: f.read(CS), b""))
            assert got == bytes(expect)
