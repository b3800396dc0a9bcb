"""Higher-order functions (transform, filter, exists, forall, aggregate, zip_with, map lambdas), vectorised.

A lambda's body is an ordinary expression tree whose variables are
``LambdaVar`` nodes. To apply it, the arrays are flattened: every element
becomes a row of an "inner batch" (the outer row's columns taken by the
element's parent index), the variables are bound to the flat element column
in the evaluation context, and the body runs once over all elements of the
batch. ``aggregate`` folds position by position: step k updates, all at once,
the accumulators of the rows whose array has a k-th element.
"""
from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from chukonu.engine.expressions import EvalCtx, Expr, as_array, fill_null_false, unify_types

_ids = itertools.count()


@dataclass(repr=False)
class LambdaVar(Expr):
    """A lambda parameter; its value comes from the evaluation context."""

    label: str
    key: str = ""

    def __post_init__(self) -> None:
        if not self.key:
            self.key = f"{self.label}#{next(_ids)}"

    def name(self) -> str:
        return self.label

    def evaluate(self, batch: pa.RecordBatch, ctx: EvalCtx) -> Any:
        return ctx.lambdas[self.key]


@dataclass(repr=False)
class HigherOrder(Expr):
    fn: str                   # transform, filter, exists, forall, aggregate, zip_with, transform_keys ...
    args: list[Expr]          # arrays/maps (and the zero value of aggregate)
    params: list[LambdaVar]
    body: Expr
    finish_params: list[LambdaVar] = dataclasses.field(default_factory=list)
    finish: Expr | None = None

    def children(self) -> list[Expr]:
        return list(self.args) + [self.body] + ([self.finish] if self.finish is not None else [])

    def with_children(self, children: list[Expr]) -> Expr:
        k = len(self.args)
        return HigherOrder(self.fn, children[:k], self.params, children[k], self.finish_params,
                           children[k + 1] if self.finish is not None else None)

    def name(self) -> str:
        lam = f"lambdafunction({self.body.name()}, {', '.join(p.name() for p in self.params)})"
        return f"{self.fn}({', '.join(a.name() for a in self.args)}, {lam})"

    def evaluate(self, batch: pa.RecordBatch, ctx: EvalCtx) -> Any:
        n = batch.num_rows
        values = [as_array(a.evaluate(batch, ctx), n) for a in self.args]
        return getattr(self, "_" + self.fn)(batch, ctx, values, n)

    # ------------------------------------------------------------ helpers

    def _inner(self, batch: pa.RecordBatch, ctx: EvalCtx, parents: np.ndarray, bindings: list[pa.Array]) -> Any:
        inner = batch.take(pa.array(parents, type=pa.int64())) if batch.num_columns else \
            pa.RecordBatch.from_arrays([pa.nulls(len(parents))], names=["_"])
        lambdas = dict(ctx.lambdas)
        for p, b in zip(self.params, bindings):
            lambdas[p.key] = b
        sub = EvalCtx(ctx.partition_index, ctx.row_offset, ctx.input_file, lambdas, ctx.ansi)
        return as_array(self.body.evaluate(inner, sub), len(parents))

    @staticmethod
    def _flat(a: pa.Array) -> tuple[pa.Array, np.ndarray, np.ndarray]:
        """(flat values, parent row of each, position within its array)."""
        if pa.types.is_null(a.type):
            return pa.array([], pa.null()), np.zeros(0, np.int64), np.zeros(0, np.int32)
        flat = pc.list_flatten(a)
        parents = pc.list_parent_indices(a).to_numpy().astype(np.int64)
        lengths = pc.fill_null(pc.list_value_length(a), 0).to_numpy(zero_copy_only=False).astype(np.int64)
        starts = np.cumsum(lengths) - lengths
        pos = (np.arange(len(flat), dtype=np.int64) - starts[parents]).astype(np.int32)
        return flat, parents, pos

    def _bindings(self, flat: pa.Array, pos: np.ndarray) -> list[pa.Array]:
        return [flat, pa.array(pos, pa.int32())][:len(self.params)]

    @staticmethod
    def _rebuild(a: pa.Array, values: pa.Array, keep: np.ndarray | None = None) -> pa.Array:
        lengths = pc.fill_null(pc.list_value_length(a), 0).to_numpy(zero_copy_only=False).astype(np.int64)
        if keep is not None:
            parents = pc.list_parent_indices(a).to_numpy()
            lengths = np.bincount(parents[keep], minlength=len(a)) if len(parents) else np.zeros(len(a), np.int64)
            values = values.filter(pa.array(keep))
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
        return pa.ListArray.from_arrays(pa.array(offsets), values, mask=pc.is_null(a))

    # ------------------------------------------------------------ functions

    def _transform(self, batch: pa.RecordBatch, ctx: EvalCtx, values: list[pa.Array], n: int) -> Any:
        a = values[0]
        flat, parents, pos = self._flat(a)
        out = self._inner(batch, ctx, parents, self._bindings(flat, pos))
        return self._rebuild(a, out)

    def _filter(self, batch: pa.RecordBatch, ctx: EvalCtx, values: list[pa.Array], n: int) -> Any:
        a = values[0]
        flat, parents, pos = self._flat(a)
        cond = fill_null_false(self._inner(batch, ctx, parents, self._bindings(flat, pos)))
        return self._rebuild(a, flat, cond.to_numpy(zero_copy_only=False))

    def _any_all(self, batch: pa.RecordBatch, ctx: EvalCtx, values: list[pa.Array], n: int, want: bool) -> Any:
        a = values[0]
        flat, parents, pos = self._flat(a)
        cond = self._inner(batch, ctx, parents, self._bindings(flat, pos))
        c = cond.cast(pa.bool_())
        hit = pc.fill_null(pc.equal(c, want), False).to_numpy(zero_copy_only=False)
        nul = c.is_null().to_numpy(zero_copy_only=False)
        any_hit = np.bincount(parents[hit], minlength=n) > 0 if len(parents) else np.zeros(n, bool)
        any_null = np.bincount(parents[nul], minlength=n) > 0 if len(parents) else np.zeros(n, bool)
        result = np.where(any_hit, want, not want)
        mask = pc.is_null(a).to_numpy(zero_copy_only=False) | (~any_hit & any_null)
        return pa.array(result, pa.bool_(), mask=mask)

    def _exists(self, batch: pa.RecordBatch, ctx: EvalCtx, values: list[pa.Array], n: int) -> Any:
        return self._any_all(batch, ctx, values, n, True)

    def _forall(self, batch: pa.RecordBatch, ctx: EvalCtx, values: list[pa.Array], n: int) -> Any:
        return self._any_all(batch, ctx, values, n, False)

    def _aggregate(self, batch: pa.RecordBatch, ctx: EvalCtx, values: list[pa.Array], n: int) -> Any:
        a, acc = values[0], values[1]
        flat, parents, pos = self._flat(a)
        lengths = pc.fill_null(pc.list_value_length(a), 0).to_numpy(zero_copy_only=False).astype(np.int64)
        longest = int(lengths.max()) if n else 0
        starts = np.cumsum(lengths) - lengths
        for k in range(longest):
            rows = np.flatnonzero(lengths > k)
            elems = flat.take(pa.array(starts[rows] + k))
            cur = acc.take(pa.array(rows))
            step = self._inner(batch, ctx, rows, [cur, elems])
            if step.type != acc.type:
                acc, step = (x for x in unify_types([acc, step]))
            index = np.arange(n, dtype=np.int64)
            index[rows] = n + np.arange(len(rows))
            acc = pa.concat_arrays([acc, step]).take(pa.array(index))
        if self.finish is not None:
            lambdas = dict(ctx.lambdas)
            lambdas[self.finish_params[0].key] = acc
            acc = as_array(self.finish.evaluate(batch, EvalCtx(ctx.partition_index, ctx.row_offset, ctx.input_file,
                                                               lambdas, ctx.ansi)), n)
        return pc.if_else(pc.is_null(a), pa.scalar(None, acc.type), acc)

    def _zip_with(self, batch: pa.RecordBatch, ctx: EvalCtx, values: list[pa.Array], n: int) -> Any:
        a, b = values[0], values[1]
        la = pc.fill_null(pc.list_value_length(a), 0).to_numpy(zero_copy_only=False).astype(np.int64)
        lb = pc.fill_null(pc.list_value_length(b), 0).to_numpy(zero_copy_only=False).astype(np.int64)
        k = np.maximum(la, lb)
        parents = np.repeat(np.arange(n, dtype=np.int64), k)
        pos = np.arange(int(k.sum()), dtype=np.int64) - np.repeat(np.cumsum(k) - k, k)
        xa = _elements(a, parents, pos, la)
        xb = _elements(b, parents, pos, lb)
        out = self._inner(batch, ctx, parents, [xa, xb])
        offsets = np.concatenate([[0], np.cumsum(k)]).astype(np.int32)
        mask = pc.or_(pc.is_null(a), pc.is_null(b))
        return pa.ListArray.from_arrays(pa.array(offsets), out, mask=mask)

    @staticmethod
    def _map_parts(m: pa.Array) -> tuple[pa.Array, pa.Array, np.ndarray]:
        keys, vals, lengths = map_entries(m)
        return keys, vals, np.repeat(np.arange(len(m), dtype=np.int64), lengths)

    def _map_rebuild(self, m: pa.Array, keys: pa.Array, vals: pa.Array, keep: np.ndarray | None = None) -> pa.Array:
        lengths = map_entries(m)[2]
        if keep is not None:
            parents = np.repeat(np.arange(len(m), dtype=np.int64), lengths)
            lengths = np.bincount(parents[keep], minlength=len(m)) if len(parents) else np.zeros(len(m), np.int64)
            keys, vals = keys.filter(pa.array(keep)), vals.filter(pa.array(keep))
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
        return pa.MapArray.from_arrays(pa.array(offsets), keys, vals, mask=pc.is_null(m))

    def _transform_values(self, batch: pa.RecordBatch, ctx: EvalCtx, values: list[pa.Array], n: int) -> Any:
        keys, vals, parents = self._map_parts(values[0])
        return self._map_rebuild(values[0], keys, self._inner(batch, ctx, parents, [keys, vals]))

    def _transform_keys(self, batch: pa.RecordBatch, ctx: EvalCtx, values: list[pa.Array], n: int) -> Any:
        keys, vals, parents = self._map_parts(values[0])
        new_keys = self._inner(batch, ctx, parents, [keys, vals])
        if new_keys.null_count:
            raise ValueError("[NULL_MAP_KEY] Cannot use null as map key.")
        return self._map_rebuild(values[0], new_keys, vals)

    def _map_filter(self, batch: pa.RecordBatch, ctx: EvalCtx, values: list[pa.Array], n: int) -> Any:
        keys, vals, parents = self._map_parts(values[0])
        cond = fill_null_false(self._inner(batch, ctx, parents, [keys, vals]))
        return self._map_rebuild(values[0], keys, vals, cond.to_numpy(zero_copy_only=False))


def map_entries(m: pa.Array) -> tuple[pa.Array, pa.Array, np.ndarray]:
    """(keys, values, entries per row) of a map array; Arrow's list kernels do not take maps."""
    offsets = m.offsets.to_numpy()
    start, end = int(offsets[0]), int(offsets[-1])
    return m.keys.slice(start, end - start), m.items.slice(start, end - start), np.diff(offsets).astype(np.int64)


def _elements(a: pa.Array, parents: np.ndarray, pos: np.ndarray, lengths: np.ndarray) -> pa.Array:
    """Element ``pos`` of row ``parents`` of list array ``a``, null past its end."""
    starts = np.cumsum(lengths) - lengths
    ok = pos < lengths[parents]
    flat = pc.list_flatten(a)
    if len(flat) == 0:
        return pa.nulls(len(parents), a.type.value_type)
    return flat.take(pa.array(np.where(ok, starts[parents] + pos, 0), mask=~ok))
