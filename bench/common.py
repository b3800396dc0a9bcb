"""Helpers shared by the benchmarks: a throwaway local cluster, timing, JSON rows."""
from __future__ import annotations

import json
import os
import statistics
import time
from typing import Any

from superfs.bench.cluster import temp_cluster

__all__ = ["temp_cluster", "latency_row", "timed", "emit"]  # temp_cluster: superfs.bench's throwaway cluster


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
