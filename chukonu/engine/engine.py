"""The engine of one session: its backend, its spill directory, and the jobs it ran.

An action (``collect``, ``count``, a write) is one job: the planner turns
the plan into stages, each stage's tasks go through the scheduler, and the
job's record (stages, task placement, bytes, memory) is kept in ``jobs``
and summarised when the job ends. The backend follows the session's master
(``local`` runs inline, ``local[N]`` a pool of N worker processes, ``ray``
or ``ray://...`` a Ray cluster) unless ``chukonu.executor`` says otherwise.
"""
from __future__ import annotations

import atexit
import contextlib
import itertools
import logging
import os
import re
import shutil
import tempfile
import time
from typing import Any, Callable, Iterator

from chukonu.engine.backends.base import Backend
from chukonu.engine.partitions import Partition
from chukonu.engine.progress import JobRecord, Progress, StageRecord
from chukonu.engine.scheduler import Scheduler
from chukonu.engine.task import Task, peak_rss_bytes, reset_peak_rss

log = logging.getLogger(__name__)


def _workers_from_master(master: str) -> int:
    m = re.fullmatch(r"local\[(\*|\d+)(?:,\s*\d+)?\]", master.strip())
    if m is None:
        return 1
    return os.cpu_count() or 1 if m.group(1) == "*" else int(m.group(1))


def parse_size(text: str) -> int:
    """"64m", "10MB", "1g", "-1", "4096" -> bytes (Spark's size strings)."""
    m = re.fullmatch(r"\s*(-?\d+(?:\.\d+)?)\s*([kmgt]?)b?\s*", text.lower())
    if m is None:
        raise ValueError(f"not a size: {text!r}")
    scale = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[m.group(2)]
    return int(float(m.group(1)) * scale)


class Engine:
    def __init__(self, conf: dict[str, str]) -> None:
        self.conf = conf
        self._backend: Backend | None = None
        self._spill: str | None = None
        self._ids = itertools.count(1)
        self.jobs: list[JobRecord] = []
        self._job: JobRecord | None = None
        self.progress = Progress(conf.get("chukonu.progress", "auto"))
        # a script that never calls spark.stop() still stops its workers and removes its spill files
        atexit.register(self.close)

    # ---------------------------------------------------------------- config

    def _int(self, key: str, default: int) -> int:
        v = self.conf.get(key)
        return default if v is None else parse_size(str(v))

    @property
    def shuffle_partitions(self) -> int:
        return max(1, self._int("spark.sql.shuffle.partitions", 200))

    @property
    def shuffle_target_bytes(self) -> int:
        if str(self.conf.get("spark.sql.adaptive.enabled", "true")).lower() == "false":
            return 0
        return self._int("chukonu.shuffle.targetBytes", 64 << 20)

    @property
    def broadcast_threshold(self) -> int:
        return self._int("spark.sql.autoBroadcastJoinThreshold", 10 << 20)

    @property
    def default_parallelism(self) -> int:
        v = self.conf.get("spark.default.parallelism")
        if v is not None:
            return int(v)
        return max(1, len([w for w in self.backend.workers() if w.alive]))

    @property
    def spill_dir(self) -> str:
        if self._spill is None:
            base = self.conf.get("chukonu.local.dir") or None
            self._spill = tempfile.mkdtemp(prefix="chukonu-", dir=base)
        return self._spill

    @property
    def shuffle_url(self) -> str:
        return self.conf.get("chukonu.shuffle.dir") or os.path.join(self.spill_dir, "shuffle")

    # --------------------------------------------------------------- backend

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            self._backend = self._make_backend()
        return self._backend

    def _data_server_labels(self) -> list[int] | None:
        explicit = self.conf.get("chukonu.workers.dataServers")
        if explicit:
            return [int(x) for x in str(explicit).split(",") if x.strip()]
        address = self.conf.get("chukonu.superfs.address")
        if address:
            from chukonu.io.fs import superfs_client
            from chukonu.placement import data_servers
            return sorted(data_servers(superfs_client(address if address != "local" else None)))
        return None

    def _make_backend(self) -> Backend:
        master = self.conf.get("spark.master", "local[*]")
        kind = self.conf.get("chukonu.executor")
        if kind is None:
            kind = "ray" if master.startswith("ray") else ("inline" if _workers_from_master(master) <= 1
                                                           else "process")
        if kind == "inline":
            from chukonu.engine.backends.inline import InlineBackend
            return InlineBackend(self.spill_dir)
        if kind == "process":
            from chukonu.engine.backends.pool import ProcessPoolBackend
            labels = self._data_server_labels()
            n = int(self.conf.get("chukonu.workers", _workers_from_master(master)))
            return ProcessPoolBackend(len(labels) if labels else n, self.spill_dir, labels)
        if kind == "ray":
            from chukonu.engine.backends.ray_backend import RayBackend
            address = master if master.startswith("ray://") else self.conf.get("chukonu.ray.address")
            return RayBackend(address, self.spill_dir, self.conf)
        from chukonu.errors import unsupported
        raise unsupported(f"chukonu.executor={kind!r}", "use inline, process or ray")

    # ------------------------------------------------------------------- jobs

    def next_id(self) -> int:
        return next(self._ids)

    @contextlib.contextmanager
    def job(self, action: str) -> Iterator[JobRecord]:
        if self._job is not None:   # an action inside an action: one job
            yield self._job
            return
        job = JobRecord(len(self.jobs) + 1, action, started=time.time())
        reset_peak_rss()
        if self._backend is not None:
            self._backend.reset_peaks()
        self._job = job
        try:
            yield job
        except BaseException:
            job.failed = True
            raise
        finally:
            self._job = None
            job.finished = time.time()
            job.driver_peak_rss = peak_rss_bytes()
            self.jobs.append(job)
            self.progress.job_done(job)

    def run_stage(self, name: str, parts: list[Partition], sink: Callable[[int], Any]) -> list[Any]:
        if not parts:
            return []
        with self.job(name) as job:
            stage = StageRecord(self.next_id(), name, len(parts))
            job.stages.append(stage)
            ansi = str(self.conf.get("spark.sql.ansi.enabled", "false")).lower() == "true"
            tasks = [Task(stage.id, i, p, sink(i), p.locality(), label=name, ansi=ansi) for i, p in enumerate(parts)]
            wait = float(self.conf.get("chukonu.locality.wait", "1.0"))
            return Scheduler(self.backend, self.progress, locality_wait=wait).run_stage(stage, tasks)

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None
        if self._spill is not None:
            shutil.rmtree(self._spill, ignore_errors=True)
            self._spill = None
