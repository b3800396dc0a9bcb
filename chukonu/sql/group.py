"""GroupedData: ``df.groupBy(keys)`` (or rollup/cube, optionally pivoted) waiting for its aggregates.

``agg`` accepts Columns (``F.sum("x").alias("total")``) or the dict form
``{"x": "max"}``; ``count``, ``sum``, ``min``, ``max``, ``avg`` are the
shortcuts PySpark has, applied to every numeric column when none is named.

rollup and cube are grouping sets: one aggregation per set, keys outside the
set null, results unioned; ``grouping()``/``grouping_id()`` say which keys
were rolled up. ``pivot`` turns each aggregate into one per pivot value,
``agg(when(pivot = v, x))``, the pivot values found by a distinct job when
not given (sorted, as Spark does).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa

from chukonu.engine.expressions import AggCall, Alias, CaseWhen, Call, Cast, Expr, Lit, bind, result_type
from chukonu.errors import AnalysisException, unsupported
from chukonu.sql import analysis
from chukonu.sql import functions as F
from chukonu.sql.column import Column

if TYPE_CHECKING:
    from chukonu.sql.dataframe import DataFrame


class GroupedData:
    def __init__(self, df: "DataFrame", keys: list[Expr], sets: list[list[Expr]] | None = None,
                 pivot: tuple[Expr, list[Any]] | None = None) -> None:
        self._df = df
        self._keys = keys
        self._sets = sets
        self._pivot = pivot

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
        items = [e.expr if isinstance(e, Column) else e for e in exprs]
        if self._pivot is not None and self._sets is None:
            return self._pivot_two_stage(items)
        if self._pivot is not None:
            items = self._pivoted(items)
        if self._sets is not None:
            return self._grouping_sets(items)
        return self._df._new(analysis.aggregate(self._df._plan, self._keys, items))

    def _pivot_two_stage(self, items: list[Expr]) -> "DataFrame":
        """Aggregate by (keys, pivot value) once, then lay the few result rows out as columns.

        One aggregation over the data instead of one masked aggregate per pivot value; a (group,
        value) cell without rows comes out null whatever the aggregate, as in Spark.
        """
        col, values = self._pivot  # type: ignore[misc]
        df = self._df
        key_names = [k.names[0] if isinstance(k, Alias) else k.name() for k in self._keys]
        stage1 = df._new(analysis.aggregate(df._plan, list(self._keys) + [Alias(col, ("__pivot",))],
                                            [Alias(e.child if isinstance(e, Alias) else e, (f"__v{j}",))
                                             for j, e in enumerate(items)]))
        cells = []
        for v in values:
            cond = F.col("__pivot").isNull() if v is None else F.col("__pivot") == Column(Lit(v))
            label = _pivot_label(v)
            for j, e in enumerate(items):
                name = label if len(items) == 1 else f"{label}_{e.names[0] if isinstance(e, Alias) else e.name()}"
                cells.append(F.first(F.when(cond, F.col(f"__v{j}")), ignorenulls=True).alias(name))
        return stage1.groupBy(*[F.col(n) for n in key_names]).agg(*cells)

    def _pivoted(self, items: list[Expr]) -> list[Expr]:
        col, values = self._pivot  # type: ignore[misc]
        out: list[Expr] = []
        for v in values:
            cond: Expr = Call("is_null", [col]) if v is None else Call("eq", [col, Lit(v)])
            for e in items:
                inner = e.child if isinstance(e, Alias) else e
                call: Expr = _restrict(inner, cond)
                # a (group, value) cell without rows is null whatever the aggregate (count too), as in Spark
                rows = AggCall("count", [CaseWhen([(cond, Lit(1))], None)], False, {})
                call = CaseWhen([(Call("gt", [rows, Lit(0)]), call)], None)
                label = _pivot_label(v)
                name = label if len(items) == 1 else f"{label}_{e.names[0] if isinstance(e, Alias) else e.name()}"
                out.append(Alias(call, (name,)))
        return out

    def _grouping_sets(self, items: list[Expr]) -> "DataFrame":
        from chukonu.sql.dataframe import DataFrame
        df = self._df
        schema = df._plan.schema
        key_types = [result_type(bind(k, schema), schema) for k in self._keys]
        key_names = [k.names[0] if isinstance(k, Alias) else k.name() for k in self._keys]
        out: DataFrame | None = None
        for subset in self._sets or []:
            members = {id(k) for k in subset}
            real = [e for e in items if not _is_grouping(e)]
            part = df._new(analysis.aggregate(df._plan, subset, real)) if real or subset else None
            if part is None:
                part = df.agg(F.count("*").alias("__n"))
            cols: list[Column] = []
            for k, name, t in zip(self._keys, key_names, key_types):
                cols.append(F.col(name) if id(k) in members else Column(Alias(Cast(Lit(None), t), (name,))))
            for e in items:
                if _is_grouping(e):
                    cols.append(Column(self._grouping_value(e, members)))
                else:
                    cols.append(F.col(e.names[0] if isinstance(e, Alias) else e.name()))
            piece = part.select(*cols)
            out = piece if out is None else out.union(piece)
        assert out is not None
        return out

    def _grouping_value(self, e: Expr, members: set[int]) -> Expr:
        inner = e.child if isinstance(e, Alias) else e
        assert isinstance(inner, AggCall)
        names = [k.name() for k in self._keys]
        inner_names = [(k.child if isinstance(k, Alias) else k).name() for k in self._keys]

        def rolled(arg: Expr) -> int:
            for table in (names, inner_names):
                if arg.name() in table:
                    return 0 if id(self._keys[table.index(arg.name())]) in members else 1
            raise AnalysisException(f"[GROUPING_COLUMN_MISMATCH] {arg.name()} is not a grouping column")
        if inner.fn == "grouping":
            value: Expr = Cast(Lit(rolled(inner.args[0])), pa.int8())
        else:
            args = inner.args or self._keys
            gid = 0
            for a in args:
                gid = (gid << 1) | rolled(a)
            value = Cast(Lit(gid), pa.int64())
        return Alias(value, (e.names[0] if isinstance(e, Alias) else inner.name(),))

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

    def pivot(self, pivot_col: Any, values: Any = None) -> "GroupedData":
        from chukonu.sql.column import to_expr
        col = to_expr(pivot_col)
        if values is None:
            found = [r[0] for r in self._df.select(Column(col)).distinct().collect()]
            values = sorted(found, key=lambda v: (v is not None, v))
        return GroupedData(self._df, self._keys, self._sets, (col, list(values)))


def _restrict(e: Expr, cond: Expr) -> Expr:
    """``e`` with every aggregate seeing only the rows where ``cond`` holds (one pivot value)."""
    if isinstance(e, AggCall):
        args = [CaseWhen([(cond, Lit(1) if isinstance(a, Lit) else a)], None) for a in e.args[:1]]
        return AggCall(e.fn, args + e.args[1:], e.distinct, e.options)
    kids = e.children()
    return e.with_children([_restrict(k, cond) for k in kids]) if kids else e


def _is_grouping(e: Expr) -> bool:
    inner = e.child if isinstance(e, Alias) else e
    return isinstance(inner, AggCall) and inner.fn in ("grouping", "grouping_id")


def _pivot_label(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return str(v).lower()
    return str(v)
