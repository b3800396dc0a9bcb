"""Announcing this data server to the dir server, which publishes the cluster map.

A data server that starts before the dir server (or while it restarts) must
not die, nor hide its trouble: registration is retried with backoff, one
clear log line per failed attempt. The daemon waits for it only up to a
bound (``wait_s``), then keeps serving and keeps retrying in the background:
reads and writes from clients that already know this server keep working.

A server whose store was just created (``new_store``) first asks whether the
cluster map already lists its id: if so, it is a server that lost its disk
and came back empty (the data server then answers EIO for chunks it lacks
until repaired, so readers use the surviving replicas instead of reading
holes). ``on_store_checked(lost)`` reports the answer before registering.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import time
from typing import Awaitable, Callable

from superfs.errors import FsError
from superfs.rpc.channels import Channels
from superfs.v1 import superfs_pb2 as pb

log = logging.getLogger(__name__)

FIRST_DELAY_S = 0.2
MAX_DELAY_S = 5.0
DEFAULT_WAIT_S = 30.0


class Registrar:
    """Registers one data server with the dir server, retrying until it succeeds."""

    def __init__(
        self, channels: Channels, dir_server: str, server_id: int, *, timeout_s: float = 5.0,
        new_store: bool = False, on_store_checked: Callable[[bool], Awaitable[None]] | None = None,
    ) -> None:
        self.channels = channels
        self.dir_server = dir_server
        self.server_id = server_id
        self.timeout_s = timeout_s
        self._check_known = new_store and on_store_checked is not None
        self._on_store_checked = on_store_checked
        self.cluster_map: pb.ClusterMap | None = None
        self._background: asyncio.Task[bool] | None = None
        self.session_address = ""  # this data server's session endpoint, registered with its address
        self.bytes_address = ""    # and its byte path: TCP host:port, and the local socket name
        self.bytes_local = ""

    async def register_once(self, address: str) -> pb.ClusterMap:
        if self._check_known:
            lost = self.server_id in await self._known_data_servers()
            if lost:
                log.error("data server %d starts with an empty store but the cluster knew it: its chunks "
                          "are lost; serving the rest, run `superfs repair` to re-create them", self.server_id)
            assert self._on_store_checked is not None
            await self._on_store_checked(lost)
            self._check_known = False
        request = pb.RegisterServerRequest(kind="data", server=pb.ServerInfo(
            id=self.server_id, address=address, session_address=self.session_address,
            bytes_address=self.bytes_address, bytes_local=self.bytes_local))
        cmap = await self.channels.dir(self.dir_server).register_server(request, self.timeout_s)
        self.cluster_map = cmap
        log.info(
            "data server %d registered as %s with dir server %s (cluster %s, epoch %d)",
            self.server_id, address, self.dir_server, cmap.cluster_name, cmap.epoch,
        )
        return cmap

    async def _known_data_servers(self) -> set[int]:
        """Ids of the data servers in the cluster map (none from a dir server without the call)."""
        try:
            known = await self.channels.dir(self.dir_server).get_cluster_map(pb.GetClusterMapRequest(), self.timeout_s)
        except FsError as e:
            if e.errno == errno.ENOSYS or e.message.startswith("UNIMPLEMENTED"):  # on a session, or on gRPC
                return set()
            raise
        return {d.id for d in known.data_servers}

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
