"""The floor under every SuperFS operation on this machine: one round trip, one fsync.

Measures, each server in a process of its own on loopback, the client in
this one (as a client and a daemon are):

- ``grpc_unary``: one grpc.aio unary call (a ShardService stub calling a
  servicer that returns an empty FileInfo), the way every metadata RPC of
  SuperFS travels today;
- ``grpc_stream``: one message out and one back on an already open
  grpc.aio bidirectional stream (what a multiplexed transport would pay);
- ``tcp``: a length-prefixed echo over plain asyncio TCP (the floor of any
  Python transport);
- ``session``: one call through SuperFS's own transport (superfs/rpc: a
  Session to a SessionServer serving the same servicer as ``grpc_unary``),
  what every metadata RPC costs once it travels on a session;
- ``fdatasync``: a 4 KiB write and fdatasync in the given directory (what a
  durable commit pays at least once; LMDB pays it twice).

Prints one JSON object per measurement. Nothing here is SuperFS code on
purpose: these are the costs its operations are made of.

    python bench/rpc_floor.py [--n 2000] [--dir /var/tmp]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Awaitable, Callable

HERE = os.path.dirname(os.path.abspath(__file__))

GRPC_SERVER = """
import asyncio, sys
sys.path.insert(0, {root!r})
import grpc
from superfs.v1 import superfs_pb2 as pb, superfs_pb2_grpc as pbg

class Shard(pbg.ShardServiceServicer):
    async def GetFile(self, request, context):
        return pb.FileInfo()

async def echo(request_iterator, context):
    async for message in request_iterator:
        yield message

async def main():
    server = grpc.aio.server()
    pbg.add_ShardServiceServicer_to_server(Shard(), server)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "floor.Echo", {{"Echo": grpc.stream_stream_rpc_method_handler(echo)}}),))
    server.add_insecure_port("127.0.0.1:{port}")
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()

asyncio.run(main())
"""

SESSION_SERVER = """
import asyncio, sys
sys.path.insert(0, {root!r})
from superfs.rpc.server import SessionServer
from superfs.v1 import superfs_pb2 as pb, superfs_pb2_grpc as pbg

class Shard(pbg.ShardServiceServicer):
    async def GetFile(self, request, context):
        return pb.FileInfo()

async def main():
    server = SessionServer("floor", {{"ShardService": Shard()}})
    await server.start("127.0.0.1", {port})
    print("ready", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""

TCP_SERVER = """
import asyncio

async def serve(reader, writer):
    try:
        while True:
            head = await reader.readexactly(4)
            writer.write(head + await reader.readexactly(int.from_bytes(head, "big")))
    except asyncio.IncompleteReadError:
        writer.close()

async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", {port})
    print("ready", flush=True)
    await server.serve_forever()

asyncio.run(main())
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(source: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", source], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        proc.kill()
        raise RuntimeError("benchmark server did not start")
    return proc


async def timed(n: int, op: Callable[[], Awaitable[object]]) -> list[float]:
    for _ in range(min(100, n)):  # warm-up: connections, caches
        await op()
    out = []
    for _ in range(n):
        t = time.perf_counter_ns()
        await op()
        out.append((time.perf_counter_ns() - t) / 1000.0)
    return out


async def grpc_floors(n: int, port: int) -> dict[str, list[float]]:
    import grpc

    from superfs.v1 import superfs_pb2 as pb
    from superfs.v1 import superfs_pb2_grpc as pbg

    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pbg.ShardServiceStub(channel)
        req = pb.GetFileRequest(ino=1)
        unary = await timed(n, lambda: stub.GetFile(req, timeout=10))
        call = channel.stream_stream("/floor.Echo/Echo")()
        payload = req.SerializeToString()

        async def round_trip() -> None:
            await call.write(payload)
            await call.read()

        stream = await timed(n, round_trip)
        await call.done_writing()
    return {"grpc_unary": unary, "grpc_stream": stream}


async def session_floor(n: int, port: int) -> list[float]:
    from superfs.rpc.client import Session
    from superfs.v1 import superfs_pb2 as pb

    session = Session(f"127.0.0.1:{port}")
    req = pb.GetFileRequest(ino=1)
    try:
        return await timed(n, lambda: session.call("ShardService/GetFile", req, pb.FileInfo, 10.0))
    finally:
        await session.close()


async def tcp_floor(n: int, port: int) -> list[float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    message = b"x" * 64
    frame = len(message).to_bytes(4, "big") + message

    async def round_trip() -> None:
        writer.write(frame)
        head = await reader.readexactly(4)
        await reader.readexactly(int.from_bytes(head, "big"))

    try:
        return await timed(n, round_trip)
    finally:
        writer.close()


def fdatasync_floor(n: int, directory: str) -> list[float]:
    fd, path = tempfile.mkstemp(dir=directory, prefix="rpc-floor-")
    try:
        out = []
        block = os.urandom(4096)
        for i in range(n):
            os.pwrite(fd, block, (i % 64) * 4096)
            t = time.perf_counter_ns()
            os.fdatasync(fd)
            out.append((time.perf_counter_ns() - t) / 1000.0)
        return out
    finally:
        os.close(fd)
        os.unlink(path)


def row(what: str, samples: list[float], **extra: object) -> dict[str, object]:
    s = sorted(samples)
    return {"name": "rpc_floor", "what": what, "n": len(s), "p50_us": round(statistics.median(s), 1),
            "p99_us": round(s[min(len(s) - 1, int(0.99 * (len(s) - 1)))], 1), "nproc": os.cpu_count(), **extra}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=2000, help="round trips per measurement (default 2000)")
    p.add_argument("--dir", default="/var/tmp", help="where fdatasync is measured (default /var/tmp)")
    args = p.parse_args()
    root = os.path.dirname(HERE)
    grpc_port, tcp_port, session_port = free_port(), free_port(), free_port()
    servers = [start(GRPC_SERVER.format(root=root, port=grpc_port)), start(TCP_SERVER.format(port=tcp_port)),
               start(SESSION_SERVER.format(root=root, port=session_port))]
    try:
        floors = asyncio.run(grpc_floors(args.n, grpc_port))
        for what, samples in floors.items():
            print(json.dumps(row(what, samples)), flush=True)
        session = asyncio.run(session_floor(args.n, session_port))
        ratio = statistics.median(session) / statistics.median(floors["grpc_stream"])
        print(json.dumps(row("session", session, vs_grpc_stream=round(ratio, 2))), flush=True)
        print(json.dumps(row("tcp", asyncio.run(tcp_floor(args.n, tcp_port)))), flush=True)
    finally:
        for s in servers:
            s.kill()
            s.wait()
    print(json.dumps(row("fdatasync", fdatasync_floor(min(args.n, 500), args.dir), dir=args.dir)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
