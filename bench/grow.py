"""Adding a third shard under an mdtest-style load: latency before and during the move, and after.

A fresh local cluster (2 shards, 1 data server, durable) gets ``--files``
small files (through the library, ``--writers`` threads). Then ``--workers``
threads run an mdtest-style loop (create a 64-byte file, stat it, unlink
every other one, each worker in its own directory) for ``--before`` seconds,
then a third shard is started and ``superfs admin add-shard 2`` moves its
share of the partitions while the loop goes on. Printed as JSON rows:

- ``before`` and ``during``: ops, errors, p50/p99 per operation (microseconds);
- ``grow``: ``p99_ratio`` (during / before; the issue's target: at most 5),
  partitions per shard after, the add-shard command's wall time, exit status
  and partitions moved, ``fsck`` (its exit status: 0 clean), and whether
  every one of the ``--files`` files read back its bytes.

    python bench/grow.py [--files 2000] [--writers 2] [--workers 2] [--before 5] [--partitions N]

The issue's target runs ``--files 1000000 --writers 4 --before 10`` (about 25
minutes here, most of it making and reading back the files); ``--partitions 64
--files 62500`` gives the same rows per partition in about 2 minutes.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import threading
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from common import emit, latency_row, temp_cluster  # noqa: E402
from superfs.bench.cluster import dir_address  # noqa: E402
from superfs.client import connect  # noqa: E402
from superfs.config_file import ClusterFile  # noqa: E402
from superfs.procs import python_module  # noqa: E402

DIRS = 16
SLOW_S = 0.010   # operations slower than this are counted by kind (where a p99 comes from)


def _data(i: int) -> bytes:
    return hashlib.sha256(b"%d" % i).digest() * 2


def populate(address: str, files: int, writers: int) -> None:
    with connect(address) as c:
        for d in range(DIRS):
            c.mkdir(f"/pop{d}")

    step = max(1, files // 10)
    start = time.perf_counter()

    def write(w: int) -> None:
        with connect(address) as c:
            for i in range(w, files, writers):
                with c.open(f"/pop{i % DIRS}/f{i}", "wb") as f:
                    f.write(_data(i))
                if i % step == 0 and i:
                    print(f"grow: about {i} files made ({time.perf_counter() - start:.0f} s)", file=sys.stderr,
                          flush=True)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def read_back(address: str, files: int, readers: int) -> bool:
    """Every file's bytes, read by ``readers`` threads; False at the first wrong or missing one."""
    bad: list[str] = []

    def read(w: int) -> None:
        with connect(address) as c:
            for i in range(w, files, readers):
                if bad:
                    return
                try:
                    with c.open(f"/pop{i % DIRS}/f{i}", "rb") as f:
                        ok = f.read() == _data(i)
                except OSError as e:
                    bad.append(f"/pop{i % DIRS}/f{i}: {e}")
                    return
                if not ok:
                    bad.append(f"/pop{i % DIRS}/f{i}: wrong bytes")

    threads = [threading.Thread(target=read, args=(w,)) for w in range(readers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if bad:
        print(f"grow: read-back failed: {bad[0]}", file=sys.stderr, flush=True)
    return not bad


class Loop:
    """Workers creating, stat-ing and unlinking; samples go to the current phase."""

    def __init__(self, address: str, workers: int) -> None:
        self.address = address
        self.phase = "before"
        self.samples: dict[str, list[float]] = {"before": [], "during": [], "after": []}
        self.errors: dict[str, list[str]] = {"before": [], "during": [], "after": []}
        self.slow: dict[str, dict[str, int]] = {"before": {}, "during": {}, "after": {}}   # op -> count over SLOW_S
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(w,), daemon=True) for w in range(workers)]

    def _run(self, w: int) -> None:
        with connect(self.address) as c:
            base = f"/md{w}"
            c.mkdir(base)
            i = 0
            while not self.stop.is_set():
                path = f"{base}/x{i}"
                for op in ("create", "stat", "unlink"):
                    if op == "unlink" and i % 2:
                        continue
                    phase = self.phase
                    t = time.perf_counter()
                    try:
                        if op == "create":
                            with c.open(path, "wb") as f:
                                f.write(b"x" * 64)
                        elif op == "stat":
                            c.stat(path)
                        else:
                            c.unlink(path)
                        took = time.perf_counter() - t
                        self.samples[phase].append(took)
                        if took > SLOW_S:
                            self.slow[phase][op] = self.slow[phase].get(op, 0) + 1
                    except Exception as e:  # noqa: BLE001 - counted and reported, never a sample
                        self.errors[phase].append(f"{op} {path}: {e}")
                i += 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=2000, help="small files made before the move (2000)")
    ap.add_argument("--writers", type=int, default=2,
                    help="threads making those files, and reading them back at the end (2)")
    ap.add_argument("--workers", type=int, default=2,
                    help="threads of the create/stat/unlink load during the move (2)")
    ap.add_argument("--before", type=float, default=5.0, help="seconds of load before the move")
    ap.add_argument("--partitions", type=int, default=0,
                    help="the cluster's partition count (default 1,024); fewer partitions give the "
                         "rows per partition of a bigger cluster with fewer files")
    args = ap.parse_args()
    base = ClusterFile(partitions=args.partitions) if args.partitions else ClusterFile()
    with temp_cluster(shards=2, data_servers=1, replicas=1, base=base) as cluster:
        address = dir_address(cluster)
        t0 = time.perf_counter()
        populate(address, args.files, args.writers)
        populate_s = time.perf_counter() - t0
        print(f"grow: {args.files} files made in {populate_s:.0f} s", file=sys.stderr, flush=True)
        loop = Loop(address, args.workers)
        for t in loop.threads:
            t.start()
        time.sleep(args.before)
        name = cluster.add_shard_node()
        cluster.start_daemon(name)
        cluster.wait_ready(name)
        loop.phase = "during"
        start = time.perf_counter()
        r = subprocess.run([*python_module("superfs.cli.main"), "admin", "add-shard", "2",
                            "--state-dir", cluster.state_dir], capture_output=True, text=True)
        grow_s = time.perf_counter() - start
        loop.phase = "after"
        loop.stop.set()
        for t in loop.threads:
            t.join(60)
        rows: dict[str, Any] = {}
        for phase in ("before", "during"):
            row = latency_row(phase, loop.samples[phase] or [0.0], errors=len(loop.errors[phase]),
                              first_error=(loop.errors[phase] or [None])[0], over_10ms=loop.slow[phase])
            rows[phase] = row
            emit(row)
        with connect(address) as c:
            held: dict[int, int] = {}
            for s in c.aio.cluster.map.partition_shard:
                held[int(s)] = held.get(int(s), 0) + 1
        print(f"grow: add-shard took {grow_s:.0f} s (exit {r.returncode}); fsck", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        fsck = subprocess.run([*python_module("superfs.cli.main"), "fsck", "--state-dir", cluster.state_dir,
                               "--no-verify"], capture_output=True, text=True)
        fsck_s = time.perf_counter() - t0
        print(f"grow: fsck took {fsck_s:.0f} s (exit {fsck.returncode}); reading every file back",
              file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        read_ok = read_back(address, args.files, args.writers)
        read_s = time.perf_counter() - t0
        emit({"name": "grow", "files": args.files, "workers": args.workers, "partitions": sum(held.values()),
              "p99_ratio": round(rows["during"]["p99_us"] / rows["before"]["p99_us"], 2)
              if rows["before"]["p99_us"] else None,
              "p50_ratio": round(rows["during"]["p50_us"] / rows["before"]["p50_us"], 2)
              if rows["before"]["p50_us"] else None,
              "add_shard_s": round(grow_s, 2), "add_shard_rc": r.returncode,
              "partitions_moved": sum(1 for x in r.stdout.splitlines() if x.startswith("[")),
              "add_shard_error": r.stderr.strip()[-300:] or None,
              "partitions_per_shard": {str(k): v for k, v in sorted(held.items())},
              "fsck_rc": fsck.returncode, "read_back_ok": read_ok, "populate_s": round(populate_s, 1),
              "fsck_s": round(fsck_s, 1), "read_back_s": round(read_s, 1)})


if __name__ == "__main__":
    main()
