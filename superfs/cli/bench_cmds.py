"""``superfs bench md | io | footprint | scaling | peers``: the benchmark suite (JSON lines on stdout)."""
from __future__ import annotations

import argparse
import importlib

COMMANDS = {
    "md": "mdtest-style metadata phases (IO500 easy/hard, mkdir/rmdir, find) over a directory or the library",
    "io": "sequential and random IO through the library (and a mount) against a local disk",
    "footprint": "metadata bytes per empty file after creating N files",
    "scaling": "create phases on 1, 2 and 4 shards: ops/s, daemon CPU per 1,000 ops, dir RPCs per op",
    "peers": "the md benchmark over SuperFS and its peers in the same run, with ratios",
}


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("bench", help="run a benchmark (one JSON object per result on stdout)",
                       description="SuperFS's benchmarks. Each prints one JSON object per result and "
                                   "compares against a baseline measured in the same run.")
    bench_sub = p.add_subparsers(title="benchmarks", metavar="BENCHMARK")
    for name, help_text in COMMANDS.items():
        mod = importlib.import_module(f"superfs.bench.{name}")
        bp = bench_sub.add_parser(name, help=help_text, description=mod.__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(bp)
        bp.set_defaults(func=mod.main)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
