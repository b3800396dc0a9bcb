"""Set operations by value (subtract, intersect, their ALL forms), unpivot/melt, crosstab, randomSplit, colRegex.

Set operations compare whole rows with nulls equal to nulls, as SQL's
EXCEPT and INTERSECT do, so they are aggregations rather than joins: both
sides are tagged, unioned and grouped by every column; the per-side row
counts say which rows survive, and the ALL forms repeat each surviving row
as often as the counts allow.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from chukonu.errors import AnalysisException

if TYPE_CHECKING:
    from chukonu.sql.dataframe import DataFrame


def _counted(left: "DataFrame", right: "DataFrame") -> tuple["DataFrame", list[str]]:
    from chukonu.sql import functions as F
    if len(left.columns) != len(right.columns):
        raise AnalysisException(f"[NUM_COLUMNS_MISMATCH] set operations need the same number of columns: "
                                f"{len(left.columns)} and {len(right.columns)}")
    names = [f"c{i}" for i in range(len(left.columns))]
    both = left.toDF(*names).withColumn("__l", F.lit(1)).withColumn("__r", F.lit(0)).union(
        right.toDF(*names).withColumn("__l", F.lit(0)).withColumn("__r", F.lit(1)))
    counts = both.groupBy(*names).agg(F.sum("__l").alias("__nl"), F.sum("__r").alias("__nr"))
    return counts, names


def _finish(df: "DataFrame", names: list[str], original: list[str], repeat: Any = None) -> "DataFrame":
    from chukonu.sql import functions as F
    if repeat is not None:
        df = df.withColumn("__rep", F.explode(F.array_repeat(F.lit(0), repeat.cast("int"))))
    return df.select(*[F.col(n).alias(o) for n, o in zip(names, original)])


def subtract(left: "DataFrame", right: "DataFrame") -> "DataFrame":
    from chukonu.sql import functions as F
    counts, names = _counted(left, right)
    return _finish(counts.filter((F.col("__nl") > 0) & (F.col("__nr") == 0)), names, left.columns)


def intersect(left: "DataFrame", right: "DataFrame") -> "DataFrame":
    from chukonu.sql import functions as F
    counts, names = _counted(left, right)
    return _finish(counts.filter((F.col("__nl") > 0) & (F.col("__nr") > 0)), names, left.columns)


def except_all(left: "DataFrame", right: "DataFrame") -> "DataFrame":
    from chukonu.sql import functions as F
    counts, names = _counted(left, right)
    keep = counts.filter(F.col("__nl") > F.col("__nr"))
    return _finish(keep, names, left.columns, F.col("__nl") - F.col("__nr"))


def intersect_all(left: "DataFrame", right: "DataFrame") -> "DataFrame":
    from chukonu.sql import functions as F
    counts, names = _counted(left, right)
    keep = counts.filter((F.col("__nl") > 0) & (F.col("__nr") > 0))
    return _finish(keep, names, left.columns, F.least("__nl", "__nr"))


def unpivot(df: "DataFrame", ids: Any, values: Any, variableColumnName: str, valueColumnName: str) -> "DataFrame":
    """One row per (input row, value column): the id columns, the value column's name, its value."""
    from chukonu.sql import functions as F
    from chukonu.sql.column import Column
    ids_l = [ids] if isinstance(ids, (str, Column)) else list(ids or [])
    id_names = [c if isinstance(c, str) else c.expr.name() for c in ids_l]
    if values is None:
        value_names = [c for c in df.columns if c not in id_names]
    else:
        value_names = [values] if isinstance(values, str) else [v if isinstance(v, str) else v.expr.name()
                                                                   for v in values]
    if not value_names:
        raise AnalysisException("[UNPIVOT_REQUIRES_VALUE_COLUMNS] unpivot needs at least one value column")
    pairs = F.array(*[F.struct(F.lit(v).alias("n"), F.col(v).alias("v")) for v in value_names])
    exploded = df.select(*[F.col(i) for i in id_names], F.explode(pairs).alias("__kv"))
    return exploded.select(*[F.col(i) for i in id_names], F.col("__kv").getField("n").alias(variableColumnName),
                           F.col("__kv").getField("v").alias(valueColumnName))


def crosstab(df: "DataFrame", col1: str, col2: str) -> "DataFrame":
    """Counts of each (col1, col2) pair: one row per col1 value, one column per col2 value (nulls as 'null')."""
    from chukonu.sql import functions as F
    keyed = df.select(F.coalesce(F.col(col1).cast("string"), F.lit("null")).alias(f"{col1}_{col2}"),
                      F.coalesce(F.col(col2).cast("string"), F.lit("null")).alias("__c2"))
    out = keyed.groupBy(f"{col1}_{col2}").pivot("__c2").agg(F.count(F.lit(1)))
    return out.fillna(0)


def random_split(df: "DataFrame", weights: list[float], seed: int | None) -> list["DataFrame"]:
    from chukonu.sql import functions as F
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError("randomSplit weights must be non-negative and sum to more than 0")
    total = float(sum(weights))
    marked = df.withColumn("__rs", F.rand(seed)).cache()
    out, lo = [], 0.0
    for w in weights:
        hi = lo + w / total
        cond = (F.col("__rs") >= lo) & (F.col("__rs") < hi if hi < 1.0 else F.lit(True))
        out.append(marked.filter(cond).drop("__rs"))
        lo = hi
    return out


def col_regex(df: "DataFrame", colName: str) -> Any:
    """A Column that a select expands to every column whose whole name matches the regex."""
    from chukonu.engine.expressions import RegexStar
    from chukonu.sql.column import Column
    return Column(RegexStar(re.compile(colName.strip("`"))))
