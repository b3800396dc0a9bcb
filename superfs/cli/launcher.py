"""A local cluster: daemon processes started from the CLI, state in one directory.

Layout of a state directory::

    cluster.json      dir server address, daemon list and settings (clients read it)
    secret            the cluster secret (mode 0600; daemons only)
    dir/  shard-N/  data-N/      each daemon's LMDB data
    run/NAME.ready    written by the daemon once it serves: {"address", "pid"}
    log/NAME.log      each daemon's log

The first ``up`` picks free loopback ports and records them; later ``up``s
restart the same daemons on the same ports with their data. Readiness is
the ready file appearing (never a sleep); a daemon that dies while starting
is reported with the tail of its log.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

from superfs.client.local import CLUSTER_FILE
from superfs.daemon import read_ready_file

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0


class LaunchError(Exception):
    """The cluster could not be started or stopped; the message says why."""


@dataclass(frozen=True)
class DaemonSpec:
    name: str          # "dir", "shard-0", "data-1"
    kind: str          # "dir-server", "shard", "data-server"
    index: int
    port: int


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child is not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


class LocalCluster:
    def __init__(self, state_dir: str) -> None:
        self.state_dir = os.path.abspath(state_dir)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    # ------------------------------------------------------------------ files

    def path(self, *parts: str) -> str:
        return os.path.join(self.state_dir, *parts)

    @property
    def config(self) -> dict[str, object]:
        with open(self.path(CLUSTER_FILE)) as f:
            return json.load(f)

    def exists(self) -> bool:
        return os.path.exists(self.path(CLUSTER_FILE))

    def init(self, *, shards: int, data_servers: int, replicas: int, inline_threshold: int,
             chunk_size: int, durability: str, host: str = "127.0.0.1") -> None:
        """Create the state directory and choose ports (first ``up`` only)."""
        if shards < 1 or data_servers < 0:
            raise LaunchError("a cluster needs at least one shard")
        os.makedirs(self.path("run"), exist_ok=True)
        os.makedirs(self.path("log"), exist_ok=True)
        secret_path = self.path("secret")
        if not os.path.exists(secret_path):
            fd = os.open(secret_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
        cfg = {
            "dir_server": f"{host}:{free_port(host)}",
            "shards": [f"{host}:{free_port(host)}" for _ in range(shards)],
            "data_servers": [f"{host}:{free_port(host)}" for _ in range(data_servers)],
            "replicas": replicas,
            "inline_threshold": inline_threshold,
            "chunk_size": chunk_size,
            "durability": durability,
        }
        tmp = self.path(CLUSTER_FILE + ".tmp")
        with open(tmp, "w") as f:
            json.dump(cfg, f, indent=2)
        os.replace(tmp, self.path(CLUSTER_FILE))

    def specs(self) -> list[DaemonSpec]:
        cfg = self.config
        out = [DaemonSpec("dir", "dir-server", 0, int(str(cfg["dir_server"]).rsplit(":", 1)[1]))]
        for i, addr in enumerate(cfg["shards"]):  # type: ignore[arg-type]
            out.append(DaemonSpec(f"shard-{i}", "shard", i, int(addr.rsplit(":", 1)[1])))
        for i, addr in enumerate(cfg["data_servers"]):  # type: ignore[arg-type]
            out.append(DaemonSpec(f"data-{i}", "data-server", i, int(addr.rsplit(":", 1)[1])))
        return out

    def spec(self, name: str) -> DaemonSpec:
        for s in self.specs():
            if s.name == name:
                return s
        raise LaunchError(f"no daemon named {name!r} in {self.state_dir}")

    def command(self, spec: DaemonSpec) -> list[str]:
        cfg = self.config
        host = str(cfg["dir_server"]).rsplit(":", 1)[0]
        common = ["--data-dir", self.path(spec.name), "--listen", f"{host}:{spec.port}",
                  "--ready-file", self.path("run", f"{spec.name}.ready"),
                  "--durability", str(cfg["durability"])]
        cmd = [sys.executable, "-m", "superfs.cli.main", spec.kind] + common
        if spec.kind == "dir-server":
            cmd += ["--secret-file", self.path("secret"), "--shards", str(len(cfg["shards"])),  # type: ignore[arg-type]
                    "--replicas", str(cfg["replicas"]), "--inline-threshold", str(cfg["inline_threshold"]),
                    "--chunk-size", str(cfg["chunk_size"])]
        elif spec.kind == "shard":
            cmd += ["--id", str(spec.index), "--dir-server", str(cfg["dir_server"]),
                    "--secret-file", self.path("secret")]
        else:
            cmd += ["--id", str(spec.index), "--dir-server", str(cfg["dir_server"])]
        return cmd

    # -------------------------------------------------------------- lifecycle

    def running_pid(self, name: str) -> int | None:
        info = read_ready_file(self.path("run", f"{name}.ready"))
        if info is None:
            return None
        pid = int(info["pid"])  # type: ignore[arg-type]
        return pid if pid_alive(pid) else None

    def start_daemon(self, name: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes] | None:
        """Spawn one daemon (if not running); returns its process or None."""
        if self.running_pid(name) is not None:
            return None
        spec = self.spec(name)
        ready = self.path("run", f"{name}.ready")
        try:
            os.unlink(ready)  # stale, from a daemon that was killed
        except FileNotFoundError:
            pass
        log = open(self.path("log", f"{name}.log"), "ab")
        proc = subprocess.Popen(self.command(spec), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env={**os.environ, **(env or {})})
        log.close()
        self.procs[name] = proc
        return proc

    def wait_ready(self, name: str, timeout_s: float = START_TIMEOUT_S) -> str:
        """Wait for the daemon's ready file; return its address."""
        ready = self.path("run", f"{name}.ready")
        deadline = time.monotonic() + timeout_s
        proc = self.procs.get(name)
        while time.monotonic() < deadline:
            info = read_ready_file(ready)
            if info is not None and pid_alive(int(info["pid"])):  # type: ignore[arg-type]
                return str(info["address"])
            if proc is not None and proc.poll() is not None:
                raise LaunchError(f"{name} exited with status {proc.returncode} while starting:\n"
                                  + self.log_tail(name))
            time.sleep(0.02)
        raise LaunchError(f"{name} did not become ready within {timeout_s:.0f} s:\n" + self.log_tail(name))

    def log_tail(self, name: str, lines: int = 15) -> str:
        try:
            with open(self.path("log", f"{name}.log"), errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def start(self, env: dict[str, str] | None = None) -> dict[str, str]:
        """Start every daemon that is not running; return name -> address."""
        names = [s.name for s in self.specs()]
        for name in names:  # the dir server first: the others register with it
            self.start_daemon(name, env)
            if name == "dir":
                self.wait_ready(name)
        return {name: self.wait_ready(name) for name in names}

    def stop_daemon(self, name: str, sig: int = signal.SIGTERM, timeout_s: float = STOP_TIMEOUT_S) -> bool:
        """Signal one daemon and wait for it to exit (SIGKILL after the timeout)."""
        pid = self.running_pid(name)
        proc = self.procs.get(name)
        if pid is None and proc is not None and proc.poll() is None:
            pid = proc.pid
        if pid is None:
            return False
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return False
        deadline = time.monotonic() + timeout_s
        while pid_alive(pid):
            if proc is not None:
                proc.poll()
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + timeout_s
            time.sleep(0.02)
        if proc is not None:
            proc.wait()
        if sig == signal.SIGKILL:
            try:
                os.unlink(self.path("run", f"{name}.ready"))
            except FileNotFoundError:
                pass
        return True

    def kill(self, name: str) -> None:
        """kill -9, as a crash."""
        self.stop_daemon(name, signal.SIGKILL)

    def stop(self) -> list[str]:
        stopped = []
        for spec in reversed(self.specs()):
            if self.stop_daemon(spec.name):
                stopped.append(spec.name)
        return stopped

    def status(self) -> list[tuple[str, str, int | None]]:
        cfg = self.config
        addr = {"dir": str(cfg["dir_server"])}
        for i, a in enumerate(cfg["shards"]):  # type: ignore[arg-type]
            addr[f"shard-{i}"] = a
        for i, a in enumerate(cfg["data_servers"]):  # type: ignore[arg-type]
            addr[f"data-{i}"] = a
        return [(s.name, addr[s.name], self.running_pid(s.name)) for s in self.specs()]
