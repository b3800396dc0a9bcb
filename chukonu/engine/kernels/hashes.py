"""Hash kernels with Spark's exact results: sha1, sha2, md5, crc32 and xxhash64.

``xxhash64`` reproduces Spark's ``XxHash64`` expression bit for bit: seed
42, columns chained (each column's hash is the next one's seed), nulls
skipped, ints and floats hashed as 4 bytes, longs and doubles as 8, strings
as their UTF-8 bytes, arrays and structs element by element. Spark's
``hashInt``/``hashLong`` are XXH64 over the little-endian bytes, so the
xxhash package gives the same numbers.
"""
from __future__ import annotations

import hashlib
import struct
import zlib
from typing import Any

import pyarrow as pa
import xxhash

from chukonu.engine.expressions import as_array
from chukonu.engine.kernels import kernel

SPARK_SEED = 42


def _digest(v: list[Any], n: int, fn: Any) -> pa.Array:
    a = as_array(v[0], n)
    out: list[str | None] = []
    for x in a.to_pylist():
        if x is None:
            out.append(None)
        else:
            out.append(fn(x.encode("utf-8") if isinstance(x, str) else bytes(x)))
    return pa.array(out, type=pa.string())


@kernel("sha1")
def sha1(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return _digest(v, n, lambda b: hashlib.sha1(b).hexdigest())


@kernel("md5")
def md5(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return _digest(v, n, lambda b: hashlib.md5(b).hexdigest())


@kernel("sha2", lambda a, o: f"sha2({a[0]}, {o['bits']})")
def sha2(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    bits = o["bits"] or 256
    if bits not in (224, 256, 384, 512):
        return pa.nulls(n, pa.string())
    return _digest(v, n, lambda b: hashlib.new(f"sha{bits}", b).hexdigest())


@kernel("crc32")
def crc32(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    a = as_array(v[0], n)
    return pa.array([None if x is None else zlib.crc32(x.encode() if isinstance(x, str) else bytes(x))
                     for x in a.to_pylist()], type=pa.int64())


def _signed(h: int) -> int:
    return h - (1 << 64) if h >= 1 << 63 else h


def _xx(value: Any, t: pa.DataType, seed: int) -> int:
    """Spark's XxHash64 of one non-null value of Arrow type ``t``, as an unsigned 64-bit int."""
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return xxhash.xxh64_intdigest(value.encode("utf-8"), seed)
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return xxhash.xxh64_intdigest(bytes(value), seed)
    if pa.types.is_boolean(t):
        return xxhash.xxh64_intdigest(struct.pack("<i", 1 if value else 0), seed)
    if pa.types.is_int8(t) or pa.types.is_int16(t) or pa.types.is_int32(t):
        return xxhash.xxh64_intdigest(struct.pack("<i", value), seed)
    if pa.types.is_integer(t):
        return xxhash.xxh64_intdigest(struct.pack("<q", value), seed)
    if pa.types.is_float32(t):
        return xxhash.xxh64_intdigest(struct.pack("<f", 0.0 if value == 0 else value), seed)
    if pa.types.is_floating(t):
        return xxhash.xxh64_intdigest(struct.pack("<d", 0.0 if value == 0 else value), seed)
    if pa.types.is_date32(t):
        import datetime
        days = (value - datetime.date(1970, 1, 1)).days
        return xxhash.xxh64_intdigest(struct.pack("<i", days), seed)
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        h = seed
        for e in value:
            if e is not None:
                h = _xx(e, t.value_type, h)
        return h
    if pa.types.is_struct(t):
        h = seed
        for i in range(t.num_fields):
            e = value.get(t.field(i).name) if isinstance(value, dict) else value[i]
            if e is not None:
                h = _xx(e, t.field(i).type, h)
        return h
    raise TypeError(f"xxhash64 of {t} is not supported by chukonu")


@kernel("xxhash64")
def xxhash64(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    arrays = [as_array(x, n) for x in v]
    hashes = [SPARK_SEED] * n
    for a in arrays:
        t = a.type
        for i, x in enumerate(a.to_pylist()):
            if x is not None:
                hashes[i] = _xx(x, t, hashes[i])
    return pa.array([_signed(h) for h in hashes], type=pa.int64())
