"""``superfs admin add-shard`` and ``superfs admin remove-shard``: grow and shrink the metadata tier online."""
from __future__ import annotations

import argparse
import asyncio
import errno
import sys
import time

from superfs.cli.admin_cmds import _address, _resolved
from superfs.client.admin import AdminClient
from superfs.client.rebalance import counts, live_shards, plan_add, plan_drain
from superfs.errors import FsError
from superfs.rpc.security import security_scope

ADMIN_DESCRIPTION = """\
Grow and shrink the file-metadata tier of a running cluster, online.

Adding a shard (as a CephFS operator adds an MDS: start the daemon, then give
it work):
  1. add it to the cluster file ([[shards]] with the next id, its address and
     data_dir) and start it: superfs shard --config cluster.toml --id 2
     It registers itself with the dir server and owns nothing yet.
  2. superfs admin add-shard 2
     moves a fair share of the 1,024 partitions to it (the busiest shard gives
     first), one partition at a time, printing one line per partition.

Removing a shard: superfs admin remove-shard 1 moves each of its partitions to
the least loaded other shard, then takes it out of the map (its id is never
used again); stop the daemon afterwards.

Clients keep working throughout: a partition refuses changes only while it is
copied (its source answers ESTALE, and clients wait and send again). Both
commands may be run again after an interruption (Ctrl-C, a daemon killed):
they finish the move in progress and go on.

exit status: 0 done, 1 a move failed (it was rolled back; run again), 2 a bad
argument or a shard or dir server that cannot be reached.
"""

MOVE_TIMEOUT_S = 600.0  # one partition: the dir server waits up to a minute per step for a shard to come back


def _add_target(p: argparse.ArgumentParser) -> None:
    where = p.add_mutually_exclusive_group()
    where.add_argument("--state-dir", default=None,
                       help="the local cluster started by 'superfs up' with this state directory")
    where.add_argument("--address", metavar="HOST:PORT", help="the dir server of the cluster")
    where.add_argument("--config", metavar="FILE",
                       help="the cluster file of a deployed cluster (a token with the daemon role, TLS)")
    p.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS",
                   help="deadline of each call to a daemon but the moves themselves (default 5)")


def register(cmds: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add add-shard and remove-shard to ``superfs admin``'s subcommands."""
    a = cmds.add_parser("add-shard", help="move a fair share of partitions to a new, registered shard",
                        description=ADMIN_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    a.add_argument("shard_id", type=int, metavar="ID", help="the new shard's id (its daemon runs and registered)")
    _add_target(a)
    a.set_defaults(func=cmd_add_shard)
    r = cmds.add_parser("remove-shard", help="move every partition off a shard, then remove it from the map",
                        description=ADMIN_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("shard_id", type=int, metavar="ID", help="the shard to take out")
    _add_target(r)
    r.set_defaults(func=cmd_remove_shard)


def _fail(msg: str) -> int:
    print(f"superfs: {msg}", file=sys.stderr)
    return 2


async def _reachable(admin: AdminClient, shard_id: int) -> str | None:
    try:
        await admin.shard_stats(shard_id)
    except FsError as e:
        return f"shard {shard_id} does not answer ({e.message or e}); start it and run this again"
    return None


async def _moves(admin: AdminClient, plan: list[tuple[int, int]]) -> int:
    total = len(plan)
    for i, (p, target) in enumerate(plan, 1):
        start = time.monotonic()
        try:
            rec = await admin.move_partition(p, target, MOVE_TIMEOUT_S)
        except FsError as e:
            print(f"superfs: partition {p} -> shard {target}: {e.message or e}", file=sys.stderr)
            return 1 if e.errno not in (errno.EINVAL, errno.ENOENT) else 2
        print(f"[{i}/{total}] partition {p}: shard {rec.source} -> shard {rec.target}, {rec.rows} rows, "
              f"{rec.bytes} bytes, {time.monotonic() - start:.2f} s", flush=True)
    return 0


async def _add(admin: AdminClient, new: int) -> int:
    cmap = await admin.cluster_map()
    if new < 0:
        return _fail(f"bad shard id {new}")
    if new in cmap.removed_shards:
        return _fail(f"shard {new} was removed from this cluster; a new shard needs a new id")
    if new not in {s.id for s in cmap.shards}:
        return _fail(f"shard {new} is not registered: add it to the cluster file and start it "
                     f"(superfs shard --config FILE --id {new}) first")
    for s in sorted({new, *live_shards(cmap), *(m.source for m in cmap.moves)}):
        why = await _reachable(admin, s)
        if why:
            return _fail(why)
    plan = plan_add(cmap, new)
    if not plan:
        print(f"shard {new} already holds its share ({counts(cmap, live_shards(cmap)).get(new, 0)} partitions)")
        return 0
    print(f"moving {len(plan)} partitions to shard {new}", flush=True)
    rc = await _moves(admin, plan)
    if rc == 0:
        held = counts(await admin.cluster_map(), live_shards(admin.cluster.map))
        print("partitions per shard: " + ", ".join(f"{s}: {n}" for s, n in sorted(held.items())))
    return rc


async def _remove(admin: AdminClient, leaving: int) -> int:
    cmap = await admin.cluster_map()
    if leaving in cmap.removed_shards:
        print(f"shard {leaving} was already removed")
        return 0
    if leaving not in live_shards(cmap):
        return _fail(f"no shard {leaving} in this cluster (shards: {live_shards(cmap)})")
    if len([s for s in live_shards(cmap) if s != leaving]) < 1:
        return _fail("the last shard cannot be removed")
    for s in live_shards(cmap):
        why = await _reachable(admin, s)
        if why:
            return _fail(why)
    plan = plan_drain(cmap, leaving)
    print(f"moving {len(plan)} partitions off shard {leaving}", flush=True)
    rc = await _moves(admin, plan)
    if rc:
        return rc
    try:
        cmap = await admin.remove_shard(leaving)
    except FsError as e:
        print(f"superfs: removing shard {leaving}: {e.message or e}", file=sys.stderr)
        return 1
    held = counts(cmap, live_shards(cmap))
    print(f"shard {leaving} removed (map epoch {cmap.epoch}); partitions per shard: "
          + ", ".join(f"{s}: {n}" for s, n in sorted(held.items())) + "; its daemon may be stopped now")
    return 0


def _main(args: argparse.Namespace, step: str) -> int:
    address = _address(args)
    if address is None:
        return 2
    security = _resolved(args)[1] if getattr(args, "config", None) else None

    async def run() -> int:
        try:
            admin = await AdminClient.connect(address, timeout_s=args.timeout)
        except (OSError, FsError) as e:
            return _fail(f"cannot reach the dir server at {address}: {e}")
        try:
            return await (_add(admin, args.shard_id) if step == "add" else _remove(admin, args.shard_id))
        except FsError as e:
            return _fail(f"{e.message or e}")
        finally:
            await admin.close()

    with security_scope(security):
        try:
            return asyncio.run(run())
        except KeyboardInterrupt:
            print("superfs: interrupted; run the same command again to go on", file=sys.stderr)
            return 1


def cmd_add_shard(args: argparse.Namespace) -> int:
    return _main(args, "add")


def cmd_remove_shard(args: argparse.Namespace) -> int:
    return _main(args, "remove")
