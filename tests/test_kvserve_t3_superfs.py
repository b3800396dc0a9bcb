"""kvserve tier 3: the SuperFS tier, against a real local SuperFS cluster.

A kvserve daemon (in-process) with a small DRAM tier demotes to files on the
cluster through ``superfs.client`` and promotes back on hits. The test
reads and damages those files through the same client library, as an
operator or a failing disk would.
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
        assert len(client.listdir(f"{root}/{NS.replace('/', '%2F')}")) == 8
        first, = c.lookup([keys[0]])
        again, = c.lookup([keys[0]])
        assert first is not None and first.tier == Tier.SUPERFS and first.data == vals[0].tobytes()
        assert again is not None and again.tier == Tier.DRAM  # promoted back on the hit
        for k, v in zip(keys, vals):
            assert c.get(k) == v.tobytes()
        s = c.stats()
        assert s.superfs.hits >= 8 and s.dram.evictions >= 8 and s.superfs.corrupt == 0
        assert s.superfs.bytes_written >= 8 * MiB


def test_a_corrupted_object_on_superfs_is_a_miss(cluster: LocalCluster, client: Client, root: str) -> None:
    with ServerThread(config(cluster, root)) as srv, KvClient(srv.address, NS) as c:
        keys, vals = fill(c, 10)
        drain(srv)
        sfs = srv.server.store.sfs
        assert sfs is not None
        flipped, truncated, foreign, good = keys[:4]
        path = sfs.path_of((NS, flipped))
        raw = bytearray(client.read_bytes(path))
        raw[len(raw) // 2] ^= 0x40  # one bit, in the payload
        client.write_bytes(path, bytes(raw))
        path = sfs.path_of((NS, truncated))
        client.write_bytes(path, client.read_bytes(path)[:-1000])
        # a sound file of another object, under this object's name
        client.write_bytes(sfs.path_of((NS, foreign)), client.read_bytes(sfs.path_of((NS, good))))
        for k in (flipped, truncated, foreign):
            assert c.get(k) is None
            assert c.exists([k]) == [Tier.NONE]
        assert c.get(good) == vals[3].tobytes()
        assert c.stats().superfs.corrupt == 3
        assert not client.exists(sfs.path_of((NS, flipped)))  # the bad file is gone
        assert c.put(flipped, vals[0]) is Status.OK and c.get(flipped) == vals[0].tobytes()


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
        assert s.superfs.evictions > 0 and s.superfs.bytes <= 5 * MiB
        assert len(client.listdir(f"{root}/{NS.replace('/', '%2F')}")) == s.superfs.objects <= 4
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
