"""mkdir and rmdir through the mount, made ahead under the parent's lease or sent one by one.

One fresh local cluster (default configuration, durable), two mounts of it:
one with leases (the default: directories made ahead, fuse/dirs_ahead.py),
one with ``--no-leases`` (every mkdir and rmdir a synchronous call to the dir
server: the old code path), measured in the same run, one process. For each
mount, ``--n`` mkdirs in a fresh directory, then an fsync of it (what a
careful application does before it relies on them), then ``--n`` rmdirs and
an fsync again. Rows (JSON): ops/s of the operations alone, and counting the
fsync that makes them durable; the last row gives leased / plain.

    python bench/dirs_ahead.py [--n 3000]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from contextlib import ExitStack

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from common import emit, temp_cluster  # noqa: E402
from lease_recall import mount  # noqa: E402
from superfs.bench.cluster import dir_address  # noqa: E402


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def run(top: str, n: int, label: str) -> dict[str, float]:
    os.mkdir(top)
    fsync_dir(os.path.dirname(top))
    names = [f"{top}/d{i:06d}" for i in range(n)]
    t0 = time.perf_counter()
    for p in names:
        os.mkdir(p)
    t1 = time.perf_counter()
    fsync_dir(top)
    t2 = time.perf_counter()
    for p in names:
        os.rmdir(p)
    t3 = time.perf_counter()
    fsync_dir(top)
    t4 = time.perf_counter()
    row = {"name": "dirs_ahead", "mount": label, "n": n, "nproc": os.cpu_count(),
           "mkdir_per_s": round(n / (t1 - t0)), "mkdir_durable_per_s": round(n / (t2 - t0)),
           "rmdir_per_s": round(n / (t3 - t2)), "rmdir_durable_per_s": round(n / (t4 - t2))}
    emit(row)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=3000, help="directories made and removed per mount")
    args = ap.parse_args()
    with temp_cluster() as cluster, tempfile.TemporaryDirectory(prefix="superfs-dirs-") as tmp, \
            ExitStack() as stack:
        address = dir_address(cluster)
        leased_mnt = stack.enter_context(mount(address, f"{tmp}/leased"))
        plain_mnt = stack.enter_context(mount(address, f"{tmp}/plain", "--no-leases"))
        run(f"{leased_mnt}/warm", 200, "warm-up")
        leased = run(f"{leased_mnt}/leased", args.n, "leases (made ahead)")
        plain = run(f"{plain_mnt}/plain", args.n, "--no-leases (one call each)")
    emit({"name": "dirs_ahead_vs_plain", **{k: round(leased[k] / plain[k], 2) for k in leased
                                           if k.endswith("_per_s")}})


if __name__ == "__main__":
    main()
