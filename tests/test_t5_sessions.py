"""Sessions against real daemon processes: kill -9, SIGSTOP and reconnects in the middle of many calls.

Every call the client library makes to a daemon travels on one session per
daemon (superfs/rpc). With 64 calls in flight on one session:

- kill -9 of the daemon ends every call with its result or an error, none
  later than its deadline plus the time to notice; when the daemon is back,
  the same session reconnects and calls work again;
- SIGSTOP likewise (the daemon's socket still accepts, it never answers);
  after SIGCONT the session works again;
- a create sent again after a forced reconnect is applied exactly once: an
  exclusive create never answers EEXIST for a name only it made.
"""
from __future__ import annotations

import asyncio
import errno
import os
import signal
import time

import pytest

from superfs.client import connect
from superfs.client.fs import AsyncFs
from superfs.errors import FsError

DEADLINE_S = 2.0
NOTICE_S = 5.0   # a dead connection is noticed in DEAD_AFTER_S, a refused reconnect at once


def shard_pid(cluster, index: int) -> int:  # type: ignore[no-untyped-def]
    from superfs.daemon import read_ready_file
    info = read_ready_file(cluster.path("run", f"shard-{index}.ready"))
    assert info is not None
    return int(info["pid"])  # type: ignore[call-overload]


async def flood(fs: AsyncFs, names: list[str]) -> list[tuple[str, float]]:
    """64 calls at once (creates and stats); each call's outcome and how long it took."""
    async def one(i: int, name: str) -> tuple[str, float]:
        t = time.monotonic()
        try:
            if i % 2:
                await fs.open_node(name, os.O_CREAT | os.O_WRONLY)
            else:
                await fs.stat("/d/warm")
            return "ok", time.monotonic() - t
        except OSError as e:
            return errno.errorcode.get(e.errno or 0, "?"), time.monotonic() - t
        except FsError as e:
            return errno.errorcode.get(e.errno, "?"), time.monotonic() - t

    return await asyncio.gather(*(one(i, n) for i, n in enumerate(names)))


@pytest.mark.parametrize("how", ["kill", "stop"])
def test_a_daemon_killed_or_stopped_under_64_calls_ends_each_call_and_the_session_comes_back(
        cluster_factory, how):  # type: ignore[no-untyped-def]
    cluster = cluster_factory(shards=1, data_servers=1, replicas=1)
    with connect(str(cluster.config["dir_server"]), timeout_s=DEADLINE_S) as c:
        fs = c.aio
        c.mkdir("/d")
        c.write_bytes("/d/warm", b"w")
        sessions = fs.channels.sessions()
        assert sessions, "the client uses sessions"
        pid = shard_pid(cluster, 0)

        async def run() -> list[tuple[str, float]]:
            task = asyncio.ensure_future(flood(fs, [f"/d/f{i}" for i in range(64)]))
            await asyncio.sleep(0.01)
            os.kill(pid, signal.SIGKILL if how == "kill" else signal.SIGSTOP)
            return await task

        outcomes = c.run(run())
        assert len(outcomes) == 64
        for outcome, took in outcomes:
            assert outcome in ("ok", "EIO", "ETIMEDOUT"), outcomes
            assert took < DEADLINE_S + NOTICE_S, outcomes
        if how == "kill":
            cluster.procs["shard-0"].wait()  # reaped: a zombie would pass for a running daemon
            cluster.start_daemon("shard-0")
            cluster.wait_ready("shard-0")
        else:
            os.kill(pid, signal.SIGCONT)
        deadline = time.monotonic() + 30
        while True:  # the same client, the same sessions: they reconnect by themselves
            try:
                c.write_bytes("/d/after", b"back")
                break
            except OSError as e:
                assert time.monotonic() < deadline, f"the session never came back: {e}"
                time.sleep(0.2)
        assert c.read_bytes("/d/after") == b"back"
        made = [f"f{i}" for i, (o, _) in enumerate(outcomes) if o == "ok" and i % 2]
        assert set(made) <= set(c.listdir("/d"))  # every acknowledged create is there


def test_an_exclusive_create_sent_again_after_a_forced_reconnect_is_applied_once(cluster_factory):  # type: ignore[no-untyped-def]
    cluster = cluster_factory(shards=1, data_servers=1, replicas=1)
    with connect(str(cluster.config["dir_server"])) as c:
        fs = c.aio
        c.mkdir("/x")
        c.write_bytes("/x/warm", b"")

        async def create_and_cut(i: int) -> None:
            # O_EXCL: a second application of the same create would answer EEXIST
            await fs.open_node(f"/x/n{i}", os.O_CREAT | os.O_EXCL | os.O_WRONLY)

        async def run() -> int:
            cuts = 0
            for i in range(100):
                task = asyncio.ensure_future(create_and_cut(i))
                await asyncio.sleep(0.0005 * (i % 5))
                for s in fs.channels.sessions():
                    if s._conn is not None and s._conn.ready:
                        s._conn.close()  # the connection dies with the create in flight, or just after
                        cuts += 1
                await task
            return cuts

        cuts = c.run(run())
        assert cuts >= 50  # most creates had their connection cut under them
        assert sorted(c.listdir("/x")) == sorted(["warm"] + [f"n{i}" for i in range(100)])
