"""Entry point of the data server daemon: ``await run(cfg)``.

Reads the cluster secret (chunk capabilities are verified with it), opens
the chunk store under ``cfg.data_dir`` (durable unless
``cfg.durability == "async"``), serves ``DataService`` on gRPC and sessions
and chunk bytes on the byte path (``ByteServer``: TCP on ``bytes_port``
and a local socket) until SIGTERM, and registers all three with the dir
server before the ready file is written (waiting for it at most ~30 s, then
retrying in the background while serving). Chunks a store holds in the old
layout (bytes in LMDB) are moved into slot files in the background.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import os

import grpc

from superfs import auth, daemon, metrics, tls
from superfs.config import ASYNC, DURABLE, MESSAGE_HEADROOM, DataServerConfig, read_secret
from superfs.dataserver.byte_server import ByteServer
from superfs.dataserver.chunk_store import ChunkStore
from superfs.dataserver.registration import DEFAULT_WAIT_S, Registrar
from superfs.dataserver.service import DataServicer
from superfs.rpc.channels import Channels

log = logging.getLogger(__name__)

STORE_DIR = "chunks"  # LMDB environment under data_dir; leaves room for other state


async def run(cfg: DataServerConfig, *, register_wait_s: float = DEFAULT_WAIT_S) -> None:
    """Run one data server until SIGTERM/SIGINT."""
    if cfg.durability not in (DURABLE, ASYNC):
        raise ValueError(f"durability must be {DURABLE!r} or {ASYNC!r}, not {cfg.durability!r}")
    chunks = ChunkStore.open(os.path.join(cfg.data_dir, STORE_DIR), durable=cfg.durability != ASYNC)
    secret = read_secret(cfg.secret_file)
    servicer = DataServicer(chunks, secret, max_write=cfg.limits.max_message_bytes - MESSAGE_HEADROOM)
    channels = Channels(timeout_s=cfg.rpc_timeout_s, transport="grpc")  # daemons call each other on gRPC
    # this daemon's own credentials reach the other data servers (chained writes, block repairs)
    forward = channels.byte_pool(cfg.dir_server)
    security = cfg.security
    byte_server = ByteServer(
        chunks, secret, forward, name=f"superfs-data {cfg.server_id}",
        authenticator=auth.Authenticator.from_config(security),
        ssl_context=tls.server_ssl_context(security.tls) if security.tls else None, fences=servicer.fences)
    registrar = Registrar(channels, cfg.dir_server, cfg.server_id, timeout_s=cfg.rpc_timeout_s,
                          new_store=chunks.is_new(),
                          on_store_checked=lambda lost: chunks.settle_identity(cfg.server_id, lost))

    def add_services(server: grpc.aio.Server) -> None:
        servicer.add_to(server)

    migration: list[asyncio.Task[int]] = []

    async def on_started(address: str, session_address: str) -> None:
        advertise = cfg.advertise or address
        registrar.session_address = daemon.advertised_session(advertise, session_address)
        host = cfg.listen.rpartition(":")[0].strip("[]") or "0.0.0.0"
        # the local socket's name follows the store, so a restarted server is found where it was
        local = "superfs-bytes-" + hashlib.sha256(os.path.abspath(cfg.data_dir).encode()).hexdigest()[:20]
        try:
            bytes_address, registrar.bytes_local = byte_server.start(host, cfg.bytes_port, local=local)
        except OSError as e:
            if not cfg.bytes_port:
                raise
            log.warning("data server %d: cannot listen for the byte path on port %d (%s); using a free port",
                        cfg.server_id, cfg.bytes_port, e.strerror or e)
            bytes_address, registrar.bytes_local = byte_server.start(host, 0, local=local)
        registrar.bytes_address = daemon.advertised_session(advertise, bytes_address)
        log.info("data server %d: byte path on %s and local socket @%s", cfg.server_id,
                 registrar.bytes_address, registrar.bytes_local)
        if chunks.legacy_chunks:
            migration.append(asyncio.create_task(chunks.migrate(), name="migrate-chunks"))
        if advertise.startswith(("0.0.0.0:", "[::]:")):
            log.warning("data server %d advertises %s, which peers cannot dial; set advertise",
                        cfg.server_id, advertise)
        await registrar.start(advertise, wait_s=register_wait_s)

    async def on_stopping() -> None:
        for t in migration:
            t.cancel()
        await registrar.stop()
        await asyncio.get_running_loop().run_in_executor(None, byte_server.close)
        await channels.close()  # and the forwarding pool with it

    try:
        await daemon.serve(
            name=f"superfs-data {cfg.server_id}",
            listen=cfg.listen,
            add_services=add_services,
            ready_file=cfg.ready_file,
            on_started=on_started,
            on_stopping=on_stopping,
            security=cfg.security,
            metrics_listen=cfg.metrics_listen,
            collectors=metrics.data_server_metrics(chunks, byte_server),
            limits=cfg.limits,
            sessions={"DataService": servicer},
            session_port=cfg.session_port,
        )
    finally:
        chunks.close()
