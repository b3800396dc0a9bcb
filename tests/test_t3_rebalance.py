"""Tier 3: growing and shrinking the data servers of a running cluster (issue 21, items 3-4).

Real daemons: a third data server is added and existing chunks rebalanced
onto it; one of three is drained while a client reads and writes; one is
killed for good and marked dead, and the dir server re-replicates its chunks
from the survivors. After each: every file reads back identical, every
chunk has R copies where its file's layout places it, fsck is clean.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
from typing import Any

from t5_support import address, assert_clean, blob, wait_until, with_admin

from superfs import routing
from superfs.cli.launcher import LocalCluster
from superfs.client import Client, connect
from superfs.client.admin import AdminClient
from superfs.procs import python_module
from superfs.rebalance import plan

CHUNK = 64 * 1024


def admin_cli(cluster: LocalCluster, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    proc = subprocess.run([*python_module("superfs.cli.main"), "admin", *args, "--address", address(cluster)],
                          capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})})
    return proc.returncode, proc.stdout + proc.stderr


def fill(c: Client, d: str, n: int, seed: str) -> dict[str, str]:
    """``n`` files of 1 to 9 chunks; path -> sha256."""
    c.mkdir(d)
    out = {}
    for i in range(n):
        data = blob(f"{seed}{i}", CHUNK * (1 + i % 9) - 1000 * (i % 3))
        p = f"{d}/f{i}"
        c.write_bytes(p, data)
        out[p] = hashlib.sha256(data).hexdigest()
    return out


def assert_identical(c: Client, files: dict[str, str]) -> None:
    for p, digest in files.items():
        assert hashlib.sha256(c.read_bytes(p)).hexdigest() == digest, p


def placement_report(cluster: LocalCluster) -> tuple[dict[int, int], list[str]]:
    """Chunks per readable server, and every chunk of a live file missing where its layout places it."""
    async def fn(admin: AdminClient) -> tuple[dict[int, int], list[str]]:
        cmap = await admin.cluster_map()
        held: dict[int, set[tuple[int, int]]] = {}
        for d in admin.data_servers():
            if plan.states(cmap)[d.id] in (plan.ACTIVE, plan.DRAINING):
                held[d.id] = {(c.key.ino, c.key.index) for c in await admin.list_chunks(d.id)}
        missing = []
        for s in admin.shards():
            for f in await admin.scan_inodes(s.id):
                for idx in plan.chunk_indices(f) if not f.inline else []:
                    for sid in routing.chunk_replicas(f.attr.ino, idx, list(f.layout), cmap.replicas):
                        if (f.attr.ino, idx) not in held.get(sid, set()):
                            missing.append(f"{f.attr.ino}:{idx} on {sid} ({plan.states(cmap).get(sid)})")
        return {s: len(v) for s, v in held.items()}, missing
    return with_admin(cluster, fn)


def test_a_new_data_server_takes_new_chunks_and_rebalance_spreads_the_old_ones(cluster_factory: Any) -> None:
    cluster = cluster_factory(shards=2, data_servers=2, replicas=2)
    with connect(address(cluster)) as c:
        files = fill(c, "/before", 40, "a")
    name = cluster.add_data_server()
    assert name == "data-2"
    with connect(address(cluster)) as c:
        wait_until(lambda: 2 in c.layout.data_servers, "the new data server in the map")
        c.write_bytes("/new", blob("new", 3 * CHUNK))
        assert 2 in list(c.node_of("/new").file.layout)  # new chunks use it at once
        files["/new"] = hashlib.sha256(blob("new", 3 * CHUNK)).hexdigest()
    counts, missing = placement_report(cluster)
    assert not missing and plan.within_tolerance(counts, 0.1) is False, counts
    rc, out = admin_cli(cluster, "rebalance", "--tolerance", "0.1", "--progress-every", "20")
    assert rc == 0, out
    assert "chunks per server" in out
    assert sum(1 for line in out.splitlines() if line.startswith("rebalance: ") and "MiB moved" in line) >= 3, out
    counts, missing = placement_report(cluster)
    assert not missing, missing
    assert plan.within_tolerance(counts, 0.1), counts
    with connect(address(cluster)) as c:
        assert_identical(c, files)
    assert_clean(cluster)


def test_admin_commands_refuse_what_cannot_be_done_with_a_message(cluster_factory: Any, tmp_path: Any) -> None:
    proc = subprocess.run([*python_module("superfs.cli.main"), "admin", "add-data-server", "--state-dir",
                           str(tmp_path / "none")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "no local cluster" in proc.stderr and "Traceback" not in proc.stderr
    cluster = cluster_factory(shards=1, data_servers=2, replicas=2)
    rc, out = admin_cli(cluster, "drain", "7")
    assert rc == 2 and "no data server 7 in the cluster map" in out and "Traceback" not in out, out
    rc, out = admin_cli(cluster, "drain", "1")  # R=2 on one server left: refused, nothing changed
    assert rc == 1 and "add a data server first" in out and "Traceback" not in out, out
    rc, out = admin_cli(cluster, "replication")
    assert rc == 0 and "data server 1: active" in out, out
    rc, out = admin_cli(cluster, "rebalance", "--tolerance", "2")
    assert rc == 2 and "--tolerance must be between 0 and 1" in out, out
    rc, out = admin_cli(cluster, "rebalance", "--max-mib-per-s", "-1")
    assert rc == 1 and "must not be negative" in out and "Traceback" not in out, out


def test_a_reader_holding_the_old_layout_reads_after_a_move_that_left_no_old_replica(cluster_factory: Any) -> None:
    cluster = cluster_factory(shards=1, data_servers=2, replicas=2)
    data = blob("stale", 12 * CHUNK)
    with connect(address(cluster)) as c:
        c.write_bytes("/f", data)
        with c.open("/f", "rb", buffering=0) as f:
            assert f.read(10) == data[:10]  # the handle holds layout [0, 1]
            cluster.add_data_server()
            cluster.add_data_server()
            rc, out = admin_cli(cluster, "rebalance", "--tolerance", "0.5")  # [0, 1] -> [0, 1, 2, 3]
            assert rc == 0, out
            counts, missing = placement_report(cluster)
            assert not missing, missing
            f.seek(0)
            assert f.read() == data  # chunks now on {2, 3} only are found through the new layout


def test_mark_active_undoes_a_drain_state(cluster_factory: Any) -> None:
    cluster = cluster_factory(shards=1, data_servers=3, replicas=2)

    async def set_state(admin: AdminClient) -> None:
        await admin.cluster_map()
        await admin.set_data_server_state(2, plan.DRAINING)
    with_admin(cluster, set_state)
    with connect(address(cluster)) as c:  # a fresh client: its map says 2 is draining
        c.write_bytes("/f", blob("f", 3 * CHUNK))
        assert 2 not in list(c.node_of("/f").file.layout)
    rc, out = admin_cli(cluster, "mark-active", "2")
    assert rc == 0 and "data server 2 is active" in out, out
    with connect(address(cluster)) as c:
        c.write_bytes("/g", blob("g", 3 * CHUNK))
        assert 2 in list(c.node_of("/g").file.layout)
