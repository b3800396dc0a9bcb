"""kvserve tier 1: the conductor and its simulator, with no daemon.

Hand-made traces where the best placement is known (and TTFTs can be
computed by hand from the cost model), early rejection under overload,
determinism, and requests re-routed when an instance goes down.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kvserve.conductor.costs import ClusterShape, CostModel, Objectives
from kvserve.conductor.experiment import run, run_one
from kvserve.conductor.schedulers import BASELINES, SCHEDULERS, make_scheduler
from kvserve.conductor.sim import Load, ModelBackend, Plan, Simulation
from kvserve.replay.trace import TraceRequest, load_trace

sys.path.insert(0, os.path.dirname(__file__))
from test_kvserve_t1_replay import ROOT, generated_trace  # noqa: E402

# round numbers: 1 ms per prompt token, no attention term to speak of, 1 block = 0.1 s locally,
# 0.2 s from another instance, 0.4 s from SuperFS
COST = CostModel(name="test", block_tokens=512, kv_bytes_per_token=1000, prefill_overhead_s=1e-9,
                 prefill_s_per_token=1e-3, prefill_s_per_token_pair=1e-15, decode_step_base_s=0.01,
                 decode_s_per_seq=1e-4, decode_s_per_context_token=1e-9, decode_kv_tokens=10_000_000,
                 local_bytes_per_s=512_000 / 0.1, pool_bytes_per_s=512_000 / 0.2,
                 superfs_bytes_per_s=512_000 / 0.4, to_decode_bytes_per_s=1e12)
LOOSE = Objectives(ttft_s=1000.0, tbt_s=10.0)


def req(t_s: float, ids: list[int], output: int = 2, tokens: int | None = None) -> TraceRequest:
    return TraceRequest(t_s * 1000, tokens if tokens is not None else 512 * len(ids), output, tuple(ids))


def simulate(trace: list[TraceRequest], scheduler: str, shape: ClusterShape, objectives: Objectives = LOOSE,
             cost: CostModel = COST, backend: ModelBackend | None = None) -> Simulation:
    sim = Simulation(trace, make_scheduler(scheduler), cost=cost, shape=shape, objectives=objectives,
                     backend=backend)
    sim.run()
    for r in sim.requests:  # every request is accounted for
        assert r.rejected or not math.isnan(r.finish), r
    return sim


def test_the_cost_model_charges_what_it_documents() -> None:
    c = CostModel()
    assert c.block_bytes == 327_680 * 512 == 160 * 2**20
    assert c.prefill_s(1000, 0) == pytest.approx(0.02 + 1000 * 1.12e-4 + 1000 * 1001 / 2 * 2.1e-9)
    assert c.prefill_s(1000, 5000) > c.prefill_s(1000, 0)  # attention over the cached prefix
    assert c.decode_step_s(10, 100_000) == pytest.approx(0.0125 + 10 * 1e-4 + 100_000 * 2.9e-8)
    assert c.load_s(1, 0, 0) < c.load_s(0, 1, 0) < c.load_s(0, 0, 1)
    with pytest.raises(ValueError, match="pool_bytes_per_s"):
        CostModel(pool_bytes_per_s=0)


def test_a_reused_prefix_goes_where_its_blocks_are() -> None:
    shape = ClusterShape(prefill=2, decode=1, superfs_blocks=0)
    trace = [req(0, list(range(10))),            # to instance 0 (both idle: the lower index)
             req(0, list(range(100, 110))),      # to instance 1: instance 0 is busy
             req(100, list(range(10)) + [10, 11])]  # both idle again: 0 holds the prefix, 1 would fetch it
    sim = simulate(trace, "conductor", shape)
    a, b, c = sim.requests
    assert (a.prefill, b.prefill, c.prefill) == (0, 1, 0)
    assert c.hits == {"local": 10, "computed": 2}
    assert c.ttft == pytest.approx(COST.load_s(10, 0, 0) + COST.prefill_s(1024, 5120))
    assert c.est_ttft == pytest.approx(c.ttft)  # nothing changed between routing and start


def test_a_busy_holder_loses_to_a_pool_fetch_and_the_baseline_waits() -> None:
    shape = ClusterShape(prefill=2, decode=1, superfs_blocks=0)
    trace = [req(0, list(range(10))),                     # instance 0 computes the prefix
             req(20, list(range(200, 300))),              # a 51 s prefill: to instance 0 (both idle)
             req(21, list(range(10)) + [10])]             # instance 0 holds its prefix but is busy for 50 s
    sim = simulate(trace, "conductor", shape)
    c = sim.requests[2]
    assert sim.requests[1].prefill == 0 and c.prefill == 1
    assert c.hits == {"pool": 10, "computed": 1}
    assert c.ttft == pytest.approx(COST.load_s(0, 10, 0) + COST.prefill_s(512, 5120))
    affinity = simulate(trace, "prefix-affinity", shape).requests[2]
    assert affinity.prefill == 0 and affinity.hits["local"] == 10
    assert affinity.ttft > 40 > 10 * c.ttft


def test_superfs_blocks_are_reused_when_dram_evicted_them() -> None:
    shape = ClusterShape(prefill=1, decode=1, prefill_cache_blocks=8, superfs_blocks=None)
    trace = [req(0, list(range(8))), req(10, list(range(100, 108))), req(20, list(range(8)) + [8])]
    c = simulate(trace, "conductor", shape).requests[2]
    assert c.hits == {"superfs": 8, "computed": 1}  # the second request pushed the first one's blocks down
    assert c.ttft == pytest.approx(COST.load_s(0, 0, 8) + COST.prefill_s(512, 4096))
    none = simulate(trace, "conductor", ClusterShape(prefill=1, decode=1, prefill_cache_blocks=8,
                                                      superfs_blocks=0)).requests[2]
    assert none.hits == {"computed": 9}


def test_decode_goes_to_the_least_loaded_instance() -> None:
    shape = ClusterShape(prefill=2, decode=2, superfs_blocks=0)
    trace = [req(0, [1, 2, 3], output=500), req(0, [4, 5, 6], output=500), req(0.5, [7, 8, 9], output=5)]
    sim = simulate(trace, "conductor", shape)
    assert [r.decode for r in sim.requests[:2]] == [0, 1]
    # the third: decode 0 and 1 hold one request each, of the same size: the lower index
    assert sim.requests[2].decode == 0
    assert all(r.finish > r.first_token for r in sim.requests)


def test_hot_blocks_are_replicated_to_more_instances() -> None:
    shape = ClusterShape(prefill=4, decode=1, superfs_blocks=0)
    prefix = [0, 1, 2, 3]
    trace = [req(3 * i, prefix + [1000 + i]) for i in range(20)]  # each done (2.5 s) before the next
    sim = simulate(trace, "conductor", shape)
    holders = [sorted(sim.pool.holders[b]) for b in prefix]
    assert sim.counters["replicated_blocks"] == 4  # the prefix, once, to a second instance (half of 4)
    assert all(len(h) == 2 for h in holders)
    plain = simulate(trace, "conductor-no-replication", shape)
    assert plain.counters["replicated_blocks"] == 0 and all(len(plain.pool.holders[b]) == 1 for b in prefix)


def overload(n: int = 200) -> list[TraceRequest]:
    """2 s prefills (2048 new tokens) arriving every 0.5 s: twice what two instances can do."""
    return [req(i * 0.5, [10 * i + k for k in range(4)], output=3) for i in range(n)]


def test_early_rejection_keeps_accepted_requests_within_objectives() -> None:
    shape = ClusterShape(prefill=2, decode=1, superfs_blocks=0)
    slo = Objectives(ttft_s=10.0, tbt_s=1.0)
    results = {s: run_one(overload(), s, cost=COST, shape=shape, objectives=slo) for s in SCHEDULERS}
    cond = results["conductor"]
    assert cond["rejected_by_reason"] == {"ttft": cond["rejected"]} and 80 <= cond["rejected"] <= 110
    assert cond["within_objectives"] == cond["completed"] == 200 - cond["rejected"]
    for name in BASELINES + ("conductor-no-reject",):
        r = results[name]
        assert r["rejected"] == 0 and r["completed"] == 200
        assert r["within_objectives"] * 2 < cond["within_objectives"], (name, r["within_objectives"])


def test_requests_that_could_never_meet_the_ttft_are_rejected_at_arrival() -> None:
    shape = ClusterShape(prefill=2, decode=1, superfs_blocks=0)
    trace = [req(0, list(range(40)))]  # 20 s of prefill on an idle cluster
    sim = simulate(trace, "conductor", shape, Objectives(ttft_s=10.0, tbt_s=1.0))
    r = sim.requests[0]
    assert r.rejected == "ttft" and math.isnan(r.prefill_start) and r.est_ttft == pytest.approx(20.48, rel=1e-3)
    assert simulate(trace, "least-loaded", shape, Objectives(ttft_s=10.0, tbt_s=1.0)).requests[0].ttft > 10


def test_a_full_decode_tier_rejects_early() -> None:
    cost = COST.replace(decode_kv_tokens=5000)
    shape = ClusterShape(prefill=2, decode=1, superfs_blocks=0)
    trace = [req(i * 0.01, [10 * i + k for k in range(4)], output=10_000) for i in range(4)]
    sim = simulate(trace, "conductor", shape, cost=cost)
    assert [r.rejected for r in sim.requests] == ["", "", "decode-memory", "decode-memory"]
    assert sim.requests[1].decode == 0


def test_the_tbt_objective_rejects_when_decode_steps_would_be_too_long() -> None:
    cost = COST.replace(decode_s_per_seq=0.04)  # 10 ms + 40 ms per request in the batch
    shape = ClusterShape(prefill=4, decode=1, superfs_blocks=0)
    trace = [req(i * 0.01, [10 * i], output=1000) for i in range(4)]
    sim = simulate(trace, "conductor", shape, Objectives(ttft_s=100, tbt_s=0.1), cost=cost)
    assert [r.rejected for r in sim.requests] == ["", "", "tbt", "tbt"]  # 10 + 3 x 40 ms > 100 ms
    assert all(r.tbt <= 0.1 for r in sim.requests[:2])


class DyingBackend(ModelBackend):
    """Instance 1's store stops answering at t >= 30 s (of simulated time)."""

    sim: Simulation

    def load(self, inst: int, plan: Plan) -> Load:
        touched = {inst} | {src for _, _, src in plan}
        if self.sim.now >= 30 and 1 in touched:
            return Load(0.0, 0, {1})
        return super().load(inst, plan)


def conversation(n: int) -> list[TraceRequest]:
    """Each turn extends the one before by a block, every 0.2 s: turns read blocks the other instance made."""
    return [req(i * 0.2, list(range(i + 1)), output=3) for i in range(n)]


@pytest.mark.parametrize("trace", [overload(120), conversation(300)], ids=["unrelated", "conversation"])
def test_an_instance_that_goes_down_has_its_requests_rerouted(trace: list[TraceRequest]) -> None:
    shape = ClusterShape(prefill=2, decode=1, superfs_blocks=0)
    backend = DyingBackend(COST)
    sim = backend.sim = Simulation(trace, make_scheduler("conductor"), cost=COST, shape=shape,
                                   objectives=LOOSE, backend=backend)
    sim.run()
    for r in sim.requests:  # every request completed or was refused (a lost one would be neither)
        assert r.rejected or not math.isnan(r.finish), r
    (t_down, idx), = sim.down_events
    assert idx == 1 and 30 <= t_down < 33  # at its first prefill start after 30 s
    assert sim.counters["rerouted"] > 0
    assert all(r.prefill == 0 for r in sim.requests if r.prefill_start >= t_down)
    assert any(r.reroutes and r.prefill == 0 for r in sim.requests)
    assert not any(1 in hs for hs in sim.pool.holders.values())  # its blocks are forgotten


def test_a_request_rerouted_onto_an_instance_that_is_starting_another_is_queued_not_lost() -> None:
    shape = ClusterShape(prefill=2, decode=1, superfs_blocks=0)
    trace = [req(0, [0, 1, 2, 3]),                 # to 0
             req(0, [100, 101, 102, 103]),         # to 1 (0 is busy): its blocks live on 1
             req(10, [7]),                         # to 0, briefly
             req(10.001, list(range(200, 300))),   # a 51 s prefill, to 1
             req(35, [100, 101, 102, 103, 104])]   # to 0, which reads the prefix from 1, found down
    backend = DyingBackend(COST)
    sim = backend.sim = Simulation(trace, make_scheduler("conductor"), cost=COST, shape=shape, objectives=LOOSE,
                                   backend=backend)
    sim.run()
    long, last = sim.requests[3], sim.requests[4]
    assert sim.down_events == [(35.0, 1)]
    assert last.prefill == 0 and last.hits == {"computed": 5} and last.prefill_start == 35.0
    assert long.reroutes == 1 and long.prefill == 0 and long.prefill_start == pytest.approx(last.first_token)
    assert all(not math.isnan(r.finish) for r in sim.requests)


def test_the_same_seed_gives_the_same_report(tmp_path: Path) -> None:
    trace = load_trace(str(generated_trace(tmp_path, requests=600)[0]))
    shape = ClusterShape(prefill=2, decode=1, prefill_cache_blocks=512)
    kw = dict(cost=CostModel(), shape=shape, objectives=Objectives(), speed=4.0)
    one = json.dumps(run(trace, seed=3, **kw), sort_keys=True)  # type: ignore[arg-type]
    assert one == json.dumps(run(trace, seed=3, **kw), sort_keys=True)  # type: ignore[arg-type]
    other = run(trace, seed=4, schedulers=["random"], **kw)  # type: ignore[arg-type]
    assert other["results"][0] != json.loads(one)["results"][1]  # the seed drives the random baseline
    report = json.loads(one)
    assert [r["scheduler"] for r in report["results"]] == list(SCHEDULERS)
    for r in report["results"]:
        assert r["completed"] + r["rejected"] == 600
        assert sum(r["prompt_blocks"].values()) > 0
    assert report["comparison"]["best_baseline"] in BASELINES


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "kvserve", *args], cwd="/", env=env, capture_output=True,
                          text=True, timeout=300)


def test_conduct_command(tmp_path: Path) -> None:
    p = run_cli("conduct", "--help")
    assert p.returncode == 0 and "examples:" in p.stdout and "gen-trace" in p.stdout and "--live" in p.stdout
    trace = tmp_path / "t.jsonl"
    p = run_cli("gen-trace", str(trace), "--requests", "300", "--seed", "5")
    assert p.returncode == 0 and len(trace.read_text().splitlines()) == 300
    p = run_cli("conduct", str(trace), "--prefill", "2", "--decode", "1", "--speed", "3",
                "--schedulers", "conductor,least-loaded")
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)
    assert [r["scheduler"] for r in report["results"]] == ["conductor", "least-loaded"]
    assert report["cost_model"]["name"] == "llama2-70b" and report["cluster"]["prefill"] == 2
    assert "conductor / best baseline (least-loaded)" in p.stderr
    for args, message in [(["/nonexistent.jsonl"], "No such file"),
                          ([str(trace), "--schedulers", "fifo"], "unknown scheduler fifo"),
                          ([str(trace), "--prefill", "0"], "at least one prefill"),
                          ([str(trace), "--speed", "0"], "--speed must be positive"),
                          ([str(trace), "--superfs-blocks", "lots"], "--superfs-blocks takes")]:
        p = run_cli("conduct", *args)
        assert p.returncode != 0 and message in p.stderr and "Traceback" not in p.stderr, (args, p.stderr)
