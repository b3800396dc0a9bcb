"""Measure the LMDB bytes one file costs a shard: ``python -m superfs.shard.footprint``.

Creates N empty files (dentry + inode record, no inline bytes) through the
real store operation, spread over directories and partitions as a shard
sees them, and prints one JSON line with the file size of the LMDB
environment per file. Not a test: it reports a number, it asserts nothing.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
import time

from superfs.shard import file_ops
from superfs.shard.records import REGULAR
from superfs.shard.store import FileMetaStore, ShardTxn
from superfs.v1 import superfs_pb2 as pb

BATCH = 512  # creates per transaction, as LmdbStore.MAX_BATCH groups them


def _name(i: int, random_names: bool) -> bytes:
    if random_names:  # content-hash names, as datasets of images often have
        return hashlib.sha1(i.to_bytes(8, "little")).hexdigest()[:20].encode() + b".jpg"
    return f"img_{i:09d}.jpg".encode()


def measure(files: int, dirs: int, partitions: int, path: str, random_names: bool = False,
            data_size: int = 0) -> dict[str, object]:
    store = FileMetaStore(path, durable=False)
    creds = pb.Creds(uid=1000, gid=1000)
    data = b"x" * data_size
    base = store.db_bytes()
    t0 = time.perf_counter()
    try:
        for start in range(0, files, BATCH):
            def fill(t: ShardTxn, start: int = start) -> None:
                for i in range(start, min(files, start + BATCH)):
                    file_ops.create_file(
                        t, parent=2 + i % dirs, raw=_name(i, random_names), partition=i % partitions,
                        mode=0o644, ftype=REGULAR, target=b"", exclusive=True, truncate=False, creds=creds,
                        data=data, inline_threshold=65536)

            store.write_now(fill)
        store.lmdb.env.sync(True)
        used = store.db_bytes() - base
        with store.read() as t:
            depth = t.txn.stat(store.dbs["dentries"])
    finally:
        store.close()
    return {
        "name": "shard_bytes_per_file", "files": files, "dirs": dirs, "partitions": partitions,
        "names": "random" if random_names else "sequential", "data_size": data_size,
        "bytes_per_file": round(used / files, 1), "db_bytes": used,
        "dentry_leaf_pages": depth["leaf_pages"], "seconds": round(time.perf_counter() - t0, 2),
        "nproc": os.cpu_count(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--files", type=int, default=200_000)
    ap.add_argument("--dirs", type=int, default=100)
    ap.add_argument("--partitions", type=int, default=512, help="partitions this shard owns")
    ap.add_argument("--random-names", action="store_true", help="hash-like names instead of a counter")
    ap.add_argument("--data-size", type=int, default=0, help="inline bytes per file (0: empty files)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        print(json.dumps(measure(args.files, args.dirs, args.partitions, os.path.join(d, "shard"),
                                 args.random_names, args.data_size)))


if __name__ == "__main__":
    main()
