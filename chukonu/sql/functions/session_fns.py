"""``pyspark.sql.functions``: sort helpers, session facts, errors, ids and small conversions.

``uuid`` and ``uniform`` are random (never equal to Spark's draws);
``current_database`` and friends answer what a plain Spark session does.
"""
from __future__ import annotations

import random as _random
from typing import Any

from chukonu.engine.expressions import Call, Lit, SortOrder
from chukonu.sql.column import Column, literal_value, to_expr


def _call(fn: str, *cols: Any, **options: Any) -> Column:
    return Column(Call(fn, [to_expr(c) for c in cols], {k: literal_value(v) for k, v in options.items()}))


def asc_nulls_first(col: Any) -> Column:
    return Column(SortOrder(to_expr(col), True, True))


def asc_nulls_last(col: Any) -> Column:
    return Column(SortOrder(to_expr(col), True, False))


def desc_nulls_first(col: Any) -> Column:
    return Column(SortOrder(to_expr(col), False, True))


def desc_nulls_last(col: Any) -> Column:
    return Column(SortOrder(to_expr(col), False, False))


def current_database() -> Column:
    return Column(Call("constant", [], {"value": "default"}, label="current_database()"))


current_schema = current_database


def current_catalog() -> Column:
    return Column(Call("constant", [], {"value": "spark_catalog"}, label="current_catalog()"))


def current_timezone() -> Column:
    return Column(Call("constant", [], {"value": "UTC"}, label="current_timezone()"))


def raise_error(errMsg: Any) -> Column:
    return Column(Call("raise_error", [Lit(literal_value(errMsg)) if not isinstance(errMsg, Column) else errMsg.expr]))


def assert_true(col: Any, errMsg: Any = None) -> Column:
    return _call("assert_true", col, message=literal_value(errMsg))


def uuid(seed: Any = None) -> Column:
    return _call("uuid", seed=literal_value(seed) if seed is not None else _random.getrandbits(31))


def uniform(min: Any, max: Any, seed: Any = None) -> Column:  # noqa: A002
    return Column(Call("uniform", [], {"lo": literal_value(min), "hi": literal_value(max),
                                       "seed": literal_value(seed) if seed is not None else _random.getrandbits(31)}))


def to_base32(col: Any) -> Column:
    return _call("to_base32", col)


def from_base32(col: Any) -> Column:
    return _call("from_base32", col)


def to_binary(col: Any, format: Any = None) -> Column:  # noqa: A002
    return _call("to_binary", col, format=literal_value(format) or "hex")


try_to_binary = to_binary


def make_valid_utf8(str: Any) -> Column:  # noqa: A002
    return _call("make_valid_utf8", str)


validate_utf8 = try_validate_utf8 = make_valid_utf8


def try_parse_url(url: Any, partToExtract: Any, key: Any = None) -> Column:
    from chukonu.sql.functions.scalar import parse_url
    return parse_url(url, partToExtract, key)


def try_url_decode(str: Any) -> Column:  # noqa: A002
    return _call("url_decode", str)


def make_timestamp_ntz(years: Any, months: Any, days: Any, hours: Any, mins: Any, secs: Any) -> Column:
    return _call("make_timestamp", years, months, days, hours, mins, secs)


make_timestamp_ltz = try_make_timestamp = try_make_timestamp_ltz = try_make_timestamp_ntz = make_timestamp_ntz
