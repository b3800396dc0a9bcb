"""Run tasks in the driver process, one after another: no start-up cost, for small jobs and debugging."""
from __future__ import annotations

import logging
from typing import Any

from chukonu.engine.backends.base import Backend, Event, WorkerInfo
from chukonu.engine.task import reset_peak_rss, run_task

log = logging.getLogger(__name__)


class InlineBackend(Backend):
    name = "inline"

    def __init__(self, spill_dir: str, data_server: int | None = None) -> None:
        self.spill_dir = spill_dir
        self.info = WorkerInfo("driver", data_server)
        self._queue: list[tuple[Any, Any]] = []

    def workers(self) -> list[WorkerInfo]:
        return [self.info]

    def submit(self, worker: str, key: Any, task: Any) -> None:
        self._queue.append((key, task))

    def poll(self, timeout: float) -> list[Event]:
        events = []
        while self._queue:
            key, task = self._queue.pop(0)
            outcome = run_task(task, "driver", self.info.data_server, self.spill_dir)
            events.append(Event("done", "driver", key, outcome))
        return events

    def reset_peaks(self) -> None:
        reset_peak_rss()
