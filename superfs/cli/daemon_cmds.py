"""``superfs dir-server | shard | data-server``: run one daemon in the foreground.

These are what systemd units, containers and ``superfs up`` run.
"""
from __future__ import annotations

import argparse
import asyncio

from superfs import config
from superfs.daemon import setup_logging


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", required=True, help="directory for this daemon's LMDB data")
    p.add_argument("--listen", default="127.0.0.1:0", help="host:port to serve on (port 0: any free port)")
    p.add_argument("--ready-file", help="write {address, pid} here once serving")
    p.add_argument("--durability", choices=[config.DURABLE, config.ASYNC], default=config.DURABLE,
                   help="durable (default): every acknowledged change is fsynced; async: flushed every second")
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (default INFO)")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("dir-server", help="run the dir server in the foreground",
                       description="Run the dir server (exactly one per cluster) in the foreground.")
    add_common(p)
    p.add_argument("--secret-file", required=True, help="file holding the cluster secret (daemons only)")
    p.add_argument("--cluster-name", default="superfs")
    p.add_argument("--shards", type=int, default=2, help="number of file-metadata shards (ids 0..N-1)")
    p.add_argument("--replicas", type=int, default=2, help="copies of each data chunk")
    p.add_argument("--inline-threshold", type=int, default=config.DEFAULT_INLINE_THRESHOLD,
                   help="files up to this many bytes live inside their metadata record")
    p.add_argument("--chunk-size", type=int, default=config.DEFAULT_CHUNK_SIZE, help="bytes per data chunk")
    p.add_argument("--lease", type=float, default=5.0, help="seconds clients may cache a directory")
    p.set_defaults(func=run_dir_server)

    p = sub.add_parser("shard", help="run a file-metadata shard in the foreground",
                       description="Run one file-metadata shard in the foreground.")
    add_common(p)
    p.add_argument("--id", type=int, required=True, help="shard id (0..shards-1)")
    p.add_argument("--dir-server", required=True, help="host:port of the dir server")
    p.add_argument("--secret-file", required=True, help="file holding the cluster secret")
    p.add_argument("--advertise", help="address other hosts use to reach this shard")
    p.set_defaults(func=run_shard)

    p = sub.add_parser("data-server", help="run a data server in the foreground",
                       description="Run one data server in the foreground.")
    add_common(p)
    p.add_argument("--id", type=int, required=True, help="data server id")
    p.add_argument("--dir-server", required=True, help="host:port of the dir server")
    p.add_argument("--advertise", help="address other hosts use to reach this server")
    p.set_defaults(func=run_data_server)


def _check_positive(args: argparse.Namespace, *names: str) -> None:
    for n in names:
        if getattr(args, n) < 1:
            raise SystemExit(f"superfs: --{n.replace('_', '-')} must be at least 1")


def run_dir_server(args: argparse.Namespace) -> int:
    from superfs.dirserver.main import run

    _check_positive(args, "shards", "replicas", "chunk_size")
    if args.inline_threshold < 4096:
        raise SystemExit("superfs: --inline-threshold must be at least 4096")
    setup_logging(args.log_level)
    cfg = config.DirServerConfig(
        data_dir=args.data_dir, secret_file=args.secret_file, listen=args.listen, ready_file=args.ready_file,
        cluster_name=args.cluster_name, shards=args.shards, replicas=args.replicas,
        inline_threshold=args.inline_threshold, chunk_size=args.chunk_size, durability=args.durability,
        dir_lease_s=args.lease)
    asyncio.run(run(cfg))
    return 0


def run_shard(args: argparse.Namespace) -> int:
    from superfs.shard.main import run

    setup_logging(args.log_level)
    cfg = config.ShardConfig(
        shard_id=args.id, data_dir=args.data_dir, dir_server=args.dir_server, secret_file=args.secret_file,
        listen=args.listen, advertise=args.advertise, ready_file=args.ready_file, durability=args.durability)
    asyncio.run(run(cfg))
    return 0


def run_data_server(args: argparse.Namespace) -> int:
    from superfs.dataserver.main import run

    setup_logging(args.log_level)
    cfg = config.DataServerConfig(
        server_id=args.id, data_dir=args.data_dir, dir_server=args.dir_server, listen=args.listen,
        advertise=args.advertise, ready_file=args.ready_file, durability=args.durability)
    asyncio.run(run(cfg))
    return 0
