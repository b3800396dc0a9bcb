"""A cross-shard rename that returned an error is never completed later over a newer target.

The source shard coordinates a rename whose destination entry lives on
another shard: an intent, RemoteLink on the destination shard, then the
source entry goes. When the destination shard cannot be reached the caller
gets EIO and the intent stays, to be rolled forward later. A caller who saw
that error may well put a new file at the destination meanwhile; the
rename finishing later with replace semantics destroyed that file. The
intent now records the exact destination it expects (the inode that was
there, or none) and the destination shard applies RemoteLink only onto
that; anything else rolls the rename back.
"""
from __future__ import annotations

import pytest
from t5_support import address, arm, entry_shard, restart, retry, wait_crashed, wait_until, with_admin

from superfs.client import connect


def _names(c, parent: str, src_shard: int, dst_parent: str, dst_shard: int) -> tuple[str, str]:
    src = next(f"s{i}" for i in range(1000) if entry_shard(c, parent, f"s{i}") == src_shard)
    dst = next(f"t{i}" for i in range(1000) if entry_shard(c, dst_parent, f"t{i}") == dst_shard)
    return src, dst


def _intents(cluster, shard: int) -> list:
    async def fn(admin):
        return list((await admin.pending(shard)).intents)
    return with_admin(cluster, fn)


@pytest.mark.parametrize("target", ["file", "none"])
def test_a_failed_rename_is_not_finished_over_a_file_created_after_the_error(cluster_factory, target):
    cluster = cluster_factory(shards=2)
    with connect(address(cluster), timeout_s=2.0) as c:
        c.mkdir("/a")
        c.mkdir("/b")
        src, dst = _names(c, "/a", 0, "/b", 1)
        c.write_bytes(f"/a/{src}", b"the source")
        if target == "file":
            c.write_bytes(f"/b/{dst}", b"the old target")
        cluster.kill("shard-1")
        with pytest.raises(OSError):
            c.rename(f"/a/{src}", f"/b/{dst}")
    # the caller was told the rename failed; before the source shard retries, a new file takes the name
    cluster.kill("shard-0")
    restart(cluster, "shard-1")
    with connect(address(cluster), timeout_s=2.0) as c:
        if target == "file":
            retry(lambda: c.unlink(f"/b/{dst}"))
        retry(lambda: c.write_bytes(f"/b/{dst}", b"created after the error"))
    restart(cluster, "shard-0")
    wait_until(lambda: not _intents(cluster, 0), "the source shard to settle its rename intent")
    with connect(address(cluster)) as c:
        assert c.read_bytes(f"/b/{dst}") == b"created after the error"
        assert c.read_bytes(f"/a/{src}") == b"the source"


def test_a_rename_whose_destination_shard_died_before_applying_rolls_back_onto_a_changed_target(cluster_factory):
    cluster = cluster_factory(shards=2)
    with connect(address(cluster), timeout_s=2.0) as c:
        c.mkdir("/a")
        c.mkdir("/b")
        src, dst = _names(c, "/a", 0, "/b", 1)
        c.write_bytes(f"/a/{src}", b"the source")
        c.write_bytes(f"/b/{dst}", b"the old target")
    arm(cluster, "shard-1", "shard.remote_link.before_commit")
    with connect(address(cluster), timeout_s=2.0) as c:
        with pytest.raises(OSError):
            c.rename(f"/a/{src}", f"/b/{dst}")  # looked up the target, then the destination shard died
    wait_crashed(cluster, "shard-1")
    assert [i.dst_name for i in _intents(cluster, 0)] == [dst]
    cluster.kill("shard-0")
    restart(cluster, "shard-1")
    with connect(address(cluster), timeout_s=2.0) as c:
        retry(lambda: c.unlink(f"/b/{dst}"))
        retry(lambda: c.write_bytes(f"/b/{dst}", b"created after the error"))
    restart(cluster, "shard-0")
    wait_until(lambda: not _intents(cluster, 0), "the source shard to roll its rename back")
    with connect(address(cluster)) as c:
        assert c.read_bytes(f"/b/{dst}") == b"created after the error"
        assert c.read_bytes(f"/a/{src}") == b"the source"


def test_a_failed_rename_still_completes_later_onto_the_target_it_expected(cluster_factory):
    cluster = cluster_factory(shards=2)
    with connect(address(cluster), timeout_s=2.0) as c:
        c.mkdir("/a")
        c.mkdir("/b")
        src, dst = _names(c, "/a", 0, "/b", 1)
        c.write_bytes(f"/a/{src}", b"the source")
        c.write_bytes(f"/b/{dst}", b"the old target")
    arm(cluster, "shard-1", "shard.remote_link.before_commit")
    with connect(address(cluster), timeout_s=2.0) as c:
        with pytest.raises(OSError):
            c.rename(f"/a/{src}", f"/b/{dst}")
    wait_crashed(cluster, "shard-1")
    restart(cluster, "shard-1")
    wait_until(lambda: not _intents(cluster, 0), "the source shard to roll its rename forward")
    with connect(address(cluster)) as c:
        assert c.read_bytes(f"/b/{dst}") == b"the source"
        assert not c.exists(f"/a/{src}")
