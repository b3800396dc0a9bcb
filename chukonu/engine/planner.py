"""From a logical plan to the partitions of its final stage, running the stages before it.

Narrow nodes (project, filter, mapInArrow, a broadcast join) stack operators
on their child's partitions: they fuse into the same task. A wide node
(aggregate, shuffle join, sort, repartition, an RDD shuffle) ends a stage:
the planner runs the child's tasks into a shuffle and continues from the
shuffle's reduce side. After a shuffle's map stage, adjacent small reduce
partitions are merged up to ``chukonu.shuffle.targetBytes`` (Spark's
adaptive coalescing), so a small job does not run 200 empty reduce tasks.
"""
from __future__ import annotations

import logging
import math
from typing import Any, Callable

import pyarrow as pa

from chukonu.engine import plan as P
from chukonu.engine.aggregate import PartialAggOp, finalize, merge, state_schema
from chukonu.engine.expressions import BoundRef, Cast, SortOrder
from chukonu.engine.join import BroadcastJoinOp, join_tables
from chukonu.engine.ops import (FilterOp, LimitOp, MapBatchesOp, ProjectOp, PyIterOp, RowsOp, SortOp, ToArrowOp,
                                TopKOp)
from chukonu.engine.partitions import (BlockingPartition, ConcatPartition, ListPartition, Partition, RangePartition,
                                       ScanPartition, TablePartition)
from chukonu.engine.shuffle import (FilesPartition, HashPartitioner, KeyPartitioner, RangePartitioner,
                                    RoundRobinPartitioner, SinglePartitioner)
from chukonu.engine.sinks import CollectSink, MaterializeSink, ShuffleWriteSink
from chukonu.engine.sorting import choose_boundaries

log = logging.getLogger(__name__)


class FinalAggregate:
    """Reduce side of an aggregate: merge the partial states, then finalise."""

    def __init__(self, n_keys: int, fns: list[Any], state_types: list[pa.DataType]) -> None:
        self.n_keys, self.fns, self.state_types = n_keys, fns, state_types

    def __call__(self, states: pa.Table) -> pa.Table:
        if states.num_rows:
            states = merge(states, self.n_keys, self.fns)
        return finalize(states, self.n_keys, self.fns, self.state_types)


class ShuffleJoin:
    def __init__(self, spec: P.JoinSpec, out_schema: pa.Schema) -> None:
        self.spec, self.out_schema = spec, out_schema

    def __call__(self, left: pa.Table, right: pa.Table) -> pa.Table:
        return join_tables(left, right, self.spec, self.out_schema)


class WindowTask:
    """Reduce side of a window: all rows of some window partitions in, the same rows plus results out."""

    def __init__(self, node: P.Window, out_schema: pa.Schema) -> None:
        self.partition, self.orders, self.calls, self.out_schema = node.partition, node.orders, node.calls, out_schema

    def __call__(self, table: pa.Table) -> pa.Table:
        from chukonu.engine.window import compute
        out = compute(table, self.partition, self.orders, self.calls)  # type: ignore[arg-type]
        return pa.Table.from_arrays([c if c.type == f.type else c.cast(f.type)
                                     for c, f in zip(out.columns, self.out_schema)], schema=self.out_schema)


class RddCombine:
    """combineByKey's per-partition step: fold (key, value) pairs into (key, combiner)."""

    def __init__(self, create: Callable | None, merge_value: Callable | None, merging: bool) -> None:
        self.create: Callable = create if create is not None else _identity
        self.merge_value: Callable = merge_value if merge_value is not None else _keep_first
        self.merging = merging

    def __call__(self, index: int, items: Any) -> Any:
        acc: dict[Any, Any] = {}
        for k, v in items:
            if k in acc:
                acc[k] = self.merge_value(acc[k], v)
            else:
                acc[k] = v if self.merging else self.create(v)
        return iter(acc.items())


def _identity(v: Any) -> Any:
    return v


def _keep_first(a: Any, _b: Any) -> Any:
    return a


def coalesce_groups(sizes: list[int], target: int) -> list[list[int]]:
    """Adjacent reduce partitions merged while their bytes stay under ``target``."""
    groups: list[list[int]] = []
    acc = 0
    for r, size in enumerate(sizes):
        if groups and acc + size <= target:
            groups[-1].append(r)
            acc += size
        else:
            groups.append([r])
            acc = size
    return groups


def _key_names(keys: list[Any], schema: tuple) -> set[str] | None:
    """The column names of keys that are plain column references (None if any is an expression)."""
    if not keys or not all(isinstance(k, BoundRef) for k in keys):
        return None
    return {schema[k.index].name for k in keys}


def partitioned_by(node: P.Plan) -> set[str] | None:
    """Columns such that all rows equal on them are in the same partition of ``node`` (None: unknown).

    True of a Window's or an Aggregate's output (hash-shuffled by their keys, reduce partitions only
    ever merged whole) and of a keyed repartition, and it survives narrow nodes that pass the
    columns through under the same names.
    """
    if isinstance(node, P.Window):
        return _key_names(node.partition, node.children[0].schema)
    if isinstance(node, P.Aggregate):
        if not node.spec.n_keys:
            return None
        return {a.name for a in node.schema[:node.spec.n_keys]}
    if isinstance(node, P.Repartition):
        return _key_names(node.keys, node.children[0].schema)
    if isinstance(node, (P.Filter, P.SubqueryAlias, P.Hint)):
        return partitioned_by(node.children[0])
    if isinstance(node, P.Project):
        below = partitioned_by(node.children[0])
        if below is None:
            return None
        child_schema = node.children[0].schema
        out: set[str] = set()
        for name in below:   # each key column must come through unchanged (perhaps renamed)
            hits = [node.schema[i].name for i, e in enumerate(node.exprs)
                    if isinstance(_unalias(e), BoundRef) and child_schema[_unalias(e).index].name == name]
            if not hits:
                return None
            out.add(hits[0])
        return out
    return None


def _unalias(e: Any) -> Any:
    from chukonu.engine.expressions import Alias
    return e.child if isinstance(e, Alias) else e


def _clustered(child: P.Plan, keys: set[str] | None) -> bool:
    below = partitioned_by(child)
    return bool(keys) and below is not None and bool(below) and below <= keys  # type: ignore[operator]


class Planner:
    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self._memo: dict[int, list[Partition]] = {}
        self._needs: dict[int, set[int]] | None = None   # columns used per node, from the first (root) node

    def partitions(self, node: P.Plan) -> list[Partition]:
        if self._needs is None:
            from chukonu.engine.pruning import needed_columns
            self._needs = needed_columns(node)
        got = self._memo.get(node.id)
        if got is None:
            got = self._plan(node)
            self._memo[node.id] = got
        return got

    # ---------------------------------------------------------------- helpers

    def _arrow(self, node: P.Plan) -> pa.Schema:
        return P.to_arrow_schema(node.schema)

    def shuffle(self, parts: list[Partition], partitioner: Any, schema: pa.Schema | None, name: str,
                n: int) -> list[list[Any]]:
        """Run ``parts`` into a shuffle of ``n`` partitions; the files of each reduce partition."""
        sid = self.engine.next_id()
        url = self.engine.shuffle_url
        results = self.engine.run_stage(name, parts, lambda i: ShuffleWriteSink(partitioner, url, sid, schema))
        return [[res[r] for res in results if r in res] for r in range(n)]

    def _coalesced(self, *sides: list[list[Any]], target: int | None = None) -> list[list[list[Any]]]:
        """The reduce partitions of one or more shuffles, merged alike (joins need the same groups)."""
        n = len(sides[0])
        sizes = [sum(f.nbytes for side in sides for f in side[r]) for r in range(n)]
        default = self.engine.shuffle_target_bytes
        groups = coalesce_groups(sizes, min(target, default) if target and default else default)
        return [[[f for r in g for f in side[r]] for g in groups] for side in sides]

    def materialize(self, parts: list[Partition], schema: pa.Schema | None, name: str,
                    sample: list[Any] | None = None) -> list[tuple[Any, Any]]:
        store = self.engine.next_id()
        url = self.engine.shuffle_url
        return self.engine.run_stage(name, parts, lambda i: MaterializeSink(url, store, schema, sample))

    # --------------------------------------------------------------- dispatch

    def _plan(self, node: P.Plan) -> list[Partition]:
        method = getattr(self, "_" + type(node).__name__, None)
        if method is None:
            raise NotImplementedError(f"no physical plan for {type(node).__name__}")
        return method(node)

    def _LocalRelation(self, node: P.LocalRelation) -> list[Partition]:
        return [TablePartition(t) for t in node.partitions]

    def _FileScan(self, node: P.FileScan) -> list[Partition]:
        from chukonu.engine.pruning import scan_columns
        cols = scan_columns(node, self._needs or {})
        reader = node.reader.pruned(cols) if cols is not None and hasattr(node.reader, "pruned") else node.reader
        return [ScanPartition(reader, s) for s in node.splits]

    def _Range(self, node: P.Range) -> list[Partition]:
        count = max(0, math.ceil((node.end - node.start) / node.step))
        n = max(1, node.num_partitions)
        parts: list[Partition] = []
        for i in range(n):
            lo, hi = count * i // n, count * (i + 1) // n
            parts.append(RangePartition(node.start + lo * node.step, node.start + hi * node.step, node.step,
                                        node.schema[0].name))
        return parts

    def _Project(self, node: P.Project) -> list[Partition]:
        from chukonu.engine.expressions import Alias, Generator, Lit
        from chukonu.engine.pruning import unused_outputs
        unused = unused_outputs(node, self._needs or {})
        exprs = [Cast(Lit(None), a.type) if i in unused and not isinstance(
            e.child if isinstance(e, Alias) else e, Generator) else e
            for i, (e, a) in enumerate(zip(node.exprs, node.schema))]   # nobody reads it: do not compute it
        op = ProjectOp(exprs, self._arrow(node))
        return [p.then(op) for p in self.partitions(node.children[0])]

    def _Filter(self, node: P.Filter) -> list[Partition]:
        op = FilterOp(node.condition)
        return [p.then(op) for p in self.partitions(node.children[0])]

    def _MapBatches(self, node: P.MapBatches) -> list[Partition]:
        op = MapBatchesOp(node.fn, self._arrow(node), node.flavour)
        return [p.then(op) for p in self.partitions(node.children[0])]

    def _Hint(self, node: P.Hint) -> list[Partition]:
        return self.partitions(node.children[0])

    def _SubqueryAlias(self, node: P.SubqueryAlias) -> list[Partition]:
        return self.partitions(node.children[0])

    def _Coalesce(self, node: P.Coalesce) -> list[Partition]:
        parts = self.partitions(node.children[0])
        if len(parts) <= node.n:
            return parts
        n = node.n
        return [ConcatPartition(parts[len(parts) * i // n: len(parts) * (i + 1) // n]) for i in range(n)]

    def _Union(self, node: P.Union) -> list[Partition]:
        out: list[Partition] = []
        target = self._arrow(node)
        for child in node.children:
            parts = self.partitions(child)
            if P.to_arrow_schema(child.schema).types != target.types:
                exprs = [Cast(BoundRef(i, a.name), target.field(i).type) if a.type != target.field(i).type
                         else BoundRef(i, a.name) for i, a in enumerate(child.schema)]
                op = ProjectOp(exprs, target)
                parts = [p.then(op) for p in parts]
            else:
                op = ProjectOp([BoundRef(i, a.name) for i, a in enumerate(child.schema)], target)
                parts = [p.then(op) for p in parts]
            out.extend(parts)
        return out

    def _Cache(self, node: P.Cache) -> list[Partition]:
        if node.stored is None:
            schema = self._arrow(node)
            results = self.materialize(self.partitions(node.children[0]), schema, "cache")
            node.stored = [f for f, _ in results]
        schema = self._arrow(node)
        return [FilesPartition([f] if f is not None else [], schema) for f in node.stored]

    def _Limit(self, node: P.Limit) -> list[Partition]:
        child = node.children[0]
        schema = self._arrow(node)
        if isinstance(child, P.Sort) and child.global_sort:
            parts = self.partitions(child.children[0])
            top = TopKOp(node.n, child.orders, schema)
            stored = self.materialize([p.then(top) for p in parts], schema, "top-k")
            gathered = ConcatPartition([FilesPartition([f], schema) for f, _ in stored if f is not None])
            return [gathered.then(SortOp(child.orders, schema, limit=node.n))]
        parts = self.partitions(child)
        if len(parts) <= 1:
            return [p.then(LimitOp(node.n)) for p in parts]
        stored = self.materialize([p.then(LimitOp(node.n)) for p in parts], schema, "limit")
        gathered = ConcatPartition([FilesPartition([f], schema) for f, _ in stored if f is not None])
        return [gathered.then(LimitOp(node.n))]

    def _Aggregate(self, node: P.Aggregate) -> list[Partition]:
        spec = node.spec
        child = node.children[0]
        pre_schema = P.to_arrow_schema(spec.pre_schema)
        parts = [p.then(ProjectOp(spec.pre, pre_schema), PartialAggOp(spec.n_keys, spec.fns, pre_schema))
                 for p in self.partitions(child)]
        states = state_schema(pre_schema, spec.n_keys, spec.fns)
        final = FinalAggregate(spec.n_keys, spec.fns, states.types[spec.n_keys:])
        post = ProjectOp(spec.post, self._arrow(node))
        if spec.n_keys and _clustered(child, _key_names(spec.pre[:spec.n_keys], child.schema)):
            # every group's rows are in one task already: aggregate there, no shuffle
            return [BlockingPartition([p], final, [states]).then(post) for p in parts]
        if spec.n_keys:
            n = self.engine.shuffle_partitions
            partitioner: Any = HashPartitioner([BoundRef(i, f"k{i}") for i in range(spec.n_keys)], n)
        else:
            n, partitioner = 1, SinglePartitioner()
        files = self.shuffle(parts, partitioner, states, "aggregate", n)
        groups = self._coalesced(files)[0] if spec.n_keys else [[f for fl in files for f in fl]]
        return [BlockingPartition([FilesPartition(g, states)], final, [states]).then(post)
                for g in groups]

    def _Join(self, node: P.Join) -> list[Partition]:
        spec = node.spec
        left, right = node.children
        out = self._arrow(node)
        ls, rs = self._arrow(left), self._arrow(right)
        hint_r = isinstance(right, P.Hint) and right.name == "broadcast"
        hint_l = isinstance(left, P.Hint) and left.name == "broadcast"
        while isinstance(right, P.SubqueryAlias):
            right = right.children[0]
        while isinstance(left, P.SubqueryAlias):
            left = left.children[0]
        small_r = isinstance(right, P.LocalRelation) and right.nbytes <= self.engine.broadcast_threshold
        if spec.how == "cross" or (spec.how in ("inner", "left", "left_semi", "left_anti") and (hint_r or small_r)):
            build = self._collect_table(right, rs)
            op = BroadcastJoinOp(build, spec, out, False, ls)
            return [p.then(op) for p in self.partitions(left)]
        if spec.how in ("inner", "right") and hint_l:
            build = self._collect_table(left, ls)
            op = BroadcastJoinOp(build, spec, out, True, rs)
            return [p.then(op) for p in self.partitions(right)]
        n = self.engine.shuffle_partitions
        lkeys = [Cast(BoundRef(i, ""), t) for i, t in zip(spec.left_keys, spec.key_types)]
        rkeys = [Cast(BoundRef(i, ""), t) for i, t in zip(spec.right_keys, spec.key_types)]
        lfiles = self.shuffle(self.partitions(left), HashPartitioner(lkeys, n), ls, "join (left side)", n)
        rfiles = self.shuffle(self.partitions(right), HashPartitioner(rkeys, n), rs, "join (right side)", n)
        lg, rg = self._coalesced(lfiles, rfiles)
        fn = ShuffleJoin(spec, out)
        return [BlockingPartition([FilesPartition(a, ls), FilesPartition(b, rs)], fn, [ls, rs]) for a, b in zip(lg, rg)]

    def _Window(self, node: P.Window) -> list[Partition]:
        child = node.children[0]
        schema = self._arrow(child)
        parts = self.partitions(child)
        fn = WindowTask(node, self._arrow(node))
        if _clustered(child, _key_names(node.partition, child.schema)):
            # the rows of each window partition already share a task (an earlier window or aggregate
            # shuffled by a subset of these keys): no shuffle, as Spark's EnsureRequirements decides
            return [BlockingPartition([p], fn, [schema]) for p in parts]
        if node.partition:
            n = self.engine.shuffle_partitions
            files = self.shuffle(parts, HashPartitioner(node.partition, n), schema, "window", n)
            groups = self._coalesced(files)[0]
        else:
            files = self.shuffle(parts, SinglePartitioner(), schema, "window", 1)
            groups = [[f for fl in files for f in fl]]
        return [BlockingPartition([FilesPartition(g, schema)], fn, [schema]) for g in groups]

    def _collect_table(self, node: P.Plan, schema: pa.Schema) -> pa.Table:
        results = self.engine.run_stage("broadcast", self.partitions(node), lambda i: CollectSink())
        return pa.Table.from_batches([b for r in results for b in r], schema=schema)

    def _Sort(self, node: P.Sort) -> list[Partition]:
        schema = self._arrow(node)
        parts = self.partitions(node.children[0])
        orders: list[SortOrder] = node.orders  # type: ignore[assignment]
        if not node.global_sort or len(parts) <= 1:
            return [p.then(SortOp(orders, schema)) for p in parts]
        stored = self.materialize(parts, schema, "sort (sample)", sample=orders)
        samples = [s for _, s in stored if s is not None]
        if not samples:
            return []
        n = min(self.engine.shuffle_partitions, len(parts))
        boundaries = choose_boundaries(pa.concat_tables(samples), orders, n)
        inputs: list[Partition] = [FilesPartition([f], schema) for f, _ in stored if f is not None]
        part = RangePartitioner(orders, boundaries)
        files = self.shuffle(inputs, part, schema, "sort (range shuffle)", part.n)
        return [FilesPartition(fl, schema).then(SortOp(orders, schema)) for fl in files if fl]

    def _Repartition(self, node: P.Repartition) -> list[Partition]:
        schema = self._arrow(node)
        partitioner = HashPartitioner(node.keys, node.n) if node.keys else RoundRobinPartitioner(node.n)
        files = self.shuffle(self.partitions(node.children[0]), partitioner, schema, "repartition", node.n)
        if node.adaptive and node.keys:
            files = self._coalesced(files, target=node.target_bytes)[0]
        return [FilesPartition(fl, schema) for fl in files]

    # -------------------------------------------------------------------- RDD

    def _RddSource(self, node: P.RddSource) -> list[Partition]:
        return [ListPartition(items) for items in node.partitions]

    def _RddMap(self, node: P.RddMap) -> list[Partition]:
        op = PyIterOp(node.fn)
        return [p.then(op) for p in self.partitions(node.children[0])]

    def _RddUnion(self, node: P.RddUnion) -> list[Partition]:
        return [p for c in node.children for p in self.partitions(c)]

    def _RddShuffle(self, node: P.RddShuffle) -> list[Partition]:
        parts = self.partitions(node.children[0])
        if node.create is not None:
            combine = PyIterOp(RddCombine(node.create, node.merge_value, merging=False))
            parts = [p.then(combine) for p in parts]
        files = self.shuffle(parts, KeyPartitioner(node.n), None, node.name, node.n)
        out = [FilesPartition(fl, None) for fl in files]
        if node.merge_combiners is not None:
            merge_op = PyIterOp(RddCombine(node.create, node.merge_combiners, merging=True))
            return [p.then(merge_op) for p in out]
        return list(out)

    def _RddFromRows(self, node: P.RddFromRows) -> list[Partition]:
        return [p.then(RowsOp(node.values_only)) for p in self.partitions(node.children[0])]

    def _RowsToFrame(self, node: P.RowsToFrame) -> list[Partition]:
        op = ToArrowOp(node.arrow_schema)
        return [p.then(op) for p in self.partitions(node.children[0])]

