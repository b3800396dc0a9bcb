"""CAST with Spark's (non-ANSI) results.

Arrow's cast refuses what Spark turns into null (``"abc"`` to int) and
formats numbers differently (Spark prints the double 1.0 as ``"1.0"`` and
1e7 as ``"1.0E7"``), so casts from and to strings go through the rules
below; everything else is Arrow's cast, truncating floats toward zero as
Java does.
"""
from __future__ import annotations

import decimal
import math
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}


def java_double_str(x: float) -> str:
    """Java's Double.toString, which Spark uses to cast a double to a string."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0:
        return "-0.0" if math.copysign(1.0, x) < 0 else "0.0"
    if 1e-3 <= abs(x) < 1e7:
        s = repr(x)
        return s if "." in s or "e" in s else s + ".0"
    # Java's d.dddE±n layout with the shortest round-trip digits (Python's repr)
    sign, digits, exp = decimal.Decimal(repr(x)).as_tuple()
    text = "".join(map(str, digits)).rstrip("0") or "0"
    e10 = len(digits) + int(exp) - 1
    return ("-" if sign else "") + text[0] + "." + (text[1:] or "0") + f"E{e10}"


def _from_string(a: pa.Array, to: pa.DataType) -> pa.Array:
    try:
        return pc.cast(pc.utf8_trim_whitespace(a), to)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    out: list[Any] = []
    for s in a.to_pylist():
        if s is None:
            out.append(None)
            continue
        s = s.strip()
        try:
            if pa.types.is_boolean(to):
                low = s.lower()
                out.append(True if low in _TRUE else False if low in _FALSE else None)
            elif pa.types.is_integer(to):
                out.append(int(s) if s.lstrip("+-").isdigit() else None)
            elif pa.types.is_floating(to):
                out.append(float(s))
            else:
                out.append(pc.cast(pa.array([s]), to)[0].as_py())
        except (ValueError, pa.ArrowInvalid, OverflowError):
            out.append(None)
    try:
        return pa.array(out, type=to)
    except (pa.ArrowInvalid, OverflowError):
        return pa.array([v if v is None or not isinstance(v, int) or -(1 << 63) <= v < (1 << 63) else None
                         for v in out], type=to)


def _to_string(a: pa.Array) -> pa.Array:
    t = a.type
    if pa.types.is_floating(t):
        return pa.array([None if x is None else java_double_str(x) for x in a.to_pylist()], type=pa.string())
    if pa.types.is_boolean(t):
        return pa.array([None if x is None else ("true" if x else "false") for x in a.to_pylist()],
                        type=pa.string())
    if pa.types.is_list(t) or pa.types.is_struct(t) or pa.types.is_map(t):
        return pa.array([None if x is None else _render(x) for x in a.to_pylist()], type=pa.string())
    return pc.cast(a, pa.string())


def _render(x: Any) -> str:
    if isinstance(x, list):
        return "[" + ", ".join("null" if e is None else _render(e) for e in x) + "]"
    if isinstance(x, dict):
        return "{" + ", ".join("null" if e is None else _render(e) for e in x.values()) + "}"
    if isinstance(x, bool):
        return str(x).lower()
    if isinstance(x, float):
        return java_double_str(x)
    return str(x)


def spark_cast(a: pa.Array, to: pa.DataType, ansi: bool = False) -> pa.Array:
    out = _spark_cast(a, to)
    if ansi and out.null_count > a.null_count:   # ANSI mode: malformed input is an error, not a null
        from chukonu.errors import SparkNumberFormatException
        from chukonu.sql.types import from_arrow
        bad = pc.and_(pc.is_null(out), pc.is_valid(a))
        value = a.filter(bad)[0].as_py()
        raise SparkNumberFormatException(
            f"[CAST_INVALID_INPUT] The value {value!r} of the type \"{from_arrow(a.type).simpleString().upper()}\" "
            f"cannot be cast to \"{from_arrow(to).simpleString().upper()}\" because it is malformed. Correct the "
            f"value as per the syntax, or change its target type. Use `try_cast` to tolerate malformed input and "
            f"return NULL instead.")
    return out


def _spark_cast(a: pa.Array, to: pa.DataType) -> pa.Array:
    if a.type == to:
        return a
    if pa.types.is_null(a.type):
        return pa.nulls(len(a), to)
    src_string = pa.types.is_string(a.type) or pa.types.is_large_string(a.type)
    if pa.types.is_string(to) or pa.types.is_large_string(to):
        return _to_string(a) if not src_string else a.cast(to)
    if src_string and (pa.types.is_timestamp(to) or pa.types.is_date(to)):
        from chukonu.engine.kernels.datetime_fmt import parse_dates, parse_timestamp_strings
        return parse_dates(a) if pa.types.is_date(to) else parse_timestamp_strings(a).cast(to)
    if src_string:
        return _from_string(a, to)
    if pa.types.is_floating(a.type) and pa.types.is_integer(to):
        return pc.cast(pc.trunc(a), to, safe=False)
    if pa.types.is_boolean(to) and (pa.types.is_integer(a.type) or pa.types.is_floating(a.type)):
        return pc.not_equal(a, pa.scalar(0, a.type))
    try:
        return pc.cast(a, to)
    except pa.ArrowInvalid:
        return pc.cast(a, to, safe=False)
