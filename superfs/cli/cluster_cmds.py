"""``superfs up | down | status``: a local cluster as background processes."""
from __future__ import annotations

import argparse
import sys

from superfs import config, config_file
from superfs.cli.launcher import LaunchError, LocalCluster
from superfs.client.local import default_state_dir

EXIT_CONFIG = 2


def add_state_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--state-dir", default=None,
                   help="where the local cluster keeps its data (default: $XDG_DATA_HOME/superfs "
                        "or ~/.local/share/superfs)")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "up", help="start a local cluster (and optionally mount it)",
        description="Start a local cluster as background processes: one dir server, shards and data "
                    "servers on free loopback ports, each with a Prometheus metrics port. Run it again to "
                    "restart the same cluster with its data. Its cluster file (state dir/cluster.toml) "
                    "records everything; clients and daemons authenticate with a token generated into the "
                    "state directory.")
    add_state_dir(p)
    p.add_argument("--config", metavar="FILE",
                   help="take cluster settings (durability, replicas, sizes, cache, TLS, auth, and the number "
                        "of shards and data servers listed) from this cluster file; addresses, ports and data "
                        "directories are chosen by 'up'. Flags override it. First start only.")
    p.add_argument("--shards", type=int, default=None, help="file-metadata shards (first start only; default 2)")
    p.add_argument("--data-servers", type=int, default=None,
                   help="data servers (first start only; default 2)")
    p.add_argument("--replicas", type=int, default=None, help="copies of each chunk (default 2)")
    p.add_argument("--inline-threshold", type=int, default=None,
                   help=f"bytes stored inline in metadata (default {config.DEFAULT_INLINE_THRESHOLD})")
    p.add_argument("--chunk-size", type=int, default=None,
                   help=f"bytes per data chunk (default {config.DEFAULT_CHUNK_SIZE})")
    p.add_argument("--durability", choices=[config.DURABLE, config.ASYNC], default=None,
                   help="durable (default) or async (faster; may lose the last second on a machine crash)")
    p.add_argument("--no-metrics", action="store_true", help="do not serve Prometheus metrics (first start only)")
    p.add_argument("--no-auth", action="store_true",
                   help="do not generate a token: daemons accept any client (first start only)")
    p.add_argument("--mount", metavar="DIR", help="also mount the file system at DIR")
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("down", help="stop the local cluster (unmounting its mounts)",
                       description="Stop every daemon of the local cluster (SIGTERM, then SIGKILL after 10 s).")
    add_state_dir(p)
    p.set_defaults(func=cmd_down)

    p = sub.add_parser("status", help="show each daemon, its metrics URL and the cluster's contents",
                       description="Show each daemon (up/down, pid, address, metrics URL and key figures from "
                                   "its metrics) and counts of directories, files and bytes. The local cluster "
                                   "by default; --config FILE for any cluster.")
    add_state_dir(p)
    where = p.add_mutually_exclusive_group()
    where.add_argument("--config", metavar="FILE", help="the cluster file of the cluster to show")
    where.add_argument("--address", help="dir server host:port of a cluster that is not local")
    p.set_defaults(func=cmd_status)


def cmd_up(args: argparse.Namespace) -> int:
    state = args.state_dir or default_state_dir()
    cluster = LocalCluster(state)
    if not cluster.exists():
        try:
            base = config_file.load(args.config) if args.config else config_file.ClusterFile()
            shards = args.shards if args.shards is not None else (len(base.shards) or 2)
            data_servers = args.data_servers if args.data_servers is not None else (
                len(base.data_servers) if base.data_servers else 2)
            replicas = args.replicas if args.replicas is not None else base.replicas
            if 0 < data_servers < replicas:
                replicas = data_servers
            base = config_file.with_overrides(base, inline_threshold=args.inline_threshold,
                                              chunk_size=args.chunk_size, durability=args.durability)
            if shards < 1 or data_servers < 0:
                raise config_file.ConfigError("--shards must be at least 1 and --data-servers at least 0")
            cluster.init(shards=shards, data_servers=data_servers, replicas=replicas,
                         inline_threshold=base.inline_threshold, chunk_size=base.chunk_size,
                         durability=base.durability, metrics=not args.no_metrics, auth=not args.no_auth,
                         base=base)
        except config_file.ConfigError as e:
            print(f"superfs: {e}", file=sys.stderr)
            return EXIT_CONFIG
        print(f"superfs: new cluster in {state}")
    else:
        if args.config:
            print("superfs: the cluster exists already; --config applies to a first start only "
                  f"(edit {cluster.config_path} instead)", file=sys.stderr)
        print(f"superfs: starting the cluster in {state}")
    try:
        addresses = cluster.start()
    except LaunchError as e:
        print(f"superfs: {e}", file=sys.stderr)
        return 1
    except config_file.ConfigError as e:
        print(f"superfs: {e}", file=sys.stderr)
        return EXIT_CONFIG
    for name, addr in addresses.items():
        url = cluster.metrics_url(name)
        print(f"  {name:<8} {addr:<22} {'metrics ' + url if url else ''}".rstrip())
    print(f"dir server: {addresses['dir']}   (python: superfs.connect();  "
          f"anywhere: superfs.connect(config='{cluster.config_path}'))")
    if args.mount:
        from superfs.cli.mount_cmds import mount_background

        return mount_background(args.mount, addresses["dir"], state)
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    state = args.state_dir or default_state_dir()
    cluster = LocalCluster(state)
    if not cluster.exists():
        print(f"superfs: no cluster in {state}", file=sys.stderr)
        return 1
    try:
        from superfs.cli.mount_cmds import unmount_all_of

        unmount_all_of(state)
    except ImportError:
        pass
    stopped = cluster.stop()
    print("superfs: stopped " + (", ".join(stopped) if stopped else "nothing (no daemon was running)"))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from superfs.cli.status import show_status

    return show_status(args.state_dir or default_state_dir(), args.address, args.config)
