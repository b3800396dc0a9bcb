"""bench/ckpt.py: distributed checkpoint save/load throughput, against the baselines of the same run.

    python bench/ckpt.py [--world 4] [--total-mb 1024] [--mount DIR]

Starts a local SuperFS cluster (``superfs up`` defaults: 2 data servers,
2 replicas, 4 MiB chunks, durable) in a temporary directory, then moves
the same state (``--total-mb`` of float32 shards over ``--world`` rank
processes, plus a small replicated array) with each strategy:

  raw_local_disk   one sequential writer/reader of the same bytes on local disk (the ceiling);
                   also ``raw_into_state``: the same reader filling one state-sized buffer
  ckpt_superfs     ckpt.save/ckpt.load, every rank its share, superfs:// through the client library
  naive_superfs    rank 0 gathers everything over sockets and saves it alone; loads alone and scatters
  ckpt_local       ckpt on a local directory (same disk as raw_local_disk)
  dcp_local        torch DCP FileSystemWriter/Reader on a local directory (torch needed)
  dcp_adapter      torch DCP through ckpt.dcp.CkptWriter/CkptReader onto superfs:// (torch needed)
  dcp_mount / ckpt_mount   the same on a SuperFS FUSE mount (``--mount DIR``, or tried automatically)

Page caches are dropped before every load (``/proc/sys/vm/drop_caches``
when permitted, else posix_fadvise on the files), so loads read from disk.
Each result is one JSON line on stdout (GB/s = total bytes / wall time
from the first rank's start to the last rank's end); the last line
compares against the targets (save and load >= 60% of raw local disk,
>= 1.5x DCP on the same storage, >= 2x naive). Nothing is asserted.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Client, Listener
from typing import Any

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
ENV = {**os.environ, "PYTHONPATH": REPO}
COLS = 1024
N_ARRAYS = 4
REPLICATED = 16 << 20


# ------------------------------------------------------------------ state

def rows_per_rank(total: int, world: int) -> int:
    return max(1, total // world // N_ARRAYS // (COLS * 4))


def rank_state(rank: int, world: int, rows: int, *, tensors: bool = False) -> dict[str, Any]:
    import ckpt

    rng = np.random.default_rng(rank)
    layers = {}
    for i in range(N_ARRAYS):
        local = rng.random((rows, COLS), dtype=np.float32)
        layers[f"l{i}"] = ckpt.Shard(local, (rows * world, COLS), (rank * rows, 0))
    rep = np.random.default_rng(999).random(REPLICATED // 4, dtype=np.float32)
    return {"layers": layers, "embed": rep, "step": 1}


def state_bytes(rows: int, world: int) -> int:
    return N_ARRAYS * rows * world * COLS * 4 + REPLICATED


# ----------------------------------------------------------------- caches

def drop_caches(paths: list[str]) -> str:
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return "drop_caches"
    except OSError:
        pass
    for top in paths:
        for d, _, files in os.walk(top):
            for name in files:
                try:
                    fd = os.open(os.path.join(d, name), os.O_RDONLY)
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                    os.close(fd)
                except OSError:
                    pass
    return "fadvise"


# ----------------------------------------------------------------- workers

def _say(msg: str, **kw: Any) -> None:
    print(json.dumps({"msg": msg, **kw}), flush=True)


def _wait_go() -> None:
    if sys.stdin.readline().strip() != "GO":
        sys.exit(3)


def worker(cmd: dict[str, Any]) -> None:
    """One rank: build the state, then save on GO and load on the next GO, reporting times."""
    import ckpt

    rank, world, rows, mode, url = cmd["rank"], cmd["world"], cmd["rows"], cmd["mode"], cmd["url"]
    state = rank_state(rank, world, rows)
    # what the load fills: built, zeroed and touched now, so that no rank's clock includes making it
    # (4 ranks on 2 cores made their targets at different speeds) and the comparison below can fail
    target = rank_state(rank, world, rows)
    for a in [*(s.local for s in target["layers"].values()), target["embed"]]:
        a.fill(0)
    torch_ctx = _torch_setup(cmd) if mode.startswith("dcp") else None
    _say("ready")
    _wait_go()
    t0 = time.time()
    if mode == "ckpt":
        ckpt.save(state, url, step=1, rank=rank, world_size=world, timeout_s=1800)
    elif mode == "naive":
        _naive_save(state, cmd)
    else:
        _dcp_save(state, cmd, torch_ctx)
    _say("saved", t0=t0, t1=time.time())
    _wait_go()
    t0 = time.time()
    if mode == "ckpt":
        ckpt.load(url, target=target, rank=rank, world_size=world)
    elif mode == "naive":
        _naive_load(target, cmd)
    else:
        _dcp_load(target, cmd, torch_ctx)
    t1 = time.time()
    ok = all(np.array_equal(target["layers"][k].local, state["layers"][k].local) for k in state["layers"])
    ok = ok and np.array_equal(target["embed"], state["embed"])
    _say("loaded", t0=t0, t1=t1, ok=bool(ok))


def _connect(port: int, timeout_s: float = 120.0) -> Any:
    """A client connection to rank 0, which may not be listening yet."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return Client(("127.0.0.1", port))
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _naive_save(state: dict[str, Any], cmd: dict[str, Any]) -> None:
    """Rank 0 receives every rank's shards over a socket and saves the whole state alone."""
    import ckpt

    rank, world, port = cmd["rank"], cmd["world"], cmd["port"]
    if rank:
        with _connect(port) as conn:
            conn.send(rank)
            for k in sorted(state["layers"]):
                conn.send_bytes(memoryview(state["layers"][k].local).cast("B"))
            conn.recv()  # rank 0 has written everything
        return
    full = {k: np.empty(s.global_shape, np.float32) for k, s in state["layers"].items()}
    rows = state["layers"]["l0"].local.shape[0]
    for k, s in state["layers"].items():
        full[k][:rows] = s.local
    with Listener(("127.0.0.1", port)) as listener:
        conns = [listener.accept() for _ in range(world - 1)]
        for conn in conns:
            r = conn.recv()
            for k in sorted(state["layers"]):
                conn.recv_bytes_into(memoryview(full[k][r * rows:(r + 1) * rows]).cast("B"))
        ckpt.save({"layers": full, "embed": state["embed"], "step": 1}, cmd["url"], step=1)
        for conn in conns:
            conn.send("done")
            conn.close()


def _naive_load(target: dict[str, Any], cmd: dict[str, Any]) -> None:
    import ckpt

    rank, world, port = cmd["rank"], cmd["world"], cmd["port"] + 1
    rows = target["layers"]["l0"].local.shape[0]
    if rank:
        with _connect(port) as conn:
            conn.send(rank)
            for k in sorted(target["layers"]):
                conn.recv_bytes_into(memoryview(target["layers"][k].local).cast("B"))
            conn.recv_bytes_into(memoryview(target["embed"]).cast("B"))
        return
    full = ckpt.load(cmd["url"])
    for k in target["layers"]:
        target["layers"][k].local[:] = full["layers"][k][:rows]
    target["embed"][:] = full["embed"]
    with Listener(("127.0.0.1", port)) as listener:
        for _ in range(world - 1):
            conn = listener.accept()
            r = conn.recv()
            for k in sorted(target["layers"]):
                conn.send_bytes(memoryview(np.ascontiguousarray(full["layers"][k][r * rows:(r + 1) * rows])).cast("B"))
            conn.send_bytes(memoryview(full["embed"]).cast("B"))
            conn.close()


def _torch_setup(cmd: dict[str, Any]) -> Any:
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh

    dist.init_process_group("gloo", init_method=f"file://{cmd['store']}", rank=cmd["rank"],
                            world_size=cmd["world"])
    return init_device_mesh("cpu", (cmd["world"],))


def _dcp_state(state: dict[str, Any], mesh: Any) -> dict[str, Any]:
    import torch
    from torch.distributed.tensor import DTensor, Shard

    return {"layers": {k: DTensor.from_local(torch.from_numpy(s.local), mesh, [Shard(0)], run_check=False)
                       for k, s in state["layers"].items()},
            "embed": torch.from_numpy(state["embed"]), "step": 1}


def _dcp_io(cmd: dict[str, Any], save: bool) -> Any:
    if cmd["mode"] == "dcp_adapter":
        from ckpt.dcp import CkptReader, CkptWriter

        return CkptWriter(cmd["url"], step=1) if save else CkptReader(cmd["url"], step=1)
    from torch.distributed.checkpoint import FileSystemReader, FileSystemWriter

    return FileSystemWriter(cmd["url"]) if save else FileSystemReader(cmd["url"])


def _dcp_save(state: dict[str, Any], cmd: dict[str, Any], mesh: Any) -> None:
    import torch.distributed.checkpoint as dcp

    dcp.save(_dcp_state(state, mesh), storage_writer=_dcp_io(cmd, True))


def _dcp_load(target: dict[str, Any], cmd: dict[str, Any], mesh: Any) -> None:
    import torch.distributed.checkpoint as dcp

    dcp.load(_dcp_state(target, mesh), storage_reader=_dcp_io(cmd, False))


# ------------------------------------------------------------------ driver

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _reader(proc: subprocess.Popen[str], q: "queue.Queue[dict[str, Any] | None]") -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("{"):
            q.put(json.loads(line))
    q.put(None)  # the rank exited


def _next_msg(proc: subprocess.Popen[str], q: "queue.Queue[dict[str, Any] | None]", want: str,
              deadline: float) -> dict[str, Any]:
    while True:
        try:
            msg = q.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise TimeoutError(f"no '{want}' within the phase time limit") from None
        if msg is None:
            err = proc.stderr.read()[-2000:] if proc.stderr else ""
            raise RuntimeError(f"a rank exited before '{want}': {err}")
        if msg.get("msg") == want:
            return msg


def run_strategy(name: str, mode: str, url: str, args: argparse.Namespace, rows: int, total: int,
                 cache_paths: list[str], workdir: str) -> list[dict[str, Any]]:
    """Run one strategy's save then load on ``args.world`` rank processes; one row per phase."""
    base = {"mode": mode, "url": url, "world": args.world, "rows": rows, "port": free_port(),
            "store": os.path.join(workdir, f"store-{name}-{time.time_ns()}")}
    procs = [subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker", json.dumps({**base, "rank": r})],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=ENV) for r in range(args.world)]
    queues: list["queue.Queue[dict[str, Any] | None]"] = []
    for proc in procs:
        q: "queue.Queue[dict[str, Any] | None]" = queue.Queue()
        threading.Thread(target=_reader, args=(proc, q), daemon=True).start()
        queues.append(q)
    rows_out = []
    phase = "setup"
    try:
        deadline = time.monotonic() + args.phase_timeout
        for proc, q in zip(procs, queues):
            _next_msg(proc, q, "ready", deadline)
        for phase, want in (("save", "saved"), ("load", "loaded")):
            dropped = drop_caches(cache_paths) if phase == "load" else None
            for proc in procs:
                assert proc.stdin is not None
                proc.stdin.write("GO\n")
                proc.stdin.flush()
            deadline = time.monotonic() + args.phase_timeout
            msgs = [_next_msg(proc, q, want, deadline) for proc, q in zip(procs, queues)]
            wall = max(m["t1"] for m in msgs) - min(m["t0"] for m in msgs)
            row = {"name": name, "op": phase, "gbps": round(total / wall / 1e9, 4), "seconds": round(wall, 3),
                   "bytes": total, "world": args.world, "nproc": os.cpu_count()}
            if dropped:
                row["cache"] = dropped
                row["bit_exact"] = all(m.get("ok") for m in msgs)
            rows_out.append(row)
            print(json.dumps(row), flush=True)
        for proc in procs:
            proc.wait(60)
    except (TimeoutError, RuntimeError) as e:
        print(json.dumps({"name": name, "op": phase, "error": str(e)[-600:], "world": args.world,
                          "nproc": os.cpu_count()}), flush=True)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    return rows_out


def raw_disk(path: str, total: int, cache_paths: list[str]) -> list[dict[str, Any]]:
    """One sequential writer, then reader, of ``total`` bytes (4 MiB writes, fsync at the end)."""
    buf = np.random.default_rng(0).random((4 << 20) // 4, dtype=np.float32)
    view = memoryview(buf).cast("B")
    t0 = time.time()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    done = 0
    while done < total:
        done += os.write(fd, view[:min(len(view), total - done)])
    os.fsync(fd)
    os.close(fd)
    w = time.time() - t0
    how = drop_caches(cache_paths)
    t0 = time.time()
    fd = os.open(path, os.O_RDONLY)
    rbuf = bytearray(len(view))
    while os.readv(fd, [rbuf]):
        pass
    os.close(fd)
    r = time.time() - t0
    # the same bytes read into one buffer of the state's size (touched first, as a rank's state is):
    # a load fills fresh memory, the reader above refills one 4 MiB buffer that stays in the CPU's cache
    state = np.ones(total, dtype=np.uint8)
    how2 = drop_caches(cache_paths)
    t0 = time.time()
    fd = os.open(path, os.O_RDONLY)
    sview = memoryview(state)
    done = 0
    while done < total:
        n = os.readv(fd, [sview[done:done + len(view)]])
        if not n:
            break
        done += n
    os.close(fd)
    r2 = time.time() - t0
    out = [{"name": "raw_local_disk", "op": "save", "gbps": round(total / w / 1e9, 4), "seconds": round(w, 3),
            "bytes": total, "world": 1, "nproc": os.cpu_count()},
           {"name": "raw_local_disk", "op": "load", "gbps": round(total / r / 1e9, 4), "seconds": round(r, 3),
            "bytes": total, "world": 1, "nproc": os.cpu_count(), "cache": how},
           {"name": "raw_into_state", "op": "load", "gbps": round(total / r2 / 1e9, 4), "seconds": round(r2, 3),
            "bytes": total, "world": 1, "nproc": os.cpu_count(), "cache": how2}]
    for row in out:
        print(json.dumps(row), flush=True)
    os.unlink(path)
    return out


def mount_usable(mountpoint: str, timeout_s: float = 20.0) -> str | None:
    """None if a small create/write/read/unlink works on the mount in time, else why not."""
    probe = ("import os,sys; p=os.path.join(sys.argv[1],'.ckpt-bench-probe'); "
             "open(p,'wb').write(b'x'*100000); assert open(p,'rb').read()==b'x'*100000; os.unlink(p)")
    try:
        r = subprocess.run([sys.executable, "-c", probe, mountpoint], capture_output=True, text=True,
                           timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return f"a 100 kB create/write/read on {mountpoint} did not finish in {timeout_s:.0f} s"
    return None if r.returncode == 0 else f"probe failed: {r.stderr.strip()[-300:]}"


def try_mount(state_dir: str, mountpoint: str) -> tuple[str | None, str | None]:
    """(mountpoint, None) if a SuperFS mount of the cluster works, else (None, reason)."""
    os.makedirs(mountpoint, exist_ok=True)
    try:
        r = subprocess.run([sys.executable, "-m", "superfs.cli.main", "mount", mountpoint, "--state-dir", state_dir],
                           capture_output=True, text=True, env=ENV, timeout=60)
    except subprocess.TimeoutExpired:
        return None, "superfs mount did not return within 60 s"
    if r.returncode != 0:
        return None, f"superfs mount failed: {(r.stderr or r.stdout).strip()[-300:]}"
    why = mount_usable(mountpoint)
    return (mountpoint, None) if why is None else (None, why)


def unmount(state_dir: str, mountpoint: str) -> None:
    subprocess.run(["fusermount", "-u", "-z", mountpoint], capture_output=True, timeout=30)  # even if hung
    try:
        subprocess.run([sys.executable, "-m", "superfs.cli.main", "umount", mountpoint, "--state-dir", state_dir],
                       capture_output=True, env=ENV, timeout=60)
    except subprocess.TimeoutExpired:
        pass


# name -> (worker mode, where the checkpoint goes), run in this order
STRATEGIES = {
    "raw_local_disk": ("raw", "local"),
    "ckpt_superfs": ("ckpt", "superfs"),
    "naive_superfs": ("naive", "superfs"),
    "ckpt_local": ("ckpt", "local"),
    "dcp_local": ("dcp", "local"),
    "dcp_adapter": ("dcp_adapter", "superfs"),
    "dcp_mount": ("dcp", "mount"),
    "ckpt_mount": ("ckpt", "mount"),
}


def _remove(url: str) -> None:
    """Free the space a strategy used before the next one runs."""
    if url.startswith("superfs://"):
        from ckpt.storage import open_storage

        open_storage(url).remove_tree("")
    else:
        shutil.rmtree(url, ignore_errors=True)


# (ours, baseline, target ratio): the targets, and the same comparisons on other media
COMPARISONS = [
    ("ckpt_superfs", "raw_local_disk", 0.6),
    ("ckpt_superfs", "naive_superfs", 2.0),
    ("ckpt_superfs", "dcp_mount", 1.5),
    ("ckpt_mount", "dcp_mount", 1.5),
    ("ckpt_local", "dcp_local", 1.5),
    ("ckpt_local", "raw_local_disk", 0.6),
    # not a target: the same reader filling a state-sized buffer, as every load must
    ("ckpt_superfs", "raw_into_state", 0.6),
    ("ckpt_local", "raw_into_state", 0.6),
]


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Ratios against the targets, from the best repetition of each row (interference only slows)."""
    rate: dict[tuple[str, str], float] = {}
    for r in rows:
        key = (r["name"], r["op"])
        rate[key] = max(rate.get(key, 0.0), r["gbps"])
    out: dict[str, Any] = {"name": "summary", "nproc": os.cpu_count()}
    for ours, base, target in COMPARISONS:
        for op in ("save", "load"):
            if rate.get((ours, op)) and rate.get((base, op)):
                ratio = round(rate[(ours, op)] / rate[(base, op)], 3)
                out[f"{op}:{ours}/{base}"] = {"ratio": ratio, "target": target, "met": ratio >= target}
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--world", type=int, default=4, help="rank processes (default 4)")
    p.add_argument("--total-mb", type=int, default=1024, help="sharded state size in MiB (default 1024)")
    p.add_argument("--data-servers", type=int, default=2)
    p.add_argument("--replicas", type=int, default=2)
    p.add_argument("--mount", choices=["auto", "none"], default="auto",
                   help="auto (default): mount the bench's cluster with 'superfs mount' for the *_mount rows "
                        "(skipped, with the reason, if the mount does not work); none: skip them")
    p.add_argument("--only", help="comma-separated strategies to run (default: all)")
    p.add_argument("--repeat", type=int, default=1, help="run every strategy this many times, interleaved "
                                                          "(the summary uses each row's best)")
    p.add_argument("--workdir", help="where to put the cluster and local files (default: a temp dir)")
    p.add_argument("--phase-timeout", type=float, default=900.0,
                   help="seconds one save or load may take before its row is reported as an error (default 900)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(json.loads(args.worker))
        return 0

    from superfs import config
    from superfs.cli.launcher import LocalCluster

    workdir = args.workdir or tempfile.mkdtemp(prefix="ckpt-bench-")
    os.makedirs(workdir, exist_ok=True)
    rows = rows_per_rank(args.total_mb << 20, args.world)
    total = state_bytes(rows, args.world)
    only = set(args.only.split(",")) if args.only else None
    has_torch = importlib.util.find_spec("torch") is not None
    cluster = LocalCluster(os.path.join(workdir, "cluster"))
    cluster.init(shards=2, data_servers=args.data_servers, replicas=args.replicas,
                 inline_threshold=config.DEFAULT_INLINE_THRESHOLD, chunk_size=config.DEFAULT_CHUNK_SIZE,
                 durability=config.DURABLE)
    cluster.start()
    addr = str(cluster.config["dir_server"])
    print(json.dumps({"name": "config", "world": args.world, "bytes": total, "data_servers": args.data_servers,
                      "replicas": args.replicas, "chunk_size": config.DEFAULT_CHUNK_SIZE, "durability": "durable",
                      "repeat": args.repeat, "nproc": os.cpu_count(), "torch": has_torch}), flush=True)
    caches = [workdir]
    results: list[dict[str, Any]] = []
    mnt = os.path.join(workdir, "mnt")
    mountpoint = None
    try:
        want = {name for name in STRATEGIES if only is None or name in only}
        skipped: dict[str, str] = {}
        if not has_torch:
            skipped.update({n: "torch is not installed" for n in ("dcp_local", "dcp_adapter", "dcp_mount")})
        if want & {"dcp_mount", "ckpt_mount"}:
            if args.mount == "none":
                why: str | None = "--mount none"
            else:
                mountpoint, why = try_mount(cluster.state_dir, mnt)
            if why:
                skipped.update({"dcp_mount": f"SuperFS mount not usable: {why}",
                                "ckpt_mount": f"SuperFS mount not usable: {why}"})
        for name in sorted(want & set(skipped)):
            print(json.dumps({"name": name, "skipped": skipped[name]}), flush=True)
        for rep in range(args.repeat):
            for name, (mode, where) in STRATEGIES.items():
                if name not in want or name in skipped:
                    continue
                if name == "raw_local_disk":
                    results += raw_disk(os.path.join(workdir, "raw.bin"), total, caches)
                    continue
                url = {"superfs": f"superfs://{addr}/{name}-{rep}", "local": os.path.join(workdir, f"{name}-{rep}"),
                       "mount": os.path.join(mnt, f"{name}-{rep}")}[where]
                results += run_strategy(name, mode, url, args, rows, total, caches, workdir)
                _remove(url)
        print(json.dumps(summary(results)), flush=True)
    finally:
        if mountpoint is not None or os.path.ismount(mnt):
            unmount(cluster.state_dir, mnt)
        cluster.stop()
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
