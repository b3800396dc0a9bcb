"""A local pool of worker processes, each optionally beside one SuperFS data server.

Workers are started from a fork server that has already imported Arrow,
numpy and chukonu, so a worker costs a fork rather than a fresh
interpreter. Each worker owns a pipe: the scheduler picks the worker for
each task (that is what data-centric placement needs, and what a generic
process pool executor cannot do). Tasks travel cloudpickled (they carry
lambdas); results come back pickled. A worker that dies is noticed through
its process sentinel and reported as ``lost`` with the task it was running.
"""
from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
from typing import Any

from chukonu.engine.backends.base import Backend, Event, WorkerInfo
from chukonu.engine.task import TaskError, TaskOutcome

log = logging.getLogger(__name__)

PRELOAD = ["numpy", "pyarrow", "pyarrow.compute", "chukonu.engine.task", "chukonu.engine.ops",
           "chukonu.engine.kernels", "chukonu.engine.aggregate", "chukonu.io.readers"]


def worker_main(conn: Any, worker_id: str, data_server: int | None, spill_dir: str, log_level: int) -> None:
    """The loop of one worker process: receive a task, run it, send the outcome."""
    import cloudpickle

    from chukonu.engine.task import reset_peak_rss, run_task

    logging.basicConfig(level=log_level)
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # the driver decides when workers stop
    while True:
        try:
            op, key, payload = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return
        if op == "stop":
            return
        if op == "reset":
            reset_peak_rss()
            continue
        try:
            task = cloudpickle.loads(payload)
            outcome = run_task(task, worker_id, data_server, spill_dir)
        except Exception as e:  # noqa: BLE001 - a task that cannot even be loaded still gets an answer
            outcome = TaskOutcome(False, error=TaskError(-1, -1, type(e).__name__, f"cannot load task: {e}", ""))
        try:
            data = pickle.dumps((key, outcome), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as e:  # noqa: BLE001
            bad = TaskOutcome(False, error=TaskError(task.stage, task.partition, type(e).__name__,
                                                     f"the task's result cannot be sent to the driver: {e}", ""),
                              metrics=outcome.metrics)
            data = pickle.dumps((key, bad), protocol=pickle.HIGHEST_PROTOCOL)
        try:
            conn.send_bytes(data)
        except (BrokenPipeError, OSError):
            return


class ProcessPoolBackend(Backend):
    name = "process"

    def __init__(self, num_workers: int, spill_dir: str, data_servers: list[int | None] | None = None) -> None:
        ctx = multiprocessing.get_context("forkserver")
        try:
            ctx.set_forkserver_preload(PRELOAD)
        except (AttributeError, ValueError):
            pass
        self.spill_dir = spill_dir
        labels = list(data_servers) if data_servers else [None] * num_workers
        self._info: dict[str, WorkerInfo] = {}
        self._procs: dict[str, Any] = {}
        self._conns: dict[str, Any] = {}
        self._running: dict[str, Any] = {}
        level = logging.getLogger("chukonu").getEffectiveLevel()
        for i, ds in enumerate(labels):
            wid = f"worker-{i}" if ds is None else f"worker-{i}@ds{ds}"
            parent, child = ctx.Pipe(duplex=True)
            p = ctx.Process(target=worker_main, args=(child, wid, ds, spill_dir, level), name=f"chukonu-{wid}",
                            daemon=True)
            p.start()
            child.close()
            self._procs[wid], self._conns[wid] = p, parent
            self._info[wid] = WorkerInfo(wid, ds, "local", p.pid, True)
        log.info("process pool: %d workers %s", len(labels), [w for w in self._info])

    def workers(self) -> list[WorkerInfo]:
        return list(self._info.values())

    def submit(self, worker: str, key: Any, task: Any) -> None:
        import cloudpickle
        payload = cloudpickle.dumps(task, protocol=pickle.HIGHEST_PROTOCOL)
        self._running[worker] = key
        try:
            self._conns[worker].send_bytes(pickle.dumps(("task", key, payload), protocol=pickle.HIGHEST_PROTOCOL))
        except (BrokenPipeError, OSError):
            pass   # noticed as lost at the next poll

    def poll(self, timeout: float) -> list[Event]:
        alive = {w: c for w, c in self._conns.items() if self._info[w].alive}
        waitables: list[Any] = list(alive.values()) + [self._procs[w].sentinel for w in alive]
        if not waitables:
            return []
        ready = multiprocessing.connection.wait(waitables, timeout)
        events: list[Event] = []
        for w, conn in alive.items():
            if conn in ready:
                try:
                    key, outcome = pickle.loads(conn.recv_bytes())
                except (EOFError, OSError):
                    events.extend(self._lost(w))
                    continue
                self._running.pop(w, None)
                events.append(Event("done", w, key, outcome))
        for w in alive:
            if self._info[w].alive and self._procs[w].sentinel in ready and not conn_has_data(self._conns[w]):
                events.extend(self._lost(w))
        return events

    def _lost(self, w: str) -> list[Event]:
        info = self._info[w]
        if not info.alive:
            return []
        info.alive = False
        log.warning("worker %s (pid %s) is gone", w, info.pid)
        key = self._running.pop(w, None)
        return [Event("lost", w, key)] if key is not None else []

    def kill_worker(self, worker: str) -> None:
        """Kill one worker (tests use it to take a data server's worker away)."""
        p = self._procs[worker]
        if p.is_alive():
            os.kill(p.pid, signal.SIGKILL)
        p.join(10)
        self._lost(worker)

    def reset_peaks(self) -> None:
        for w, c in self._conns.items():
            if self._info[w].alive:
                try:
                    c.send_bytes(pickle.dumps(("reset", None, None)))
                except (BrokenPipeError, OSError):
                    pass

    def close(self) -> None:
        for w, c in self._conns.items():
            try:
                c.send_bytes(pickle.dumps(("stop", None, None)))
            except (BrokenPipeError, OSError):
                pass
        for w, p in self._procs.items():
            p.join(5)
            if p.is_alive():
                p.kill()
                p.join(5)
        for c in self._conns.values():
            c.close()


def conn_has_data(conn: Any) -> bool:
    try:
        return bool(conn.poll(0))
    except (EOFError, OSError):
        return False
