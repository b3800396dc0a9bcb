"""Directory leases through real mounts: what one mount made ahead, others see as soon as they look.

Mount ``a`` holds its changes for 5 s before sending them (``--batch-delay-ms
5000``), so every look from mount ``b`` in these tests happens while they are
still pending in ``a``: what ``b`` sees came through a recall, not a timer.
The shards' and the dir server's metrics say so (no ApplyBatch before the
look, a recall after it).
"""
from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from dataclasses import replace
from typing import Callable, Iterator

import pytest
from fuse_helpers import MountProcess, fsync_dir, fuse_unavailable, mount_root, public_tmpdir  # noqa: F401

from superfs import config_file, faults, routing
from superfs.cli.launcher import LocalCluster
from superfs.cli.status import scrape, total
from superfs.client import connect
from t5_support import arm, restart, wait_crashed

HOLD_MS = "5000"      # mount a: changes made ahead wait this long before they leave
STOP_HOLD_MS = "60000"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    reason = fuse_unavailable()
    if reason:
        pytest.skip(reason)
    c = LocalCluster(str(tmp_path_factory.mktemp("leases")))
    c.init(shards=2, data_servers=2, replicas=2, inline_threshold=8192, chunk_size=256 * 1024,
           durability="durable", metrics=True)
    # shard 1's metadata store is small, so a test can fill it (a batch meets ENOSPC)
    cf = c.cluster_file()
    shards = tuple(n if n.id != 1 else replace(n, metadata_max_mb=3) for n in cf.shards)
    config_file.write(c.config_path, replace(cf, shards=shards))
    c.start()
    yield c
    c.stop()


@pytest.fixture(scope="module")
def mounts(cluster: LocalCluster, mount_root: str) -> Iterator[Callable[..., MountProcess]]:  # noqa: F811
    made: list[MountProcess] = []

    def make(name: str, extra: list[str] | None = None) -> MountProcess:
        m = MountProcess(os.path.join(mount_root, name), str(cluster.config["dir_server"]),
                         os.path.join(mount_root, f"{name}.log"), extra)
        made.append(m)
        return m.start()

    yield make
    for m in made:
        m.stop()


@pytest.fixture(scope="module")
def ab(mounts: Callable[..., MountProcess]) -> tuple[MountProcess, MountProcess]:
    return mounts("a", ["--batch-delay-ms", HOLD_MS]), mounts("b")


@pytest.fixture
def d(ab: tuple[MountProcess, MountProcess], request: pytest.FixtureRequest) -> tuple[str, str]:
    """A fresh directory as mount a and mount b see it."""
    a, b = ab
    name = request.node.name[:100]
    os.mkdir(f"{a.mountpoint}/{name}")
    return f"{a.mountpoint}/{name}", f"{b.mountpoint}/{name}"


def metric(cluster: LocalCluster, prefix: str, name: str, **labels: str) -> float:
    return sum(total(scrape(url), name, **labels) for n in cluster.nodes()
               if n.startswith(prefix) and (url := cluster.metrics_url(n)))


def batches(cluster: LocalCluster) -> float:
    return metric(cluster, "shard", "superfs_rpc_requests_total", method="ApplyBatch")


def creates(cluster: LocalCluster) -> float:
    return metric(cluster, "shard", "superfs_rpc_requests_total", method="CreateFile")


def put(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def get(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def errno_of(fn: Callable[..., object], *args: object) -> int:
    try:
        fn(*args)
    except OSError as e:
        return e.errno or 0
    return 0


# ------------------------------------------------------------ coherence

def test_files_made_ahead_on_a_are_all_there_when_b_looks(cluster: LocalCluster, d: tuple[str, str]) -> None:
    a, b = d
    put(f"{a}/first", b"")  # takes the lease
    before_batches, before_creates = batches(cluster), creates(cluster)
    recalled = metric(cluster, "dir", "superfs_leases_recalled")
    names = [f"f{i:03d}" for i in range(120)]
    for n in names:
        put(f"{a}/{n}", f"bytes of {n}".encode() * 300)  # 3.6 KB: mdtest's small files ride inline
    for n in names[:20]:
        os.unlink(f"{a}/{n}")                             # made and removed ahead: never sent
    # everything above is still waiting in mount a (5 s): the servers have seen none of it
    assert batches(cluster) == before_batches and creates(cluster) == before_creates
    assert os.stat(f"{a}/f050").st_size == len(b"bytes of f050") * 300   # a answers from memory

    assert sorted(os.listdir(b)) == sorted(["first", *names[20:]])        # b's look recalls a's lease
    for n in names[20:]:
        assert os.stat(f"{b}/{n}").st_size == len(f"bytes of {n}".encode()) * 300
        assert get(f"{b}/{n}") == f"bytes of {n}".encode() * 300
    for n in names[:20]:
        assert errno_of(os.stat, f"{b}/{n}") == errno.ENOENT
    assert metric(cluster, "dir", "superfs_leases_recalled") > recalled
    assert batches(cluster) > before_batches
    assert sorted(os.listdir(a)) == sorted(os.listdir(b))


def test_create_on_b_recalls_a_and_both_files_exist(d: tuple[str, str]) -> None:
    a, b = d
    put(f"{a}/from-a", b"a")
    put(f"{b}/from-b", b"b")          # conflicts with a's exclusive lease: recalled first
    put(f"{a}/from-a-again", b"a2")   # a takes the lease back
    for view in (a, b):
        assert sorted(os.listdir(view)) == ["from-a", "from-a-again", "from-b"]
    assert get(f"{b}/from-a-again") == b"a2" and get(f"{a}/from-b") == b"b"
    assert errno_of(put, f"{b}/from-a-again", b"x") == errno.EEXIST  # O_EXCL sees a's pending create


def test_lookup_of_a_missing_name_on_b_is_not_answered_from_a_stale_table(d: tuple[str, str]) -> None:
    a, b = d
    put(f"{a}/x", b"")
    assert errno_of(os.stat, f"{a}/y") == errno.ENOENT   # answered by a's table
    put(f"{b}/y", b"y")
    assert get(f"{a}/y") == b"y"                        # a's table went with the recall


def test_rmdir_on_b_with_pending_creates_on_a_is_refused_and_loses_nothing(d: tuple[str, str]) -> None:
    a, b = d
    os.mkdir(f"{a}/sub")
    for i in range(10):
        put(f"{a}/sub/f{i}", b"keep")
    assert errno_of(os.rmdir, f"{b}/sub") == errno.ENOTEMPTY
    for view in (a, b):
        assert sorted(os.listdir(f"{view}/sub")) == [f"f{i}" for i in range(10)]
        assert all(get(f"{view}/sub/f{i}") == b"keep" for i in range(10))


def test_rmdir_on_b_succeeds_once_a_removed_what_it_made(d: tuple[str, str]) -> None:
    a, b = d
    os.mkdir(f"{a}/sub")
    for i in range(10):
        put(f"{a}/sub/f{i}", b"gone soon")
    fd = os.open(f"{a}/sub", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)                  # the creates leave a; the unlinks below wait in it
    finally:
        os.close(fd)
    for i in range(10):
        os.unlink(f"{a}/sub/f{i}")
    os.rmdir(f"{b}/sub")              # a's pending unlinks arrive before the emptiness check
    assert "sub" not in os.listdir(a) and "sub" not in os.listdir(b)


def test_rename_between_a_directory_a_holds_and_one_b_holds(d: tuple[str, str]) -> None:
    a, b = d
    os.mkdir(f"{a}/da")
    os.mkdir(f"{a}/db")
    put(f"{a}/da/x", b"made on a")
    put(f"{b}/db/y", b"made on b")
    put(f"{b}/db/z", b"also on b")
    os.rename(f"{a}/da/x", f"{a}/db/x2")     # a's lease on da, b's on db: b's is recalled
    os.rename(f"{b}/db/y", f"{b}/da/y2")     # and back the other way
    for view in (a, b):
        assert sorted(os.listdir(f"{view}/da")) == ["y2"]
        assert sorted(os.listdir(f"{view}/db")) == ["x2", "z"]
        assert get(f"{view}/db/x2") == b"made on a" and get(f"{view}/da/y2") == b"made on b"


def lease_calls(cluster: LocalCluster) -> float:
    return sum(metric(cluster, "dir", "superfs_rpc_requests_total", method=m)
               for m in ("AcquireLease", "ReleaseLease"))


def test_mkdir_and_rmdir_in_a_leased_directory_keep_the_lease(cluster: LocalCluster, d: tuple[str, str]) -> None:
    a, b = d
    put(f"{a}/first", b"")            # takes the lease
    put(f"{a}/file", b"pending")      # still waiting in a
    before_batches, before_leases = batches(cluster), lease_calls(cluster)
    for i in range(12):
        os.mkdir(f"{a}/sub{i}")
    for i in range(4):
        os.rmdir(f"{a}/sub{i}")
    assert errno_of(os.mkdir, f"{a}/file") == errno.EEXIST      # a pending create's name
    assert errno_of(os.mkdir, f"{a}/sub5") == errno.EEXIST
    assert errno_of(os.rmdir, f"{a}/file") == errno.ENOTDIR
    assert errno_of(os.rmdir, f"{a}/nothing") == errno.ENOENT
    # no lease went back and none was taken again, and the pending creates are still pending
    assert lease_calls(cluster) == before_leases and batches(cluster) == before_batches
    subs = [f"sub{i}" for i in range(4, 12)]
    assert sorted(os.listdir(a)) == sorted(["first", "file", *subs])
    assert sorted(os.listdir(b)) == sorted(["first", "file", *subs])    # b's look recalls a's lease
    assert get(f"{b}/file") == b"pending"


def test_mkdir_of_a_name_whose_unlink_is_pending_sends_the_unlink_first(d: tuple[str, str]) -> None:
    a, b = d
    put(f"{a}/x", b"")
    fd = os.open(a, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)                  # the create leaves a; the unlink below waits in it
    finally:
        os.close(fd)
    os.unlink(f"{a}/x")
    os.mkdir(f"{a}/x")                # the shard still has the file until the unlink arrives
    assert os.path.isdir(f"{b}/x") and os.listdir(b) == ["x"]


def test_rmdir_in_a_leased_directory_of_a_subdirectory_with_pending_creates(d: tuple[str, str]) -> None:
    a, b = d
    put(f"{a}/first", b"")
    os.mkdir(f"{a}/sub")
    put(f"{a}/sub/f", b"keep")        # a leases sub too; the create waits in a
    assert errno_of(os.rmdir, f"{a}/sub") == errno.ENOTEMPTY
    assert get(f"{b}/sub/f") == b"keep"
    os.unlink(f"{a}/sub/f")
    os.rmdir(f"{a}/sub")
    assert os.listdir(a) == ["first"] and os.listdir(b) == ["first"]


# ------------------------------------------------------------ a stopped holder

def test_a_stopped_holder_loses_its_lease_and_its_late_batch_is_refused(
        cluster: LocalCluster, mounts: Callable[..., MountProcess], ab: tuple[MountProcess, MountProcess]) -> None:
    c = mounts("c", ["--batch-delay-ms", STOP_HOLD_MS])
    c.expect_errors = True
    b = ab[1]
    os.mkdir(f"{c.mountpoint}/stopped")
    put(f"{c.mountpoint}/stopped/sent", b"fsynced")
    fd = os.open(f"{c.mountpoint}/stopped/sent", os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    late = os.open(f"{c.mountpoint}/stopped/late", os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    os.write(late, b"never sent")
    os.mkdir(f"{c.mountpoint}/stopped/latedir")   # made ahead too, never sent either
    revoked = metric(cluster, "dir", "superfs_leases_revoked")
    os.kill(c.pid, signal.SIGSTOP)
    try:
        # b waits for the recall, which c cannot answer; after the lease's lifetime it is revoked
        assert sorted(os.listdir(f"{b.mountpoint}/stopped")) == ["sent"]
        put(f"{b.mountpoint}/stopped/late", b"b's")
        # (c's mkdir leased the mount's root too: b's look there may revoke that one as well)
        assert metric(cluster, "dir", "superfs_leases_revoked") >= revoked + 1
    finally:
        os.kill(c.pid, signal.SIGCONT)
    assert errno_of(os.fsync, late) == errno.ESTALE      # c's late create was refused by the fence
    os.close(late)
    # and so was its late mkdir (the dir server knows the lease ended): the directory's fsync says so
    assert errno_of(fsync_dir, f"{c.mountpoint}/stopped") == errno.ESTALE
    assert get(f"{b.mountpoint}/stopped/late") == b"b's"
    assert get(f"{c.mountpoint}/stopped/late") == b"b's"  # c asks again: its table went with the lease
    assert sorted(os.listdir(f"{c.mountpoint}/stopped")) == ["late", "sent"]
    assert get(f"{c.mountpoint}/stopped/sent") == b"fsynced"


def test_a_holder_killed_loses_only_what_it_had_not_sent(
        cluster: LocalCluster, mounts: Callable[..., MountProcess], ab: tuple[MountProcess, MountProcess]) -> None:
    k = mounts("k", ["--batch-delay-ms", STOP_HOLD_MS])
    k.expect_errors = True
    b = ab[1]
    os.mkdir(f"{k.mountpoint}/killed")
    for i in range(20):
        put(f"{k.mountpoint}/killed/synced{i}", b"s")
        os.mkdir(f"{k.mountpoint}/killed/dsynced{i}")
    os.mkdir(f"{k.mountpoint}/killed/dsynced0/inner")
    fsync_dir(f"{k.mountpoint}/killed")
    fsync_dir(f"{k.mountpoint}/killed/dsynced0")    # (a directory's fsync covers its own names only)
    for i in range(20):
        put(f"{k.mountpoint}/killed/unsent{i}", b"u")
        os.mkdir(f"{k.mountpoint}/killed/dunsent{i}")
    os.unlink(f"{k.mountpoint}/killed/synced0")      # not sent either: synced0 stays
    os.rmdir(f"{k.mountpoint}/killed/dsynced1")      # nor this
    k.kill()
    k.stop()
    # b waits until the dead holder's lease has lapsed (its session cannot answer the recall)
    assert sorted(os.listdir(f"{b.mountpoint}/killed")) == sorted(
        [f"synced{i}" for i in range(20)] + [f"dsynced{i}" for i in range(20)])
    assert os.listdir(f"{b.mountpoint}/killed/dsynced0") == ["inner"]
    assert all(get(f"{b.mountpoint}/killed/synced{i}") == b"s" for i in range(20))
    check_fsck(cluster)


def test_a_holder_killed_in_the_middle_of_its_batches_leaves_each_whole_or_absent(
        cluster: LocalCluster, mounts: Callable[..., MountProcess], ab: tuple[MountProcess, MountProcess]) -> None:
    """The mount dies at crash point client.batch.after_reply: a shard applied its batch, nobody was told,
    the other shard's batch was in flight. Each shard's batch is all there or none of it; fsck is clean."""
    b = ab[1]
    os.mkdir(f"{b.mountpoint}/crashed")
    os.environ[faults.ENV] = "client.batch.after_reply"
    try:
        m = mounts("crash", ["--batch-delay-ms", HOLD_MS])
    finally:
        del os.environ[faults.ENV]
    m.expect_errors = True
    names = [f"f{i}" for i in range(40)]
    for n in names:
        put(f"{m.mountpoint}/crashed/{n}", b"applied")
    with pytest.raises(OSError):
        fsync_dir(f"{m.mountpoint}/crashed")   # sends both shards' batches; the first answer kills the mount
    assert m.proc is not None and m.proc.wait(30) == faults.EXIT_CODE
    m.stop()
    there = set(os.listdir(f"{b.mountpoint}/crashed"))
    shard_of = shards_of(cluster, "/crashed", names)
    assert len(set(shard_of.values())) == 2   # the names span both shards: two batches
    answered = 0
    for shard in set(shard_of.values()):
        mine = {n for n in names if shard_of[n] == shard}
        assert mine & there in (set(), mine), f"shard {shard}: part of a batch applied"
        answered += mine <= there
    assert answered >= 1   # the batch whose answer arrived is there, though nobody was told
    assert all(get(f"{b.mountpoint}/crashed/{n}") == b"applied" for n in there)
    check_fsck(cluster)


def test_a_shard_killed_in_the_middle_of_a_batch_applies_none_of_it(
        cluster: LocalCluster, mounts: Callable[..., MountProcess]) -> None:
    """Shard 0 dies at crash point shard.batch.mid_apply@5, its 5th change applied, nothing committed:
    the holder's fsync reports the failure, none of that batch is there, the other shard's all is, the
    holder shows what the shards have, and fsck is clean after the restart."""
    m = mounts("shardcrash", ["--batch-delay-ms", HOLD_MS])
    m.expect_errors = True
    os.mkdir(f"{m.mountpoint}/half")
    names = [f"g{i}" for i in range(40)]
    shard_of = shards_of(cluster, "/half", names)
    on0 = {n for n in names if shard_of[n] == 0}
    assert len(on0) >= 5 and len(on0) < len(names)
    arm(cluster, "shard-0", "shard.batch.mid_apply@5")
    try:
        for n in names:
            put(f"{m.mountpoint}/half/{n}", b"made ahead")
        with pytest.raises(OSError):
            fsync_dir(f"{m.mountpoint}/half")
        wait_crashed(cluster, "shard-0")
    finally:
        restart(cluster, "shard-0")
    assert set(os.listdir(f"{m.mountpoint}/half")) == set(names) - on0   # the lease went back with the error
    for n in set(names) - on0:
        assert get(f"{m.mountpoint}/half/{n}") == b"made ahead"
    check_fsck(cluster)
    for n in sorted(on0):                       # and the names are free to make again
        put(f"{m.mountpoint}/half/{n}", b"again")
    fsync_dir(f"{m.mountpoint}/half")
    assert get(f"{m.mountpoint}/half/{sorted(on0)[0]}") == b"again"


def shards_of(cluster: LocalCluster, parent: str, names: list[str]) -> dict[str, int]:
    with connect(address=str(cluster.config["dir_server"])) as c:
        parent_ino = c.stat(parent).st_ino
        m = c.aio.cluster.map
        return {n: m.partition_shard[routing.entry_partition(parent_ino, n, m.num_partitions)] for n in names}


def check_fsck(cluster: LocalCluster) -> None:
    r = subprocess.run([sys.executable, "-m", "superfs.cli.main", "fsck", "--state-dir", cluster.state_dir,
                        "--grace", "0"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr


# ------------------------------------------------------------ errors at fsync

def test_a_refused_batch_is_reported_by_fsync_of_the_file_and_of_the_directory(
        cluster: LocalCluster, d: tuple[str, str]) -> None:
    """Shard 1's store holds at most 3 MiB: creates of 8 KB files made ahead fill it, and the batch that
    meets ENOSPC is reported by fsync of a file in it and of the directory, not lost in silence. (Last in
    this module: shard 1 stays full.)"""
    a, b = d
    failed: OSError | None = None
    synced: set[str] = set()
    for round_ in range(100):
        names = [f"fill{round_:03d}-{i:02d}" for i in range(40)]
        fds = [os.open(f"{a}/{n}", os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644) for n in names]
        try:
            for fd in fds:
                os.write(fd, os.urandom(8000))
            for n, fd in zip(names, fds):
                try:
                    os.fsync(fd)
                    synced.add(n)
                except OSError as e:
                    failed = failed or e
        finally:
            for fd in fds:
                os.close(fd)
        if failed:
            break
    assert failed is not None and failed.errno == errno.ENOSPC, failed
    assert errno_of(fsync_dir, a) == errno.ENOSPC   # the directory's fsync reports it too
    # both mounts show what the shards have: every file whose fsync succeeded, whole; the others,
    # whatever of them was answered (a create without its bytes, or nothing)
    listing = set(os.listdir(b))
    assert listing == set(os.listdir(a)) and synced <= listing
    assert all(os.stat(f"{b}/{n}").st_size == 8000 for n in synced)
    assert all(os.stat(f"{b}/{n}").st_size in (0, 8000) for n in listing)
