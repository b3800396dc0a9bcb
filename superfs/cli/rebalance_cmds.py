"""``superfs admin``: grow and shrink the data servers of a running cluster.

``rebalance`` moves existing chunks onto every active data server until each
holds its share; ``drain`` empties one (keeping R copies of every chunk at
every moment) and then marks it removed; ``mark-dead`` declares one gone
for good, and the dir server re-replicates its chunks from the survivors;
``replication`` reports under-replicated chunks and what is left to move;
``add-data-server`` starts one more data server in a local cluster
('superfs up'). The moves themselves are superfs/rebalance.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import os
import socket
import sys
import time
from typing import AsyncIterator

from superfs.cli.admin_cmds import _add_target, _address, _resolved
from superfs.cli.launcher import LaunchError, LocalCluster
from superfs.client.admin import AdminClient
from superfs.client.local import default_state_dir
from superfs.errors import FsError
from superfs.rebalance import passes, plan
from superfs.rebalance.mover import LEASE_TTL_S, LeaseKeeper, Mover, Throttle
from superfs.rebalance.port import ChunkPort
from superfs.rpc.security import security_scope

DESCRIPTION = """\
Grow and shrink a running cluster, online: its data servers and its shards.

  superfs admin add-data-server           start one more data server (local cluster)
  superfs admin rebalance                 spread existing chunks over every active server
  superfs admin drain 2                   empty data server 2, then mark it removed
  superfs admin mark-dead 2               data server 2 is gone for good: re-replicate
  superfs admin replication               under-replicated chunks, files left to move
  superfs admin add-shard 2               move a fair share of partitions to new shard 2
  superfs admin remove-shard 1            move every partition off shard 1, then remove it

Chunk moves copy a chunk, verify its checksum on the new server, switch the
file's layout on its shard, and only then delete the old copy: every chunk
keeps R copies throughout. Run one of rebalance/drain at a time. Partition
moves go one partition at a time; see `superfs admin add-shard --help`.
"""


def register(sub: argparse._SubParsersAction) -> argparse._SubParsersAction:  # type: ignore[type-arg]
    """Add ``superfs admin`` with the data server commands; its subcommands (for the shards' too)."""
    admin = sub.add_parser("admin", help="grow and shrink the cluster: data servers and shards",
                           description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    cmds = admin.add_subparsers(title="admin commands", metavar="COMMAND")
    admin.set_defaults(func=lambda a: (admin.print_help(), 2)[1])

    def moving(p: argparse.ArgumentParser) -> None:
        _add_target(p)
        p.add_argument("--max-mib-per-s", type=float, default=0.0, metavar="MIB",
                       help="copy at most this many MiB/s (default 0: unlimited)")
        p.add_argument("--progress-every", type=int, default=100, metavar="N",
                       help="one progress line per N chunks moved (default 100)")
        p.add_argument("--wait-lease", type=float, default=0.0, metavar="SECONDS",
                       help="wait this long for another mover to finish (one at a time; a mover that died "
                            "gives its lease up within 30 s); default: refuse at once")

    p = cmds.add_parser("rebalance", help="move chunks until every active data server holds its share")
    moving(p)
    p.add_argument("--tolerance", type=float, default=0.10, metavar="FRACTION",
                   help="each server's chunk count within this fraction of the mean (default 0.10)")
    p.set_defaults(func=lambda a: _main(a, _rebalance), what="rebalance")

    p = cmds.add_parser("drain", help="re-replicate every chunk of a data server elsewhere, then remove it")
    moving(p)
    p.add_argument("server", type=int, metavar="DATASERVER", help="the data server's id")
    p.set_defaults(func=lambda a: _main(a, _drain), what="drain")

    p = cmds.add_parser("mark-dead", help="declare a data server gone for good: the dir server "
                                          "re-replicates its chunks from the survivors")
    _add_target(p)
    p.add_argument("server", type=int, metavar="DATASERVER", help="the data server's id")
    p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                   help="wait up to this long for the re-replication to finish (default: do not wait)")
    p.set_defaults(func=lambda a: _main(a, _mark_dead))

    p = cmds.add_parser("mark-active", help="let a draining or dead data server take chunks again")
    _add_target(p)
    p.add_argument("server", type=int, metavar="DATASERVER", help="the data server's id")
    p.set_defaults(func=lambda a: _main(a, _mark_active))

    p = cmds.add_parser("replication", help="under-replicated chunks, and files left on leaving servers")
    _add_target(p)
    p.set_defaults(func=lambda a: _main(a, _replication))

    p = cmds.add_parser("add-data-server", help="start one more data server in the local cluster")
    p.add_argument("--state-dir", default=None, help="the local cluster's state directory")
    p.set_defaults(func=_add_data_server)
    return cmds


def _main(args: argparse.Namespace, what) -> int:  # type: ignore[no-untyped-def]
    args.verify = False
    address = _address(args)
    if address is None:
        return 2
    security = _resolved(args)[1] if getattr(args, "config", None) else None
    with security_scope(security):
        return asyncio.run(_connected(args, address, what))


async def _connected(args: argparse.Namespace, address: str, what) -> int:  # type: ignore[no-untyped-def]
    try:
        admin = await AdminClient.connect(address, timeout_s=args.timeout)
    except (OSError, FsError) as e:
        print(f"superfs: cannot reach the dir server at {address}: {e}", file=sys.stderr)
        return 2
    try:
        await admin.cluster_map()
        return int(await what(args, admin))
    except FsError as e:
        print(f"superfs: {e}", file=sys.stderr)
        return 1
    finally:
        await admin.close()


@contextlib.asynccontextmanager
async def _holding(mover: Mover, wait_s: float) -> AsyncIterator[None]:
    """The mover lease, taken first (waiting up to ``wait_s``; then EBUSY: another mover is at work)
    and given back after."""
    assert mover.lease is not None
    deadline = time.monotonic() + wait_s
    while True:
        try:
            await mover.lease.keep()
            break
        except FsError as e:
            if e.errno != errno.EBUSY or time.monotonic() >= deadline:
                raise
            await asyncio.sleep(1.0)
    try:
        yield
    finally:
        await mover.lease.give_back()


def _say(line: str) -> None:
    print(line, flush=True)


def _server(admin: AdminClient, server: int) -> str | None:
    """The state of data server ``server``, or None after saying it does not exist."""
    st = plan.states(admin.cluster.map)
    if server not in st:
        print(f"superfs: no data server {server} in the cluster map (it has {sorted(st)})", file=sys.stderr)
        return None
    return st[server]


def _mover(args: argparse.Namespace, admin: AdminClient) -> tuple[ChunkPort, Mover]:
    if args.max_mib_per_s < 0:
        raise FsError(errno.EINVAL, "--max-mib-per-s must not be negative")
    dead = sorted(i for i, st in plan.states(admin.cluster.map).items() if st == plan.DEAD)
    if dead:  # one mover at a time: the dir server's is at work
        raise FsError(errno.EBUSY, f"data server(s) {dead} are dead and being re-replicated by the dir server: "
                                   "wait for them to be removed ('superfs admin replication')")
    port = ChunkPort(admin.cluster)
    holder = f"superfs admin {args.what} (pid {os.getpid()} on {socket.gethostname()})"

    async def acquire() -> tuple[bool, str]:
        reply = await admin.mover_lease(holder, LEASE_TTL_S)
        return reply.granted, f"{reply.holder}; its lease lapses in {reply.expires_in_s:.0f} s unless renewed"

    async def release() -> None:
        await admin.mover_lease(holder, LEASE_TTL_S, release=True)

    lease = LeaseKeeper(acquire, release=release)
    return port, Mover(port, admin.cluster.map, throttle=Throttle(args.max_mib_per_s), lease=lease)


async def _rebalance(args: argparse.Namespace, admin: AdminClient) -> int:
    if not 0 < args.tolerance < 1:
        print("superfs: --tolerance must be between 0 and 1", file=sys.stderr)
        return 2
    port, mover = _mover(args, admin)
    async with _holding(mover, args.wait_lease):
        counts = await passes.rebalance(port, mover, tolerance=args.tolerance, report=_say,
                                        every=args.progress_every)
    if not plan.within_tolerance(counts, args.tolerance):
        print(f"superfs: shares still off by more than {args.tolerance:.0%} (files with fewer chunks than "
              "servers cannot spread evenly, or moves failed: see above)", file=sys.stderr)
        return 1
    return 0


async def _drain(args: argparse.Namespace, admin: AdminClient) -> int:
    state = _server(admin, args.server)
    if state is None:
        return 2
    if state == plan.REMOVED:
        _say(f"data server {args.server} is already removed")
        return 0
    cmap = admin.cluster.map
    others = [s for s in plan.active(cmap) if s != args.server]
    if len(others) < plan.replicas(cmap):
        print(f"superfs: draining data server {args.server} would leave {len(others)} active data server(s) "
              f"for {plan.replicas(cmap)} copies of each chunk: add a data server first", file=sys.stderr)
        return 1
    port, mover = _mover(args, admin)
    async with _holding(mover, args.wait_lease):
        if state == plan.ACTIVE:
            await admin.set_data_server_state(args.server, plan.DRAINING)
            mover.cmap = admin.cluster.map
        left = await passes.empty_servers(port, mover, {args.server}, what=f"drain of data server {args.server}",
                                          report=_say, every=args.progress_every)
    if left:
        print(f"superfs: {left} files still placed on data server {args.server}; run the drain again",
              file=sys.stderr)
        return 1
    await admin.set_data_server_state(args.server, plan.REMOVED)
    _say(f"data server {args.server} drained and removed: it can be stopped")
    return 0


async def _mark_dead(args: argparse.Namespace, admin: AdminClient) -> int:
    if _server(admin, args.server) is None:
        return 2
    await admin.set_data_server_state(args.server, plan.DEAD)
    _say(f"data server {args.server} marked dead: the dir server re-replicates its chunks from the survivors")
    deadline = time.monotonic() + args.wait
    while time.monotonic() < deadline:
        if plan.states(await admin.cluster_map()).get(args.server) == plan.REMOVED:
            _say(f"data server {args.server}: every chunk re-replicated; removed")
            return 0
        await asyncio.sleep(1.0)
    return 0 if args.wait <= 0 else 1


async def _mark_active(args: argparse.Namespace, admin: AdminClient) -> int:
    if _server(admin, args.server) is None:
        return 2
    await admin.set_data_server_state(args.server, plan.ACTIVE)
    _say(f"data server {args.server} is active")
    return 0


async def _replication(args: argparse.Namespace, admin: AdminClient) -> int:
    cmap = admin.cluster.map
    chunks, files_on = await passes.under_replicated(ChunkPort(admin.cluster), cmap)
    for sid, state in sorted(plan.states(cmap).items()):
        extra = f", {files_on[sid]} files still placed on it" if sid in files_on else ""
        _say(f"data server {sid}: {state}{extra}")
    _say(f"under-replicated chunks: {chunks}")
    return 1 if chunks else 0


def _add_data_server(args: argparse.Namespace) -> int:
    cluster = LocalCluster(args.state_dir or default_state_dir())
    if not cluster.exists():
        print(f"superfs: no local cluster in {cluster.state_dir} (elsewhere, start a data server with a new "
              "id in the cluster file: it registers itself)", file=sys.stderr)
        return 2
    if cluster.running_pid("dir") is None:
        print(f"superfs: the cluster in {cluster.state_dir} is not running: start it with 'superfs up'",
              file=sys.stderr)
        return 2
    try:
        name = cluster.add_data_server()
    except LaunchError as e:
        print(f"superfs: {e}", file=sys.stderr)
        return 1
    _say(f"started {name}; new chunks use it now ('superfs admin rebalance' moves existing ones)")
    return 0
