"""Core of ``pyspark.sql.functions``: columns, literals, conditionals, basic strings, arrays, math, aggregates, UDFs.

Arguments follow PySpark: a string is a column name, ``lit`` makes a
literal. Any other name PySpark has and chukonu does not raises
NotImplementedError naming the function, as soon as it is looked up.
"""
from __future__ import annotations

from typing import Any, Callable

from chukonu.engine.expressions import (AggCall, CaseWhen, Call, ColRef, Generator, InputFileName, Lit, MonotonicId,
                                        PartitionId, Rand, SortOrder, Star)
from chukonu.errors import unsupported
from chukonu.sql.column import Column, lit_expr, literal_value, to_expr


def col(name: str) -> Column:
    return Column(Star() if name == "*" else ColRef(name))


column = col


def lit(value: Any) -> Column:
    if isinstance(value, Column):
        return value
    return Column(Lit(value))


def _call(fn: str, *cols: Any, **options: Any) -> Column:
    # options are values; a literal Column (from SQL, or lit() in PySpark 4 style) is unwrapped
    return Column(Call(fn, [to_expr(c) for c in cols], {k: literal_value(v) for k, v in options.items()}))


def _agg(fn: str, c: Any, distinct: bool = False, **options: Any) -> Column:
    e = to_expr(c)
    if isinstance(e, Star):
        e = Lit(1)
    return Column(AggCall(fn, [e], distinct, options))


# ---------------------------------------------------------------- conditionals

def when(condition: Column, value: Any) -> Column:
    return Column(CaseWhen([(to_expr(condition), lit_expr(value))], None))


def coalesce(*cols: Any) -> Column:
    return _call("coalesce", *cols)


def isnull(c: Any) -> Column:
    return _call("is_null", c)


def isnan(c: Any) -> Column:
    return _call("isnan", c)


def greatest(*cols: Any) -> Column:
    return _call("greatest", *cols)


def least(*cols: Any) -> Column:
    return _call("least", *cols)


def nanvl(c1: Any, c2: Any) -> Column:
    return when(isnan(c1), _to_col(c2)).otherwise(_to_col(c1))


def _to_col(c: Any) -> Column:
    return Column(to_expr(c))


# --------------------------------------------------------------------- strings

def length(c: Any) -> Column:
    return _call("length", c)


char_length = length


def lower(c: Any) -> Column:
    return _call("lower", c)


def upper(c: Any) -> Column:
    return _call("upper", c)


def trim(c: Any) -> Column:
    return _call("trim", c)


def ltrim(c: Any) -> Column:
    return _call("ltrim", c)


def rtrim(c: Any) -> Column:
    return _call("rtrim", c)


def initcap(c: Any) -> Column:
    return _call("initcap", c)


def reverse(c: Any) -> Column:
    return _call("reverse", c)


def repeat(c: Any, n: int) -> Column:
    return _call("repeat", c, n=n)


def concat(*cols: Any) -> Column:
    return _call("concat", *cols)


def concat_ws(sep: str, *cols: Any) -> Column:
    return _call("concat_ws", *cols, sep=sep)


def split(str: Any, pattern: str, limit: int = -1) -> Column:  # noqa: A002 - PySpark's parameter name
    return _call("split", str, pattern=pattern, limit=limit)


def substring(str: Any, pos: int, len: int) -> Column:  # noqa: A002
    return _call("substring", str, pos=pos, len=len)


def regexp_replace(string: Any, pattern: str, replacement: str) -> Column:
    return _call("regexp_replace", string, pattern=pattern, replacement=replacement)


def regexp_extract(str: Any, pattern: str, idx: int) -> Column:  # noqa: A002
    return _call("regexp_extract", str, pattern=pattern, idx=idx)


def lpad(c: Any, len: int, pad: str) -> Column:  # noqa: A002
    return _call("lpad", c, len=len, pad=pad)


def rpad(c: Any, len: int, pad: str) -> Column:  # noqa: A002
    return _call("rpad", c, len=len, pad=pad)


def instr(str: Any, substr: str) -> Column:  # noqa: A002
    return _call("instr", str, substr=substr)


def translate(srcCol: Any, matching: str, replace: str) -> Column:
    return _call("translate", srcCol, matching=matching, replace=replace)


# ---------------------------------------------------------------------- hashes

def sha1(c: Any) -> Column:
    return _call("sha1", c)


def sha2(c: Any, numBits: int) -> Column:
    return _call("sha2", c, bits=numBits)


def md5(c: Any) -> Column:
    return _call("md5", c)


def crc32(c: Any) -> Column:
    return _call("crc32", c)


def xxhash64(*cols: Any) -> Column:
    return _call("xxhash64", *cols)


# ---------------------------------------------------------------------- arrays

def size(c: Any) -> Column:
    return _call("size", c)


def array_min(c: Any) -> Column:
    return _call("array_min", c)


def array_max(c: Any) -> Column:
    return _call("array_max", c)


def sort_array(c: Any, asc: bool = True) -> Column:
    return _call("sort_array", c, asc=asc)


def array_contains(c: Any, value: Any) -> Column:
    return Column(Call("array_contains", [to_expr(c), lit_expr(value)]))


def array_distinct(c: Any) -> Column:
    return _call("array_distinct", c)


def array_join(c: Any, delimiter: str, null_replacement: str | None = None) -> Column:
    return _call("array_join", c, sep=delimiter, null_replacement=null_replacement)


def element_at(c: Any, extraction: Any) -> Column:
    return _call("element_at", c, key=extraction)


def flatten(c: Any) -> Column:
    return _call("flatten", c)


def array(*cols: Any) -> Column:
    if len(cols) == 1 and isinstance(cols[0], (list, tuple)):
        cols = tuple(cols[0])
    return _call("make_array", *cols)


def struct(*cols: Any) -> Column:
    if len(cols) == 1 and isinstance(cols[0], (list, tuple)):
        cols = tuple(cols[0])
    exprs = [to_expr(c) for c in cols]
    return Column(Call("make_struct", exprs, {"names": [e.name() for e in exprs]}))


def map_keys(c: Any) -> Column:
    return _call("map_keys", c)


def map_values(c: Any) -> Column:
    return _call("map_values", c)


def explode(c: Any) -> Column:
    return Column(Generator("explode", to_expr(c)))


def explode_outer(c: Any) -> Column:
    return Column(Generator("explode", to_expr(c), outer=True))


def posexplode(c: Any) -> Column:
    return Column(Generator("posexplode", to_expr(c)))


def posexplode_outer(c: Any) -> Column:
    return Column(Generator("posexplode", to_expr(c), outer=True))


# ------------------------------------------------------------------------ math

def abs(c: Any) -> Column:  # noqa: A001
    return _call("abs", c)


def round(c: Any, scale: int = 0) -> Column:  # noqa: A001
    return _call("round", c, scale=scale)


def floor(c: Any) -> Column:
    return _call("floor", c)


def ceil(c: Any) -> Column:
    return _call("ceil", c)


def sqrt(c: Any) -> Column:
    return _call("sqrt", c)


def exp(c: Any) -> Column:
    return _call("exp", c)


def log(arg1: Any, arg2: Any = None) -> Column:
    if arg2 is None:
        return _call("log", arg1)
    return _call("log", arg2, base=float(literal_value(arg1)))


def pow(c1: Any, c2: Any) -> Column:  # noqa: A001
    return Column(Call("pow", [to_expr(c1) if not isinstance(c1, (int, float)) else Lit(c1),
                               to_expr(c2) if not isinstance(c2, (int, float)) else Lit(c2)]))


def rand(seed: int | None = None) -> Column:
    import random
    return Column(Rand(seed if seed is not None else random.getrandbits(31)))


# ---------------------------------------------------------------- aggregations

def count(c: Any) -> Column:
    return _agg("count", c)


def countDistinct(c: Any, *cols: Any) -> Column:
    if cols:   # distinct tuples of non-null values: a row with any null column is not counted
        parts = [c, *cols]
        all_set = None
        for p in parts:
            t = Column(to_expr(p)).isNotNull()
            all_set = t if all_set is None else all_set & t
        assert all_set is not None  # parts is not empty
        return _agg("count", when(all_set, struct(*parts)), distinct=True)
    return _agg("count", c, distinct=True)


count_distinct = countDistinct


def sum(c: Any) -> Column:  # noqa: A001
    return _agg("sum", c)


def min(c: Any) -> Column:  # noqa: A001
    return _agg("min", c)


def max(c: Any) -> Column:  # noqa: A001
    return _agg("max", c)


def avg(c: Any) -> Column:
    return _agg("avg", c)


mean = avg


def first(c: Any, ignorenulls: bool = False) -> Column:
    return _agg("first", c, ignorenulls=ignorenulls)


def last(c: Any, ignorenulls: bool = False) -> Column:
    return _agg("last", c, ignorenulls=ignorenulls)


any_value = first


def collect_list(c: Any) -> Column:
    return _agg("collect_list", c)


def collect_set(c: Any) -> Column:
    return _agg("collect_set", c)


# ------------------------------------------------------------------------ misc

def monotonically_increasing_id() -> Column:
    return Column(MonotonicId())


def spark_partition_id() -> Column:
    return Column(PartitionId())


def input_file_name() -> Column:
    return Column(InputFileName())


def asc(c: str) -> Column:
    return Column(SortOrder(to_expr(c), True, None))


def desc(c: str) -> Column:
    return Column(SortOrder(to_expr(c), False, None))


def broadcast(df: Any) -> Any:
    """Mark a DataFrame to be sent whole to every task of a join."""
    return df._hint("broadcast")


# ------------------------------------------------------------------------ UDFs

def udf(f: Callable[..., Any] | Any = None, returnType: Any = "string", *, useArrow: bool | None = None) -> Any:
    """A Python UDF: ``udf(f, "int")``, or as a decorator ``@udf("int")`` / ``@udf(returnType=...)``."""
    from chukonu.sql.udf import UserDefinedFunction
    if f is None or not callable(f) or _is_type(f):
        rt = returnType if f is None else f
        return lambda fn: UserDefinedFunction(fn, rt, "python")
    return UserDefinedFunction(f, returnType, "python")


def pandas_udf(f: Callable[..., Any] | Any = None, returnType: Any = None, functionType: Any = None) -> Any:
    """A scalar pandas UDF (Series -> Series); also usable as ``@pandas_udf("long")``."""
    from chukonu.sql.udf import UserDefinedFunction
    if functionType not in (None, 200, "SCALAR"):
        raise unsupported(f"pandas_udf(functionType={functionType!r})", "only scalar pandas UDFs")
    if f is None or not callable(f) or _is_type(f):
        rt = returnType if f is None else f
        return lambda fn: UserDefinedFunction(fn, rt, "pandas")
    return UserDefinedFunction(f, returnType, "pandas")


def _is_type(x: Any) -> bool:
    from chukonu.sql.types import DataType
    return isinstance(x, (DataType, str)) or isinstance(x, type) and issubclass(x, DataType)
