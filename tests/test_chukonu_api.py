"""chukonu's PySpark API on its own (inline backend): semantics, formats, bad input.

Comparisons with real PySpark live in test_chukonu_vs_pyspark.py; these
tests pin behaviour that needs no JVM: Spark's rules where Arrow differs,
errors that name what went wrong, and NotImplementedError for the rest.
"""
from __future__ import annotations

import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from chukonu.errors import AnalysisException, TaskFailedError
from chukonu.sql import Row, SparkSession
from chukonu.sql import functions as F
from chukonu.sql.types import ArrayType, LongType, StringType, StructField, StructType, parse_schema


@pytest.fixture(scope="module")
def spark():
    s = SparkSession.builder.master("local").config("chukonu.progress", "off") \
        .config("spark.sql.shuffle.partitions", "4").getOrCreate()
    yield s
    s.stop()


@pytest.fixture
def people(spark):
    return spark.createDataFrame([(1, "Alice", 30.0), (2, "bob", None), (3, None, 12.5), (4, "Carol", 41.0)],
                                 ["id", "name", "score"])


# ---------------------------------------------------------------------- Row

def test_row_by_name_index_and_equality():
    r = Row(id=1, name="a")
    assert r.id == 1 and r["name"] == "a" and r[0] == 1
    assert r == (1, "a") and r.asDict() == {"id": 1, "name": "a"}
    Person = Row("name", "age")
    p = Person("x", 3)
    assert p.age == 3 and repr(p) == "Row(name='x', age=3)"
    with pytest.raises(AttributeError):
        _ = r.missing


def test_ddl_schema_strings():
    s = parse_schema("id long, tags array<string>, info struct<a:int,b:string>")
    assert s.fieldNames() == ["id", "tags", "info"]
    assert s["tags"].dataType == ArrayType(StringType())
    assert StructType([StructField("id", LongType())]).simpleString() == "struct<id:bigint>"


# ---------------------------------------------------------- Spark semantics

def test_division_and_modulo_follow_spark(spark):
    df = spark.createDataFrame([(7, 2), (-7, 2), (1, 0)], ["a", "b"])
    rows = df.select((F.col("a") / F.col("b")).alias("q"), (F.col("a") % F.col("b")).alias("m")).collect()
    assert rows == [Row(q=3.5, m=1), Row(q=-3.5, m=-1), Row(q=None, m=None)]


def test_substring_split_and_concat_ws(spark):
    df = spark.createDataFrame([("Spark SQL",), ("a,b,,",)], ["s"])
    got = df.select(F.substring("s", 1, 3).alias("p"), F.substring("s", -3, 2).alias("n"),
                    F.split("s", ",").alias("parts"), F.concat_ws("-", F.col("s"), F.lit("x")).alias("c")).collect()
    assert got[0] == Row(p="Spa", n="SQ", parts=["Spark SQL"], c="Spark SQL-x")
    assert got[1].parts == ["a", "b", "", ""]


def test_when_otherwise_and_nulls(people):
    rows = people.select("id", F.when(F.col("score") > 20, "high").when(F.col("score").isNull(), "none")
                         .otherwise("low").alias("band")).orderBy("id").collect()
    assert [r.band for r in rows] == ["high", "none", "low", "high"]


def test_sort_puts_nulls_first_ascending_last_descending(people):
    assert [r.id for r in people.orderBy("score").collect()] == [2, 3, 1, 4]
    assert [r.id for r in people.orderBy(F.col("score").desc()).collect()] == [4, 1, 3, 2]
    assert [r.id for r in people.orderBy(F.col("name").asc_nulls_last()).collect()] == [1, 4, 2, 3]


def test_explode_posexplode_and_arrays(spark):
    df = spark.createDataFrame([(1, [3, 1, 2]), (2, []), (3, None)], "id long, xs array<long>")
    assert df.select("id", F.explode("xs")).collect() == [Row(id=1, col=3), Row(id=1, col=1), Row(id=1, col=2)]
    assert df.select("id", F.explode_outer("xs").alias("x")).count() == 5
    assert df.select(F.posexplode("xs")).collect()[1] == Row(pos=1, col=1)
    got = df.select(F.size("xs").alias("n"), F.array_min("xs").alias("lo"), F.sort_array("xs", False).alias("d"),
                    F.array_contains("xs", 2).alias("has2")).collect()
    assert got[0] == Row(n=3, lo=1, d=[3, 2, 1], has2=True)
    assert got[1] == Row(n=0, lo=None, d=[], has2=False)


def test_groupby_aggregates_and_global_agg(spark):
    df = spark.createDataFrame([("a", 1), ("b", 2), ("a", 3), ("a", None)], ["k", "v"])
    got = df.groupBy("k").agg(F.count("*").alias("n"), F.count("v").alias("nv"), F.sum("v").alias("s"),
                              F.avg("v").alias("m"), F.sort_array(F.collect_list("v")).alias("l"),
                              F.first("v").alias("f")).orderBy("k").collect()
    assert got == [Row(k="a", n=3, nv=2, s=4, m=2.0, l=[1, 3], f=1), Row(k="b", n=1, nv=1, s=2, m=2.0, l=[2], f=2)]
    assert df.filter(F.col("v") > 100).agg(F.count("*"), F.sum("v")).collect() == [Row(c=0, s=None)]
    assert df.groupBy().count().collect()[0][0] == 4


def test_joins_and_broadcast(spark):
    left = spark.createDataFrame([(1, "a"), (2, "b"), (3, "c")], ["id", "l"])
    right = spark.createDataFrame([(1, "x"), (3, "y"), (3, "z"), (4, "w")], ["id", "r"])
    assert left.join(right, "id").orderBy("id", "r").collect() == [Row(id=1, l="a", r="x"), Row(id=3, l="c", r="y"),
                                                                  Row(id=3, l="c", r="z")]
    assert left.join(F.broadcast(right), "id", "left").count() == 4
    assert sorted(r.id for r in left.join(right, "id", "left_anti").collect()) == [2]
    full = left.join(right, "id", "full").orderBy("id").collect()
    assert [r.id for r in full] == [1, 2, 3, 3, 4]
    cond = left.join(right, left["id"] == right["id"]).select(left["id"], right["r"]).orderBy("r").collect()
    assert cond == [Row(id=1, r="x"), Row(id=3, r="y"), Row(id=3, r="z")]


def test_distinct_drop_duplicates_union(spark):
    df = spark.createDataFrame([(1, "a"), (1, "a"), (1, "b"), (2, "a")], ["x", "y"])
    assert df.distinct().count() == 3
    assert df.dropDuplicates(["x"]).orderBy("x").collect() == [Row(x=1, y="a"), Row(x=2, y="a")]
    other = spark.createDataFrame([("z", 9)], ["y", "x"])
    assert df.unionByName(other).filter(F.col("x") == 9).collect() == [Row(x=9, y="z")]
    with pytest.raises(AnalysisException, match="NUM_COLUMNS_MISMATCH"):
        df.union(spark.createDataFrame([(1,)], ["x"]))


def test_monotonic_ids_limit_first_and_show(spark, capsys):
    df = spark.range(10, numPartitions=3)
    ids = [r[0] for r in df.select(F.monotonically_increasing_id()).collect()]
    assert ids[:4] == [0, 1, 2, 1 << 33] and len(set(ids)) == 10
    assert df.limit(4).count() == 4 and df.first() == Row(id=0)
    spark.createDataFrame([(1, "a" * 30, None)], "id long, s string, d double").show()
    out = capsys.readouterr().out
    assert "+---+--------------------+----+" in out and "|aaaaaaaaaaaaaaaaa...|NULL|" in out


def test_cache_computes_once(spark):
    calls = []

    @F.udf("long")
    def tick(x):
        calls.append(x)
        return x

    df = spark.range(5).select(tick("id").alias("t")).cache()
    assert df.count() == 5 and df.count() == 5
    assert len(calls) == 5


def test_udf_and_pandas_udf(people):
    upper = F.udf(lambda s: s.upper() if s else None, "string")

    @F.pandas_udf("double")
    def plus_one(s):
        return s + 1

    rows = people.select(upper("name").alias("u"), plus_one("score").alias("p")).collect()
    assert rows[0] == Row(u="ALICE", p=31.0) and rows[1].p is None


def test_rdd_api(spark):
    sc = spark.sparkContext
    words = sc.parallelize(["a b", "b c c", ""], 2).flatMap(str.split)
    assert sorted(words.map(lambda w: (w, 1)).reduceByKey(lambda a, b: a + b).collect()) == [("a", 1), ("b", 2),
                                                                                             ("c", 2)]
    assert sorted((k, sorted(v)) for k, v in words.map(lambda w: (w, len(w))).groupByKey().collect()) == [
        ("a", [1]), ("b", [1, 1]), ("c", [1, 1])]
    assert sorted(words.distinct().collect()) == ["a", "b", "c"]
    assert words.filter(lambda w: w != "c").count() == 3 and words.map(len).reduce(lambda a, b: a + b) == 5
    assert sc.parallelize(range(10), 3).mapPartitions(lambda it: [sum(it)]).collect() == [3, 12, 30]


# ------------------------------------------------------------------ formats

def test_write_read_roundtrips(spark, tmp_path):
    df = spark.createDataFrame([(i, f"n{i % 3}", [i, i + 1]) for i in range(20)], "id long, k string, xs array<long>")
    df.write.partitionBy("k").parquet(str(tmp_path / "pq"))
    assert os.path.exists(tmp_path / "pq" / "_SUCCESS") and os.path.isdir(tmp_path / "pq" / "k=n1")
    back = spark.read.parquet(str(tmp_path / "pq"))
    assert back.columns == ["id", "xs", "k"] and back.count() == 20
    assert back.filter(F.col("k") == "n1").agg(F.sum("id")).collect()[0][0] == sum(i for i in range(20) if i % 3 == 1)
    df.select("id", "k").write.json(str(tmp_path / "js"))
    js = spark.read.json(str(tmp_path / "js"))
    assert js.columns == ["id", "k"] and sorted(r.id for r in js.collect()) == list(range(20))
    df.select("id", "k").write.csv(str(tmp_path / "csv"), header=True)
    cs = spark.read.csv(str(tmp_path / "csv"), header=True, inferSchema=True)
    assert cs.dtypes == [("id", "int"), ("k", "string")] and cs.count() == 20
    df.select("k").write.text(str(tmp_path / "txt"))
    assert spark.read.text(str(tmp_path / "txt")).count() == 20


def test_save_modes(spark, tmp_path):
    path = str(tmp_path / "out")
    df = spark.range(3)
    df.write.parquet(path)
    with pytest.raises(AnalysisException, match="already exists"):
        df.write.parquet(path)
    df.write.mode("ignore").parquet(path)
    df.write.mode("append").parquet(path)
    assert spark.read.parquet(path).count() == 6
    df.write.mode("overwrite").parquet(path)
    assert spark.read.parquet(path).count() == 3


def test_json_lines_spanning_splits(spark, tmp_path):
    path = tmp_path / "big.json"
    with open(path, "w") as f:
        for i in range(3000):
            f.write(json.dumps({"i": i, "t": "x" * (i % 50)}) + "\n")
    df = spark.read.option("samplingBytes", 4096).json(str(path))
    # 3000 lines cut into many 8 KiB splits: each line is read exactly once
    spark.conf.set("spark.sql.files.maxPartitionBytes", "8k")
    try:
        small = spark.read.json(str(path))
        assert len(small._plan.splits) > 10
        assert small.count() == 3000 and sorted(r.i for r in small.select("i").collect()) == list(range(3000))
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
    assert df.count() == 3000


# ---------------------------------------------------------------- bad input

def test_missing_path(spark, tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        spark.read.parquet(str(tmp_path / "nope"))


def test_unknown_column_is_reported_at_once(people):
    with pytest.raises(AnalysisException, match="UNRESOLVED_COLUMN.*nosuch"):
        people.select("nosuch")
    with pytest.raises(AnalysisException, match="not boolean"):
        people.filter(F.col("name"))


def test_parquet_schema_mismatch_names_the_file(spark, tmp_path):
    d = tmp_path / "mixed"
    d.mkdir()
    pq.write_table(pa.table({"a": [1, 2]}), d / "part-0.parquet")
    pq.write_table(pa.table({"a": ["x", "y"]}), d / "part-1.parquet")
    with pytest.raises(AnalysisException, match="SCHEMA_MISMATCH.*part-1.parquet"):
        spark.read.parquet(str(d))


def test_created_rows_must_match_the_schema(spark):
    with pytest.raises(TypeError, match="FIELD_DATA_TYPE_UNACCEPTABLE.*x"):
        spark.createDataFrame([("not a number",)], "x long")


def test_corrupt_parquet_names_the_file(spark, tmp_path):
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 this is not parquet at all")
    with pytest.raises(AnalysisException, match="bad.parquet"):
        spark.read.parquet(str(bad))


def test_udf_error_names_the_partition_and_cause(spark):
    @F.udf("long")
    def explode_on_seven(x):
        if x == 7:
            raise ValueError("seven is not allowed")
        return x

    df = spark.range(0, 10, numPartitions=3).select(explode_on_seven("id"))
    with pytest.raises(TaskFailedError) as info:
        df.collect()
    err = info.value
    assert err.partition == 2 and err.cause_type == "ValueError"
    assert "partition 2" in str(err) and "seven is not allowed" in str(err) and "explode_on_seven" in str(err)


def test_unsupported_calls_name_themselves(spark, people):
    with pytest.raises(NotImplementedError, match="xpath_string"):
        F.xpath_string("name", "a/b")
    with pytest.raises(NotImplementedError, match="DataFrame.freqItems"):
        people.freqItems(["id"])
    with pytest.raises(NotImplementedError, match="SQL statement INSERT"):
        spark.sql("insert into t values (1)")
    with pytest.raises(NotImplementedError, match="SQL function no_such_fn"):
        spark.sql("select no_such_fn(1)")
    with pytest.raises(NotImplementedError, match="array_sort with a comparator"):
        F.array_sort("id", lambda a, b: a - b)
    with pytest.raises(NotImplementedError, match="RDD.sortByKey"):
        spark.sparkContext.parallelize([(1, 2)]).sortByKey()


def test_create_from_pandas_and_arrow(spark):
    import pandas as pd
    pdf = pd.DataFrame({"a": [1, 2, 3], "b": ["x", None, "z"]})
    assert spark.createDataFrame(pdf).collect() == [Row(a=1, b="x"), Row(a=2, b=None), Row(a=3, b="z")]
    table = pa.table({"a": [1.5, 2.5], "tags": [["p"], []]})
    df = spark.createDataFrame(table)
    assert df.dtypes == [("a", "double"), ("tags", "array<string>")]
    assert df.toPandas()["a"].tolist() == [1.5, 2.5]
    assert spark.createDataFrame([1, 2], "int").collect() == [Row(value=1), Row(value=2)]


def test_rdd_save_as_text_file_and_text_file(spark, tmp_path):
    sc = spark.sparkContext
    out = str(tmp_path / "words")
    sc.parallelize([("a", 1), ("b", 2), ("c", 3)], 2).map(lambda kv: f"{kv[0]}={kv[1]}").saveAsTextFile(out)
    assert sorted(n for n in os.listdir(out) if n.startswith("part-")) == ["part-00000", "part-00001"]
    assert sorted(sc.textFile(out).collect()) == ["a=1", "b=2", "c=3"]
    with pytest.raises(AnalysisException, match="already exists"):
        sc.parallelize([1]).saveAsTextFile(out)


def test_scans_read_only_the_columns_the_query_uses(spark, tmp_path):
    from chukonu.engine.planner import Planner
    from chukonu.engine.pruning import needed_columns, scan_columns
    pq.write_table(pa.table({"id": [1, 2, 3], "k": ["a", "b", "a"], "s": ["x", "y", None], "v": [1.0, 2.0, 3.0]}),
                   tmp_path / "t.parquet")
    df = spark.read.parquet(str(tmp_path / "t.parquet"))
    q = df.withColumn("u", F.upper("s")).filter(F.col("id") > 1).groupBy("k").agg(F.sum("v").alias("sv"))
    plan = q._plan
    scan = plan
    while scan.children:
        scan = scan.children[0]
    assert scan_columns(scan, needed_columns(plan)) == ["id", "k", "v"]
    assert sorted(q.collect()) == [Row(k="a", sv=3.0), Row(k="b", sv=2.0)]
    parts = Planner(spark._engine).partitions(df.select("k")._plan)
    assert parts[0].parent.reader.read_columns == {"k"}


def test_an_output_nobody_reads_is_not_computed(spark):
    def boom(s):
        raise ValueError("computed a column nobody reads")
    df = spark.createDataFrame([(1, "a"), (2, None)], "id long, s string")
    got = df.withColumn("b", F.udf(boom, "string")("s")).select("id").collect()
    assert got == [Row(id=1), Row(id=2)]


def test_sql_errors_name_the_problem(spark, people):
    people.createOrReplaceTempView("people")
    with pytest.raises(AnalysisException, match="PARSE_SYNTAX_ERROR"):
        spark.sql("SELEC id FROM people")
    with pytest.raises(AnalysisException, match="TABLE_OR_VIEW_NOT_FOUND"):
        spark.sql("SELECT * FROM nobody")
    with pytest.raises(AnalysisException, match="UNRESOLVED_COLUMN"):
        spark.sql("SELECT nope FROM people")
    with pytest.raises(AnalysisException, match="MISSING_AGGREGATION"):
        spark.sql("SELECT name, count(*) FROM people GROUP BY id")
    with pytest.raises(AnalysisException, match="TEMP_TABLE_OR_VIEW_ALREADY_EXISTS"):
        people.createTempView("people")
    assert spark.catalog.tableExists("people") and spark.catalog.dropTempView("people")
    assert not spark.catalog.tableExists("people")
