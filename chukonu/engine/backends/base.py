"""The backend interface the scheduler drives.

Call order: ``workers()`` to see who can run tasks (and beside which data
server), ``submit(worker, key, task)`` for an idle worker, ``poll(timeout)``
for events, ``close()`` at the end. A worker runs one task at a time. A
``lost`` event means the worker died with the task: the scheduler runs the
task again elsewhere.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class WorkerInfo:
    id: str
    data_server: int | None = None   # the SuperFS data server this worker sits beside
    node: str = "local"
    pid: int | None = None
    alive: bool = True


@dataclass
class Event:
    kind: str            # "done" | "lost"
    worker: str
    key: Any
    outcome: Any = None  # TaskOutcome for "done"


class Backend:
    name = "?"

    def workers(self) -> list[WorkerInfo]:
        raise NotImplementedError

    def submit(self, worker: str, key: Any, task: Any) -> None:
        raise NotImplementedError

    def poll(self, timeout: float) -> list[Event]:
        raise NotImplementedError

    def reset_peaks(self) -> None:
        """Start a new peak-memory window on every worker (at the start of a job)."""

    def close(self) -> None:
        pass
