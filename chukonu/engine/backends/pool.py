"""A local pool of worker processes, each optionally beside one SuperFS data server.

Workers are fresh interpreters (``backends.worker``) that connect back to a
Unix-socket listener of the driver. Each worker owns its connection: the
scheduler picks the worker for every task, which data-centric placement
needs and a generic process pool executor cannot do. Tasks travel
cloudpickled (they carry lambdas), results pickled. A worker that dies
closes its connection; the next poll reports it ``lost`` with its task.
"""
from __future__ import annotations

import logging
import multiprocessing.connection
import os
import pickle
import secrets
import signal
import subprocess
import sys
import tempfile
from typing import Any, Sequence

from chukonu.engine.backends.base import Backend, Event, WorkerInfo
from superfs.procs import python_module

log = logging.getLogger(__name__)

START_TIMEOUT_S = 60.0


class ProcessPoolBackend(Backend):
    name = "process"

    def __init__(self, num_workers: int, spill_dir: str, data_servers: Sequence[int | None] | None = None) -> None:
        self.spill_dir = spill_dir
        labels = list(data_servers) if data_servers else [None] * num_workers
        self._sock_dir = tempfile.mkdtemp(prefix="chukonu-pool-")
        address = os.path.join(self._sock_dir, "driver.sock")
        authkey = secrets.token_bytes(32)
        listener = multiprocessing.connection.Listener(address, family="AF_UNIX", authkey=authkey)
        self._info: dict[str, WorkerInfo] = {}
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._conns: dict[str, Any] = {}
        self._running: dict[str, Any] = {}
        env = dict(os.environ)
        # the workers must import what the driver imported, even from a path added at run time
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        level = str(logging.getLogger("chukonu").getEffectiveLevel())
        try:
            for i, ds in enumerate(labels):
                wid = f"worker-{i}" if ds is None else f"worker-{i}@ds{ds}"
                p = subprocess.Popen([*python_module("chukonu.engine.backends.worker"), address, wid,
                                      "-" if ds is None else str(ds), spill_dir, level],
                                     stdin=subprocess.PIPE, env=env, start_new_session=True)
                assert p.stdin is not None
                p.stdin.write(authkey.hex().encode() + b"\n")
                p.stdin.close()
                self._procs[wid] = p
                self._info[wid] = WorkerInfo(wid, ds, "local", p.pid, True)
            self._accept(listener)
        finally:
            listener.close()
        log.info("process pool: %d workers %s", len(labels), list(self._info))

    def _accept(self, listener: Any) -> None:
        import socket
        listener._listener._socket.settimeout(START_TIMEOUT_S)
        while len(self._conns) < len(self._procs):
            try:
                conn = listener.accept()
            except socket.timeout:
                dead = [w for w, p in self._procs.items() if p.poll() is not None]
                self.close()
                raise RuntimeError(f"chukonu workers did not start within {START_TIMEOUT_S:.0f} s "
                                   f"(exited: {dead})") from None
            _op, wid, _ = pickle.loads(conn.recv_bytes())
            self._conns[wid] = conn

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
        if not alive:
            return []
        ready = multiprocessing.connection.wait(list(alive.values()), timeout)
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
        return events

    def _lost(self, w: str) -> list[Event]:
        info = self._info[w]
        if not info.alive:
            return []
        info.alive = False
        log.warning("worker %s (pid %s) is gone", w, info.pid)
        self._procs[w].poll()
        key = self._running.pop(w, None)
        return [Event("lost", w, key)] if key is not None else []

    def kill_worker(self, worker: str) -> None:
        """kill -9 one worker (tests take a data server's worker away with it)."""
        p = self._procs[worker]
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
        p.wait(10)

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
        for p in self._procs.values():
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        for c in self._conns.values():
            c.close()
        self._conns.clear()
        try:
            os.rmdir(self._sock_dir)
        except OSError:
            pass
