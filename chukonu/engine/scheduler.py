"""Which worker runs which task: data-centric placement with a short locality wait.

When a worker is idle it takes, in order: a task whose first-choice data
server is the one beside it; a task that lists its data server as any
replica; a task with no preference, or whose data servers have no live
worker at all (it would wait for nothing); and, once a task has waited
``locality_wait`` seconds for its own worker, any task (it then reads
remotely). This is Spark's delay scheduling, with data servers in the role
of hosts. A worker that dies takes its task with it: the task is queued
again (up to ``max_attempts``) and will run elsewhere. A task that raises
fails the stage at once with the task's error.
"""
from __future__ import annotations

import collections
import logging
import time
from typing import Any

from chukonu.engine.backends.base import Backend
from chukonu.engine.progress import Progress, StageRecord, TaskRecord
from chukonu.engine.task import Task, TaskOutcome
from chukonu.errors import TaskFailedError

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(self, backend: Backend, progress: Progress, locality_wait: float = 1.0,
                 max_attempts: int = 3) -> None:
        self.backend = backend
        self.progress = progress
        self.locality_wait = locality_wait
        self.max_attempts = max_attempts

    def _pick(self, pending: collections.deque, ds: int | None, live_servers: set[int], now: float,
              since: float) -> Task | None:
        if ds is not None:
            for rank in (0, None):
                for t in pending:
                    if t.preferred and ((rank == 0 and t.preferred[0] == ds) or (rank is None and ds in t.preferred)):
                        return t
        for t in pending:
            if not t.preferred or not (set(t.preferred) & live_servers):
                return t
        if now - since >= self.locality_wait and pending:
            return pending[0]
        return None

    def run_stage(self, stage: StageRecord, tasks: list[Task]) -> list[Any]:
        """Run every task of a stage; return their values by partition index."""
        results: dict[int, Any] = {}
        pending = collections.deque(tasks)
        running: dict[str, Task] = {}
        since = time.monotonic()
        stage.started = time.time()
        self.progress.stage_started(stage)
        failure: TaskFailedError | None = None
        while (pending and failure is None) or running:
            workers = [w for w in self.backend.workers() if w.alive]
            if not workers:
                raise TaskFailedError(f"stage {stage.id} ({stage.name}): no live workers left",
                                      stage=stage.id)
            live_servers = {w.data_server for w in workers if w.data_server is not None}
            now = time.monotonic()
            for w in workers:
                if w.id in running or not pending or failure is not None:
                    continue
                t = self._pick(pending, w.data_server, live_servers, now, since)
                if t is None:
                    continue
                pending.remove(t)
                running[w.id] = t
                self.backend.submit(w.id, (stage.id, t.partition, t.attempt), t)
            wait = 0.05 if pending else 1.0
            for ev in self.backend.poll(wait):
                task = running.get(ev.worker)
                if task is None or ev.key != (stage.id, task.partition, task.attempt):
                    continue  # an answer to an abandoned task (an interrupted job): not this one's
                del running[ev.worker]
                if ev.kind == "lost":
                    self._record_lost(stage, task, ev.worker)
                    if task.attempt + 1 >= self.max_attempts:
                        failure = TaskFailedError(
                            f"Task {task.partition} of stage {stage.id} ({stage.name}) failed {self.max_attempts} "
                            f"times: its worker died", stage=stage.id, partition=task.partition,
                            cause_type="WorkerLostError", cause_message="worker died")
                        continue
                    task.attempt += 1
                    pending.appendleft(task)
                    since = min(since, time.monotonic() - self.locality_wait)   # do not wait for a dead worker
                    continue
                outcome: TaskOutcome = ev.outcome
                self._record(stage, task, ev.worker, outcome)
                if not outcome.ok:
                    err = outcome.error
                    assert err is not None
                    if failure is None:
                        failure = TaskFailedError(err.describe(), stage=stage.id, partition=task.partition,
                                                  cause_type=err.error_type, cause_message=err.message,
                                                  remote_traceback=err.traceback)
                    continue
                results[task.partition] = outcome.value
                self.progress.task_done(stage, len(results))
        stage.finished = time.time()
        if failure is not None:
            raise failure
        return [results[t.partition] for t in sorted(tasks, key=lambda t: t.partition)]

    def _worker_ds(self, worker: str) -> int | None:
        for w in self.backend.workers():
            if w.id == worker:
                return w.data_server
        return None

    def _record(self, stage: StageRecord, task: Task, worker: str, outcome: TaskOutcome) -> None:
        ds = self._worker_ds(worker)
        if not task.preferred:
            locality = "any"
        elif ds is not None and ds == task.preferred[0]:
            locality = "local"
        elif ds is not None and ds in task.preferred:
            locality = "replica"
        else:
            locality = "remote"
        m = outcome.metrics
        stage.tasks.append(TaskRecord(stage.id, task.partition, task.attempt, worker, ds, tuple(task.preferred),
                                      locality, m.started, m.finished, m.bytes_local, m.bytes_remote, m.rows_out,
                                      m.peak_rss, m.pid, outcome.ok))

    def _record_lost(self, stage: StageRecord, task: Task, worker: str) -> None:
        now = time.time()
        stage.tasks.append(TaskRecord(stage.id, task.partition, task.attempt, worker, self._worker_ds(worker),
                                      tuple(task.preferred), "lost", now, now, 0, 0, 0, 0, 0, False))
