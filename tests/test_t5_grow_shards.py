"""Adding and removing a metadata shard online (superfs admin add-shard / remove-shard).

Real daemons, a few thousand files, clients creating, renaming and unlinking
all along: no operation may fail, the new shard ends with its fair share,
fsck is clean and every file reads back the bytes it had.
"""
from __future__ import annotations

import pytest

from grow_support import Load, add_shard_daemon, admin_cli, per_shard, populate, read_back
from t5_support import address, assert_clean

from superfs.client import connect

FILES = 1500


def test_add_shard_under_load(cluster_factory) -> None:  # type: ignore[no-untyped-def]
    cluster = cluster_factory(shards=2, data_servers=1, replicas=1)
    with connect(address(cluster)) as c:
        sums = populate(c, FILES)
    _, new = add_shard_daemon(cluster)
    with Load(cluster) as load:
        load.wait_ops(20)
        r = admin_cli(cluster, "add-shard", str(new))
        load.wait_ops(load.ops + 20)
    assert r.returncode == 0, r.stderr
    assert not load.errors, load.errors[:10]
    assert load.ops > 0
    lines = [x for x in r.stdout.splitlines() if x.startswith("[")]
    assert len(lines) == 1024 // 3, r.stdout[-2000:]
    with connect(address(cluster)) as c:
        held = per_shard(c)
        assert abs(held[new] - 1024 // 3) <= 1 and sum(held.values()) == 1024, held
        assert max(held.values()) - min(held.values()) <= 1, held
        read_back(c, sums)
    assert_clean(cluster)
    # idempotent: a second run has nothing to do
    again = admin_cli(cluster, "add-shard", str(new))
    assert again.returncode == 0 and "already holds its share" in again.stdout, again.stdout + again.stderr


def test_remove_shard_under_load(cluster_factory) -> None:  # type: ignore[no-untyped-def]
    cluster = cluster_factory(shards=3, data_servers=1, replicas=1)
    with connect(address(cluster)) as c:
        sums = populate(c, FILES)
    with Load(cluster) as load:
        load.wait_ops(20)
        r = admin_cli(cluster, "remove-shard", "2")
        load.wait_ops(load.ops + 20)
    assert r.returncode == 0, r.stderr
    assert not load.errors, load.errors[:10]
    assert "shard 2 removed" in r.stdout
    with connect(address(cluster)) as c:
        held = per_shard(c)
        assert set(held) == {0, 1} and abs(held[0] - held[1]) <= 1, held
        assert 2 not in {s.id for s in c.aio.cluster.map.shards}
        read_back(c, sums)
    cluster.stop_daemon("shard-2")
    assert_clean(cluster)
    again = admin_cli(cluster, "remove-shard", "2")
    assert again.returncode == 0 and "already removed" in again.stdout


@pytest.mark.parametrize("args, message", [
    (["add-shard", "7"], "shard 7 is not registered"),
    (["add-shard", "-1"], "bad shard id"),
    (["remove-shard", "9"], "no shard 9"),
])
def test_admin_errors_are_one_line(cluster, args, message) -> None:  # type: ignore[no-untyped-def]
    r = admin_cli(cluster, *args)
    assert r.returncode == 2, r.stdout + r.stderr
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "Traceback" not in r.stderr


def test_add_shard_that_is_down_is_refused(cluster_factory) -> None:  # type: ignore[no-untyped-def]
    cluster = cluster_factory(shards=1, data_servers=0)
    name, new = add_shard_daemon(cluster)
    cluster.stop_daemon(name)
    r = admin_cli(cluster, "add-shard", str(new))
    assert r.returncode == 2 and f"shard {new} does not answer" in r.stderr, r.stdout + r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_add_shard_killed_then_run_again(cluster_factory) -> None:  # type: ignore[no-untyped-def]
    """kill -9 of the operator's command mid-way: no partition stays frozen, and running it again finishes."""
    import signal
    import subprocess
    import sys

    from t5_support import wait_until

    cluster = cluster_factory(shards=2, data_servers=1, replicas=1)
    with connect(address(cluster)) as c:
        sums = populate(c, 300)
    _, new = add_shard_daemon(cluster)
    cmd = subprocess.Popen([sys.executable, "-m", "superfs.cli.main", "admin", "add-shard", str(new),
                            "--state-dir", cluster.state_dir], stdout=subprocess.PIPE, text=True)
    assert cmd.stdout is not None
    for _ in range(20):  # the plan line, then moves going on
        cmd.stdout.readline()
    cmd.send_signal(signal.SIGKILL)
    cmd.wait(30)

    def settled() -> bool:
        with connect(address(cluster)) as c:  # a fresh client: the map as the dir server has it now
            return not c.aio.cluster.map.moves
    wait_until(settled, "the move the killed command had asked for to finish on its own")
    with Load(cluster) as load:
        r = admin_cli(cluster, "add-shard", str(new))
        load.wait_ops(load.ops + 10)
    assert r.returncode == 0, r.stderr
    assert not load.errors, load.errors[:10]
    with connect(address(cluster)) as c:
        held = per_shard(c)
        assert abs(held[new] - 1024 // 3) <= 1, held
        read_back(c, sums)
    assert_clean(cluster)


def test_fsck_while_partitions_move(cluster_factory) -> None:  # type: ignore[no-untyped-def]
    """fsck run during an add-shard: a moving partition's two copies are not findings."""
    import threading

    from t5_support import fsck

    cluster = cluster_factory(shards=2, data_servers=1, replicas=1)
    with connect(address(cluster)) as c:
        sums = populate(c, 400)
    _, new = add_shard_daemon(cluster)
    reports: list[tuple[int, str]] = []
    done = threading.Event()

    def checker() -> None:
        while not done.is_set():
            reports.append(fsck(cluster, settle_s=5.0))

    t = threading.Thread(target=checker)
    t.start()
    r = admin_cli(cluster, "add-shard", str(new))
    done.set()
    t.join(300)
    assert r.returncode == 0, r.stderr
    assert reports
    bad = [rep for rc, rep in reports if rc != 0]
    assert not bad, bad[0][-3000:]
    with connect(address(cluster)) as c:
        read_back(c, sums)


@pytest.mark.parametrize("victim, point", [
    ("dir", "dir.move.after_flip@7"),        # the dir server, after flipping the 7th partition away
    ("shard-2", "shard.move.after_drop@4"),  # the leaving shard, after dropping its 4th partition
])
def test_remove_shard_survives_a_kill(cluster_factory, victim: str, point: str) -> None:  # type: ignore[no-untyped-def]
    """kill -9 of the dir server or of the leaving shard in the middle of a remove-shard: after a
    restart the interrupted move is finished, running the command again completes, nothing is lost."""
    import subprocess
    import sys

    from t5_support import arm, restart, wait_crashed, wait_until

    cluster = cluster_factory(shards=3, data_servers=1, replicas=1)
    with connect(address(cluster)) as c:
        sums = populate(c, 300)
    arm(cluster, victim, point)
    cmd = subprocess.Popen([sys.executable, "-m", "superfs.cli.main", "admin", "remove-shard", "2",
                            "--state-dir", cluster.state_dir], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    wait_crashed(cluster, victim)
    restart(cluster, victim)
    out, err = cmd.communicate(timeout=300)
    # the dir server's death fails the command (one line, no traceback); the shard's only delays it
    assert cmd.returncode == 0 or (victim == "dir" and cmd.returncode != 0), out + err
    assert "Traceback" not in err, err

    def settled() -> bool:
        with connect(address(cluster)) as c:
            return not c.aio.cluster.map.moves
    wait_until(settled, "the interrupted move to be finished or rolled back")
    r = admin_cli(cluster, "remove-shard", "2")
    assert r.returncode == 0 and ("shard 2 removed" in r.stdout or "already removed" in r.stdout), \
        r.stdout + r.stderr
    with connect(address(cluster)) as c:
        held = per_shard(c)
        assert set(held) == {0, 1} and sum(held.values()) == 1024, held
        read_back(c, sums)
    cluster.stop_daemon("shard-2")
    assert_clean(cluster)
