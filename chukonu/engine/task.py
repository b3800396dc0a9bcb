"""A task (one partition's pipeline into a sink) and how a worker runs it.

``run_task`` is the only code that executes user work. It sets up the
task's context (partition index, the data server the worker sits beside,
read accounting), drains the partition through its sink, and turns any
exception into a ``TaskError`` that names the stage, the partition and the
original error, so the driver can report it even if the exception itself
cannot be pickled.
"""
from __future__ import annotations

import logging
import os
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from chukonu.io.fs import ACCOUNTING

log = logging.getLogger(__name__)


@dataclass
class TaskContext:
    stage: int
    partition: int
    attempt: int = 0
    worker: str = "driver"
    data_server: int | None = None
    spill_dir: str = ""
    input_file: str = ""
    rows_out: int = 0
    ansi: bool = False             # spark.sql.ansi.enabled of the session


@dataclass
class Task:
    stage: int
    partition: int                 # index of the partition within its stage
    source: Any                    # partitions.Partition
    sink: Any                      # sinks.Sink
    preferred: tuple[int, ...] = ()  # data server ids, best first
    attempt: int = 0
    label: str = ""
    ansi: bool = False


@dataclass
class TaskMetrics:
    started: float = 0.0
    finished: float = 0.0
    bytes_local: int = 0
    bytes_remote: int = 0
    rows_out: int = 0
    peak_rss: int = 0
    pid: int = 0


@dataclass
class TaskOutcome:
    ok: bool
    value: Any = None
    error: "TaskError | None" = None
    metrics: TaskMetrics = field(default_factory=TaskMetrics)


@dataclass
class TaskError:
    """What the driver needs to report a failed task."""

    stage: int
    partition: int
    error_type: str
    message: str
    traceback: str
    label: str = ""

    def describe(self) -> str:
        what = f" ({self.label})" if self.label else ""
        return (f"Task failed in stage {self.stage}{what}, partition {self.partition}: "
                f"{self.error_type}: {self.message}")


def peak_rss_bytes() -> int:
    """This process's peak resident set size since start or the last reset_peak_rss()."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak_rss() -> None:
    """Start a new peak RSS window (Linux: writing 5 to clear_refs resets VmHWM)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def run_task(task: Task, worker: str = "driver", data_server: int | None = None, spill_dir: str = "") -> TaskOutcome:
    from chukonu.engine.udfs import UdfError

    tc = TaskContext(task.stage, task.partition, task.attempt, worker, data_server, spill_dir,
                     ansi=getattr(task, "ansi", False))
    metrics = TaskMetrics(started=time.time(), pid=os.getpid())
    ACCOUNTING.reset(data_server)
    try:
        value = task.sink.consume(task.source.batches(tc), tc)
        ok, error = True, None
    except UdfError as e:
        ok, value = False, None
        error = TaskError(task.stage, task.partition, e.cause_type, f"{e.cause_message} (in {e.fname})",
                          traceback.format_exc(), task.label)
    except Exception as e:  # noqa: BLE001 - every failure is reported to the driver
        ok, value = False, None
        error = TaskError(task.stage, task.partition, type(e).__name__, str(e), traceback.format_exc(), task.label)
    metrics.finished = time.time()
    metrics.bytes_local, metrics.bytes_remote = ACCOUNTING.local, ACCOUNTING.remote
    metrics.rows_out = tc.rows_out
    metrics.peak_rss = peak_rss_bytes()
    if error is not None:
        log.debug("task %d.%d failed: %s", task.stage, task.partition, error.describe())
    return TaskOutcome(ok, value, error, metrics)
