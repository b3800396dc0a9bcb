"""``python -m kvserve conduct`` and ``gen-trace``: replay a trace under the conductor and its baselines."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

CONDUCT_HELP = """\
Replay a serving trace (Mooncake format: one JSON object per line with
timestamp in ms, input_length, output_length and hash_ids of 512-token
blocks) on a simulated cluster of prefill and decode instances, once per
scheduler: the conductor (prefill by estimated time to first token over
where the prompt's blocks are, decode by load, hot-block replication, early
rejection against the objectives), the baselines (random, round-robin,
least-loaded, prefix-affinity) and two ablations of the conductor. Prints
one JSON report on stdout (settings, cost model, per scheduler: goodput,
share within objectives, TTFT/TBT percentiles, rejections, where prompt
blocks came from; the conductor against the best baseline) and a table on
stderr.

Times are modelled (kvserve/conductor/costs.py documents every constant;
--model picks a preset). With --live, prefill instance i keeps its blocks in
the running `kvserve serve` daemon number i: block loads, stores and
replicas are real transfers of real-size blocks, timed, while compute and
decode stay modelled (the report lists which is which).

The trace's clock is divided by --speed: 2 replays it twice as fast.

examples:
  python -m kvserve gen-trace /tmp/trace.jsonl --requests 2000        # no trace at hand? make one
  python -m kvserve conduct /tmp/trace.jsonl
  python -m kvserve conduct TRACE.jsonl --prefill 4 --decode 2 --speed 1.5 --ttft 30 --tbt 0.1
  python -m kvserve conduct TRACE.jsonl --schedulers conductor,least-loaded --limit 500
  python -m kvserve serve --dram 2GiB --ready-file /tmp/a.ready &  # one daemon per prefill instance
  python -m kvserve serve --dram 2GiB --ready-file /tmp/b.ready &
  python -m kvserve conduct TRACE.jsonl --live 127.0.0.1:PORT_A,127.0.0.1:PORT_B --model llama3.2-1b --limit 200
"""

GEN_HELP = """\
Write a synthetic serving trace in the Mooncake format: Poisson arrivals,
shared system prompts (Zipf popularity), multi-turn conversations and one-off
documents (kvserve/replay/synth.py). Deterministic for a given --seed.

example:
  python -m kvserve gen-trace trace.jsonl --requests 2000 --rate 4 --seed 0
"""


def add_commands(sub: Any) -> None:
    from kvserve.conductor.costs import MODELS
    from kvserve.conductor.schedulers import SCHEDULERS

    c = sub.add_parser("conduct", help="replay a trace under the conductor and baseline schedulers",
                       description=CONDUCT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("trace", metavar="TRACE.jsonl", help="the trace file")
    c.add_argument("--prefill", type=int, default=4, metavar="N", help="prefill instances (default 4)")
    c.add_argument("--decode", type=int, default=2, metavar="N", help="decode instances (default 2)")
    c.add_argument("--model", choices=sorted(MODELS), default="llama2-70b",
                   help="cost model preset (default llama2-70b: the Mooncake paper's setting)")
    c.add_argument("--kv-bytes-per-token", type=int, metavar="N",
                   help="override the preset's KV bytes per token (the block size is 512 times it)")
    c.add_argument("--speed", type=float, default=1.0, metavar="X", help="replay X times faster (default 1)")
    c.add_argument("--ttft", type=float, default=30.0, metavar="S", help="TTFT objective in seconds (default 30)")
    c.add_argument("--tbt", type=float, default=0.1, metavar="S", help="TBT objective in seconds (default 0.1)")
    c.add_argument("--schedulers", metavar="A,B", default=",".join(SCHEDULERS),
                   help=f"which to run (default all: {','.join(SCHEDULERS)}); --live runs the first")
    c.add_argument("--cache-blocks", type=int, default=4096, metavar="N",
                   help="DRAM cache of each prefill instance, in blocks (default 4096; --live: the daemons')")
    c.add_argument("--superfs-blocks", default="unbounded", metavar="N",
                   help="SuperFS tier under the DRAM caches, in blocks: a number, 'unbounded' (default) or 0")
    c.add_argument("--seed", type=int, default=0, help="seed of the random baseline (default 0)")
    c.add_argument("--limit", type=int, metavar="N", help="replay only the first N requests")
    c.add_argument("--live", metavar="ADDR,ADDR", help="running kvserve daemons, one per prefill instance")
    c.add_argument("--no-shm", action="store_true", help="with --live: gRPC even on the same host")
    c.set_defaults(func=_conduct)

    g = sub.add_parser("gen-trace", help="write a synthetic trace in the Mooncake format", description=GEN_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    g.add_argument("out", metavar="OUT.jsonl", help="where to write it")
    g.add_argument("--requests", type=int, default=2000, help="number of requests (default 2000)")
    g.add_argument("--rate", type=float, default=4.0, help="requests per second (default 4)")
    g.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    g.set_defaults(func=_gen_trace)


def _fail(msg: str) -> SystemExit:
    return SystemExit(f"kvserve conduct: {msg}")


def _conduct(args: argparse.Namespace) -> int:
    from kvserve.conductor.costs import MODELS, ClusterShape, Objectives
    from kvserve.conductor.experiment import run, run_live
    from kvserve.conductor.schedulers import SCHEDULERS
    from kvserve.errors import KvError
    from kvserve.replay.trace import TraceError, load_trace

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    names = [s.strip() for s in args.schedulers.split(",") if s.strip()]
    unknown = [n for n in names if n not in SCHEDULERS]
    if unknown or not names:
        raise _fail(f"unknown scheduler {','.join(unknown) or '(none)'}: choose from {', '.join(SCHEDULERS)}")
    try:
        trace = load_trace(args.trace, limit=args.limit)
        cost = MODELS[args.model]
        if args.kv_bytes_per_token is not None:
            cost = cost.replace(kv_bytes_per_token=args.kv_bytes_per_token)
        objectives = Objectives(args.ttft, args.tbt)
        if args.speed <= 0:
            raise ValueError("--speed must be positive")
        sfs = _blocks(args.superfs_blocks)
        if args.live:
            addresses = [a.strip() for a in args.live.split(",") if a.strip()]
            ClusterShape(prefill=len(addresses), decode=args.decode)  # checks the counts
            report = run_live(trace, addresses, cost=cost, decode=args.decode, objectives=objectives,
                              scheduler=names[0], speed=args.speed, seed=args.seed, trace_name=args.trace,
                              shm=False if args.no_shm else None)
        else:
            shape = ClusterShape(prefill=args.prefill, decode=args.decode, prefill_cache_blocks=args.cache_blocks,
                                 superfs_blocks=sfs)
            report = run(trace, cost=cost, shape=shape, objectives=objectives, speed=args.speed, seed=args.seed,
                         schedulers=names, trace_name=args.trace, progress=_progress)
    except (OSError, TraceError, ValueError, KvError) as e:
        raise _fail(str(e)) from None
    print(json.dumps(report, indent=2))
    _table(report)
    return 0


def _blocks(text: str) -> int | None:
    if text == "unbounded":
        return None
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"--superfs-blocks takes a number of blocks, 'unbounded' or 0, not {text!r}") from None


def _progress(name: str, r: dict[str, Any]) -> None:
    print(f"conduct: {name} done: {r['within_objectives']}/{r['requests']} within objectives",
          file=sys.stderr, flush=True)


def _table(report: dict[str, Any]) -> None:
    o = report["objectives"]
    print(f"\n{report['mode']}: {report['requests']} requests over {report['trace_span_s']} s, "
          f"{report['cluster']['prefill']} prefill + {report['cluster']['decode']} decode instances, "
          f"objectives TTFT <= {o['ttft_s']} s, TBT <= {o['tbt_s']} s", file=sys.stderr)
    print(f"{'scheduler':26} {'goodput/s':>9} {'within':>7} {'rejected':>8} {'TTFT p90':>9} {'TBT p90':>8}",
          file=sys.stderr)
    for r in report["results"]:
        print(f"{r['scheduler']:26} {r['goodput_rps']:9.3f} {r['share_within']:7.1%} {r['rejected']:8d} "
              f"{_s(r['ttft_s']['p90']):>9} {_s(r['tbt_s']['p90']):>8}", file=sys.stderr)
    cmp = report.get("comparison")
    if cmp:
        print(f"conductor / best baseline ({cmp['best_baseline']}): goodput x{cmp['goodput_ratio']}",
              file=sys.stderr)


def _s(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _gen_trace(args: argparse.Namespace) -> int:
    from kvserve.replay.synth import SynthConfig, write_trace

    try:
        cfg = SynthConfig(requests=args.requests, rate=args.rate, seed=args.seed)
        shared = write_trace(args.out, cfg)
    except (OSError, ValueError) as e:
        raise SystemExit(f"kvserve gen-trace: {e}") from None
    print(f"wrote {args.requests} requests to {args.out} ({shared} prompt blocks shared with earlier requests)",
          file=sys.stderr)
    return 0
