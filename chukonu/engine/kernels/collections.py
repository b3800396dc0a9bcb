"""More array kernels (positions, set operations, slicing, sequences) and map kernels.

Set operations keep Spark's order (first occurrence, left array first) and
treat null as a value that matches null. Maps are Arrow map arrays; a map
built with a duplicate key fails as Spark's default
(``spark.sql.mapKeyDedupPolicy=EXCEPTION``) does, and a null key is an error.
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from chukonu.engine.expressions import as_array, common_type, unify_types
from chukonu.engine.kernels import kernel
from chukonu.engine.kernels.arrays import _index, _lengths
from chukonu.engine.kernels.fallback import per_row, scalar_value, string_array


def _list_of(a: pa.Array, n: int) -> pa.Array:
    return as_array(a, n)


def _elem_value(v: Any) -> Any:
    return v.as_py() if isinstance(v, pa.Scalar) else v


@kernel("array_position", lambda a, o: f"array_position({a[0]}, {a[1]})")
def array_position(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    a = _list_of(v[0], n)
    vals = as_array(v[1], n).to_pylist()

    def one(xs: list, x: Any) -> int:
        for i, e in enumerate(xs):
            if e == x and e is not None:
                return i + 1
        return 0
    return per_row(one, [a, pa.array(vals)], pa.int64())


@kernel("array_remove", lambda a, o: f"array_remove({a[0]}, {a[1]})")
def array_remove(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    a = _list_of(v[0], n)
    vals = as_array(v[1], n)
    return per_row(lambda xs, x: [e for e in xs if e is None or e != x], [a, vals], a.type)


def _dedup(xs: list) -> list:
    out: list = []
    seen: set = set()
    null_seen = False
    for e in xs:
        if e is None:
            if not null_seen:
                out.append(None)
                null_seen = True
            continue
        k = json.dumps(e, sort_keys=True, default=str) if isinstance(e, (list, dict)) else e
        if k not in seen:
            seen.add(k)
            out.append(e)
    return out


def _pair(v: list[Any], n: int) -> tuple[pa.Array, pa.Array, pa.DataType]:
    a, b = _list_of(v[0], n), _list_of(v[1], n)
    if a.type != b.type:
        a, b = unify_types([a, b])
    t = a.type if not pa.types.is_null(a.type) else b.type
    return a, b, t


@kernel("array_union")
def array_union(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    a, b, t = _pair(v, n)
    return per_row(lambda x, y: _dedup(x + y), [a, b], t)


@kernel("array_intersect")
def array_intersect(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    a, b, t = _pair(v, n)
    return per_row(lambda x, y: _dedup([e for e in x if e in y]), [a, b], t)


@kernel("array_except")
def array_except(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    a, b, t = _pair(v, n)
    return per_row(lambda x, y: _dedup([e for e in x if e not in y]), [a, b], t)


@kernel("arrays_overlap")
def arrays_overlap(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    a, b, _ = _pair(v, n)

    def one(x: list, y: list) -> bool | None:
        xs = {e for e in x if e is not None}
        if any(e in xs for e in y if e is not None):
            return True
        if x and y and (None in x or None in y):
            return None
        return False
    return per_row(one, [a, b], pa.bool_())


@kernel("arrays_zip", lambda a, o: f"arrays_zip({', '.join(a)})")
def arrays_zip(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    arrays = [_list_of(x, n) for x in v]
    names = o["names"]
    t = pa.list_(pa.struct([pa.field(nm, a.type.value_type) for nm, a in zip(names, arrays)]))

    def one(*xs: list) -> list:
        k = max(len(x) for x in xs)
        return [{nm: (x[i] if i < len(x) else None) for nm, x in zip(names, xs)} for i in range(k)]
    return per_row(one, arrays, t)


@kernel("array_repeat", lambda a, o: f"array_repeat({a[0]}, {a[1]})")
def array_repeat(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    x = as_array(v[0], n)
    k = as_array(v[1], n).cast(pa.int64())
    return per_row(lambda e, c: [e] * max(0, c), [x, k], pa.list_(x.type), nulls_in=False) if x.null_count == 0 \
        else pa.array([None if c is None else [e] * max(0, c) for e, c in zip(x.to_pylist(), k.to_pylist())],
                      pa.list_(x.type))


@kernel("sequence", lambda a, o: f"sequence({', '.join(a)})")
def sequence(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    start, stop = as_array(v[0], n), as_array(v[1], n)
    if pa.types.is_date(start.type):
        import datetime as dt
        step = as_array(v[2], n).cast(pa.int64()) if len(v) > 2 else pa.array([1] * n, pa.int64())
        return per_row(lambda s, e, k: [s + dt.timedelta(days=i) for i in range(0, (e - s).days + (1 if k > 0 else -1),
                                                                              k)], [start, stop, step],
                       pa.list_(pa.date32()))
    t = common_type([start.type, stop.type])
    step = as_array(v[2], n).cast(t) if len(v) > 2 else None

    def one(s: int, e: int, k: int | None = None) -> list:
        k = k if k is not None else (1 if e >= s else -1)
        if k == 0 or (e - s) * k < 0:
            raise ValueError(f"[ILLEGAL_SEQUENCE_BOUNDARIES] sequence({s}, {e}, {k}) is illegal")
        return list(range(s, e + (1 if k > 0 else -1), k))
    arrays = [start.cast(t), stop.cast(t)] + ([step] if step is not None else [])
    return per_row(one, arrays, pa.list_(t))


@kernel("slice", lambda a, o: f"slice({a[0]}, {a[1]}, {a[2]})")
def slice_(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    a = _list_of(v[0], n)

    def one(xs: list, s: int, k: int) -> list:
        if s == 0:
            raise ValueError("[INVALID_PARAMETER_VALUE.START] slice start must not be 0")
        if k < 0:
            raise ValueError("[INVALID_PARAMETER_VALUE.LENGTH] slice length must be >= 0")
        i = s - 1 if s > 0 else len(xs) + s
        return xs[max(i, 0):max(i, 0) + k] if i >= 0 or i + k > 0 else []
    return per_row(one, [a, as_array(v[1], n).cast(pa.int64()), as_array(v[2], n).cast(pa.int64())], a.type)


@kernel("array_append", lambda a, o: f"array_append({a[0]}, {a[1]})")
def array_append(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    a = _list_of(v[0], n)
    x = as_array(v[1], n)
    return pa.array([None if xs is None else xs + [e] for xs, e in zip(a.to_pylist(), x.to_pylist())], a.type)


@kernel("array_prepend", lambda a, o: f"array_prepend({a[0]}, {a[1]})")
def array_prepend(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    a = _list_of(v[0], n)
    x = as_array(v[1], n)
    return pa.array([None if xs is None else [e] + xs for xs, e in zip(a.to_pylist(), x.to_pylist())], a.type)


@kernel("array_insert", lambda a, o: f"array_insert({a[0]}, {a[1]}, {a[2]})")
def array_insert(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    a = _list_of(v[0], n)
    pos = as_array(v[1], n).cast(pa.int64()).to_pylist()
    x = as_array(v[2], n).to_pylist()
    out: list = []
    for xs, p, e in zip(a.to_pylist(), pos, x):
        if xs is None or p is None:
            out.append(None)
        elif p > 0:
            out.append(xs[:p - 1] + [None] * max(0, p - 1 - len(xs)) + [e] + xs[p - 1:])
        elif p < 0:
            i = len(xs) + p + 1
            out.append(xs[:i] + [e] + xs[i:] if i >= 0 else [e] + [None] * (-i) + xs)
        else:
            raise ValueError("[INVALID_INDEX_OF_ZERO] array_insert position 0 is invalid")
    return pa.array(out, a.type)


@kernel("array_compact")
def array_compact(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    a = _list_of(v[0], n)
    return per_row(lambda xs: [e for e in xs if e is not None], [a], a.type)


@kernel("array_size")
def array_size(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return pc.list_value_length(_list_of(v[0], n)).cast(pa.int32())


@kernel("get", lambda a, o: f"get({a[0]}, {a[1]})")
def get(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    a = _list_of(v[0], n)
    idx = as_array(v[1], n).cast(pa.int64()).fill_null(-1).to_numpy(zero_copy_only=False)
    return _index(a, idx)


@kernel("try_element_at", lambda a, o: f"try_element_at({a[0]}, {a[1]})")
def try_element_at(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    a = _list_of(v[0], n)
    if pa.types.is_map(a.type):
        return map_get(a, as_array(v[1], n))
    k = as_array(v[1], n).cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
    lengths = _lengths(a)
    idx = np.where(k > 0, k - 1, np.where(k < 0, lengths + k, -1))
    return _index(a, idx)


@kernel("array_sort")
def array_sort(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    a = _list_of(v[0], n)
    return per_row(lambda xs: sorted(e for e in xs if e is not None) + [None] * sum(e is None for e in xs), [a],
                   a.type)


@kernel("shuffle")
def shuffle(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    a = _list_of(v[0], n)
    rng = np.random.default_rng([o["seed"], ctx.partition_index, ctx.row_offset])
    return per_row(lambda xs: [xs[i] for i in rng.permutation(len(xs))], [a], a.type)


# ---------------------------------------------------------------------- maps

def _check_keys(keys: list) -> None:
    if any(k is None for k in keys):
        raise ValueError("[NULL_MAP_KEY] Cannot use null as map key.")
    if len(set(map(repr, keys))) != len(keys):
        dup = next(k for i, k in enumerate(keys) if k in keys[:i])
        raise ValueError(f"[DUPLICATED_MAP_KEY] Duplicate map key {dup} was found")


def _map_array(rows: list, kt: pa.DataType, vt: pa.DataType) -> pa.Array:
    out: list = []
    for r in rows:
        if r is None:
            out.append(None)
            continue
        _check_keys([k for k, _ in r])
        out.append(r)
    return pa.array(out, type=pa.map_(kt if not pa.types.is_null(kt) else pa.string(), vt))


@kernel("create_map", lambda a, o: f"map({', '.join(a)})")
def create_map(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    arrays = [as_array(x, n) for x in v]
    keys = unify_types(arrays[0::2]) if arrays else []
    vals = unify_types(arrays[1::2]) if arrays else []
    kt = keys[0].type if keys else pa.string()
    vt = vals[0].type if vals else pa.string()
    kcols = [k.to_pylist() for k in keys]
    vcols = [x.to_pylist() for x in vals]
    rows = [[(kc[i], vc[i]) for kc, vc in zip(kcols, vcols)] for i in range(n)]
    return _map_array(rows, kt, vt)


@kernel("map_from_arrays")
def map_from_arrays(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    ks, vs = _list_of(v[0], n), _list_of(v[1], n)
    rows = [None if k is None or x is None else list(zip(k, x)) for k, x in zip(ks.to_pylist(), vs.to_pylist())]
    return _map_array(rows, ks.type.value_type, vs.type.value_type)


@kernel("map_from_entries")
def map_from_entries(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    a = _list_of(v[0], n)
    st = a.type.value_type
    rows = [None if xs is None else [tuple(e.values()) for e in xs] for xs in a.to_pylist()]
    return _map_array(rows, st.field(0).type, st.field(1).type)


@kernel("map_entries")
def map_entries(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    a = _list_of(v[0], n)
    t = pa.list_(pa.struct([pa.field("key", a.type.key_type, nullable=False), pa.field("value", a.type.item_type)]))
    return per_row(lambda m: [{"key": k, "value": x} for k, x in m], [a], t)


@kernel("map_concat")
def map_concat(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    arrays = [_list_of(x, n) for x in v]
    t = arrays[0].type
    rows = []
    for ms in zip(*[a.to_pylist() for a in arrays]):
        rows.append(None if any(m is None for m in ms) else [kv for m in ms for kv in m])
    return _map_array(rows, t.key_type, t.item_type)


def map_get(a: pa.Array, keys: pa.Array) -> pa.Array:
    return pa.array([None if m is None or k is None else dict(m).get(k) for m, k in zip(a.to_pylist(),
                                                                                        keys.to_pylist())],
                    type=a.type.item_type)


@kernel("map_contains_key", lambda a, o: f"map_contains_key({a[0]}, {a[1]})")
def map_contains_key(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    a = _list_of(v[0], n)
    k = as_array(v[1], n)
    return pa.array([None if m is None else any(x == key for x, _ in m) for m, key in zip(a.to_pylist(),
                                                                                       k.to_pylist())], pa.bool_())


@kernel("str_to_map")
def str_to_map(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    pair = scalar_value(v[1]) if len(v) > 1 else ","
    kv = scalar_value(v[2]) if len(v) > 2 else ":"
    import re

    def one(s: str) -> list:
        out = []
        for item in re.split(pair, s):
            parts = re.split(kv, item, maxsplit=1)
            out.append((parts[0], parts[1] if len(parts) > 1 else None))
        return out
    rows = [None if s is None else one(s) for s in string_array(v[0], n).to_pylist()]
    return _map_array(rows, pa.string(), pa.string())


@kernel("map_get", lambda a, o: f"{a[0]}[{a[1]}]")
def map_get_kernel(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return map_get(_list_of(v[0], n), as_array(v[1], n))


@kernel("named_struct", lambda a, o: f"named_struct({', '.join(a)})")
def named_struct(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return pa.StructArray.from_arrays([as_array(x, n) for x in v], names=o["names"])


def _scalar_or_none(x: Any) -> Any:
    return _elem_value(x)
