"""Array, map and struct kernels: size, min/max, sort, membership, indexing, constructors.

Per-list work is done on the flattened values with each value's parent row
index (``list_parent_indices``): a per-list minimum is a group-by on the
parent, a per-list sort is one sort by (parent, value). Nothing loops over
rows in Python except the rare map functions.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from chukonu.engine.expressions import as_array, unify_types
from chukonu.engine.kernels import kernel


def _is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


def _lengths(a: pa.Array) -> np.ndarray:
    """Element counts per row, 0 for null lists."""
    return pc.fill_null(pc.list_value_length(a), 0).to_numpy(zero_copy_only=False).astype(np.int64)


def _scatter(n: int, rows: np.ndarray, values: pa.Array) -> pa.Array:
    """An array of ``n`` rows: ``values[i]`` at row ``rows[i]``, null elsewhere."""
    index = np.full(n, -1, dtype=np.int64)
    index[rows] = np.arange(len(rows))
    return values.take(pa.array(index, mask=index < 0))


def _per_row(fn: Any, a: pa.Array, out_type: pa.DataType) -> pa.Array:
    return pa.array([None if x is None else fn(x) for x in a.to_pylist()], type=out_type)


@kernel("size")
def size(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    a = v[0]
    if pa.types.is_map(a.type):
        return pa.array([-1 if x is None else len(x) for x in a.to_pylist()], type=pa.int32())
    # Spark's non-ANSI (legacy) rule: the size of a null array is -1
    return pc.fill_null(pc.list_value_length(a).cast(pa.int32()), -1)


def _list_agg(a: pa.Array, how: str) -> pa.Array:
    n = len(a)
    flat = pc.list_flatten(a)
    parents = pc.list_parent_indices(a)
    grouped = pa.table({"p": parents, "v": flat}).group_by("p").aggregate([("v", how)])
    return _scatter(n, grouped.column("p").to_numpy(), grouped.column(f"v_{how}").combine_chunks())


@kernel("array_min")
def array_min(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return _list_agg(as_array(v[0], n), "min")


@kernel("array_max")
def array_max(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return _list_agg(as_array(v[0], n), "max")


@kernel("sort_array", lambda a, o: f"sort_array({a[0]}, {str(o.get('asc', True)).lower()})")
def sort_array(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    a = as_array(v[0], n)
    asc = o.get("asc", True)
    flat = pc.list_flatten(a)
    parents = pc.list_parent_indices(a)
    order = pc.sort_indices(pa.table({"p": parents, "null": pc.is_null(flat), "v": flat}),
                            sort_keys=[("p", "ascending"), ("null", "descending" if asc else "ascending"),
                                       ("v", "ascending" if asc else "descending")])
    offsets = np.concatenate([[0], np.cumsum(_lengths(a))]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), flat.take(order), mask=pc.is_null(a))


@kernel("array_contains")
def array_contains(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    a = as_array(v[0], n)
    flat = pc.list_flatten(a)
    value = v[1]
    hit = pc.fill_null(pc.equal(flat, value), False).to_numpy(zero_copy_only=False)
    parents = pc.list_parent_indices(a).to_numpy()
    found = np.bincount(parents[hit], minlength=n) > 0 if len(parents) else np.zeros(n, dtype=bool)
    # no match but a null element: unknown (null), as SQL's IN
    nulls = pc.is_null(flat).to_numpy(zero_copy_only=False)
    has_null = np.bincount(parents[nulls], minlength=n) > 0 if len(parents) else np.zeros(n, dtype=bool)
    return pa.array(found, mask=pc.is_null(a).to_numpy(zero_copy_only=False) | (~found & has_null))


@kernel("array_distinct")
def array_distinct(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    a = as_array(v[0], n)
    return _per_row(lambda xs: list(dict.fromkeys(xs)), a, a.type)


@kernel("array_join", lambda a, o: f"array_join({a[0]}, {o['sep']})")
def array_join(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    a = as_array(v[0], n)
    repl = o.get("null_replacement")
    return _per_row(lambda xs: o["sep"].join(str(x) if x is not None else repl for x in xs
                                             if x is not None or repl is not None), a, pa.string())


@kernel("flatten")
def flatten(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    a = as_array(v[0], n)
    return _per_row(lambda xs: None if any(x is None for x in xs) else [e for x in xs for e in x], a,
                    a.type.value_type)


def _index(a: pa.Array, idx: np.ndarray | int) -> pa.Array:
    """Element ``idx`` (0-based, negative from the end already resolved by the caller) of each list."""
    lengths = _lengths(a)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    pos = np.broadcast_to(np.asarray(idx, dtype=np.int64), lengths.shape)
    valid = (pos >= 0) & (pos < lengths) & ~pc.is_null(a).to_numpy(zero_copy_only=False)
    flat_index = np.where(valid, starts + pos, 0)
    flat = pc.list_flatten(a)
    if len(flat) == 0:
        return pa.nulls(len(a), a.type.value_type)
    return flat.take(pa.array(flat_index, mask=~valid))


def _map_get(a: pa.Array, key: Any) -> pa.Array:
    return pa.array([None if m is None else dict(m).get(key) for m in a.to_pylist()], type=a.type.item_type)


@kernel("get_item", lambda a, o: f"{a[0]}[{o['key']}]")
def get_item(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    a = as_array(v[0], n)
    if pa.types.is_map(a.type):
        return _map_get(a, o["key"])
    if pa.types.is_struct(a.type):
        return get_field([a], {"field": o["key"]}, n, ctx)
    return _index(a, int(o["key"]))


@kernel("element_at", lambda a, o: f"element_at({a[0]}, {o['key']})")
def element_at(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    a = as_array(v[0], n)
    if pa.types.is_map(a.type):
        return _map_get(a, o["key"])
    k = int(o["key"])
    if k == 0:
        raise ValueError("[INVALID_INDEX_OF_ZERO] The index 0 is invalid. An index shall be either < 0 or > 0")
    if getattr(ctx, "ansi", False):
        lengths = _lengths(a)
        live = ~pc.is_null(a).to_numpy(zero_copy_only=False)
        short = live & (lengths < abs(k))
        if short.any():
            from chukonu.errors import SparkArrayIndexOutOfBoundsException
            raise SparkArrayIndexOutOfBoundsException(
                f"[INVALID_ARRAY_INDEX_IN_ELEMENT_AT] The index {k} is out of bounds. The array has "
                f"{int(lengths[short][0])} elements. Use `try_element_at` to tolerate accessing element at invalid "
                f"index and return NULL instead.")
    if k > 0:
        return _index(a, k - 1)
    return _index(a, _lengths(a) + k)


@kernel("get_field", lambda a, o: f"{a[0]}.{o['field']}")
def get_field(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    a = as_array(v[0], n)
    if not pa.types.is_struct(a.type):
        raise TypeError(f"cannot extract field {o['field']!r} from {a.type}")
    return pc.struct_field(a, [a.type.get_field_index(o["field"])])


@kernel("make_array", lambda a, o: f"array({', '.join(a)})")
def make_array(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    arrays = unify_types([as_array(x, n) for x in v])
    k = len(arrays)
    if k == 0:
        return pa.ListArray.from_arrays(pa.array(np.zeros(n + 1, dtype=np.int32)), pa.array([], pa.null()))
    values = pa.concat_arrays(arrays)
    order = (np.arange(n)[:, None] + np.arange(k)[None, :] * n).reshape(-1)
    offsets = np.arange(0, n * k + 1, k, dtype=np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), values.take(pa.array(order)))


@kernel("make_struct", lambda a, o: f"struct({', '.join(a)})")
def make_struct(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return pa.StructArray.from_arrays([as_array(x, n) for x in v], names=o["names"])


@kernel("map_keys")
def map_keys(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    a = as_array(v[0], n)
    return _per_row(lambda m: [k for k, _ in m], a, pa.list_(a.type.key_type))


@kernel("map_values")
def map_values(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    a = as_array(v[0], n)
    return _per_row(lambda m: [x for _, x in m], a, pa.list_(a.type.item_type))
