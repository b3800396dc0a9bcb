"""``pyspark.sql.functions``: arrays, maps, structs, JSON, and higher-order functions with Python lambdas.

A higher-order function calls the user's lambda once, with placeholder
Columns, to get the body as an expression tree: ``transform("xs", lambda x:
x * 2)`` becomes one vectorised evaluation over all elements of a batch.
"""
from __future__ import annotations

import inspect
import random as _random
from typing import Any, Callable

from chukonu.engine.expressions import Call, Lit
from chukonu.engine.lambdas import HigherOrder, LambdaVar
from chukonu.sql.column import Column, lit_expr, literal_value, to_expr


def _call(fn: str, *cols: Any, **options: Any) -> Column:
    # options are values; a literal Column (from SQL, or lit() in PySpark 4 style) is unwrapped
    return Column(Call(fn, [to_expr(c) for c in cols], {k: literal_value(v) for k, v in options.items()}))


def _value(x: Any) -> Any:
    return x.expr.value if isinstance(x, Column) and isinstance(x.expr, Lit) else x


# ---------------------------------------------------------------------- arrays

def array_position(col: Any, value: Any) -> Column:
    return Column(Call("array_position", [to_expr(col), lit_expr(value)]))


def array_remove(col: Any, element: Any) -> Column:
    return Column(Call("array_remove", [to_expr(col), lit_expr(element)]))


def array_union(col1: Any, col2: Any) -> Column:
    return _call("array_union", col1, col2)


def array_intersect(col1: Any, col2: Any) -> Column:
    return _call("array_intersect", col1, col2)


def array_except(col1: Any, col2: Any) -> Column:
    return _call("array_except", col1, col2)


def arrays_overlap(a1: Any, a2: Any) -> Column:
    return _call("arrays_overlap", a1, a2)


def arrays_zip(*cols: Any) -> Column:
    exprs = [to_expr(c) for c in cols]
    return Column(Call("arrays_zip", exprs, {"names": [e.name() for e in exprs]}))


def array_repeat(col: Any, count: Any) -> Column:
    return Column(Call("array_repeat", [to_expr(col), lit_expr(count)]))


def sequence(start: Any, stop: Any, step: Any = None) -> Column:
    return _call("sequence", start, stop, *([step] if step is not None else []))


def slice(x: Any, start: Any, length: Any) -> Column:  # noqa: A001
    return Column(Call("slice", [to_expr(x), lit_expr(start), lit_expr(length)]))


def array_append(col: Any, value: Any) -> Column:
    return Column(Call("array_append", [to_expr(col), lit_expr(value)]))


def array_prepend(col: Any, value: Any) -> Column:
    return Column(Call("array_prepend", [to_expr(col), lit_expr(value)]))


def array_insert(arr: Any, pos: Any, value: Any) -> Column:
    return Column(Call("array_insert", [to_expr(arr), lit_expr(pos), lit_expr(value)]))


def array_compact(col: Any) -> Column:
    return _call("array_compact", col)


def array_size(col: Any) -> Column:
    return Column(Call("array_size", [to_expr(col)]))


def cardinality(col: Any) -> Column:
    return _call("size", col)


def get(col: Any, index: Any) -> Column:
    return Column(Call("get", [to_expr(col), lit_expr(index)]))


def try_element_at(col: Any, extraction: Any) -> Column:
    return Column(Call("try_element_at", [to_expr(col), lit_expr(extraction)]))


def array_sort(col: Any, comparator: Callable[..., Any] | None = None) -> Column:
    if comparator is not None:
        from chukonu.errors import unsupported
        raise unsupported("array_sort with a comparator")
    return _call("array_sort", col)


def shuffle(col: Any, seed: int | None = None) -> Column:
    return _call("shuffle", col, seed=seed if seed is not None else _random.getrandbits(31))


# ------------------------------------------------------------------------ maps

def create_map(*cols: Any) -> Column:
    if len(cols) == 1 and isinstance(cols[0], (list, tuple)):
        cols = tuple(cols[0])
    return _call("create_map", *cols)


def map_from_arrays(col1: Any, col2: Any) -> Column:
    return _call("map_from_arrays", col1, col2)


def map_from_entries(col: Any) -> Column:
    return _call("map_from_entries", col)


def map_entries(col: Any) -> Column:
    return _call("map_entries", col)


def map_concat(*cols: Any) -> Column:
    if len(cols) == 1 and isinstance(cols[0], (list, tuple)):
        cols = tuple(cols[0])
    return _call("map_concat", *cols)


def map_contains_key(col: Any, value: Any) -> Column:
    return Column(Call("map_contains_key", [to_expr(col), lit_expr(value)]))


def str_to_map(text: Any, pairDelim: Any = None, keyValueDelim: Any = None) -> Column:
    args = [to_expr(text), lit_expr(_value(pairDelim) or ","), lit_expr(_value(keyValueDelim) or ":")]
    return Column(Call("str_to_map", args))


def named_struct(*cols: Any) -> Column:
    names = [_value(c) for c in cols[0::2]]
    return Column(Call("named_struct", [to_expr(c) for c in cols[1::2]], {"names": names}))


# ------------------------------------------------------------------------ JSON

def get_json_object(col: Any, path: str) -> Column:
    return _call("get_json_object", col, path=path)


def json_array_length(col: Any) -> Column:
    return _call("json_array_length", col)


def json_object_keys(col: Any) -> Column:
    return _call("json_object_keys", col)


def from_json(col: Any, schema: Any, options: dict | None = None) -> Column:
    from chukonu.sql.types import DataType, parse_schema, parse_type
    s = _value(schema)
    if isinstance(s, str):
        text = s.strip()
        try:
            dt: Any = parse_type(text)
        except Exception:  # noqa: BLE001 - "a INT, b STRING" is a schema, not one type
            dt = parse_schema(text)
    elif isinstance(s, DataType):
        dt = s
    else:
        raise TypeError(f"from_json needs a schema (a DDL string or a DataType), got {s!r}")
    return _call("from_json", col, type=dt.to_arrow())


def to_json(col: Any, options: dict | None = None) -> Column:
    return _call("to_json", col)


def schema_of_json(json: Any, options: dict | None = None) -> Column:
    return Column(Call("schema_of_json", [lit_expr(json)]))


# ------------------------------------------------------------ higher-order fns

def _params(f: Callable[..., Any], most: int) -> int:
    try:
        sig = inspect.signature(f)
    except (TypeError, ValueError):
        return 1
    n = len([p for p in sig.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)])
    return max(1, min(n, most))


def _lambda(f: Callable[..., Any], names: list[str]) -> tuple[list[LambdaVar], Any]:
    params = [LambdaVar(nm) for nm in names]
    body = f(*[Column(p) for p in params])
    if not isinstance(body, Column):
        body = Column(Lit(body))
    return params, body.expr


def _hof(fn: str, cols: list[Any], f: Callable[..., Any], names: list[str]) -> Column:
    params, body = _lambda(f, names)
    return Column(HigherOrder(fn, [to_expr(c) for c in cols], params, body))


def transform(col: Any, f: Callable[..., Any]) -> Column:
    return _hof("transform", [col], f, ["x", "i"][:_params(f, 2)])


def filter(col: Any, f: Callable[..., Any]) -> Column:  # noqa: A001
    return _hof("filter", [col], f, ["x", "i"][:_params(f, 2)])


def exists(col: Any, f: Callable[..., Any]) -> Column:
    return _hof("exists", [col], f, ["x"])


def forall(col: Any, f: Callable[..., Any]) -> Column:
    return _hof("forall", [col], f, ["x"])


def aggregate(col: Any, initialValue: Any, merge: Callable[..., Any],
              finish: Callable[..., Any] | None = None) -> Column:
    params, body = _lambda(merge, ["acc", "x"])
    fparams, fbody = _lambda(finish, ["acc"]) if finish is not None else ([], None)
    return Column(HigherOrder("aggregate", [to_expr(col), lit_expr(initialValue)], params, body, fparams, fbody))


reduce = aggregate


def zip_with(left: Any, right: Any, f: Callable[..., Any]) -> Column:
    return _hof("zip_with", [left, right], f, ["x", "y"])


def transform_keys(col: Any, f: Callable[..., Any]) -> Column:
    return _hof("transform_keys", [col], f, ["k", "v"])


def transform_values(col: Any, f: Callable[..., Any]) -> Column:
    return _hof("transform_values", [col], f, ["k", "v"])


def map_filter(col: Any, f: Callable[..., Any]) -> Column:
    return _hof("map_filter", [col], f, ["k", "v"])
