"""Window functions, spark.sql, pivot/rollup/cube, describe/summary, aliases: chukonu against real PySpark.

One PySpark session for the module; every comparison is one job per
engine. Inputs are the shared generated rows (nulls, a skewed key so some
of the 8 partitions are empty, ties in the ORDER BY columns). Where the
ORDER BY of a window is not total, only functions whose result does not
depend on the order among ties are compared (rank, peers-inclusive RANGE
frames), as in Spark itself.
"""
from __future__ import annotations

import importlib.util
import os

import pytest

pytest.importorskip("pyspark")

from chukonu_compare import REPO, compare_columns, frames, rows_equal, sorted_rows, start_sessions  # noqa: E402

WINDOW_FUNCTIONS = {"row_number", "rank", "dense_rank", "percent_rank", "cume_dist", "ntile", "lag", "lead",
                    "nth_value", "first", "last", "first_value", "last_value"}


@pytest.fixture(scope="module")
def sessions():
    spark, ch = start_sessions()
    yield spark, ch
    ch.stop()
    spark.stop()


@pytest.fixture(scope="module")
def pair(sessions):
    return frames(*sessions)


def _windows(W, F):
    by_k = W.partitionBy("k")
    total = by_k.orderBy("i", "id")          # a total order: row-by-row functions are deterministic
    ties = by_k.orderBy("i")                 # ties: rank and RANGE frames see peers alike
    return [
        ("row_number", lambda: F.row_number().over(total)),
        ("rank", lambda: F.rank().over(ties)), ("dense_rank", lambda: F.dense_rank().over(ties)),
        ("percent_rank", lambda: F.percent_rank().over(ties)), ("cume_dist", lambda: F.cume_dist().over(ties)),
        ("ntile", lambda: F.ntile(3).over(total)), ("lag", lambda: F.lag("x").over(total)),
        ("lag/default", lambda: F.lag("x", 2, -1.0).over(total)), ("lead", lambda: F.lead("s", 1).over(total)),
        ("nth_value", lambda: F.nth_value("x", 2).over(total)),
        ("first", lambda: F.first("x", True).over(total.rowsBetween(W.unboundedPreceding, W.unboundedFollowing))),
        ("last", lambda: F.last("x").over(total.rowsBetween(-1, 1))),
        ("sum/range-peers", lambda: F.sum("x").over(ties)), ("avg/range-peers", lambda: F.avg("i").over(ties)),
        ("count/range-peers", lambda: F.count("x").over(ties)), ("count(*)/rows", lambda: F.count("*").over(
            total.rowsBetween(-2, 0))),
        ("min/rows", lambda: F.min("x").over(total.rowsBetween(-2, 1))),
        ("max/rows", lambda: F.max("s").over(total.rowsBetween(-3, 0))),
        ("max/running", lambda: F.max("x").over(total.rowsBetween(W.unboundedPreceding, W.currentRow))),
        ("sum/range-offset", lambda: F.sum("x").over(by_k.orderBy("i").rangeBetween(-10, 5))),
        ("sum/partition", lambda: F.sum("i").over(by_k)), ("min/partition", lambda: F.min("d").over(by_k)),
        ("collect_list/rows", lambda: F.collect_list("i").over(total.rowsBetween(-1, 1))),
        ("stddev/rows", lambda: F.stddev("x").over(total.rowsBetween(-3, 0))),
        ("var_pop/partition", lambda: F.var_pop("y").over(by_k)),
        ("variance/range-peers", lambda: F.variance("i").over(ties)),
        ("row_number/global", lambda: F.row_number().over(W.orderBy("id"))),
        ("sum/global-desc", lambda: F.sum("x").over(W.orderBy(F.col("id").desc()))),
        ("first_value", lambda: F.first_value("s").over(total)),
        ("last_value", lambda: F.last_value("s", F.lit(True)).over(total)),
    ]


def test_window_functions(pair):
    from pyspark.sql import Window as PW

    from chukonu.sql.window import Window as CW
    cases_p = _windows(PW, importlib.import_module("pyspark.sql.functions"))
    cases_c = _windows(CW, importlib.import_module("chukonu.sql.functions"))
    built = {"p": {n: b for n, b in cases_p}, "c": {n: b for n, b in cases_c}}
    cases = [(n, (lambda F, n=n: built["p" if F.__name__.startswith("pyspark") else "c"][n]())) for n, _ in cases_p]
    bad = compare_columns(pair, cases)
    assert not bad, "\n".join(bad)


QUERIES = [
    "SELECT k, count(*) AS n, sum(x) AS sx, avg(y), max(s), min(d) FROM t GROUP BY k HAVING count(*) > 1",
    "SELECT k, i % 3 AS m, count(DISTINCT s) AS ds, sum(DISTINCT i) FROM t GROUP BY k, i % 3",
    "SELECT t.id, u.label, CASE WHEN x > 5 THEN 'hi' WHEN x IS NULL THEN 'none' ELSE 'lo' END AS band, "
    "CAST(i AS STRING) AS si, upper(t.k) FROM t JOIN u ON t.k = u.k",
    "SELECT t.id, u.label FROM t LEFT JOIN u ON t.k = u.k",
    "SELECT u.k, u.label, t.id FROM t RIGHT OUTER JOIN u ON t.k = u.k",
    "SELECT coalesce(t.k, u.k) AS kk, t.id, u.label FROM t FULL OUTER JOIN u ON t.k = u.k",
    "SELECT * FROM t LEFT SEMI JOIN u ON t.k = u.k",
    "SELECT id, k FROM t LEFT ANTI JOIN u USING (k)",
    "SELECT a.id, b.id AS prev FROM t a JOIN t b ON a.id = b.id + 1 WHERE a.k = 'a'",
    "SELECT count(*) FROM t CROSS JOIN u",
    "WITH c AS (SELECT *, row_number() OVER (PARTITION BY k ORDER BY i DESC, id) AS rn FROM t) "
    "SELECT id, k, i FROM c WHERE rn = 1",
    "WITH a AS (SELECT k, sum(i) AS s FROM t GROUP BY k), b AS (SELECT k, max(x) AS m FROM t GROUP BY k) "
    "SELECT a.k, a.s, b.m FROM a JOIN b ON a.k = b.k",
    "SELECT id, sum(x) OVER (PARTITION BY k ORDER BY id ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) AS s3, "
    "lag(i, 1, 0) OVER (PARTITION BY k ORDER BY id) AS li, rank() OVER (ORDER BY i) AS r FROM t",
    "SELECT k, rank() OVER (ORDER BY sum(i) DESC) AS r, sum(i) AS s FROM t GROUP BY k",
    "SELECT id FROM t WHERE k IN ('a', 'b') AND x BETWEEN 0 AND 20 UNION ALL SELECT id FROM t WHERE i < -40",
    "SELECT k FROM t UNION SELECT k FROM u",
    "SELECT sub.k, sub.n FROM (SELECT k, count(*) AS n FROM t GROUP BY k) sub WHERE sub.n > 5",
    "SELECT year(d) AS yr, month(d) AS mo, count(1) AS n, round(avg(x), 3) FROM t GROUP BY year(d), month(d)",
    "SELECT date_format(ts, 'yyyy-MM') AS ym, count(*) FROM t GROUP BY 1",
    "SELECT id, if(x IS NULL, -1.0, x) AS x2, nvl(s, '?') AS s2, length(s), s LIKE '%a%' AS has_a, "
    "s RLIKE '^[A-Z]' AS cap, i <=> NULL AS inull, NOT b AS nb, -i AS neg, i % 7 AS m7 FROM t",
    "SELECT id, transform(arr, e -> e * 2) AS t2, filter(arr, e -> e > 3) AS big, "
    "aggregate(arr, 0L, (acc, e) -> acc + coalesce(e, 0)) AS total, exists(arr, e -> e IS NULL) AS hasnull FROM t",
    "SELECT id, substring(s, 2, 3) AS sub, trim(s), extract(YEAR FROM d) AS ey, d + 1 AS tomorrow, "
    "date_add(d, 7) AS wk, datediff(d, DATE'2024-01-01') AS dd, TIMESTAMP'2024-01-02 03:04:05' AS lit_ts FROM t",
    "SELECT id, get_json_object(js, '$.b.c') AS c, from_json(js, 'a INT').a AS a, arr[0] AS a0, m['p'] AS mp, "
    "struct(k, i).i AS si, size(arr) AS sz FROM t",
    "SELECT k, sort_array(collect_set(i % 2)) AS parity, percentile_approx(x, 0.5) AS med, stddev(x) AS sd, "
    "corr(x, y) AS c FROM t GROUP BY k",
    "SELECT DISTINCT k, b FROM t",
    "SELECT id FROM t WHERE k IN (SELECT k FROM u WHERE label <> 'Zed') AND i > 0",
    "SELECT id FROM t WHERE k NOT IN (SELECT k FROM u)",
    "SELECT id FROM t WHERE i NOT IN (SELECT i FROM t WHERE id < 5)",
    "SELECT id, x - (SELECT avg(x) FROM t) AS dx FROM t WHERE y > (SELECT percentile_approx(y, 0.5) FROM t)",
    "SELECT k, b, count(*) AS n, grouping(k) AS gk, grouping_id() AS g FROM t GROUP BY ROLLUP(k, b)",
    "SELECT k, sum(i) AS s FROM t GROUP BY CUBE(k)",
    "SELECT k, b FROM t EXCEPT SELECT k, b FROM t WHERE i > 0",
    "SELECT k, b FROM t INTERSECT SELECT k, b FROM t WHERE x > 5",
    "SELECT k, b FROM t EXCEPT ALL SELECT k, b FROM t WHERE i > 10",
    "SELECT k, b FROM t INTERSECT ALL SELECT k, b FROM t WHERE i < 0",
    "SELECT 1 + 2 AS three, 'a' || 'b' AS ab, CAST('12' AS INT) + 1 AS thirteen, 7 / 2 AS half, 7 DIV 2 AS q",
]

ORDERED = [
    "SELECT id, k, x FROM t ORDER BY x DESC NULLS LAST, id LIMIT 10",
    "SELECT k, count(*) AS n FROM t GROUP BY k ORDER BY n DESC, k NULLS FIRST",
    "SELECT id FROM t ORDER BY i, id LIMIT 5",
]


def _views(spark, df, rows_u):
    df.createOrReplaceTempView("t")
    spark.createDataFrame(rows_u, "k string, label string").createOrReplaceTempView("u")


@pytest.fixture(scope="module")
def sql_sessions(sessions, pair):
    spark, ch = sessions
    rows_u = [("a", "Alpha"), ("b", "Beta"), ("z", "Zed")]
    _views(spark, pair[0], rows_u)
    _views(ch, pair[1], rows_u)
    return spark, ch


@pytest.mark.parametrize("query", QUERIES)
def test_sql_queries(sql_sessions, query):
    spark, ch = sql_sessions
    a, b = sorted_rows(spark.sql(query)), sorted_rows(ch.sql(query))
    assert rows_equal(a, b), f"{query}\nspark   {a[:8]}\nchukonu {b[:8]}"


@pytest.mark.parametrize("query", ORDERED)
def test_sql_ordered_queries(sql_sessions, query):
    from chukonu_compare import plain
    spark, ch = sql_sessions
    a = [plain(tuple(r)) for r in spark.sql(query).collect()]
    b = [plain(tuple(r)) for r in ch.sql(query).collect()]
    assert rows_equal(a, b), f"{query}\nspark   {a}\nchukonu {b}"


def test_sql_strings_in_the_dataframe_api(pair):
    def build(df, F):
        return df.selectExpr("id", "i * 2 AS twice", "upper(s) AS us", "CASE WHEN b THEN 1 ELSE 0 END AS bi") \
            .filter("twice > 0 AND us IS NOT NULL").withColumn("e", F.expr("twice + length(us)"))
    a = sorted_rows(build(pair[0], importlib.import_module("pyspark.sql.functions")))
    b = sorted_rows(build(pair[1], importlib.import_module("chukonu.sql.functions")))
    assert rows_equal(a, b) and len(a) > 10


def _both(pair, build):
    PF = importlib.import_module("pyspark.sql.functions")
    CF = importlib.import_module("chukonu.sql.functions")
    a, b = sorted_rows(build(pair[0], PF)), sorted_rows(build(pair[1], CF))
    assert rows_equal(a, b), f"\nspark   {a[:10]}\nchukonu {b[:10]}"
    return a


def test_pivot(pair):
    _both(pair, lambda df, F: df.groupBy("k").pivot("b").agg(F.sum("i")))
    _both(pair, lambda df, F: df.groupBy(F.year("d").alias("yr")).pivot("k", ["a", "b", "c"])
          .agg(F.count("id").alias("n"), F.round(F.avg("x"), 6).alias("ax")))


def test_rollup_and_cube(pair):
    _both(pair, lambda df, F: df.rollup("k", "b").agg(F.count("*").alias("n"), F.sum("i").alias("s"),
                                                      F.grouping_id().alias("g")))
    _both(pair, lambda df, F: df.cube("k", "b").agg(F.max("x").alias("mx"), F.grouping("k").alias("gk")))


def _numbers(rows):
    """describe() prints statistics as strings: compare the numbers in them within the float tolerance."""
    def num(v):
        try:
            return float(v)
        except (TypeError, ValueError):
            return v
    return [tuple(num(v) for v in r) for r in rows]


def test_describe_and_summary(pair):
    for build in (lambda df: df.describe("i", "x", "s"), lambda df: df.select("i", "y", "k").summary(),
                  lambda df: df.select("i", "x").summary("count", "min", "25%", "75%", "max")):
        a, b = _numbers(sorted_rows(build(pair[0]))), _numbers(sorted_rows(build(pair[1])))
        assert rows_equal(a, b), f"\nspark   {a}\nchukonu {b}"


def test_set_operations_and_reshaping(pair):
    def half(df, F):
        return df.filter(F.col("i") > 0).select("k", "b")
    _both(pair, lambda df, F: df.select("k", "b").subtract(half(df, F)))
    _both(pair, lambda df, F: df.select("k", "b").exceptAll(half(df, F)))
    _both(pair, lambda df, F: df.select("k", "b").intersect(half(df, F)))
    _both(pair, lambda df, F: df.select("k", "b").intersectAll(half(df, F)))
    _both(pair, lambda df, F: df.select("id", "x", "y").unpivot("id", ["x", "y"], "var", "val"))
    _both(pair, lambda df, F: df.select("id", "x", "y").melt(["id"], None, "var", "val"))
    _both(pair, lambda df, F: df.crosstab("k", "b"))


def test_alias_self_join(pair):
    _both(pair, lambda df, F: df.alias("l").join(df.alias("r"), F.col("l.id") == F.col("r.id") + 1)
          .where(F.col("l.k") == F.col("r.k")).select("l.id", F.col("r.i").alias("prev_i")))


def _pipelines():
    path = os.path.join(REPO, "bench", "chukonu_pipelines.py")
    spec = importlib.util.spec_from_file_location("chukonu_pipelines", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_held_set_pipelines_run_unchanged(sessions, tmp_path):
    """The benchmark's pipelines, on a small input, give PySpark's rows on chukonu."""
    bench = _pipelines()
    data = str(tmp_path / "events")
    bench.write_events(data, rows=6000, files=3, seed=5)
    spark, ch = sessions
    for name, pipeline in bench.PIPELINES.items():
        a = bench.normalise(pipeline(spark, data, "pyspark"))
        b = bench.normalise(pipeline(ch, data, "chukonu"))
        assert rows_equal(a, b), f"{name}: spark {a[:5]} chukonu {b[:5]}"
        assert a, name
