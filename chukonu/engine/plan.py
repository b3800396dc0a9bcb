"""Logical plan nodes: what a DataFrame or RDD computes, before it is cut into stages.

Each node knows its output schema (a tuple of ``Attr``) as soon as it is
built, so mistakes (an unknown column, an aggregate outside ``agg``) are
reported where the user wrote them, as in Spark. Every node adds its id to
the origins of the columns it outputs: ``df["x"]`` then means "the x that
flowed through df", which is how a join's duplicate names are told apart.
"""
from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import pyarrow as pa

from chukonu.engine.expressions import Attr, Expr

log = logging.getLogger(__name__)

_ids = itertools.count(1)

Schema = tuple[Attr, ...]


def schema_of(arrow: pa.Schema, origin: int) -> Schema:
    return tuple(Attr(f.name, f.type, frozenset({origin})) for f in arrow)


def to_arrow_schema(schema: Sequence[Attr]) -> pa.Schema:
    return pa.schema([pa.field(a.name, a.type) for a in schema])


class Plan:
    """A node of the logical plan."""

    children: list["Plan"]
    schema: Schema
    kind = "?"

    def __init__(self, children: Sequence["Plan"] = ()) -> None:
        self.id = next(_ids)
        self.children = list(children)

    def tag(self, attrs: Sequence[Attr]) -> Schema:
        return tuple(Attr(a.name, a.type, a.origins | {self.id}, a.qualifiers) for a in attrs)

    def describe(self) -> str:
        return self.kind

    def tree(self, depth: int = 0) -> str:
        lines = ["  " * depth + ("+- " if depth else "") + self.describe()]
        for c in self.children:
            lines.append(c.tree(depth + 1))
        return "\n".join(lines)


# -------------------------------------------------------------------- leaves

class LocalRelation(Plan):
    """Data held by the driver (createDataFrame): one Arrow table per partition."""

    kind = "LocalRelation"

    def __init__(self, partitions: list[pa.Table], arrow_schema: pa.Schema) -> None:
        super().__init__()
        self.partitions = partitions
        self.schema = schema_of(arrow_schema, self.id)

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.partitions)

    def describe(self) -> str:
        return f"LocalRelation [{', '.join(a.name for a in self.schema)}], {len(self.partitions)} partitions"


class FileScan(Plan):
    """Files read by a format reader, already cut into splits (with their data servers)."""

    kind = "FileScan"

    def __init__(self, fmt: str, paths: list[str], reader: Any, splits: list[Any], arrow_schema: pa.Schema) -> None:
        super().__init__()
        self.fmt, self.paths, self.reader, self.splits = fmt, paths, reader, splits
        self.schema = schema_of(arrow_schema, self.id)

    def describe(self) -> str:
        return f"FileScan {self.fmt} {self.paths} [{', '.join(a.name for a in self.schema)}], {len(self.splits)} splits"


class Range(Plan):
    kind = "Range"

    def __init__(self, start: int, end: int, step: int, num_partitions: int, name: str = "id") -> None:
        super().__init__()
        self.start, self.end, self.step, self.num_partitions = start, end, step, num_partitions
        self.schema = (Attr(name, pa.int64(), frozenset({self.id})),)

    def describe(self) -> str:
        return f"Range ({self.start}, {self.end}, step={self.step}, splits={self.num_partitions})"


# ------------------------------------------------------------------ narrow

class Project(Plan):
    """select/withColumn: one output column per expression; at most one generator (explode)."""

    kind = "Project"

    def __init__(self, child: Plan, exprs: list[Expr], schema: Schema) -> None:
        super().__init__([child])
        self.exprs = exprs            # bound to child.schema
        self.schema = self.tag(schema)

    def describe(self) -> str:
        return f"Project [{', '.join(a.name for a in self.schema)}]"


class Filter(Plan):
    kind = "Filter"

    def __init__(self, child: Plan, condition: Expr) -> None:
        super().__init__([child])
        self.condition = condition
        self.schema = self.tag(child.schema)

    def describe(self) -> str:
        return f"Filter {self.condition.name()}"


class MapBatches(Plan):
    """mapInArrow / mapInPandas: a user function from an iterator of batches to another."""

    kind = "MapBatches"

    def __init__(self, child: Plan, fn: Callable[..., Any], arrow_schema: pa.Schema, flavour: str) -> None:
        super().__init__([child])
        self.fn, self.flavour = fn, flavour
        self.schema = schema_of(arrow_schema, self.id)

    def describe(self) -> str:
        return f"MapIn{self.flavour.capitalize()} {getattr(self.fn, '__name__', 'fn')}"


class Hint(Plan):
    """broadcast(df): no effect on the data, only on how a join uses it."""

    kind = "Hint"

    def __init__(self, child: Plan, name: str) -> None:
        super().__init__([child])
        self.name = name
        self.schema = self.tag(child.schema)

    def describe(self) -> str:
        return f"Hint {self.name}"


class SubqueryAlias(Plan):
    """df.alias("a") / ``FROM t AS a``: the same rows, whose columns can now be named ``a.x``."""

    kind = "SubqueryAlias"

    def __init__(self, child: Plan, alias: str) -> None:
        super().__init__([child])
        self.alias = alias
        self.schema = tuple(Attr(a.name, a.type, a.origins | {self.id}, frozenset({alias})) for a in child.schema)

    def describe(self) -> str:
        return f"SubqueryAlias {self.alias}"


class Limit(Plan):
    kind = "Limit"

    def __init__(self, child: Plan, n: int) -> None:
        super().__init__([child])
        self.n = n
        self.schema = self.tag(child.schema)

    def describe(self) -> str:
        return f"Limit {self.n}"


class Coalesce(Plan):
    kind = "Coalesce"

    def __init__(self, child: Plan, n: int) -> None:
        super().__init__([child])
        self.n = n
        self.schema = self.tag(child.schema)


class Union(Plan):
    """Rows of every child, by position; column types widened to a common type."""

    kind = "Union"

    def __init__(self, children: list[Plan], schema: Schema) -> None:
        super().__init__(children)
        self.schema = self.tag(schema)


class Cache(Plan):
    """cache()/persist(): computed once, kept as Arrow files in the session's spill directory."""

    kind = "Cache"

    def __init__(self, child: Plan) -> None:
        super().__init__([child])
        self.schema = self.tag(child.schema)
        self.stored: list[Any] | None = None   # the materialised partitions once computed


# -------------------------------------------------------------------- wide

@dataclass
class AggregateSpec:
    """groupBy(keys).agg(...), planned: pre-projection, aggregate functions, post-projection."""

    pre: list[Expr]            # bound to the child: keys first, then aggregate inputs
    n_keys: int
    fns: list[Any]             # aggregate.AggFn
    post: list[Expr]           # bound to keys + aggregate results
    out_names: list[str]
    pre_schema: Schema = ()


class Aggregate(Plan):
    kind = "Aggregate"

    def __init__(self, child: Plan, spec: AggregateSpec, schema: Schema) -> None:
        super().__init__([child])
        self.spec = spec
        self.schema = self.tag(schema)

    def describe(self) -> str:
        return f"Aggregate keys={self.spec.n_keys} [{', '.join(a.name for a in self.schema)}]"


@dataclass
class JoinSpec:
    how: str                          # inner, left, right, full, left_semi, left_anti, cross
    left_keys: list[int]
    right_keys: list[int]
    using: bool                       # join(on=names): one copy of each key column
    residual: Expr | None = None      # bound to left + right columns
    key_types: list[pa.DataType] = field(default_factory=list)


class Join(Plan):
    kind = "Join"

    def __init__(self, left: Plan, right: Plan, spec: JoinSpec, schema: Schema) -> None:
        super().__init__([left, right])
        self.spec = spec
        self.schema = schema   # tagged by the caller: left and right keep their own origins

    def describe(self) -> str:
        return f"Join {self.spec.how} keys={self.spec.left_keys}/{self.spec.right_keys}"


class Window(Plan):
    """Window functions sharing one PARTITION BY / ORDER BY: the child's columns plus one per function."""

    kind = "Window"

    def __init__(self, child: Plan, partition: list[Expr], orders: list[Expr], calls: list[Any],
                 schema: Schema) -> None:
        super().__init__([child])
        self.partition, self.orders, self.calls = partition, orders, calls   # bound to child.schema
        self.schema = self.tag(schema)

    def describe(self) -> str:
        return (f"Window [{', '.join(c.fn for c in self.calls)}] partition by "
                f"[{', '.join(p.name() for p in self.partition)}] order by [{', '.join(o.name() for o in self.orders)}]")


class DropDuplicates(Plan):
    """distinct() and dropDuplicates(subset): the first row of each key, in input order."""

    kind = "DropDuplicates"

    def __init__(self, child: Plan, key_indices: list[int]) -> None:
        super().__init__([child])
        self.key_indices = key_indices
        self.schema = self.tag(child.schema)


class Sort(Plan):
    kind = "Sort"

    def __init__(self, child: Plan, orders: list[Expr], global_sort: bool = True) -> None:
        super().__init__([child])
        self.orders = orders          # bound SortOrder expressions
        self.global_sort = global_sort
        self.schema = self.tag(child.schema)

    def describe(self) -> str:
        return f"Sort {'global' if self.global_sort else 'local'} [{', '.join(o.name() for o in self.orders)}]"


class Repartition(Plan):
    kind = "Repartition"

    def __init__(self, child: Plan, n: int, keys: list[Expr], adaptive: bool = False,
                 target_bytes: int | None = None) -> None:
        super().__init__([child])
        self.n, self.keys = n, keys   # keys bound; empty means round robin
        self.adaptive = adaptive      # no partition count given: small reduce partitions may be merged
        self.target_bytes = target_bytes   # ... up to this size (default: chukonu.shuffle.targetBytes)
        self.schema = self.tag(child.schema)

    def describe(self) -> str:
        return f"Repartition {self.n} by [{', '.join(k.name() for k in self.keys)}]"


# ---------------------------------------------------------------------- RDD

class RddSource(Plan):
    """sc.parallelize: lists of Python objects, one per partition."""

    kind = "RddSource"
    schema: Schema = ()

    def __init__(self, partitions: list[list[Any]]) -> None:
        super().__init__()
        self.partitions = partitions


class RddMap(Plan):
    """map/flatMap/filter/mapPartitions: ``fn(partition_index, iterator) -> iterator``."""

    kind = "RddMap"
    schema: Schema = ()

    def __init__(self, child: Plan, fn: Callable[[int, Any], Any], name: str = "map") -> None:
        super().__init__([child])
        self.fn, self.name = fn, name

    def describe(self) -> str:
        return f"RddMap {self.name}"


class RddUnion(Plan):
    """rdd.union: the children's partitions one after the other."""

    kind = "RddUnion"
    schema: Schema = ()


class RddShuffle(Plan):
    """Key-value shuffle: partition by key, optionally combining values per key on both sides."""

    kind = "RddShuffle"
    schema: Schema = ()

    def __init__(self, child: Plan, n: int, create: Callable | None = None, merge_value: Callable | None = None,
                 merge_combiners: Callable | None = None, name: str = "shuffle") -> None:
        super().__init__([child])
        self.n, self.create, self.merge_value, self.merge_combiners = n, create, merge_value, merge_combiners
        self.name = name


class RddFromRows(Plan):
    """df.rdd: the DataFrame's rows as Row objects (or, ``values_only``, its one column's values)."""

    kind = "RddFromRows"
    schema: Schema = ()

    def __init__(self, child: Plan, values_only: bool = False) -> None:
        super().__init__([child])
        self.values_only = values_only


class RowsToFrame(Plan):
    """createDataFrame(rdd) / rdd.toDF(): Python rows back to Arrow batches."""

    kind = "RowsToFrame"

    def __init__(self, child: Plan, arrow_schema: pa.Schema) -> None:
        super().__init__([child])
        self.arrow_schema = arrow_schema
        self.schema = schema_of(arrow_schema, self.id)
