"""Sequential and random IO through the client library, against a local disk.

Writes then reads one large file (default 1 GiB) in 4 MiB and 1 MiB requests,
then random 4 KiB reads, on a fresh local cluster (durable mode, defaults)
and, in the same run, on a local directory (write + fsync, then a read after
dropping the file from the page cache where possible). One JSON row each.

    python bench/io.py [--size-mib 1024] [--local-dir /var/tmp]
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))

from common import emit, temp_cluster  # noqa: E402

import superfs  # noqa: E402

MiB = 1 << 20


def row(name: str, target: str, nbytes: int, secs: float, **params: object) -> dict[str, object]:
    return {"name": name, "target": target, "bytes": nbytes, "seconds": round(secs, 3),
            "gb_per_s": round(nbytes / secs / 1e9, 3), **params, "nproc": os.cpu_count()}


def seq(opener, fsync, path: str, size: int, req: int, target: str) -> list[dict[str, object]]:
    block = os.urandom(req)
    t = time.perf_counter()
    with opener(path, "wb") as f:
        for _ in range(size // req):
            f.write(block)
        f.flush()
        fsync(f)
    w = time.perf_counter() - t
    t = time.perf_counter()
    with opener(path, "rb") as f:
        while f.read(req):
            pass
    r = time.perf_counter() - t
    return [row("seq_write", target, size, w, request=req), row("seq_read", target, size, r, request=req)]


def rand_reads(opener, path: str, size: int, target: str, n: int = 2000) -> dict[str, object]:
    rng = random.Random(1)
    with opener(path, "rb", buffering=0) as f:
        t = time.perf_counter()
        for _ in range(n):
            f.seek(rng.randrange(0, size - 4096) // 4096 * 4096)
            f.read(4096)
        secs = time.perf_counter() - t
    out = row("rand_read_4k", target, n * 4096, secs)
    out["iops"] = round(n / secs, 1)
    return out


def local_fsync(f) -> None:
    os.fsync(f.fileno())


def drop_cache(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--local-dir", default="/var/tmp")
    args = ap.parse_args()
    size = args.size_mib * MiB
    for req in (4 * MiB, MiB):
        with tempfile.TemporaryDirectory(dir=args.local_dir) as d:
            path = os.path.join(d, "big")
            rows = seq(open, local_fsync, path, size, req, "local-disk")
            emit(rows[0])
            drop_cache(path)
            t = time.perf_counter()
            with open(path, "rb") as f:
                while f.read(req):
                    pass
            emit(row("seq_read", "local-disk", size, time.perf_counter() - t, request=req, cache="dropped"))
            emit(rows[1] | {"cache": "warm"})
            if req == MiB:
                emit(rand_reads(open, path, size, "local-disk"))
    with temp_cluster() as cluster:
        with superfs.connect(str(cluster.config["dir_server"])) as fs:
            for req in (4 * MiB, MiB):
                for r in seq(fs.open, lambda f: None, f"/big-{req}", size, req, "superfs-library"):
                    emit(r)
            emit(rand_reads(fs.open, f"/big-{MiB}", size, "superfs-library"))


if __name__ == "__main__":
    main()
