"""Metadata footprint: bytes of metadata per file after creating N empty files.

On a fresh local cluster (default configuration; ``--shards`` to change),
creates N empty files with the ``easy_create`` phase of the md benchmark
(P processes through the library, one directory each), then reports the
growth of the metadata stores divided by the files created, two ways:

- ``rpc``: the shards' and the dir server's ``db_bytes`` from their Stats
  RPCs (what ``superfs status`` shows): allocated bytes of their LMDB files;
- ``state_dir``: allocated bytes of every ``*.mdb`` of the shards and the dir
  server under the state directory (the same stores, read from disk).

The paper's figure is about 700 bytes per file; the target is 250 at most.

    superfs bench footprint [--files 1000000] [--procs P] [--shards 2] [--time-limit S]
"""
from __future__ import annotations

import argparse
import asyncio
import glob
import os
import time
from typing import Any

from superfs.bench import md
from superfs.bench.cluster import dir_address, temp_cluster
from superfs.bench.report import emit
from superfs.bench.targets import TargetSpec


def metadata_bytes_rpc(address: str) -> dict[str, int]:
    """db_bytes of the dir server and of every shard, from their Stats RPCs."""
    from superfs.client.admin import AdminClient

    async def go() -> dict[str, int]:
        admin = await AdminClient.connect(address, timeout_s=30.0)
        try:
            stats = await admin.fs.meta.cluster_stats()
        finally:
            await admin.close()
        shards = [s for s in stats["shards"] if not isinstance(s, BaseException)]
        if len(shards) != len(stats["shards"]):
            raise RuntimeError("a shard did not answer Stats")
        return {"dir": int(stats["dir"].db_bytes), "shards": sum(int(s.db_bytes) for s in shards),
                "files": sum(int(s.files) for s in shards)}

    return asyncio.run(go())


def metadata_bytes_disk(state_dir: str) -> int:
    """Allocated bytes of the dir server's and the shards' LMDB files under the state dir."""
    total = 0
    for path in glob.glob(os.path.join(state_dir, "**", "*.mdb"), recursive=True):
        if os.path.relpath(path, state_dir).split(os.sep)[0].startswith("data-"):
            continue  # data servers hold chunks, not metadata
        total += os.stat(path).st_blocks * 512
    return total


def measure(files: int, procs: int, shards: int, state_parent: str | None = None,
            time_limit_s: float | None = None) -> dict[str, Any]:
    with temp_cluster(parent=state_parent, shards=shards) as cluster:
        address = dir_address(cluster)
        before, disk_before = metadata_bytes_rpc(address), metadata_bytes_disk(cluster.state_dir)
        cfg = md.MdConfig(files=max(1, files // procs), procs=procs, phases=("easy_create",), cleanup=False,
                          stonewall_s=time_limit_s, label="footprint")
        t = time.perf_counter()
        rows = md.run(TargetSpec("library", "/footprint", address), cfg, quiet=True)
        secs = time.perf_counter() - t
        after, disk_after = metadata_bytes_rpc(address), metadata_bytes_disk(cluster.state_dir)
    created = rows[0]["ops"]
    grown = (after["dir"] + after["shards"]) - (before["dir"] + before["shards"])
    disk_grown = disk_after - disk_before
    return {
        "name": "metadata_footprint", "files": created, "errors": rows[0]["errors"], "procs": procs,
        "shards": shards, "time_limit_s": time_limit_s, "stonewalled": rows[0]["stonewalled"], "create_ops_per_s": rows[0]["ops_per_s"], "seconds": round(secs, 1),
        "files_reported_by_shards": after["files"] - before["files"],
        "rpc_db_bytes": grown, "rpc_bytes_per_file": round(grown / created, 1) if created else None,
        "state_dir_db_bytes": disk_grown,
        "state_dir_bytes_per_file": round(disk_grown / created, 1) if created else None,
        "target_bytes_per_file": 250, "paper_bytes_per_file": 700, "nproc": os.cpu_count(),
    }


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--files", type=int, default=1_000_000, metavar="N", help="empty files to create (1,000,000)")
    p.add_argument("--procs", type=int, default=os.cpu_count() or 1, metavar="P", help="creating processes")
    p.add_argument("--shards", type=int, default=2, help="metadata shards of the cluster (2, the default)")
    p.add_argument("--time-limit", type=float, default=None, metavar="S",
                   help="stop creating after S seconds (stonewall) and report what was created")
    p.add_argument("--state-parent", default=None, help="where the temp cluster's state dir goes")


def main(args: argparse.Namespace) -> int:
    emit(measure(args.files, max(1, args.procs), args.shards, args.state_parent, args.time_limit))
    return 0
