"""Crash consistency: a daemon killed at every step of every multi-server operation.

For each step of cross-shard rename and link, rmdir, mkdir, directory rename
and unlink with its chunk reclaim, the daemon doing that step is restarted
with the step's crash point armed, the operation is run (the daemon dies
there with status 137, as after kill -9), the daemon is restarted normally,
and then the invariants are checked with the client and with fsck:

- a renamed file is under exactly one of its names, never none, never both;
  a replaced target loses exactly one link (its other hard link survives);
- rmdir either happened or not: never a file left in a removed directory,
  never a live directory sealed;
- an unlinked file's chunks are reclaimed, every live chunk stays.
"""
from __future__ import annotations

import errno

import pytest
from conftest import SMALL_CHUNK
from t5_support import (arm, assert_clean, blob, chunks_of, ensure_all_up, entry_shard, home_shard, ino_of,
                        name_on, restart, retry, wait_crashed, wait_until)

from superfs.client import Client, connect

BIG = 2 * SMALL_CHUNK + 1000   # three chunks


@pytest.fixture
def c(cluster):
    ensure_all_up(cluster)
    with connect(str(cluster.config["dir_server"]), timeout_s=3.0) as client:
        yield client


def _fresh(c: Client, name: str) -> str:
    root = f"/{name}"
    c.makedirs(root)
    return root


def _expect_error_or_success(fn) -> None:
    """The caller of a crashed step sees an error (or, past the commit, maybe success)."""
    try:
        fn()
    except OSError as e:
        assert e.errno in (errno.EIO, errno.ETIMEDOUT, errno.EAGAIN), e


def _shards(c: Client) -> list[int]:
    return sorted({s.id for s in c.aio.cluster.map.shards})


# ------------------------------------------------------------ cross-shard rename

RENAME_POINTS = [
    ("src", "shard.rename.after_intent"),
    ("src", "shard.rename.after_remote_link"),
    ("src", "shard.rename.after_finish"),
    ("dst", "shard.remote_link.after_commit"),
    ("dst", "shard.outbox.after_deliver"),  # the replaced inode's home is the source shard
]


@pytest.mark.parametrize("who,point", RENAME_POINTS)
def test_cross_shard_rename_over_a_linked_target(cluster, c, who, point):
    root = _fresh(c, "rn-" + point.replace(".", "-"))
    for d in ("a", "b", "keep"):
        c.mkdir(f"{root}/{d}")
    x, y = _shards(c)[:2]
    s = name_on(c, f"{root}/a", x, "s")
    t = name_on(c, f"{root}/b", y, "t")
    data_s, data_t = blob("s" + point, BIG), blob("t" + point, BIG + 5)
    c.write_bytes(f"{root}/a/{s}", data_s)
    if point == "shard.outbox.after_deliver":
        # the target's inode lives on the source shard: replacing it owes that shard a link
        tmp = name_on(c, f"{root}/a", x, "tmp")
        c.write_bytes(f"{root}/a/{tmp}", data_t)
        c.rename(f"{root}/a/{tmp}", f"{root}/b/{t}")
        assert home_shard(c, f"{root}/b/{t}") == x
    else:
        c.write_bytes(f"{root}/b/{t}", data_t)
    c.link(f"{root}/b/{t}", f"{root}/keep/h")
    moved = ino_of(c, f"{root}/a/{s}")
    victim = ino_of(c, f"{root}/b/{t}")

    daemon = f"shard-{x if who == 'src' else y}"
    arm(cluster, daemon, point)
    _expect_error_or_success(lambda: c.rename(f"{root}/a/{s}", f"{root}/b/{t}"))
    wait_crashed(cluster, daemon)
    restart(cluster, daemon)
    c.aio.cache.clear()  # see the recovered state now, not directory leases from before

    # rolled forward: the file under its new name only, the old target under its other name only
    wait_until(lambda: not c.exists(f"{root}/a/{s}"), "the source name to go")
    assert retry(lambda: c.read_bytes(f"{root}/b/{t}")) == data_s
    assert ino_of(c, f"{root}/b/{t}") == moved
    assert c.listdir(f"{root}/a") == [] and c.listdir(f"{root}/b") == [t]
    wait_until(lambda: c.stat(f"{root}/keep/h").st_nlink == 1, "the replaced inode to lose exactly one link")
    assert c.read_bytes(f"{root}/keep/h") == data_t and ino_of(c, f"{root}/keep/h") == victim
    assert c.stat(f"{root}/b/{t}").st_nlink == 1
    assert_clean(cluster)


# -------------------------------------------------------------- cross-shard link

LINK_POINTS = [("entry", "shard.link.after_intent"), ("entry", "shard.link.after_adjust"),
               ("home", "shard.adjust_nlink.after_commit")]


@pytest.mark.parametrize("who,point", LINK_POINTS)
def test_cross_shard_link(cluster, c, who, point):
    root = _fresh(c, "ln-" + point.replace(".", "-"))
    c.mkdir(f"{root}/a")
    c.mkdir(f"{root}/b")
    x, y = _shards(c)[:2]
    f = name_on(c, f"{root}/a", x, "f")
    data = blob(point, 3000)
    c.write_bytes(f"{root}/a/{f}", data)
    new = name_on(c, f"{root}/b", y, "l")
    daemon = f"shard-{y if who == 'entry' else x}"
    arm(cluster, daemon, point)
    _expect_error_or_success(lambda: c.link(f"{root}/a/{f}", f"{root}/b/{new}"))
    wait_crashed(cluster, daemon)
    restart(cluster, daemon)
    c.aio.cache.clear()  # see the recovered state now, not directory leases from before
    # the intent was durable before the crash: the link is finished, counted once
    wait_until(lambda: c.exists(f"{root}/b/{new}"), "the link to be finished")
    assert c.read_bytes(f"{root}/b/{new}") == data
    assert c.stat(f"{root}/a/{f}").st_nlink == 2
    assert_clean(cluster)


# ------------------------------------------------------------------------ rmdir

RMDIR_POINTS = ["dir.rmdir.after_intent", "dir.rmdir.after_seal", "dir.rmdir.after_commit",
                "shard.seal.after_commit"]


@pytest.mark.parametrize("point", RMDIR_POINTS)
def test_rmdir(cluster, c, point):
    root = _fresh(c, "rm-" + point.replace(".", "-"))
    c.mkdir(f"{root}/victim")
    daemon = "dir" if point.startswith("dir.") else "shard-1"
    arm(cluster, daemon, point)
    _expect_error_or_success(lambda: c.rmdir(f"{root}/victim"))
    wait_crashed(cluster, daemon)
    if point == "dir.rmdir.after_seal":
        # sealed everywhere, dir server down: a create there cannot be answered yet; it must not succeed
        with pytest.raises(OSError) as e:
            c.write_bytes(f"{root}/victim/early", b"x")
        assert e.value.errno in (errno.EIO, errno.ETIMEDOUT, errno.EAGAIN, errno.ENOENT)
    restart(cluster, daemon)
    c.aio.cache.clear()  # see the recovered state now, not directory leases from before
    if point == "dir.rmdir.after_commit":
        # committed: gone, and its name free again for a file and for a directory
        wait_until(lambda: not c.exists(f"{root}/victim"), "the directory to be gone")
        retry(lambda: c.write_bytes(f"{root}/victim", b"now a file"))
        c.unlink(f"{root}/victim")
        c.mkdir(f"{root}/victim")
    else:
        # rolled back: the directory is there and every shard accepts names in it again
        assert retry(lambda: c.isdir(f"{root}/victim"))
        for shard in _shards(c):
            name = name_on(c, f"{root}/victim", shard, "after")
            retry(lambda: c.write_bytes(f"{root}/victim/{name}", b"ok"))
        assert len(c.listdir(f"{root}/victim")) == len(_shards(c))
    assert_clean(cluster)


# ------------------------------------------------------------- mkdir, renamedir

@pytest.mark.parametrize("point", ["dir.mkdir.after_intent", "dir.mkdir.after_reserve"])
def test_mkdir(cluster, c, point):
    root = _fresh(c, "mk-" + point.replace(".", "-"))
    arm(cluster, "dir", point)
    _expect_error_or_success(lambda: c.mkdir(f"{root}/new"))
    wait_crashed(cluster, "dir")
    restart(cluster, "dir")
    c.aio.cache.clear()  # see the recovered state now, not directory leases from before
    # never committed: undone, the name is free for a file (once recovery released it)
    assert not retry(lambda: c.exists(f"{root}/new"))

    def create() -> bool:
        try:
            return c.write_bytes(f"{root}/new", b"f") == 1
        except IsADirectoryError:
            return False  # still reserved: recovery has not run yet

    wait_until(create, "the name to be released")
    assert_clean(cluster)


RENAMEDIR_POINTS = ["dir.renamedir.after_intent", "dir.renamedir.after_seal_replaced",
                    "dir.renamedir.after_reserve", "dir.renamedir.after_commit"]


@pytest.mark.parametrize("point", RENAMEDIR_POINTS)
def test_rename_dir(cluster, c, point):
    root = _fresh(c, "rd-" + point.replace(".", "-"))
    c.makedirs(f"{root}/a/moving/sub")
    c.write_bytes(f"{root}/a/moving/sub/f", b"inside")
    c.mkdir(f"{root}/b")
    c.mkdir(f"{root}/b/target")  # an empty directory the rename replaces
    moving = ino_of(c, f"{root}/a/moving")
    arm(cluster, "dir", point)
    _expect_error_or_success(lambda: c.rename(f"{root}/a/moving", f"{root}/b/target"))
    wait_crashed(cluster, "dir")
    restart(cluster, "dir")
    c.aio.cache.clear()  # see the recovered state now, not directory leases from before
    # the intent was written before every one of these points: rolled forward
    wait_until(lambda: not c.exists(f"{root}/a/moving"), "the rename to finish")
    assert ino_of(c, f"{root}/b/target") == moving
    assert c.read_bytes(f"{root}/b/target/sub/f") == b"inside"
    assert c.listdir(f"{root}/a") == [] and c.listdir(f"{root}/b") == ["target"]
    retry(lambda: c.write_bytes(f"{root}/a/moving", b"the old name is free"))
    assert_clean(cluster)


# -------------------------------------------------------------- unlink + reclaim

UNLINK_POINTS = ["shard.unlink.after_commit", "shard.reclaim.after_delete", "data.delete_chunks.after_commit"]


@pytest.mark.parametrize("point", UNLINK_POINTS)
def test_unlink_reclaims_chunks_once_and_only_those(cluster, c, point):
    root = _fresh(c, "ul-" + point.replace(".", "-"))
    c.write_bytes(f"{root}/gone", blob("gone" + point, BIG))
    live = blob("live" + point, BIG)
    c.write_bytes(f"{root}/live", live)
    gone, kept = ino_of(c, f"{root}/gone"), ino_of(c, f"{root}/live")
    assert all(chunks_of(cluster, gone).values())
    daemon = "data-0" if point.startswith("data.") else f"shard-{home_shard(c, f'{root}/gone')}"
    arm(cluster, daemon, point)
    _expect_error_or_success(lambda: c.unlink(f"{root}/gone"))
    wait_crashed(cluster, daemon)
    if daemon.startswith("data"):
        assert c.read_bytes(f"{root}/live") == live  # the other replica serves meanwhile
    restart(cluster, daemon)
    c.aio.cache.clear()  # see the recovered state now, not directory leases from before
    assert not retry(lambda: c.exists(f"{root}/gone"))
    wait_until(lambda: not any(chunks_of(cluster, gone).values()), "the unlinked file's chunks to be reclaimed")
    assert all(len(ix) == 3 for ix in chunks_of(cluster, kept).values())
    assert c.read_bytes(f"{root}/live") == live
    assert_clean(cluster)


def test_shrink_reclaims_only_past_the_new_end(cluster, c):
    root = _fresh(c, "shrink")
    data = blob("shrink", BIG)
    c.write_bytes(f"{root}/f", data)
    ino = ino_of(c, f"{root}/f")
    daemon = f"shard-{home_shard(c, f'{root}/f')}"
    arm(cluster, daemon, "shard.reclaim.after_delete")
    _expect_error_or_success(lambda: c.truncate(f"{root}/f", SMALL_CHUNK + 10))
    wait_crashed(cluster, daemon)
    restart(cluster, daemon)
    c.aio.cache.clear()  # see the recovered state now, not directory leases from before
    wait_until(lambda: all(ix == [0, 1] for ix in chunks_of(cluster, ino).values()),
               "the chunk past the new end to go")
    assert retry(lambda: c.read_bytes(f"{root}/f")) == data[:SMALL_CHUNK + 10]
    assert_clean(cluster)


def test_unlink_of_a_remote_name_counts_the_link_once(cluster, c):
    root = _fresh(c, "ul-remote")
    c.mkdir(f"{root}/a")
    c.mkdir(f"{root}/b")
    x, y = _shards(c)[:2]
    f = name_on(c, f"{root}/a", x, "f")
    c.write_bytes(f"{root}/a/{f}", b"twice linked")
    other = name_on(c, f"{root}/b", y, "l")
    c.link(f"{root}/a/{f}", f"{root}/b/{other}")
    assert entry_shard(c, f"{root}/b", other) == y and home_shard(c, f"{root}/a/{f}") == x
    arm(cluster, f"shard-{y}", "shard.outbox.after_deliver")
    _expect_error_or_success(lambda: c.unlink(f"{root}/b/{other}"))
    wait_crashed(cluster, f"shard-{y}")
    restart(cluster, f"shard-{y}")
    c.aio.cache.clear()  # see the recovered state now, not directory leases from before
    wait_until(lambda: not c.exists(f"{root}/b/{other}"), "the name to be gone")
    # the owed link change is re-sent after the restart: applied once, by txid
    wait_until(lambda: c.stat(f"{root}/a/{f}").st_nlink == 1, "one link left")
    assert c.read_bytes(f"{root}/a/{f}") == b"twice linked"
    assert_clean(cluster)
