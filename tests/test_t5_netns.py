"""A network cut, with Linux network namespaces: each daemon on its own host and address.

Every daemon runs in its own network namespace, joined to the test's (the
client's) namespace by a veth pair on one bridge, with its own 10.x.y.z
address. Cutting a daemon off is ``ip link set <its veth> down``: its
packets are dropped, not refused, exactly like a dead link or a partition,
so callers can only learn it from their deadlines. Then:

- operations that need the cut daemon fail with ETIMEDOUT (or EIO) within
  the client's per-call deadline; the rest keep working;
- once the link is back, everything heals by itself: the same client
  reaches the daemon again, a rename left pending completes, and fsck is
  clean.

Skipped, with the reason, only where namespaces cannot be created (not
root, no ``ip`` from iproute2, or a kernel/container that forbids it).
"""
from __future__ import annotations

import errno
import os
import shutil
import subprocess
from typing import Iterator

import pytest
from conftest import SMALL_CHUNK
from t5_support import assert_clean, blob, ino_of, name_on, retry, wait_until
from test_t5_bounded import fails, works

from superfs.cli.launcher import DaemonSpec, LocalCluster
from superfs.client import connect
from superfs.config_file import ClusterFile

DEADLINE_S = 1.5
PORT = 7070


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


def _why_not() -> str | None:
    """Why network namespaces cannot be used here, or None if they can."""
    if shutil.which("ip") is None:
        return "no 'ip' command (install iproute2: scripts/install-deps.sh does)"
    if os.geteuid() != 0:
        return "creating network namespaces needs root"
    probe = f"sfsprobe{os.getpid()}"
    r = _ip("netns", "add", probe, check=False)
    if r.returncode != 0:
        return f"cannot create a network namespace: {r.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return None


class NetnsCluster(LocalCluster):
    """A LocalCluster whose daemons each live in a network namespace on a shared bridge."""

    def __init__(self, state_dir: str) -> None:
        super().__init__(state_dir)
        tag = os.getpid() % 100000
        self.tag = tag
        self.bridge = f"sfb{tag}"
        self.subnet = f"10.{100 + tag % 100}.{(tag // 100) % 250}"
        self.index: dict[str, int] = {}

    def ns(self, name: str) -> str:
        return f"sfs{self.tag}-{name}"

    def veth(self, name: str, side: str) -> str:
        return f"sv{self.tag}{side}{self.index[name]}"

    def host(self, name: str) -> str:
        return f"{self.subnet}.{10 + self.index[name]}"

    def init_netns(self, *, shards: int, data_servers: int, replicas: int) -> None:
        names = ["dir"] + [f"shard-{i}" for i in range(shards)] + [f"data-{i}" for i in range(data_servers)]
        self.index = {n: i for i, n in enumerate(names)}
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.subnet}.1/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for n in names:
            ns, host_side, ns_side = self.ns(n), self.veth(n, "h"), self.veth(n, "n")
            _ip("netns", "add", ns)
            _ip("link", "add", host_side, "type", "veth", "peer", "name", ns_side)
            _ip("link", "set", ns_side, "netns", ns)
            _ip("link", "set", host_side, "master", self.bridge, "up")
            _ip("-n", ns, "addr", "add", f"{self.host(n)}/24", "dev", ns_side)
            _ip("-n", ns, "link", "set", ns_side, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        os.makedirs(self.path("run"), exist_ok=True)
        os.makedirs(self.path("log"), exist_ok=True)
        at = {n: f"{self.host(n)}:{PORT}" for n in names}
        self._write_files({"dir_server": at["dir"],
                           "shards": [at[f"shard-{i}"] for i in range(shards)],
                           "data_servers": [at[f"data-{i}"] for i in range(data_servers)]},
                          replicas=replicas, inline_threshold=4096, chunk_size=SMALL_CHUNK, durability="durable",
                          metrics=False, auth=False, base=ClusterFile())

    def command(self, spec: DaemonSpec) -> list[str]:
        return ["ip", "netns", "exec", self.ns(spec.name), *super().command(spec)]

    def cut(self, name: str) -> None:
        _ip("link", "set", self.veth(name, "h"), "down")

    def heal(self, name: str) -> None:
        _ip("link", "set", self.veth(name, "h"), "up")

    def teardown(self) -> None:
        for n in self.index:
            self.heal(n) if _ip("link", "show", self.veth(n, "h"), check=False).returncode == 0 else None
        self.stop()
        for n in self.index:
            _ip("netns", "del", self.ns(n), check=False)
        _ip("link", "del", self.bridge, check=False)


@pytest.fixture
def netns_cluster(tmp_path) -> Iterator[NetnsCluster]:
    why = _why_not()
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
        wait_until(lambda: c.exists(f"/n/{target}") and c.read_bytes(f"/n/{target}") == b"moving",
                   "the pending rename to complete")
        assert not c.exists(f"/n/{mover}")

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
