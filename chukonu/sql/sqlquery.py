"""``spark.sql``: a SELECT statement (sqlglot's Spark dialect) translated into DataFrame calls.

The translation follows SQL's logical order and reuses the DataFrame API,
so SQL and DataFrame pipelines share one analyzer and one engine:

FROM (temp views, CTEs, subqueries; each named so ``t.x`` resolves) ->
JOIN ... ON / USING -> WHERE -> GROUP BY with the select's aggregates
computed once into hidden columns -> HAVING -> window functions -> SELECT
-> DISTINCT -> ORDER BY (on output names, ordinals, or input columns) ->
LIMIT; UNION [ALL] combines selects by position.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlglot import exp

from chukonu.engine.expressions import AggCall, Alias, ColRef, Expr, Lit, Star, has_aggregate
from chukonu.errors import AnalysisException, unsupported
from chukonu.sql.column import Column
from chukonu.sql.sqlexpr import ExprTranslator, _Expanded, parse

if TYPE_CHECKING:
    from chukonu.sql.dataframe import DataFrame
    from chukonu.sql.session import SparkSession

_JOINS = {("", ""): "inner", ("", "INNER"): "inner", ("LEFT", ""): "left", ("LEFT", "OUTER"): "left",
          ("RIGHT", ""): "right", ("RIGHT", "OUTER"): "right", ("FULL", ""): "full", ("FULL", "OUTER"): "full",
          ("", "CROSS"): "cross", ("LEFT", "SEMI"): "left_semi", ("LEFT", "ANTI"): "left_anti", ("", "SEMI"): "left_semi",
          ("", "ANTI"): "left_anti", ("", "OUTER"): "full"}


def run_sql(session: "SparkSession", text: str, args: dict[str, Any] | None = None) -> "DataFrame":
    tree = parse(text)
    return QueryTranslator(session, {}).query(tree)


class QueryTranslator:
    def __init__(self, session: "SparkSession", ctes: dict[str, "DataFrame"]) -> None:
        self.session = session
        self.ctes = dict(ctes)

    # ------------------------------------------------------------- queries

    def query(self, node: exp.Expression) -> "DataFrame":
        with_ = node.args.get("with_") or node.args.get("with")
        if with_ is not None:
            if with_.args.get("recursive"):
                raise unsupported("SQL WITH RECURSIVE")
            for cte in with_.expressions:
                self.ctes[cte.alias_or_name.lower()] = QueryTranslator(self.session, self.ctes).query(cte.this)
        if isinstance(node, exp.Union):
            left, right = self.query(node.this), self.query(node.expression)
            out = left.union(right)
            if node.args.get("distinct"):
                out = out.distinct()
            return self._order_limit(out, node, None)
        if isinstance(node, (exp.Except, exp.Intersect)):
            left, right = self.query(node.this), self.query(node.expression)
            every = node.args.get("distinct") is False
            if isinstance(node, exp.Except):
                out = left.exceptAll(right) if every else left.subtract(right)
            else:
                out = left.intersectAll(right) if every else left.intersect(right)
            return self._order_limit(out, node, None)
        if isinstance(node, exp.Subquery):
            return self.query(node.this)
        if isinstance(node, exp.Select):
            return self._select(node)
        raise unsupported(f"SQL statement {node.key.upper()}", "chukonu runs SELECT queries over temp views")

    def _relation(self, node: exp.Expression) -> "DataFrame":
        if isinstance(node, exp.Table):
            name = node.name.lower()
            db = node.args.get("db")
            if name in self.ctes and db is None:
                df = self.ctes[name]
            else:
                full = f"{db.name}.{node.name}" if db is not None else node.name
                df = self.session._catalog.lookup(full)
            return df.alias(node.alias_or_name)
        if isinstance(node, exp.Subquery):
            df = QueryTranslator(self.session, self.ctes).query(node.this)
            return df.alias(node.alias) if node.alias else df
        raise unsupported(f"SQL FROM {node.key.upper()}")

    def _select(self, node: exp.Select) -> "DataFrame":
        from_ = node.args.get("from_") or node.args.get("from")
        if from_ is None:   # SELECT 1: one row, no columns that matter
            df = self.session.range(1, numPartitions=1)
        else:
            df = self._relation(from_.this)
        for j in node.args.get("joins") or []:
            df = self._join(df, j)
        windows = {w.name: w for w in node.args.get("windows") or []}
        tx = ExprTranslator(star=lambda q: self._star(df, q), windows=windows, scalar_subquery=self._scalar)
        where = node.args.get("where")
        if where is not None:
            rest = []
            for part in _conjuncts(where.this):
                inner = part.this if isinstance(part, exp.Not) else part
                if isinstance(inner, exp.In) and inner.args.get("query") is not None:
                    df = self._in_subquery(df, tx, inner, negated=isinstance(part, exp.Not))
                else:
                    rest.append(part)
            if rest:
                cond = rest[0]
                for r in rest[1:]:
                    cond = exp.And(this=cond, expression=r)
                df = df.filter(tx.col(cond))
        items = [tx.translate(e) for e in node.expressions]
        items = [x for e in items for x in (e.exprs if isinstance(e, _Expanded) else [e])]
        group = node.args.get("group")
        having = node.args.get("having")
        order = node.args.get("order")
        order_cols = [tx.order_item(o) for o in order.expressions] if order is not None else []
        is_agg = group is not None or having is not None or any(has_aggregate(e) for e in items) or any(
            has_aggregate(o.expr) for o in order_cols)
        if is_agg:
            df, items, order_cols = self._aggregate(df, node, tx, items, order_cols)
        if node.args.get("distinct") is not None:
            out = df.select(*[Column(e) for e in items]).distinct()
            return self._order_limit(out, node, order_cols)
        return self._project_order_limit(df, node, items, order_cols)

    def _scalar(self, query: exp.Expression) -> Any:
        """An uncorrelated scalar subquery, run now (Spark runs it as its own job too)."""
        rows = QueryTranslator(self.session, self.ctes).query(query).limit(2).collect()
        if len(rows) > 1:
            raise AnalysisException("[SCALAR_SUBQUERY_TOO_MANY_ROWS] More than one row returned by a subquery "
                                    "used as an expression.")
        if rows and len(rows[0]) != 1:
            raise AnalysisException("[INVALID_SUBQUERY_EXPRESSION] a scalar subquery must return one column")
        return rows[0][0] if rows else None

    def _in_subquery(self, df: "DataFrame", tx: ExprTranslator, node: exp.In, negated: bool) -> "DataFrame":
        """``x IN (SELECT y ...)`` as a left semi join; ``NOT IN`` as a null-aware anti join."""
        from chukonu.sql import functions as F
        sub = QueryTranslator(self.session, self.ctes).query(node.args["query"].this
                                                             if isinstance(node.args["query"], exp.Subquery)
                                                             else node.args["query"])
        if len(sub.columns) != 1:
            raise AnalysisException("[INVALID_SUBQUERY_EXPRESSION] IN (subquery) needs exactly one column")
        right = sub.select(F.col(sub.columns[0]).alias("__in"))
        left = df.withColumn("__ink", tx.col(node.this))
        if not negated:
            return left.join(right, F.col("__ink") == F.col("__in"), "left_semi").drop("__ink")
        # NOT IN: a null on either side makes the predicate unknown (row dropped); an empty subquery keeps all
        nulls = right.agg(F.max(F.col("__in").isNull().cast("int")).alias("__nulls"))
        kept = left.filter(F.col("__ink").isNotNull()).join(right, F.col("__ink") == F.col("__in"), "left_anti")
        kept = kept.crossJoin(nulls).filter(F.coalesce(F.col("__nulls"), F.lit(0)) == 0).drop("__nulls")
        empty = right.limit(1).count() == 0
        return (left if empty else kept).drop("__ink")

    def _star(self, df: "DataFrame", qualifier: str | None) -> list[Expr]:
        attrs = df._plan.schema
        if qualifier is None:
            return [Star()]
        picked = [a for a in attrs if qualifier.lower() in {q.lower() for q in a.qualifiers}]
        if not picked:
            raise AnalysisException(f"[CANNOT_RESOLVE_STAR_EXPAND] Cannot resolve {qualifier}.*")
        return [ColRef(f"{qualifier}.{a.name}") for a in picked]

    def _join(self, left: "DataFrame", j: exp.Join) -> "DataFrame":
        right = self._relation(j.this)
        side = str(j.args.get("side") or "").upper()
        kind = str(j.args.get("kind") or "").upper()
        how = _JOINS.get((side, kind))
        if how is None:
            raise unsupported(f"SQL {side} {kind} JOIN")
        using = j.args.get("using")
        if using:
            return left.join(right, [u.name for u in using], how)
        on = j.args.get("on")
        if on is None:
            return left.crossJoin(right) if how in ("inner", "cross") else left.join(right, None, how)
        cond = ExprTranslator().col(on)
        return left.join(right, cond, how)

    # ------------------------------------------------------------ aggregate

    def _aggregate(self, df: "DataFrame", node: exp.Select, tx: ExprTranslator, items: list[Expr],
                   order_cols: list[Column]) -> tuple["DataFrame", list[Expr], list[Column]]:
        from chukonu.sql import functions as F
        group = node.args.get("group")
        keys: list[Expr] = []
        sets_kind = None
        for g in (group.expressions if group is not None else []):
            if isinstance(g, (exp.Rollup, exp.Cube)):
                if keys or sets_kind:
                    raise unsupported("SQL GROUP BY mixing plain keys with ROLLUP/CUBE", "use df.rollup/df.cube")
                sets_kind = "rollup" if isinstance(g, exp.Rollup) else "cube"
                keys.extend(tx.translate(e) for e in g.expressions)
                continue
            if sets_kind:
                raise unsupported("SQL GROUP BY mixing plain keys with ROLLUP/CUBE", "use df.rollup/df.cube")
            if isinstance(g, exp.Literal) and not g.is_string:
                keys.append(_unalias(items[int(g.this) - 1]))
                continue
            k = tx.translate(g)
            if isinstance(k, ColRef):   # GROUP BY a select alias
                col = k.column.lower()
                for it in items:
                    if isinstance(it, Alias) and it.names[0].lower() == col and not has_aggregate(it):
                        if not any(a.name.lower() == col for a in df._plan.schema):
                            k = it.child
            keys.append(k)
        if group is not None and group.args.get("grouping_sets"):
            raise unsupported("SQL GROUP BY GROUPING SETS", "use df.rollup() or df.cube()")
        having = node.args.get("having")
        having_e = tx.translate(having.this) if having is not None else None
        aggs: dict[str, AggCall] = {}
        for e in items + ([having_e] if having_e is not None else []) + [o.expr for o in order_cols]:
            _collect_aggs(e, aggs)
        key_names = [f"__k{i}" for i in range(len(keys))]
        agg_names = {label: f"__a{i}" for i, label in enumerate(aggs)}
        key_cols = [Column(Alias(k, (nm,))) for k, nm in zip(keys, key_names)]
        grouped = getattr(df, sets_kind)(*key_cols) if sets_kind else df.groupBy(*key_cols)
        agg_cols = [Column(Alias(a, (agg_names[label],))) for label, a in aggs.items()]
        if not agg_cols:
            agg_cols = [F.count("*").alias("__rows")]
        out = grouped.agg(*agg_cols)
        key_labels = {k.name(): nm for k, nm in zip(keys, key_names)}
        for k, nm in zip(keys, key_names):
            if isinstance(k, ColRef):
                key_labels[k.column.split(".")[-1].strip("`")] = nm

        def rewrite(e: Expr) -> Expr:
            return _replace(e, agg_names, key_labels)
        new_items: list[Expr] = []
        for it in items:
            r = rewrite(it)
            if not isinstance(r, Alias):
                r = Alias(r, (it.name(),))
            new_items.append(r)
        if having_e is not None:
            out = out.filter(Column(rewrite(having_e)))
        outputs = {it.names[0].lower() for it in new_items if isinstance(it, Alias)}
        new_order = [Column(_replace(o.expr, agg_names, key_labels, outputs)) for o in order_cols]
        return out, new_items, new_order

    # ------------------------------------------------------- select, order

    def _project_order_limit(self, df: "DataFrame", node: exp.Expression, items: list[Expr],
                             order_cols: list[Column]) -> "DataFrame":
        projected = df.select(*[Column(e) for e in items])
        if not order_cols:
            return self._order_limit(projected, node, None)
        try:
            orders = self._resolve_orders(projected, order_cols, items)
            return self._order_limit(projected, node, orders)
        except AnalysisException:
            pass
        # ORDER BY a column the select does not output: sort before the projection's end
        hidden = [Column(Alias(o.expr.child if hasattr(o.expr, "child") else o.expr, (f"__o{i}",)))
                  for i, o in enumerate(order_cols)]
        wide = df.select(*[Column(e) for e in items], *hidden)
        from chukonu.engine.expressions import SortOrder
        sorts = []
        for i, o in enumerate(order_cols):
            e = o.expr
            asc, nf = (e.ascending, e.nulls_first) if isinstance(e, SortOrder) else (True, None)
            sorts.append(Column(SortOrder(ColRef(f"__o{i}"), asc, nf)))
        ordered = wide.orderBy(*sorts)
        limit = node.args.get("limit")
        if limit is not None:
            ordered = ordered.limit(int(limit.expression.this))
        return ordered.select(*[wide.columns[i] for i in range(len(items))])

    @staticmethod
    def _resolve_orders(df: "DataFrame", order_cols: list[Column], items: list[Expr]) -> list[Column]:
        from chukonu.engine.expressions import SortOrder, bind
        out = []
        for o in order_cols:
            e = o.expr
            inner = e.child if isinstance(e, SortOrder) else e
            if isinstance(inner, Lit) and isinstance(inner.value, int) and not isinstance(inner.value, bool):
                inner = ColRef(df.columns[inner.value - 1])
            else:
                for it, name in zip(items, df.columns):
                    if isinstance(it, Alias) and _unalias(it).name() == inner.name() and not isinstance(inner,
                                                                                                     ColRef):
                        inner = ColRef(name)
            bind(inner, df._plan.schema)   # raises if the output has no such column
            out.append(Column(SortOrder(inner, e.ascending, e.nulls_first) if isinstance(e, SortOrder)
                              else SortOrder(inner, True, None)))
        return out

    def _order_limit(self, df: "DataFrame", node: exp.Expression, orders: list[Column] | None) -> "DataFrame":
        if orders is None and node.args.get("order") is not None and isinstance(node, (exp.Union, exp.Except,
                                                                                          exp.Intersect)):
            tx = ExprTranslator()
            orders = self._resolve_orders(df, [tx.order_item(o) for o in node.args["order"].expressions], [])
        if orders:
            df = df.orderBy(*orders)
        limit = node.args.get("limit")
        if limit is not None:
            df = df.limit(int(limit.expression.this))
        return df


def _conjuncts(node: exp.Expression) -> list[exp.Expression]:
    if isinstance(node, exp.And):
        return _conjuncts(node.this) + _conjuncts(node.expression)
    if isinstance(node, exp.Paren):
        return _conjuncts(node.this)
    return [node]


def _unalias(e: Expr) -> Expr:
    return e.child if isinstance(e, Alias) else e


def _collect_aggs(e: Expr, out: dict[str, AggCall]) -> None:
    if isinstance(e, AggCall):
        out.setdefault(e.name() + repr(sorted(e.options.items())) + str(e.distinct), e)
        return
    if type(e).__name__ == "WindowExpr":
        for k in e.children()[0].children():
            _collect_aggs(k, out)
        for k in e.children()[1:]:
            _collect_aggs(k, out)
        return
    for k in e.children():
        _collect_aggs(k, out)


def _replace(e: Expr, aggs: dict[str, str], keys: dict[str, str], outputs: set[str] | None = None) -> Expr:
    """``e`` over the aggregate's output: aggregates and group keys become its hidden columns."""
    if isinstance(e, AggCall):
        label = e.name() + repr(sorted(e.options.items())) + str(e.distinct)
        return ColRef(aggs[label])
    if isinstance(e, ColRef) and outputs is not None and e.column.lower() in outputs:
        return e     # ORDER BY a name the select outputs
    if not isinstance(e, (Alias, Lit)) and e.name() in keys and not isinstance(e, Star):
        return ColRef(keys[e.name()])
    if type(e).__name__ == "WindowExpr":
        # the window function itself stays (sum(...) OVER w); its arguments and spec are rewritten
        func = e.children()[0]
        new_func = func.with_children([_replace(k, aggs, keys, outputs) for k in func.children()])
        rest = [_replace(k, aggs, keys, outputs) for k in e.children()[1:]]
        return e.with_children([new_func] + rest)
    kids = e.children()
    if not kids:
        if isinstance(e, ColRef) and outputs is not None and e.column.lower() in outputs:
            return e
        if isinstance(e, ColRef):
            raise AnalysisException(f"[MISSING_AGGREGATION] The non-aggregating expression {e.name()} is based on "
                                    f"columns which are not participating in the GROUP BY clause")
        return e
    return e.with_children([_replace(k, aggs, keys, outputs) for k in kids])
