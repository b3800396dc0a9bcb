"""Prometheus metrics of real daemons, scraped over HTTP, change with what the cluster does.

Every daemon of a local cluster serves /metrics on its own port; request
counts and latency histograms per RPC, errors by errno, LMDB entries and
group commits, data-server chunks and bytes, and the dir server's replica
health all move when operations (or a dead data server) say they should.
``superfs status`` shows each daemon's metrics URL and figures read from it.
"""
from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
import urllib.request
from typing import Iterator

import pytest

from superfs.cli.launcher import LocalCluster
from superfs.cli.status import scrape, total
from superfs.client import connect
from superfs.daemon import read_ready_file

TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def metrics_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    c = LocalCluster(str(tmp_path_factory.mktemp("metrics")))
    c.init(shards=2, data_servers=2, replicas=2, inline_threshold=4096, chunk_size=64 * 1024,
           durability="async", auth=True, metrics=True)
    c.start()
    yield c
    c.stop()


def sums(cluster: LocalCluster, prefix: str, name: str, **labels: str) -> float:
    return sum(total(scrape(url), name, **labels) for n in cluster.nodes()
               if n.startswith(prefix) and (url := cluster.metrics_url(n)))


def test_every_daemon_serves_metrics_and_records_them_in_its_ready_file(metrics_cluster):
    for name in metrics_cluster.nodes():
        url = metrics_cluster.metrics_url(name)
        assert url is not None
        assert read_ready_file(metrics_cluster.path("run", f"{name}.ready"))["metrics"] == url  # type: ignore[index]
        with urllib.request.urlopen(url, timeout=10) as r:
            text = r.read().decode()
        assert "superfs_lmdb_bytes" in text and 'superfs_daemon_info{daemon="superfs-' in text
        assert "process_resident_memory_bytes" in text


def test_metrics_change_after_operations(metrics_cluster):
    dir_url = metrics_cluster.metrics_url("dir")
    assert dir_url is not None
    before_dir = scrape(dir_url)
    creates0 = sums(metrics_cluster, "shard", "superfs_rpc_requests_total", method="CreateFile")
    inodes0 = sums(metrics_cluster, "shard", "superfs_lmdb_entries", db="inodes")
    commits0 = sums(metrics_cluster, "shard", "superfs_lmdb_commits_total")
    chunks0 = sums(metrics_cluster, "data", "superfs_data_chunks")
    bytes0 = sums(metrics_cluster, "data", "superfs_data_bytes")
    latency0 = sums(metrics_cluster, "shard", "superfs_rpc_duration_seconds_count")
    enoent0 = sums(metrics_cluster, "", "superfs_rpc_answers_total", errno="ENOENT")

    with connect(str(metrics_cluster.config["dir_server"])) as c:
        c.mkdir("/m")
        for i in range(10):
            c.write_bytes(f"/m/small-{i}", b"x" * 100)
        c.write_bytes("/m/big", os.urandom(200 * 1024))  # chunked: 4 chunks x 2 replicas
        with pytest.raises(FileNotFoundError):
            c.stat("/m/missing")

    after_dir = scrape(dir_url)
    assert total(after_dir, "superfs_rpc_requests_total", method="Mkdir", code="OK") == \
        total(before_dir, "superfs_rpc_requests_total", method="Mkdir", code="OK") + 1
    assert total(after_dir, "superfs_lmdb_entries", db="dirs") == total(before_dir, "superfs_lmdb_entries", db="dirs") + 1
    assert sums(metrics_cluster, "shard", "superfs_rpc_requests_total", method="CreateFile") >= creates0 + 11
    assert sums(metrics_cluster, "shard", "superfs_lmdb_entries", db="inodes") == inodes0 + 11
    assert sums(metrics_cluster, "shard", "superfs_lmdb_commits_total") > commits0
    assert sums(metrics_cluster, "shard", "superfs_rpc_duration_seconds_count") > latency0
    assert sums(metrics_cluster, "data", "superfs_data_chunks") == chunks0 + 8
    assert sums(metrics_cluster, "data", "superfs_data_bytes") == bytes0 + 2 * 200 * 1024
    assert sums(metrics_cluster, "", "superfs_rpc_answers_total", errno="ENOENT") > enoent0


def test_expected_answers_are_counted_apart_from_failures(metrics_cluster):
    """ENOENT for a lookup, EEXIST, ENOTEMPTY: POSIX answers a client causes, not faults of the cluster."""
    errors0 = sums(metrics_cluster, "", "superfs_rpc_errors_total")
    with connect(str(metrics_cluster.config["dir_server"])) as c:
        c.makedirs("/answers/full")
        c.write_bytes("/answers/full/f", b"x")
        for i in range(20):  # what cp and ls do all day: look up names that are not there
            assert not c.exists(f"/answers/nothing-{i}")
        with pytest.raises(FileExistsError):
            c.mkdir("/answers/full")
        with pytest.raises(FileExistsError):
            with c.open("/answers/full/f", "x"):
                pass
        with pytest.raises(OSError) as e:
            c.rmdir("/answers/full")
        assert e.value.errno == errno.ENOTEMPTY
    assert sums(metrics_cluster, "", "superfs_rpc_errors_total") == errors0  # no failure among them
    for name in ("ENOENT", "EEXIST", "ENOTEMPTY"):
        assert sums(metrics_cluster, "", "superfs_rpc_answers_total", errno=name) > 0, name
    r = subprocess.run([sys.executable, "-m", "superfs.cli.main", "status", "--state-dir", metrics_cluster.state_dir],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    figures = [line for line in r.stdout.splitlines() if "requests" in line]
    assert len(figures) == len(metrics_cluster.nodes()) and all("failed 0 " in f for f in figures), r.stdout
    assert "ENOENT" in r.stdout and "EEXIST" in r.stdout, r.stdout  # shown as answers, by errno


def test_replica_health_falls_when_a_data_server_dies(metrics_cluster):
    dir_url = metrics_cluster.metrics_url("dir")
    assert dir_url is not None

    def wait_for(pred: object) -> dict:  # the dir server probes every few seconds
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            s = scrape(dir_url)
            if pred(s):  # type: ignore[operator]
                return s
            assert time.monotonic() < deadline, s
            time.sleep(0.2)

    s = wait_for(lambda s: total(s, "superfs_data_servers_reachable") == 2)
    assert total(s, "superfs_replica_health") == 1.0 and total(s, "superfs_cluster_servers", kind="data") == 2
    metrics_cluster.stop_daemon("data-1")
    try:
        s = wait_for(lambda s: total(s, "superfs_data_servers_reachable") == 1)
        assert total(s, "superfs_replica_health") == 0.5 and total(s, "superfs_replicas") == 2
    finally:
        metrics_cluster.start()
    wait_for(lambda s: total(s, "superfs_replica_health") == 1.0)


def test_status_shows_each_daemon_metrics_url_and_figures(metrics_cluster):
    r = subprocess.run([sys.executable, "-m", "superfs.cli.main", "status", "--state-dir", metrics_cluster.state_dir],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    for name in metrics_cluster.nodes():
        assert metrics_cluster.metrics_url(name) in r.stdout
    assert "replica health 1.00" in r.stdout and "chunks" in r.stdout and "requests" in r.stdout
    r2 = subprocess.run([sys.executable, "-m", "superfs.cli.main", "status", "--config", metrics_cluster.config_path],
                        capture_output=True, text=True, timeout=120)
    assert r2.returncode == 0, r2.stdout + r2.stderr
    assert metrics_cluster.metrics_url("data-1") in r2.stdout and "files" in r2.stdout


def test_replica_health_is_unknown_until_every_data_server_was_probed() -> None:
    """Right after start no server has answered a probe yet: no figure, not a false 0.00."""
    import asyncio
    from types import SimpleNamespace

    from superfs.metrics import ReplicaHealth

    servers = [SimpleNamespace(id=1, address="a"), SimpleNamespace(id=2, address="b")]
    cmap = SimpleNamespace(shards=[], data_servers=servers, replicas=2)
    down = {2}

    async def probe(server_id: int) -> None:
        if server_id in down:
            raise ConnectionError(server_id)

    health = ReplicaHealth(lambda: cmap, probe)

    def figures() -> dict[str, float]:
        return {m.name: m.samples[0].value for m in health.collect() if m.samples}

    assert "superfs_replica_health" not in figures() and figures()["superfs_replicas"] == 2
    asyncio.run(health.probe_once())
    assert figures()["superfs_replica_health"] == 0.5 and figures()["superfs_data_servers_reachable"] == 1
    servers.append(SimpleNamespace(id=3, address="c"))  # registered after the probe: unknown again
    assert "superfs_replica_health" not in figures()
    down.clear()
    asyncio.run(health.probe_once())
    assert figures()["superfs_replica_health"] == 1.0
