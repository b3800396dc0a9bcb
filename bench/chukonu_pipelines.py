"""Held-set PySpark pipelines on chukonu and on PySpark: same code, same input, time ratio per pipeline.

Five pipelines people write (issue 20), each one function that only sees
``functions``/``Window`` of the engine it is given (the import is the only
difference): dedup by key keeping the newest row (row_number), sessions
from gaps between a user's events (lag), daily aggregates with date
functions, a pivot report, and a SQL pipeline of CTEs with a window. Input:
parquet files of synthetic click events (``--gb`` of them, skewed users,
nulls, repeated event versions).

Prints one JSON object per pipeline and engine (seconds, output rows) and
one with the ratio chukonu/pyspark; ``--check`` also compares the outputs
row by row. Never asserts a time. The issue's target is a ratio <= 0.5 at
1 GB on a quiet machine:

    python bench/chukonu_pipelines.py --gb 1 --check
    python bench/chukonu_pipelines.py --gb 0.05 --pipelines dedup,sessions
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import shutil
import sys
import tempfile
import time
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROW_BYTES = 26          # about this many parquet bytes per event row (measured on this generator)
EVENT_TYPES = ["view", "click", "cart", "buy", "share"]


def write_events(path: str, rows: int, files: int = 8, seed: int = 0) -> int:
    """Synthetic events as ``files`` parquet files under ``path``; returns their total bytes."""
    os.makedirs(path, exist_ok=True)
    rng = np.random.default_rng(seed)
    start = int(dt.datetime(2024, 3, 1, tzinfo=dt.timezone.utc).timestamp() * 1e6)
    per = math.ceil(rows / files)
    total = 0
    for f in range(files):
        n = min(per, rows - f * per)
        if n <= 0:
            break
        users = (rng.zipf(1.3, n) % max(10, rows // 50)).astype(np.int64)
        event_id = rng.integers(0, max(1, int(rows * 0.8)), n, dtype=np.int64)   # ~20% repeated versions
        ts = start + rng.integers(0, 30 * 86400 * 10 ** 6, n, dtype=np.int64)
        updated = ts + rng.integers(0, 3600 * 10 ** 6, n, dtype=np.int64)
        value = np.round(rng.gamma(2.0, 10.0, n), 2)
        value_mask = rng.random(n) < 0.05
        types = np.array(EVENT_TYPES)[rng.choice(5, n, p=[0.55, 0.25, 0.1, 0.07, 0.03])]
        pages = np.char.add("/p/", (rng.zipf(1.5, n) % 200).astype(str))
        table = pa.table({
            "event_id": event_id, "user_id": users,
            "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "updated_at": pa.array(updated, pa.timestamp("us", tz="UTC")),
            "event_type": pa.array(types), "page": pa.array(pages),
            "value": pa.array(value, mask=value_mask),
        })
        out = os.path.join(path, f"part-{f:04d}.parquet")
        pq.write_table(table, out, row_group_size=1 << 20)
        total += os.path.getsize(out)
    return total


def _api(engine: str) -> tuple[Any, Any]:
    if engine == "pyspark":
        from pyspark.sql import Window, functions
    else:
        from chukonu.sql import functions
        from chukonu.sql.window import Window
    return functions, Window


# ------------------------------------------------------------- the pipelines

def dedup(spark: Any, path: str, engine: str) -> Any:
    F, Window = _api(engine)
    events = spark.read.parquet(path)
    newest = Window.partitionBy("event_id").orderBy(F.col("updated_at").desc(), F.col("user_id"))
    return (events.withColumn("rn", F.row_number().over(newest))
            .filter(F.col("rn") == 1).drop("rn"))


def sessions(spark: Any, path: str, engine: str) -> Any:
    F, Window = _api(engine)
    events = spark.read.parquet(path).select("user_id", "ts", "value")
    by_user = Window.partitionBy("user_id").orderBy("ts")
    gaps = events.withColumn("prev", F.lag("ts").over(by_user)) \
        .withColumn("new_session", F.when(F.col("prev").isNull() | (
            F.unix_timestamp("ts") - F.unix_timestamp("prev") > 1800), 1).otherwise(0))
    numbered = gaps.withColumn("session", F.sum("new_session").over(
        by_user.rowsBetween(Window.unboundedPreceding, Window.currentRow)))
    return numbered.groupBy("user_id", "session").agg(
        F.count("*").alias("events"), F.min("ts").alias("started"), F.max("ts").alias("ended"),
        F.round(F.sum("value"), 2).alias("value"))


def daily(spark: Any, path: str, engine: str) -> Any:
    F, _ = _api(engine)
    events = spark.read.parquet(path)
    return (events.withColumn("day", F.to_date("ts"))
            .groupBy("day", "event_type")
            .agg(F.count("*").alias("events"), F.countDistinct("user_id").alias("users"),
                 F.round(F.sum("value"), 2).alias("value"), F.round(F.avg("value"), 6).alias("avg_value"))
            .withColumn("weekday", F.date_format("day", "EEE"))
            .withColumn("week", F.weekofyear("day")))


def pivot(spark: Any, path: str, engine: str) -> Any:
    F, _ = _api(engine)
    events = spark.read.parquet(path)
    return (events.withColumn("week", F.date_trunc("week", "ts"))
            .groupBy("week").pivot("event_type", EVENT_TYPES)
            .agg(F.round(F.sum("value"), 2)))


def sql_ctes(spark: Any, path: str, engine: str) -> Any:
    spark.read.parquet(path).createOrReplaceTempView("events")
    return spark.sql("""
        WITH per_page AS (
            SELECT to_date(ts) AS day, page, count(*) AS hits, count(DISTINCT user_id) AS users
            FROM events WHERE event_type IN ('view', 'click') GROUP BY to_date(ts), page
        ), ranked AS (
            SELECT day, page, hits, users,
                   rank() OVER (PARTITION BY day ORDER BY hits DESC, page) AS r
            FROM per_page
        )
        SELECT day, page, hits, users, r FROM ranked WHERE r <= 5
    """)


PIPELINES: dict[str, Callable[[Any, str, str], Any]] = {
    "dedup": dedup, "sessions": sessions, "daily": daily, "pivot": pivot, "sql_ctes": sql_ctes}


def normalise(df: Any) -> list[tuple]:
    """Rows as sorted plain tuples (row order is not part of either API's contract)."""
    out = []
    for r in df.collect():
        out.append(tuple(None if isinstance(v, float) and math.isnan(v) else v for v in r))
    return sorted(out, key=repr)


# ------------------------------------------------------------------ running

def _sessions(engines: list[str]) -> dict[str, Any]:
    made: dict[str, Any] = {}
    if "pyspark" in engines:
        from pyspark.sql import SparkSession
        made["pyspark"] = (SparkSession.builder.master("local[*]").appName("bench")
                           .config("spark.ui.enabled", "false").config("spark.sql.session.timeZone", "UTC")
                           .config("spark.driver.memory", "4g").getOrCreate())
        made["pyspark"].sparkContext.setLogLevel("ERROR")
    if "chukonu" in engines:
        from chukonu.sql import SparkSession as ChSession
        made["chukonu"] = ChSession.builder.master("local[*]").config("chukonu.progress", "off").getOrCreate()
    return made


def _canonical(path: str) -> pa.Table:
    """An output read back with comparable types (Spark writes INT96 timestamps: naive nanoseconds),
    sorted by every column, doubles rounded to 6 decimals for the sort only."""
    import pyarrow.compute as pc
    t = pq.read_table(path)
    cols = []
    for c in t.columns:
        c = c.combine_chunks()
        if pa.types.is_timestamp(c.type):
            c = c.cast(pa.timestamp(c.type.unit)) if c.type.tz else c
            c = c.cast(pa.timestamp("us"))
        cols.append(c)
    t = pa.table(cols, names=t.column_names)
    keys = [pc.round(c, 6) if pa.types.is_floating(c.type) else c for c in t.columns]
    order = pc.sort_indices(pa.table(keys, names=[f"k{i}" for i in range(len(keys))]),
                            sort_keys=[(f"k{i}", "ascending") for i in range(len(keys))])
    return t.take(order)


def _same(a_dir: str, b_dir: str) -> bool:
    """Equal rows in any order, compared column by column; doubles equal within a relative 1e-9."""
    a, b = _canonical(a_dir), _canonical(b_dir)
    if a.num_rows != b.num_rows or a.num_columns != b.num_columns:
        return False
    for x, y in zip(a.columns, b.columns):
        if pa.types.is_floating(x.type) and pa.types.is_floating(y.type):
            xs = x.to_numpy(zero_copy_only=False).astype(float)
            ys = y.to_numpy(zero_copy_only=False).astype(float)
            if not np.allclose(xs, ys, rtol=1e-9, atol=0, equal_nan=True):
                return False
        elif not x.equals(y.cast(x.type) if x.type != y.type else y):
            return False
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gb", type=float, default=1.0, help="input size in GB of parquet (default 1)")
    ap.add_argument("--pipelines", default=",".join(PIPELINES), help="comma-separated subset")
    ap.add_argument("--engines", default="pyspark,chukonu")
    ap.add_argument("--check", action="store_true", help="compare the engines' outputs row by row")
    ap.add_argument("--dir", default=None, help="work directory (default: a temp dir, removed after)")
    args = ap.parse_args(argv)
    engines = args.engines.split(",")
    work = args.dir or tempfile.mkdtemp(prefix="chukonu-pipelines-")
    data = os.path.join(work, "events")
    try:
        rows = int(args.gb * 1e9 / ROW_BYTES)
        if not os.path.isdir(data):
            write_events(data, rows, files=max(2, int(args.gb * 16)))
        in_bytes = sum(os.path.getsize(os.path.join(data, f)) for f in os.listdir(data))
        rows = sum(pq.read_metadata(os.path.join(data, f)).num_rows for f in os.listdir(data))
        made = _sessions(engines)
        for name in args.pipelines.split(","):
            secs: dict[str, float] = {}
            outs: dict[str, str] = {}
            for engine in engines:
                out = os.path.join(work, f"out-{name}-{engine}")
                shutil.rmtree(out, ignore_errors=True)
                t0 = time.perf_counter()
                PIPELINES[name](made[engine], data, engine).write.mode("overwrite").parquet(out)
                secs[engine] = time.perf_counter() - t0
                outs[engine] = out
                n = pq.read_metadata(next(os.path.join(out, f) for f in sorted(os.listdir(out))
                                          if f.endswith(".parquet"))).num_rows if any(
                    f.endswith(".parquet") for f in os.listdir(out)) else 0
                print(json.dumps({"name": f"pipeline_{name}", "engine": engine, "seconds": round(secs[engine], 3),
                                  "input_bytes": in_bytes, "input_rows": rows, "first_file_rows": n,
                                  "nproc": os.cpu_count()}), flush=True)
            if len(secs) == 2:
                row = {"name": f"pipeline_{name}", "ratio_chukonu_over_pyspark":
                       round(secs["chukonu"] / secs["pyspark"], 3), "input_bytes": in_bytes, "nproc": os.cpu_count()}
                if args.check:
                    row["same_rows"] = _same(outs["pyspark"], outs["chukonu"])
                print(json.dumps(row), flush=True)
        for s in made.values():
            s.stop()
    finally:
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
