"""Spark SQL expressions (parsed by sqlglot's Spark dialect) translated into chukonu Columns.

The parser is sqlglot's Spark dialect with its table of known functions
emptied, so every ``name(args)`` arrives as one generic call with its
arguments in the order written; a call is then looked up by name among
``chukonu.sql.functions`` (plus the few SQL-only spellings below), which is
the same code the DataFrame API runs. Syntax with its own grammar (CAST,
CASE, IN, BETWEEN, LIKE, EXTRACT, TRIM, SUBSTRING ... FROM, lambdas, OVER)
has its own branch. Anything else raises NotImplementedError naming it.
"""
from __future__ import annotations

from typing import Any, Callable

import sqlglot
from sqlglot import exp
from sqlglot.dialects.spark import Spark

from chukonu.engine.expressions import CaseWhen, Call, ColRef, Expr, Lit, SortOrder, Star
from chukonu.engine.lambdas import LambdaVar
from chukonu.errors import AnalysisException, unsupported
from chukonu.sql.column import Column


class SparkSQL(Spark):
    """Spark's grammar, with functions left as generic calls (their names are resolved here)."""

    class Parser(Spark.Parser):  # type: ignore[misc, valid-type]
        FUNCTIONS: dict = {}


def parse(text: str) -> exp.Expression:
    try:
        return sqlglot.parse_one(text, read=SparkSQL)  # type: ignore[return-value]
    except sqlglot.errors.ParseError as e:
        raise AnalysisException(f"[PARSE_SYNTAX_ERROR] {e}") from None


def parse_expression(text: str) -> Column:
    """One SQL expression (optionally ``AS name``), as ``F.expr`` and ``selectExpr`` take it."""
    tree = parse(f"SELECT {text}")
    if not isinstance(tree, exp.Select) or len(tree.expressions) != 1 or tree.args.get("from_") is not None:
        raise AnalysisException(f"[PARSE_SYNTAX_ERROR] not one expression: {text!r}")
    return Column(ExprTranslator().translate(tree.expressions[0]))


def _F() -> Any:
    from chukonu.sql import functions
    return functions


_BINARY = {exp.Add: "__add__", exp.Sub: "__sub__", exp.Mul: "__mul__", exp.Div: "__truediv__",
           exp.Mod: "__mod__", exp.EQ: "__eq__", exp.NEQ: "__ne__", exp.GT: "__gt__", exp.GTE: "__ge__",
           exp.LT: "__lt__", exp.LTE: "__le__", exp.And: "__and__", exp.Or: "__or__",
           exp.NullSafeEQ: "eqNullSafe", exp.BitwiseAnd: "bitwiseAND", exp.BitwiseOr: "bitwiseOR",
           exp.BitwiseXor: "bitwiseXOR"}

# SQL spellings that are not (or not only) names in pyspark.sql.functions
_SQL_ONLY: dict[str, Callable[..., Column]] = {}


def _sql(name: str) -> Callable[[Callable[..., Column]], Callable[..., Column]]:
    def reg(fn: Callable[..., Column]) -> Callable[..., Column]:
        _SQL_ONLY[name] = fn
        return fn
    return reg


@_sql("if")
def _if(c: Column, a: Column, b: Column) -> Column:
    return _F().when(c, a).otherwise(b)


@_sql("iff")
def _iff(c: Column, a: Column, b: Column) -> Column:
    return _if(c, a, b)


@_sql("isnull")
def _isnull(c: Column) -> Column:
    return c.isNull()


@_sql("power")
def _power(a: Column, b: Column) -> Column:
    return _F().pow(a, b)


@_sql("mean")
def _mean(c: Column) -> Column:
    return _F().avg(c)


@_sql("std")
def _std(c: Column) -> Column:
    return _F().stddev(c)


@_sql("array")
def _array(*cs: Column) -> Column:
    return _F().array(*cs)


@_sql("map")
def _map(*cs: Column) -> Column:
    return _F().create_map(*cs)


@_sql("struct")
def _struct(*cs: Column) -> Column:
    return _F().struct(*cs)


@_sql("string")
def _string(c: Column) -> Column:
    return c.cast("string")


@_sql("int")
def _int(c: Column) -> Column:
    return c.cast("int")


@_sql("bigint")
def _bigint(c: Column) -> Column:
    return c.cast("bigint")


@_sql("double")
def _double(c: Column) -> Column:
    return c.cast("double")


@_sql("date")
def _date(c: Column) -> Column:
    return c.cast("date")


@_sql("timestamp")
def _timestamp(c: Column) -> Column:
    return c.cast("timestamp")


@_sql("boolean")
def _boolean(c: Column) -> Column:
    return c.cast("boolean")


@_sql("any")
def _any(c: Column) -> Column:
    return _F().bool_or(c)


@_sql("instr")
def _instr(s: Column, sub: Column) -> Column:
    return _F().instr(s, _lit_value(sub))


@_sql("nanvl")
def _nanvl(a: Column, b: Column) -> Column:
    return _F().nanvl(a, b)


def _lit_value(c: Any) -> Any:
    if isinstance(c, Column) and isinstance(c.expr, Lit):
        return c.expr.value
    return c


def call_by_name(name: str, args: list[Any], distinct: bool = False) -> Column:
    """``name(args)`` as SQL would call it: SQL-only spellings first, then pyspark.sql.functions."""
    low = name.lower()
    F = _F()
    cols = [a if isinstance(a, Column) or callable(a) else Column(Lit(a)) for a in args]
    if distinct:
        if low == "count":
            return F.countDistinct(*cols)
        if low in ("sum", "avg", "collect_set", "collect_list", "listagg", "string_agg", "min", "max",
                   "approx_count_distinct"):
            c = F.sum_distinct(cols[0]) if low == "sum" else getattr(F, low)(*cols)
            c.expr.distinct = low in ("sum", "avg", "collect_list", "collect_set", "listagg", "string_agg")
            return c
        raise unsupported(f"SQL {name}(DISTINCT ...)")
    if low in _SQL_ONLY:
        return _SQL_ONLY[low](*cols)
    if low == "count" and len(cols) == 1 and isinstance(cols[0].expr, Star):
        return F.count("*")
    if low in ("first", "last", "first_value", "last_value") and len(cols) == 2:
        return getattr(F, low)(cols[0], bool(_lit_value(cols[1])))
    fn = vars(F).get(low) if not low.startswith("_") else None
    if fn is None or not callable(fn) or isinstance(fn, type) or not getattr(fn, "__module__", "").startswith(
            "chukonu.sql.functions"):
        raise unsupported(f"SQL function {name}")
    return fn(*cols)


class ExprTranslator:
    """Turns sqlglot expression nodes into chukonu expressions.

    ``star`` expands ``t.*`` (given by the query translator, which knows the
    relations), ``windows`` holds the named windows of a WINDOW clause.
    """

    def __init__(self, star: Callable[[str | None], list[Expr]] | None = None,
                 windows: dict[str, exp.Expression] | None = None,
                 scalar_subquery: Callable[[exp.Expression], Any] | None = None) -> None:
        self.star = star
        self.windows = windows or {}
        self.scalar_subquery = scalar_subquery
        self.lambdas: dict[str, LambdaVar] = {}

    def translate(self, node: exp.Expression) -> Expr:
        return self.col(node).expr

    def col(self, node: exp.Expression) -> Column:
        F = _F()
        t = type(node)
        if t in _BINARY:
            left, right = self.col(node.this), self.col(node.expression)
            return getattr(left, _BINARY[t])(right)  # type: ignore[index]
        if isinstance(node, exp.Alias):
            return self.col(node.this).alias(node.alias)
        if isinstance(node, exp.Paren):
            return self.col(node.this)
        if isinstance(node, exp.Column):
            return self._column(node)
        if isinstance(node, exp.Identifier):
            if node.name in self.lambdas:
                return Column(self.lambdas[node.name])
            return Column(ColRef(node.name))
        if isinstance(node, exp.Star):
            return Column(Star())
        if isinstance(node, exp.Literal):
            if node.is_string:
                return Column(Lit(node.this))
            text = node.this
            return Column(Lit(float(text) if any(ch in text.lower() for ch in ".e") else int(text)))
        if isinstance(node, exp.Boolean):
            return Column(Lit(bool(node.this)))
        if isinstance(node, exp.Null):
            return Column(Lit(None))
        if isinstance(node, exp.Neg):
            return -self.col(node.this)
        if isinstance(node, exp.Not):
            return ~self.col(node.this)
        if isinstance(node, exp.BitwiseNot):
            return F.bitwise_not(self.col(node.this))
        if isinstance(node, exp.Is):
            inner = self.col(node.this)
            if isinstance(node.expression, exp.Null):
                return inner.isNull()
            return inner.eqNullSafe(self.col(node.expression))
        if isinstance(node, (exp.Cast, exp.TryCast)):
            target = node.to.sql(dialect="spark")
            inner = self.col(node.this)
            # sqlglot reads Spark's CAST as TryCast too; only TRY_CAST carries safe=True
            return inner.try_cast(target) if node.args.get("safe") else inner.cast(target)
        if isinstance(node, exp.Case):
            return self._case(node)
        if isinstance(node, exp.If):
            return F.when(self.col(node.this), self.col(node.args["true"])).otherwise(
                self.col(node.args["false"]) if node.args.get("false") is not None else None)
        if isinstance(node, exp.In):
            if node.args.get("query") is not None:
                raise unsupported("SQL IN (subquery)")
            return self.col(node.this).isin(*[self.col(v) for v in node.expressions])
        if isinstance(node, exp.Between):
            return self.col(node.this).between(self.col(node.args["low"]), self.col(node.args["high"]))
        if isinstance(node, (exp.Like, exp.ILike)):
            pattern = _lit_value(self.col(node.expression))
            c = self.col(node.this)
            return c.like(pattern) if isinstance(node, exp.Like) else c.ilike(pattern)
        if isinstance(node, exp.RegexpLike):
            return self.col(node.this).rlike(_lit_value(self.col(node.expression)))
        if isinstance(node, exp.IntDiv):
            return Column(Call("int_div", [self.col(node.this).expr, self.col(node.expression).expr]))
        if isinstance(node, exp.DPipe):
            return F.concat(self.col(node.this), self.col(node.expression))
        if isinstance(node, exp.Dot):
            return self.col(node.this).getField(node.expression.name)
        if isinstance(node, exp.Bracket):
            key = self.col(node.expressions[0])
            return self.col(node.this)[_lit_value(key)]
        if isinstance(node, exp.Window):
            return self._window(node)
        if isinstance(node, exp.IgnoreNulls):
            inner = node.this
            args = [self.col(a) for a in inner.expressions]
            return getattr(F, inner.name.lower())(*args, True)
        if isinstance(node, exp.Lambda):
            raise AnalysisException("a lambda function is only allowed as a function argument")
        if isinstance(node, exp.Subquery) and self.scalar_subquery is not None:
            return Column(Lit(self.scalar_subquery(node.this)))
        if isinstance(node, (exp.Subquery, exp.Exists)):
            raise unsupported("SQL subqueries in expressions (other than scalar ones and WHERE x [NOT] IN (SELECT ...))")
        if isinstance(node, exp.Interval):
            raise unsupported("SQL INTERVAL outside date arithmetic")
        if isinstance(node, exp.Anonymous):
            return self._call(node.name, node.expressions)
        return self._special(node)

    # -------------------------------------------------------------- pieces

    def _column(self, node: exp.Column) -> Column:
        if isinstance(node.this, exp.Star):
            if self.star is None:
                return Column(Star())
            return Column(_Expanded(self.star(node.table or None)))
        name = node.name
        if not node.table and name in self.lambdas:
            return Column(self.lambdas[name])
        parts = [p.name for p in node.parts]
        return Column(ColRef(".".join(parts)))

    def _case(self, node: exp.Case) -> Column:
        subject = node.this
        branches = []
        for branch in node.args.get("ifs") or []:
            cond = self.col(branch.this)
            if subject is not None:
                cond = self.col(subject) == cond
            branches.append((cond.expr, self.col(branch.args["true"]).expr))
        default = node.args.get("default")
        return Column(CaseWhen(branches, self.col(default).expr if default is not None else None))

    def _args(self, args: list[exp.Expression]) -> tuple[list[Any], bool]:
        out: list[Any] = []
        distinct = False
        for a in args:
            if isinstance(a, exp.Distinct):
                distinct = True
                out.extend(self.col(x) for x in a.expressions)
            elif isinstance(a, exp.Lambda):
                out.append(self._lambda(a))
            else:
                out.append(self.col(a))
        return out, distinct

    def _lambda(self, node: exp.Lambda) -> Callable[..., Column]:
        names = [p.name for p in node.expressions]

        def fn(*cols: Column) -> Column:
            saved = dict(self.lambdas)
            for nm, c in zip(names, cols):
                self.lambdas[nm] = c.expr  # type: ignore[assignment]
            try:
                return self.col(node.this)
            finally:
                self.lambdas = saved
        fn.__signature__ = _signature(len(names))  # type: ignore[attr-defined]
        return fn

    def _call(self, name: str, args: list[exp.Expression]) -> Column:
        cols, distinct = self._args(args)
        return call_by_name(name, cols, distinct)

    def _window(self, node: exp.Window) -> Column:
        from chukonu.sql.window import WindowSpec
        func = self.col(node.this)
        base = node
        if isinstance(node.args.get("alias"), exp.Identifier) and not node.args.get("partition_by") \
                and not node.args.get("order"):
            named = self.windows.get(node.args["alias"].name)
            if named is None:
                raise AnalysisException(f"[MISSING_WINDOW_SPECIFICATION] window {node.args['alias'].name} "
                                        f"is not defined")
            base = named  # type: ignore[assignment]
        spec: WindowSpec = WindowSpec()
        parts = base.args.get("partition_by") or []
        if parts:
            spec = spec.partitionBy(*[self.col(p) for p in parts])
        order = base.args.get("order")
        if order is not None:
            spec = spec.orderBy(*[self.order_item(o) for o in order.expressions])
        frame = base.args.get("spec")
        if frame is not None:
            start = self._frame_bound(frame.args.get("start"), frame.args.get("start_side"))
            end = self._frame_bound(frame.args.get("end"), frame.args.get("end_side"))
            kind = str(frame.args.get("kind") or "ROWS").upper()
            spec = spec.rowsBetween(start, end) if kind == "ROWS" else spec.rangeBetween(start, end)
        return func.over(spec)

    @staticmethod
    def _frame_bound(value: Any, side: Any) -> int:
        from chukonu.sql.window import Window
        text = value.name if isinstance(value, exp.Expression) else str(value or "")
        side_s = str(side or "").upper()
        if text.upper() == "UNBOUNDED":
            return Window.unboundedPreceding if side_s == "PRECEDING" else Window.unboundedFollowing
        if text.upper() == "CURRENT ROW":
            return 0
        k = int(float(text))
        return -k if side_s == "PRECEDING" else k

    def order_item(self, node: exp.Expression) -> Column:
        if not isinstance(node, exp.Ordered):
            return self.col(node)
        c = self.col(node.this)
        desc = bool(node.args.get("desc"))
        nulls_first = node.args.get("nulls_first")
        explicit = bool(node.args.get("nulls_first")) != (not desc)
        if nulls_first is None or not explicit:
            return c.desc() if desc else c.asc()
        return Column(SortOrder(c.expr, not desc, bool(nulls_first)))

    def _special(self, node: exp.Expression) -> Column:
        """sqlglot nodes that keep their own class even without the function table."""
        F = _F()
        if isinstance(node, exp.Extract):
            return F.date_part(F.lit(node.this.name), self.col(node.expression))
        if isinstance(node, exp.Substring):
            start = _lit_value(self.col(node.args["start"])) if node.args.get("start") else 1
            length = _lit_value(self.col(node.args["length"])) if node.args.get("length") else 2 ** 31 - 1
            return F.substring(self.col(node.this), start, length)
        if isinstance(node, exp.Trim):
            chars = _lit_value(self.col(node.expression)) if node.expression is not None else None
            where = str(node.args.get("position") or "BOTH").upper()
            fn = {"LEADING": "ltrim", "TRAILING": "rtrim"}.get(where, "trim")
            c = self.col(node.this)
            return Column(Call(fn, [c.expr], {"chars": chars} if chars is not None else {}))
        if isinstance(node, exp.Transform):
            return F.transform(self.col(node.this), self._lambda(node.expression))
        if isinstance(node, exp.ApproxQuantile):
            acc = node.args.get("accuracy")
            return F.percentile_approx(self.col(node.this), _lit_value(self.col(node.args["quantile"])),
                                       _lit_value(self.col(acc)) if acc is not None else 10000)
        if isinstance(node, exp.Array):
            return F.array(*[self.col(e) for e in node.expressions])
        if isinstance(node, exp.Tuple):
            return F.struct(*[self.col(e) for e in node.expressions])
        if isinstance(node, exp.CurrentDate):
            return F.current_date()
        if isinstance(node, (exp.CurrentTimestamp,)):
            return F.current_timestamp()
        if isinstance(node, exp.Func):
            args = [v for k in node.arg_types for v in _as_list(node.args.get(k))]
            return self._call(node.sql_name(), args)
        raise unsupported(f"SQL syntax {node.key.upper()} ({node.sql(dialect='spark')[:60]})")


def _as_list(v: Any) -> list[Any]:
    if v is None:
        return []
    return list(v) if isinstance(v, list) else [v]


class _Expanded(Expr):
    """``t.*``: several columns, expanded by the select that holds it."""

    def __init__(self, exprs: list[Expr]) -> None:
        self.exprs = exprs

    def name(self) -> str:
        return "*"


def _signature(n: int) -> Any:
    import inspect
    return inspect.Signature([inspect.Parameter(f"p{i}", inspect.Parameter.POSITIONAL_ONLY) for i in range(n)])
