"""A cluster spread over Linux network namespaces, as separate hosts would be, with TLS and tokens.

Every daemon runs in its own network namespace with its own address (of a
documentation range: tests/netns_support.py), joined to the test's namespace (the client host) by a veth pair on
one bridge. The cluster is configured the way a multi-host deployment is:
one cluster file naming every daemon's address, mutual TLS with a
certificate valid for those addresses, a token file, and a metrics port on
each daemon's own address. The client library (and, where FUSE works, a
``superfs mount`` process) on the client host then uses it: inline and
chunked files, renames across shards, listings, and each daemon's metrics
scraped over the bridge.

Skipped, with the reason, only where namespaces cannot be created (not
root, no ``ip`` from iproute2, or a kernel/container that forbids it).
"""
from __future__ import annotations

import ipaddress
import os
import subprocess
import urllib.request
from dataclasses import replace
from typing import Iterator

import pytest
from fuse_helpers import MountProcess, fuse_unavailable
from netns_support import DOC_RANGES, NamespacedCluster, ip, why_not
from test_t6_auth import make_pki

from superfs import config_file
from superfs.cli.status import scrape, total
from superfs.client import connect
from superfs.config import TlsConfig
from superfs.config_file import ClusterFile

PORT = 7000
METRICS_PORT = 9400


class SpreadCluster(NamespacedCluster):
    """Two shards and three data servers, each a host of its own, with TLS and tokens."""

    def __init__(self, state_dir: str) -> None:
        super().__init__(state_dir, prefix="t6")

    def init_spread(self, *, shards: int, data_servers: int, tls: TlsConfig) -> None:
        names = ["dir"] + [f"shard-{i}" for i in range(shards)] + [f"data-{i}" for i in range(data_servers)]
        self.make_network(names)
        at = {n: f"{self.host(n)}:{PORT}" for n in names}
        self._write_files({"dir_server": at["dir"], "shards": [at[f"shard-{i}"] for i in range(shards)],
                           "data_servers": [at[f"data-{i}"] for i in range(data_servers)]},
                          replicas=2, inline_threshold=4096, chunk_size=64 * 1024, durability="durable",
                          metrics=False, auth=True, base=ClusterFile(tls=tls))
        # each daemon's metrics on its own address (no free-port probing across namespaces)
        cf = config_file.load(self.config_path)
        with_metrics = replace(
            cf, dir_server=replace(cf.dir_server, metrics_port=METRICS_PORT),  # type: ignore[arg-type]
            shards=tuple(replace(n, metrics_port=METRICS_PORT) for n in cf.shards),
            data_servers=tuple(replace(n, metrics_port=METRICS_PORT) for n in cf.data_servers))
        config_file.write(self.config_path, with_metrics)


@pytest.fixture(scope="module")
def spread(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SpreadCluster]:
    why = why_not()
    if why is not None:
        pytest.skip(f"network namespaces unavailable: {why}")
    d = tmp_path_factory.mktemp("netns")
    c = SpreadCluster(str(d / "state"))
    try:
        hosts = c.host_addresses(6)
        pki = make_pki(str(d), ["node"], ips=tuple(hosts) + ("127.0.0.1",))
        c.init_spread(shards=2, data_servers=3, tls=TlsConfig(
            ca_file=pki["ca.crt"], cert_file=pki["node.crt"], key_file=pki["node.key"], require_client_cert=True))
        c.start()
        yield c
    finally:
        c.teardown()


def test_each_daemon_is_a_host_of_its_own(spread):
    with connect(config=spread.config_path) as c:
        m = c.aio.cluster.map
        addresses = [str(spread.config["dir_server"])] + [s.address for s in m.shards] + \
            [d.address for d in m.data_servers]
    hosts = [a.rsplit(":", 1)[0] for a in addresses]
    assert len(set(hosts)) == 6 and all(ipaddress.IPv4Address(h) in spread.subnet for h in hosts)
    assert any(spread.subnet.subnet_of(r) for r in DOC_RANGES)  # documentation addresses, not a private range
    for name in spread.nodes():  # and it listens there, inside its namespace (ss comes with iproute2)
        out = ip("netns", "exec", spread.ns(name), "ss", "-Hltn").stdout
        assert f"{spread.host(name)}:{PORT}" in out.replace("[::ffff:", "").replace("]:", ":"), out


def test_the_library_works_across_hosts(spread):
    with connect(config=spread.config_path) as c:
        c.makedirs("/data/in")
        small = {f"/data/in/f{i:03d}": f"file {i}".encode() * 7 for i in range(60)}
        for path, data in small.items():
            c.write_bytes(path, data)
        big = os.urandom(5 * 64 * 1024 + 17)  # 6 chunks x 2 replicas over 3 data servers
        c.write_bytes("/data/big", big)
        c.makedirs("/data/out")
        for path in list(small)[:20]:  # renames between directories: entries move between shards
            c.rename(path, path.replace("/in/", "/out/"))
        assert len(c.listdir("/data/in")) == 40 and len(c.listdir("/data/out")) == 20
        for path, data in small.items():
            where = path.replace("/in/", "/out/") if path in list(small)[:20] else path
            assert c.read_bytes(where) == data
        assert c.read_bytes("/data/big") == big
        c.unlink("/data/out/f000")
        assert not c.exists("/data/out/f000")
    with connect(config=spread.config_path) as again:  # a second client sees the same tree
        assert again.stat("/data/big").st_size == len(big)


def test_metrics_are_served_on_each_daemons_own_address(spread):
    chunks = 0.0
    for name in spread.nodes():
        url = f"http://{spread.host(name)}:{METRICS_PORT}/metrics"
        assert spread.metrics_url(name) == url
        s = scrape(url)
        assert total(s, "superfs_rpc_requests_total") > 0 or name.startswith("data")
        chunks += total(s, "superfs_data_chunks")
    assert chunks >= 12
    dir_metrics = scrape(f"http://{spread.host('dir')}:{METRICS_PORT}/metrics")
    assert total(dir_metrics, "superfs_cluster_servers", kind="data") == 3


def test_plaintext_from_the_client_host_is_refused(spread, tmp_path):
    cf = config_file.load(spread.config_path)
    plain = tmp_path / "plain.toml"
    config_file.write(str(plain), replace(cf, tls=None))
    with pytest.raises(OSError):
        connect(config=str(plain), timeout_s=3.0)
    with urllib.request.urlopen(spread.metrics_url("dir"), timeout=10) as r:  # metrics stay plain HTTP
        assert r.status == 200


def test_a_fuse_mount_on_the_client_host(spread, tmp_path):
    why = fuse_unavailable()
    if why is not None:
        pytest.skip(f"FUSE unavailable: {why}")
    mp = str(tmp_path / "mnt")
    # the mount finds the cluster file (TLS, token) through the index of clusters by dir server address
    m = MountProcess(mp, str(spread.config["dir_server"]), str(tmp_path / "mount.log")).start()
    try:
        with open(os.path.join(mp, "via-mount.txt"), "w") as f:
            f.write("written through FUSE\n")
        r = subprocess.run(["cp", "-r", "/etc/hostname", os.path.join(mp, "hostname")], capture_output=True, timeout=60)
        assert r.returncode == 0, r.stderr
        with connect(config=spread.config_path) as c:
            assert c.read_bytes("/via-mount.txt") == b"written through FUSE\n"
            c.write_bytes("/via-library.txt", b"written through the library\n")
        with open(os.path.join(mp, "via-library.txt")) as f:
            assert f.read() == "written through the library\n"
        assert "data" in os.listdir(mp)
    finally:
        m.stop()
