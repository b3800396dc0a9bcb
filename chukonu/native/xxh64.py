"""XXH64 compiled with numba: over byte ranges of an Arrow buffer, and over 64-bit lanes.

These are the same numbers as ``xxhash.xxh64_intdigest`` (tests check it),
computed without a Python call per value: a column of strings is hashed
straight from its offsets and data buffers. ``xxh64_lanes`` hashes a run of
uint64 values as if they were their 8-byte little-endian encoding, which is
how a word n-gram is hashed from its words' hashes.
"""
from __future__ import annotations

import numpy as np
from numba import njit

P1 = np.uint64(11400714785074694791)
P2 = np.uint64(14029467366897019727)
P3 = np.uint64(1609587929392839161)
P4 = np.uint64(9650029242287828579)
P5 = np.uint64(2870177450012600261)


@njit(inline="always", cache=True)
def _rotl(x: np.uint64, r: int) -> np.uint64:
    return (x << np.uint64(r)) | (x >> np.uint64(64 - r))


@njit(inline="always", cache=True)
def _round(acc: np.uint64, lane: np.uint64) -> np.uint64:
    acc = acc + lane * P2
    acc = _rotl(acc, 31)
    return acc * P1


@njit(inline="always", cache=True)
def _merge(acc: np.uint64, val: np.uint64) -> np.uint64:
    acc ^= _round(np.uint64(0), val)
    return acc * P1 + P4


@njit(inline="always", cache=True)
def _avalanche(h: np.uint64) -> np.uint64:
    h ^= h >> np.uint64(33)
    h *= P2
    h ^= h >> np.uint64(29)
    h *= P3
    h ^= h >> np.uint64(32)
    return h


@njit(inline="always", cache=True)
def _read64(data: np.ndarray, p: int) -> np.uint64:
    v = np.uint64(0)
    for i in range(8):
        v |= np.uint64(data[p + i]) << np.uint64(8 * i)
    return v


@njit(inline="always", cache=True)
def _read32(data: np.ndarray, p: int) -> np.uint64:
    v = np.uint64(0)
    for i in range(4):
        v |= np.uint64(data[p + i]) << np.uint64(8 * i)
    return v


@njit(cache=True)
def xxh64_bytes(data: np.ndarray, start: int, end: int, seed: np.uint64) -> np.uint64:
    """XXH64 of ``data[start:end]`` (a uint8 array)."""
    n = end - start
    p = start
    if n >= 32:
        v1 = seed + P1 + P2
        v2 = seed + P2
        v3 = seed
        v4 = seed - P1
        limit = end - 32
        while p <= limit:
            v1 = _round(v1, _read64(data, p))
            v2 = _round(v2, _read64(data, p + 8))
            v3 = _round(v3, _read64(data, p + 16))
            v4 = _round(v4, _read64(data, p + 24))
            p += 32
        h = _rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)
        h = _merge(h, v1)
        h = _merge(h, v2)
        h = _merge(h, v3)
        h = _merge(h, v4)
    else:
        h = seed + P5
    h += np.uint64(n)
    while p + 8 <= end:
        h ^= _round(np.uint64(0), _read64(data, p))
        h = _rotl(h, 27) * P1 + P4
        p += 8
    if p + 4 <= end:
        h ^= _read32(data, p) * P1
        h = _rotl(h, 23) * P2 + P3
        p += 4
    while p < end:
        h ^= np.uint64(data[p]) * P5
        h = _rotl(h, 11) * P1
        p += 1
    return _avalanche(h)


@njit(cache=True)
def xxh64_lanes(lanes: np.ndarray, start: int, count: int, seed: np.uint64) -> np.uint64:
    """XXH64 of ``lanes[start:start+count]`` encoded as little-endian uint64 bytes."""
    n = count * 8
    p = start
    end = start + count
    if n >= 32:
        v1 = seed + P1 + P2
        v2 = seed + P2
        v3 = seed
        v4 = seed - P1
        while p + 4 <= end:
            v1 = _round(v1, lanes[p])
            v2 = _round(v2, lanes[p + 1])
            v3 = _round(v3, lanes[p + 2])
            v4 = _round(v4, lanes[p + 3])
            p += 4
        h = _rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)
        h = _merge(h, v1)
        h = _merge(h, v2)
        h = _merge(h, v3)
        h = _merge(h, v4)
    else:
        h = seed + P5
    h += np.uint64(n)
    while p < end:
        h ^= _round(np.uint64(0), lanes[p])
        h = _rotl(h, 27) * P1 + P4
        p += 1
    return _avalanche(h)


@njit(cache=True)
def hash_strings(offsets: np.ndarray, data: np.ndarray, valid: np.ndarray, seed: np.uint64,
                 null_hash: np.uint64) -> np.ndarray:
    """XXH64 of each value of a string/binary column given its Arrow offsets and data buffers."""
    n = offsets.shape[0] - 1
    out = np.empty(n, dtype=np.uint64)
    for i in range(n):
        if valid[i]:
            out[i] = xxh64_bytes(data, offsets[i], offsets[i + 1], seed)
        else:
            out[i] = null_hash
    return out
