"""Data-centric placement on a real SuperFS cluster of three data servers.

Files are cut by chunk; each task must run on the worker beside the data
server holding its chunk (asserted from the engine's task records) and
read its bytes locally. When that worker is gone, its tasks run on
another worker and read remotely, and the results do not change.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from chukonu.sql import SparkSession
from chukonu.sql import functions as F

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINES = [f"line {i:06d} " + "payload " * (i % 13) for i in range(12000)]


@pytest.fixture(scope="module")
def sfs(tmp_path_factory):
    from conftest import start_cluster
    cluster = start_cluster(str(tmp_path_factory.mktemp("cluster")), data_servers=3, replicas=1)
    address = str(cluster.config["dir_server"])
    spark = SparkSession.builder.master("local[3]").config("chukonu.superfs.address", address) \
        .config("chukonu.progress", "off").config("chukonu.locality.wait", "0.5") \
        .config("spark.sql.shuffle.partitions", "3").getOrCreate()
    yield cluster, address, spark
    spark.stop()
    from chukonu.io.fs import close_clients
    close_clients()
    cluster.stop()


def placed(tasks):
    return [t for t in tasks if t.preferred]


def test_workers_sit_beside_data_servers(sfs):
    _, _, spark = sfs
    workers = spark._engine.backend.workers()
    assert sorted(w.data_server for w in workers) == [0, 1, 2]


def test_text_tasks_run_beside_their_chunks(sfs):
    _, address, spark = sfs
    base = f"superfs://{address}/placement"
    import superfs
    client = superfs.connect(address)
    client.makedirs("/placement", exist_ok=True)
    with client.open("/placement/lines.txt", "wb") as f:
        f.write(("\n".join(LINES) + "\n").encode())
    df = spark.read.text(base + "/lines.txt")
    assert sorted(r.value for r in df.collect()) == sorted(LINES)
    job = spark.jobs[-1]
    tasks = placed(job.tasks)
    servers = {t.preferred[0] for t in tasks}
    assert len(tasks) >= 3 and servers == {0, 1, 2}
    for t in tasks:
        assert t.worker_data_server == t.preferred[0] and t.locality == "local"
    assert job.bytes_local > 0.9 * (job.bytes_local + job.bytes_remote)
    client.close()


def test_parquet_row_groups_placed_by_chunk(sfs):
    _, address, spark = sfs
    import superfs
    table = pa.table({"id": np.arange(20000, dtype=np.int64),
                      "text": [f"doc {i} " + "w " * (i % 11) for i in range(20000)]})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, row_group_size=1500)
    client = superfs.connect(address)
    client.makedirs("/placement", exist_ok=True)
    client.write_bytes("/placement/docs.parquet", sink.getvalue().to_pybytes())
    df = spark.read.parquet(f"superfs://{address}/placement/docs.parquet")
    assert df.agg(F.sum("id")).collect()[0][0] == sum(range(20000))
    tasks = placed(spark.jobs[-1].tasks)
    assert tasks and all(t.worker_data_server == t.preferred[0] for t in tasks)
    client.close()


def test_write_and_read_back_on_superfs(sfs):
    _, address, spark = sfs
    out = f"superfs://{address}/placement/out"
    df = spark.createDataFrame([(i, f"k{i % 4}") for i in range(3000)], ["id", "k"])
    df.write.mode("overwrite").partitionBy("k").parquet(out)
    back = spark.read.parquet(out)
    assert sorted(back.groupBy("k").count().collect()) == [("k0", 750), ("k1", 750), ("k2", 750), ("k3", 750)]
    df.select("id").write.mode("overwrite").json(out + "_json")
    assert spark.read.json(out + "_json").count() == 3000


def test_shuffles_can_spill_to_superfs(sfs):
    _, address, spark = sfs
    import superfs
    spark.conf.set("chukonu.shuffle.dir", f"superfs://{address}/shuffle")
    try:
        df = spark.createDataFrame([(i % 5, i) for i in range(4000)], ["k", "v"])
        got = df.groupBy("k").agg(F.sum("v").alias("s")).collect()
    finally:
        spark.conf.unset("chukonu.shuffle.dir")
    assert sorted(got) == sorted((k, sum(range(k, 4000, 5))) for k in range(5))
    client = superfs.connect(address)
    assert any(name.startswith("s") and "-r" in name for name in client.listdir("/shuffle"))
    client.close()


def test_local_cluster_urls(sfs, monkeypatch):
    cluster, _, _ = sfs
    # superfs:///path means the cluster whose state directory $SUPERFS_STATE_DIR names
    monkeypatch.setenv("SUPERFS_STATE_DIR", cluster.state_dir)
    local = SparkSession({"spark.master": "local", "chukonu.progress": "off"})
    try:
        assert local.read.text("superfs:///placement/lines.txt").count() == len(LINES)
    finally:
        local.stop()


def test_dedup_cli_on_superfs(sfs, tmp_path):
    _, address, _ = sfs
    from chukonu.dedup import MinHashConfig, reference
    from chukonu.dedup.corpus import generate
    import superfs
    corpus = generate(300, seed=2)
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({"doc": np.arange(300, dtype=np.int64), "text": corpus.texts}), sink)
    client = superfs.connect(address)
    client.makedirs("/dedup", exist_ok=True)
    client.write_bytes("/dedup/in.parquet", sink.getvalue().to_pybytes())
    done = subprocess.run([sys.executable, "-m", "chukonu", "dedup", f"superfs://{address}/dedup/in.parquet",
                           f"superfs://{address}/dedup/out", "--superfs", address, "--progress", "off"],
                          capture_output=True, text=True, timeout=300, env=dict(os.environ, PYTHONPATH=REPO))
    assert done.returncode == 0, done.stderr
    stats = json.loads(done.stdout.strip().splitlines()[-1])
    assert stats["bytes_read_local"] > 0
    names = [n for n in client.listdir("/dedup/out") if n.endswith(".parquet")]
    kept = sorted(x for n in names for x in pq.read_table(pa.BufferReader(
        client.read_bytes(f"/dedup/out/{n}"))).column("doc").to_pylist())
    assert kept == reference.dedup(corpus.texts, MinHashConfig())
    client.close()


def test_tasks_fall_back_to_remote_reads_when_their_worker_is_gone(sfs):
    _, address, spark = sfs
    backend = spark._engine.backend
    gone = next(w for w in backend.workers() if w.data_server == 1)
    backend.kill_worker(gone.id)
    df = spark.read.text(f"superfs://{address}/placement/lines.txt")
    assert sorted(r.value for r in df.collect()) == sorted(LINES)
    job = spark.jobs[-1]
    orphans = [t for t in placed(job.tasks) if t.preferred[0] == 1 and t.ok]
    assert orphans and all(t.worker != gone.id and t.locality == "remote" for t in orphans)
    assert all(t.bytes_remote > t.bytes_local for t in orphans)
    others = [t for t in placed(job.tasks) if t.preferred[0] != 1]
    assert all(t.locality == "local" for t in others)
    assert job.bytes_remote > 0
