"""Column: PySpark's column expression object, wrapping an expression tree.

Operators build trees (``col("a") + 1`` is ``add(a, 1)``); nothing is
evaluated until the DataFrame runs. A Column is not a boolean: ``and``,
``or`` and ``not`` must be written ``&``, ``|`` and ``~``, as in PySpark.
"""
from __future__ import annotations

from typing import Any

from chukonu.engine.expressions import (Alias, CaseWhen, Cast, Call, ColRef, Expr, Lit, SortOrder, Star)
from chukonu.errors import unsupported


def to_expr(x: Any) -> Expr:
    """A Column, a column name or a literal, as an expression."""
    if isinstance(x, Column):
        return x.expr
    if isinstance(x, str):
        return Star() if x == "*" else ColRef(x)
    return Lit(x)


def lit_expr(x: Any) -> Expr:
    """A Column as itself, anything else (strings too) as a literal."""
    return x.expr if isinstance(x, Column) else Lit(x)


def literal_value(x: Any) -> Any:
    """The Python value of a literal Column (``lit(3)``); anything else as it is."""
    if isinstance(x, Column) and isinstance(x.expr, Lit):
        return x.expr.value
    return x


class Column:
    def __init__(self, expr: Expr) -> None:
        self.expr = expr

    def __repr__(self) -> str:
        return f"Column<'{self.expr.name()}'>"

    def __bool__(self) -> bool:
        raise ValueError("Cannot convert column into bool: please use '&' for 'and', '|' for 'or', '~' for 'not' "
                         "when building DataFrame boolean expressions.")

    __hash__ = None  # type: ignore[assignment]

    def __iter__(self) -> Any:
        raise TypeError("Column is not iterable")

    # -------------------------------------------------------------- operators

    def _bin(self, fn: str, other: Any, swap: bool = False) -> "Column":
        a, b = self.expr, lit_expr(other)
        return Column(Call(fn, [b, a] if swap else [a, b]))

    def __add__(self, o: Any) -> "Column": return self._bin("add", o)
    def __radd__(self, o: Any) -> "Column": return self._bin("add", o, True)
    def __sub__(self, o: Any) -> "Column": return self._bin("subtract", o)
    def __rsub__(self, o: Any) -> "Column": return self._bin("subtract", o, True)
    def __mul__(self, o: Any) -> "Column": return self._bin("multiply", o)
    def __rmul__(self, o: Any) -> "Column": return self._bin("multiply", o, True)
    def __truediv__(self, o: Any) -> "Column": return self._bin("divide", o)
    def __rtruediv__(self, o: Any) -> "Column": return self._bin("divide", o, True)
    def __mod__(self, o: Any) -> "Column": return self._bin("mod", o)
    def __rmod__(self, o: Any) -> "Column": return self._bin("mod", o, True)
    def __pow__(self, o: Any) -> "Column": return self._bin("pow", o)
    def __rpow__(self, o: Any) -> "Column": return self._bin("pow", o, True)
    def __eq__(self, o: Any) -> "Column": return self._bin("eq", o)  # type: ignore[override]
    def __ne__(self, o: Any) -> "Column": return self._bin("ne", o)  # type: ignore[override]
    def __lt__(self, o: Any) -> "Column": return self._bin("lt", o)
    def __le__(self, o: Any) -> "Column": return self._bin("le", o)
    def __gt__(self, o: Any) -> "Column": return self._bin("gt", o)
    def __ge__(self, o: Any) -> "Column": return self._bin("ge", o)
    def __and__(self, o: Any) -> "Column": return self._bin("and", o)
    def __rand__(self, o: Any) -> "Column": return self._bin("and", o, True)
    def __or__(self, o: Any) -> "Column": return self._bin("or", o)
    def __ror__(self, o: Any) -> "Column": return self._bin("or", o, True)
    def __invert__(self) -> "Column": return Column(Call("not", [self.expr]))
    def __neg__(self) -> "Column": return Column(Call("negate", [self.expr]))

    def eqNullSafe(self, o: Any) -> "Column":
        return self._bin("eq_null_safe", o)

    def bitwiseAND(self, o: Any) -> "Column":
        return self._bin("bitwise_and", o)

    def bitwiseOR(self, o: Any) -> "Column":
        return self._bin("bitwise_or", o)

    def bitwiseXOR(self, o: Any) -> "Column":
        return self._bin("bitwise_xor", o)

    # ---------------------------------------------------------------- naming

    def alias(self, *names: str, **kwargs: Any) -> "Column":
        if not names:
            raise ValueError("alias needs a name")
        return Column(Alias(self.expr, tuple(names)))

    name = alias

    def cast(self, dataType: Any) -> "Column":
        from chukonu.sql.types import DataType, to_data_type
        dt = to_data_type(dataType)
        label = dataType.upper() if isinstance(dataType, str) else (dt.simpleString().upper()
                                                                    if isinstance(dt, DataType) else str(dt))
        return Column(Cast(self.expr, dt.to_arrow(), label))

    astype = cast

    def try_cast(self, dataType: Any) -> "Column":
        """cast that gives null for malformed input even in ANSI mode."""
        c = self.cast(dataType).expr
        assert isinstance(c, Cast)
        return Column(Cast(c.child, c.to, c.label, tolerant=True))

    # -------------------------------------------------------------- predicates

    def isNull(self) -> "Column":
        return Column(Call("is_null", [self.expr]))

    def isNotNull(self) -> "Column":
        return Column(Call("is_not_null", [self.expr]))

    def isNaN(self) -> "Column":
        return Column(Call("isnan", [self.expr]))

    def isin(self, *values: Any) -> "Column":
        if len(values) == 1 and isinstance(values[0], (list, tuple, set, frozenset)):
            values = tuple(values[0])
        if any(isinstance(v, Column) for v in values):
            out = None
            for v in values:
                c = self == v
                out = c if out is None else out | c
            return out if out is not None else Column(Lit(False))
        return Column(Call("isin", [self.expr], {"values": list(values)}))

    def between(self, lowerBound: Any, upperBound: Any) -> "Column":
        return Column(Call("between", [self.expr, lit_expr(lowerBound), lit_expr(upperBound)]))

    def like(self, other: str) -> "Column":
        return Column(Call("like", [self.expr], {"pattern": other}))

    def ilike(self, other: str) -> "Column":
        return Column(Call("like", [Call("lower", [self.expr])], {"pattern": other.lower()}))

    def rlike(self, other: str) -> "Column":
        return Column(Call("rlike", [self.expr], {"pattern": other}))

    def contains(self, other: Any) -> "Column":
        return Column(Call("contains", [self.expr, lit_expr(other)]))

    def startswith(self, other: Any) -> "Column":
        return Column(Call("startswith", [self.expr, lit_expr(other)]))

    def endswith(self, other: Any) -> "Column":
        return Column(Call("endswith", [self.expr, lit_expr(other)]))

    def substr(self, startPos: int, length: int) -> "Column":
        if isinstance(startPos, Column) or isinstance(length, Column):
            raise unsupported("Column.substr with Column arguments", "pass integers")
        return Column(Call("substring", [self.expr], {"pos": startPos, "len": length}))

    # ----------------------------------------------------------------- access

    def getItem(self, key: Any) -> "Column":
        return Column(Call("get_item", [self.expr], {"key": key}))

    def getField(self, name: str) -> "Column":
        return Column(Call("get_field", [self.expr], {"field": name}, label=name))

    def __getitem__(self, key: Any) -> "Column":
        if isinstance(key, slice):
            return self.substr(key.start, key.stop)
        return self.getItem(key)

    def __getattr__(self, item: str) -> "Column":
        if item.startswith("__") or item in ("expr",):
            raise AttributeError(item)
        return self.getField(item)

    # ---------------------------------------------------------------- sorting

    def asc(self) -> "Column":
        return Column(SortOrder(self.expr, True, None))

    def asc_nulls_first(self) -> "Column":
        return Column(SortOrder(self.expr, True, True))

    def asc_nulls_last(self) -> "Column":
        return Column(SortOrder(self.expr, True, False))

    def desc(self) -> "Column":
        return Column(SortOrder(self.expr, False, None))

    def desc_nulls_first(self) -> "Column":
        return Column(SortOrder(self.expr, False, True))

    def desc_nulls_last(self) -> "Column":
        return Column(SortOrder(self.expr, False, False))

    # ------------------------------------------------------------ conditionals

    def when(self, condition: "Column", value: Any) -> "Column":
        if not isinstance(self.expr, CaseWhen) or self.expr.otherwise is not None:
            raise TypeError("when() can only be applied on a Column previously generated by when() function")
        return Column(CaseWhen(self.expr.branches + [(to_expr(condition), lit_expr(value))], None))

    def otherwise(self, value: Any) -> "Column":
        if not isinstance(self.expr, CaseWhen) or self.expr.otherwise is not None:
            raise TypeError("otherwise() can only be applied on a Column previously generated by when()")
        return Column(CaseWhen(self.expr.branches, lit_expr(value)))

    # ------------------------------------------------------------ unsupported

    def over(self, window: Any = None) -> "Column":
        from chukonu.engine.window import WindowExpr, WindowSpec as Spec
        spec = window._spec if window is not None else Spec()
        return Column(WindowExpr(self.expr, spec))

    def withField(self, fieldName: str, col: "Column") -> "Column":
        raise unsupported("Column.withField")

    def dropFields(self, *fieldNames: str) -> "Column":
        raise unsupported("Column.dropFields")
