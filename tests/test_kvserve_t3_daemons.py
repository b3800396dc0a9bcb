"""kvserve tier 3: real daemon processes started from the CLI (``python -m kvserve serve``).

Each daemon writes a ready file once bound (the tests wait on it, never on a
guessed sleep) and is stopped with SIGTERM, or killed with SIGKILL to play a
crash. Several daemons form one store through KvCluster; killing one must
only turn its keys into misses.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from kvserve.client import KvClient
from kvserve.cluster import KvCluster
from kvserve.errors import Status, StoreUnavailable, Tier
from kvserve.launch import DaemonProcess

sys.path.insert(0, os.path.dirname(__file__))
from test_kvserve_t1_replay import ROOT, generated_trace, ideal  # noqa: E402

NS = "llama/bf16/nhd/tp0of1"
MiB = 1 << 20


def value(key: bytes, size: int = 64 * 1024) -> np.ndarray:
    """The bytes stored under a key in these tests: derived from it, so any mix-up shows."""
    return np.random.default_rng(int.from_bytes(key[:8], "little")).integers(0, 256, size, dtype=np.uint8)


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[list[DaemonProcess]]:
    started: list[DaemonProcess] = []
    for i in range(3):
        started.append(DaemonProcess(str(tmp_path), f"kv{i}", ["--dram", "64MiB", "--log-level", "WARNING"]).start())
    yield started
    for d in started:
        d.stop()


def test_serve_lifecycle(tmp_path: Path) -> None:
    d = DaemonProcess(str(tmp_path), "kv", ["--dram", "32MiB", "--policy", "lru", "--metrics-port", "0"]).start()
    info = json.loads(Path(d.ready_file).read_text())
    assert info["address"] == d.address and info["pid"] == d.proc.pid  # type: ignore[union-attr]
    with KvClient(d.address, NS) as c:
        k = os.urandom(16)
        assert c.put(k, value(k)) is Status.OK and c.get(k) == value(k).tobytes()
        assert c.stats().policy == "lru"
    assert d.stop(signal.SIGTERM) == 0
    assert not os.path.exists(d.ready_file)
    lines = d.log().splitlines()  # one line at start, one at stop, nothing else at INFO
    assert len(lines) == 2 and "serving on" in lines[0] and "stopped" in lines[1], d.log()
    assert "policy lru" in lines[0] and "metrics http://" in lines[0]


def test_serve_refuses_bad_settings(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for args in (["--dram", "lots"], ["--dram", "1MiB", "--max-object", "2MiB"], ["--namespace", "bad name"]):
        p = subprocess.run([sys.executable, "-m", "kvserve", "serve", *args], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=60)
        assert p.returncode != 0 and "kvserve:" in p.stderr and "Traceback" not in p.stderr, p.stderr
    p = subprocess.run([sys.executable, "-m", "kvserve", "serve", "--help"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "--superfs" in p.stdout and "examples:" in p.stdout


def test_several_daemons_form_one_store(daemons: list[DaemonProcess]) -> None:
    with KvCluster([d.address for d in daemons], NS) as store:
        keys = [os.urandom(16) for _ in range(60)]
        assert store.put_batch(keys, [value(k) for k in keys]) == [Status.OK] * 60
        assert store.get_batch(keys) == [value(k).tobytes() for k in keys]
        owners = {store.owner(k) for k in keys}
        assert owners == {0, 1, 2}
        for i, d in enumerate(daemons):  # each key lives on its owner only
            with KvClient(d.address, NS) as one:
                tiers = one.exists(keys)
                assert [t is Tier.DRAM for t in tiers] == [store.owner(k) == i for k in keys]
        assert len(store.get_prefix(keys[:30] + [os.urandom(16)] + keys[30:])) == 30
    # a second client computes the same owners, with no coordination
    with KvCluster([d.address for d in daemons], NS) as other:
        assert other.get_batch(keys) == [value(k).tobytes() for k in keys]


@pytest.mark.parametrize("shm", [True, False])
def test_a_killed_daemon_only_loses_its_keys(daemons: list[DaemonProcess], shm: bool) -> None:
    with KvCluster([d.address for d in daemons], NS, shm=shm, retry_after_s=0.2) as store:
        keys = [os.urandom(16) for _ in range(90)]
        assert store.put_batch(keys, [value(k) for k in keys]) == [Status.OK] * 90
        daemons[1].kill()  # mid-run, as a crash
        lost = {k for k in keys if store.owner(k) == 1}
        assert 0 < len(lost) < 90
        for _ in range(3):  # the clients keep working, round after round
            got = store.get_batch(keys)
            for k, g in zip(keys, got):
                if k in lost:
                    assert g is None
                else:
                    assert g == value(k).tobytes()
            fresh = [os.urandom(16) for _ in range(30)]
            statuses = store.put_batch(fresh, [value(k) for k in fresh])
            for k, st in zip(fresh, statuses):
                assert st is (Status.UNAVAILABLE if store.owner(k) == 1 else Status.OK)
        prefix = store.lookup(keys, prefix=True)
        assert len(prefix) == next(i for i, k in enumerate(keys) if k in lost)
        assert all(h is not None and h.data == value(k).tobytes() for h, k in zip(prefix, keys))
        with pytest.raises(StoreUnavailable):
            store.clients[1].get(keys[0])
        # the daemon comes back, empty, on the same port: its old keys miss, new ones are served
        daemons[1].args += ["--listen", daemons[1].address]
        daemons[1].start()
        wait_until_reachable(store.clients[1])
        fresh = [k for k in (os.urandom(16) for _ in range(200)) if store.owner(k) == 1][:5]
        while not store.is_up(1):
            store.get_batch([fresh[0]])
        assert store.put_batch(fresh, [value(k) for k in fresh]) == [Status.OK] * 5
        assert store.get_batch(fresh) == [value(k).tobytes() for k in fresh]
        assert all(g is None for k, g in zip(keys, store.get_batch(keys)) if k in lost)


def wait_until_reachable(client: KvClient) -> None:
    """A client's channel retries a restarted daemon with a backoff (up to 1 s): poll it."""
    deadline = time.monotonic() + 30
    while True:
        try:
            client.stats()
            return
        except StoreUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_a_restarted_daemon_is_not_read_through_the_old_arena(tmp_path: Path) -> None:
    d = DaemonProcess(str(tmp_path), "kv", ["--dram", "16MiB"]).start()
    try:
        with KvClient(d.address, NS, shm=True) as c:
            k = os.urandom(16)
            c.put(k, value(k))
            assert c.get(k) == value(k).tobytes()
            old = c._arena
            d.stop()
            d.args += ["--listen", d.address]
            d.start()
            wait_until_reachable(c)
            k2 = os.urandom(16)
            assert c.get(k) is None
            assert c.put(k2, value(k2)) is Status.OK and c.get(k2) == value(k2).tobytes()
            assert c._arena is not None and c._arena is not old
    finally:
        d.stop()


def test_replay_against_two_daemons_reports_the_ideal(tmp_path: Path) -> None:
    ds = [DaemonProcess(str(tmp_path), f"kv{i}", ["--dram", "256MiB", "--log-level", "WARNING"]).start()
          for i in range(2)]
    try:
        trace, _ = generated_trace(tmp_path, requests=400)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        p = subprocess.run([sys.executable, "-m", "kvserve", "replay", str(trace), "--limit", "400",
                            "--store", ",".join(d.address for d in ds), "--progress-seconds", "0"],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        report = json.loads(p.stdout)
        hit_blocks, blocks, hit_tokens, _ = ideal(trace, limit=400)
        assert report["mode"] == "drive" and report["blocks"] == blocks
        assert report["hits"]["dram"] == {"blocks": hit_blocks, "tokens": hit_tokens}
        assert report["wrong_data"] == 0 and report["evictions"]["dram"] == 0
        assert "replay: 400/400 requests" in p.stderr
    finally:
        for d in ds:
            d.stop()
