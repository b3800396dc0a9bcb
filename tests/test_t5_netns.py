"""A network cut, with Linux network namespaces: each daemon on its own host and address.

Every daemon runs in its own network namespace, joined to the test's (the
client's) namespace by a veth pair on one bridge, with its own address of
a documentation range (tests/netns_support.py). Cutting a daemon off is ``ip link set <its veth> down``: its
packets are dropped, not refused, exactly like a dead link or a partition,
so callers can only learn it from their deadlines. Then:

- operations that need the cut daemon fail with ETIMEDOUT (or EIO) within
  the client's per-call deadline; the rest keep working;
- once the link is back, everything heals by itself: the same client
  reaches the daemon again, a rename that failed for its caller ends up
  either made or not (never half), and fsck is clean.

Skipped, with the reason, only where namespaces cannot be created (not
root, no ``ip`` from iproute2, or a kernel/container that forbids it).
"""
from __future__ import annotations

import errno
from typing import Iterator

import pytest
from conftest import SMALL_CHUNK
from netns_support import NamespacedCluster, why_not
from t5_support import assert_clean, blob, ino_of, name_on, retry, wait_until
from test_t5_bounded import fails, works

from superfs.client import connect
from superfs.config_file import ClusterFile

DEADLINE_S = 1.5
PORT = 7070


class NetnsCluster(NamespacedCluster):
    """Two shards and two data servers, each a host of its own; links can be cut."""

    def __init__(self, state_dir: str) -> None:
        super().__init__(state_dir, prefix="s5")

    def init_netns(self, *, shards: int, data_servers: int, replicas: int) -> None:
        names = ["dir"] + [f"shard-{i}" for i in range(shards)] + [f"data-{i}" for i in range(data_servers)]
        self.make_network(names)
        at = {n: f"{self.host(n)}:{PORT}" for n in names}
        self._write_files({"dir_server": at["dir"],
                           "shards": [at[f"shard-{i}"] for i in range(shards)],
                           "data_servers": [at[f"data-{i}"] for i in range(data_servers)]},
                          replicas=replicas, inline_threshold=4096, chunk_size=SMALL_CHUNK, durability="durable",
                          metrics=False, auth=False, base=ClusterFile())


@pytest.fixture
def netns_cluster(tmp_path) -> Iterator[NetnsCluster]:
    why = why_not()
    if why is not None:
        pytest.skip(f"network namespaces unavailable: {why}")
    c = NetnsCluster(str(tmp_path / "netns-cluster"))
    try:
        c.init_netns(shards=2, data_servers=2, replicas=2)
        c.start()
        yield c
    finally:
        c.teardown()


def test_a_cut_link_fails_what_needs_it_within_the_deadline_and_heals(netns_cluster):
    cluster = netns_cluster
    addr = str(cluster.config["dir_server"])
    with connect(addr, timeout_s=DEADLINE_S) as c:
        c.mkdir("/n")
        near, far = name_on(c, "/n", 0, "near"), name_on(c, "/n", 1, "far")
        c.write_bytes(f"/n/{near}", b"near")
        c.write_bytes(f"/n/{far}", b"far")
        big = blob("big", 3 * SMALL_CHUNK)
        c.write_bytes("/n/big", big)
        mover, target = name_on(c, "/n", 0, "mv"), name_on(c, "/n", 1, "dst")
        c.write_bytes(f"/n/{mover}", b"moving")
        assert ino_of(c, "/n") > 0

        # shard 1 cut off: its names time out, shard 0's keep working
        cluster.cut("shard-1")
        try:
            assert fails(lambda: c.read_bytes(f"/n/{far}")) in (errno.ETIMEDOUT, errno.EIO)
            fails(lambda: c.rename(f"/n/{mover}", f"/n/{target}"))
            assert works(lambda: c.read_bytes(f"/n/{near}")) == b"near"
            works(lambda: c.write_bytes(f"/n/{name_on(c, '/n', 0, 'more')}", b"while cut"))
            assert works(lambda: c.read_bytes("/n/big")) == big  # chunks: data servers, not shard 1
        finally:
            cluster.heal("shard-1")
        wait_until(lambda: c.read_bytes(f"/n/{far}") == b"far", "shard 1 to be reachable again")
        # the rename failed for its caller: it was not made (its deadline passed before its first
        # step), or it completes (an intent was written in time); either way the file ends up under
        # exactly one of its names, once the shards have settled
        wait_until(lambda: c.exists(f"/n/{target}") != c.exists(f"/n/{mover}"), "the rename to settle")
        assert c.read_bytes(f"/n/{target}" if c.exists(f"/n/{target}") else f"/n/{mover}") == b"moving"

        # a data server cut off: chunk reads use the other replica, chunk writes fail
        cluster.cut("data-0")
        try:
            assert works(lambda: c.read_bytes("/n/big")) == big
            fails(lambda: c.write_bytes("/n/big2", blob("big2", 3 * SMALL_CHUNK)))
            works(lambda: c.write_bytes("/n/small", b"inline bytes need no data server"))
        finally:
            cluster.heal("data-0")
        retry(lambda: c.write_bytes("/n/big2", blob("big2", 3 * SMALL_CHUNK)), timeout_s=90)
        assert c.read_bytes("/n/big2") == blob("big2", 3 * SMALL_CHUNK)

        # the dir server cut off: directory operations fail; back, they work
        cluster.cut("dir")
        try:
            fails(lambda: c.mkdir("/n/sub"))
        finally:
            cluster.heal("dir")
        retry(lambda: c.mkdir("/n/sub"), timeout_s=90)
    assert_clean(cluster)
