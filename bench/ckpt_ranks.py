"""Where ckpt's multi-rank load loses time: W rank processes save 1 GiB to a local directory, then load it.

    W=4 python bench/ckpt_ranks.py [--dir /var/tmp/ckpt-ranks] [--threads 4]

No SuperFS: the ranks save with ckpt.save (world W, rank r), the page cache
is dropped, then every rank loads its own share with ckpt.load, timed from
the first rank's start to the last one's end. Prints one JSON line. Compare
with bench/ckpt.py's ckpt_local row.

    KEEP=1 W=4 python bench/ckpt_ranks.py   # the ranks keep the state they saved alive

2026-12-05, quiet: 2.1-2.9 GB/s with 4 ranks, 2.5-3.0 with KEEP=1 (holding
the saved state costs nothing); one process loading in its main thread 3.17;
4 plain sequential readers of 256 MiB files 3.19. bench/ckpt.py's ckpt_local
load read 1.13-1.32 then because its ranks built the arrays to load into
after the clock had started (4 ranks on 2 cores, at different speeds);
fixed, it reads 3.2 there too.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import sys
import time
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TOTAL = 1 << 30
COLS = 1024
ARRAYS = 4


def state(rank: int, world: int) -> dict[str, Any]:
    import ckpt

    rows = TOTAL // (COLS * 4) // ARRAYS // world
    rng = np.random.default_rng(rank)
    return {"layers": {f"l{i}": ckpt.Shard(rng.random((rows, COLS), dtype=np.float32), (rows * world, COLS),
                                           (rank * rows, 0)) for i in range(ARRAYS)}}


def worker(path: str, rank: int, world: int, threads: int, barrier: Any, out: Any) -> None:
    import ckpt

    saved = state(rank, world)
    ckpt.save(saved, path, step=1, rank=rank, world_size=world, timeout_s=300)
    if not os.environ.get("KEEP"):
        del saved
    target = state(rank, world)
    for a in target["layers"].values():
        a.local[:] = 0
    barrier.wait()   # saved; the parent drops the page cache
    barrier.wait()
    t0 = time.time()
    ckpt.load(path, target=target, rank=rank, world_size=world, threads=threads)
    out.put((t0, time.time()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default="/var/tmp/ckpt-ranks")
    ap.add_argument("--threads", type=int, default=4)
    args = ap.parse_args()
    world = int(os.environ.get("W", "4"))
    shutil.rmtree(args.dir, ignore_errors=True)
    barrier, out = mp.Barrier(world + 1), mp.Queue()
    procs = [mp.Process(target=worker, args=(args.dir, r, world, args.threads, barrier, out)) for r in range(world)]
    for p in procs:
        p.start()
    barrier.wait()
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        cache = "drop_caches"
    except OSError:
        cache = "not dropped (needs root)"
    barrier.wait()
    times = [out.get() for _ in range(world)]
    for p in procs:
        p.join()
    shutil.rmtree(args.dir, ignore_errors=True)
    wall = max(t[1] for t in times) - min(t[0] for t in times)
    print(json.dumps({"name": "ckpt_ranks_load", "world": world, "threads": args.threads, "cache": cache,
                      "gbps": round(TOTAL / wall / 1e9, 3), "rank_seconds": [round(t[1] - t[0], 3) for t in times],
                      "nproc": os.cpu_count()}))


if __name__ == "__main__":
    main()
