"""ckpt, tier 2: save/load on a local directory, several ranks as threads of one process.

The broad resharding matrix, integrity, bad input, retention, the CLI and
async save all run here, fast; test_ckpt_cluster.py repeats the essential
cases with one process per rank against a real SuperFS cluster.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from typing import Any, Callable

import numpy as np
import pytest

import ckpt
from ckpt.manifest import MANIFEST_NAME
from ckpt.storage import open_storage
from test_ckpt_workload import CountingStorage, check_loaded, global_arrays, make_state, make_target

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def on_ranks(world: int, fn: Callable[[int], Any]) -> list[Any]:
    """Run fn(rank) on ``world`` threads; returns results or exceptions, per rank."""
    out: list[Any] = [None] * world

    def run(r: int) -> None:
        try:
            out[r] = fn(r)
        except BaseException as e:  # noqa: BLE001 - the test inspects it
            out[r] = e

    threads = [threading.Thread(target=run, args=(r,)) for r in range(world)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return out


def save_world(path: str, layout: str, world: int, step: int | None = None, seed: int = 0,
               **kw: Any) -> list[ckpt.SaveResult]:
    res = on_ranks(world, lambda r: ckpt.save(make_state(layout, r, world, seed), path, step=step, rank=r,
                                              world_size=world, timeout_s=20, block_size=4096, **kw))
    for r in res:
        if isinstance(r, BaseException):
            raise r
    return res


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": REPO}
    return subprocess.run([sys.executable, "-m", "ckpt", *args], capture_output=True, text=True, env=env,
                          timeout=60)


# ----------------------------------------------------------------- roundtrip

def test_roundtrip_dtypes_nesting_and_odd_layouts(tmp_path: Any) -> None:
    rng = np.random.default_rng(5)
    base = rng.standard_normal((7, 9))
    state = {
        "f16": base.astype(np.float16), "c64": (base + 1j * base).astype(np.complex64),
        "i16_be": np.arange(10, dtype=">i2"), "u8": rng.integers(0, 255, 33, dtype=np.uint8),
        "bool": base > 0, "dt": np.array(["2024-01-01", "2025-06-30"], dtype="datetime64[D]"),
        "strided": base[::2, 1::3], "fortran": np.asfortranarray(base), "empty": np.zeros((0, 5)),
        "zero_d": np.float32(3.5), "nested": {"list": [np.ones(3), {"deep": 1}], 4: ("t", b"\x00b")},
    }
    ckpt.save(state, str(tmp_path))
    out = ckpt.load(str(tmp_path))
    for k in ("f16", "c64", "i16_be", "u8", "bool", "dt", "strided", "fortran", "empty"):
        assert out[k].dtype == np.asarray(state[k]).dtype and out[k].tobytes() == np.ascontiguousarray(state[k]).tobytes(), k
    assert out["zero_d"].shape == () and out["zero_d"] == np.float32(3.5)
    assert out["nested"]["list"][1] == {"deep": 1} and out["nested"][4] == ("t", b"\x00b")
    # into a target, in place, partially: only what the target names is loaded
    buf = np.zeros((4, 3))
    got = ckpt.load(str(tmp_path), target={"strided": buf, "nested": None})
    assert got["strided"] is buf and buf.tobytes() == state["strided"].tobytes()
    assert set(got) == {"strided", "nested"} and got["nested"][4] == ("t", b"\x00b")


MATRIX_SAVES = [(4, "rows"), (3, "cols"), (4, "grid"), (3, "full")]
MATRIX_LOADS = [(1, "full"), (2, "cols"), (3, "rows"), (4, "grid"), (5, "rows")]


@pytest.mark.parametrize("world,layout", MATRIX_SAVES)
def test_reshard_matrix_bit_exact(tmp_path: Any, world: int, layout: str) -> None:
    save_world(str(tmp_path), layout, world, step=1)
    for w2, l2 in MATRIX_LOADS:
        outs = on_ranks(w2, lambda r: ckpt.load(str(tmp_path), target=make_target(l2, r, w2)))
        for r, out in enumerate(outs):
            assert not isinstance(out, BaseException), out
            assert check_loaded(out, l2, r, w2) == [], (w2, l2, r)


def test_reshard_reads_only_the_rows_it_needs(tmp_path: Any) -> None:
    save_world(str(tmp_path), "rows", 4, step=1)
    whole = CountingStorage(open_storage(str(tmp_path)))
    ckpt.load(whole, target={"model": {"big": np.zeros((256, 300), np.float32)}})
    part = CountingStorage(open_storage(str(tmp_path)))
    target = {"model": {"big": ckpt.Shard(np.zeros((32, 300), np.float32), (256, 300), (64, 0))}}
    out = ckpt.load(part, target=target)
    assert out["model"]["big"].local.tobytes() == global_arrays()["big"][64:96].tobytes()
    # an eighth of the rows, inside one saved piece: about an eighth of the bytes (plus whole checksum blocks)
    assert part.bytes_read <= whole.bytes_read / 8 + 2 * 4096


def test_replicated_arrays_written_once_spread_over_ranks(tmp_path: Any) -> None:
    save_world(str(tmp_path), "full", 3, step=1)
    m = ckpt.load_manifest(str(tmp_path))
    arrays = [i for i in m.items if i.kind == "array"]
    assert all(len(i.pieces) == 1 for i in arrays)
    assert len({i.pieces[0].file for i in arrays}) == 3  # every rank wrote some of them


# ----------------------------------------------------------------- integrity

def _flip_byte(root: str, item_key: str, rank: int | None = None) -> str:
    m = ckpt.load_manifest(root)
    item = next(i for i in m.items if i.key == item_key)
    piece = next(p for p in item.pieces if rank is None or m.files[p.file].rank == rank)
    path = os.path.join(root, f"step-{m.step:08d}", piece.file)
    with open(path, "r+b") as f:
        f.seek(piece.offset + piece.nbytes // 2)
        b = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([b[0] ^ 0x10]))
    return piece.file


def test_flipped_byte_is_named_by_verify_and_load(tmp_path: Any) -> None:
    root = str(tmp_path)
    save_world(root, "rows", 2, step=1)
    assert ckpt.verify(root).ok
    fname = _flip_byte(root, "model/big", rank=1)
    report = ckpt.verify(root)
    assert not report.ok and len(report.problems) == 1
    assert "'model/big'" in report.problems[0] and fname in report.problems[0]
    with pytest.raises(ckpt.CorruptionError) as ei:
        ckpt.load(root)
    assert ei.value.item == "model/big" and ei.value.file == fname
    # what does not touch the bad block still loads
    assert ckpt.load(root, target={"opt": None})["opt"]["step"] == 100
    res = cli("verify", root)
    assert res.returncode == 1 and "model/big" in res.stdout and fname in res.stdout


def test_missing_rank_file_is_named(tmp_path: Any) -> None:
    root = str(tmp_path)
    save_world(root, "rows", 3, step=1)
    m = ckpt.load_manifest(root)
    victim = next(f for f in m.files.values() if f.rank == 2)
    os.unlink(os.path.join(root, "step-00000001", victim.name))
    with pytest.raises(ckpt.MissingShardError, match=f"{victim.name}.*rank 2.*missing") as ei:
        ckpt.load(root)
    assert ei.value.file == victim.name
    assert any(victim.name in p for p in ckpt.verify(root).problems)


def test_manifest_from_a_future_version_is_refused(tmp_path: Any) -> None:
    root = str(tmp_path)
    ckpt.save({"x": np.ones(3)}, root, step=1)
    mpath = os.path.join(root, "step-00000001", MANIFEST_NAME)
    doc = json.load(open(mpath))
    doc["version"] = 2
    open(mpath, "w").write(json.dumps(doc))
    with pytest.raises(ckpt.FutureVersionError, match="version 2"):
        ckpt.load(root)
    res = cli("verify", root)
    assert res.returncode == 1 and "upgrade" in res.stdout


# ----------------------------------------------------------------- bad input

def test_load_target_mismatches_name_the_item(tmp_path: Any) -> None:
    root = str(tmp_path)
    save_world(root, "rows", 2, step=1)
    with pytest.raises(ckpt.MismatchError, match=r"'model/w'.*\(96, 41\).*\(96, 40\)"):
        ckpt.load(root, target={"model": {"w": np.zeros((96, 41), np.float32)}})
    with pytest.raises(ckpt.MismatchError, match=r"'model/w'.*<f8.*<f4"):
        ckpt.load(root, target={"model": {"w": np.zeros((96, 40))}})
    with pytest.raises(ckpt.MismatchError, match="no item 'model/nope'"):
        ckpt.load(root, target={"model": {"nope": np.zeros(3)}})
    with pytest.raises(ckpt.MismatchError, match="'opt/step'.*target is an array"):
        ckpt.load(root, target={"opt": {"step": np.zeros(1)}})


def test_inconsistent_shards_fail_on_every_rank_without_waiting(tmp_path: Any) -> None:
    def state(r: int) -> dict:
        return {"w": ckpt.Shard(np.zeros((3, 2)), (4, 2), (r, 0))}  # rows 0-2 and 1-3 overlap

    res = on_ranks(2, lambda r: ckpt.save(state(r), str(tmp_path), step=1, rank=r, world_size=2, timeout_s=20))
    assert all(isinstance(e, ckpt.PlanError) and "overlap" in str(e) for e in res), res
    assert ckpt.latest_step(str(tmp_path)) is None


def test_bad_state_on_one_rank_fails_every_rank(tmp_path: Any) -> None:
    res = on_ranks(2, lambda r: ckpt.save({"x": object() if r == 1 else 1}, str(tmp_path), step=1, rank=r,
                                          world_size=2, timeout_s=20))
    assert isinstance(res[1], TypeError)
    assert isinstance(res[0], ckpt.PlanError) and "rank 1" in str(res[0])


def test_existing_step_is_not_overwritten(tmp_path: Any) -> None:
    ckpt.save({"x": 1}, str(tmp_path), step=3)
    with pytest.raises(ckpt.CheckpointExistsError):
        ckpt.save({"x": 2}, str(tmp_path), step=3)
    assert ckpt.load(str(tmp_path))["x"] == 1


# --------------------------------------------------- crashes, stale attempts

def test_partial_checkpoint_and_stale_attempt_are_ignored_then_cleaned(tmp_path: Any) -> None:
    root = str(tmp_path)
    save_world(root, "rows", 2, step=1)
    # what a crash mid-save leaves: a step directory without manifest, and an attempt nobody finishes
    os.makedirs(os.path.join(root, "step-00000002"))
    open(os.path.join(root, "step-00000002", "dead.rank-00000.data"), "wb").write(b"x" * 100)
    open(os.path.join(root, ".coord", "attempt.json"), "w").write(
        json.dumps({"token": "dead", "step": 3, "world_size": 2}))
    assert ckpt.latest_step(root) == 1
    assert check_loaded(ckpt.load(root, target=make_target("full", 0, 1)), "full", 0, 1) == []
    assert "partial" in cli("ls", root).stdout
    # rank 1 starts first and may join the stale attempt: it must notice and join the real one
    save_world(root, "grid", 2, step=3, seed=1)
    assert ckpt.latest_step(root) == 3
    assert sorted(os.listdir(root)) == [".coord", "latest", "step-00000001", "step-00000003"]
    assert check_loaded(ckpt.load(root, target=make_target("rows", 1, 2)), "rows", 1, 2, seed=1) == []


def test_auto_steps_retention_and_rm(tmp_path: Any) -> None:
    root = str(tmp_path)
    for i in range(5):
        res = ckpt.save({"i": i}, root, keep_last=2)
        assert res.step == i
    assert [s.step for s in ckpt.list_steps(root)] == [3, 4]
    assert ckpt.load(root)["i"] == 4 and ckpt.load(root, step=3)["i"] == 3
    out = cli("rm", root, "4")
    assert out.returncode == 0, out.stderr
    assert ckpt.latest_step(root) == 3 and ckpt.load(root)["i"] == 3
    ls = cli("ls", root)
    assert ls.returncode == 0 and "latest" in ls.stdout and " 4 " not in ls.stdout
    assert cli("rm", root, "9").returncode == 1
    with pytest.raises(ckpt.CheckpointNotFoundError):
        ckpt.load(root, step=4)


def test_cli_help_and_verify_ok(tmp_path: Any) -> None:
    res = cli("--help")
    assert res.returncode == 0 and all(c in res.stdout for c in ("ls", "verify", "rm"))
    ckpt.save({"a": np.arange(100)}, str(tmp_path), step=1)
    ckpt.save({"a": np.arange(100)}, str(tmp_path), step=2)
    res = cli("verify", "--all", str(tmp_path))
    assert res.returncode == 0 and res.stdout.count("OK") == 2


# ----------------------------------------------------------------- async

def test_async_save_copies_first_and_reports_errors(tmp_path: Any) -> None:
    arr = np.arange(1000, dtype=np.int64)
    handle = ckpt.async_save({"a": arr, "s": ckpt.Shard(arr[:10], (10,), (0,))}, str(tmp_path), step=1)
    arr[:] = -1  # training goes on at once
    res = handle.wait(60)
    assert res.step == 1 and handle.done()
    out = ckpt.load(str(tmp_path))
    assert (out["a"] == np.arange(1000)).all() and (out["s"] == np.arange(10)).all()
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    bad = ckpt.async_save({"a": arr}, str(blocker), step=1)
    with pytest.raises(ckpt.CheckpointError, match="Not a directory"):
        bad.wait(60)


def test_ckpt_works_without_torch(tmp_path: Any) -> None:
    code = ("import sys; sys.modules['torch'] = None\n"  # makes 'import torch' fail, as if not installed
            "import numpy as np, ckpt\n"
            f"ckpt.save({{'a': np.arange(5)}}, {str(tmp_path)!r})\n"
            f"assert (ckpt.load({str(tmp_path)!r})['a'] == np.arange(5)).all()\n"
            "try:\n    import ckpt.dcp\nexcept ImportError:\n    print('no-dcp')\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": REPO})
    assert res.returncode == 0 and res.stdout.strip() == "no-dcp", res.stderr
