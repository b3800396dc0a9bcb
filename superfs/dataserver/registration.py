"""Announcing this data server to the dir server, which publishes the cluster map.

A data server that starts before the dir server (or while it restarts) must
not die, nor hide its trouble: registration is retried with backoff, one
clear log line per failed attempt. The daemon waits for it only up to a
bound (``wait_s``), then keeps serving and keeps retrying in the background:
reads and writes from clients that already know this server keep working.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import time

from superfs.client.rpc import Channels, call
from superfs.errors import FsError
from superfs.v1 import superfs_pb2 as pb

log = logging.getLogger(__name__)

FIRST_DELAY_S = 0.2
MAX_DELAY_S = 5.0
DEFAULT_WAIT_S = 30.0


class Registrar:
    """Registers one data server with the dir server, retrying until it succeeds."""

    def __init__(
        self, channels: Channels, dir_server: str, server_id: int, *, timeout_s: float = 5.0
    ) -> None:
        self.channels = channels
        self.dir_server = dir_server
        self.server_id = server_id
        self.timeout_s = timeout_s
        self.cluster_map: pb.ClusterMap | None = None
        self._background: asyncio.Task[None] | None = None

    async def register_once(self, address: str) -> pb.ClusterMap:
        request = pb.RegisterServerRequest(kind="data", server=pb.ServerInfo(id=self.server_id, address=address))
        cmap: pb.ClusterMap = await call(self.channels.dir(self.dir_server).RegisterServer, request, self.timeout_s)
        self.cluster_map = cmap
        log.info(
            "data server %d registered as %s with dir server %s (cluster %s, epoch %d)",
            self.server_id, address, self.dir_server, cmap.cluster_name, cmap.epoch,
        )
        return cmap

    async def start(self, address: str, wait_s: float = DEFAULT_WAIT_S) -> bool:
        """Try for up to ``wait_s``; then go on retrying in the background. True if registered."""
        if await self._retry(address, deadline=time.monotonic() + wait_s):
            return True
        log.error(
            "data server %d: dir server %s still unreachable after %.0f s; serving anyway, "
            "registration keeps retrying in the background",
            self.server_id, self.dir_server, wait_s,
        )
        self._background = asyncio.create_task(self._retry(address, deadline=None), name="register-data-server")
        return False

    async def stop(self) -> None:
        if self._background is not None and not self._background.done():
            self._background.cancel()
            try:
                await self._background
            except asyncio.CancelledError:
                pass

    async def _retry(self, address: str, deadline: float | None) -> bool:
        delay = FIRST_DELAY_S
        attempt = 0
        while True:
            attempt += 1
            try:
                await self.register_once(address)
                return True
            except FsError as e:
                # A refusal (not transport trouble) is logged louder: it means a
                # misconfiguration, which an operator can fix while we retry.
                level = logging.WARNING if e.errno in _TRANSPORT_ERRNOS else logging.ERROR
                if deadline is not None and time.monotonic() + delay > deadline:
                    log.log(level, "data server %d: cannot register with dir server %s (attempt %d: %s)",
                            self.server_id, self.dir_server, attempt, e)
                    return False
                log.log(level, "data server %d: cannot register with dir server %s (attempt %d: %s); "
                        "retrying in %.1f s", self.server_id, self.dir_server, attempt, e, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_DELAY_S)


_TRANSPORT_ERRNOS = frozenset({errno.EIO, errno.ETIMEDOUT, errno.EAGAIN, errno.EINTR})
