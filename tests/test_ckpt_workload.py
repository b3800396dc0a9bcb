"""ckpt test support (no tests here): a deterministic sharded state and a one-rank worker process.

``make_state(layout, rank, world, seed)`` gives rank ``rank``'s part of a
fixed global state under a sharding layout ("rows", "cols", "grid",
"full"); ``make_target`` gives the matching empty buffers and
``check_loaded`` compares what a load filled in, bit for bit, with the
global arrays. Run as a script, this file is one rank of a save or a load
(``python tests/test_ckpt_workload.py '{"op": "save", ...}'``): it prints
one JSON line and exits 0 (ok), 1 (wrong data) or 2 (a ckpt error, named).

``StallingStorage`` makes a rank stop mid-write (after N bytes it creates
a marker file and waits for a resume file) so that tests can kill it, or
a data server, at a known point; ``CountingStorage`` counts bytes read.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import ckpt  # noqa: E402
from ckpt.storage import FileReader, FileWriter, Storage, open_storage  # noqa: E402

SHAPES = {"w": ((96, 40), "<f4"), "e": ((30, 6, 5), "<i8"), "big": ((256, 300), "<f4")}
_globals: dict[int, dict[str, np.ndarray]] = {}


def global_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    if seed not in _globals:
        rng = np.random.default_rng(1234 + seed)
        out = {}
        for name, (shape, dtype) in SHAPES.items():
            if np.dtype(dtype).kind == "f":
                out[name] = rng.standard_normal(shape).astype(dtype)
            else:
                out[name] = rng.integers(-2 ** 40, 2 ** 40, shape).astype(dtype)
        out["bias"] = rng.standard_normal(64)
        out["zero_d"] = np.array(rng.standard_normal(), dtype=np.float32)
        _globals[seed] = out
    return _globals[seed]


def _split(n: int, parts: int, i: int) -> tuple[int, int]:
    bounds = [round(n * k / parts) for k in range(parts + 1)]
    return bounds[i], bounds[i + 1] - bounds[i]


def block_of(layout: str, rank: int, world: int, shape: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(offsets, shape) of rank's block of an array of ``shape`` under ``layout``."""
    offs, size = [0] * len(shape), list(shape)
    if layout == "full":
        pass
    elif layout == "rows" or (layout == "cols" and len(shape) < 2):
        offs[0], size[0] = _split(shape[0], world, rank)
    elif layout == "cols":
        offs[1], size[1] = _split(shape[1], world, rank)
    elif layout == "grid":
        a = max(d for d in range(1, int(math.isqrt(world)) + 1) if world % d == 0)
        b = world // a
        offs[0], size[0] = _split(shape[0], a, rank // b)
        offs[1], size[1] = _split(shape[1], b, rank % b)
    else:
        raise ValueError(layout)
    return tuple(offs), tuple(size)


def _view(arr: np.ndarray, offs: tuple[int, ...], size: tuple[int, ...]) -> np.ndarray:
    return arr[tuple(slice(o, o + n) for o, n in zip(offs, size))]


def make_state(layout: str, rank: int, world: int, seed: int = 0) -> dict[str, Any]:
    g = global_arrays(seed)
    model: dict[str, Any] = {}
    for name in SHAPES:
        offs, size = block_of(layout, rank, world, g[name].shape)
        block = _view(g[name], offs, size)
        model[name] = block if layout == "full" else ckpt.Shard(block, g[name].shape, offs)
    model["bias"] = g["bias"]          # replicated on every rank
    return {"model": model, "zero_d": g["zero_d"],
            "opt": {"step": 100 + seed, "lr": 1e-3, "betas": (0.9, 0.999), "names": ["a", "b"], 7: None}}


def make_target(layout: str, rank: int, world: int) -> dict[str, Any]:
    g = global_arrays(0)
    model: dict[str, Any] = {}
    for name in SHAPES:
        offs, size = block_of(layout, rank, world, g[name].shape)
        buf = np.zeros(size, dtype=g[name].dtype)
        model[name] = buf if layout == "full" else ckpt.Shard(buf, g[name].shape, offs)
    model["bias"] = np.zeros(64)
    return {"model": model, "zero_d": np.zeros((), np.float32),
            "opt": {"step": 0, "lr": 0.0, "betas": None, "names": None, 7: 1}}


def check_loaded(out: dict[str, Any], layout: str, rank: int, world: int, seed: int = 0) -> list[str]:
    """Differences between a loaded state and the expected global state (empty: bit-exact)."""
    g = global_arrays(seed)
    bad = []
    for name in SHAPES:
        offs, size = block_of(layout, rank, world, g[name].shape)
        got = out["model"][name]
        got = got.local if isinstance(got, ckpt.Shard) else got
        want = _view(g[name], offs, size)
        if got.shape != want.shape or got.tobytes() != np.ascontiguousarray(want).tobytes():
            bad.append(f"model/{name} block {offs}+{size} differs")
    if out["model"]["bias"].tobytes() != g["bias"].tobytes():
        bad.append("model/bias differs")
    if out["zero_d"].tobytes() != g["zero_d"].tobytes():
        bad.append("zero_d differs")
    want_opt = {"step": 100 + seed, "lr": 1e-3, "betas": (0.9, 0.999), "names": ["a", "b"], 7: None}
    if out["opt"] != want_opt:
        bad.append(f"opt differs: {out['opt']!r}")
    return bad


class _Delegate(Storage):
    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.url = inner.url

    def makedirs(self, path: str) -> None:
        self.inner.makedirs(path)

    def listdir(self, path: str) -> list[str]:
        return self.inner.listdir(path)

    def exists(self, path: str) -> bool:
        return self.inner.exists(path)

    def read_bytes(self, path: str) -> bytes:
        return self.inner.read_bytes(path)

    def write_atomic(self, path: str, data: bytes) -> None:
        self.inner.write_atomic(path, data)

    def create(self, path: str, size: int) -> FileWriter:
        return self.inner.create(path, size)

    def open(self, path: str) -> FileReader:
        return self.inner.open(path)

    def remove(self, path: str) -> None:
        self.inner.remove(path)

    def remove_tree(self, path: str) -> None:
        self.inner.remove_tree(path)

    def sync_dir(self, path: str) -> None:
        self.inner.sync_dir(path)


class _StallingWriter(FileWriter):
    def __init__(self, inner: FileWriter, after: int, marker: str, resume: str | None) -> None:
        self.inner = inner
        self.chunk_size = inner.chunk_size
        self.chunk_map = inner.chunk_map
        self.after, self.marker, self.resume = after, marker, resume
        self.written = 0

    def write_at(self, offset: int, data: memoryview) -> None:
        if self.written >= self.after and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            while self.resume is None or not os.path.exists(self.resume):
                time.sleep(0.02)  # stalled: the test kills us, or something, then resumes us
        self.inner.write_at(offset, data)
        self.written += len(data)

    def close(self) -> None:
        self.inner.close()

    def abort(self) -> None:
        self.inner.abort()


class StallingStorage(_Delegate):
    """Data files stop after ``after`` bytes: ``marker`` appears, writing resumes once ``resume`` exists."""

    def __init__(self, inner: Storage, after: int, marker: str, resume: str | None = None) -> None:
        super().__init__(inner)
        self.after, self.marker, self.resume = after, marker, resume

    def create(self, path: str, size: int) -> FileWriter:
        return _StallingWriter(self.inner.create(path, size), self.after, self.marker, self.resume)


class _CountingReader(FileReader):
    def __init__(self, inner: FileReader, owner: "CountingStorage") -> None:
        self.inner, self.owner = inner, owner

    @property
    def size(self) -> int:
        return self.inner.size

    def read_into(self, offset: int, buf: memoryview) -> int:
        n = self.inner.read_into(offset, buf)
        self.owner.bytes_read += n
        return n

    def read_many(self, requests: list[tuple[int, memoryview]]) -> list[int]:
        got = self.inner.read_many(requests)
        self.owner.bytes_read += sum(got)
        return got

    def close(self) -> None:
        self.inner.close()


class CountingStorage(_Delegate):
    def __init__(self, inner: Storage) -> None:
        super().__init__(inner)
        self.bytes_read = 0

    def open(self, path: str) -> FileReader:
        return _CountingReader(self.inner.open(path), self)


def run_rank(cmd: dict[str, Any]) -> dict[str, Any]:
    storage = open_storage(cmd["url"])
    if cmd.get("stall"):
        s = cmd["stall"]
        storage = StallingStorage(storage, s["after"], s["marker"], s.get("resume"))
    rank, world, layout = cmd["rank"], cmd["world"], cmd["layout"]
    if cmd["op"] == "save":
        res = ckpt.save(make_state(layout, rank, world, cmd.get("seed", 0)), storage, step=cmd.get("step"),
                        rank=rank, world_size=world, timeout_s=cmd.get("timeout", 60),
                        keep_last=cmd.get("keep_last"), block_size=cmd.get("block_size", 16 << 10))
        return {"ok": True, "step": res.step, "bytes": res.bytes_written, "server_bytes": res.server_bytes}
    counting = CountingStorage(storage)
    out = ckpt.load(counting, target=make_target(layout, rank, world), step=cmd.get("step"), rank=rank,
                    world_size=world)
    bad = check_loaded(out, layout, rank, world, cmd.get("seed", 0))
    return {"ok": not bad, "bad": bad, "bytes_read": counting.bytes_read}


def main() -> int:
    cmd = json.loads(sys.argv[1])
    try:
        result = run_rank(cmd)
    except ckpt.CheckpointError as e:
        print(json.dumps({"ok": False, "error": type(e).__name__, "message": str(e)}), flush=True)
        return 2
    print(json.dumps(result), flush=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
