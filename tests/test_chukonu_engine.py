"""The engine with real worker processes: retries after a worker dies, errors, progress, spills.

These run a local pool of two workers (one module-wide session). Nothing
here asserts a duration: task records, shuffle files and outputs are what
is checked.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from chukonu.errors import TaskFailedError
from chukonu.sql import SparkSession
from chukonu.sql import functions as F

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def spark(tmp_path_factory):
    s = SparkSession.builder.master("local[2]").config("chukonu.progress", "off") \
        .config("spark.sql.shuffle.partitions", "3") \
        .config("chukonu.local.dir", str(tmp_path_factory.mktemp("spill"))).getOrCreate()
    yield s
    s.stop()


def test_tasks_run_in_worker_processes(spark):
    pids = {r[0] for r in spark.range(100, numPartitions=4).select(F.udf(lambda _x: os.getpid(), "long")("id"))
            .distinct().collect()}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    job = spark.jobs[-1]
    assert {t.pid for t in job.tasks} <= pids | {0}


def test_udf_error_in_a_worker_names_partition_and_error(spark):
    def boom(x):
        if x >= 8:
            raise KeyError("no such key")
        return x

    with pytest.raises(TaskFailedError) as info:
        spark.range(0, 10, numPartitions=2).select(F.udf(boom, "long")("id")).collect()
    assert info.value.partition == 1 and "KeyError" in str(info.value) and "partition 1" in str(info.value)
    assert "boom" in info.value.remote_traceback


def test_shuffles_spill_to_files_and_summary_reports_stages(spark):
    df = spark.createDataFrame([(i % 7, i) for i in range(5000)], ["k", "v"])
    got = df.groupBy("k").agg(F.sum("v").alias("s")).orderBy("k").collect()
    assert [r.s for r in got] == [sum(i for i in range(5000) if i % 7 == k) for k in range(7)]
    job = spark.jobs[-1]
    assert job.stages[0].name == "aggregate" and job.stages[-1].name == "collect"
    shuffle_dir = os.path.join(spark._engine.spill_dir, "shuffle")
    assert any(name.endswith(tuple(f"-r{r:05d}" for r in range(3))) for name in os.listdir(shuffle_dir))
    text = job.summary()
    assert "stage" in text and "bytes read" in text and "peak memory" in text
    assert job.driver_peak_rss > 0 and job.worker_peak_rss > 0


def test_cache_is_reused_across_jobs(spark, tmp_path):
    log = tmp_path / "calls"
    log.mkdir()

    def touch(x):
        open(os.path.join(str(log), f"{x}-{os.getpid()}-{len(os.listdir(str(log)))}"), "w").close()
        return x

    df = spark.range(6, numPartitions=2).select(F.udf(touch, "long")("id").alias("x")).cache()
    assert df.count() == 6 and sorted(r.x for r in df.collect()) == list(range(6))
    assert len(os.listdir(log)) == 6


def test_console_progress(tmp_path):
    script = textwrap.dedent("""
        from chukonu.sql import SparkSession, functions as F
        spark = SparkSession.builder.master("local[2]").config("chukonu.progress", "console").getOrCreate()
        spark.range(1000, numPartitions=4).groupBy((F.col("id") % 3).alias("k")).count().collect()
        spark.stop()
    """)
    # no "if __name__ == '__main__'" guard: workers must not re-run the script
    path = tmp_path / "unguarded.py"
    path.write_text(script)
    done = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=REPO))
    assert done.returncode == 0, done.stderr
    assert "[Stage" in done.stderr and "tasks]" in done.stderr
    assert "chukonu job" in done.stderr and "bytes read" in done.stderr


# last: it leaves the pool with one worker
def test_worker_death_reruns_the_task_elsewhere(spark, tmp_path):
    marker = str(tmp_path / "died-once")

    def die_once(x):
        if x == 5 and not os.path.exists(marker):
            open(marker, "w").close()
            os.kill(os.getpid(), 9)
        return x * 10

    df = spark.range(0, 12, numPartitions=3).select(F.udf(die_once, "long")("id").alias("y"))
    assert sorted(r.y for r in df.collect()) == [i * 10 for i in range(12)]
    tasks = spark.jobs[-1].tasks
    lost = [t for t in tasks if t.locality == "lost"]
    assert len(lost) == 1 and lost[0].partition == 1
    rerun = [t for t in tasks if t.partition == 1 and t.ok]
    assert rerun and rerun[0].attempt == 1 and rerun[0].worker != lost[0].worker
    alive = [w for w in spark._engine.backend.workers() if w.alive]
    assert len(alive) == 1


def test_windows_and_aggregates_reuse_a_shuffle_by_a_subset_of_their_keys(spark):
    """lag, a running sum and groupBy(user, session) after one shuffle by user, as Spark plans it; same rows
    as with a fresh shuffle before every step."""
    from chukonu.sql.window import Window
    df = spark.createDataFrame([(i % 7, (i * 37) % 1001, float(i % 5)) for i in range(300)], "u long, t long, v double")
    w = Window.partitionBy("u").orderBy("t")

    def sessions(d, reshuffle):
        step = (lambda x: x.repartition(5, "t")) if reshuffle else (lambda x: x)
        g = step(d.withColumn("p", F.lag("t").over(w)))
        g = g.withColumn("f", F.when(F.col("p").isNull() | (F.col("t") - F.col("p") > 30), 1).otherwise(0))
        n = step(g.withColumn("s", F.sum("f").over(w.rowsBetween(Window.unboundedPreceding, 0))))
        return n.groupBy("u", "s").agg(F.count("*").alias("c"), F.sum("v").alias("sv"))

    before = len(spark.jobs)
    got = sorted(sessions(df, False).collect())
    stages = [s.name for j in spark.jobs[before:] for s in j.stages]
    assert stages.count("window") == 1 and "aggregate" not in stages
    assert got == sorted(sessions(df, True).collect()) and len(got) > 7
