"""What one scheduler achieved on a trace, and how the schedulers of one run compare.

Per scheduler: requests completed and rejected (by reason), the share that
met both objectives, goodput (requests that met both, per second of trace),
TTFT and TBT percentiles over completed requests (TBT: each request's mean
time between tokens), and the prompt blocks by where they came from (own
DRAM, another instance's DRAM, SuperFS, computed).

Percentiles are nearest-rank over the sorted values: deterministic, no
interpolation.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

from kvserve.conductor.costs import Objectives
from kvserve.conductor.state import Request

TIERS = ("local", "pool", "superfs", "computed")


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


def _r(x: float | None, digits: int = 4) -> float | None:
    return None if x is None else round(x, digits)


def scheduler_report(name: str, requests: Sequence[Request], objectives: Objectives, span_s: float,
                     baseline: bool, counters: dict[str, int], down: Sequence[tuple[float, int]]) -> dict[str, Any]:
    completed = [r for r in requests if not r.rejected and not math.isnan(r.finish)]
    within = [r for r in completed if objectives.met(r.ttft, r.tbt)]
    rejected: dict[str, int] = {}
    for r in requests:
        if r.rejected:
            rejected[r.rejected] = rejected.get(r.rejected, 0) + 1
    ttfts = [r.ttft for r in completed]
    tbts = [r.tbt for r in completed if r.output_length > 1]
    blocks = {t: sum(r.hits[t] for r in completed) for t in TIERS}
    tokens = {t: sum(r.hit_tokens[t] for r in completed) for t in TIERS}
    total_blocks = sum(blocks.values()) or 1
    return {
        "scheduler": name,
        "baseline": baseline,
        "requests": len(requests),
        "completed": len(completed),
        "rejected": sum(rejected.values()),
        "rejected_by_reason": dict(sorted(rejected.items())),
        "within_objectives": len(within),
        "share_within": _r(len(within) / len(requests) if requests else 0.0),
        "goodput_rps": _r(len(within) / span_s),
        "ttft_s": {"p50": _r(percentile(ttfts, 0.5)), "p90": _r(percentile(ttfts, 0.9)),
                   "p99": _r(percentile(ttfts, 0.99))},
        "tbt_s": {"p50": _r(percentile(tbts, 0.5)), "p90": _r(percentile(tbts, 0.9)),
                  "p99": _r(percentile(tbts, 0.99))},
        "prompt_blocks": blocks,
        "prompt_block_share": {t: _r(blocks[t] / total_blocks) for t in TIERS},
        "prefill_tokens_computed": tokens["computed"],
        "prefill_tokens_reused": sum(tokens[t] for t in TIERS if t != "computed"),
        "rerouted": counters.get("rerouted", 0),
        "replicated_blocks": counters.get("replicated_blocks", 0),
        "stale_blocks": counters.get("stale_blocks", 0),
        "instances_down": [{"at_s": _r(t, 3), "prefill": i} for t, i in down],
    }


def compare(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The conductor's goodput against the best baseline of the same run."""
    baselines = [r for r in results if r["baseline"]]
    conductor = next((r for r in results if r["scheduler"] == "conductor"), None)
    if not baselines or conductor is None:
        return {}
    best = max(baselines, key=lambda r: (r["goodput_rps"], r["scheduler"]))
    ratio = conductor["goodput_rps"] / best["goodput_rps"] if best["goodput_rps"] else math.inf
    return {"best_baseline": best["scheduler"], "best_baseline_goodput_rps": best["goodput_rps"],
            "conductor_goodput_rps": conductor["goodput_rps"],
            "goodput_ratio": None if math.isinf(ratio) else round(ratio, 3),
            "ahead_of_every_baseline": all(conductor["goodput_rps"] > r["goodput_rps"] for r in baselines)}
