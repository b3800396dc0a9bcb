"""mdtest-style metadata benchmark, with IO500's phases, over any directory or the library.

P worker processes (default: nproc) run the phases in lock step (a barrier
between phases), as IO500's mdtest runs do:

- easy: empty files, one directory per process: ``easy_create``, ``easy_stat``,
  ``easy_remove``;
- hard: 3901-byte files in one shared directory: ``hard_write``,
  ``hard_stat``, ``hard_read``, ``hard_remove``;
- ``mkdir`` / ``rmdir`` of empty directories (one parent per process);
- ``find``: a find-like walk of the whole tree (readdir, recursing into
  directories), split between the processes by top-level directory.

Order: easy_create, hard_write, mkdir, find, easy_stat, hard_stat, hard_read,
easy_remove, hard_remove, rmdir. Later phases work on what the earlier ones
created (so a stonewalled create phase bounds them too).

A phase's ops/s is its successful operations over its wall time (first start
to last finish across processes); p50/p99 are per-operation latencies (for
``find``: per directory listed, ops are entries seen). A failed operation is
counted in ``errors`` and is neither an op nor a latency sample. With
``--stonewall S`` each process stops a phase after S seconds (mdtest -W).
The score row is the geometric mean of the phases' ops/s (mean over
iterations), 0 if any phase did nothing.

    superfs bench md /mnt/superfs --files 2000 --procs 2
    superfs bench md superfs:///bench --files 2000      # through the library
    python bench/md.py /dev/shm/x --files 1000
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from superfs.bench.report import emit, geomean, percentile_us
from superfs.bench.targets import FsOps, TargetSpec

PHASES = ("easy_create", "hard_write", "mkdir", "find", "easy_stat", "hard_stat", "hard_read",
          "easy_remove", "hard_remove", "rmdir")
HARD_SIZE = 3901
RESULT_TIMEOUT_S = 3600.0


@dataclass(frozen=True)
class MdConfig:
    """What one run does; ``files`` is per process."""

    files: int = 1000
    procs: int = os.cpu_count() or 1
    iterations: int = 1
    stonewall_s: float | None = None
    phases: tuple[str, ...] = PHASES
    hard_size: int = HARD_SIZE
    cleanup: bool = True
    label: str | None = None


@dataclass
class PhaseResult:
    """One process's share of one phase."""

    phase: str
    rank: int
    ok: int = 0
    errors: int = 0
    start: float = 0.0
    end: float = 0.0
    latencies: list[float] = field(default_factory=list)
    first_error: str | None = None
    stonewalled: bool = False
    dir_rpcs: int | None = None


def timed_loop(phase: str, rank: int, items: Iterable[str], op: Callable[[str], Any],
               stonewall_s: float | None, ops: FsOps) -> tuple[PhaseResult, list[str]]:
    """Run ``op`` on each item, timing each; return the result and the items that succeeded."""
    res = PhaseResult(phase, rank)
    done: list[str] = []
    calls0 = ops.dir_rpcs()
    clock = time.perf_counter
    res.start = clock()
    deadline = res.start + stonewall_s if stonewall_s else None
    for item in items:
        t = clock()
        if deadline is not None and t > deadline:
            res.stonewalled = True
            break
        try:
            op(item)
        except Exception as e:  # noqa: BLE001 - every failure is an error row, whatever raised it
            res.errors += 1
            if res.first_error is None:
                res.first_error = f"{type(e).__name__}: {e}"
            continue
        res.latencies.append(clock() - t)
        done.append(item)
    res.end = clock()
    res.ok = len(done)
    calls1 = ops.dir_rpcs()
    res.dir_rpcs = None if calls0 is None or calls1 is None else calls1 - calls0
    return res, done


def walk_phase(rank: int, tops: list[str], ops: FsOps, stonewall_s: float | None) -> PhaseResult:
    """find-like: list each directory, descend into subdirectories; ops are entries seen."""
    res = PhaseResult("find", rank)
    calls0 = ops.dir_rpcs()
    clock = time.perf_counter
    res.start = clock()
    deadline = res.start + stonewall_s if stonewall_s else None
    stack = list(reversed(tops))
    while stack:
        d = stack.pop()
        t = clock()
        if deadline is not None and t > deadline:
            res.stonewalled = True
            break
        try:
            entries = ops.scandir(d)
        except Exception as e:  # noqa: BLE001
            res.errors += 1
            if res.first_error is None:
                res.first_error = f"{type(e).__name__}: {e}"
            continue
        res.latencies.append(clock() - t)
        res.ok += len(entries)
        stack.extend(os.path.join(d, name) for name, is_dir in entries if is_dir)
    res.end = clock()
    calls1 = ops.dir_rpcs()
    res.dir_rpcs = None if calls0 is None or calls1 is None else calls1 - calls0
    return res


def remove_tree(ops: FsOps, top: str) -> None:
    """Best-effort removal of what a run left behind (errors ignored)."""
    try:
        entries = ops.scandir(top)
    except OSError:
        return
    for name, is_dir in entries:
        path = os.path.join(top, name)
        try:
            remove_tree(ops, path) if is_dir else ops.unlink(path)
        except OSError:
            pass
    try:
        ops.rmdir(top)
    except OSError:
        pass


def worker(rank: int, spec: TargetSpec, cfg: MdConfig, run_dir: str, barrier: Any, results: Any) -> None:
    """One benchmark process: set up its directories, run every phase between barriers."""
    ops: FsOps | None = None
    try:
        ops = spec.open()
        hard = os.path.join(run_dir, "hard")
        if rank == 0:
            ops.makedirs(spec.root)
            ops.mkdir(run_dir)
            ops.mkdir(hard)
        barrier.wait()
        easy, dirs = os.path.join(run_dir, f"easy-{rank}"), os.path.join(run_dir, f"dirs-{rank}")
        ops.mkdir(easy)
        ops.mkdir(dirs)
        barrier.wait()
        for d in (easy, dirs, hard):  # a warm client: the phases' directories are known
            ops.stat(d)
    except Exception as e:  # noqa: BLE001
        results.put(("fatal", rank, f"setup: {type(e).__name__}: {e}"))
        barrier.abort()
        return
    data = os.urandom(cfg.hard_size)

    def read_checked(path: str) -> None:
        got = ops.read(path)  # type: ignore[union-attr]
        if len(got) != cfg.hard_size:
            raise ValueError(f"{path}: read {len(got)} bytes, expected {cfg.hard_size}")

    easy_files = [os.path.join(easy, f"f{i}") for i in range(cfg.files)]
    hard_files = [os.path.join(hard, f"r{rank}.f{i}") for i in range(cfg.files)]
    subdirs = [os.path.join(dirs, f"d{i}") for i in range(cfg.files)]
    made: dict[str, list[str]] = {"easy": [], "hard": [], "dirs": []}
    plan: dict[str, tuple[str, Callable[[str], Any], bool]] = {
        # phase: (which set, operation, does it create that set)
        "easy_create": ("easy", ops.create, True),
        "hard_write": ("hard", lambda p: ops.write(p, data), True),  # type: ignore[union-attr]
        "mkdir": ("dirs", ops.mkdir, True),
        "easy_stat": ("easy", ops.stat, False),
        "hard_stat": ("hard", ops.stat, False),
        "hard_read": ("hard", read_checked, False),
        "easy_remove": ("easy", ops.unlink, False),
        "hard_remove": ("hard", ops.unlink, False),
        "rmdir": ("dirs", ops.rmdir, False),
    }
    wanted = {"easy": easy_files, "hard": hard_files, "dirs": subdirs}
    try:
        for phase in cfg.phases:
            barrier.wait()
            if phase == "find":
                tops = [easy, dirs] + ([hard] if rank == 0 else [])
                results.put(("phase", rank, walk_phase(rank, tops, ops, cfg.stonewall_s)))
                continue
            which, op, creates = plan[phase]
            items = wanted[which] if creates else made[which]
            res, done = timed_loop(phase, rank, items, op, cfg.stonewall_s, ops)
            if creates:
                made[which] = done
            elif phase.endswith("remove") or phase == "rmdir":
                gone = set(done)
                made[which] = [p for p in made[which] if p not in gone]
            results.put(("phase", rank, res))
        barrier.wait()
        if rank == 0 and cfg.cleanup:
            remove_tree(ops, run_dir)
    except Exception as e:  # noqa: BLE001 - a broken barrier or a dead target ends the run
        results.put(("fatal", rank, f"{type(e).__name__}: {e}"))
        barrier.abort()
    finally:
        ops.close()


def phase_row(phase: str, parts: list[PhaseResult], spec: TargetSpec, cfg: MdConfig,
              iteration: int) -> dict[str, Any]:
    """Aggregate the processes' shares of one phase into one JSON row."""
    ok = sum(p.ok for p in parts)
    errors = sum(p.errors for p in parts)
    secs = max(p.end for p in parts) - min(p.start for p in parts) if parts else 0.0
    lat = sorted(x for p in parts for x in p.latencies)
    calls = [p.dir_rpcs for p in parts]
    dir_rpcs = None if any(c is None for c in calls) else sum(c for c in calls if c is not None)
    first = next((p.first_error for p in parts if p.first_error), None)
    return {
        "name": "md", "phase": phase, "target": str(spec), "label": cfg.label,
        "procs": cfg.procs, "files_per_proc": cfg.files, "iteration": iteration,
        "ops": ok, "errors": errors, "seconds": round(secs, 4),
        "ops_per_s": round(ok / secs, 1) if secs > 0 and ok else 0.0,
        "p50_us": percentile_us(lat, 0.5), "p99_us": percentile_us(lat, 0.99),
        "stonewall_s": cfg.stonewall_s, "stonewalled": any(p.stonewalled for p in parts),
        "dir_rpcs": dir_rpcs,
        "dir_rpcs_per_op": round(dir_rpcs / ok, 4) if dir_rpcs is not None and ok else None,
        "first_error": first, "nproc": os.cpu_count(),
    }


def score_row(rows: list[dict[str, Any]], spec: TargetSpec, cfg: MdConfig) -> dict[str, Any]:
    """Geometric mean over phases of each phase's ops/s (mean over iterations)."""
    per_phase: dict[str, list[float]] = {}
    for r in rows:
        per_phase.setdefault(r["phase"], []).append(r["ops_per_s"])
    means = {k: sum(v) / len(v) for k, v in per_phase.items()}
    return {"name": "md", "phase": "score", "target": str(spec), "label": cfg.label,
            "procs": cfg.procs, "files_per_proc": cfg.files, "iterations": cfg.iterations,
            "score": round(geomean(means.values()), 1), "phases": len(means),
            "ops": sum(r["ops"] for r in rows), "errors": sum(r["errors"] for r in rows),
            "nproc": os.cpu_count()}


class BenchError(RuntimeError):
    """The run could not go on (setup failed, a worker died)."""


def run_iteration(spec: TargetSpec, cfg: MdConfig, iteration: int,
                  on_row: Callable[[dict[str, Any]], None] = emit) -> list[dict[str, Any]]:
    """One pass over the phases with fresh directories; one row per phase."""
    # fork for plain directories (cheap, keeps the caller's state); spawn for the library,
    # so that no process inherits a gRPC runtime from its parent
    ctx: Any = mp.get_context("spawn" if spec.kind == "library" else "fork")
    run_dir = spec.join(f"md-{os.getpid()}-{iteration}-{time.time_ns() % 10**9}")
    barrier = ctx.Barrier(cfg.procs, timeout=RESULT_TIMEOUT_S)
    results = ctx.Queue()
    procs = [ctx.Process(target=worker, args=(r, spec, cfg, run_dir, barrier, results), daemon=True)
             for r in range(cfg.procs)]
    for p in procs:
        p.start()
    rows = []
    # a queue keeps each writer's order, not the order between writers: a fast worker's
    # next phase can arrive before a slow worker's last one, so results are sorted by phase
    got: dict[str, list[PhaseResult]] = {p: [] for p in cfg.phases}
    try:
        for phase in cfg.phases:
            while len(got[phase]) < cfg.procs:
                try:
                    kind, rank, payload = results.get(timeout=RESULT_TIMEOUT_S)
                except Exception:
                    raise BenchError(f"{phase}: no result from the workers") from None
                if kind == "fatal":
                    raise BenchError(f"worker {rank}: {payload}")
                got[payload.phase].append(payload)
            rows.append(phase_row(phase, got[phase], spec, cfg, iteration))
            on_row(rows[-1])
    finally:
        for p in procs:
            p.join(RESULT_TIMEOUT_S if not rows or len(rows) == len(cfg.phases) else 5)
            if p.is_alive():
                p.kill()
                p.join()
    return rows


def run(spec: TargetSpec, cfg: MdConfig, quiet: bool = False) -> list[dict[str, Any]]:
    """All iterations, then the score row; rows are printed as they come unless ``quiet``."""
    rows: list[dict[str, Any]] = []
    for it in range(cfg.iterations):
        rows += run_iteration(spec, cfg, it, (lambda r: None) if quiet else emit)
    score = score_row(rows, spec, cfg)
    if not quiet:
        emit(score)
    return rows + [score]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", metavar="TARGET",
                   help="a directory (local, tmpfs, a mount), or superfs://HOST:PORT/dir or superfs:///dir "
                        "for the client library")
    p.add_argument("--files", type=int, default=1000, metavar="N", help="files per process per phase (1000)")
    p.add_argument("--procs", type=int, default=os.cpu_count() or 1, metavar="P",
                   help="worker processes (default: nproc)")
    p.add_argument("--iterations", type=int, default=1, metavar="K", help="passes over the phases (1)")
    p.add_argument("--stonewall", type=float, default=None, metavar="S",
                   help="stop each phase of each process after S seconds (mdtest -W)")
    p.add_argument("--phases", default=",".join(PHASES), help="comma-separated subset, in this order: "
                   + ",".join(PHASES))
    p.add_argument("--label", default=None, help="a name for the target in the rows (e.g. cephfs)")
    p.add_argument("--state-dir", default=None, help="local cluster state dir, for superfs:///dir")
    p.add_argument("--no-cleanup", action="store_true", help="leave what the run created")


def config_from_args(args: argparse.Namespace) -> MdConfig:
    phases = tuple(x for x in args.phases.split(",") if x)
    unknown = [x for x in phases if x not in PHASES]
    if unknown:
        raise SystemExit(f"unknown phase(s): {', '.join(unknown)}; known: {', '.join(PHASES)}")
    return MdConfig(files=args.files, procs=max(1, args.procs), iterations=max(1, args.iterations),
                    stonewall_s=args.stonewall, phases=tuple(p for p in PHASES if p in phases),
                    cleanup=not args.no_cleanup, label=args.label)


def main(args: argparse.Namespace) -> int:
    spec = TargetSpec.parse(args.target, args.state_dir)
    cfg = config_from_args(args)
    try:
        run(spec, cfg)
    except BenchError as e:
        print(f"superfs bench md: {e}", file=sys.stderr)
        return 1
    return 0


