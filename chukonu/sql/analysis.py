"""Turning DataFrame calls into checked plan nodes: select, aggregate, join, union.

This is where Spark's analyzer rules live: ``*`` expands to every column,
one generator per select, aggregates only inside ``agg``, a join's Column
condition split into equi-key pairs (each side resolved by which DataFrame
the column came from) and a residual filter, unions by position with
widened types. Errors are ``AnalysisException`` raised here, while the user
is still building the query.
"""
from __future__ import annotations

from typing import Any, Sequence

import pyarrow as pa

from chukonu.engine import plan as P
from chukonu.engine import stats
from chukonu.engine.aggregate import AggFn, finalize, state_schema
from chukonu.engine.expressions import (AggCall, Alias, Attr, BoundRef, Call, ColRef, Expr, Generator, Lit, RegexStar, Star,
                                        bind, common_type, contains, has_aggregate, resolve_column,
                                        result_type)
from chukonu.errors import AnalysisException, unsupported

# ------------------------------------------------------------------- project


def _output_name(e: Expr) -> str:
    return e.names[0] if isinstance(e, Alias) else e.name()


def expand_star(exprs: Sequence[Expr], schema: Sequence[Attr]) -> list[Expr]:
    out: list[Expr] = []
    for e in exprs:
        if isinstance(e, RegexStar):
            out.extend(BoundRef(i, a.name) for i, a in enumerate(schema) if e.pattern.fullmatch(a.name))
        elif isinstance(e, Star):
            out.extend(BoundRef(i, a.name) for i, a in enumerate(schema))
        else:
            out.append(e)
    return out


def project(child: P.Plan, exprs: Sequence[Expr]) -> P.Project:
    exprs = expand_star(exprs, child.schema)
    from chukonu.sql.window import has_window, plan_windows
    if any(has_window(e) for e in exprs):
        child, exprs = plan_windows(child, exprs)
    schema = child.schema
    if any(has_aggregate(e) for e in exprs):
        raise AnalysisException("aggregate functions are only allowed in agg() or a select of aggregates only")
    gens = [e for e in exprs if contains(e, Generator)]
    if len(gens) > 1:
        raise AnalysisException("[UNSUPPORTED_GENERATOR.MULTI_GENERATOR] only one generator (explode) is allowed "
                                "per select clause")
    bound: list[Expr] = []
    attrs: list[Attr] = []
    for e in exprs:
        b = bind(e, schema)
        inner = b.child if isinstance(b, Alias) else b
        if isinstance(inner, Generator):
            src = result_type(inner.child, schema)
            is_map = pa.types.is_map(src)
            if is_map:
                elems = [pa.field("key", src.key_type), pa.field("value", src.item_type)]
            elif pa.types.is_list(src) or pa.types.is_large_list(src):
                elems = [pa.field("col", src.value_type)]
            else:
                raise AnalysisException(f"[DATATYPE_MISMATCH] explode needs an array or a map, "
                                        f"{inner.child.name()} is {src}")
            names = list(b.names) if isinstance(b, Alias) else list(inner.default_names(is_map))
            types = ([pa.int32()] if inner.kind == "posexplode" else []) + [f.type for f in elems]
            if len(names) != len(types):
                raise AnalysisException(f"{inner.kind} produces {len(types)} columns but {len(names)} aliases "
                                        f"were given")
            attrs.extend(Attr(n, t) for n, t in zip(names, types))
            bound.append(b)
            continue
        if contains(b, Generator):
            raise AnalysisException("a generator (explode) must be at the top of a select expression")
        t = result_type(b, schema)
        name = _output_name(e) if not isinstance(b, BoundRef) or isinstance(e, Alias) else schema[b.index].name
        ref = b if isinstance(b, BoundRef) and not isinstance(e, Alias) else None   # a column passed through
        origins = schema[ref.index].origins if ref is not None else frozenset()
        quals = schema[ref.index].qualifiers if ref is not None else frozenset()
        attrs.append(Attr(name, pa.string() if pa.types.is_large_string(t) else t, origins, quals))
        bound.append(b)
    return P.Project(child, bound, tuple(attrs))


def filter_(child: P.Plan, condition: Expr) -> P.Filter:
    if contains(condition, AggCall):
        raise AnalysisException("aggregate functions are not allowed in filter()")
    b = bind(condition, child.schema)
    t = result_type(b, child.schema)
    if not (pa.types.is_boolean(t) or pa.types.is_null(t)):
        raise AnalysisException(f"[DATATYPE_MISMATCH.FILTER_NOT_BOOLEAN] filter expression {condition.name()} "
                                f"is {t}, not boolean")
    return P.Filter(child, b)


# ----------------------------------------------------------------- aggregate

_AGG_NAMES = {"count", "sum", "min", "max", "avg", "first", "last", "collect_list", "collect_set"} | \
    set(stats.WIDTH) | stats.LIST_FNS | stats.SET_FNS
_DISTINCT = {"count": "count_distinct", "sum": "sum_distinct", "avg": "avg_distinct", "collect_list": "collect_set",
             "collect_set": "collect_set", "listagg": "listagg_distinct", "min": "min", "max": "max",
             "approx_count_distinct": "approx_count_distinct"}


def _hashable(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


def _agg_fn(call: AggCall, arg: int | None, arg2: int | None = None) -> AggFn:
    fn = call.fn
    if fn not in _AGG_NAMES:
        raise unsupported(f"aggregate function {fn}")
    items = tuple(sorted((k, _hashable(v)) for k, v in call.options.items() if k != "ignorenulls"))
    if call.distinct:
        if fn not in _DISTINCT:
            raise unsupported(f"{fn}(DISTINCT ...)")
        return AggFn(_DISTINCT[fn], arg, option_items=items)
    if fn == "count" and arg is None:
        return AggFn("count_all", None)
    return AggFn(fn, arg, bool(call.options.get("ignorenulls", False)), arg2, items)


class _Placeholder(Expr):
    def __init__(self, index: int, label: str) -> None:
        self.index, self.label = index, label

    def name(self) -> str:
        return self.label


def _replace_aggs(e: Expr, found: list[AggCall]) -> Expr:
    if isinstance(e, AggCall):
        found.append(e)
        return _Placeholder(len(found) - 1, e.name())
    kids = e.children()
    if not kids:
        return e
    return e.with_children([_replace_aggs(k, found) for k in kids])


def _bind_post(e: Expr, key_attrs: list[Attr], n_keys: int) -> Expr:
    if isinstance(e, _Placeholder):
        return BoundRef(n_keys + e.index, e.label)
    if isinstance(e, ColRef):
        try:
            return BoundRef(resolve_column(e.column, key_attrs, e.plan_id), e.name())
        except AnalysisException:
            raise AnalysisException(f"[MISSING_AGGREGATION] The non-aggregating expression {e.name()} is based on "
                                    f"columns which are not participating in the GROUP BY clause") from None
    kids = e.children()
    if not kids:
        return e
    return e.with_children([_bind_post(k, key_attrs, n_keys) for k in kids])


def aggregate(child: P.Plan, keys: Sequence[Expr], aggs: Sequence[Expr]) -> P.Aggregate:
    schema = child.schema
    keys = expand_star(keys, schema)
    pre: list[Expr] = []
    pre_attrs: list[Attr] = []
    key_attrs: list[Attr] = []
    for i, k in enumerate(keys):
        b = bind(k, schema)
        t = result_type(b, schema)
        name = _output_name(k) if not isinstance(b, BoundRef) or isinstance(k, Alias) else schema[b.index].name
        pre.append(b)
        pre_attrs.append(Attr(f"k{i}", t))
        ref = b if isinstance(b, BoundRef) else None
        key_attrs.append(Attr(name, t, schema[ref.index].origins if ref is not None else frozenset(),
                              schema[ref.index].qualifiers if ref is not None and not isinstance(k, Alias)
                              else frozenset()))
    calls: list[AggCall] = []
    outer: list[Expr] = []
    for a in aggs:
        if not contains(a, AggCall):
            raise AnalysisException(f"[MISSING_AGGREGATION] {a.name()} is not an aggregate function; wrap it in "
                                    f"first() or add it to groupBy()")
        outer.append(_replace_aggs(a, calls))
    fns: list[AggFn] = []
    for c in calls:
        arg_expr = c.args[0]
        if c.fn == "count" and isinstance(arg_expr, Lit) and not c.distinct:
            fns.append(_agg_fn(c, None))
            continue
        b = bind(arg_expr, schema)
        if contains(b, AggCall):
            raise AnalysisException("aggregate functions cannot be nested")
        pre.append(b)
        pre_attrs.append(Attr(f"v{len(pre_attrs)}", result_type(b, schema)))
        first_arg = len(pre) - len(keys) - 1
        second = None
        if len(c.args) > 1:
            b2 = bind(c.args[1], schema)
            pre.append(b2)
            pre_attrs.append(Attr(f"v{len(pre_attrs)}", result_type(b2, schema)))
            second = len(pre) - len(keys) - 1
        fns.append(_agg_fn(c, first_arg, second))
    if not pre:   # a batch without columns has no rows either: keep one column to count rows by
        pre.append(Lit(0))
        pre_attrs.append(Attr("__rows", pa.int64()))
    pre_arrow = P.to_arrow_schema(pre_attrs)
    states = state_schema(pre_arrow, len(keys), fns)
    empty_states = pa.Table.from_batches([], schema=states)
    final = finalize(empty_states, len(keys), fns, states.types[len(keys):])
    post_in = key_attrs + [Attr(f"a{j}", final.schema.field(len(keys) + j).type) for j in range(len(fns))]
    post: list[Expr] = [BoundRef(i, a.name) for i, a in enumerate(key_attrs)]
    out_attrs: list[Attr] = list(key_attrs)
    for a, o in zip(aggs, outer):
        b = _bind_post(o, key_attrs, len(keys))
        post.append(b)
        out_attrs.append(Attr(_output_name(a), result_type(b, post_in)))
    spec = P.AggregateSpec(pre, len(keys), fns, post, [a.name for a in out_attrs], tuple(pre_attrs))
    return P.Aggregate(child, spec, tuple(out_attrs))


# ---------------------------------------------------------------------- join

_HOW = {"inner": "inner", "left": "left", "leftouter": "left", "left_outer": "left", "right": "right",
        "rightouter": "right", "right_outer": "right", "outer": "full", "full": "full", "fullouter": "full",
        "full_outer": "full", "semi": "left_semi", "leftsemi": "left_semi", "left_semi": "left_semi",
        "anti": "left_anti", "leftanti": "left_anti", "left_anti": "left_anti", "cross": "cross"}


def _side(e: Expr, left: Sequence[Attr], right: Sequence[Attr]) -> tuple[str, int] | None:
    if not isinstance(e, ColRef):
        return None
    hits = []
    for name, schema in (("left", left), ("right", right)):
        try:
            idx = resolve_column(e.column, schema, e.plan_id)
        except AnalysisException:
            continue
        if e.plan_id is not None and e.plan_id not in schema[idx].origins:
            continue
        hits.append((name, idx))
    if len(hits) > 1 and e.plan_id is None:
        raise AnalysisException(f"[AMBIGUOUS_REFERENCE] Reference `{e.column}` is ambiguous: it is on both sides "
                                f"of the join; use df[\"{e.column}\"] or join(on=\"{e.column}\")")
    return hits[0] if hits else None


def _conjuncts(e: Expr) -> list[Expr]:
    if isinstance(e, Call) and e.fn == "and":
        return _conjuncts(e.args[0]) + _conjuncts(e.args[1])
    return [e]


def join(left: P.Plan, right: P.Plan, on: Any, how: str) -> P.Join:
    how_norm = _HOW.get(str(how).lower().replace(" ", ""))
    if how_norm is None:
        raise AnalysisException(f"[UNSUPPORTED_JOIN_TYPE] Unsupported join type '{how}'")
    ls, rs = left.schema, right.schema
    lkeys: list[int] = []
    rkeys: list[int] = []
    residual: Expr | None = None
    using = False
    if on is None:
        if how_norm not in ("inner", "cross"):
            raise AnalysisException(f"a {how} join needs a join condition")
        how_norm = "cross"
    elif isinstance(on, str) or (isinstance(on, (list, tuple)) and on and all(isinstance(x, str) for x in on)):
        using = True
        for name in ([on] if isinstance(on, str) else on):
            lkeys.append(resolve_column(name, ls))
            rkeys.append(resolve_column(name, rs))
    else:
        from chukonu.sql.column import Column
        conds = [on] if isinstance(on, Column) else list(on)
        rest: list[Expr] = []
        for c in conds:
            for part in _conjuncts(c.expr):
                if isinstance(part, Call) and part.fn == "eq":
                    a, b = _side(part.args[0], ls, rs), _side(part.args[1], ls, rs)
                    if a and b and a[0] != b[0]:
                        l_idx, r_idx = (a[1], b[1]) if a[0] == "left" else (b[1], a[1])
                        lkeys.append(l_idx)
                        rkeys.append(r_idx)
                        continue
                rest.append(part)
        if rest:
            if how_norm not in ("inner", "cross"):
                raise unsupported(f"a {how} join with a non-equality condition")
            combined = list(ls) + list(rs)
            expr = rest[0]
            for r in rest[1:]:
                expr = Call("and", [expr, r])
            residual = bind(expr, combined)
        if not lkeys:
            if how_norm != "inner":
                raise unsupported(f"a {how} join without an equality between the two sides")
            how_norm = "cross"
    key_types = [common_type([ls[a].type, rs[b].type]) for a, b in zip(lkeys, rkeys)]
    spec = P.JoinSpec(how_norm, lkeys, rkeys, using, residual, key_types)
    if how_norm in ("left_semi", "left_anti"):
        attrs = list(ls)
    elif using:
        attrs = [Attr(ls[a].name, t, ls[a].origins | rs[b].origins) for a, b, t in zip(lkeys, rkeys, key_types)]
        attrs += [a for i, a in enumerate(ls) if i not in lkeys]
        attrs += [a for i, a in enumerate(rs) if i not in rkeys]
    else:
        attrs = list(ls) + list(rs)
    node = P.Join(left, right, spec, ())
    node.schema = tuple(Attr(a.name, a.type, a.origins | {node.id}, a.qualifiers) for a in attrs)
    return node


# --------------------------------------------------------------------- union

def union(children: list[P.Plan]) -> P.Union:
    first = children[0].schema
    for c in children[1:]:
        if len(c.schema) != len(first):
            raise AnalysisException(f"[NUM_COLUMNS_MISMATCH] UNION can only be performed on inputs with the same "
                                    f"number of columns, but the first input has {len(first)} columns and another "
                                    f"input has {len(c.schema)} columns.")
    attrs = []
    for i, a in enumerate(first):
        try:
            t = common_type([c.schema[i].type for c in children])
        except AnalysisException as e:
            raise AnalysisException(f"[INCOMPATIBLE_COLUMN_TYPE] UNION can only be performed on inputs with "
                                    f"compatible column types: column {i} ({a.name}): {e}") from None
        if pa.types.is_null(t):
            t = pa.null()
        attrs.append(Attr(a.name, t, frozenset().union(*(c.schema[i].origins for c in children))))
    return P.Union(children, tuple(attrs))

