"""``pyspark.sql.functions``: math, more strings, hashes, conditionals on nulls, misc.

As everywhere in this package, a string argument in a column position is a
column name, and a plain value in a value position is a literal.
"""
from __future__ import annotations

import builtins
import random as _random
from typing import Any

from chukonu.engine.expressions import CaseWhen, Call, Lit, Rand
from chukonu.sql.column import Column, lit_expr, literal_value, to_expr


def _call(fn: str, *cols: Any, **options: Any) -> Column:
    # options are values; a literal Column (from SQL, or lit() in PySpark 4 style) is unwrapped
    return Column(Call(fn, [to_expr(c) for c in cols], {k: literal_value(v) for k, v in options.items()}))


def _calll(fn: str, col: Any, *values: Any, **options: Any) -> Column:
    """A call whose first argument is a column and the rest are literal values (or Columns)."""
    return Column(Call(fn, [to_expr(col)] + [lit_expr(v) for v in values], options))


# ------------------------------------------------------------------------ math

def _unary(fn: str) -> Any:
    def f(col: Any) -> Column:
        return _call(fn, col)
    f.__name__ = fn
    return f


sin, cos, tan, asin, acos, atan = (_unary(n) for n in ("sin", "cos", "tan", "asin", "acos", "atan"))
sinh, cosh, tanh, asinh, acosh, atanh = (_unary(n) for n in ("sinh", "cosh", "tanh", "asinh", "acosh", "atanh"))
cot, sec, csc, cbrt, degrees, radians = (_unary(n) for n in ("cot", "sec", "csc", "cbrt", "degrees", "radians"))
log10, log2, log1p, expm1, rint, signum = (_unary(n) for n in ("log10", "log2", "log1p", "expm1", "rint", "signum"))
factorial, bin, hex, unhex = (_unary(n) for n in ("factorial", "bin", "hex", "unhex"))  # noqa: A001
bit_count, bitwise_not, positive = (_unary(n) for n in ("bit_count", "bitwise_not", "positive"))
toDegrees, toRadians, sign = degrees, radians, signum
bitwiseNOT = bitwise_not


def ln(col: Any) -> Column:
    return _call("log", col)


def ceiling(col: Any) -> Column:
    return _call("ceil", col)


def negative(col: Any) -> Column:
    return _call("negate", col)


negate = negative


def power(col1: Any, col2: Any) -> Column:
    from chukonu.sql.functions.core import pow as pow_
    return pow_(col1, col2)


def atan2(col1: Any, col2: Any) -> Column:
    return Column(Call("atan2", [lit_expr(col1) if isinstance(col1, (int, float)) else to_expr(col1),
                                 lit_expr(col2) if isinstance(col2, (int, float)) else to_expr(col2)]))


def hypot(col1: Any, col2: Any) -> Column:
    return Column(Call("hypot", [lit_expr(col1) if isinstance(col1, (int, float)) else to_expr(col1),
                                 lit_expr(col2) if isinstance(col2, (int, float)) else to_expr(col2)]))


def bround(col: Any, scale: int = 0) -> Column:
    return _call("bround", col, scale=scale)


def pmod(dividend: Any, divisor: Any) -> Column:
    return Column(Call("pmod", [lit_expr(dividend) if isinstance(dividend, (int, float)) else to_expr(dividend),
                                lit_expr(divisor) if isinstance(divisor, (int, float)) else to_expr(divisor)]))


def conv(col: Any, fromBase: int, toBase: int) -> Column:
    return _call("conv", col, from_base=fromBase, to_base=toBase)


def shiftleft(col: Any, numBits: int) -> Column:
    return _calll("shiftleft", col, numBits)


def shiftright(col: Any, numBits: int) -> Column:
    return _calll("shiftright", col, numBits)


def shiftrightunsigned(col: Any, numBits: int) -> Column:
    return _calll("shiftrightunsigned", col, numBits)


shiftLeft, shiftRight, shiftRightUnsigned = shiftleft, shiftright, shiftrightunsigned


def getbit(col: Any, pos: Any) -> Column:
    return _calll("getbit", col, pos)


bit_get = getbit


def e() -> Column:
    return Column(Call("e", []))


def pi() -> Column:
    return Column(Call("pi", []))


def width_bucket(v: Any, min: Any, max: Any, numBucket: Any) -> Column:  # noqa: A002
    return Column(Call("width_bucket", [to_expr(v), lit_expr(min), lit_expr(max), lit_expr(numBucket)]))


def randn(seed: int | None = None) -> Column:
    return Column(Call("randn", [], {"seed": seed if seed is not None else _random.getrandbits(31)},
                       label=f"randn({seed})"))


def random(seed: int | None = None) -> Column:
    return Column(Rand(seed if seed is not None else _random.getrandbits(31)))


def try_add(left: Any, right: Any) -> Column:
    return _call("try_add", left, right)


def try_subtract(left: Any, right: Any) -> Column:
    return _call("try_subtract", left, right)


def try_multiply(left: Any, right: Any) -> Column:
    return _call("try_multiply", left, right)


def try_divide(left: Any, right: Any) -> Column:
    return Column(Call("divide", [to_expr(left), to_expr(right)], {"try": True}, label=None))


def try_mod(left: Any, right: Any) -> Column:
    return Column(Call("mod", [to_expr(left), to_expr(right)], {"try": True}))


# ---------------------------------------------------------------- conditionals

def ifnull(col1: Any, col2: Any) -> Column:
    return _call("coalesce", col1, col2)


nvl = ifnull


def nvl2(col1: Any, col2: Any, col3: Any) -> Column:
    return Column(CaseWhen([(Call("is_not_null", [to_expr(col1)]), to_expr(col2))], to_expr(col3)))


def nullif(col1: Any, col2: Any) -> Column:
    return Column(CaseWhen([(Call("eq", [to_expr(col1), to_expr(col2)]), Lit(None))], to_expr(col1)))


def nullifzero(col: Any) -> Column:
    return Column(CaseWhen([(Call("eq", [to_expr(col), Lit(0)]), Lit(None))], to_expr(col)))


def zeroifnull(col: Any) -> Column:
    return _call("coalesce", col, Column(Lit(0)))


def isnotnull(col: Any) -> Column:
    return _call("is_not_null", col)


def equal_null(col1: Any, col2: Any) -> Column:
    return _call("eq_null_safe", col1, col2)


# --------------------------------------------------------------------- strings

ascii, base64, unbase64 = (_unary(n) for n in ("ascii", "base64", "unbase64"))  # noqa: A001
bit_length, octet_length, soundex = (_unary(n) for n in ("bit_length", "octet_length", "soundex"))
quote, url_encode, url_decode = (_unary(n) for n in ("quote", "url_encode", "url_decode"))
is_valid_utf8 = _unary("is_valid_utf8")
ucase = _unary("upper")
lcase = _unary("lower")


def character_length(str: Any) -> Column:  # noqa: A002
    return _call("length", str)


def chr(col: Any) -> Column:  # noqa: A001
    return _call("chr", col)


char = chr


def btrim(str: Any, trim: Any = None) -> Column:  # noqa: A002
    return _call("btrim", str) if trim is None else _call("btrim", str, trim)


def left(str: Any, len: Any) -> Column:  # noqa: A002
    return _calll("left", str, len)


def right(str: Any, len: Any) -> Column:  # noqa: A002
    return _calll("right", str, len)


def locate(substr: str, str: Any, pos: int = 1) -> Column:  # noqa: A002
    return _call("locate", str, substr=substr, pos=pos)


def position(substr: Any, str: Any, start: Any = None) -> Column:  # noqa: A002
    sub = substr.expr.value if isinstance(substr, Column) and isinstance(substr.expr, Lit) else substr
    pos = start.expr.value if isinstance(start, Column) and isinstance(start.expr, Lit) else (start or 1)
    return _call("locate", str, substr=sub, pos=pos)


def overlay(src: Any, replace: Any, pos: int, len: int = -1) -> Column:  # noqa: A002
    return _call("overlay", src, replace, pos=pos, len=len)


def levenshtein(left: Any, right: Any, threshold: int | None = None) -> Column:
    return _call("levenshtein", left, right, threshold=threshold)


def substring_index(str: Any, delim: str, count: int) -> Column:  # noqa: A002
    return _call("substring_index", str, delim=delim, count=count)


def split_part(src: Any, delimiter: Any, partNum: Any) -> Column:
    return Column(Call("split_part", [to_expr(src), to_expr(delimiter), to_expr(partNum)]))


def regexp_count(str: Any, regexp: Any) -> Column:  # noqa: A002
    return Column(Call("regexp_count", [to_expr(str), to_expr(regexp)]))


def regexp_extract_all(str: Any, regexp: Any, idx: Any = None) -> Column:  # noqa: A002
    args = [to_expr(str), to_expr(regexp)] + ([lit_expr(idx)] if idx is not None else [])
    return Column(Call("regexp_extract_all", args))


def regexp_substr(str: Any, regexp: Any) -> Column:  # noqa: A002
    return Column(Call("regexp_substr", [to_expr(str), to_expr(regexp)]))


def regexp_instr(str: Any, regexp: Any, idx: Any = None) -> Column:  # noqa: A002
    return Column(Call("regexp_instr", [to_expr(str), to_expr(regexp)]))


def regexp_like(str: Any, regexp: Any) -> Column:  # noqa: A002
    pattern = regexp.expr.value if isinstance(regexp, Column) and isinstance(regexp.expr, Lit) else regexp
    return Column(Call("rlike", [to_expr(str)], {"pattern": pattern}))


regexp = rlike = regexp_like


def like(str: Any, pattern: Any, escapeChar: Any = None) -> Column:  # noqa: A002
    p = pattern.expr.value if isinstance(pattern, Column) and isinstance(pattern.expr, Lit) else pattern
    return Column(Call("like", [to_expr(str)], {"pattern": p}))


def ilike(str: Any, pattern: Any, escapeChar: Any = None) -> Column:  # noqa: A002
    p = pattern.expr.value if isinstance(pattern, Column) and isinstance(pattern.expr, Lit) else pattern
    return Column(Call("like", [Call("lower", [to_expr(str)])], {"pattern": _str_lower(p)}))


def _str_lower(p: Any) -> Any:
    return p.lower() if isinstance(p, builtins.str) else p


def replace(src: Any, search: Any, replace: Any = None) -> Column:
    args = [to_expr(src), to_expr(search)] + ([to_expr(replace)] if replace is not None else [])
    return Column(Call("replace", args))


def encode(col: Any, charset: str) -> Column:
    return _call("encode", col, charset=charset)


def decode(col: Any, charset: str) -> Column:
    return _call("decode", col, charset=charset)


def elt(*inputs: Any) -> Column:
    return _call("elt", *inputs)


def find_in_set(str: Any, str_array: Any) -> Column:  # noqa: A002
    return _call("find_in_set", str, str_array)


def format_number(col: Any, d: int) -> Column:
    return _call("format_number", col, d=d)


def format_string(format: str, *cols: Any) -> Column:  # noqa: A002
    return _call("format_string", *cols, format=format)


def printf(format: Any, *cols: Any) -> Column:  # noqa: A002
    fmt = format.expr.value if isinstance(format, Column) and isinstance(format.expr, Lit) else format
    return _call("format_string", *cols, format=fmt)


def parse_url(url: Any, partToExtract: Any, key: Any = None) -> Column:
    args = [to_expr(url), to_expr(partToExtract)] + ([to_expr(key)] if key is not None else [])
    return Column(Call("parse_url", args))


def mask(col: Any, upperChar: Any = None, lowerChar: Any = None, digitChar: Any = None,
         otherChar: Any = None) -> Column:
    def val(x: Any, default: Any) -> Any:
        if x is None:
            return default
        return x.expr.value if isinstance(x, Column) and isinstance(x.expr, Lit) else x
    return _call("mask", col, upper=val(upperChar, "X"), lower=val(lowerChar, "x"), digit=val(digitChar, "n"),
                 other=val(otherChar, None))


def contains(left: Any, right: Any) -> Column:
    return _call("contains", left, right)


def startswith(str: Any, prefix: Any) -> Column:  # noqa: A002
    return _call("startswith", str, prefix)


def endswith(str: Any, suffix: Any) -> Column:  # noqa: A002
    return _call("endswith", str, suffix)


def substr(str: Any, pos: Any, len: Any = None) -> Column:  # noqa: A002
    p = pos.expr.value if isinstance(pos, Column) and isinstance(pos.expr, Lit) else pos
    ln = len.expr.value if isinstance(len, Column) and isinstance(len.expr, Lit) else len
    return _call("substring", str, pos=p, len=ln if ln is not None else 2 ** 31 - 1)


def typeof(col: Any) -> Column:
    return _call("typeof", col)


# ---------------------------------------------------------------------- hashes

def hash(*cols: Any) -> Column:  # noqa: A001
    return _call("hash", *cols)


def sha(col: Any) -> Column:
    return _call("sha1", col)
