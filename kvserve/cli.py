"""``python -m kvserve``: run the daemon (``serve``), replay a serving trace (``replay``),
schedule a cluster over it (``conduct``, in kvserve/conductor/cli.py) or make a trace (``gen-trace``)."""
from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from typing import Any, Sequence

from superfs.extras import MissingExtra, exit_status, require

from kvserve.config import ServerConfig, config_from_mapping, load_config, parse_size
from kvserve.policy import POLICIES

log = logging.getLogger(__name__)

DEFAULT_BYTES_PER_TOKEN = 131072   # Llama-3-8B in bf16: 2 (K,V) x 32 layers x 8 heads x 128 dims x 2 bytes
DRIVE_BYTES_PER_TOKEN = 64         # small blocks, so that a whole trace fits a test machine
REPLAY_NAMESPACE = "replay/bf16/default/tp0of1"

MAIN_HELP = """\
kvserve: a KV-cache store for LLM serving, on SuperFS.

Run a store and replay a trace against it (a Mooncake-format trace; make
one with gen-trace, or take a public one from kvcache-ai/Mooncake):
  python -m kvserve serve --dram 2GiB --ready-file /tmp/kv.ready
  python -m kvserve gen-trace /tmp/trace.jsonl
  python -m kvserve replay /tmp/trace.jsonl --store 127.0.0.1:PORT

Schedule a prefill/decode cluster over the cache (the conductor against
baselines, simulated; or over running daemons with --live):
  python -m kvserve conduct /tmp/trace.jsonl          # see: python -m kvserve conduct --help

Or just ask what a cache of a given size would save (no daemon):
  python -m kvserve replay TRACE.jsonl                  # unbounded: the best the trace allows
  python -m kvserve replay TRACE.jsonl --dram 10%       # DRAM = 10% of the trace's distinct blocks
  python -m kvserve replay TRACE.jsonl --dram 10% --superfs --policy lru

From Python: kvserve.client.KvClient(address, namespace) and
kvserve.cluster.KvCluster([addresses], namespace); keys from
kvserve.block_hashes(token_ids, namespace=kvserve.Namespace("my-model")).
"""

SERVE_HELP = """\
Run one kvserve daemon in the foreground until SIGTERM or Ctrl-C.

It keeps objects in a DRAM tier (a shared-memory arena of --dram bytes that
clients on the same host map directly) and, with --superfs, evicts them to
files on a SuperFS cluster and promotes them back on a hit. It logs one line
when it serves and one when it stops, and writes {"address", "pid"} to
--ready-file once it accepts requests.

examples:
  python -m kvserve serve --dram 8GiB --listen 0.0.0.0:7070
  python -m kvserve serve --dram 1GiB --superfs local --superfs-root /kvserve/node-a
  python -m kvserve serve --config kvserve.toml --metrics-port 9100

A --config TOML file takes the keys of kvserve.config.ServerConfig
(dram_bytes = "8GiB", policy = "lru", namespaces = [...], ...); flags win.
"""

REPLAY_HELP = """\
Replay a serving trace in the Mooncake format (one JSON object per line with
timestamp, input_length, output_length and hash_ids of 512-token blocks) and
print a JSON report on stdout: prefix hit ratios by tier (in blocks and in
tokens), prefill tokens saved, bytes moved and evictions. Progress goes to
stderr.

Without --store it simulates the store (same tiers, same eviction code, no
bytes): with no --dram it is an unbounded cache, i.e. the best hit ratio the
trace allows. With --store it drives running daemons with real puts and gets
(their own capacities and policy apply) and checks every block read back.

Sizes: bytes with an optional unit (512MiB, 4GiB), or a percentage of the
trace's distinct blocks (10%).

examples:
  python -m kvserve replay trace.jsonl
  python -m kvserve replay trace.jsonl --dram 10% --policy lru
  python -m kvserve replay trace.jsonl --dram 10% --superfs 50%
  python -m kvserve replay trace.jsonl --store 127.0.0.1:7070,127.0.0.1:7071
"""


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m kvserve", description=MAIN_HELP,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    s = sub.add_parser("serve", help="run a kvserve daemon in the foreground", description=SERVE_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("--config", metavar="FILE", help="TOML file of settings (flags override it)")
    s.add_argument("--listen", help="host:port to serve on (default 127.0.0.1:0, any free port)")
    s.add_argument("--ready-file", metavar="PATH", help="write {address, pid} here once serving")
    s.add_argument("--dram", metavar="SIZE", help="DRAM tier capacity (default 1GiB)")
    s.add_argument("--max-object", metavar="SIZE", help="largest object accepted (default 64MiB)")
    s.add_argument("--policy", choices=sorted(POLICIES), help="eviction policy (default s3fifo)")
    s.add_argument("--namespace", action="append", metavar="NS",
                   help="accept only this namespace (repeatable; default: any)")
    s.add_argument("--superfs", metavar="ADDRESS",
                   help="dir-server host:port of a SuperFS cluster for the second tier, or 'local' "
                        "for the cluster 'superfs up' started")
    s.add_argument("--superfs-config", metavar="FILE",
                   help="the SuperFS cluster's cluster.toml (address, TLS, token) for the second tier")
    s.add_argument("--superfs-root", metavar="PATH", help="directory on SuperFS for this daemon's objects "
                                                          "(default /kvserve/default; one per daemon)")
    s.add_argument("--superfs-capacity", metavar="SIZE", help="SuperFS tier capacity (default unbounded)")
    s.add_argument("--no-shm", action="store_true", help="do not offer shared memory to same-host clients")
    s.add_argument("--no-prefault", action="store_true", help="allocate arena pages on first use, not at start")
    s.add_argument("--no-huge-pages", action="store_true",
                   help="keep the arena on the pages the host's shared-memory policy gives (often 4 KiB) "
                        "instead of a private huge-page tmpfs")
    s.add_argument("--lease-seconds", type=float, help="how long a reader's lease lasts (default 10)")
    s.add_argument("--attention-threads", type=int, metavar="N",
                   help="threads computing one Attend batch (decode attention; default: one per CPU)")
    s.add_argument("--attention-kernel", choices=["numpy", "numba"],
                   help="decode attention kernel (default numpy: BLAS products; numba: no BLAS, slower)")
    s.add_argument("--metrics-port", type=int, metavar="PORT", help="serve Prometheus metrics here (0: any port)")
    s.add_argument("--metrics-host", metavar="HOST", help="address of the metrics endpoint (default 127.0.0.1)")
    s.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (default INFO)")
    s.set_defaults(func=_serve)

    r = sub.add_parser("replay", help="replay a serving trace (simulated or against daemons)",
                       description=REPLAY_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("trace", metavar="TRACE.jsonl", help="the trace file")
    r.add_argument("--store", metavar="ADDR[,ADDR...]", help="drive these running daemons instead of simulating")
    r.add_argument("--bytes-per-token", type=int, metavar="N",
                   help=f"KV bytes per token (default {DEFAULT_BYTES_PER_TOKEN} simulated, "
                        f"{DRIVE_BYTES_PER_TOKEN} with --store)")
    r.add_argument("--block-tokens", type=int, default=512, metavar="N", help="tokens per block (default 512)")
    r.add_argument("--dram", metavar="SIZE|PCT%", help="simulated DRAM capacity (default unbounded)")
    r.add_argument("--superfs", nargs="?", const="unbounded", metavar="SIZE|PCT%",
                   help="simulate a SuperFS tier under DRAM (default size: unbounded)")
    r.add_argument("--policy", choices=sorted(POLICIES), default="s3fifo", help="simulated eviction policy")
    r.add_argument("--limit", type=int, metavar="N", help="replay only the first N requests")
    r.add_argument("--namespace", default=REPLAY_NAMESPACE, help="namespace of the keys (with --store)")
    r.add_argument("--no-shm", action="store_true", help="with --store: use gRPC even on the same host")
    r.add_argument("--progress-seconds", type=float, default=2.0, metavar="S", help="progress line interval")
    r.set_defaults(func=_replay)

    from kvserve.conductor.cli import add_commands
    add_commands(sub)
    return p


# --------------------------------------------------------------------- serve

def _serve_config(args: argparse.Namespace) -> ServerConfig:
    flags: dict[str, Any] = {}
    for flag, key in [("listen", "listen"), ("ready_file", "ready_file"), ("dram", "dram_bytes"),
                      ("max_object", "max_object_bytes"), ("policy", "policy"), ("superfs_root", "superfs_root"),
                      ("superfs_capacity", "superfs_bytes"), ("lease_seconds", "lease_seconds"),
                      ("attention_threads", "attention_threads"), ("attention_kernel", "attention_kernel"),
                      ("metrics_port", "metrics_port"), ("metrics_host", "metrics_host")]:
        value = getattr(args, flag)
        if value is not None:
            flags[key] = value
    if args.namespace:
        flags["namespaces"] = tuple(args.namespace)
    if args.superfs == "local":
        from superfs.client.local import local_cluster_file
        flags["superfs_config"] = local_cluster_file(None).path
    elif args.superfs:
        flags["superfs"] = args.superfs
    if args.superfs_config:
        flags["superfs_config"] = args.superfs_config
    if args.no_shm:
        flags["shm"] = False
    if args.no_prefault:
        flags["prefault"] = False
    if args.no_huge_pages:
        flags["huge_pages"] = False
    if "dram_bytes" in flags and "max_object_bytes" not in flags and not args.config:
        flags["max_object_bytes"] = min(parse_size(flags["dram_bytes"]), ServerConfig.max_object_bytes)
    return load_config(args.config, flags) if args.config else config_from_mapping(flags)


def _one_blas_thread() -> None:
    """The console script imports numpy before it can set OPENBLAS_NUM_THREADS (``python -m kvserve``
    does): limit BLAS at run time instead, if threadpoolctl is installed (see kvserve/attention/kernel.py)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        log.debug("threadpoolctl is not installed: BLAS threads as OPENBLAS_NUM_THREADS says")
        return
    threadpool_limits(1, user_api="blas")


def _serve(args: argparse.Namespace) -> int:
    from superfs.daemon import setup_logging

    from kvserve.server import run

    try:
        cfg = _serve_config(args)
    except (ValueError, OSError) as e:
        raise SystemExit(f"kvserve: {e}") from None
    if cfg.attention_kernel == "numba":  # refuse before serving, not at the first request
        require("kvserve", "the numba attention kernel")
    setup_logging(args.log_level)
    _one_blas_thread()
    asyncio.run(run(cfg))
    return 0


# -------------------------------------------------------------------- replay

def _capacity(text: str | None, distinct_bytes: int) -> int | None:
    if text is None or text == "unbounded":
        return None
    if text.endswith("%"):
        return int(float(text[:-1]) / 100 * distinct_bytes)
    return parse_size(text)


def _progress(total: int, every_s: float) -> Any:
    last = [time.monotonic()]

    def report(done: int, r: Any) -> None:
        now = time.monotonic()
        if now - last[0] < every_s and done != total:
            return
        last[0] = now
        d, s = r.hits["dram"].blocks, r.hits["superfs"].blocks
        print(f"replay: {done}/{total} requests; hits so far {d} DRAM + {s} SuperFS blocks "
              f"({(d + s) / max(1, r.blocks):.1%} of the trace's {r.blocks} blocks)", file=sys.stderr, flush=True)

    return report


def _replay(args: argparse.Namespace) -> int:
    from kvserve.replay.trace import TraceError, load_trace, summarize

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        requests = load_trace(args.trace, limit=args.limit)
    except (OSError, TraceError) as e:
        raise SystemExit(f"kvserve replay: {e}") from None
    if args.block_tokens < 1:
        raise SystemExit("kvserve replay: --block-tokens must be positive")
    progress = _progress(len(requests), args.progress_seconds)
    if args.store:
        if args.dram or args.superfs:
            raise SystemExit("kvserve replay: with --store, capacities are the daemons' settings "
                             "(kvserve serve --dram/--superfs-capacity); drop --dram/--superfs")
        report = _drive(args, requests, progress)
    else:
        from kvserve.replay.sim import SimConfig, simulate

        bpt = args.bytes_per_token or DEFAULT_BYTES_PER_TOKEN
        block_bytes = bpt * args.block_tokens
        distinct_bytes = summarize(requests).distinct_blocks * block_bytes
        try:
            cfg = SimConfig(block_bytes=block_bytes, dram_bytes=_capacity(args.dram, distinct_bytes),
                            superfs=args.superfs is not None,
                            superfs_bytes=_capacity(args.superfs, distinct_bytes),
                            policy=args.policy, block_tokens=args.block_tokens)
        except ValueError as e:
            raise SystemExit(f"kvserve replay: {e}") from None
        report = simulate(requests, cfg, trace=args.trace, progress=progress)
    print(report.to_json())
    return 0


def _drive(args: argparse.Namespace, requests: Sequence[Any], progress: Any) -> Any:  # -> ReplayReport
    from kvserve.cluster import KvCluster
    from kvserve.errors import KvError
    from kvserve.replay.drive import drive

    bpt = args.bytes_per_token or DRIVE_BYTES_PER_TOKEN
    addresses = [a.strip() for a in args.store.split(",") if a.strip()]
    try:
        cluster = KvCluster(addresses, args.namespace, shm=False if args.no_shm else None)
        with cluster:
            return drive(requests, cluster, namespace=args.namespace, block_bytes=bpt * args.block_tokens,
                         stats=cluster.stats, trace=args.trace, block_tokens=args.block_tokens, progress=progress)
    except (KvError, ValueError) as e:
        raise SystemExit(f"kvserve replay: {e}") from None


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except MissingExtra as e:  # pip install superfs without [kvserve]
        return exit_status("kvserve", e)


if __name__ == "__main__":
    sys.exit(main())
