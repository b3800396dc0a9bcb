"""Narrow operators: functions from an iterator of batches to an iterator of batches.

A task's pipeline is its source followed by a chain of these, nested as
generators: one batch travels through every operator (project, filter, a
user's mapInArrow, a partial aggregate) before the next batch is read. That
is the fusion of narrow operations: no operator materialises its whole
input unless it must (a sort, an aggregate).
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from chukonu.engine.expressions import Alias, EvalCtx, Expr, Generator, as_array, fill_null_false
from chukonu.errors import AnalysisException

log = logging.getLogger(__name__)

Batches = Iterator[Any]


class Op:
    """One narrow operator; ``run`` is called once per task with the task's context."""

    name = "op"

    def run(self, batches: Batches, tc: Any) -> Batches:
        raise NotImplementedError


def _ctx(tc: Any, offset: int) -> EvalCtx:
    return EvalCtx(tc.partition, offset, tc.input_file, ansi=getattr(tc, "ansi", False))


def conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """``batch`` with exactly ``schema``'s names and types (casting where they differ)."""
    if batch.schema.equals(schema):
        return batch
    cols = []
    for i, f in enumerate(schema):
        c = batch.column(i)
        cols.append(c if c.type == f.type else c.cast(f.type))
    return pa.RecordBatch.from_arrays(cols, schema=schema)


class ProjectOp(Op):
    name = "project"

    def __init__(self, exprs: Sequence[Expr], schema: pa.Schema) -> None:
        self.exprs = list(exprs)
        self.schema = schema
        gens = [i for i, e in enumerate(exprs) if isinstance(_unalias(e), Generator)]
        self.generator = gens[0] if gens else None

    def run(self, batches: Batches, tc: Any) -> Batches:
        offset = 0
        for b in batches:
            out = self.apply(b, _ctx(tc, offset))
            offset += b.num_rows
            yield out

    def apply(self, b: pa.RecordBatch, ctx: EvalCtx) -> pa.RecordBatch:
        n = b.num_rows
        if self.generator is None:
            cols = [as_array(e.evaluate(b, ctx), n) for e in self.exprs]
            return conform(pa.RecordBatch.from_arrays(cols, names=self.schema.names), self.schema)
        gen = _unalias(self.exprs[self.generator])
        assert isinstance(gen, Generator)
        parents, generated = explode(as_array(gen.child.evaluate(b, ctx), n), gen.kind == "posexplode", gen.outer)
        take = pa.array(parents)
        out: list[pa.Array] = []
        for i, e in enumerate(self.exprs):
            if i == self.generator:
                out.extend(generated)
            else:
                out.append(as_array(e.evaluate(b, ctx), n).take(take))
        return conform(pa.RecordBatch.from_arrays(out, names=self.schema.names), self.schema)


def _unalias(e: Expr) -> Expr:
    return e.child if isinstance(e, Alias) else e


def explode(arr: pa.Array, with_pos: bool, outer: bool) -> tuple[np.ndarray, list[pa.Array]]:
    """(parent row of each output row, [pos,] element columns) for explode/posexplode."""
    is_map = pa.types.is_map(arr.type)
    if is_map:
        arr = pa.array([None if m is None else [{"key": k, "value": v} for k, v in m] for m in arr.to_pylist()],
                       type=pa.list_(pa.struct([("key", arr.type.key_type), ("value", arr.type.item_type)])))
    if not (pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type)):
        raise AnalysisException(f"explode needs an array or map, got {arr.type}")
    lens = pc.fill_null(pc.list_value_length(arr), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    reps = np.maximum(lens, 1) if outer else lens
    n_out = int(reps.sum())
    parents = np.repeat(np.arange(len(arr), dtype=np.int64), reps)
    row_start = np.repeat(np.cumsum(reps) - reps, reps)
    within = np.arange(n_out, dtype=np.int64) - row_start
    valid = within < np.repeat(lens, reps)
    flat_start = np.repeat(np.cumsum(lens) - lens, reps)
    flat = pc.list_flatten(arr)
    if len(flat) == 0:
        values = pa.nulls(n_out, arr.type.value_type)
    else:
        values = flat.take(pa.array(np.where(valid, flat_start + within, 0), mask=~valid))
    out: list[pa.Array] = []
    if with_pos:
        out.append(pa.array(within.astype(np.int32), mask=~valid))
    if is_map:
        out.extend([pc.struct_field(values, [0]), pc.struct_field(values, [1])])
    else:
        out.append(values)
    return parents, out


class FilterOp(Op):
    name = "filter"

    def __init__(self, condition: Expr) -> None:
        self.condition = condition

    def run(self, batches: Batches, tc: Any) -> Batches:
        offset = 0
        for b in batches:
            mask = fill_null_false(as_array(self.condition.evaluate(b, _ctx(tc, offset)), b.num_rows))
            offset += b.num_rows
            out = b.filter(mask)
            if out.num_rows:
                yield out


class LimitOp(Op):
    name = "limit"

    def __init__(self, n: int) -> None:
        self.n = n

    def run(self, batches: Batches, tc: Any) -> Batches:
        left = self.n
        if left <= 0:
            return
        for b in batches:
            if len(b) >= left:
                yield b[:left]
                return
            left -= len(b)
            yield b


class MapBatchesOp(Op):
    """mapInArrow / mapInPandas: the user's function sees the partition's batches as an iterator."""

    name = "mapInArrow"

    def __init__(self, fn: Callable[..., Any], schema: pa.Schema, flavour: str) -> None:
        self.fn, self.schema, self.flavour = fn, schema, flavour

    def run(self, batches: Batches, tc: Any) -> Batches:
        from chukonu.engine.udfs import UdfError

        fname = getattr(self.fn, "__name__", "function")
        if self.flavour == "pandas":
            inputs: Iterator[Any] = (b.to_pandas() for b in batches)
        else:
            inputs = iter(batches)
        try:
            for out in self.fn(inputs):
                yield self._check(out, fname)
        except (UdfError, AnalysisException):
            raise
        except Exception as e:  # noqa: BLE001 - the user's function failed
            raise UdfError(fname, e) from e

    def _check(self, out: Any, fname: str) -> pa.RecordBatch:
        if self.flavour == "pandas":
            import pandas as pd
            if not isinstance(out, pd.DataFrame):
                raise TypeError(f"mapInPandas function {fname} must yield pandas.DataFrame, got {type(out).__name__}")
            cols = [out[name] if name in out.columns else out.iloc[:, i] for i, name in enumerate(self.schema.names)]
            return pa.RecordBatch.from_arrays(
                [pa.Array.from_pandas(c, type=f.type) for c, f in zip(cols, self.schema)], schema=self.schema)
        if isinstance(out, pa.Table):
            out = out.combine_chunks().to_batches()[0] if out.num_rows else \
                pa.RecordBatch.from_arrays([pa.array([], f.type) for f in out.schema], schema=out.schema)
        if not isinstance(out, pa.RecordBatch):
            raise TypeError(f"mapInArrow function {fname} must yield pyarrow.RecordBatch, got {type(out).__name__}")
        if out.schema.names != self.schema.names:
            by_name = {n: i for i, n in enumerate(out.schema.names)}
            missing = [n for n in self.schema.names if n not in by_name]
            if missing:
                raise AnalysisException(f"[RESULT_COLUMNS_MISMATCH] {fname} returned columns {out.schema.names}, "
                                        f"the declared schema has {self.schema.names}")
            out = pa.RecordBatch.from_arrays([out.column(by_name[n]) for n in self.schema.names],
                                             names=self.schema.names)
        try:
            return conform(out, self.schema)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as e:
            raise AnalysisException(f"[RESULT_TYPE_MISMATCH] {fname} returned {out.schema}, declared "
                                    f"{self.schema}: {e}") from None


class PyIterOp(Op):
    """An RDD function over a partition's elements; batches here are Python lists."""

    name = "rdd"

    def __init__(self, fn: Callable[[int, Iterator[Any]], Iterator[Any]], batch_size: int = 4096) -> None:
        self.fn, self.batch_size = fn, batch_size

    def run(self, batches: Batches, tc: Any) -> Batches:
        from chukonu.engine.udfs import UdfError

        elements = (x for b in batches for x in b)
        out: list[Any] = []
        try:
            for x in self.fn(tc.partition, elements):
                out.append(x)
                if len(out) >= self.batch_size:
                    yield out
                    out = []
        except UdfError:
            raise
        except Exception as e:  # noqa: BLE001
            raise UdfError(getattr(self.fn, "__name__", "function"), e) from e
        if out:
            yield out


class RowsOp(Op):
    """Arrow batches -> lists of Row (df.rdd), or of the first column's values (sc.textFile)."""

    name = "toRows"

    def __init__(self, values_only: bool = False) -> None:
        self.values_only = values_only

    def run(self, batches: Batches, tc: Any) -> Batches:
        from chukonu.engine.convert import arrow_to_python, table_to_rows
        for b in batches:
            yield arrow_to_python(b.column(0)) if self.values_only else table_to_rows(b)


class ToArrowOp(Op):
    """Lists of rows or tuples -> Arrow batches of a given schema (rdd.toDF)."""

    name = "toArrow"

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema

    def run(self, batches: Batches, tc: Any) -> Batches:
        from chukonu.engine.convert import rows_to_table
        for rows in batches:
            if rows:
                t = rows_to_table(rows, None, self.schema)
                for b in t.to_batches():
                    yield b


class SortOp(Op):
    """Sort everything this task sees (a partition of a global sort, or sortWithinPartitions)."""

    name = "sort"

    def __init__(self, orders: Sequence[Expr], schema: pa.Schema, limit: int | None = None) -> None:
        self.orders, self.schema, self.limit = orders, schema, limit

    def run(self, batches: Batches, tc: Any) -> Batches:
        from chukonu.engine.sorting import sort_table
        table = pa.Table.from_batches(list(batches), schema=self.schema)
        if table.num_rows == 0:
            return
        out = sort_table(table, self.orders, tc)
        if self.limit is not None:
            out = out.slice(0, self.limit)
        yield from out.combine_chunks().to_batches()


class TopKOp(Op):
    """The first ``n`` rows of this task in sort order, keeping only ``n`` rows in memory at a time."""

    name = "topK"

    def __init__(self, n: int, orders: Sequence[Expr], schema: pa.Schema) -> None:
        self.n, self.orders, self.schema = n, orders, schema

    def run(self, batches: Batches, tc: Any) -> Batches:
        from chukonu.engine.sorting import sort_table
        best: pa.Table | None = None
        for b in batches:
            t = pa.Table.from_batches([b]) if best is None else pa.concat_tables([best, pa.Table.from_batches([b])])
            best = sort_table(t, self.orders, tc).slice(0, self.n)
        if best is not None and best.num_rows:
            yield from best.combine_chunks().to_batches()
