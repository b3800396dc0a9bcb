"""MinHash-LSH dedup: chukonu against PySpark running the same algorithm, in the same run.

    python bench/dedup.py --docs 200000            # both engines, JSON lines on stdout

A synthetic corpus with planted near-duplicates (``chukonu.dedup.corpus``)
is written as Parquet; each engine then runs in its own process (read ->
dedup -> write Parquet), sampled every 50 ms for the resident memory of
its whole process tree (driver, plus the JVM and Python workers for Spark,
or the worker processes for chukonu). Precision and recall are computed
against the planted truth from each engine's output.

The PySpark implementation is the usual one, at the same parameters and
with the same hash definitions: a DataFrame, ``mapInArrow`` computing band
keys document by document in Python (``chukonu.dedup.reference``),
``groupBy`` on band keys, connected components by large-star/small-star
iterations on RDDs, and a broadcast anti-join. ``--variants`` adds PySpark
with chukonu's compiled kernel inside ``mapInArrow``.

numba's on-disk cache of chukonu's kernels is warmed before measuring
(compiling is a one-time cost per installation, reported on its own row).
Nothing is asserted: one JSON object per result, then a ratio row.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

THRESHOLD, NUM_PERM, NGRAM, SEED = 0.7, 256, 5, 42


# --------------------------------------------------------------- memory

def _tree_rss(root: int) -> tuple[int, int]:
    """(RSS of ``root``, RSS of all its descendants) in bytes, from /proc."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            pid = int(name)
            parents[pid] = int(fields[1])
            rss[pid] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    total, stack = 0, list(children.get(root, []))
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return rss.get(root, 0), total


class Sampler(threading.Thread):
    def __init__(self, pid: int, every: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.peak_driver = self.peak_workers = self.peak_total = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            driver, workers = _tree_rss(self.pid)
            self.peak_driver = max(self.peak_driver, driver)
            self.peak_workers = max(self.peak_workers, workers)
            self.peak_total = max(self.peak_total, driver + workers)
            self.stop.wait(self.every)


# --------------------------------------------------------------- corpus

def make_corpus(workdir: str, docs: int, files: int = 8) -> tuple[str, str]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from chukonu.dedup.corpus import generate

    data = os.path.join(workdir, f"corpus-{docs}")
    truth = os.path.join(workdir, f"truth-{docs}.json")
    if os.path.exists(truth):
        return data, truth
    corpus = generate(docs, dup_fraction=0.2, jaccard_range=(0.5, 1.0), seed=7)
    os.makedirs(data, exist_ok=True)
    table = pa.table({"doc": np.arange(docs, dtype=np.int64), "text": corpus.texts})
    for i in range(files):
        lo, hi = docs * i // files, docs * (i + 1) // files
        pq.write_table(table.slice(lo, hi - lo), os.path.join(data, f"part-{i:03d}.parquet"), row_group_size=10000)
    with open(truth, "w") as f:
        json.dump({"duplicates": sorted(corpus.true_duplicates(THRESHOLD)), "docs": docs,
                   "bytes": int(table.nbytes)}, f)
    return data, truth


# --------------------------------------------------------------- engines

def run_chukonu(inp: str, out: str, workers: int, partitions: int) -> dict:
    from chukonu.dedup import minhash_dedup
    from chukonu.sql import SparkSession

    t0 = time.perf_counter()
    spark = SparkSession.builder.master(f"local[{workers}]").config("chukonu.progress", "off") \
        .config("spark.sql.shuffle.partitions", str(partitions)).getOrCreate()
    t1 = time.perf_counter()
    df = spark.read.parquet(inp)
    kept = minhash_dedup(df, column="text", threshold=THRESHOLD, num_perm=NUM_PERM, ngram=NGRAM, seed=SEED,
                         id_column="doc")
    kept.write.mode("overwrite").parquet(out)
    t2 = time.perf_counter()
    spark.stop()
    return {"session_s": t1 - t0, "job_s": t2 - t1}


def _spark(workers: int, partitions: int):  # type: ignore[no-untyped-def]
    from pyspark.sql import SparkSession
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYTHONPATH"] = os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")])
    spark = (SparkSession.builder.master(f"local[{workers}]").appName("dedup-bench")
             .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", str(partitions))
             .config("spark.driver.memory", "3g").config("spark.sql.execution.arrow.pyspark.enabled", "true")
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def _large_star_small_star(edges):  # type: ignore[no-untyped-def]
    """Connected components of an RDD of (a, b) pairs: every node -> the smallest node of its component."""

    def large_star_map(e):  # type: ignore[no-untyped-def]
        return [(e[0], e[1]), (e[1], e[0])]

    def large_star_reduce(group):  # type: ignore[no-untyped-def]
        x, neighbors = group
        nn = min(min(neighbors), x)
        return [(n, nn) for n in neighbors if n > x]

    def small_star_map(e):  # type: ignore[no-untyped-def]
        x, y = e
        return (x, y) if y <= x else (y, x)

    def small_star_reduce(group):  # type: ignore[no-untyped-def]
        x, neighbors = group
        nn = min(min(neighbors), x)
        return [(n, nn) for n in neighbors if n != nn] + ([(x, nn)] if x != nn else [])

    a = edges
    while True:
        b = a.flatMap(large_star_map).groupByKey().flatMap(large_star_reduce).distinct().cache()
        a = b.map(small_star_map).groupByKey().flatMap(small_star_reduce).distinct().cache()
        changes = a.subtract(b).union(b.subtract(a)).count()
        if changes == 0:
            return a


def run_pyspark(inp: str, out: str, workers: int, partitions: int, kernel: str) -> dict:
    from pyspark.sql import functions as F

    from chukonu.dedup import MinHashConfig, SignatureStep
    from chukonu.dedup.reference import PerDocumentSignatures

    t0 = time.perf_counter()
    spark = _spark(workers, partitions)
    t1 = time.perf_counter()
    config = MinHashConfig(column="text", threshold=THRESHOLD, num_perm=NUM_PERM, ngram=NGRAM, seed=SEED,
                           id_column="doc")
    # the document id is the input's own "doc" column, as for chukonu: the smallest id of a group is kept
    df = spark.read.parquet(inp)
    step = SignatureStep(config, "doc", "text") if kernel == "chukonu" else PerDocumentSignatures(config, "doc", "text")
    bands = df.select("doc", "text").mapInArrow(step, "id long, band_key long")
    buckets = bands.groupBy("band_key").agg(F.collect_list("id").alias("ids")).filter(F.size("ids") > 1)
    edges = buckets.select(F.array_min("ids").alias("src"), F.explode("ids").alias("dst")) \
        .filter(F.col("src") != F.col("dst")).distinct()
    components = _large_star_small_star(edges.rdd.map(lambda r: (r.src, r.dst)))
    dups = components.map(lambda kv: (kv[0],)).toDF(["doc"])
    kept = df.join(F.broadcast(dups), "doc", "left_anti")
    kept.write.mode("overwrite").parquet(out)
    t2 = time.perf_counter()
    spark.stop()
    return {"session_s": t1 - t0, "job_s": t2 - t1}


# --------------------------------------------------------------- driver

def warm_numba_cache() -> float:
    """Compile chukonu's kernels once into numba's on-disk cache (a one-time cost per installation)."""
    import numpy as np
    import pyarrow as pa

    from chukonu.dedup import MinHashConfig, signatures
    from chukonu.dedup.buckets import bucket_edges

    t = time.perf_counter()
    config = MinHashConfig(threshold=THRESHOLD, num_perm=NUM_PERM, ngram=NGRAM, seed=SEED)
    signatures(pa.array(["warm up the kernels once"]), config, keep_signatures=False)
    bucket_edges(np.arange(4, dtype=np.int64), np.array([1, 1, 2, 3], dtype=np.int64), config)
    return time.perf_counter() - t


def measure(engine: str, inp: str, out: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--run", engine, "--input", inp, "--output", out,
           "--workers", str(args.workers), "--partitions", str(args.partitions)]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=REPO))
    sampler = Sampler(proc.pid)
    sampler.start()
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - started
    sampler.stop.set()
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{engine} failed:\n{stderr[-4000:]}")
    inner = json.loads(stdout.strip().splitlines()[-1])
    return {"wall_s": round(wall, 2), "session_s": round(inner["session_s"], 2), "job_s": round(inner["job_s"], 2),
            "peak_rss_mb_total": round(sampler.peak_total / 2 ** 20, 1),
            "peak_rss_mb_driver": round(sampler.peak_driver / 2 ** 20, 1),
            "peak_rss_mb_workers": round(sampler.peak_workers / 2 ** 20, 1)}


def quality(out: str, truth_path: str) -> tuple[float, float, int]:
    import pyarrow.parquet as pq

    from chukonu.dedup.corpus import score

    with open(truth_path) as f:
        truth = json.load(f)
    kept = set(pq.read_table(out, columns=["doc"]).column("doc").to_pylist())
    removed = set(range(truth["docs"])) - kept
    p, r = score(removed, set(truth["duplicates"]))
    return round(p, 4), round(r, 4), len(kept)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=200_000)
    ap.add_argument("--engines", default="chukonu,pyspark")
    ap.add_argument("--variants", action="store_true", help="also PySpark with chukonu's kernel in mapInArrow")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--partitions", type=int, default=16, help="shuffle partitions (both engines)")
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "chukonu-bench-dedup"),
                    help="where the corpus (kept between runs) and the outputs go")
    ap.add_argument("--run", help=argparse.SUPPRESS)
    ap.add_argument("--input", help=argparse.SUPPRESS)
    ap.add_argument("--output", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.run:   # inside the measured child process
        if args.run == "chukonu":
            res = run_chukonu(args.input, args.output, args.workers, args.partitions)
        else:
            res = run_pyspark(args.input, args.output, args.workers, args.partitions,
                              "chukonu" if args.run == "pyspark+chukonu-kernel" else "python")
        print(json.dumps(res))
        return 0
    os.makedirs(args.workdir, exist_ok=True)
    t = time.perf_counter()
    data, truth = make_corpus(args.workdir, args.docs)
    with open(truth) as f:
        meta = json.load(f)
    print(json.dumps({"name": "dedup_corpus", "docs": args.docs, "bytes": meta["bytes"],
                      "true_duplicates": len(meta["duplicates"]), "seconds": round(time.perf_counter() - t, 1)}),
          flush=True)
    print(json.dumps({"name": "numba_cache_warmup", "seconds": round(warm_numba_cache(), 2)}), flush=True)
    from chukonu.dedup import MinHashConfig
    bands, rows = MinHashConfig(threshold=THRESHOLD, num_perm=NUM_PERM).band_rows
    engines = args.engines.split(",") + (["pyspark+chukonu-kernel"] if args.variants else [])
    results = {}
    for engine in engines:
        out = os.path.join(args.workdir, f"out-{engine}-{args.docs}")
        row = measure(engine, data, out, args)
        p, r, kept = quality(out, truth)
        row = {"name": "dedup", "engine": engine, "docs": args.docs, "threshold": THRESHOLD, "num_perm": NUM_PERM,
               "ngram": NGRAM, "bands": bands, "rows": rows, "workers": args.workers, **row, "precision": p,
               "recall": r, "kept": kept, "nproc": os.cpu_count()}
        results[engine] = row
        print(json.dumps(row), flush=True)
    if "chukonu" in results and "pyspark" in results:
        c, s = results["chukonu"], results["pyspark"]
        print(json.dumps({"name": "dedup_ratio", "baseline": "pyspark", "docs": args.docs,
                          "wall_ratio": round(c["wall_s"] / s["wall_s"], 3),
                          "job_ratio": round(c["job_s"] / s["job_s"], 3),
                          "peak_rss_ratio": round(c["peak_rss_mb_total"] / s["peak_rss_mb_total"], 3),
                          "precision_diff": round(c["precision"] - s["precision"], 4),
                          "recall_diff": round(c["recall"] - s["recall"], 4), "nproc": os.cpu_count()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
