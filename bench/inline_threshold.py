"""Choose the inline threshold by measurement.

For files of 4-256 KiB, compare write (create+write+close) and read
(open+read+close) through the library when the file is stored inline in its
shard record versus in chunks on data servers, in the same run. Prints one
JSON row per (size, placement, phase).

    python bench/inline_threshold.py [--files 200]
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

from common import emit, latency_row, temp_cluster, timed  # noqa: E402

import superfs  # noqa: E402

SIZES = [4096, 16384, 65536, 262144]


def run(files: int) -> None:
    for label, threshold in (("inline", 1 << 20), ("chunked", 4096)):
        with temp_cluster(inline_threshold=threshold) as cluster:
            with superfs.connect(str(cluster.config["dir_server"])) as fs:
                for size in SIZES:
                    if label == "chunked" and size <= 4096:
                        continue
                    payload = os.urandom(size)
                    d = f"/s{size}"
                    fs.mkdir(d)
                    w = [timed(fs.write_bytes, f"{d}/f{i}", payload) for i in range(files)]
                    r = [timed(fs.read_bytes, f"{d}/f{i}") for i in range(files)]
                    emit(latency_row("write", w, size=size, placement=label))
                    emit(latency_row("read", r, size=size, placement=label))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=200)
    run(ap.parse_args().files)
