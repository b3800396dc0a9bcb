"""kill -9 at every named step of a partition move, then restart: it resumes or rolls back.

Each test moves one partition that holds files (names, inodes, inline bytes,
an xattr, a chunked file's record) from shard 0 to a new shard 2:

- the dir server dies right after recording a step: on restart it rolls a
  move recorded before the flip back (the partition stays on its source) and
  finishes one recorded at or after it (cleanup); moving again completes;
- the target dies right after adopting the map that lists the move, the
  source after draining its freeze, the target after committing copied rows,
  either after adopting the map that flips the partition, the source after
  dropping its copy: the dir server tries the step again until the shard is
  back, and the move completes.

Either way nothing is lost or duplicated: fsck is clean and every file reads
back the bytes it had (checksums taken before).
"""
from __future__ import annotations

import errno
import threading

import pytest

from grow_support import add_shard_daemon, populate, read_back
from t5_support import address, arm, assert_clean, restart, wait_crashed, wait_until, with_admin

from superfs import routing
from superfs.client import Client, connect
from superfs.errors import FsError
from superfs.v1 import superfs_pb2 as pb

FILES = 120


def _busiest_partition(c: Client, shard: int) -> int:
    """The partition of shard ``shard`` holding the most entries of the population."""
    m = c.aio.cluster.map
    count: dict[int, int] = {}
    for d in range(4):
        parent = c.stat(f"/pop{d}").st_ino
        for name in c.listdir(f"/pop{d}"):
            p = routing.entry_partition(parent, name, m.num_partitions)
            if m.partition_shard[p] == shard:
                count[p] = count.get(p, 0) + 1
    return max(count, key=lambda p: count[p])


def _cmap(cluster) -> pb.ClusterMap:  # type: ignore[no-untyped-def]
    return with_admin(cluster, lambda a: a.cluster_map())


def _move(cluster, partition: int, target: int, timeout_s: float = 300.0) -> pb.PartitionMove:  # type: ignore[no-untyped-def]
    return with_admin(cluster, lambda a: a.move_partition(partition, target, timeout_s))


def _setup(cluster_factory):  # type: ignore[no-untyped-def]
    cluster = cluster_factory(shards=2, data_servers=1, replicas=1)
    with connect(address(cluster)) as c:
        sums = populate(c, FILES, chunked_every=7)
        p = _busiest_partition(c, 0)
    name, new = add_shard_daemon(cluster)
    return cluster, sums, p, name, new


def _check(cluster, sums, p: int, owner: int) -> None:  # type: ignore[no-untyped-def]
    cmap = _cmap(cluster)
    assert not cmap.moves, cmap.moves
    assert cmap.partition_shard[p] == owner
    with connect(address(cluster)) as c:
        read_back(c, sums)
    assert_clean(cluster)


@pytest.mark.parametrize("step, rolled_back", [
    ("prepare", True), ("freeze", True), ("copy", True), ("flip", False), ("cleanup", False)])
def test_dir_server_killed_after_step(cluster_factory, step: str, rolled_back: bool) -> None:  # type: ignore[no-untyped-def]
    cluster, sums, p, _, new = _setup(cluster_factory)
    arm(cluster, "dir", f"dir.move.after_{step}")
    with pytest.raises(FsError) as e:  # the dir server dies: the call times out (never sent again)
        _move(cluster, p, new, timeout_s=5.0)
    assert e.value.errno in (errno.EIO, errno.ETIMEDOUT, errno.ECONNRESET)
    wait_crashed(cluster, "dir")
    restart(cluster, "dir")
    # recovery at start-up: rolled back before the flip, finished after it
    wait_until(lambda: not _cmap(cluster).moves, "the recorded move to be rolled back or finished")
    _check(cluster, sums, p, owner=0 if rolled_back else new)
    # running the move again completes it
    rec = _move(cluster, p, new)
    assert rec.step == "done"
    _check(cluster, sums, p, owner=new)


@pytest.mark.parametrize("who, point", [
    ("target", "shard.move.after_prepare"), ("source", "shard.move.after_freeze"),
    ("target", "shard.move.after_import"), ("source", "shard.move.after_flip"),
    ("target", "shard.move.after_flip"), ("source", "shard.move.after_drop")])
def test_shard_killed_during_move(cluster_factory, who: str, point: str) -> None:  # type: ignore[no-untyped-def]
    cluster, sums, p, name, new = _setup(cluster_factory)
    victim = "shard-0" if who == "source" else name
    arm(cluster, victim, point)
    result: list[object] = []
    mover = threading.Thread(target=lambda: result.append(_safe_move(cluster, p, new)))
    mover.start()
    wait_crashed(cluster, victim)
    restart(cluster, victim)  # the dir server tries the step again until the shard is back
    mover.join(300)
    assert result and isinstance(result[0], pb.PartitionMove) and result[0].step == "done", result
    _check(cluster, sums, p, owner=new)


def _safe_move(cluster, p: int, new: int) -> object:  # type: ignore[no-untyped-def]
    try:
        return _move(cluster, p, new)
    except FsError as e:
        return e


def test_move_figures_in_prometheus(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from superfs.cli.launcher import LocalCluster
    from superfs.cli.status import scrape, total

    cluster = LocalCluster(str(tmp_path / "c"))
    cluster.init(shards=2, data_servers=1, replicas=1, inline_threshold=4096, chunk_size=65536,
                 durability="durable", metrics=True)
    cluster.start()
    try:
        with connect(address(cluster)) as c:
            sums = populate(c, 40)
            p = _busiest_partition(c, 0)
        name, new = add_shard_daemon(cluster)
        rec = _move(cluster, p, new)
        assert rec.step == "done" and rec.rows > 0
        d = scrape(cluster.metrics_url("dir") or "")
        assert total(d, "superfs_partitions_moved") == 1
        assert total(d, "superfs_partition_moves_in_progress") == 0
        assert total(d, "superfs_partition_rows_copied") == rec.rows
        assert total(d, "superfs_partition_bytes_copied") == rec.bytes
        s = scrape(cluster.metrics_url(name) or "")
        assert total(s, "superfs_partition_rows_imported") == rec.rows
        assert total(s, "superfs_partitions_frozen") == 0
        with connect(address(cluster)) as c:
            read_back(c, sums)
    finally:
        cluster.stop()


def test_fsck_reports_a_stuck_move(cluster_factory, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A move that cannot advance (its source is down after the flip) is reported; once it can, it finishes."""
    from superfs.fsck import checks
    from t5_support import fsck

    cluster, sums, p, _, new = _setup(cluster_factory)
    arm(cluster, "dir", "dir.move.after_flip")
    with pytest.raises(FsError):
        _move(cluster, p, new, timeout_s=5.0)
    wait_crashed(cluster, "dir")
    cluster.kill("shard-0")   # the source: its cleanup cannot be done
    restart(cluster, "dir")
    monkeypatch.setattr(checks, "MOVE_STUCK_AFTER_NS", 0)  # (it is minutes: a step waits a minute for a shard)
    rc, report = fsck(cluster, settle_s=1.0)
    assert rc == 1 and "move-stuck" in report and f"partition {p}" in report, report
    restart(cluster, "shard-0")
    wait_until(lambda: not _cmap(cluster).moves, "the move to finish once its source is back")
    monkeypatch.setattr(checks, "MOVE_STUCK_AFTER_NS", 180 * 10**9)
    _check(cluster, sums, p, owner=new)
