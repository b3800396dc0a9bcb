"""Grouped aggregation in three steps: partial (map side), merge, finalize (reduce side).

Every supported aggregate has a partial state that merges with itself
(count -> sum of counts, avg -> sum and count, collect_list -> lists
concatenated in input order), so a map task shrinks its output to one row
per key before the shuffle, and a reduce task only ever holds merged states.
Arrow's hash aggregation does the numeric work; list-valued states and
non-primitive values use each group's row indices (its "segment") instead,
because Arrow's hash aggregates do not accept nested types.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from chukonu.engine import stats

log = logging.getLogger(__name__)

FLUSH_ROWS = 1 << 20   # a partial aggregate merges its buffered input past this many rows


@dataclass(frozen=True)
class AggFn:
    # count, count_all, sum, min, max, avg, first, last, collect_list, collect_set, count_distinct
    fn: str
    arg: int | None         # column of the pre-projection after the keys (None for count(*))
    ignore_nulls: bool = False
    arg2: int | None = None           # the second input (corr(x, y), max_by(x, ord))
    option_items: tuple = ()          # (name, value) pairs: percentage, delimiter ...

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.option_items)

    @property
    def col(self) -> int:
        """The input column (every aggregate but count(*) has one)."""
        assert self.arg is not None, f"{self.fn} has no input column"
        return self.arg

    @property
    def state_width(self) -> int:
        if stats.handles(self.fn):
            return stats.WIDTH[self.fn]
        return 2 if self.fn == "avg" else 1

    @property
    def listy(self) -> bool:
        return self.fn in LIST_STATES or self.fn in SET_STATES

    @property
    def distinct_state(self) -> bool:
        return self.fn in SET_STATES


LIST_STATES = {"collect_list"} | stats.LIST_FNS
SET_STATES = {"collect_set", "count_distinct"} | stats.SET_FNS


def _nested(t: pa.DataType) -> bool:
    return pa.types.is_nested(t) or pa.types.is_dictionary(t)


def _is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t)


def _codes(a: pa.Array) -> tuple[np.ndarray, int]:
    """Dense codes of one key column (null is a value of its own) and how many distinct values."""
    if pa.types.is_dictionary(a.type):
        a = a.dictionary_decode()
    enc = pc.dictionary_encode(a, null_encoding="encode")
    return enc.indices.to_numpy(zero_copy_only=False).astype(np.int64), len(enc.dictionary)


def group_codes(keys: list[pa.Array], n: int) -> np.ndarray:
    """A group id per row, numbered in first-seen order, for rows equal on all ``keys``.

    Hash encoding per column (Arrow's dictionary_encode), combined column by column and compacted
    again with pandas' hash factorize, so the product of cardinalities never exceeds n * n. Arrow's
    group_by with a "list" of row numbers did the same at several times the cost.
    """
    import pandas as pd
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    code, _ = _codes(keys[0])
    for k in keys[1:]:
        c, kc = _codes(k)
        code, _ = pd.factorize(code * max(kc, 1) + c)
    if len(keys) == 1:
        code, _ = pd.factorize(code)   # first-seen order, as the other paths
    return code.astype(np.int64)


class Grouped:
    """The groups of a table's key columns: unique keys (first-seen order) and each group's rows."""

    def __init__(self, keys: list[pa.Array], n: int) -> None:
        self.n = n
        if not keys:
            keys = [pa.array(np.zeros(n, dtype=np.int8))]
            self.global_agg = True
        else:
            self.global_agg = False
        surrogate = [(pa.array([repr(v) for v in k.to_pylist()], type=pa.string()) if _nested(k.type) else k)
                     for k in keys]
        self.codes = group_codes(surrogate, n)     # the group of each row, groups in first-seen order
        self.num_groups = int(self.codes.max()) + 1 if n else 0
        self.lengths = np.bincount(self.codes, minlength=self.num_groups).astype(np.int64)
        self.first_rows = pa.array(self._pick(np.arange(n, dtype=np.int64), last=False))
        self.keys = [] if self.global_agg else [k.take(self.first_rows) for k in keys]
        self._order: np.ndarray | None = None

    def _pick(self, rows: np.ndarray, last: bool) -> np.ndarray:
        """Per group, the first (or last) of ``rows`` (ascending row numbers) in it; -1 if none."""
        index = np.full(self.num_groups, -1, dtype=np.int64)
        if last:
            index[self.codes[rows]] = rows            # the last write of a group wins
        else:
            index[self.codes[rows[::-1]]] = rows[::-1]
        return index

    @property
    def order(self) -> np.ndarray:
        """Row numbers grouped by group, input order kept inside a group (computed when first needed)."""
        if self._order is None:
            from chukonu.native.grouping import counting_order
            self._order = counting_order(self.codes, self.num_groups)
        return self._order

    @property
    def gid_sorted(self) -> np.ndarray:
        return np.repeat(np.arange(self.num_groups, dtype=np.int64), self.lengths)

    def first(self, values: pa.Array, ignore_nulls: bool, last: bool = False) -> pa.Array:
        rows = np.arange(self.n, dtype=np.int64)
        if ignore_nulls and values.null_count:
            rows = rows[pc.is_valid(values).to_numpy(zero_copy_only=False)]
        index = self._pick(rows, last)
        return values.take(pa.array(index, mask=index < 0))

    def collect(self, values: pa.Array, distinct: bool, merge: bool) -> pa.Array:
        """One list per group: the non-null values (or, merging, the states' lists concatenated)."""
        taken = values.take(pa.array(self.order))
        gid = self.gid_sorted
        if merge:
            parents = pc.list_parent_indices(taken).to_numpy()
            gid = gid[parents]
            taken = pc.list_flatten(taken)
            elem_type = values.type.value_type
        else:
            elem_type = values.type
            if taken.null_count:
                keep = pc.is_valid(taken).to_numpy(zero_copy_only=False)
                taken, gid = taken.filter(pa.array(keep)), gid[keep]
        if distinct and len(gid):
            if _nested(elem_type):
                seen: set[tuple[int, str]] = set()
                keep_list = []
                for g, v in zip(gid.tolist(), taken.to_pylist()):
                    k = (g, repr(v))
                    keep_list.append(k not in seen)
                    seen.add(k)
                keep = np.array(keep_list, dtype=bool)
            else:   # first occurrence of each (group, value), by hashing their codes
                import pandas as pd
                vcode, card = _codes(taken)
                keep = ~pd.Series(gid * max(card, 1) + vcode).duplicated().to_numpy()
            taken, gid = taken.filter(pa.array(keep)), gid[keep]
        counts = np.bincount(gid, minlength=self.num_groups) if len(gid) else np.zeros(self.num_groups, np.int64)
        offsets = np.concatenate([[0], np.cumsum(counts)])
        if offsets[-1] < (1 << 31):
            return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), taken)
        return pa.LargeListArray.from_arrays(pa.array(offsets), taken)


def _hash_aggs(grouped: Grouped, columns: list[pa.Array], specs: list[tuple[int, str, Any]]) -> list[pa.Array]:
    """Arrow hash aggregates of value columns, aligned with ``grouped``'s groups."""
    if not specs:
        return []
    gid = grouped.codes
    names = ["g"] + [f"v{j}" for j in range(len(specs))]
    table = pa.table([pa.array(gid)] + [columns[c] for c, _, _ in specs], names=names)
    aggs = [(f"v{j}", how, opts) if opts is not None else (f"v{j}", how) for j, (_, how, opts) in enumerate(specs)]
    out = table.group_by(["g"], use_threads=False).aggregate(aggs)
    order = pc.sort_indices(out.column("g"))
    out = out.take(order)
    return [out.column(f"v{j}_{how}").combine_chunks() for j, (_, how, _o) in enumerate(specs)]


_COUNT_VALID = pc.CountOptions(mode="only_valid")
_COUNT_ALL = pc.CountOptions(mode="all")


_SIMPLE = {"count", "count_all", "sum", "min", "max", "avg"}


class _DirectGroups:
    """Groups found by one Arrow hash aggregation over the keys themselves (count/sum/min/max/avg only).

    Those aggregates need no per-group row lists, so Arrow's group_by computes keys and results in one
    pass; the general path (Grouped) first numbers the groups for first/last/collect/statistics.
    """

    global_agg = False

    def __init__(self, keys: list[pa.Array]) -> None:
        self.key_arrays = keys
        self.keys: list[pa.Array] = []
        self.num_groups = 0

    def hash_aggs(self, columns: list[pa.Array], specs: list[tuple[int, str, Any]]) -> list[pa.Array]:
        names = [f"k{i}" for i in range(len(self.key_arrays))]
        vnames = [f"v{j}" for j in range(len(specs))]
        table = pa.table(self.key_arrays + [columns[c] for c, _, _ in specs], names=names + vnames)
        aggs = [(f"v{j}", how, opts) if opts is not None else (f"v{j}", how)
                for j, (_, how, opts) in enumerate(specs)]
        out = table.group_by(names, use_threads=False).aggregate(aggs)
        self.keys = [out.column(nm).combine_chunks() for nm in names]
        self.num_groups = out.num_rows
        return [out.column(f"v{j}_{how}").combine_chunks() for j, (_, how, _o) in enumerate(specs)]


def _groups(keys: list[pa.Array], n: int, fns: list[AggFn]) -> Any:
    if keys and all(f.fn in _SIMPLE for f in fns) and not any(_nested(k.type) for k in keys):
        return _DirectGroups(keys)
    return Grouped(keys, n)


def _aggs(g: Any, columns: list[pa.Array], specs: list[tuple[int, str, Any]]) -> list[pa.Array]:
    if isinstance(g, _DirectGroups):
        return g.hash_aggs(columns, specs)
    return _hash_aggs(g, columns, specs)


def partial(pre: pa.Table, n_keys: int, fns: list[AggFn]) -> pa.Table:
    """The partial states of ``pre`` (keys first, then aggregate inputs): one row per key."""
    cols = [pre.column(i).combine_chunks() for i in range(pre.num_columns)]
    g = _groups(cols[:n_keys], pre.num_rows, fns)
    values = cols[n_keys:]
    specs: list[tuple[int, str, Any]] = []
    slots: list[Any] = []
    for f in fns:
        if f.fn == "count_all":
            specs.append((len(values), "count", _COUNT_ALL))
            slots.append(len(specs) - 1)
        elif f.fn == "count":
            specs.append((f.col, "count", _COUNT_VALID))
            slots.append(len(specs) - 1)
        elif f.fn in ("sum", "min", "max"):
            specs.append((f.col, f.fn, None))
            slots.append(len(specs) - 1)
        elif f.fn == "avg":
            specs.append((len(values) + 1 + f.col, "sum", None))   # the float64 copy, added below
            specs.append((f.col, "count", _COUNT_VALID))
            slots.append((len(specs) - 2, len(specs) - 1))
        else:
            slots.append(None)
    avg_args = {f.col for f in fns if f.fn == "avg"}
    extra = [pa.array(np.zeros(pre.num_rows, dtype=np.int8))] + [
        v.cast(pa.float64()) if i in avg_args else v for i, v in enumerate(values)]
    results = _aggs(g, values + extra, specs)
    states: list[pa.Array] = []
    for f, slot in zip(fns, slots):
        if f.fn == "avg":
            states.extend([results[slot[0]], results[slot[1]]])
        elif slot is not None:
            states.append(results[slot])
        elif f.fn in ("first", "last"):
            states.append(g.first(values[f.col], f.ignore_nulls, last=f.fn == "last"))
        elif stats.handles(f.fn):
            states.extend(stats.partial(f.fn, g, [values[f.col]] + ([values[f.arg2]] if f.arg2 is not None else [])))
        else:
            states.append(g.collect(values[f.col], distinct=f.distinct_state, merge=False))
    return _state_table(g, states, n_keys, fns)


def _state_table(g: Any, states: list[pa.Array], n_keys: int, fns: list[AggFn]) -> pa.Table:
    names = [f"k{i}" for i in range(n_keys)] + [f"s{j}" for j in range(len(states))]
    if g.global_agg and n_keys == 0:
        return pa.table(states, names=names) if states else pa.table({"__rows": pa.array(
            np.ones(g.num_groups, dtype=np.int8))})
    return pa.table(g.keys + states, names=names)


def merge(states: pa.Table, n_keys: int, fns: list[AggFn]) -> pa.Table:
    """Partial states (several rows per key) merged into one row per key."""
    cols = [states.column(i).combine_chunks() for i in range(states.num_columns)]
    g = _groups(cols[:n_keys], states.num_rows, fns)
    values = cols[n_keys:]
    specs: list[tuple[int, str, Any]] = []
    plan: list[Any] = []
    j = 0
    for f in fns:
        if f.fn in ("count", "count_all", "sum"):
            specs.append((j, "sum", None))
            plan.append(("hash", len(specs) - 1))
        elif f.fn in ("min", "max"):
            specs.append((j, f.fn, None))
            plan.append(("hash", len(specs) - 1))
        elif f.fn == "avg":
            specs.append((j, "sum", None))
            specs.append((j + 1, "sum", None))
            plan.append(("avg", len(specs) - 2))
        elif f.fn in ("first", "last"):
            plan.append(("first", j))
        elif stats.handles(f.fn):
            plan.append(("stats", j))
        else:
            plan.append(("collect", j))
        j += f.state_width
    results = _aggs(g, values, specs)
    out: list[pa.Array] = []
    for f, (kind, slot) in zip(fns, plan):
        if kind == "hash":
            out.append(results[slot])
        elif kind == "avg":
            out.extend([results[slot], results[slot + 1]])
        elif kind == "first":
            out.append(g.first(values[slot], f.ignore_nulls, last=f.fn == "last"))
        elif kind == "stats":
            out.extend(stats.merge(f.fn, g, values[slot:slot + f.state_width]))
        else:
            out.append(g.collect(values[slot], distinct=f.distinct_state, merge=True))
    return _state_table(g, out, n_keys, fns)


def finalize(states: pa.Table, n_keys: int, fns: list[AggFn], state_types: list[pa.DataType]) -> pa.Table:
    """Merged states -> [keys..., one result per aggregate]; a global aggregate always has one row."""
    if n_keys == 0 and states.num_rows == 0:
        states = pa.table([pa.nulls(1, t) for t in state_types], names=[f"s{j}" for j in range(len(state_types))])
    cols = [states.column(i).combine_chunks() for i in range(states.num_columns)]
    keys, values = cols[:n_keys], cols[n_keys:]
    out: list[pa.Array] = []
    j = 0
    for f in fns:
        v = values[j]
        if f.fn in ("count", "count_all"):
            out.append(pc.fill_null(v, 0).cast(pa.int64()))
        elif f.fn == "avg":
            counts = values[j + 1]
            counts = pc.if_else(pc.equal(counts, 0), pa.scalar(None, pa.int64()), counts)
            out.append(pc.divide(v.cast(pa.float64()), counts.cast(pa.float64())))
        elif f.fn == "count_distinct":
            out.append(pc.fill_null(pc.list_value_length(v), 0).cast(pa.int64()))
        elif f.fn in ("collect_list", "collect_set"):
            if v.null_count:
                v = pc.if_else(pc.is_null(v), pa.scalar([], v.type), v)
            out.append(v)
        elif stats.handles(f.fn):
            out.append(stats.finalize(f.fn, values[j:j + f.state_width], None))
        elif f.listy:
            out.append(stats.final_list(f.fn, v, f.options, v.type.value_type))
        else:
            out.append(v)
        j += f.state_width
    names = [f"k{i}" for i in range(n_keys)] + [f"a{i}" for i in range(len(fns))]
    return pa.table(keys + out, names=names)


class PartialAggOp:
    """Map side: buffer the task's input, fold it into partial states, emit the states at the end."""

    name = "partialAgg"

    def __init__(self, n_keys: int, fns: list[AggFn], schema: pa.Schema) -> None:
        self.n_keys, self.fns, self.schema = n_keys, fns, schema

    def run(self, batches: Iterator[Any], tc: Any) -> Iterator[Any]:
        pending: list[pa.RecordBatch] = []
        rows = 0
        states: pa.Table | None = None
        for b in batches:
            pending.append(b)
            rows += b.num_rows
            if rows >= FLUSH_ROWS:
                states = self._fold(states, pending)
                pending, rows = [], 0
                if states.num_rows >= FLUSH_ROWS:   # many distinct keys: pass them on instead of holding them
                    yield from states.combine_chunks().to_batches()
                    states = None
        if pending or states is None:
            states = self._fold(states, pending)
        if states.num_rows:
            yield from states.combine_chunks().to_batches()

    def _fold(self, states: pa.Table | None, pending: list[pa.RecordBatch]) -> pa.Table:
        fresh = partial(pa.Table.from_batches(pending, schema=self.schema), self.n_keys, self.fns)
        if states is None:
            return fresh
        return merge(pa.concat_tables([states, fresh]), self.n_keys, self.fns)


def state_schema(pre_schema: pa.Schema, n_keys: int, fns: list[AggFn]) -> pa.Schema:
    """The schema of the partial states (found by aggregating zero rows)."""
    empty = pa.Table.from_batches([], schema=pre_schema)
    return partial(empty, n_keys, fns).schema
