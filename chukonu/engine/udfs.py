"""Running user functions on a batch: Python UDFs row by row, pandas UDFs per batch.

A UDF that raises is reported as ``UdfError`` naming the UDF; the task
runner adds the stage and partition. Return values are converted to the
declared type the way PySpark does: a value Arrow cannot convert is an error
naming the UDF, not a silent null.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

import pyarrow as pa

log = logging.getLogger(__name__)


class UdfError(Exception):
    """A user function raised; the original exception is the __cause__."""

    def __init__(self, fname: str, cause: BaseException) -> None:
        super().__init__(f"{fname} raised {type(cause).__name__}: {cause}")
        self.fname = fname
        self.cause_type = type(cause).__name__
        self.cause_message = str(cause)


def _to_python(a: pa.Array) -> list[Any]:
    from chukonu.engine.convert import arrow_to_python
    return arrow_to_python(a)


def run_python_udf(fn: Callable[..., Any], return_type: pa.DataType, args: list[pa.Array], n: int,
                   fname: str) -> pa.Array:
    cols = [_to_python(a) for a in args]
    try:
        if cols:
            out = [fn(*vals) for vals in zip(*cols)]
        else:
            out = [fn() for _ in range(n)]
    except Exception as e:  # noqa: BLE001 - any user error fails the task, named
        raise UdfError(fname, e) from e
    return python_to_arrow(out, return_type, fname)


def python_to_arrow(values: list[Any], return_type: pa.DataType, fname: str) -> pa.Array:
    from chukonu.engine.convert import python_to_arrow as convert
    try:
        return convert(values, return_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as e:
        raise UdfError(fname, TypeError(f"cannot convert the result to {return_type}: {e}")) from e


def run_pandas_udf(fn: Callable[..., Any], return_type: pa.DataType, args: list[pa.Array], n: int,
                   fname: str) -> pa.Array:
    import pandas as pd

    series = [a.to_pandas() for a in args]
    try:
        out = fn(*series)
    except Exception as e:  # noqa: BLE001
        raise UdfError(fname, e) from e
    if not isinstance(out, (pd.Series, pd.DataFrame)):
        raise UdfError(fname, TypeError(f"a pandas UDF must return a pandas.Series, got {type(out).__name__}"))
    if len(out) != n:
        raise UdfError(fname, ValueError(f"returned {len(out)} rows for an input of {n}"))
    try:
        if isinstance(out, pd.DataFrame):
            return pa.StructArray.from_pandas(out) if hasattr(pa.StructArray, "from_pandas") else \
                pa.Table.from_pandas(out, preserve_index=False).to_struct_array().combine_chunks()
        return pa.Array.from_pandas(out, type=return_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as e:
        raise UdfError(fname, TypeError(f"cannot convert the result to {return_type}: {e}")) from e
