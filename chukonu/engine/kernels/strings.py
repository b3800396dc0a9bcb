"""String kernels: case, length, trimming, concatenation, splitting, matching, regexes.

Patterns are Java regexes in Spark and RE2 in Arrow; the common subset is
the same, and ``$1`` group references in replacements are rewritten to
RE2's ``\\1``. ``substring`` is 1-based and ``split`` keeps trailing empty
strings, as in Spark.
"""
from __future__ import annotations

import re
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from chukonu.engine.expressions import as_array
from chukonu.engine.kernels import kernel


def _per_row(fn: Any, arrays: list[pa.Array], out_type: pa.DataType) -> pa.Array:
    """Fallback for what Arrow has no kernel for: ``fn`` on each row whose inputs are not null."""
    cols = [a.to_pylist() for a in arrays]
    out = [None if any(x is None for x in vals) else fn(*vals) for vals in zip(*cols)]
    return pa.array(out, type=out_type)


@kernel("lower")
def lower(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return pc.utf8_lower(v[0])


@kernel("upper")
def upper(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return pc.utf8_upper(v[0])


@kernel("length")
def length(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    a = v[0]
    if pa.types.is_binary(a.type) or pa.types.is_large_binary(a.type):
        return pc.binary_length(a).cast(pa.int32())
    return pc.utf8_length(a).cast(pa.int32())


@kernel("trim")
def trim(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return pc.utf8_trim(v[0], characters=o.get("chars", " "))


@kernel("ltrim")
def ltrim(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return pc.utf8_ltrim(v[0], characters=o.get("chars", " "))


@kernel("rtrim")
def rtrim(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return pc.utf8_rtrim(v[0], characters=o.get("chars", " "))


@kernel("reverse")
def reverse(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    a = v[0]
    if pa.types.is_list(a.type):
        return _per_row(lambda x: x[::-1], [as_array(a, n)], a.type)
    return pc.utf8_reverse(a)


@kernel("repeat")
def repeat(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return pc.binary_repeat(v[0], o["n"])


@kernel("initcap")
def initcap(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return _per_row(lambda s: " ".join(w[:1].upper() + w[1:].lower() for w in s.split(" ")),
                    [as_array(v[0], n)], pa.string())


def _strings(v: list[Any], n: int) -> list[pa.Array]:
    out = []
    for x in v:
        a = as_array(x, n)
        if not (pa.types.is_string(a.type) or pa.types.is_large_string(a.type)):
            a = a.cast(pa.string())
        out.append(a)
    return out


@kernel("concat")
def concat(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    arrays = [as_array(x, n) for x in v]
    if arrays and all(pa.types.is_list(a.type) for a in arrays):
        return _per_row(lambda *xs: [e for x in xs for e in x], arrays, arrays[0].type)
    return pc.binary_join_element_wise(*_strings(arrays, n), "")


@kernel("concat_ws", lambda a, o: f"concat_ws({', '.join([o['sep']] + a)})")
def concat_ws(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    sep = o["sep"]
    parts = []
    for x in v:
        a = as_array(x, n)
        if pa.types.is_list(a.type) or pa.types.is_large_list(a.type):
            a = _drop_null_items(a)
            empty = pc.equal(pc.list_value_length(a), 0)
            a = pc.if_else(empty, pa.scalar(None, pa.string()), pc.binary_join(a, sep))   # [] adds no separator
        parts.append(a)
    return join_skipping_nulls(_strings(parts, n), sep, n)


def join_skipping_nulls(parts: list[pa.Array], sep: str, n: int) -> pa.Array:
    """Row-wise join of the non-null parts (all null: ""). Arrow's binary_join_element_wise with
    null_handling="skip" drops trailing rows whose inputs are all null (pyarrow 26), so the parts are
    laid out as one list per row instead."""
    k = len(parts)
    if k == 0 or n == 0:
        return pa.array([""] * n, pa.string())
    stacked = pa.concat_arrays([p.cast(pa.string()) for p in parts])
    order = (np.arange(n)[:, None] + np.arange(k)[None, :] * n).reshape(-1)
    vals = stacked.take(pa.array(order))
    valid = pc.is_valid(vals).to_numpy(zero_copy_only=False)
    counts = valid.reshape(n, k).sum(axis=1)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    return pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), vals.filter(pa.array(valid))), sep)


def _drop_null_items(a: pa.Array) -> pa.Array:
    """A list array whose null elements are removed (concat_ws skips them)."""
    if a.null_count == len(a) or pc.list_flatten(a).null_count == 0:
        return a
    return pa.array([None if x is None else [e for e in x if e is not None] for x in a.to_pylist()], type=a.type)


@kernel("split", lambda a, o: f"split({a[0]}, {o['pattern']}, {o.get('limit', -1)})")
def split(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    limit = o.get("limit", -1)
    max_splits = limit - 1 if limit > 0 else None
    pattern = o["pattern"]
    if pattern == "":
        return _per_row(lambda s: list(s) if limit <= 0 else list(s[:limit - 1]) + ([s[limit - 1:]] if
                        len(s) >= limit else []), [as_array(v[0], n)], pa.list_(pa.string()))
    return pc.split_pattern_regex(v[0], pattern=pattern, max_splits=max_splits)


@kernel("substring", lambda a, o: f"substring({a[0]}, {o['pos']}, {o['len']})")
def substring(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    pos, ln = o["pos"], o["len"]
    a = v[0]
    if ln <= 0:
        return pc.utf8_slice_codeunits(a, start=0, stop=0)
    if pos > 0:
        start = pos - 1
        return pc.utf8_slice_codeunits(a, start=start, stop=start + ln)
    if pos == 0:  # Spark reads position 0 as 1
        return pc.utf8_slice_codeunits(a, start=0, stop=ln)
    stop = pos + ln
    return pc.utf8_slice_codeunits(a, start=pos, stop=stop if stop < 0 else None)


@kernel("like", lambda a, o: f"{a[0]} LIKE {o['pattern']}")
def like(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return pc.match_like(v[0], pattern=o["pattern"])


@kernel("rlike", lambda a, o: f"RLIKE({a[0]}, {o['pattern']})")
def rlike(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return pc.match_substring_regex(v[0], pattern=o["pattern"])


def _pattern_or_rows(v: list[Any], n: int, scalar_fn: Any, row_fn: Any) -> Any:
    a, other = v
    if isinstance(other, pa.Scalar):
        if not other.is_valid:
            return pa.nulls(n, pa.bool_()) if isinstance(a, pa.Array) else pa.scalar(None, pa.bool_())
        return scalar_fn(a, pattern=other.as_py())
    return _per_row(row_fn, [as_array(a, n), as_array(other, n)], pa.bool_())


@kernel("contains", lambda a, o: f"contains({a[0]}, {a[1]})")
def contains(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return _pattern_or_rows(v, n, pc.match_substring, lambda s, t: t in s)


@kernel("startswith", lambda a, o: f"startswith({a[0]}, {a[1]})")
def startswith(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return _pattern_or_rows(v, n, pc.starts_with, lambda s, t: s.startswith(t))


@kernel("endswith", lambda a, o: f"endswith({a[0]}, {a[1]})")
def endswith(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return _pattern_or_rows(v, n, pc.ends_with, lambda s, t: s.endswith(t))


_JAVA_GROUP = re.compile(r"\$(\d+)")


@kernel("regexp_replace", lambda a, o: f"regexp_replace({a[0]}, {o['pattern']}, {o['replacement']}, 1)")
def regexp_replace(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    replacement = _JAVA_GROUP.sub(r"\\\1", o["replacement"])
    return pc.replace_substring_regex(v[0], pattern=o["pattern"], replacement=replacement)


@kernel("regexp_extract", lambda a, o: f"regexp_extract({a[0]}, {o['pattern']}, {o['idx']})")
def regexp_extract(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    rx = re.compile(o["pattern"], re.ASCII)   # Java's \w, \d and \s are ASCII-only, as RE2's
    idx = o["idx"]

    def one(s: str) -> str:
        m = rx.search(s)
        if m is None:
            return ""
        g = m.group(idx)
        return g if g is not None else ""
    return _per_row(one, [as_array(v[0], n)], pa.string())


def _pad(s: str, width: int, pad: str, left: bool) -> str:
    if len(s) >= width or not pad:
        return s[:width]
    fill = (pad * (width // len(pad) + 1))[: width - len(s)]
    return fill + s if left else s + fill


@kernel("lpad")
def lpad(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return _per_row(lambda s: _pad(s, o["len"], o["pad"], True), [as_array(v[0], n)], pa.string())


@kernel("rpad")
def rpad(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    return _per_row(lambda s: _pad(s, o["len"], o["pad"], False), [as_array(v[0], n)], pa.string())


@kernel("instr")
def instr(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    sub = o["substr"]
    return _per_row(lambda s: s.find(sub) + 1, [as_array(v[0], n)], pa.int32())   # characters, not bytes


@kernel("translate")
def translate(v: list[Any], o: dict, n: int, ctx: Any) -> Any:
    src, dst = o["matching"], o["replace"]
    table = {ord(c): (dst[i] if i < len(dst) else None) for i, c in reversed(list(enumerate(src)))}
    return _per_row(lambda s: s.translate(table), [as_array(v[0], n)], pa.string())
