"""Durability and robustness with real daemon processes.

kill -9 of every daemon loses nothing acknowledged; a second client process
sees the same tree; a corrupted chunk is never returned; hostile requests
get errors while the daemons keep serving.
"""
from __future__ import annotations

import errno
import glob
import hashlib
import json
import os
import subprocess
import sys

import grpc
import pytest
from conftest import SMALL_CHUNK

from superfs import capability, routing
from superfs.client import Client, connect
from superfs.rpc.caller import grpc_call
from superfs.errors import FsError
from superfs.v1 import superfs_pb2 as pb
from superfs.v1 import superfs_pb2_grpc as pbg


def build_tree(c: Client, root: str) -> dict[str, str]:
    """A tree with every kind of object; returns path -> sha256 of contents."""
    c.makedirs(f"{root}/d1/d2")
    c.mkdir(f"{root}/empty")
    sums = {}
    for i, size in enumerate((0, 10, 4000, 5000, SMALL_CHUNK + 7, 3 * SMALL_CHUNK)):
        data = hashlib.sha256(str(i).encode()).digest() * (size // 32 + 1)
        path = f"{root}/d1/{'d2/' if i % 2 else ''}f{i}"
        c.write_bytes(path, data[:size])
        sums[path] = hashlib.sha256(data[:size]).hexdigest()
    c.symlink("d1/f2", f"{root}/link")
    c.link(f"{root}/d1/f2", f"{root}/hard")
    c.rename(f"{root}/d1/f0", f"{root}/d1/d2/moved")
    sums[f"{root}/d1/d2/moved"] = sums.pop(f"{root}/d1/f0")
    return sums


def snapshot(c: Client, root: str) -> dict[str, str]:
    out = {}
    for top, dirs, files in c.walk(root):
        for d in dirs:
            out[f"{top}/{d}"] = "dir"
        for f in files:
            p = f"{top}/{f}"
            st = c.lstat(p)
            if st.st_mode & 0o170000 == 0o120000:
                out[p] = "link:" + c.readlink(p)
            else:
                out[p] = hashlib.sha256(c.read_bytes(p)).hexdigest() + f":{st.st_nlink}"
    return out


def test_kill_9_of_every_daemon_loses_nothing_acknowledged(cluster_factory):
    cluster = cluster_factory()
    address = str(cluster.config["dir_server"])
    with connect(address) as c:
        sums = build_tree(c, "/t")
        before = snapshot(c, "/t")
    for name, _, _ in cluster.status():
        cluster.kill(name)
    cluster.start()
    with connect(address) as c:
        assert snapshot(c, "/t") == before
        for path, digest in sums.items():
            assert hashlib.sha256(c.read_bytes(path)).hexdigest() == digest
        assert c.stat("/t/hard").st_nlink == 2


def test_second_client_process_sees_the_same_tree(cluster, client):
    build_tree(client, "/shared")
    mine = snapshot(client, "/shared")
    code = ("import json, sys; sys.path.insert(0, %r); from test_t3_crash import snapshot; "
            "import superfs; c = superfs.connect(%r); print(json.dumps(snapshot(c, '/shared'))); c.close()"
            % (os.path.dirname(__file__), str(cluster.config["dir_server"])))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == mine


def _corrupt(cluster, server: int, pattern: bytes, *, required: bool = True) -> None:
    cluster.stop_daemon(f"data-{server}")
    files = glob.glob(cluster.path(f"data-{server}", "**", "slots", "*.dat"), recursive=True)
    hits = 0
    for path in files:
        with open(path, "r+b") as f:
            blob = bytearray(f.read())
            at = blob.find(pattern)
            while at != -1:
                blob[at + 5] ^= 0xFF
                hits += 1
                at = blob.find(pattern, at + 1)
            f.seek(0)
            f.write(blob)
    assert hits or not required, f"pattern not found on data server {server}"
    cluster.start_daemon(f"data-{server}")
    cluster.wait_ready(f"data-{server}")


def test_corrupt_chunk_is_never_returned(cluster_factory):
    cluster = cluster_factory()
    pattern = b"SUPERFS-CORRUPTION-PATTERN-"
    data = (pattern * (SMALL_CHUNK // len(pattern)))[:SMALL_CHUNK]
    with connect(str(cluster.config["dir_server"])) as c:
        c.write_bytes("/victim", data)
        node = c.node_of("/victim")
        first, second = routing.chunk_replicas(node.ino, 0, list(node.file.layout), 2)
    _corrupt(cluster, first, pattern)
    with connect(str(cluster.config["dir_server"])) as c:
        assert c.read_bytes("/victim") == data  # repaired from (or served by) the healthy replica
    _corrupt(cluster, first, pattern, required=False)  # again, if that read repaired it
    _corrupt(cluster, second, pattern)
    with connect(str(cluster.config["dir_server"])) as c:
        with pytest.raises(OSError) as e:
            c.read_bytes("/victim")
        assert e.value.errno == errno.EIO


async def _hostile(address: str, shard: str, data: str, secret: bytes) -> None:
    ch = grpc.aio.insecure_channel(shard, options=[("grpc.max_send_message_length", 200 << 20)])
    dch = grpc.aio.insecure_channel(data, options=[("grpc.max_send_message_length", 200 << 20)])
    s, d = pbg.ShardServiceStub(ch), pbg.DataServiceStub(dch)
    cap = capability.sign_chunk(secret, ino=7, rights=6)  # what a shard would sign: the data server checks input
    cases = [
        (s.GetFile, pb.GetFileRequest(ino=(5 << 40) | 999999), {errno.ENOENT, errno.ESTALE}),
        (s.ReadInline, pb.ReadInlineRequest(ino=(1 << 63) | 5, length=1 << 31), {errno.ENOENT, errno.ESTALE,
                                                                                errno.EINVAL}),
        (s.CreateFile, pb.CreateFileRequest(parent_ino=1, name="a/b"), {errno.EINVAL, errno.EACCES,
                                                                         errno.ESTALE}),
        (d.WriteChunk, pb.WriteChunkRequest(key=pb.ChunkKey(ino=7), offset=1 << 62, data=b"x", cap=cap),
         {errno.EINVAL, errno.EFBIG}),
        (d.ReadChunk, pb.ReadChunkRequest(key=pb.ChunkKey(ino=7), length=(1 << 32) - 1, cap=cap), {errno.EINVAL}),
        (d.WriteChunk, pb.WriteChunkRequest(key=pb.ChunkKey(ino=7), data=bytes(100 << 20), cap=cap), {errno.EFBIG}),
        (d.WriteChunk, pb.WriteChunkRequest(key=pb.ChunkKey(ino=7), data=b"x"), {errno.EACCES}),  # no capability
        (d.ReadChunk, pb.ReadChunkRequest(key=pb.ChunkKey(ino=8), length=1, cap=cap), {errno.EACCES}),
    ]
    for method, req, allowed in cases:
        with pytest.raises(FsError) as e:
            await grpc_call(method, req, 10.0)
        assert e.value.errno in allowed, (req, e.value)
    raw = ch.unary_unary("/superfs.v1.ShardService/CreateFile")  # bytes in, bytes out
    with pytest.raises(grpc.aio.AioRpcError):
        await raw(b"\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x12\x05", timeout=5)
    wrong_type = ch.unary_unary("/superfs.v1.ShardService/GetFile")
    with pytest.raises(grpc.aio.AioRpcError):  # field 1 as a string where a varint belongs
        await wrong_type(b"\x0a\x03abc", timeout=5)
    await grpc_call(s.Stats, pb.Empty(), 5.0)  # still serving
    await grpc_call(d.Stats, pb.Empty(), 5.0)
    await grpc_call(pbg.DirServiceStub(grpc.aio.insecure_channel(address)).GetClusterMap,
                    pb.GetClusterMapRequest(), 5.0)
    await ch.close()
    await dch.close()


async def test_hostile_requests_get_errors_and_daemons_keep_serving(cluster):
    cfg = cluster.config
    with open(cluster.path("secret"), "rb") as f:
        secret = f.read().strip()
    await _hostile(str(cfg["dir_server"]), cfg["shards"][0], cfg["data_servers"][0], secret)


def test_write_behind_failure_is_reported_not_lost(cluster_factory):
    cluster = cluster_factory()
    with connect(str(cluster.config["dir_server"]), timeout_s=2.0) as c:
        with c.open("/wb", "wb") as f:  # becomes chunked: later writes go behind
            f.write(os.urandom(SMALL_CHUNK * 2))
        cluster.kill("data-0")
        cluster.kill("data-1")
        f = c.open("/wb", "r+b", buffering=0)
        f.write(os.urandom(SMALL_CHUNK))  # accepted into the write-behind queue
        with pytest.raises(OSError) as e:
            f.close()
        assert e.value.errno in (errno.EIO, errno.ETIMEDOUT)
        assert f.closed
        cluster.start()
        assert c.stat("/wb").st_size == SMALL_CHUNK * 2  # the failed write did not grow the file
