"""Job, stage and task records, live progress per stage, and the end-of-job summary.

Every task the scheduler runs leaves a ``TaskRecord``: where it ran (worker,
and the data server beside it), where it wanted to run, bytes it read
locally and remotely, rows out, peak memory. Tests assert placement from
these records; the summary printed at the end of a job is computed from
them too. Progress goes to stderr as one updating line per stage when
stderr is a terminal (``chukonu.progress=console``), to the log otherwise.
"""
from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass
class TaskRecord:
    stage: int
    partition: int
    attempt: int
    worker: str
    worker_data_server: int | None
    preferred: tuple[int, ...]
    locality: str            # "local": beside its data; "remote": elsewhere; "any": no preference
    started: float
    finished: float
    bytes_local: int
    bytes_remote: int
    rows_out: int
    peak_rss: int
    pid: int
    ok: bool


@dataclass
class StageRecord:
    id: int
    name: str
    num_tasks: int
    started: float = 0.0
    finished: float = 0.0
    tasks: list[TaskRecord] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return max(0.0, self.finished - self.started)


@dataclass
class JobRecord:
    id: int
    action: str
    started: float = 0.0
    finished: float = 0.0
    stages: list[StageRecord] = field(default_factory=list)
    driver_peak_rss: int = 0
    failed: bool = False

    @property
    def tasks(self) -> list[TaskRecord]:
        return [t for s in self.stages for t in s.tasks]

    @property
    def bytes_local(self) -> int:
        return sum(t.bytes_local for t in self.tasks if t.ok)

    @property
    def bytes_remote(self) -> int:
        return sum(t.bytes_remote for t in self.tasks if t.ok)

    @property
    def worker_peak_rss(self) -> int:
        return max((t.peak_rss for t in self.tasks if t.pid and t.worker != "driver"), default=0)

    def summary(self) -> str:
        lines = [f"chukonu job {self.id} ({self.action}) {'FAILED' if self.failed else 'done'} in "
                 f"{self.finished - self.started:.2f} s"]
        for s in self.stages:
            lines.append(f"  stage {s.id} {s.name}: {s.num_tasks} tasks, {s.seconds:.2f} s")
        lines.append(f"  bytes read: {_size(self.bytes_local)} local, {_size(self.bytes_remote)} remote")
        lines.append(f"  peak memory: driver {_size(self.driver_peak_rss)}, "
                     f"largest worker {_size(self.worker_peak_rss)}")
        return "\n".join(lines)


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


class Progress:
    """Reports per-stage progress and the job summary, on the console or in the log."""

    def __init__(self, mode: str = "auto") -> None:
        if mode == "auto":
            mode = "console" if sys.stderr.isatty() else "log"
        self.mode = mode
        self._last = 0.0

    def stage_started(self, stage: StageRecord) -> None:
        if self.mode == "log":
            log.info("stage %d (%s): %d tasks", stage.id, stage.name, stage.num_tasks)

    def task_done(self, stage: StageRecord, done: int) -> None:
        if self.mode == "console":
            now = time.monotonic()
            if done == stage.num_tasks or now - self._last > 0.1:
                self._last = now
                sys.stderr.write(f"\r[Stage {stage.id} {stage.name}: {done}/{stage.num_tasks} tasks]")
                if done == stage.num_tasks:
                    sys.stderr.write("\n")
                sys.stderr.flush()
        elif self.mode == "log":
            log.debug("stage %d: %d/%d tasks", stage.id, done, stage.num_tasks)

    def job_done(self, job: JobRecord) -> None:
        if self.mode == "console":
            sys.stderr.write(job.summary() + "\n")
            sys.stderr.flush()
        elif self.mode == "log":
            log.info("%s", job.summary())
