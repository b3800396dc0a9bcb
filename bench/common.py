"""Helpers shared by the benchmarks: a throwaway local cluster, timing, JSON rows."""
from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from contextlib import contextmanager
from typing import Any, Iterator

from superfs.cli.launcher import LocalCluster


@contextmanager
def temp_cluster(**init: Any) -> Iterator[LocalCluster]:
    """A fresh local cluster in a temp dir, stopped afterwards."""
    params = dict(shards=2, data_servers=2, replicas=2, inline_threshold=64 * 1024,
                  chunk_size=4 * 1024 * 1024, durability="durable")
    params.update(init)
    with tempfile.TemporaryDirectory(prefix="superfs-bench-") as state:
        cluster = LocalCluster(state)
        cluster.init(**params)
        cluster.start()
        try:
            yield cluster
        finally:
            cluster.stop()


def latency_row(name: str, samples_s: list[float], **params: Any) -> dict[str, Any]:
    """One JSON row: ops/s over the samples and p50/p99 latency in microseconds."""
    samples = sorted(samples_s)
    total = sum(samples)
    return {
        "name": name, **params,
        "ops": len(samples),
        "ops_per_s": round(len(samples) / total, 1) if total else None,
        "p50_us": round(statistics.median(samples) * 1e6, 1),
        "p99_us": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))] * 1e6, 1),
        "nproc": os.cpu_count(),
    }


def emit(row: dict[str, Any]) -> None:
    print(json.dumps(row), flush=True)


def timed(fn: Any, *args: Any) -> float:
    t = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t
