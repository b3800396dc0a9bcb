"""Spark's ``hash()``: Murmur3 x86_32, seed 42, with Spark's exact per-type rules.

Columns are chained (each column's hash seeds the next) and nulls leave the
hash unchanged. Ints, shorts, bytes, booleans, floats and dates are hashed
as one 4-byte word, longs, doubles and timestamps as two (low word first);
-0.0 hashes as 0.0. Strings use Spark's ``hashUnsafeBytes``, which mixes
each trailing byte (sign-extended) as a whole word, unlike reference
Murmur3: that is what makes Spark's numbers reproducible here. Numbers are
vectorised in numpy; strings and nested values run per row.
"""
from __future__ import annotations

import struct
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from chukonu.engine.expressions import as_array
from chukonu.engine.kernels import kernel

SEED = 42
_C1, _C2 = np.uint32(0xCC9E2D51), np.uint32(0x1B873593)


def _rotl(x: np.ndarray, r: int) -> np.ndarray:
    return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


def _mix_k1(k: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return _rotl(k * _C1, 15) * _C2


def _mix_h1(h: np.ndarray, k: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return _rotl(h ^ k, 13) * np.uint32(5) + np.uint32(0xE6546B64)


def _fmix(h: np.ndarray, length: int | np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        h = h ^ np.asarray(length, dtype=np.uint32)
        h ^= h >> np.uint32(16)  # type: ignore[arg-type]
        h = h * np.uint32(0x85EBCA6B)
        h ^= h >> np.uint32(13)
        h = h * np.uint32(0xC2B2AE35)
        h ^= h >> np.uint32(16)
    return h


def hash_int(words: np.ndarray, seed: np.ndarray) -> np.ndarray:
    return _fmix(_mix_h1(seed, _mix_k1(words.astype(np.uint32))), 4)


def hash_long(values: np.ndarray, seed: np.ndarray) -> np.ndarray:
    u = values.astype(np.int64).view(np.uint64)
    low = (u & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    high = (u >> np.uint64(32)).astype(np.uint32)
    h = _mix_h1(seed, _mix_k1(low))
    h = _mix_h1(h, _mix_k1(high))
    return _fmix(h, 8)


def _py_bytes(data: bytes, seed: int) -> int:
    """Spark's Murmur3_x86_32.hashUnsafeBytes of one byte string."""
    n = len(data)
    aligned = n - n % 4
    h = np.array([seed], dtype=np.uint32)
    if aligned:
        words = np.frombuffer(data[:aligned], dtype="<u4")
        for w in words:
            h = _mix_h1(h, _mix_k1(np.array([w], dtype=np.uint32)))
    for b in data[aligned:]:
        signed = b - 256 if b >= 128 else b
        h = _mix_h1(h, _mix_k1(np.array([signed & 0xFFFFFFFF], dtype=np.uint32)))
    return int(_fmix(h, n)[0])


def _py_value(x: Any, t: pa.DataType, seed: int) -> int:
    """The hash of one non-null value (nested types and strings)."""
    if x is None:
        return seed
    s = np.array([seed], dtype=np.uint32)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return _py_bytes(x.encode("utf-8"), seed)
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return _py_bytes(bytes(x), seed)
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        h = seed
        for e in x:
            h = _py_value(e, t.value_type, h)
        return h
    if pa.types.is_struct(t):
        h = seed
        for i in range(t.num_fields):
            h = _py_value(x.get(t.field(i).name), t.field(i).type, h)
        return h
    if pa.types.is_map(t):
        h = seed
        for k, e in x:
            h = _py_value(k, t.key_type, h)
            h = _py_value(e, t.item_type, h)
        return h
    arr = pa.array([x], type=t)
    return int(_column(arr, s)[0])


def _column(a: pa.Array, seeds: np.ndarray) -> np.ndarray:
    """Hashes of column ``a`` seeded per row; null rows keep their seed."""
    t = a.type
    valid = pc.is_valid(a).to_numpy(zero_copy_only=False) if a.null_count else None
    if pa.types.is_boolean(t):
        out = hash_int(pc.fill_null(a, False).to_numpy(zero_copy_only=False).astype(np.uint32), seeds)
    elif pa.types.is_integer(t) and t.bit_width <= 32 or pa.types.is_date32(t):
        x = a.cast(pa.int32()) if pa.types.is_date32(t) else a
        out = hash_int(pc.fill_null(x.cast(pa.int64()), 0).to_numpy(zero_copy_only=False).astype(np.int64)
                       .astype(np.uint32), seeds)
    elif pa.types.is_integer(t) or pa.types.is_timestamp(t):
        x = a.cast(pa.int64()) if pa.types.is_timestamp(t) else a.cast(pa.int64())
        out = hash_long(pc.fill_null(x, 0).to_numpy(zero_copy_only=False), seeds)
    elif pa.types.is_float32(t):
        f = pc.fill_null(a, 0.0).to_numpy(zero_copy_only=False).astype(np.float32)
        f = np.where(f == 0, np.float32(0.0), f)
        f = np.where(np.isnan(f), np.float32(np.nan), f)
        out = hash_int(f.view(np.uint32), seeds)
    elif pa.types.is_floating(t):
        f = pc.fill_null(a.cast(pa.float64()), 0.0).to_numpy(zero_copy_only=False).astype(np.float64)
        f = np.where(f == 0, 0.0, f)
        bits = f.view(np.int64)
        bits = np.where(np.isnan(f), np.int64(0x7FF8000000000000), bits)
        out = hash_long(bits, seeds)
    elif pa.types.is_decimal(t) and t.precision <= 18:
        unscaled = [0 if x is None else int(x.scaleb(t.scale)) for x in a.to_pylist()]
        out = hash_long(np.array(unscaled, dtype=np.int64), seeds)
    elif pa.types.is_null(t):
        return seeds
    else:
        vals = a.to_pylist()
        out = np.array([_py_value(x, t, int(s)) for x, s in zip(vals, seeds)], dtype=np.uint32)
    if valid is not None:
        out = np.where(valid, out, seeds)
    return out.astype(np.uint32)


@kernel("hash", lambda a, o: f"hash({', '.join(a)})")
def hash_(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    h = np.full(n, SEED, dtype=np.uint32)
    for x in v:
        h = _column(as_array(x, n), h)
    return pa.array(h.view(np.int32))


def spark_hash_of_bytes(data: bytes, seed: int = SEED) -> int:
    """One string's Spark hash as a signed int (for tests and partition ids)."""
    return struct.unpack("<i", struct.pack("<I", _py_bytes(data, seed)))[0]
