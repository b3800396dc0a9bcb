"""Kernels of constants, errors, ids and byte conversions (raise_error, assert_true, uuid, base32)."""
from __future__ import annotations

import base64
import uuid as _uuid
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from chukonu.engine.expressions import as_array
from chukonu.engine.kernels import kernel
from chukonu.engine.kernels.fallback import per_row, string_array


class UserRaisedError(RuntimeError):
    """raise_error() / a failed assert_true(): the query asked to fail."""


@kernel("constant", lambda a, o: str(o["value"]))
def constant(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return pa.scalar(o["value"])


@kernel("raise_error")
def raise_error(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    msg = v[0].as_py() if isinstance(v[0], pa.Scalar) else (v[0][0].as_py() if len(v[0]) else None)
    if n:
        raise UserRaisedError(f"[USER_RAISED_EXCEPTION] {msg}")
    return pa.nulls(0, pa.null())


@kernel("assert_true")
def assert_true(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    c = as_array(v[0], n)
    bad = pc.fill_null(pc.invert(c.cast(pa.bool_())), True).to_numpy(zero_copy_only=False)
    if bad.any():
        raise UserRaisedError(f"[USER_RAISED_EXCEPTION] {o.get('message') or 'assertion failed'}")
    return pa.nulls(n, pa.null())


@kernel("uuid", lambda a, o: "uuid()")
def uuid(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    rng = np.random.default_rng([o["seed"], ctx.partition_index, ctx.row_offset])
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    return pa.array([str(_uuid.UUID(bytes=bytes(r), version=4)) for r in raw], pa.string())


@kernel("uniform")
def uniform(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    rng = np.random.default_rng([o["seed"], ctx.partition_index, ctx.row_offset])
    lo, hi = o["lo"], o["hi"]
    if isinstance(lo, int) and isinstance(hi, int):
        return pa.array(rng.integers(lo, hi, n) if hi > lo else np.full(n, lo))
    return pa.array(rng.uniform(lo, hi, n))


@kernel("to_base32")
def to_base32(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    a = as_array(v[0], n)
    return per_row(lambda s: base64.b32encode(s.encode() if isinstance(s, str) else bytes(s)).decode(), [a],
                   pa.string())


@kernel("from_base32")
def from_base32(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    def one(s: str) -> bytes | None:
        try:
            return base64.b32decode(s + "=" * (-len(s) % 8))
        except ValueError:
            return None
    return per_row(one, [string_array(v[0], n)], pa.binary())


@kernel("to_binary")
def to_binary(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    fmt = str(o.get("format") or "hex").lower()

    def one(s: str) -> bytes | None:
        try:
            if fmt == "hex":
                return bytes.fromhex(s if len(s) % 2 == 0 else "0" + s)
            if fmt in ("utf-8", "utf8"):
                return s.encode("utf-8")
            if fmt == "base64":
                return base64.b64decode(s + "=" * (-len(s) % 4))
        except ValueError:
            return None
        return None
    return per_row(one, [string_array(v[0], n)], pa.binary())


@kernel("make_valid_utf8")
def make_valid_utf8(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    a = as_array(v[0], n)
    if pa.types.is_string(a.type) or pa.types.is_large_string(a.type):
        return a   # Arrow strings are valid UTF-8 already
    return per_row(lambda b: bytes(b).decode("utf-8", errors="replace"), [a], pa.string())
