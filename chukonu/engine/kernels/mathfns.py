"""Math kernels beyond the operators: trigonometry, logarithms, rounding, bits, bases, ``try_`` arithmetic.

Spark's answers where they differ from IEEE or Arrow: logarithms of
non-positive numbers are null (not -inf/NaN), ``bround`` rounds half to
even, ``factorial`` is null outside 0..20, ``pmod`` is never negative,
``conv``/``bin``/``hex`` read and print 64-bit two's complement.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from chukonu.engine.expressions import as_array, unify_types
from chukonu.engine.kernels import kernel
from chukonu.engine.kernels.fallback import f64, per_row

_UNARY = {
    "sin": pc.sin, "cos": pc.cos, "tan": pc.tan, "asin": pc.asin, "acos": pc.acos, "atan": pc.atan,
    "sinh": np.sinh, "cosh": np.cosh, "tanh": np.tanh, "asinh": np.arcsinh, "acosh": np.arccosh,
    "atanh": np.arctanh, "cbrt": np.cbrt, "degrees": np.degrees, "radians": np.radians, "rint": np.rint,
    "expm1": np.expm1, "signum": np.sign,
}
_UPPER = {"sin": "SIN", "cos": "COS", "tan": "TAN", "asin": "ASIN", "acos": "ACOS", "atan": "ATAN", "sinh": "SINH",
          "cosh": "COSH", "tanh": "TANH", "asinh": "ASINH", "acosh": "ACOSH", "atanh": "ATANH", "cbrt": "CBRT",
          "degrees": "DEGREES", "radians": "RADIANS", "rint": "rint", "expm1": "EXPM1", "signum": "SIGNUM"}


def _unary(fn: Any) -> Any:
    def run(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
        a = f64(v[0], n)
        if fn in (pc.sin, pc.cos, pc.tan, pc.asin, pc.acos, pc.atan):
            return fn(a)
        x = a.to_numpy(zero_copy_only=False)
        with np.errstate(all="ignore"):
            out = fn(x)
        return pa.array(out, type=pa.float64(), mask=a.is_null().to_numpy(zero_copy_only=False))
    return run


for _name, _fn in _UNARY.items():
    kernel(_name, (lambda nm: lambda a, o: f"{nm}({a[0]})")(_UPPER[_name]))(_unary(_fn))


def _log_where_positive(a: pa.Array, fn: Any, lower: float = 0.0) -> pa.Array:
    x = a.to_numpy(zero_copy_only=False)
    ok = ~a.is_null().to_numpy(zero_copy_only=False) & (x > lower)
    with np.errstate(all="ignore"):
        out = fn(np.where(ok, x, 1.0 if lower == 0.0 else 0.0))
    return pa.array(out, type=pa.float64(), mask=~ok)


@kernel("log10", lambda a, o: f"LOG10({a[0]})")
def log10(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return _log_where_positive(f64(v[0], n), np.log10)


@kernel("log2", lambda a, o: f"LOG2({a[0]})")
def log2(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return _log_where_positive(f64(v[0], n), np.log2)


@kernel("log1p", lambda a, o: f"LOG1P({a[0]})")
def log1p(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return _log_where_positive(f64(v[0], n), np.log1p, lower=-1.0)


@kernel("atan2", lambda a, o: f"ATAN2({a[0]}, {a[1]})")
def atan2(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return pc.atan2(f64(v[0], n), f64(v[1], n))


@kernel("hypot", lambda a, o: f"HYPOT({a[0]}, {a[1]})")
def hypot(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    a, b = f64(v[0], n), f64(v[1], n)
    return pc.sqrt(pc.add(pc.multiply(a, a), pc.multiply(b, b)))


@kernel("cot", lambda a, o: f"COT({a[0]})")
def cot(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return pc.divide(1.0, pc.tan(f64(v[0], n)))


@kernel("sec", lambda a, o: f"SEC({a[0]})")
def sec(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return pc.divide(1.0, pc.cos(f64(v[0], n)))


@kernel("csc", lambda a, o: f"CSC({a[0]})")
def csc(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return pc.divide(1.0, pc.sin(f64(v[0], n)))


@kernel("bround", lambda a, o: f"bround({a[0]}, {o.get('scale', 0)})")
def bround(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    a = as_array(v[0], n)
    if pa.types.is_integer(a.type) and o.get("scale", 0) >= 0:
        return a
    if pa.types.is_floating(a.type):
        from chukonu.engine.kernels.operators import decimal_round
        return decimal_round(a, o.get("scale", 0), half_even=True)
    return pc.round(a, ndigits=o.get("scale", 0), round_mode="half_to_even")


@kernel("pmod", lambda a, o: f"pmod({a[0]}, {a[1]})")
def pmod(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    from chukonu.engine.kernels import KERNELS
    r = KERNELS["mod"](v, o, n, ctx)
    b = v[1]
    if isinstance(r, pa.Scalar):
        r = as_array(r, n)
    neg = pc.less(r, pa.scalar(0, r.type))
    return pc.if_else(neg, KERNELS["mod"]([pc.add(r, b), b], o, n, ctx), r)


@kernel("factorial")
def factorial(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return per_row(lambda x: math.factorial(x) if 0 <= x <= 20 else None, [as_array(v[0], n).cast(pa.int64())],
                   pa.int64())


def _twos(x: int) -> int:
    return x & 0xFFFFFFFFFFFFFFFF


@kernel("bin")
def bin_(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return per_row(lambda x: format(_twos(int(x)), "b"), [as_array(v[0], n).cast(pa.int64())], pa.string())


@kernel("hex")
def hex_(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    a = as_array(v[0], n)
    if pa.types.is_string(a.type) or pa.types.is_large_string(a.type):
        return per_row(lambda s: s.encode("utf-8").hex().upper(), [a], pa.string())
    if pa.types.is_binary(a.type):
        return per_row(lambda s: bytes(s).hex().upper(), [a], pa.string())
    return per_row(lambda x: format(_twos(int(x)), "X"), [a.cast(pa.int64())], pa.string())


@kernel("unhex")
def unhex(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    def one(s: str) -> bytes | None:
        s = s if len(s) % 2 == 0 else "0" + s
        try:
            return bytes.fromhex(s)
        except ValueError:
            return None
    return per_row(one, [as_array(v[0], n)], pa.binary())


@kernel("conv", lambda a, o: f"conv({a[0]}, {o['from_base']}, {o['to_base']})")
def conv(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    fb, tb = int(o["from_base"]), int(o["to_base"])
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"

    def one(s: Any) -> str | None:
        s = str(s).strip().upper()
        neg = s.startswith("-")
        s = s[1:] if neg else s
        val = 0
        for ch in s:
            d = digits.find(ch)
            if d < 0 or d >= abs(fb):
                break
            val = val * abs(fb) + d
        if val == 0 and not s[:1].isalnum():
            return None
        val = _twos(-val if neg else val)
        if tb < 0 and val >= 1 << 63:
            val -= 1 << 64
        base = abs(tb)
        sign = "-" if val < 0 else ""
        val = abs(val)
        out = ""
        while True:
            out = digits[val % base] + out
            val //= base
            if val == 0:
                break
        return sign + out
    return per_row(one, [as_array(v[0], n)], pa.string())


def _shift(v: list[Any], n: int, fn: Any) -> pa.Array:
    a = as_array(v[0], n)
    bits = 32 if pa.types.is_int32(a.type) or pa.types.is_int16(a.type) or pa.types.is_int8(a.type) else 64
    dt = np.int32 if bits == 32 else np.int64
    udt = np.uint32 if bits == 32 else np.uint64
    x = a.cast(pa.int32() if bits == 32 else pa.int64()).fill_null(0).to_numpy(zero_copy_only=False).astype(dt)
    k = int(v[1].as_py() if isinstance(v[1], pa.Scalar) else v[1]) % bits
    out = fn(x, k, dt, udt)
    return pa.array(out.astype(dt), mask=a.is_null().to_numpy(zero_copy_only=False))


@kernel("shiftleft", lambda a, o: f"shiftleft({a[0]}, {a[1]})")
def shiftleft(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return _shift(v, n, lambda x, k, dt, udt: (x.view(udt) << udt(k)).view(dt))


@kernel("shiftright", lambda a, o: f"shiftright({a[0]}, {a[1]})")
def shiftright(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return _shift(v, n, lambda x, k, dt, udt: x >> dt(k))


@kernel("shiftrightunsigned", lambda a, o: f"shiftrightunsigned({a[0]}, {a[1]})")
def shiftrightunsigned(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return _shift(v, n, lambda x, k, dt, udt: (x.view(udt) >> udt(k)).view(dt))


@kernel("bitwise_not", lambda a, o: f"~{a[0]}")
def bitwise_not(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    a = as_array(v[0], n)
    return pc.bit_wise_not(a)


@kernel("bit_count")
def bit_count(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    a = as_array(v[0], n)
    if pa.types.is_boolean(a.type):
        return a.cast(pa.int32())
    x = a.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False).view(np.uint64)
    counts = np.zeros(len(x), dtype=np.int32)
    for shift in range(0, 64, 8):
        counts += _POPCOUNT8[((x >> np.uint64(shift)) & np.uint64(0xFF)).astype(np.int64)]
    return pa.array(counts, mask=a.is_null().to_numpy(zero_copy_only=False))


_POPCOUNT8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.int32)


@kernel("getbit", lambda a, o: f"getbit({a[0]}, {a[1]})")
def getbit(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    a = as_array(v[0], n)
    x = a.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False).view(np.uint64)
    k = int(v[1].as_py())
    return pa.array(((x >> np.uint64(k)) & np.uint64(1)).astype(np.int8),
                    mask=a.is_null().to_numpy(zero_copy_only=False))


@kernel("e", lambda a, o: "E()")
def e_(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return pa.scalar(math.e)


@kernel("pi", lambda a, o: "PI()")
def pi_(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return pa.scalar(math.pi)


@kernel("positive", lambda a, o: f"(+ {a[0]})")
def positive(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return v[0]


@kernel("width_bucket")
def width_bucket(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    def one(x: float, lo: float, hi: float, k: int) -> int | None:
        if k <= 0 or lo == hi:
            return None
        if lo < hi:
            if x < lo:
                return 0
            if x >= hi:
                return k + 1
            return int(k * (x - lo) / (hi - lo)) + 1
        if x > lo:
            return 0
        if x <= hi:
            return k + 1
        return int(k * (lo - x) / (lo - hi)) + 1
    return per_row(one, [f64(x, n) for x in v[:3]] + [as_array(v[3], n).cast(pa.int64())], pa.int64())


def _checked(fn: Any, v: list[Any], n: int) -> Any:
    """Integer arithmetic whose overflow is null (try_add, try_multiply ...), as Spark's try_ functions."""
    a, b = unify_types([as_array(x, n) for x in v])
    if pa.types.is_integer(a.type):
        wide = fn(a.cast(pa.float64()), b.cast(pa.float64()))
        exact = fn(a.cast(pa.int64()), b.cast(pa.int64())) if pa.types.is_int64(a.type) else fn(
            a.cast(pa.int64()), b.cast(pa.int64()))
        limit = float(np.iinfo(np.dtype(a.type.to_pandas_dtype())).max)
        over = pc.greater(pc.abs(wide), limit)
        return pc.if_else(over, pa.scalar(None, a.type), exact.cast(a.type, safe=False))
    return fn(a, b)


@kernel("try_add", lambda a, o: f"try_add({a[0]}, {a[1]})")
def try_add(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return _checked(pc.add, v, n)


@kernel("try_subtract", lambda a, o: f"try_subtract({a[0]}, {a[1]})")
def try_subtract(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return _checked(pc.subtract, v, n)


@kernel("try_multiply", lambda a, o: f"try_multiply({a[0]}, {a[1]})")
def try_multiply(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return _checked(pc.multiply, v, n)


@kernel("randn")
def randn(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    rng = np.random.default_rng([o["seed"], ctx.partition_index, ctx.row_offset])
    return pa.array(rng.standard_normal(n))
