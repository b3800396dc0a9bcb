"""``superfs dir-server | shard | data-server``: run one daemon in the foreground; ``check-ready``.

These are what systemd units, containers and ``superfs up`` run. Settings
come from the cluster file (``--config FILE``; see
:mod:`superfs.config_file`), and flags override it; without a file the
flags say everything. Secrets (the cluster secret, tokens, TLS keys) are
only ever read from files, never taken from a flag's value.

A bad setting is one line on stderr naming the key, and exit status 2.
``superfs check-ready FILE`` is the health check of a daemon started with
``--ready-file FILE`` (containers: deploy/docker-compose.yml).
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import sys
from typing import Any, Callable

from superfs import auth, config, config_file, private_files, tls
from superfs.daemon import read_ready_file, setup_logging
from superfs.errors import FsError
from superfs.procs import pid_alive
from superfs.rpc.security import ClientSecurity, set_default_security

EXIT_CONFIG = 2


def add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE",
                   help="the cluster file (TOML) shared by all daemons and clients; flags override it")


def add_common(p: argparse.ArgumentParser) -> None:
    add_config(p)
    p.add_argument("--data-dir", help="directory for this daemon's LMDB data (default: from --config)")
    p.add_argument("--listen", help="host:port to serve on (port 0: any free port; default: from --config, "
                                    "else 127.0.0.1:0)")
    p.add_argument("--ready-file", help="write {address, pid, metrics} here once serving")
    p.add_argument("--durability", choices=[config.DURABLE, config.ASYNC], default=None,
                   help="durable (default): every acknowledged change is fsynced; async: flushed every second")
    p.add_argument("--metrics-port", type=int, default=None, metavar="PORT",
                   help="serve Prometheus metrics on this port of the listen host (0: off; default: from --config)")
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (default INFO)")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("dir-server", help="run the dir server in the foreground",
                       description="Run the dir server (exactly one per cluster) in the foreground.")
    add_common(p)
    p.add_argument("--secret-file", help="file holding the cluster secret (daemons only)")
    p.add_argument("--cluster-name")
    p.add_argument("--shards", type=int, help="number of file-metadata shards (ids 0..N-1; default: the "
                                              "shards listed in --config, else 2)")
    p.add_argument("--replicas", type=int, help="copies of each data chunk (default 2)")
    p.add_argument("--inline-threshold", type=int,
                   help=f"files up to this many bytes live inside their metadata record "
                        f"(default {config.DEFAULT_INLINE_THRESHOLD})")
    p.add_argument("--chunk-size", type=int, help=f"bytes per data chunk (default {config.DEFAULT_CHUNK_SIZE})")
    p.add_argument("--lease", type=float, help="seconds clients may cache a directory (default 5)")
    p.set_defaults(func=run_dir_server)

    p = sub.add_parser("shard", help="run a file-metadata shard in the foreground",
                       description="Run one file-metadata shard in the foreground.")
    add_common(p)
    p.add_argument("--id", type=int, required=True, help="shard id (0..shards-1)")
    p.add_argument("--dir-server", help="host:port of the dir server (default: from --config)")
    p.add_argument("--secret-file", help="file holding the cluster secret")
    p.add_argument("--advertise", help="address other hosts use to reach this shard")
    p.set_defaults(func=run_shard)

    p = sub.add_parser("data-server", help="run a data server in the foreground",
                       description="Run one data server in the foreground.")
    add_common(p)
    p.add_argument("--id", type=int, required=True, help="data server id")
    p.add_argument("--dir-server", help="host:port of the dir server (default: from --config)")
    p.add_argument("--secret-file", help="file holding the cluster secret (verifies chunk capabilities)")
    p.add_argument("--advertise", help="address other hosts use to reach this server")
    p.set_defaults(func=run_data_server)

    p = sub.add_parser("check-ready", help="exit 0 if the daemon that writes a ready file serves now",
                       description="A health check for containers and supervisors: exit 0 when the daemon "
                                   "started with --ready-file FILE has written it (it does so once serving), "
                                   "its process is alive and its address accepts connections; else print why "
                                   "not and exit 1. Keep FILE on a file system that a restart empties (a tmpfs), "
                                   "so a killed daemon's file is not taken for a new one's.")
    p.add_argument("ready_file", metavar="FILE")
    p.add_argument("--timeout", type=float, default=2.0, metavar="S", help="connect timeout (default 2)")
    p.set_defaults(func=cmd_check_ready)


def cmd_check_ready(args: argparse.Namespace) -> int:
    info = read_ready_file(args.ready_file)
    if info is None:
        print(f"not ready: {args.ready_file} does not exist yet (the daemon writes it once serving)")
        return 1
    pid, address = info.get("pid"), str(info.get("address", ""))
    if not isinstance(pid, int) or not pid_alive(pid):
        print(f"not ready: process {pid} of {args.ready_file} is not running")
        return 1
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=args.timeout).close()
    except (OSError, ValueError) as e:
        print(f"not ready: {address} does not accept connections ({getattr(e, 'strerror', None) or e})")
        return 1
    print(f"ready: pid {pid} serving on {address}")
    return 0


def load_cluster_file(args: argparse.Namespace, **overrides: Any) -> config_file.ClusterFile:
    """The --config file (or the defaults) with the flags' cluster-wide settings applied."""
    cf = config_file.load(args.config) if getattr(args, "config", None) else config_file.ClusterFile()
    return config_file.with_overrides(cf, **overrides)


def fail(message: str, status: int = EXIT_CONFIG) -> int:
    print(f"superfs: {message}", file=sys.stderr)
    return status


def _checked(build: Callable[[], Any]) -> tuple[Any, ClientSecurity]:
    """Build a daemon config and check the files it names; ConfigError on any problem."""
    cfg = build()
    try:
        if cfg.security.tls is not None:
            tls.check(cfg.security.tls, server=True)
        auth.Authenticator.from_config(cfg.security)
        client = ClientSecurity.from_config(cfg.security)
    except (tls.TlsError, auth.AuthError, FsError) as e:
        raise config_file.ConfigError(getattr(e, "message", None) or str(e)) from None
    if getattr(cfg, "secret_file", None):
        try:
            config.read_secret(cfg.secret_file)
        except OSError as e:
            raise config_file.ConfigError(f"cluster.secret_file: cannot read {cfg.secret_file} "
                                          f"({e.strerror})") from None
        except private_files.LooseFileError as e:
            raise config_file.ConfigError(str(e)) from None
        except ValueError as e:
            raise config_file.ConfigError(f"cluster.secret_file: {e}") from None
    return cfg, client


def _run(build: Callable[[], Any], run: Callable[[Any], Any], log_level: str) -> int:
    try:
        cfg, client = _checked(build)
    except config_file.ConfigError as e:
        return fail(str(e))
    setup_logging(log_level)
    set_default_security(client)  # how this daemon authenticates to the others
    try:
        asyncio.run(run(cfg))
    except (tls.TlsError, auth.AuthError) as e:
        return fail(str(e))
    except OSError as e:  # cannot bind, data directory not writable, ...: one line, not a traceback
        logging.getLogger(__name__).debug("start-up failed", exc_info=True)
        return fail(str(e), 1)
    return 0


def run_dir_server(args: argparse.Namespace) -> int:
    from superfs.dirserver.main import run

    def build() -> config.DirServerConfig:
        cf = load_cluster_file(args, secret_file=args.secret_file, name=args.cluster_name, replicas=args.replicas,
                               inline_threshold=args.inline_threshold, chunk_size=args.chunk_size,
                               durability=args.durability, dir_lease_s=args.lease)
        if args.shards is not None and args.shards < 1:
            raise config_file.ConfigError(f"--shards: must be at least 1, got {args.shards}")
        return config_file.dir_server_config(cf, listen=args.listen, data_dir=args.data_dir,
                                             ready_file=args.ready_file, metrics_port=args.metrics_port,
                                             shards=args.shards)

    return _run(build, run, args.log_level)


def run_shard(args: argparse.Namespace) -> int:
    from superfs.shard.main import run

    def build() -> config.ShardConfig:
        cf = load_cluster_file(args, secret_file=args.secret_file, durability=args.durability)
        return config_file.shard_config(cf, args.id, listen=args.listen, data_dir=args.data_dir,
                                        advertise=args.advertise, ready_file=args.ready_file,
                                        metrics_port=args.metrics_port, dir_server=args.dir_server)

    return _run(build, run, args.log_level)


def run_data_server(args: argparse.Namespace) -> int:
    from superfs.dataserver.main import run

    def build() -> config.DataServerConfig:
        cf = load_cluster_file(args, secret_file=args.secret_file, durability=args.durability)
        return config_file.data_server_config(cf, args.id, listen=args.listen, data_dir=args.data_dir,
                                              advertise=args.advertise, ready_file=args.ready_file,
                                              metrics_port=args.metrics_port, dir_server=args.dir_server)

    return _run(build, run, args.log_level)
