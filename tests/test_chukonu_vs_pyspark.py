"""The same pipelines on chukonu and on real PySpark give the same rows, one comparison per API area.

One PySpark session (local[2], no UI) and one chukonu session (two worker
processes) serve the whole module, so the JVM starts once. Rows are
compared as sorted plain tuples: row order is not part of either API's
contract except after orderBy, where it is compared as is.
"""
from __future__ import annotations

import json
import math
import os
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pyspark = pytest.importorskip("pyspark")

from pyspark.sql import SparkSession as PySession  # noqa: E402
from pyspark.sql import functions as PF  # noqa: E402

from chukonu.sql import SparkSession as ChSession  # noqa: E402
from chukonu.sql import functions as CF  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def sessions():
    # Spark's Python workers must import chukonu (dedup kernels) and this module (UDFs)
    os.environ["PYTHONPATH"] = os.pathsep.join([REPO, os.path.join(REPO, "tests"),
                                                os.environ.get("PYTHONPATH", "")])
    os.environ["PYSPARK_PYTHON"] = sys.executable
    spark = (PySession.builder.master("local[2]").appName("chukonu-compare")
             .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "4")
             .config("spark.sql.session.timeZone", "UTC").config("spark.sql.ansi.enabled", "false")
             .config("spark.sql.execution.arrow.pyspark.enabled", "true").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    ch = ChSession.builder.master("local[2]").config("spark.sql.shuffle.partitions", "4") \
        .config("chukonu.progress", "off").getOrCreate()
    yield spark, ch
    ch.stop()
    spark.stop()


def plain(v):
    if isinstance(v, float):
        return None if math.isnan(v) else round(v, 9)
    if isinstance(v, (list, tuple)):
        return tuple(plain(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, plain(x)) for k, x in v.items()))
    if isinstance(v, np.ndarray):
        return tuple(plain(x) for x in v.tolist())
    return v


def rows(df, ordered=False):
    out = [plain(tuple(r)) for r in df.collect()]
    return out if ordered else sorted(out, key=repr)


def both(sessions, build, ordered=False):
    spark, ch = sessions
    a = rows(build(spark, PF), ordered)
    b = rows(build(ch, CF), ordered)
    assert b == a
    return a


@pytest.fixture(scope="module")
def docs_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("docs")
    rng = np.random.default_rng(3)
    words = ["alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "Theta"]
    texts = [" ".join(rng.choice(words, size=int(rng.integers(1, 8)))) for _ in range(300)]
    table = pa.table({"id": np.arange(300, dtype=np.int64), "lang": [["en", "de", "fr"][i % 3] for i in range(300)],
                      "text": texts, "score": rng.normal(size=300)})
    pq.write_table(table.slice(0, 150), d / "part-0.parquet", row_group_size=50)
    pq.write_table(table.slice(150), d / "part-1.parquet", row_group_size=50)
    return str(d)


def n_words(s):
    return len(s.split()) if s is not None else None


def test_pipeline_read_filter_udf_explode_agg_join_distinct_write(sessions, docs_dir, tmp_path):
    def build(spark, F, out):
        df = spark.read.parquet(docs_dir)
        count_words = F.udf(n_words, "int")
        words = (df.filter(F.col("score") > -1.0)
                 .withColumn("n", count_words("text"))
                 .select("id", "lang", "n", F.explode(F.split(F.lower("text"), " ")).alias("w")))
        per_word = words.groupBy("lang", "w").agg(F.count("*").alias("c"), F.sum("n").alias("total"),
                                                   F.min("id").alias("first_id"))
        langs = spark.createDataFrame([("en", "English"), ("de", "German")], ["lang", "name"])
        joined = per_word.join(langs, "lang").select("name", "w", "c", "total", "first_id").distinct()
        joined.write.mode("overwrite").parquet(out)
        return spark.read.parquet(out)

    spark, ch = sessions
    a = rows(build(spark, PF, str(tmp_path / "spark")))
    b = rows(build(ch, CF, str(tmp_path / "chukonu")))
    assert b == a and len(a) > 5


def test_functions(sessions):
    data = [(1, "Hello World", [3, 1, 2], 2.5), (2, "spark  SQL", [], -1.25), (3, None, None, None),
            (4, "a,b,,c", [7], 0.0)]

    def build(spark, F):
        df = spark.createDataFrame(data, "id long, s string, xs array<long>, x double")
        return df.select(
            "id", F.length("s"), F.lower("s"), F.upper("s"), F.size("xs"), F.split("s", ","),
            F.concat_ws("|", "s", F.lit("z")), F.sha1("s"), F.xxhash64("s"), F.xxhash64("id"),
            F.sort_array("xs"), F.sort_array("xs", asc=False), F.array_min("xs"), F.array_max("xs"),
            F.when(F.col("x") > 0, "pos").when(F.col("x") < 0, "neg").otherwise("zero"),
            F.coalesce("s", F.lit("?")), F.substring("s", 2, 3), F.trim(F.lit("  t ")),
            F.regexp_replace("s", "[aeiou]", "_"), F.col("s").contains("o"), F.col("s").startswith("He"),
            F.col("s").like("%World"), F.col("id").isin(1, 3), F.round("x", 1), F.abs("x"),
            (F.col("id") * 2 + 1).alias("calc"), F.col("x").cast("string"), F.col("id").cast("string"),
            F.md5("s"), F.sha2("s", 256), F.array_contains("xs", 1), F.element_at("xs", 1))

    both(sessions, build)


def test_aggregations_and_set_operations(sessions):
    data = [("a", 1, 1.0), ("b", 2, None), ("a", 3, 2.0), ("c", None, 5.0), ("a", 3, 2.0), ("b", 2, None)]

    def agg(spark, F):
        df = spark.createDataFrame(data, "k string, v long, x double")
        return df.groupBy("k").agg(F.count("*").alias("n"), F.count("v"), F.sum("v"), F.min("x"), F.max("x"),
                                   F.avg("x"), F.sort_array(F.collect_list("v")), F.sort_array(F.collect_set("v")),
                                   F.countDistinct("v"))

    def sets(spark, F):
        df = spark.createDataFrame(data, "k string, v long, x double")
        other = spark.createDataFrame([(9, "z", 0.5)], "v long, k string, x double")
        return df.distinct().union(df.dropDuplicates(["k"]).select("k", "v", "x")) \
            .unionByName(other).filter(F.col("k") != "c")

    def ordered(spark, F):
        df = spark.createDataFrame(data, "k string, v long, x double")
        return df.orderBy(F.col("x").desc(), "k", F.col("v").asc_nulls_last()).limit(4)

    def global_agg(spark, F):
        df = spark.createDataFrame(data, "k string, v long, x double")
        return df.agg(F.count("*"), F.sum("v"), F.max("k"))

    both(sessions, agg)
    both(sessions, sets)
    both(sessions, ordered, ordered=True)
    both(sessions, global_agg)


def test_joins(sessions):
    left = [(1, "a"), (2, "b"), (3, "c"), (None, "n")]
    right = [(1, "x"), (3, "y"), (3, "z"), (4, "w"), (None, "m")]
    for how in ("inner", "left", "right", "full", "left_semi", "left_anti"):
        def build(spark, F, how=how):
            lf = spark.createDataFrame(left, "id long, l string")
            rf = spark.createDataFrame(right, "id long, r string")
            return lf.join(rf, "id", how)
        both(sessions, build)

    def cond(spark, F):
        lf = spark.createDataFrame(left, "id long, l string")
        rf = spark.createDataFrame(right, "rid long, r string")
        return lf.join(F.broadcast(rf), lf["id"] == rf["rid"], "left").select("l", "r", "rid")

    both(sessions, cond)


def shout(s):
    return None if s is None else s.upper()


def test_udfs_map_in_arrow_and_pandas(sessions):
    def build(spark, F):
        df = spark.createDataFrame([(i, f"t{i}") for i in range(20)], "id long, t string")

        def double_ids(batches):
            for b in batches:
                ids = b.column(0).to_numpy() * 2
                yield pa.RecordBatch.from_arrays([pa.array(ids), b.column(1)], names=["id", "t"])

        def pandas_keep_even(frames):
            for f in frames:
                yield f[f["id"] % 4 == 0]

        @F.pandas_udf("long")
        def plus(s):
            return s + 100

        up = F.udf(shout, "string")
        return df.mapInArrow(double_ids, "id long, t string").mapInPandas(pandas_keep_even, "id long, t string") \
            .select("id", plus("id").alias("p"), up("t").alias("u"))

    assert len(both(sessions, build)) == 10


def test_rdd(sessions):
    spark, ch = sessions
    results = []
    for s in (spark, ch):
        sc = s.sparkContext
        lines = sc.parallelize(["to be or", "not to be", "that is"], 2)
        counts = lines.flatMap(lambda l: l.split()).map(lambda w: (w, 1)).reduceByKey(lambda a, b: a + b)
        grouped = lines.map(lambda l: (len(l) % 3, l)).groupByKey().mapValues(sorted)
        results.append((sorted(counts.collect()), sorted(grouped.collect()),
                        sorted(lines.flatMap(str.split).distinct().collect()),
                        lines.map(len).reduce(lambda a, b: a + b), lines.filter(lambda l: "be" in l).count(),
                        sorted(s.createDataFrame([(1, "a"), (2, "b")], ["k", "v"]).rdd.map(lambda r: r.v).collect())))
    assert results[1] == results[0]


def test_readers(sessions, tmp_path):
    with open(tmp_path / "d.json", "w") as f:
        for i in range(50):
            rec = {"id": i, "name": f"n{i}", "tags": ["a", "b"][: i % 3], "nested": {"y": i % 2, "x": "v"}}
            if i % 7 == 0:
                rec.pop("name")
            f.write(json.dumps(rec) + "\n")
    with open(tmp_path / "d.csv", "w") as f:
        f.write("id,city,temp\n" + "".join(f"{i},c{i % 4},{i * 1.5}\n" for i in range(40)))
    with open(tmp_path / "d.txt", "w") as f:
        f.write("".join(f"line {i}\n" for i in range(30)))
    spark, ch = sessions
    for s_read in (lambda s: s.read.json(str(tmp_path / "d.json")),
                   lambda s: s.read.csv(str(tmp_path / "d.csv"), header=True, inferSchema=True),
                   lambda s: s.read.option("header", "true").csv(str(tmp_path / "d.csv")),
                   lambda s: s.read.text(str(tmp_path / "d.txt"))):
        a, b = s_read(spark), s_read(ch)
        assert b.columns == a.columns and b.dtypes == a.dtypes
        assert rows(b) == rows(a)


def test_dedup_kernel_inside_pyspark_matches_chukonu(sessions):
    from chukonu.dedup import minhash_dedup
    from chukonu.dedup.corpus import generate
    from chukonu.dedup.spark import pyspark_minhash_dedup

    corpus = generate(400, seed=11)
    data = [(i, t) for i, t in enumerate(corpus.texts)]
    spark, ch = sessions
    a = sorted(r.doc for r in pyspark_minhash_dedup(spark.createDataFrame(data, "doc long, text string")).collect())
    b = sorted(r.doc for r in minhash_dedup(ch.createDataFrame(data, "doc long, text string")).collect())
    assert a == b and len(a) < len(data)


def test_show_output(sessions):
    data = [(1, "short", 2.5, [1, 2], True), (2, "a string longer than twenty chars", None, [], False),
            (3, None, 1e8, None, None)]
    spark, ch = sessions
    schema = "id long, s string, x double, xs array<long>, b boolean"
    a = spark.createDataFrame(data, schema)._show_string(20, True)
    b = ch.createDataFrame(data, schema)._show_string(20, True)
    assert b == a
    assert ch.createDataFrame(data, schema)._show_string(2, False) == \
        spark.createDataFrame(data, schema)._show_string(2, False)
