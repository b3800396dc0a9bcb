"""Crash and race tier of the chunk mover (issue 21): kill -9 mid-move, and writes racing a move.

The mover runs in its own process (``superfs admin drain``): killed at each
named step (after the copies, before the switch, after it), nothing is lost,
no chunk has fewer than R copies where its file's layout places it, fsck
--repair reclaims the stray copies and the drain run again finishes. A
write that lands on the old replicas after the mover copied a chunk, but
before the switch, is not lost (the mover re-checks the sources under its
write fence and copies again).
"""
from __future__ import annotations

import errno
import hashlib
import os
import subprocess
from typing import Any

import pytest
from t5_support import address, arm, assert_clean, blob, fsck, restart, wait_crashed, wait_until, with_admin
from test_t3_drain import state_of
from test_t3_rebalance import CHUNK, admin_cli, assert_identical, fill, placement_report

from superfs import faults
from superfs.client import connect
from superfs.procs import python_module
from superfs.rebalance import plan


@pytest.mark.parametrize("point", ["mover.after_copy", "mover.before_switch", "mover.after_switch"])
def test_a_mover_killed_at_any_step_loses_nothing_and_the_drain_finishes_after(cluster_factory: Any,
                                                                               point: str) -> None:
    cluster = cluster_factory(shards=2, data_servers=3, replicas=2)
    with connect(address(cluster)) as c:
        files = fill(c, "/data", 8, point)
    rc, out = admin_cli(cluster, "drain", "1", env={faults.ENV: point})
    assert rc == faults.EXIT_CODE, out
    counts, missing = placement_report(cluster)
    assert not missing, missing  # every chunk has R copies where its layout places it
    with connect(address(cluster)) as c:
        assert_identical(c, files)
    rc, report = fsck(cluster, repair=True, grace_s=0)  # stray copies of the interrupted move are reclaimed
    assert_clean(cluster)
    rc, out = admin_cli(cluster, "drain", "1", "--wait-lease", "120")  # the dead mover's lease lapses first
    assert rc == 0, out
    counts, missing = placement_report(cluster)
    assert not missing and 1 not in counts, (counts, missing)
    with connect(address(cluster)) as c:
        assert_identical(c, files)
    assert_clean(cluster)


def test_a_write_between_the_copy_and_the_switch_is_not_lost(cluster_factory: Any, tmp_path: Any) -> None:
    cluster = cluster_factory(shards=1, data_servers=3, replicas=2)
    old, new = blob("old", 6 * CHUNK), blob("new", 6 * CHUNK)
    with connect(address(cluster)) as c:
        c.write_bytes("/f", old)
    env = {**os.environ, faults.PAUSE_ENV: "mover.after_copy", faults.PAUSE_DIR_ENV: str(tmp_path)}
    mover = subprocess.Popen([*python_module("superfs.cli.main"), "admin", "drain", "1", "--address",
                              address(cluster)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
    try:
        wait_until(lambda: os.path.exists(tmp_path / "mover.after_copy.paused"), "the mover to copy the chunks")
        with connect(address(cluster)) as c:  # acknowledged on the old replicas, after they were copied
            with c.open("/f", "r+b") as f:
                f.write(new)
        (tmp_path / "mover.after_copy.resume").write_text("")
        out, _ = mover.communicate(timeout=300)
    finally:
        if mover.poll() is None:
            mover.kill()
            mover.wait()
    assert mover.returncode == 0, out
    counts, missing = placement_report(cluster)
    assert not missing and 1 not in counts, (counts, missing)
    with connect(address(cluster)) as c:
        assert hashlib.sha256(c.read_bytes("/f")).hexdigest() == hashlib.sha256(new).hexdigest()
    assert_clean(cluster)


def test_a_writer_holding_the_old_layout_is_sent_to_the_new_one(cluster_factory: Any) -> None:
    cluster = cluster_factory(shards=1, data_servers=3, replicas=2)
    content = bytearray(blob("held", 6 * CHUNK))
    with connect(address(cluster)) as c:
        c.write_bytes("/f", bytes(content))
        with c.open("/f", "r+b", buffering=0) as f:
            f.write(b"x")  # the handle now holds the layout and a capability
            content[0:1] = b"x"
            rc, out = admin_cli(cluster, "drain", "1")
            assert rc == 0, out
            for i in range(6):  # every chunk, with the layout from before the drain
                piece = blob(f"late{i}", 500)
                f.seek(i * CHUNK + 100)
                f.write(piece)
                content[i * CHUNK + 100:i * CHUNK + 600] = piece
    with connect(address(cluster)) as c:
        assert c.read_bytes("/f") == bytes(content)
    counts, missing = placement_report(cluster)
    assert not missing and 1 not in counts, (counts, missing)
    assert_clean(cluster)


def test_the_dir_server_killed_mid_re_replication_resumes_after_restart(cluster_factory: Any) -> None:
    cluster = cluster_factory(shards=2, data_servers=3, replicas=2)
    with connect(address(cluster)) as c:
        files = fill(c, "/data", 8, "dirkill")
    cluster.kill("data-2")  # gone for good
    arm(cluster, "dir", "mover.before_switch")
    rc, out = admin_cli(cluster, "mark-dead", "2")
    assert rc == 0, out
    wait_crashed(cluster, "dir")  # it died in its first move, the fence up and the copies made
    restart(cluster, "dir")
    wait_until(lambda: state_of(cluster, 2) == plan.REMOVED, "the re-replication to resume and finish",
               timeout_s=300, interval_s=0.5)
    counts, missing = placement_report(cluster)
    assert not missing and set(counts) == {0, 1}, (counts, missing)
    with connect(address(cluster)) as c:
        assert_identical(c, files)
    fsck(cluster, repair=True, grace_s=0)
    assert_clean(cluster)


def test_chunks_a_writer_adds_between_the_copy_and_the_switch_get_their_copies(cluster_factory: Any,
                                                                               tmp_path: Any) -> None:
    cluster = cluster_factory(shards=1, data_servers=3, replicas=2)
    first, more = blob("first", 4 * CHUNK), blob("more", 8 * CHUNK)
    with connect(address(cluster)) as c:
        c.write_bytes("/f", first)
    env = {**os.environ, faults.PAUSE_ENV: "mover.after_copy", faults.PAUSE_DIR_ENV: str(tmp_path)}
    mover = subprocess.Popen([*python_module("superfs.cli.main"), "admin", "drain", "1", "--address",
                              address(cluster)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
    try:
        wait_until(lambda: os.path.exists(tmp_path / "mover.after_copy.paused"), "the mover to copy the chunks")
        with connect(address(cluster)) as c:  # new chunks, placed by the old layout, acknowledged
            with c.open("/f", "ab") as f:
                f.write(more)
        rc, out = admin_cli(cluster, "rebalance")  # one mover at a time
        assert rc == 1 and "another chunk mover is at work (superfs admin drain" in out, out
        (tmp_path / "mover.after_copy.resume").write_text("")
        out, _ = mover.communicate(timeout=300)
    finally:
        if mover.poll() is None:
            mover.kill()
            mover.wait()
    assert mover.returncode == 0, out
    counts, missing = placement_report(cluster)
    assert not missing and 1 not in counts, (counts, missing)
    cluster.stop_daemon("data-1")
    with connect(address(cluster)) as c:
        assert c.read_bytes("/f") == first + more
    assert_clean(cluster)


def test_a_data_server_restarted_mid_move_keeps_its_write_fences(cluster_factory: Any) -> None:
    """A fence refuses writes signed with the old layout until the move's switch is safe; a
    data server killed and restarted in between forgot it (fences lived in memory), so a
    writer holding the old layout could write where the file's chunks no longer live."""
    from superfs.v1 import superfs_pb2 as pb

    cluster = cluster_factory(shards=1, data_servers=1, replicas=1)
    with connect(address(cluster)) as c:
        c.write_bytes("/f", blob("fenced", 2 * CHUNK))
        info = c.node_of("/f").file
        ino, old = info.attr.ino, info.chunk_cap   # the capability a writer of the old layout holds
        data0 = c.aio.cluster.data(0)
        c.run(data0.fence_writes(pb.FenceWritesRequest(ino=ino, hold_ns=30_000_000_000)))
        write = pb.WriteChunkRequest(key=pb.ChunkKey(ino=ino, index=0), cap=old, offset=0, data=b"late")
        with pytest.raises(OSError) as e:
            c.run(data0.write_chunk(write))
        assert e.value.errno == errno.ESTALE
    cluster.kill("data-0")
    restart(cluster, "data-0")
    with connect(address(cluster)) as c:
        with pytest.raises(OSError) as e:
            c.run(c.aio.cluster.data(0).write_chunk(write))
        assert e.value.errno == errno.ESTALE, "the restarted server took a write its fence refused"
        assert c.read_bytes("/f") == blob("fenced", 2 * CHUNK)


def test_the_mover_lease_outlives_a_dir_server_restart(cluster_factory: Any) -> None:
    """A mover holds the dir server's lease while it works; a dir server killed and restarted
    forgot it (it lived in memory), so a second mover could start beside the first."""
    cluster = cluster_factory(shards=1, data_servers=1, replicas=1)
    got = with_admin(cluster, lambda a: a.mover_lease("first mover", 30))
    assert got.granted
    cluster.kill("dir")
    restart(cluster, "dir")
    other = with_admin(cluster, lambda a: a.mover_lease("second mover", 30))
    assert not other.granted and other.holder == "first mover", other
    assert with_admin(cluster, lambda a: a.mover_lease("first mover", 30)).granted   # it renews it
    with_admin(cluster, lambda a: a.mover_lease("first mover", 30, release=True))
    assert with_admin(cluster, lambda a: a.mover_lease("second mover", 30)).granted
