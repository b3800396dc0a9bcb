"""Entry point of the dir server daemon: open the store, settle the intent log, serve.

The CLI builds a :class:`DirServerConfig` and awaits :func:`run`. Recovery of
interrupted directory operations runs in the background from the start: the
shards it needs may register only after the dir server is up, so it retries
until they answer, while the server already serves everything else.
"""
from __future__ import annotations

import asyncio
import logging
import os

import grpc

from superfs import daemon, metrics
from superfs.config import ASYNC, DirServerConfig, read_secret
from superfs.dirserver.recovery import recovery_loop
from superfs.dirserver.service import DirServicer
from superfs.dirserver.store import DirStore
from superfs.rebalance.watch import DeadServerWatch
from superfs.v1 import superfs_pb2_grpc as pbg

log = logging.getLogger(__name__)

STORE_DIR = "dir.lmdb"


async def run(cfg: DirServerConfig) -> None:
    """Serve the dir server until SIGTERM/SIGINT."""
    secret = read_secret(cfg.secret_file)
    store = DirStore.open(os.path.join(cfg.data_dir, STORE_DIR), durable=cfg.durability != ASYNC)
    servicer = DirServicer(cfg, store, secret)
    recovery: asyncio.Task[None] | None = None
    rereplication: asyncio.Task[None] | None = None
    watch = DeadServerWatch(servicer.registry, servicer.view, dead_after_s=cfg.data_dead_after_s,
                            timeout_s=cfg.rpc_timeout_s, lease=servicer.mover_lease)
    moves: list[asyncio.Task[None]] = []  # rolling back / finishing moves recorded before a restart

    def add_services(server: grpc.aio.Server) -> None:
        pbg.add_DirServiceServicer_to_server(servicer, server)

    async def on_started(address: str, session_address: str) -> None:
        nonlocal recovery, rereplication
        await servicer.registry.set_dir_session(session_address)
        recovery = asyncio.create_task(recovery_loop(servicer.coordinator), name="dir-recovery")
        rereplication = asyncio.create_task(watch.run(), name="dir-rereplication")
        moves.append(asyncio.create_task(servicer.mover.recover(), name="move-recovery"))

    async def on_stopping() -> None:
        await servicer.coordinator.drain()
        for task in moves:
            task.cancel()
        for background_task in (recovery, rereplication):
            if background_task is not None:
                background_task.cancel()
                try:
                    await background_task
                except asyncio.CancelledError:
                    pass

    log.info("dir server: cluster %r, %d partitions, %s mode, store %s", servicer.registry.map.cluster_name,
             servicer.registry.map.num_partitions, cfg.durability, store.db.path)
    collectors, background = metrics.dir_server_metrics(store, servicer.registry, servicer.view,
                                                        cfg.rpc_timeout_s, servicer.leases,
                                                        servicer.mover)
    collectors.append(metrics.FiguresCollector(watch.figures))
    try:
        await daemon.serve("superfs-dir", cfg.listen, add_services, ready_file=cfg.ready_file,
                           on_started=on_started, on_stopping=on_stopping, security=cfg.security,
                           metrics_listen=cfg.metrics_listen, collectors=collectors,
                           background=background if cfg.metrics_listen else (), limits=cfg.limits,
                           sessions={"DirService": servicer}, session_port=cfg.session_port)
    finally:
        await servicer.close()
        store.close()
