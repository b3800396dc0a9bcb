"""Start kvserve daemons from Python: in-process (on a thread) or as processes.

For tests, benchmarks and scripts. :class:`ServerThread` runs a daemon on
its own event loop in a background thread (quick to start, shares the
process); :class:`DaemonProcess` runs ``python -m kvserve serve`` as a real
process, waits for its ready file (never sleeps a guessed time), and stops
it with SIGTERM, then SIGKILL if it lingers.
"""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
import time
from typing import Any

from superfs.daemon import read_ready_file
from superfs.procs import python_module

from kvserve.config import ServerConfig
from kvserve.server import KvServer

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class ServerThread:
    """An in-process daemon; ``address`` once started. Use as a context manager."""

    def __init__(self, cfg: ServerConfig) -> None:
        self.server = KvServer(cfg)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="kvserve-server", daemon=True)

    def start(self) -> "ServerThread":
        self._thread.start()
        try:
            self.run(self.server.start())
        except BaseException:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(STOP_TIMEOUT_S)
            self.loop.close()
            raise
        return self

    @property
    def address(self) -> str:
        return self.server.address

    def run(self, coro: Any, timeout_s: float = 60.0) -> Any:
        """Run a coroutine on the daemon's loop (e.g. to call its store) and wait for it."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def call(self, fn: Any, *args: Any) -> Any:
        """Call a plain function on the daemon's loop (the store is not thread-safe)."""
        async def wrapper() -> Any:
            return fn(*args)
        return self.run(wrapper())

    def stop(self) -> None:
        if self._thread.is_alive():
            self.run(self.server.stop())
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(STOP_TIMEOUT_S)
        self.loop.close()

    def __enter__(self) -> "ServerThread":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class DaemonProcess:
    """``python -m kvserve serve ARGS`` as a child process."""

    def __init__(self, state_dir: str, name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        self.ready_file = os.path.join(state_dir, f"{name}.ready")
        self.log_file = os.path.join(state_dir, f"{name}.log")
        self.args = args
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.address = ""

    def start(self) -> "DaemonProcess":
        try:
            os.unlink(self.ready_file)
        except FileNotFoundError:
            pass
        env = {**os.environ, **(self.env or {})}
        env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        with open(self.log_file, "ab") as log:
            self.proc = subprocess.Popen(
                [*python_module("kvserve"), "serve", "--ready-file", self.ready_file, *self.args],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=ROOT,
                start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            info = read_ready_file(self.ready_file)
            if info is not None and info.get("pid") == self.proc.pid:
                self.address = str(info["address"])
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"kvserve exited with {self.proc.returncode} while starting:\n{self.log()}")
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"kvserve did not become ready in {START_TIMEOUT_S:.0f} s:\n{self.log()}")

    def log(self) -> str:
        try:
            with open(self.log_file, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        """Signal the daemon and wait for it (SIGKILL after a timeout); its exit status."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc is not None else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(STOP_TIMEOUT_S)

    def kill(self) -> None:
        """kill -9, as a crash."""
        self.stop(signal.SIGKILL)

    def __enter__(self) -> "DaemonProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
