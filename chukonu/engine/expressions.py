"""Expression trees and their vectorised evaluation over Arrow record batches.

A ``Column`` of the SQL API wraps one of these nodes. Before a plan runs,
``bind`` replaces every column name by its position in the input schema
(Spark's BoundReference), so evaluation never looks a name up and duplicate
names after a join are harmless. ``evaluate`` returns an Arrow array (or a
scalar, broadcast by the caller) for a whole batch at once: per-row Python
only runs for Python UDFs and the few functions Arrow has no kernel for.

Output types are never computed by hand: a plan node learns the type of an
expression by evaluating it on an empty batch of its input schema, so the
type the planner promises and the type execution produces cannot disagree.
"""
from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from chukonu.errors import AnalysisException

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Attr:
    """One output column of a plan node: its name, Arrow type and the plan nodes it flowed through."""

    name: str
    type: pa.DataType
    origins: frozenset[int] = frozenset()
    qualifiers: frozenset[str] = frozenset()   # table aliases it can be named by: df.alias("a"), SQL FROM t a


@dataclass
class EvalCtx:
    """What an expression may need besides the batch: where it runs and which rows these are."""

    partition_index: int = 0
    row_offset: int = 0            # rows of this partition before this batch, at this operator
    input_file: str = ""
    lambdas: dict[str, Any] = field(default_factory=dict)   # lambda variables of higher-order functions
    ansi: bool = False             # spark.sql.ansi.enabled: errors instead of nulls (division by zero, bad casts)


class Expr:
    """A node of an expression tree."""

    def children(self) -> list["Expr"]:
        return []

    def with_children(self, children: list["Expr"]) -> "Expr":
        return self

    def name(self) -> str:
        raise NotImplementedError

    def evaluate(self, batch: pa.RecordBatch, ctx: EvalCtx) -> Any:
        raise NotImplementedError

    def walk(self) -> Any:
        yield self
        for c in self.children():
            yield from c.walk()

    def __repr__(self) -> str:
        return self.name()


# --------------------------------------------------------------------- leaves

@dataclass(repr=False)
class ColRef(Expr):
    """A column by name; ``plan_id`` says which DataFrame it was taken from (df["x"])."""

    column: str
    plan_id: int | None = None

    def name(self) -> str:
        return self.column.rsplit(".", 1)[-1] if "." in self.column and not self.column.startswith("`") \
            else self.column.strip("`")

    def evaluate(self, batch: pa.RecordBatch, ctx: EvalCtx) -> Any:
        raise AnalysisException(f"column {self.column!r} was not bound to an input")


@dataclass(repr=False)
class BoundRef(Expr):
    index: int
    label: str

    def name(self) -> str:
        return self.label

    def evaluate(self, batch: pa.RecordBatch, ctx: EvalCtx) -> Any:
        return batch.column(self.index)


@dataclass(repr=False)
class Star(Expr):
    """``*`` in select: expanded by the DataFrame to every column."""

    def name(self) -> str:
        return "*"


@dataclass(repr=False)
class RegexStar(Star):
    """df.colRegex("`a.*`"): every column whose whole name matches, expanded by select()."""

    pattern: Any = None

    def name(self) -> str:
        return f"`{self.pattern.pattern}`"


@dataclass(repr=False)
class Lit(Expr):
    value: Any
    type: pa.DataType | None = None

    def name(self) -> str:
        if self.value is None:
            return "NULL"
        if isinstance(self.value, bool):
            return str(self.value).lower()
        return str(self.value)

    def evaluate(self, batch: pa.RecordBatch, ctx: EvalCtx) -> Any:
        if self.type is not None:
            return pa.scalar(self.value, type=self.type)
        if isinstance(self.value, (list, tuple, dict)):
            return pa.scalar(self.value)
        return pa.scalar(self.value)


# ------------------------------------------------------------------- general

@dataclass(repr=False)
class Alias(Expr):
    child: Expr
    names: tuple[str, ...]

    def children(self) -> list[Expr]:
        return [self.child]

    def with_children(self, children: list[Expr]) -> Expr:
        return Alias(children[0], self.names)

    def name(self) -> str:
        return self.names[0]

    def evaluate(self, batch: pa.RecordBatch, ctx: EvalCtx) -> Any:
        return self.child.evaluate(batch, ctx)


@dataclass(repr=False)
class Call(Expr):
    """A scalar function from the kernel registry: ``fn(args..., **options)``."""

    fn: str
    args: list[Expr]
    options: dict[str, Any] = field(default_factory=dict)
    label: str | None = None

    def children(self) -> list[Expr]:
        return list(self.args)

    def with_children(self, children: list[Expr]) -> Expr:
        return Call(self.fn, children, self.options, self.label)

    def name(self) -> str:
        if self.label is not None:
            return self.label
        from chukonu.engine.kernels import display_name
        return display_name(self.fn, [a.name() for a in self.args], self.options)

    def evaluate(self, batch: pa.RecordBatch, ctx: EvalCtx) -> Any:
        from chukonu.engine.kernels import KERNELS
        values = [a.evaluate(batch, ctx) for a in self.args]
        return KERNELS[self.fn](values, self.options, batch.num_rows, ctx)


@dataclass(repr=False)
class CaseWhen(Expr):
    branches: list[tuple[Expr, Expr]]
    otherwise: Expr | None = None

    def children(self) -> list[Expr]:
        out = list(itertools.chain.from_iterable(self.branches))
        return out + ([self.otherwise] if self.otherwise is not None else [])

    def with_children(self, children: list[Expr]) -> Expr:
        n = len(self.branches)
        pairs = [(children[2 * i], children[2 * i + 1]) for i in range(n)]
        return CaseWhen(pairs, children[2 * n] if self.otherwise is not None else None)

    def name(self) -> str:
        s = "CASE " + " ".join(f"WHEN {c.name()} THEN {v.name()}" for c, v in self.branches)
        if self.otherwise is not None:
            s += f" ELSE {self.otherwise.name()}"
        return s + " END"

    def evaluate(self, batch: pa.RecordBatch, ctx: EvalCtx) -> Any:
        n = batch.num_rows
        conds = [fill_null_false(as_array(c.evaluate(batch, ctx), n)) for c, _ in self.branches]
        vals = [v.evaluate(batch, ctx) for _, v in self.branches]
        other = self.otherwise.evaluate(batch, ctx) if self.otherwise is not None else pa.scalar(None)
        arrays = unify_types([as_array(v, n) for v in vals + [other]])
        cond_struct = pa.StructArray.from_arrays(conds, [f"c{i}" for i in range(len(conds))])
        return pc.case_when(cond_struct, *arrays)


@dataclass(repr=False)
class Cast(Expr):
    child: Expr
    to: pa.DataType
    label: str = ""
    tolerant: bool = False     # try_cast: malformed input is null even in ANSI mode

    def children(self) -> list[Expr]:
        return [self.child]

    def with_children(self, children: list[Expr]) -> Expr:
        return Cast(children[0], self.to, self.label, self.tolerant)

    def name(self) -> str:
        return f"CAST({self.child.name()} AS {self.label or self.to})"

    def evaluate(self, batch: pa.RecordBatch, ctx: EvalCtx) -> Any:
        from chukonu.engine.kernels.casts import spark_cast
        return spark_cast(as_array(self.child.evaluate(batch, ctx), batch.num_rows), self.to,
                          ansi=ctx.ansi and not self.tolerant)


@dataclass(repr=False)
class SortOrder(Expr):
    child: Expr
    ascending: bool = True
    nulls_first: bool | None = None   # Spark: nulls first ascending, last descending

    def children(self) -> list[Expr]:
        return [self.child]

    def with_children(self, children: list[Expr]) -> Expr:
        return SortOrder(children[0], self.ascending, self.nulls_first)

    def name(self) -> str:
        return f"{self.child.name()} {'ASC' if self.ascending else 'DESC'}"

    @property
    def nulls_go_first(self) -> bool:
        return self.ascending if self.nulls_first is None else self.nulls_first

    def evaluate(self, batch: pa.RecordBatch, ctx: EvalCtx) -> Any:
        return self.child.evaluate(batch, ctx)


@dataclass(repr=False)
class MonotonicId(Expr):
    """monotonically_increasing_id(): partition index in the upper 31 bits, row number below."""

    def name(self) -> str:
        return "monotonically_increasing_id()"

    def evaluate(self, batch: pa.RecordBatch, ctx: EvalCtx) -> Any:
        base = (ctx.partition_index << 33) + ctx.row_offset
        return pa.array(np.arange(base, base + batch.num_rows, dtype=np.int64))


@dataclass(repr=False)
class PartitionId(Expr):
    def name(self) -> str:
        return "SPARK_PARTITION_ID()"

    def evaluate(self, batch: pa.RecordBatch, ctx: EvalCtx) -> Any:
        return pa.scalar(ctx.partition_index, pa.int32())


@dataclass(repr=False)
class InputFileName(Expr):
    def name(self) -> str:
        return "input_file_name()"

    def evaluate(self, batch: pa.RecordBatch, ctx: EvalCtx) -> Any:
        return pa.scalar(ctx.input_file, pa.string())


@dataclass(repr=False)
class Rand(Expr):
    """rand(seed): uniform [0, 1), reproducible for a given partition and seed."""

    seed: int

    def name(self) -> str:
        return f"rand({self.seed})"

    def evaluate(self, batch: pa.RecordBatch, ctx: EvalCtx) -> Any:
        rng = np.random.default_rng([self.seed, ctx.partition_index, ctx.row_offset])
        return pa.array(rng.random(batch.num_rows))


@dataclass(repr=False)
class AggCall(Expr):
    """An aggregate function (count, sum, collect_list...): valid only in agg()."""

    fn: str
    args: list[Expr]
    distinct: bool = False
    options: dict[str, Any] = field(default_factory=dict)

    def children(self) -> list[Expr]:
        return list(self.args)

    def with_children(self, children: list[Expr]) -> Expr:
        return AggCall(self.fn, children, self.distinct, self.options)

    def name(self) -> str:
        if self.fn == "count" and isinstance(self.args[0], Lit):
            return "count(1)"
        inner = ", ".join(a.name() for a in self.args)
        if self.distinct:
            inner = "DISTINCT " + inner
        return f"{self.fn}({inner})"

    def evaluate(self, batch: pa.RecordBatch, ctx: EvalCtx) -> Any:
        raise AnalysisException(f"aggregate function {self.name()} is only allowed in agg() or groupBy().agg()")


@dataclass(repr=False)
class Generator(Expr):
    """explode / posexplode (outer or not): one output row per element."""

    kind: str          # "explode" | "posexplode"
    child: Expr
    outer: bool = False

    def children(self) -> list[Expr]:
        return [self.child]

    def with_children(self, children: list[Expr]) -> Expr:
        return Generator(self.kind, children[0], self.outer)

    def name(self) -> str:
        return "col"

    def default_names(self, is_map: bool) -> tuple[str, ...]:
        base = ("key", "value") if is_map else ("col",)
        return (("pos",) + base) if self.kind == "posexplode" else base

    def evaluate(self, batch: pa.RecordBatch, ctx: EvalCtx) -> Any:
        raise AnalysisException("generators (explode) are only allowed at the top of select()")


@dataclass(repr=False)
class UdfCall(Expr):
    """A Python UDF (row at a time) or a pandas UDF (a Series per batch)."""

    fn: Callable[..., Any]
    return_type: pa.DataType
    args: list[Expr]
    kind: str = "python"  # "python" | "pandas"
    fname: str = "udf"

    def children(self) -> list[Expr]:
        return list(self.args)

    def with_children(self, children: list[Expr]) -> Expr:
        return UdfCall(self.fn, self.return_type, children, self.kind, self.fname)

    def name(self) -> str:
        return f"{self.fname}({', '.join(a.name() for a in self.args)})"

    def evaluate(self, batch: pa.RecordBatch, ctx: EvalCtx) -> Any:
        from chukonu.engine.udfs import run_pandas_udf, run_python_udf
        args = [as_array(a.evaluate(batch, ctx), batch.num_rows) for a in self.args]
        if self.kind == "pandas":
            return run_pandas_udf(self.fn, self.return_type, args, batch.num_rows, self.fname)
        return run_python_udf(self.fn, self.return_type, args, batch.num_rows, self.fname)


# ------------------------------------------------------------------- helpers

def as_array(v: Any, n: int) -> pa.Array:
    """An evaluation result as an array of ``n`` rows (scalars are repeated)."""
    if isinstance(v, pa.ChunkedArray):
        return v.combine_chunks() if v.num_chunks != 1 else v.chunk(0)
    if isinstance(v, pa.Array):
        return v
    if isinstance(v, pa.Scalar):
        if pa.types.is_null(v.type):
            return pa.nulls(n)
        return pa.repeat(v, n)
    return pa.repeat(pa.scalar(v), n)


def fill_null_false(a: pa.Array) -> pa.Array:
    if pa.types.is_null(a.type):
        return pa.array(np.zeros(len(a), dtype=bool))
    if a.null_count:
        return pc.fill_null(a, False)
    return a


_NUM_RANK = [pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.float32(), pa.float64()]


def common_type(types: Sequence[pa.DataType]) -> pa.DataType:
    """The type all of ``types`` widen to (Spark's type coercion for CASE, coalesce, union)."""
    real = [t for t in types if not pa.types.is_null(t)]
    if not real:
        return pa.null()
    first = real[0]
    if all(t == first for t in real):
        return first
    if all(pa.types.is_string(t) or pa.types.is_large_string(t) for t in real):
        return pa.large_string() if any(pa.types.is_large_string(t) for t in real) else pa.string()
    if all(t in _NUM_RANK for t in real):
        return max(real, key=_NUM_RANK.index)
    if all(pa.types.is_integer(t) or pa.types.is_floating(t) for t in real):
        return pa.float64() if any(pa.types.is_floating(t) for t in real) else pa.int64()
    if any(pa.types.is_string(t) for t in real) and all(
            pa.types.is_string(t) or pa.types.is_integer(t) or pa.types.is_floating(t) for t in real):
        return pa.string()
    if all(pa.types.is_list(t) for t in real):
        return pa.list_(common_type([t.value_type for t in real]))
    raise AnalysisException(f"incompatible types: {', '.join(str(t) for t in real)}")


def unify_types(arrays: list[pa.Array]) -> list[pa.Array]:
    target = common_type([a.type for a in arrays])
    if pa.types.is_null(target):
        return arrays
    return [a if a.type == target else a.cast(target) for a in arrays]


# ------------------------------------------------------------------- binding

def resolve_column(name: str, schema: Sequence[Attr], plan_id: int | None = None) -> int:
    """The position of column ``name`` in ``schema`` (exact name first, then case-insensitive)."""
    unquoted = name.strip("`")
    if "." in name and not name.startswith("`"):
        qual, _, rest = name.partition(".")
        rest = rest.strip("`")
        if any(qual.lower() in {q.lower() for q in a.qualifiers} for a in schema):
            hits = [i for i, a in enumerate(schema) if qual.lower() in {q.lower() for q in a.qualifiers}
                    and a.name.lower() == rest.lower()]
            if len(hits) == 1:
                return hits[0]
            if len(hits) > 1:
                exact = [i for i in hits if schema[i].name == rest]
                if len(exact) == 1:
                    return exact[0]
                raise AnalysisException(f"[AMBIGUOUS_REFERENCE] Reference `{name}` is ambiguous")
    for matcher in (lambda a: a.name == unquoted, lambda a: a.name.lower() == unquoted.lower()):
        hits = [i for i, a in enumerate(schema) if matcher(a)]
        if len(hits) > 1 and plan_id is not None:
            hits = [i for i in hits if plan_id in schema[i].origins]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise AnalysisException(f"[AMBIGUOUS_REFERENCE] Reference `{name}` is ambiguous, could be: "
                                    f"{[schema[i].name for i in hits]}")
    raise AnalysisException(f"[UNRESOLVED_COLUMN] A column or function parameter with name `{name}` cannot be "
                            f"resolved. Did you mean one of the following? {[a.name for a in schema]}")


def bind(expr: Expr, schema: Sequence[Attr]) -> Expr:
    """``expr`` with every ColRef replaced by a BoundRef into ``schema``."""
    if isinstance(expr, ColRef):
        try:
            return BoundRef(resolve_column(expr.column, schema, expr.plan_id), expr.name())
        except AnalysisException:
            # "a.b" may be field b of struct column a
            if "." in expr.column and not expr.column.startswith("`"):
                head, *rest = expr.column.split(".")
                out: Expr = BoundRef(resolve_column(head, schema, expr.plan_id), head)
                for part in rest:
                    out = Call("get_field", [out], {"field": part}, label=part)
                return out
            raise
    if isinstance(expr, Star):
        raise AnalysisException("'*' is only allowed in select() and count()")
    kids = expr.children()
    if not kids:
        return expr
    return expr.with_children([bind(k, schema) for k in kids])


def empty_batch(schema: Sequence[Attr]) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([pa.array([], type=a.type) for a in schema],
                                      names=[a.name for a in schema])


def result_type(bound: Expr, schema: Sequence[Attr]) -> pa.DataType:
    """The Arrow type ``bound`` produces, found by running it on zero rows."""
    try:
        out = bound.evaluate(empty_batch(schema), EvalCtx())
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as e:
        raise AnalysisException(f"cannot evaluate {bound.name()}: {e}") from None
    return out.type


def contains(expr: Expr, kind: type) -> bool:
    return any(isinstance(e, kind) for e in expr.walk())


def has_aggregate(expr: Expr) -> bool:
    """Whether ``expr`` has an aggregate call outside any window expression (``sum(x) OVER w`` is not one)."""
    if isinstance(expr, AggCall):
        return True
    if type(expr).__name__ == "WindowExpr":
        return any(has_aggregate(k) for k in expr.children()[1:]) or any(
            has_aggregate(k) for k in expr.children()[0].children())
    return any(has_aggregate(k) for k in expr.children())
