"""Shared tools of the crash tier (tests/test_t5_*.py): crash points, waiting, fsck, routing.

Daemons are real processes of a LocalCluster. A daemon is armed by
restarting it with ``SUPERFS_CRASH_AT`` in its environment; it then dies
with status 137 when an operation passes that point, and is restarted
without it, as an operator (or systemd) would. Waits are bounded by
generous limits that only catch hangs: no test asserts how long anything
took.
"""
from __future__ import annotations

import asyncio
import errno
import hashlib
import io
import time
from typing import Any, Callable, TypeVar

from superfs import faults, routing
from superfs.cli.launcher import LocalCluster
from superfs.client import Client
from superfs.client.admin import AdminClient
from superfs.errors import FsError
from superfs.fsck.findings import Finding, errors
from superfs.fsck.runner import Options, Run

T = TypeVar("T")

WAIT_S = 60.0          # a bound for things that happen "eventually" (recovery rounds are ~1 s)
TRANSIENT = {errno.EIO, errno.ETIMEDOUT, errno.EAGAIN, errno.ECONNREFUSED, errno.ESTALE}


def address(cluster: LocalCluster) -> str:
    return str(cluster.config["dir_server"])


def wait_until(pred: Callable[[], T], what: str, timeout_s: float = WAIT_S, interval_s: float = 0.1) -> T:
    """Poll ``pred`` until it returns something true; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = pred()
        except (OSError, FsError) as e:
            if e.errno not in TRANSIENT:
                raise
            last = e
        if last and not isinstance(last, (OSError, FsError)):
            return last
        time.sleep(interval_s)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def retry(fn: Callable[[], T], what: str = "operation", timeout_s: float = WAIT_S) -> T:
    """Run ``fn`` until it stops failing with a transient error (a daemon just restarted)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return fn()
        except (OSError, FsError) as e:
            if e.errno not in TRANSIENT or time.monotonic() > deadline:
                raise
        time.sleep(0.1)


# ----------------------------------------------------------------- daemons

def arm(cluster: LocalCluster, name: str, point: str) -> None:
    """Restart daemon ``name`` so that it dies at crash point ``point``.

    Work left queued by an earlier test (a reclaim, an owed link change) is
    let finish first: otherwise the armed daemon could die on it at start-up,
    not on the operation under test.
    """
    assert point.split("@")[0] in faults.POINTS, point
    wait_until(lambda: pending_work(cluster) == 0, "earlier work to finish before arming a crash point")
    cluster.kill(name)
    cluster.start_daemon(name, env={faults.ENV: point})
    cluster.wait_ready(name)


def wait_crashed(cluster: LocalCluster, name: str, timeout_s: float = WAIT_S) -> None:
    """Wait for an armed daemon to die at its crash point (exit status 137, not some other death)."""
    proc = cluster.procs[name]
    code = proc.wait(timeout_s)
    assert code == faults.EXIT_CODE, f"{name} exited with {code}, not at its crash point:\n{cluster.log_tail(name)}"
    assert "crash point" in cluster.log_tail(name, 5)


def restart(cluster: LocalCluster, name: str) -> None:
    cluster.start_daemon(name)
    cluster.wait_ready(name)


def ensure_all_up(cluster: LocalCluster) -> None:
    """Every daemon running (a failed earlier test may have left one down)."""
    for name, _, pid in cluster.status():
        if pid is None:
            restart(cluster, name)


# ----------------------------------------------------------------- routing

def ino_of(c: Client, path: str) -> int:
    return c.stat(path, follow_symlinks=False).st_ino


def entry_shard(c: Client, parent: str, name: str) -> int:
    m = c.aio.cluster.map
    return m.partition_shard[routing.entry_partition(ino_of(c, parent), name, m.num_partitions)]


def home_shard(c: Client, path: str) -> int:
    m = c.aio.cluster.map
    return m.partition_shard[routing.ino_partition(ino_of(c, path))]


def name_on(c: Client, parent: str, shard: int, prefix: str) -> str:
    """A fresh name in ``parent`` whose entry lives on ``shard``."""
    for i in range(10000):
        name = f"{prefix}{i}"
        if entry_shard(c, parent, name) == shard and not c.exists(f"{parent}/{name}"):
            return name
    raise AssertionError("no name routes to that shard")


def blob(seed: str, size: int) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


# -------------------------------------------------------------------- fsck

async def _fsck(addr: str, opts: Options) -> tuple[int, str]:
    admin = await AdminClient.connect(addr, timeout_s=5.0)
    out = io.StringIO()
    try:
        rc = await Run(admin, opts, out).fsck()
    finally:
        await admin.close()
    return rc, out.getvalue()


def fsck(cluster: LocalCluster, *, repair: bool = False, settle_s: float = 20.0,
         grace_s: float | None = None) -> tuple[int, str]:
    """Run fsck in-process; (exit status, report). ``grace_s=0``: no writer is active, cut young garbage too."""
    opts = Options(repair=repair, settle_s=settle_s) if grace_s is None else Options(
        repair=repair, settle_s=settle_s, grace_s=grace_s)
    return asyncio.run(_fsck(address(cluster), opts))


def assert_clean(cluster: LocalCluster) -> str:
    rc, report = fsck(cluster)
    assert rc == 0, "fsck found inconsistencies:\n" + report
    return report


async def _with_admin(addr: str, fn: Callable[[AdminClient], Any]) -> Any:
    admin = await AdminClient.connect(addr, timeout_s=5.0)
    try:
        return await fn(admin)
    finally:
        await admin.close()


def with_admin(cluster: LocalCluster, fn: Callable[[AdminClient], Any]) -> Any:
    """Run ``await fn(admin)`` on a fresh admin connection."""
    return asyncio.run(_with_admin(address(cluster), fn))


def chunks_of(cluster: LocalCluster, ino: int) -> dict[int, list[int]]:
    """Data server id -> chunk indexes of ``ino`` stored there (retried while a server restarts)."""
    async def fn(admin: AdminClient) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {}
        for d in admin.data_servers():
            out[d.id] = sorted(c.key.index for c in await admin.list_chunks(d.id) if c.key.ino == ino)
        return out
    return retry(lambda: with_admin(cluster, fn), "listing chunks")


def pending_work(cluster: LocalCluster) -> int:
    """Intents, owed link changes and reclaim items still queued anywhere."""
    async def fn(admin: AdminClient) -> int:
        n = len(await admin.dir_intents())
        for s in admin.shards():
            p = await admin.pending(s.id)
            n += len(p.intents) + len(p.outbox) + len(p.reclaim)
        return n
    return with_admin(cluster, fn)


def kinds(findings: list[Finding]) -> set[str]:
    return {f.kind for f in errors(findings)}
