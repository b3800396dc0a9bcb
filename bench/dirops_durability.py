"""mkdir and rmdir through the client library, durable against async: what the fsyncs cost.

A fresh local cluster (2 shards, 2 data servers) in durable mode, then the
same in async mode (``superfs up --durability async``: no fsync, stores
flushed every second); ``--n`` mkdirs in one directory, then as many
rmdirs, one at a time from this process. Prints one JSON row per mode with
the medians, and the last row the ratio: how much of a directory
operation's time the durable commits are (issue 15, item 5: would replying
before the fsync pay?).

    python bench/dirops_durability.py [--n 300]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from superfs.cli.launcher import LocalCluster  # noqa: E402
from superfs.client import connect  # noqa: E402


def measure(durability: str, n: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="superfs-dirops-", dir="/var/tmp") as d:
        c = LocalCluster(d)
        c.init(shards=2, data_servers=2, replicas=2, durability=durability, inline_threshold=8192,
               chunk_size=4 << 20)
        c.start()
        try:
            with connect(str(c.config["dir_server"])) as cl:
                cl.mkdir("/p")
                mk, rm = [], []
                for i in range(n):
                    t = time.perf_counter()
                    cl.mkdir(f"/p/d{i}")
                    mk.append(time.perf_counter() - t)
                for i in range(n):
                    t = time.perf_counter()
                    cl.rmdir(f"/p/d{i}")
                    rm.append(time.perf_counter() - t)
        finally:
            c.stop()
    return {"name": "dirops", "durability": durability, "n": n, "nproc": os.cpu_count(),
            "mkdir_p50_us": round(statistics.median(mk) * 1e6, 1), "rmdir_p50_us": round(statistics.median(rm) * 1e6, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=300, help="directories made and removed per mode")
    args = ap.parse_args()
    rows = [measure(mode, args.n) for mode in ("durable", "async")]
    for r in rows:
        print(json.dumps(r), flush=True)
    print(json.dumps({"name": "dirops_durable_over_async",
                      "mkdir": round(rows[0]["mkdir_p50_us"] / rows[1]["mkdir_p50_us"], 2),  # type: ignore[operator]
                      "rmdir": round(rows[0]["rmdir_p50_us"] / rows[1]["rmdir_p50_us"], 2)}))  # type: ignore[operator]


if __name__ == "__main__":
    main()
