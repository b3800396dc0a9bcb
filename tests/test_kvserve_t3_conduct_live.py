"""kvserve tier 3: the conductor's live mode against real ``kvserve serve`` daemons.

Two daemon processes are the DRAM of two prefill instances; the simulation's
block loads, stores and replicas are real gets and puts of real blocks. One
daemon is killed (SIGKILL) in the middle of the replay: its instance's
requests must go to the other one, and no block may ever be used with the
wrong bytes (one is planted to prove the check).
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from kvserve.client import KvClient
from kvserve.conductor.costs import MODELS, ClusterShape, Objectives
from kvserve.conductor.live import LiveBackend, holds_block
from kvserve.conductor.schedulers import make_scheduler
from kvserve.conductor.sim import Simulation
from kvserve.launch import DaemonProcess
from kvserve.replay.drive import block_bytes_of
from kvserve.replay.trace import load_trace

sys.path.insert(0, os.path.dirname(__file__))
from test_kvserve_t1_replay import ROOT, generated_trace  # noqa: E402

COST = MODELS["llama3.2-1b"].replace(kv_bytes_per_token=128,  # 64 KiB blocks: quick on a test machine
                                      decode_kv_tokens=10**9)  # decode never refuses: only prefill is tested
NS = "conduct-test/bf16/default/tp0of1"


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[list[DaemonProcess]]:
    started = [DaemonProcess(str(tmp_path), f"kv{i}", ["--dram", "32MiB", "--log-level", "WARNING"]).start()
               for i in range(2)]
    yield started
    for d in started:
        d.stop()


def test_live_mode_survives_a_killed_daemon_and_never_uses_wrong_bytes(daemons: list[DaemonProcess],
                                                                       tmp_path: Path) -> None:
    path, _ = generated_trace(tmp_path, requests=240)
    trace = load_trace(str(path))
    backend = LiveBackend([d.address for d in daemons], COST, NS)
    planted = trace[0].hash_ids[0]  # the first request's first block, computed on instance 0
    with KvClient(daemons[0].address, NS) as c:  # the bytes of another block under its key
        assert c.put(backend.key(planted), block_bytes_of(planted + 1, COST.block_bytes)).stored
    kill_at = 120

    def kill(sim: Simulation, n: int) -> None:
        if n == kill_at:
            daemons[1].kill()

    shape = ClusterShape(prefill=2, decode=1, prefill_cache_blocks=backend.cache_blocks(), superfs_blocks=0,
                         cache_policy=backend.policy())
    sim = Simulation(trace, make_scheduler("conductor"), cost=COST, shape=shape,
                     objectives=Objectives(ttft_s=1e6, tbt_s=10.0), speed=20.0, backend=backend, on_arrival=kill)
    try:
        sim.run()
        summary = backend.summary()
    finally:
        backend.close()

    (t_down, idx), = sim.down_events
    assert idx == 1 and t_down >= sim.requests[kill_at - 1].arrival
    assert all(not r.rejected and not math.isnan(r.finish) for r in sim.requests)
    assert all(r.prefill == 0 for r in sim.requests if r.prefill_start > t_down)
    assert {r.prefill for r in sim.requests if r.prefill_start < t_down} == {0, 1}
    assert sim.counters["rerouted"] > 0
    hits = {t: sum(r.hits[t] for r in sim.requests) for t in ("local", "pool", "computed")}
    assert hits["local"] > 0 and hits["pool"] > 0 and hits["computed"] > 0
    # the planted block was read, refused, recomputed, and its right bytes stored in its place
    assert summary["wrong_data"] >= 1 and summary["blocks_read"] > 100
    assert summary["daemons_down"] == [daemons[1].address]
    with KvClient(daemons[0].address, NS) as c:
        got = c.get(backend.key(planted))
        assert got is None or holds_block(planted, np.frombuffer(got, dtype=np.uint8))
        assert c.stats().dram.corrupt == 0


def test_conduct_live_command_reports_what_was_measured(daemons: list[DaemonProcess], tmp_path: Path) -> None:
    path, _ = generated_trace(tmp_path, requests=120)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "-m", "kvserve", "conduct", str(path), "--live",
                        ",".join(d.address for d in daemons), "--model", "llama3.2-1b", "--kv-bytes-per-token", "128",
                        "--decode", "1", "--speed", "10"],
                       cwd="/", env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)
    assert report["mode"] == "live" and report["cluster"]["prefill"] == 2
    assert report["live"]["block_bytes"] == 65536 and report["live"]["wrong_data"] == 0
    assert report["live"]["blocks_read"] > 0 and report["live"]["blocks_put"] > 0
    assert any("block loads" in m for m in report["measured"]) and "prefill compute" in report["modelled"]
    r, = report["results"]
    assert r["scheduler"] == "conductor" and r["completed"] + r["rejected"] == 120
    # blocks the daemons cannot hold (the default model's are 160 MiB): a clear message, no traceback
    p = subprocess.run([sys.executable, "-m", "kvserve", "conduct", str(path), "--live",
                        ",".join(d.address for d in daemons)], cwd="/", env=env, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode != 0 and "exceed the largest object" in p.stderr and "Traceback" not in p.stderr, p.stderr
    # a daemon that is not there: a clear message, no traceback
    p = subprocess.run([sys.executable, "-m", "kvserve", "conduct", str(path), "--live", "127.0.0.1:1"],
                       cwd="/", env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode != 0 and "kvserve conduct:" in p.stderr and "Traceback" not in p.stderr, p.stderr
