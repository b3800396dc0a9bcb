"""A second client's first look into a directory another mount holds a lease on: the recall's cost.

Two mounts of one fresh local cluster (default configuration, durable).
For each of ``--n`` directories, mount A creates ``--files`` small files in
it (so A holds the directory's exclusive lease, with those creates either
still waiting in A or just sent), then mount B stats one of them: B's
lookup makes the dir server recall A's lease, A sends what is pending and
lets go, and B's lookup goes on. Printed as JSON rows (median and p99 in
microseconds):

- ``recall_first_lookup``: B's stat in a directory A holds (the issue's
  target: p99 at most 50 ms);
- ``plain_first_lookup``: the same stat in a directory nobody holds (A made
  its files with --no-leases), the baseline in the same run;
- the ratio of the two medians.

    python bench/lease_recall.py [--n 200] [--files 5]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from typing import Iterator

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from common import emit, latency_row, temp_cluster  # noqa: E402
from superfs.bench.cluster import dir_address, fuse_unmount, wait_mounted  # noqa: E402
from superfs.procs import python_module  # noqa: E402


@contextmanager
def mount(address: str, mountpoint: str, *extra: str) -> Iterator[str]:
    os.makedirs(mountpoint, exist_ok=True)
    proc = subprocess.Popen([*python_module("superfs.cli.main"), "mount", mountpoint, "--address", address,
                             "--foreground", *extra], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_mounted(mountpoint, proc)
        yield mountpoint
    finally:
        fuse_unmount(mountpoint, proc)


def first_lookups(a: str, b: str, tag: str, n: int, files: int) -> list[float]:
    samples = []
    for i in range(n):
        d = f"{tag}-{i}"
        os.mkdir(f"{a}/{d}")
        for j in range(files):
            fd = os.open(f"{a}/{d}/f{j}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(fd, b"x" * 100)
            os.close(fd)
        t = time.perf_counter()
        os.stat(f"{b}/{d}/f{files - 1}")
        samples.append(time.perf_counter() - t)
    return samples


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200, help="directories (samples) per row")
    ap.add_argument("--files", type=int, default=5, help="files A creates in each directory first")
    args = ap.parse_args()
    with temp_cluster() as cluster, tempfile.TemporaryDirectory(prefix="superfs-recall-") as tmp, \
            ExitStack() as stack:
        address = dir_address(cluster)
        a = stack.enter_context(mount(address, f"{tmp}/a"))
        a_plain = stack.enter_context(mount(address, f"{tmp}/a-plain", "--no-leases"))
        b = stack.enter_context(mount(address, f"{tmp}/b"))
        os.mkdir(f"{a}/leased")
        os.mkdir(f"{a}/plain")
        first_lookups(f"{a}/leased", f"{b}/leased", "warm", 10, args.files)  # connections, caches
        leased = first_lookups(f"{a}/leased", f"{b}/leased", "d", args.n, args.files)
        plain = first_lookups(f"{a_plain}/plain", f"{b}/plain", "d", args.n, args.files)
    rows = [latency_row("recall_first_lookup", leased, files=args.files),
            latency_row("plain_first_lookup", plain, files=args.files)]
    for r in rows:
        emit(r)
    emit({"name": "recall_vs_plain", "p50_ratio": round(rows[0]["p50_us"] / rows[1]["p50_us"], 2),
          "p99_ratio": round(rows[0]["p99_us"] / rows[1]["p99_us"], 2),
          "target_p99_us": 50_000, "met": rows[0]["p99_us"] <= 50_000})


if __name__ == "__main__":
    main()
