"""Shared tools of the shard-growing tests (tests/test_t5_grow_*.py): files with checksums, a load.

A population of files is written once and its checksums kept; after a move
(or a crash and restart) every file must read back the same bytes and no
other file may have appeared. The load is clients creating, stat-ing,
renaming and unlinking in a loop, each operation's failure recorded: a move
must never be seen by an application.
"""
from __future__ import annotations

import hashlib
import subprocess
import sys
import threading
import time
from typing import Any

from t5_support import address, blob

from superfs.cli.launcher import LocalCluster
from superfs.client import Client, connect


def populate(c: Client, n: int, *, dirs: int = 4, chunked_every: int = 97) -> dict[str, str]:
    """``n`` files over ``dirs`` directories (every ``chunked_every``-th past the inline threshold)."""
    sums: dict[str, str] = {}
    for d in range(dirs):
        c.mkdir(f"/pop{d}")
    for i in range(n):
        path = f"/pop{i % dirs}/f{i}"
        data = blob(path, 6000 if i % chunked_every == 0 else 64 + i % 300)
        with c.open(path, "wb") as f:
            f.write(data)
        if i % 50 == 0:
            c.setxattr(path, "user.tag", str(i).encode())
        sums[path] = hashlib.sha256(data).hexdigest()
    return sums


def read_back(c: Client, sums: dict[str, str], dirs: int = 4) -> None:
    """Every file has its bytes, and the directories hold exactly these files."""
    for path, digest in sums.items():
        with c.open(path, "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == digest, path
    listed = {f"/pop{d}/{name}" for d in range(dirs) for name in c.listdir(f"/pop{d}")}
    assert listed == set(sums), (sorted(listed - set(sums))[:5], sorted(set(sums) - listed)[:5])


class Load:
    """Threads running create/stat/rename/unlink in a loop, each in its own directory, until stopped."""

    def __init__(self, cluster: LocalCluster, workers: int = 2) -> None:
        self.addr = address(cluster)
        self.stop_flag = threading.Event()
        self.errors: list[str] = []
        self.ops = 0
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(workers)]

    def __enter__(self) -> "Load":
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop_flag.set()
        for t in self.threads:
            t.join(120)

    def _run(self, w: int) -> None:
        with connect(self.addr) as c:
            base = f"/load{w}"
            c.mkdir(base)
            c.mkdir(base + "/other")
            i = 0
            while not self.stop_flag.is_set():
                path = f"{base}/n{i}"
                try:
                    with c.open(path, "wb") as f:
                        f.write(b"%d" % i)
                    c.stat(path)
                    moved = f"{base}/other/m{i}"
                    c.rename(path, moved)  # across directories: often across shards
                    with c.open(moved, "rb") as f:
                        assert f.read() == b"%d" % i
                    if i % 3:
                        c.unlink(moved)
                    self.ops += 1
                except Exception as e:  # noqa: BLE001 - every failure is the test's finding
                    self.errors.append(f"worker {w} op {i}: {type(e).__name__}: {e}")
                i += 1

    def wait_ops(self, n: int, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.ops < n and time.monotonic() < deadline and not self.errors:
            time.sleep(0.05)


def admin_cli(cluster: LocalCluster, *args: str) -> subprocess.CompletedProcess[str]:
    """``superfs admin ARGS --state-dir <cluster>``, as an operator runs it."""
    return subprocess.run([sys.executable, "-m", "superfs.cli.main", "admin", *args, "--state-dir",
                           cluster.state_dir], capture_output=True, text=True, timeout=900)


def add_shard_daemon(cluster: LocalCluster) -> tuple[str, int]:
    """A new shard in the cluster file, started (it registers and owns nothing yet): (name, id)."""
    name = cluster.add_shard_node()
    cluster.start_daemon(name)
    cluster.wait_ready(name)
    return name, int(name.split("-")[1])


def per_shard(c: Client) -> dict[int, int]:
    c.aio.cluster.map  # noqa: B018
    m = c.aio.cluster.map
    out: dict[int, int] = {}
    for s in m.partition_shard:
        out[int(s)] = out.get(int(s), 0) + 1
    return out
