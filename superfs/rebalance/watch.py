"""Automatic re-replication, run by the dir server (as MooseFS and Ceph do).

Every few seconds :class:`DeadServerWatch`:

1. probes the active and draining data servers (Stats); one that has not
   answered for ``dead_after_s`` (the cluster file's
   ``cluster.data_dead_after_s``; 0: never by itself) is declared dead in
   the map, as ``superfs admin mark-dead`` does;
2. if any server is dead, moves every file placed on one onto the active
   servers, copying from the survivors (superfs/rebalance/passes.py), then
   marks the dead servers removed. It holds the mover lease meanwhile
   (dirserver/mover_lease.py): a `rebalance` or `drain` at work makes it
   wait for the next round.

Its progress is exported by the dir server's metrics endpoint
(:meth:`figures`). A restart of the dir server resumes from the map: a
dead server stays dead until its files are moved.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from superfs.errors import FsError
from superfs.rebalance import passes, plan
from superfs.rebalance.mover import LEASE_TTL_S, LeaseKeeper, Mover, Progress
from superfs.rebalance.port import ChunkPort
from superfs.rpc.cluster_map import ClusterView
from superfs.v1 import superfs_pb2 as pb

log = logging.getLogger(__name__)

INTERVAL_S = 2.0
HOLDER = "dir server (re-replication)"


class DeadServerWatch:
    """Declares silent data servers dead and re-replicates what dead servers held."""

    def __init__(self, registry: Any, view: ClusterView, *, dead_after_s: float, timeout_s: float,
                 lease: Any, interval_s: float = INTERVAL_S) -> None:
        self.registry = registry  # dirserver.cluster_map.ClusterRegistry: the map and set_state
        self.lease = lease        # dirserver.mover_lease.MoverLease: one mover at a time
        self.view = view
        self.dead_after_s = dead_after_s
        self.timeout_s = timeout_s
        self.interval_s = interval_s
        self.silent_since: dict[int, float] = {}
        self.progress = Progress()
        self.under_replicated = 0
        self.rounds = 0

    async def run(self) -> None:
        while True:
            try:
                await self.round()
            except FsError as e:
                log.warning("re-replication round stopped: %s (next round in %.0f s)", e, self.interval_s)
            await asyncio.sleep(self.interval_s)

    async def round(self) -> None:
        if self.dead_after_s > 0:
            await self._declare_silent_dead()
        cmap: pb.ClusterMap = self.registry.map
        dead = {i for i, s in plan.states(cmap).items() if s == plan.DEAD}
        if not dead:
            self.under_replicated = 0
            return
        port = ChunkPort(self.view, timeout_s=self.timeout_s)
        self.under_replicated, _ = await passes.under_replicated(port, cmap)

        async def acquire() -> tuple[bool, str]:
            return await self.lease.take(HOLDER, LEASE_TTL_S), self.lease.holder

        async def release() -> None:
            await self.lease.give_back(HOLDER)

        keeper = LeaseKeeper(acquire, release=release)
        mover = Mover(port, cmap, progress=self.progress, lease=keeper)
        try:
            await keeper.keep()
        except FsError as e:
            log.info("re-replication waits: %s", e)
            return
        try:
            left = await passes.empty_servers(port, mover, dead, what=f"re-replication of {sorted(dead)}",
                                              report=log.info)
        finally:
            await keeper.give_back()
        self.rounds += 1
        if left:
            return
        for sid in sorted(dead):
            await self.registry.set_state(sid, plan.REMOVED)
        self.under_replicated = 0
        log.info("data servers %s: every chunk re-replicated from the survivors; removed", sorted(dead))

    async def _declare_silent_dead(self) -> None:
        cmap: pb.ClusterMap = self.registry.map
        now = time.monotonic()
        for sid, state in plan.states(cmap).items():
            if state not in (plan.ACTIVE, plan.DRAINING):
                self.silent_since.pop(sid, None)
                continue
            try:
                await self.view.data(sid).stats(pb.Empty(), min(self.timeout_s, 2.0))
                self.silent_since.pop(sid, None)
            except FsError:
                first = self.silent_since.setdefault(sid, now)
                if now - first >= self.dead_after_s:
                    log.warning("data server %d has not answered for %.0f s: declared dead", sid, now - first)
                    await self.registry.set_state(sid, plan.DEAD)
                    self.silent_since.pop(sid, None)

    def figures(self) -> list[tuple[str, str, float]]:
        p = self.progress
        states = list(plan.states(self.registry.map).values())
        return [
            ("superfs_data_servers_draining", "Data servers being drained (superfs admin drain)",
             states.count(plan.DRAINING)),
            ("superfs_data_servers_dead", "Data servers declared dead, not yet re-replicated", states.count(plan.DEAD)),
            ("superfs_data_servers_removed", "Data servers drained or re-replicated (they hold nothing)",
             states.count(plan.REMOVED)),
            ("superfs_under_replicated_chunks", "Chunks with a copy on a dead data server (last count)",
             self.under_replicated),
            ("superfs_rereplicated_chunks", "Chunks re-replicated from survivors since start", p.chunks),
            ("superfs_rereplicated_bytes", "Bytes re-replicated from survivors since start", p.bytes),
            ("superfs_rereplicated_files", "Files moved off dead data servers since start", p.files),
            ("superfs_rereplication_failures", "Files whose move failed (retried next round)", p.failed),
        ]
