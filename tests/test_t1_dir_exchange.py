"""Tier 1: RENAME_EXCHANGE through the dir server's coordinator (dirserver/exchange.py).

Two directories, or a directory and a file, swap names atomically: the dir
store and the shards' names (an in-memory model of the shards, which can
"crash" at any call, from test_t1_dir_store) agree afterwards, and after a
crash at any step recovery finishes the exchange, or drops it if the file's
name changed before it was touched.
"""
from __future__ import annotations

import errno
import stat
from typing import Any, Callable, Iterator

import pytest
from test_t1_dir_store import OTHER, OWNER, Crash, FakeShards, assert_consistent

from superfs.dirserver import recovery
from superfs.dirserver.coordinator import Coordinator
from superfs.dirserver.store import DirStore
from superfs.errors import FsError
from superfs.routing import ROOT_INO
from superfs.v1 import superfs_pb2 as pb

EXCHANGE = 2


@pytest.fixture
def db_path(tmp_path: Any) -> str:
    return str(tmp_path / "dir.lmdb")


@pytest.fixture
def store(db_path: str) -> Iterator[DirStore]:
    s = DirStore.open(db_path, durable=False, root_uid=OWNER.uid, root_gid=OWNER.gid)
    yield s
    s.close()


@pytest.fixture
def shards() -> FakeShards:
    return FakeShards()


@pytest.fixture
def coord(store: DirStore, shards: FakeShards) -> Coordinator:
    return Coordinator(store, shards)


def where(store: DirStore, ino: int) -> tuple[int, str]:
    d = store.need(ino)
    return d.parent_ino, d.name


async def test_two_directories_swap_places(store: DirStore, coord: Coordinator, shards: FakeShards) -> None:
    p1 = await coord.mkdir(ROOT_INO, "p1", 0o755, OWNER)
    p2 = await coord.mkdir(ROOT_INO, "p2", 0o755, OWNER)
    a = await coord.mkdir(p1.ino, "a", 0o755, OWNER)
    await coord.mkdir(a.ino, "inside", 0o755, OWNER)
    b = await coord.mkdir(p2.ino, "b", 0o755, OWNER)
    await coord.rename_dir(p1.ino, "a", p2.ino, "b", EXCHANGE, OWNER)
    assert where(store, a.ino) == (p2.ino, "b") and where(store, b.ino) == (p1.ino, "a")
    assert store.lookup(p1.ino, "a").ino == b.ino and store.lookup(p2.ino, "b").ino == a.ino  # type: ignore[union-attr]
    assert shards.entries[(p1.ino, "a")] == (b.ino, pb.DIRECTORY)
    assert store.need(p1.ino).attr.nlink == store.need(p2.ino).attr.nlink == 3
    assert store.ancestors(store.lookup(a.ino, "inside").ino) == [a.ino, p2.ino, ROOT_INO]  # type: ignore[union-attr]
    await coord.rename_dir(p1.ino, "a", p1.ino, "a", EXCHANGE, OWNER)  # with itself: nothing
    assert_consistent(store, shards)


@pytest.mark.parametrize("dir_first", [True, False], ids=["dir-file", "file-dir"])
async def test_a_directory_and_a_file_swap_names(store: DirStore, coord: Coordinator, shards: FakeShards,
                                                 dir_first: bool) -> None:
    p1 = await coord.mkdir(ROOT_INO, "p1", 0o755, OWNER)
    p2 = await coord.mkdir(ROOT_INO, "p2", 0o755, OWNER)
    d = await coord.mkdir(p1.ino, "d", 0o755, OWNER)
    f = shards.add_file(p2.ino, "f", pb.FIFO)
    if dir_first:
        await coord.rename_dir(p1.ino, "d", p2.ino, "f", EXCHANGE, OWNER)
    else:
        await coord.rename_dir(p2.ino, "f", p1.ino, "d", EXCHANGE, OWNER)
    assert where(store, d.ino) == (p2.ino, "f")
    assert shards.entries[(p1.ino, "d")] == (f, pb.FIFO) and shards.entries[(p2.ino, "f")] == (d.ino, pb.DIRECTORY)
    assert (store.need(p1.ino).attr.nlink, store.need(p2.ino).attr.nlink) == (2, 3)
    assert_consistent(store, shards)


async def test_exchange_refusals(store: DirStore, coord: Coordinator, shards: FakeShards) -> None:
    a = await coord.mkdir(ROOT_INO, "a", 0o755, OWNER)
    sub = await coord.mkdir(a.ino, "sub", 0o755, OWNER)
    await coord.mkdir(sub.ino, "deep", 0o755, OWNER)
    b = await coord.mkdir(ROOT_INO, "b", 0o755, OWNER)
    shards.add_file(ROOT_INO, "f1")
    shards.add_file(ROOT_INO, "f2")
    sticky = await coord.mkdir(ROOT_INO, "sticky", 0o1777, OWNER)
    await coord.mkdir(sticky.ino, "owners", 0o777, OWNER)
    await coord.mkdir(sticky.ino, "others", 0o777, OTHER)
    cases = [
        ((ROOT_INO, "a", ROOT_INO, "nope"), OWNER, errno.ENOENT),
        ((ROOT_INO, "nope", ROOT_INO, "a"), OWNER, errno.ENOENT),
        ((ROOT_INO, "a", sub.ino, "deep"), OWNER, errno.EINVAL),     # a would move into its own subtree
        ((sub.ino, "deep", ROOT_INO, "a"), OWNER, errno.EINVAL),
        ((ROOT_INO, "f1", ROOT_INO, "f2"), OWNER, errno.EINVAL),     # two files: the shards' business
        ((ROOT_INO, "a", ROOT_INO, "b"), OTHER, errno.EACCES),       # no write permission on the parent
        ((sticky.ino, "owners", sticky.ino, "others"), OTHER, errno.EPERM),  # sticky: not OTHER's
    ]
    for (sp, sn, dp, dn), creds, err in cases:
        with pytest.raises(FsError) as e:
            await coord.rename_dir(sp, sn, dp, dn, EXCHANGE, creds)
        assert e.value.errno == err, (sn, dn)
    with pytest.raises(FsError) as e:
        await coord.rename_dir(ROOT_INO, "a", ROOT_INO, "b", EXCHANGE | 1, OWNER)
    assert e.value.errno == errno.EINVAL
    await coord.rename_dir(ROOT_INO, "a", ROOT_INO, "b", EXCHANGE, OWNER)
    assert store.lookup(ROOT_INO, "a").ino == b.ino  # type: ignore[union-attr]
    assert_consistent(store, shards)


Op = Callable[[Coordinator, dict[str, int]], Any]


async def _build(coord: Coordinator, shards: FakeShards) -> dict[str, int]:
    p1 = await coord.mkdir(ROOT_INO, "p1", 0o755, OWNER)
    p2 = await coord.mkdir(ROOT_INO, "p2", 0o755, OWNER)
    a = await coord.mkdir(p1.ino, "a", 0o755, OWNER)
    b = await coord.mkdir(p2.ino, "b", 0o755, OWNER)
    f = shards.add_file(p2.ino, "f")
    return {"p1": p1.ino, "p2": p2.ino, "a": a.ino, "b": b.ino, "f": f}


SCENARIOS: dict[str, tuple[Op, int]] = {
    # name: (operation, number of shard calls it makes)
    "dirs": (lambda c, n: c.rename_dir(n["p1"], "a", n["p2"], "b", EXCHANGE, OWNER), 2),
    "dir-file": (lambda c, n: c.rename_dir(n["p1"], "a", n["p2"], "f", EXCHANGE, OWNER), 3),
    "file-dir": (lambda c, n: c.rename_dir(n["p2"], "f", n["p1"], "a", EXCHANGE, OWNER), 3),
}


def exchanged(store: DirStore, shards: FakeShards, n: dict[str, int], scenario: str) -> bool:
    if scenario == "dirs":
        return where(store, n["a"]) == (n["p2"], "b") and where(store, n["b"]) == (n["p1"], "a")
    if where(store, n["a"]) == (n["p2"], "f"):
        assert shards.entries[(n["p1"], "a")] == (n["f"], pb.REGULAR)
        return True
    assert where(store, n["a"]) == (n["p1"], "a") and shards.entries[(n["p2"], "f")] == (n["f"], pb.REGULAR)
    return False


@pytest.mark.parametrize("after", [False, True], ids=["before", "after"])
@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_crash_at_every_step_then_recover(db_path: str, scenario: str, after: bool) -> None:
    op, calls = SCENARIOS[scenario]
    for step in range(1, calls + 1):
        path = f"{db_path}-{step}"
        shards = FakeShards()
        store = DirStore.open(path, durable=True, root_uid=OWNER.uid, root_gid=OWNER.gid)
        coord = Coordinator(store, shards)
        n = await _build(coord, shards)
        shards.calls.clear()
        shards.crash_at = (step, after)
        with pytest.raises(Crash):
            await op(coord, n)
        store.close()  # the dir server dies; the shards keep their state
        shards.crash_at = None
        store = DirStore.open(path, root_uid=OWNER.uid, root_gid=OWNER.gid)
        coord = Coordinator(store, shards)
        looked_up_only = shards.calls == ["lookup"]  # died before its intent
        assert len(coord.intents.all()) == (0 if looked_up_only else 1)
        assert await recovery.recover_all(coord) == 0
        assert_consistent(store, shards)
        assert exchanged(store, shards, n, scenario) == (not looked_up_only), (scenario, step, after)
        store.close()


async def test_recovery_drops_an_exchange_whose_file_went_away(db_path: str) -> None:
    """The file was unlinked after the intent, before its name was touched: nothing to undo."""
    shards = FakeShards()
    store = DirStore.open(db_path, durable=True, root_uid=OWNER.uid, root_gid=OWNER.gid)
    coord = Coordinator(store, shards)
    n = await _build(coord, shards)
    shards.calls.clear()
    shards.crash_at = (2, False)  # the first repoint, before it happened
    with pytest.raises(Crash):
        await coord.rename_dir(n["p1"], "a", n["p2"], "f", EXCHANGE, OWNER)
    shards.crash_at = None
    del shards.entries[(n["p2"], "f")]  # unlinked by a client meanwhile
    assert await recovery.recover_all(coord) == 0
    assert_consistent(store, shards)
    assert where(store, n["a"]) == (n["p1"], "a")
    store.close()


async def test_mode_bits_survive_an_exchange(store: DirStore, coord: Coordinator, shards: FakeShards) -> None:
    a = await coord.mkdir(ROOT_INO, "a", 0o700, OWNER)
    b = await coord.mkdir(ROOT_INO, "b", 0o2750, OWNER)
    await coord.rename_dir(ROOT_INO, "a", ROOT_INO, "b", EXCHANGE, OWNER)
    assert stat.S_IMODE(store.need(a.ino).attr.mode) == 0o700
    assert stat.S_IMODE(store.need(b.ino).attr.mode) & 0o777 == 0o750
    assert store.need(a.ino).attr.ctime_ns >= store.need(ROOT_INO).attr.mtime_ns > 0
