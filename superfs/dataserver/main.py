"""Entry point of the data server daemon: ``await run(cfg)``.

Reads the cluster secret (chunk capabilities are verified with it), opens
the chunk store under ``cfg.data_dir`` (durable unless
``cfg.durability == "async"``), serves ``DataService`` until SIGTERM, and
registers with the dir server before the ready file is written (waiting for
it at most ~30 s, then retrying in the background while serving).
"""
from __future__ import annotations

import logging
import os

import grpc

from superfs import daemon, metrics
from superfs.config import ASYNC, DURABLE, MESSAGE_HEADROOM, DataServerConfig, read_secret
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
    servicer = DataServicer(chunks, read_secret(cfg.secret_file),
                            max_write=cfg.limits.max_message_bytes - MESSAGE_HEADROOM)
    channels = Channels(timeout_s=cfg.rpc_timeout_s, transport="grpc")  # daemons call each other on gRPC
    registrar = Registrar(channels, cfg.dir_server, cfg.server_id, timeout_s=cfg.rpc_timeout_s,
                          new_store=chunks.is_new(),
                          on_store_checked=lambda lost: chunks.settle_identity(cfg.server_id, lost))

    def add_services(server: grpc.aio.Server) -> None:
        servicer.add_to(server)

    async def on_started(address: str, session_address: str) -> None:
        advertise = cfg.advertise or address
        registrar.session_address = daemon.advertised_session(advertise, session_address)
        if advertise.startswith(("0.0.0.0:", "[::]:")):
            log.warning("data server %d advertises %s, which peers cannot dial; set advertise",
                        cfg.server_id, advertise)
        await registrar.start(advertise, wait_s=register_wait_s)

    async def on_stopping() -> None:
        await registrar.stop()
        await channels.close()

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
            collectors=metrics.data_server_metrics(chunks),
            limits=cfg.limits,
            sessions={"DataService": servicer},
            session_port=cfg.session_port,
        )
    finally:
        chunks.close()
