"""t7: the benchmark code itself, on tiny sizes (behaviour only, never a duration).

The md benchmark runs against a local directory and a real local cluster
through the library; its rows carry every field; a failed operation is an
error, never a fast op; the score row exists. The CLI, the footprint and
the scaling measurements run once each on the same cluster.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from superfs.bench import md
from superfs.bench.cluster import cpu_seconds, daemon_pids, dir_address
from superfs.bench.footprint import metadata_bytes_disk, metadata_bytes_rpc
from superfs.bench.scaling import measure_phase
from superfs.bench.targets import LocalOps, TargetSpec
from superfs.cli.launcher import LocalCluster

PHASE_FIELDS = {"name", "phase", "target", "label", "procs", "files_per_proc", "iteration", "ops", "errors",
                "seconds", "ops_per_s", "p50_us", "p99_us", "stonewall_s", "stonewalled", "dir_rpcs",
                "dir_rpcs_per_op", "first_error", "nproc"}
SCORE_FIELDS = {"name", "phase", "target", "label", "procs", "files_per_proc", "iterations", "score", "phases",
                "ops", "errors", "nproc"}
FILES = 12


def by_phase(rows: list[dict]) -> dict[str, dict]:
    return {r["phase"]: r for r in rows}


def check_rows(rows: list[dict], procs: int) -> dict[str, dict]:
    assert [r["phase"] for r in rows] == list(md.PHASES) + ["score"]
    for r in rows[:-1]:
        assert set(r) == PHASE_FIELDS, r
        json.dumps(r)
    assert set(rows[-1]) == SCORE_FIELDS
    return by_phase(rows)


def test_local_dir_every_phase_and_field(tmp_path) -> None:
    rows = md.run(TargetSpec.parse(str(tmp_path)), md.MdConfig(files=FILES, procs=2), quiet=True)
    phases = check_rows(rows, 2)
    for name in md.PHASES:
        r = phases[name]
        assert r["errors"] == 0 and r["first_error"] is None, r
        if name != "find":
            assert r["ops"] == 2 * FILES
            assert r["ops_per_s"] > 0 and r["p50_us"] is not None and r["p99_us"] >= r["p50_us"]
        assert r["dir_rpcs"] is None  # only the library counts dir-server RPCs
    # find sees every file and directory the earlier phases made under the easy, dirs and hard trees
    assert phases["find"]["ops"] == 3 * 2 * FILES
    assert phases["score"]["score"] > 0 and phases["score"]["errors"] == 0
    assert os.listdir(tmp_path) == []  # the run cleaned up after itself


def test_failed_operations_are_errors_not_fast_ops(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another client removes the shared directory's files mid-run: stat/read/remove of them fail."""
    real_stat = LocalOps.stat

    def stat_after_removal(self: LocalOps, path: str) -> os.stat_result:
        if os.path.basename(os.path.dirname(path)) == "hard" and os.path.basename(path).startswith("r"):
            os.unlink(path)
        return real_stat(self, path)

    monkeypatch.setattr(LocalOps, "stat", stat_after_removal)  # workers are forked: they see it
    rows = md.run(TargetSpec.parse(str(tmp_path)), md.MdConfig(files=FILES, procs=2), quiet=True)
    phases = check_rows(rows, 2)
    for name in ("hard_stat", "hard_read", "hard_remove"):
        r = phases[name]
        assert r["errors"] == 2 * FILES and r["ops"] == 0, r
        assert r["ops_per_s"] == 0.0 and r["p50_us"] is None
        assert "FileNotFoundError" in r["first_error"]
    assert phases["easy_stat"]["errors"] == 0 and phases["easy_stat"]["ops"] == 2 * FILES
    assert phases["score"]["errors"] == 6 * FILES
    assert phases["score"]["score"] == 0  # a phase that did nothing scores nothing


def test_removed_directory_counts_every_op_as_error(tmp_path) -> None:
    gone = tmp_path / "gone"
    res, done = md.timed_loop("easy_create", 0, [str(gone / f"f{i}") for i in range(5)], LocalOps().create,
                              None, LocalOps())
    assert (res.ok, res.errors, done, res.latencies) == (0, 5, [], [])
    row = md.phase_row("easy_create", [res], TargetSpec.parse(str(tmp_path)), md.MdConfig(files=5, procs=1), 0)
    assert row["ops"] == 0 and row["errors"] == 5 and row["ops_per_s"] == 0.0


def test_stonewall_stops_a_phase(tmp_path) -> None:
    res, done = md.timed_loop("easy_create", 0, [str(tmp_path / f"f{i}") for i in range(100)],
                              LocalOps().create, 1e-9, LocalOps())
    assert res.stonewalled and res.ok == len(done) < 100 and res.errors == 0


def test_library_on_a_real_cluster(cluster: LocalCluster) -> None:
    address = dir_address(cluster)
    spec = TargetSpec.parse(f"superfs://{address}/t7md")
    assert spec.kind == "library" and spec.address == address and spec.root == "/t7md"
    rows = md.run(spec, md.MdConfig(files=6, procs=1), quiet=True)
    phases = check_rows(rows, 1)
    for name in md.PHASES:
        assert phases[name]["errors"] == 0, phases[name]
        assert isinstance(phases[name]["dir_rpcs"], int)
    assert phases["easy_create"]["ops"] == 6 and phases["hard_read"]["ops"] == 6
    assert phases["score"]["score"] > 0


def test_footprint_and_scaling_on_a_real_cluster(cluster: LocalCluster) -> None:
    address = dir_address(cluster)
    before = metadata_bytes_rpc(address)
    assert before["dir"] > 0 and before["shards"] > 0
    assert metadata_bytes_disk(cluster.state_dir) > 0
    pids = daemon_pids(cluster.state_dir)
    assert {"dir", "shard-0", "shard-1"} <= set(pids)
    assert all(cpu_seconds(p) >= 0 for p in pids.values())
    row = measure_phase(cluster.state_dir, address, "easy_create", 5, 1, 2)
    assert row["ops"] == 5 and row["errors"] == 0
    assert set(row["cpu_s_per_kop"]) == set(pids) and row["cpu_s_per_kop_total"] is not None
    assert isinstance(row["dir_rpcs_per_op"], float)
    assert metadata_bytes_rpc(address)["files"] == before["files"] + 5


def test_cli_prints_json_lines(tmp_path) -> None:
    out = subprocess.run([sys.executable, "-m", "superfs.cli.main", "bench", "md", str(tmp_path), "--files", "3",
                          "--procs", "1", "--phases", "easy_create,easy_stat,easy_remove"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["phase"] for r in rows] == ["easy_create", "easy_stat", "easy_remove", "score"]
    assert all(r["errors"] == 0 for r in rows) and rows[-1]["phases"] == 3


def test_rpc_floor_measures_each_transport_and_fsync(tmp_path) -> None:
    script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench", "rpc_floor.py")
    out = subprocess.run([sys.executable, script, "--n", "20", "--dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["what"] for r in rows] == ["grpc_unary", "grpc_stream", "session", "tcp", "fdatasync"]
    assert rows[2]["vs_grpc_stream"] > 0  # the session call as a ratio of a gRPC stream message
    for r in rows:
        assert r["n"] == 20 and 0 < r["p50_us"] <= r["p99_us"], r
    assert os.listdir(tmp_path) == []  # the fsync file is removed
