"""``pyspark.sql.functions``: dates and times.

``current_date()`` and ``current_timestamp()`` are fixed when the Column is
built, so every row (and every task) of a query sees the same instant, as
Spark fixes them once per query.
"""
from __future__ import annotations

import time
from typing import Any

from chukonu.engine.expressions import Call, Lit
from chukonu.sql.column import Column, lit_expr, literal_value, to_expr


def _call(fn: str, *cols: Any, **options: Any) -> Column:
    # options are values; a literal Column (from SQL, or lit() in PySpark 4 style) is unwrapped
    return Column(Call(fn, [to_expr(c) for c in cols], {k: literal_value(v) for k, v in options.items()}))


def _value(x: Any) -> Any:
    return x.expr.value if isinstance(x, Column) and isinstance(x.expr, Lit) else x


def _field(fn: str) -> Any:
    def f(col: Any) -> Column:
        return _call(fn, col)
    f.__name__ = fn
    return f


year, month, quarter, dayofmonth, dayofyear, dayofweek = (
    _field(n) for n in ("year", "month", "quarter", "dayofmonth", "dayofyear", "dayofweek"))
weekofyear, hour, minute, second, weekday = (_field(n) for n in ("weekofyear", "hour", "minute", "second", "weekday"))
dayname, monthname, last_day = (_field(n) for n in ("dayname", "monthname", "last_day"))
unix_date, date_from_unix_date = _field("unix_date"), _field("date_from_unix_date")
unix_seconds, unix_millis, unix_micros = (_field(n) for n in ("unix_seconds", "unix_millis", "unix_micros"))
timestamp_seconds, timestamp_millis, timestamp_micros = (
    _field(n) for n in ("timestamp_seconds", "timestamp_millis", "timestamp_micros"))
day = dayofmonth


def to_date(col: Any, format: str | None = None) -> Column:  # noqa: A002
    return _call("to_date", col, format=format)


def to_timestamp(col: Any, format: str | None = None) -> Column:  # noqa: A002
    return _call("to_timestamp", col, format=format)


try_to_timestamp = to_timestamp
to_timestamp_ltz = to_timestamp
to_timestamp_ntz = to_timestamp


def try_to_date(col: Any, format: str | None = None) -> Column:  # noqa: A002
    return to_date(col, format)


def date_format(date: Any, format: str) -> Column:  # noqa: A002
    return _call("date_format", date, format=format)


def date_add(start: Any, days: Any) -> Column:
    return Column(Call("date_add", [to_expr(start), lit_expr(days)]))


dateadd = date_add


def date_sub(start: Any, days: Any) -> Column:
    return Column(Call("date_sub", [to_expr(start), lit_expr(days)]))


def datediff(end: Any, start: Any) -> Column:
    return _call("datediff", end, start)


date_diff = datediff


def add_months(start: Any, months: Any) -> Column:
    return Column(Call("add_months", [to_expr(start), lit_expr(months)]))


def months_between(date1: Any, date2: Any, roundOff: bool = True) -> Column:
    return _call("months_between", date1, date2, round=roundOff)


def next_day(date: Any, dayOfWeek: str) -> Column:
    return _call("next_day", date, day=dayOfWeek)


def trunc(date: Any, format: str) -> Column:  # noqa: A002
    return _call("trunc", date, format=format)


def date_trunc(format: str, timestamp: Any) -> Column:  # noqa: A002
    return _call("date_trunc", timestamp, format=format)


def make_date(year: Any, month: Any, day: Any) -> Column:
    return _call("make_date", year, month, day)


def make_timestamp(years: Any, months: Any, days: Any, hours: Any, mins: Any, secs: Any,
                   timezone: Any = None) -> Column:
    return _call("make_timestamp", years, months, days, hours, mins, secs)


def unix_timestamp(timestamp: Any = None, format: str = "yyyy-MM-dd HH:mm:ss") -> Column:  # noqa: A002
    if timestamp is None:
        return Column(Call("unix_timestamp", [], {"now": time.time(), "format": format}))
    return _call("unix_timestamp", timestamp, format=format)


def to_unix_timestamp(timestamp: Any, format: Any = None) -> Column:  # noqa: A002
    return _call("unix_timestamp", timestamp, format=_value(format) or "yyyy-MM-dd HH:mm:ss")


def from_unixtime(timestamp: Any, format: str = "yyyy-MM-dd HH:mm:ss") -> Column:  # noqa: A002
    return _call("from_unixtime", timestamp, format=format)


def from_utc_timestamp(timestamp: Any, tz: Any) -> Column:
    return Column(Call("from_utc_timestamp", [to_expr(timestamp), lit_expr(tz)]))


def to_utc_timestamp(timestamp: Any, tz: Any) -> Column:
    return Column(Call("to_utc_timestamp", [to_expr(timestamp), lit_expr(tz)]))


def current_date() -> Column:
    return Column(Call("current_date", [], {"now": time.time()}))


curdate = current_date


def current_timestamp() -> Column:
    return Column(Call("current_timestamp", [], {"now": time.time()}))


now = localtimestamp = current_timestamp


def date_part(field: Any, source: Any) -> Column:
    return _call("date_part", source, field=_value(field))


datepart = extract = date_part


def timestamp_add(unit: str, quantity: Any, ts: Any) -> Column:
    return Column(Call("timestamp_add", [lit_expr(quantity), to_expr(ts)], {"unit": unit}))


def timestamp_diff(unit: str, start: Any, end: Any) -> Column:
    return _call("timestamp_diff", start, end, unit=unit)
