"""Tier 3: draining a data server under load, and losing one for good (issue 21, item 4).

Real daemons, three data servers at R=2. A drain runs while a client reads
every file and writes new ones and overwrites old ones in place, in a loop:
no read or write fails, every file reads back as last written, every chunk
ends with R copies where its layout places it, fsck is clean and the drained
server can be stopped. A server killed with -9 and marked dead (or silent
for longer than ``cluster.data_dead_after_s``) is re-replicated by the dir
server from the survivors.
"""
from __future__ import annotations

import hashlib
import subprocess
import threading
from typing import Any

from t5_support import address, assert_clean, blob, wait_until, with_admin
from test_t3_rebalance import CHUNK, admin_cli, assert_identical, fill, placement_report

from superfs.cli.launcher import LocalCluster
from superfs.client import connect
from superfs.client.admin import AdminClient
from superfs.config_file import ClusterFile
from superfs.procs import python_module
from superfs.rebalance import plan


def state_of(cluster: LocalCluster, server: int) -> str:
    async def fn(admin: AdminClient) -> str:
        return plan.states(await admin.cluster_map())[server]
    return str(with_admin(cluster, fn))


class Load(threading.Thread):
    """Reads every file and checks it; writes new files; overwrites a chunk of old ones in place."""

    def __init__(self, cluster: LocalCluster, files: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.cluster, self.files = cluster, files
        self.stop = threading.Event()
        self.errors: list[str] = []
        self.ops = 0

    def run(self) -> None:
        n = 0
        with connect(address(self.cluster)) as c:
            with c.open("/load/inplace", "wb") as f:
                f.write(blob("inplace", 4 * CHUNK))
            handle = c.open("/load/inplace", "r+b", buffering=0)  # keeps its layout across the drain
            content = bytearray(blob("inplace", 4 * CHUNK))
            while not self.stop.is_set():
                n += 1
                for p, digest in list(self.files.items()):
                    try:
                        if hashlib.sha256(c.read_bytes(p)).hexdigest() != digest:
                            self.errors.append(f"{p}: read back different bytes")
                    except OSError as e:
                        self.errors.append(f"read {p}: {e}")
                    self.ops += 1
                try:
                    data = blob(f"w{n}", CHUNK * (1 + n % 4))
                    c.write_bytes(f"/load/w{n}", data)
                    self.files[f"/load/w{n}"] = hashlib.sha256(data).hexdigest()
                    piece = blob(f"p{n}", 1000)
                    off = (n % 4) * CHUNK + 17
                    handle.seek(off)
                    handle.write(piece)
                    content[off:off + len(piece)] = piece
                    self.ops += 2
                except OSError as e:
                    self.errors.append(f"write {n}: {e}")
            handle.close()
            self.files["/load/inplace"] = hashlib.sha256(bytes(content)).hexdigest()


def test_drain_one_of_three_under_load_keeps_every_byte_and_r_copies(cluster_factory: Any) -> None:
    cluster = cluster_factory(shards=2, data_servers=3, replicas=2)
    with connect(address(cluster)) as c:
        files = fill(c, "/data", 30, "d")
        c.mkdir("/load")
    load = Load(cluster, files)
    load.start()
    wait_until(lambda: load.ops > 40 or load.errors, "the load to get going")
    rc, out = admin_cli(cluster, "drain", "1", "--progress-every", "20")
    load.stop.set()
    load.join(timeout=120)
    assert not load.is_alive()
    assert rc == 0, out
    assert "drain of data server 1" in out and "removed" in out
    assert load.errors == [], load.errors[:10]
    assert state_of(cluster, 1) == plan.REMOVED
    counts, missing = placement_report(cluster)
    assert not missing, missing[:10]
    cluster.stop_daemon("data-1")  # nothing is read from it any more
    with connect(address(cluster)) as c:
        assert_identical(c, load.files)
        c.write_bytes("/after", blob("after", 3 * CHUNK))
        assert 1 not in list(c.node_of("/after").file.layout)
    assert_clean(cluster)


def test_a_dead_server_is_re_replicated_from_the_survivors(cluster_factory: Any) -> None:
    cluster = cluster_factory(shards=2, data_servers=3, replicas=2)
    with connect(address(cluster)) as c:
        files = fill(c, "/data", 30, "x")
    cluster.kill("data-2")  # gone for good
    rc, out = admin_cli(cluster, "mark-dead", "2", "--wait", "300")
    assert rc == 0, out
    assert state_of(cluster, 2) == plan.REMOVED
    counts, missing = placement_report(cluster)
    assert not missing, missing[:10]
    assert set(counts) == {0, 1}
    with connect(address(cluster)) as c:
        assert_identical(c, files)
    rc, out = admin_cli(cluster, "replication")
    assert rc == 0 and "under-replicated chunks: 0" in out, out
    status = subprocess.run([*python_module("superfs.cli.main"), "status", "--state-dir", cluster.state_dir],
                            capture_output=True, text=True, timeout=120)
    assert "2 removed (0 files left to move)" in status.stdout and "under-replicated chunks 0" in status.stdout, \
        status.stdout + status.stderr
    assert_clean(cluster)


def test_status_counts_the_chunks_left_on_a_dead_server(cluster_factory: Any) -> None:
    cluster = cluster_factory(shards=1, data_servers=2, replicas=2)
    with connect(address(cluster)) as c:
        fill(c, "/data", 4, "u")
    cluster.kill("data-1")
    rc, out = admin_cli(cluster, "mark-dead", "1", "--wait", "300")  # one survivor for R=2: no copy to make
    assert rc == 0, out
    rc, out = admin_cli(cluster, "replication")
    assert rc == 1 and "data server 1: removed" in out, out
    n = int(out.rsplit("under-replicated chunks: ", 1)[1].split()[0])
    assert n == sum(1 + i % 9 for i in range(4)), out  # every chunk has one copy of two
    cluster.add_data_server()  # a new server: rebalance restores R
    rc, out = admin_cli(cluster, "rebalance")
    assert rc == 0, out
    rc, out = admin_cli(cluster, "replication")
    assert rc == 0 and "under-replicated chunks: 0" in out, out


def test_a_server_silent_longer_than_the_setting_is_declared_dead(tmp_path: Any) -> None:
    cluster = LocalCluster(str(tmp_path / "c"))
    cluster.init(shards=1, data_servers=3, replicas=2, inline_threshold=4096, chunk_size=CHUNK,
                 durability="durable", base=ClusterFile(data_dead_after_s=3.0))
    cluster.start()
    try:
        with connect(address(cluster)) as c:
            files = fill(c, "/data", 12, "s")
        cluster.kill("data-0")
        wait_until(lambda: state_of(cluster, 0) == plan.REMOVED, "data server 0 declared dead and emptied",
                   timeout_s=300, interval_s=0.5)
        counts, missing = placement_report(cluster)
        assert not missing, missing[:10]
        with connect(address(cluster)) as c:
            assert_identical(c, files)
        assert_clean(cluster)
    finally:
        cluster.stop()


def test_the_dir_server_exports_re_replication_in_its_metrics(tmp_path: Any) -> None:
    from superfs.cli.status import scrape, total
    cluster = LocalCluster(str(tmp_path / "c"))
    cluster.init(shards=1, data_servers=3, replicas=2, inline_threshold=4096, chunk_size=CHUNK,
                 durability="durable", metrics=True)
    cluster.start()
    try:
        with connect(address(cluster)) as c:
            fill(c, "/data", 6, "m")
        url = cluster.metrics_url("dir")
        assert url is not None
        assert total(scrape(url), "superfs_data_servers_dead") == 0
        cluster.kill("data-1")
        rc, out = admin_cli(cluster, "mark-dead", "1", "--wait", "300")
        assert rc == 0, out
        s = scrape(url)
        assert total(s, "superfs_data_servers_removed") == 1 and total(s, "superfs_data_servers_dead") == 0
        assert total(s, "superfs_rereplicated_chunks") > 0 and total(s, "superfs_rereplicated_bytes") > 0
        assert total(s, "superfs_under_replicated_chunks") == 0
    finally:
        cluster.stop()
