"""JSON rows for the benchmarks: latency percentiles, geometric means, one line per result."""
from __future__ import annotations

import json
import math
import os
import sys
from typing import Any, Iterable, Sequence, TextIO


def percentile_us(sorted_s: Sequence[float], q: float) -> float | None:
    """The q-quantile (0..1) of sorted samples in seconds, in microseconds (None if empty)."""
    if not sorted_s:
        return None
    i = min(len(sorted_s) - 1, int(len(sorted_s) * q))
    return round(sorted_s[i] * 1e6, 1)


def geomean(values: Iterable[float]) -> float:
    """Geometric mean; 0 if any value is 0 (a phase that did nothing scores nothing)."""
    vals = list(values)
    if not vals or any(v <= 0 for v in vals):
        return 0.0
    return math.exp(sum(math.log(v) for v in vals) / len(vals))


def emit(row: dict[str, Any], out: TextIO | None = None) -> None:
    """Print one result as one JSON line and flush (so partial runs still report)."""
    row.setdefault("nproc", os.cpu_count())
    print(json.dumps(row), file=out or sys.stdout, flush=True)
