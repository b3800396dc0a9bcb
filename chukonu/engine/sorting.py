"""Sorting with Spark's ordering rules, and range partitioning for a global sort.

Spark puts nulls first when ascending and last when descending, per key;
Arrow has one null placement for all keys, so each key gets a null
indicator column sorted ahead of it. A global sort samples its input,
picks boundaries on the driver, sends each row to the range it falls in,
and sorts each range: rows equal to a boundary land in the range above it,
the same rule on every task.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from chukonu.engine.expressions import EvalCtx, Expr, SortOrder, as_array


def one_batch(table: pa.Table) -> pa.RecordBatch:
    batches = table.combine_chunks().to_batches()
    if not batches:
        return pa.RecordBatch.from_arrays([pa.array([], f.type) for f in table.schema], schema=table.schema)
    if len(batches) == 1:
        return batches[0]
    return pa.Table.from_batches(batches).combine_chunks().to_batches(max_chunksize=None)[0]


def sort_keys_table(keys: Sequence[pa.Array], orders: Sequence[SortOrder], tag: pa.Array | None = None
                    ) -> tuple[pa.Table, list[tuple[str, str]]]:
    """The helper table and sort keys that order rows as Spark would."""
    cols: dict[str, pa.Array] = {}
    spec: list[tuple[str, str]] = []
    for i, (k, o) in enumerate(zip(keys, orders)):
        if k.null_count:   # a key without nulls needs no indicator: one sort key less
            cols[f"n{i}"] = pc.is_null(k)
            # is_null sorts False < True: descending puts nulls first
            spec.append((f"n{i}", "descending" if o.nulls_go_first else "ascending"))
        cols[f"k{i}"] = k
        spec.append((f"k{i}", "ascending" if o.ascending else "descending"))
    if tag is not None:
        cols["tag"] = tag
        spec.append(("tag", "ascending"))
    return pa.table(cols), spec


def evaluate_keys(table: pa.Table, orders: Sequence[Expr], tc: Any = None) -> list[pa.Array]:
    batch = one_batch(table)
    ctx = EvalCtx(getattr(tc, "partition", 0), 0, getattr(tc, "input_file", ""), ansi=getattr(tc, "ansi", False))
    return [as_array(o.evaluate(batch, ctx), batch.num_rows) for o in orders]


def sort_indices(keys: Sequence[pa.Array], orders: Sequence[SortOrder]) -> pa.Array:
    helper, spec = sort_keys_table(keys, orders)
    return pc.sort_indices(helper, sort_keys=spec)


def sort_table(table: pa.Table, orders: Sequence[Expr], tc: Any = None) -> pa.Table:
    if table.num_rows <= 1:
        return table
    keys = evaluate_keys(table, orders, tc)
    return table.take(sort_indices(keys, orders))  # type: ignore[arg-type]


def sample_keys(keys: list[pa.Array], size: int) -> pa.Table:
    """Up to ``size`` evenly spaced rows of the key columns (a deterministic sample)."""
    n = len(keys[0]) if keys else 0
    if n == 0:
        return pa.table({f"k{i}": k for i, k in enumerate(keys)})
    idx = np.unique(np.linspace(0, n - 1, num=min(size, n)).astype(np.int64))
    return pa.table({f"k{i}": k.take(pa.array(idx)) for i, k in enumerate(keys)})


def choose_boundaries(samples: pa.Table, orders: Sequence[SortOrder], partitions: int) -> pa.Table:
    """``partitions - 1`` boundary rows splitting the sample into equal ranges."""
    if samples.num_rows == 0 or partitions <= 1:
        return samples.slice(0, 0)
    keys = [samples.column(i).combine_chunks() for i in range(samples.num_columns)]
    ordered = samples.take(sort_indices(keys, orders))
    picks = [int(round(ordered.num_rows * (i + 1) / partitions)) for i in range(partitions - 1)]
    picks = sorted({min(p, ordered.num_rows - 1) for p in picks})
    return ordered.take(pa.array(picks, type=pa.int64()))


def range_partition_ids(keys: list[pa.Array], boundaries: pa.Table, orders: Sequence[SortOrder]) -> np.ndarray:
    """For each row, how many boundaries sort at or before it (its range's index)."""
    n = len(keys[0])
    b = boundaries.num_rows
    if b == 0:
        return np.zeros(n, dtype=np.int64)
    combined = []
    for i, k in enumerate(keys):
        bound = boundaries.column(i).combine_chunks()
        if bound.type != k.type:
            bound = bound.cast(k.type)
        combined.append(pa.concat_arrays([bound, k]))
    tag = pa.array(np.concatenate([np.zeros(b, dtype=np.int8), np.ones(n, dtype=np.int8)]))
    helper, spec = sort_keys_table(combined, orders, tag)
    order = pc.sort_indices(helper, sort_keys=spec).to_numpy()
    is_bound = order < b
    seen = np.cumsum(is_bound)
    out = np.empty(n, dtype=np.int64)
    rows = ~is_bound
    out[order[rows] - b] = seen[rows]
    return out
