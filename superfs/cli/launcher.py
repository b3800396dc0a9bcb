"""A local cluster: daemon processes started from the CLI, state in one directory.

Layout of a state directory::

    cluster.toml      the cluster file: addresses, data dirs, metrics ports, settings,
                      credentials' paths; every daemon runs with --config cluster.toml
    cluster.json      the same addresses as JSON (older readers)
    secret            the cluster secret (mode 0600; daemons only)
    tokens            the cluster's token, 'TOKEN any any daemon' (mode 0600): daemons
                      accept it, daemons and this user's clients present it (made by
                      'superfs up' unless --no-auth; LocalCluster.init(auth=True))
    dir/  shard-N/  data-N/      each daemon's LMDB data
    run/NAME.ready    written by the daemon once it serves: {"address", "pid", "metrics"}
    log/NAME.log      each daemon's log

The first ``up`` picks free loopback ports (for gRPC and for metrics) and
records them; later ``up``s restart the same daemons on the same ports with
their data. While the cluster runs, the dir server's address is in this
user's index of local clusters, so clients that know only the address find
the token.
Readiness is the ready file appearing (never a sleep); a daemon that dies
while starting is reported with the tail of its log. A state directory made
before cluster.toml existed gets one (same ports) on its next start.
"""
from __future__ import annotations

import json
import os
import random
import secrets
import signal
import socket
import subprocess
import time
from collections import deque
from dataclasses import dataclass, replace
from typing import Any

from superfs.procs import pid_alive, python_module
from superfs import config_file
from superfs.auth import TOKEN_ENV
from superfs.client.local import CLUSTER_FILE, CLUSTER_TOML, register_address, unregister_address
from superfs.config import AuthConfig
from superfs.config_file import ClusterFile, NodeSettings
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


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def fixed_port(host: str = "127.0.0.1") -> int:
    """A free port below the kernel's ephemeral range, for a daemon to bind again and again.

    A port from the ephemeral range (what :func:`free_port` gets) may be taken,
    between two starts of the daemon, by any outgoing connection on the host;
    one below it is only ever taken by something that binds it on purpose.
    """
    low = _ephemeral_low()
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(max(1024, low // 2), low)
        if port in _HANDED_SET:  # handed out already (its daemon may not have bound it yet)
            continue
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        _HANDED.append(port)
        _HANDED_SET.add(port)
        if len(_HANDED) > HANDED_KEPT:
            _HANDED_SET.discard(_HANDED.popleft())
        return port
    return free_port(host)


HANDED_KEPT = 4096
_HANDED: deque[int] = deque()    # ports fixed_port handed out lately, in this process
_HANDED_SET: set[int] = set()


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

    @property
    def config_path(self) -> str:
        return self.path(CLUSTER_TOML)

    def cluster_file(self) -> ClusterFile:
        if not os.path.exists(self.config_path):
            self._migrate()
        return config_file.load(self.config_path)

    def exists(self) -> bool:
        return os.path.exists(self.path(CLUSTER_FILE)) or os.path.exists(self.config_path)

    def _secret_file(self, name: str, content: str) -> str:
        """Create a mode-0600 file once; keep it (and its secret) on later calls."""
        p = self.path(name)
        if not os.path.exists(p):
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(content)
        return p

    def init(self, *, shards: int, data_servers: int, replicas: int, inline_threshold: int,
             chunk_size: int, durability: str, host: str = "127.0.0.1", metrics: bool = False,
             auth: bool = False, base: ClusterFile | None = None) -> None:
        """Create the state directory and choose ports (first ``up`` only).

        ``auth``: generate a token into the state directory and make the
        daemons require it. ``metrics``: give each daemon a metrics port.
        ``superfs up`` turns both on (``--no-auth``, ``--no-metrics`` to opt
        out); the defaults here stay off because tests drive daemons with
        raw, credential-less gRPC stubs and start many clusters at once
        (every port chosen ahead of binding is a chance to lose a race).
        ``base`` (from ``superfs up --config``) supplies the cluster-wide
        settings, TLS and auth (its tokens file, if any, wins over ``auth``);
        addresses, data dirs and ports are chosen here.
        """
        if shards < 1 or data_servers < 0:
            raise LaunchError("a cluster needs at least one shard")
        os.makedirs(self.path("run"), exist_ok=True)
        os.makedirs(self.path("log"), exist_ok=True)
        addresses = {  # below the ephemeral range: no outgoing connection takes one before its daemon binds it
            "dir_server": f"{host}:{fixed_port(host)}",
            "shards": [f"{host}:{fixed_port(host)}" for _ in range(shards)],
            "data_servers": [f"{host}:{fixed_port(host)}" for _ in range(data_servers)],
        }
        self._write_files(addresses, replicas=replicas, inline_threshold=inline_threshold, chunk_size=chunk_size,
                          durability=durability, metrics=metrics, auth=auth, base=base or ClusterFile())

    def _write_files(self, addresses: dict[str, Any], *, replicas: int, inline_threshold: int,
                     chunk_size: int, durability: str, metrics: bool, auth: bool, base: ClusterFile) -> None:
        secret = self._secret_file("secret", secrets.token_hex(32))
        auth_cfg = base.auth
        if auth and auth_cfg.tokens_file is None:
            tokens = self._secret_file(
                "tokens", "# written by 'superfs up': the cluster's token (daemons and this user's clients)\n"
                          f"{secrets.token_hex(32)} any any daemon\n")
            auth_cfg = AuthConfig(token_file=tokens, tokens_file=tokens)

        def node(i: int, address: str, data_dir: str, *, data: bool = False) -> NodeSettings:
            host, port = address.rsplit(":", 1)
            mport = fixed_port(host) if metrics else 0
            # fixed session and byte ports, so that a restarted daemon is found where its clients knew it
            try:
                sport = fixed_port(host)
                bport = fixed_port(host) if data else 0
            except OSError:  # another host's address (a network namespace): the ports after its own
                sport = int(port) + 1
                bport = int(port) + 2 if data else 0
            return NodeSettings(id=i, address=address, listen=address, data_dir=self.path(data_dir),
                                metrics_port=mport, session_port=sport, bytes_port=bport)

        cf = replace(
            base, path=None, replicas=replicas, inline_threshold=inline_threshold, chunk_size=chunk_size,
            durability=durability, secret_file=secret, auth=auth_cfg,
            dir_server=node(0, str(addresses["dir_server"]), "dir"),
            shards=tuple(node(i, a, f"shard-{i}") for i, a in enumerate(addresses["shards"])),
            data_servers=tuple(node(i, a, f"data-{i}", data=True)
                               for i, a in enumerate(addresses["data_servers"])))
        cf = config_file.parse(config_file.to_dict(cf))  # validate what is about to be written
        config_file.write(self.config_path, cf, header=(
            "SuperFS cluster file written by 'superfs up' for the local cluster in this directory.\n"
            "Daemons run with --config pointing here; clients: superfs.connect(config=<this file>)."))
        cfg = {
            **addresses,
            "replicas": replicas,
            "inline_threshold": inline_threshold,
            "chunk_size": chunk_size,
            "durability": durability,
            "config": self.config_path,
        }
        tmp = self.path(CLUSTER_FILE + ".tmp")
        with open(tmp, "w") as f:
            json.dump(cfg, f, indent=2)
        os.replace(tmp, self.path(CLUSTER_FILE))
        register_address(str(addresses["dir_server"]), self.config_path)

    def add_shard_node(self) -> str:
        """Add a shard (the next id, fresh ports and data dir) to cluster.toml; its daemon's name.

        It is not started here: ``start_daemon(name)`` starts it, it registers with the dir
        server and owns nothing until ``superfs admin add-shard`` moves partitions to it.
        """
        cf = self.cluster_file()
        i = max(n.id for n in cf.shards) + 1
        host = cf.shards[0].listen.rsplit(":", 1)[0]
        address = f"{host}:{free_port(host)}"
        node = NodeSettings(id=i, address=address, listen=address, data_dir=self.path(f"shard-{i}"),
                            metrics_port=free_port(host) if any(n.metrics_port for n in cf.shards) else 0,
                            session_port=fixed_port(host))
        cf = config_file.parse(config_file.to_dict(replace(cf, shards=(*cf.shards, node))))
        config_file.write(self.config_path, cf, header=(
            "SuperFS cluster file written by 'superfs up' for the local cluster in this directory.\n"
            "Daemons run with --config pointing here; clients: superfs.connect(config=<this file>)."))
        cfg = self.config
        cfg["shards"] = [*cfg["shards"], address]  # type: ignore[misc]
        tmp = self.path(CLUSTER_FILE + ".tmp")
        with open(tmp, "w") as f:
            json.dump(cfg, f, indent=2)
        os.replace(tmp, self.path(CLUSTER_FILE))
        return f"shard-{i}"

    def _migrate(self) -> None:
        """Give a state directory from before cluster.toml one, with the ports it already uses."""
        cfg = self.config
        self._write_files({k: cfg[k] for k in ("dir_server", "shards", "data_servers")},
                          replicas=int(cfg["replicas"]), inline_threshold=int(cfg["inline_threshold"]),  # type: ignore[call-overload]
                          chunk_size=int(cfg["chunk_size"]), durability=str(cfg["durability"]),  # type: ignore[call-overload]
                          metrics=True, auth=True, base=ClusterFile())

    def add_data_server(self) -> str:
        """Give the cluster one more data server (the next id, a free port) and start it; its name.

        It registers with the dir server like any other: new files use it at
        once, and ``superfs admin rebalance`` moves existing chunks onto it.
        """
        cf = self.cluster_file()
        if not cf.data_servers:
            raise LaunchError("this cluster has no data server to model the new one on")
        last = max(cf.data_servers, key=lambda n: n.id)
        host = last.address.rsplit(":", 1)[0]
        new_id = last.id + 1
        port = free_port(host)
        node = replace(last, id=new_id, address=f"{host}:{port}", listen=f"{host}:{port}",
                       data_dir=self.path(f"data-{new_id}"), metrics_port=free_port(host) if last.metrics_port else 0,
                       session_port=fixed_port(host) if last.session_port else 0)
        cf = config_file.parse(config_file.to_dict(replace(cf, data_servers=(*cf.data_servers, node))))
        config_file.write(self.config_path, cf, header=(
            "SuperFS cluster file written by 'superfs up' for the local cluster in this directory.\n"
            "Daemons run with --config pointing here; clients: superfs.connect(config=<this file>)."))
        cfg = self.config
        cfg["data_servers"] = [*cfg["data_servers"], node.address]  # type: ignore[misc]
        tmp = self.path(CLUSTER_FILE + ".tmp")
        with open(tmp, "w") as f:
            json.dump(cfg, f, indent=2)
        os.replace(tmp, self.path(CLUSTER_FILE))
        name = f"data-{new_id}"
        self.start_daemon(name)
        self.wait_ready(name)
        return name

    def specs(self) -> list[DaemonSpec]:
        cf = self.cluster_file()
        assert cf.dir_server is not None
        out = [DaemonSpec("dir", "dir-server", 0, int(cf.dir_server.listen.rsplit(":", 1)[1]))]
        out += [DaemonSpec(f"shard-{n.id}", "shard", n.id, int(n.listen.rsplit(":", 1)[1])) for n in cf.shards]
        out += [DaemonSpec(f"data-{n.id}", "data-server", n.id, int(n.listen.rsplit(":", 1)[1]))
                for n in cf.data_servers]
        return out

    def spec(self, name: str) -> DaemonSpec:
        for s in self.specs():
            if s.name == name:
                return s
        raise LaunchError(f"no daemon named {name!r} in {self.state_dir}")

    def command(self, spec: DaemonSpec) -> list[str]:
        cmd = [*python_module("superfs.cli.main"), spec.kind, "--config", self.config_path,
               "--ready-file", self.path("run", f"{spec.name}.ready")]
        if spec.kind != "dir-server":
            cmd += ["--id", str(spec.index)]
        return cmd

    def nodes(self) -> dict[str, NodeSettings]:
        """name -> the daemon's settings in cluster.toml."""
        cf = self.cluster_file()
        assert cf.dir_server is not None
        out = {"dir": cf.dir_server}
        out.update({f"shard-{n.id}": n for n in cf.shards})
        out.update({f"data-{n.id}": n for n in cf.data_servers})
        return out

    def metrics_url(self, name: str) -> str | None:
        n = self.nodes().get(name)
        if n is None or not n.metrics_port:
            return None
        return f"http://{n.listen.rsplit(':', 1)[0]}:{n.metrics_port}/metrics"

    # -------------------------------------------------------------- lifecycle

    def running_pid(self, name: str) -> int | None:
        info = read_ready_file(self.path("run", f"{name}.ready"))
        if info is None:
            return None
        pid = int(info["pid"])  # type: ignore[call-overload]
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
        # a SUPERFS_TOKEN the user set for some other cluster must not replace this cluster's token,
        # and a NOTIFY_SOCKET of whatever service runs 'superfs up' is not these daemons' business
        daemon_env = {k: v for k, v in os.environ.items() if k not in (TOKEN_ENV, "NOTIFY_SOCKET")}
        # cwd "/": a daemon must not keep the caller's directory busy, and 'python -m'
        # would import a directory named superfs from there (a mountpoint in /tmp)
        proc = subprocess.Popen(self.command(spec), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env={**daemon_env, **(env or {})}, cwd="/")
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
            if info is not None and pid_alive(int(info["pid"])):  # type: ignore[call-overload]
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
        cf = self.cluster_file()
        assert cf.dir_server is not None
        register_address(cf.dir_server.address, self.config_path)  # this state dir owns the address again
        started: list[str] = []
        try:
            for name in names:  # the dir server first: the others register with it
                if self.start_daemon(name, env) is not None:
                    started.append(name)
                if name == "dir":
                    self.wait_ready(name)
            return {name: self.wait_ready(name) for name in names}
        except LaunchError:
            for name in reversed(started):  # one failed to start: the ones this call started go too
                self.stop_daemon(name)
            raise

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
        """Stop every daemon; the address leaves the index until the next start.

        (A stale entry could make a client that later meets some other
        server on a reused port use this cluster's TLS settings.)
        """
        stopped = []
        for spec in reversed(self.specs()):
            if self.stop_daemon(spec.name):
                stopped.append(spec.name)
        cf = self.cluster_file()
        if cf.dir_server is not None:
            unregister_address(cf.dir_server.address, self.config_path)
        return stopped

    def status(self) -> list[tuple[str, str, int | None]]:
        return [(name, n.address, self.running_pid(name)) for name, n in self.nodes().items()]
