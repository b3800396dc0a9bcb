"""``superfs``: start, use and run SuperFS from the command line."""
from __future__ import annotations

import argparse
import sys

from superfs import __version__
from superfs.cli import cluster_cmds, config_cmds, daemon_cmds
from superfs.cli import bench_cmds

DESCRIPTION = """\
SuperFS: a distributed POSIX file system for AI data pipelines.

Start a local cluster and use it:
  superfs up                 start 1 dir server, 2 shards, 2 data servers
  python -c 'import superfs; c = superfs.connect(); print(c.listdir("/"))'
  superfs status             what is running and what it holds
  superfs down               stop it (data stays; 'superfs up' restarts it)
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="superfs", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"superfs {__version__}")
    sub = p.add_subparsers(title="commands", metavar="COMMAND")
    cluster_cmds.register(sub)
    from superfs.cli import admin_cmds
    admin_cmds.register(sub)
    from superfs.cli import rebalance_cmds, shard_cmds
    admin = rebalance_cmds.register(sub)   # `superfs admin`: data servers, then shards
    shard_cmds.register(admin)
    try:
        from superfs.cli import mount_cmds
    except ImportError:  # the FUSE layer needs pyfuse3
        pass
    else:
        mount_cmds.register(sub)
    daemon_cmds.register(sub)
    config_cmds.register(sub)
    bench_cmds.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
