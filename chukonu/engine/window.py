"""Window functions over one shuffled partition, vectorised: ranks, offsets and framed aggregates.

A reduce task holds every row of its window partitions (the shuffle was by
the PARTITION BY keys). It sorts them once by (partition keys, order keys)
and then every function is array arithmetic over three facts per row: where
its partition starts and ends, where its peer group (rows with equal order
keys) starts and ends, and its frame [lo, hi) as row indices. Ranks come
from those boundaries; framed sums, counts and averages from prefix sums;
min and max from a sliding-window pass (numba) that relies on lo and hi
never moving backwards; first/last from next/previous-valid indices.

Spark's defaults: with ORDER BY the frame is RANGE BETWEEN UNBOUNDED
PRECEDING AND CURRENT ROW (peers included), without it the whole partition.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from chukonu.engine.expressions import AggCall, EvalCtx, Expr, Lit, SortOrder, as_array
from chukonu.errors import AnalysisException, unsupported

RANKING = {"row_number", "rank", "dense_rank", "percent_rank", "cume_dist", "ntile"}
OFFSET = {"lag", "lead", "nth_value"}
MOMENT_AGGS = {"stddev_samp", "stddev_pop", "var_samp", "var_pop"}
FRAMED_AGGS = {"count", "count_all", "sum", "avg", "min", "max", "first", "last", "collect_list",
               "collect_set"} | MOMENT_AGGS


@dataclass(frozen=True)
class Frame:
    kind: str                 # "rows" | "range"
    start: int | float | None  # None: unbounded preceding; 0: current row; -k: k preceding; +k: k following
    end: int | float | None    # None: unbounded following


@dataclass
class WindowSpec:
    partition: list[Expr] = field(default_factory=list)
    orders: list[SortOrder] = field(default_factory=list)
    frame: Frame | None = None

    def key(self) -> str:
        return repr(([p.name() for p in self.partition],
                     [(o.name(), o.ascending, o.nulls_first) for o in self.orders]))

    def describe(self) -> str:
        parts = []
        if self.partition:
            parts.append("PARTITION BY " + ", ".join(p.name() for p in self.partition))
        if self.orders:
            parts.append("ORDER BY " + ", ".join(o.name() + (" NULLS FIRST" if o.nulls_go_first else " NULLS LAST")
                                                 for o in self.orders))
        f = self.frame
        if f is not None:
            parts.append(f"{f.kind.upper()} BETWEEN {_bound(f.start, True)} AND {_bound(f.end, False)}")
        elif self.orders:
            parts.append("RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW")
        else:
            parts.append("ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING")
        return " ".join(parts)


def _bound(b: Any, start: bool) -> str:
    if b is None:
        return "UNBOUNDED PRECEDING" if start else "UNBOUNDED FOLLOWING"
    if b == 0:
        return "CURRENT ROW"
    return f"{abs(b)} {'PRECEDING' if b < 0 else 'FOLLOWING'}"


@dataclass(repr=False)
class WindowFunction(Expr):
    """row_number(), lag(x, 1) ...: valid only with .over(window)."""

    fn: str
    args: list[Expr] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)

    def children(self) -> list[Expr]:
        return list(self.args)

    def with_children(self, children: list[Expr]) -> Expr:
        return WindowFunction(self.fn, children, self.options)

    def name(self) -> str:
        inner = ", ".join(a.name() for a in self.args)
        return f"{self.fn}({inner})"

    def evaluate(self, batch: pa.RecordBatch, ctx: EvalCtx) -> Any:
        raise AnalysisException(f"[WINDOW_FUNCTION_WITHOUT_OVER_CLAUSE] {self.name()} needs .over(window)")


@dataclass(repr=False)
class WindowExpr(Expr):
    """``func OVER (spec)``; replaced by a column of a Window plan node during analysis."""

    func: Expr                 # WindowFunction or AggCall
    spec: WindowSpec

    def children(self) -> list[Expr]:
        return [self.func] + list(self.spec.partition) + list(self.spec.orders)

    def with_children(self, children: list[Expr]) -> Expr:
        k = len(self.spec.partition)
        spec = WindowSpec(children[1:1 + k], children[1 + k:], self.spec.frame)  # type: ignore[arg-type]
        return WindowExpr(children[0], spec)

    def name(self) -> str:
        return f"{self.func.name()} OVER ({self.spec.describe()})"

    def evaluate(self, batch: pa.RecordBatch, ctx: EvalCtx) -> Any:
        raise AnalysisException(f"window expression {self.name()} was not planned")


# ---------------------------------------------------------------- compute

def _changes(keys: Sequence[pa.Array], n: int) -> np.ndarray:
    """True where a row's keys differ from the previous row's (null equals null); row 0 is True."""
    out = np.zeros(n, dtype=bool)
    if n:
        out[0] = True
    if n <= 1:
        return out
    for k in keys:
        a, b = k.slice(1), k.slice(0, n - 1)
        if pa.types.is_null(k.type):
            continue
        neq = pc.not_equal(a, b)
        na, nb = pc.is_null(a), pc.is_null(b)
        diff = pc.if_else(pc.or_(na, nb), pc.xor(na, nb), neq)
        out[1:] |= pc.fill_null(diff, False).to_numpy(zero_copy_only=False)
    return out


def _starts_ends(new: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    starts = np.flatnonzero(new)
    gid = np.cumsum(new) - 1
    ends = np.r_[starts[1:], n]
    return starts[gid], ends[gid]


@numba.njit(cache=True)
def _sliding_extreme(x: np.ndarray, valid: np.ndarray, lo: np.ndarray, hi: np.ndarray, want_max: bool
                     ) -> tuple[np.ndarray, np.ndarray]:
    """min/max of x[lo[i]:hi[i]] (valid entries only) for every i; lo and hi never decrease."""
    n = len(lo)
    out = np.empty(n, dtype=x.dtype)
    has = np.zeros(n, dtype=np.bool_)
    dq = np.empty(len(x) + 1, dtype=np.int64)
    head, tail = 0, 0
    nxt = 0
    for i in range(n):
        while nxt < hi[i]:
            if valid[nxt]:
                v = x[nxt]
                while tail > head and ((x[dq[tail - 1]] <= v) if want_max else (x[dq[tail - 1]] >= v)):
                    tail -= 1
                dq[tail] = nxt
                tail += 1
            nxt += 1
        while tail > head and dq[head] < lo[i]:
            head += 1
        if tail > head and lo[i] < hi[i]:
            out[i] = x[dq[head]]
            has[i] = True
    return out, has


class Layout:
    """Sorted rows of one task: partition and peer boundaries per row."""

    def __init__(self, part_keys: list[pa.Array], order_keys: list[pa.Array], n: int) -> None:
        self.n = n
        new_part = _changes(part_keys, n)
        self.ps, self.pe = _starts_ends(new_part, n)
        new_peer = new_part | _changes(order_keys, n)
        self.peer_s, self.peer_e = _starts_ends(new_peer, n)
        self.peer_id = np.cumsum(new_peer) - 1
        self.idx = np.arange(n, dtype=np.int64)
        self.order_keys = order_keys

    def frame(self, frame: Frame | None, orders: Sequence[SortOrder]) -> tuple[np.ndarray, np.ndarray]:
        if frame is None:
            return (self.ps, self.peer_e) if orders else (self.ps, self.pe)
        if frame.kind == "rows":
            lo = self.ps if frame.start is None else np.clip(self.idx + int(frame.start), self.ps, self.pe)
            hi = self.pe if frame.end is None else np.clip(self.idx + int(frame.end) + 1, self.ps, self.pe)
            return lo, np.maximum(hi, lo)
        return self._range(frame, orders)

    def _range(self, frame: Frame, orders: Sequence[SortOrder]) -> tuple[np.ndarray, np.ndarray]:
        lo = self.ps.copy() if frame.start is None else self.peer_s.copy()
        hi = self.pe.copy() if frame.end is None else self.peer_e.copy()
        offsets = [b for b in (frame.start, frame.end) if b not in (None, 0)]
        if not offsets:
            return lo, hi
        if len(orders) != 1:
            raise AnalysisException("[DATATYPE_MISMATCH.RANGE_FRAME_MULTI_ORDER] a RANGE frame with offsets needs "
                                    "exactly one ORDER BY expression")
        key = self.order_keys[0]
        if not (pa.types.is_integer(key.type) or pa.types.is_floating(key.type) or pa.types.is_date(key.type)):
            raise AnalysisException(f"[DATATYPE_MISMATCH.RANGE_FRAME_INVALID_TYPE] a RANGE frame with offsets needs "
                                    f"a numeric ORDER BY, not {key.type}")
        k = key.cast(pa.int32()).cast(pa.float64()) if pa.types.is_date(key.type) else key.cast(pa.float64())
        v = pc.fill_null(k, 0.0).to_numpy(zero_copy_only=False)
        valid = pc.is_valid(k).to_numpy(zero_copy_only=False)
        sign = 1.0 if orders[0].ascending else -1.0
        sv = v * sign
        for s in np.unique(self.ps):
            e = int(self.pe[s])
            rows = np.arange(s, e)
            ok = rows[valid[s:e]]
            if len(ok) == 0:
                continue
            first, last = ok[0], ok[-1] + 1
            seg = sv[first:last]
            if frame.start not in (None, 0):
                lo[ok] = first + np.searchsorted(seg, sv[ok] + float(frame.start), side="left")
            if frame.end not in (None, 0):
                hi[ok] = first + np.searchsorted(seg, sv[ok] + float(frame.end), side="right")
        return lo, np.maximum(hi, lo)


def _take_or_null(a: pa.Array, idx: np.ndarray, ok: np.ndarray) -> pa.Array:
    if len(a) == 0:
        return pa.nulls(len(idx), a.type)
    return a.take(pa.array(np.where(ok, idx, 0), mask=~ok))


def _ranking(fn: str, lay: Layout, options: dict[str, Any]) -> pa.Array:
    size = lay.pe - lay.ps
    if fn == "row_number":
        return pa.array((lay.idx - lay.ps + 1).astype(np.int32))
    rank = lay.peer_s - lay.ps + 1
    if fn == "rank":
        return pa.array(rank.astype(np.int32))
    if fn == "dense_rank":
        return pa.array((lay.peer_id - lay.peer_id[lay.ps] + 1).astype(np.int32) if lay.n else np.zeros(0, np.int32))
    if fn == "percent_rank":
        with np.errstate(all="ignore"):
            return pa.array(np.where(size > 1, (rank - 1) / np.maximum(size - 1, 1), 0.0))
    if fn == "cume_dist":
        return pa.array((lay.peer_e - lay.ps) / np.maximum(size, 1))
    k = int(options["n"])
    r = lay.idx - lay.ps
    base, extra = size // k, size % k
    big = extra * (base + 1)
    with np.errstate(all="ignore"):
        tile = np.where(r < big, r // np.maximum(base + 1, 1), extra + (r - big) // np.maximum(base, 1))
    return pa.array((tile + 1).astype(np.int32))


def _offset(fn: str, lay: Layout, values: list[pa.Array], options: dict[str, Any], lo: np.ndarray,
            hi: np.ndarray) -> pa.Array:
    x = values[0]
    if fn == "nth_value":
        k = int(options["n"])
        if options.get("ignore_nulls"):
            raise unsupported("nth_value(..., ignoreNulls=True)")
        j = lo + k - 1
        return _take_or_null(x, j, j < hi)
    off = int(options.get("offset", 1))
    j = lay.idx - off if fn == "lag" else lay.idx + off
    ok = (j >= lay.ps) & (j < lay.pe)
    out = _take_or_null(x, j, ok)
    if len(values) > 1:
        default = values[1]
        if default.type != out.type and not pa.types.is_null(default.type):
            default = default.cast(out.type)
        out = pc.if_else(pa.array(ok), out, default) if not pa.types.is_null(default.type) else out
    return out


def _framed(fn: str, x: pa.Array | None, lo: np.ndarray, hi: np.ndarray, n: int, ignore_nulls: bool) -> pa.Array:
    if fn == "count_all":
        return pa.array((hi - lo).astype(np.int64))
    assert x is not None
    valid = pc.is_valid(x).to_numpy(zero_copy_only=False) if x.null_count else np.ones(len(x), bool)
    cnt = np.r_[0, np.cumsum(valid)]
    count = cnt[hi] - cnt[lo]
    if fn == "count":
        return pa.array(count.astype(np.int64))
    if fn in ("sum", "avg"):
        if pa.types.is_integer(x.type) and fn == "sum":
            vals = pc.fill_null(x.cast(pa.int64()), 0).to_numpy(zero_copy_only=False)
        else:
            vals = pc.fill_null(x.cast(pa.float64()), 0.0).to_numpy(zero_copy_only=False)
        pre = np.r_[vals.dtype.type(0), np.cumsum(vals)]
        s = pre[hi] - pre[lo]
        if fn == "avg":
            with np.errstate(all="ignore"):
                return pa.array(s / np.maximum(count, 1), pa.float64(), mask=count == 0)
        return pa.array(s, mask=count == 0)
    if fn in MOMENT_AGGS:
        vals = pc.fill_null(x.cast(pa.float64()), 0.0).to_numpy(zero_copy_only=False)
        # shifted by the mean so the prefix sums of squares do not cancel catastrophically
        shift = float(vals[valid].mean()) if valid.any() else 0.0
        d = np.where(valid, vals - shift, 0.0)
        s1 = np.r_[0.0, np.cumsum(d)]
        s2 = np.r_[0.0, np.cumsum(d * d)]
        a, b = s1[hi] - s1[lo], s2[hi] - s2[lo]
        with np.errstate(all="ignore"):
            m2 = np.maximum(b - a * a / np.maximum(count, 1), 0.0)
            samp = fn.endswith("samp")
            v = m2 / (count - 1) if samp else m2 / count
            out = np.sqrt(v) if fn.startswith("stddev") else v
        return pa.array(out, pa.float64(), mask=(count <= 1) if samp else (count == 0))
    if fn in ("min", "max"):
        t = x.type
        if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_date(t) or pa.types.is_timestamp(t) \
                or pa.types.is_boolean(t):
            storage = pa.int64() if not pa.types.is_floating(t) else pa.float64()
            raw = x.cast(pa.int32()).cast(storage) if pa.types.is_date(t) else x.cast(storage)
            vals = pc.fill_null(raw, 0).to_numpy(zero_copy_only=False)
            out, has = _sliding_extreme(vals, valid, lo.astype(np.int64), hi.astype(np.int64), fn == "max")
            res = pa.array(out, storage, mask=~has)
            if pa.types.is_date(t):
                return res.cast(pa.int32()).cast(t)
            return res.cast(t)
        items = x.to_pylist()
        pick = max if fn == "max" else min
        out_list = [None] * n
        for i in range(n):
            seg = [v for v in items[lo[i]:hi[i]] if v is not None]
            out_list[i] = pick(seg) if seg else None
        return pa.array(out_list, t)
    if fn in ("first", "last"):
        if not ignore_nulls:
            j = lo if fn == "first" else hi - 1
            return _take_or_null(x, j, lo < hi)
        idx = np.arange(len(x), dtype=np.int64)
        if fn == "first":
            nv = np.where(valid, idx, len(x))
            nxt = np.minimum.accumulate(nv[::-1])[::-1] if len(x) else nv
            j = np.where(lo < len(x), nxt[np.minimum(lo, max(len(x) - 1, 0))], len(x)) if len(x) else lo
            return _take_or_null(x, j, (lo < hi) & (j < hi))
        pv = np.where(valid, idx, -1)
        prv = np.maximum.accumulate(pv) if len(x) else pv
        j = prv[np.maximum(hi - 1, 0)] if len(x) else hi
        return _take_or_null(x, j, (lo < hi) & (j >= lo))
    if fn in ("collect_list", "collect_set"):
        lengths = hi - lo
        rows = np.repeat(np.arange(n), lengths)
        flat = np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths) + \
            np.repeat(lo, lengths)
        keep = valid[flat]
        rows, flat = rows[keep], flat[keep]
        counts = np.bincount(rows, minlength=n) if len(rows) else np.zeros(n, np.int64)
        offsets = np.r_[0, np.cumsum(counts)].astype(np.int32)
        lists = pa.ListArray.from_arrays(pa.array(offsets), x.take(pa.array(flat, pa.int64())))
        if fn == "collect_set":
            return pa.array([list(dict.fromkeys(v)) for v in lists.to_pylist()], lists.type)
        return lists
    raise unsupported(f"{fn}() as a window function")


@dataclass
class WindowCall:
    """One bound window function of a Window node: what to compute and over which frame."""

    fn: str                       # ranking, offset or aggregate name
    args: list[Expr]              # bound to the child's columns
    options: dict[str, Any]
    frame: Frame | None
    ignore_nulls: bool = False


def compute(table: pa.Table, partition: list[Expr], orders: list[SortOrder], calls: list[WindowCall]) -> pa.Table:
    """``table`` sorted by (partition, order) with one column per call appended."""
    from chukonu.engine.sorting import one_batch, sort_indices
    n = table.num_rows
    batch = one_batch(table)
    ctx = EvalCtx()
    pkeys = [as_array(p.evaluate(batch, ctx), n) for p in partition]
    okeys = [as_array(o.child.evaluate(batch, ctx), n) for o in orders]
    all_orders = [SortOrder(p, True, True) for p in partition] + list(orders)
    if n > 1 and all_orders:
        order = sort_indices(pkeys + okeys, all_orders)
        batch = batch.take(order)
        pkeys = [k.take(order) for k in pkeys]
        okeys = [k.take(order) for k in okeys]
    lay = Layout(pkeys, okeys, n)
    cols = list(batch.columns)
    names = list(batch.schema.names)
    for i, c in enumerate(calls):
        values = [as_array(a.evaluate(batch, ctx), n) for a in c.args]
        if c.fn in RANKING:
            out = _ranking(c.fn, lay, c.options)
        elif c.fn in OFFSET:
            lo, hi = lay.frame(c.frame, orders)
            out = _offset(c.fn, lay, values, c.options, lo, hi)
        elif c.fn in FRAMED_AGGS:
            lo, hi = lay.frame(c.frame, orders)
            out = _framed(c.fn, values[0] if values else None, lo.astype(np.int64), hi.astype(np.int64), n,
                          c.ignore_nulls)
        else:
            raise unsupported(f"{c.fn}() as a window function")
        cols.append(out)
        names.append(f"__w{i}")
    return pa.Table.from_arrays(cols, names=names)


def window_call(func: Expr, frame: Frame | None) -> WindowCall:
    """The WindowCall for an (unbound) window function or aggregate."""
    if isinstance(func, WindowFunction):
        if func.fn in RANKING and frame is not None and func.fn != "nth_value":
            frame = None    # Spark fixes the frame of ranking functions
        return WindowCall(func.fn, list(func.args), dict(func.options), frame,
                          bool(func.options.get("ignore_nulls", False)))
    if isinstance(func, AggCall):
        fn = func.fn
        if func.distinct:
            raise unsupported(f"{fn}(DISTINCT ...) as a window function")
        if fn == "count" and isinstance(func.args[0], Lit):
            return WindowCall("count_all", [], {}, frame)
        if fn not in FRAMED_AGGS:
            raise unsupported(f"{fn}() as a window function")
        return WindowCall(fn, list(func.args[:1]), dict(func.options), frame,
                          bool(func.options.get("ignorenulls", False)))
    raise AnalysisException(f"{func.name()} is not a window function")
