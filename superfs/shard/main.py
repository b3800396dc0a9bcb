"""Entry point of a file-metadata shard daemon: ``await run(cfg)``.

Opens the store (durable unless ``cfg.durability == "async"``), serves
ShardService, registers with the dir server and keeps its cluster map fresh
(every 2 s, and whenever a peer call fails), and runs the background loop
(reclaim, outbox, intents) from the first second on.

If the dir server is unreachable at start the shard keeps retrying with
backoff, logging each failure, instead of exiting: it waits up to
REGISTER_WAIT_S before publishing its ready file, then goes on retrying in
the background (requests meanwhile get EAGAIN: no map yet).
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

import grpc

from superfs import metrics
from superfs.config import ASYNC, ShardConfig, read_secret
from superfs.daemon import advertised_session, serve
from superfs.errors import FsError
from superfs.rpc.channels import Channels
from superfs.shard.cluster import ShardCluster
from superfs.shard.service import ShardServicer
from superfs.shard.store import FileMetaStore
from superfs.v1 import superfs_pb2_grpc as pbg

log = logging.getLogger(__name__)

REFRESH_INTERVAL_S = 2.0
REGISTER_WAIT_S = 10.0
BACKOFF_MAX_S = 5.0


async def register_until_done(cluster: ShardCluster, address: str, give_up_after_s: float | None) -> bool:
    """RegisterServer with backoff; False if ``give_up_after_s`` passed first."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    delay = 0.2
    while True:
        try:
            await cluster.register(address)
            log.info("shard %d registered with dir server %s as %s", cluster.shard_id, cluster.dir_server, address)
            return True
        except FsError as e:
            log.warning("shard %d: registration with dir server %s failed (%s); retrying in %.1f s",
                        cluster.shard_id, cluster.dir_server, e, delay)
        if give_up_after_s is not None and loop.time() - start + delay > give_up_after_s:
            return False
        await asyncio.sleep(delay)
        delay = min(delay * 2, BACKOFF_MAX_S)


async def keep_map_fresh(cluster: ShardCluster, address: str) -> None:
    """Poll the map every 2 s; (re-)register whenever the dir server does not list this shard.

    The one registration loop after start-up: it covers a dir server that
    was down at start as well as one that came back without our entry.
    """
    while True:
        try:
            listed = {s.id: (s.address, s.session_address) for s in cluster.map.shards}
        except FsError:
            listed = {}
        if listed.get(cluster.shard_id) != (address, cluster.session_address):
            await register_until_done(cluster, address, give_up_after_s=None)
        await asyncio.sleep(REFRESH_INTERVAL_S)
        await cluster.refresh_quietly()


async def run(cfg: ShardConfig) -> None:
    """Serve one shard until SIGTERM/SIGINT."""
    secret = read_secret(cfg.secret_file)
    store = FileMetaStore(cfg.data_dir, durable=cfg.durability != ASYNC,
                          map_size=cfg.metadata_max_bytes or None)
    channels = Channels(cfg.rpc_timeout_s)  # on sessions, once the cluster map names them
    cluster = ShardCluster(cfg.shard_id, channels, dir_server=cfg.dir_server)
    servicer = ShardServicer(store, cluster, secret)
    tasks: list[asyncio.Task[Any]] = []

    async def on_started(address: str, session_address: str) -> None:
        advertise = cfg.advertise or address
        cluster.session_address = advertised_session(advertise, session_address)
        loop = asyncio.get_running_loop()
        if not await register_until_done(cluster, advertise, give_up_after_s=REGISTER_WAIT_S):
            log.warning("shard %d: serving without a cluster map; still trying to register", cfg.shard_id)
        tasks.append(loop.create_task(keep_map_fresh(cluster, advertise)))
        servicer.start_background()

    async def on_stopping() -> None:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await servicer.stop_background()

    def add_services(server: grpc.aio.Server) -> None:
        pbg.add_ShardServiceServicer_to_server(servicer, server)

    log.info("shard %d: store %s (%s)", cfg.shard_id, cfg.data_dir,
             "async: commits flushed every second" if cfg.durability == ASYNC else "durable")
    try:
        await serve(f"superfs-shard {cfg.shard_id}", cfg.listen, add_services, ready_file=cfg.ready_file,
                    on_started=on_started, on_stopping=on_stopping, security=cfg.security,
                    metrics_listen=cfg.metrics_listen, collectors=metrics.shard_metrics(store, servicer), limits=cfg.limits,
                    sessions={"ShardService": servicer}, session_port=cfg.session_port)
    finally:
        await servicer.stop_background()
        await channels.close()
        store.close()
