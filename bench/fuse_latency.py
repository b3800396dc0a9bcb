"""Latency of file operations through the SuperFS mount, a local dir and a passthrough.

For each target (``superfs``: a real mount of a fresh local cluster in the
default configuration, durable; ``local``: a directory on local disk;
``passthrough``: bench/passthrough.py mounting a local directory, the floor of
any Python FUSE file system) it measures, one operation at a time from this
process, median and p99 latency of:

    mkdir, create (open O_CREAT|O_EXCL + close), stat_warm (the same file
    stat'ed just before: attributes cached by the kernel), stat_cold (after dropping the kernel's dentries and inodes),
    write_4k (create + write 4 KiB + close), open_read_4k (open + read 4 KiB +
    close, kernel caches dropped first), rename, unlink, readdir_10000
    (listing a directory of 10,000 entries, whole)

and prints one JSON object per (target, operation); superfs rows carry the
ratio of their median to the passthrough's. A fourth target, ``client``,
runs the same operations on the same cluster through the client library with
no FUSE in between (create = CreateFile, stat = LookupFile, write_4k =
CreateFile + WriteInline, open_read_4k = LookupFile with the bytes): the RPC
floor, so that superfs minus client is what the mount itself adds. Dropping caches needs root;
without it the cold rows are skipped.

    python bench/fuse_latency.py [--n 1000] [--readdir-n 10000] [--targets superfs,local,passthrough]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from typing import Callable, Iterator

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from superfs.bench.cluster import fuse_unmount as unmount  # noqa: E402
from superfs.bench.cluster import wait_mounted  # noqa: E402
from superfs.cli.launcher import LocalCluster  # noqa: E402
from superfs.config import DEFAULT_CHUNK_SIZE, DEFAULT_INLINE_THRESHOLD  # noqa: E402

BLOCK = os.urandom(4096)


def drop_caches() -> bool:
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3")
        return True
    except OSError:
        return False


CLUSTER_ADDRESS: list[str] = []


@contextmanager
def superfs_target(work: str) -> Iterator[str]:
    cluster = LocalCluster(os.path.join(work, "cluster"))
    cluster.init(shards=2, data_servers=2, replicas=2, inline_threshold=DEFAULT_INLINE_THRESHOLD,
                 chunk_size=DEFAULT_CHUNK_SIZE, durability="durable")
    try:
        addr = cluster.start()["dir"]
        CLUSTER_ADDRESS[:] = [addr]
        mp = os.path.join(work, "superfs")
        os.mkdir(mp)
        proc = subprocess.Popen([sys.executable, "-m", "superfs.cli.main", "mount", mp, "--address", addr,
                                 "--foreground", "--log", os.path.join(work, "mount.log")],
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            wait_mounted(mp, proc)
            yield mp
        finally:
            unmount(mp, proc)
    finally:
        cluster.stop()


@contextmanager
def passthrough_target(work: str) -> Iterator[str]:
    src, mp = os.path.join(work, "pt-src"), os.path.join(work, "passthrough")
    os.mkdir(src)
    os.mkdir(mp)
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "passthrough.py"), src, mp],
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_mounted(mp, proc)
        yield mp
    finally:
        unmount(mp, proc)


@contextmanager
def local_target(work: str) -> Iterator[str]:
    d = os.path.join(work, "local")
    os.mkdir(d)
    yield d


def timed(fn: Callable[[int], object], n: int, before: Callable[[int], object] | None = None) -> list[float]:
    out = []
    for i in range(n):
        if before is not None:
            before(i)
        t = time.perf_counter_ns()
        fn(i)
        out.append((time.perf_counter_ns() - t) / 1000.0)
    return out


def create(path: str) -> None:
    os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))


def write_4k(path: str) -> None:
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    os.write(fd, BLOCK)
    os.close(fd)


def open_read_4k(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    data = os.read(fd, 4096)
    os.close(fd)
    assert len(data) == 4096


def run_ops(root: str, n: int, readdir_n: int, cold_ok: bool) -> dict[str, list[float] | None]:
    res: dict[str, list[float] | None] = {}
    d = os.path.join(root, "bench")
    os.mkdir(d)
    res["mkdir"] = timed(lambda i: os.mkdir(f"{d}/dir{i}"), n)
    res["create"] = timed(lambda i: create(f"{d}/c{i}"), n)
    # warm: the same file stat'ed just before, so its attributes are in the
    # kernel's cache (a first pass over all n files could outlast the 1 s
    # timeout). Twice: if the first one had to ask the file system (a context
    # switch to it), the second leaves the CPU caches as a warm stat finds them.
    res["stat_warm"] = timed(lambda i: os.stat(f"{d}/c{i}"), n,
                             before=lambda i: (os.stat(f"{d}/c{i}"), os.stat(f"{d}/c{i}")))
    res["stat_cold"] = timed(lambda i: os.stat(f"{d}/c{i}"), n) if drop_caches() and cold_ok else None
    res["write_4k"] = timed(lambda i: write_4k(f"{d}/w{i}"), n)
    res["open_read_4k"] = timed(lambda i: open_read_4k(f"{d}/w{i}"), n) if drop_caches() and cold_ok else None
    res["rename"] = timed(lambda i: os.rename(f"{d}/c{i}", f"{d}/r{i}"), n)
    res["unlink"] = timed(lambda i: os.unlink(f"{d}/r{i}"), n)
    big = os.path.join(root, "big")
    os.mkdir(big)
    for i in range(readdir_n):
        create(f"{big}/entry{i:06d}")
    listing: list[float] = []
    for _ in range(5):
        t = time.perf_counter_ns()
        names = os.listdir(big)
        listing.append((time.perf_counter_ns() - t) / 1000.0)
        assert len(names) == readdir_n
    res[f"readdir_{readdir_n}"] = listing
    return res


def run_client_ops(addr: str, n: int, readdir_n: int) -> dict[str, list[float] | None]:
    """The same operations through the client library alone (the RPC floor)."""
    import asyncio

    from superfs.client import AsyncFs
    from superfs.client.meta import Creds

    async def go() -> dict[str, list[float] | None]:
        fs = await AsyncFs(addr, creds=Creds(0, 0)).start()
        c = Creds(0, 0)
        res: dict[str, list[float] | None] = {}

        async def timed_async(fn: Callable[[int], object]) -> list[float]:
            out = []
            for i in range(n):
                t = time.perf_counter_ns()
                await fn(i)  # type: ignore[misc]
                out.append((time.perf_counter_ns() - t) / 1000.0)
            return out

        try:
            d = await fs.meta.mkdir(1, "client-bench", 0o755, c)
            res["mkdir"] = await timed_async(lambda i: fs.meta.mkdir(d.ino, f"dir{i}", 0o755, c))
            res["create"] = await timed_async(lambda i: fs.meta.create(d.ino, f"c{i}", 0o644, c, exclusive=True))
            res["stat_cold"] = await timed_async(lambda i: fs.meta.lookup(d.ino, f"c{i}", c))

            async def w4k(i: int) -> None:
                node, _ = await fs.meta.create(d.ino, f"w{i}", 0o644, c, exclusive=True)
                await fs.data.write(node, 0, BLOCK, c, defer_size=True)

            res["write_4k"] = await timed_async(w4k)
            res["open_read_4k"] = await timed_async(lambda i: fs.meta.lookup(d.ino, f"w{i}", c, want_data=True))
            res["rename"] = await timed_async(lambda i: fs.meta.rename(d.ino, f"c{i}", d.ino, f"r{i}", c))
            res["unlink"] = await timed_async(lambda i: fs.meta.unlink(d.ino, f"r{i}", c))
            big = await fs.meta.mkdir(1, "client-big", 0o755, c)
            sem = asyncio.Semaphore(64)

            async def one(i: int) -> None:
                async with sem:
                    await fs.meta.create(big.ino, f"entry{i:06d}", 0o644, c, exclusive=True)

            await asyncio.gather(*(one(i) for i in range(readdir_n)))
            listing = []
            for _ in range(5):
                t = time.perf_counter_ns()
                await fs.meta.list_dir(big.ino, c, with_attrs=True)
                listing.append((time.perf_counter_ns() - t) / 1000.0)
            res[f"readdir_{readdir_n}"] = listing
        finally:
            await fs.close()
        return res

    return asyncio.run(go())


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=1000, help="operations per measurement (default 1000)")
    p.add_argument("--readdir-n", type=int, default=10_000, help="entries in the listed directory")
    p.add_argument("--targets", default="passthrough,local,superfs")
    p.add_argument("--work-dir", default=None, help="where to put clusters and mounts (default: a temp dir)")
    args = p.parse_args()
    work = tempfile.mkdtemp(prefix="superfs-bench-", dir=args.work_dir)
    makers = {"superfs": superfs_target, "local": local_target, "passthrough": passthrough_target}
    results: dict[str, dict[str, list[float] | None]] = {}
    load: dict[str, float] = {}  # the machine's 1-minute load when each target ran (others' work skews figures)
    try:
        for name in args.targets.split(","):
            with ExitStack() as stack:
                root = stack.enter_context(makers[name](work))
                load[name] = os.getloadavg()[0]
                results[name] = run_ops(root, args.n, args.readdir_n, cold_ok=True)
                if name == "superfs":
                    load["client"] = os.getloadavg()[0]
                    results["client"] = run_client_ops(CLUSTER_ADDRESS[0], args.n, args.readdir_n)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    nproc = os.cpu_count()
    base = results.get("passthrough", {})
    for target, ops in results.items():
        for op, lat in ops.items():
            config = {"superfs": "durable, default cache timeouts (1 s)",
                      "client": "durable, client library without FUSE (RPC floor)"}.get(target, "default")
            row: dict[str, object] = {"name": "fuse_latency", "target": target, "op": op, "nproc": nproc,
                                      "config": config, "load_1m": round(load[target], 2)}
            if lat is None:
                row["skipped"] = "needs root to drop caches"
            else:
                p50 = statistics.median(lat)
                row.update({"n": len(lat), "p50_us": round(p50, 1), "p99_us": round(pct(lat, 0.99), 1),
                            "ops_per_s": round(1e6 / p50, 1) if p50 else None})
                ref = base.get(op)
                if target not in ("passthrough", "client") and ref:
                    row["ratio_p50_vs_passthrough"] = round(p50 / statistics.median(ref), 2)
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
