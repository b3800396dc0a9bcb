"""One shard down: only the files it holds fail; the directories above them stay reachable.

Every directory name also has a reservation entry on the shard its
(parent, name) hashes to, and a FUSE lookup of a name asks that shard first.
When that shard is down, a directory whose name it holds must still be
found (the dir server knows every directory on its own), or every file
beneath it, on healthy shards too, would answer EIO: a whole subtree lost
to one shard. Files on the dead shard answer EIO, never wrong bytes.

Read through a mount started after the kill, so no kernel or client cache
answers in the shard's place.
"""
from __future__ import annotations

import asyncio
import errno
import os

import pytest
from fuse_helpers import fuse_cluster, mount_factory, mount_root  # noqa: F401 - fixtures

from superfs.cli.launcher import LocalCluster
from superfs.client.admin import AdminClient

DEAD = 1  # the shard that is killed (of two)


def shard_of(address: str, dirs: dict[str, tuple[int, str]], files: dict[str, int]) -> tuple[dict[str, int],
                                                                                              dict[str, int]]:
    """(shard of each directory's name entry, home shard of each file's inode), from the cluster map."""
    async def run() -> tuple[dict[str, int], dict[str, int]]:
        admin = await AdminClient.connect(address)
        try:
            await admin.cluster_map()
            return ({d: admin.shard_of_entry(parent, name) for d, (parent, name) in dirs.items()},
                    {f: admin.shard_of_ino(ino) for f, ino in files.items()})
        finally:
            await admin.close()
    return asyncio.run(run())


def test_a_dead_shard_costs_its_own_files_only(fuse_cluster: LocalCluster, mount_factory):  # noqa: F811
    writer = mount_factory("writer")
    top = os.path.join(writer.mountpoint, "top")
    os.mkdir(top)
    dirs, files, data = {}, {}, {}
    for i in range(12):
        d = os.path.join(top, f"d{i}")
        os.mkdir(d)
        dirs[f"d{i}"] = (os.stat(top).st_ino, f"d{i}")
        for j in range(6):
            rel = f"d{i}/f{j}"
            data[rel] = os.urandom(100 + 5000 * j)  # inline ones, and chunked ones past the 8 KiB threshold
            with open(os.path.join(top, rel), "wb") as f:
                f.write(data[rel])
            files[rel] = os.stat(os.path.join(top, rel)).st_ino
    dir_shard, file_shard = shard_of(str(fuse_cluster.config["dir_server"]), dirs, files)
    behind_dead = [rel for rel in files if dir_shard[rel.split("/")[0]] == DEAD and file_shard[rel] != DEAD]
    assert behind_dead, (dir_shard, file_shard)  # 12 names over 2 shards: some land on the dead one

    writer.expect_errors = True
    fuse_cluster.kill(f"shard-{DEAD}")
    try:
        reader = mount_factory("reader")  # started now: nothing cached
        reader.expect_errors = True
        root = os.path.join(reader.mountpoint, "top")
        for rel in sorted(files):
            path = os.path.join(root, rel)
            if file_shard[rel] == DEAD:
                with pytest.raises(OSError) as e:
                    with open(path, "rb") as f:
                        f.read()
                assert e.value.errno == errno.EIO, (rel, e.value)
            else:
                with open(path, "rb") as f:
                    assert f.read() == data[rel], rel  # behind a directory named on the dead shard too
    finally:
        fuse_cluster.start_daemon(f"shard-{DEAD}")
        fuse_cluster.wait_ready(f"shard-{DEAD}")
    with open(os.path.join(top, behind_dead[0]), "rb") as f:
        assert f.read() == data[behind_dead[0]]
