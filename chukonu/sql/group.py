"""GroupedData: ``df.groupBy(keys)`` waiting for its aggregates.

``agg`` accepts Columns (``F.sum("x").alias("total")``) or the dict form
``{"x": "max"}``; ``count``, ``sum``, ``min``, ``max``, ``avg`` are the
shortcuts PySpark has, applied to every numeric column when none is named.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa

from chukonu.engine.expressions import Alias, Expr
from chukonu.errors import unsupported
from chukonu.sql import analysis
from chukonu.sql import functions as F
from chukonu.sql.column import Column

if TYPE_CHECKING:
    from chukonu.sql.dataframe import DataFrame


class GroupedData:
    def __init__(self, df: "DataFrame", keys: list[Expr]) -> None:
        self._df = df
        self._keys = keys

    def agg(self, *exprs: Any) -> "DataFrame":
        if len(exprs) == 1 and isinstance(exprs[0], dict):
            cols = []
            for name, fn in exprs[0].items():
                fn_name = str({"mean": "avg", "average": "avg"}.get(fn, fn))
                maker = getattr(F, fn_name, None)
                if maker is None:
                    raise unsupported(f"agg function {fn!r}")
                cols.append(maker(name).alias(f"{fn_name}({name})"))
            exprs = tuple(cols)
        if not exprs:
            raise ValueError("agg needs at least one aggregate expression")
        return self._df._new(analysis.aggregate(self._df._plan, self._keys,
                                                [e.expr if isinstance(e, Column) else e for e in exprs]))

    def _numeric(self, cols: tuple[str, ...]) -> list[str]:
        if cols:
            return list(cols)
        key_names = {k.name() for k in self._keys}
        return [a.name for a in self._df._plan.schema
                if (pa.types.is_integer(a.type) or pa.types.is_floating(a.type)) and a.name not in key_names]

    def count(self) -> "DataFrame":
        return self.agg(Column(Alias(F.count("*").expr, ("count",))))

    def sum(self, *cols: str) -> "DataFrame":
        return self.agg(*[F.sum(c) for c in self._numeric(cols)])

    def min(self, *cols: str) -> "DataFrame":
        return self.agg(*[F.min(c) for c in self._numeric(cols)])

    def max(self, *cols: str) -> "DataFrame":
        return self.agg(*[F.max(c) for c in self._numeric(cols)])

    def avg(self, *cols: str) -> "DataFrame":
        return self.agg(*[F.avg(c) for c in self._numeric(cols)])

    mean = avg

    def applyInPandas(self, func: Any, schema: Any) -> "DataFrame":
        raise unsupported("GroupedData.applyInPandas")

    def applyInArrow(self, func: Any, schema: Any) -> "DataFrame":
        raise unsupported("GroupedData.applyInArrow")

    def pivot(self, pivot_col: str, values: Any = None) -> "GroupedData":
        raise unsupported("GroupedData.pivot")
