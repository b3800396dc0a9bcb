"""The conductor against its baselines: goodput at the same objectives, over a load sweep.

Simulated (kvserve.conductor, the cost model in kvserve/conductor/costs.py):
each trace given is replayed at each --speeds factor under every scheduler
(conductor, random, round-robin, least-loaded, prefix-affinity, and two
ablations of the conductor) on the same cluster. One row per scheduler and
speed, then one summary row per speed: the conductor's goodput over the
best baseline's. The simulation is deterministic: rerunning gives the same
figures (its wall time is the only machine-dependent number).

With --live N, N ``kvserve serve`` daemons are started (one per prefill
instance) and the first --live-limit requests of the first trace are
replayed by the conductor with real block transfers (the live row says
what was measured and what modelled).

    python bench/kvserve_conduct.py TRACE.jsonl [TRACE2.jsonl ...] [--speeds 0.5,0.75,1,1.5]
        [--prefill 4] [--decode 2] [--model llama2-70b] [--ttft 30] [--tbt 0.1]
        [--live 2 --live-limit 300 --live-model llama3.2-1b --live-dram 1GiB] [--skip-simulation]

Prints one JSON object per result; asserts nothing.
"""
from __future__ import annotations

# named like the package it measures: make `import kvserve` find the package, not this script
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.getcwd()) != HERE]
sys.path.insert(0, ROOT)

import argparse  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

from kvserve.conductor.costs import MODELS, ClusterShape, Objectives  # noqa: E402
from kvserve.conductor.experiment import run, run_live  # noqa: E402
from kvserve.launch import DaemonProcess  # noqa: E402
from kvserve.replay.trace import load_trace  # noqa: E402

KEYS = ("scheduler", "goodput_rps", "share_within", "completed", "rejected", "rejected_by_reason", "ttft_s", "tbt_s",
        "prompt_block_share", "replicated_blocks")


def emit(row: dict[str, Any]) -> None:
    row.setdefault("nproc", os.cpu_count())
    print(json.dumps(row), flush=True)


def simulate(args: argparse.Namespace, path: str) -> None:
    trace = load_trace(path)
    cost = MODELS[args.model]
    shape = ClusterShape(prefill=args.prefill, decode=args.decode)
    objectives = Objectives(args.ttft, args.tbt)
    for speed in [float(s) for s in args.speeds.split(",")]:
        t0 = time.perf_counter()
        report = run(trace, cost=cost, shape=shape, objectives=objectives, speed=speed, trace_name=path)
        wall = time.perf_counter() - t0
        base = {"trace": os.path.basename(path), "requests": len(trace), "speed": speed,
                "prefill": args.prefill, "decode": args.decode, "model": args.model,
                "ttft_objective_s": args.ttft, "tbt_objective_s": args.tbt}
        for r in report["results"]:
            emit({"name": "kvserve.conduct", **base, **{k: r[k] for k in KEYS}, "baseline": r["baseline"]})
        emit({"name": "kvserve.conduct.summary", **base, **report["comparison"],
              "simulation_wall_s": round(wall, 1)})


def live(args: argparse.Namespace, path: str) -> None:
    trace = load_trace(path, limit=args.live_limit)
    cost = MODELS[args.live_model]
    with tempfile.TemporaryDirectory(prefix="kvserve-conduct-") as tmp:
        daemons = [DaemonProcess(tmp, f"kv{i}", ["--dram", args.live_dram, "--max-object", "64MiB",
                                                 "--log-level", "WARNING"]).start() for i in range(args.live)]
        try:
            t0 = time.perf_counter()
            report = run_live(trace, [d.address for d in daemons], cost=cost, decode=args.decode,
                              objectives=Objectives(args.ttft, args.tbt), speed=args.live_speed, trace_name=path)
            wall = time.perf_counter() - t0
        finally:
            for d in daemons:
                d.stop()
    r = report["results"][0]
    emit({"name": "kvserve.conduct.live", "trace": os.path.basename(path), "requests": len(trace),
          "daemons": args.live, "model": args.live_model, "speed": args.live_speed,
          "cache_blocks_per_instance": report["cluster"]["prefill_cache_blocks"],
          **{k: r[k] for k in KEYS}, "rerouted": r["rerouted"], "live": report["live"],
          "measured": report["measured"], "modelled": report["modelled"], "wall_s": round(wall, 1)})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("traces", nargs="+", metavar="TRACE.jsonl")
    p.add_argument("--speeds", default="0.5,0.75,1,1.25,1.5")
    p.add_argument("--prefill", type=int, default=4)
    p.add_argument("--decode", type=int, default=2)
    p.add_argument("--model", choices=sorted(MODELS), default="llama2-70b")
    p.add_argument("--ttft", type=float, default=30.0)
    p.add_argument("--tbt", type=float, default=0.1)
    p.add_argument("--live", type=int, default=0, metavar="N", help="also run live over N daemons")
    p.add_argument("--live-limit", type=int, default=300)
    p.add_argument("--live-model", choices=sorted(MODELS), default="llama3.2-1b")
    p.add_argument("--live-dram", default="1GiB")
    p.add_argument("--live-speed", type=float, default=1.0)
    p.add_argument("--skip-simulation", action="store_true", help="only the live run")
    args = p.parse_args()
    for path in [] if args.skip_simulation else args.traces:
        simulate(args, path)
    if args.live:
        live(args, args.traces[0])


if __name__ == "__main__":
    main()
