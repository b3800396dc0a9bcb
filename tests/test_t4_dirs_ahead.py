"""mkdir and rmdir made ahead under directory leases, through real mounts (superfs/fuse/dirs_ahead.py).

Mount ``a`` holds its changes for 5 s before sending them (``--batch-delay-ms
5000``), so every look from mount ``b`` (or a library client) happens while
they are still pending in ``a``: what ``b`` sees came through a recall of
``a``'s lease. The dir server's metrics say so (no ApplyDirBatch before the
look).
"""
from __future__ import annotations

import errno
import os
import stat
from typing import Callable, Iterator

import pytest
from fuse_helpers import MountProcess, as_user, fsync_dir, fuse_unavailable, mount_root  # noqa: F401

from superfs.cli.launcher import LocalCluster
from superfs.cli.status import scrape, total
from superfs.client import connect

HOLD_MS = "5000"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    reason = fuse_unavailable()
    if reason:
        pytest.skip(reason)
    c = LocalCluster(str(tmp_path_factory.mktemp("dirsahead")))
    c.init(shards=2, data_servers=1, replicas=1, inline_threshold=8192, chunk_size=256 * 1024,
           durability="durable", metrics=True)
    c.start()
    yield c
    c.stop()


@pytest.fixture(scope="module")
def ab(cluster: LocalCluster, mount_root: str) -> Iterator[tuple[MountProcess, MountProcess]]:  # noqa: F811
    address = str(cluster.config["dir_server"])
    a = MountProcess(os.path.join(mount_root, "a"), address, os.path.join(mount_root, "a.log"),
                     ["--batch-delay-ms", HOLD_MS]).start()
    b = MountProcess(os.path.join(mount_root, "b"), address, os.path.join(mount_root, "b.log")).start()
    yield a, b
    a.stop()
    b.stop()


@pytest.fixture
def d(ab: tuple[MountProcess, MountProcess], request: pytest.FixtureRequest) -> tuple[str, str]:
    """A fresh directory as mount a and mount b see it, its own mkdir sent already."""
    a, b = ab
    name = request.node.name[:100]
    os.mkdir(f"{a.mountpoint}/{name}")
    fsync_dir(a.mountpoint)
    os.chmod(f"{a.mountpoint}/{name}", 0o777)
    return f"{a.mountpoint}/{name}", f"{b.mountpoint}/{name}"


def dir_calls(cluster: LocalCluster, method: str) -> float:
    url = cluster.metrics_url("dir")
    assert url is not None
    return total(scrape(url), "superfs_rpc_requests_total", method=method)


def errno_of(fn: Callable[..., object], *args: object) -> int:
    try:
        fn(*args)
    except OSError as e:
        return e.errno or 0
    return 0


def test_directories_made_ahead_on_a_are_all_there_when_b_looks(cluster: LocalCluster,
                                                                 d: tuple[str, str]) -> None:
    a, b = d
    batches, mkdirs = dir_calls(cluster, "ApplyDirBatch"), dir_calls(cluster, "Mkdir")
    names = [f"sub{i:02d}" for i in range(40)]
    for n in names:
        os.mkdir(f"{a}/{n}", 0o750)
    st = os.stat(f"{a}/sub07")
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o750 and st.st_nlink == 2
    assert os.stat(a).st_nlink == 2 + len(names)
    assert errno_of(os.mkdir, f"{a}/sub03") == errno.EEXIST
    # nothing left a yet (not one mkdir went the ordinary way either)
    assert dir_calls(cluster, "ApplyDirBatch") == batches and dir_calls(cluster, "Mkdir") == mkdirs
    assert sorted(os.listdir(a)) == names      # (a listing sends what is pending: it comes from the servers)
    assert sorted(os.listdir(b)) == names                         # b's look recalls a's lease
    assert dir_calls(cluster, "ApplyDirBatch") > batches
    assert os.stat(f"{b}/sub07").st_ino == st.st_ino
    assert stat.S_IMODE(os.stat(f"{b}/sub07").st_mode) == 0o750
    assert os.stat(b).st_nlink == 2 + len(names)


def test_a_path_below_a_directory_made_ahead_is_found_by_another_client(
        cluster: LocalCluster, ab: tuple[MountProcess, MountProcess], d: tuple[str, str]) -> None:
    a, _ = d
    os.mkdir(f"{a}/p")
    os.mkdir(f"{a}/p/q")       # p's mkdir goes first (q is made in it): p is leased, q made ahead there
    with connect(config=cluster.config_path) as lib:
        top = os.path.basename(a)
        assert lib.stat(f"/{top}/p/q").st_ino == os.stat(f"{a}/p/q").st_ino


def shard_calls(cluster: LocalCluster, method: str) -> float:
    return sum(total(scrape(url), "superfs_rpc_requests_total", method=method)
               for n in cluster.nodes() if n.startswith("shard") and (url := cluster.metrics_url(n)))


def test_a_directory_made_ahead_is_listed_empty_without_asking(cluster: LocalCluster, d: tuple[str, str]) -> None:
    a, b = d
    os.mkdir(f"{a}/empty")
    fsync_dir(a)
    lists = shard_calls(cluster, "ListFiles") + dir_calls(cluster, "ListDirs") + dir_calls(cluster, "GetDir")
    assert os.listdir(f"{a}/empty") == []
    assert [e.name for e in os.scandir(f"{a}/empty")] == []
    assert shard_calls(cluster, "ListFiles") + dir_calls(cluster, "ListDirs") + dir_calls(cluster, "GetDir") \
        == lists
    with open(f"{a}/empty/f", "wb"):   # something made in it: from now on it is listed by the servers
        pass
    assert os.listdir(f"{a}/empty") == ["f"] == os.listdir(f"{b}/empty")


def test_a_directory_made_ahead_can_be_used_at_once(d: tuple[str, str]) -> None:
    a, b = d
    os.mkdir(f"{a}/new")
    with open(f"{a}/new/f", "wb") as f:       # its mkdir is sent first, then the create is made ahead
        f.write(b"inside")
    os.mkdir(f"{a}/new/inner")
    os.chmod(f"{a}/new", 0o700)
    assert sorted(os.listdir(f"{a}/new")) == ["f", "inner"]
    assert stat.S_IMODE(os.stat(f"{a}/new").st_mode) == 0o700
    with open(f"{b}/new/f", "rb") as f:
        assert f.read() == b"inside"
    assert sorted(os.listdir(f"{b}/new")) == ["f", "inner"]
    assert errno_of(os.rmdir, f"{a}/new") == errno.ENOTEMPTY


def test_rmdir_ahead_is_seen_by_b_and_a_withdrawn_pair_costs_nothing(cluster: LocalCluster,
                                                                     d: tuple[str, str]) -> None:
    a, b = d
    for n in ("kept", "sent", "never"):
        os.mkdir(f"{a}/{n}")
    fsync_dir(a)                                 # kept, sent, never reach the dir server
    batches = dir_calls(cluster, "ApplyDirBatch")
    os.mkdir(f"{a}/brief")
    os.rmdir(f"{a}/brief")                       # its mkdir had not left: both withdrawn
    assert errno_of(os.rmdir, f"{a}/brief") == errno.ENOENT
    fsync_dir(a)
    assert dir_calls(cluster, "ApplyDirBatch") == batches   # nothing was left to send
    os.rmdir(f"{a}/sent")                        # removed ahead (known empty: made here, nobody looked)
    assert sorted(os.listdir(b)) == ["kept", "never"]       # b's look recalls a's lease: the rmdir first
    assert errno_of(os.stat, f"{b}/sent") == errno.ENOENT
    os.rmdir(f"{a}/never")                       # a's lease was recalled by b: the ordinary way
    assert sorted(os.listdir(b)) == ["kept"]


def test_rmdir_of_a_directory_another_client_wrote_into_is_refused(d: tuple[str, str]) -> None:
    a, b = d
    os.mkdir(f"{a}/shared")
    with open(f"{b}/shared/theirs", "wb") as f:  # b's create recalls a's lease: a's mkdir goes first
        f.write(b"b's")
    assert errno_of(os.rmdir, f"{a}/shared") == errno.ENOTEMPTY
    with open(f"{a}/shared/theirs", "rb") as f:
        assert f.read() == b"b's"


def test_made_ahead_as_its_caller_with_its_rights(d: tuple[str, str]) -> None:
    a, b = d
    assert as_user(os.mkdir, f"{a}/users", 0o755)[0] == "ok"
    st = os.stat(f"{b}/users")
    assert (st.st_uid, st.st_gid) == (1234, 1234)
    os.mkdir(f"{a}/closed", 0o755)
    assert as_user(os.mkdir, f"{a}/closed/x", 0o755)[0] == "EACCES"   # no write permission: refused here
    os.chmod(a, 0o2777)
    os.chown(a, 0, 4242)
    os.mkdir(f"{a}/grouped")                      # a setgid parent: its group, and setgid, as on Linux
    st = os.stat(f"{b}/grouped")
    assert st.st_gid == 4242 and st.st_mode & stat.S_ISGID


def test_rmdir_in_a_sticky_directory_follows_the_mkdir_it_names(d: tuple[str, str]) -> None:
    """A sticky parent sends rmdir the ordinary way (the dir server judges who may remove): the mkdir
    still pending here must reach the dir server before it (pjdfstest rmdir/11.t)."""
    a, b = d
    os.chmod(a, 0o1777)
    os.chown(a, 65534, 65534)
    assert as_user(os.mkdir, f"{a}/mine", 0o755, uid=65534, gid=65534)[0] == "ok"
    assert as_user(os.rmdir, f"{a}/mine", uid=65534, gid=65534)[0] == "ok"
    assert errno_of(os.stat, f"{a}/mine") == errno.ENOENT
    assert errno_of(os.stat, f"{b}/mine") == errno.ENOENT
    os.mkdir(f"{a}/mine")                         # the name is free again
    assert stat.S_ISDIR(os.stat(f"{b}/mine").st_mode)
