"""ckpt with torch: tensors in ckpt.save/load, the DCP StorageWriter/Reader, TorchCoordinator over gloo.

Skipped where torch is not installed (ckpt itself never needs it). The
multi-rank cases are real processes in a gloo group: this file run as a
script is one rank (``python tests/test_ckpt_torch.py '{json}'``).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

torch = pytest.importorskip("torch", reason="torch is not installed (pip install torch==2.13.0 gives the CPU "
                                            "build): the tensor and DCP paths are not tested")

import ckpt  # noqa: E402

ENV = {**os.environ, "PYTHONPATH": os.path.dirname(HERE)}
ROWS, COLS = 24, 40


def global_tensors() -> dict[str, Any]:
    g = torch.Generator().manual_seed(7)
    return {"w": torch.randn(ROWS, COLS, generator=g),
            "bf": torch.randn(6, 5, generator=g).to(torch.bfloat16),
            "ids": torch.randint(-1000, 1000, (ROWS,), generator=g)}


def same_bits(a: Any, b: Any) -> bool:
    a, b = a.detach().contiguous(), b.detach().contiguous()
    return a.dtype == b.dtype and a.shape == b.shape and bytes(a.view(torch.uint8).numpy()) == bytes(
        b.view(torch.uint8).numpy())


# ------------------------------------------------------------ in-process

def test_tensors_roundtrip_bit_exact(tmp_path: Any) -> None:
    base = torch.randn(5, 7)
    state = {"f32": base, "bf16": base.to(torch.bfloat16), "f16": base.half(), "i8": (base * 50).to(torch.int8),
             "bool": base > 0, "c64": torch.complex(base, -base), "strided": base.t()[::2],
             "param": torch.nn.Parameter(base.clone()), "long": torch.arange(10)}
    ckpt.save(state, str(tmp_path), step=1)
    target = {k: torch.zeros_like(v.detach()) for k, v in state.items()}
    out = ckpt.load(str(tmp_path), target=target)
    for k, v in state.items():
        assert out[k] is target[k] and same_bits(out[k], v), k
    raw = ckpt.load(str(tmp_path))  # without a target: numpy; bfloat16 as its raw 16-bit patterns
    assert raw["bf16"].dtype == np.uint16
    assert raw["bf16"].tobytes() == state["bf16"].view(torch.int16).numpy().tobytes()
    assert raw["strided"].tobytes() == state["strided"].contiguous().numpy().tobytes()


def test_tensor_shards_reshard(tmp_path: Any) -> None:
    import threading

    g = global_tensors()["w"]

    def save(r: int) -> None:
        ckpt.save({"w": ckpt.Shard(g[r * 12:(r + 1) * 12], (ROWS, COLS), (r * 12, 0))}, str(tmp_path), step=1,
                  rank=r, world_size=2, timeout_s=30)

    ts = [threading.Thread(target=save, args=(r,)) for r in range(2)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    buf = torch.zeros(ROWS, 15)
    ckpt.load(str(tmp_path), target={"w": ckpt.Shard(buf, (ROWS, COLS), (0, 25))})
    assert same_bits(buf, g[:, 25:])


# ------------------------------------------------------------ gloo ranks

def _spawn(cmd: dict[str, Any]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), json.dumps(cmd)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)


def _run_group(op: str, world: int, tmp: Any, **kw: Any) -> None:
    store = str(tmp / f"store-{op}-{world}")
    procs = [_spawn({"op": op, "rank": r, "world": world, "store": store, **kw}) for r in range(world)]
    for r, p in enumerate(procs):
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0 and "RANK-OK" in out, f"{op} rank {r} of {world}:\n{out}\n{err[-3000:]}"


def test_dcp_and_torch_coordinator_over_gloo_reshard_on_superfs(cluster: Any, tmp_path: Any) -> None:
    base = f"superfs://{cluster.config['dir_server']}"
    urls = {"dcp": f"{base}/dcp", "coord": f"{base}/coord"}
    _run_group("save", 2, tmp_path, urls=urls)
    _run_group("load", 3, tmp_path, urls=urls)
    assert ckpt.verify(urls["dcp"]).ok and ckpt.verify(urls["coord"]).ok
    m = ckpt.load_manifest(urls["dcp"])
    assert m.world_size == 2 and {i.key for i in m.items} >= {"model.w", "model.bf", "model.ids", "meta.epoch"}
    whole = ckpt.load(urls["dcp"])  # DCP checkpoints are ckpt checkpoints: plain ckpt.load reads them
    assert whole["model.w"].tobytes() == global_tensors()["w"].numpy().tobytes()


# ------------------------------------------------------------- the worker

def _worker(cmd: dict[str, Any]) -> None:
    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import DTensor, Shard, distribute_tensor

    from ckpt.dcp import CkptReader, CkptWriter

    rank, world = cmd["rank"], cmd["world"]
    dist.init_process_group("gloo", init_method=f"file://{cmd['store']}", rank=rank, world_size=world)
    mesh = init_device_mesh("cpu", (world,))
    g = global_tensors()
    rows = ROWS // world
    if cmd["op"] == "save":
        sd = {"model": {"w": DTensor.from_local(g["w"][rank * rows:(rank + 1) * rows].clone(), mesh, [Shard(0)],
                                                run_check=False),
                        "bf": g["bf"].clone(), "ids": g["ids"].clone()},
              "meta": {"epoch": 3, "name": "run-a"}}
        dcp.save(sd, storage_writer=CkptWriter(cmd["urls"]["dcp"], step=1))
        state = {"w": ckpt.Shard(g["w"][rank * rows:(rank + 1) * rows], (ROWS, COLS), (rank * rows, 0)),
                 "bf": g["bf"], "epoch": 3}
        ckpt.save(state, cmd["urls"]["coord"], step=1, rank=rank, world_size=world,
                  coordinator=ckpt.TorchCoordinator())
    else:
        target = {"model": {"w": distribute_tensor(torch.zeros(ROWS, COLS), mesh, [Shard(1)]),
                            "bf": torch.zeros(6, 5, dtype=torch.bfloat16), "ids": torch.zeros(ROWS, dtype=torch.long)},
                  "meta": {"epoch": 0, "name": ""}}
        dcp.load(target, storage_reader=CkptReader(cmd["urls"]["dcp"]))
        want = torch.chunk(g["w"], world, dim=1)[rank]
        assert same_bits(target["model"]["w"].to_local(), want), "DCP resharded w differs"
        assert same_bits(target["model"]["bf"], g["bf"]) and same_bits(target["model"]["ids"], g["ids"])
        assert target["meta"] == {"epoch": 3, "name": "run-a"}, target["meta"]
        cols = [round(COLS * k / world) for k in range(world + 1)]
        buf = torch.zeros(ROWS, cols[rank + 1] - cols[rank])
        out = ckpt.load(cmd["urls"]["coord"], target={"w": ckpt.Shard(buf, (ROWS, COLS), (0, cols[rank])),
                                                      "bf": torch.zeros(6, 5, dtype=torch.bfloat16), "epoch": 0})
        assert same_bits(buf, g["w"][:, cols[rank]:cols[rank + 1]]) and same_bits(out["bf"], g["bf"])
        assert out["epoch"] == 3
    dist.barrier()
    dist.destroy_process_group()
    print("RANK-OK", flush=True)


if __name__ == "__main__":
    _worker(json.loads(sys.argv[1]))
