"""Equi-joins of two Arrow tables with Spark's output shape.

Arrow's hash join cannot carry nested columns (lists, structs) as payload,
so only the key columns and a row number per side go through it; the
output is then assembled with ``take`` on each side. Rows come out ordered
by left row then right row, so a join's result does not depend on thread
timing. Null keys never match, as in SQL.
"""
from __future__ import annotations

import logging
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from chukonu.engine.expressions import EvalCtx, as_array, fill_null_false
from chukonu.engine.plan import JoinSpec

log = logging.getLogger(__name__)

_ARROW_HOW = {"inner": "inner", "left": "left outer", "right": "right outer", "full": "full outer",
              "left_semi": "left semi", "left_anti": "left anti"}


def _keys(table: pa.Table, idx: list[int], types: list[pa.DataType]) -> list[pa.Array]:
    out = []
    for i, t in zip(idx, types):
        c = table.column(i).combine_chunks()
        out.append(c if c.type == t else c.cast(t))
    return out


def _key_table(keys: list[pa.Array], rowname: str, n: int) -> pa.Table:
    cols = {f"k{i}": k for i, k in enumerate(keys)}
    cols[rowname] = pa.array(np.arange(n, dtype=np.int64))
    return pa.table(cols)


def join_tables(left: pa.Table, right: pa.Table, spec: JoinSpec, out_schema: pa.Schema) -> pa.Table:
    types = spec.key_types
    lk = _keys(left, spec.left_keys, types)
    rk = _keys(right, spec.right_keys, types)
    names = [f"k{i}" for i in range(len(lk))]
    how = spec.how
    if how == "cross":
        li = np.repeat(np.arange(left.num_rows), right.num_rows)
        ri = np.tile(np.arange(right.num_rows), left.num_rows)
        return _assemble(left, right, pa.array(li), pa.array(ri), spec, out_schema)
    lt = _key_table(lk, "__l", left.num_rows)
    rt = _key_table(rk, "__r", right.num_rows)
    joined = lt.join(rt, keys=names, join_type=_ARROW_HOW[how], use_threads=False, coalesce_keys=False) \
        if how not in ("left_semi", "left_anti") else lt.join(rt, keys=names, join_type=_ARROW_HOW[how],
                                                              use_threads=False)
    if how in ("left_semi", "left_anti"):
        li = pc.sort_indices(joined.column("__l"))
        rows = joined.column("__l").take(li).combine_chunks()
        return left.take(rows)
    big = pa.scalar(1 << 62, pa.int64())   # unmatched rows (null row numbers) sort last
    order = pc.sort_indices(pa.table({"l": pc.fill_null(joined.column("__l"), big),
                                      "r": pc.fill_null(joined.column("__r"), big)}),
                            sort_keys=[("l", "ascending"), ("r", "ascending")])
    joined = joined.take(order)
    return _assemble(left, right, joined.column("__l").combine_chunks(), joined.column("__r").combine_chunks(),
                     spec, out_schema)


def _assemble(left: pa.Table, right: pa.Table, li: pa.Array, ri: pa.Array, spec: JoinSpec,
              out_schema: pa.Schema) -> pa.Table:
    lcols = [left.column(i).take(li) for i in range(left.num_columns)]
    rcols = [right.column(i).take(ri) for i in range(right.num_columns)]
    if spec.using:
        keys = []
        for n, (a, b) in enumerate(zip(spec.left_keys, spec.right_keys)):
            lkey, rkey = lcols[a], rcols[b]
            t = spec.key_types[n]
            lkey, rkey = lkey.cast(t), rkey.cast(t)
            if spec.how == "right":
                keys.append(rkey)
            elif spec.how == "full":
                keys.append(pc.coalesce(lkey, rkey))
            else:
                keys.append(lkey)
        rest_l = [c for i, c in enumerate(lcols) if i not in spec.left_keys]
        rest_r = [c for i, c in enumerate(rcols) if i not in spec.right_keys]
        cols = keys + rest_l + rest_r
    else:
        cols = lcols + rcols
    cols = [c.combine_chunks() if isinstance(c, pa.ChunkedArray) else c for c in cols]
    out = pa.Table.from_arrays([c if c.type == f.type else c.cast(f.type) for c, f in zip(cols, out_schema)],
                               schema=out_schema)
    if spec.residual is not None:
        from chukonu.engine.sorting import one_batch
        both = pa.Table.from_arrays(lcols + rcols, names=[f"c{i}" for i in range(len(lcols) + len(rcols))])
        batch = one_batch(both)
        mask = fill_null_false(as_array(spec.residual.evaluate(batch, EvalCtx()), batch.num_rows))
        out = out.filter(mask)
    return out


class BroadcastJoinOp:
    """A join against a table every task holds (the broadcast side), streaming the other side."""

    name = "broadcastJoin"

    def __init__(self, build: pa.Table, spec: JoinSpec, out_schema: pa.Schema, build_is_left: bool,
                 stream_schema: pa.Schema) -> None:
        self.build, self.spec, self.out_schema = build, spec, out_schema
        self.build_is_left, self.stream_schema = build_is_left, stream_schema

    def run(self, batches: Iterator[Any], tc: Any) -> Iterator[Any]:
        for b in batches:
            stream = pa.Table.from_batches([b], schema=self.stream_schema)
            if self.build_is_left:
                out = join_tables(self.build, stream, self.spec, self.out_schema)
            else:
                out = join_tables(stream, self.build, self.spec, self.out_schema)
            if out.num_rows:
                yield from out.combine_chunks().to_batches()
