"""Helpers for the differential tests of chukonu against real PySpark (local[2]).

``start_sessions`` starts one PySpark session (UTC, ANSI off, 4 shuffle
partitions) and one chukonu session (two worker processes) for a test
module. ``generated_rows`` makes the shared input: nulls in every column,
skewed keys (70% of rows share one key, so with 8 partitions some are
empty), unicode and empty strings, dates around month ends and leap days.
``compare_columns`` runs many expressions as one select on each engine (one
job per engine per batch) and names every column that differs; floating
point is equal within a relative 1e-9 (absolute 1e-9 near zero).
"""
from __future__ import annotations

import datetime as dt
import math
import os
import sys
from typing import Any, Callable, Iterable

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REL_TOL = 1e-9

SCHEMA = ("id long, k string, i int, x double, y double, s string, d date, ts timestamp, arr array<long>, "
          "words array<string>, m map<string,long>, b boolean, js string")


def start_sessions() -> tuple[Any, Any]:
    from pyspark.sql import SparkSession as PySession

    from chukonu.sql import SparkSession as ChSession
    os.environ["PYTHONPATH"] = os.pathsep.join([REPO, os.path.join(REPO, "tests"), os.environ.get("PYTHONPATH", "")])
    os.environ["PYSPARK_PYTHON"] = sys.executable
    spark = (PySession.builder.master("local[2]").appName("chukonu-compare")
             .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "4")
             .config("spark.sql.session.timeZone", "UTC").config("spark.sql.ansi.enabled", "false")
             .config("spark.sql.execution.arrow.pyspark.enabled", "true").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    ch = ChSession.builder.master("local[2]").config("spark.sql.shuffle.partitions", "4") \
        .config("chukonu.progress", "off").getOrCreate()
    return spark, ch


def generated_rows(n: int = 120, seed: int = 7) -> list[tuple]:
    rng = np.random.default_rng(seed)
    words = ["alpha", "Beta", "gamma", "", "naïve", "δέλτα", "x y", "a,b", "MiXeD case", "42"]
    keys = ["a"] * 7 + ["b", "c", None]
    base = dt.date(2024, 1, 28)
    rows = []
    for r in range(n):
        def maybe(v: Any, p: float = 0.12) -> Any:
            return None if rng.random() < p else v
        xs = [int(v) for v in rng.integers(-5, 20, size=int(rng.integers(0, 5)))]
        if xs and rng.random() < 0.2:
            xs[0] = None
        d = base + dt.timedelta(days=int(rng.integers(-400, 400)))
        ts = dt.datetime(2024, 2, 28, 12, 0, 0) + dt.timedelta(seconds=int(rng.integers(-10 ** 8, 10 ** 8)),
                                                               microseconds=int(rng.integers(0, 10 ** 6)))
        rows.append((
            r,
            keys[int(rng.integers(0, len(keys)))],
            maybe(int(rng.integers(-50, 50))),
            maybe(float(np.round(rng.normal(3, 10), 3)) if rng.random() > 0.05 else 0.0),
            maybe(float(np.round(rng.uniform(0.5, 100), 2))),
            maybe(str(rng.choice(words)) + (" " + str(rng.choice(words)) if rng.random() < 0.5 else "")),
            maybe(d),
            maybe(ts),
            maybe(xs, 0.1),
            maybe([str(w) for w in rng.choice(words, size=int(rng.integers(0, 4)))], 0.1),
            maybe({str(rng.choice(["p", "q", "r"])): int(rng.integers(0, 9))}, 0.15),
            maybe(bool(rng.random() < 0.5)),
            maybe('{"a": %d, "b": {"c": "%s"}, "xs": [1, 2, %d]}' % (r, rng.choice(["u", "v"]), r % 5)
                  if rng.random() > 0.1 else "{not json"),
        ))
    return rows


def frames(spark: Any, ch: Any, rows: list[tuple] | None = None, schema: str = SCHEMA,
           partitions: int = 8) -> tuple[Any, Any]:
    """The same rows on both engines, repartitioned by the skewed key (some partitions empty)."""
    rows = rows if rows is not None else generated_rows()
    a = spark.createDataFrame(rows, schema).repartition(partitions, "k")
    b = ch.createDataFrame(rows, schema).repartition(partitions, "k")
    return a, b


def plain(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return "NaN"
    if isinstance(v, (list, tuple)):
        return tuple(plain(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted(((plain(k), plain(x)) for k, x in v.items()), key=repr))
    if isinstance(v, np.ndarray):
        return tuple(plain(x) for x in v.tolist())
    if hasattr(v, "asDict"):
        return tuple(plain(x) for x in v)
    if isinstance(v, bytearray):
        return bytes(v)
    return v


def close(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, (float, int)) and not isinstance(b, bool):
        return a == b or math.isclose(a, float(b), rel_tol=REL_TOL, abs_tol=1e-9)
    if isinstance(b, float) and isinstance(a, int) and not isinstance(a, bool):
        return math.isclose(float(a), b, rel_tol=REL_TOL, abs_tol=1e-9)
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b))
    return a == b


def sorted_rows(df: Any) -> list[tuple]:
    return sorted((plain(tuple(r)) for r in df.collect()), key=repr)


def rows_equal(expected: list[tuple], got: list[tuple]) -> bool:
    return len(expected) == len(got) and all(close(a, b) for a, b in zip(expected, got))


def compare_columns(pair: tuple[Any, Any], cases: Iterable[tuple[str, Callable[[Any], Any]]],
                    key: str = "id", prepare: Callable[[Any, Any], Any] | None = None) -> list[str]:
    """Evaluate every case on both engines (one select each) and return the names of those that differ."""
    from pyspark.sql import functions as PF

    from chukonu.sql import functions as CF
    cases = list(cases)
    outs = []
    for df, F in ((pair[0], PF), (pair[1], CF)):
        src = prepare(df, F) if prepare is not None else df
        cols = [F.col(key)]
        for i, (name, build) in enumerate(cases):
            try:
                cols.append(build(F).alias(f"c{i}"))
            except Exception as e:  # noqa: BLE001 - name the case that could not be built
                raise AssertionError(f"{name}: cannot build on {F.__name__}: {type(e).__name__}: {e}") from e
        outs.append({r[0]: r for r in (plain(tuple(row)) for row in src.select(*cols).collect())})
    expected, got = outs
    bad = []
    if set(expected) != set(got):
        return ["<row keys differ>"]
    for i, (name, _build) in enumerate(cases):
        for k in expected:
            if not close(expected[k][i + 1], got[k][i + 1]):
                bad.append(f"{name}: key {k}: spark {expected[k][i + 1]!r} chukonu {got[k][i + 1]!r}")
                break
    return bad
