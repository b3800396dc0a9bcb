"""The kvserve daemon: build the store from a ServerConfig and serve it.

``await run(cfg)`` is what ``kvserve serve`` runs: it serves until SIGTERM
or SIGINT through ``superfs.daemon.serve`` (one log line at start and at
stop, a ready file holding the bound address). :class:`KvServer` is the
same daemon without signal handling, for tests that run it in-process.

Start-up order: the arena, then the SuperFS tier (connect, rebuild its index
from the files an earlier run left), then the gRPC server, then the metrics
endpoint. Shutdown: stop serving, then let pending demotions finish
(bounded by ``demote_drain_s``; what is left is dropped and counted, in a log
line) before the daemon logs that it stopped, then close the SuperFS
client and unmap the arena.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

import grpc
from superfs import config_file, daemon
from superfs.client import AsyncFs, ClientSecurity, security_scope
from superfs.errors import FsError

from kvserve.arena import Arena
from kvserve.config import ServerConfig
from kvserve.metrics import StoreMetrics
from kvserve.policy import make_policy
from kvserve.service import KvServicer
from kvserve.sfs_tier import SuperFsTier
from kvserve.store import KvStore

log = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 1.0


@dataclass
class Parts:
    store: KvStore
    metrics: StoreMetrics
    servicer: KvServicer
    fs: AsyncFs | None


async def build(cfg: ServerConfig) -> Parts:
    arena = Arena.create(cfg.dram_bytes + cfg.page_bytes,  # + the token page
                         prefault=cfg.prefault, huge_pages=cfg.huge_pages)
    fs = None
    sfs = None
    try:
        if cfg.superfs or cfg.superfs_config:
            fs = _superfs_client(cfg)
            await fs.start()
            sfs = SuperFsTier(fs, cfg.superfs_root, cfg.superfs_bytes or None, make_policy(cfg.policy))
            await sfs.start()
    except BaseException:
        if fs is not None:
            await fs.close()
        arena.close()
        raise
    store = KvStore(cfg, arena, sfs)
    metrics = StoreMetrics(store)
    return Parts(store, metrics, KvServicer(store, metrics), fs)


def _superfs_client(cfg: ServerConfig) -> AsyncFs:
    """The SuperFS tier's client: by address (a local cluster's credentials are found by
    the client library), or from a cluster.toml with its TLS and token settings."""
    if cfg.superfs_config is None:
        assert cfg.superfs is not None
        return AsyncFs(cfg.superfs, timeout_s=cfg.superfs_timeout_s)
    try:
        cf = config_file.load(cfg.superfs_config)
        security = ClientSecurity.from_config(cf.security)
    except (config_file.ConfigError, FsError) as e:
        raise ValueError(f"SuperFS cluster file {cfg.superfs_config}: {e}") from None
    address = cfg.superfs or (cf.dir_server.address if cf.dir_server is not None else None)
    if address is None:
        raise ValueError(f"{cfg.superfs_config} names no dir server address")
    with security_scope(security):  # the channels the client creates carry these credentials
        return AsyncFs(address, timeout_s=cfg.superfs_timeout_s)


async def _sweep(store: KvStore) -> None:
    while True:
        await asyncio.sleep(SWEEP_INTERVAL_S)
        store.sweep()


async def _teardown(parts: Parts) -> None:
    parts.metrics.stop()
    parts.servicer.attention.close()
    await parts.store.close()
    if parts.fs is not None:
        await parts.fs.close()
    parts.store.arena.close()


def _human(n: int) -> str:
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.4g} {unit}"
    return f"{n} B"


def describe(cfg: ServerConfig, parts: Parts, metrics_port: int | None) -> str:
    """What the start line says about the daemon (it logs one line at start, one at stop)."""
    bits = [f"DRAM {_human(cfg.dram_bytes)}", f"policy {cfg.policy}"]
    if parts.store.arena.pages:
        bits.append(parts.store.arena.pages)
    sfs = parts.store.sfs
    if sfs is not None:
        cap = _human(cfg.superfs_bytes) if cfg.superfs_bytes else "unbounded"
        bits.append(f"SuperFS tier {sfs.root} ({cap}, {len(sfs.index)} objects found)")
    if not cfg.shm:
        bits.append("no shared memory")
    if metrics_port is not None:
        bits.append(f"metrics http://{cfg.metrics_host}:{metrics_port}/metrics")
    return f"kvserve ({', '.join(bits)})"


async def run(cfg: ServerConfig) -> None:
    """Serve until SIGTERM/SIGINT."""
    parts = await build(cfg)
    sweeper = asyncio.get_running_loop().create_task(_sweep(parts.store))
    try:
        port = parts.metrics.serve(cfg.metrics_host, cfg.metrics_port) if cfg.metrics_port is not None else None

        async def on_stopping() -> None:
            sweeper.cancel()

        async def after_stop() -> None:  # nothing is served any more: demotions can only finish or drop
            await parts.store.close(cfg.demote_drain_s)

        await daemon.serve(name=describe(cfg, parts, port), listen=cfg.listen, add_services=parts.servicer.add_to,
                           ready_file=cfg.ready_file, on_stopping=on_stopping, after_stop=after_stop)
    finally:
        sweeper.cancel()
        await _teardown(parts)


class KvServer:
    """An in-process daemon (tests): ``address = await KvServer(cfg).start()``."""

    def __init__(self, cfg: ServerConfig) -> None:
        self.cfg = cfg
        self.address = ""
        self.metrics_port: int | None = None
        self._parts: Parts | None = None
        self._server: grpc.aio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def store(self) -> KvStore:
        assert self._parts is not None
        return self._parts.store

    async def start(self) -> str:
        self._parts = await build(self.cfg)
        self._server = grpc.aio.server(options=daemon.GRPC_OPTIONS)
        self._parts.servicer.add_to(self._server)
        host = self.cfg.listen.rsplit(":", 1)[0]
        port = self._server.add_insecure_port(self.cfg.listen)
        await self._server.start()
        self.address = f"{host}:{port}"
        self._sweeper = asyncio.get_running_loop().create_task(_sweep(self._parts.store))
        if self.cfg.metrics_port is not None:
            self.metrics_port = self._parts.metrics.serve(self.cfg.metrics_host, self.cfg.metrics_port)
        return self.address

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if self._server is not None:
            await self._server.stop(grace=1.0)
        if self._parts is not None:
            await _teardown(self._parts)
            self._parts = None
