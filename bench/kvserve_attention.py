"""Decode attention beside the cache: throughput per core against the memory-bandwidth roofline.

A ``kvserve serve`` daemon (``--attention-threads 1``: one core) holds the
KV blocks of a batch of sequences in its DRAM tier; this process puts them,
then sends Attend batches (the queries of one decode step for every
sequence) and reads the kernel time the daemon reports (``compute``) and the
round trip (``end_to_end``: leasing, locating the blocks, the RPC). The same
kernel also runs in this process over a plain numpy array (``in_process``).

Roofline: decode attention must read every byte of K and V of a sequence's
context once per generated token (per layer), so one core can generate at
most ``copy rate / (context x kv_heads x head_dim x 2 x 4 bytes)`` tokens per
second, the copy rate being what ``np.copyto`` of a large array achieves on
one core here (bytes copied per second), measured in this run, interleaved
with the attention runs so that both see the same machine. Rows give tokens
per second, the K/V bytes read per second, and the ratio to that limit.

    python bench/kvserve_attention.py [--contexts 1024,4096,16384] [--batch 16]
        [--shapes llama3-8b,llama2-70b] [--repeats 5] [--batch-bytes 512MiB] [--kernel numpy|numba]

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

# one BLAS thread, as the daemon has (python -m kvserve sets it): the figures are per core
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any, Callable  # noqa: E402

import numpy as np  # noqa: E402

from kvserve.attention.client import attend  # noqa: E402
from kvserve.attention.kernel import Segments  # noqa: E402
from kvserve.attention.kernel import attend as kernel_attend  # noqa: E402
from kvserve.attention.layout import KvLayout  # noqa: E402
from kvserve.client import KvClient  # noqa: E402
from kvserve.config import parse_size  # noqa: E402
from kvserve.launch import DaemonProcess  # noqa: E402

NS = "bench-attention/fp32/kvblock/tp0of1"
# (q_heads, kv_heads, head_dim): one layer of each model
SHAPES = {"llama3-8b": (32, 8, 128), "llama2-70b": (64, 8, 128), "mha-32": (32, 32, 128)}
BLOCK_TOKENS = 512
COPY_BYTES = 256 << 20


def emit(row: dict[str, Any]) -> None:
    row.setdefault("nproc", os.cpu_count())
    print(json.dumps(row), flush=True)


def copy_rate(src: np.ndarray, dst: np.ndarray) -> float:
    t0 = time.perf_counter()
    np.copyto(dst, src)
    return src.nbytes / (time.perf_counter() - t0)


def best_of(repeats: int, fn: Callable[[], float], src: np.ndarray, dst: np.ndarray) -> tuple[float, float]:
    """Run ``fn`` (returns seconds) and a copy alternately; (best seconds, best copy rate)."""
    best, rate = math.inf, 0.0
    for _ in range(repeats):
        rate = max(rate, copy_rate(src, dst))
        best = min(best, fn())
        rate = max(rate, copy_rate(src, dst))
    return best, rate


def one_shape(args: argparse.Namespace, c: KvClient, shape: str, context: int, src: np.ndarray,
              dst: np.ndarray) -> None:
    q_heads, kv_heads, head_dim = SHAPES[shape]
    layout = KvLayout(layers=1, kv_heads=kv_heads, head_dim=head_dim, block_tokens=BLOCK_TOKENS)
    rng = np.random.default_rng(context)
    nblocks = context // BLOCK_TOKENS
    batch = max(1, min(args.batch, args.batch_bytes // (nblocks * layout.block_bytes)))
    seqs, blocks = [], []
    for s in range(batch):
        keys = [rng.bytes(16) for _ in range(nblocks)]
        seqs.append(keys)
        for i, k in enumerate(keys):
            data = rng.standard_normal(layout.block_bytes // 4, dtype=np.float32)
            blocks.append((k, data))
    for i in range(0, len(blocks), 8):
        part = blocks[i:i + 8]
        statuses = c.put_batch([k for k, _ in part], [d for _, d in part])
        if not all(st.stored for st in statuses):
            raise SystemExit(f"the daemon refused blocks ({statuses}): give it more --dram")
    q = rng.standard_normal((batch, q_heads, head_dim), dtype=np.float32)
    kv_bytes = batch * nblocks * layout.block_bytes
    per_token = context * kv_heads * head_dim * 2 * 4

    res = attend(c, layout, q, seqs)  # warm: compiles the kernel in the daemon (numba, cached after)
    assert not res.missing and res.kv_bytes == kv_bytes
    computes: list[float] = []

    def remote() -> float:
        t0 = time.perf_counter()
        r = attend(c, layout, q, seqs)
        computes.append(r.compute_seconds)
        return time.perf_counter() - t0

    e2e, rate_e2e = best_of(args.repeats, remote, src, dst)
    compute = min(computes)

    # the same kernel in this process, over a numpy copy of the blocks laid out like the arena
    arena = np.concatenate([d for _, d in blocks])
    slab = layout.slab_floats
    idx = np.arange(len(blocks), dtype=np.int64) * 2 * slab
    segs = Segments(np.arange(0, len(blocks) + 1, nblocks, dtype=np.int64), idx, idx + slab,
                    np.full(len(blocks), BLOCK_TOKENS, dtype=np.int64),
                    np.full(len(blocks), layout.head_stride, dtype=np.int64))
    local_out = kernel_attend(arena, np.zeros(0, np.float32), segs, q, kv_heads=kv_heads, head_dim=head_dim,
                              kernel=args.kernel)
    if not np.allclose(local_out, res.outputs, rtol=1e-4, atol=1e-5):
        raise SystemExit("the daemon's outputs differ from the in-process kernel's")

    def local() -> float:
        t0 = time.perf_counter()
        kernel_attend(arena, np.zeros(0, np.float32), segs, q, kv_heads=kv_heads, head_dim=head_dim,
                      kernel=args.kernel)
        return time.perf_counter() - t0

    inproc, rate_local = best_of(args.repeats, local, src, dst)
    rate = max(rate_e2e, rate_local)
    limit = rate / per_token
    for mode, seconds in (("daemon_compute", compute), ("daemon_end_to_end", e2e), ("in_process", inproc)):
        tps = batch / seconds
        emit({"name": "kvserve.attention", "mode": mode, "shape": shape, "q_heads": q_heads, "kv_heads": kv_heads,
              "head_dim": head_dim, "context_tokens": context, "batch": batch, "threads": 1, "dtype": "float32",
              "kernel": args.kernel,
              "kv_bytes_per_token": per_token, "tokens_per_s": round(tps, 1),
              "kv_gb_per_s": round(kv_bytes / seconds / 1e9, 2), "copy_gb_per_s": round(rate / 1e9, 2),
              "roofline_tokens_per_s": round(limit, 1), "share_of_roofline": round(tps / limit, 3)})
    c.remove([k for k, _ in blocks])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--contexts", default="1024,4096,16384", help="context tokens per sequence")
    p.add_argument("--batch", type=int, default=16, help="sequences per decode batch (at most)")
    p.add_argument("--batch-bytes", type=parse_size, default="512MiB",
                   help="K/V bytes of one batch at most: fewer sequences for long contexts (default 512MiB)")
    p.add_argument("--shapes", default="llama3-8b,llama2-70b", help=f"of {','.join(SHAPES)}")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--dram", default="1600MiB", help="the daemon's DRAM tier (holds one batch's blocks)")
    p.add_argument("--kernel", choices=["numpy", "numba"], default="numpy", help="attention kernel (default numpy)")
    args = p.parse_args()
    src = np.ones(COPY_BYTES, dtype=np.uint8)
    dst = np.ones(COPY_BYTES, dtype=np.uint8)  # touched: no page faults in the copies
    with tempfile.TemporaryDirectory(prefix="kvserve-attention-") as tmp:
        d = DaemonProcess(tmp, "kv", ["--dram", args.dram, "--attention-threads", "1", "--attention-kernel",
                                      args.kernel, "--log-level", "WARNING"])
        d.start()
        try:
            with KvClient(d.address, NS, shm=True, timeout_s=120) as c:
                for shape in args.shapes.split(","):
                    for context in (int(x) for x in args.contexts.split(",")):
                        one_shape(args, c, shape, context, src, dst)
        finally:
            d.stop()


if __name__ == "__main__":
    main()
