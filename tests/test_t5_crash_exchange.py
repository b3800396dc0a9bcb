"""Crash consistency of RENAME_EXCHANGE: the daemon doing a step is killed at it.

As for the other cross-server operations (test_t5_crash_points.py): the
daemon is restarted with the step's crash point armed, the exchange runs
(the daemon dies there with status 137, as after kill -9), the daemon is
restarted normally, and then:

- each of the two objects is under exactly one of the two names, never none,
  never both: the exchange finished (its intent was durable at every point);
- link counts are unchanged, bytes and directory contents intact;
- ``superfs fsck`` finds nothing.

Two files on two shards (the source shard coordinates), two directories, and
a directory with a file (the dir server coordinates).
"""
from __future__ import annotations

import errno

import pytest
from t5_support import (arm, assert_clean, ensure_all_up, ino_of, name_on, pending_work, restart, retry,
                        wait_crashed, wait_until)

from superfs.client import Client, connect

RENAME_EXCHANGE = 2


@pytest.fixture
def c(cluster):
    ensure_all_up(cluster)
    with connect(str(cluster.config["dir_server"]), timeout_s=3.0) as client:
        yield client


def _fresh(c: Client, name: str) -> str:
    root = f"/{name}"
    c.makedirs(root)
    return root


def _shards(c: Client) -> list[int]:
    return sorted({s.id for s in c.aio.cluster.map.shards})


def _recovered(cluster, c: Client) -> None:
    """Wait until recovery settled every intent, then read afresh (not under leases taken
    while it ran: a lookup through the shards may see the names exchanged before the commit)."""
    wait_until(lambda: pending_work(cluster) == 0, "recovery to settle the exchange")
    c.aio.cache.clear()


def _run_crashing(c: Client, fn) -> None:
    """The caller of a crashed step sees an error (or, past the commit point, maybe success)."""
    try:
        fn()
    except OSError as e:
        assert e.errno in (errno.EIO, errno.ETIMEDOUT, errno.EAGAIN), e


FILE_POINTS = [
    ("src", "shard.rename.after_intent"),
    ("src", "shard.exchange.after_remote"),
    ("src", "shard.exchange.after_finish"),
    ("dst", "shard.remote_exchange.after_commit"),
]


@pytest.mark.parametrize("who,point", FILE_POINTS)
def test_cross_shard_file_exchange(cluster, c, who, point):
    root = _fresh(c, "xf-" + point.replace(".", "-"))
    c.mkdir(f"{root}/a")
    c.mkdir(f"{root}/b")
    x, y = _shards(c)[:2]
    s = name_on(c, f"{root}/a", x, "s")
    t = name_on(c, f"{root}/b", y, "t")
    c.write_bytes(f"{root}/a/{s}", b"source bytes")
    c.write_bytes(f"{root}/b/{t}", b"target bytes")
    c.link(f"{root}/b/{t}", f"{root}/b/hard")
    src_ino, dst_ino = ino_of(c, f"{root}/a/{s}"), ino_of(c, f"{root}/b/{t}")

    daemon = f"shard-{x if who == 'src' else y}"
    arm(cluster, daemon, point)
    _run_crashing(c, lambda: c.rename(f"{root}/a/{s}", f"{root}/b/{t}", flags=RENAME_EXCHANGE))
    wait_crashed(cluster, daemon)
    restart(cluster, daemon)
    c.aio.cache.clear()  # the recovered state, not directory leases from before

    _recovered(cluster, c)
    assert retry(lambda: ino_of(c, f"{root}/a/{s}")) == dst_ino
    assert ino_of(c, f"{root}/b/{t}") == src_ino
    assert c.read_bytes(f"{root}/a/{s}") == b"target bytes" and c.read_bytes(f"{root}/b/{t}") == b"source bytes"
    assert c.listdir(f"{root}/a") == [s] and sorted(c.listdir(f"{root}/b")) == sorted(["hard", t])
    assert c.stat(f"{root}/a/{s}").st_nlink == 2 and c.stat(f"{root}/b/{t}").st_nlink == 1
    assert_clean(cluster)


DIR_POINTS = ["dir.exchange.after_intent", "dir.exchange.after_first", "dir.exchange.after_second",
              "dir.exchange.after_commit"]


@pytest.mark.parametrize("point", DIR_POINTS)
@pytest.mark.parametrize("kind", ["dir-dir", "dir-file"])
def test_exchange_through_the_dir_server(cluster, c, kind, point):
    root = _fresh(c, f"xd-{kind}-" + point.replace(".", "-"))
    c.makedirs(f"{root}/p1/a/sub")
    c.write_bytes(f"{root}/p1/a/sub/f", b"inside a")
    c.mkdir(f"{root}/p2")
    if kind == "dir-dir":
        c.mkdir(f"{root}/p2/b")
        c.write_bytes(f"{root}/p2/b/g", b"inside b")
    else:
        c.write_bytes(f"{root}/p2/b", b"a file")
    a_ino, b_ino = ino_of(c, f"{root}/p1/a"), ino_of(c, f"{root}/p2/b")

    arm(cluster, "dir", point)
    _run_crashing(c, lambda: c.rename(f"{root}/p1/a", f"{root}/p2/b", flags=RENAME_EXCHANGE))
    wait_crashed(cluster, "dir")
    restart(cluster, "dir")
    c.aio.cache.clear()

    _recovered(cluster, c)
    assert retry(lambda: ino_of(c, f"{root}/p2/b")) == a_ino
    assert ino_of(c, f"{root}/p1/a") == b_ino
    assert c.read_bytes(f"{root}/p2/b/sub/f") == b"inside a"
    if kind == "dir-dir":
        assert c.read_bytes(f"{root}/p1/a/g") == b"inside b"
        assert c.stat(f"{root}/p1").st_nlink == c.stat(f"{root}/p2").st_nlink == 3
    else:
        assert c.read_bytes(f"{root}/p1/a") == b"a file"
        assert (c.stat(f"{root}/p1").st_nlink, c.stat(f"{root}/p2").st_nlink) == (2, 3)
    assert c.listdir(f"{root}/p1") == ["a"] and c.listdir(f"{root}/p2") == ["b"]
    assert_clean(cluster)
