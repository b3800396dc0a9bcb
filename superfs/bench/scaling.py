"""Scaling: the easy and hard create phases on clusters of 1, 2 and 4 shards.

For each shard count, a fresh local cluster (defaults otherwise) and, through
the library with P processes, ``easy_create`` (empty files, a directory per
process) then ``hard_write`` (3901-byte files in one shared directory), each
run on its own so that every daemon's CPU time (utime + stime from
/proc/PID/stat, pids from the ready files under the state dir's run/) is
taken around that phase alone. One row per (shards, phase): ops/s, CPU
seconds per 1,000 operations of each daemon and in total, and dir-server
RPCs per file operation (the clients are warm: their directories were made,
and so resolved, before the phase; expected 0). On a 2-core machine
throughput cannot scale with shards; CPU per operation and RPC counts show
what would.

    superfs bench scaling [--shards 1,2,4] [--files N] [--procs P]
"""
from __future__ import annotations

import argparse
import os
from typing import Any

from superfs.bench import md
from superfs.bench.cluster import cpu_of, daemon_pids, dir_address, temp_cluster
from superfs.bench.report import emit
from superfs.bench.targets import TargetSpec

PHASES = ("easy_create", "hard_write")


def measure_phase(state_dir: str, address: str, phase: str, files: int, procs: int,
                  shards: int) -> dict[str, Any]:
    pids = daemon_pids(state_dir)
    cfg = md.MdConfig(files=files, procs=procs, phases=(phase,), cleanup=False, label=f"{shards}-shards")
    before = cpu_of(pids)
    rows = md.run(TargetSpec("library", f"/scaling-{phase}", address), cfg, quiet=True)
    after = cpu_of(pids)
    r = rows[0]
    kops = r["ops"] / 1000 if r["ops"] else None
    per_daemon = {n: round((after[n] - before[n]) / kops, 3) if kops else None for n in sorted(pids)}
    total = sum(after[n] - before[n] for n in pids)
    return {
        "name": "scaling", "phase": phase, "shards": shards, "procs": procs, "files_per_proc": files,
        "ops": r["ops"], "errors": r["errors"], "ops_per_s": r["ops_per_s"], "p50_us": r["p50_us"],
        "p99_us": r["p99_us"], "cpu_s_per_kop": per_daemon,
        "cpu_s_per_kop_total": round(total / kops, 3) if kops else None,
        "cpu_s_per_kop_shards": round(sum(after[n] - before[n] for n in pids if n.startswith("shard"))
                                      / kops, 3) if kops else None,
        "dir_rpcs_per_op": r["dir_rpcs_per_op"], "dir_rpcs": r["dir_rpcs"], "nproc": os.cpu_count(),
    }


def run(shard_counts: list[int], files: int, procs: int) -> list[dict[str, Any]]:
    rows = []
    for shards in shard_counts:
        with temp_cluster(shards=shards) as cluster:
            address = dir_address(cluster)
            for phase in PHASES:
                rows.append(measure_phase(cluster.state_dir, address, phase, files, procs, shards))
                emit(rows[-1])
    return rows


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--shards", default="1,2,4", help="comma-separated shard counts (1,2,4)")
    p.add_argument("--files", type=int, default=2000, metavar="N", help="files per process per phase (2000)")
    p.add_argument("--procs", type=int, default=os.cpu_count() or 1, metavar="P", help="client processes")


def main(args: argparse.Namespace) -> int:
    run([int(x) for x in args.shards.split(",") if x], args.files, max(1, args.procs))
    return 0
