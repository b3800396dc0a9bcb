"""describe(), summary() and ``df.stat`` (corr, cov, approxQuantile): statistics of a DataFrame's columns.

Every statistic of every column is computed in one aggregation job, then
laid out as Spark lays it out: one row per statistic, one string column per
input column, numbers printed as Spark casts them to strings.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa

from chukonu.engine.kernels.casts import java_double_str
from chukonu.errors import AnalysisException

if TYPE_CHECKING:
    from chukonu.sql.dataframe import DataFrame

_DEFAULT = ["count", "mean", "stddev", "min", "25%", "50%", "75%", "max"]


def _numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


def _text(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, float):
        return java_double_str(v)
    if isinstance(v, bool):
        return str(v).lower()
    return str(v)


def summary(df: "DataFrame", stats: list[str], cols: list[str] | None = None) -> "DataFrame":
    from chukonu.sql import functions as F
    schema = df._plan.schema
    names = cols or [a.name for a in schema if _numeric(a.type) or pa.types.is_string(a.type)]
    types = {a.name: a.type for a in schema}
    for n in names:
        if n not in types:
            raise AnalysisException(f"[UNRESOLVED_COLUMN] column {n!r} does not exist")
    aggs = []
    plan: list[tuple[str, str, int | None]] = []
    for s in stats:
        for n in names:
            numeric = _numeric(types[n])
            c = F.col(n)
            if pa.types.is_string(types[n]) and (s in ("mean", "stddev") or s.endswith("%")):
                c, numeric = c.cast("double"), True    # Spark reads numbers out of string columns here
            if s == "count":
                aggs.append(F.count(c))
            elif s == "mean" and numeric:
                aggs.append(F.avg(c))
            elif s == "stddev" and numeric:
                aggs.append(F.stddev(c))
            elif s in ("min", "max"):
                aggs.append(F.min(c) if s == "min" else F.max(c))
            elif s.endswith("%") and numeric:
                aggs.append(F.percentile_approx(c.cast("double"), float(s[:-1]) / 100))
            elif s == "count_distinct":
                aggs.append(F.countDistinct(c))
            elif s in ("mean", "stddev") or s.endswith("%"):
                plan.append((s, n, None))
                continue
            else:
                raise AnalysisException(f"[UNSUPPORTED_SUMMARY_STATISTIC] {s} is not a summary statistic")
            plan.append((s, n, len(aggs) - 1))
    row = df.agg(*[a.alias(f"s{i}") for i, a in enumerate(aggs)]).collect()[0] if aggs else ()
    values: dict[tuple[str, str], str | None] = {}
    for s, n, i in plan:
        v = row[i] if i is not None else None
        if s.endswith("%") and v is not None and pa.types.is_integer(types[n]):
            v = int(v)
        values[(s, n)] = _text(v)
    data = [tuple([s] + [values[(s, n)] for n in names]) for s in stats]
    schema_str = ", ".join(["summary string"] + [f"`{n}` string" for n in names])
    return df.sparkSession.createDataFrame(data, schema_str)


def describe(df: "DataFrame", cols: list[str]) -> "DataFrame":
    return summary(df, ["count", "mean", "stddev", "min", "max"], cols or None)


class DataFrameStatFunctions:
    def __init__(self, df: "DataFrame") -> None:
        self.df = df

    def corr(self, col1: str, col2: str, method: str = "pearson") -> float | None:
        from chukonu.sql import functions as F
        if method != "pearson":
            raise ValueError("Currently only the calculation of the Pearson Correlation coefficient is supported.")
        return self.df.agg(F.corr(col1, col2)).collect()[0][0]

    def cov(self, col1: str, col2: str) -> float | None:
        from chukonu.sql import functions as F
        return self.df.agg(F.covar_samp(col1, col2)).collect()[0][0]

    def approxQuantile(self, col: Any, probabilities: list[float], relativeError: float) -> list[Any]:
        from chukonu.sql import functions as F
        cols = [col] if isinstance(col, str) else list(col)
        row = self.df.agg(*[F.percentile_approx(F.col(c).cast("double"), list(probabilities)) for c in cols]) \
            .collect()[0]
        out = [list(r) if r is not None else [] for r in row]
        return out[0] if isinstance(col, str) else out
