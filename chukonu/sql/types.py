"""Spark SQL data types, and their mapping to and from Arrow types.

Partitions are Arrow batches, so every chukonu type is a thin name for an
Arrow type; these classes exist so that code written against
``pyspark.sql.types`` (``StructType([StructField("id", LongType())])``, DDL
strings such as ``"id long, text string"``) keeps working.
"""
from __future__ import annotations

import re
from typing import Any, Iterator

import pyarrow as pa

from chukonu.errors import AnalysisException


class DataType:
    """Base of all types; equal when their simple strings are equal."""

    def simpleString(self) -> str:
        raise NotImplementedError

    def to_arrow(self) -> pa.DataType:
        raise NotImplementedError

    def typeName(self) -> str:
        return self.simpleString()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DataType) and self.simpleString() == other.simpleString()

    def __hash__(self) -> int:
        return hash(self.simpleString())

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class _Atomic(DataType):
    _name = ""
    _arrow: pa.DataType = pa.null()

    def simpleString(self) -> str:
        return self._name

    def to_arrow(self) -> pa.DataType:
        return self._arrow


class NullType(_Atomic):
    _name, _arrow = "void", pa.null()


class StringType(_Atomic):
    _name, _arrow = "string", pa.string()


class BinaryType(_Atomic):
    _name, _arrow = "binary", pa.binary()


class BooleanType(_Atomic):
    _name, _arrow = "boolean", pa.bool_()


class ByteType(_Atomic):
    _name, _arrow = "tinyint", pa.int8()


class ShortType(_Atomic):
    _name, _arrow = "smallint", pa.int16()


class IntegerType(_Atomic):
    _name, _arrow = "int", pa.int32()


class LongType(_Atomic):
    _name, _arrow = "bigint", pa.int64()


class FloatType(_Atomic):
    _name, _arrow = "float", pa.float32()


class DoubleType(_Atomic):
    _name, _arrow = "double", pa.float64()


class DateType(_Atomic):
    _name, _arrow = "date", pa.date32()


class TimestampType(_Atomic):
    _name, _arrow = "timestamp", pa.timestamp("us", tz="UTC")


class TimestampNTZType(_Atomic):
    _name, _arrow = "timestamp_ntz", pa.timestamp("us")


class DecimalType(DataType):
    def __init__(self, precision: int = 10, scale: int = 0) -> None:
        self.precision, self.scale = precision, scale

    def simpleString(self) -> str:
        return f"decimal({self.precision},{self.scale})"

    def to_arrow(self) -> pa.DataType:
        return pa.decimal128(self.precision, self.scale)

    def __repr__(self) -> str:
        return f"DecimalType({self.precision},{self.scale})"


class ArrayType(DataType):
    def __init__(self, elementType: DataType, containsNull: bool = True) -> None:
        self.elementType, self.containsNull = elementType, containsNull

    def simpleString(self) -> str:
        return f"array<{self.elementType.simpleString()}>"

    def to_arrow(self) -> pa.DataType:
        return pa.list_(self.elementType.to_arrow())

    def __repr__(self) -> str:
        return f"ArrayType({self.elementType!r}, {self.containsNull})"


class MapType(DataType):
    def __init__(self, keyType: DataType, valueType: DataType, valueContainsNull: bool = True) -> None:
        self.keyType, self.valueType, self.valueContainsNull = keyType, valueType, valueContainsNull

    def simpleString(self) -> str:
        return f"map<{self.keyType.simpleString()},{self.valueType.simpleString()}>"

    def to_arrow(self) -> pa.DataType:
        return pa.map_(self.keyType.to_arrow(), self.valueType.to_arrow())

    def __repr__(self) -> str:
        return f"MapType({self.keyType!r}, {self.valueType!r}, {self.valueContainsNull})"


class StructField(DataType):
    def __init__(self, name: str, dataType: DataType, nullable: bool = True, metadata: dict | None = None) -> None:
        self.name, self.dataType, self.nullable, self.metadata = name, dataType, nullable, metadata or {}

    def simpleString(self) -> str:
        return f"{self.name}:{self.dataType.simpleString()}"

    def to_arrow(self) -> pa.DataType:
        return self.dataType.to_arrow()

    def to_arrow_field(self) -> pa.Field:
        return pa.field(self.name, self.dataType.to_arrow(), self.nullable)

    def __repr__(self) -> str:
        return f"StructField('{self.name}', {self.dataType!r}, {self.nullable})"


class StructType(DataType):
    def __init__(self, fields: list[StructField] | None = None) -> None:
        self.fields: list[StructField] = list(fields or [])

    def add(self, field: str | StructField, data_type: DataType | str | None = None,
            nullable: bool = True) -> "StructType":
        if isinstance(field, StructField):
            self.fields.append(field)
        else:
            dt = parse_type(data_type) if isinstance(data_type, str) else data_type
            if dt is None:
                raise ValueError("StructType.add needs a data type")
            self.fields.append(StructField(field, dt, nullable))
        return self

    def fieldNames(self) -> list[str]:
        return [f.name for f in self.fields]

    @property
    def names(self) -> list[str]:
        return self.fieldNames()

    def simpleString(self) -> str:
        return "struct<" + ",".join(f.simpleString() for f in self.fields) + ">"

    def to_arrow(self) -> pa.DataType:
        return pa.struct([f.to_arrow_field() for f in self.fields])

    def to_arrow_schema(self) -> pa.Schema:
        return pa.schema([f.to_arrow_field() for f in self.fields])

    def __iter__(self) -> Iterator[StructField]:
        return iter(self.fields)

    def __len__(self) -> int:
        return len(self.fields)

    def __getitem__(self, key: int | str) -> StructField:
        if isinstance(key, int):
            return self.fields[key]
        for f in self.fields:
            if f.name == key:
                return f
        raise KeyError(f"No StructField named {key}")

    def __repr__(self) -> str:
        return "StructType([" + ", ".join(repr(f) for f in self.fields) + "])"

    def treeString(self) -> str:
        lines = ["root"]
        _tree_lines(self, 1, lines)
        return "\n".join(lines) + "\n"


def _tree_lines(dt: DataType, depth: int, lines: list[str]) -> None:
    prefix = " |   " * (depth - 1) + " |-- "
    if isinstance(dt, StructType):
        for f in dt.fields:
            lines.append(f"{prefix}{f.name}: {_tree_name(f.dataType)} (nullable = {str(f.nullable).lower()})")
            _tree_lines(f.dataType, depth + 1, lines)
    elif isinstance(dt, ArrayType):
        lines.append(f"{prefix}element: {_tree_name(dt.elementType)} (containsNull = {str(dt.containsNull).lower()})")
        _tree_lines(dt.elementType, depth + 1, lines)
    elif isinstance(dt, MapType):
        lines.append(f"{prefix}key: {_tree_name(dt.keyType)}")
        lines.append(f"{prefix}value: {_tree_name(dt.valueType)} "
                     f"(valueContainsNull = {str(dt.valueContainsNull).lower()})")


def _tree_name(dt: DataType) -> str:
    if isinstance(dt, StructType):
        return "struct"
    if isinstance(dt, ArrayType):
        return "array"
    if isinstance(dt, MapType):
        return "map"
    return {"bigint": "long", "int": "integer", "tinyint": "byte", "smallint": "short"}.get(
        dt.simpleString(), dt.simpleString())


# ----------------------------------------------------------------- Arrow -> Spark

def from_arrow(t: pa.DataType) -> DataType:
    """The Spark type of an Arrow type (large and view variants fold into the plain one)."""
    if pa.types.is_string(t) or pa.types.is_large_string(t) or getattr(pa.types, "is_string_view", lambda _: False)(t):
        return StringType()
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return BinaryType()
    simple = {pa.bool_(): BooleanType(), pa.int8(): ByteType(), pa.int16(): ShortType(), pa.int32(): IntegerType(),
              pa.int64(): LongType(), pa.uint8(): ShortType(), pa.uint16(): IntegerType(),
              pa.uint32(): LongType(), pa.uint64(): LongType(), pa.float16(): FloatType(),
              pa.float32(): FloatType(), pa.float64(): DoubleType(), pa.date32(): DateType(),
              pa.date64(): DateType(), pa.null(): NullType()}
    for at, st in simple.items():
        if t == at:
            return st
    if pa.types.is_timestamp(t):
        return TimestampType() if t.tz else TimestampNTZType()
    if pa.types.is_decimal(t):
        return DecimalType(t.precision, t.scale)
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return ArrayType(from_arrow(t.value_type))
    if pa.types.is_map(t):
        return MapType(from_arrow(t.key_type), from_arrow(t.item_type))
    if pa.types.is_struct(t):
        return StructType([StructField(t.field(i).name, from_arrow(t.field(i).type), t.field(i).nullable)
                           for i in range(t.num_fields)])
    if pa.types.is_dictionary(t):
        return from_arrow(t.value_type)
    raise AnalysisException(f"Arrow type {t} has no Spark equivalent")


def schema_from_arrow(schema: pa.Schema) -> StructType:
    return StructType([StructField(f.name, from_arrow(f.type), f.nullable) for f in schema])


# ----------------------------------------------------------------- DDL strings

_NAMES: dict[str, type[DataType]] = {
    "string": StringType, "varchar": StringType, "char": StringType, "binary": BinaryType,
    "boolean": BooleanType, "bool": BooleanType, "tinyint": ByteType, "byte": ByteType,
    "smallint": ShortType, "short": ShortType, "int": IntegerType, "integer": IntegerType,
    "bigint": LongType, "long": LongType, "float": FloatType, "real": FloatType,
    "double": DoubleType, "date": DateType, "timestamp": TimestampType,
    "timestamp_ntz": TimestampNTZType, "void": NullType, "null": NullType,
}

_TOKEN = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*|`[^`]*`|[<>(),:]|\d+)")


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[str] = []
        pos = 0
        text = text.rstrip()
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m:
                raise AnalysisException(f"cannot parse data type string {self.text!r} at {text[pos:]!r}")
            self.tokens.append(m.group(1))
            pos = m.end()
        self.i = 0

    def peek(self) -> str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, expect: str | None = None) -> str:
        tok = self.peek()
        if tok is None or (expect is not None and tok.lower() != expect):
            raise AnalysisException(f"cannot parse data type string {self.text!r}: expected {expect or 'more'}")
        self.i += 1
        return tok

    def data_type(self) -> DataType:
        name = self.take().lower()
        if name == "array":
            self.take("<")
            elem = self.data_type()
            self.take(">")
            return ArrayType(elem)
        if name == "map":
            self.take("<")
            k = self.data_type()
            self.take(",")
            v = self.data_type()
            self.take(">")
            return MapType(k, v)
        if name == "struct":
            self.take("<")
            fields = []
            while self.peek() != ">":
                fields.append(self.field())
                if self.peek() == ",":
                    self.take(",")
            self.take(">")
            return StructType(fields)
        if name in ("decimal", "dec", "numeric"):
            if self.peek() == "(":
                self.take("(")
                p = int(self.take())
                s = 0
                if self.peek() == ",":
                    self.take(",")
                    s = int(self.take())
                self.take(")")
                return DecimalType(p, s)
            return DecimalType()
        if name in ("varchar", "char") and self.peek() == "(":
            self.take("(")
            self.take()
            self.take(")")
        try:
            return _NAMES[name]()
        except KeyError:
            raise AnalysisException(f"unknown data type {name!r} in {self.text!r}") from None

    def field(self) -> StructField:
        name = self.take().strip("`")
        if self.peek() == ":":
            self.take(":")
        return StructField(name, self.data_type())


def parse_type(text: str) -> DataType:
    """``"bigint"``, ``"array<string>"`` -> a DataType."""
    p = _Parser(text)
    dt = p.data_type()
    if p.peek() is not None:
        raise AnalysisException(f"cannot parse data type string {text!r}")
    return dt


def parse_schema(text: str) -> StructType:
    """``"id long, text string"`` or ``"id: long, text: string"`` -> a StructType."""
    p = _Parser(text)
    first = p.peek()
    if first is not None and first.lower() == "struct" and len(p.tokens) > 1 and p.tokens[1] == "<":
        dt = p.data_type()
        assert isinstance(dt, StructType)
        return dt
    fields = []
    while p.peek() is not None:
        fields.append(p.field())
        if p.peek() == ",":
            p.take(",")
    return StructType(fields)


def to_data_type(t: Any) -> DataType:
    """A DataType from a DataType, a DDL string or an Arrow type."""
    if isinstance(t, DataType):
        return t
    if isinstance(t, str):
        return parse_type(t) if "," not in t and ":" not in t else parse_schema(t)
    if isinstance(t, pa.DataType):
        return from_arrow(t)
    raise TypeError(f"not a data type: {t!r}")


def arrow_type(t: Any) -> pa.DataType:
    """The Arrow type for a DataType, a DDL string or an Arrow type."""
    if isinstance(t, pa.DataType):
        return t
    return to_data_type(t).to_arrow()


def arrow_schema(schema: Any) -> pa.Schema:
    """An Arrow schema from a StructType, a DDL string or an Arrow schema."""
    if isinstance(schema, pa.Schema):
        return schema
    if isinstance(schema, str):
        schema = parse_schema(schema)
    if isinstance(schema, StructType):
        return schema.to_arrow_schema()
    raise TypeError(f"not a schema: {schema!r}")


__all__ = [
    "ArrayType", "BinaryType", "BooleanType", "ByteType", "DataType", "DateType", "DecimalType", "DoubleType",
    "FloatType", "IntegerType", "LongType", "MapType", "NullType", "ShortType", "StringType", "StructField",
    "StructType", "TimestampNTZType", "TimestampType",
]
