"""kvserve tier 1: trace replay by simulation, and the ``replay`` command.

The trace is generated here (kvserve.replay.synth, a fixed seed), so the
tests need nothing outside the repository. Its ideal prefix hit ratio is
computed from the raw JSON, independently of kvserve: a block is a hit when
every block of its request up to it was seen in an earlier request; the
generator's own count of shared blocks must agree. An unbounded cache must
report exactly that; a bounded DRAM tier over an unbounded SuperFS tier
must split exactly that between the two tiers.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kvserve.replay.sim import SimConfig, simulate
from kvserve.replay.synth import SynthConfig, write_trace
from kvserve.replay.trace import TraceError, load_trace, summarize

ROOT = Path(__file__).resolve().parent.parent
BLOCK = 512
BLOCK_BYTES = 4096
TRACE_REQUESTS = 2000


def generated_trace(directory: Path, requests: int = TRACE_REQUESTS, seed: int = 7) -> tuple[Path, int]:
    """A Mooncake-format trace written into ``directory``; (its path, its blocks shared by construction)."""
    path = directory / f"trace-{requests}-{seed}.jsonl"
    shared = write_trace(str(path), SynthConfig(requests=requests, seed=seed))
    return path, shared


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generated_trace(tmp_path_factory.mktemp("trace"))[0]


def ideal(path: Path, limit: int | None = None) -> tuple[int, int, int, int]:
    """(hit blocks, blocks, hit tokens, tokens) of an unbounded prefix cache, from first principles."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()][:limit]
    rows.sort(key=lambda r: r["timestamp"])
    seen: set[int] = set()
    hit_blocks = blocks = hit_tokens = tokens = 0
    for r in rows:
        ids = r["hash_ids"]
        blocks += len(ids)
        tokens += r["input_length"]
        for i, h in enumerate(ids):
            if h not in seen:
                break
            hit_blocks += 1
            hit_tokens += max(0, min(BLOCK, r["input_length"] - i * BLOCK))
        seen.update(ids)
    return hit_blocks, blocks, hit_tokens, tokens


def test_unbounded_cache_reports_the_ideal_hit_ratio(tmp_path: Path) -> None:
    path, shared = generated_trace(tmp_path)
    hit_blocks, blocks, hit_tokens, tokens = ideal(path)
    assert hit_blocks == shared and 0.5 < hit_blocks / blocks < 0.8  # the generator's ground truth
    r = simulate(load_trace(str(path)), SimConfig(block_bytes=BLOCK_BYTES)).to_dict()
    assert r["blocks"] == blocks and r["input_tokens"] == tokens
    assert r["hits"]["dram"] == {"blocks": hit_blocks, "tokens": hit_tokens}
    assert r["hits"]["superfs"]["blocks"] == 0
    assert r["hit_ratio"]["blocks"]["total"] == round(hit_blocks / blocks, 6)
    assert r["prefill_tokens_saved"] == hit_tokens
    assert r["evictions"] == {"dram": 0, "superfs": 0}


@pytest.mark.parametrize("policy", ["lru", "s3fifo"])
def test_bounded_dram_over_unbounded_superfs_splits_the_ideal(trace: Path, policy: str) -> None:
    hit_blocks, blocks, hit_tokens, _ = ideal(trace)
    requests = load_trace(str(trace))
    dram = int(0.1 * summarize(requests).distinct_blocks) * BLOCK_BYTES
    r = simulate(requests, SimConfig(block_bytes=BLOCK_BYTES, dram_bytes=dram, superfs=True,
                                     policy=policy)).to_dict()
    dram_hits, sfs_hits = r["hits"]["dram"], r["hits"]["superfs"]
    assert dram_hits["blocks"] + sfs_hits["blocks"] == hit_blocks
    assert dram_hits["tokens"] + sfs_hits["tokens"] == hit_tokens
    assert dram_hits["blocks"] > 0 and sfs_hits["blocks"] > 0
    assert r["evictions"]["dram"] > 0 and r["evictions"]["superfs"] == 0
    assert r["bytes_moved"]["superfs_read"] == sfs_hits["blocks"] * BLOCK_BYTES
    # without the SuperFS tier, the same DRAM only keeps its own hits
    alone = simulate(requests, SimConfig(block_bytes=BLOCK_BYTES, dram_bytes=dram, policy=policy)).to_dict()
    assert alone["hits"]["superfs"]["blocks"] == 0
    assert alone["hits"]["dram"]["blocks"] < hit_blocks


def test_bounded_superfs_loses_hits_and_counts_evictions(trace: Path) -> None:
    hit_blocks, *_ = ideal(trace, limit=1500)
    requests = load_trace(str(trace), limit=1500)
    r = simulate(requests, SimConfig(block_bytes=BLOCK_BYTES, dram_bytes=500 * BLOCK_BYTES, superfs=True,
                                     superfs_bytes=3000 * BLOCK_BYTES, policy="lru")).to_dict()
    total = r["hits"]["dram"]["blocks"] + r["hits"]["superfs"]["blocks"]
    assert 0 < total < hit_blocks
    assert r["evictions"]["superfs"] > 0


def test_trace_errors_name_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"timestamp": 0, "input_length": 10, "output_length": 1, "hash_ids": [1]}\n'
                   '{"timestamp": 1, "input_length": 10}\n')
    with pytest.raises(TraceError, match="bad.jsonl:2"):
        load_trace(str(bad))
    bad.write_text("not json\n")
    with pytest.raises(TraceError, match=":1"):
        load_trace(str(bad))


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "kvserve", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def test_replay_command_prints_a_json_report_and_progress(trace: Path) -> None:
    hit_blocks, blocks, _, _ = ideal(trace, limit=800)
    p = run_cli("replay", str(trace), "--limit", "800", "--progress-seconds", "0")
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)
    assert report["mode"] == "simulate" and report["requests"] == 800
    assert report["hits"]["dram"]["blocks"] == hit_blocks and report["blocks"] == blocks
    assert "replay: 800/800 requests" in p.stderr
    p = run_cli("replay", str(trace), "--limit", "800", "--dram", "10%", "--superfs", "--policy", "lru")
    report = json.loads(p.stdout)
    assert report["policy"] == "lru" and report["superfs_enabled"]
    assert report["hits"]["dram"]["blocks"] + report["hits"]["superfs"]["blocks"] == hit_blocks


def test_replay_command_bad_input(trace: Path) -> None:
    p = run_cli("replay", "/nonexistent/trace.jsonl")
    assert p.returncode != 0 and "No such file" in p.stderr and "Traceback" not in p.stderr
    p = run_cli("replay", str(trace), "--dram", "lots")
    assert p.returncode != 0 and "not a size" in p.stderr and "Traceback" not in p.stderr
    p = run_cli("replay", str(trace), "--store", "127.0.0.1:1", "--dram", "1GiB")
    assert p.returncode != 0 and "daemons' settings" in p.stderr
