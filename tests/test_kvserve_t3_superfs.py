"""kvserve tier 3: the SuperFS tier, against a real local SuperFS cluster.

A kvserve daemon (in-process) with a small DRAM tier demotes to segment
files on the cluster through ``superfs.client`` and promotes back on hits.
The test reads and damages those files through the same client library, as
an operator or a failing disk would. The daemon's stop path (demotions
finished or dropped and counted before it says it stopped) runs as a real
process, with the cluster's data servers frozen under it.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from kvserve.client import KvClient
from kvserve.config import ServerConfig
from kvserve.errors import Status, Tier
from kvserve.launch import ServerThread
from kvserve.replay.drive import drive
from kvserve.replay.trace import load_trace, summarize
from superfs.cli.launcher import LocalCluster
from superfs.client import Client

sys.path.insert(0, os.path.dirname(__file__))
from test_kvserve_t1_replay import generated_trace, ideal  # noqa: E402

NS = "llama/bf16/nhd/tp0of1"
MiB = 1 << 20


def rand(size: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8)


def config(cluster: LocalCluster, root: str, **kw: object) -> ServerConfig:
    base: dict[str, object] = dict(dram_bytes=4 * MiB, max_object_bytes=MiB, policy="lru",
                                   superfs=str(cluster.config["dir_server"]), superfs_root=root)
    base.update(kw)
    return ServerConfig(**base)  # type: ignore[arg-type]


def drain(server: ServerThread) -> None:
    demoter = server.server.store.demoter
    assert demoter is not None
    assert server.run(demoter.drain(60.0))


@pytest.fixture
def root(request: pytest.FixtureRequest) -> str:
    return "/kvserve-" + request.node.name.replace("[", "-").replace("]", "")


def fill(c: KvClient, n: int, size: int = MiB) -> tuple[list[bytes], list[np.ndarray]]:
    keys = [os.urandom(16) for _ in range(n)]
    vals = [rand(size, i) for i in range(n)]
    for k, v in zip(keys, vals):  # one by one: each put may evict the one before
        assert c.put(k, v) is Status.OK
    return keys, vals


@pytest.mark.parametrize("path", ["shm", "grpc"])
def test_eviction_to_superfs_and_promotion_keep_the_bytes(cluster: LocalCluster, client: Client, root: str,
                                                          path: str) -> None:
    with ServerThread(config(cluster, root)) as srv, KvClient(srv.address, NS, shm=path == "shm") as c:
        keys, vals = fill(c, 12)
        drain(srv)
        tiers = c.exists(keys)
        assert tiers[:8] == [Tier.SUPERFS] * 8 and tiers[8:] == [Tier.DRAM] * 4
        sfs = srv.server.store.sfs
        assert sfs is not None and len(sfs.index) == 8
        assert len(client.listdir(f"{root}/@segments")) == sfs.segment_count >= 1
        first, = c.lookup([keys[0]])
        again, = c.lookup([keys[0]])
        assert first is not None and first.tier == Tier.SUPERFS and first.data == vals[0].tobytes()
        assert again is not None and again.tier == Tier.DRAM  # promoted back on the hit
        for k, v in zip(keys, vals):
            assert c.get(k) == v.tobytes()
        s = c.stats()
        assert s.superfs.hits >= 8 and s.dram.evictions >= 8 and s.superfs.corrupt == 0
        assert s.superfs.bytes_written >= 8 * MiB


def _patch(client: Client, path: str, at: int, data: bytes) -> None:
    raw = bytearray(client.read_bytes(path))
    raw[at:at + len(data)] = data
    client.write_bytes(path, bytes(raw))


def test_a_corrupted_object_on_superfs_is_a_miss(cluster: LocalCluster, client: Client, root: str) -> None:
    with ServerThread(config(cluster, root)) as srv, KvClient(srv.address, NS) as c:
        keys, vals = fill(c, 10)
        drain(srv)
        sfs = srv.server.store.sfs
        assert sfs is not None
        where = {k: sfs.location((NS, k)) for k in keys[:6]}
        assert all(w is not None for w in where.values())
        by_segment: dict[str, list[bytes]] = {}
        for k, w in where.items():
            by_segment.setdefault(w[0], []).append(k)  # type: ignore[index]
        # three victims, and a good object in a segment none of them is in
        flipped, truncated, foreign = keys[:3]
        good = next(k for k in keys[3:6] if where[k][0] not in {where[v][0] for v in keys[:3]})  # type: ignore[index]
        path, off, size = where[flipped]  # type: ignore[misc]
        raw = client.read_bytes(path)
        _patch(client, path, off + size // 2, bytes([raw[off + size // 2] ^ 0x40]))  # one bit, in the payload
        path, off, size = where[foreign]  # type: ignore[misc]
        gpath, goff, gsize = where[good]  # type: ignore[misc]
        _patch(client, path, off, client.read_bytes(gpath)[goff:goff + gsize])  # another object's sound bytes
        path, off, size = where[truncated]  # type: ignore[misc]
        client.truncate(path, off + size - 1000)
        for k in (flipped, truncated, foreign):
            assert c.get(k) is None
            assert c.exists([k]) == [Tier.NONE]
        assert c.get(good) == vals[keys.index(good)].tobytes()
        assert c.stats().superfs.corrupt == 3
        assert c.put(flipped, vals[0]) is Status.OK and c.get(flipped) == vals[0].tobytes()


def test_small_objects_are_demoted_in_batches_and_found_again(cluster: LocalCluster, client: Client,
                                                              root: str) -> None:
    size, n = 32 * 1024, 300  # blocks of a replay: 4 MiB of DRAM holds about 120 of them
    cfg = config(cluster, root, max_object_bytes=size)
    keys = [os.urandom(16) for _ in range(n)]
    vals = [rand(size, i) for i in range(n)]
    with ServerThread(cfg) as srv, KvClient(srv.address, NS) as c:
        for i in range(0, n, 25):
            assert c.put_batch(keys[i:i + 25], vals[i:i + 25]) == [Status.OK] * 25
        drain(srv)
        sfs = srv.server.store.sfs
        demoted = len(sfs.index)
        assert demoted > 100 and sfs.segment_count < demoted // 4  # batches, not a file per block
        client.write_bytes(f"{root}/@segments/torn", b"half a segment, no footer")
    with ServerThread(cfg) as srv, KvClient(srv.address, NS) as c:  # a restart reads the footers back
        assert len(srv.server.store.sfs.index) == demoted
        assert not client.exists(f"{root}/@segments/torn")  # a torn segment is deleted at start
        got = c.get_batch(keys)
        assert sum(g is not None for g in got) >= demoted
        assert all(g is None or g == v.tobytes() for g, v in zip(got, vals))


def test_the_superfs_tier_survives_a_daemon_restart(cluster: LocalCluster, root: str) -> None:
    cfg = config(cluster, root)
    with ServerThread(cfg) as srv, KvClient(srv.address, NS) as c:
        keys, vals = fill(c, 10)
        drain(srv)
    with ServerThread(cfg) as srv, KvClient(srv.address, NS) as c:
        assert c.exists(keys[:6]) == [Tier.SUPERFS] * 6
        assert c.get_batch(keys[:6]) == [v.tobytes() for v in vals[:6]]


def test_the_tier_can_be_configured_by_the_clusters_toml_file(cluster: LocalCluster, root: str) -> None:
    cfg = config(cluster, root, superfs=None, superfs_config=cluster.config_path)
    with ServerThread(cfg) as srv, KvClient(srv.address, NS) as c:
        keys, vals = fill(c, 6)
        drain(srv)
        assert c.exists(keys[:2]) == [Tier.SUPERFS] * 2
        assert c.get_batch(keys) == [v.tobytes() for v in vals]
    with pytest.raises(ValueError, match="SuperFS cluster file"):
        ServerThread(config(cluster, root, superfs=None, superfs_config="/nonexistent.toml")).start()


def test_a_bounded_superfs_tier_evicts_files(cluster: LocalCluster, client: Client, root: str) -> None:
    with ServerThread(config(cluster, root, superfs_bytes=5 * MiB)) as srv, KvClient(srv.address, NS) as c:
        keys, vals = fill(c, 16)
        drain(srv)
        s = c.stats()
        assert s.superfs.evictions > 0 and s.superfs.bytes <= 5 * MiB and s.superfs.objects <= 5
        sfs = srv.server.store.sfs
        assert len(client.listdir(f"{root}/@segments")) == sfs.segment_count  # emptied segments are deleted
        got = c.get_batch(keys)
        assert all(g is None or g == v.tobytes() for g, v in zip(got, vals))  # misses, never wrong bytes


def test_replay_dram_plus_superfs_hits_equal_the_ideal(cluster: LocalCluster, root: str, tmp_path: Path) -> None:
    limit, block_bytes = 300, 2048
    trace, _ = generated_trace(tmp_path, requests=limit)
    requests = load_trace(str(trace), limit=limit)
    hit_blocks, _, hit_tokens, _ = ideal(trace, limit=limit)
    dram = int(0.1 * summarize(requests).distinct_blocks) * 4096  # 10% of the distinct blocks (one page each)
    ns = "replay/bf16/default/tp0of1"
    cfg = config(cluster, root, dram_bytes=dram, max_object_bytes=block_bytes, policy="s3fifo")
    with ServerThread(cfg) as srv, KvClient(srv.address, ns) as c:
        r = drive(requests, c, namespace=ns, block_bytes=block_bytes, stats=lambda: [c.stats()])
    assert r.wrong_data == 0
    assert r.hits["dram"].blocks > 0 and r.hits["superfs"].blocks > 0
    assert r.hits["dram"].blocks + r.hits["superfs"].blocks == hit_blocks
    assert r.hits["dram"].tokens + r.hits["superfs"].tokens == hit_tokens
    assert r.evictions["dram"] > 0
