"""One run: the same trace, cluster, cost model and objectives under every scheduler.

:func:`run` replays the trace once per scheduler (each on a fresh cluster)
and returns one JSON-ready report: the settings, one result per scheduler
(``report.scheduler_report``) and the conductor's goodput against the best
baseline. Deterministic: no wall-clock figure is in it.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

from kvserve.conductor.costs import ClusterShape, CostModel, Objectives
from kvserve.conductor.report import compare, scheduler_report
from kvserve.conductor.schedulers import SCHEDULERS, make_scheduler
from kvserve.conductor.sim import Backend, Simulation
from kvserve.replay.trace import TraceRequest


def span_of(trace: Sequence[TraceRequest], speed: float) -> float:
    """Seconds from the first to the last arrival (at least 1: goodput is per second)."""
    if not trace:
        return 1.0
    return max(1.0, (trace[-1].timestamp - trace[0].timestamp) / 1000.0 / speed)


def run_one(trace: Sequence[TraceRequest], scheduler: str, *, cost: CostModel, shape: ClusterShape,
            objectives: Objectives, speed: float = 1.0, seed: int = 0, backend: Backend | None = None,
            on_arrival: Callable[[Simulation, int], None] | None = None) -> dict[str, Any]:
    sched = make_scheduler(scheduler, seed)
    sim = Simulation(trace, sched, cost=cost, shape=shape, objectives=objectives, speed=speed,
                     backend=backend, on_arrival=on_arrival)
    requests = sim.run()
    return scheduler_report(sched.name, requests, objectives, span_of(trace, speed), sched.baseline,
                            sim.counters, sim.down_events)


def run(trace: Sequence[TraceRequest], *, cost: CostModel, shape: ClusterShape, objectives: Objectives,
        speed: float = 1.0, seed: int = 0, schedulers: Sequence[str] = SCHEDULERS, trace_name: str = "",
        progress: Callable[[str, dict[str, Any]], None] | None = None) -> dict[str, Any]:
    results = []
    for name in schedulers:
        result = run_one(trace, name, cost=cost, shape=shape, objectives=objectives, speed=speed, seed=seed)
        results.append(result)
        if progress is not None:
            progress(name, result)
    return _settings("simulate", trace, trace_name, speed, seed, shape, cost, objectives) | {
        "measured": [],
        "modelled": ["block transfers", "prefill compute", "decode steps", "KV transfer to decode"],
        "results": results,
        "comparison": compare(results),
    }


def run_live(trace: Sequence[TraceRequest], addresses: Sequence[str], *, cost: CostModel, decode: int,
             objectives: Objectives, scheduler: str = "conductor", speed: float = 1.0, seed: int = 0,
             namespace: str | None = None, trace_name: str = "", shm: bool | None = None,
             on_arrival: Callable[[Simulation, int], None] | None = None) -> dict[str, Any]:
    """One scheduler over real daemons, one per prefill instance (see ``live.py``)."""
    from kvserve.conductor.live import LiveBackend

    # one namespace per scheduler and model: runs against the same daemons never share blocks
    backend = LiveBackend(addresses, cost, namespace or f"conduct-{scheduler}-{cost.name}/bf16/default/tp0of1",
                          shm=shm)
    try:
        shape = ClusterShape(prefill=len(addresses), decode=decode, prefill_cache_blocks=backend.cache_blocks(),
                             superfs_blocks=0, cache_policy=backend.policy())
        result = run_one(trace, scheduler, cost=cost, shape=shape, objectives=objectives, speed=speed, seed=seed,
                         backend=backend, on_arrival=on_arrival)
        summary = backend.summary()
    finally:
        backend.close()
    return _settings("live", trace, trace_name, speed, seed, shape, cost, objectives) | {
        "measured": summary.pop("measured"), "modelled": summary.pop("modelled"), "live": summary,
        "results": [result]}


def _settings(mode: str, trace: Sequence[TraceRequest], trace_name: str, speed: float, seed: int,
              shape: ClusterShape, cost: CostModel, objectives: Objectives) -> dict[str, Any]:
    return {
        "mode": mode,
        "trace": trace_name,
        "requests": len(trace),
        "trace_span_s": round(span_of(trace, speed), 3),
        "speed": speed,
        "seed": seed,
        "cluster": dataclasses.asdict(shape),
        "cost_model": dataclasses.asdict(cost),
        "objectives": dataclasses.asdict(objectives),
    }
