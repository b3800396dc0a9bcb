"""What file operations in one directory cost the dir server, through a real mount.

The design's lever: a warm create, stat or unlink is one shard round trip;
the directory comes from the client's lease cache. The kernel asks for the
parent directory's attributes after every create and unlink in it (it
dropped them: the directory changed), and the directory's times must move;
neither may cost a dir-server round trip per file. Counted with the dir
server's own request counters (Prometheus), never timed: the parent's
attributes come from the lease cache (the mount's attr timeout is long here,
so none may be fetched again), and touches of its times are coalesced (at
most one per 50 ms whatever the rate: fewer than one per two operations
unless each took 25 ms).
"""
from __future__ import annotations

import os
import shutil
from typing import Iterator

import pytest
from fuse_helpers import MountProcess, fuse_unavailable, public_tmpdir

from superfs.cli.launcher import LocalCluster
from superfs.cli.status import scrape, total

N = 200


@pytest.fixture(scope="module")
def metered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalCluster, MountProcess]]:
    reason = fuse_unavailable()
    if reason:
        pytest.skip(reason)
    c = LocalCluster(str(tmp_path_factory.mktemp("dirrpcs")))
    c.init(shards=2, data_servers=1, replicas=1, inline_threshold=8192, chunk_size=256 * 1024,
           durability="durable", metrics=True)
    c.start()
    root = public_tmpdir("superfs-dirrpcs-")
    m = MountProcess(f"{root}/mnt", str(c.config["dir_server"]), f"{root}/mnt.log",
                     ["--attr-timeout", "60", "--entry-timeout", "60"], defaults=True)
    try:
        yield c, m.start()
    finally:
        m.stop()
        c.stop()
        shutil.rmtree(root, ignore_errors=True)


def dir_requests(cluster: LocalCluster, method: str) -> float:
    url = cluster.metrics_url("dir")
    assert url is not None
    return total(scrape(url), "superfs_rpc_requests_total", method=method)


def test_creates_and_unlinks_in_one_directory_do_not_ask_the_dir_server_each(metered) -> None:
    cluster, mnt = metered
    d = f"{mnt.mountpoint}/many"
    os.mkdir(d)
    os.stat(d)
    t0 = os.stat(d).st_mtime_ns
    before = {m: dir_requests(cluster, m) for m in ("GetDir", "SetDirAttr")}
    for i in range(N):
        with open(f"{d}/f{i}", "wb") as f:
            f.write(b"x")
    for i in range(N):
        os.unlink(f"{d}/f{i}")
    assert os.stat(d).st_mtime_ns > t0  # the directory's times did move
    spent = {m: dir_requests(cluster, m) - n for m, n in before.items()}
    assert spent["GetDir"] <= 2, spent
    assert spent["SetDirAttr"] < N, spent
