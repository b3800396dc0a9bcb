"""Clusters and mounts for the benchmarks: a throwaway local cluster, its daemons' pids and CPU time.

Everything here goes through the same commands a user runs (``LocalCluster``
as ``superfs up`` uses it, ``superfs mount`` / ``superfs umount``), so the
benchmark measures the default configuration unless a row says otherwise.
"""
from __future__ import annotations

import glob
import os
import subprocess
import tempfile
import time
from contextlib import contextmanager
from typing import Any, Iterator

from superfs.cli.launcher import LocalCluster
from superfs.procs import python_module
from superfs.daemon import read_ready_file

DEFAULT_INIT: dict[str, Any] = dict(shards=2, data_servers=2, replicas=2, inline_threshold=64 * 1024,
                                    chunk_size=4 * 1024 * 1024, durability="durable")
MOUNT_TIMEOUT_S = 60.0


@contextmanager
def temp_cluster(parent: str | None = None, **init: Any) -> Iterator[LocalCluster]:
    """A fresh local cluster in a temp dir (under ``parent``), stopped and removed afterwards."""
    params = dict(DEFAULT_INIT)
    params.update(init)
    with tempfile.TemporaryDirectory(prefix="superfs-bench-", dir=parent) as state:
        cluster = LocalCluster(state)
        cluster.init(**params)
        cluster.start()
        try:
            yield cluster
        finally:
            cluster.stop()


def dir_address(cluster: LocalCluster) -> str:
    info = read_ready_file(cluster.path("run", "dir.ready"))
    if not info:
        raise RuntimeError(f"{cluster.state_dir}: the dir server is not running")
    return str(info["address"])


def daemon_pids(state_dir: str) -> dict[str, int]:
    """Name -> pid of each daemon, from the ready files under ``state_dir/run``."""
    out = {}
    for path in sorted(glob.glob(os.path.join(state_dir, "run", "*.ready"))):
        pid = (read_ready_file(path) or {}).get("pid")
        if isinstance(pid, int):
            out[os.path.basename(path)[:-len(".ready")]] = pid
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # after "pid (comm)": state is fields[0], utime and stime are the 14th and 15th of the line
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_of(pids: dict[str, int]) -> dict[str, float]:
    return {name: cpu_seconds(pid) for name, pid in pids.items()}


def superfs_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*python_module("superfs.cli.main"), *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=MOUNT_TIMEOUT_S + 30)


@contextmanager
def superfs_mount(cluster: LocalCluster, mountpoint: str) -> Iterator[str]:
    """``superfs mount`` (defaults: the daemonised mount), ``superfs umount`` afterwards."""
    os.makedirs(mountpoint, exist_ok=True)
    r = superfs_cli("mount", mountpoint, "--state-dir", cluster.state_dir)
    if r.returncode != 0 or not os.path.ismount(mountpoint):
        raise RuntimeError(f"superfs mount {mountpoint} failed: {r.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        superfs_cli("umount", mountpoint, "--state-dir", cluster.state_dir)


def wait_mounted(path: str, proc: subprocess.Popen[bytes], timeout_s: float = MOUNT_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not os.path.ismount(path):
        if proc.poll() is not None:
            raise RuntimeError(f"mount process for {path} exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path} not mounted within {timeout_s} s")
        time.sleep(0.01)


def fuse_unmount(path: str, proc: subprocess.Popen[bytes]) -> None:
    subprocess.run(["fusermount3", "-u", path], capture_output=True)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        subprocess.run(["fusermount3", "-u", "-z", path], capture_output=True)
