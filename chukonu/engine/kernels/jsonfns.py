"""JSON kernels: get_json_object, from_json, to_json, schema_of_json, json_array_length, json_object_keys.

Output follows Spark (Jackson): nested values are printed compactly
(``{"a":1}``), a string value comes out without quotes, ``to_json`` leaves
out null struct fields, and text that is not valid JSON gives null.
``from_json`` converts the parsed value to the declared type; a field of
the wrong type is null (Spark's PERMISSIVE mode).
"""
from __future__ import annotations

import json
import re
from typing import Any

import pyarrow as pa

from chukonu.engine.expressions import as_array
from chukonu.engine.kernels import kernel
from chukonu.engine.kernels.fallback import per_row, string_array

_STEP = re.compile(r"\.([^.\[]+)|\['([^']*)'\]|\[(\d+|\*)\]")


def _path(path: str) -> list[Any] | None:
    if not path.startswith("$"):
        return None
    steps: list[Any] = []
    pos = 1
    while pos < len(path):
        m = _STEP.match(path, pos)
        if m is None:
            return None
        if m.group(1) is not None:
            steps.append(m.group(1))
        elif m.group(2) is not None:
            steps.append(m.group(2))
        else:
            steps.append("*" if m.group(3) == "*" else int(m.group(3)))
        pos = m.end()
    return steps


def _dump(x: Any) -> str:
    if isinstance(x, str):
        return x
    return json.dumps(x, separators=(",", ":"), ensure_ascii=False)


def _walk(x: Any, steps: list[Any]) -> Any:
    for i, s in enumerate(steps):
        if s == "*":
            if not isinstance(x, list):
                return None
            got = [_walk(e, steps[i + 1:]) for e in x]
            got = [g for g in got if g is not None]
            return got if len(got) != 1 else got[0]
        if isinstance(s, int):
            if not isinstance(x, list) or s >= len(x):
                return None
            x = x[s]
        else:
            if not isinstance(x, dict) or s not in x:
                return None
            x = x[s]
    return x


@kernel("get_json_object", lambda a, o: f"get_json_object({a[0]}, {o['path']})")
def get_json_object(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    steps = _path(o["path"])

    def one(s: str) -> str | None:
        if steps is None:
            return None
        try:
            x = json.loads(s)
        except ValueError:
            return None
        got = _walk(x, steps)
        return None if got is None else _dump(got)
    return per_row(one, [string_array(v[0], n)], pa.string())


@kernel("json_array_length")
def json_array_length(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    def one(s: str) -> int | None:
        try:
            x = json.loads(s)
        except ValueError:
            return None
        return len(x) if isinstance(x, list) else None
    return per_row(one, [string_array(v[0], n)], pa.int32())


@kernel("json_object_keys")
def json_object_keys(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    def one(s: str) -> list | None:
        try:
            x = json.loads(s)
        except ValueError:
            return None
        return list(x) if isinstance(x, dict) else None
    return per_row(one, [string_array(v[0], n)], pa.list_(pa.string()))


def _conform(x: Any, t: pa.DataType) -> Any:
    """A parsed JSON value as a value of Arrow type ``t`` (None where it does not fit)."""
    if x is None:
        return None
    if pa.types.is_struct(t):
        if not isinstance(x, dict):
            return None
        return {t.field(i).name: _conform(x.get(t.field(i).name), t.field(i).type) for i in range(t.num_fields)}
    if pa.types.is_list(t):
        return [_conform(e, t.value_type) for e in x] if isinstance(x, list) else None
    if pa.types.is_map(t):
        return [(k, _conform(e, t.item_type)) for k, e in x.items()] if isinstance(x, dict) else None
    if pa.types.is_string(t):
        return x if isinstance(x, str) else _dump(x)
    if pa.types.is_boolean(t):
        return x if isinstance(x, bool) else None
    if pa.types.is_integer(t):
        if isinstance(x, bool) or not isinstance(x, int):
            return None
        bits = t.bit_width
        return x if -(1 << (bits - 1)) <= x < (1 << (bits - 1)) else None
    if pa.types.is_floating(t):
        return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None
    if pa.types.is_date(t) or pa.types.is_timestamp(t):
        from chukonu.engine.kernels.datetime_fmt import parse_dates, parse_timestamp_strings
        if not isinstance(x, str):
            return None
        parsed = (parse_dates if pa.types.is_date(t) else parse_timestamp_strings)(pa.array([x]))
        return parsed[0].as_py()
    return x


@kernel("from_json", lambda a, o: f"from_json({a[0]})")
def from_json(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    t: pa.DataType = o["type"]

    def one(s: str) -> Any:
        try:
            x = json.loads(s)
        except ValueError:
            return _malformed(t)
        if pa.types.is_struct(t) and isinstance(x, list):
            x = x[0] if len(x) == 1 else None
        got = _conform(x, t)
        return got if got is not None or not pa.types.is_struct(t) else _malformed(t)
    return per_row(one, [string_array(v[0], n)], t)


def _malformed(t: pa.DataType) -> Any:
    """PERMISSIVE mode: a struct of nulls for a record that does not parse; null for other types."""
    if pa.types.is_struct(t):
        return {t.field(i).name: None for i in range(t.num_fields)}
    return None


def _to_jsonable(x: Any, t: pa.DataType) -> Any:
    if x is None:
        return None
    if pa.types.is_struct(t):
        out = {}
        for i in range(t.num_fields):
            f = t.field(i)
            val = _to_jsonable(x.get(f.name), f.type)
            if val is not None:
                out[f.name] = val
        return out
    if pa.types.is_map(t):
        return {str(k): _to_jsonable(e, t.item_type) for k, e in x}
    if pa.types.is_list(t):
        return [_to_jsonable(e, t.value_type) for e in x]
    if pa.types.is_date(t):
        return x.isoformat()
    if pa.types.is_timestamp(t):
        return x.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return x


@kernel("to_json", lambda a, o: f"to_json({a[0]})")
def to_json(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    a = as_array(v[0], n)
    t = a.type
    return per_row(lambda x: json.dumps(_to_jsonable(x, t), separators=(",", ":"), ensure_ascii=False), [a],
                   pa.string())


def json_type_of(x: Any) -> str:
    """The Spark type schema_of_json infers for a JSON value."""
    if isinstance(x, bool):
        return "BOOLEAN"
    if isinstance(x, int):
        return "BIGINT"
    if isinstance(x, float):
        return "DOUBLE"
    if isinstance(x, str) or x is None:
        return "STRING"
    if isinstance(x, list):
        inner = sorted({json_type_of(e) for e in x if e is not None})
        return f"ARRAY<{inner[0] if len(inner) == 1 else 'STRING'}>"
    fields = ", ".join(f"{k}: {json_type_of(x[k])}" for k in sorted(x))
    return f"STRUCT<{fields}>"


@kernel("schema_of_json", lambda a, o: f"schema_of_json({a[0]})")
def schema_of_json(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return per_row(lambda s: json_type_of(json.loads(s)), [string_array(v[0], n)], pa.string())
