"""``pyspark.sql.window``: Window and WindowSpec, and the analysis that plans ``.over()`` expressions.

``Window.partitionBy("k").orderBy(F.col("t").desc())`` describes the spec;
``F.row_number().over(spec)`` is a WindowExpr. When a select contains
window expressions, each distinct (PARTITION BY, ORDER BY) becomes one
Window plan node under the select (one shuffle by its partition keys), and
the select reads the node's result columns, as Spark's
ExtractWindowExpressions rule does.
"""
from __future__ import annotations

import itertools
import sys
from typing import Any, Sequence

import pyarrow as pa

from chukonu.engine import plan as P
from chukonu.engine.expressions import Alias, Attr, ColRef, Expr, SortOrder, bind, empty_batch
from chukonu.engine.window import Frame, WindowExpr, WindowSpec as _Spec, compute, window_call
from chukonu.errors import AnalysisException

_names = itertools.count()


def _orders(cols: Sequence[Any]) -> list[SortOrder]:
    from chukonu.sql.column import to_expr
    out = []
    for c in cols:
        e = to_expr(c)
        out.append(e if isinstance(e, SortOrder) else SortOrder(e, True, None))
    return out


def _flat(cols: tuple[Any, ...]) -> list[Any]:
    return list(cols[0]) if len(cols) == 1 and isinstance(cols[0], (list, tuple)) else list(cols)


def _bound(b: int) -> int | None:
    if b <= Window.unboundedPreceding or b >= Window.unboundedFollowing:
        return None
    return b


class WindowSpec:
    def __init__(self, spec: _Spec | None = None) -> None:
        self._spec = spec or _Spec()

    def _with(self, **changes: Any) -> "WindowSpec":
        s = self._spec
        return WindowSpec(_Spec(changes.get("partition", s.partition), changes.get("orders", s.orders),
                                changes.get("frame", s.frame)))

    def partitionBy(self, *cols: Any) -> "WindowSpec":
        from chukonu.sql.column import to_expr
        return self._with(partition=[to_expr(c) for c in _flat(cols)])

    def orderBy(self, *cols: Any) -> "WindowSpec":
        return self._with(orders=_orders(_flat(cols)))

    def rowsBetween(self, start: int, end: int) -> "WindowSpec":
        return self._with(frame=Frame("rows", _bound(start), _bound(end)))

    def rangeBetween(self, start: int, end: int) -> "WindowSpec":
        return self._with(frame=Frame("range", _bound(start), _bound(end)))


class Window:
    unboundedPreceding: int = -sys.maxsize - 1
    unboundedFollowing: int = sys.maxsize
    currentRow: int = 0

    @staticmethod
    def partitionBy(*cols: Any) -> WindowSpec:
        return WindowSpec().partitionBy(*cols)

    @staticmethod
    def orderBy(*cols: Any) -> WindowSpec:
        return WindowSpec().orderBy(*cols)

    @staticmethod
    def rowsBetween(start: int, end: int) -> WindowSpec:
        return WindowSpec().rowsBetween(start, end)

    @staticmethod
    def rangeBetween(start: int, end: int) -> WindowSpec:
        return WindowSpec().rangeBetween(start, end)


# ----------------------------------------------------------------- analysis

def has_window(e: Expr) -> bool:
    return any(isinstance(x, WindowExpr) for x in e.walk())


def _extract(e: Expr, found: list[tuple[str, WindowExpr]]) -> Expr:
    if isinstance(e, WindowExpr):
        name = f"__w{next(_names)}"
        found.append((name, e))
        return ColRef(name)
    kids = e.children()
    if not kids:
        return e
    return e.with_children([_extract(k, found) for k in kids])


def plan_windows(child: P.Plan, exprs: Sequence[Expr]) -> tuple[P.Plan, list[Expr]]:
    """Window nodes under ``child`` for the window expressions of ``exprs``, and ``exprs`` reading them."""
    found: list[tuple[str, WindowExpr]] = []
    rewritten: list[Expr] = []
    for e in exprs:
        r: Expr
        if isinstance(e, WindowExpr):
            r = Alias(_extract(e, found), (e.name(),))
        elif isinstance(e, Alias) and isinstance(e.child, WindowExpr):
            r = Alias(_extract(e.child, found), e.names)
        else:
            r = _extract(e, found)
        rewritten.append(r)
    groups: dict[str, list[tuple[str, WindowExpr]]] = {}
    for name, w in found:
        if any(isinstance(x, WindowExpr) for k in w.func.children() for x in k.walk()):
            raise AnalysisException("window functions cannot be nested")
        groups.setdefault(w.spec.key(), []).append((name, w))
    current = child
    for members in groups.values():
        spec = members[0][1].spec
        schema = current.schema
        partition = [bind(p, schema) for p in spec.partition]
        orders = [bind(o, schema) for o in spec.orders]
        calls = []
        for _name, w in members:
            call = window_call(w.func, w.spec.frame)
            call.args = [bind(a, schema) for a in call.args]
            calls.append(call)
        empty = pa.Table.from_batches([empty_batch(schema)])
        try:
            out = compute(empty, partition, orders, calls)  # type: ignore[arg-type]
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, TypeError) as err:
            raise AnalysisException(f"cannot evaluate window functions: {err}") from None
        attrs = list(schema) + [Attr(name, out.schema.field(len(schema) + i).type)
                                for i, (name, _w) in enumerate(members)]
        current = P.Window(current, partition, orders, calls, tuple(attrs))
    return current, rewritten
