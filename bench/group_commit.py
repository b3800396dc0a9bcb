"""Does durability cost one fsync per operation? Concurrent creates say.

Creates N empty files through the asyncio client with 1 and with 64 requests
in flight, in durable mode (fsync per commit) and async mode (no fsync), in
the same run. With group commit, durable throughput grows with concurrency
because concurrent creates share one LMDB commit and one fsync.

    python bench/group_commit.py [--files 2000]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))

from common import emit, latency_row, temp_cluster  # noqa: E402

from superfs.client import AsyncFs  # noqa: E402


async def creates(address: str, files: int, inflight: int, tag: str) -> list[float]:
    fs = await AsyncFs(address).start()
    await fs.mkdir(f"/{tag}")
    root = await fs.paths.resolve(f"/{tag}", fs.creds)
    ino = root[0].ino
    sem = asyncio.Semaphore(inflight)
    lat: list[float] = []

    async def one(i: int) -> None:
        async with sem:
            t = time.perf_counter()
            await fs.meta.create(ino, f"f{i}", 0o644, fs.creds, exclusive=True)
            lat.append(time.perf_counter() - t)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(files)))
    wall = time.perf_counter() - t0
    await fs.close()
    return lat + [wall]  # last element: the wall time


def run(files: int) -> None:
    for durability in ("durable", "async"):
        with temp_cluster(durability=durability) as cluster:
            address = str(cluster.config["dir_server"])
            for inflight in (1, 64):
                samples = asyncio.run(creates(address, files, inflight, f"d{inflight}"))
                wall = samples.pop()
                row = latency_row("create", samples, durability=durability, inflight=inflight)
                row["ops_per_s"] = round(files / wall, 1)  # throughput from wall time
                emit(row)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=2000)
    run(ap.parse_args().files)
