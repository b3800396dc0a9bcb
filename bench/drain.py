"""Drain one of three data servers under client load (issue 21's decommissioning target).

A throwaway local cluster (2 shards, 3 data servers, R=2) is filled with
``--gib`` of files; a client then reads whole files and rewrites some in a
loop, first alone for ``--warmup-s`` seconds, then while ``superfs admin
drain 1`` runs. One JSON row: client MiB/s before and during the drain,
their ratio, the bytes data server 1 held and the drain's MiB/s, read
failures seen by the client, and whether every chunk ended with R copies
where its layout places it.

    python bench/drain.py [--gib 0.25] [--file-mib 32] [--max-mib-per-s 0] [--warmup-s 5]

The issue's target is ``--gib 10``: R=2 restored for every chunk, no read
failure, client throughput during the drain at least half of before.
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import subprocess
import sys
import threading
import time
from typing import Any

from superfs import routing
from superfs.bench.cluster import dir_address, temp_cluster
from superfs.client import connect
from superfs.client.admin import AdminClient
from superfs.procs import python_module
from superfs.rebalance import plan

MIB = 1 << 20


class Load(threading.Thread):
    """Whole-file reads (checked) and rewrites, bytes counted per phase."""

    def __init__(self, address: str, files: dict[str, str], file_bytes: int) -> None:
        super().__init__(daemon=True)
        self.address, self.files, self.file_bytes = address, files, file_bytes
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.bytes = 0
        self.failures: list[str] = []

    def take(self) -> int:
        with self.lock:
            n, self.bytes = self.bytes, 0
            return n

    def run(self) -> None:
        rnd = random.Random(1)
        names = sorted(self.files)
        with connect(self.address, timeout_s=30.0) as c:
            n = 0
            while not self.stop.is_set():
                n += 1
                p = rnd.choice(names)
                try:
                    data = c.read_bytes(p)
                    if hashlib.sha256(data).hexdigest() != self.files[p]:
                        self.failures.append(f"{p}: different bytes")
                    moved = len(data)
                    if n % 4 == 0:
                        blob = os.urandom(self.file_bytes)
                        c.write_bytes(f"/load/w{n % 8}", blob)
                        moved += len(blob)
                except OSError as e:
                    self.failures.append(f"{p}: {e}")
                    continue
                with self.lock:
                    self.bytes += moved


def check_placement(address: str) -> tuple[int, int]:
    """(chunks of live files, those without R copies where their layout places them)."""
    async def fn() -> tuple[int, int]:
        admin = await AdminClient.connect(address, timeout_s=30.0)
        try:
            cmap = await admin.cluster_map()
            held = {d.id: {(c.key.ino, c.key.index) for c in await admin.list_chunks(d.id)}
                    for d in admin.data_servers() if plan.states(cmap)[d.id] in (plan.ACTIVE, plan.DRAINING)}
            total = bad = 0
            for s in admin.shards():
                for f in await admin.scan_inodes(s.id):
                    for idx in plan.chunk_indices(f):
                        total += 1
                        reps = routing.chunk_replicas(f.attr.ino, idx, list(f.layout), cmap.replicas)
                        bad += sum(1 for r in reps if (f.attr.ino, idx) not in held.get(r, set())) > 0
            return total, bad
        finally:
            await admin.close()
    return asyncio.run(fn())


def server_bytes(address: str, server: int) -> int:
    async def fn() -> int:
        admin = await AdminClient.connect(address, timeout_s=30.0)
        try:
            await admin.cluster_map()
            return int((await admin.data_stats(server)).bytes)
        finally:
            await admin.close()
    return asyncio.run(fn())


def main(args: argparse.Namespace) -> int:
    file_bytes = int(args.file_mib * MIB)
    nfiles = max(3, int(args.gib * 1024 / args.file_mib))
    with temp_cluster(args.parent, shards=2, data_servers=3, replicas=2) as cluster:
        address = dir_address(cluster)
        files: dict[str, str] = {}
        with connect(address, timeout_s=30.0) as c:
            c.mkdir("/data")
            c.mkdir("/load")
            for i in range(nfiles):
                blob = os.urandom(file_bytes)
                c.write_bytes(f"/data/f{i}", blob)
                files[f"/data/f{i}"] = hashlib.sha256(blob).hexdigest()
        held = server_bytes(address, 1)
        load = Load(address, files, min(file_bytes, 8 * MIB))
        load.start()
        load.take()
        t0 = time.monotonic()
        time.sleep(args.warmup_s)
        before = load.take() / (time.monotonic() - t0)
        cmd = [*python_module("superfs.cli.main"), "admin", "drain", "1", "--address", address,
               "--progress-every", "1000000"]
        if args.max_mib_per_s:
            cmd += ["--max-mib-per-s", str(args.max_mib_per_s)]
        t0 = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        drain_s = time.monotonic() - t0
        during = load.take() / drain_s
        load.stop.set()
        load.join()
        total, bad = check_placement(address)
        row: dict[str, Any] = {
            "name": "drain", "gib": round(nfiles * file_bytes / (1 << 30), 3), "files": nfiles,
            "replicas": 2, "data_servers": 3, "max_mib_per_s": args.max_mib_per_s,
            "client_mib_s_before": round(before / MIB, 1), "client_mib_s_during": round(during / MIB, 1),
            "during_over_before": round(during / before, 3) if before else None,
            "drained_server_mib": round(held / MIB, 1), "drain_s": round(drain_s, 2),
            "drain_mib_s": round(held / MIB / drain_s, 1), "drain_rc": proc.returncode,
            "read_failures": len(load.failures), "chunks": total, "chunks_without_r_copies": bad,
            "nproc": os.cpu_count(),
        }
        print(json.dumps(row), flush=True)
        if proc.returncode:
            sys.stderr.write(proc.stdout + proc.stderr)
        return 0 if proc.returncode == 0 and not load.failures and not bad else 1


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gib", type=float, default=0.25, help="bytes to fill the cluster with (default 0.25)")
    ap.add_argument("--file-mib", type=float, default=32, help="size of each file (default 32)")
    ap.add_argument("--max-mib-per-s", type=float, default=0, help="the drain's throttle (default: none)")
    ap.add_argument("--warmup-s", type=float, default=5.0, help="client load alone before the drain (default 5)")
    ap.add_argument("--parent", default=None, help="where the temporary cluster lives (default: $TMPDIR)")
    sys.exit(main(ap.parse_args()))
