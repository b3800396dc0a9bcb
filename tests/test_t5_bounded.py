"""Bounded failure: a daemon down or unreachable fails only what needs it, with EIO or ETIMEDOUT.

The client's per-call deadline (``timeout_s``, here 1 s) bounds every call
to a daemon that is down (the connection is refused: EIO at once) or
unreachable (stopped with SIGSTOP, so connections open but nothing answers:
ETIMEDOUT at the deadline). Operations on the other daemons keep working
meanwhile, and the same client object works again on its own once the
daemon is back (channels reconnect within a second).

A hang guard fails the test if a call does not return at all within a wide
margin (30x the deadline, below the client's own 60 s operation limit): it
tells "bounded by the call deadline" from "hung", and is not a measure of
speed.
"""
from __future__ import annotations

import errno
import os
import signal
import threading
import time
from typing import Any, Callable

import pytest
from conftest import SMALL_CHUNK
from t5_support import (address, assert_clean, blob, ensure_all_up, ino_of, name_on, pending_work, restart, retry,
                        wait_until)

from superfs import routing
from superfs.client import Client, connect

DEADLINE_S = 1.0
HANG_GUARD_S = 30 * DEADLINE_S
FAILED = (errno.EIO, errno.ETIMEDOUT)


def returns(fn: Callable[[], Any]) -> tuple[Any, OSError | None]:
    """Run ``fn`` under the hang guard; (result, error)."""
    box: list[tuple[Any, OSError | None]] = []

    def run() -> None:
        try:
            box.append((fn(), None))
        except OSError as e:
            box.append((None, e))

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(HANG_GUARD_S)
    assert box, f"the call did not return within {HANG_GUARD_S:.0f} s: it hung"
    return box[0]


def fails(fn: Callable[[], Any]) -> int:
    _, err = returns(fn)
    assert err is not None, "the call succeeded although the daemon it needs is down"
    assert err.errno in FAILED, err
    return err.errno


def works(fn: Callable[[], Any]) -> Any:
    result, err = returns(fn)
    assert err is None, err
    return result


@pytest.fixture
def c(cluster):
    ensure_all_up(cluster)
    with connect(address(cluster), timeout_s=DEADLINE_S) as client:
        yield client


def _setup(c: Client, root: str) -> tuple[str, str, int]:
    c.makedirs(root)
    near = name_on(c, root, 0, "near")
    far = name_on(c, root, 1, "far")
    c.write_bytes(f"{root}/{near}", b"on shard 0")
    c.write_bytes(f"{root}/{far}", b"on shard 1")
    return near, far, ino_of(c, root)


def name_routed(c: Client, parent_ino: int, shard: int) -> str:
    """A new name routed to ``shard``, found without asking any daemon."""
    m = c.aio.cluster.map
    for i in range(10000):
        name = f"q{os.getpid()}-{time.monotonic_ns()}-{i}"
        if m.partition_shard[routing.entry_partition(parent_ino, name, m.num_partitions)] == shard:
            return name
    raise AssertionError("no name")


@pytest.mark.parametrize("how", ["killed", "stopped"])
def test_a_shard_down_fails_only_what_needs_it_and_heals(cluster, c, how):
    root = f"/bounded-{how}"
    near, far, parent = _setup(c, root)
    pid = cluster.running_pid("shard-1")
    if how == "killed":
        cluster.kill("shard-1")
    else:
        os.kill(pid, signal.SIGSTOP)
    try:
        codes = {
            fails(lambda: c.read_bytes(f"{root}/{far}")),
            fails(lambda: c.stat(f"{root}/{far}")),
            fails(lambda: c.write_bytes(f"{root}/{name_routed(c, parent, 1)}", b"x")),
            fails(lambda: c.rename(f"{root}/{near}", f"{root}/{far}")),  # its destination is there
        }
        assert codes <= set(FAILED)
        # everything shard 0 holds keeps working
        assert works(lambda: c.read_bytes(f"{root}/{near}")) == b"on shard 0"
        other = name_routed(c, parent, 0)
        works(lambda: c.write_bytes(f"{root}/{other}", b"new on shard 0"))
        works(lambda: c.unlink(f"{root}/{other}"))
    finally:
        if how == "killed":
            restart(cluster, "shard-1")
        else:
            os.kill(pid, signal.SIGCONT)
    # the same client reconnects by itself. The rename that failed could not learn what its destination
    # held (that shard was down), so it may complete later only into a free name: far is taken, so it is
    # undone, never finished over what may be a newer file (README, "A rename that failed")
    wait_until(lambda: not pending_work(cluster), "the failed rename to be settled")
    assert c.read_bytes(f"{root}/{near}") == b"on shard 0"
    assert retry(lambda: c.read_bytes(f"{root}/{far}")) == b"on shard 1"
    retry(lambda: c.rename(f"{root}/{near}", f"{root}/{far}"))  # asked again, it replaces it
    assert c.read_bytes(f"{root}/{far}") == b"on shard 0" and not c.exists(f"{root}/{near}")
    assert_clean(cluster)


def test_a_data_server_down_fails_chunk_writes_only_and_heals(cluster, c):
    root = "/bounded-data"
    c.makedirs(root)
    big = blob("big", 3 * SMALL_CHUNK)
    c.write_bytes(f"{root}/big", big)
    cluster.kill("data-0")
    try:
        assert works(lambda: c.read_bytes(f"{root}/big")) == big  # the other replica
        works(lambda: c.write_bytes(f"{root}/small", b"inline: no data server needed"))
        fails(lambda: c.write_bytes(f"{root}/big2", blob("big2", 3 * SMALL_CHUNK)))
    finally:
        restart(cluster, "data-0")
    retry(lambda: c.write_bytes(f"{root}/big2", blob("big2", 3 * SMALL_CHUNK)))
    assert c.read_bytes(f"{root}/big2") == blob("big2", 3 * SMALL_CHUNK)
    assert_clean(cluster)


def test_the_dir_server_down_fails_directory_operations_and_heals(cluster, c):
    root = "/bounded-dir"
    c.makedirs(root)
    cluster.kill("dir")
    try:
        fails(lambda: c.mkdir(f"{root}/sub"))
        fails(lambda: c.rmdir(root))
    finally:
        restart(cluster, "dir")
    retry(lambda: c.mkdir(f"{root}/sub"))
    assert c.isdir(f"{root}/sub")
    assert_clean(cluster)


def test_a_failed_write_does_not_commit_its_size(cluster, c):
    c.makedirs("/bounded-failed-write")
    path = "/bounded-failed-write/f"
    c.write_bytes(path, blob("first", 3 * SMALL_CHUNK))  # chunked
    cluster.kill("data-1")
    try:
        with pytest.raises(OSError):
            c.write_bytes(path, blob("second", 3 * SMALL_CHUNK))  # truncates, then cannot write data-1
        assert c.stat(path).st_size == 0  # truncated; the failed write's size must not be committed
    finally:
        restart(cluster, "data-1")
        retry(lambda: c.unlink(path))  # leave no disagreeing replicas for the tests after this one
