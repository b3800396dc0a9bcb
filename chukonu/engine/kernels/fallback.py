"""Argument coercion shared by kernels, and the per-row Python fallback.

Most kernels are Arrow or numpy calls over whole columns; a few functions
(string distance, JSON paths, format strings) have no vectorised form and
run a Python function on each row whose inputs are all non-null. ``per_row``
is that fallback, kept in one place so it is easy to find and to replace.
"""
from __future__ import annotations

from typing import Any, Callable

import pyarrow as pa

from chukonu.engine.expressions import as_array


def per_row(fn: Callable[..., Any], arrays: list[pa.Array], out_type: pa.DataType,
            nulls_in: bool = False) -> pa.Array:
    """``fn`` on each row; rows with a null input are null unless ``nulls_in`` (then ``fn`` sees None)."""
    cols = [a.to_pylist() for a in arrays]
    if nulls_in:
        out = [fn(*vals) for vals in zip(*cols)]
    else:
        out = [None if any(x is None for x in vals) else fn(*vals) for vals in zip(*cols)]
    return pa.array(out, type=out_type)


def f64(v: Any, n: int) -> pa.Array:
    """An argument as a float64 array (Spark's math functions work on doubles)."""
    a = as_array(v, n)
    if pa.types.is_null(a.type):
        return pa.nulls(n, pa.float64())
    return a if pa.types.is_float64(a.type) else a.cast(pa.float64())


def string_array(v: Any, n: int) -> pa.Array:
    """An argument as a string array (numbers and booleans cast as Spark casts them)."""
    a = as_array(v, n)
    if pa.types.is_string(a.type):
        return a
    if pa.types.is_large_string(a.type):
        return a.cast(pa.string())
    if pa.types.is_null(a.type):
        return pa.nulls(n, pa.string())
    from chukonu.engine.kernels.casts import spark_cast
    return spark_cast(a, pa.string())


def scalar_value(v: Any) -> Any:
    """The Python value of a literal argument (an option passed as a column)."""
    if isinstance(v, pa.Scalar):
        return v.as_py()
    if isinstance(v, pa.Array) and len(v) and v.null_count == 0:
        return v[0].as_py()
    return v
