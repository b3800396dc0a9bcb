"""Running a gRPC daemon: bind, publish the address, log, stop on SIGTERM.

Every daemon binds (port 0 picks a free port), then writes a *ready file*
holding its bound address as JSON, atomically, so that launchers and tests
wait on the file instead of sleeping. SIGTERM and SIGINT stop it gracefully;
it logs exactly one line when it starts serving and one when it stops.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import tempfile
from typing import Awaitable, Callable

import grpc

log = logging.getLogger(__name__)

MAX_MESSAGE = 80 * 1024 * 1024  # a chunk plus headroom; larger is refused
GRPC_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE),
    ("grpc.max_receive_message_length", MAX_MESSAGE),
    ("grpc.so_reuseport", 0),
]


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def write_ready_file(path: str, address: str) -> None:
    """Atomically publish {"address", "pid"} at ``path``."""
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".ready-")
    with os.fdopen(fd, "w") as f:
        json.dump({"address": address, "pid": os.getpid()}, f)
    os.replace(tmp, path)


def read_ready_file(path: str) -> dict[str, object] | None:
    try:
        with open(path) as f:
            return json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return None


async def serve(
    name: str,
    listen: str,
    add_services: Callable[[grpc.aio.Server], None],
    *,
    ready_file: str | None = None,
    on_started: Callable[[str], Awaitable[None]] | None = None,
    on_stopping: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT. ``listen`` is host:port (port 0 = any free)."""
    server = grpc.aio.server(options=GRPC_OPTIONS)
    add_services(server)
    host = listen.rsplit(":", 1)[0]
    port = server.add_insecure_port(listen)
    if port == 0:
        raise OSError(f"{name}: cannot listen on {listen}")
    address = f"{host}:{port}"
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if on_started is not None:
        await on_started(address)
    if ready_file:
        write_ready_file(ready_file, address)
    log.info("%s serving on %s (pid %d)", name, address, os.getpid())
    try:
        await stop.wait()
    finally:
        if on_stopping is not None:
            await on_stopping()
        await server.stop(grace=2.0)
        if ready_file:
            try:
                os.unlink(ready_file)
            except FileNotFoundError:
                pass
        log.info("%s on %s stopped", name, address)
