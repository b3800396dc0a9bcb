"""``pyspark.sql.functions``: statistical aggregates and window functions.

Aggregates are AggCall nodes (planned by ``engine.aggregate`` with the
states of ``engine.stats``); window functions are WindowFunction nodes,
valid only with ``.over(window)``.
"""
from __future__ import annotations

from typing import Any

from chukonu.engine.expressions import AggCall, CaseWhen, Lit
from chukonu.engine.window import WindowFunction
from chukonu.sql.column import Column, lit_expr, to_expr


def _agg(fn: str, *cols: Any, distinct: bool = False, **options: Any) -> Column:
    return Column(AggCall(fn, [to_expr(c) for c in cols], distinct, options))


def _value(x: Any) -> Any:
    return x.expr.value if isinstance(x, Column) and isinstance(x.expr, Lit) else x


def _one(fn: str) -> Any:
    def f(col: Any) -> Column:
        return _agg(fn, col)
    f.__name__ = fn
    return f


stddev_samp, stddev_pop, var_samp, var_pop = (_one(n) for n in ("stddev_samp", "stddev_pop", "var_samp", "var_pop"))
skewness, kurtosis, product = _one("skewness"), _one("kurtosis"), _one("product")
bit_and, bit_or, bit_xor = _one("bit_and"), _one("bit_or"), _one("bit_xor")
bool_and, bool_or, median, mode = _one("bool_and"), _one("bool_or"), _one("median"), _one("mode")
stddev = std = stddev_samp
variance = var_samp
every = bool_and
some = bool_or


def corr(col1: Any, col2: Any) -> Column:
    return _agg("corr", col1, col2)


def covar_pop(col1: Any, col2: Any) -> Column:
    return _agg("covar_pop", col1, col2)


def covar_samp(col1: Any, col2: Any) -> Column:
    return _agg("covar_samp", col1, col2)


def _regr(fn: str) -> Any:
    def f(y: Any, x: Any) -> Column:
        return _agg(fn, y, x)
    f.__name__ = fn
    return f


regr_count, regr_avgx, regr_avgy, regr_sxx, regr_syy, regr_sxy = (
    _regr(n) for n in ("regr_count", "regr_avgx", "regr_avgy", "regr_sxx", "regr_syy", "regr_sxy"))
regr_slope, regr_intercept, regr_r2 = (_regr(n) for n in ("regr_slope", "regr_intercept", "regr_r2"))


def max_by(col: Any, ord: Any) -> Column:  # noqa: A002
    return _agg("max_by", col, ord)


def min_by(col: Any, ord: Any) -> Column:  # noqa: A002
    return _agg("min_by", col, ord)


def _pct(percentage: Any) -> Any:
    p = _value(percentage)
    return list(p) if isinstance(p, (list, tuple)) else float(p)


def percentile_approx(col: Any, percentage: Any, accuracy: Any = 10000) -> Column:
    return _agg("percentile_approx", col, percentage=_pct(percentage), accuracy=int(_value(accuracy)))


approx_percentile = percentile_approx


def percentile(col: Any, percentage: Any, frequency: Any = 1) -> Column:
    return _agg("percentile", col, percentage=_pct(percentage))


def approx_count_distinct(col: Any, rsd: float | None = None) -> Column:
    return _agg("approx_count_distinct", col, distinct=False, rsd=rsd if rsd is not None else 0.05)


approxCountDistinct = approx_count_distinct


def count_if(col: Any) -> Column:
    return Column(AggCall("count", [CaseWhen([(to_expr(col), Lit(1))], None)], False, {}))


def sum_distinct(col: Any) -> Column:
    return _agg("sum", col, distinct=True)


sumDistinct = sum_distinct


def try_sum(col: Any) -> Column:
    return _agg("sum", col)


def try_avg(col: Any) -> Column:
    return _agg("avg", col)


def first_value(col: Any, ignoreNulls: Any = None) -> Column:
    return _agg("first", col, ignorenulls=bool(_value(ignoreNulls)))


def last_value(col: Any, ignoreNulls: Any = None) -> Column:
    return _agg("last", col, ignorenulls=bool(_value(ignoreNulls)))


def array_agg(col: Any) -> Column:
    return _agg("collect_list", col)


def listagg(col: Any, delimiter: Any = None) -> Column:
    return _agg("listagg", col, delimiter=_value(delimiter) or "")


string_agg = listagg


def listagg_distinct(col: Any, delimiter: Any = None) -> Column:
    return _agg("listagg", col, distinct=True, delimiter=_value(delimiter) or "")


string_agg_distinct = listagg_distinct


def grouping(col: Any) -> Column:
    return Column(AggCall("grouping", [to_expr(col)]))


def grouping_id(*cols: Any) -> Column:
    return Column(AggCall("grouping_id", [to_expr(c) for c in cols]))


# ------------------------------------------------------------------- windows

def row_number() -> Column:
    return Column(WindowFunction("row_number"))


def rank() -> Column:
    return Column(WindowFunction("rank"))


def dense_rank() -> Column:
    return Column(WindowFunction("dense_rank"))


def percent_rank() -> Column:
    return Column(WindowFunction("percent_rank"))


def cume_dist() -> Column:
    return Column(WindowFunction("cume_dist"))


def ntile(n: int) -> Column:
    return Column(WindowFunction("ntile", [], {"n": int(_value(n))}))


def lag(col: Any, offset: int = 1, default: Any = None) -> Column:
    args = [to_expr(col)] + ([lit_expr(default)] if _value(default) is not None else [])
    return Column(WindowFunction("lag", args, {"offset": int(_value(offset))}))


def lead(col: Any, offset: int = 1, default: Any = None) -> Column:
    args = [to_expr(col)] + ([lit_expr(default)] if _value(default) is not None else [])
    return Column(WindowFunction("lead", args, {"offset": int(_value(offset))}))


def nth_value(col: Any, offset: int, ignoreNulls: bool | None = False) -> Column:
    return Column(WindowFunction("nth_value", [to_expr(col)], {"n": int(_value(offset)),
                                                               "ignore_nulls": bool(_value(ignoreNulls))}))
