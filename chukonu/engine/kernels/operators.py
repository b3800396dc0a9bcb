"""Operator kernels: arithmetic, comparison, boolean logic, null tests, math.

Where Arrow and Spark disagree, Spark wins: ``/`` is always floating point,
division or modulo by zero is null (Spark's non-ANSI result rather than an
exception in the middle of a job), ``%`` takes the sign of the dividend, and
AND/OR use three-valued logic.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from chukonu.engine.expressions import unify_types
from chukonu.engine.kernels import kernel

_SYMBOLS = {"add": "+", "subtract": "-", "multiply": "*", "divide": "/", "mod": "%", "eq": "=", "lt": "<",
            "le": "<=", "gt": ">", "ge": ">=", "and": "AND", "or": "OR", "eq_null_safe": "<=>",
            "bitwise_and": "&", "bitwise_or": "|", "bitwise_xor": "^"}


def _binary_label(op: str):  # type: ignore[no-untyped-def]
    return lambda args, _o: f"({args[0]} {_SYMBOLS[op]} {args[1]})"


def _is_int(v: Any) -> bool:
    return pa.types.is_integer(v.type)


def _ansi_zero_check(b: Any, o: dict, ctx: Any, remainder: bool = False) -> None:
    """ANSI mode (not for try_ functions): a zero divisor anywhere is an error, not a null."""
    if getattr(ctx, "ansi", False) and not o.get("try"):
        zero = pc.equal(b, pa.scalar(0, b.type)) if not pa.types.is_null(b.type) else pa.scalar(False)
        if pc.any(zero).as_py() if isinstance(zero, (pa.Array, pa.ChunkedArray)) else zero.as_py():
            from chukonu.errors import divide_by_zero
            raise divide_by_zero(remainder)


def _ansi_overflow(fn: Any, a: Any, b: Any, o: dict, ctx: Any) -> Any:
    """ANSI mode: integer arithmetic that overflows is an error ([ARITHMETIC_OVERFLOW])."""
    if not getattr(ctx, "ansi", False) or o.get("try") or not (_is_int(a) and _is_int(b)):
        return None
    try:
        return {"add": pc.add_checked, "subtract": pc.subtract_checked, "multiply": pc.multiply_checked}[fn](a, b)
    except pa.ArrowInvalid:
        from chukonu.errors import SparkArithmeticException
        raise SparkArithmeticException(f"[ARITHMETIC_OVERFLOW] integer overflow in {fn}. Use 'try_{fn}' to "
                                       f"tolerate overflow and return NULL instead.") from None


def _null_where_zero(b: Any) -> Any:
    zero = pc.equal(b, pa.scalar(0, b.type) if not pa.types.is_null(b.type) else pa.scalar(None))
    return pc.if_else(zero, pa.scalar(None, b.type), b)


def _date_plus_days(d: Any, days: Any, sign: int) -> Any:
    """date ± integer days (Spark's date + 1), as date32 arithmetic on the day numbers."""
    k = days.cast(pa.int32())
    return pc.add(d.cast(pa.int32()), k if sign > 0 else pc.negate(k)).cast(pa.date32())


@kernel("add", _binary_label("add"))
def add(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    a, b = v
    if pa.types.is_date32(a.type) and pa.types.is_integer(b.type):
        return _date_plus_days(a, b, 1)
    if pa.types.is_integer(a.type) and pa.types.is_date32(b.type):
        return _date_plus_days(b, a, 1)
    checked = _ansi_overflow("add", a, b, o, ctx)
    return checked if checked is not None else pc.add(a, b)


@kernel("subtract", _binary_label("subtract"))
def subtract(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    a, b = v
    if pa.types.is_date32(a.type) and pa.types.is_integer(b.type):
        return _date_plus_days(a, b, -1)
    checked = _ansi_overflow("subtract", a, b, o, ctx)
    return checked if checked is not None else pc.subtract(a, b)


@kernel("int_div", lambda a, o: f"({a[0]} div {a[1]})")
def int_div(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    a, b = (x.cast(pa.int64()) for x in v)
    _ansi_zero_check(b, o, ctx)
    return pc.divide(a, _null_where_zero(b))     # integer division truncates toward zero, as Java's


@kernel("multiply", _binary_label("multiply"))
def multiply(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    checked = _ansi_overflow("multiply", v[0], v[1], o, ctx)
    return checked if checked is not None else pc.multiply(v[0], v[1])


@kernel("divide", _binary_label("divide"))
def divide(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    a, b = (x.cast(pa.float64()) for x in v)
    _ansi_zero_check(b, o, ctx)
    return pc.divide(a, _null_where_zero(b))


@kernel("mod", _binary_label("mod"))
def mod(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    a, b = v
    _ansi_zero_check(b, o, ctx, remainder=True)
    if _is_int(a) and _is_int(b):
        b = _null_where_zero(b)
        # Arrow's integer divide truncates toward zero, as Java's does
        return pc.subtract(a, pc.multiply(pc.divide(a, b), b))
    a, b = a.cast(pa.float64()), _null_where_zero(b.cast(pa.float64()))
    return pc.subtract(a, pc.multiply(pc.trunc(pc.divide(a, b)), b))


@kernel("negate", lambda a, o: f"(- {a[0]})")
def negate(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return pc.negate(v[0])


def _compare(fn: Any, v: list[Any]) -> Any:
    a, b = v
    if isinstance(a, pa.Array) and isinstance(b, pa.Array) and a.type != b.type:
        a, b = unify_types([a, b])
    return fn(a, b)


@kernel("eq", _binary_label("eq"))
def eq(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return _compare(pc.equal, v)


@kernel("ne", lambda a, o: f"(NOT ({a[0]} = {a[1]}))")
def ne(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return _compare(pc.not_equal, v)


@kernel("lt", _binary_label("lt"))
def lt(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return _compare(pc.less, v)


@kernel("le", _binary_label("le"))
def le(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return _compare(pc.less_equal, v)


@kernel("gt", _binary_label("gt"))
def gt(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return _compare(pc.greater, v)


@kernel("ge", _binary_label("ge"))
def ge(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return _compare(pc.greater_equal, v)


@kernel("eq_null_safe", _binary_label("eq_null_safe"))
def eq_null_safe(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    a, b = v
    both_null = pc.and_(pc.is_null(a), pc.is_null(b))
    same = pc.fill_null(_compare(pc.equal, v), False)
    return pc.or_(both_null, same)


@kernel("and", _binary_label("and"))
def and_(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return pc.and_kleene(*_bools(v))


@kernel("or", _binary_label("or"))
def or_(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return pc.or_kleene(*_bools(v))


def _bools(v: list[Any]) -> list[Any]:
    return [x.cast(pa.bool_()) if pa.types.is_null(x.type) else x for x in v]


@kernel("not", lambda a, o: f"(NOT {a[0]})")
def not_(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return pc.invert(_bools(v)[0])


@kernel("bitwise_and", _binary_label("bitwise_and"))
def bitwise_and(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return pc.bit_wise_and(v[0], v[1])


@kernel("bitwise_or", _binary_label("bitwise_or"))
def bitwise_or(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return pc.bit_wise_or(v[0], v[1])


@kernel("bitwise_xor", _binary_label("bitwise_xor"))
def bitwise_xor(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return pc.bit_wise_xor(v[0], v[1])


@kernel("is_null", lambda a, o: f"({a[0]} IS NULL)")
def is_null(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return pc.is_null(v[0])


@kernel("is_not_null", lambda a, o: f"({a[0]} IS NOT NULL)")
def is_not_null(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return pc.is_valid(v[0])


@kernel("isnan")
def isnan(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    a = v[0]
    if not pa.types.is_floating(a.type):
        return pa.scalar(False) if isinstance(a, pa.Scalar) else pa.array(np.zeros(len(a), dtype=bool))
    return pc.fill_null(pc.is_nan(a), False)


@kernel("isin", lambda a, o: f"({a[0]} IN ({', '.join(str(x) for x in o['values'])}))")
def isin(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    a = v[0]
    values = [x for x in o["values"] if x is not None]
    try:
        value_set = pa.array(values, type=a.type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        value_set = pa.array([str(x) for x in values]) if pa.types.is_string(a.type) else pa.array(values)
        a = a.cast(value_set.type) if not pa.types.is_string(a.type) else a
    out = pc.is_in(a, value_set=value_set)
    return pc.if_else(pc.is_null(a), pa.scalar(None, pa.bool_()), out)


@kernel("between", lambda a, o: f"(({a[0]} >= {a[1]}) AND ({a[0]} <= {a[2]}))")
def between(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return pc.and_kleene(_compare(pc.greater_equal, [v[0], v[1]]), _compare(pc.less_equal, [v[0], v[2]]))


def _arrays(v: list[Any], n: int) -> list[pa.Array]:
    from chukonu.engine.expressions import as_array
    return unify_types([as_array(x, n) for x in v])


@kernel("coalesce")
def coalesce(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return pc.coalesce(*_arrays(v, n))


@kernel("greatest")
def greatest(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return pc.max_element_wise(*_arrays(v, n), skip_nulls=True)


@kernel("least")
def least(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return pc.min_element_wise(*_arrays(v, n), skip_nulls=True)


@kernel("abs")
def abs_(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return pc.abs(v[0])


def decimal_round(a: Any, scale: int, half_even: bool) -> Any:
    """Round doubles as Spark does: on the shortest decimal form (BigDecimal(Double.toString(x))).

    ``x * 10**d`` can land a hair below a tie that the decimal form has (2.675 * 100 is
    267.49999999999997), so values within a few ulps of .5 count as ties; the rounded integer is then
    divided by the exact power of ten, which IEEE division rounds correctly (Arrow multiplies by 0.01
    and can be one ulp off).
    """
    arr = a if isinstance(a, pa.Array) else pa.array([a.as_py()], a.type)
    x = arr.cast(pa.float64()).fill_null(0.0).to_numpy(zero_copy_only=False)
    p = 10.0 ** abs(scale)
    with np.errstate(all="ignore"):
        y = np.abs(x * p if scale >= 0 else x / p)
        lo = np.floor(y)
        frac = y - lo
        tie = np.abs(frac - 0.5) <= 4 * np.spacing(np.maximum(y, 1.0))
        up = np.where(tie, (lo % 2 == 1) if half_even else True, frac > 0.5)
        k = np.copysign(lo + up, x)
        out = k / p if scale >= 0 else k * p
        out = np.where(np.isfinite(x), out, x)
    res = pa.array(out, pa.float64(), mask=arr.is_null().to_numpy(zero_copy_only=False)).cast(arr.type)
    return res if isinstance(a, pa.Array) else res[0]


@kernel("round")
def round_(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    a = v[0]
    scale = o.get("scale", 0)
    if pa.types.is_integer(a.type):
        if scale >= 0:
            return a
        return pc.round(a, ndigits=scale, round_mode="half_towards_infinity")
    if pa.types.is_floating(a.type):
        return decimal_round(a, scale, half_even=False)   # Spark rounds HALF_UP: away from zero
    return pc.round(a, ndigits=scale, round_mode="half_towards_infinity")


@kernel("floor")
def floor(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    a = v[0]
    return a.cast(pa.int64()) if pa.types.is_integer(a.type) else pc.floor(a).cast(pa.int64())


@kernel("ceil")
def ceil(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    a = v[0]
    return a.cast(pa.int64()) if pa.types.is_integer(a.type) else pc.ceil(a).cast(pa.int64())


@kernel("sqrt", lambda a, o: f"SQRT({a[0]})")
def sqrt(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return pc.sqrt(v[0].cast(pa.float64()))


@kernel("exp", lambda a, o: f"EXP({a[0]})")
def exp(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return pc.exp(v[0].cast(pa.float64()))


@kernel("log", lambda a, o: f"ln({a[0]})" if "base" not in o else f"LOG({o['base']}, {a[0]})")
def log_(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    a = v[0].cast(pa.float64())
    positive = pc.greater(a, 0.0)
    out = pc.ln(pc.if_else(positive, a, pa.scalar(1.0)))
    if "base" in o:
        out = pc.divide(out, float(np.log(o["base"])))
    return pc.if_else(positive, out, pa.scalar(None, pa.float64()))


@kernel("pow", lambda a, o: f"POWER({a[0]}, {a[1]})")
def pow_(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return pc.power(v[0].cast(pa.float64()), v[1].cast(pa.float64()))
