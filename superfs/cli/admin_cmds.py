"""``superfs fsck`` and ``superfs repair``: check a whole cluster, fix it, rebuild lost replicas."""
from __future__ import annotations

import argparse
import asyncio
import sys

from superfs.cli.launcher import LocalCluster
from superfs.client import resolve
from superfs.client.admin import AdminClient
from superfs.rpc.security import ClientSecurity, security_scope
from superfs.client.local import default_state_dir
from superfs.errors import FsError
from superfs.client.sizing import UNSIZED_DEADLINE_S
from superfs.fsck.runner import GRACE_S, Options, Run, legend

FSCK_DESCRIPTION = """\
Check a running SuperFS cluster from end to end: the directory tree on the
dir server, every name and inode on every shard, every chunk replica on every
data server, and the operations still in flight between them.

It reads through the same client library as any other client, while the
cluster keeps serving: it first waits (up to --settle seconds) for
operations in flight to finish, scans, and then scans again to confirm, so
that an operation half-way through is not reported as damage.

Examples:
  superfs fsck                         check the local cluster ('superfs up')
  superfs fsck --repair                ... and fix what can be fixed
  superfs fsck --address host:7000     check the cluster of that dir server
  superfs fsck --config /etc/superfs/cluster.toml
                                       a deployed cluster, with its credentials and TLS
"""

FSCK_EPILOG = """\
what it reports ("error" makes the exit status 1; "garbage" is bytes no file
can see, left by writes that failed half-way, and only costs space):
{legend}

--repair never deletes a file: a file whose directory is gone, or an inode
without a name, is given a name in /lost+found. It says what it could not fix.

exit status: 0 clean (or repaired clean), 1 inconsistencies left, 2 cannot
reach the cluster.
"""

REPAIR_DESCRIPTION = """\
Re-create lost chunk replicas. Use it after a data server lost its disk: start
the data server again (empty, with the same id and address: it notices it
lost its chunks and, until repaired, sends readers to the other replicas),
then run 'superfs repair'. It copies every chunk that lacks one of its R
replicas, or whose replica fails its checksum or disagrees with the others,
from a healthy replica, and then checks again.

Examples:
  superfs repair                       the local cluster ('superfs up')
  superfs repair --address host:7000   the cluster of that dir server
  superfs repair --config /etc/superfs/cluster.toml

exit status: 0 every chunk has R healthy replicas, 1 not (a data server is
down, or no healthy replica of some chunk is left), 2 cannot reach the cluster.
"""


def _add_target(p: argparse.ArgumentParser) -> None:
    where = p.add_mutually_exclusive_group()
    where.add_argument("--state-dir", default=None,
                       help="the local cluster started by 'superfs up' with this state directory "
                            "(default: $XDG_DATA_HOME/superfs or ~/.local/share/superfs)")
    where.add_argument("--address", metavar="HOST:PORT", help="the dir server of the cluster to check")
    where.add_argument("--config", metavar="FILE",
                       help="the cluster file of a deployed cluster: its dir server, credentials (a token "
                            "with the daemon role) and TLS settings")
    p.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS",
                   help="deadline of each call to a daemon (default 5)")
    p.add_argument("--no-verify", dest="verify", action="store_false",
                   help="do not re-read every chunk to verify its checksum (much faster on big clusters)")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("fsck", help="check the whole cluster for inconsistencies (and --repair them)",
                       description=FSCK_DESCRIPTION, epilog=FSCK_EPILOG.format(legend=legend()),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_target(p)
    p.add_argument("--repair", action="store_true", help="fix what can be fixed, then check again")
    p.add_argument("--settle", type=float, default=10.0, metavar="SECONDS",
                   help="how long to wait for operations in flight before scanning (default 10)")
    p.add_argument("--grace", type=float, default=GRACE_S, metavar="SECONDS",
                   help="--repair leaves chunk bytes past a file's end alone when written less than this "
                        f"long ago (default {GRACE_S:.0f}: a writer sizes what it pushed within "
                        f"{UNSIZED_DEADLINE_S:.0f} s); 0 only when no writer is active")
    p.set_defaults(func=cmd_fsck)

    p = sub.add_parser("repair", help="re-create lost or damaged chunk replicas from the healthy ones",
                       description=REPAIR_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_target(p)
    p.set_defaults(func=cmd_repair)


def _address(args: argparse.Namespace) -> str | None:
    """The dir server to talk to, or None after saying why there is none."""
    if getattr(args, "config", None):
        return _resolved(args)[0]
    if args.address:
        return str(args.address)
    state = args.state_dir or default_state_dir()
    cluster = LocalCluster(state)
    if not cluster.exists():
        print(f"superfs: no cluster in {state} (start one with 'superfs up', or give --address)", file=sys.stderr)
        return None
    if cluster.running_pid("dir") is None:
        print(f"superfs: the cluster in {state} is not running; fsck checks a running cluster: "
              "start it with 'superfs up'", file=sys.stderr)
        return None
    return str(cluster.config["dir_server"])


def _resolved(args: argparse.Namespace) -> tuple[str | None, ClientSecurity | None]:
    """(dir server, credentials) of --config; (None, None) after saying why the file cannot be used."""
    try:
        address, security, _ = resolve(config=args.config)
    except (ValueError, OSError) as e:
        print(f"superfs: {e}", file=sys.stderr)
        return None, None
    return address, security


async def _run(args: argparse.Namespace, address: str, what: str) -> int:
    try:
        admin = await AdminClient.connect(address, timeout_s=args.timeout)
    except (OSError, FsError) as e:
        print(f"superfs: cannot reach the dir server at {address}: {e}", file=sys.stderr)
        return 2
    try:
        if getattr(args, "grace", 0.0) < 0:
            print("superfs: --grace must not be negative", file=sys.stderr)
            return 2
        run = Run(admin, Options(repair=getattr(args, "repair", False), verify=args.verify,
                                 settle_s=getattr(args, "settle", 10.0),
                                 grace_s=getattr(args, "grace", GRACE_S)), sys.stdout)
        return await (run.fsck() if what == "fsck" else run.repair_replicas())
    except FsError as e:
        print(f"superfs: {what} stopped: {e}", file=sys.stderr)
        return 2
    finally:
        await admin.close()


def _main(args: argparse.Namespace, what: str) -> int:
    address = _address(args)
    if address is None:
        return 2
    security = _resolved(args)[1] if getattr(args, "config", None) else None
    with security_scope(security):  # every channel fsck opens carries the cluster file's credentials
        return asyncio.run(_run(args, address, what))


def cmd_fsck(args: argparse.Namespace) -> int:
    return _main(args, "fsck")


def cmd_repair(args: argparse.Namespace) -> int:
    return _main(args, "repair")
