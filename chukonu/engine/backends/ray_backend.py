"""Running chukonu tasks on an existing Ray cluster, each pinned to the node beside its data.

Every alive Ray node offers one task slot per CPU. A node is beside SuperFS
data server N when it declares the custom resource ``superfs_ds_N``
(``ray start --resources '{"superfs_ds_0": 1}'``) or, failing that, when its
IP is the host of data server N in the cluster map. A task goes to its
chosen node with a hard node-affinity strategy; if the node is gone, Ray
refuses the task (``TaskUnschedulableError``) or loses it, which the
scheduler sees as a lost worker and runs the task elsewhere. Task outcomes
come back as pickled bytes, so an error inside a task is reported exactly
as in the local pool. Shuffle files must be visible to every node: on
several machines set ``chukonu.shuffle.dir`` to a ``superfs://`` URL.
"""
from __future__ import annotations

import logging
import os
import pickle
import sys
import time
from typing import Any

from chukonu.engine.backends.base import Backend, Event, WorkerInfo

log = logging.getLogger(__name__)

RESOURCE_PREFIX = "superfs_ds_"
REFRESH_S = 2.0


def run_on_ray(payload: bytes, worker: str, data_server: int | None, spill_dir: str) -> bytes:
    """The Ray task: unpickle a chukonu task, run it, return the pickled outcome."""
    import cloudpickle

    from chukonu.engine.task import TaskError, TaskOutcome, run_task
    try:
        outcome = run_task(cloudpickle.loads(payload), worker, data_server, spill_dir)
    except Exception as e:  # noqa: BLE001 - reported like any task failure
        outcome = TaskOutcome(False, error=TaskError(-1, -1, type(e).__name__, f"cannot load task: {e}", ""))
    return pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL)


class RayBackend(Backend):
    name = "ray"

    def __init__(self, address: str | None, spill_dir: str, conf: dict[str, str]) -> None:
        import ray

        if not ray.is_initialized():
            env = {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
            ray.init(address=address or None, ignore_reinit_error=True, include_dashboard=False,
                     log_to_driver=False, runtime_env={"env_vars": env})
        self.ray = ray
        self.spill_dir = spill_dir
        self.slots = int(conf.get("chukonu.ray.slotsPerNode", "0"))
        self._ip_servers = self._data_server_hosts(conf.get("chukonu.superfs.address"))
        self._remote = ray.remote(num_cpus=1, max_retries=0)(run_on_ray)
        self._inflight: dict[Any, tuple[str, Any]] = {}
        self._workers: dict[str, WorkerInfo] = {}
        self._refreshed = 0.0
        self._refresh()
        log.info("ray backend: %d slots on %d nodes", len(self._workers),
                 len({w.node for w in self._workers.values()}))

    @staticmethod
    def _data_server_hosts(address: str | None) -> dict[str, int]:
        if not address:
            return {}
        from chukonu.io.fs import superfs_client
        from chukonu.placement import data_servers
        servers = data_servers(superfs_client(address if address != "local" else None))
        return {addr.rsplit(":", 1)[0]: sid for sid, addr in sorted(servers.items(), reverse=True)}

    def _node_server(self, node: dict[str, Any]) -> int | None:
        for key in node.get("Resources", {}):
            if key.startswith(RESOURCE_PREFIX):
                return int(key[len(RESOURCE_PREFIX):])
        return self._ip_servers.get(node.get("NodeManagerAddress", ""))

    def _refresh(self) -> None:
        self._refreshed = time.monotonic()
        seen = set()
        for node in self.ray.nodes():
            nid = node["NodeID"]
            cpus = int(node.get("Resources", {}).get("CPU", 0))
            slots = self.slots or max(1, cpus)
            for s in range(slots):
                wid = f"ray-{nid[:8]}-{s}"
                seen.add(wid)
                info = self._workers.get(wid)
                if info is None:
                    info = WorkerInfo(wid, self._node_server(node), nid)
                    self._workers[wid] = info
                info.alive = bool(node["Alive"]) and cpus > 0
        for wid, info in self._workers.items():
            if wid not in seen:
                info.alive = False

    def workers(self) -> list[WorkerInfo]:
        if time.monotonic() - self._refreshed > REFRESH_S:
            self._refresh()
        return list(self._workers.values())

    def submit(self, worker: str, key: Any, task: Any) -> None:
        import cloudpickle
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        info = self._workers[worker]
        ref = self._remote.options(scheduling_strategy=NodeAffinitySchedulingStrategy(info.node, soft=False)) \
            .remote(cloudpickle.dumps(task), worker, info.data_server, self.spill_dir)
        self._inflight[ref] = (worker, key)

    def poll(self, timeout: float) -> list[Event]:
        if not self._inflight:
            time.sleep(min(timeout, 0.05))
            return []
        ready, _ = self.ray.wait(list(self._inflight), num_returns=1, timeout=timeout)
        if ready:
            more, _ = self.ray.wait([r for r in self._inflight if r not in ready], num_returns=len(self._inflight) - 1,
                                    timeout=0) if len(self._inflight) > 1 else ([], [])
            ready = list(ready) + list(more)
        events = []
        for ref in ready:
            worker, key = self._inflight.pop(ref)
            try:
                outcome = pickle.loads(self.ray.get(ref))
            except self.ray.exceptions.RayError as e:
                log.warning("ray task on %s lost: %s", worker, type(e).__name__)
                self._refresh()
                self._workers[worker].alive = self._workers[worker].alive and not isinstance(
                    e, (self.ray.exceptions.TaskUnschedulableError, self.ray.exceptions.NodeDiedError))
                events.append(Event("lost", worker, key))
                continue
            events.append(Event("done", worker, key, outcome))
        return events

    def close(self) -> None:
        for ref in list(self._inflight):
            try:
                self.ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - closing anyway
                pass
        self._inflight.clear()
