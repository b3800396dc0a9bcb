"""Deterministic row hashes for hash partitioning, of Arrow columns and of Python keys.

A shuffle must send equal keys to the same partition from every task and
every process, so nothing here uses Python's per-process salted ``hash``:
numbers are mixed with splitmix64, strings hashed with XXH64 straight from
their Arrow buffers, and several key columns combined in order. Integer
keys of different widths hash alike (both sides of a join agree), and so
do the float and integer forms of a whole number.
"""
from __future__ import annotations

import struct
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

NULL_HASH = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def splitmix(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        x += NULL_HASH
        x = (x ^ (x >> np.uint64(30))) * _M1
        x = (x ^ (x >> np.uint64(27))) * _M2
        x ^= x >> np.uint64(31)
    return x


def _string_hashes(a: pa.Array) -> np.ndarray:
    from chukonu.native.xxh64 import hash_strings

    wide = pa.types.is_large_string(a.type) or pa.types.is_large_binary(a.type)
    offset_type: type = np.int64 if wide else np.int32
    bufs = a.buffers()
    offsets = np.frombuffer(bufs[1], dtype=offset_type)[a.offset: a.offset + len(a) + 1].astype(np.int64)
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(1, dtype=np.uint8)
    valid = pc.is_valid(a).to_numpy(zero_copy_only=False)
    return hash_strings(offsets, data, valid, np.uint64(0), NULL_HASH)


def column_hash(a: pa.Array) -> np.ndarray:
    """A uint64 hash per row of one column."""
    t = a.type
    if pa.types.is_dictionary(t):
        a = a.dictionary_decode()
        t = a.type
    if pa.types.is_string(t) or pa.types.is_binary(t) or pa.types.is_large_string(t) or pa.types.is_large_binary(t):
        return _string_hashes(a)
    if pa.types.is_null(t):
        return np.full(len(a), NULL_HASH, dtype=np.uint64)
    if pa.types.is_floating(t):
        f = pc.fill_null(a.cast(pa.float64()), 0.0).to_numpy(zero_copy_only=False)
        whole = np.isfinite(f) & (f == np.floor(f)) & (np.abs(f) < 2.0 ** 63)
        # whole numbers hash as the integer they equal, so 2.0 and 2 meet in a join
        bits = np.where(whole, np.where(whole, f, 0).astype(np.int64), f.view(np.int64))
        h = splitmix(bits.view(np.uint64))
    elif pa.types.is_integer(t) or pa.types.is_boolean(t) or pa.types.is_date(t) or pa.types.is_timestamp(t):
        if pa.types.is_date32(t):
            a = a.cast(pa.int32())      # Arrow casts date32 to int32 only
        elif pa.types.is_date(t) or pa.types.is_timestamp(t):
            a = a.cast(pa.int64())
        v = pc.fill_null(a.cast(pa.int64()), 0).to_numpy(zero_copy_only=False)
        h = splitmix(v.view(np.uint64))
    else:
        # nested or rare types: hash a canonical text form of each value
        h = np.array([xxhash.xxh64_intdigest(repr(v).encode()) for v in a.to_pylist()], dtype=np.uint64)
    if a.null_count:
        h = np.where(pc.is_null(a).to_numpy(zero_copy_only=False), NULL_HASH, h)
    return h


def rows_hash(columns: list[pa.Array]) -> np.ndarray:
    """A uint64 hash per row of several columns, combined in order."""
    n = len(columns[0]) if columns else 0
    h = np.zeros(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for c in columns:
            h = splitmix(h * np.uint64(31) + column_hash(c))
    return h


def partition_ids(columns: list[pa.Array], n: int) -> np.ndarray:
    return (rows_hash(columns) % np.uint64(n)).astype(np.int64)


# ------------------------------------------------------------ Python objects

def portable_hash(x: Any) -> int:
    """A hash of a Python key that is the same in every process (RDD shuffles)."""
    if x is None:
        return 0
    if isinstance(x, bool):
        return int(x) + 1
    if isinstance(x, int):
        return xxhash.xxh64_intdigest(x.to_bytes(16, "little", signed=True)) if -(1 << 127) <= x < (1 << 127) \
            else xxhash.xxh64_intdigest(str(x).encode())
    if isinstance(x, float):
        if x.is_integer() and abs(x) < 2.0 ** 127:
            return portable_hash(int(x))
        return xxhash.xxh64_intdigest(struct.pack("<d", x))
    if isinstance(x, str):
        return xxhash.xxh64_intdigest(x.encode("utf-8", "surrogatepass"))
    if isinstance(x, (bytes, bytearray)):
        return xxhash.xxh64_intdigest(bytes(x), 1)
    if isinstance(x, (tuple, list)):
        h = 0x345678
        for e in x:
            h = xxhash.xxh64_intdigest(struct.pack("<QQ", h, portable_hash(e)))
        return h
    if isinstance(x, frozenset):
        return sum(portable_hash(e) for e in x) & 0xFFFFFFFFFFFFFFFF
    return xxhash.xxh64_intdigest(repr(x).encode())
