"""ckpt, tier 3: one process per rank against a real local SuperFS cluster (and a local directory).

Ranks are separate Python processes running tests/test_ckpt_workload.py;
they coordinate only through the checkpoint storage itself. Crashes are
real: ``kill -9`` of a rank, or of a data server, while a save is stalled
part-way (the stall is a marker file, never a sleep in the test).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import numpy as np
import pytest

import ckpt
from ckpt.storage import open_storage
from test_ckpt_workload import check_loaded, make_target

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "test_ckpt_workload.py")
ENV = {**os.environ, "PYTHONPATH": os.path.dirname(HERE)}


def spawn(cmd: dict[str, Any]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, WORKER, json.dumps(cmd)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)


def finish(proc: subprocess.Popen[str], timeout: float = 120) -> dict[str, Any]:
    out, err = proc.communicate(timeout=timeout)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    result = json.loads(lines[-1]) if lines else {"ok": False, "stderr": err[-2000:]}
    result["rc"] = proc.returncode
    return result


def run_world(op: str, url: str, world: int, layout: str, **kw: Any) -> list[dict[str, Any]]:
    procs = [spawn({"op": op, "url": url, "rank": r, "world": world, "layout": layout, **kw})
             for r in range(world)]
    return [finish(p) for p in procs]


def assert_ok(results: list[dict[str, Any]]) -> None:
    for r, res in enumerate(results):
        assert res["rc"] == 0 and res["ok"], f"rank {r}: {res}"


def wait_for(path: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def url_of(cluster: Any, name: str) -> str:
    return f"superfs://{cluster.config['dir_server']}/{name}"


# ------------------------------------------------------------ resharding

def test_reshard_matrix_with_processes_on_superfs(cluster: Any) -> None:
    url = url_of(cluster, "matrix")
    assert_ok(run_world("save", url, 8, "rows", step=1))
    for world, layout in [(2, "cols"), (1, "full"), (4, "grid")]:
        assert_ok(run_world("load", url, world, layout, step=1))
    assert_ok(run_world("save", url, 4, "cols", step=2, seed=0))
    for world, layout in [(3, "rows"), (1, "full")]:
        assert_ok(run_world("load", url, world, layout, step=2))
    assert ckpt.latest_step(url) == 2 and ckpt.verify(url).ok
    m = ckpt.load_manifest(url, step=1)
    assert m.world_size == 8 and len(m.files) == 8


# ---------------------------------------------------------------- crashes

@pytest.mark.parametrize("where", ["local", "superfs"])
def test_killed_rank_leaves_previous_checkpoint_latest(cluster: Any, tmp_path: Any, where: str) -> None:
    url = str(tmp_path / "run") if where == "local" else url_of(cluster, "killrank")
    assert_ok(run_world("save", url, 2, "rows", step=1))
    marker = str(tmp_path / "stalled")
    survivor = spawn({"op": "save", "url": url, "rank": 0, "world": 2, "layout": "rows", "step": 2, "seed": 1,
                      "timeout": 5})
    victim = spawn({"op": "save", "url": url, "rank": 1, "world": 2, "layout": "rows", "step": 2, "seed": 1,
                    "stall": {"after": 0 if where == "local" else 65536, "marker": marker}})
    wait_for(marker)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    res = finish(survivor, timeout=60)
    assert res["rc"] == 2 and res["error"] == "CoordinationError" and "ranks [1]" in res["message"], res
    assert ckpt.latest_step(url) == 1
    assert [(s.step, s.committed) for s in ckpt.list_steps(url)] == [(1, True), (2, False)]
    assert check_loaded(ckpt.load(url, target=make_target("full", 0, 1)), "full", 0, 1, seed=0) == []
    # the next save succeeds and removes the partial one
    assert_ok(run_world("save", url, 2, "grid", step=3, seed=2))
    assert [s.step for s in ckpt.list_steps(url)] == [1, 3]
    assert check_loaded(ckpt.load(url, target=make_target("cols", 1, 2)), "cols", 1, 2, seed=2) == []


def test_killed_data_server_fails_the_save_not_the_previous_checkpoint(cluster_factory: Any, tmp_path: Any) -> None:
    c = cluster_factory()  # 2 data servers, every chunk on both
    url = url_of(c, "killdata")
    assert_ok(run_world("save", url, 2, "rows", step=1))
    resume = str(tmp_path / "resume")
    markers = [str(tmp_path / f"stalled-{r}") for r in range(2)]
    procs = [spawn({"op": "save", "url": url, "rank": r, "world": 2, "layout": "rows", "step": 2, "seed": 1,
                    "timeout": 60, "stall": {"after": 65536, "marker": markers[r], "resume": resume}})
             for r in range(2)]
    for m in markers:
        wait_for(m)
    c.kill("data-0")
    open(resume, "w").close()
    results = [finish(p, timeout=90) for p in procs]
    assert all(r["rc"] == 2 and r["error"] == "CheckpointError" for r in results), results
    assert ckpt.latest_step(url) == 1
    # the previous checkpoint loads (from the surviving replicas) and verifies while data-0 is down
    assert check_loaded(ckpt.load(url, target=make_target("full", 0, 1)), "full", 0, 1, seed=0) == []
    assert ckpt.verify(url).ok
    c.start()
    assert_ok(run_world("save", url, 2, "rows", step=3, seed=2))
    assert [s.step for s in ckpt.list_steps(url)] == [1, 3]


# -------------------------------------------------------------- integrity

def test_flipped_byte_on_superfs_is_named(cluster: Any) -> None:
    url = url_of(cluster, "flip")
    assert_ok(run_world("save", url, 2, "rows", step=1))
    m = ckpt.load_manifest(url)
    item = next(i for i in m.items if i.key == "model/big")
    piece = next(p for p in item.pieces if m.files[p.file].rank == 1)
    entry = m.files[piece.file]
    path = f"step-00000001/{piece.file}"
    storage = open_storage(url)
    data = bytearray(storage.read_bytes(path))
    phys = entry.physical(piece.offset + piece.nbytes // 3, 1)[0][0]
    data[phys] ^= 0x01
    storage.remove(path)
    storage.write_atomic(path, bytes(data))
    report = ckpt.verify(url)
    assert len(report.problems) == 1 and "'model/big'" in report.problems[0] and piece.file in report.problems[0]
    with pytest.raises(ckpt.CorruptionError) as ei:
        ckpt.load(url)
    assert (ei.value.item, ei.value.file) == ("model/big", piece.file)
    cli = subprocess.run([sys.executable, "-m", "ckpt", "verify", url], capture_output=True, text=True, env=ENV,
                         timeout=60)
    assert cli.returncode == 1 and "model/big" in cli.stdout and piece.file in cli.stdout


# -------------------------------------------------------------- placement

def test_each_rank_spreads_its_chunks_evenly_over_data_servers(cluster_factory: Any) -> None:
    c = cluster_factory(data_servers=3, replicas=1)
    url = url_of(c, "spread")
    chunk = int(c.config["chunk_size"])
    n = 40 * chunk  # 40 chunks per rank
    data = np.random.default_rng(3).integers(0, 255, 2 * n, dtype=np.uint8)
    results: list[Any] = [None, None]

    def rank(r: int) -> None:
        results[r] = ckpt.save({"x": ckpt.Shard(data[r * n:(r + 1) * n], (2 * n,), (r * n,))}, url, step=1,
                               rank=r, world_size=2, timeout_s=60)

    threads = [threading.Thread(target=rank, args=(r,)) for r in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for res in results:
        loads = res.server_bytes
        assert sorted(loads) == [0, 1, 2] and sum(loads.values()) == n
        assert max(loads.values()) - min(loads.values()) <= chunk, loads
    assert ckpt.load(url)["x"].tobytes() == data.tobytes()


# ----------------------------------------------------------- the local URL

def test_local_cluster_url_and_cli(tmp_path: Any) -> None:
    from conftest import start_cluster

    c = start_cluster(str(tmp_path / "superfs"))  # what 'superfs up' makes under $XDG_DATA_HOME
    try:
        env = {**ENV, "XDG_DATA_HOME": str(tmp_path)}
        code = ("import numpy as np, ckpt\n"
                "ckpt.save({'a': np.arange(50000)}, 'superfs:///runs/x', step=4)\n"
                "assert (ckpt.load('superfs:///runs/x')['a'] == np.arange(50000)).all()\n")
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
        assert res.returncode == 0, res.stderr
        ls = subprocess.run([sys.executable, "-m", "ckpt", "ls", "superfs:///runs/x"], capture_output=True,
                            text=True, env=env, timeout=60)
        assert ls.returncode == 0 and "latest" in ls.stdout and " 4 " in ls.stdout, ls
        assert ckpt.latest_step(url_of(c, "runs/x")) == 4
    finally:
        c.stop()
