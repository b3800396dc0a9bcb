"""Races between clients: rmdir against creates, directory renames against each other.

Each client is its own connection (its own event loop and channels) on its
own thread, so the requests really do meet at the servers at the same time.

- rmdir racing creates in the directory: either the rmdir wins (every
  racing create fails with ENOENT and no file is left under the removed
  directory) or a create wins (the rmdir fails with ENOTEMPTY, and then
  every racing create succeeds: the directory never stopped existing);
- renames of directories into each other: never a cycle, never a subtree
  cut off from root, every file still there.
"""
from __future__ import annotations

import errno
import random
import threading
from typing import Any, Callable

import pytest
from t5_support import address, assert_clean, name_on

from superfs.client import Client, connect

CREATORS = 4
ROUNDS = 12


def _outcome(fn: Callable[[], Any]) -> int:
    """0 on success, else the errno."""
    try:
        fn()
        return 0
    except OSError as e:
        return e.errno or -1


def _together(fns: list[Callable[[], Any]]) -> list[int]:
    """Run ``fns`` at once on their own threads (released by one barrier); their outcomes."""
    barrier = threading.Barrier(len(fns))
    results: list[int] = [0] * len(fns)

    def run(i: int) -> None:
        barrier.wait()
        results[i] = _outcome(fns[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(fns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
        assert not t.is_alive(), "a racing operation hung"
    return results


@pytest.fixture
def clients(cluster):
    cs = [connect(address(cluster)) for _ in range(CREATORS + 1)]
    yield cs
    for c in cs:
        c.close()


def test_rmdir_against_creates_has_one_winner(cluster, clients: list[Client]):
    main = clients[0]
    main.mkdir("/rmrace")
    shards = sorted({s.id for s in main.aio.cluster.map.shards})
    seen = {"rmdir won": 0, "a create won": 0}
    for r in range(ROUNDS):
        d = f"/rmrace/d{r}"
        main.mkdir(d)
        # names spread over every shard: the seal must be refused or respected on each
        names = [name_on(main, d, shards[i % len(shards)], f"c{i}-") for i in range(CREATORS)]
        creates = [lambda c=c, n=n: c.write_bytes(f"{d}/{n}", b"racing") for c, n in zip(clients[1:], names)]
        rm, *made = _together([lambda: clients[0].rmdir(d), *creates])
        assert rm in (0, errno.ENOTEMPTY), errno.errorcode.get(rm, rm)
        if rm == 0:
            seen["rmdir won"] += 1
            assert all(m == errno.ENOENT for m in made), [errno.errorcode.get(m, m) for m in made]
            assert not main.exists(d)
        else:
            seen["a create won"] += 1
            # the directory existed throughout: no create may have been told it did not
            assert all(m == 0 for m in made), [errno.errorcode.get(m, m) for m in made]
            assert sorted(main.listdir(d)) == sorted(names)
    print("outcomes:", seen)
    assert_clean(cluster)  # in particular: no file whose parent directory is gone


def _tree(c: Client, top: str) -> tuple[list[str], dict[str, bytes]]:
    dirs: list[str] = []
    files: dict[str, bytes] = {}
    for path, ds, fs in c.walk(top):
        dirs += [f"{path}/{d}" for d in ds]
        for f in fs:
            files[f"{path}/{f}"] = c.read_bytes(f"{path}/{f}")
    return dirs, files


def test_crossing_directory_renames_never_make_a_cycle(cluster, clients: list[Client]):
    main = clients[0]
    main.mkdir("/cycle")
    for r in range(ROUNDS):
        base = f"/cycle/r{r}"
        main.makedirs(f"{base}/a/x")
        main.makedirs(f"{base}/b/y")
        main.write_bytes(f"{base}/a/x/fa{r}", b"a")
        main.write_bytes(f"{base}/b/y/fb{r}", b"b")
        ab, ba = _together([lambda: clients[1].rename(f"{base}/a", f"{base}/b/y/a"),
                            lambda: clients[2].rename(f"{base}/b", f"{base}/a/x/b")])
        # exactly one can win: the other's source moved, or became its own ancestor
        assert sorted([ab, ba]).count(0) == 1, (errno.errorcode.get(ab, ab), errno.errorcode.get(ba, ba))
        assert {ab, ba} - {0} <= {errno.ENOENT, errno.EINVAL}
        expect = [f"{base}/b", f"{base}/b/y", f"{base}/b/y/a", f"{base}/b/y/a/x"] if ab == 0 else \
                 [f"{base}/a", f"{base}/a/x", f"{base}/a/x/b", f"{base}/a/x/b/y"]
        dirs, files = _tree(main, base)
        assert sorted(dirs) == sorted(expect)
        assert sorted(files.values()) == [b"a", b"b"]
    # and a free-for-all: random moves of random directories by every client at once
    rnd = random.Random(5)
    main.makedirs("/cycle/free")
    all_dirs = [f"/cycle/free/d{i}" for i in range(8)]
    for d in all_dirs:
        main.mkdir(d)
        main.write_bytes(f"{d}/file", d.encode())
    for _ in range(6):
        def mover(c: Client, seed: int) -> None:
            g = random.Random(seed)
            for _ in range(5):
                dirs, _ = _tree(c, "/cycle/free")
                src, dst = g.choice(dirs), g.choice(dirs + ["/cycle/free"])
                _outcome(lambda: c.rename(src, f"{dst}/{src.rsplit('/', 1)[-1]}"))
        _together([lambda c=c, s=rnd.random(): mover(c, s) for c in clients[1:]])
    dirs, files = _tree(main, "/cycle/free")
    assert sorted(d.rsplit("/", 1)[-1] for d in dirs) == sorted(d.rsplit("/", 1)[-1] for d in all_dirs)
    assert sorted(files.values()) == sorted(d.encode() for d in all_dirs)  # every file, once
    assert_clean(cluster)  # in particular: every directory reaches root (no cycle, no orphaned subtree)
