"""``superfs up | down | status``: a local cluster as background processes."""
from __future__ import annotations

import argparse
import sys

from superfs import config
from superfs.cli.launcher import LaunchError, LocalCluster
from superfs.client.local import default_state_dir


def add_state_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--state-dir", default=None,
                   help="where the local cluster keeps its data (default: $XDG_DATA_HOME/superfs "
                        "or ~/.local/share/superfs)")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "up", help="start a local cluster (and optionally mount it)",
        description="Start a local cluster as background processes: one dir server, shards and data "
                    "servers on free loopback ports. Run it again to restart the same cluster with its data.")
    add_state_dir(p)
    p.add_argument("--shards", type=int, default=2, help="file-metadata shards (first start only; default 2)")
    p.add_argument("--data-servers", type=int, default=2, help="data servers (first start only; default 2)")
    p.add_argument("--replicas", type=int, default=2, help="copies of each chunk (default 2)")
    p.add_argument("--inline-threshold", type=int, default=config.DEFAULT_INLINE_THRESHOLD,
                   help=f"bytes stored inline in metadata (default {config.DEFAULT_INLINE_THRESHOLD})")
    p.add_argument("--chunk-size", type=int, default=config.DEFAULT_CHUNK_SIZE,
                   help=f"bytes per data chunk (default {config.DEFAULT_CHUNK_SIZE})")
    p.add_argument("--durability", choices=[config.DURABLE, config.ASYNC], default=config.DURABLE,
                   help="durable (default) or async (faster; may lose the last second on a machine crash)")
    p.add_argument("--mount", metavar="DIR", help="also mount the file system at DIR")
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("down", help="stop the local cluster (unmounting its mounts)",
                       description="Stop every daemon of the local cluster (SIGTERM, then SIGKILL after 10 s).")
    add_state_dir(p)
    p.set_defaults(func=cmd_down)

    p = sub.add_parser("status", help="show each daemon and the cluster's contents",
                       description="Show each daemon of the local cluster (up/down, pid, address) and "
                                   "counts of directories, files and bytes.")
    add_state_dir(p)
    p.add_argument("--address", help="dir server host:port of a cluster that is not local")
    p.set_defaults(func=cmd_status)


def cmd_up(args: argparse.Namespace) -> int:
    state = args.state_dir or default_state_dir()
    cluster = LocalCluster(state)
    if not cluster.exists():
        if args.data_servers < args.replicas and args.data_servers > 0:
            args.replicas = args.data_servers
        cluster.init(shards=args.shards, data_servers=args.data_servers, replicas=args.replicas,
                     inline_threshold=args.inline_threshold, chunk_size=args.chunk_size,
                     durability=args.durability)
        print(f"superfs: new cluster in {state}")
    else:
        print(f"superfs: starting the cluster in {state}")
    try:
        addresses = cluster.start()
    except LaunchError as e:
        print(f"superfs: {e}", file=sys.stderr)
        return 1
    for name, addr in addresses.items():
        print(f"  {name:<8} {addr}")
    print(f"dir server: {addresses['dir']}   (python: superfs.connect())")
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

    return show_status(args.state_dir or default_state_dir(), args.address)
