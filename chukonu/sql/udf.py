"""User-defined functions: calling one on columns builds a UdfCall expression.

Python UDFs run row by row on the values of a batch; pandas UDFs run once
per batch on pandas Series. Either way the declared return type is the
column's type, and an exception inside the function fails the task with
the function's name, the error and the partition.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

from chukonu.engine.expressions import UdfCall
from chukonu.sql.column import Column, to_expr
from chukonu.sql.types import arrow_type


class UserDefinedFunction:
    def __init__(self, func: Callable[..., Any], returnType: Any, kind: str) -> None:
        if returnType is None:
            raise TypeError("a pandas_udf needs a returnType")
        self.func = func
        self.returnType = returnType
        self.kind = kind
        self.__name__ = getattr(func, "__name__", "udf")
        self._arrow = arrow_type(returnType)
        functools.update_wrapper(self, func)  # type: ignore[arg-type]

    def __call__(self, *cols: Any) -> Column:
        return Column(UdfCall(self.func, self._arrow, [to_expr(c) for c in cols], self.kind, self.__name__))

    def asNondeterministic(self) -> "UserDefinedFunction":
        return self
