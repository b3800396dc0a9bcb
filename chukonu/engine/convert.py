"""Moving values between Python objects and Arrow, with PySpark's conventions.

Structs come back as ``Row``, maps as ``dict``; when a schema is inferred
from Python objects, ints are longs, floats doubles, dicts maps and Rows or
tuples structs, as ``spark.createDataFrame`` infers them. Values a UDF
returns are coerced to its declared type as PySpark does (anything becomes a
string for a string UDF; a wrong type for a number is null).
"""
from __future__ import annotations

import datetime
import decimal
from typing import Any, Sequence

import pyarrow as pa

from chukonu.errors import AnalysisException
from chukonu.row import Row


# ------------------------------------------------------------- Arrow -> Python

def _fix(value: Any, t: pa.DataType) -> Any:
    if value is None:
        return None
    if pa.types.is_struct(t):
        names = [t.field(i).name for i in range(t.num_fields)]
        return Row._make(names, [_fix(value[n], t.field(i).type) for i, n in enumerate(names)])
    if pa.types.is_map(t):
        return {_fix(k, t.key_type): _fix(v, t.item_type) for k, v in value}
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        if _needs_fix(t.value_type):
            return [_fix(v, t.value_type) for v in value]
        return value
    if pa.types.is_timestamp(t) and t.tz is not None and isinstance(value, datetime.datetime):
        # Spark hands out naive datetimes in the session's local time
        return value.astimezone().replace(tzinfo=None)
    return value


def _needs_fix(t: pa.DataType) -> bool:
    if pa.types.is_struct(t) or pa.types.is_map(t):
        return True
    if pa.types.is_timestamp(t) and t.tz is not None:
        return True
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return _needs_fix(t.value_type)
    return False


def arrow_to_python(a: pa.Array | pa.ChunkedArray) -> list[Any]:
    values = a.to_pylist()
    if _needs_fix(a.type):
        return [_fix(v, a.type) for v in values]
    return values


def table_to_rows(table: pa.Table | pa.RecordBatch) -> list[Row]:
    names = tuple(table.schema.names)
    cols = [arrow_to_python(table.column(i)) for i in range(table.num_columns)]
    return [Row._make(names, vals) for vals in zip(*cols)] if cols else [Row._make((), ()) for _ in
                                                                         range(table.num_rows)]


# ------------------------------------------------------------- Python -> Arrow

def _prepare(value: Any, t: pa.DataType) -> Any:
    """A Python value in the shape pa.array wants for type ``t``."""
    if value is None:
        return None
    if pa.types.is_struct(t):
        if isinstance(value, Row) and value.__fields__:
            value = value.asDict()
        if isinstance(value, dict):
            return {t.field(i).name: _prepare(value.get(t.field(i).name), t.field(i).type)
                    for i in range(t.num_fields)}
        if isinstance(value, (tuple, list)):
            return {t.field(i).name: _prepare(v, t.field(i).type) for i, v in enumerate(value)}
        return value
    if pa.types.is_map(t):
        return [(_prepare(k, t.key_type), _prepare(v, t.item_type)) for k, v in dict(value).items()]
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return [_prepare(v, t.value_type) for v in value]
    return value


def _coerce(value: Any, t: pa.DataType) -> Any:
    """PySpark's leniency for a value of the wrong type: strings accept anything, numbers not."""
    if value is None:
        return None
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        if isinstance(value, bool):
            return str(value).lower()
        return value if isinstance(value, str) else str(value)
    if pa.types.is_integer(t):
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    if pa.types.is_floating(t):
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if pa.types.is_boolean(t):
        return value if isinstance(value, bool) else None
    return _prepare(value, t)


def python_to_arrow(values: Sequence[Any], t: pa.DataType) -> pa.Array:
    if _needs_prepare(t):
        values = [_prepare(v, t) for v in values]
    try:
        return pa.array(values, type=t)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
        return pa.array([_coerce(v, t) for v in values], type=t)


def _needs_prepare(t: pa.DataType) -> bool:
    return pa.types.is_struct(t) or pa.types.is_map(t) or (
        (pa.types.is_list(t) or pa.types.is_large_list(t)) and _needs_prepare(t.value_type))


# ---------------------------------------------------------- schema inference

def infer_type(value: Any) -> pa.DataType | None:
    """The Arrow type spark.createDataFrame would infer for ``value`` (None: unknown)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return pa.bool_()
    if isinstance(value, int):
        return pa.int64()
    if isinstance(value, float):
        return pa.float64()
    if isinstance(value, str):
        return pa.string()
    if isinstance(value, (bytes, bytearray)):
        return pa.binary()
    if isinstance(value, decimal.Decimal):
        return pa.decimal128(38, 18)
    if isinstance(value, datetime.datetime):
        return pa.timestamp("us", tz="UTC") if value.tzinfo else pa.timestamp("us")
    if isinstance(value, datetime.date):
        return pa.date32()
    if isinstance(value, Row) and value.__fields__:
        return pa.struct([pa.field(k, infer_type(v) or pa.null()) for k, v in zip(value.__fields__, value)])
    if isinstance(value, dict):
        kt = merge_types(infer_type(k) for k in value)
        vt = merge_types(infer_type(v) for v in value.values())
        return pa.map_(kt or pa.null(), vt or pa.null())
    if isinstance(value, (list, tuple)):
        return pa.list_(merge_types(infer_type(v) for v in value) or pa.null())
    raise TypeError(f"[CANNOT_INFER_TYPE_FOR_FIELD] cannot infer a type for {type(value).__name__} {value!r}")


def merge_types(types: Any) -> pa.DataType | None:
    out: pa.DataType | None = None
    for t in types:
        if t is None or pa.types.is_null(t):
            continue
        if out is None or pa.types.is_null(out):
            out = t
        elif out != t:
            out = _merge_two(out, t)
    return out


def _merge_two(a: pa.DataType, b: pa.DataType) -> pa.DataType:
    if pa.types.is_integer(a) and pa.types.is_floating(b) or pa.types.is_floating(a) and pa.types.is_integer(b):
        return pa.float64()
    if pa.types.is_list(a) and pa.types.is_list(b):
        return pa.list_(merge_types([a.value_type, b.value_type]) or pa.null())
    if pa.types.is_map(a) and pa.types.is_map(b):
        return pa.map_(merge_types([a.key_type, b.key_type]) or pa.null(),
                       merge_types([a.item_type, b.item_type]) or pa.null())
    if pa.types.is_struct(a) and pa.types.is_struct(b):
        fields: dict[str, pa.DataType | None] = {}
        for s in (a, b):
            for i in range(s.num_fields):
                f = s.field(i)
                fields[f.name] = merge_types([fields.get(f.name), f.type])
        return pa.struct([pa.field(k, v or pa.null()) for k, v in fields.items()])
    raise TypeError(f"[CANNOT_MERGE_TYPE] can not merge type {a} and {b}")


def rows_to_table(rows: Sequence[Any], names: list[str] | None, schema: pa.Schema | None) -> pa.Table:
    """A table from Rows, tuples, dicts or scalars, inferring types unless ``schema`` is given."""
    rows = list(rows)
    if schema is not None:
        names = list(schema.names)
    records: list[Sequence[Any]] = []
    for r in rows:
        if isinstance(r, Row) and r.__fields__:
            if names is None:
                names = list(r.__fields__)
            records.append(tuple(r.asDict().get(n) for n in names) if set(names) <= set(r.__fields__) and
                           list(r.__fields__) != names else tuple(r))
        elif isinstance(r, dict):
            if names is None:
                names = list(r)
            records.append(tuple(r.get(n) for n in names))
        elif isinstance(r, (tuple, list)):
            records.append(tuple(r))
        else:
            records.append((r,))
    width = len(records[0]) if records else len(names or [])
    if names is None:
        names = [f"_{i + 1}" for i in range(width)]
    for r in records:
        if len(r) != len(names):
            raise AnalysisException(f"[LENGTH_SHOULD_BE_THE_SAME] a row has {len(r)} fields but the schema "
                                    f"has {len(names)}: {r!r}")
    columns = list(zip(*records)) if records else [() for _ in names]
    arrays = []
    for i, name in enumerate(names):
        if schema is not None:
            t = schema.field(i).type
            try:
                arrays.append(pa.array([_prepare(v, t) for v in columns[i]], type=t))
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError) as e:
                raise TypeError(f"[FIELD_DATA_TYPE_UNACCEPTABLE] field {name}: {schema.field(i).type} can not "
                                f"accept the values given: {e}") from None
            continue
        t = merge_types(infer_type(v) for v in columns[i])
        if t is None:
            raise AnalysisException(f"[CANNOT_DETERMINE_TYPE] Some of types cannot be determined after "
                                    f"inferring: column {name!r} has only None values")
        arrays.append(pa.array([_prepare(v, t) for v in columns[i]], type=t))
    return pa.Table.from_arrays(arrays, names=names)
