"""Randomized crash test: a mixed workload from several client processes while daemons are kill -9'd.

Client processes (this file run with ``--worker``) each work in their own
subtree: create and write files (inline and chunked), overwrite them, rename
them across directories (replacing existing files too), unlink them, make,
remove and rename directories, and read files back. Each keeps a model of
its subtree:

- an acknowledged operation (it returned success) updates the model: from
  then on the file system must show it;
- an operation that failed (a daemon it needed was killed) has an unknown
  outcome: its paths become an *uncertain group* listing the states it may
  have left (before, or after; a failed write leaves any content), and those
  paths are never touched again.

Meanwhile this test, as the killer, kill -9s a random daemon, waits a little
and restarts it, bounded by a number of kills and a time limit. At the end
every daemon is up, the daemons finish their pending work, and then: every
certain path is exactly as modelled, every uncertain group is in one of its
allowed states (a renamed file is under exactly one name...), no other name
exists, no read ever returned wrong bytes, and fsck finds no inconsistency.

The seed is printed; ``SUPERFS_CRASH_SEED=<seed>`` replays the same choices
(the timing of kills against operations still varies).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import subprocess
import sys
import time
from typing import Any

ANY_FILE = "f:*"
WORKERS = 3
KILLS = 8
KILL_PHASE_S = 35.0
WORKER_TIMEOUT_S = 2.0
START_DIRS = 3


def digest(data: bytes) -> str:
    return "f:" + hashlib.sha256(data).hexdigest()[:16]


# ------------------------------------------------------------------ the worker

class Worker:
    """One client process: random operations on its own subtree, with a model of what must be there."""

    def __init__(self, client: Any, root: str, rnd: random.Random) -> None:
        self.c = client
        self.root = root
        self.rnd = rnd
        self.certain: dict[str, str] = {root: "d"}
        self.groups: list[dict[str, Any]] = []
        self.frozen: set[str] = set()
        self.violations: list[str] = []
        self.counts: dict[str, list[int]] = {}
        self.journal: list[list[Any]] = []  # [op, paths..., outcome]: to explain a failure
        self.inos: dict[str, int] = {}
        self.n = 0

    # -------------------------------------------------------------- choices

    def _new_name(self, kind: str) -> str:
        self.n += 1
        return f"{kind}{self.n}"

    def _frozen_under(self, d: str) -> bool:
        return any(p == d or p.startswith(d + "/") for p in self.frozen)

    def _dirs(self) -> list[str]:
        return sorted(p for p, v in self.certain.items() if v == "d")

    def _files(self) -> list[str]:
        return sorted(p for p, v in self.certain.items() if v != "d")

    def _data(self) -> bytes:
        size = self.rnd.choice([self.rnd.randint(0, 3000), self.rnd.randint(5000, 150_000)])
        return self.rnd.randbytes(size)

    def _uncertain(self, options: list[dict[str, str | None]]) -> None:
        """The last operation's outcome is unknown: any of ``options`` may be what it left."""
        paths = sorted({p for o in options for p in o})
        for p in paths:
            self.certain.pop(p, None)
            self.frozen.add(p)
        self.groups.append({"paths": paths, "options": options})

    # ----------------------------------------------------------- operations

    def step(self) -> None:
        ops = [(self.create, 25), (self.overwrite, 10), (self.rename_file, 20), (self.unlink, 10),
               (self.mkdir, 10), (self.rmdir, 7), (self.rename_dir, 8), (self.read, 10)]
        op = self.rnd.choices([o for o, _ in ops], [w for _, w in ops])[0]
        name = op.__name__
        ok = op()
        if ok is not None:
            tally = self.counts.setdefault(name, [0, 0])
            tally[0 if ok else 1] += 1

    def write_file(self, path: str, data: bytes) -> None:
        """Create or truncate ``path`` and write ``data``, through the asyncio client.

        Not ``Client.write_bytes``: its file object commits the size of a
        write that failed (RawFile keeps its dirty flag, and IOBase.close
        flushes again), which leaves replicas disagreeing inside the file;
        see test_t5_bounded.py::test_a_failed_write_does_not_commit_its_size.
        """
        async def go() -> None:
            node = await self.c.aio.open_node(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            self.inos[path] = node.ino
            if data:
                await self.c.aio.write_at(node, 0, data)

        self.inos.pop(path, None)
        try:
            self.c.run(go())
        finally:
            if path in self.inos:
                self.journal.append([time.time(), "ino", path, self.inos[path]])

    def _try(self, fn: Any, *what: Any) -> bool:
        try:
            fn()
            ok = True
        except OSError as e:
            ok = False
            what = (*what, f"errno {e.errno}")
        self.journal.append([time.time(), *what, "ok" if ok else "FAILED"])
        return ok

    def create(self) -> bool | None:
        d = self.rnd.choice(self._dirs())
        p = f"{d}/{self._new_name('f')}"
        data = self._data()
        if self._try(lambda: self.write_file(p, data), "create", p, digest(data)):
            self.certain[p] = digest(data)
            return True
        self._uncertain([{p: None}, {p: ANY_FILE}])
        return False

    def overwrite(self) -> bool | None:
        files = self._files()
        if not files:
            return None
        p = self.rnd.choice(files)
        data = self._data()
        if self._try(lambda: self.write_file(p, data), "overwrite", p, digest(data)):
            self.certain[p] = digest(data)
            return True
        self._uncertain([{p: ANY_FILE}])
        return False

    def rename_file(self) -> bool | None:
        files = self._files()
        if not files:
            return None
        src = self.rnd.choice(files)
        others = [f for f in files if f != src]
        if others and self.rnd.random() < 0.3:
            dst = self.rnd.choice(others)  # replace an existing file
        else:
            dst = f"{self.rnd.choice(self._dirs())}/{self._new_name('r')}"
        before = {src: self.certain[src], dst: self.certain.get(dst)}
        after = {src: None, dst: self.certain[src]}
        if self._try(lambda: self.c.rename(src, dst), "rename", src, dst):
            self.certain[dst] = self.certain.pop(src)
            return True
        self._uncertain([before, after])
        return False

    def unlink(self) -> bool | None:
        files = self._files()
        if not files:
            return None
        p = self.rnd.choice(files)
        if self._try(lambda: self.c.unlink(p), "unlink", p):
            del self.certain[p]
            return True
        self._uncertain([{p: self.certain[p]}, {p: None}])
        return False

    def mkdir(self) -> bool | None:
        p = f"{self.rnd.choice(self._dirs())}/{self._new_name('d')}"
        if self._try(lambda: self.c.mkdir(p), "mkdir", p):
            self.certain[p] = "d"
            return True
        self._uncertain([{p: None}, {p: "d"}])
        return False

    def _empty(self, d: str) -> bool:
        return not any(p.startswith(d + "/") for p in self.certain) and not self._frozen_under(d)

    def rmdir(self) -> bool | None:
        empty = [d for d in self._dirs() if d != self.root and self._empty(d)]
        if not empty:
            return None
        p = self.rnd.choice(empty)
        if self._try(lambda: self.c.rmdir(p), "rmdir", p):
            del self.certain[p]
            return True
        self._uncertain([{p: "d"}, {p: None}])
        return False

    def rename_dir(self) -> bool | None:
        movable = [d for d in self._dirs() if d != self.root and not self._frozen_under(d)]
        if not movable:
            return None
        src = self.rnd.choice(movable)
        targets = [d for d in self._dirs() if d != src and not d.startswith(src + "/")]
        dst = f"{self.rnd.choice(targets)}/{self._new_name('m')}"
        inside = {p: v for p, v in self.certain.items() if p == src or p.startswith(src + "/")}
        moved = {dst + p[len(src):]: v for p, v in inside.items()}
        if self._try(lambda: self.c.rename(src, dst), "rename-dir", src, dst):
            for p in inside:
                del self.certain[p]
            self.certain.update(moved)
            return True
        before: dict[str, str | None] = {**inside, **{p: None for p in moved}}
        after: dict[str, str | None] = {**{p: None for p in inside}, **moved}
        self._uncertain([before, after])
        return False

    def read(self) -> bool | None:
        files = self._files()
        if not files:
            return None
        p = self.rnd.choice(files)
        try:
            data = self.c.read_bytes(p)
        except OSError:
            return False
        self.journal.append([time.time(), "read", p, digest(data)])
        if digest(data) != self.certain[p]:
            self.violations.append(f"read of {p} returned {len(data)} bytes that are not what was written")
        return True

    def model(self) -> dict[str, Any]:
        return {"root": self.root, "certain": self.certain, "groups": self.groups,
                "violations": self.violations, "counts": self.counts, "journal": self.journal}


def worker_main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker", action="store_true")
    ap.add_argument("--address", required=True)
    ap.add_argument("--root", required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--stop-file", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    import superfs

    rnd = random.Random(args.seed)
    with superfs.connect(args.address, timeout_s=WORKER_TIMEOUT_S) as c:
        w = Worker(c, args.root, rnd)
        for i in range(START_DIRS):  # made by the test before any kill
            w.certain[f"{args.root}/s{i}"] = "d"
        with open(args.out + ".ready", "w"):
            pass  # connected: the killer may start
        while not os.path.exists(args.stop_file):
            try:
                w.step()
            except Exception as e:  # noqa: BLE001 - anything but OSError is a client bug: report it
                w.violations.append(f"unexpected {type(e).__name__}: {e}")
                break
    with open(args.out, "w") as f:
        json.dump(w.model(), f)
    return 0


# -------------------------------------------------------------------- checking

def actual_tree(c: Any, root: str) -> dict[str, str]:
    out = {root: "d"}
    for top, dirs, files in c.walk(root):
        for d in dirs:
            out[f"{top}/{d}"] = "d"
        for f in files:
            out[f"{top}/{f}"] = digest(c.read_bytes(f"{top}/{f}"))
    return out


def _matches(want: str | None, got: str | None) -> bool:
    if want == ANY_FILE:
        return got is not None and got.startswith("f:")
    return want == got


def compare(model: dict[str, Any], actual: dict[str, str]) -> list[str]:
    """Every way ``actual`` departs from what the worker's acknowledged operations imply."""
    problems = [f"{model['root']}: {v}" for v in model["violations"]]
    for p, v in model["certain"].items():
        if actual.get(p) != v:
            problems.append(f"acknowledged {p} = {v}, found {actual.get(p)}")
    known = set(model["certain"])
    for g in model["groups"]:
        known.update(g["paths"])
        seen = {p: actual.get(p) for p in g["paths"]}
        if not any(all(_matches(o.get(p), seen[p]) for p in g["paths"]) for o in g["options"]):
            problems.append(f"unknown-outcome operation left {seen}, allowed: {g['options']}")
    for p in sorted(set(actual) - known):
        problems.append(f"unexpected name {p} = {actual[p]}")
    return problems


# ---------------------------------------------------------------------- the test

def test_random_workload_under_random_kill_9(cluster_factory, tmp_path):
    from t5_support import address, ensure_all_up, fsck, pending_work, retry, wait_until

    from superfs.client import connect

    seed = int(os.environ.get("SUPERFS_CRASH_SEED", random.randrange(1 << 30)))
    print(f"\nrandom crash test seed: {seed}  (replay: SUPERFS_CRASH_SEED={seed})")
    rnd = random.Random(seed)
    cluster = cluster_factory(shards=2, data_servers=2, replicas=2)
    addr = address(cluster)
    with connect(addr) as c:
        for i in range(WORKERS):
            for j in range(START_DIRS):
                c.makedirs(f"/w{i}/s{j}")
    stop = str(tmp_path / "stop")
    outs = [str(tmp_path / f"model{i}.json") for i in range(WORKERS)]
    workers = [subprocess.Popen([sys.executable, __file__, "--worker", "--address", addr, "--root", f"/w{i}",
                                 "--seed", str(seed + i), "--stop-file", stop, "--out", outs[i]],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for i in range(WORKERS)]
    kills: list[str] = []
    names = [n for n, _, _ in cluster.status()]
    deadline = time.monotonic() + KILL_PHASE_S
    try:
        wait_until(lambda: all(os.path.exists(o + ".ready") or w.poll() is not None
                               for o, w in zip(outs, workers)), "the workers to connect")
        time.sleep(1.0)  # let them get going
        while len(kills) < KILLS and time.monotonic() < deadline:
            victim = rnd.choice(names)
            cluster.kill(victim)
            kills.append(victim)
            time.sleep(rnd.uniform(0.2, 1.5))
            cluster.start_daemon(victim)
            cluster.wait_ready(victim)
            time.sleep(rnd.uniform(0.5, 3.0))
    finally:
        with open(stop, "w"):
            pass
        logs = [w.communicate(timeout=180)[0] for w in workers]
    print(f"killed: {', '.join(kills)}")
    for i, w in enumerate(workers):
        assert w.returncode == 0, f"worker {i} failed:\n{logs[i]}"

    ensure_all_up(cluster)
    wait_until(lambda: pending_work(cluster) == 0, "the daemons to finish their pending work", timeout_s=120)
    problems: list[str] = []
    with connect(addr) as c:
        for out in outs:
            with open(out) as f:
                model = json.load(f)
            print(f"{model['root']}: {json.dumps(model['counts'])}, {len(model['certain'])} certain paths, "
                  f"{len(model['groups'])} unknown outcomes")
            problems += compare(model, retry(lambda: actual_tree(c, model["root"])))
    if problems:
        with open(str(tmp_path / "journals.json"), "w") as f:
            json.dump({o: json.load(open(o))["journal"] for o in outs}, f)
        print(f"journals of the workers: {tmp_path / 'journals.json'}")
    assert not problems, f"seed {seed}:\n" + "\n".join(problems)
    rc, report = fsck(cluster)
    print(report)
    if rc != 0:
        _explain(addr, outs, report)
    assert rc == 0, f"seed {seed}: fsck is not clean:\n{report}"


def _explain(addr: str, outs: list[str], report: str) -> None:
    """For each inode fsck complains about: its path, what the model says of it, its journal."""
    import re

    from superfs.client import connect

    inos = {int(x) for line in report.splitlines() if "[error]" in line for x in re.findall(r"inode (\d+)", line)}
    models = [json.load(open(o)) for o in outs]
    for m in models:
        for e in m["journal"]:
            if e[1] == "ino" and e[3] in inos:
                print(f"inode {e[3]} was {e[2]}:")
                for e2 in m["journal"]:
                    if any(isinstance(x, str) and x == e[2] for x in e2[1:]):
                        print("    ", e2)
    with connect(addr) as c:
        for m in models:
            for top, _, files in c.walk(m["root"]):
                for f in files:
                    p = f"{top}/{f}"
                    ino = c.stat(p).st_ino
                    if ino not in inos:
                        continue
                    status = m["certain"].get(p) or next(
                        (f"uncertain {g['options']}" for g in m["groups"] if p in g["paths"]), "unknown")
                    print(f"inode {ino} = {p}: {status}")
                    for e in m["journal"]:
                        if any(isinstance(x, str) and (x == p or p.startswith(x + "/")) for x in e[1:]):
                            print("    ", e)


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1:]))
