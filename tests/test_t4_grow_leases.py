"""A mount holding directory leases keeps creating files while a shard is added.

The mount answers creates ahead (numbers delegated by each partition's shard,
changes sent in batches): while partitions move, a batch may meet a frozen
partition or a shard that no longer owns it, and a create's number was
delegated by the old owner. No close, fsync or read may fail, and every file
must be there afterwards with its bytes.
"""
from __future__ import annotations

import os
import threading
import time
from typing import Iterator

import pytest
from fuse_helpers import MountProcess, fuse_unavailable, mount_root, public_tmpdir  # noqa: F401
from grow_support import add_shard_daemon, admin_cli, per_shard
from t5_support import address, assert_clean

from superfs.cli.launcher import LocalCluster
from superfs.client import connect

MAX_FILES = 600  # per worker


@pytest.fixture
def cluster() -> Iterator[LocalCluster]:
    reason = fuse_unavailable()
    if reason:
        pytest.skip(reason)
    c = LocalCluster(public_tmpdir("grow-leases"))
    c.init(shards=2, data_servers=1, replicas=1, inline_threshold=8192, chunk_size=256 * 1024,
           durability="durable")
    c.start()
    yield c
    c.stop()


def test_leased_creates_while_a_shard_is_added(cluster: LocalCluster, mount_root: str) -> None:  # noqa: F811
    m = MountProcess(os.path.join(mount_root, "g"), address(cluster), os.path.join(mount_root, "g.log"),
                     ["--batch-delay-ms", "20"]).start()
    errors: list[str] = []
    made: list[str] = []
    stop = threading.Event()

    def work(w: int) -> None:
        d = f"{m.mountpoint}/w{w}"
        os.mkdir(d)
        i = 0
        while not stop.is_set():
            if i >= MAX_FILES:
                # enough: every export scans its source whole, so unbounded creates made the move
                # (and this test) take minutes on a loaded machine
                stop.wait(0.05)
                continue
            time.sleep(0.002)
            path = f"{d}/f{i}"
            try:
                with open(path, "wb") as f:
                    f.write(b"%d:%d" % (w, i))
                made.append(path)
                if i % 25 == 0:
                    fd = os.open(d, os.O_RDONLY)
                    try:
                        os.fsync(fd)
                    finally:
                        os.close(fd)
            except OSError as e:
                errors.append(f"{path}: {e}")
            i += 1

    try:
        _, new = add_shard_daemon(cluster)
        workers = [threading.Thread(target=work, args=(w,)) for w in range(2)]
        for t in workers:
            t.start()
        r = admin_cli(cluster, "add-shard", str(new))
        stop.set()
        for t in workers:
            t.join(120)
        assert r.returncode == 0, r.stderr
        for w in range(2):
            fd = os.open(f"{m.mountpoint}/w{w}", os.O_RDONLY)
            try:
                os.fsync(fd)  # what waits in the mount is sent, and its failures reported
            except OSError as e:
                errors.append(f"fsync w{w}: {e}")
            finally:
                os.close(fd)
        assert not errors, errors[:10]
        assert made
        with connect(address(cluster)) as c:
            held = per_shard(c)
            assert abs(held[new] - 1024 // 3) <= 1, held
            for path in made:
                rel = path[len(m.mountpoint):]
                w, i = rel.split("/")[1][1:], rel.split("/f")[1]
                with c.open(rel, "rb") as f:
                    assert f.read() == f"{w}:{i}".encode(), rel
    finally:
        m.stop()
    assert_clean(cluster)
