"""Running a gRPC daemon: bind, publish the address, log, stop on SIGTERM.

Every daemon binds (port 0 picks a free port), then writes a *ready file*
holding its bound address as JSON, atomically, so that launchers and tests
wait on the file instead of sleeping. SIGTERM and SIGINT stop it gracefully;
it logs exactly one line when it starts serving and one when it stops. Under
systemd (``Type=notify``) it also sends READY=1 once serving.

:func:`serve` builds every daemon's gRPC server, so it is where every RPC is
intercepted: request metrics (:mod:`superfs.metrics`) outermost, then
authentication (:mod:`superfs.auth`), both wrapped around each servicer
method as it is registered (:mod:`superfs.interception`); and where TLS
(:mod:`superfs.tls`) and the Prometheus endpoint are set up from the
daemon's config.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import tempfile
from typing import Any, Awaitable, Callable, Mapping, Sequence

import grpc

from superfs import auth, interception, metrics, tls
from superfs.rpc.options import GRPC_OPTIONS, MAX_MESSAGE  # noqa: F401 - GRPC_OPTIONS: tests' raw servers
from superfs.rpc.server import SessionServer
from superfs.config import SecurityConfig, ServerLimits

log = logging.getLogger(__name__)



def server_options(limits: ServerLimits) -> list[tuple[str, object]]:
    """A daemon's gRPC server options: it sends replies as large as any, takes requests up to its limit."""
    return [
        ("grpc.max_send_message_length", MAX_MESSAGE),
        ("grpc.max_receive_message_length", limits.max_message_bytes),
        ("grpc.max_concurrent_streams", limits.max_streams_per_connection),
        ("grpc.so_reuseport", 0),
    ]


def advertised_session(advertise: str, session_address: str) -> str:
    """Where others dial this daemon's session endpoint: the advertised host, the session port."""
    if not session_address:
        return ""
    return f"{advertise.rpartition(':')[0]}:{session_address.rpartition(':')[2]}"


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def write_ready_file(path: str, address: str, *, metrics_url: str | None = None) -> None:
    """Atomically publish {"address", "pid"} (and "metrics" when served) at ``path``."""
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".ready-")
    info: dict[str, object] = {"address": address, "pid": os.getpid()}
    if metrics_url:
        info["metrics"] = metrics_url
    with os.fdopen(fd, "w") as f:
        json.dump(info, f)
    os.replace(tmp, path)


def notify_systemd(state: str) -> None:
    """sd_notify(3): tell systemd (Type=notify units) "READY=1" or "STOPPING=1"; no-op elsewhere."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    if path.startswith("@"):
        path = "\0" + path[1:]  # abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.connect(path)
            s.sendall(state.encode())
    except OSError as e:
        log.warning("cannot notify systemd at %s: %s", os.environ.get("NOTIFY_SOCKET"), e)


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
    on_started: Callable[..., Awaitable[None]] | None = None,
    on_stopping: Callable[[], Awaitable[None]] | None = None,
    security: SecurityConfig | None = None,
    metrics_listen: str | None = None,
    collectors: Sequence[Any] = (),
    background: Sequence[Callable[[], Awaitable[None]]] = (),
    limits: ServerLimits = ServerLimits(),
    sessions: Mapping[str, Any] | None = None,
    session_port: int = 0,
    after_stop: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT. ``listen`` is host:port (port 0 = any free).

    ``security``: TLS and the credentials the daemon accepts (none: open, in
    plaintext). ``metrics_listen``: host:port of the Prometheus endpoint
    (None: off), where ``collectors`` are registered too. ``background``:
    coroutine functions run as tasks while serving, cancelled at stop.
    ``limits``: the largest request and the calls in progress it accepts.
    ``sessions``: the servicers ({"ShardService": servicer}) to serve on a
    session endpoint too (superfs/rpc/server.py), on ``listen``'s host and
    ``session_port`` (0: any free), with the same credentials, TLS and
    metrics; ``on_started`` then gets its address as a second argument.
    ``after_stop``: run once nothing is served any more, before the line
    saying the daemon stopped (work the daemon must finish or account for).
    """
    security = security or SecurityConfig()
    authenticator = auth.Authenticator.from_config(security)  # a bad tokens file fails here, before binding
    creds = tls.server_credentials(security.tls) if security.tls else None
    daemon_metrics = metrics.DaemonMetrics(name) if metrics_listen else None
    wrappers: list[interception.WrapFor] = []
    if daemon_metrics is not None:
        wrappers.append(daemon_metrics.wrapper_for)
        for c in collectors:
            daemon_metrics.add(c)
    if authenticator is not None:
        wrappers.append(auth.AuthCheck(authenticator).wrapper_for)
    server = grpc.aio.server(options=server_options(limits), maximum_concurrent_rpcs=limits.max_concurrent_rpcs)
    add_services(interception.intercepting(server, wrappers))
    host = listen.rsplit(":", 1)[0]
    port = server.add_secure_port(listen, creds) if creds else server.add_insecure_port(listen)
    if port == 0:
        raise OSError(f"{name}: cannot listen on {listen}")
    address = f"{host}:{port}"
    if daemon_metrics is not None:
        daemon_metrics.serve(metrics_listen)  # type: ignore[arg-type]
    await server.start()
    session_server: SessionServer | None = None
    session_address = ""
    if sessions is not None:
        session_server = SessionServer(
            name, sessions, authenticator=authenticator,
            ssl_context=tls.server_ssl_context(security.tls) if security.tls else None,
            max_frame=limits.max_message_bytes,
            wrappers=[daemon_metrics.wrapper_for] if daemon_metrics is not None else [])
        try:
            session_address = await session_server.start(host.strip("[]") or "0.0.0.0", session_port)
        except OSError as e:
            if not session_port:
                raise
            # its port is taken (by anything on this host): serve on another one; the cluster map says
            # where, and clients that knew the old one look again when it does not answer
            log.warning("%s: cannot listen for sessions on port %d (%s); using a free port instead",
                        name, session_port, e.strerror or e)
            session_address = await session_server.start(host.strip("[]") or "0.0.0.0", 0)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks: list[asyncio.Task[None]] = []
    try:
        if on_started is not None:
            if sessions is not None:
                await on_started(address, session_address)  # type: ignore[call-arg]
            else:
                await on_started(address)
        tasks = [asyncio.create_task(fn(), name=f"{name}-background") for fn in background]  # type: ignore[arg-type]
        if ready_file:
            write_ready_file(ready_file, address, metrics_url=daemon_metrics.url if daemon_metrics else None)
        log.info("%s serving on %s%s (pid %d)%s%s", name, address,
                 f", sessions on {session_address}" if session_address else "", os.getpid(),
                 ", TLS" if creds else "", ", clients authenticated" if authenticator else "")
        notify_systemd(f"READY=1\nSTATUS=serving on {address}")
        await stop.wait()
        notify_systemd("STOPPING=1")
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if on_stopping is not None:
            await on_stopping()
        if session_server is not None:
            await session_server.close()
        await server.stop(grace=2.0)
        if after_stop is not None:
            await after_stop()
        if daemon_metrics is not None:
            daemon_metrics.stop()
        if ready_file:
            try:
                os.unlink(ready_file)
            except FileNotFoundError:
                pass
        log.info("%s on %s stopped", name, address)
